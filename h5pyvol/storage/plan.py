"""Selection to chunk planning: which part of a selection lies in which chunk.

`plan(selection, grid)` (also `Selection.chunk_tasks(grid)`) cuts a selection
into one `ChunkTask` per chunk it touches: the chunk's grid coordinates, where
its elements go in the selection's result array (`outer`), where they are in
the chunk (`local`), and whether the selection covers the whole chunk (then a
write needs no read of the old chunk).

`byte_runs` turns a task's `local` index into the byte ranges of a raw
(unfiltered, row-major) chunk object it needs, when fetching just those is
cheaper than the whole object; `split_runs` cuts runs into parts for parallel
requests. The cost model is one number per backend: what one request costs,
counted in bytes (`request_bytes`).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .grid import ChunkGrid

if TYPE_CHECKING:
    from ..selection import Selection

MAX_RUNS = 1 << 14
"""More distinct byte runs than this in one chunk: read the chunk whole."""


class ChunkTask:
    """The part of a selection inside one chunk."""

    __slots__ = ("cid", "outer", "local", "whole")

    def __init__(self, cid: tuple[int, ...], outer: Any, local: Any, whole: bool):
        self.cid = cid        # chunk grid coordinates
        self.outer = outer    # index into the selection's result array
        self.local = local    # index into the chunk array
        self.whole = whole    # the selection covers every in-extent element of the chunk

    def __repr__(self) -> str:
        return f"ChunkTask(cid={self.cid}, whole={self.whole})"


def _runs_of(local: np.ndarray) -> slice | np.ndarray:
    """A slice for evenly spaced increasing positions, else the positions."""
    if len(local) == 1:
        return slice(int(local[0]), int(local[0]) + 1)
    steps = np.diff(local)
    if steps[0] > 0 and np.all(steps == steps[0]):
        return slice(int(local[0]), int(local[-1]) + 1, int(steps[0]))
    return local


def _slice_entries(i: slice, size: int, n: int) -> list[tuple[int, slice, slice, bool]]:
    """`plan`'s per-dimension entries for a slice, by arithmetic: for each
    chunk (of `n` along a dimension of `size`) the slice touches, its
    coordinate, where its positions are in the slice's result, where they are
    in the chunk, and whether they are all of the chunk's in-extent ones."""
    start, stop, step = i.indices(size)
    count = len(range(start, stop, step))
    entries = []
    if count == 0:
        return entries
    for c in range(start // n, (start + (count - 1) * step) // n + 1):
        lo, hi = c * n, min(c * n + n, size)
        k0 = max(0, -(-(lo - start) // step))  # the first position at or after lo
        k1 = min(count, -(-(hi - start) // step))  # ... at or after hi
        if k1 <= k0:
            continue  # a step wider than a chunk jumps over it
        first = start + k0 * step - lo
        local = slice(first, first + 1) if k1 - k0 == 1 else slice(first, first + (k1 - k0 - 1) * step + 1, step)
        entries.append((c, slice(k0, k1), local, k1 - k0 == hi - lo))
    return entries


def _take(index: tuple) -> tuple:
    """Index a chunk with per-dimension positions (slices or arrays) as an outer product."""
    if all(isinstance(i, slice) for i in index):
        return index
    return np.ix_(*[np.arange(i.start, i.stop, i.step or 1) if isinstance(i, slice) else i for i in index])


def plan(sel: Selection, grid: ChunkGrid) -> list[ChunkTask]:
    """Split a selection by chunk of `grid` (whose shape is the selection's extent).

    Regular selections (and "all") are outer products of per-dimension
    positions, so each chunk gets a box of the result; others go element by
    element through their coordinates."""
    if sel.count == 0:
        return []
    shape, chunks = grid.shape, grid.chunks
    rank = len(shape)
    if rank == 0:
        return [ChunkTask((), Ellipsis, Ellipsis, True)]
    index = sel.index
    outer = sel.kind == "all" or (
        sel.kind == "hyperslab"
        and (all(isinstance(i, slice) for i in index) or all(np.ndim(i) == rank for i in index))
    )
    if outer:
        per_dim = []
        for d, i in enumerate(index):
            if isinstance(i, slice) and (i.step or 1) > 0:
                per_dim.append(_slice_entries(i, shape[d], chunks[d]))
                continue
            pos = np.arange(*i.indices(shape[d]), dtype=np.int64) if isinstance(i, slice) else np.ravel(i)
            cids = pos // chunks[d]
            cuts = np.flatnonzero(np.diff(cids)) + 1
            starts = np.concatenate([[0], cuts])
            stops = np.concatenate([cuts, [len(pos)]])
            entries = []
            for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
                c = int(cids[a])
                inside = min(chunks[d], shape[d] - c * chunks[d])
                entries.append((c, slice(a, b), _runs_of(pos[a:b] - c * chunks[d]), b - a == inside))
            per_dim.append(entries)
        return [
            ChunkTask(
                tuple(e[0] for e in combo),
                tuple(e[1] for e in combo),
                _take(tuple(e[2] for e in combo)),
                all(e[3] for e in combo),
            )
            for combo in itertools.product(*per_dim)
        ]
    coords = sel.coords()
    step = np.asarray(chunks, dtype=np.int64)
    cids = coords // step
    uniq, inverse = np.unique(cids, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    tasks = []
    for g, cid in enumerate(uniq):
        rows = order[bounds[g]: bounds[g + 1]]
        local = coords[rows] - cid * step
        tasks.append(ChunkTask(tuple(int(v) for v in cid), (rows,), tuple(local.T), False))
    return tasks


def merge_runs(offsets: np.ndarray, lengths: np.ndarray, request_bytes: int) -> list[tuple[int, int]]:
    """(offset, length) byte runs (increasing offsets), merged across gaps below `request_bytes`."""
    ends = offsets + lengths
    cut = np.flatnonzero(offsets[1:] - ends[:-1] > request_bytes) + 1
    firsts = np.concatenate([[0], cut])
    lasts = np.concatenate([cut - 1, [len(offsets) - 1]])
    return [(int(offsets[a]), int(ends[b] - offsets[a])) for a, b in zip(firsts.tolist(), lasts.tolist(),
                                                                            strict=True)]


def byte_runs(local: Any, shape: tuple[int, ...], itemsize: int, request_bytes: int) -> list[tuple[int, int]] | None:
    """The byte ranges of a stored raw (unfiltered, row-major) chunk that an
    index into it touches, if fetching just those is cheaper than the whole
    object, counting each request as `request_bytes` more; else None. `local`
    is a `ChunkTask.local`: slices, `np.ix_` arrays or point coordinates."""
    total = math.prod(shape) * itemsize
    if not shape or local is Ellipsis:
        return None
    strides = [math.prod(shape[d + 1:]) * itemsize for d in range(len(shape))]
    # slices and np.ix_ arrays select an outer product; 1-D coordinate arrays (rank > 1) select points
    if all(isinstance(i, slice) or np.ndim(i) == len(shape) for i in local):
        pos = [np.arange(*i.indices(n)) if isinstance(i, slice) else np.unique(np.ravel(i))
               for i, n in zip(local, shape, strict=True)]
        k = len(shape) - 1
        while k >= 0 and len(pos[k]) == shape[k]:  # trailing whole dimensions are contiguous
            k -= 1
        if k < 0:
            return None
        pk = pos[k]
        breaks = np.flatnonzero(np.diff(pk) != 1) + 1
        starts = pk[np.concatenate([[0], breaks])]
        lens = np.diff(np.concatenate([[0], breaks, [len(pk)]]))
        if math.prod(len(p) for p in pos[:k]) * len(starts) > MAX_RUNS:
            return None
        base = np.zeros(1, np.int64)
        for d in range(k):
            base = np.add.outer(base, pos[d].astype(np.int64) * strides[d]).ravel()
        offsets = np.add.outer(base, starts.astype(np.int64) * strides[k]).ravel()
        lengths = np.tile(lens.astype(np.int64) * strides[k], len(base))
    else:  # points
        flat = np.unique(np.ravel_multi_index(tuple(np.ravel(i) for i in local), shape))
        if len(flat) > MAX_RUNS:
            return None
        offsets = flat.astype(np.int64) * itemsize
        lengths = np.full(len(flat), itemsize, np.int64)
    runs = merge_runs(offsets, lengths, request_bytes)
    cost = len(runs) * request_bytes + sum(n for _, n in runs)
    return runs if cost < request_bytes + total else None  # against one request for the whole object


def split_runs(runs: list[tuple[int, int]], parts: int, part_bytes: int) -> list[tuple[int, int]]:
    """Cut runs into about `parts` pieces of at least `part_bytes`, for parallel requests."""
    size = max(part_bytes, -(-sum(n for _, n in runs) // max(1, parts)))
    out = []
    for off, n in runs:
        while n > size + size // 2:
            out.append((off, size))
            off, n = off + size, n - size
        out.append((off, n))
    return out
