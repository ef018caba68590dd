"""Reading a task's block in a worker: straight from storage when the shard is one stored chunk.

Owns how the first input's data reaches a map:

- a written chunk of a dataset kept by a chunked store (S3, RADOS: its
  `Shard.key` names the object) is fetched with the connector's own storage
  client (`Backend.read`, the connector instance this process already has for
  that connector string) and decoded with the dataset's descriptor
  (`h5pyvol.storage.decode_chunk`): a raw chunk lands in one buffer, no
  HDF5 call, no file to open;
- a chunk of a native HDF5 file (its `Shard.location` ``offset``) is read
  from the file with one positioned read and decoded the same way;
- a chunk never written is the descriptor's fill value;
- anything else (memory files, other inputs, chunks whose filters or types
  only libhdf5 can decode) goes through h5py, as `tasks` does for every input.

`Prefetch` keeps the next few chunks of a worker's tasks in flight while the
current map runs, so reading and computing overlap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from h5pyvol.connector import Shard
from h5pyvol.storage import decode_chunk, fill_value
from h5pyvol.storage.backend import Backend, ReadJob
from h5pyvol.storage.codecs import dtype_from_json

from .plan import Task
from .sources import Input

DEPTH = 2
"""Chunks fetched ahead of the running map, per worker."""

_DECODABLE = {"shuffle", "gzip", "fletcher32"}

Fetch = Callable[[], np.ndarray]


def _backend(spec: str) -> Backend | None:
    """The storage client of this process's connector instance for `spec`, if it has one."""
    from h5pyvol import registry

    backend = getattr(registry.load(spec), "backend", None)
    return backend if isinstance(backend, Backend) else None


def _is_chunk(shard: Shard, chunks: tuple[int, ...]) -> bool:
    """Whether the shard's selection is exactly one box of the chunk grid."""
    return all(s.start % c == 0 and 0 < s.stop - s.start <= c for s, c in zip(shard.selection, chunks, strict=True))


def _decodable(descriptor: dict) -> bool:
    return (descriptor.get("encoding", "raw") == "raw" and dtype_from_json(descriptor["dtype"]).kind in "iuf"
            and all(f[0] in _DECODABLE for f in descriptor.get("filters") or []))


def fetcher(inp: Input, shard: Shard) -> Fetch | None:
    """A function giving the block of `shard` of input `inp` without h5py, or
    None when only h5py can read it."""
    desc = inp.descriptor
    if desc is None or inp.source is None or inp.source.process_local or not _decodable(desc):
        return None
    chunks = tuple(desc["chunks"])
    if len(chunks) != len(shard.selection) or not _is_chunk(shard, chunks):
        return None
    inside = tuple(slice(0, s.stop - s.start) for s in shard.selection)
    if not shard.written:
        fill = fill_value(desc)
        if fill is None:
            return None
        return lambda: np.full(shard.shape, fill)
    if shard.key is not None and inp.source.spec is not None:
        backend = _backend(inp.source.spec)
        if backend is None:
            return None
        return lambda: _from_backend(backend, shard, desc)[inside]
    where = shard.location
    if inp.source.spec is None and where.get("layout") == "chunked" and "offset" in where and where.get("file"):
        return lambda: _from_file(where["file"], shard, desc)[inside]
    return None


def _decode(buf: np.ndarray | bytes | memoryview, desc: dict, filter_mask: int = 0) -> np.ndarray:
    chunk = decode_chunk(buf, desc, filter_mask)
    # a filtered chunk decodes into read-only bytes: maps get writable arrays, as from h5py
    return chunk if chunk.flags.writeable else chunk.copy()


def _from_backend(backend: Backend, shard: Shard, desc: dict) -> np.ndarray:
    size = int(shard.nbytes)
    buf = np.empty(size, np.uint8)  # the stored bytes land here; a raw chunk's array is this buffer
    backend.read([ReadJob(shard.key, size, [(0, size)], buf, None, f"reading chunk object {shard.key!r}")])
    return _decode(buf, desc)


def _from_file(path: str, shard: Shard, desc: dict) -> np.ndarray:
    size = int(shard.nbytes)
    buf = np.empty(size, np.uint8)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = os.preadv(fd, [memoryview(buf)], int(shard.location["offset"]))
    finally:
        os.close(fd)
    if got != size:
        raise OSError(f"{path}: chunk at offset {shard.location['offset']} holds {got} of its {size} bytes")
    return _decode(buf, desc, int(shard.location.get("filter_mask", 0)))


class Prefetch:
    """The first input's blocks of a worker's `tasks`, fetched `DEPTH` ahead
    in background threads; `take(task)` gives one (None: read it with h5py)."""

    def __init__(self, inp: Input, tasks: Sequence[Task], depth: int = DEPTH):
        self._fetch: dict[int, Fetch] = {}
        for task in tasks:
            fn = fetcher(inp, task.shard)
            if fn is not None:
                self._fetch[task.index] = fn
        self._order = [t.index for t in tasks if t.index in self._fetch]
        self._next = 0
        self._pending: dict[int, Future] = {}
        self._pool = ThreadPoolExecutor(depth, thread_name_prefix="h5pyvol-analysis-fetch") if self._order else None
        self._depth = depth
        self._fill()

    def _fill(self) -> None:
        while self._pool is not None and self._next < len(self._order) and len(self._pending) < self._depth:
            index = self._order[self._next]
            self._next += 1
            self._pending[index] = self._pool.submit(self._fetch[index])

    def take(self, task: Task) -> np.ndarray | None:
        if task.index not in self._fetch:
            return None
        future = self._pending.pop(task.index, None)
        if future is None:  # out of order: fetch it now
            return self._fetch[task.index]()
        self._fill()
        return future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
