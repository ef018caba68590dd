"""Shard planning and placement: which blocks the maps run on, and where.

Owns turning the first input's shards (`h5pyvol.shards`) into `Task`
records, skipping every shard whose zone map (or, for a never-written chunk,
fill value) proves the query cannot match before any byte moves; checking
that the other inputs line up with the first; and the placement rule that
sends each task to a worker:

- a shard whose location names a ``process`` (the memory connector's files
  live in one process) runs in that process: on the worker that is that
  process, else on the caller if it is, else nowhere (`PlacementError`);
- a shard whose location names a ``host`` goes to the workers on that host
  (round-robin among them), and round-robin over all when no worker is there;
- any other shard goes round-robin over all workers.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..connector import Shard
from .query import ALWAYS, NEVER, Query
from .sources import Input


class PlacementError(RuntimeError):
    """No worker of the engine can reach a shard."""


@dataclass(frozen=True)
class Worker:
    """Somewhere a map can run: a name, its host, and its process id when known."""

    name: str
    host: str
    pid: int | None = None


@dataclass(frozen=True)
class Task:
    """One map call: shard number `index` of the first input."""

    index: int
    shard: Shard
    full: bool = False
    """The query surely matches every element (no mask needs computing)."""

    @property
    def selection(self) -> tuple[slice, ...]:
        return self.shard.selection


def check_alignment(inputs: Mapping[str, Input]) -> None:
    """Every input must match the first input's trailing dimensions (as numpy
    broadcasting aligns them): a block takes each input over the last
    dimensions of the shard's selection."""
    first = next(iter(inputs.values()))
    for inp in inputs.values():
        if len(inp.shape) > len(first.shape) or tuple(first.shape[len(first.shape) - len(inp.shape):]) != inp.shape:
            raise ValueError(f"input {inp.name!r} of shape {inp.shape} does not line up with the first input "
                             f"{first.name!r} of shape {first.shape} (its shape must equal the first's trailing "
                             "dimensions)")


def zone_of_shard(shard: Shard, fill) -> dict | None:
    """The zone map to prune `shard` with: its stats, or the fill value of a never-written chunk."""
    if not shard.written:
        if isinstance(fill, bool | int | float):
            return {"min": fill, "max": fill}
        return None
    return shard.stats


def plan(shards: Sequence[Shard], first: Input, query: Query | None) -> tuple[list[Task], int]:
    """The tasks for `shards` of the first input, and how many were skipped."""
    tasks, skipped = [], 0
    exact = first.dtype.kind in "biu"
    link = first.path
    for i, shard in enumerate(shards):
        if shard.size == 0:
            skipped += 1
            continue
        verdict = ALWAYS if query is None else query.prune(zone_of_shard(shard, first.fill), exact, first.attrs, link,
                                                      first.name)
        if verdict == NEVER:
            skipped += 1
            continue
        tasks.append(Task(i, shard, full=verdict == ALWAYS))
    return tasks, skipped


def place(shards: Sequence[Shard], workers: Sequence[Worker], caller: Worker | None = None) -> list[Worker]:
    """The worker each shard goes to (see the module docstring for the rule)."""
    if not workers and caller is None:
        raise PlacementError("the engine has no workers")
    turns: dict[tuple, itertools.count] = {}
    out = []
    for shard in shards:
        loc = shard.location or {}
        host, pid = loc.get("host"), loc.get("process")
        if pid is not None:
            here = [w for w in workers if w.pid == pid and (host is None or w.host == host)]
            if not here and caller is not None and caller.pid == pid and (host is None or caller.host == host):
                here = [caller]
            if not here:
                raise PlacementError(
                    f"shard {_show(shard)} lives only in process {pid} on {host or 'an unknown host'} (a memory "
                    "file), where this engine runs no worker; use engine='serial' in that process")
            candidates = here
        elif host is not None:
            candidates = [w for w in workers if w.host == host] or list(workers) or [caller]
        else:
            candidates = list(workers) or [caller]
        key = tuple(w.name for w in candidates)
        turn = next(turns.setdefault(key, itertools.count()))
        out.append(candidates[turn % len(candidates)])
    return out


def _show(shard: Shard) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in shard.selection) + "]"
