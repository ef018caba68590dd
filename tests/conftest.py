"""Shared fixtures: compiling C programs against h5pyvol's HDF5, and running
programs with HDF5_VOL_CONNECTOR pointing at a connector."""

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


def vol_env(spec: str = "memory", **extra: str) -> dict[str, str]:
    """The environment of a process that uses h5pyvol with connector string `spec`."""
    env = dict(os.environ)
    env["HDF5_PLUGIN_PATH"] = str(h5pyvol.PLUGIN_DIR)
    env["HDF5_VOL_CONNECTOR"] = f"h5pyvol {spec}"
    env.update(extra)
    return env


def run(cmd, env, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """Run a program; a crash (signal) fails the test with its output."""
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode < 0:
        pytest.fail(f"{cmd[0]} crashed with signal {-proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_python(code: str, env, cwd=None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-c", code], env, cwd)


@pytest.fixture(scope="session")
def hdf5_flags() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "h5pyvol", "config", "--cflags", "--libs"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


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
