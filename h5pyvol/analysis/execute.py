"""`execute(map, combine, inputs, query, engine)`: analysis shipping end to end.

Owns one call: resolving map, combine and inputs (or finding the inputs in
a map script's syntax tree), planning and pruning shards, choosing the Lua
path inside Ceph's OSDs for built-in reductions on RADOS, handing the rest
to an engine, combining, and the `Result` with its statistics.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import h5py

from .. import shards as shards_of
from ..connector import Shard
from . import osd
from .engines import Engine, get_engine
from .plan import Task, Worker, check_alignment, place, plan
from .query import Query, as_query
from .reductions import Reduction
from .scripts import dataset_references
from .sources import Input, live, open_input_file, resolve
from .tasks import Job, Outcome, Partial, callable_spec, combine_function


class MapError(RuntimeError):
    """A map raised: the message names the shard and holds the traceback."""

    def __init__(self, message: str, shard: int):
        super().__init__(message)
        self.shard = shard

    def __reduce__(self):  # travels between MPI ranks intact
        return (type(self), (str(self), self.shard))


@dataclass
class Result:
    """What `execute` returns: combine's `value` and the call's `stats`."""

    value: Any
    stats: dict = field(default_factory=dict)
    """``engine``, ``shards`` (of the first input), ``shards_skipped`` (pruned
    by zone maps or fill values before any byte moved), ``shards_read``,
    ``lua_shards`` (reduced inside Ceph OSDs), ``shards_direct`` (whose
    chunk a worker read straight from storage, without HDF5), ``bytes_read`` (element bytes
    the maps read from storage, wherever they ran), ``bytes_fetched`` (of
    those, what travelled from storage to a client process),
    ``bytes_returned`` (serialized map results that travelled back to the
    caller), ``seconds``, ``phases`` (``plan``, ``map``, ``combine``
    seconds), ``read_seconds`` and ``map_seconds`` (summed over maps), and
    ``workers`` (tasks per worker)."""


def associative(fn):
    """Declare a combine function associative: partial results may then be
    combined on each worker first (a tree combine)."""
    fn.associative = True
    return fn


def _first_shards(first: Input) -> list[Shard]:
    if first.array is not None:
        whole = tuple(slice(0, n) for n in first.shape)
        return [Shard(whole, first.array.nbytes, None, {})]
    return shards_of(first.dataset)


def _flush_writable(inputs: dict[str, Input]) -> None:
    """Make what the caller wrote visible to workers that reopen the files."""
    seen = set()
    for inp in inputs.values():
        ds = inp.dataset
        if ds is not None and id(ds.file.id) not in seen:
            seen.add(id(ds.file.id))
            if ds.file.mode == "r+":
                ds.file.flush()


def _check_query(query: Query | None, inputs: dict[str, Input]) -> None:
    if query is None:
        return
    unknown = {n for n in query.value_inputs() if n is not None and n not in inputs}
    if unknown:
        raise ValueError(f"the query compares values of {sorted(unknown)}, which are not inputs "
                         f"({', '.join(inputs)})")


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            width = 30
            filled = width * self.done // self.total
            sys.stderr.write(f"\r[h5pyvol.analysis] [{'#' * filled}{'.' * (width - filled)}] "
                             f"{self.done}/{self.total} shards")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def execute(map: Any, combine: Any = None, inputs: Any = None, query: Query | str | dict | None = None,
            engine: str | Engine = "processes", *, associative: bool | None = None, timeout: float | None = None,
            file: Any = None, lua: bool | str = "auto", progress: bool = False, **options: Any) -> Result:
    """Run `map` next to the data of every shard of the first input, then
    `combine` on the list of their results (in shard order); return a
    `Result`.

    - `map(block)`: a function, source text defining one, or a built-in
      reduction (`h5pyvol.analysis.Sum()`...). ``block[name]`` is input
      `name` over the shard's selection, ``block.selection`` its slices,
      ``block.mask`` the query's mask or None, ``block.values()`` the
      selected values of the first input.
    - `combine(list)`: a function or source text; None gives the list itself
      (or a reduction's own combine). With `associative` (or a function
      marked with `associative`), workers combine their own results first.
    - `inputs`: names to h5py Datasets, ``(file URL or name, dataset path)``
      pairs or numpy arrays; the first one's shards drive the maps. Omitted
      for a map script: its ``block["/path"]`` references are found without
      running it, in `file` (an h5py File or URL).
    - `query`: a `Q` query (or its JSON); shards whose zone maps prove it
      cannot match are skipped before any byte moves.
    - `engine`: ``"serial"``, ``"processes"`` (default; ``workers=N``),
      ``"mpi"`` (``comm=``; every rank calls execute), ``"dask"``
      (``client=`` or ``address=``), or an `Engine`.
    - `timeout`: seconds for the whole call; maps still running are interrupted.
    - `lua`: for a built-in reduction on RADOS, ``"auto"`` runs it inside the
      OSDs where it can, True insists (ValueError says why it cannot), False
      never does.
    """
    t_start = time.perf_counter()
    deadline = None if timeout is None else time.time() + float(timeout)
    eng = get_engine(engine, **options)
    if eng.collective:
        eng.start_call()
        if eng.rank != 0:
            return eng.follow(deadline)
    try:
        result = _execute(map, combine, inputs, as_query(query), eng, associative, deadline, file, lua, progress,
                          t_start)
    except BaseException as exc:
        if eng.collective:
            eng.abort(exc)
        raise
    if eng.collective:
        eng.finish(("result", result))
    return result


def _execute(map_, combine, inputs, query, eng: Engine, assoc, deadline, file, lua, progress, t_start) -> Result:
    opened: list[h5py.File] = []
    try:
        if inputs is None:
            if not isinstance(map_, str):
                raise TypeError("inputs may be omitted only when map is source text (its datasets are found in it)")
            if file is None:
                raise TypeError("a map script without inputs needs file= (an h5py File or a file URL)")
            f = open_input_file(file)
            if f is not file:
                opened.append(f)
            inputs = {path: (f, path) for path in dataset_references(map_)}
        resolved = resolve(inputs, opened)
        check_alignment(resolved)
        _check_query(query, resolved)
        _flush_writable(resolved)
        first = resolved[next(iter(resolved))]
        reduction = map_ if isinstance(map_, Reduction) else None
        if combine is None and reduction is not None:
            combine = reduction
        map_spec = callable_spec(map_, "map")
        combine_spec = callable_spec(combine, "combine") if combine is not None else None
        combine_fn = combine_function(combine_spec) if combine_spec else None
        if assoc is None:
            if isinstance(combine, str) and combine_fn is not None:
                assoc = bool(getattr(combine_fn, "associative", False))
            else:
                assoc = reduction is not None and combine is reduction or bool(getattr(combine, "associative", False))
        shards = _first_shards(first)
        tasks, skipped = plan(shards, first, query)
        job = Job(uuid.uuid4().hex, resolved, map_spec, query, combine_spec if assoc else None, deadline)
        t_planned = time.perf_counter()

        progress_bar = _Progress(len(tasks), progress)
        outcomes: list[Outcome] = []

        def report(out: Outcome) -> None:
            outcomes.append(out)
            progress_bar.step()

        osd_tasks, tasks = osd.split(tasks, first, reduction, query, lua,
                                     eng.hosts() if lua == "auto" and reduction is not None else ())
        partials: list[Partial] = []
        if osd_tasks:
            osd_outcomes = osd.run(first, reduction, query, osd_tasks, deadline)
            for out in osd_outcomes:
                report(out)
        placed: dict[Worker, list[Task]] = {}
        if tasks:
            # Shards of files living in this process only (memory) need no workers started.
            here = all(t.shard.location.get("process") == eng.caller.pid for t in tasks)
            workers = [] if here and not eng.collective else eng.workers()
            for task, worker in zip(tasks, place([t.shard for t in tasks], workers, eng.caller), strict=True):
                placed.setdefault(worker, []).append(task)
            with live(job.call_id, resolved):
                partials = eng.run(job, placed, report)
        failures = sorted((o for o in outcomes if o.error is not None), key=lambda o: o.index)
        if failures:
            raise MapError(failures[0].error, failures[0].index)
        t_mapped = time.perf_counter()

        outcomes.sort(key=lambda o: o.index)
        in_osds = {t.index for t in osd_tasks}
        lua_values = [o.value for o in outcomes if o.index in in_osds]
        if assoc:
            values = [p.value for p in partials] + lua_values
        else:
            values = [o.value for o in outcomes]
        value = combine_fn(values) if combine_fn is not None else values
        if reduction is not None:
            value = reduction.finish(value)
        t_end = time.perf_counter()
    finally:
        for f in opened:
            f.close()
    stats = {
        "engine": eng.name,
        "shards": len(shards),
        "shards_skipped": skipped,
        "shards_read": len(outcomes),
        "lua_shards": len(osd_tasks),
        "shards_direct": sum(o.direct for o in outcomes),
        "bytes_read": sum(o.bytes_read for o in outcomes),
        "bytes_fetched": sum(o.bytes_read for o in outcomes if o.index not in in_osds),
        "bytes_returned": sum(o.bytes_returned for o in outcomes) + sum(p.bytes_returned for p in partials),
        "seconds": t_end - t_start,
        "phases": {"plan": t_planned - t_start, "map": t_mapped - t_planned, "combine": t_end - t_mapped},
        "read_seconds": sum(o.read_seconds for o in outcomes),
        "map_seconds": sum(o.map_seconds for o in outcomes),
        "workers": dict(Counter(o.worker for o in outcomes)),
    }
    return Result(value, stats)


__all__ = ["MapError", "Result", "associative", "execute"]
