"""Helpers for tests that run programs: the environment that selects h5pyvol,
and running a child process that must not crash."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import h5pyvol


def vol_env(spec: str = "memory", **extra: str) -> dict[str, str]:
    """The environment of a process that uses h5pyvol with connector string `spec`."""
    env = dict(os.environ)
    env["HDF5_PLUGIN_PATH"] = str(h5pyvol.PLUGIN_DIR)
    env["HDF5_VOL_CONNECTOR"] = f"h5pyvol {spec}"
    env.update(extra)
    return env


# A program started in the background by a non-interactive shell (or by
# nohup) inherits SIGINT ignored, and so do its children: Python leaves an
# ignored SIGINT alone, and so does h5pyvol in a C program. Tests that send
# SIGINT start their program through this, as from a terminal.
WITH_DEFAULT_SIGINT = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                       "os.execv(sys.argv[1], sys.argv[1:])"]


def native_env() -> dict[str, str]:
    """The same environment with no connector selected: native HDF5."""
    env = vol_env()
    del env["HDF5_VOL_CONNECTOR"]
    return env


def run(cmd, env, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """Run a program; a crash (signal) fails the test with its output."""
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode < 0:
        pytest.fail(f"{cmd[0]} crashed with signal {-proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_python(code: str, env, cwd=None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-c", code], env, cwd)
