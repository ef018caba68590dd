"""Following h5flow references: `dereference` and `dereference_chain`.

A reference dataset is an (N, 2) table of row pairs; ``ref_direction`` says
which column matches the selection and which indexes the data. A
``ref_region`` dataset gives, per row, the [start, stop) of reference rows
that mention it, so only those rows are read. Any of them may be a numpy
array, an h5py Dataset or a data manager's dataset view; reference and region
integers of any width are read (h5flow writes uint32 / int32, this engine
int64). Results are numpy masked arrays shaped (len(sel), max matches), as
h5flow's are, with children ordered by parent then child index.
"""

from __future__ import annotations

import numpy as np
import numpy.lib.recfunctions as rfn
import numpy.ma as ma

from .store import REGION_DTYPE

ref_region_dtype = REGION_DTYPE


def indices(sel) -> np.ndarray:
    """A selection (slice, index or index array) as int64 indices (np.r_'s job, without its cost)."""
    if isinstance(sel, slice):
        return np.arange(sel.start or 0, sel.stop, sel.step or 1, dtype=np.int64)
    return np.atleast_1d(np.asarray(sel)).astype(np.int64, copy=False)


def _dtype(obj) -> np.dtype:
    return np.dtype(obj.dtype)


def _length(obj) -> int:
    return len(obj)


def read_rows(obj, a: int, b: int) -> np.ndarray:
    """Rows [a, b) of an array, h5py Dataset or dataset view."""
    if hasattr(obj, "read_rows"):
        return obj.read_rows(a, b)
    return np.asarray(obj[a:b])


def take_rows(obj, idx: np.ndarray) -> np.ndarray:
    """Rows `idx` (any order, repeats allowed) of an array, h5py Dataset or view,
    reading whole runs rather than one row at a time."""
    idx = np.asarray(idx, dtype=np.int64)
    if isinstance(obj, np.ndarray):
        return obj[idx]
    if hasattr(obj, "take_rows"):
        return obj.take_rows(idx)
    if not len(idx):
        return np.zeros((0,) + tuple(obj.shape[1:]), dtype=obj.dtype)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    if hi - lo <= 4 * len(idx) + 4096:
        return np.asarray(obj[lo:hi])[idx - lo]
    uniq, inv = np.unique(idx, return_inverse=True)
    breaks = np.flatnonzero(np.diff(uniq) > 4096) + 1
    parts = []
    for run in np.split(uniq, breaks):
        block = np.asarray(obj[int(run[0]): int(run[-1]) + 1])
        parts.append(block[run - run[0]])
    return np.concatenate(parts)[inv]


def _all_masked(n: int, dtype: np.dtype) -> ma.MaskedArray:
    return ma.array(np.zeros((n, 1), dtype=dtype), mask=True, shrink=False)


def dereference(sel, ref, data=None, region=None, mask=None, ref_direction=(0, 1), indices_only: bool = False,
                as_masked: bool = True):
    """The rows of `data` that `ref` links to each index of `sel`.

    `sel`: indices, an index or a slice into the parent; `ref`: the (N, 2)
    references; `data`: the child rows (may be omitted with
    ``indices_only=True``); `region`: the parent's ref_region (optional; full
    length, indexed by `sel`); `mask`: True for entries of `sel` to skip;
    `ref_direction`: (parent column, child column). Returns a masked array of
    shape (len(sel), n) with n the most matches of any entry, or with
    ``as_masked=False`` a list with one array per unmasked entry.
    """
    sel_idx = indices(sel)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        active = sel_idx[~mask]
        n_elem = len(mask)
    else:
        active = sel_idx
        n_elem = len(active)
    d0, d1 = int(ref_direction[0]), int(ref_direction[1])
    return_dtype = _dtype(ref) if indices_only else _dtype(data)
    if not len(active):
        if as_masked:
            return _all_masked(n_elem, return_dtype)
        return [np.empty(0, return_dtype) for _ in range(n_elem)] if n_elem else []

    if region is not None:
        reg = take_rows(region, active) if not isinstance(region, np.ndarray) else region[active]
        starts = reg["start"].astype(np.int64)
        stops = reg["stop"].astype(np.int64)
        valid = starts != stops
        if not valid.any():
            return _all_masked(n_elem, return_dtype) if as_masked else [
                np.empty(0, return_dtype) for _ in range(n_elem)]
        ref_lo, ref_hi = int(starts[valid].min()), int(stops[valid].max())
    else:
        ref_lo, ref_hi = 0, _length(ref)
        starts = np.full(len(active), ref_lo, dtype=np.int64)
        stops = np.full(len(active), ref_hi, dtype=np.int64)
    refs = read_rows(ref, ref_lo, ref_hi)
    if not len(refs):
        return _all_masked(n_elem, return_dtype) if as_masked else [
            np.empty(0, return_dtype) for _ in range(n_elem)]
    parents = refs[:, d0].astype(np.int64)
    children = refs[:, d1].astype(np.int64)

    if not as_masked:
        if indices_only:
            return [children[st - ref_lo: sp - ref_lo][parents[st - ref_lo: sp - ref_lo] == i]
                    for i, st, sp in zip(active, starts, stops, strict=True)]
        lo = int(children.min())
        rows = read_rows(data, lo, int(children.max()) + 1)
        return [rows[children[st - ref_lo: sp - ref_lo][parents[st - ref_lo: sp - ref_lo] == i] - lo]
                for i, st, sp in zip(active, starts, stops, strict=True)]

    first = int(active[0])
    lo, hi = int(active.min()), int(active.max()) + 1
    if hi - lo == len(active) and first == lo and np.array_equal(active, np.arange(lo, hi)):
        # a run of parents (a chunk's slice, the usual case): no sorting, rows are parent - first
        uniq_active, inv, rank = active, None, None
        keep = (parents >= lo) & (parents < hi)
    elif hi - lo <= 4 * len(active) + 4096:  # close together: a table over the range, no sorting
        present = np.zeros(hi - lo, dtype=bool)
        present[active - lo] = True
        uniq_active = np.flatnonzero(present) + lo
        rank = np.cumsum(present) - 1
        inv = rank[active - lo]
        inside = (parents >= lo) & (parents < hi)
        keep = inside
        keep[inside] = present[parents[inside] - lo]
    else:
        uniq_active, inv = np.unique(active, return_inverse=True)
        rank = None
        keep = np.isin(parents, uniq_active)
    if not keep.any():
        return _all_masked(n_elem, return_dtype)
    p, c = parents[keep], children[keep]
    if len(p) > 1 and not _in_order(p, c):
        # references written in order (parent, child) and read the other way round need only a stable sort
        order = np.argsort(p, kind="stable") if _in_order(c, p) else np.lexsort((c, p))
        p, c = p[order], c[order]
    group_start = np.flatnonzero(np.concatenate(([True], p[1:] != p[:-1])))
    counts = np.diff(np.append(group_start, len(p)))
    slot = np.arange(len(p)) - np.repeat(group_start, counts)
    row = p - lo if inv is None else rank[p - lo] if rank is not None else np.searchsorted(uniq_active, p)
    width = int(counts.max())
    values = c.astype(return_dtype) if indices_only else take_rows(data, c)
    rowshape = values.shape[1:]  # rows of a multi-dimensional dataset keep their shape
    n_uniq = len(uniq_active)
    condensed = np.zeros((n_uniq + 1, width) + rowshape, dtype=return_dtype)  # the last row: for masked entries
    condensed[row, slot] = values
    found = np.zeros(n_uniq + 1, dtype=np.int64)
    found[row[group_start]] = counts
    if inv is None and mask is None:
        out, found = condensed[:n_uniq], found[:n_uniq]
    else:  # one gather to the selection's order, repeats and masked entries
        take = np.arange(n_uniq) if inv is None else inv
        if mask is not None:
            full = np.full(n_elem, n_uniq, dtype=np.int64)
            full[~mask] = take
            take = full
        out, found = condensed[take], found[take]
    empty = np.arange(width) >= found[:, None]
    empty = np.broadcast_to(empty.reshape(empty.shape + (1,) * len(rowshape)), out.shape)
    return ma.array(out, mask=empty.copy(), shrink=False)


def _in_order(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the pairs (a, b) are sorted by a, then b."""
    step_a, step_b = a[1:] - a[:-1], b[1:] - b[:-1]
    return bool(np.all((step_a > 0) | ((step_a == 0) & (step_b >= 0))))


def dereference_chain(sel, refs, data=None, regions=None, mask=None, ref_directions=None,
                      indices_only: bool = False):
    """Follow several references in turn (A -> B -> C ...) from selection `sel`
    of the first dataset; returns a masked array shaped (len(sel), n1, n2, ...)
    of the last dataset's rows (or indices)."""
    sel = indices(sel)
    mask = np.zeros(sel.shape, dtype=bool) | (np.asarray(mask, dtype=bool) if mask is not None else False)
    current = ma.array(sel, mask=mask, shrink=False)
    shape: tuple[int, ...] = (len(sel),)
    out = None
    for i, ref in enumerate(refs):
        last = i == len(refs) - 1
        out = dereference(current.data.ravel(), ref, data=data if last else None,
                          region=regions[i] if regions else None, mask=mask.ravel(),
                          ref_direction=ref_directions[i] if ref_directions else (0, 1),
                          indices_only=indices_only if last else True)
        rowshape = out.shape[2:]
        shape += out.shape[1:2]
        got = ma.getmaskarray(out)
        if got.dtype.names:
            got = rfn.structured_to_unstructured(got).any(axis=-1)
        got = got.reshape(out.shape[:2] + (-1,)).any(axis=-1) if rowshape else got
        mask = np.expand_dims(mask, -1) | got.reshape(shape)
        full = np.broadcast_to(mask.reshape(shape + (1,) * len(rowshape)), shape + rowshape)
        out = ma.array(ma.getdata(out).reshape(shape + rowshape), mask=full.copy(), shrink=False)
        current = out
    return out
