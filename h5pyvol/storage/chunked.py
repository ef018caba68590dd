"""HDF5 files as a head plus one object per chunk: the connector classes S3 and RADOS share.

`ChunkedConnector` and its file, group, dataset, datatype and attribute
classes implement the whole connector API on top of a `Backend`, which only
moves bytes. They own:

- the node model and its JSON records (`records`), HDF5's reference counts
  (hard links, and arrays created with a committed datatype), blobs;
- chunked I/O: the grid (`grid`), selection planning (`plan`), raw reads
  straight into the caller's array or of just the byte ranges a selection
  needs, read-modify-write of partly written chunks through a write cache
  (``write_cache_bytes``), codecs and zone maps (kept in each chunk entry);
- the commit protocol of `manifest`: fresh chunk keys per writer session and
  commit (``SESSION`` + counter), conditional head updates merged and retried
  on conflict, garbage collection of only what this writer superseded,
  writer sessions and the collection of dead writers' orphans;
- `shards()` (with the backend's location hints), `describe()`'s dataset
  descriptor, and `vacuum`.

Shared options (strings): ``chunk_bytes`` (default chunk size target, 4 MiB),
``write_cache_bytes`` (partly written chunks kept before uploading, 128 MiB),
``orphan_grace`` (seconds without a sign of life after which a writer
session counts as dead, 600) and ``zone_maps`` (1: keep each chunk's minimum
and maximum, computed in one pass as it is uploaded, fused with the copy
where the backend needs one (`Backend.bytes_bodies`), else about 0.08 s of
CPU per GiB of float64; 0: none, as in older files).
"""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import random
import secrets
import socket
import struct
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .. import connector as api
from ..selection import Selection
from .backend import Backend, ReadJob, WriteJob
from .buffers import populate
from .codecs import ChunkCodec, b64, dtype_to_json, encode_values, filters_of, unb64
from .grid import DEFAULT_CHUNK_BYTES, ChunkGrid, default_chunks
from .manifest import (
    Changes,
    FileRecreated,
    HeadConflict,
    Merged,
    SessionLost,
    Touched,
    chunk_entries,
    merge,
    new_manifest,
    referenced_keys,
    version_session,
)
from .plan import ChunkTask, byte_runs
from .records import chunk_cid, chunk_name, link_from_json, link_to_json, meta_from_json, meta_to_json
from .zones import zone_of, zoned_bytes

OPTION_DEFAULTS = {
    "chunk_bytes": str(DEFAULT_CHUNK_BYTES),
    "write_cache_bytes": str(128 << 20),
    "orphan_grace": "600",
    "zone_maps": "1",
}
MAX_COMMIT_ATTEMPTS = 200


# ---------------------------------------------------------------- attributes


class ChunkedAttribute(api.Attribute):
    """An attribute: its values live in its node's record, as JSON."""

    def __init__(self, node: ChunkedNode, meta: api.ArrayMeta, data: Any = None, meta_json: dict | None = None):
        self._node = node
        self._meta = meta
        self._meta_json = meta_json if meta_json is not None else meta_to_json(meta)
        self._data = data  # JSON form; decoded lazily
        self._array: np.ndarray | None = None

    @property
    def meta(self) -> api.ArrayMeta:
        return self._meta

    def read(self) -> np.ndarray:
        from .codecs import decode_values

        if self._array is None:
            meta = self._meta
            if meta.null:
                self._array = np.empty((0,), meta.dtype)
            elif self._data is None:
                self._array = meta.fill_array()
            else:
                self._array = decode_values(self._data, meta.dtype, meta.shape)
        return self._array

    def write(self, data: np.ndarray) -> None:
        change = self._node._change()
        meta = self._meta
        array = np.array(data, dtype=meta.dtype, copy=True).reshape(meta.shape + meta.dtype.shape)
        self._data = encode_values(array, meta.dtype)
        self._array = None
        change.attrs[next(n for n, a in self._node._attrs.items() if a is self)] = None

    def record(self) -> dict:
        return {"meta": self._meta_json, "data": self._data}


# ---------------------------------------------------------------- nodes


class ChunkedNode(api.Node):
    kind = ""

    def __init__(self, file: ChunkedFile, token: bytes, record: dict | None = None):
        self._file = file
        self._token = token
        self.nlink = 0
        self._created = int(time.time())
        self._attrs: dict[str, ChunkedAttribute] = {}
        self.reclaimed = False  # its last link went; an open handle may link it again
        if record:
            self.nlink = record.get("nlink", 0)
            self._created = record.get("created", 0)
            for name, a in record.get("attrs", []):
                self._attrs[name] = ChunkedAttribute(self, meta_from_json(a["meta"]), a["data"], a["meta"])

    def _change(self):
        return self._file.change(self._token)

    @property
    def token(self) -> bytes:
        return self._token

    @property
    def link_count(self) -> int:
        return self.nlink

    @property
    def created(self) -> int:
        return self._created

    def change_link_count(self, delta: int) -> None:
        self._change().nlink += delta
        self.nlink += delta

    def attribute_names(self) -> list[str]:
        return list(self._attrs)

    def has_attribute(self, name: str) -> bool:
        return name in self._attrs

    def create_attribute(self, name: str, meta: api.ArrayMeta) -> api.Attribute:
        change = self._change()
        attr = self._attrs[name] = ChunkedAttribute(self, meta)
        change.attrs[name] = None
        self._file.hold_type(meta.committed_type)
        return attr

    def open_attribute(self, name: str) -> api.Attribute:
        try:
            return self._attrs[name]
        except KeyError:
            raise KeyError(f"no attribute named {name!r}") from None

    def delete_attribute(self, name: str) -> None:
        change = self._change()
        if name not in self._attrs:
            raise KeyError(f"no attribute named {name!r}")
        attr = self._attrs.pop(name)
        change.attrs[name] = None
        self._file.release_type(attr.meta.committed_type)

    def rename_attribute(self, old: str, new: str) -> None:
        change = self._change()
        if old not in self._attrs:
            raise KeyError(f"no attribute named {old!r}")
        # Keep the attribute's place in creation order, as HDF5 does.
        self._attrs = {(new if k == old else k): v for k, v in self._attrs.items()}
        change.renames.append((old, new))
        change.attrs[old] = None
        change.attrs[new] = None

    def types_used(self) -> list[bytes]:
        """The committed datatypes this node's arrays were created with, one per use."""
        return [a.meta.committed_type for a in self._attrs.values() if a.meta.committed_type]

    def attr_record(self, name: str) -> dict | None:
        attr = self._attrs.get(name)
        return None if attr is None else attr.record()

    def record(self) -> dict:
        return {"kind": self.kind, "nlink": self.nlink, "created": self._created,
                "attrs": [[n, a.record()] for n, a in self._attrs.items()]}

    def flush(self) -> None:
        self._file.flush()


class ChunkedGroup(api.KeepsLinkOrders, ChunkedNode, api.Group):
    kind = "group"

    def __init__(self, file: ChunkedFile, token: bytes, record: dict | None = None, gcpl: bytes = b""):
        super().__init__(file, token, record)
        self._gcpl = unb64(record["gcpl"]) if record else gcpl
        self._links: dict[str, api.Link] = {}
        for name, link in (record or {}).get("links", []):
            self._links[name] = link_from_json(link)
        # HDF5's link creation-order numbers (older records: the list positions)
        orders = (record or {}).get("link_orders") or range(len(self._links))
        self.link_orders = api.LinkOrders(dict(zip(self._links, orders, strict=True)),
                                          (record or {}).get("next_order", len(self._links)))

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
        self._change().links[name] = None
        self._links[name] = link
        orders = self.link_orders  # a number until the bridge notes the real one
        orders.note(name, orders.numbers.get(name, orders.next))
        if isinstance(link, api.HardLink) and link.token in self._file.nodes:
            self._file.linked(link.token)

    def delete_link(self, name: str) -> None:
        change = self._change()
        link = self._links.pop(name)
        change.links[name] = None
        self.link_orders.forget(name, emptied=not self._links)
        if isinstance(link, api.HardLink):
            self._file.unlinked(link.token)

    def note_creation_order(self, name: str, order: int) -> None:
        self._change().links[name] = None
        super().note_creation_order(name, order)

    def link_record(self, name: str) -> tuple[dict, int] | None:
        link = self._links.get(name)
        return None if link is None else (link_to_json(link), self.link_orders.numbers.get(name, 0))

    def record(self) -> dict:
        out = super().record()
        out["gcpl"] = b64(self._gcpl)
        out["links"] = [[n, link_to_json(v)] for n, v in self._links.items()]
        out["link_orders"] = [self.link_orders.numbers.get(n, i) for i, n in enumerate(self._links)]
        out["next_order"] = self.link_orders.next
        return out


class ChunkedDatatype(ChunkedNode, api.Datatype):
    kind = "datatype"

    def __init__(self, file: ChunkedFile, token: bytes, record: dict | None = None, hdf5_type: bytes = b""):
        super().__init__(file, token, record)
        self._type = unb64(record["type"]) if record else hdf5_type

    @property
    def hdf5_type(self) -> bytes:
        return self._type

    def record(self) -> dict:
        out = super().record()
        out["type"] = b64(self._type)
        return out


class ChunkedDataset(ChunkedNode, api.Dataset):
    """A dataset: its description in the head, its elements in one object per chunk."""

    kind = "dataset"

    def __init__(self, file: ChunkedFile, token: bytes, record: dict | None = None,
                 meta: api.ArrayMeta | None = None):
        super().__init__(file, token, record)
        if record:
            self._meta = meta_from_json(record["meta"])
            self._meta_json = record["meta"]
            self.chunk_shape = tuple(record["chunk_shape"])
            self.filters = record.get("filters") or []
            self._fill_json = record.get("fill")
            # chunk name -> [version, stored bytes, zone map]; copied: the head's record is not ours
            self.chunks: dict[str, list] = {k: list(v) for k, v in chunk_entries(record).items()}
        else:
            assert meta is not None
            self._meta = meta
            self._meta_json = meta_to_json(meta)
            self.filters = filters_of(meta.dcpl)
            self.chunk_shape = tuple(meta.chunks or default_chunks(meta.shape, meta.dtype.itemsize,
                                                                   file.connector.chunk_bytes))
            self._fill_json = None if meta.null else encode_values(
                meta.replace(shape=(), maxshape=None).fill_array(), meta.dtype)
            self.chunks = {}
            file.hold_type(meta.committed_type)
        self._fill: np.ndarray | None = None
        self._codec: ChunkCodec | None = None
        self.grid = ChunkGrid(self._meta.shape, self.chunk_shape)

    # -- the api

    @property
    def meta(self) -> api.ArrayMeta:
        return self._meta

    def read(self, selection: Selection, out: np.ndarray) -> None:
        codec = self._prepare()
        f = self._file
        fetch = []
        for task in selection.chunk_tasks(self.grid):
            chunk = f.cache.get((self._token, task.cid))
            if chunk is None and chunk_name(task.cid) not in self.chunks:
                chunk = self._fill
            if chunk is None:
                fetch.append(task)
            else:
                out[task.outer] = chunk[task.local]
        if not fetch:
            return
        jobs = [self._read_job(task, out, codec) for task in fetch]
        if any(job.into is None for job in jobs):
            populate(out)
        f.backend.read(jobs)

    def _read_job(self, task: ChunkTask, out: np.ndarray, codec: ChunkCodec) -> ReadJob:
        """How to fetch one chunk of a read. Raw chunks whose bytes are exactly a
        contiguous part of `out` land straight in it; otherwise only the byte
        ranges the selection needs (`byte_runs`), or the whole object, are
        read and then copied."""
        f = self._file
        name = chunk_name(task.cid)
        version, size = self.chunks[name][:2]
        key = f.key(self, name, version)
        what = f"reading chunk {name or '0'} of {f.name!r}"
        slots = f.copy_slots
        if not codec.raw:
            def decode(buf, task=task):
                chunk = codec.decode(buf, writable=False)
                with slots:
                    out[task.outer] = chunk[task.local]
            return ReadJob(key, size, [(0, size)], None, decode, what)
        direct = self._direct_target(task, out, codec)
        if direct is not None:
            return ReadJob(key, codec.nbytes, [(0, codec.nbytes)], direct, None, what)
        runs = byte_runs(task.local, self.chunk_shape, self._meta.dtype.itemsize, f.backend.request_bytes)

        def copy(buf, task=task):
            with slots:
                out[task.outer] = codec.view(buf)[task.local]
        return ReadJob(key, codec.nbytes, runs or [(0, codec.nbytes)], None, copy, what)

    def _direct_target(self, task: ChunkTask, out: np.ndarray, codec: ChunkCodec) -> np.ndarray | None:
        """The bytes of out[task.outer] as a flat uint8 array, if they are exactly the stored chunk's bytes."""
        if not task.whole or self.grid.pads(task.cid):
            return None
        if task.local is not Ellipsis and not all(isinstance(i, slice) and i.step in (None, 1) for i in task.local):
            return None
        dst = out[task.outer]
        if dst.dtype != codec.base or not dst.flags.c_contiguous or dst.nbytes != codec.nbytes:
            return None
        return dst.reshape(-1).view(np.uint8)

    def load_chunks(self, cids: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray]:
        """New writable arrays of chunks as stored (the fill value where never written)."""
        codec = self._prepare()
        f = self._file
        out: dict[tuple[int, ...], np.ndarray] = {}
        jobs = []
        for cid in cids:
            name = chunk_name(cid)
            entry = self.chunks.get(name)
            if entry is None:
                out[cid] = self.fill_chunk()
                continue
            key, what = f.key(self, name, entry[0]), f"reading chunk {name or '0'} of {f.name!r}"
            if codec.raw:  # straight from the socket into the new chunk array
                buf = np.empty(codec.nbytes, np.uint8)
                out[cid] = codec.view(buf)
                jobs.append(ReadJob(key, codec.nbytes, [(0, codec.nbytes)], buf, None, what))
            else:
                jobs.append(ReadJob(key, entry[1], [(0, entry[1])], None,
                                    lambda b, cid=cid: out.__setitem__(cid, codec.decode(b)), what))
        f.backend.read(jobs)
        return out

    def write(self, selection: Selection, data: np.ndarray) -> None:
        self._prepare()
        f = self._file
        f.reserve()  # drain the write cache first, so a failure changes nothing
        tasks = selection.chunk_tasks(self.grid)
        whole = [t for t in tasks if t.whole]
        partial = [t for t in tasks if not t.whole]
        # Phase 1, all I/O: fetch the chunks to modify, upload whole chunks under fresh keys.
        bases = self.load_chunks([t.cid for t in partial if (self._token, t.cid) not in f.cache])
        entries = f.upload([(self, t.cid, self._make_whole(t, data)) for t in whole])
        # Phase 2, in memory only: nothing below can fail half way.
        for task, entry in zip(whole, entries, strict=True):
            self.set_entry(task.cid, entry)
            f.drop_cached(self._token, task.cid)
        for task in partial:
            chunk = f.cache.get((self._token, task.cid))
            if chunk is None:
                chunk = bases[task.cid]
            chunk[task.local] = data[task.outer]
            f.set_cached(self, task.cid, chunk)

    def _make_whole(self, task: ChunkTask, data: np.ndarray) -> Callable[[], np.ndarray]:
        if self.grid.pads(task.cid):  # an edge chunk: its padding holds the fill value
            def edge() -> np.ndarray:
                chunk = self.fill_chunk()
                chunk[task.local] = data[task.outer]
                return chunk
            return edge
        return lambda: data[task.outer]  # the selection covers the whole chunk: no copy

    def resize(self, shape: tuple[int, ...]) -> None:
        self._prepare()
        f = self._file
        old = self._meta.shape
        shape = tuple(int(n) for n in shape)
        f.reserve()
        cids = {chunk_cid(name, len(shape)) for name in self.chunks}
        cids |= {cid for (tok, cid) in f.cache if tok == self._token}
        gone, trim = [], []
        for cid in cids:
            lo = [c * n for c, n in zip(cid, self.chunk_shape, strict=True)]
            if any(a >= s for a, s in zip(lo, shape, strict=True)):
                gone.append(cid)
            elif any(s < o and a + n > s for a, n, s, o in zip(lo, self.chunk_shape, shape, old, strict=True)):
                trim.append(cid)
        bases = self.load_chunks([c for c in trim if (self._token, c) not in f.cache])
        change = self._change()
        for cid in gone:
            self.drop_entry(cid)
            f.drop_cached(self._token, cid)
        fill = self.fill_chunk()
        for cid in trim:
            chunk = f.cache.get((self._token, cid))
            chunk = bases[cid] if chunk is None else chunk
            # Elements cut off read as the fill value if the extent grows again.
            for d, (c, n, s) in enumerate(zip(cid, self.chunk_shape, shape, strict=True)):
                keep = s - c * n
                if keep < n:
                    cut = (slice(None),) * d + (slice(keep, None),)
                    chunk[cut] = fill[cut]
            f.set_cached(self, cid, chunk)
        self._meta = self._meta.replace(shape=shape)
        self._meta_json = meta_to_json(self._meta)
        self.grid = ChunkGrid(shape, self.chunk_shape)
        change.meta = True

    def types_used(self) -> list[bytes]:
        own = [self._meta.committed_type] if self._meta.committed_type else []
        return super().types_used() + own

    def storage_size(self) -> int:
        size = sum(entry[1] for entry in self.chunks.values())
        cached = [c for (tok, c) in self._file.cache if tok == self._token and chunk_name(c) not in self.chunks]
        return size + len(cached) * math.prod(self.chunk_shape) * self._meta.dtype.itemsize

    def is_allocated(self) -> bool:
        return bool(self.chunks) or any(tok == self._token for tok, _ in self._file.cache)

    def record(self) -> dict:
        out = super().record()
        out.update(meta=self._meta_json, chunk_shape=list(self.chunk_shape), filters=self.filters,
                   chunks={k: list(v) for k, v in self.chunks.items()})
        if self._fill_json is not None:
            out["fill"] = self._fill_json
        return out

    # -- chunks

    def set_entry(self, cid: tuple[int, ...], entry: list) -> None:
        name = chunk_name(cid)
        self.chunks[name] = entry
        self._change().chunks[name] = entry

    def drop_entry(self, cid: tuple[int, ...]) -> None:
        name = chunk_name(cid)
        if self.chunks.pop(name, None) is not None:
            self._change().chunks[name] = None

    def zone(self, chunk: np.ndarray, cid: tuple[int, ...]) -> dict | None:
        """The zone map of the chunk's elements inside the extent (None if the
        connector keeps none: its ``zone_maps`` option)."""
        if not self._file.connector.zone_maps:
            return None
        if self.grid.pads(cid):
            chunk = chunk[tuple(slice(0, b.stop - b.start) for b in self.grid.box(cid))]
        return zone_of(chunk)

    def encode_zoned(self, chunk: np.ndarray, cid: tuple[int, ...], as_bytes: bool) -> tuple[Any, dict | None]:
        """The stored form of chunk `cid` and its zone map. With `as_bytes` the
        body is a `bytes` object; a whole raw chunk is then copied and zoned in
        one pass."""
        codec = self.codec
        if (as_bytes and codec.raw and self._file.connector.zone_maps and chunk.dtype == codec.base
                and chunk.nbytes == codec.nbytes and not self.grid.pads(cid)):
            return zoned_bytes(chunk)
        zone = self.zone(chunk, cid)
        body = codec.encode(chunk)
        return (bytes(body) if as_bytes and not isinstance(body, bytes) else body), zone

    def _prepare(self) -> ChunkCodec:
        """Compute, in the calling thread, what needs HDF5 (the fill value, the
        dtype). Worker threads must never call into HDF5 or h5py: the caller
        holds h5py's lock while it waits for them."""
        if self._codec is None:
            self._codec = ChunkCodec(self._meta.dtype, self.chunk_shape, self.filters)
            fill = self._meta.replace(shape=self.chunk_shape, maxshape=None).fill_array()
            fill.flags.writeable = False
            self._fill = fill
        return self._codec

    @property
    def codec(self) -> ChunkCodec:
        return self._prepare()

    def fill_chunk(self) -> np.ndarray:
        """A new chunk array holding the fill value."""
        self._prepare()
        return self._fill.copy()

    def descriptor(self) -> dict:
        """The JSON descriptor of this dataset's stored chunks (see `h5pyvol.storage.describe`)."""
        meta = self._meta
        dtype = self._meta_json.get("dtype") or dtype_to_json(meta.dtype)
        fill = self._fill_json
        if fill is None and not meta.null:
            fill = encode_values(meta.replace(shape=(), maxshape=None).fill_array(), meta.dtype)
        return {"dtype": dtype, "shape": list(meta.shape), "chunks": list(self.chunk_shape),
                "filters": self.filters, "fill_value": fill,
                "encoding": "json" if meta.dtype.hasobject else "raw", "order": "C"}

    def shards(self) -> list[api.Shard]:
        """One shard per chunk of the grid; written ones carry the chunk object's
        key, its stored size, zone map and the backend's location hints.
        Pending writes are uploaded first (not committed: others see them only
        after a flush)."""
        if self._meta.null:
            return []
        f = self._file
        if f.writable and any(tok == self._token for tok, _ in f.cache):
            f.drain()
        grid = self.grid
        cids = list(grid.ids())
        names = [chunk_name(cid) for cid in cids]
        written = [n for n in names if n in self.chunks]
        keys = {n: f.key(self, n, self.chunks[n][0]) for n in written}
        located = dict(zip(written, f.backend.locations([keys[n] for n in written]), strict=True))
        out = []
        for cid, name in zip(cids, names, strict=True):
            entry = self.chunks.get(name)
            if entry is None:
                out.append(api.Shard(grid.box(cid), 0, None, {}, written=False))
            else:
                out.append(api.Shard(grid.box(cid), entry[1], keys[name], located[name],
                                     stats=entry[2] if len(entry) > 2 else None))
        return out


# ---------------------------------------------------------------- files


class ChunkedFile(api.File):
    """One open file: its nodes, write cache, changes and commit protocol."""

    def __init__(self, connector: ChunkedConnector, name: str, writable: bool):
        self.connector = connector
        self.backend: Backend = connector.backend
        self.name = name
        self._writable = writable
        self.nodes: dict[bytes, ChunkedNode] = {}
        self.blobs: dict[bytes, bytes] = {}
        self.head: dict = {}
        self.version: Any = None
        self.file_id = ""
        self._root: ChunkedGroup
        self.changes = Changes()
        self.rewrite = False  # the head is in an older format: the next commit rewrites it whole
        # Per-writer identity: chunk versions and node tokens never collide with another writer's.
        self.session = uuid.uuid4().hex[:12]
        self._nonce = secrets.randbelow(0xFFFFFFFF) + 1
        self._counter = itertools.count()
        self.seq = 0  # commits of this session: part of chunk versions
        self.registered = False
        self.lost: SessionLost | None = None  # this session was taken for dead: no commit any more
        self.uploaded: dict[str, tuple[str, str, str]] = {}  # key -> (token, chunk, version), since the last commit
        self.deferred: set[str] = set()  # superseded keys open handles still use: removed at close
        self.cache: dict[tuple[bytes, tuple[int, ...]], np.ndarray] = {}
        self._cache_owner: dict[tuple[bytes, tuple[int, ...]], ChunkedDataset] = {}
        self.cache_bytes = 0
        # Copies into a fresh output array fault its pages in; many threads
        # faulting at once run slower than two (measured on S3: 0.43 s against
        # 0.23 s per GiB with 16 threads).
        self.copy_slots = threading.Semaphore(2)
        self._lock = threading.RLock()  # head updates: commits and the session heartbeat
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.closed = False
        self.counted = False  # among the connector's open files

    # -- setup

    def new_token(self) -> bytes:
        """8 bytes: a 24-bit counter, this writer's random 32-bit nonce, and a
        zero byte, so that HDF5 1.10-style object references (and dimension
        scales as h5py reads them) can hold it. A new nonce after 2**24 nodes."""
        count = next(self._counter)
        if count >= 1 << 24:
            self._nonce, self._counter = secrets.randbelow(0xFFFFFFFF) + 1, itertools.count(1)
            count = 0
        return struct.pack("<Q", (self._nonce << 24) | count)

    def init_new(self, fcpl: bytes) -> None:
        self.file_id = uuid.uuid4().hex[:16]
        token = self.new_token()
        root = self._root = self.nodes[token] = ChunkedGroup(self, token, None, fcpl)
        root.nlink = 1  # the file itself holds the root
        self.head = new_manifest(self.file_id, token.hex(), root.record())

    def load(self, head: dict, version: Any) -> None:
        self.head, self.version = head, version
        self.file_id = head.get("file_id", "")
        kinds = {"group": ChunkedGroup, "dataset": self.connector.dataset_class, "datatype": ChunkedDatatype}
        for hexed, record in head["nodes"].items():
            token = bytes.fromhex(hexed)
            self.nodes[token] = kinds[record["kind"]](self, token, record)
        self._root = self.nodes[bytes.fromhex(head["root"])]
        self.blobs = {bytes.fromhex(k): unb64(v) for k, v in (head.get("blobs") or {}).items()}

    # -- the api

    @property
    def root(self) -> api.Group:
        return self._root

    @property
    def writable(self) -> bool:
        return self._writable

    def open_node(self, token: bytes) -> api.Node:
        try:
            return self.nodes[token]
        except KeyError:
            raise KeyError(f"no object with token {token.hex()}") from None

    def _add(self, cls, **kw) -> ChunkedNode:
        self._check_writable()
        token = self.new_token()
        node = self.nodes[token] = cls(self, token, None, **kw)
        self.changes.new[token] = None
        return node

    def create_group(self, gcpl: bytes = b"") -> api.Group:
        return self._add(ChunkedGroup, gcpl=gcpl)

    def create_dataset(self, meta: api.ArrayMeta) -> api.Dataset:
        return self._add(self.connector.dataset_class, meta=meta)

    def commit_datatype(self, hdf5_type: bytes) -> api.Datatype:
        return self._add(ChunkedDatatype, hdf5_type=hdf5_type)

    def put_blob(self, data: bytes) -> bytes:
        self._check_writable()
        key = self.new_token()
        self.blobs[key] = bytes(data)
        self.changes.blobs[key.hex()] = b64(bytes(data))
        return key

    def get_blob(self, key: bytes) -> bytes:
        try:
            return self.blobs[key]
        except KeyError:
            raise KeyError(f"no blob {key.hex()} in {self.name!r}") from None

    def delete_blob(self, key: bytes) -> None:
        if self._writable and self.blobs.pop(key, None) is not None:
            self.changes.blobs[key.hex()] = None

    def flush(self) -> None:
        self.commit()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        try:
            self.commit(final=True)
        finally:
            if self.counted:
                self.counted = False
                self.connector.file_closed()

    # -- changes and reference counts

    def _check_writable(self) -> None:
        if not self._writable:
            raise PermissionError(errno.EACCES, f"file {self.name!r} is open read-only")

    def change(self, token: bytes):
        self._check_writable()
        return self.changes.node(token)

    def linked(self, token: bytes) -> None:
        """A new hard link to node `token`, which may have been reclaimed while open."""
        node = self.nodes[token]
        node.change_link_count(+1)
        if node.reclaimed:
            node.reclaimed = False
            for used in node.types_used():
                self.hold_type(used)

    def unlinked(self, token: bytes) -> None:
        """Node `token` lost a reference. At none it is reclaimed, as in HDF5:
        its arrays release their committed datatypes and, for a group, its
        members lose a link each. Unreachable nodes leave the head at the next commit."""
        node = self.nodes.get(token)
        if node is None or node.reclaimed:  # reclaimed already, e.g. through a cycle of hard links
            return
        node.change_link_count(-1)
        if node.nlink > 0 or node is self._root:
            return
        node.reclaimed = True
        for used in node.types_used():
            self.release_type(used)
        if isinstance(node, ChunkedGroup):
            for _, link in node.links():
                if isinstance(link, api.HardLink):
                    self.unlinked(link.token)

    def hold_type(self, token: bytes) -> None:
        """A dataset or attribute was created with committed datatype `token`
        (if it still exists): a reference to it, as in HDF5 (its H5Oget_info rc)."""
        if token and isinstance(self.nodes.get(token), ChunkedDatatype):
            self.linked(token)

    def release_type(self, token: bytes) -> None:
        if token and isinstance(self.nodes.get(token), ChunkedDatatype):
            self.unlinked(token)

    # -- what merge() asks of the live objects (manifest.LiveView)

    def record(self, token: bytes) -> dict | None:
        node = self.nodes.get(token)
        return None if node is None else node.record()

    def link(self, token: bytes, name: str) -> tuple[dict, int] | None:
        node = self.nodes.get(token)
        return node.link_record(name) if isinstance(node, ChunkedGroup) else None

    def next_order(self, token: bytes) -> int:
        node = self.nodes.get(token)
        return node.link_orders.next if isinstance(node, ChunkedGroup) else 0

    def attr(self, token: bytes, name: str) -> dict | None:
        node = self.nodes.get(token)
        return None if node is None else node.attr_record(name)

    def meta(self, token: bytes) -> dict:
        return self.nodes[token]._meta_json

    # -- keys and transfers

    def key(self, ds: ChunkedDataset, chunk: str, version: str) -> str:
        return self.backend.chunk_key(self.name, self.file_id, ds.token.hex(), chunk, version)

    def key_of(self, token: str, chunk: str, entry: list) -> str:
        return self.backend.chunk_key(self.name, self.file_id, token, chunk, entry[0])

    def named_keys(self) -> set[str]:
        """Every chunk object key the head names."""
        return referenced_keys(self.head, self.key_of)

    def upload(self, items: list[tuple[ChunkedDataset, tuple[int, ...], Callable[[], np.ndarray]]]) -> list[list]:
        """Store chunks under fresh keys of this session; their manifest
        entries ([version, stored bytes, zone map]), in order. Chunk arrays are
        made, zoned and encoded in the backend's workers."""
        if not items:
            return []
        self.ensure_session()
        version = f"{self.session}{self.seq:x}"
        as_bytes = self.backend.bytes_bodies
        zones: list = [None] * len(items)
        jobs = []
        for i, (ds, cid, make) in enumerate(items):
            name = chunk_name(cid)
            key = self.key(ds, name, version)
            self.uploaded[key] = (ds.token.hex(), name, version)  # before the PUT: it may exist after a failure

            def body(i=i, ds=ds, cid=cid, make=make):
                out, zones[i] = ds.encode_zoned(make(), cid, as_bytes)
                return out
            jobs.append(WriteJob(key, body, f"writing chunk {name or '0'} of {self.name!r}", costly=not ds.codec.raw))
        self.backend.write(jobs)
        return [[version, job.size, zone] for job, zone in zip(jobs, zones, strict=True)]

    # -- the write cache (partly written chunks, uploaded at flush)

    def set_cached(self, ds: ChunkedDataset, cid: tuple[int, ...], chunk: np.ndarray) -> None:
        key = (ds.token, cid)
        if key not in self.cache:
            self.cache_bytes += chunk.nbytes
        self.cache[key] = chunk
        self._cache_owner[key] = ds

    def drop_cached(self, token: bytes, cid: tuple[int, ...]) -> None:
        chunk = self.cache.pop((token, cid), None)
        if chunk is not None:
            self.cache_bytes -= chunk.nbytes
            del self._cache_owner[(token, cid)]

    def reserve(self) -> None:
        if self.cache_bytes >= self.connector.write_cache_bytes:
            self.drain()

    def drain(self) -> None:
        """Upload every cached chunk (not yet a commit)."""
        if not self.cache:
            return
        items = list(self.cache.items())
        owners = [self._cache_owner[k] for k, _ in items]
        entries = self.upload([(ds, cid, lambda c=chunk: c) for ds, ((_, cid), chunk) in zip(owners, items,
                                                                                              strict=True)])
        for ds, ((token, cid), _), entry in zip(owners, items, entries, strict=True):
            ds.set_entry(cid, entry)
            self.drop_cached(token, cid)

    # -- sessions

    def _session_entry(self) -> dict:
        now = time.time()
        entry = {"host": socket.gethostname(), "pid": os.getpid(), "since": now, "seen": now}
        old = (self.head.get("sessions") or {}).get(self.session)
        if old:
            entry["since"] = old.get("since", now)
        return entry

    def ensure_session(self) -> None:
        """Register this writer's session in the head before its first chunk
        upload, so that its uploads are collected if it dies."""
        if self.registered:
            return
        with self._lock:
            changes = Changes()
            changes.sessions[self.session] = self._session_entry()
            self._commit(changes)
            self.registered = True
        interval = self.connector.orphan_grace / 4
        if interval > 0 and self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, args=(interval,), daemon=True,
                                               name=f"h5pyvol-session-{self.session}")
            self._heartbeat.start()

    def _beat(self, interval: float) -> None:
        """Refresh the session's `seen` while the file is open (a daemon thread)."""
        while not self._stop.wait(interval):
            try:
                with self._lock:
                    if self._stop.is_set() or not self.registered:
                        return
                    changes = Changes()
                    changes.sessions[self.session] = self._session_entry()
                    self._commit(changes)
            except Exception as exc:  # noqa: BLE001 - reported; the next commit reports the real state
                warnings.warn(f"h5pyvol: could not refresh the writer session of {self.name!r}: {exc}",
                              RuntimeWarning, stacklevel=1)

    def collect_stale_sessions(self, grace: float | None = None) -> list[str]:
        """Remove the sessions of writers silent for longer than `grace`
        (default: the ``orphan_grace`` option) from the head, then delete their
        chunk objects the head does not name. Returns the keys deleted."""
        grace = self.connector.orphan_grace if grace is None else grace
        now = time.time()
        stale = {sid: s.get("seen", 0) for sid, s in (self.head.get("sessions") or {}).items()
                 if sid != self.session and now - s.get("seen", 0) > grace}
        if not stale:
            return []
        with self._lock:
            changes = Changes()
            changes.stale = stale
            merged = self._commit(changes)
        if not merged.collected:
            return []
        dead = set(merged.collected)
        refs = self.named_keys()
        orphans = [k for k in self.backend.list_chunks(self.name, self.file_id)
                   if k not in refs and version_session(self.backend.key_version(k)) in dead]
        self.backend.delete(orphans)
        return orphans

    # -- commit

    def _commit(self, changes: Changes) -> Merged:
        """Merge `changes` onto the head and store it conditionally, reloading and
        merging again while other writers commit in between."""
        unexplained = 0
        for attempt in range(MAX_COMMIT_ATTEMPTS):
            if self.lost is not None:
                raise self.lost
            if self.registered and self.session not in (self.head.get("sessions") or {}):
                # Another writer took this session for a dead one's and deleted its unnamed uploads.
                self.registered = False
                changes.sessions.pop(self.session, None)
                if self.uploaded:
                    self.lost = SessionLost(
                        errno.ESTALE, f"the writer session {self.session} of {self.name!r} was collected as dead "
                        "by another writer (silent for longer than that writer's orphan_grace): chunks uploaded "
                        "since its last commit may be gone, so nothing more was committed; reopen the file")
                    raise self.lost
            merged = merge(self.head, changes, self, self.key_of)
            merged.touched.everything = self.rewrite
            try:
                self.version = self.backend.store_head(self.name, merged.head, merged.touched, self.version)
            except HeadConflict as conflict:
                head, version = self.backend.load_head(self.name)
                if head is None or head.get("file_id", "") != self.file_id:
                    raise FileRecreated(
                        errno.ESTALE, f"{self.backend.describe(self.name)} was deleted or created anew by another "
                        "writer since it was opened here: nothing was committed") from None
                if conflict.maybe_stored:
                    if _same_head(head, merged.head):  # the update did happen
                        self.head, self.version, self.rewrite = merged.head, version, False
                        return merged
                    if version == self.version:  # nothing changed, yet the update failed
                        unexplained += 1
                        if unexplained > 3:
                            raise OSError(errno.EIO, f"could not commit {self.name!r}: {conflict}") from None
                self.head, self.version = head, version
                self.rewrite = self.rewrite or bool(head.get("_legacy"))
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 50)))  # let the other writers through
                continue
            self.head = merged.head
            self.rewrite = False
            return merged
        raise OSError(errno.EAGAIN, f"could not commit {self.name!r}: the head kept changing "
                      f"({MAX_COMMIT_ATTEMPTS} attempts)")

    def commit(self, final: bool = False) -> None:
        """Upload pending chunks, then commit this writer's changes (the commit
        point), then delete the objects this commit superseded."""
        if not self._writable:
            return
        with self._lock:
            self.drain()
            changes = self.changes
            if changes and self.registered:
                changes.sessions[self.session] = self._session_entry()  # a sign of life
            if final and self.registered:
                changes.sessions[self.session] = None
            if not changes and not (final and self.deferred):
                return
            if changes:
                merged = self._commit(changes)
                self.changes = Changes()
                if final:
                    self.registered = False
                garbage = merged.superseded
                nodes = merged.head["nodes"]
                for key, (token, chunk, version) in self.uploaded.items():
                    entry = chunk_entries(nodes.get(token, {})).get(chunk)
                    if entry is None or entry[0] != version:
                        garbage.add(key)
                self.uploaded = {}
                self.seq += 1  # later writes never touch committed objects
            else:
                garbage = set()
            if final:
                garbage |= self.deferred
                self.deferred = set()
                if garbage:  # a node linked again after its keys were deferred names them once more
                    garbage -= self.named_keys()
            else:  # open handles of nodes no longer in the file keep their chunks until close
                live = {self.key(n, name, e[0]) for n in self.nodes.values()
                        if isinstance(n, ChunkedDataset) and n.token.hex() not in self.head["nodes"]
                        for name, e in n.chunks.items()}
                self.deferred |= garbage & live
                garbage -= live
            self.backend.delete(sorted(garbage))


def _same_head(stored: dict, mine: dict) -> bool:
    """Whether a reloaded head is the one this writer tried to store."""
    return stored.get("generation") == mine.get("generation") and stored == json.loads(json.dumps(mine))


# ---------------------------------------------------------------- the connector


@dataclass
class VacuumReport:
    """What `ChunkedConnector.vacuum` found (and, unless a dry run, removed)."""

    name: str
    orphans: list[str] = field(default_factory=list)
    """Chunk objects no committed state names, of no live writer."""
    live: int = 0
    """Unnamed chunk objects of live writers (their next commit may name them): kept."""
    sessions: list[str] = field(default_factory=list)
    """Sessions of dead writers, removed from the head."""
    dry_run: bool = False


class ChunkedConnector(api.Connector):
    """Base of connectors whose files are a head plus one object per chunk.

    A subclass parses its options, calls ``super().__init__`` and provides
    `backend` (a `Backend`); `dataset_class` may name a subclass of
    `ChunkedDataset` of its own (for type checks and backend-specific helpers)."""

    supports_delete = True
    supports_resize = True
    supports_creation_order = True
    supports_committed_datatypes = True
    supports_link_count_changes = True
    dataset_class: ClassVar[type[ChunkedDataset]] = ChunkedDataset

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        opts = {**OPTION_DEFAULTS, **{k: v for k, v in options.items() if k in OPTION_DEFAULTS}}
        try:
            self.chunk_bytes = max(1, int(opts["chunk_bytes"]))
            self.write_cache_bytes = int(opts["write_cache_bytes"])
            self.orphan_grace = float(opts["orphan_grace"])
            self.zone_maps = opts["zone_maps"] not in ("0", "false", "no", "off")
        except ValueError as exc:
            raise ValueError(f"bad {self.name} connector option: {exc}") from None
        self._files_open = 0
        self._files_lock = threading.Lock()

    @property
    def backend(self) -> Backend:
        raise NotImplementedError

    def _opened(self, f: ChunkedFile) -> ChunkedFile:
        with self._files_lock:
            self._files_open += 1
        f.counted = True
        return f

    def file_closed(self) -> None:
        """One of this connector's files closed: the backend goes idle with the last."""
        with self._files_lock:
            self._files_open -= 1
        self._idle_unless_open()

    def _idle_unless_open(self) -> None:
        with self._files_lock:
            idle = self._files_open == 0
        if idle:
            self.backend.idle()

    def _head(self, name: str) -> tuple[dict | None, Any]:
        return self.backend.load_head(name)

    def create(self, name: str, *, overwrite: bool, fcpl: bytes = b"") -> api.File:
        backend = self.backend
        name = backend.file_name(name)
        while True:
            old, version = self._head(name)
            if old is not None and not overwrite:
                raise FileExistsError(errno.EEXIST, f"{backend.describe(name)} already exists")
            f = ChunkedFile(self, name, writable=True)
            f.init_new(fcpl)
            try:
                f.version = backend.store_head(name, f.head, Touched(everything=True), version,
                                               create="replace" if old is not None else "exclusive")
            except HeadConflict:
                if not overwrite:
                    raise FileExistsError(errno.EEXIST, f"{backend.describe(name)} already exists") from None
                continue  # someone committed to the old file meanwhile: truncate what is there now
            break
        if old is not None:  # the old file's objects, now garbage
            backend.delete(self._all_chunks(name, old))
        return self._opened(f)

    def _all_chunks(self, name: str, head: dict) -> list[str]:
        """Every chunk object of a file: those its head names and, where some may
        exist unnamed (writer sessions, or a cheap listing), those listed."""
        backend, file_id = self.backend, head.get("file_id", "")
        keys = referenced_keys(head, lambda tok, chunk, e: backend.chunk_key(name, file_id, tok, chunk, e[0]))
        if backend.cheap_listing or head.get("sessions"):
            keys |= set(backend.list_chunks(name, file_id))
        return sorted(keys)

    def open(self, name: str, *, writable: bool) -> api.File:
        backend = self.backend
        name = backend.file_name(name)
        head, version = self._head(name)
        if head is None:
            raise FileNotFoundError(errno.ENOENT, f"no HDF5 file {backend.describe(name)}")
        f = ChunkedFile(self, name, writable)
        f.load(head, version)
        f.rewrite = writable and bool(head.get("_legacy"))
        if writable and head.get("sessions"):
            f.collect_stale_sessions()
        return self._opened(f)

    def exists(self, name: str) -> bool:
        return self._head(self.backend.file_name(name))[0] is not None

    def delete(self, name: str) -> None:
        backend = self.backend
        name = backend.file_name(name)
        head, _ = self._head(name)
        if head is None:
            raise FileNotFoundError(errno.ENOENT, f"no HDF5 file {backend.describe(name)}")
        try:
            backend.delete_head(name)  # from here on the file no longer exists
            backend.delete(self._all_chunks(name, head))
        finally:
            self._idle_unless_open()

    def vacuum(self, name: str, *, dry_run: bool = False, grace: float | None = None,
               progress: Callable[[str], None] | None = None) -> VacuumReport:
        """Find, and unless `dry_run` delete, the chunk objects of `name` that no
        committed state names and no live writer may still commit: leftovers of
        writers that died (or of failed deletions). Sessions of dead writers
        (silent for longer than `grace`, default ``orphan_grace``) are removed
        from the head first. Safe while other writers work on the file."""
        try:
            return self._vacuum(name, dry_run, grace, progress)
        finally:
            self._idle_unless_open()

    def _vacuum(self, name: str, dry_run: bool, grace: float | None,
                progress: Callable[[str], None] | None) -> VacuumReport:
        say = progress or (lambda _msg: None)
        grace = self.orphan_grace if grace is None else grace
        backend = self.backend
        name = backend.file_name(name)
        report = VacuumReport(name, dry_run=dry_run)
        head, version = self._head(name)
        if head is None:
            raise FileNotFoundError(errno.ENOENT, f"no HDF5 file {backend.describe(name)}")
        f = ChunkedFile(self, name, writable=not dry_run)
        f.load(head, version)
        now = time.time()
        stale = {sid for sid, s in (head.get("sessions") or {}).items() if now - s.get("seen", 0) > grace}
        if stale and not dry_run:
            say(f"removing {len(stale)} dead writer session(s) from the head")
            with f._lock:
                changes = Changes()
                changes.stale = {sid: head["sessions"][sid].get("seen", 0) for sid in stale}
                report.sessions = f._commit(changes).collected
        say("listing chunk objects")
        keys = backend.list_chunks(name, f.file_id)
        head, _ = self._head(name)  # read after the listing: every listed upload's session is in it
        if head is None:
            raise FileNotFoundError(errno.ENOENT, f"{backend.describe(name)} was deleted meanwhile")
        f.head = head
        refs = f.named_keys()
        now = time.time()
        live = {sid for sid, s in (head.get("sessions") or {}).items() if now - s.get("seen", 0) <= grace}
        for key in keys:
            if key in refs:
                continue
            if version_session(backend.key_version(key)) in live:
                report.live += 1
            else:
                report.orphans.append(key)
        if not dry_run and report.orphans:
            say(f"deleting {len(report.orphans)} orphan chunk object(s)")
            backend.delete(report.orphans)
        return report

    def close(self) -> None:
        self.backend.close()
