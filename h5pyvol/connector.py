"""The base classes a storage connector subclasses.

A connector stores an HDF5 file's *nodes* (groups, datasets, committed
datatypes), their *links* and their *attributes*, and nothing more: the bridge
(`h5pyvol.bridge`) does HDF5's semantics on top (paths, soft links, iteration
orders, type conversion, selections, object info). So a connector is small:

- `Connector` opens and creates files by name; one instance per option set.
- `File` hands out nodes by token and creates new, unlinked ones.
- `Node` is anything a hard link points to; it carries attributes.
- `Group` is a node that maps names to `Link` values.
- `Dataset` is a node with an array: `read` fills a numpy array for a
  `Selection`, `write` stores one.
- `Attribute` is a small named array on a node.

Arrays are described by `ArrayMeta`. A connector persists its four stored
fields as they are (two of them are opaque bytes) and hands them back; the
bridge derives numpy dtypes, chunk shapes and fill values from them.

Capabilities are class booleans on `Connector`; the bridge turns them into
HDF5's capability flags, so HDF5 (and HDF5's API tests) skip what a connector
does not offer, and the conformance suite (`h5pyvol.testing`) skips their
checks. Every optional member either has a working default or a capability
flag that is off until a connector sets it: `supports_resize` for
`Dataset.resize`, `supports_committed_datatypes` for `File.commit_datatype`,
`supports_creation_order` for `Group.gcpl` (and the creation-order hooks),
`supports_link_count_changes` for `Node.change_link_count`, `supports_delete`
for `Connector.delete`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from .selection import Selection


# ---------------------------------------------------------------- links


@dataclass(frozen=True)
class HardLink:
    """A link to a node of the same file, by the node's token."""

    token: bytes


@dataclass(frozen=True)
class SoftLink:
    """A link to a path, resolved when it is followed."""

    path: str


@dataclass(frozen=True)
class ExternalLink:
    """A link to a path in another file."""

    filename: str
    path: str


@dataclass(frozen=True)
class UserLink:
    """A user-defined link class: HDF5's link type number and its raw value."""

    link_class: int
    value: bytes


Link = HardLink | SoftLink | ExternalLink | UserLink


# ---------------------------------------------------------------- arrays


@dataclass(frozen=True)
class ArrayMeta:
    """What describes a dataset's or an attribute's array.

    Store `hdf5_type`, `shape`, `maxshape`, `dcpl` and `null` as given, and
    return them unchanged (with the current `shape` after a resize); also
    `committed_type` where it is not empty.
    """

    hdf5_type: bytes
    """The HDF5 datatype, serialized by HDF5 (H5Tencode). Opaque: store it."""
    shape: tuple[int, ...]
    """The current extent; () for a scalar."""
    maxshape: tuple[int | None, ...] | None = None
    """The largest extent, None where unlimited; None when fixed."""
    dcpl: bytes = b""
    """Creation properties, serialized by HDF5 (H5Pencode). Opaque: a dataset's
    (DCPL), or an attribute's (ACPL, e.g. the character set of its name; b""
    when they are HDF5's defaults)."""
    null: bool = False
    """True for HDF5's null dataspace: no elements at all."""
    committed_type: bytes = b""
    """The token of the committed datatype (a node of the same file) the array
    was created with, b"" for a transient type. A connector that does not keep
    it still works: the type then reads back as transient (not committed)."""
    _derived: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the elements (h5py's conventions)."""
        if "dtype" not in self._derived:
            from .datatypes import dtype_of_encoded

            self._derived["dtype"] = dtype_of_encoded(self.hdf5_type)
        return self._derived["dtype"]

    @property
    def size(self) -> int:
        """The number of elements."""
        if "size" not in self._derived:
            self._derived["size"] = 0 if self.null else math.prod(self.shape)
        return self._derived["size"]

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """The chunk shape from the creation properties, or None."""
        if "chunks" not in self._derived:
            from ._hdf5 import dcpl_chunks, is_dcpl

            self._derived["chunks"] = dcpl_chunks(self.dcpl) if self.dcpl and is_dcpl(self.dcpl) else None
        return self._derived["chunks"]

    def fill_array(self) -> np.ndarray:
        """A new array of `shape` holding the fill value (zeros by default)."""
        from ._hdf5 import dcpl_fill_value, is_dcpl

        fill = dcpl_fill_value(self.dcpl, self) if self.dcpl and is_dcpl(self.dcpl) else None
        out = np.zeros(self.shape, dtype=self.dtype) if fill is None else np.full(self.shape, fill, self.dtype)
        if self.dtype.hasobject and fill is None:
            _fill_empty(out)
        return out

    def replace(self, **changes) -> ArrayMeta:
        """A copy with some fields changed (derived values are recomputed)."""
        values = {k: getattr(self, k) for k in ("hdf5_type", "shape", "maxshape", "dcpl", "null", "committed_type")}
        values.update(changes)
        return ArrayMeta(**values)


def _fill_empty(arr: np.ndarray) -> None:
    """Give every variable-length element of `arr`, also inside compound
    members, the value a never-written element reads as."""
    if arr.dtype.names is not None:
        for name in arr.dtype.names:
            if arr.dtype.fields[name][0].hasobject:
                _fill_empty(arr[name])  # a view: filling it fills `arr`
        return
    flat = arr.reshape(-1)
    for i in range(flat.size):  # element by element: an empty array value must not broadcast
        flat[i] = _empty_object(arr.dtype)
    if not np.shares_memory(flat, arr):  # a member's view could not be flattened in place
        arr[...] = flat.reshape(arr.shape)


def _empty_object(dtype: np.dtype):
    """What a never-written variable-length element reads as."""
    kind = dtype.metadata.get("vlen") if dtype.metadata else None
    if kind is str:
        return ""
    if kind is bytes:
        return b""
    if kind is not None:
        return np.empty(0, dtype=kind)
    return None


# ---------------------------------------------------------------- shards


@dataclass(frozen=True)
class Shard:
    """One piece of a dataset's stored elements, and where it lives.

    The shards of a dataset (`Dataset.shards`, `h5pyvol.shards`) cover every
    element exactly once. Clients such as analysis shipping send work to
    where `location` says a shard is.
    """

    selection: tuple[slice, ...]
    """The shard's elements: one slice per dimension (step 1), in dataset
    coordinates; () for a scalar dataset."""
    nbytes: int
    """Bytes stored for the shard (after filters); 0 when never written."""
    key: str | None
    """The name of the object or chunk holding the shard, or None when it has
    none of its own (never written, or not stored separately)."""
    location: dict = field(default_factory=dict, compare=False)
    """Where the shard is, as the connector knows it: for example ``host``,
    ``process``, ``bucket``, ``osds`` and ``primary``, or a native file's
    ``offset``. Plain JSON values."""
    written: bool = True
    """False for a chunk never written: its elements read as the fill value."""
    stats: dict | None = field(default=None, compare=False)
    """A zone map of the stored values, when the connector keeps one:
    ``min`` and ``max`` (plain Python numbers); None when unknown."""

    @property
    def shape(self) -> tuple[int, ...]:
        """The shard's extent."""
        return tuple(s.stop - s.start for s in self.selection)

    @property
    def size(self) -> int:
        """The number of elements in the shard."""
        n = 1
        for s in self.selection:
            n *= s.stop - s.start
        return n


# ---------------------------------------------------------------- nodes


class Attribute(ABC):
    """A named array attached to a node."""

    @property
    @abstractmethod
    def meta(self) -> ArrayMeta:
        """The attribute's type and shape."""

    @abstractmethod
    def read(self) -> np.ndarray:
        """All of the attribute's elements, as an array of `meta.dtype` and `meta.shape`."""

    @abstractmethod
    def write(self, data: np.ndarray) -> None:
        """Store all elements. `data` may be a view of the caller's buffer: copy what you keep."""


class Node(ABC):
    """Anything a hard link can point to: a group, a dataset, a committed datatype."""

    @property
    @abstractmethod
    def token(self) -> bytes:
        """A name for this node, unique and stable in its file, at most 15 bytes.
        Tokens of at most 7 bytes, or of 8 ending in a zero byte (a
        little-endian counter below 2**56), also serve HDF5's 8-byte object
        references (`hobj_ref_t`, what h5py's `Reference` and dimension
        scales use)."""

    @abstractmethod
    def attribute_names(self) -> list[str]:
        """The names of the node's attributes, in creation order."""

    def has_attribute(self, name: str) -> bool:
        """Whether the node has an attribute called `name` (H5Aexists). The
        default looks in `attribute_names`."""
        return name in self.attribute_names()

    @abstractmethod
    def create_attribute(self, name: str, meta: ArrayMeta) -> Attribute:
        """Create an attribute (its elements read as the fill value until written)."""

    @abstractmethod
    def open_attribute(self, name: str) -> Attribute:
        """The attribute called `name`; KeyError if there is none."""

    @abstractmethod
    def delete_attribute(self, name: str) -> None:
        """Remove an attribute; KeyError if there is none."""

    def rename_attribute(self, old: str, new: str) -> None:
        """Rename an attribute. The default copies it, then deletes the old one."""
        source = self.open_attribute(old)
        target = self.create_attribute(new, source.meta)
        target.write(source.read())
        self.delete_attribute(old)

    @property
    def link_count(self) -> int:
        """How many hard links point here (HDF5's object reference count)."""
        return 1

    @property
    def created(self) -> int:
        """When the node was created, in seconds since the epoch; 0 if unknown.
        HDF5 reports it as the object's times when its creation properties
        track times (H5Pset_obj_track_times)."""
        return 0

    @property
    def times(self) -> tuple[int, int, int, int]:
        """The node's access, modification, change and birth times, in seconds
        since the epoch (0 where unknown), as HDF5's object info reports them
        when the node's creation properties track times. The default gives
        `created` for all four."""
        c = self.created
        return (c, c, c, c)

    def change_link_count(self, delta: int) -> None:
        """Adjust the count behind `link_count` (H5Oincr_refcount/H5Odecr_refcount).
        Optional: set `Connector.supports_link_count_changes` when implemented."""
        raise NotImplementedError(f"{type(self).__name__} does not let programs change reference counts")

    def flush(self) -> None:
        """Make this node's changes durable. The default does nothing."""

    def refresh(self) -> None:
        """Drop cached state so the next access sees the stored one."""


class Group(Node):
    """A node holding named links."""

    @property
    def gcpl(self) -> bytes:
        """The group's creation properties as HDF5 serialized them (H5Pencode), as
        given to `File.create_group` (for the root group: the file's creation
        properties). They say, for example, whether creation order is tracked.
        The default, b"", means HDF5's defaults: creation order is then never
        tracked, so keep them and set `Connector.supports_creation_order`."""
        return b""

    @abstractmethod
    def links(self) -> list[tuple[str, Link]]:
        """All (name, link) pairs, in creation order."""

    @abstractmethod
    def get_link(self, name: str) -> Link:
        """The link called `name` (one path component); KeyError if there is none."""

    @abstractmethod
    def set_link(self, name: str, link: Link) -> None:
        """Add a link. The bridge has checked that `name` is free."""

    @abstractmethod
    def delete_link(self, name: str) -> None:
        """Remove a link; KeyError if there is none. Unlinked nodes may be reclaimed."""

    # HDF5 numbers links in creation order: a new link gets the group's
    # next number, and the count starts again at 0 once the group is empty.
    # The bridge notes each number; a connector that stores them (as the
    # memory connector does) reports them exactly. The defaults number links
    # by their place in `links()`, which differs only after deletions.

    def creation_orders(self) -> dict[str, int]:
        """The creation-order number of each link, by name."""
        return {name: i for i, (name, _) in enumerate(self.links())}

    def next_creation_order(self) -> int:
        """The number the next link gets (HDF5's `max_corder`)."""
        return len(self.links())

    def note_creation_order(self, name: str, order: int) -> None:
        """Remember `order` as the number of link `name`, just added. The
        default keeps nothing."""

    def has_link(self, name: str) -> bool:
        """Whether a link called `name` exists. The default asks `get_link`."""
        try:
            self.get_link(name)
        except KeyError:
            return False
        return True


class Dataset(Node):
    """A node holding an array."""

    @property
    @abstractmethod
    def meta(self) -> ArrayMeta:
        """The dataset's type, current shape and creation properties."""

    @abstractmethod
    def read(self, selection: Selection, out: np.ndarray) -> None:
        """Fill `out` (shape `selection.result_shape`, dtype `meta.dtype`) with the
        selected elements, e.g. ``out[...] = stored[selection.index]``.

        `out` is often a view of the caller's own buffer: write into it, don't rebind it.
        Elements never written read as the fill value.
        """

    @abstractmethod
    def write(self, selection: Selection, data: np.ndarray) -> None:
        """Store `data` (shape `selection.result_shape`) at the selected elements.

        `data` may be a read-only view of the caller's buffer: copy what you keep.
        Raise before changing anything if the write cannot complete.
        """

    def resize(self, shape: tuple[int, ...]) -> None:
        """Change the extent (H5Dset_extent); the bridge has checked `maxshape`.
        Elements outside the old extent read as the fill value; those cut off are dropped.
        Optional: set `Connector.supports_resize` when implemented."""
        raise NotImplementedError(f"{type(self).__name__} cannot change a dataset's extent")

    def storage_size(self) -> int:
        """Bytes stored for the elements. The default assumes all of them are."""
        return self.meta.size * self.meta.dtype.itemsize

    def is_allocated(self) -> bool:
        """Whether storage exists for the elements (H5Dget_space_status)."""
        return True

    def shards(self) -> list[Shard]:
        """The dataset's elements as `Shard` records that cover each element
        exactly once, with where each one is stored. The default is one shard
        for the whole dataset, with no key and no location; connectors that
        store chunks apart give one shard per chunk of their grid
        (`h5pyvol.storage.ChunkGrid`), unwritten chunks included."""
        meta = self.meta
        if meta.null:
            return []  # no elements to cover
        return [Shard(tuple(slice(0, n) for n in meta.shape), self.storage_size(), None, {},
                      written=self.is_allocated())]


class Datatype(Node):
    """A committed (named) datatype."""

    @property
    @abstractmethod
    def hdf5_type(self) -> bytes:
        """The datatype as HDF5 serialized it when committed."""


class File(ABC):
    """An open file of a connector."""

    @property
    @abstractmethod
    def root(self) -> Group:
        """The root group."""

    @abstractmethod
    def open_node(self, token: bytes) -> Node:
        """The node with this token; KeyError if there is none."""

    @abstractmethod
    def create_group(self, gcpl: bytes = b"") -> Group:
        """A new, empty, unlinked group (the bridge links it). Keep `gcpl` (opaque
        creation properties) and return it from `Group.gcpl`."""

    @abstractmethod
    def create_dataset(self, meta: ArrayMeta) -> Dataset:
        """A new, unlinked dataset whose elements read as the fill value."""

    def commit_datatype(self, hdf5_type: bytes) -> Datatype:
        """A new, unlinked committed datatype. Optional: set
        `Connector.supports_committed_datatypes` when implemented."""
        raise NotImplementedError(f"{type(self).__name__} cannot store committed datatypes")

    # Blobs: byte strings HDF5 asks the file to keep for the references it
    # does not store inline (attribute, region and other-file references,
    # HDF5 1.12-style). A stored reference holds the blob's key. The defaults
    # keep each blob as an unlinked one-dimensional uint8 dataset of this
    # file, whose token is the key; a connector that reclaims unlinked nodes,
    # or has a better place for small byte strings, overrides all three.

    def put_blob(self, data: bytes) -> bytes:
        """Keep `data`; return its key, 1 to 15 bytes, unique in this file."""
        from h5py import h5t

        from .selection import Selection

        node = self.create_dataset(ArrayMeta(h5t.STD_U8LE.encode(), (len(data),)))
        if data:
            node.write(Selection.everything((len(data),)), np.frombuffer(data, np.uint8))
        return node.token

    def get_blob(self, key: bytes) -> bytes:
        """The bytes kept under `key`; KeyError if there are none."""
        from .selection import Selection

        node = self.open_node(key)
        if not isinstance(node, Dataset) or node.meta.dtype != np.uint8 or len(node.meta.shape) != 1:
            raise KeyError(f"{key!r} is not a blob")
        out = np.empty(node.meta.shape, np.uint8)
        if out.size:
            node.read(Selection.everything(node.meta.shape), out)
        return out.tobytes()

    def delete_blob(self, key: bytes) -> None:
        """Forget a blob HDF5 no longer needs. The default keeps it: the
        connector API has no way to delete an unlinked node."""

    @property
    def writable(self) -> bool:
        """Whether the file was opened for writing."""
        return True

    def flush(self) -> None:
        """Make every change durable (H5Fflush). The default does nothing."""

    def close(self) -> None:
        """Release the file. Called once, after flush, when HDF5 is done with it."""


class LinkOrders:
    """HDF5's creation-order numbers of one group's links, for connectors
    that keep them: `numbers` (name -> number) and `next` (what the next
    link gets). A group mixes in `KeepsLinkOrders` and calls `forget` from
    its `delete_link`; a persistent connector stores both fields."""

    def __init__(self, numbers: dict[str, int] | None = None, next_number: int | None = None) -> None:
        self.numbers = dict(numbers or {})
        self.next = max(self.numbers.values(), default=-1) + 1 if next_number is None else next_number

    def note(self, name: str, number: int) -> None:
        self.numbers[name] = number
        self.next = max(self.next, number + 1)

    def forget(self, name: str, emptied: bool) -> None:
        """Drop a deleted link's number; HDF5 numbers an emptied group from 0 again."""
        self.numbers.pop(name, None)
        if emptied:
            self.next = 0


class KeepsLinkOrders:
    """Group mixin: the creation-order hooks of `Group`, answered from
    `self.link_orders` (a `LinkOrders` the group sets up)."""

    link_orders: LinkOrders

    def creation_orders(self) -> dict[str, int]:
        return dict(self.link_orders.numbers)

    def next_creation_order(self) -> int:
        return self.link_orders.next

    def note_creation_order(self, name: str, order: int) -> None:
        self.link_orders.note(name, order)


def check_file_name(name: str) -> str:
    """`name` if a connector may take it as a file name; ValueError for one
    that contains NUL, which HDF5 (a C string) would cut there, so that two
    names would alias one file. Connectors call it in `create`, `open`,
    `exists` and `delete`; the bridge checks every name it hands them."""
    if "\0" in name:
        before = name.split("\0")[0]
        raise ValueError(f"file name {name!r} contains a NUL character (HDF5 would take only {before!r})")
    return name


class Connector(ABC):
    """A storage backend: opens and creates files by name.

    One instance exists per distinct option set; `options` are the
    ``key=value`` pairs of the connector string, as strings.
    """

    name: ClassVar[str] = ""
    """The name users select the connector by (its entry-point name)."""

    supports_attributes: ClassVar[bool] = True
    supports_soft_links: ClassVar[bool] = True
    supports_external_links: ClassVar[bool] = True
    supports_user_links: ClassVar[bool] = True
    supports_creation_order: ClassVar[bool] = False
    """Groups keep their creation properties (`Group.gcpl`), so HDF5 tracks and
    indexes links by creation order where those ask for it."""
    supports_committed_datatypes: ClassVar[bool] = False
    """`File.commit_datatype` stores committed (named) datatypes."""
    supports_resize: ClassVar[bool] = False
    """`Dataset.resize` changes extents (H5Dset_extent)."""
    supports_link_count_changes: ClassVar[bool] = False
    """`Node.change_link_count` lets programs change reference counts (H5Oincr_refcount)."""
    supports_delete: ClassVar[bool] = False
    """`Connector.delete` removes files (H5Fdelete)."""
    supports_storage_size: ClassVar[bool] = True
    supports_fill_values: ClassVar[bool] = True
    supports_filters: ClassVar[bool] = True
    """Filters in the creation properties are accepted (storage may ignore them)."""
    supports_object_times: ClassVar[bool] = False
    """`Node.times` are kept, so creation properties that track times
    (H5Pset_obj_track_times) are honoured; the default `created` of 0 is not."""
    supports_references: ClassVar[bool] = True
    """HDF5 1.12-style references (H5R_ref_t) to objects, attributes and regions.
    They need `File.put_blob` and `get_blob`, which have working defaults."""

    def __init__(self, **options: str) -> None:
        self.options = dict(options)

    @abstractmethod
    def create(self, name: str, *, overwrite: bool, fcpl: bytes = b"") -> File:
        """Create a file. FileExistsError if it exists and `overwrite` is False.
        `fcpl` (opaque file creation properties) is the root group's `gcpl`."""

    @abstractmethod
    def open(self, name: str, *, writable: bool) -> File:
        """Open an existing file. FileNotFoundError if there is none."""

    def exists(self, name: str) -> bool:
        """Whether a file of this name exists. The default tries to open it."""
        try:
            self.open(name, writable=False).close()
        except FileNotFoundError:
            return False
        return True

    def delete(self, name: str) -> None:
        """Remove a file (H5Fdelete)."""
        raise NotImplementedError(f"connector {self.name!r} cannot delete files")

    def close(self) -> None:
        """Release the connector's resources at shutdown."""

