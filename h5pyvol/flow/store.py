"""The committed rows of a run's output: HDF5 datasets plus in-memory tails.

A `Store` owns the output file (and a scratch file for objects on the drop
list). Rows appended during a run stay in a per-dataset tail and writes to
rows already in the file are held as patches; `Store.flush` writes both in a
few large HDF5 calls. Between flushes HDF5 is only read, so a journal entry
written after a flush describes a consistent file (see `journal`).

`ref_region` datasets follow the length of the dataset they index, as in
h5flow; reading rows past what was written gives zeros (an empty region).

With many writers (S3 and RADOS outputs under MPI, see `writers`), other
ranks write some storage chunks of a dataset themselves: those chunks are
*away* (`Table.away`). Rank 0 never writes them, and reads them back through
`Store.fetch` (after the other ranks have stored them); a write of its own
that covers an away chunk takes it back, one that covers part of it first
fetches the rest.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np

from .errors import FlowError

REF_DTYPE = np.dtype("i8")
REGION_DTYPE = np.dtype([("start", "i8"), ("stop", "i8")])
CHUNK_BYTES = 1 << 20
FLUSH_BYTES = 64 << 20


def norm(path: str) -> str:
    """'/a//b/' -> 'a/b': the one spelling of an object path in the engine."""
    if type(path) is str and (not path or (path[0] != "/" and path[-1] != "/" and "//" not in path)):
        return path  # already normal: the common case, on every row access
    return "/".join(p for p in str(path).split("/") if p)


@dataclass
class DatasetInfo:
    dtype: np.dtype
    rowshape: tuple[int, ...]
    resizable: bool = True
    region_of: str | None = None  # for a ref_region: the data path whose rows it indexes

    def empty(self, n: int) -> np.ndarray:
        return np.zeros((n,) + self.rowshape, dtype=self.dtype)


def dropped(path: str, drop: list[str]) -> bool:
    """Whether `path` lies under a dropped object: h5flow's rule (a drop entry
    inside the path), matched on whole path components."""
    wrapped = f"/{norm(path)}/"
    return any(f"/{norm(d)}/" in wrapped for d in drop if norm(d))


def region_parent(h5file: h5py.File, region: h5py.Dataset) -> str | None:
    ref_path = region.attrs.get("ref")
    if ref_path is None or ref_path not in h5file:
        return None
    ref = h5file[ref_path]
    for side in ("0", "1"):
        if norm(ref.attrs.get(f"ref_region{side}", "")) == norm(region.name):
            return norm(ref.attrs.get(f"dset{side}", "")) or None
    return None


class Table:
    """One dataset's rows: [0, flushed) in HDF5 (with pending patches), then a tail;
    storage chunks in `away` are another rank's to write (see the module docstring)."""

    def __init__(self, dset: h5py.Dataset, info: DatasetInfo) -> None:
        self.dset = dset
        self.info = info
        self.flushed = dset.shape[0] if dset.ndim else 0
        self.length = self.flushed
        self.tail = info.empty(0)
        self.tail_rows = 0  # rows of the tail that hold written data; later ones read as zeros
        self.patches: list[tuple[int, np.ndarray]] = []
        chunks = dset.chunks if dset.ndim else None
        self.chunk_rows = int(chunks[0]) if chunks else 0  # rows per storage chunk (0: not chunked)
        self.away: set[int] = set()  # storage chunks (by row index // chunk_rows) another rank writes

    def away_runs(self, a: int, b: int) -> list[tuple[int, int]]:
        """The rows of [a, b) that lie in away chunks, as runs [lo, hi)."""
        if not self.away or b <= a:
            return []
        n = self.chunk_rows
        first, last = a // n, (b - 1) // n
        found = sorted(c for c in self.away if first <= c <= last) if len(self.away) < last - first + 1 else [
            c for c in range(first, last + 1) if c in self.away]
        runs: list[tuple[int, int]] = []
        for c in found:
            lo, hi = max(a, c * n), min(b, (c + 1) * n)
            if runs and runs[-1][1] == lo:
                runs[-1] = (runs[-1][0], hi)
            else:
                runs.append((lo, hi))
        return runs

    def _outside_away(self, a: int, b: int) -> list[tuple[int, int]]:
        """The runs of [a, b) that are not in away chunks (rank 0 writes those)."""
        out, at = [], a
        for lo, hi in self.away_runs(a, b):
            if at < lo:
                out.append((at, lo))
            at = hi
        if at < b:
            out.append((at, b))
        return out

    @property
    def pending_bytes(self) -> int:
        return self.tail_rows * self.tail.itemsize * int(np.prod(self.info.rowshape, dtype=np.int64)) + sum(
            p.nbytes for _, p in self.patches)

    def read(self, a: int, b: int) -> np.ndarray:
        out = self.info.empty(max(0, b - a))
        if b <= a:
            return out
        fb = min(b, self.flushed)
        if a < fb:
            out[: fb - a] = self.dset[a:fb]
            for start, arr in self.patches:
                lo, hi = max(a, start), min(fb, start + len(arr))
                if lo < hi:
                    out[lo - a: hi - a] = arr[lo - start: hi - start]
        ta, tb = max(a, self.flushed), min(b, self.flushed + self.tail_rows)
        if ta < tb:
            out[ta - a: tb - a] = self.tail[ta - self.flushed: tb - self.flushed]
        return out

    def write(self, a: int, arr: np.ndarray, undo: Callable | None = None) -> None:
        b = a + len(arr)
        if b > self.length:
            self.grow(b)
        fb = min(b, self.flushed)
        if a < fb:
            self.patches.append((a, np.array(arr[: fb - a], dtype=self.info.dtype)))
        if b > self.flushed:
            ta = max(a, self.flushed)
            need = b - self.flushed
            if need > len(self.tail):
                bigger = self.info.empty(max(need, 2 * len(self.tail), 1024))
                bigger[: self.tail_rows] = self.tail[: self.tail_rows]
                self.tail = bigger
            self.tail[ta - self.flushed: need] = arr[ta - a:]
            self.tail_rows = max(self.tail_rows, need)

    def grow(self, n: int) -> None:
        if n > self.length:
            if not self.info.resizable and n > self.dset.shape[0]:
                raise FlowError(f"dataset {self.dset.name} has a fixed length {self.dset.shape[0]}; "
                                f"cannot grow it to {n} rows")
            self.length = n

    def patched_rows(self) -> list[tuple[int, int]]:
        return [(a, a + len(p)) for a, p in self.patches]

    def flush(self, extent: bool = False) -> None:
        """Write the patches and the tail, except rows in away chunks; `extent`:
        set the extent even if this writer's view of it has not changed (other
        writers may have committed theirs)."""
        if self.length > self.dset.shape[0] or (extent and self.info.resizable):
            self.dset.resize((self.length,) + self.info.rowshape)
        for a, arr in self.patches:
            for lo, hi in self._outside_away(a, a + len(arr)):
                self.dset[lo:hi] = arr[lo - a: hi - a]
        if self.tail_rows:
            base = self.flushed
            for lo, hi in self._outside_away(base, base + self.tail_rows):
                self.dset[lo:hi] = self.tail[lo - base: hi - base]
        self.patches = []
        self.flushed = self.length
        self.tail = self.info.empty(0)
        self.tail_rows = 0

    def truncate(self, n: int) -> None:
        """Set the length to `n` (resume): rows from `n` on are dropped; the tail
        and patches must be empty. With many writers the stored extent may be
        shorter than a checkpoint's (a worker's commit came last): it grows back,
        and the rows there, committed before the checkpoint, are read again."""
        if self.dset.shape[0] != n and (self.info.resizable or self.dset.shape[0] > n):
            self.dset.resize((n,) + self.info.rowshape)
        self.flushed = self.length = self.dset.shape[0]


class Store:
    """The committed state of the output (rank 0), read and written by rows."""

    def __init__(self, output: h5py.File, drop: list[str] | None = None, scratch_dir: str | None = None,
                 chunk_bytes: int = CHUNK_BYTES) -> None:
        self.output = output
        self.chunk_bytes = chunk_bytes
        self.drop = list(drop or [])
        self.scratch_dir = scratch_dir
        self.scratch: h5py.File | None = None
        self.scratch_path: str | None = None
        self.tables: dict[str, Table] = {}
        self.known: dict[str, str] = {}  # path -> "group" / "dataset", for paths known to exist
        self.absent: set[str] = set()  # paths known not to exist (objects are made only through the Store)
        self.regions_of: dict[str, list[str]] = {}
        self.undo: Callable[[str, int, np.ndarray], None] | None = None
        # Many writers (set by `writers.Lead`): `sync` makes the other ranks store what they
        # were handed, `fetch` reads stored rows back; `extents` are datasets whose stored
        # extent other ranks may have set since rank 0's last flush.
        self.sync: Callable[[], None] | None = None
        self.fetch: Callable[[str, int, int], np.ndarray] | None = None
        self.extents: set[str] = set()
        self._scan_regions(output)

    # -- files and routing --------------------------------------------------------------
    def _scan_regions(self, f: h5py.File) -> None:
        found = []

        def visit(name, obj):
            if name.endswith("ref_region") and isinstance(obj, h5py.Dataset):
                found.append(obj)

        f.visititems(visit)
        for region in found:
            parent = region_parent(f, region)
            if parent:
                self.regions_of.setdefault(parent, []).append(norm(region.name))

    def route(self, path: str) -> h5py.File:
        """The file an object lives in: the output, or the scratch file for dropped objects
        (unless the output already has it, as h5flow does)."""
        if not self.drop or path in self.output or not dropped(path, self.drop):
            return self.output
        if self.scratch is None:
            directory = self.scratch_dir or tempfile.gettempdir()
            fd, self.scratch_path = tempfile.mkstemp(prefix=".h5pyvol-flow-drop-", suffix=".h5", dir=directory)
            os.close(fd)
            self.scratch = h5py.File(self.scratch_path, "w")
        return self.scratch

    def h5(self, path: str) -> h5py.HLObject:
        """The h5py object at `path`, with every pending row of it written first."""
        self.absent.clear()  # the caller may create objects through h5py
        path = norm(path)
        if any(t.away for t in self.tables.values()):
            self.take_back()
        if path in self.tables:
            self.tables[path].flush()
        return self.route(path)[path]

    # -- metadata -----------------------------------------------------------------------------
    def kind(self, path: str) -> str | None:
        path = norm(path)
        got = self.known.get(path)
        if got is not None:
            return got
        if not path:
            return "group"
        if path in self.absent:
            return None
        f = self.route(path)
        if path not in f:
            self.absent.add(path)
            return None
        self.known[path] = "dataset" if isinstance(f[path], h5py.Dataset) else "group"
        return self.known[path]

    def table(self, path: str) -> Table:
        path = norm(path)
        t = self.tables.get(path)
        if t is None:
            if self.kind(path) != "dataset":
                raise KeyError(f"no dataset {path!r} in the output")
            f = self.route(path)
            dset = f[path]
            region_of = None
            if path.endswith("ref_region"):
                region_of = region_parent(f, dset)
            info = DatasetInfo(dset.dtype, dset.shape[1:], dset.ndim > 0 and dset.maxshape[0] is None, region_of)
            t = self.tables[path] = Table(dset, info)
        return t

    def info(self, path: str) -> DatasetInfo:
        return self.table(path).info

    def length(self, path: str) -> int:
        t = self.table(path)
        if t.info.region_of is not None and self.kind(t.info.region_of) == "dataset":
            t.grow(self.length(t.info.region_of))
        return t.length

    def attrs(self, path: str) -> dict:
        path = norm(path)
        if self.kind(path) is None:
            raise KeyError(f"no object {path!r} in the output")
        return dict(self.route(path)[path].attrs) if path else dict(self.output.attrs)

    # -- changes -----------------------------------------------------------------------------
    def create_group(self, path: str) -> None:
        path = norm(path)
        if self.kind(path) is None:
            self.route(path).require_group(path)
            self._made(path, "group")

    def _made(self, path: str, kind: str) -> None:
        """`path` now exists, and so do the groups above it."""
        self.known[path] = kind
        if self.absent:
            parts = path.split("/")
            self.absent.difference_update("/".join(parts[:i]) for i in range(1, len(parts) + 1))

    def create_dataset(self, path: str, dtype, rowshape=(), region_of: str | None = None) -> None:
        path = norm(path)
        if self.kind(path) is not None:
            return
        dtype = np.dtype(dtype)
        rowshape = tuple(int(n) for n in rowshape)
        rowbytes = max(1, dtype.itemsize * int(np.prod(rowshape, dtype=np.int64)))
        rows = max(1, min(self.chunk_bytes // rowbytes, 1 << 20))
        kwargs = {"fillvalue": np.zeros((), dtype)} if dtype.names else {}
        dset = self.route(path).create_dataset(path, shape=(0,) + rowshape, maxshape=(None,) + rowshape,
                                               dtype=dtype, chunks=(rows,) + rowshape, **kwargs)
        self._made(path, "dataset")
        self.tables[path] = Table(dset, DatasetInfo(dtype, rowshape, True, region_of))
        if region_of:
            self.regions_of.setdefault(norm(region_of), []).append(path)

    def set_attrs(self, path: str, attrs: dict) -> None:
        path = norm(path)
        if self.kind(path) is None:
            self.create_group(path)
        target = self.route(path)[path] if path else self.output
        for key, value in attrs.items():
            target.attrs[key] = value

    def delete(self, path: str) -> None:
        path = norm(path)
        for name in [p for p in self.tables if p == path or p.startswith(path + "/")]:
            del self.tables[name]
        for name in [p for p in self.known if p == path or p.startswith(path + "/")]:
            del self.known[name]
        self.absent.add(path)
        for paths in self.regions_of.values():
            paths[:] = [p for p in paths if p != path and not p.startswith(path + "/")]
        f = self.route(path)
        if path in f:
            del f[path]

    def read(self, path: str, a: int, b: int) -> np.ndarray:
        t = self.table(path)
        out = t.read(a, b)
        for lo, hi in t.away_runs(a, b):
            out[lo - a: hi - a] = self._fetch(path, lo, hi)
        return out

    def _fetch(self, path: str, a: int, b: int) -> np.ndarray:
        if self.fetch is None:
            raise FlowError(f"rows {a}:{b} of {path} were written by another rank, and this store cannot read "
                            "them back")
        return self.fetch(norm(path), a, b)

    def write(self, path: str, a: int, arr: np.ndarray) -> None:
        t = self.table(path)
        b = a + len(arr)
        if self.undo is not None and a < t.flushed:
            fb = min(b, t.flushed)
            self.undo(norm(path), a, self.read(path, a, fb))
        if t.away:
            self._take_chunks(path, t, a, b)
        t.write(a, arr)
        if t.length > t.flushed and norm(path) in self.regions_of:
            for region in self.regions_of[norm(path)]:
                if self.kind(region) == "dataset":
                    self.table(region).grow(t.length)

    def _take_chunks(self, path: str, t: Table, a: int, b: int) -> None:
        """Rank 0 is about to write rows [a, b): away chunks among them become rank 0's
        again, and those it covers only in part are fetched first (their other rows)."""
        n = t.chunk_rows
        for lo, hi in t.away_runs(a, b):
            for c in range(lo // n, (hi - 1) // n + 1):
                c0, c1 = c * n, min((c + 1) * n, t.length)
                if c0 < a or c1 > b:  # a partial write: the chunk's other rows come from storage
                    rows = self._fetch(path, c0, c1)
                    t.away.discard(c)
                    t.write(c0, rows)
                else:
                    t.away.discard(c)

    def hand_over(self, path: str, a: int, b: int) -> tuple[int, int] | None:
        """Storage chunks wholly inside rows [a, b) become another rank's to write
        (it holds their rows); returns the rows they span, or None if there are none."""
        t = self.table(path)
        n = t.chunk_rows
        if not n:
            return None
        lo, hi = -(-a // n), b // n
        if lo >= hi:
            return None
        t.away.update(range(lo, hi))
        self.extents.add(norm(path))
        return lo * n, hi * n

    def take_back(self) -> None:
        """Read every away chunk back and hold it as rank 0's own rows (before h5py
        objects of the output are handed to a module: rank 0's HDF5 view must be complete)."""
        for path, t in list(self.tables.items()):
            for lo, hi in t.away_runs(0, t.length):
                rows = self._fetch(path, lo, hi)
                t.away.difference_update(range(lo // t.chunk_rows, (hi - 1) // t.chunk_rows + 1))
                t.write(lo, rows)

    def grow(self, path: str, n: int) -> None:
        """Make the dataset at least `n` rows long; rows not written read as zeros."""
        t = self.table(path)
        t.grow(max(n, t.length))
        for region in self.regions_of.get(norm(path), []):
            if self.kind(region) == "dataset":
                self.table(region).grow(t.length)

    def reserve(self, path: str, n: int) -> int:
        start = self.length(path)
        self.grow(path, start + n)
        return start

    def pending_bytes(self) -> int:
        return sum(t.pending_bytes for t in self.tables.values())

    def flush(self) -> None:
        """Write every tail and patch to HDF5 and flush the files (with many
        writers: after the other ranks stored what they were handed, so that
        rank 0's commit comes after theirs and sets every extent)."""
        if self.sync is not None:
            self.sync()
        extents, self.extents = self.extents, set()
        for path in list(self.tables):
            t = self.tables[path]
            if t.info.region_of is not None:
                self.length(path)  # a region grows with its dataset
            if t.length != t.flushed or t.patches or t.tail_rows or path in extents:
                t.flush(extent=path in extents)
        self.output.flush()
        if self.scratch is not None:
            self.scratch.flush()

    def close(self) -> None:
        if self.scratch is not None:
            self.scratch.close()
            if self.scratch_path and os.path.exists(self.scratch_path):
                os.remove(self.scratch_path)
            self.scratch = None
