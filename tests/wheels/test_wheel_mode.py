"""Wheel mode: h5pyvol installed next to a stock h5py wheel (scripts/wheel-envs.sh
runs this file in each wheel environment; elsewhere it is skipped).

Checks that the plugin links the very libhdf5 inside h5py's wheel, that `info`
and `config` say what they can and cannot do, and that a plugin built against
another libhdf5 is refused with `info`'s message, from Python and from C.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import run, vol_env

import h5pyvol
from h5pyvol import _hdf5, cli

CFG = cli._build_config()
pytestmark = pytest.mark.skipif(getattr(CFG, "MODE", None) != "wheel", reason="h5pyvol is not in wheel mode here")
HDF5_2 = h5py.version.hdf5_version_tuple >= (2, 0, 0)
# A plugin built against another libhdf5 (scripts/test.sh passes the bootstrap .venv's).
FOREIGN = os.environ.get("H5PYVOL_FOREIGN_PLUGIN")
needs_foreign = pytest.mark.skipif(not FOREIGN, reason="H5PYVOL_FOREIGN_PLUGIN names no other plugin")


def h5pyvol_cmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "h5pyvol", *args], capture_output=True, text=True)


def test_plugin_links_the_libhdf5_inside_h5py_wheel():
    libs = Path(h5py.__file__).resolve().parent.parent / "h5py.libs"
    loaded = Path(_hdf5.loaded_libhdf5())
    assert loaded.parent == libs
    assert _hdf5.plugin_libhdf5() == _hdf5.elf_dynamic(loaded)[0] == loaded.name
    assert _hdf5.one_libhdf5_problem() is None
    assert CFG.H5PY_VERSION == h5py.version.version and CFG.HDF5_VERSION == h5py.version.hdf5_version


def test_plugin_rpath_is_relative_to_h5py_libs():
    out = subprocess.run(["readelf", "-d", str(_hdf5.plugin_file())], capture_output=True, text=True, check=True)
    rpath = next(line for line in out.stdout.splitlines() if "(RPATH)" in line)
    assert "$ORIGIN/../../h5py.libs" in rpath
    assert "/.cache/" not in rpath and "/tmp/" not in rpath


def test_info_names_wheel_mode():
    proc = h5pyvol_cmd("info")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"h5py wheel: the plugin links the libhdf5 inside h5py {h5py.version.version}'s wheel" in proc.stdout
    assert "WARNING" not in proc.stderr


def test_memory_file_through_the_wheel_libhdf5(tmp_path):
    with h5pyvol.File(str(tmp_path / "a.h5"), "w", connector="memory") as f:
        f["x"] = np.arange(12).reshape(3, 4)
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        np.testing.assert_array_equal(f["x"][1:, ::2], [[4, 6], [8, 10]])


def test_config_prefix_explains_there_is_none():
    proc = h5pyvol_cmd("config", "--prefix")
    assert proc.returncode == 1
    assert "no installation prefix and no HDF5 tools" in proc.stderr


@pytest.mark.skipif(not HDF5_2, reason="h5pyvol has headers of this HDF5 release")
def test_config_cflags_says_what_to_do_for_hdf5_2():
    proc = h5pyvol_cmd("config", "--cflags", "--libs")
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"bundles HDF5 {h5py.version.hdf5_version} but no headers" in proc.stderr
    assert "pip install h5py==3.15.1" in proc.stderr and "HDF5_DIR=PREFIX" in proc.stderr


@pytest.mark.skipif(HDF5_2, reason="no headers of HDF5 2.x")
def test_config_compiles_a_c_program_against_the_wheel(tmp_path):
    flags = h5pyvol_cmd("config", "--cflags", "--libs", "--hl").stdout.split()
    assert any(f.startswith("-I") and f.endswith("h5pyvol/include") for f in flags)
    src = Path(__file__).resolve().parents[1] / "c" / "roundtrip.c"
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(tmp_path / "prog"), str(src), *flags], check=True)
    proc = run([tmp_path / "prog"], vol_env("memory"), cwd=tmp_path)
    assert proc.returncode == 0 and "connector: h5pyvol" in proc.stdout, proc.stdout + proc.stderr


@needs_foreign
def test_file_refuses_a_plugin_built_against_another_libhdf5(tmp_path):
    # h5pyvol.File with the other plugin in place of ours: refused before
    # HDF5 loads it, with info's message.
    code = (
        "import pathlib, h5pyvol\n"
        f"h5pyvol._hdf5.PLUGIN_DIR = pathlib.Path({FOREIGN!r})\n"
        "try:\n"
        f"    h5pyvol.File({str(tmp_path / 'a.h5')!r}, 'w', connector='memory')\n"
        "except h5pyvol.TwoLibhdf5Error as exc:\n"
        "    print('REFUSED', exc)\n"
    )
    proc = run([sys.executable, "-c", code], dict(os.environ), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("REFUSED h5py") and "two different libhdf5 copies" in proc.stdout
    assert os.path.realpath(_hdf5.loaded_libhdf5()) in proc.stdout
    assert "H5Pget_vol_id" not in proc.stderr and not (tmp_path / "a.h5").exists()


@needs_foreign
def test_info_warns_about_another_libhdf5():
    problem = _hdf5.one_libhdf5_problem(next(Path(FOREIGN).glob("libh5pyvol*.so")))
    assert problem and "two different libhdf5 copies" in problem
    assert "Reinstall h5pyvol in this environment" in problem


@needs_foreign
def test_c_plugin_refuses_to_start_next_to_another_libhdf5(tmp_path):
    # HDF5_VOL_CONNECTOR makes h5py's libhdf5 load the other plugin, which
    # maps its own libhdf5: the plugin's file create and open then fail with
    # that explanation, instead of calls into the wrong copy.
    env = vol_env("memory", HDF5_PLUGIN_PATH=FOREIGN)
    proc = run([sys.executable, "-c", "import h5py; h5py.File('a.h5', 'w')"], env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "h5pyvol: refusing to start: two copies of libhdf5 are loaded" in proc.stderr
    assert os.path.realpath(_hdf5.loaded_libhdf5()) in [os.path.realpath(p.strip()) for p in proc.stderr.splitlines()]
    assert "OSError: Unable to synchronously create file (file create failed)" in proc.stderr
    assert "H5Pget_vol_id" not in proc.stderr and not (tmp_path / "a.h5").exists()


@pytest.mark.skipif(HDF5_2, reason="one wheel environment is enough for the offline case")
def test_offline_build_names_the_file_to_put_in_place(tmp_path):
    # An empty cache and an unreachable mirror: the build stops with what to do.
    env = dict(os.environ, H5PYVOL_CACHE=str(tmp_path / "cache"), H5PYVOL_DEBIAN_MIRROR="http://127.0.0.1:9/debian")
    env.pop("HDF5_DIR", None)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "out"), str(repo)],
                          capture_output=True, text=True, env=env, timeout=600)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0 and not list((tmp_path / "out").glob("*.whl"))
    assert "Wheel mode needs the headers of HDF5 1.14.6" in out
    assert f"{tmp_path / 'cache'}/downloads/hdf5_1.14.6+repack.orig.tar.gz" in out and "HDF5_DIR" in out
