"""Shared fixtures: compiling C programs against h5pyvol's HDF5."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import h5pyvol
from h5pyvol import cli

TESTS = Path(__file__).resolve().parent

# The tests exercise the installed package (with its compiled plugin), never
# the source tree: children must not put the current directory on sys.path.
os.environ["PYTHONSAFEPATH"] = "1"
if Path(h5pyvol.__file__).resolve().parent == TESTS.parent / "h5pyvol":
    raise RuntimeError("tests imported h5pyvol from the source tree; run them with scripts/test.sh (python -P)")


def pytest_ignore_collect(collection_path, config):
    """tests/mpi runs only under mpiexec with --with-mpi, tests/wheels only in
    the wheel environments and the distribution check (scripts/test.sh runs
    each of those stages)."""
    if collection_path.parent != TESTS:
        return None
    if collection_path.name == "mpi":
        return not config.getoption("with_mpi", default=False)
    if collection_path.name == "wheels":
        in_wheel_mode = getattr(cli._build_config(), "MODE", None) == "wheel"
        return not (in_wheel_mode or os.environ.get("H5PYVOL_DIST_DIR"))
    return None


@pytest.fixture(scope="session")
def hdf5_flags() -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "h5pyvol", "config", "--cflags", "--libs"], capture_output=True,
                          text=True)
    if proc.returncode != 0 and getattr(cli._build_config(), "MODE", "") == "wheel":
        # An HDF5 2.x wheel: h5pyvol has no headers C programs can use (its config says why).
        pytest.skip(proc.stderr.strip().splitlines()[0])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.fixture(scope="session")
def compile_c(tmp_path_factory, hdf5_flags):
    """Compile tests/c/NAME.c against h5pyvol's HDF5 (warnings are errors)."""
    built: dict[str, Path] = {}

    def build(name: str, extra: tuple[str, ...] = ()) -> Path:
        key = name + " ".join(extra)
        if key not in built:
            out = tmp_path_factory.mktemp("c") / name
            subprocess.run(
                ["cc", "-Wall", "-Wextra", "-Werror", "-g", "-o", str(out), str(TESTS / "c" / f"{name}.c"),
                 *extra, *hdf5_flags],
                check=True,
            )
            built[key] = out
        return built[key]

    return build


@pytest.fixture(scope="session")
def hdf5_prefix() -> Path:
    assert cli._build_config() is not None, "h5pyvol is not built"
    return Path(cli._build_config().HDF5_DIR)
