"""The Lua compiler: a query plus a built-in reduction, as a script for Ceph's ``lua`` object class.

Owns generating, for one RADOS chunk object, a Lua 5.3 script that reads
only the chunk's in-extent element runs (``objclass.read``), decodes them
with ``string.unpack`` several values per call, keeps the values the query
selects and reduces them exactly as `h5pyvol.analysis.reductions` does, and
appends the partial result, packed in binary, to the output. Also decoding
that output, saying why a call cannot be compiled (`unsupported`), and
running the scripts through ``ioctx.execute(object, "lua", "eval_json")``,
several at once (`run_in_osds`).

Only this generated code runs inside the OSD: object-level predicates
(attributes, link names) are folded to constants before generation, and
every constant is printed by this module, never taken as text from users.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .plan import Task
from .query import Query, _AttrName, _AttrValue, _Combine, _LinkName, _Not, _Value
from .reductions import LUA_DTYPES, Count, Histogram, Max, Mean, Min, Reduction, Sum
from .sources import Input
from .tasks import Outcome, worker_name

UNPACK_GROUP = 32
"""Values decoded per string.unpack call (fewer calls into C)."""
MAX_BINS = 65536
NEAR_EDGE = 1e-6
"""How close to a whole bin number a histogram value's scaled position must
be for the script to check it against the edges (rounding errors are below
1e-10 there, for up to MAX_BINS bins)."""
HANDLER = "h5pyvol_reduce"
INFLIGHT = 8

_FORMATS = {"i1": "i1", "i2": "i2", "i4": "i4", "i8": "i8", "u1": "I1", "u2": "I2", "u4": "I4", "f4": "f", "f8": "d"}


def _dtype_key(dtype: np.dtype) -> str | None:
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and np.little_endian is False):
        return None
    key = f"{dtype.kind}{dtype.itemsize}"
    return key if key in LUA_DTYPES and not dtype.shape and dtype.names is None else None


def unsupported(first: Input, reduction: Reduction, query: Query | None) -> str | None:
    """Why this cannot be compiled, or None."""
    if _dtype_key(first.dtype) is None:
        return f"Lua cannot decode elements of type {first.dtype} (little-endian i1-i8, u1-u4, f4, f8 only)"
    if reduction.input not in (None, first.name):
        return "the reduction is over another input than the first"
    if isinstance(reduction, Histogram) and reduction.bins > MAX_BINS:
        return f"a histogram of more than {MAX_BINS} bins"
    for leaf in query.leaves() if query is not None else []:
        if isinstance(leaf, _Value):
            if leaf.input not in (None, first.name):
                return "the query compares values of another input"
            if any(isinstance(a, str) for a in leaf.args):
                return "the query compares numbers with strings"
    return None


# ---------------------------------------------------------------- generation


def _number(x: Any, integer: bool) -> str:
    """A Lua numeral for a constant (exact for float64)."""
    if isinstance(x, bool):
        x = int(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "(0.0/0.0)"
        if math.isinf(x):
            return "math.huge" if x > 0 else "(-math.huge)"
        if integer and x.is_integer() and abs(x) < 2**63:
            return f"{x!r}"  # a float literal still compares exactly with integers
        return repr(x) if "e" in repr(x) or "." in repr(x) else f"{x!r}.0"
    return str(int(x))


def _predicate(q: Query, first: Input, integer: bool) -> str:
    """The query as a Lua boolean expression of ``v``."""
    if isinstance(q, _Value):
        if q.op == "between":
            return f"(v >= {_number(q.args[0], integer)} and v <= {_number(q.args[1], integer)})"
        op = "~=" if q.op == "!=" else q.op
        return f"(v {op} {_number(q.args[0], integer)})"
    if isinstance(q, _AttrName | _AttrValue | _LinkName):
        return "true" if q.mask(None, first.attrs, first.path) else "false"
    if isinstance(q, _Not):
        return f"(not {_predicate(q.arg, first, integer)})"
    if isinstance(q, _Combine):
        return "(" + f" {q.kind} ".join(_predicate(a, first, integer) for a in q.args) + ")"
    raise TypeError(f"cannot compile {q!r}")


def _accumulate(reduction: Reduction, integer: bool) -> tuple[str, str, str]:
    """(declarations, statement for one selected ``v``, output expression)."""
    zero = "0" if integer else "0.0"
    value_fmt = "i8" if integer else "d"
    if isinstance(reduction, Count):
        return "local n = 0", "n = n + 1", 'string.pack("<i8", n)'
    if isinstance(reduction, Sum):
        return f"local s = {zero}", "s = s + v", f'string.pack("<{value_fmt}", s)'
    if isinstance(reduction, Mean):
        return (f"local s, n = {zero}, 0", "s = s + v; n = n + 1", f'string.pack("<{value_fmt}i8", s, n)')
    if isinstance(reduction, Min | Max):
        better = "<" if isinstance(reduction, Min) else ">"
        nan = "if v ~= v then nan = true elseif " if not integer else "if "
        return (f"local best, has, nan = {zero}, false, false",
                f"{nan}not has or v {better} best then best = v; has = true end",
                f'string.pack("<B{value_fmt}", (has or nan) and 1 or 0, nan and (0.0/0.0) or best)')
    if isinstance(reduction, Histogram):
        lo, hi = reduction.range
        edges = ", ".join(_number(float(e), False) for e in reduction.edges)
        bins = reduction.bins
        decl = f"local H = {{}}\n  for b = 1, {bins} do H[b] = 0 end\n  local E = {{{edges}}}"
        # numpy's bin of v is (v - low) / (high - low) * bins truncated, then
        # corrected against the edges. Here the position f may differ from
        # numpy's by a few ulps (one multiplication), which changes the bin
        # only next to an edge: within NEAR_EDGE of a whole number, v is
        # compared with the edges as numpy does; elsewhere f's whole part is the bin.
        scale = _number(bins / (hi - lo), False)
        position = f"v * {scale}" if lo == 0.0 else f"(v - {_number(lo, False)}) * {scale}"
        step = (f"if v >= {_number(lo, False)} and v <= {_number(hi, False)} then "
                f"local f = {position}; "
                "local i = (f // 1) | 0; local r = f - i; "
                f"if r < {NEAR_EDGE!r} or r > {1 - NEAR_EDGE!r} then "
                f"if i >= {bins} then i = {bins - 1} end; "
                f"if v < E[i + 1] then i = i - 1 elseif i ~= {bins - 1} and v >= E[i + 2] then i = i + 1 end end; "
                "H[i + 1] = H[i + 1] + 1 end")
        out = f'string.pack("<" .. string.rep("i8", {reduction.bins}), table.unpack(H, 1, {reduction.bins}))'
        return decl, step, out
    raise TypeError(f"no Lua for {reduction!r}")


def runs(chunk: tuple[int, ...], extent: tuple[int, ...]) -> list[tuple[int, int]]:
    """(first element, element count) of the contiguous runs that hold the
    in-extent part (`extent`, from the origin) of a padded C-order `chunk`."""
    if not chunk:
        return [(0, 1)]
    if any(e == 0 for e in extent):
        return []
    j = len(chunk) - 1
    while j > 0 and extent[j] == chunk[j]:
        j -= 1
    inner = math.prod(chunk[j + 1:])
    length = extent[j] * inner
    strides = [math.prod(chunk[d + 1:]) for d in range(j)]
    return [(sum(i * s for i, s in zip(index, strides, strict=True)), length)
            for index in itertools.product(*(range(extent[d]) for d in range(j)))]


def compile_script(reduction: Reduction, query: Query | None, first: Input, chunk: tuple[int, ...],
                   extent: tuple[int, ...]) -> str:
    """The Lua script that reduces one chunk object."""
    key = _dtype_key(first.dtype)
    if key is None:
        raise ValueError(unsupported(first, reduction, query))
    integer = key[0] in "iu"
    fmt, size = _FORMATS[key], first.dtype.itemsize
    pred = _predicate(query, first, integer) if query is not None else "true"
    decl, step, out = _accumulate(reduction, integer)
    body = step if pred == "true" else f"if {pred} then {step} end"
    names = [f"v{k}" for k in range(UNPACK_GROUP)]
    group = "\n".join("        " + re.sub(r"\bv\b", n, body) for n in names)  # no copy into v
    run_list = ", ".join(f"{{{start * size}, {count}}}" for start, count in runs(chunk, extent))
    return f"""-- generated by h5pyvol.analysis.lua: {reduction.name} of one chunk
local unpack = string.unpack
function {HANDLER}(input, output)
  {decl}
  local RUNS = {{{run_list}}}
  local G = "<" .. string.rep("{fmt}", {UNPACK_GROUP})
  for r = 1, #RUNS do
    local off, count = RUNS[r][1], RUNS[r][2]
    local data = objclass.read(off, count * {size}):str()
    if #data < count * {size} then error("chunk object is shorter than its extent") end
    local pos, i, whole = 1, 0, count - count % {UNPACK_GROUP}
    while i < whole do
      local {", ".join(names)}, p = unpack(G, data, pos)
      pos = p
{group}
      i = i + {UNPACK_GROUP}
    end
    while i < count do
      local v, p = unpack("<{fmt}", data, pos)
      pos = p
      {body}
      i = i + 1
    end
  end
  output:append({out})
end
objclass.register({HANDLER})
"""


def decode(reduction: Reduction, integer: bool, data: bytes) -> Any:
    """The partial result (as the reduction's Python map gives it) from a script's output."""
    v = "q" if integer else "d"
    if isinstance(reduction, Count):
        return struct.unpack("<q", data)[0]
    if isinstance(reduction, Sum):
        return struct.unpack(f"<{v}", data)[0]
    if isinstance(reduction, Mean):
        return struct.unpack(f"<{v}q", data)
    if isinstance(reduction, Min | Max):
        has, value = struct.unpack(f"<B{v}", data)
        return value if has else None
    if isinstance(reduction, Histogram):
        return np.frombuffer(data, "<i8").astype(np.int64)
    raise TypeError(f"no Lua for {reduction!r}")


def output_size(reduction: Reduction) -> int:
    return 8 * reduction.bins + 16 if isinstance(reduction, Histogram) else 32


# ---------------------------------------------------------------- running


def ioctx_for(spec: str):
    """The RADOS I/O context (pool and namespace) of the rados connector
    instance for `spec`: the connection the files of that connector use."""
    from h5pyvol import registry

    return registry.load(spec).backend.ioctx


def run_in_osds(first: Input, reduction: Reduction, query: Query | None, tasks: list[Task],
                deadline: float | None) -> list[Outcome]:
    """Run the compiled script on each task's chunk object, `INFLIGHT` at once."""
    import rados

    integer = first.dtype.kind in "iu"
    ioctx = ioctx_for(first.source.spec)
    size = output_size(reduction)
    chunk = first.chunks

    def one(task: Task) -> Outcome:
        if deadline is not None and time.time() > deadline:
            return Outcome(task.index, error=f"timed out before shard {task.index} was sent to its OSD")
        extent = task.shard.shape
        # A chunk the zone map proves matches in full needs no predicate.
        script = compile_script(reduction, None if task.full else query, first, chunk, extent)
        request = json.dumps({"script": script, "handler": HANDLER, "input": ""}).encode()
        t0 = time.perf_counter()
        try:
            ret, data = ioctx.execute(task.shard.key, "lua", "eval_json", request, length=size)
        except rados.Error as exc:
            osds = task.shard.location.get("osds")
            return Outcome(task.index, error=(
                f"the Lua reduction failed inside the OSD for object {task.shard.key!r} (shard {task.index}): "
                f"{exc}; the script's error is in the log of OSD {osds} (is the lua object class loaded? "
                "osd_class_load_list and osd_class_default_list must allow it)"))
        elapsed = time.perf_counter() - t0
        nbytes = sum(count for _, count in runs(chunk, extent)) * first.dtype.itemsize
        return Outcome(task.index, decode(reduction, integer, bytes(data)), bytes_read=nbytes,
                       bytes_returned=len(data), map_seconds=elapsed, worker=f"osd {task.shard.location.get('primary')}"
                       if task.shard.location.get("primary") is not None else worker_name())

    with ThreadPoolExecutor(min(INFLIGHT, len(tasks)) or 1) as pool:
        return list(pool.map(one, tasks))
