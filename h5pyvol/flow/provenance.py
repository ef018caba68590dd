"""Provenance: the record of what produced an output.

Every workflow run leaves a record, the group ``/h5pyvol_flow/runNNN``, whose
attributes hold the config (file and text), each component's identity (class,
class version, parameters, code hash: the SHA-256 of the module that defines
the class; for the generator also the input's identity and the bounds), a run
id, the reuse plan, what each component read and wrote with the version
stamps of its inputs (``access``, see `reuse`), the versions of the software,
the chunk and row counts (updated at each checkpoint while it runs), the
status and the time profile. Its dataset ``slices`` holds the source slice of
every chunk, so a later run can go over the same chunks without its generator.
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
import uuid
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
    lines = source.splitlines(keepends=True)
    kept = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name != cls.__name__:
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        kept.append("".join(lines[first - 1: node.end_lineno]))
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


def input_identity(input_filename: str | None, output_filename: str) -> dict:
    """What the generator reads besides its own code and the output: the input
    file (path, size, mtime). When the input is the output itself (the second
    config of a sequence), what it reads there has version stamps instead."""
    if input_filename is not None and input_filename == output_filename:
        return {"input": "the output"}
    ident: dict[str, Any] = {"input": input_filename}
    if input_filename and "://" not in input_filename and os.path.exists(input_filename):
        st = os.stat(input_filename)
        ident.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    return ident


def versions() -> dict:
    import h5pyvol

    return {"h5pyvol": h5pyvol.__version__, "h5py": h5py.version.version, "hdf5": h5py.version.hdf5_version,
            "numpy": np.__version__, "python": platform.python_version()}


def _index(name: str) -> int:
    return int(name[3:]) if name.startswith("run") and name[3:].isdigit() else -1


def past_runs(f: h5py.File) -> list[dict]:
    """The finished run records of `f`, oldest first: name, components, access, run id, slices."""
    if GROUP not in f:
        return []
    out = []
    for name in sorted(f[GROUP], key=_index):
        rec = f[GROUP][name]
        attrs = rec.attrs
        if attrs.get("status") != "finished":
            continue
        try:
            entry = {"name": name, "components": json.loads(attrs["components"]),
                     "access": json.loads(attrs["access"]) if "access" in attrs else None,
                     "run_id": str(attrs.get("run_id", ""))}
        except (KeyError, ValueError):
            continue
        entry["slices"] = rec["slices"] if "slices" in rec else None
        out.append(entry)
    return out


def start_record(f: h5py.File, config_file: str, config_text: str, components: list[dict], ranks: int,
                 plan_json: str) -> tuple[str, str]:
    """A new record (status running); returns its name and run id."""
    group = f.require_group(GROUP)
    name = f"run{max([_index(n) for n in group] + [-1]) + 1:03d}"
    rec = group.create_group(name)
    run_id = uuid.uuid4().hex[:16]
    rec.attrs.update({
        "config_file": os.path.abspath(config_file), "config": config_text, "components": json.dumps(components),
        "versions": json.dumps(versions()), "ranks": ranks, "status": "running", "run_id": run_id,
        "plan": plan_json, "chunks": 0, "rows": 0, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    for comp in components:
        rec.attrs[f"code_hash:{comp['name']}"] = comp["code_hash"]
    return name, run_id


def update_record(f: h5py.File, name: str, **attrs: Any) -> None:
    f[GROUP][name].attrs.update(attrs)


def finish_record(f: h5py.File, name: str, slices: np.ndarray, access: dict, **attrs: Any) -> None:
    rec = f[GROUP][name]
    if "slices" in rec:
        del rec["slices"]
    rec.create_dataset("slices", data=np.asarray(slices, dtype=np.int64).reshape(-1, 2))
    rec.attrs.update({**attrs, "access": json.dumps(access), "status": "finished",
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
