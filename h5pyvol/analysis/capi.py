"""The C entry point's Python side: ``H5ASexecute(file_id, map, combine, &json)``.

Owns running the scripts a C program passes on the file it has open (the
plugin's file optional operation calls `execute_file` with the file id) and
turning combine's value into JSON (`to_json`), which the command line uses
too. Inputs are found in the map script (``block["/path"]``); the engine is
``H5PYVOL_ANALYSIS_ENGINE`` (default ``processes``; shards of memory files
run in the calling process whatever the engine).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """`value` as plain JSON values: numpy arrays become lists, numpy scalars
    numbers, tuples lists, and NaN or infinities null."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"combine returned a {type(value).__name__}, which has no JSON form")


def to_json(value: Any) -> str:
    return json.dumps(jsonable(value), allow_nan=False)


def execute_file(file_id: int, map_script: str, combine_script: str | None) -> str:
    """Run `map_script` and `combine_script` on the file behind HDF5 id
    `file_id` (a C program's; its reference is left as it was) and return
    combine's value as JSON."""
    import h5py
    from h5py import h5i

    from .execute import execute

    fid = h5py.h5f.FileID(file_id)
    h5i.inc_ref(fid)  # the FileID drops one reference when it is freed: the program's stays
    f = h5py.File(fid)
    engine = os.environ.get("H5PYVOL_ANALYSIS_ENGINE", "processes")
    result = execute(map_script, combine_script or None, file=f, engine=engine)
    return to_json(result.value)
