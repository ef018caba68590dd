"""Which chunks of a dataset were written, and each one's zone map.

`ChunkTracker` follows writes over a `ChunkGrid`: it marks the chunks a
selection touches, and answers a chunk's minimum and maximum (its *zone
map*) from the stored values, computed when first asked and kept until the
chunk is written again. Query engines skip chunks whose zone map cannot match
before reading any of their bytes.

Zone maps are computed on every chunk upload, so they must cost next to
nothing: `zone_of` and `zoned_bytes` use the compiled kernels of
`h5pyvol.storage._zones` (one pass for both bounds, fused with the copy a
backend makes anyway) and fall back to numpy where those do not apply.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..selection import Selection
from .grid import ChunkGrid

try:
    from . import _zones
except ImportError:  # a source tree that was never built: numpy does it all, in two passes
    _zones = None


def _kernel_takes(values: np.ndarray) -> bool:
    """The compiled kernels handle native-order integers and floats (not
    float16 or bool) whose last dimension is contiguous."""
    dt = values.dtype
    return (_zones is not None and dt.kind in "iuf" and dt.isnative and dt.itemsize in (1, 2, 4, 8)
            and not (dt.kind == "f" and dt.itemsize < 4)
            and (values.ndim == 0 or values.strides[-1] == dt.itemsize))


def _as_zone(bounds: tuple | None) -> dict | None:
    return None if bounds is None else {"min": bounds[0], "max": bounds[1]}


def zone_of(values: np.ndarray) -> dict | None:
    """The zone map of `values`: plain ``min`` and ``max``, ignoring NaNs;
    None for non-numeric types, or when there is no comparable value."""
    dt = values.dtype
    if dt.kind not in "biuf" or dt.shape or values.size == 0:
        return None
    if _kernel_takes(values):
        return _as_zone(_zones.minmax(values))
    lo, hi = values.min(), values.max()  # two fast passes; NaNs (rare) make them NaN
    if dt.kind == "f" and (np.isnan(lo) or np.isnan(hi)):
        if np.isnan(values).all():
            return None
        lo, hi = np.nanmin(values), np.nanmax(values)
    return {"min": lo.item(), "max": hi.item()}


def zoned_bytes(values: np.ndarray) -> tuple[bytes, dict | None]:
    """`values` as bytes in C order and its zone map (as `zone_of` gives it),
    in one pass over the elements where the compiled kernels apply."""
    if values.size and not values.dtype.shape and _kernel_takes(values):
        raw, bounds = _zones.copy_minmax(values)
        return raw, _as_zone(bounds)
    return values.tobytes(), zone_of(values)


class ChunkTracker:
    """Written chunks and cached zone maps of one dataset's grid."""

    def __init__(self, grid: ChunkGrid) -> None:
        self.grid = grid
        # A per-chunk write counter: a cached zone map is valid while its count holds.
        self._versions = np.zeros(grid.counts, np.int64)
        self._zones: dict[tuple[int, ...], tuple[int, dict | None]] = {}

    def note_write(self, selection: Selection) -> None:
        """Mark the chunks `selection` touches as written."""
        if selection.count == 0 or self._versions.size == 0:
            return
        self._versions[self._touched(selection)] += 1

    def _touched(self, sel: Selection):
        chunks = self.grid.chunks
        if sel.kind == "all" or not sel.shape:
            return ...
        if sel.kind == "points":
            return tuple((sel.coords() // np.asarray(chunks)).T)
        regular = sel._regular  # noqa: SLF001 - the selection's own decoded form
        if regular is not None:  # a product of per-dimension index sets
            start, stride, count, block = regular
            axes = []
            for s, t, n, b, c in zip(start, stride, count, block, chunks, strict=True):
                firsts = s + t * np.arange(n, dtype=np.int64)
                touched = np.unique(np.concatenate([firsts // c, (firsts + b - 1) // c]))
                if b > c:  # a block can span whole chunks between its ends
                    touched = np.unique(np.concatenate([np.arange(f // c, (f + b - 1) // c + 1) for f in firsts]))
                axes.append(touched)
            return np.ix_(*axes)
        mask = np.zeros(self._versions.shape, bool)
        for start, extent in sel.blocks():
            box = tuple(slice(a // c, (a + n - 1) // c + 1) for a, n, c in zip(start, extent, chunks, strict=True))
            mask[box] = True
        return mask

    def written(self, cid: tuple[int, ...]) -> bool:
        return bool(self._versions[cid] > 0) if self._versions.size else False

    def zone(self, cid: tuple[int, ...], values: Callable[[], np.ndarray]) -> dict | None:
        """The zone map of written chunk `cid`; `values()` gives its elements."""
        version = int(self._versions[cid])
        cached = self._zones.get(cid)
        if cached is None or cached[0] != version:
            cached = self._zones[cid] = (version, zone_of(values()))
        return cached[1]

    def resize(self, shape: tuple[int, ...]) -> None:
        """Follow a change of extent; chunks keep their marks where they remain."""
        grid = ChunkGrid(shape, self.grid.chunks)
        versions = np.zeros(grid.counts, np.int64)
        common = tuple(slice(0, min(a, b)) for a, b in zip(versions.shape, self._versions.shape, strict=True))
        versions[common] = self._versions[common]
        # Edge chunks hold other elements after a resize: drop every cached zone map.
        self.grid, self._versions, self._zones = grid, versions, {}
