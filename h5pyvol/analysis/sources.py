"""Inputs of an analysis: which datasets, and how any process reopens them.

Owns the `Source` record (a connector string, a file name and a dataset
path: what a worker in another process needs to open a dataset), the file
URLs users may give instead of open datasets (``rados://pool/name?conf=...``,
``s3://bucket/key?endpoint_url=...``, ``memory://name``, a native path), and
`Input`: one named input as the caller resolved it (shape, dtype, attributes,
fill value, and the storage layer's descriptor of its chunks), with the live
h5py Dataset in the caller's process.
Workers open files read-only, once per call (`open_dataset`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

import h5pyvol
from h5pyvol.registry import ConnectorSpec, available
from h5pyvol.storage import describe


@dataclass(frozen=True)
class Source:
    """Where a dataset is, so that any process can open it."""

    spec: str | None
    """The h5pyvol connector string (``rados;pool=p;conf=...``), or None for a native HDF5 file."""
    name: str
    """The file's name for its connector (a native file's absolute path)."""
    path: str
    """The dataset's path in the file."""

    @property
    def connector(self) -> str | None:
        return ConnectorSpec.parse(self.spec).name if self.spec is not None else None

    @property
    def process_local(self) -> bool:
        """Whether only the process that holds the file can open it (the memory connector)."""
        return self.connector == "memory"

    def url(self) -> str:
        """The file URL `parse_url` reads back (without the dataset path)."""
        if self.spec is None:
            return self.name
        spec = ConnectorSpec.parse(self.spec)
        opts = dict(spec.options)
        container = {"s3": "bucket", "rados": "pool"}.get(spec.name)
        head = f"{spec.name}://" + (f"{opts.pop(container)}/" if container and container in opts else "")
        query = f"?{urllib.parse.urlencode(opts)}" if opts else ""
        return head + self.name + query

    def open_file(self) -> h5py.File:
        """The file, opened read-only through its connector (or natively)."""
        if self.spec is None:
            # Without locking: the caller may hold the file open for writing
            # (it flushed first). A file this process already has open must
            # be opened again with the same locking flags as then, however.
            try:
                return h5py.File(self.name, "r", locking=False)
            except OSError:
                return h5py.File(self.name, "r")
        spec = ConnectorSpec.parse(self.spec)
        return h5pyvol.File(self.name, "r", spec.name, **dict(spec.options))

    def __str__(self) -> str:
        return f"{self.url()}:{self.path}"


def parse_url(url: str) -> tuple[str | None, str]:
    """(connector string or None, file name) for a file URL.

    ``CONNECTOR://NAME?key=value&...`` selects an installed connector with
    options; for ``s3`` and ``rados`` the first part of NAME is the bucket or
    pool (``s3://bucket/key``). ``file://PATH`` and plain paths are native
    HDF5 files.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "file":
        path = rest if sep else url
        return None, os.path.abspath(path)
    if scheme not in available():
        raise ValueError(f"{url!r}: unknown connector {scheme!r} (installed: {', '.join(sorted(available()))})")
    rest, _, query = rest.partition("?")
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if scheme in ("s3", "rados"):
        container, _, rest = rest.partition("/")
        if not container or not rest:
            raise ValueError(f"{url!r} is not of the form {scheme}://{'BUCKET' if scheme == 's3' else 'POOL'}/NAME")
        options.setdefault("bucket" if scheme == "s3" else "pool", container)
    if not rest:
        raise ValueError(f"{url!r} names no file")
    return h5pyvol.connector_string(scheme, **options), rest


def source_of(dataset: h5py.Dataset) -> Source:
    """The Source of an open h5py Dataset."""
    spec = h5pyvol.connector_string_of(dataset.file)
    name = dataset.file.filename
    return Source(spec, name if spec is not None else os.path.abspath(name), dataset.name)


@dataclass
class Input:
    """One named input, resolved in the caller: a dataset (or a numpy array)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    source: Source | None = None
    array: np.ndarray | None = None
    """A numpy array given directly: sliced and sent with each task."""
    attrs: dict = field(default_factory=dict)
    fill: Any = None
    descriptor: dict | None = None
    """How the dataset's chunks are stored (`h5pyvol.storage.describe`): chunk
    shape, dtype, filters, encoding; None for a numpy array."""
    dataset: h5py.Dataset | None = field(default=None, repr=False, compare=False)
    """The live dataset in the caller's process; never pickled."""

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """The shape of the stored chunks (the storage grid's, also for contiguous datasets)."""
        return tuple(self.descriptor["chunks"]) if self.descriptor else None

    @property
    def filters(self) -> list:
        """The filters stored chunks pass through, in order (``[["gzip", 6]]``...)."""
        return list(self.descriptor.get("filters") or []) if self.descriptor else []

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["dataset"] = None
        return state

    @property
    def path(self) -> str:
        return self.source.path if self.source else self.name


def _read_attrs(obj: h5py.HLObject) -> dict:
    out = {}
    for key in obj.attrs:
        try:
            out[key] = obj.attrs[key]
        except (OSError, TypeError, ValueError):  # a type h5py cannot read: not queryable
            continue
    return out


def _from_dataset(name: str, ds: h5py.Dataset) -> Input:
    if not isinstance(ds, h5py.Dataset):
        raise TypeError(f"input {name!r}: {ds!r} is not an h5py Dataset")
    if ds.shape is None:
        raise ValueError(f"input {name!r} ({ds.name}) has a null dataspace: no elements to analyse")
    try:
        fill = ds.fillvalue
        fill = fill.item() if isinstance(fill, np.generic) else fill
    except (OSError, TypeError):
        fill = None
    return Input(name, tuple(ds.shape), ds.dtype, source_of(ds), attrs=_read_attrs(ds), fill=fill,
                 descriptor=describe(ds), dataset=ds)


def open_input_file(ref: Any) -> h5py.File:
    """An h5py File from an open File (returned as is), a file URL or a path."""
    if isinstance(ref, h5py.File):
        return ref
    if isinstance(ref, h5py.Group):
        return ref.file
    if isinstance(ref, str | os.PathLike):
        spec, name = parse_url(os.fspath(ref))
        return Source(spec, name, "/").open_file()
    raise TypeError(f"a file is an h5py File, a file URL or a path, not {type(ref).__name__}")


def resolve(inputs: Mapping[str, Any], opened: list[h5py.File]) -> dict[str, Input]:
    """Inputs by name from what users pass: h5py Datasets, ``(file URL or
    name, dataset path)`` pairs, or numpy arrays. Files this opens are
    appended to `opened` (the caller closes them)."""
    if not isinstance(inputs, Mapping) or not inputs:
        raise TypeError("inputs must be a non-empty mapping of names to datasets, (file, path) pairs or arrays")
    out: dict[str, Input] = {}
    for name, value in inputs.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"input names are non-empty strings, not {name!r}")
        if isinstance(value, h5py.Dataset):
            out[name] = _from_dataset(name, value)
        elif isinstance(value, tuple) and len(value) == 2:
            file_ref, path = value
            f = open_input_file(file_ref)
            if f is not file_ref:
                opened.append(f)
            if path not in f:
                raise KeyError(f"input {name!r}: no dataset {path!r} in {f.filename!r}")
            out[name] = _from_dataset(name, f[path])
        elif isinstance(value, np.ndarray):
            out[name] = Input(name, value.shape, value.dtype, array=value)
        else:
            raise TypeError(f"input {name!r}: give an h5py Dataset, a (file URL, dataset path) pair or a numpy "
                            f"array, not {type(value).__name__}")
    return out


# ---------------------------------------------------------------- in workers

_live: dict[str, dict[Source, h5py.Dataset]] = {}
_local = threading.local()


@contextlib.contextmanager
def live(call_id: str, inputs: Mapping[str, Input]):
    """While a call runs, workers in the caller's own process (threads of an
    in-process Dask cluster) use the caller's open datasets instead of
    opening the files a second time."""
    _live[call_id] = {i.source: i.dataset for i in inputs.values() if i.source and i.dataset is not None}
    try:
        yield
    finally:
        _live.pop(call_id, None)


def open_dataset(call_id: str, source: Source) -> h5py.Dataset:
    """The dataset of `source`: the caller's own when this is its process,
    else opened once per call and thread; files of earlier calls are closed
    (their data may have changed since)."""
    mine = _live.get(call_id, {}).get(source)
    if mine is not None:
        return mine
    cache = _local.__dict__.setdefault("open", {})
    for key in [k for k in cache if k[0] != call_id]:
        f, _ = cache.pop(key)
        f.close()
    entry = cache.get((call_id, source))
    if entry is None:
        f = source.open_file()
        entry = cache[(call_id, source)] = (f, f[source.path])
    return entry[1]
