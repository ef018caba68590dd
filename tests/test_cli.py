"""The h5pyvol command: info, env and config."""

from __future__ import annotations

import subprocess
import sys

import h5pyvol
import h5pyvol.cli


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "h5pyvol", *args], capture_output=True, text=True)


def test_info_reports_one_libhdf5():
    proc = cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "plugin's libhdf5" in proc.stdout and "memory (h5pyvol.connectors.memory:MemoryConnector)" in proc.stdout
    assert "WARNING" not in proc.stderr


def test_info_names_the_mode_and_one_libhdf5():
    from h5pyvol import _hdf5

    proc = cli("info")
    mode = "own HDF5" if h5pyvol.cli._build_config().MODE == "source" else "h5py wheel"
    assert any(line.startswith("mode") and mode in line for line in proc.stdout.splitlines()), proc.stdout
    assert _hdf5.one_libhdf5_problem() is None
    # The plugin names the very libhdf5 h5py loaded (the loader matches by this name).
    assert _hdf5.plugin_libhdf5() == _hdf5.elf_dynamic(_hdf5.loaded_libhdf5())[0]


def test_env_prints_exports():
    proc = cli("env", "memory")
    assert proc.returncode == 0
    assert f"export HDF5_PLUGIN_PATH={h5pyvol.PLUGIN_DIR}" in proc.stdout
    assert "export HDF5_VOL_CONNECTOR='h5pyvol memory'" in proc.stdout


def test_env_rejects_unknown_connector():
    proc = cli("env", "nosuch")
    assert proc.returncode == 2
    assert "unknown connector 'nosuch'" in proc.stderr


def test_config_flags_and_prefix(hdf5_prefix):
    proc = cli("config", "--cflags", "--libs")
    assert proc.returncode == 0
    assert f"-I{hdf5_prefix}/include" in proc.stdout and "-lhdf5" in proc.stdout
    assert (hdf5_prefix / "bin" / "h5_api_test").exists()
    assert (hdf5_prefix / "bin" / "h5dump").exists()
    assert cli("config", "--prefix").stdout.strip() == str(hdf5_prefix)


def test_help_explains_commands():
    proc = cli("--help")
    assert proc.returncode == 0
    for word in ("info", "env", "config", "examples"):
        assert word in proc.stdout


def test_only_libhdf5_itself_counts_as_libhdf5():
    # HDF5's tools and API tests link libhdf5_tools / libhdf5_test next to libhdf5:
    # taking those for a second libhdf5 once stopped h5dump and h5_api_test
    # from using h5pyvol at all (tests/test_tools_output.py runs the tools).
    from h5pyvol import _hdf5

    for name in ("libhdf5.so", "libhdf5.so.310", "libhdf5.so.310.5.1", "libhdf5-1f2e3d4c.so.310.5.1"):
        assert _hdf5._LIBHDF5.match(name), name
    for name in ("libhdf5_hl.so.310", "libhdf5_tools.so.310", "libhdf5_test.so.310", "libhdf5_hl-1f2e3d4c.so"):
        assert not _hdf5._LIBHDF5.match(name), name
