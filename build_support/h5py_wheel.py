"""Wheel mode at build time: which h5py wheel's libhdf5 the plugin links.

Owns the one answer to "which h5py will this h5pyvol run with?", asked twice
during a build:

- by scikit-build-core, as a dynamic-metadata provider for ``dependencies``
  (``[[tool.dynamic-metadata]]`` in pyproject.toml): a wheel built
  against h5py X's bundled libhdf5 requires ``h5py==X``, since the plugin needs
  that very library file;
- by CMake (``python build_support/h5py_wheel.py``), which reads ``KEY=VALUE``
  lines naming the library to link and where it lies relative to the plugin.

The h5py looked for first is the one of the environment being installed into:
pip runs a build with an isolated ``sys.path`` on the target interpreter, and
that interpreter without pip's PYTHONPATH sees the target's site-packages.
Next comes the h5py of the build environment itself (``python -m build``
installs one from the build requirements). With HDF5_DIR set nothing is
looked for: that is the from-source mode, which links that HDF5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

# Run in a child interpreter: where h5py is, and what its wheel bundles.
_PROBE = r"""
import glob, json, os, sys
try:
    import h5py
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
pkg = os.path.dirname(os.path.abspath(h5py.__file__))
libs = os.path.join(os.path.dirname(pkg), "h5py.libs")
found = sorted(p for p in glob.glob(os.path.join(libs, "libhdf5-*.so*")))
print(json.dumps({
    "h5py_version": h5py.version.version,
    "hdf5_version": h5py.version.hdf5_version,
    "h5py_dir": pkg,
    "libhdf5": found[0] if found else "",
    "python": sys.executable,
}))
"""


def _probe(python: str, env: Mapping[str, str]) -> dict[str, Any]:
    proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, env=dict(env), check=False)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": (proc.stderr or proc.stdout).strip()[-500:]}


def _target_env() -> dict[str, str]:
    """This process's environment without pip's build isolation."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME"):
        env.pop(var, None)
    return env


def find(python: str | None = None) -> dict[str, Any]:
    """The h5py wheel to link: keys h5py_version, hdf5_version, libhdf5 (the
    bundled library's path), h5py_dir, python and where ("target" or "build").

    Raises LookupError with a message for the user when there is none."""
    python = python or sys.executable
    tried = []
    for where, env in (("target", _target_env()), ("build", os.environ)):
        info = _probe(python, env)
        if "error" in info:
            tried.append(f"{where} environment: no h5py ({info['error']})")
            continue
        if not info["libhdf5"]:
            raise LookupError(
                f"h5py {info['h5py_version']} in {info['h5py_dir']} was not installed from a wheel "
                "(it has no h5py.libs/libhdf5-*.so): it uses an HDF5 of its own. Set HDF5_DIR to the "
                "prefix of that HDF5 (>= 1.14) and install again."
            )
        info["where"] = where
        return info
    raise LookupError(
        "h5pyvol links the libhdf5 of an h5py wheel or the HDF5 named by HDF5_DIR, and found neither "
        f"({'; '.join(tried)}). Either `pip install h5py` first, or set HDF5_DIR to the prefix of an "
        "HDF5 >= 1.14 (scripts/bootstrap.sh builds one)."
    )


def dynamic_metadata(settings: Mapping[str, Any], project: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """dynamic-metadata hook: ``dependencies``, with h5py pinned in wheel mode
    (`settings["base"]` lists the others)."""
    base = list(settings.get("base", []))
    if os.environ.get("HDF5_DIR"):
        return {"dependencies": [*base, "h5py>=3.10"]}
    try:
        info = find()
    except LookupError:
        return {"dependencies": [*base, "h5py>=3.10"]}  # CMake stops the build with the message
    return {"dependencies": [*base, f"h5py=={info['h5py_version']}"]}


def main() -> int:
    """For CMake: KEY=VALUE lines, or the message on stderr and exit status 1."""
    try:
        info = find(sys.argv[1] if len(sys.argv) > 1 else None)
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return 1
    for key in ("h5py_version", "hdf5_version", "libhdf5", "h5py_dir", "where"):
        print(f"{key}={info[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
