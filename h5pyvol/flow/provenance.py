"""Provenance and reuse: what produced an output, and whether it may be reused.

Every workflow run leaves a record, the group ``/h5pyvol_flow/runNNN``, whose
attributes hold the config (file and text), each component's class, class
version, parameters and code hash (the SHA-256 of the module that defines the
class), the input's identity, the versions of the software, the chunk count,
the status and the time profile.

A later run of a workflow reuses a finished record instead of running again
when every component matches: same class, class version, parameters and
input, and the same code hash, or one the class lists in ``equivalent_hashes``
(its author's statement that older code gave the same output).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import platform
import sys
import time
from typing import Any

import h5py
import numpy as np

GROUP = "h5pyvol_flow"


def code_hash(cls: type) -> str:
    """SHA-256 of the code that makes `cls` behave as it does: the module's
    source without the other classes it defines (so editing one class of a
    module leaves the others' hashes alone; helpers and imports count)."""
    module = sys.modules.get(cls.__module__)
    try:
        source = inspect.getsource(module)
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        try:
            return hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()
        except (OSError, TypeError):
            return hashlib.sha256(cls.__qualname__.encode()).hexdigest()
    kept = [ast.get_source_segment(source, node) or ast.dump(node) for node in tree.body
            if not (isinstance(node, ast.ClassDef) and node.name != cls.__name__)]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def component_record(role: str, name: str, cls: type, params: dict, extra: dict | None = None) -> dict:
    return {"role": role, "name": name, "classname": cls.__name__, "module": cls.__module__,
            "class_version": str(getattr(cls, "class_version", "0.0.0")), "params": _jsonable(params),
            "code_hash": code_hash(cls), "equivalent_hashes": [str(h) for h in getattr(cls, "equivalent_hashes", [])],
            **(extra or {})}


def input_identity(input_filename: str | None, previous_run: str | None) -> dict:
    """What the run reads besides its own code: the input file (path, size,
    mtime) and, when it reads the output itself, the run that wrote it."""
    ident: dict[str, Any] = {"input": input_filename, "previous_run": previous_run}
    if input_filename and "://" not in input_filename and os.path.exists(input_filename):
        st = os.stat(input_filename)
        ident.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    return ident


def versions() -> dict:
    import h5pyvol

    return {"h5pyvol": h5pyvol.__version__, "h5py": h5py.version.version, "hdf5": h5py.version.hdf5_version,
            "numpy": np.__version__, "python": platform.python_version()}


def _matches(old: dict, new: dict) -> bool:
    same_code = old["code_hash"] == new["code_hash"] or old["code_hash"] in new.get("equivalent_hashes", [])
    keys = ("role", "name", "classname", "class_version", "params")
    return same_code and all(old.get(k) == new.get(k) for k in keys)


def find_reusable(f: h5py.File, components: list[dict], ident: dict, bounds: dict) -> str | None:
    """The name of a finished run record that matches, or None."""
    if GROUP not in f:
        return None
    for name in sorted(f[GROUP], reverse=True):
        attrs = f[GROUP][name].attrs
        if attrs.get("status") != "finished":
            continue
        try:
            old = json.loads(attrs["components"])
            old_ident = json.loads(attrs["input_identity"])
            old_bounds = json.loads(attrs["bounds"])
        except (KeyError, ValueError):
            continue
        if old_ident != ident or old_bounds != bounds or len(old) != len(components):
            continue
        if all(_matches(o, n) for o, n in zip(old, components, strict=True)):
            return name
    return None


def start_record(f: h5py.File, config_file: str, config_text: str, components: list[dict], ident: dict,
                 bounds: dict, ranks: int) -> str:
    group = f.require_group(GROUP)
    name = f"run{len(group):03d}"
    rec = group.create_group(name)
    rec.attrs.update({
        "config_file": os.path.abspath(config_file), "config": config_text, "components": json.dumps(components),
        "input_identity": json.dumps(ident), "bounds": json.dumps(bounds), "versions": json.dumps(versions()),
        "ranks": ranks, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    for comp in components:
        rec.attrs[f"code_hash:{comp['name']}"] = comp["code_hash"]
    return name


def finish_record(f: h5py.File, name: str, **attrs: Any) -> None:
    rec = f[GROUP][name]
    rec.attrs.update({**attrs, "status": "finished", "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
