"""Handles: the VOL objects the plugin hands HDF5, and the open files they share.

Every handle the bridge returns becomes an HDF5 VOL object: a `FileHandle`
(one per file id), a `NodeHandle` (group, dataset, committed datatype) or an
`AttrHandle`. Handles of one open file share a `FileState`, which closes the
connector's file once no id refers to it.

Owns: handles and open-file bookkeeping (`open_files`), mounts' bookkeeping,
the datatypes handles keep (`held_type`), tokens in HDF5's 16-byte form, and
`node_of` (the connector object behind an h5py object).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
from typing import Any

from h5py import h5p, h5t

from .. import connector as api
from .. import datatypes
from .._hdf5 import CONNECTOR_NAME, borrow, connector_name, decode_plist, decode_type, lib
from . import fastpath
from .constants import (
    H5F_ACC_RDWR,
    H5F_ACC_SWMR_READ,
    H5F_ACC_SWMR_WRITE,
    H5I_ATTR,
    H5I_DATASET,
    H5I_DATATYPE,
    H5I_FILE,
    H5I_GROUP,
)
from .plugin import FileBase, HandleBase, plugin

_filenos = itertools.count(1)
open_files: dict[tuple[int, str], FileState] = {}


# isinstance() with the connector ABCs runs ABCMeta.__instancecheck__, a
# Python call; these ask a per-class cache instead (every path walk uses them).
@functools.cache
def _node_base(cls: type) -> type | None:
    """Which of Group, Dataset, Datatype a connector's node class derives from."""
    return next((base for base in (api.Group, api.Dataset, api.Datatype) if issubclass(cls, base)), None)


def is_group(node: object) -> bool:
    return _node_base(type(node)) is api.Group


def is_dataset(node: object) -> bool:
    return _node_base(type(node)) is api.Dataset


def is_datatype(node: object) -> bool:
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
        open_files[self.key] = self

    @property
    def key(self) -> tuple[int, str]:
        return (id(self.connector), self.name)

    def check_writable(self) -> None:
        if not self.writable:
            raise PermissionError(f"file {self.name!r} is open read-only")

    def unmount(self, child: FileState) -> None:
        """H5Funmount of `child`, mounted on a group of this file."""
        del self.mounts[next(t for t, s in self.mounts.items() if s is child)]
        child.mounted_on = None
        child.users -= 1
        child.release()

    def release(self) -> None:
        """Close the connector file once no HDF5 id refers to it."""
        if self.file_handles or self.users or open_files.get(self.key) is not self:
            return
        del open_files[self.key]
        for child in list(self.mounts.values()):  # as HDF5 does when a parent closes
            self.unmount(child)
        try:
            if self.writable:
                self.file.flush()
        finally:
            self.file.close()


class FileHandle(FileBase):
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


class NodeHandle(HandleBase):
    """The VOL object behind a group, dataset or committed datatype id.

    Its base, ``_plugin.Handle``, holds ``io``, ``get_type_id`` and ``space``
    (None until ``_load_meta``) as C fields for the plugin's hot paths.
    """

    dapl = None  # a dataset's access properties, as given at create/open

    def __init__(self, state: FileState, node: api.Node, path: str | None, via: FileHandle | None = None):
        self.state = state
        self.node = node
        self.path = path
        self.via = via  # the file id it was opened through (H5F_OBJ_LOCAL)
        self.kind = id_type(node)
        state.users += 1
        if self.kind == H5I_DATASET:
            self._load_meta()

    def _load_meta(self) -> None:
        meta = self.node.meta
        self.meta = meta
        self.file_type = held_type(meta.hdf5_type)
        self.file_type_id = self.file_type.id
        # What H5Dget_type copies in C; None: ask dataset_get_type (a committed datatype).
        self.get_type_id = None if meta.committed_type else self.file_type_id
        self.dtype = meta.dtype
        self.plan = fastpath.plan(self)  # what the data path does for it, and the C fast path
        self.io = self.plan.io
        # What H5Dget_space makes in C while the node's meta is still `meta`.
        self.space = (None if meta.null else meta.shape, meta.maxshape) if self.io is not None else None

    def base(self) -> tuple[FileState, api.Node, str | None]:
        return self.state, self.node, self.path

    def close(self) -> None:
        self.state.users -= 1
        self.state.release()

    def __repr__(self) -> str:
        kind = {H5I_GROUP: "group", H5I_DATASET: "dataset", H5I_DATATYPE: "datatype"}[self.kind]
        return f"<{kind} {self.path or '(anonymous)'!r}>"


def held_type(blob: bytes) -> h5t.TypeID:
    """The datatype a handle keeps for its elements, one per distinct type in
    the process. Its id is the library's, not the program's, as native HDF5's
    type of an open dataset is, so H5Fget_obj_count and H5Fget_obj_ids do not
    count it (csrc/ids.c). Such ids are never closed: closing them while h5py
    or HDF5 reads an error stack garbled it, so they are kept, as h5py keeps
    its own conversion types. Types with compound members are not shared
    (HDF5 reorders their members in place when converting), so they stay
    the program's, and are counted."""
    tid = held_types.get(blob)
    if tid is None:
        tid = decode_type(blob)
        if tid.detect_class(h5t.COMPOUND):
            return tid
        if HandleBase is not object and plugin().hide_id(tid.id):
            tid.locked = 1  # h5py must not close it (H5Iis_valid answers for program ids only)
            held_types[blob] = tid
    return tid


held_types: dict[bytes, h5t.TypeID] = {}


class AttrHandle(HandleBase):
    """The VOL object behind an attribute id.

    Its base, ``_plugin.Handle``, holds ``get_type_id`` and ``space``: the
    plugin answers H5Aget_type and H5Aget_space from them in C.
    """

    kind = H5I_ATTR

    def __init__(self, state: FileState, owner: api.Node, attr: api.Attribute, name: str,
                 via: FileHandle | None = None):
        self.state = state
        self.via = via  # the file id it was opened through (H5F_OBJ_LOCAL)
        self.owner = owner
        self.attr = attr
        self.name = name
        self.meta = attr.meta
        meta = self.meta
        self.file_type = held_type(meta.hdf5_type)
        self.dtype = meta.dtype
        self.plain = not datatypes.has_vlen_encoded(meta.hdf5_type)  # bytes copy as they are
        # A committed datatype is opened as HDF5 opens it: attr_get_type answers.
        self.get_type_id = None if meta.committed_type else self.file_type.id
        self.space = (None if meta.null else meta.shape, meta.maxshape)
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


def opened_via(h) -> FileHandle | None:
    """The file handle through which `h` was opened: HDF5's file of an object
    (for H5F_OBJ_LOCAL), which is one of possibly several opens of one file."""
    return h if isinstance(h, FileHandle) else getattr(h, "via", None)


def id_type(node: api.Node) -> int:
    if is_group(node):
        return H5I_GROUP
    if is_dataset(node):
        return H5I_DATASET
    if is_datatype(node):
        return H5I_DATATYPE
    raise TypeError(f"the connector returned {type(node).__name__}, which is not a Group, Dataset or Datatype")


def token16(token: bytes) -> bytes:
    """A connector token in HDF5's 16-byte form: its length, then its bytes."""
    if len(token) > 15:
        raise ValueError(f"connector token {token!r} is longer than 15 bytes")
    return bytes([len(token)]) + token + bytes(15 - len(token))


def untoken16(raw: bytes) -> bytes:
    return raw[1 : 1 + raw[0]]


def close(h) -> None:
    """Every *close callback: the handle releases what it holds."""
    h.close()

