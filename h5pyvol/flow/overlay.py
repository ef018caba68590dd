"""One unit of work's changes over the rows below it, and committing them.

An `Overlay` records what a chunk (or an init or finish hook) writes: new
objects, attributes, appended rows, writes and references. Reads see the rows
below with the overlay's own pieces on top. `commit` applies an overlay to the
`Store`, in chunk order: rows it appended move to the end of each dataset as it
is at commit time, reference indices that pointed at them move along, and the
``ref_region`` lookups are computed from the final reference rows. That is how
ranks run chunks independently and still write what a serial run writes.
"""

from __future__ import annotations

import copy

import numpy as np

from .errors import FlowError
from .store import DatasetInfo, norm


def _first_last(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct values of `idx` and the positions of their first and last occurrences."""
    n = len(idx)
    if n > 1 and np.all(idx[1:] >= idx[:-1]):
        starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
        ends = np.append(starts[1:], n) - 1
        return idx[starts], starts, ends
    lo, hi = int(idx.min()), int(idx.max()) + 1
    if hi - lo <= 4 * n + 4096:
        pos = np.arange(n)
        first = np.full(hi - lo, n, dtype=np.int64)
        last = np.full(hi - lo, -1, dtype=np.int64)
        np.minimum.at(first, idx - lo, pos)
        np.maximum.at(last, idx - lo, pos)
        present = np.flatnonzero(last >= 0)
        return present + lo, first[present], last[present]
    uniq, first = np.unique(idx, return_index=True)
    _, last_rev = np.unique(idx[::-1], return_index=True)
    return uniq, first, n - 1 - last_rev


def update_region(rows, region: str, idx: np.ndarray, row0: int) -> None:
    """Merge references `idx` (indices into the region's dataset), stored at
    reference rows row0..., into ``ref_region`` dataset `region` of `rows`:
    each referenced row's [start, stop) grows to cover them, as in h5flow."""
    if not len(idx):
        return
    idx = np.asarray(idx, dtype=np.int64)
    if idx.min() < 0:
        raise FlowError(f"negative reference index {int(idx.min())} for {region}")
    uniq, first, last = _first_last(idx)
    lo, hi = int(uniq[0]), int(uniq[-1]) + 1
    cur = rows.read(region, lo, hi)
    if len(cur) < hi - lo:
        raise FlowError(f"reference index {hi - 1} is past the end of the dataset {region} indexes "
                        f"({lo + len(cur)} rows)")
    sub = cur[uniq - lo]
    start, stop = row0 + first, row0 + last + 1
    valid = sub["start"] != sub["stop"]
    sub["start"] = np.where(valid, np.minimum(sub["start"], start), start)
    sub["stop"] = np.where(valid, np.maximum(sub["stop"], stop), stop)
    cur[uniq - lo] = sub
    rows.write(region, lo, cur)


class RefTable:
    """What a reference dataset links: its two datasets and their ref_regions."""

    __slots__ = ("dset0", "dset1", "region0", "region1")

    def __init__(self, dset0: str, dset1: str, region0: str, region1: str) -> None:
        self.dset0, self.dset1, self.region0, self.region1 = norm(dset0), norm(dset1), norm(region0), norm(region1)

    def __getstate__(self):
        return (self.dset0, self.dset1, self.region0, self.region1)

    def __setstate__(self, state):
        self.dset0, self.dset1, self.region0, self.region1 = state


class Overlay:
    """Changes of one unit of work, readable through together with `below`."""

    def __init__(self, below) -> None:
        self.below = below
        self.created: dict[str, DatasetInfo | None] = {}  # None: a group
        self.attrs_set: dict[str, dict] = {}
        self.pieces: dict[str, list[list]] = {}
        self.ends: dict[str, int] = {}
        self.reserves: dict[str, list[int]] = {}
        self.grown: dict[str, int] = {}  # lengths reached by slice reservations (rows in place, not appended)
        self.refs: list[tuple[str, RefTable, int, int]] = []
        self.pending_regions: list[tuple[str, np.ndarray, int]] = []
        self.regions: set[str] = set()

    # pickled between ranks without what lies below
    def __getstate__(self):
        state = dict(self.__dict__)
        state["below"] = None
        state["pending_regions"] = []
        return state

    # -- metadata ------------------------------------------------------------------------------
    def kind(self, path: str) -> str | None:
        path = norm(path)
        if path in self.created:
            return "group" if self.created[path] is None else "dataset"
        return self.below.kind(path)

    def info(self, path: str) -> DatasetInfo:
        path = norm(path)
        got = self.created.get(path)
        return got if got is not None else self.below.info(path)

    def length(self, path: str) -> int:
        path = norm(path)
        info = self.info(path)
        if info.region_of is not None and self.kind(info.region_of) == "dataset":
            return self.length(info.region_of)
        below = self.below.length(path) if path not in self.created else 0
        return max(below, self.ends.get(path, 0))

    def attrs(self, path: str) -> dict:
        path = norm(path)
        if self.kind(path) is None:
            raise KeyError(f"no object {path!r} in the output")
        out = {} if path in self.created else self.below.attrs(path)
        out.update(self.attrs_set.get(path, {}))
        return out

    def _parents(self, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            kind = self.kind(parent)
            if kind is None:
                self.created[parent] = None
            elif kind == "dataset":
                raise FlowError(f"cannot create {path!r}: {parent!r} is a dataset")

    def create_group(self, path: str) -> None:
        path = norm(path)
        if self.kind(path) is None:
            self._parents(path)
            self.created[path] = None

    def create_dataset(self, path: str, dtype, rowshape=(), region_of: str | None = None) -> None:
        path = norm(path)
        if self.kind(path) is None:
            self._parents(path)
            self.created[path] = DatasetInfo(np.dtype(dtype), tuple(int(n) for n in rowshape), True,
                                             norm(region_of) if region_of else None)

    def set_attrs(self, path: str, attrs: dict) -> None:
        path = norm(path)
        if self.kind(path) is None:
            self.create_group(path)
        self.attrs_set.setdefault(path, {}).update(attrs)

    # -- rows ------------------------------------------------------------------------------------
    def read(self, path: str, a: int, b: int) -> np.ndarray:
        path = norm(path)
        if path in self.regions and self.pending_regions:
            self._settle_regions()
        info = self.info(path)
        out = info.empty(max(0, b - a))
        if path not in self.created and self.below.kind(path) == "dataset":
            bl = min(b, self.below.length(path))
            if a < bl:
                out[: bl - a] = self.below.read(path, a, bl)
        for start, arr in self.pieces.get(path, ()):
            lo, hi = max(a, start), min(b, start + len(arr))
            if lo < hi:
                out[lo - a: hi - a] = arr[lo - start: hi - start]
        return out

    def write(self, path: str, a: int, arr: np.ndarray) -> None:
        path = norm(path)
        info = self.info(path)
        arr = np.asarray(arr)
        b = a + len(arr)
        pieces = self.pieces.setdefault(path, [])
        for start, piece in reversed(pieces):  # the newest piece holding all of it takes the write
            if start <= a and b <= start + len(piece):
                piece[a - start: b - start] = arr
                break
        else:
            pieces.append([a, np.array(arr, dtype=info.dtype).reshape((len(arr),) + info.rowshape)])
        if b > self.ends.get(path, 0):
            self.ends[path] = b

    def grow(self, path: str, n: int) -> None:
        """Make the dataset at least `n` rows long (new rows read as zeros) without writing them."""
        path = norm(path)
        if n > self.length(path):
            self.grown[path] = n
            self.ends[path] = max(self.ends.get(path, 0), n)

    def reserve(self, path: str, n: int) -> int:
        path = norm(path)
        start = self.length(path)
        span = self.reserves.get(path)
        if span is None:
            self.reserves[path] = [start, start + n]
        else:
            span[1] = start + n
        self.pieces.setdefault(path, []).append([start, self.info(path).empty(n)])
        self.ends[path] = start + n
        return start

    def add_refs(self, ref_path: str, table: RefTable, row0: int, values: np.ndarray) -> None:
        self.refs.append((norm(ref_path), table, row0, len(values)))
        self.regions.update((table.region0, table.region1))
        self.pending_regions += [(table.region0, values[:, 0].copy(), row0),
                                 (table.region1, values[:, 1].copy(), row0)]

    def _settle_regions(self) -> None:
        pending, self.pending_regions = self.pending_regions, []
        for region, idx, row0 in pending:
            update_region(self, region, idx, row0)

    def nbytes(self) -> int:
        return sum(p[1].nbytes for ps in self.pieces.values() for p in ps)

    def without(self, cut: dict[str, tuple[int, int]]) -> Overlay:
        """A copy to send to rank 0 without rows [a, b) of each dataset in `cut`
        (they stay with the rank that ran the chunk, which writes them itself)."""
        light = copy.copy(self)
        light.pieces = dict(self.pieces)
        for path, (a, b) in cut.items():
            kept = []
            for start, arr in self.pieces.get(path, ()):
                end = start + len(arr)
                if end <= a or start >= b:
                    kept.append([start, arr])
                    continue
                if start < a:
                    kept.append([start, arr[: a - start]])
                if end > b:
                    kept.append([b, arr[b - start:]])
            light.pieces[path] = kept
        return light


def _relocate_values(values: np.ndarray, span: tuple[int, int, int] | None) -> np.ndarray:
    if span is None or span[2] == 0:
        return values
    base, end, shift = span
    return np.where((values >= base) & (values < end), values + shift, values)


def placed_pieces(ov: Overlay, spans: dict[str, tuple[int, int, int]], only: str | None = None):
    """The overlay's rows at their final places: (path, first row, rows), in the
    order they were written (later ones win), rows of appended spans moved by
    their shift and reference values that point into moved rows moved along.
    ``ref_region`` pieces are left out (computed from the references at commit)."""
    ref_tables = {path: table for path, table, _, _ in ov.refs}
    for path, pieces in ov.pieces.items():
        if path in ov.regions or (only is not None and path != only):
            continue
        span = spans.get(path)
        table = ref_tables.get(path)
        moved = table is not None and any(spans.get(d, (0, 0, 0))[2] for d in (table.dset0, table.dset1))
        for start, arr in pieces:
            if moved:
                arr = np.stack([_relocate_values(arr[:, 0], spans.get(table.dset0)),
                                _relocate_values(arr[:, 1], spans.get(table.dset1))], axis=1)
            if span is None or span[2] == 0:
                yield path, start, arr
                continue
            base, end, shift = span
            cuts = sorted({start, start + len(arr), *(c for c in (base, end) if start < c < start + len(arr))})
            for lo, hi in zip(cuts[:-1], cuts[1:], strict=False):
                yield path, lo + shift if base <= lo < end else lo, arr[lo - start: hi - start]


def commit(store, ov: Overlay, forbid_append: set[str] | None = None) -> dict[str, tuple[int, int, int]]:
    """Apply `ov` to `store` (see the module docstring). Returns the spans of
    appended rows, per dataset ``(first, end, shift)`` in the overlay's rows.
    `forbid_append` names datasets this overlay may not append to (those the
    generator appends to, when chunks run out of order)."""
    for path, info in ov.created.items():
        kind = store.kind(path)
        if info is None:
            if kind is None:
                store.create_group(path)
        elif kind is None:
            store.create_dataset(path, info.dtype, info.rowshape, info.region_of)
        elif kind == "dataset":
            have = store.info(path)
            if have.dtype != info.dtype or have.rowshape != info.rowshape:
                raise FlowError(f"dataset {path!r} was created as {info.dtype}{info.rowshape} on one rank and "
                                f"{have.dtype}{have.rowshape} on another")
    for path, attrs in ov.attrs_set.items():
        store.set_attrs(path, attrs)
    for path, n in ov.grown.items():
        store.grow(path, n)
    spans: dict[str, tuple[int, int, int]] = {}
    for path, (base, end) in ov.reserves.items():
        if forbid_append and path in forbid_append:
            raise FlowError(f"a stage appends to {path!r}, which the generator also appends to; chunks run "
                            "out of order under MPI, so only a serial run (--nompi) keeps their order")
        start = store.reserve(path, end - base)
        spans[path] = (base, end, start - base)
    for path, start, arr in placed_pieces(ov, spans):
        store.write(path, start, arr)
    for path, table, row0, n in ov.refs:
        span = spans.get(path)
        final = row0 + span[2] if span and span[0] <= row0 < span[1] else row0
        values = store.read(path, final, final + n)
        update_region(store, table.region0, values[:, 0], final)
        update_region(store, table.region1, values[:, 1], final)
    return spans
