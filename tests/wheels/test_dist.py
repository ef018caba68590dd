"""The distribution: `python -m build` makes an sdist and, from it, a wheel that
installs on another machine (scripts/wheel-envs.sh builds both into
H5PYVOL_DIST_DIR, installs the wheel into a fresh virtualenv elsewhere, and
runs this file there; elsewhere it is skipped)."""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5pyvol

DIST = Path(os.environ["H5PYVOL_DIST_DIR"]) if os.environ.get("H5PYVOL_DIST_DIR") else None
pytestmark = pytest.mark.skipif(DIST is None, reason="H5PYVOL_DIST_DIR names no built distribution")
REPO = Path(__file__).resolve().parents[2]


def only(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_sdist_holds_what_a_build_needs():
    names = tarfile.open(only("h5pyvol_connector-*.tar.gz")).getnames()
    top = names[0].split("/")[0]
    for needed in ("pyproject.toml", "CMakeLists.txt", "cmake/HDF5Headers.cmake", "build_support/h5py_wheel.py",
                   "csrc/plugin.c", "csrc/build_config.py.in", "h5pyvol/__init__.py", "connectors/memory.py",
                   "README.md"):
        assert f"{top}/{needed}" in names, needed
    assert not [n for n in names if "/.venv/" in n or "__pycache__" in n or n.endswith(".so")]


def test_wheel_pins_the_h5py_it_links_and_keeps_the_import_name():
    wheel = zipfile.ZipFile(only("h5pyvol_connector-*.whl"))
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: h5pyvol-connector" in meta
    pin = re.search(r"^Requires-Dist: h5py==([0-9.]+)$", meta, re.M)
    assert pin and pin.group(1) == h5py.version.version
    assert "h5pyvol/plugin/libh5pyvol.so" in wheel.namelist()
    assert "h5pyvol/connectors/memory.py" in wheel.namelist()


def test_wheel_has_no_build_machine_paths():
    # The source tree, the build folders, pip's and build's temporary
    # environments and the header cache must not leak into any file.
    forbidden = [re.escape(str(REPO).encode()), re.escape(str(Path.home() / ".cache").encode()),
                 rb"/tmp/tmp\w+/", rb"/tmp/build-env-\w+", rb"/tmp/pip-\w+"]
    wheel = zipfile.ZipFile(only("h5pyvol_connector-*.whl"))
    leaks = {name: [m.group().decode() for f in forbidden for m in re.finditer(f, wheel.read(name))]
             for name in wheel.namelist()}
    assert not {k: v for k, v in leaks.items() if v}


def test_installed_wheel_serves_a_memory_file(tmp_path):
    assert not Path(h5pyvol.__file__).is_relative_to(REPO)
    with h5pyvol.File(str(tmp_path / "a.h5"), "w", connector="memory") as f:
        f["x"] = np.arange(6.0)
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        assert f["x"][-1] == 5.0
