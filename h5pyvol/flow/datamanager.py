"""`H5FlowDataManager`: h5flow's data-manager API over the engine's rows.

Stages see the output through it: datasets ``<name>/data``, references
``<parent>/ref/<child>/ref`` (int64 pairs) and their ``ref_region`` lookups
on both sides. Inside a run every call reads and writes the current unit of
work (an `overlay.Overlay`); standalone, as in h5flow's tests, it works on the
file directly (a `store.Store`). `get_dset` gives a `DatasetView`, which reads
and writes like an h5py Dataset and sees rows not yet written to HDF5.

While the engine runs a component it sets `H5FlowDataManager._access` to that
component's `reuse.Access`, and every call notes what it reads and writes
(see `reuse`); direct h5py access marks the component's accesses as unknown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import h5py
import numpy as np

from . import dereference as deref
from .errors import FlowError
from .overlay import RefTable, update_region
from .reuse import Access
from .store import REF_DTYPE, REGION_DTYPE, Store, norm


def open_output(filepath: str, mode: str = "a", connector: str | None = None, **options: Any) -> h5py.File:
    """Open a native file, or a file on a connector (``s3://``, ``rados://`` or `connector`)."""
    if connector or "://" in str(filepath):
        import h5pyvol

        return h5pyvol.File(str(filepath), mode, connector=connector, **options)
    if mode == "a" and not os.path.exists(filepath):
        mode = "w-"  # h5py's 'a' relies on the open error's errno, which a loaded VOL plugin can hide
    return h5py.File(filepath, mode)


class AttrsView(Mapping):
    """An object's attributes as the current unit of work sees them; assigning writes through."""

    def __init__(self, dm: H5FlowDataManager, path: str) -> None:
        self._dm, self._path = dm, path

    def _all(self) -> dict:
        self._dm._note_read(self._path)
        return self._dm._rows.attrs(self._path)

    def __getitem__(self, key: str) -> Any:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __setitem__(self, key: str, value: Any) -> None:
        self._dm.set_attrs(self._path, **{key: value})

    def __repr__(self) -> str:
        return f"<attributes of {self._path!r}: {self._all()!r}>"


class DatasetView:
    """A dataset of the output, read and written like an h5py Dataset (first
    axis: ints, slices, index or boolean arrays; then field names and other axes)."""

    def __init__(self, dm: H5FlowDataManager, path: str) -> None:
        self._dm = dm
        self.path = norm(path)

    # -- what h5py users look at ---------------------------------------------------------------
    @property
    def _rows(self):
        return self._dm._rows

    @property
    def name(self) -> str:
        return "/" + self.path

    @property
    def dtype(self) -> np.dtype:
        return self._rows.info(self.path).dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self),) + self._rows.info(self.path).rowshape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def maxshape(self) -> tuple:
        return (None,) + self._rows.info(self.path).rowshape

    @property
    def chunks(self) -> tuple | None:
        store = self._dm._store_or_none()
        if store is not None and store.kind(self.path) == "dataset":
            return store.table(self.path).dset.chunks
        return None

    @property
    def attrs(self) -> AttrsView:
        return AttrsView(self._dm, self.path)

    @property
    def id(self):
        self._dm._note_opaque(f"{self.name}.id")
        return self._dm._store().h5(self.path).id

    @property
    def file(self) -> h5py.File:
        return self._dm.fh

    def __len__(self) -> int:
        return self._rows.length(self.path)

    def __repr__(self) -> str:
        return f'<flow dataset "{self.name}": shape {self.shape}, type "{self.dtype.str}">'

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DatasetView):
            return self._dm is other._dm and self.path == other.path
        if isinstance(other, h5py.Dataset):
            return norm(other.name) == self.path and os.path.abspath(other.file.filename) == os.path.abspath(
                self._dm.fh.filename)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((id(self._dm), self.path))

    def __array__(self, dtype=None, copy=None):
        arr = self.read_rows(0, len(self))
        return arr.astype(dtype) if dtype is not None else arr

    # -- rows ------------------------------------------------------------------------------------------
    def read_rows(self, a: int, b: int) -> np.ndarray:
        n = len(self)
        a, b = max(0, min(a, n)), max(0, min(b, n))
        return self._rows.read(self.path, a, max(a, b))

    def take_rows(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index {int(idx.max()) if idx.max() >= n else int(idx.min())} is out of range "
                             f"for {self.name} ({n} rows)")
        idx = np.where(idx < 0, idx + n, idx)
        return deref.take_rows(_RowReader(self), idx)

    def _first_axis(self, key) -> tuple[Any, tuple, list[str]]:
        if not isinstance(key, tuple):
            key = (key,)
        fields = [k for k in key if isinstance(k, str | bytes)]
        rest = [k for k in key if not isinstance(k, str | bytes)]
        first = rest[0] if rest else slice(None)
        if first is Ellipsis:
            first, rest = slice(None), [Ellipsis] + rest[1:]
        else:
            rest = rest[1:]
        return first, tuple(rest), [f.decode() if isinstance(f, bytes) else f for f in fields]

    def __getitem__(self, key) -> Any:
        first, rest, fields = self._first_axis(key)
        n = len(self)
        if isinstance(first, slice):
            a, b, step = first.indices(n)
            data = self.read_rows(min(a, b), max(a, b)) if step > 0 else self.read_rows(b + 1, a + 1)[::-1]
            data = data[::abs(step)] if abs(step) != 1 else data
            scalar = False
        elif isinstance(first, int | np.integer):
            i = int(first) + (n if first < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {int(first)} is out of range for {self.name} ({n} rows)")
            data, scalar = self.read_rows(i, i + 1), True
        else:
            idx = np.asarray(first)
            if idx.dtype == bool:
                if len(idx) != n:
                    raise IndexError(f"boolean index of length {len(idx)} for {self.name} ({n} rows)")
                idx = np.flatnonzero(idx)
            data, scalar = self.take_rows(idx.astype(np.int64)), False
        if rest:
            data = data[(slice(None),) + rest]
        if fields:
            data = data[fields[0]] if len(fields) == 1 else data[fields]
        return data[0] if scalar else data

    def __setitem__(self, key, value) -> None:
        self._dm._note_write(self.path)
        first, rest, fields = self._first_axis(key)
        n = len(self)
        if isinstance(first, int | np.integer):
            i = int(first) + (n if first < 0 else 0)
            first = slice(i, i + 1)
            value = np.expand_dims(np.asarray(value), 0) if not fields and not rest else value
        if isinstance(first, slice):
            a, b, step = first.indices(n)
            if step != 1:
                raise FlowError(f"{self.name}: writes take a contiguous slice (got step {step})")
            if first.stop is not None and first.stop > n:
                raise FlowError(f"{self.name}: cannot write rows {first.start}:{first.stop} past the end ({n} rows); "
                                "reserve_data first")
            if fields or rest:
                rows = self.read_rows(a, b)
                target = rows[fields[0]] if len(fields) == 1 else rows
                target[(slice(None),) + rest] = value
                self._rows.write(self.path, a, rows)
                return
            info = self._rows.info(self.path)
            arr = np.broadcast_to(np.asarray(value, dtype=info.dtype), (b - a,) + info.rowshape)
            self._rows.write(self.path, a, arr)
            return
        idx = np.asarray(first)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
        if not len(idx):
            return
        lo, hi = int(idx.min()), int(idx.max()) + 1
        if lo < 0 or hi > n:
            raise FlowError(f"{self.name}: index out of range for {n} rows")
        rows = self.read_rows(lo, hi)
        sub = rows[idx - lo]
        target = sub[fields[0]] if len(fields) == 1 else sub
        target[(slice(None),) + rest] = value
        rows[idx - lo] = sub
        self._rows.write(self.path, lo, rows)

    def resize(self, size, axis: int = 0) -> None:
        n = size[0] if isinstance(size, tuple) else int(size)
        if n < len(self):
            raise FlowError(f"{self.name}: shrinking a dataset during a flow is not supported")
        self._dm._note_write(self.path)
        self._dm._grow(self.path, n)


class _RowReader:
    """take_rows' view of a DatasetView's rows."""

    def __init__(self, view: DatasetView) -> None:
        self.view = view
        self.shape = view.shape
        self.dtype = view.dtype

    def __getitem__(self, s: slice) -> np.ndarray:
        return self.view.read_rows(s.start, s.stop)


class H5FlowDataManager:
    """Coordinates access to the output file (h5flow's API).

    ``H5FlowDataManager(path, mode='a')`` works on its own, as in h5flow;
    during an ``h5pyvol flow`` run the engine makes one per rank and every
    call goes to the chunk being run.
    """

    def __init__(self, filepath: str, mode: str = "a", mpi: bool = False, drop_list: list[str] | None = None,
                 **open_options: Any) -> None:
        self.filepath = str(filepath)
        self.mode = mode
        self.mpi_flag = False  # the engine never makes collective calls here
        self.drop_list = list(drop_list or [])
        self._open_options = open_options
        self._store_obj: Store | None = None
        self._top = None  # the current overlay, set by the engine
        self._ref_tables: dict[str, RefTable] = {}
        self._access: Access | None = None  # the running component's, set by the engine
        self.comm, self.rank, self.size = None, 0, 1

    def __repr__(self) -> str:
        return f"H5FlowDataManager(filepath={self.filepath}, mode={self.mode}, drop_list={self.drop_list})"

    # -- what the running component reads and writes (for reuse) -----------------------------------
    def _note_read(self, path: str) -> None:
        if self._access is not None:
            self._access.reads.add(norm(path))

    def _note_write(self, path: str) -> None:
        if self._access is not None:
            self._access.writes.add(norm(path))

    def _note_opaque(self, what: str) -> None:
        if self._access is not None and self._access.opaque is None:
            self._access.opaque = what

    def _note_creation(self, path: str, dataset: bool) -> None:
        """Before creating `path`: note it and the groups above it that do not exist yet."""
        if self._access is None:
            return
        parts = norm(path).split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if self._rows.kind(prefix) is None:
                if i == len(parts) and dataset:
                    self._access.writes.add(prefix)
                else:
                    self._access.created.add(prefix)

    # -- where reads and writes go ---------------------------------------------------------------
    def _store(self) -> Store:
        if self._store_obj is None:
            if self._top is not None:
                raise FlowError("direct file access (fh, h5py objects) is only available on rank 0 under MPI; "
                                "use get_dset / get_attrs")
            f = open_output(self.filepath, self.mode, **self._open_options)
            self._store_obj = Store(f, self.drop_list, scratch_dir=os.path.dirname(os.path.abspath(self.filepath))
                                    if "://" not in self.filepath else None)
        return self._store_obj

    def _store_or_none(self) -> Store | None:
        return self._store_obj

    @property
    def _rows(self):
        return self._top if self._top is not None else self._store()

    def _attach(self, store: Store | None, top=None) -> None:
        """Used by the engine: the committed store (rank 0) and the current overlay."""
        self._store_obj = store
        self._top = top

    @property
    def _fh(self) -> h5py.File | None:
        """The open output file, or None (h5flow's attribute)."""
        if self._store_obj is None:
            return None
        self._note_opaque("data_manager._fh")
        self._store_obj.absent.clear()  # the caller may create objects through h5py
        return self._store_obj.output

    @property
    def fh(self) -> h5py.File:
        """The output h5py.File, with every pending row written first (not recommended: use get_dset)."""
        self._note_opaque("data_manager.fh")
        store = self._store()
        store.take_back()  # rows other ranks wrote themselves: rank 0's HDF5 view must hold them
        store.flush()
        store.absent.clear()  # the caller may create objects through h5py
        return store.output

    def __enter__(self) -> H5FlowDataManager:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    def finish(self) -> None:
        """Delete the drop list's objects, write everything and close the file (standalone use)."""
        if self._store_obj is None:
            return
        store = self._store_obj
        store.flush()
        store.close()
        store.output.close()
        self._store_obj = None

    def close_file(self) -> None:
        self.finish()

    # -- existence -------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        self._note_read(path)
        return self._rows.kind(path) is not None

    def dset_exists(self, dataset_name: str) -> bool:
        self._note_read(f"{dataset_name}/data")
        return self._rows.kind(f"{dataset_name}/data") == "dataset"

    def ref_exists(self, parent_dataset_name: str, child_dataset_name: str) -> bool:
        return self.exists(f"{parent_dataset_name}/ref/{child_dataset_name}/ref") or self.exists(
            f"{child_dataset_name}/ref/{parent_dataset_name}/ref")

    def ref_region_exists(self, parent_dataset_name: str, child_dataset_name: str) -> bool:
        return self.exists(f"{parent_dataset_name}/ref/{child_dataset_name}/ref_region")

    def attr_exists(self, name: str, key: str) -> bool:
        return self.exists(name) and key in self._rows.attrs(name)

    # -- getting ----------------------------------------------------------------------------------
    def _dataset(self, path: str) -> DatasetView:
        if self._access is not None:
            self._access.reads.add(norm(path))
        kind = self._rows.kind(path)
        if kind != "dataset":
            raise KeyError(f"no dataset {norm(path)!r} in {self.filepath}" + (" (it is a group)" if kind else ""))
        return DatasetView(self, path)

    def get_dset(self, dataset_name: str) -> DatasetView:
        return self._dataset(f"{dataset_name}/data")

    def get_attrs(self, name: str) -> AttrsView:
        if not self.exists(name):
            raise KeyError(f"no object {norm(name)!r} in {self.filepath}")
        return AttrsView(self, name)

    def get_ref(self, parent_dataset_name: str, child_dataset_name: str) -> tuple[DatasetView, tuple[int, int]]:
        forward = f"{parent_dataset_name}/ref/{child_dataset_name}/ref"
        if self.exists(forward):
            return self._dataset(forward), (0, 1)
        backward = f"{child_dataset_name}/ref/{parent_dataset_name}/ref"
        if self.exists(backward):
            return self._dataset(backward), (1, 0)
        raise KeyError(f"no references between {parent_dataset_name!r} and {child_dataset_name!r}")

    def get_ref_region(self, parent_dataset_name: str, child_dataset_name: str) -> DatasetView:
        return self._dataset(f"{parent_dataset_name}/ref/{child_dataset_name}/ref_region")

    def get_refs(self, dataset_name: str) -> list[DatasetView]:
        """Every reference dataset that links `dataset_name` to another."""
        store = self._store()
        store.flush()
        f = store.route(norm(dataset_name))
        if norm(dataset_name) not in f:
            return []
        found: list[str] = []
        f[norm(dataset_name)].visititems(
            lambda n, d: found.append(d.attrs["ref"]) if isinstance(d, h5py.Dataset) and n.endswith("ref_region")
            and "ref" in d.attrs else None)
        return [self._dataset(p) for p in found if self.exists(p)]

    def __getitem__(self, args) -> Any:
        if isinstance(args, str):
            if self._rows.kind(args) == "dataset":
                self._note_read(args)
                return DatasetView(self, args)
            self._note_opaque(f"data_manager[{args!r}]")
            return self._store().h5(args)
        args = tuple(args)
        sel = None
        last = args[-1]
        if isinstance(last, slice):
            sel, args = last, args[:-1]
        elif isinstance(last, int | np.integer):
            sel, args = slice(int(last), int(last) + 1), args[:-1]
        elif not isinstance(last, str | bytes):
            sel, args = deref.indices(last), args[:-1]
        if len(args) == 1:
            dset = self.get_dset(args[0])
            return dset if sel is None else dset[sel]
        pairs = list(zip(args[:-1], args[1:], strict=True))
        regions = None
        if sel is None:
            sel = slice(0, len(self.get_dset(args[0])))
        else:
            regions = [self.get_ref_region(p, c) for p, c in pairs]
        refs, dirs = zip(*[self.get_ref(p, c) for p, c in pairs], strict=True)
        if isinstance(sel, slice):
            sel = slice(*sel.indices(len(self.get_dset(args[0]))))
        return deref.dereference_chain(sel, refs, data=self.get_dset(args[-1]), regions=regions,
                                       ref_directions=dirs)

    # -- changing ----------------------------------------------------------------------------------
    def set_attrs(self, name: str, **attrs: Any) -> None:
        if self._access is not None:
            self._note_creation(name, dataset=False)
            self._access.set_attrs(norm(name), attrs)
        self._rows.set_attrs(name, attrs)

    def create_dset(self, dataset_name: str, dtype, shape: tuple = ()) -> None:
        """Create ``<dataset_name>/data``, a growable table of rows of `dtype`
        (each row of `shape`), unless it exists."""
        path = f"{dataset_name}/data"
        kind = self._rows.kind(path)
        if kind is None:
            self._note_creation(path, dataset=True)
            self._rows.create_dataset(path, np.dtype(dtype), tuple(shape))
        elif kind != "dataset":
            raise FlowError(f"cannot create dataset {norm(path)!r}: a group of that name exists")

    def create_ref(self, parent_dataset_name: str, child_dataset_name: str) -> None:
        """Create references ``parent -> child`` and the ref_region of each side, unless they exist."""
        parent, child = norm(parent_dataset_name), norm(child_dataset_name)
        if self.exists(f"{child}/ref/{parent}/ref"):
            raise FlowError(f"references for {parent}->{child} already exist under {child}/ref/{parent}")
        path = f"{parent}/ref/{child}"
        if self.exists(f"{path}/ref"):
            return
        for name in (parent, child):
            if not self.dset_exists(name):
                raise FlowError(f"create_ref({parent!r}, {child!r}): dataset {name!r} does not exist "
                                "(create_dset first)")
        rows = self._rows
        self._note_creation(f"{path}/ref", dataset=True)
        self._note_creation(f"{path}/ref_region", dataset=True)
        self._note_creation(f"{child}/ref/{parent}/ref_region", dataset=True)
        rows.create_dataset(f"{path}/ref", REF_DTYPE, (2,))
        rows.create_dataset(f"{path}/ref_region", REGION_DTYPE, (), region_of=f"{parent}/data")
        rows.create_dataset(f"{child}/ref/{parent}/ref_region", REGION_DTYPE, (), region_of=f"{child}/data")
        rows.set_attrs(f"{path}/ref", {"dset0": f"/{parent}/data", "dset1": f"/{child}/data",
                                       "ref_region0": f"/{path}/ref_region",
                                       "ref_region1": f"/{child}/ref/{parent}/ref_region"})
        rows.set_attrs(f"{path}/ref_region", {"ref": f"/{path}/ref"})
        rows.set_attrs(f"{child}/ref/{parent}/ref_region", {"ref": f"/{path}/ref"})

    def _grow(self, path: str, n: int) -> None:
        self._rows.grow(path, n)

    def reserve_data(self, dataset_name: str, spec) -> slice:
        """Rows to write: `spec` rows appended (an int), or the rows of a slice
        (the dataset grows to reach it)."""
        path = f"{dataset_name}/data"
        if self._rows.kind(path) != "dataset":
            raise KeyError(f"reserve_data: no dataset {norm(path)!r} (create_dset first)")
        self._note_write(path)
        if isinstance(spec, int | np.integer) and not isinstance(spec, bool):
            if spec < 0:
                raise FlowError(f"reserve_data({dataset_name!r}, {spec}): a negative row count")
            start = self._rows.reserve(path, int(spec))
            return slice(start, start + int(spec))
        if isinstance(spec, slice):
            if spec.stop is None or spec.stop < 0:
                raise FlowError(f"reserve_data({dataset_name!r}, {spec}): a slice needs a non-negative stop")
            self._grow(path, spec.stop)
            return spec
        raise TypeError(f"spec {spec} is not a valid type, must be slice or integer")

    def write_data(self, dataset_name: str, spec, data) -> None:
        self.get_dset(dataset_name)[spec] = data

    def _ref_table(self, path: str) -> RefTable:
        table = self._ref_tables.get(path)
        if table is None:
            attrs = self._rows.attrs(path)
            try:
                table = RefTable(attrs["dset0"], attrs["dset1"], attrs["ref_region0"], attrs["ref_region1"])
            except KeyError as exc:
                raise FlowError(f"{path} is not a reference dataset (no attribute {exc})") from exc
            self._ref_tables[path] = table
        return table

    def write_ref(self, parent_dataset_name: str, child_dataset_name: str, refs) -> None:
        """Add references: `refs` is (N, 2), parent index then child index."""
        refs = np.asarray(refs)
        if refs.size == 0:
            refs = refs.reshape(0, 2)
        if refs.ndim != 2 or refs.shape[1] != 2 or refs.dtype.kind not in "iu":
            raise FlowError(f"write_ref({parent_dataset_name!r}, {child_dataset_name!r}): references must be an "
                            f"(N, 2) integer array, got {refs.dtype} {refs.shape}")
        view, direction = self.get_ref(parent_dataset_name, child_dataset_name)
        stored = (refs if direction == (0, 1) else refs[:, ::-1]).astype(REF_DTYPE)
        if len(stored) and stored.min() < 0:
            raise FlowError(f"write_ref({parent_dataset_name!r}, {child_dataset_name!r}): negative index")
        rows = self._rows
        path = view.path
        row0 = rows.reserve(path, len(stored))
        rows.write(path, row0, stored)
        table = self._ref_table(path)
        if self._access is not None:
            self._access.writes.update((path, table.region0, table.region1))
        if isinstance(rows, Store):
            update_region(rows, table.region0, stored[:, 0], row0)
            update_region(rows, table.region1, stored[:, 1], row0)
        else:
            rows.add_refs(path, table, row0, stored)

    def delete(self, name: str) -> None:
        """Delete object `name` and the reference groups that link it."""
        self._note_opaque(f"delete({name!r})")
        store = self._store()
        store.flush()
        for ref in self.get_refs(name):
            for key in ("ref_region0", "ref_region1"):
                region = norm(ref.attrs[key])
                if store.kind(region):
                    store.delete(region.rsplit("/", 1)[0])
        if store.kind(name):
            store.delete(name)
