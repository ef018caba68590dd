"""The in-memory connector: HDF5 files held in Python objects.

The default connector for demos and tests, and the smallest complete example
of the connector API. Files live as long as the process (one store per
connector option set); a file can be opened again by name until deleted.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import time
import weakref

import numpy as np

from h5pyvol import connector as api
from h5pyvol.selection import Selection
from h5pyvol.storage import ChunkGrid, ChunkTracker


class MemoryAttribute(api.Attribute):
    def __init__(self, meta: api.ArrayMeta, node: MemoryNode):
        self._meta = meta
        self._data: np.ndarray | None = None  # the fill value until written (made when read)
        self._node = node

    @property
    def meta(self) -> api.ArrayMeta:
        return self._meta

    def read(self) -> np.ndarray:
        if self._data is None and not self._meta.null:
            self._data = self._meta.fill_array()
        return self._data

    def write(self, data: np.ndarray) -> None:
        # An array datatype's dimensions trail the attribute's own (numpy expands them).
        dtype = self._meta.dtype
        self._data = np.array(data, dtype=dtype.base, copy=True).reshape(self._meta.shape + dtype.shape)
        self._node.touch()


class MemoryNode(api.Node):
    def __init__(self, store: MemoryStore, token: bytes):
        self._store = store
        self._token = token
        self._attrs: dict[str, MemoryAttribute] = {}
        self.links_in = 0
        self._created = self._modified = int(time.time())

    @property
    def created(self) -> int:
        return self._created

    @property
    def times(self) -> tuple[int, int, int, int]:
        # Access times are not kept (HDF5 does not update them either).
        return (self._created, self._modified, self._modified, self._created)

    def touch(self) -> None:
        """Note a change of the node's data or attributes."""
        self._modified = int(time.time())

    def forget(self) -> None:
        """The node is reclaimed: the committed datatypes it uses lose a reference."""
        for token in self.types_used():
            self._store.release_type(token)

    def remember(self) -> None:
        """The node is linked again after `forget`."""
        for token in self.types_used():
            self._store.hold_type(token)

    def types_used(self) -> list[bytes]:
        return [a.meta.committed_type for a in self._attrs.values() if a.meta.committed_type]

    @property
    def token(self) -> bytes:
        return self._token

    @property
    def link_count(self) -> int:
        return self.links_in

    def change_link_count(self, delta: int) -> None:
        self.links_in += delta

    def attribute_names(self) -> list[str]:
        return list(self._attrs)

    def has_attribute(self, name: str) -> bool:
        return name in self._attrs

    def create_attribute(self, name: str, meta: api.ArrayMeta) -> api.Attribute:
        attr = self._attrs[name] = MemoryAttribute(meta, self)
        if meta.committed_type:
            self._store.hold_type(meta.committed_type)
        self.touch()
        return attr

    def open_attribute(self, name: str) -> api.Attribute:
        return self._attrs[name]

    def delete_attribute(self, name: str) -> None:
        attr = self._attrs.pop(name)
        self.touch()
        self._store.release_type(attr.meta.committed_type)

    def rename_attribute(self, old: str, new: str) -> None:
        # Keep the attribute's place in creation order, as HDF5 does.
        self._attrs = {(new if k == old else k): v for k, v in self._attrs.items()}


class MemoryGroup(api.KeepsLinkOrders, MemoryNode, api.Group):
    def __init__(self, store: MemoryStore, token: bytes, gcpl: bytes = b""):
        super().__init__(store, token)
        self._links: dict[str, api.Link] = {}
        self._gcpl = gcpl
        self.link_orders = api.LinkOrders()

    @property
    def gcpl(self) -> bytes:
        return self._gcpl

    def links(self) -> list[tuple[str, api.Link]]:
        return list(self._links.items())

    def get_link(self, name: str) -> api.Link:
        return self._links[name]

    def has_link(self, name: str) -> bool:
        return name in self._links

    def set_link(self, name: str, link: api.Link) -> None:
        if isinstance(link, api.HardLink):
            self._store.relinked(link.token).links_in += 1
        self._links[name] = link
        self.touch()

    def delete_link(self, name: str) -> None:
        link = self._links.pop(name)
        self.link_orders.forget(name, emptied=not self._links)
        self.touch()
        if isinstance(link, api.HardLink):
            self._store.unlinked(link.token)


class MemoryDataset(MemoryNode, api.Dataset):
    def __init__(self, store: MemoryStore, token: bytes, meta: api.ArrayMeta):
        super().__init__(store, token)
        self._meta = meta
        self._data: np.ndarray | None = None  # allocated on first write
        self._chunks: ChunkTracker | None = None  # which chunks were written (for shards)
        self._unnoted = False  # every chunk was written since the tracker last heard
        self._grid_size: tuple[api.ArrayMeta | None, int] = (None, 0)  # (for this meta, chunks in the grid)
        for used in self.types_used():
            store.hold_type(used)

    @property
    def meta(self) -> api.ArrayMeta:
        return self._meta

    def read(self, selection: Selection, out: np.ndarray) -> None:
        if self._data is None:
            out[...] = self._meta.fill_array()[selection.index]
        else:
            out[...] = self._data[selection.index]

    def write(self, selection: Selection, data: np.ndarray) -> None:
        whole = selection.kind == "all"
        if self._data is None:  # no fill value needed where every element is written
            self._data = np.empty(self._meta.shape, self._meta.dtype) if whole else self._meta.fill_array()
        self._data[selection.index] = data
        if whole or self._one_chunk():
            self._unnoted = True  # every chunk was written: noted when the tracker is next used
        else:
            self._tracker().note_write(selection)
        self.touch()

    def resize(self, shape: tuple[int, ...]) -> None:
        tracker = self._tracker() if self._chunks is not None or self._unnoted else None  # at the old extent
        meta = self._meta.replace(shape=tuple(shape))
        if self._data is not None:
            grown = meta.fill_array()
            common = tuple(slice(0, min(a, b)) for a, b in zip(self._meta.shape, shape, strict=True))
            grown[common] = self._data[common]
            self._data = grown
        self._meta = meta
        if tracker is not None:
            tracker.resize(meta.shape)
        self.touch()

    def types_used(self) -> list[bytes]:
        own = [self._meta.committed_type] if self._meta.committed_type else []
        return super().types_used() + own

    def storage_size(self) -> int:
        return 0 if self._data is None else self._data.nbytes

    def is_allocated(self) -> bool:
        return self._data is not None

    def _tracker(self) -> ChunkTracker:
        """Which chunks were written (for shards), made when first needed."""
        meta = self._meta
        if self._chunks is None:
            self._chunks = ChunkTracker(ChunkGrid.for_array(meta.shape, meta.chunks, meta.dtype.itemsize))
        if self._unnoted:
            self._chunks.note_write(Selection.everything(meta.shape))
            self._unnoted = False
        return self._chunks

    def _one_chunk(self) -> bool:
        """Whether the storage grid has one chunk (then every write touches all of it)."""
        meta = self._meta
        if self._grid_size[0] is not meta:
            self._grid_size = (meta, len(ChunkGrid.for_array(meta.shape, meta.chunks, meta.dtype.itemsize)))
        return self._grid_size[1] == 1

    def shards(self) -> list[api.Shard]:
        """One shard per chunk of the storage grid; all live in this process."""
        if self._meta.null:
            return []
        tracker = self._tracker()
        grid = tracker.grid
        where = {"host": socket.gethostname(), "process": os.getpid()}
        itemsize = self._meta.dtype.itemsize
        out = []
        for cid in grid.ids():
            box = grid.box(cid)
            if not tracker.written(cid):
                out.append(api.Shard(box, 0, None, where, written=False))
                continue
            n = 1
            for s in box:
                n *= s.stop - s.start
            zone = tracker.zone(cid, lambda box=box: self._data[box])
            out.append(api.Shard(box, n * itemsize, None, where, stats=zone))
        return out


class MemoryDatatype(MemoryNode, api.Datatype):
    def __init__(self, store: MemoryStore, token: bytes, hdf5_type: bytes):
        super().__init__(store, token)
        self._type = hdf5_type

    @property
    def hdf5_type(self) -> bytes:
        return self._type


class MemoryStore:
    """Everything one in-memory HDF5 file holds."""

    def __init__(self, fcpl: bytes = b"") -> None:
        self._ids = itertools.count()
        self.nodes: dict[bytes, MemoryNode] = {}
        # Reclaimed nodes that open handles still hold: HDF5 lets a program
        # link such an object again (through its open id) until it is closed.
        self.unlinked_nodes: weakref.WeakValueDictionary[bytes, MemoryNode] = weakref.WeakValueDictionary()
        self.blobs: dict[bytes, bytes] = {}  # what references keep (see File.put_blob)
        self.blob_ids = itertools.count(1)
        self.root = self.add(MemoryGroup, fcpl)
        self.root.links_in = 1  # the file itself holds the root

    def add(self, cls, *args):
        # 6 bytes: short enough for HDF5 1.10-style object references (8 bytes)
        token = next(self._ids).to_bytes(6, "little")
        node = self.nodes[token] = cls(self, token, *args)
        return node

    def find(self, token: bytes) -> MemoryNode:
        """A node by token, also one reclaimed that an open handle still holds."""
        node = self.nodes.get(token) or self.unlinked_nodes.get(token)
        if node is None:
            raise KeyError(f"no object with token {token.hex()}")
        return node

    def relinked(self, token: bytes) -> MemoryNode:
        """The node a new hard link points to, back in the file if it was reclaimed."""
        node = self.find(token)
        if token not in self.nodes:
            self.nodes[token] = node
            del self.unlinked_nodes[token]
            node.remember()
        return node

    def hold_type(self, token: bytes) -> None:
        """A dataset or attribute now uses committed datatype `token`: as in
        HDF5, that counts as a reference to it (its H5Oget_info rc)."""
        try:
            node = self.find(token) if token else None
        except KeyError:
            return  # deleted and closed: the array's type reads back as transient
        if isinstance(node, MemoryDatatype):
            self.relinked(token).links_in += 1

    def release_type(self, token: bytes) -> None:
        if token and isinstance(self.nodes.get(token), MemoryDatatype):
            self.unlinked(token)

    def unlinked(self, token: bytes) -> None:
        node = self.nodes.get(token)
        if node is None:  # reclaimed already, e.g. through a cycle of hard links
            return
        node.links_in -= 1
        if node.links_in <= 0:
            del self.nodes[token]  # open handles keep their node object alive
            self.unlinked_nodes[token] = node
            node.forget()
            if isinstance(node, MemoryGroup):  # as HDF5 does, its members lose a link each
                for _, link in node.links():
                    if isinstance(link, api.HardLink):
                        self.unlinked(link.token)


class MemoryFile(api.File):
    def __init__(self, store: MemoryStore, writable: bool):
        self._store = store
        self._writable = writable

    @property
    def root(self) -> api.Group:
        return self._store.root

    @property
    def writable(self) -> bool:
        return self._writable

    def open_node(self, token: bytes) -> api.Node:
        try:
            return self._store.nodes[token]
        except KeyError:
            raise KeyError(f"no object with token {token.hex()}") from None

    def put_blob(self, data: bytes) -> bytes:
        key = next(self._store.blob_ids).to_bytes(8, "little")
        self._store.blobs[key] = bytes(data)
        return key

    def get_blob(self, key: bytes) -> bytes:
        return self._store.blobs[key]

    def delete_blob(self, key: bytes) -> None:
        self._store.blobs.pop(key, None)

    def create_group(self, gcpl: bytes = b"") -> api.Group:
        return self._store.add(MemoryGroup, gcpl)

    def create_dataset(self, meta: api.ArrayMeta) -> api.Dataset:
        return self._store.add(MemoryDataset, meta)

    def commit_datatype(self, hdf5_type: bytes) -> api.Datatype:
        return self._store.add(MemoryDatatype, hdf5_type)


class MemoryConnector(api.Connector):
    """HDF5 files kept in this process's memory, by name."""

    name = "memory"
    supports_creation_order = True
    supports_committed_datatypes = True
    supports_resize = True
    supports_link_count_changes = True
    supports_delete = True
    supports_object_times = True

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        if options:
            raise ValueError(f"the memory connector takes no options, got {sorted(options)}")
        self._files: dict[str, MemoryStore] = {}

    def create(self, name: str, *, overwrite: bool, fcpl: bytes = b"") -> api.File:
        api.check_file_name(name)
        if name in self._files and not overwrite:
            raise FileExistsError(errno.EEXIST, f"in-memory file {name!r} already exists")
        store = self._files[name] = MemoryStore(fcpl)
        return MemoryFile(store, writable=True)

    def open(self, name: str, *, writable: bool) -> api.File:
        try:
            return MemoryFile(self._files[api.check_file_name(name)], writable)
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, f"no in-memory file named {name!r}") from None

    def exists(self, name: str) -> bool:
        return api.check_file_name(name) in self._files

    def delete(self, name: str) -> None:
        try:
            del self._files[api.check_file_name(name)]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, f"no in-memory file named {name!r}") from None
