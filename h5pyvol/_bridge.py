"""The functions the C plugin calls: HDF5's semantics on top of a connector.

One function per VOL callback (or per get/specific operation), named after it;
csrc/pv.h lists them. The plugin passes hid_t values as ints, location
parameters as tuples (see `_locate`), and buffers as addresses. Every handle
returned here becomes an HDF5 VOL object: a `FileHandle`, `NodeHandle` or
`AttrHandle`.

Owns: handles and open-file bookkeeping, path and link resolution, iteration
orders, object and link info, the read/write data path (selections and
datatype conversion), and the text of errors.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import math
import os
import posixpath
import sys
from typing import Any

import numpy as np
from h5py import h5d, h5o, h5p, h5s, h5t

from . import connector as api
from . import datatypes, linked_files, registry, virtual
from ._hdf5 import (
    CONNECTOR_NAME,
    borrow,
    connector_name,
    dcpl_layout,
    decode_dcpl,
    decode_plist,
    decode_type,
    detach,
    elink_fapl,
    encode_dcpl,
    encode_plist,
    filters_as_created,
    has_lossy_filter,
    lib,
    through_native_filters,
    tracks_link_order,
    with_vol_of,
)
from .selection import Selection

# Bases the plugin gives the handles: Handle holds the C fields its hot paths
# read (csrc/io.c); FileBase is what HDF5 may misread as a native file
# (csrc/blob.c). Outside the plugin no HDF5 id can reach a handle: plain objects.
_plugin_types = sys.modules.get("h5pyvol._plugin")
_HandleBase: type = getattr(_plugin_types, "Handle", object)
_FileBase: type = getattr(_plugin_types, "FileBase", object)

# HDF5 constants (stable parts of its public ABI).
H5I_FILE, H5I_GROUP, H5I_DATATYPE, H5I_DATASET, H5I_ATTR = 1, 2, 3, 5, 7
H5O_TYPE_GROUP, H5O_TYPE_DATASET, H5O_TYPE_NAMED_DATATYPE = 0, 1, 2
H5L_TYPE_HARD, H5L_TYPE_SOFT, H5L_TYPE_EXTERNAL = 0, 1, 64
H5F_ACC_RDWR, H5F_ACC_TRUNC, H5F_ACC_EXCL = 0x1, 0x2, 0x4
H5F_ACC_SWMR_WRITE, H5F_ACC_SWMR_READ = 0x20, 0x40
H5F_ACC_DEFAULT = 0xFFFF  # H5Pset_elink_acc_flags: the linking file's intent
H5_INDEX_NAME, H5_INDEX_CRT_ORDER = 0, 1
H5_ITER_DEC = 1
H5O_INFO_TIME, H5O_INFO_NUM_ATTRS = 0x2, 0x4
H5G_STORAGE_TYPE_COMPACT = 1
H5G_LINK, H5G_UDLINK = 3, 4
H5T_CSET_ASCII, H5T_CSET_UTF8 = 0, 1
H5D_SPACE_STATUS_NOT_ALLOCATED, H5D_SPACE_STATUS_ALLOCATED = 0, 2
MAX_SOFT_LINK_DEPTH = 16  # HDF5's default H5Pset_nlinks

CAP_FLAGS = {
    "always": 0x80 | 0x100 | 0x200 | 0x400 | 0x20 | 0x40 | 0x800 | 0x1000 | 0x8000 | 0x10000
    | 0x1000000 | 0x4000000 | 0x8000000 | 0x10000000 | 0x40000000
    | 0x400000000,  # MOUNT: the bridge mounts files of any connector
    "supports_attributes": 0x8 | 0x10,
    "supports_soft_links": 0x80000000,
    "supports_external_links": 0x20000000,
    "supports_user_links": 0x100000000,
    "supports_creation_order": 0x800000,
    "supports_committed_datatypes": 0x400000,
    "supports_storage_size": 0x2000000,
    "supports_fill_values": 0x1000000000,
    "supports_filters": 0x800000000,
    "supports_object_times": 0x200000000,  # TRACK_TIMES
    "supports_references": 0x20000 | 0x40000 | 0x80000 | 0x100000 | 0x200000,  # REF_*, OBJ/REG/ATTR_REF
}


# ---------------------------------------------------------------- handles


_TRACING = bool(os.environ.get("H5PYVOL_TRACE"))  # every callback printed; no C fast path
_filenos = itertools.count(1)
_open_files: dict[tuple[int, str], FileState] = {}


# isinstance() with the connector ABCs runs ABCMeta.__instancecheck__, a
# Python call; these ask a per-class cache instead (every path walk uses them).
@functools.cache
def _node_base(cls: type) -> type | None:
    """Which of Group, Dataset, Datatype a connector's node class derives from."""
    return next((base for base in (api.Group, api.Dataset, api.Datatype) if issubclass(cls, base)), None)


def _is_group(node: object) -> bool:
    return _node_base(type(node)) is api.Group


def _is_dataset(node: object) -> bool:
    return _node_base(type(node)) is api.Dataset


def _is_datatype(node: object) -> bool:
    return _node_base(type(node)) is api.Datatype


class FileState:
    """One open connector file, shared by every HDF5 id that refers to it."""

    def __init__(self, conn: api.Connector, file: api.File, name: str, flags: int, fapl: int, fcpl: int):
        self.connector = conn
        self.file = file
        self.name = name
        self.writable = bool(flags & H5F_ACC_RDWR)
        self.swmr = flags & (H5F_ACC_SWMR_WRITE if self.writable else H5F_ACC_SWMR_READ)  # part of the intent
        self.fapl = borrow(fapl, h5p.PropFAID).copy()
        if fcpl > 0:
            self.fcpl = borrow(fcpl, h5p.PropFCID).copy()
        elif file.root.gcpl:  # reopened: the root group kept the file's creation properties
            self.fcpl = decode_plist(file.root.gcpl, h5p.PropFCID)
        else:
            self.fcpl = h5p.create(h5p.FILE_CREATE)
        self.fileno = next(_filenos)
        self.file_handles: list[FileHandle] = []
        self.users = 0  # open node and attribute handles, and the file it is mounted on
        self.mounts: dict[bytes, FileState] = {}  # group token -> the file mounted there (H5Fmount)
        self.mounted_on: FileState | None = None
        _open_files[self.key] = self

    @property
    def key(self) -> tuple[int, str]:
        return (id(self.connector), self.name)

    def check_writable(self) -> None:
        if not self.writable:
            raise PermissionError(f"file {self.name!r} is open read-only")

    def release(self) -> None:
        """Close the connector file once no HDF5 id refers to it."""
        if self.file_handles or self.users or _open_files.get(self.key) is not self:
            return
        del _open_files[self.key]
        for child in list(self.mounts.values()):  # as HDF5 does when a parent closes
            _unmount(self, child)
        try:
            if self.writable:
                self.file.flush()
        finally:
            self.file.close()


class FileHandle(_FileBase):
    """The VOL object behind one HDF5 file id."""

    kind = H5I_FILE

    def __init__(self, state: FileState):
        self.state = state
        state.file_handles.append(self)

    def base(self) -> tuple[FileState, api.Node, str | None]:
        return self.state, self.state.file.root, "/"

    def close(self) -> None:
        # HDF5 calls this again when a previous close failed (the file id
        # stays open then): that failure was reported, the file is released.
        if self in self.state.file_handles:
            self.state.file_handles.remove(self)
            self.state.release()

    @property
    def open(self) -> bool:
        """Whether an HDF5 id refers to this handle now."""
        return any(f is self for f in self.state.file_handles)

    def __repr__(self) -> str:
        return f"<file {self.state.name!r}>"


class NodeHandle(_HandleBase):
    """The VOL object behind a group, dataset or committed datatype id.

    Its base, ``_plugin.Handle``, holds ``io`` and ``get_type_id`` (both None
    until ``_load_meta``) as C fields for the plugin's hot paths.
    """

    dapl = None  # a dataset's access properties, as given at create/open

    def __init__(self, state: FileState, node: api.Node, path: str | None, via: FileHandle | None = None):
        self.state = state
        self.node = node
        self.path = path
        self.via = via  # the file id it was opened through (H5F_OBJ_LOCAL)
        self.kind = _id_type(node)
        state.users += 1
        if _is_dataset(node):
            self._load_meta()

    def _load_meta(self) -> None:
        meta = self.node.meta
        self.meta = meta
        self.file_type = _held_type(meta.hdf5_type)
        self.file_type_id = self.file_type.id
        # What H5Dget_type copies in C; None: ask dataset_get_type (a committed datatype).
        self.get_type_id = None if meta.committed_type else self.file_type_id
        self.dtype = datatypes.dtype_of(self.file_type)
        self.plain = not datatypes.has_vlen(self.file_type)  # bytes can be copied as they are
        # A virtual dataset's elements are in its source datasets (virtual.py).
        self.virtual = _virtual_layout(self, meta)
        # Scale-offset and the like change what they store (_apply_lossy_filters).
        self.lossy = self.virtual is None and has_lossy_filter(meta.dcpl)
        # What the plugin's C fast path (csrc/io.c) needs to serve reads and
        # writes of equal types and sliceable selections without this module.
        fast = (self.plain and not meta.null and not self.dtype.shape and not _TRACING and self.virtual is None
                and not self.lossy)
        self.io = (self.node, meta, self.file_type_id, self.dtype, tuple(meta.shape), self.state.writable) \
            if fast else None

    def base(self) -> tuple[FileState, api.Node, str | None]:
        return self.state, self.node, self.path

    def close(self) -> None:
        self.state.users -= 1
        self.state.release()

    def __repr__(self) -> str:
        kind = {H5I_GROUP: "group", H5I_DATASET: "dataset", H5I_DATATYPE: "datatype"}[self.kind]
        return f"<{kind} {self.path or '(anonymous)'!r}>"


def _held_type(blob: bytes) -> h5t.TypeID:
    """The datatype a handle keeps for its elements, one per distinct type in
    the process. Its id is the library's, not the program's, as native HDF5's
    type of an open dataset is, so H5Fget_obj_count and H5Fget_obj_ids do not
    count it (csrc/ids.c). Such ids are never closed: closing them while h5py
    or HDF5 reads an error stack garbled it, so they are kept, as h5py keeps
    its own conversion types. Types with compound members are not shared
    (HDF5 reorders their members in place when converting), so they stay
    the program's, and are counted."""
    tid = _held_types.get(blob)
    if tid is None:
        tid = decode_type(blob)
        if tid.detect_class(h5t.COMPOUND):
            return tid
        if _plugin_types is not None and _plugin().hide_id(tid.id):
            tid.locked = 1  # h5py must not close it (H5Iis_valid answers for program ids only)
            _held_types[blob] = tid
    return tid


_held_types: dict[bytes, h5t.TypeID] = {}


def _virtual_layout(h: NodeHandle, meta: api.ArrayMeta) -> virtual.VirtualDataset | None:
    """The virtual layout of dataset `h`, if its creation properties give it one."""
    if meta.dcpl and dcpl_layout(meta.dcpl) == h5d.VIRTUAL:
        return virtual.VirtualDataset(h)
    return None


class AttrHandle:
    """The VOL object behind an attribute id."""

    kind = H5I_ATTR

    def __init__(self, state: FileState, owner: api.Node, attr: api.Attribute, name: str,
                 via: FileHandle | None = None):
        self.state = state
        self.via = via  # the file id it was opened through (H5F_OBJ_LOCAL)
        self.owner = owner
        self.attr = attr
        self.name = name
        self.meta = attr.meta
        self.file_type = _held_type(self.meta.hdf5_type)
        self.dtype = datatypes.dtype_of(self.file_type)
        state.users += 1

    def base(self) -> tuple[FileState, api.Node, str | None]:
        return self.state, self.owner, None

    def close(self) -> None:
        self.state.users -= 1
        self.state.release()

    def __repr__(self) -> str:
        return f"<attribute {self.name!r}>"


def node_of(obj: Any) -> api.File | api.Node | api.Attribute:
    """The connector object behind an HDF5 object that h5pyvol serves in this
    process: an h5py File, Group, Dataset, Datatype or AttributeManager-made
    attribute id, a low-level h5py ObjectID, or a plain integer id."""
    ident = obj if isinstance(obj, int) else obj.id
    ident = ident if isinstance(ident, int) else ident.id
    if connector_name(ident) != CONNECTOR_NAME:
        raise ValueError(f"{obj!r} is served by the {connector_name(ident)!r} VOL connector, not by h5pyvol")
    address = lib().H5VLobject(ident)
    if not address:
        raise ValueError(f"HDF5 has no VOL object for {obj!r}")
    handle = ctypes.cast(address, ctypes.py_object).value  # our handle: the plugin's PyObject*
    if isinstance(handle, FileHandle):
        return handle.state.file
    return handle.attr if isinstance(handle, AttrHandle) else handle.node


def _via(h) -> FileHandle | None:
    """The file handle through which `h` was opened: HDF5's file of an object
    (for H5F_OBJ_LOCAL), which is one of possibly several opens of one file."""
    return h if isinstance(h, FileHandle) else getattr(h, "via", None)


def _id_type(node: api.Node) -> int:
    if _is_group(node):
        return H5I_GROUP
    if _is_dataset(node):
        return H5I_DATASET
    if _is_datatype(node):
        return H5I_DATATYPE
    raise TypeError(f"the connector returned {type(node).__name__}, which is not a Group, Dataset or Datatype")


_OBJ_TYPE = {H5I_GROUP: H5O_TYPE_GROUP, H5I_DATASET: H5O_TYPE_DATASET, H5I_DATATYPE: H5O_TYPE_NAMED_DATATYPE}


def token16(token: bytes) -> bytes:
    """A connector token in HDF5's 16-byte form: its length, then its bytes."""
    if len(token) > 15:
        raise ValueError(f"connector token {token!r} is longer than 15 bytes")
    return bytes([len(token)]) + token + bytes(15 - len(token))


def untoken16(raw: bytes) -> bytes:
    return raw[1 : 1 + raw[0]]


def _close(h) -> None:
    """Every *_close callback: the handle releases what it holds."""
    h.close()


# ---------------------------------------------------------------- paths


def _base(h) -> tuple[FileState, api.Node, str | None]:
    """The node a handle stands for, with its path (attributes: their owner)."""
    return h.base()


def _join(base: str | None, path: str) -> str | None:
    if path.startswith("/"):
        return posixpath.normpath(path).replace("//", "/")
    if base is None:
        return None
    return posixpath.normpath(posixpath.join(base, path)).replace("//", "/")


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def _follow(state: FileState, group: api.Group, group_path: str | None, link: api.Link,
            depth: int, lapl: int = 0) -> tuple[FileState, api.Node]:
    """The node a link points to, and the open file that holds it (`lapl`:
    the link access properties, for external links)."""
    if isinstance(link, api.HardLink):
        node = state.file.open_node(link.token)
        while state.mounts and node.token in state.mounts:  # a mounted file's root covers the group
            state = state.mounts[node.token]
            node = state.file.root
        return state, node
    if depth >= MAX_SOFT_LINK_DEPTH:
        raise RecursionError(f"more than {MAX_SOFT_LINK_DEPTH} soft or external links followed")
    if isinstance(link, api.SoftLink):
        return _walk(state, group, group_path, link.path, depth + 1, lapl)[:2]
    if isinstance(link, api.ExternalLink):
        target = _open_linked_file(state, link.filename, lapl)
        return _walk(target, target.file.root, "/", link.path, depth + 1, lapl)[:2]
    raise NotImplementedError(f"following user-defined links (class {link.link_class})")


# Files opened only to follow an external link; closed once no HDF5 id uses them.
_linked_files: list[FileState] = []


def _open_linked_file(state: FileState, filename: str, lapl: int = 0) -> FileState:
    """The file an external link names, through the same connector, looked
    for where HDF5 looks (linked_files.py). As in HDF5, the link access
    properties may set its intent (else the linking file's), its file access
    properties (else the linking file's) and a prefix to look in."""
    _close_linked_files()
    flags, fapl, prefix = _elink_access(state, lapl)
    conn = state.connector
    names = linked_files.candidate_names(filename, state.name, prefix, linked_files.ELINK_PREFIX_ENV)
    for name in names:
        if (id(conn), name) in _open_files:
            return _open_files[(id(conn), name)]
        if conn.exists(name):
            file = conn.open(name, writable=bool(flags & H5F_ACC_RDWR))
            linked = FileState(conn, file, name, flags, fapl.id, 0)
            _linked_files.append(linked)
            return linked
    raise FileNotFoundError(f"the file {filename!r} that an external link names does not exist "
                            f"(looked for {', '.join(map(repr, names))})")


def _elink_access(state: FileState, lapl: int) -> tuple[int, h5p.PropFAID, str | None]:
    """(intent, file access properties, prefix) for a file an external link
    from `state` opens, by the link access properties `lapl` (0: defaults)."""
    flags = (H5F_ACC_RDWR if state.writable else 0) | state.swmr
    fapl, prefix = state.fapl, None
    if lapl > 0:
        plist = borrow(lapl, h5p.PropLAID)
        wanted = plist.get_elink_acc_flags()
        if wanted != H5F_ACC_DEFAULT:
            flags = wanted & (H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE | H5F_ACC_SWMR_READ)
        given = elink_fapl(lapl)
        if given is not None:
            fapl = with_vol_of(given, state.fapl)  # still this connector
        raw = plist.get_elink_prefix()
        prefix = raw.decode("utf-8", "surrogateescape") if raw else None
    return flags, fapl, prefix


def _close_linked_files() -> None:
    """Release files opened for external links that no HDF5 id uses any more."""
    for linked in list(_linked_files):
        if not linked.users and not linked.file_handles:
            _linked_files.remove(linked)
            linked.release()


def _walk(state: FileState, start: api.Node, start_path: str | None, path: str,
          depth: int = 0, lapl: int = 0) -> tuple[FileState, api.Node, str | None]:
    """The node at `path` from `start`, the file that holds it (external links
    lead to others), and its absolute path there (None if unknown)."""
    if path == ".":  # the start itself: by far the most common (H5Aexists_by_name...)
        return state, start, start_path
    node = state.file.root if path.startswith("/") else start
    here = "/" if path.startswith("/") else start_path
    for part in _components(path):
        if not _is_group(node):
            raise KeyError(f"{here or 'object'!r} is not a group, so it has no member {part!r}")
        try:
            link = node.get_link(part)
        except KeyError:
            raise KeyError(f"no object named {part!r} in group {here or '?'!r}") from None
        state, node = _follow(state, node, here, link, depth, lapl)
        here = _join("/", link.path) if isinstance(link, api.ExternalLink) else _join(here, part)
    return state, node, here


def _parent(state: FileState, start: api.Node, start_path: str | None, path: str, lapl: int = 0):
    """(file, group holding the last component of `path`, its path, that component)."""
    if path and "/" not in path and path != ".":  # a member of `start`: the common case
        if not _is_group(start):
            raise KeyError(f"{start_path or 'object'!r} is not a group")
        return state, start, start_path, path
    parts = _components(path)
    if not parts:
        raise ValueError(f"{path!r} names no link")
    prefix = ("/" if path.startswith("/") else "") + "/".join(parts[:-1])
    state, group, gpath = _walk(state, start, start_path, prefix or ".", lapl=lapl)
    if not _is_group(group):
        raise KeyError(f"{gpath or prefix!r} is not a group")
    return state, group, gpath, parts[-1]


def _ordered(names: list[str], idx_type: int, order: int) -> list[str]:
    """Names in HDF5's index order. `names` come in creation order."""
    if idx_type == H5_INDEX_NAME:
        result = sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape"))  # HDF5 compares bytes
    else:
        result = list(names)
    if order == H5_ITER_DEC:
        result.reverse()
    return result


def _nth(names: list[str], idx_type: int, order: int, n: int) -> str:
    ordered = _ordered(names, idx_type, order)
    if n >= len(ordered):
        raise IndexError(f"index {n} is out of range ({len(ordered)} entries)")
    return ordered[n]


def _locate(h, loc):
    """Resolve HDF5 location parameters to (state, node, path).

    loc is None (the object itself), ("name", path, lapl), ("idx", group
    path, index type, order, n, lapl) or ("token", 16 bytes).
    """
    state, node, path = h.base()
    if loc is None:
        return state, node, path
    kind = loc[0]
    if kind == "name":
        return (state, node, path) if loc[1] == "." else _walk(state, node, path, loc[1], lapl=loc[-1])
    if kind == "idx":
        state, group, gpath = _walk(state, node, path, loc[1], lapl=loc[-1])
        if not _is_group(group):
            raise TypeError(f"{gpath!r} is not a group")
        names = [name for name, _ in group.links()]
        name = _nth(names, loc[2], loc[3], loc[4])
        state, target = _follow(state, group, gpath, group.get_link(name), 0, loc[-1])
        return state, target, _join(gpath, name)
    if kind == "token":
        return state, state.file.open_node(untoken16(loc[1])), None
    raise ValueError(f"unknown location {loc!r}")


def _link_target(h, loc):
    """For link operations: (state, group, group path, link name)."""
    state, node, path = h.base()
    if loc is None:
        raise ValueError("this link operation needs a link name")
    if loc[0] == "name":
        name = loc[1]
        if name and "/" not in name and name != "." and _is_group(node):
            return state, node, path, name  # a member of the object itself: _parent's common case, inline
        return _parent(state, node, path, name, loc[-1])
    if loc[0] == "idx":
        state, group, gpath = _walk(state, node, path, loc[1], lapl=loc[-1])
        if not _is_group(group):
            raise TypeError(f"{gpath!r} is not a group")
        return state, group, gpath, _nth([n for n, _ in group.links()], loc[2], loc[3], loc[4])
    raise ValueError(f"unsupported location {loc!r} for a link operation")


def _creation_parent(state: FileState, base: api.Node, base_path: str | None, name: str, lcpl: int):
    """(file, group, group path, leaf) where a new link `name` goes; makes
    missing intermediate groups when the link creation properties ask for it."""
    parts = _components(name)
    if not parts:
        raise ValueError(f"{name!r} is not a valid name for a new link")
    intermediate = lcpl > 0 and borrow(lcpl, h5p.PropLCID).get_create_intermediate_group()
    group, gpath = (state.file.root, "/") if name.startswith("/") else (base, base_path)
    for part in parts[:-1]:
        if not _is_group(group):
            raise KeyError(f"{gpath!r} is not a group")
        if intermediate and not group.has_link(part):
            child = state.file.create_group()
            _insert_link(group, part, api.HardLink(child.token))
            group = child
        else:
            try:
                link = group.get_link(part)
            except KeyError:
                raise KeyError(f"no group named {part!r} in {gpath or '?'!r} (parent groups are not created)") from None
            state, group = _follow(state, group, gpath, link, 0)
            if isinstance(link, api.ExternalLink):
                gpath = _join("/", link.path)
                continue
        gpath = _join(gpath, part)
    if not _is_group(group):
        raise KeyError(f"{gpath!r} is not a group")
    if group.has_link(parts[-1]):
        raise ValueError(f"an object named {parts[-1]!r} already exists in {gpath or '?'!r}")
    return state, group, gpath, parts[-1]


def _insert_link(group: api.Group, name: str, link: api.Link) -> None:
    """Add a link under the group's next creation-order number, as HDF5 does."""
    order = group.next_creation_order()
    group.set_link(name, link)
    group.note_creation_order(name, order)


def _link_order(group: api.Group, name: str, orders: dict[str, int] | None = None) -> tuple[bool, int]:
    """(valid, number): a link's creation order, valid when the group tracks it."""
    if not tracks_link_order(group.gcpl):
        return False, 0
    orders = group.creation_orders() if orders is None else orders
    return True, orders.get(name, 0)


def _new_node(h, loc, name: str | None, lcpl: int, make):
    """Create a node with `make(file)` and link it at `name` (None: anonymous)."""
    state, base, base_path = _locate(h, loc)
    state.check_writable()
    if name is None:
        return state, make(state.file), None
    state, group, gpath, leaf = _creation_parent(state, base, base_path, name, lcpl)
    state.check_writable()  # an external link may lead to another file
    node = make(state.file)
    _insert_link(group, leaf, api.HardLink(node.token))
    return state, node, _join(gpath, leaf)


# ---------------------------------------------------------------- info


def _object_info(state: FileState, node: api.Node, fields: int) -> tuple:
    num_attrs = len(node.attribute_names()) if fields & H5O_INFO_NUM_ATTRS else 0
    otype = _OBJ_TYPE[_id_type(node)]
    times = _object_times(node) if fields & H5O_INFO_TIME else (0, 0, 0, 0)  # access, modify, change, birth
    return (state.fileno, token16(node.token), otype, node.link_count, *times, num_attrs)


def _object_times(node: api.Node) -> tuple[int, int, int, int]:
    """The node's times if its creation properties track times, else zeros."""
    if _is_dataset(node):
        blob = node.meta.dcpl
    elif _is_group(node):
        blob = node.gcpl
    else:
        return (0, 0, 0, 0)  # a committed datatype's creation properties are not kept
    return tuple(node.times) if _tracks_times(blob) else (0, 0, 0, 0)


@functools.lru_cache(maxsize=256)
def _tracks_times(blob: bytes) -> bool:
    """Whether serialized object creation properties track times (HDF5's default: yes)."""
    return not blob or decode_plist(blob, h5p.PropOCID).get_obj_track_times()


def _encode_external(link: api.ExternalLink) -> bytes:
    return b"\0" + link.filename.encode() + b"\0" + link.path.encode() + b"\0"


def _link_value(link: api.Link) -> bytes:
    if isinstance(link, api.SoftLink):
        return link.path.encode("utf-8", "surrogateescape") + b"\0"
    if isinstance(link, api.ExternalLink):
        return _encode_external(link)
    if isinstance(link, api.UserLink):
        return link.value
    raise TypeError("a hard link has no value")


def _link_info(name: str, link: api.Link, order: tuple[bool, int]) -> tuple:
    cset = H5T_CSET_ASCII if name.isascii() else H5T_CSET_UTF8
    valid, corder = order
    if isinstance(link, api.HardLink):
        return (H5L_TYPE_HARD, valid, corder, cset, token16(link.token))
    if isinstance(link, api.SoftLink):
        ltype = H5L_TYPE_SOFT
    elif isinstance(link, api.ExternalLink):
        ltype = H5L_TYPE_EXTERNAL
    else:
        ltype = link.link_class
    return (ltype, valid, corder, cset, len(_link_value(link)))


def _attr_info(owner: api.Node, name: str, meta: api.ArrayMeta) -> tuple:
    corder = owner.attribute_names().index(name)
    cset = H5T_CSET_ASCII if name.isascii() else H5T_CSET_UTF8
    return (True, corder, cset, meta.size * meta.dtype.itemsize)


def _new_space(meta: api.ArrayMeta) -> int:
    """A new dataspace id for the caller to own."""
    return _plugin().make_space(None if meta.null else meta.shape, meta.maxshape)


def _meta_from_ids(type_id: int, space_id: int, dcpl: bytes = b"", h=None) -> api.ArrayMeta:
    """The meta of a new array; `h` (where it is created) lets a committed type be remembered."""
    ftype = borrow(type_id, h5t.typewrap)
    space = borrow(space_id, h5s.SpaceID)
    null = space.get_simple_extent_type() == h5s.NULL
    shape = () if null else tuple(int(d) for d in space.shape)
    maxshape = None
    if not null and shape:
        dims = space.get_simple_extent_dims(True)
        if tuple(dims) != shape:
            maxshape = tuple(None if d == h5s.UNLIMITED else int(d) for d in dims)
    committed = _committed_token(h, ftype) if h is not None else b""
    return api.ArrayMeta(ftype.encode(), shape, maxshape, dcpl, null, committed)


def _committed_token(h, ftype: h5t.TypeID) -> bytes:
    """The token of `ftype` if it is a committed datatype of the file of `h`, else b""."""
    if not ftype.committed() or connector_name(ftype.id) != CONNECTOR_NAME:
        return b""  # transient, or committed in a file of another connector
    handle = ctypes.cast(lib().H5VLobject(ftype.id), ctypes.py_object).value
    if not isinstance(handle, NodeHandle) or handle.state is not _base(h)[0]:
        return b""
    return handle.node.token


def _new_type(h, type_id: int) -> int:
    """A new datatype id for the elements of dataset or attribute `h`: its
    committed datatype (as H5Topen opens it) if it has one that still exists,
    else a copy of `type_id`."""
    state, meta = h.state, h.meta
    if meta.committed_type:
        try:
            node = state.file.open_node(meta.committed_type)
        except KeyError:
            node = None  # deleted since: the type is transient now
        if _is_datatype(node) and decode_type(node.hdf5_type) == decode_type(meta.hdf5_type):
            return _plugin().register(NodeHandle(state, node, None, _via(h)), H5I_DATATYPE)
    return _plugin().copy_type(type_id)


# ---------------------------------------------------------------- capabilities


def cap_flags(spec: str) -> int:
    conn = registry.load(spec)
    flags = CAP_FLAGS["always"]
    for attr, bits in CAP_FLAGS.items():
        if attr != "always" and getattr(conn, attr, False):
            flags |= bits
    return flags


# ---------------------------------------------------------------- files


def file_create(spec: str, name: str, flags: int, fcpl: int, fapl: int) -> FileHandle:
    conn = registry.load(spec)
    if (id(conn), name) in _open_files:
        raise OSError(f"file {name!r} is already open, so it cannot be created or truncated")
    fcpl_blob = encode_plist(fcpl) if fcpl > 0 else b""
    file = conn.create(name, overwrite=bool(flags & H5F_ACC_TRUNC), fcpl=fcpl_blob)
    return FileHandle(FileState(conn, file, name, flags | H5F_ACC_RDWR, fapl, fcpl))


def file_open(spec: str, name: str, flags: int, fapl: int) -> FileHandle:
    conn = registry.load(spec)
    state = _open_files.get((id(conn), name))
    if state is not None:
        if flags & H5F_ACC_RDWR and not state.writable:
            raise OSError(f"file {name!r} is already open read-only; it cannot also be opened for writing")
        return FileHandle(state)
    file = conn.open(name, writable=bool(flags & H5F_ACC_RDWR))
    return FileHandle(FileState(conn, file, name, flags, fapl, -1))


file_close = _close


def file_get_fapl(h) -> int:
    return detach(h.state.fapl.copy())


def file_get_fcpl(h) -> int:
    return detach(h.state.fcpl.copy())


def file_get_fileno(h) -> int:
    return h.state.fileno


def file_get_intent(h) -> int:
    return (H5F_ACC_RDWR if h.state.writable else 0) | h.state.swmr


def file_start_swmr_write(h) -> None:
    """H5Fstart_swmr_write: readers may now open the file while it is written.
    As in HDF5, the file is flushed first and SWMR_WRITE joins its intent."""
    h.state.check_writable()
    h.state.file.flush()
    h.state.swmr |= H5F_ACC_SWMR_WRITE


def file_get_name(h) -> str:
    return h.state.name


def file_flush(h, scope: int) -> None:
    h.state.file.flush()


def file_reopen(h: FileHandle) -> FileHandle:
    return FileHandle(h.state)


def file_is_accessible(spec: str, name: str, fapl: int) -> bool:
    return registry.load(spec).exists(name)


def file_delete(spec: str, name: str, fapl: int) -> None:
    conn = registry.load(spec)
    if (id(conn), name) in _open_files:
        raise OSError(f"file {name!r} is open; close it before deleting it")
    conn.delete(name)


def file_is_equal(a, b) -> bool:
    return a.state is b.state


def same_file(h, file_handle, local: bool = False) -> bool:
    """Whether `h` belongs to the file of `file_handle`; with `local`
    (H5F_OBJ_LOCAL), whether it was opened through that very file id."""
    if local and _via(h) is not None:
        return _via(h) is file_handle
    return h.state is file_handle.state


# ---------------------------------------------------------------- groups


def group_create(h, loc, name, lcpl: int, gcpl: int, gapl: int) -> NodeHandle:
    gcpl_blob = encode_plist(gcpl) if gcpl > 0 else b""
    state, node, path = _new_node(h, loc, name, lcpl, lambda f: f.create_group(gcpl_blob))
    return NodeHandle(state, node, path, _via(h))


def _open_node(h, loc, name: str, kind: type, what: str, apl: int = 0) -> NodeHandle:
    """Open the node at `name` from the location, checking it is a `kind`
    (`apl`: access properties, which include the link access properties)."""
    state, base, base_path = _locate(h, loc)
    state, node, path = _walk(state, base, base_path, name, lapl=apl)
    if not isinstance(node, kind):
        raise TypeError(f"{path or name!r} is not {what}")
    return NodeHandle(state, node, path, _via(h))


def group_open(h, loc, name: str, gapl: int) -> NodeHandle:
    return _open_node(h, loc, name, api.Group, "a group", gapl)


group_close = _close


def group_get_gcpl(h) -> int:
    state, node, _ = _base(h)
    if node.gcpl:
        return detach(decode_plist(node.gcpl, h5p.PropGCID))
    return detach(h5p.create(h5p.GROUP_CREATE))


def group_get_info(h, loc) -> tuple:
    _, node, path = _locate(h, loc)
    if not _is_group(node):
        raise TypeError(f"{path or 'object'!r} is not a group")
    max_corder = node.next_creation_order() if tracks_link_order(node.gcpl) else 0
    return (H5G_STORAGE_TYPE_COMPACT, len(node.links()), max_corder, False)


def group_get_objinfo(h, loc, follow_link: bool) -> tuple:
    """H5Gget_objinfo (h5py's object hashing): (fileno, token, nlink, type, linklen, mtime)."""
    state, base, path = _base(h)
    name = loc[1] if loc is not None and loc[0] == "name" else "."
    if not follow_link and _components(name):
        state, group, _, leaf = _parent(state, base, path, name)
        link = group.get_link(leaf)
        if not isinstance(link, api.HardLink):
            kind = H5G_LINK if isinstance(link, api.SoftLink) else H5G_UDLINK
            return (state.fileno, b"", 0, kind, len(_link_value(link)), 0)
    state, node, _ = _walk(state, base, path, name)
    return (state.fileno, token16(node.token), node.link_count, _OBJ_TYPE[_id_type(node)], 0, _object_times(node)[1])


def _mount_point(h, name: str) -> tuple[FileState, api.Group]:
    """The group `name` names from `h`, in the file that holds it (not the
    root of a file mounted on it)."""
    state, base, path = _base(h)
    state, group, gpath, leaf = _parent(state, base, path, name)
    link = _get_link(group, gpath, leaf)
    if not isinstance(link, api.HardLink):
        raise TypeError(f"{name!r} is a soft, external or user-defined link, not a group to mount on")
    node = state.file.open_node(link.token)
    if not _is_group(node):
        raise TypeError(f"{name!r} is not a group, so no file can be mounted on it")
    return state, node


def group_mount(h, name: str, child: FileHandle, fmpl: int) -> None:
    """H5Fmount: until unmounted, paths through group `name` lead into the
    root group of `child`'s file. As in HDF5, a file is mounted at most once,
    a group holds at most one file, and no file is mounted below itself."""
    state, group = _mount_point(h, name)
    sub = child.state
    if group.token in state.mounts:
        raise ValueError(f"a file is already mounted on {name!r}")
    if sub.mounted_on is not None:
        raise ValueError(f"file {sub.name!r} is already mounted")
    above: FileState | None = state
    while above is not None:
        if above is sub:
            raise ValueError(f"file {sub.name!r} cannot be mounted inside itself")
        above = above.mounted_on
    state.mounts[group.token] = sub
    sub.mounted_on = state
    sub.users += 1  # the mount keeps the child open


def group_unmount(h, name: str) -> None:
    """H5Funmount: `name` is the mount point, as a group of the parent file."""
    state, group = _mount_point(h, name)
    if group.token not in state.mounts:
        raise ValueError(f"{name!r} is not a mount point")
    _unmount(state, state.mounts[group.token])


def _unmount(parent: FileState, child: FileState) -> None:
    del parent.mounts[next(t for t, s in parent.mounts.items() if s is child)]
    child.mounted_on = None
    child.users -= 1
    child.release()


# ---------------------------------------------------------------- datasets


def dataset_create(h, loc, name, lcpl: int, type_id: int, space_id: int, dcpl: int, dapl: int) -> NodeHandle:
    if dcpl > 0:
        # Filters get their parameters as native HDF5 completes them at creation.
        plist = filters_as_created(borrow(dcpl, h5p.PropDCID), type_id, space_id)
        dcpl_blob = encode_dcpl(plist.id, type_id)
    else:
        dcpl_blob = b""
    meta = _meta_from_ids(type_id, space_id, dcpl_blob, h)
    layout = dcpl_layout(dcpl_blob) if dcpl_blob else h5d.CONTIGUOUS
    if meta.maxshape is not None and layout not in (h5d.CHUNKED, h5d.VIRTUAL):
        raise ValueError("a dataset whose shape can change needs a chunked or virtual layout")
    if layout == h5d.CHUNKED and meta.chunks is not None and len(meta.chunks) != len(meta.shape):
        raise ValueError(f"chunk shape {meta.chunks} does not match the dataset's rank {len(meta.shape)}")
    state, node, path = _new_node(h, loc, name, lcpl, lambda f: f.create_dataset(meta))
    handle = NodeHandle(state, node, path, _via(h))
    handle.dapl = borrow(dapl, h5p.PropDAID).copy() if dapl > 0 else None
    return handle


def dataset_open(h, loc, name: str, dapl: int) -> NodeHandle:
    handle = _open_node(h, loc, name, api.Dataset, "a dataset", dapl)
    handle.dapl = borrow(dapl, h5p.PropDAID).copy() if dapl > 0 else None
    return handle


dataset_close = _close


def _selection(space: int) -> Selection:
    quick = _plugin().selection(space)  # all, none and regular hyperslabs, from C
    if quick is None:
        return Selection.from_space(borrow(space, h5s.SpaceID))
    if len(quick) == 1:  # a copy with h5py's selection offset folded in; ours to close
        return Selection.from_space(h5s.SpaceID(quick[0]))
    shape, kind, count, regular = quick
    return Selection(shape, kind, count, regular=regular)


def _fresh(h: NodeHandle) -> None:
    """Another handle may have resized the dataset since `h` cached its meta."""
    if h.node.meta is not h.meta:
        h._load_meta()


def _selections(shape: tuple[int, ...], mem_space: int, file_space: int) -> tuple[Selection, Selection, tuple]:
    """File and memory selections, and the memory buffer's extent."""
    fsel = Selection.everything(shape) if file_space == 0 else _selection(file_space)
    if mem_space == 0:
        return fsel, fsel, shape
    msel = _selection(mem_space)
    return fsel, msel, msel.shape


def _check_io(h: NodeHandle, fsel: Selection, msel: Selection) -> None:
    if fsel.count != msel.count:
        raise ValueError(
            f"the memory selection has {msel.count} elements but the file selection has {fsel.count}"
        )
    # A valid selection (HDF5 checked it against its own extent) of a space
    # shaped like the dataset needs no bounds check.
    if fsel.count and fsel.kind != "all" and fsel.shape != h.meta.shape:
        start, stop = fsel.bounds()
        if len(stop) != len(h.meta.shape) or any(s > d for s, d in zip(stop, h.meta.shape, strict=True)):
            raise ValueError(f"the selection (up to {stop}) lies outside the dataset's shape {h.meta.shape}")


def _view(buf, dtype: np.dtype, extent: tuple) -> np.ndarray:
    # numpy expands an array datatype into trailing dimensions.
    return np.frombuffer(buf, dtype=dtype).reshape(extent + dtype.shape)


def _dxpl(dxpl: int):
    return borrow(dxpl, h5p.PropDXID) if dxpl > 0 else None


def dataset_read(h: NodeHandle, mem_type: int, mem_space: int, file_space: int, dxpl: int, addr: int) -> None:
    _fresh(h)
    if h.virtual is not None:
        return virtual.read(h, mem_type, mem_space, file_space, dxpl, addr)
    fsel, msel, extent = _selections(h.meta.shape, mem_space, file_space)
    _check_io(h, fsel, msel)
    equal, msize = _plugin().same_type(mem_type, h.file_type_id)
    nbytes = math.prod(extent) * msize
    buf = _plugin().buffer(addr, nbytes, True)
    if fsel.count == 0:
        return
    if equal and h.plain:
        mem = _view(buf, h.dtype, extent)
        target = mem if msel.kind == "all" else (mem[msel.index] if msel.is_basic else None)
        if target is not None and target.shape == fsel.result_shape + h.dtype.shape:
            h.node.read(fsel, target)
            return
        tmp = np.empty(fsel.result_shape, h.dtype)
        h.node.read(fsel, tmp)
        mem[msel.index] = tmp.reshape(msel.result_shape + h.dtype.shape)
        return
    mtype = borrow(mem_type, h5t.typewrap)
    tmp = np.empty(fsel.result_shape, h.dtype)
    h.node.read(fsel, tmp)
    if msel.kind == "all":
        datatypes.from_numpy(h.file_type, mtype, tmp, buf, _dxpl(dxpl), refs=_refs(h))
        return
    # Convert over the user's current bytes: they are HDF5's background for
    # compound members the file type lacks.
    elem = np.dtype((np.void, msize))
    mem = _view(buf, elem, extent)
    raw = np.ascontiguousarray(mem[msel.index])
    datatypes.from_numpy(h.file_type, mtype, tmp, raw, _dxpl(dxpl), refs=_refs(h))
    mem[msel.index] = raw


def dataset_write(h: NodeHandle, mem_type: int, mem_space: int, file_space: int, dxpl: int, addr: int) -> None:
    h.state.check_writable()
    _fresh(h)
    if h.virtual is not None:
        return virtual.write(h, mem_type, mem_space, file_space, dxpl, addr)
    fsel, msel, extent = _selections(h.meta.shape, mem_space, file_space)
    _check_io(h, fsel, msel)
    equal, msize = _plugin().same_type(mem_type, h.file_type_id)
    nbytes = math.prod(extent) * msize
    buf = _plugin().buffer(addr, nbytes, False)
    if fsel.count == 0:
        return
    if equal and h.plain:
        mem = _view(buf, h.dtype, extent)
        data = mem if msel.kind == "all" else mem[msel.index]
        _store(h, fsel, data.reshape(fsel.result_shape + h.dtype.shape))
        return
    mtype = borrow(mem_type, h5t.typewrap)
    stored = None
    if datatypes.keeps_stored_members(mtype, h.file_type):
        stored = np.empty(fsel.result_shape, h.dtype)
        h.node.read(fsel, stored)
    if msel.kind == "all":
        data = datatypes.to_numpy(mtype, h.file_type, buf, fsel.count, _dxpl(dxpl), stored, refs=_refs(h))
    else:
        elem = np.dtype((np.void, msize))
        gathered = np.ascontiguousarray(_view(buf, elem, extent)[msel.index])
        data = datatypes.to_numpy(mtype, h.file_type, gathered, fsel.count, _dxpl(dxpl), stored, refs=_refs(h))
    _store(h, fsel, data.reshape(fsel.result_shape + h.dtype.shape))


def _store(h: NodeHandle, fsel: Selection, data: np.ndarray) -> None:
    h.node.write(fsel, data)
    if h.lossy:
        _apply_lossy_filters(h, fsel)


def _apply_lossy_filters(h: NodeHandle, fsel: Selection) -> None:
    """Leave in the chunks a write touched what native HDF5 would keep there.

    A lossy filter (scale-offset) changes values as it stores a chunk, while
    connectors keep elements as given; so each touched chunk is read back,
    passed through native HDF5 with the dataset's own creation properties
    (in memory) and stored again."""
    shape, chunks = h.meta.shape, h.meta.chunks
    if not chunks or fsel.count == 0:
        return
    start, stop = fsel.bounds()
    boxes, arrays = [], []
    for corner in itertools.product(*(range(a - a % c, b, c) for a, b, c in zip(start, stop, chunks, strict=True))):
        end = tuple(min(x + c, n) for x, c, n in zip(corner, chunks, shape, strict=True))
        box = Selection(shape, "hyperslab", math.prod(e - x for x, e in zip(corner, end, strict=True)),
                        regular=(corner, (1,) * len(shape), (1,) * len(shape),
                                 tuple(e - x for x, e in zip(corner, end, strict=True))))
        part = np.empty(box.result_shape, h.dtype)
        h.node.read(box, part)
        boxes.append((corner, end))
        arrays.append(part)
    kept = through_native_filters(h.meta.dcpl, h.file_type_id, shape, boxes, arrays)
    for (corner, end), part in zip(boxes, kept, strict=True):
        size = tuple(e - x for x, e in zip(corner, end, strict=True))
        h.node.write(Selection(shape, "hyperslab", part.size, regular=(corner, (1,) * len(shape), (1,) * len(shape),
                                                                       size)), part)


def dataset_get_space(h: NodeHandle) -> int:
    _fresh(h)
    if h.virtual is not None:  # unlimited mappings follow their sources' extents
        return _plugin().make_space(h.virtual.shape(), h.meta.maxshape)
    return _new_space(h.meta)


def dataset_get_type(h: NodeHandle) -> int:
    return _new_type(h, h.file_type_id)


def dataset_get_dcpl(h: NodeHandle) -> int:
    if h.meta.dcpl:
        return detach(decode_dcpl(h.meta.dcpl, h.file_type_id))
    return detach(h5p.create(h5p.DATASET_CREATE))


def dataset_get_dapl(h: NodeHandle) -> int:
    """A copy of the access properties the dataset was opened with."""
    dapl = h.dapl.copy() if h.dapl is not None else h5p.create(h5p.DATASET_ACCESS)
    return detach(h.virtual.access_plist(dapl) if h.virtual is not None else dapl)


def dataset_get_storage_size(h: NodeHandle) -> int:
    return h.node.storage_size()


def dataset_get_space_status(h: NodeHandle) -> int:
    return H5D_SPACE_STATUS_ALLOCATED if h.node.is_allocated() else H5D_SPACE_STATUS_NOT_ALLOCATED


def dataset_set_extent(h: NodeHandle, addr: int) -> None:
    h.state.check_writable()
    if not h.meta.dcpl or dcpl_layout(h.meta.dcpl) != h5d.CHUNKED:
        raise ValueError("only a chunked dataset can change its shape")
    rank = len(h.meta.shape)
    dims = tuple(int(d) for d in np.frombuffer(_plugin().buffer(addr, 8 * rank, False), dtype=np.uint64))
    limit = h.meta.maxshape or h.meta.shape
    for new, cap in zip(dims, limit, strict=True):
        if cap is not None and new > cap:
            raise ValueError(f"new shape {dims} exceeds the dataset's maximum shape {h.meta.maxshape or h.meta.shape}")
    h.node.resize(dims)
    h._load_meta()


# ---------------------------------------------------------------- attributes


def _attr_owner(h, loc):
    """(state, owner node) for attribute operations (idx locations name the owner)."""
    if loc is not None and loc[0] == "idx":
        state, node, path = _base(h)
        state, owner, _ = _walk(state, node, path, loc[1], lapl=loc[-1])
        return state, owner
    state, owner, _ = _locate(h, loc)
    return state, owner


def _attr_by_idx(owner: api.Node, loc) -> str:
    return _nth(owner.attribute_names(), loc[2], loc[3], loc[4])


def attr_create(h, loc, name: str, type_id: int, space_id: int, acpl: int, aapl: int) -> AttrHandle:
    state, owner = _attr_owner(h, loc)
    state.check_writable()
    if name in owner.attribute_names():
        raise ValueError(f"an attribute named {name!r} already exists")
    attr = owner.create_attribute(name, _meta_from_ids(type_id, space_id, _acpl_blob(acpl), h=h))
    return AttrHandle(state, owner, attr, name, _via(h))


def _acpl_blob(acpl: int) -> bytes:
    """Attribute creation properties to keep: b"" for HDF5's defaults."""
    if acpl <= 0:
        return b""
    plist = borrow(acpl, h5p.PropID)
    return b"" if plist.equal(_default_acpl()) else encode_plist(acpl)


@functools.cache
def _default_acpl() -> h5p.PropID:
    return h5p.PropID(_plugin().new_plist("attribute create"))


def attr_open(h, loc, name, aapl: int) -> AttrHandle:
    state, owner = _attr_owner(h, loc)
    if loc is not None and loc[0] == "idx":
        name = _attr_by_idx(owner, loc)
    try:
        attr = owner.open_attribute(name)
    except KeyError:
        raise KeyError(f"no attribute named {name!r}") from None
    return AttrHandle(state, owner, attr, name, _via(h))


attr_close = _close


def attr_read(h: AttrHandle, mem_type: int, addr: int, dxpl: int) -> None:
    mtype = borrow(mem_type, h5t.typewrap)
    n = h.meta.size
    buf = _plugin().buffer(addr, n * mtype.get_size(), True)
    if n == 0:
        return
    data = h.attr.read()
    if datatypes.needs_conversion(mtype, h.file_type):
        datatypes.from_numpy(h.file_type, mtype, data, buf, _dxpl(dxpl), refs=_refs(h))
    else:
        mem = np.frombuffer(buf, h.dtype)  # (n,) or, for an array datatype, (n,) + its dimensions
        np.copyto(mem, data.reshape(mem.shape))


def attr_write(h: AttrHandle, mem_type: int, addr: int, dxpl: int) -> None:
    h.state.check_writable()
    mtype = borrow(mem_type, h5t.typewrap)
    n = h.meta.size
    buf = _plugin().buffer(addr, n * mtype.get_size(), False)
    if datatypes.needs_conversion(mtype, h.file_type):
        stored = h.attr.read() if datatypes.keeps_stored_members(mtype, h.file_type) else None
        data = datatypes.to_numpy(mtype, h.file_type, buf, n, _dxpl(dxpl), stored, refs=_refs(h))
    else:
        data = np.frombuffer(buf, h.dtype)
    h.attr.write(data.reshape(h.meta.shape + h.dtype.shape))


def attr_get_acpl(h: AttrHandle) -> int:
    """A copy of the creation properties the attribute was created with."""
    if h.meta.dcpl:
        return detach(decode_plist(h.meta.dcpl, h5p.PropID))
    return _plugin().new_plist("attribute create")


def attr_get_info(h, loc, name) -> tuple:
    if loc is None and name is None:
        return _attr_info(h.owner, h.name, h.meta)
    _, owner = _attr_owner(h, loc)
    if loc is not None and loc[0] == "idx":
        name = _attr_by_idx(owner, loc)
    return _attr_info(owner, name, owner.open_attribute(name).meta)


def attr_get_name(h, loc) -> str:
    if loc is None:
        return h.name
    _, owner = _attr_owner(h, loc)
    return _attr_by_idx(owner, loc)


def attr_get_space(h: AttrHandle) -> int:
    return _new_space(h.meta)


def attr_get_type(h: AttrHandle) -> int:
    return _new_type(h, h.file_type.id)


def attr_get_storage_size(h: AttrHandle) -> int:
    return h.meta.size * h.dtype.itemsize


def attr_delete(h, loc, name: str) -> None:
    state, owner = _attr_owner(h, loc)
    state.check_writable()
    owner.delete_attribute(name)


def attr_delete_by_idx(h, loc, idx_type: int, order: int, n: int) -> None:
    state, owner = _attr_owner(h, loc)
    state.check_writable()
    owner.delete_attribute(_nth(owner.attribute_names(), idx_type, order, n))


def attr_exists(h, loc, name: str) -> bool:
    owner = h.node if loc is None and isinstance(h, NodeHandle) else _attr_owner(h, loc)[1]
    return owner.has_attribute(name)


def attr_iterate(h, loc, idx_type: int, order: int, start: int) -> tuple:
    state, owner = _attr_owner(h, loc)
    names = _ordered(owner.attribute_names(), idx_type, order)[start:]
    items = [(n, _attr_info(owner, n, owner.open_attribute(n).meta)) for n in names]
    fresh = NodeHandle(state, owner, None, _via(h))
    return fresh, fresh.kind, items


def attr_rename(h, loc, old: str, new: str) -> None:
    state, owner = _attr_owner(h, loc)
    state.check_writable()
    if new in owner.attribute_names():
        raise ValueError(f"an attribute named {new!r} already exists")
    owner.rename_attribute(old, new)


# ---------------------------------------------------------------- committed datatypes


def datatype_commit(h, loc, name, type_id: int, lcpl: int, tcpl: int, tapl: int) -> NodeHandle:
    blob = borrow(type_id, h5t.typewrap).encode()
    state, node, path = _new_node(h, loc, name, lcpl, lambda f: f.commit_datatype(blob))
    return NodeHandle(state, node, path, _via(h))


def datatype_open(h, loc, name: str, tapl: int) -> NodeHandle:
    return _open_node(h, loc, name, api.Datatype, "a committed datatype", tapl)


datatype_close = _close


def datatype_get_binary(h: NodeHandle) -> bytes:
    return h.node.hdf5_type


def datatype_get_tcpl(h: NodeHandle) -> int:
    return _plugin().new_plist("datatype create")


# ---------------------------------------------------------------- links


def _add_link(h, loc, link: api.Link, lcpl: int) -> None:
    state, base, base_path = _base(h)
    state.check_writable()
    if loc is None or loc[0] != "name":
        raise ValueError("a new link needs a name")
    state, group, _, leaf = _creation_parent(state, base, base_path, loc[1], lcpl)
    state.check_writable()
    _insert_link(group, leaf, link)


def link_create_hard(h, loc, target_h, target_loc, lcpl: int, lapl: int) -> None:
    tstate, target, _ = _locate(target_h if target_h is not None else h, target_loc)
    if h is not None and _base(h)[0] is not tstate:
        raise ValueError("a hard link cannot point into another file")
    _add_link(h if h is not None else target_h, loc, api.HardLink(target.token), lcpl)


def link_create_soft(h, loc, target: str, lcpl: int, lapl: int) -> None:
    _add_link(h, loc, api.SoftLink(target), lcpl)


def link_create_ud(h, loc, link_class: int, value: bytes, lcpl: int, lapl: int) -> None:
    if link_class == H5L_TYPE_EXTERNAL:
        filename, _, rest = value[1:].partition(b"\0")
        path = rest.split(b"\0", 1)[0]
        link: api.Link = api.ExternalLink(filename.decode(), path.decode())
    else:
        link = api.UserLink(link_class, value)
    _add_link(h, loc, link, lcpl)


def _copy_link(src_h, loc1, dst_h, loc2, lcpl: int, move: bool) -> None:
    sstate, sgroup, spath, sname = _link_target(src_h if src_h is not None else dst_h, loc1)
    dst = dst_h if dst_h is not None else src_h
    dstate = _base(dst)[0]
    if sstate is not dstate:
        raise ValueError("links cannot be copied or moved between files")
    sstate.check_writable()
    try:
        link = sgroup.get_link(sname)
    except KeyError:
        raise KeyError(f"no link named {sname!r} in {spath or '?'!r}") from None
    if loc2 is not None and loc2[0] == "name":  # missing groups on the way are made if lcpl asks
        _, dgroup, _, dname = _creation_parent(dstate, *_base(dst)[1:], loc2[1], lcpl)
    else:
        _, dgroup, dpath, dname = _link_target(dst, loc2)
        if dgroup.has_link(dname):
            raise ValueError(f"a link named {dname!r} already exists in {dpath or '?'!r}")
    _insert_link(dgroup, dname, link)
    if move:
        sgroup.delete_link(sname)


def link_copy(src_h, loc1, dst_h, loc2, lcpl: int, lapl: int) -> None:
    _copy_link(src_h, loc1, dst_h, loc2, lcpl, move=False)


def link_move(src_h, loc1, dst_h, loc2, lcpl: int, lapl: int) -> None:
    _copy_link(src_h, loc1, dst_h, loc2, lcpl, move=True)


def _get_link(group: api.Group, gpath, name: str) -> api.Link:
    try:
        return group.get_link(name)
    except KeyError:
        raise KeyError(f"no link named {name!r} in {gpath or '?'!r}") from None


def link_get_info(h, loc) -> tuple:
    _, group, gpath, name = _link_target(h, loc)
    return _link_info(name, _get_link(group, gpath, name), _link_order(group, name))


def link_get_name(h, loc) -> str:
    return _link_target(h, loc)[3]


def link_get_val(h, loc) -> bytes:
    _, group, gpath, name = _link_target(h, loc)
    return _link_value(_get_link(group, gpath, name))


def link_delete(h, loc) -> None:
    state, group, gpath, name = _link_target(h, loc)
    state.check_writable()
    try:
        group.delete_link(name)
    except KeyError:
        raise KeyError(f"no link named {name!r} in {gpath or '?'!r}") from None


def link_exists(h, loc) -> bool:
    # As HDF5 answers: "/" (the root) always exists though no link names it;
    # "." (which the plugin passes as the object itself) is no link's name.
    if loc is None:
        return False
    if loc[0] == "name" and "/" in loc[1]:
        if not loc[1].strip("/"):
            return True
        if loc[1].rsplit("/", 1)[-1] == ".":
            return False
    _, group, _, name = _link_target(h, loc)
    return group.has_link(name)


def link_iterate(h, loc, recursive: bool, idx_type: int, order: int, start: int) -> tuple:
    state, group, path = _locate(h, loc)
    if not _is_group(group):
        raise TypeError(f"{path or 'object'!r} is not a group")
    items: list = []
    seen = {group.token}

    def visit(g: api.Group, prefix: str, gpath, skip: int) -> None:
        links = dict(g.links())
        orders = g.creation_orders() if tracks_link_order(g.gcpl) else None
        for name in _ordered(list(links), idx_type, order)[skip:]:
            link = links[name]
            rel = prefix + name
            items.append((rel, _link_info(name, link, _link_order(g, name, orders))))
            if recursive and isinstance(link, api.HardLink) and link.token not in seen:
                seen.add(link.token)
                child = state.file.open_node(link.token)
                if _is_group(child):
                    visit(child, rel + "/", _join(gpath, name), 0)

    try:
        visit(group, "", path, 0 if recursive else start)
    finally:
        visit = None  # it refers to itself: a cycle, holding the file, that only the collector would free
    return NodeHandle(state, group, path, _via(h)), items


# ---------------------------------------------------------------- objects


def object_open(h, loc) -> tuple:
    state, node, path = _locate(h, loc)
    handle = NodeHandle(state, node, path, _via(h))
    return handle, handle.kind


def object_copy(src_h, loc1, src_name: str, dst_h, loc2, dst_name: str, ocpypl: int, lcpl: int) -> None:
    sstate, sbase, sbase_path = _locate(src_h, loc1)
    sstate, source, _ = _walk(sstate, sbase, sbase_path, src_name)
    dstate, dbase, dbase_path = _locate(dst_h, loc2)
    dstate.check_writable()
    flags = borrow(ocpypl, h5p.PropCopyID).get_copy_object() if ocpypl > 0 else 0
    shallow = flags & h5o.COPY_SHALLOW_HIERARCHY_FLAG
    expand_soft = flags & h5o.COPY_EXPAND_SOFT_LINK_FLAG
    with_attrs = not flags & h5o.COPY_WITHOUT_ATTR_FLAG
    expand_refs = bool(flags & h5o.COPY_EXPAND_REFERENCE_FLAG)
    copies: dict[bytes, api.Node] = {}

    def copy_target(token: bytes) -> bytes:
        """The token of the copy of the object a reference names; a new copy is
        linked into the destination's root group, as HDF5 names it."""
        try:
            node = sstate.file.open_node(token)
        except KeyError:
            raise KeyError(f"a copied reference names no object of {sstate.name!r} (token {token!r})") from None
        known = token in copies
        copy = clone(node)
        if not known:
            name = f"~obj_pointed_by_{int.from_bytes(copy.token, 'little')}"
            _insert_link(dstate.file.root, name, api.HardLink(copy.token))
        return copy.token

    def clone(node: api.Node, depth: int = 0) -> api.Node:
        if node.token in copies:
            return copies[node.token]
        if _is_group(node):
            new: api.Node = dstate.file.create_group(node.gcpl)
            copies[node.token] = new
            if shallow and depth > 0:  # only the top group's immediate members
                return _with_attrs(node, new)
            for name, link in node.links():
                if expand_soft and isinstance(link, api.SoftLink):
                    try:
                        target = _follow(sstate, node, None, link, 0)[1]
                    except (KeyError, NotImplementedError, OSError):
                        target = None  # dangling: copied as the soft link it is
                    if target is not None:
                        link = api.HardLink(target.token)
                if isinstance(link, api.HardLink):
                    link = api.HardLink(clone(sstate.file.open_node(link.token), depth + 1).token)
                _insert_link(new, name, link)
        elif _is_dataset(node):
            # a committed type of the source file means nothing in another file
            new = dstate.file.create_dataset(node.meta if dstate is sstate else node.meta.replace(committed_type=b""))
            copies[node.token] = new  # before its references, which may name it
            everything = Selection.everything(node.meta.shape)
            if node.meta.size:
                data = np.empty(everything.result_shape, datatypes.dtype_of(decode_type(node.meta.hdf5_type)))
                node.read(everything, data)
                if dstate is not sstate and (size := _old_style_ref_size(node.meta.hdf5_type)):
                    data = _copied_refs(data, size, sstate, dstate, expand_refs, copy_target)
                new.write(everything, data)
        else:
            new = dstate.file.commit_datatype(node.hdf5_type)
        copies[node.token] = new
        return _with_attrs(node, new)

    def _with_attrs(node: api.Node, new: api.Node) -> api.Node:
        if with_attrs:
            for name in node.attribute_names():
                attr = node.open_attribute(name)
                meta = attr.meta if dstate is sstate else attr.meta.replace(committed_type=b"")
                data = attr.read()
                if size := _old_style_ref_size(meta.hdf5_type):
                    data = _copied_refs(data, size, sstate, dstate, expand_refs, copy_target)
                new.create_attribute(name, meta).write(data)
        return new

    try:
        copy = clone(source)
    finally:
        clone = _with_attrs = copy_target = None  # they refer to each other (see link_iterate)
    lstate, group, gpath, leaf = _parent(dstate, dbase, dbase_path, dst_name)
    if lstate is not dstate:
        raise ValueError("an object copy cannot be linked into another file through an external link")
    if group.has_link(leaf):
        raise ValueError(f"an object named {leaf!r} already exists in {gpath or '?'!r}")
    _insert_link(group, leaf, api.HardLink(copy.token))


def object_get_file(h) -> tuple:
    """(the file handle of `h`, whether HDF5 needs a new id for it)."""
    state, via = _base(h)[0], _via(h)
    if via is not None and via.state is state:
        if via.open:
            return via, False
        state.file_handles.append(via)  # its id was closed while `h` kept the file open
        return via, True
    if state.file_handles:
        return state.file_handles[0], False
    return FileHandle(state), True


def object_get_name(h, loc) -> str | None:
    if isinstance(h, AttrHandle) and loc is None:
        return None
    state, node, path = _locate(h, loc)
    if path is not None and loc is None and isinstance(h, NodeHandle) and not _reaches(state, path, node):
        # The link it was opened through is gone: HDF5 names it by where it
        # was moved to, and not at all once no link reaches it.
        path = h.path = _path_to(state, node.token)
    elif path is None and loc is None and isinstance(h, NodeHandle):
        # opened by token (a reference): name it by a path that reaches it, as HDF5 does
        path = h.path = _path_to(state, node.token)
    elif path is None and loc is not None and loc[0] == "token":  # H5Rget_obj_name
        path = _path_to(state, node.token)
    return path


def _reaches(state: FileState, path: str, node: api.Node) -> bool:
    """Whether `path` still leads to `node` (from the root of the file that
    its file is mounted in, if it is)."""
    top = state
    while top.mounted_on is not None:
        top = top.mounted_on
    try:
        there, found, _ = _walk(top, top.file.root, "/", path)
    except (KeyError, NotImplementedError, OSError, RecursionError, TypeError, ValueError):
        return False
    return there is state and found.token == node.token


def _path_to(state: FileState, token: bytes) -> str | None:
    """The first path, breadth first and in creation order, whose hard link reaches `token`."""
    if token == state.file.root.token:
        return "/"
    queue, seen = [(state.file.root, "/")], {state.file.root.token}
    while queue:
        group, gpath = queue.pop(0)
        for name, link in group.links():
            if not isinstance(link, api.HardLink) or link.token in seen:
                continue
            if link.token == token:
                return _join(gpath, name)
            seen.add(link.token)
            child = state.file.open_node(link.token)
            if _is_group(child):
                queue.append((child, _join(gpath, name)))
    return None


def object_get_type(h, loc) -> int:
    return _OBJ_TYPE[_id_type(_locate(h, loc)[1])]


def object_get_info(h, loc, fields: int) -> tuple:
    state, node, _ = _locate(h, loc)
    return _object_info(state, node, fields)


def object_change_rc(h, loc, delta: int) -> None:
    state, node, _ = _locate(h, loc)
    state.check_writable()
    node.change_link_count(delta)


def object_exists(h, loc) -> bool:
    if loc is None or loc[0] != "name":
        _locate(h, loc)
        return True
    state, node, path = _base(h)
    state, group, gpath, name = _parent(state, node, path, loc[1])
    if not group.has_link(name):
        return False
    try:
        _follow(state, group, gpath, group.get_link(name), 0)
    except (KeyError, NotImplementedError, OSError):
        return False  # a dangling soft or external link
    return True


def object_lookup(h, loc) -> bytes:
    return token16(_locate(h, loc)[1].token)


def object_visit(h, loc, idx_type: int, order: int, fields: int) -> tuple:
    state, start, path = _locate(h, loc)
    items = [(".", _object_info(state, start, fields))]
    seen = {start.token}

    def visit(g: api.Group, prefix: str) -> None:
        links = dict(g.links())
        for name in _ordered(list(links), idx_type, order):
            link = links[name]
            if not isinstance(link, api.HardLink):
                continue
            child = state.file.open_node(link.token)
            if link.token in seen:
                continue
            seen.add(link.token)
            items.append((prefix + name, _object_info(state, child, fields)))
            if _is_group(child):
                visit(child, prefix + name + "/")

    try:
        if _is_group(start):
            visit(start, "")
    finally:
        visit = None  # it refers to itself (see link_iterate)
    handle = NodeHandle(state, start, path, _via(h))
    return handle, handle.kind, items


def object_flush(h) -> None:
    state, node, _ = _base(h)
    node.flush()


def object_refresh(h) -> None:
    state, node, _ = _base(h)
    node.refresh()
    if isinstance(h, NodeHandle) and _is_dataset(node):
        h._load_meta()


# ---------------------------------------------------------------- references and blobs
#
# HDF5 converts H5R_ref_t (H5T_STD_REF) to its stored form and back itself,
# with H5T_STD_REF located in a file of ours (csrc/blob.c); what it does not
# store inline it hands to the blob callbacks below, with that file's handle.
# HDF5 1.10-style region references (csrc/compat.c) keep their dataset's token
# and selection as a blob too, through blob_put/blob_get with the handle of any
# object of the file.


def _ref_file(h) -> FileHandle:
    """The file handle the references of `h` are converted through: the one
    `h` was opened through, as object_get_file reports it to HDF5."""
    state, via = _base(h)[0], _via(h)
    if via is not None and via.state is state:
        return via
    if state.file_handles:
        return state.file_handles[0]
    handle = FileHandle(state)  # with no id yet: object_get_file registers one when HDF5 asks
    state.file_handles.remove(handle)
    return handle


def _refs(h) -> datatypes.References:
    handle = _ref_file(h)
    return datatypes.References(lambda: _plugin().ref_file_type(handle, handle.state.fapl.id))


def _blob_key(blob_id: bytes) -> bytes:
    if not 0 < blob_id[0] < len(blob_id):
        raise ValueError(f"{blob_id.hex()} is not a blob id of h5pyvol (a corrupt reference?)")
    return untoken16(blob_id)


def blob_put(h, data: bytes) -> bytes:
    h.state.check_writable()
    key = h.state.file.put_blob(data)
    if not isinstance(key, bytes) or not 0 < len(key) < 16:
        raise ValueError(f"the connector's put_blob returned {key!r}, not a key of 1 to 15 bytes")
    return token16(key)


def blob_get(h, blob_id: bytes) -> bytes:
    key = _blob_key(blob_id)
    try:
        return bytes(h.state.file.get_blob(key))
    except KeyError:
        raise KeyError(f"no blob {key!r} in file {h.state.name!r} (a reference to data since deleted?)") from None


def blob_delete(h: FileHandle, blob_id: bytes) -> None:
    h.state.check_writable()
    h.state.file.delete_blob(_blob_key(blob_id))


# HDF5 1.10-style references in copied objects (H5Ocopy), as HDF5 copies
# them: an attribute's are made again (or zeroed, without
# H5O_COPY_EXPAND_REFERENCE_FLAG), a dataset's only when copied to another
# file. "Made again" means the referenced object is copied too (once per
# H5Ocopy) and the reference points to its copy. An object reference is the
# first 8 bytes of a token16 (csrc/compat.c); a region reference the key
# length, the key and a checksum of a blob: "PVR1", the dataset's token16 and
# its encoded selection (the same format compat.c makes).

_REGION_MAGIC = b"PVR1"
_REGION_REF_SIZE = 12


def _old_style_ref_size(hdf5_type: bytes) -> int:
    """8 or 12 for the element types of 1.10-style object or region references, else 0."""
    tid = decode_type(hdf5_type)
    if tid.get_class() != h5t.REFERENCE:
        return 0
    return 8 if tid == h5t.STD_REF_OBJ else _REGION_REF_SIZE if tid == h5t.STD_REF_DSETREG else 0


def _region_check(blob: bytes, size: int) -> bytes:
    """The checksum bytes a region reference keeps after its key (32-bit FNV-1a, little-endian)."""
    h = 2166136261
    for byte in blob:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return (h.to_bytes(4, "little") + bytes(size))[:size]


def _region_read(state: FileState, ref: bytes) -> tuple[bytes, bytes]:
    """(token16 of the dataset, encoded selection) of a region reference of `state`'s file."""
    n = ref[0]
    if not 0 < n < _REGION_REF_SIZE:
        raise ValueError(f"{ref.hex()} is not a region reference of h5pyvol")
    try:
        blob = bytes(state.file.get_blob(ref[1 : 1 + n]))
    except KeyError:
        raise KeyError(f"the data of region reference {ref.hex()} is not in file {state.name!r}") from None
    if blob[:4] != _REGION_MAGIC or len(blob) < 20 or _region_check(blob, 11 - n) != ref[1 + n :]:
        raise ValueError(f"file {state.name!r} holds other data under region reference {ref.hex()}")
    return blob[4:20], blob[20:]


def _region_make(state: FileState, token: bytes, space: bytes) -> bytes:
    """A new region reference of `state`'s file to the dataset `token` (token16), selection `space`."""
    blob = _REGION_MAGIC + token + space
    key = state.file.put_blob(blob)
    if not isinstance(key, bytes) or not 0 < len(key) < _REGION_REF_SIZE:
        raise ValueError(f"the connector's blob key {key!r} does not fit an HDF5 1.10-style region reference")
    return bytes([len(key)]) + key + _region_check(blob, 11 - len(key))


def _copied_refs(
    data: np.ndarray, size: int, sstate: FileState, dstate: FileState, expand: bool, copy_target
) -> np.ndarray:
    """`data` (1.10-style references of `size` bytes, of sstate's file) as an
    object copy into dstate's file keeps them: each non-null one made again
    for copy_target(token) (the token of the referenced object's copy) when
    `expand`, else zeroed."""
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1, size)
    out = np.zeros_like(raw)
    if expand:
        for i, ref in enumerate(raw):
            ref = ref.tobytes()
            if not any(ref):
                continue
            if size == 8:
                token = copy_target(untoken16(ref + bytes(8)))
                if len(token) > 7:
                    raise ValueError(f"token {token!r} is too long for an HDF5 1.10-style object reference")
                out[i] = np.frombuffer(token16(token)[:8], np.uint8)
            else:
                token, space = _region_read(sstate, ref)
                new = token16(copy_target(untoken16(token)))
                out[i] = np.frombuffer(_region_make(dstate, new, space), np.uint8)
    return out.view(data.dtype).reshape(data.shape)


# ---------------------------------------------------------------- plugin access


_plugin_module = None


def _plugin():
    """h5pyvol._plugin: exists only inside the C plugin."""
    global _plugin_module
    if _plugin_module is None:
        from . import _plugin as plugin  # type: ignore[attr-defined]

        _plugin_module = plugin
    return _plugin_module


# ---------------------------------------------------------------- tracing

_NOT_CALLBACKS = {"token16", "untoken16", "borrow", "detach", "encode_plist",
                  "decode_plist", "decode_type"}


def _traced(name: str, fn):
    def wrapper(*args):
        shown = ", ".join(repr(a) for a in args)
        print(f"h5pyvol: {name}({shown})", file=sys.stderr, flush=True)
        return fn(*args)

    wrapper.__name__ = name
    return wrapper


if _TRACING:
    # Every callback the plugin makes is printed: what the connector is asked to do.
    for _name, _fn in list(globals().items()):
        if callable(_fn) and getattr(_fn, "__module__", None) == __name__ and not _name.startswith("_") \
                and _name not in _NOT_CALLBACKS and not isinstance(_fn, type):
            globals()[_name] = _traced(_name, _fn)
