"""HDF5 dataspace selections as numpy indices.

This module owns the translation of an HDF5 dataspace selection (an
``h5py.h5s.SpaceID``) into a :class:`Selection`: a plain Python snapshot of
the selection that a storage connector can apply to a numpy array, or walk
box by box for chunked storage.  Everything is copied out of the dataspace
when the :class:`Selection` is built, so the dataspace may be closed or
reused afterwards.

Element order is HDF5's: the order in which ``H5Dread`` fills a flat memory
buffer from the selection.  Measured against HDF5 1.14:

* "all" and hyperslab selections (regular or not) are visited in increasing
  row-major coordinate order, each element once, however the blocks were
  combined (overlaps, out-of-order ``SELECT_OR``, ``SELECT_NOTB``...).
* point selections are visited in the order of the point list, duplicates
  included (``SELECT_PREPEND``/``SELECT_APPEND`` edit that list).

Conventions for the degenerate dataspaces:

* scalar: ``shape == ()``, kind "all", ``count == 1``, ``index == (...,)``
  (``Ellipsis`` rather than ``()`` so that indexing returns a 0-d view, not a
  numpy scalar).
* NULL (no extent): ``shape == ()``, kind "none", ``count == 0``.
* "none": ``result_shape == (0,)``; ``index`` is one empty integer array per
  dimension (``(numpy.False_,)`` for rank 0), so it works on any array of
  ``shape``, even one with zero-length dimensions.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from h5py import h5s

if TYPE_CHECKING:
    from .storage.grid import ChunkGrid
    from .storage.plan import ChunkTask

Box = tuple[tuple[int, ...], tuple[int, ...]]

KINDS = ("all", "none", "hyperslab", "points")


class Selection:
    """A snapshot of the selected elements of a dataspace of extent ``shape``.

    Build one with :meth:`from_space` or :meth:`everything`.  The constructor
    takes the already decoded description: ``regular`` is
    ``(start, stride, count, block)`` for a regular hyperslab, ``blocks`` an
    ``(n, 2, rank)`` array of inclusive ``(first, last)`` block corners for an
    irregular hyperslab, ``points`` an ``(n, rank)`` point list.  HDF5's block
    list is always disjoint, which :meth:`blocks` relies on; :meth:`coords`
    and :attr:`index` also accept overlapping blocks.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        kind: str,
        count: int,
        *,
        regular: tuple[tuple[int, ...], ...] | None = None,
        blocks: np.ndarray | None = None,
        points: np.ndarray | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown selection kind {kind!r}")
        self.shape = tuple(int(n) for n in shape)
        self.kind = kind
        self.count = int(count)
        self._regular = regular
        self._blocks = blocks
        self._points = points

    def __repr__(self) -> str:
        return f"Selection(shape={self.shape}, kind={self.kind!r}, count={self.count})"

    @property
    def rank(self) -> int:
        return len(self.shape)

    # -- construction ------------------------------------------------------

    @classmethod
    def everything(cls, shape: tuple[int, ...]) -> Selection:
        """An "all" selection of a dataspace of extent ``shape``."""
        shape = tuple(int(n) for n in shape)
        return cls(shape, "all", math.prod(shape))

    @classmethod
    def from_space(cls, space: h5s.SpaceID) -> Selection:
        """Snapshot the selection of ``space`` (which is left untouched)."""
        if space.get_simple_extent_type() == h5s.NULL:
            return cls((), "none", 0)
        shape = tuple(int(n) for n in space.get_simple_extent_dims())
        count = int(space.get_select_npoints())
        kind = space.get_select_type()
        if kind == h5s.SEL_ALL:
            return cls(shape, "all", count)
        if kind == h5s.SEL_NONE or count == 0:
            return cls(shape, "none", 0)
        if kind == h5s.SEL_POINTS:
            points = space.get_select_elem_pointlist().astype(np.int64)
            return cls(shape, "points", count, points=points)
        if kind != h5s.SEL_HYPERSLABS:
            raise ValueError(f"unsupported selection type {kind}")
        if not space.select_valid():
            # HDF5 lets a selection run past the extent; slices would clip silently.
            raise ValueError("hyperslab selection extends beyond the dataspace extent")
        if space.is_regular_hyperslab():
            regular = tuple(tuple(int(v) for v in part) for part in space.get_regular_hyperslab())
            return cls(shape, "hyperslab", count, regular=regular)
        blocks = space.get_select_hyper_blocklist().astype(np.int64)
        return cls(shape, "hyperslab", count, blocks=blocks.reshape(-1, 2, len(shape)))

    # -- numpy indexing ----------------------------------------------------

    @cached_property
    def index(self) -> tuple:
        """Index such that ``array[index]`` has shape :attr:`result_shape` and
        holds the selected elements in HDF5 element order (when raveled)."""
        if self.kind == "all":
            return (slice(None),) * self.rank if self.rank else (Ellipsis,)
        if self.kind == "none":
            if not self.rank:  # a 0-d boolean False selects nothing: shape (0,)
                return (np.False_,)
            return (np.empty(0, np.intp),) * self.rank
        if self._regular is not None:
            dims = [_dim_index(*p) for p in zip(*self._regular, strict=True)]
            if all(isinstance(d, slice) for d in dims):
                return tuple(dims)
            # An outer product of per-dimension positions keeps row-major order.
            return np.ix_(*[_as_array(d) for d in dims])
        return tuple(self.coords().T)

    @property
    def result_shape(self) -> tuple[int, ...]:
        """Shape of ``array[index]``."""
        if self.kind == "all":
            return self.shape
        if self._regular is not None:
            _, _, count, block = self._regular
            return tuple(c * b for c, b in zip(count, block, strict=True))
        return (self.count,)

    @property
    def is_basic(self) -> bool:
        """True if :attr:`index` holds only slices/Ellipsis, so that
        ``array[index]`` is a view."""
        return all(isinstance(i, slice) or i is Ellipsis for i in self.index)

    # -- geometry ----------------------------------------------------------

    def bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Bounding box ``(start, stop)``, stop exclusive; zeros when empty."""
        if self.count == 0:
            return (0,) * self.rank, (0,) * self.rank
        if self.kind == "all":
            return (0,) * self.rank, self.shape
        if self._regular is not None:
            start, stride, count, block = self._regular
            stop = tuple(s + (c - 1) * t + b for s, t, c, b in zip(start, stride, count, block, strict=True))
            return start, stop
        if self._blocks is not None:
            lo, hi = self._blocks[:, 0].min(axis=0), self._blocks[:, 1].max(axis=0) + 1
        else:
            lo, hi = self._points.min(axis=0), self._points.max(axis=0) + 1
        return tuple(int(v) for v in lo), tuple(int(v) for v in hi)

    def coords(self) -> np.ndarray:
        """``(count, rank)`` int64 coordinates in HDF5 element order (read-only)."""
        return self._coords

    @cached_property
    def _coords(self) -> np.ndarray:
        if self.kind == "all":
            out = _product([np.arange(n, dtype=np.int64) for n in self.shape])
        elif self.kind == "none":
            out = np.empty((0, self.rank), np.int64)
        elif self._regular is not None:
            out = _product([_as_array(_dim_index(*p)) for p in zip(*self._regular, strict=True)])
        elif self._points is not None:
            out = self._points.copy()
        else:
            parts = [
                _product([np.arange(a, b + 1, dtype=np.int64) for a, b in zip(*blk, strict=True)])
                for blk in self._blocks
            ]
            out = _sorted_unique_rows(np.concatenate(parts))
        out.flags.writeable = False
        return out

    def blocks(self) -> Iterator[Box]:
        """Yield disjoint boxes ``(start, shape)`` covering the selection.

        Order guarantee, for every kind: visiting the boxes in the order
        yielded, each in row-major order, gives exactly HDF5's element order
        (so the k-th box fills the next ``prod(shape)`` slots of a flat
        buffer).  Boxes are kept large where that order allows; points give
        one 1-element box per point (duplicates repeated).  "none" yields
        nothing; a scalar dataspace yields ``((), ())``.
        """
        if self.count == 0:
            return
        if self.kind == "all":
            yield (0,) * self.rank, self.shape
        elif self._regular is not None:
            yield from _regular_boxes(*self._regular)
        elif self._points is not None:
            one = (1,) * self.rank
            for p in self._points:
                yield tuple(int(v) for v in p), one
        else:
            yield from _ordered_boxes(self._blocks[:, 0], self._blocks[:, 1] + 1, 0)

    def chunk_tasks(self, grid: ChunkGrid) -> list[ChunkTask]:
        """The selection cut by the chunks of `grid` (same extent): one
        `h5pyvol.storage.plan.ChunkTask` per chunk it touches, with where its
        elements go in the result array and where they are in the chunk."""
        from .storage.plan import plan

        return plan(self, grid)


class SliceSelection(Selection):
    """A :class:`Selection` whose :attr:`index` is basic slices, as built by
    the plugin's fast data path (``csrc/io.c``).

    The plugin fills in only ``shape``, ``kind`` ("all" or "hyperslab"),
    ``count`` and ``index``, without running ``__init__``; the regular
    hyperslab description is derived from the slices on first use, since
    most connectors only ever index with them.
    """

    _blocks = None
    _points = None

    @cached_property
    def _regular(self) -> tuple[tuple[int, ...], ...] | None:
        if self.kind == "all":
            return None
        parts = []
        for dim in self.index:
            step = dim.step or 1
            if step == 1:
                parts.append((dim.start, 1, 1, dim.stop - dim.start))
            else:
                parts.append((dim.start, step, len(range(dim.start, dim.stop, step)), 1))
        start, stride, count, block = zip(*parts, strict=True)
        return start, stride, count, block


# -- helpers ----------------------------------------------------------------


def _dim_index(start: int, stride: int, count: int, block: int) -> slice | np.ndarray:
    """Positions selected along one dimension of a regular hyperslab."""
    if count == 1 or stride == block:
        return slice(start, start + count * block)
    if block == 1:
        return slice(start, start + (count - 1) * stride + 1, stride)
    starts = start + stride * np.arange(count, dtype=np.int64)
    return (starts[:, None] + np.arange(block, dtype=np.int64)).ravel()


def _as_array(d: slice | np.ndarray) -> np.ndarray:
    if isinstance(d, slice):
        return np.arange(d.start, d.stop, d.step or 1, dtype=np.int64)
    return d


def _product(axes: list[np.ndarray]) -> np.ndarray:
    """Row-major cartesian product of per-dimension positions, as (n, rank)."""
    if not axes:
        return np.zeros((1, 0), np.int64)
    grids = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64, copy=False)


def _sorted_unique_rows(c: np.ndarray) -> np.ndarray:
    """Rows of ``c`` in row-major order, without repeats (no linearisation,
    which could overflow for huge extents)."""
    c = c[np.lexsort(c.T[::-1])]
    keep = np.ones(len(c), bool)
    keep[1:] = np.any(c[1:] != c[:-1], axis=1)
    return c[keep]


def _runs(start: int, stride: int, count: int, block: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, length)`` runs of one regular hyperslab dimension."""
    if count == 1 or stride == block:
        return [(start, count * block)]
    return [(start + i * stride, block) for i in range(count)]


def _regular_boxes(start, stride, count, block) -> Iterator[Box]:
    """Row-major ordered boxes of a regular hyperslab.

    A box may span several positions in a dimension only if every later
    dimension is one contiguous run; so the dimensions before the last
    non-contiguous one are walked one position at a time.
    """
    runs = [_runs(*p) for p in zip(start, stride, count, block, strict=True)]
    split = max((d for d, r in enumerate(runs) if len(r) > 1), default=0)
    tail_start = tuple(r[0][0] for r in runs[split + 1 :])
    tail_shape = tuple(r[0][1] for r in runs[split + 1 :])
    heads = [[p for s, n in r for p in range(s, s + n)] for r in runs[:split]]
    for head in itertools.product(*heads):
        for s, n in runs[split]:
            yield head + (s,) + tail_start, (1,) * split + (n,) + tail_shape


def _ordered_boxes(lo: np.ndarray, hi: np.ndarray, d: int) -> Iterator[Box]:
    """Row-major ordered boxes (dimensions ``d:`` only) of the union of
    disjoint boxes ``[lo, hi)`` that all contain the current prefix.

    Dimension ``d`` is cut at every box edge; a slab crossed by a single box
    is yielded whole, one crossed by several is walked one position at a
    time, recursing on the next dimension.
    """
    if len(lo) == 1:
        yield (
            tuple(int(v) for v in lo[0, d:]),
            tuple(int(v) for v in hi[0, d:] - lo[0, d:]),
        )
        return
    cuts = np.unique(np.concatenate([lo[:, d], hi[:, d]]))
    first = np.searchsorted(cuts, lo[:, d])
    last = np.searchsorted(cuts, hi[:, d])
    slabs: dict[int, list[int]] = defaultdict(list)
    for i, (f, e) in enumerate(zip(first, last, strict=True)):
        for k in range(f, e):
            slabs[k].append(i)
    for k in sorted(slabs):
        a, b = int(cuts[k]), int(cuts[k + 1])
        members = slabs[k]
        sub = list(_ordered_boxes(lo[members], hi[members], d + 1))
        if len(members) == 1:  # one box: the whole slab keeps row-major order
            yield (a,) + sub[0][0], (b - a,) + sub[0][1]
            continue
        for x in range(a, b):
            for start, shape in sub:
                yield (x,) + start, (1,) + shape
