"""What a chunked store needs from a storage system: the `Backend` interface.

A backend moves bytes and nothing else; `h5pyvol.storage.chunked` does HDF5's
objects, chunking, codecs, the commit protocol and garbage collection on top.
One backend instance serves one connector instance (one bucket and prefix,
one pool and namespace). It provides:

- **Chunk objects**: `read` (byte ranges of many objects, into the caller's
  buffers or handed to a callback), `write` (many objects, bodies made in the
  backend's workers), `delete` (best effort), `list_chunks` (every chunk
  object of a file, for orphan collection), `chunk_key` (an object's name,
  built only from the file id, node token, chunk coordinates and version).
- **Heads**: `load_head` (the manifest and an opaque version) and
  `store_head`, a *conditional* update: it raises `HeadConflict` when the head
  is no longer at the version given (`create="exclusive"`: when it exists).
  `conditional` is False for a store that cannot check (then the last commit
  wins); `delete_head` removes a file's head.
- **Location hints**: `locations(keys)`: for each key a plain-JSON dict of
  where the object lives (bucket and key; pool, PG, OSDs and host), looked up
  in batches and cached.
- **Names**: `file_name(name)` checks and normalises an HDF5 file name.

Concurrency is the backend's: S3 runs a bounded thread pool, RADOS keeps a
bounded number of asynchronous operations in flight. Callbacks (`ReadJob.then`,
`WriteJob.make`) may run in worker threads: they must not call into HDF5.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .manifest import HeadConflict, Touched

__all__ = ["Backend", "HeadConflict", "ReadJob", "WriteJob"]


@dataclass
class ReadJob:
    """Bytes of one chunk object.

    `runs` are (offset, length) ranges of the object of `size` bytes. With
    `into` (a writable byte buffer of `size` bytes, or exactly of the runs'
    extent when there is one run), each run lands at its offset in it.
    Otherwise `then(buf)` is called with a buffer holding every run at its
    offset; `buf` is valid only during the call."""

    key: str
    size: int
    runs: list[tuple[int, int]]
    into: Any = None
    then: Callable[[memoryview], None] | None = None
    what: str = ""
    """For error messages: e.g. "reading chunk 0.3 of 'run.h5'"."""


@dataclass
class WriteJob:
    """One chunk object to store: `make()` gives its body (bytes or a buffer,
    valid until the same thread calls another `make`)."""

    key: str
    make: Callable[[], Any]
    what: str = ""
    size: int = field(default=-1)
    """Set by the backend: the body's length."""
    costly: bool = False
    """Making the body compresses or serializes the chunk (worth a helper
    thread); False: it is a view or one copy, cheapest made where it is sent."""


class Backend(ABC):
    """Bytes for one container; see the module docstring."""

    conditional: ClassVar[bool] = True
    """`store_head` checks the version (many writers are safe)."""
    cheap_listing: ClassVar[bool] = True
    """`list_chunks` costs about one request per thousand objects of the file
    (S3's prefix listing), not a walk of the whole pool (RADOS)."""
    bytes_bodies: ClassVar[bool] = False
    """`write` needs every body as a `bytes` object (its client library takes
    nothing else). The layer then makes that copy itself, fused with the
    chunk's zone map; otherwise bodies may be views of the caller's array."""
    request_bytes: ClassVar[int] = 1 << 19
    """What one request costs, in bytes: byte ranges closer than this are read
    as one, and ranges are read only when cheaper than the whole object."""

    # -- names

    @abstractmethod
    def file_name(self, name: str) -> str:
        """The name a file is stored under; ValueError for a name the store cannot take."""

    @abstractmethod
    def chunk_key(self, name: str, file_id: str, token: str, chunk: str, version: str) -> str:
        """The object key of one chunk version of dataset `token` (hex) of file `name`;
        `chunk` is the chunk's name in the dataset record ("i.j.k", "" for a scalar)."""

    @abstractmethod
    def key_version(self, key: str) -> str:
        """The version part of a chunk key (for orphan collection)."""

    def describe(self, name: str) -> str:
        """Where a file lives, for messages."""
        return repr(name)

    # -- chunk objects

    @abstractmethod
    def read(self, jobs: list[ReadJob]) -> None:
        """Run every job; on a failure, wait for the ones started and raise the first error."""

    @abstractmethod
    def write(self, jobs: list[WriteJob]) -> None:
        """Store every job's body under its key (setting `job.size`); raise the first error."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove objects, best effort: a failure only leaves garbage."""

    @abstractmethod
    def list_chunks(self, name: str, file_id: str) -> list[str]:
        """The keys of every chunk object of file `name` (with id `file_id`) that exists."""

    # -- heads

    @abstractmethod
    def load_head(self, name: str) -> tuple[dict | None, Any]:
        """The file's manifest and its version, or (None, None) if there is no such file."""

    @abstractmethod
    def store_head(self, name: str, head: dict, touched: Touched, version: Any, create: str | None = None) -> Any:
        """Replace the head (`create`: None, "exclusive" or "replace"); returns the new version.
        HeadConflict if it is not at `version` any more (or, exclusive, exists)."""

    @abstractmethod
    def delete_head(self, name: str) -> None:
        """Remove a file's head: from then on the file does not exist."""

    # -- locations

    def locations(self, keys: list[str]) -> list[dict]:
        """Where each object is (plain JSON values). The default knows nothing."""
        return [{} for _ in keys]

    def idle(self) -> None:
        """No file of the connector is open any more: release what is kept
        only to make the next request faster (idle connections, worker
        threads), which is made again when needed. The default keeps all."""

    def close(self) -> None:
        """Release connections."""
