"""The Ceph RADOS connector: HDF5 files stored as RADOS objects in a pool.

Owns the mapping of an HDF5 file onto RADOS (docs/rados-layout.md is the
spec): one *head* object per file whose omap holds all metadata, and one
object per written dataset chunk holding the chunk's raw bytes. It also owns
the commit protocol (chunk objects are written under new versioned names, the
head's omap is updated in one atomic write op, superseded chunks are removed
afterwards), asynchronous bounded chunk I/O, chunk placement reports
(`RadosDataset.layout`, `layout`) and the translation of librados errors
into clear Python exceptions.

Options (strings): pool (required), conf, name or user, keyring, namespace,
timeout (seconds, default 30), inflight (concurrent chunk ops, default 32),
chunk_bytes (default chunk size for contiguous datasets, default 4 MiB).
"""

from __future__ import annotations

import base64
import errno
import itertools
import json
import os
import struct
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from h5pyvol import connector as api
from h5pyvol.selection import Selection

FORMAT = "h5pyvol-rados/2"  # 2: a datatype's refs also count the arrays created with it
FORMATS_READ = ("h5pyvol-rados/1", FORMAT)
HEAD_PREFIX = "h5pyvol.f."  # + the HDF5 file name
DATA_PREFIX = "h5pyvol.d."  # + file id . token . chunk coords . generation
DEFAULT_CHUNK_BYTES = 4 << 20
DEFAULT_TIMEOUT = 30
DEFAULT_INFLIGHT = 32
OMAP_PAGE = 1000

try:  # the bindings are optional until a file is opened: `h5pyvol info` must work without them
    import rados
except ImportError:  # pragma: no cover - reported when a file is used
    rados = None


# ---------------------------------------------------------------- errors


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    return abs(code) if isinstance(code, int) else None


class _Where:
    """What the connector talks to, for error messages."""

    def __init__(self, pool: str, namespace: str, user: str, timeout: int):
        self.pool, self.namespace, self.user, self.timeout = pool, namespace, user, timeout

    def __str__(self) -> str:
        ns = f", namespace {self.namespace!r}" if self.namespace else ""
        return f"pool {self.pool!r}{ns} as {self.user}"


def _translate(code: int | None, what: str, where: _Where, detail: str = "") -> OSError:
    """A builtin exception for a failed librados call (negative or positive errno)."""
    code = abs(code) if code is not None else None
    tail = f" ({detail})" if detail else ""
    if code in (errno.EPERM, errno.EACCES):
        return PermissionError(
            code, f"RADOS refused to {what} in {where}: permission denied; the cephx user needs OSD caps "
            f"such as \"allow rw pool={where.pool}\"{tail}")
    if code in (errno.ETIMEDOUT, errno.EINTR):
        return TimeoutError(
            errno.ETIMEDOUT, f"RADOS could not {what} in {where} within {where.timeout} s: "
            f"the OSD or monitor does not answer (stopped or unreachable?){tail}")
    if code == errno.ENOENT:
        return FileNotFoundError(code, f"RADOS could not {what} in {where}: no such object{tail}")
    if code == errno.ENOSPC or code == errno.EDQUOT:
        return OSError(code, f"RADOS could not {what} in {where}: the pool is full{tail}")
    text = os.strerror(code) if code else "unknown error"
    return OSError(code or errno.EIO, f"RADOS could not {what} in {where}: {text}{tail}")


def _rados_call(fn: Callable[[], Any], what: str, where: _Where) -> Any:
    """Run a librados call, turning its exceptions into builtin ones."""
    try:
        return fn()
    except rados.Error as exc:
        raise _translate(_errno_of(exc), what, where, str(exc)) from None


# ---------------------------------------------------------------- encodings


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _meta_to_json(meta: api.ArrayMeta) -> dict:
    return {
        "type": _b64(meta.hdf5_type),
        "shape": list(meta.shape),
        "maxshape": None if meta.maxshape is None else list(meta.maxshape),
        "dcpl": _b64(meta.dcpl),
        "null": meta.null,
        **({"committed_type": meta.committed_type.hex()} if meta.committed_type else {}),
    }


def _meta_from_json(d: dict) -> api.ArrayMeta:
    return api.ArrayMeta(
        _unb64(d["type"]), tuple(d["shape"]),
        None if d["maxshape"] is None else tuple(d["maxshape"]),
        _unb64(d["dcpl"]), bool(d["null"]), bytes.fromhex(d.get("committed_type", "")),
    )


def _link_to_json(name: str, link: api.Link) -> list:
    if isinstance(link, api.HardLink):
        return [name, "hard", link.token.hex()]
    if isinstance(link, api.SoftLink):
        return [name, "soft", link.path]
    if isinstance(link, api.ExternalLink):
        return [name, "external", link.filename, link.path]
    return [name, "user", link.link_class, _b64(link.value)]


def _link_from_json(item: list) -> tuple[str, api.Link]:
    name, kind, *rest = item
    if kind == "hard":
        return name, api.HardLink(bytes.fromhex(rest[0]))
    if kind == "soft":
        return name, api.SoftLink(rest[0])
    if kind == "external":
        return name, api.ExternalLink(rest[0], rest[1])
    return name, api.UserLink(int(rest[0]), _unb64(rest[1]))


def _vlen_base(dtype: np.dtype) -> Any:
    return dtype.metadata.get("vlen") if dtype.metadata else None


def _check_storable(dtype: np.dtype) -> None:
    """Variable-length values are stored only as whole elements (object dtype)."""
    if dtype.hasobject and dtype != np.dtype(object):
        raise NotImplementedError(
            f"the rados connector stores variable-length values only as whole elements; "
            f"dtype {dtype} has them inside a compound or array type")


def encode_objects(values: np.ndarray) -> bytes:
    """Variable-length elements as JSON (never pickle): each element is null, a
    string, ``{"b": base64}`` for bytes, or ``{"a": base64}`` for the raw bytes
    of a numpy array of the dtype's variable-length base type."""
    out = []
    for v in values.reshape(-1):
        if v is None:
            out.append(None)
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, bytes | bytearray | memoryview):
            out.append({"b": _b64(bytes(v))})
        elif isinstance(v, np.ndarray):
            out.append({"a": _b64(np.ascontiguousarray(v).tobytes())})
        else:
            raise TypeError(f"cannot store a variable-length element of type {type(v).__name__}")
    return json.dumps(out, separators=(",", ":")).encode()


def decode_objects(data: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `encode_objects`, for an array of `shape` and object `dtype`."""
    base = _vlen_base(dtype)
    items = json.loads(data)
    out = np.empty(len(items), dtype=dtype)
    for i, v in enumerate(items):
        if isinstance(v, dict) and "b" in v:
            out[i] = _unb64(v["b"])
        elif isinstance(v, dict) and "a" in v:
            out[i] = np.frombuffer(_unb64(v["a"]), dtype=base if isinstance(base, np.dtype) else np.dtype(base)).copy()
        else:
            out[i] = v
    return out.reshape(shape)


def _array_to_bytes(arr: np.ndarray, dtype: np.dtype) -> bytes:
    if dtype.hasobject:
        return encode_objects(arr)
    return arr.tobytes()  # one copy, in C order, whatever the view's strides


def _array_from_bytes(data: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if dtype.hasobject:
        return decode_objects(data, dtype, shape)
    return np.frombuffer(data, dtype=dtype.base).reshape(shape + dtype.shape)


# ---------------------------------------------------------------- chunks


def default_chunks(shape: tuple[int, ...], itemsize: int, target: int = DEFAULT_CHUNK_BYTES) -> tuple[int, ...]:
    """The chunk shape of a contiguous dataset: whole trailing rows, about
    `target` bytes, so that a chunk is one contiguous run of the array."""
    chunk = []
    left = max(1, target // max(1, itemsize))
    for n in reversed(shape):
        c = max(1, min(max(1, n), left))
        chunk.append(c)
        left = max(1, left // c)
    return tuple(reversed(chunk))


def _coords_key(coords: tuple[int, ...]) -> str:
    return "_".join(str(c) for c in coords) if coords else "s"


def _coords_from_key(key: str) -> tuple[int, ...]:
    return () if key == "s" else tuple(int(c) for c in key.split("_"))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _covers(s: slice, n: int) -> bool:
    """Whether a chunk-local slice selects exactly positions 0..n-1."""
    count = len(range(s.start, s.stop, s.step or 1))
    return s.start == 0 and count == n and (count == 1 or (s.step or 1) == 1)


def _basic_plan(index: tuple, shape: tuple[int, ...], chunk: tuple[int, ...]) -> Iterator[tuple]:
    """For a selection of slices: (chunk coords, result slices, chunk-local slices)."""
    if not shape:
        yield (), (), ()
        return
    per_dim = []
    for d, s in enumerate(index):
        start, stop, step = s.indices(shape[d])
        n = len(range(start, stop, step))
        if n == 0:
            return
        c, entries = chunk[d], []
        last = start + (n - 1) * step
        for ci in range(start // c, last // c + 1):
            lo, hi = ci * c, (ci + 1) * c
            k0 = max(0, _ceil_div(lo - start, step))
            k1 = min(n, _ceil_div(hi - start, step))
            if k0 >= k1:
                continue
            p0 = start + k0 * step - lo
            entries.append((ci, slice(k0, k1), slice(p0, p0 + (k1 - k0 - 1) * step + 1, step)))
        per_dim.append(entries)
    for combo in itertools.product(*per_dim):
        yield tuple(e[0] for e in combo), tuple(e[1] for e in combo), tuple(e[2] for e in combo)


def _point_groups(coords: np.ndarray, chunk: tuple[int, ...]) -> Iterator[tuple]:
    """For coordinates: (chunk coords, positions in the selection, chunk-local coords)."""
    cidx = coords // np.asarray(chunk, dtype=np.int64)
    keys, inverse = np.unique(cidx, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(keys) + 1))
    for i, key in enumerate(keys):
        pos = order[bounds[i]:bounds[i + 1]]
        local = coords[pos] - key * np.asarray(chunk, dtype=np.int64)
        yield tuple(int(k) for k in key), pos, tuple(local.T)


class _Pump:
    """Bounded asynchronous librados operations: at most `limit` in flight.

    Completions are waited for in submission order with
    wait_for_complete_and_cb(), so read callbacks have stored their data.
    Every submitted op is waited for, even after a failure, before the
    first error is raised.
    """

    def __init__(self, limit: int, where: _Where):
        self.limit = max(1, limit)
        self.where = where
        self.pending: deque = deque()
        self.error: OSError | None = None

    def submit(self, start: Callable[[], Any], what: str, done: Callable[[Any], None] | None = None,
               missing_ok: bool = False) -> None:
        while len(self.pending) >= self.limit:
            self._wait_one()
        if self.error is not None:
            return  # stop issuing work after a failure; drain what is in flight
        slot: dict = {}
        try:
            comp = start(slot)
        except rados.Error as exc:
            self.error = _translate(_errno_of(exc), what, self.where, str(exc))
            return
        self.pending.append((comp, slot, what, done, missing_ok))

    def _wait_one(self) -> None:
        comp, slot, what, done, missing_ok = self.pending.popleft()
        comp.wait_for_complete_and_cb()
        rc = comp.get_return_value()
        if rc < 0 and not (missing_ok and -rc == errno.ENOENT):
            if self.error is None:
                self.error = _translate(rc, what, self.where)
            return
        if done is not None and self.error is None:
            try:
                done(slot.get("data"))
            except Exception as exc:  # placing the data failed: report it after draining
                if self.error is None:
                    self.error = exc

    def finish(self) -> None:
        while self.pending:
            self._wait_one()
        if self.error is not None:
            err, self.error = self.error, None
            raise err


# ---------------------------------------------------------------- nodes


class RadosAttribute(api.Attribute):
    def __init__(self, owner: RadosNode, meta: api.ArrayMeta, data: np.ndarray | None = None):
        _check_storable(meta.dtype)
        self._owner = owner
        self._meta = meta
        if data is None and not meta.null:
            data = meta.fill_array()
        self._data = data

    @property
    def meta(self) -> api.ArrayMeta:
        return self._meta

    def read(self) -> np.ndarray:
        return self._data

    def write(self, data: np.ndarray) -> None:
        self._owner._file._check_writable()
        meta = self._meta
        self._data = np.array(data, dtype=meta.dtype, copy=True).reshape(meta.shape + meta.dtype.shape)
        self._owner._attrs_dirty = True

    def to_json(self, name: str) -> list:
        payload = None if self._data is None else _b64(_array_to_bytes(self._data, self._meta.dtype))
        return [name, _meta_to_json(self._meta), payload]

    @classmethod
    def from_json(cls, owner: RadosNode, item: list) -> tuple[str, RadosAttribute]:
        name, meta_json, payload = item
        meta = _meta_from_json(meta_json)
        data = None
        if payload is not None:
            data = _array_from_bytes(_unb64(payload), meta.dtype, meta.shape)
            if not meta.dtype.hasobject:
                data = data.copy()
        return name, cls(owner, meta, data)


class RadosNode(api.Node):
    kind = ""

    def __init__(self, file: RadosFile, token: bytes):
        self._file = file
        self._token = token
        self._attrs: dict[str, RadosAttribute] = {}
        self.refs = 0
        self._dirty = True  # the node record must be written at the next commit
        self._attrs_dirty = False

    @property
    def token(self) -> bytes:
        return self._token

    @property
    def link_count(self) -> int:
        return self.refs

    def attribute_names(self) -> list[str]:
        return list(self._attrs)

    def create_attribute(self, name: str, meta: api.ArrayMeta) -> api.Attribute:
        self._file._check_writable()
        attr = self._attrs[name] = RadosAttribute(self, meta)
        self._attrs_dirty = True
        self._file.hold_type(meta.committed_type)
        return attr

    def open_attribute(self, name: str) -> api.Attribute:
        try:
            return self._attrs[name]
        except KeyError:
            raise KeyError(f"no attribute named {name!r}") from None

    def delete_attribute(self, name: str) -> None:
        self._file._check_writable()
        if name not in self._attrs:
            raise KeyError(f"no attribute named {name!r}")
        attr = self._attrs.pop(name)
        self._attrs_dirty = True
        self._file.release_type(attr.meta.committed_type)

    def rename_attribute(self, old: str, new: str) -> None:
        self._file._check_writable()
        self._attrs = {(new if k == old else k): v for k, v in self._attrs.items()}
        self._attrs_dirty = True

    def types_used(self) -> list[bytes]:
        """The committed datatypes this node's arrays were created with, one per use."""
        return [a.meta.committed_type for a in self._attrs.values() if a.meta.committed_type]

    def record(self) -> dict:
        return {"kind": self.kind, "refs": self.refs}

    def attrs_json(self) -> list:
        return [a.to_json(n) for n, a in self._attrs.items()]

    def load_attrs(self, items: list) -> None:
        self._attrs = dict(RadosAttribute.from_json(self, item) for item in items)

    def flush(self) -> None:
        self._file.flush()


class RadosGroup(RadosNode, api.Group):
    kind = "group"

    def __init__(self, file: RadosFile, token: bytes, gcpl: bytes = b""):
        super().__init__(file, token)
        self._gcpl = gcpl
        self._links: dict[str, api.Link] = {}

    @property
    def gcpl(self) -> bytes:
        return self._gcpl

    def links(self) -> list[tuple[str, api.Link]]:
        return list(self._links.items())

    def get_link(self, name: str) -> api.Link:
        try:
            return self._links[name]
        except KeyError:
            raise KeyError(f"no link named {name!r}") from None

    def has_link(self, name: str) -> bool:
        return name in self._links

    def set_link(self, name: str, link: api.Link) -> None:
        self._file._check_writable()
        self._links[name] = link
        self._dirty = True
        if isinstance(link, api.HardLink):
            self._file._ref(link.token, +1)

    def delete_link(self, name: str) -> None:
        self._file._check_writable()
        link = self._links.pop(name)
        self._dirty = True
        if isinstance(link, api.HardLink):
            self._file._ref(link.token, -1)

    def record(self) -> dict:
        return {**super().record(), "gcpl": _b64(self._gcpl),
                "links": [_link_to_json(n, v) for n, v in self._links.items()]}

    def load(self, rec: dict) -> None:
        self._gcpl = _unb64(rec["gcpl"])
        self._links = dict(_link_from_json(item) for item in rec["links"])


class RadosDatatype(RadosNode, api.Datatype):
    kind = "datatype"

    def __init__(self, file: RadosFile, token: bytes, hdf5_type: bytes = b""):
        super().__init__(file, token)
        self._type = hdf5_type

    @property
    def hdf5_type(self) -> bytes:
        return self._type

    def record(self) -> dict:
        return {**super().record(), "type": _b64(self._type)}

    def load(self, rec: dict) -> None:
        self._type = _unb64(rec["type"])


class RadosDataset(RadosNode, api.Dataset):
    """A dataset: metadata in the head's omap, one RADOS object per written chunk."""

    kind = "dataset"

    def __init__(self, file: RadosFile, token: bytes, meta: api.ArrayMeta | None = None):
        super().__init__(file, token)
        # chunk coords -> (generation, byte size) of its object; absent: fill value
        self._chunk_map: dict[tuple[int, ...], tuple[int, int]] = {}
        self._dirty_chunks: set[tuple[int, ...]] = set()
        self._dropped_chunks: set[tuple[int, ...]] = set()
        self._fill: np.ndarray | None = None
        if meta is not None:
            self._set_meta(meta, None)
            file.hold_type(meta.committed_type)

    def _set_meta(self, meta: api.ArrayMeta, chunk: tuple[int, ...] | None) -> None:
        _check_storable(meta.dtype)
        self._meta = meta
        if chunk is None:
            chunk = meta.chunks or default_chunks(meta.shape, meta.dtype.itemsize, self._file.chunk_bytes)
        self._chunk = tuple(int(c) for c in chunk)
        self._fill = None

    @property
    def meta(self) -> api.ArrayMeta:
        return self._meta

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        """The shape of the chunk each RADOS data object holds."""
        return self._chunk

    def types_used(self) -> list[bytes]:
        own = [self._meta.committed_type] if self._meta.committed_type else []
        return super().types_used() + own

    def record(self) -> dict:
        return {**super().record(), "meta": _meta_to_json(self._meta), "chunk": list(self._chunk)}

    def load(self, rec: dict) -> None:
        self._set_meta(_meta_from_json(rec["meta"]), tuple(rec["chunk"]))

    # -- chunk objects ---------------------------------------------------

    def object_name(self, coords: tuple[int, ...], generation: int) -> str:
        return f"{DATA_PREFIX}{self._file.file_id}.{self._token.hex()}.{_coords_key(coords)}.{generation}"

    def chunk_objects(self) -> dict[tuple[int, ...], str]:
        """Chunk coords -> the name of the RADOS object holding that chunk (written chunks only)."""
        return {c: self.object_name(c, g) for c, (g, _) in sorted(self._chunk_map.items())}

    def _fill_chunk(self) -> np.ndarray:
        """A read-only chunk of fill values."""
        if self._fill is None:
            fill = self._meta.replace(shape=self._chunk, maxshape=None).fill_array()
            fill.flags.writeable = False
            self._fill = fill
        return self._fill

    def _chunk_nbytes(self) -> int:
        return int(np.prod(self._chunk, dtype=np.int64)) * self._meta.dtype.itemsize

    def _decode(self, data: bytes) -> np.ndarray:
        return _array_from_bytes(data, self._meta.dtype, self._chunk)

    def _encode(self, arr: np.ndarray) -> bytes:
        return _array_to_bytes(arr, self._meta.dtype)

    def _in_extent(self, coords: tuple[int, ...]) -> tuple[slice, ...]:
        """The chunk-local part of a chunk that lies inside the current extent."""
        return tuple(slice(0, min(c, n - i * c)) for i, c, n in zip(coords, self._chunk, self._meta.shape, strict=True))

    def _fetch(self, jobs: Iterable[tuple[tuple[int, ...], Any]], place: Callable[[Any, np.ndarray], None],
               pump: _Pump | None = None) -> None:
        """Read chunks asynchronously; call place(job, chunk array) for each
        (unwritten chunks give the read-only fill chunk)."""
        own = pump is None
        pump = pump or self._file._pump()
        ioctx = self._file._ioctx
        for coords, job in jobs:
            entry = self._chunk_map.get(coords)
            if entry is None:
                place(job, self._fill_chunk())
                continue
            name, size = self.object_name(coords, entry[0]), entry[1]

            def start(slot, name=name, size=size):
                return ioctx.aio_read(name, size, 0, lambda _c, data, slot=slot: slot.__setitem__("data", data))

            def done(data, job=job, name=name, size=size):
                if data is None or len(data) != size:
                    raise OSError(errno.EIO, f"chunk object {name!r} holds {0 if data is None else len(data)} "
                                  f"bytes, expected {size}: the file was changed by another writer; reopen it")
                place(job, self._decode(data))

            pump.submit(start, f"read chunk object {name!r}", done)
        if own:
            pump.finish()

    def _store(self, items: Iterable[tuple[tuple[int, ...], Callable[[], np.ndarray]]]) -> None:
        """Write chunks asynchronously: items are (coords, make the chunk's full array)."""
        f = self._file
        pump = f._pump()
        gen = f.generation + 1
        ioctx = f._ioctx
        for coords, make in items:
            data = self._encode(make())
            name = self.object_name(coords, gen)
            f._superseded.discard(name)  # written again after being dropped in this generation: keep it
            pump.submit(lambda slot, name=name, data=data: ioctx.aio_write_full(name, data),
                        f"write chunk object {name!r}")
            old = self._chunk_map.get(coords)
            if old is not None and old[0] != gen:
                f._superseded.add(self.object_name(coords, old[0]))
            self._chunk_map[coords] = (gen, len(data))
            self._dirty_chunks.add(coords)
            self._dropped_chunks.discard(coords)
        pump.finish()

    # -- reading and writing -----------------------------------------------

    def read(self, selection: Selection, out: np.ndarray) -> None:
        if selection.count == 0:
            return
        shape = self._meta.shape
        if selection.is_basic:
            index = selection.index if shape else ()

            def place(job, arr):
                oidx, cidx = job
                out[oidx + (Ellipsis,)] = arr[cidx + (Ellipsis,)]

            self._fetch(((c, (o, loc)) for c, o, loc in _basic_plan(index, shape, self._chunk)), place)
            return
        coords = selection.coords()
        flat = np.empty((len(coords),) + self._meta.dtype.shape, dtype=out.dtype)

        def place_points(pos, arr_local):
            pos_, local = pos
            flat[pos_] = arr_local[local]

        self._fetch(((c, (p, loc)) for c, p, loc in _point_groups(coords, self._chunk)), place_points)
        out[...] = flat.reshape(out.shape)

    def write(self, selection: Selection, data: np.ndarray) -> None:
        self._file._check_writable()
        if selection.count == 0:
            return
        shape = self._meta.shape
        if selection.is_basic:
            index = selection.index if shape else ()
            whole, partial = [], []
            for coords, oidx, cidx in _basic_plan(index, shape, self._chunk):
                inside = self._in_extent(coords)
                covered = all(_covers(s, e.stop) for s, e in zip(cidx, inside, strict=True))
                (whole if covered else partial).append((coords, oidx, cidx, inside))
            base = self._load_old(partial)
            self._store(self._basic_items(whole, partial, base, data))
            return
        coords = selection.coords()
        flat = data.reshape((len(coords),) + self._meta.dtype.shape)
        groups = list(_point_groups(coords, self._chunk))
        base = self._load_old([(c, None, None, None) for c, _, _ in groups])

        def items():
            for c, pos, local in groups:
                arr = base.pop(c)
                arr[local] = flat[pos]
                yield c, lambda arr=arr: arr

        self._store(items())

    def _load_old(self, parts: list) -> dict[tuple[int, ...], np.ndarray]:
        """Writable copies of the current content of chunks about to be partly rewritten."""
        base: dict[tuple[int, ...], np.ndarray] = {}

        def place(coords, arr):
            base[coords] = np.array(arr, copy=True)

        self._fetch(((c, c) for c, *_ in parts), place)
        return base

    def _basic_items(self, whole, partial, base, data):
        full_chunk = self._chunk
        for coords, oidx, _cidx, inside in whole:
            if all(e.stop == c for e, c in zip(inside, full_chunk, strict=True)):
                yield coords, lambda oidx=oidx: data[oidx + (Ellipsis,)]  # the whole chunk: encoded straight from data
            else:
                def edge(oidx=oidx, inside=inside):
                    arr = np.array(self._fill_chunk(), copy=True)
                    arr[inside + (Ellipsis,)] = data[oidx + (Ellipsis,)]
                    return arr
                yield coords, edge
        for coords, oidx, cidx, _inside in partial:
            arr = base.pop(coords)
            arr[cidx + (Ellipsis,)] = data[oidx + (Ellipsis,)]
            yield coords, lambda arr=arr: arr

    def resize(self, shape: tuple[int, ...]) -> None:
        self._file._check_writable()
        old = self._meta.shape
        shape = tuple(int(n) for n in shape)
        self._meta = self._meta.replace(shape=shape)
        self._fill = None
        self._dirty = True
        if all(n >= o for n, o in zip(shape, old, strict=True)):
            return
        # Chunks wholly outside the new extent are dropped; those cut by it are
        # rewritten with fill values beyond it, so that growing again shows fill.
        drop, cut = [], []
        for coords in list(self._chunk_map):
            starts = [i * c for i, c in zip(coords, self._chunk, strict=True)]
            if any(s >= n for s, n in zip(starts, shape, strict=True)):
                drop.append(coords)
            elif any(s < n < s + c and n < o for s, c, n, o in zip(starts, self._chunk, shape, old, strict=True)):
                cut.append(coords)
        for coords in drop:
            gen, _ = self._chunk_map.pop(coords)
            self._file._superseded.add(self.object_name(coords, gen))
            self._dirty_chunks.discard(coords)
            self._dropped_chunks.add(coords)
        if cut:
            base = self._load_old([(c,) for c in cut])
            fill = self._fill_chunk()

            def items():
                for coords in cut:
                    arr = base.pop(coords)
                    inside = self._in_extent(coords)
                    keep = np.array(fill, copy=True)
                    keep[inside + (Ellipsis,)] = arr[inside + (Ellipsis,)]
                    yield coords, lambda keep=keep: keep

            self._store(items())

    def storage_size(self) -> int:
        return sum(size for _, size in self._chunk_map.values())

    def is_allocated(self) -> bool:
        return bool(self._chunk_map)

    # -- placement ---------------------------------------------------------

    def layout(self) -> list[dict]:
        """For each written chunk: its coords, RADOS object name, byte size and
        the OSDs that hold it, from the cluster's placement map (`osd map`)."""
        out = []
        for coords, (gen, size) in sorted(self._chunk_map.items()):
            name = self.object_name(coords, gen)
            placement = self._file.placement(name)
            out.append({
                "chunk": coords, "object": name, "bytes": size,
                "osds": placement["acting"], "primary": placement["acting_primary"],
                "up": placement["up"], "pgid": placement["pgid"],
                "pool": placement["pool"], "namespace": self._file.namespace,
            })
        return out


# ---------------------------------------------------------------- files

_NODE_CLASSES: dict[str, type[RadosNode]] = {
    "group": RadosGroup, "dataset": RadosDataset, "datatype": RadosDatatype,
}

_open_files: dict[int, RadosFile] = {}
_open_lock = threading.Lock()


class RadosFile(api.File):
    """One HDF5 file: its head object's omap, loaded at open, committed at flush."""

    def __init__(self, conn: RadosConnector, name: str, writable: bool):
        self.conn = conn
        self.name = name
        self.head = HEAD_PREFIX + name
        self._writable = writable
        self._ioctx = conn._ioctx
        self.namespace = conn.namespace
        self.chunk_bytes = conn.chunk_bytes
        self.nodes: dict[bytes, RadosNode] = {}
        self._removed: list[RadosNode] = []
        self._superseded: set[str] = set()  # objects to remove after the next commit
        self.file_id = ""
        self.generation = 0
        self._next_token = 0
        self._root_token = b""
        self._file_dirty = False
        self._closed = False
        with _open_lock:
            _open_files[id(self)] = self

    # -- bookkeeping -------------------------------------------------------

    def _pump(self) -> _Pump:
        return _Pump(self.conn.inflight, self.conn.where)

    def _check_writable(self) -> None:
        if not self._writable:
            raise PermissionError(f"file {self.name!r} is open read-only")

    def _new(self, cls, *args) -> RadosNode:
        self._check_writable()
        token = struct.pack("<Q", self._next_token)
        self._next_token += 1
        self._file_dirty = True
        node = self.nodes[token] = cls(self, token, *args)
        return node

    def _ref(self, token: bytes, delta: int) -> None:
        node = self.nodes.get(token)
        if node is None:
            return
        node.refs += delta
        node._dirty = True
        if node.refs <= 0 and token != self._root_token:
            # Reclaimed: its records and chunk objects go at the next commit
            # (open handles keep the Python object alive meanwhile). As in
            # HDF5, its arrays release their committed datatypes and a
            # group's members lose a link each.
            del self.nodes[token]
            self._removed.append(node)
            for used in node.types_used():
                self.release_type(used)
            if isinstance(node, RadosGroup):
                for _, link in node.links():
                    if isinstance(link, api.HardLink):
                        self._ref(link.token, -1)

    def hold_type(self, token: bytes) -> None:
        """A dataset or attribute was created with committed datatype `token`
        (if it still exists): a reference to it, as in HDF5 (its H5Oget_info rc)."""
        if token and isinstance(self.nodes.get(token), RadosDatatype):
            self._ref(token, +1)

    def release_type(self, token: bytes) -> None:
        if token and isinstance(self.nodes.get(token), RadosDatatype):
            self._ref(token, -1)

    # -- the api -----------------------------------------------------------

    @property
    def root(self) -> api.Group:
        return self.nodes[self._root_token]

    @property
    def writable(self) -> bool:
        return self._writable

    def open_node(self, token: bytes) -> api.Node:
        try:
            return self.nodes[token]
        except KeyError:
            raise KeyError(f"no object with token {token.hex()}") from None

    def create_group(self, gcpl: bytes = b"") -> api.Group:
        return self._new(RadosGroup, gcpl)

    def create_dataset(self, meta: api.ArrayMeta) -> api.Dataset:
        return self._new(RadosDataset, meta)

    def commit_datatype(self, hdf5_type: bytes) -> api.Datatype:
        return self._new(RadosDatatype, hdf5_type)

    # -- loading -------------------------------------------------------------

    def _file_record(self) -> dict:
        return {"format": FORMAT, "file_id": self.file_id, "generation": self.generation,
                "next_token": self._next_token, "root": self._root_token.hex()}

    def init_new(self, fcpl: bytes) -> None:
        self.file_id = uuid.uuid4().hex[:16]
        root = self._new(RadosGroup, fcpl)
        root.refs = 1  # the file itself holds the root
        self._root_token = root.token

    def load(self, omap: dict[str, bytes]) -> None:
        rec = json.loads(omap["file"])
        if rec.get("format") not in FORMATS_READ:
            raise OSError(errno.EINVAL, f"RADOS object {self.head!r} is not an h5pyvol file "
                          f"(format {rec.get('format')!r}, expected {FORMAT!r})")
        self.file_id = rec["file_id"]
        self.generation = int(rec["generation"])
        self._next_token = int(rec["next_token"])
        self._root_token = bytes.fromhex(rec["root"])
        for key, value in omap.items():
            if key.startswith("n."):
                token = bytes.fromhex(key[2:])
                nrec = json.loads(value)
                node = _NODE_CLASSES[nrec["kind"]](self, token)
                node.refs = int(nrec["refs"])
                node.load(nrec)
                node._dirty = False
                self.nodes[token] = node
        for key, value in omap.items():
            if key.startswith("a."):
                self.nodes[bytes.fromhex(key[2:])].load_attrs(json.loads(value))
            elif key.startswith("k."):
                tok, ckey = key[2:].split(".", 1)
                gen, size = value.decode().split(",")
                node = self.nodes[bytes.fromhex(tok)]
                node._chunk_map[_coords_from_key(ckey)] = (int(gen), int(size))
        if rec["format"] != FORMAT:  # format 1 counted hard links only: add the arrays of each datatype
            for node in list(self.nodes.values()):
                for used in node.types_used():
                    if isinstance(self.nodes.get(used), RadosDatatype):
                        self.nodes[used].refs += 1
                        self.nodes[used]._dirty = True

    # -- commit ----------------------------------------------------------------

    def _commit_ops(self) -> tuple[dict[str, bytes], list[str]]:
        """The omap keys to set and remove for the next commit."""
        sets: dict[str, bytes] = {}
        removes: list[str] = []
        for node in self._removed:
            tok = node.token.hex()
            removes += [f"n.{tok}", f"a.{tok}"]
            if isinstance(node, RadosDataset):
                for coords, (gen, _) in node._chunk_map.items():
                    removes.append(f"k.{tok}.{_coords_key(coords)}")
                    self._superseded.add(node.object_name(coords, gen))
                removes += [f"k.{tok}.{_coords_key(c)}" for c in node._dropped_chunks]
        for node in self.nodes.values():
            tok = node.token.hex()
            if node._dirty:
                sets[f"n.{tok}"] = json.dumps(node.record(), separators=(",", ":")).encode()
            if node._attrs_dirty:
                sets[f"a.{tok}"] = json.dumps(node.attrs_json(), separators=(",", ":")).encode()
            if isinstance(node, RadosDataset):
                for coords in node._dirty_chunks:
                    gen, size = node._chunk_map[coords]
                    sets[f"k.{tok}.{_coords_key(coords)}"] = f"{gen},{size}".encode()
                removes += [f"k.{tok}.{_coords_key(c)}" for c in node._dropped_chunks]
        return sets, removes

    def _mark_clean(self) -> None:
        for node in self.nodes.values():
            node._dirty = node._attrs_dirty = False
            if isinstance(node, RadosDataset):
                node._dirty_chunks.clear()
                node._dropped_chunks.clear()
        self._removed.clear()
        self._file_dirty = False

    def commit(self, *, create: str | None = None) -> None:
        """Make every change durable and visible in one atomic write of the head.

        create: None (an existing head), "exclusive" or "replace" (a new head)."""
        sets, removes = self._commit_ops()
        if not (sets or removes or self._file_dirty or create):
            return
        generation = self.generation + 1 if create is None else self.generation
        record = {**self._file_record(), "generation": generation}
        sets["file"] = json.dumps(record).encode()
        ioctx, where = self._ioctx, self.conn.where

        def op():
            with rados.WriteOpCtx() as w:
                if create == "exclusive":
                    w.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
                elif create == "replace":
                    ioctx.clear_omap(w)
                if removes and create is None:
                    ioctx.remove_omap_keys(w, tuple(removes))
                keys = tuple(sets)
                ioctx.set_omap(w, keys, tuple(sets[k] for k in keys))
                ioctx.operate_write_op(w, self.head)

        try:
            op()
        except rados.ObjectExists:
            raise FileExistsError(errno.EEXIST, f"RADOS file {self.name!r} already exists in {where}") from None
        except rados.Error as exc:
            raise _translate(_errno_of(exc), f"commit file {self.name!r} (head object {self.head!r})", where,
                             str(exc)) from None
        self.generation = generation
        self._mark_clean()
        self.collect_superseded()

    def collect_superseded(self) -> None:
        """Remove chunk objects no committed state refers to any more. Failures
        only leave garbage behind: the commit has already happened."""
        names, self._superseded = self._superseded, set()
        if not names:
            return
        pump = self._pump()
        for name in names:
            pump.submit(lambda slot, name=name: self._ioctx.aio_remove(name), f"remove {name!r}", missing_ok=True)
        try:
            pump.finish()
        except OSError as exc:
            print(f"h5pyvol rados: warning: superseded chunk objects left behind: {exc}", file=sys.stderr)

    def flush(self) -> None:
        if self._writable and not self._closed:
            self.commit()

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._writable:
                self.commit()
        finally:
            self._closed = True
            with _open_lock:
                _open_files.pop(id(self), None)

    # -- placement ----------------------------------------------------------

    def placement(self, object_name: str) -> dict:
        """The cluster's placement of one object (`ceph osd map` as JSON)."""
        cmd = {"prefix": "osd map", "pool": self.conn.pool, "object": object_name, "format": "json"}
        if self.namespace:
            cmd["nspace"] = self.namespace
        where = self.conn.where
        ret, out, err = _rados_call(
            lambda: self.conn._cluster.mon_command(json.dumps(cmd), b"", timeout=where.timeout),
            f"look up the placement of {object_name!r}", where)
        if ret != 0:
            raise _translate(ret, f"look up the placement of {object_name!r}", where, err)
        return json.loads(out)

    def find(self, path: str) -> RadosNode:
        """The node at an absolute path, following hard and soft links."""
        node: RadosNode = self.root
        parts = [p for p in path.split("/") if p and p != "."]
        for depth, part in enumerate(parts):
            if not isinstance(node, RadosGroup):
                raise KeyError(f"{path!r}: {part!r} is not inside a group")
            link = node.get_link(part)
            if isinstance(link, api.SoftLink):
                rest = "/".join(parts[depth + 1:])
                return self.find(link.path.rstrip("/") + "/" + rest if rest else link.path)
            if not isinstance(link, api.HardLink):
                raise KeyError(f"{path!r}: {part!r} leads to another file")
            node = self.nodes[link.token]
        return node


def connector_dataset(dataset: Any) -> RadosDataset:
    """The connector's dataset behind an open h5py Dataset served by this connector."""
    from h5pyvol import node_of

    node = node_of(dataset)
    if not isinstance(node, RadosDataset):
        raise TypeError(f"{dataset!r} is not a dataset of the rados connector")
    return node


def layout(dataset: Any) -> list[dict]:
    """Chunk placement of an h5py Dataset (or a RadosDataset): see RadosDataset.layout."""
    node = dataset if isinstance(dataset, RadosDataset) else connector_dataset(dataset)
    return node.layout()


# ---------------------------------------------------------------- the connector


_clusters: dict[tuple, list] = {}  # (conf, name, keyring, timeout) -> [Rados, users]
_clusters_lock = threading.Lock()


class RadosConnector(api.Connector):
    """HDF5 files as objects in a Ceph RADOS pool (see docs/rados-layout.md)."""

    name = "rados"
    supports_delete = True

    KNOWN = {"pool", "conf", "name", "user", "keyring", "namespace", "timeout", "inflight", "chunk_bytes"}

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        unknown = sorted(set(options) - self.KNOWN)
        if unknown:
            raise ValueError(f"unknown rados connector option(s) {unknown}; known: {sorted(self.KNOWN)}")
        if not options.get("pool"):
            raise ValueError("the rados connector needs a pool: 'rados;pool=NAME;...' or rados://POOL/NAME")
        self.pool = options["pool"]
        self.conf = options.get("conf") or None
        user = options.get("name") or options.get("user") or "client.admin"
        self.user = user if "." in user else f"client.{user}"
        self.keyring = options.get("keyring") or None
        self.namespace = options.get("namespace", "")
        self.timeout = int(float(options.get("timeout", DEFAULT_TIMEOUT)))
        self.inflight = int(options.get("inflight", DEFAULT_INFLIGHT))
        self.chunk_bytes = int(options.get("chunk_bytes", DEFAULT_CHUNK_BYTES))
        self.where = _Where(self.pool, self.namespace, self.user, self.timeout)
        self._key: tuple | None = None
        self._cluster = None
        self._ioctx_obj = None

    # -- connection ------------------------------------------------------------

    def _connect(self):
        if rados is None:
            raise ImportError("the rados connector needs Ceph's python3-rados bindings "
                              "(scripts/services/install.sh makes them importable)")
        for what, path in (("ceph config file", self.conf), ("keyring", self.keyring)):
            if path and not os.path.exists(path):
                raise FileNotFoundError(errno.ENOENT, f"{what} {path!r} does not exist")
        key = (self.conf, self.user, self.keyring, self.timeout)
        with _clusters_lock:
            entry = _clusters.get(key)
            if entry is None:
                t = str(self.timeout)
                conf = {"rados_osd_op_timeout": t, "rados_mon_op_timeout": t, "client_mount_timeout": t}
                if self.keyring:
                    conf["keyring"] = self.keyring
                try:
                    cluster = rados.Rados(conffile=self.conf or "", name=self.user, conf=conf)
                    cluster.connect(timeout=self.timeout)
                except rados.Error as exc:
                    code = _errno_of(exc)
                    source = f"conf {self.conf or '(default)'}, keyring {self.keyring or '(from conf)'}"
                    if code in (errno.EPERM, errno.EACCES, errno.EKEYREJECTED):
                        raise PermissionError(
                            errno.EPERM, f"cephx authentication as {self.user} failed ({source}): "
                            f"wrong key or unknown user") from None
                    if code in (errno.ETIMEDOUT, errno.EINTR):
                        raise TimeoutError(
                            errno.ETIMEDOUT, f"no Ceph monitor answered within {self.timeout} s ({source})") from None
                    raise _translate(code, "connect to the cluster", self.where, f"{source}: {exc}") from None
                entry = _clusters[key] = [cluster, 0]
            entry[1] += 1
        self._key, self._cluster = key, entry[0]

    @property
    def _ioctx(self):
        if self._ioctx_obj is None:
            if self._cluster is None:
                self._connect()
            try:
                exists = self._cluster.pool_exists(self.pool)
            except rados.Error as exc:
                raise _translate(_errno_of(exc), "look up the pool", self.where, str(exc)) from None
            if not exists:
                raise FileNotFoundError(errno.ENOENT, f"RADOS pool {self.pool!r} does not exist "
                                        f"(create it with 'ceph osd pool create {self.pool}')")
            ioctx = _rados_call(lambda: self._cluster.open_ioctx(self.pool), "open the pool", self.where)
            if self.namespace:
                ioctx.set_namespace(self.namespace)
            self._ioctx_obj = ioctx
        return self._ioctx_obj

    def close(self) -> None:
        if self._ioctx_obj is not None:
            self._ioctx_obj.close()
            self._ioctx_obj = None
        if self._cluster is not None:
            with _clusters_lock:
                entry = _clusters.get(self._key)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del _clusters[self._key]
                        entry[0].shutdown()
            self._cluster = None

    # -- head objects ------------------------------------------------------------

    def _read_head(self, name: str) -> dict[str, bytes] | None:
        """All omap entries of a file's head object, or None if there is none."""
        ioctx, head = self._ioctx, HEAD_PREFIX + name
        for _attempt in range(5):
            omap: dict[str, bytes] = {}
            after, version = "", None
            try:
                while True:
                    with rados.ReadOpCtx() as op:
                        it, _ = ioctx.get_omap_vals(op, after, "", OMAP_PAGE)
                        ioctx.operate_read_op(op, head)
                        page = list(it)
                    v = ioctx.get_last_version()
                    if version is None:
                        version = v
                    elif v != version:
                        break  # a commit landed between pages: read again
                    omap.update(page)
                    if len(page) < OMAP_PAGE:
                        return omap if "file" in omap else None
                    after = page[-1][0]
            except rados.ObjectNotFound:
                return None
            except rados.Error as exc:
                raise _translate(_errno_of(exc), f"read the head object {head!r}", self.where, str(exc)) from None
        raise OSError(errno.EAGAIN, f"RADOS file {name!r} kept changing while being opened")

    def create(self, name: str, *, overwrite: bool, fcpl: bytes = b"") -> api.File:
        old = self._read_head(name)
        if old is not None and not overwrite:
            raise FileExistsError(errno.EEXIST, f"RADOS file {name!r} already exists in {self.where}")
        previous = None
        if old is not None:
            previous = RadosFile(self, name, writable=False)
            previous.load(old)
            previous.close()
        f = RadosFile(self, name, writable=True)
        f.init_new(fcpl)
        f.commit(create="replace" if old is not None else "exclusive")
        if previous is not None:  # the old file's chunk objects, now unreferenced
            f._superseded = {n for node in previous.nodes.values() if isinstance(node, RadosDataset)
                             for n in node.chunk_objects().values()}
            f.collect_superseded()
        return f

    def open(self, name: str, *, writable: bool) -> api.File:
        omap = self._read_head(name)
        if omap is None:
            raise FileNotFoundError(errno.ENOENT, f"no RADOS file named {name!r} in {self.where}")
        f = RadosFile(self, name, writable)
        try:
            f.load(omap)
        except Exception:
            f.close()
            raise
        return f

    def exists(self, name: str) -> bool:
        return self._read_head(name) is not None

    def delete(self, name: str) -> None:
        omap = self._read_head(name)
        if omap is None:
            raise FileNotFoundError(errno.ENOENT, f"no RADOS file named {name!r} in {self.where}")
        f = RadosFile(self, name, writable=False)
        f.load(omap)
        f.close()
        _rados_call(lambda: self._ioctx.remove_object(f.head), f"remove the head of {name!r}", self.where)
        f._superseded = {n for node in f.nodes.values() if isinstance(node, RadosDataset)
                         for n in node.chunk_objects().values()}
        f.collect_superseded()
