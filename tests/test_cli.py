"""The h5pyvol command: info, env and config."""

from __future__ import annotations

import subprocess
import sys

import h5pyvol


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "h5pyvol", *args], capture_output=True, text=True)


def test_info_reports_one_libhdf5():
    proc = cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "plugin's libhdf5" in proc.stdout and "memory (h5pyvol.connectors.memory:MemoryConnector)" in proc.stdout
    assert "WARNING" not in proc.stderr


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
