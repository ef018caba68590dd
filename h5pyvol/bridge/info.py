"""Object, link and attribute info as HDF5 reports it, and new arrays' meta.

Owns: the tuples the plugin turns into H5O_info2_t, H5L_info2_t and
H5A_info_t (`object_info`, `link_info`, `attr_info`), object times, link
values, and the ids a get-call hands HDF5: new dataspaces (`new_space`) and
datatypes (`new_type`, committed ones opened as HDF5 opens them); and the
`ArrayMeta` of a new dataset or attribute from HDF5's type and space ids.
"""

from __future__ import annotations

import ctypes
import functools

from h5py import h5p

from .. import connector as api
from .._hdf5 import CONNECTOR_NAME, connector_name, decode_plist, decode_type, lib
from .constants import (
    H5I_DATATYPE,
    H5L_TYPE_EXTERNAL,
    H5L_TYPE_HARD,
    H5L_TYPE_SOFT,
    H5O_INFO_NUM_ATTRS,
    H5O_INFO_TIME,
    H5T_CSET_ASCII,
    H5T_CSET_UTF8,
    OBJ_TYPE,
)
from .handles import FileState, NodeHandle, id_type, is_dataset, is_datatype, is_group, opened_via, token16
from .plugin import plugin


def object_info(state: FileState, node: api.Node, fields: int) -> tuple:
    num_attrs = len(node.attribute_names()) if fields & H5O_INFO_NUM_ATTRS else 0
    otype = OBJ_TYPE[id_type(node)]
    times = object_times(node) if fields & H5O_INFO_TIME else (0, 0, 0, 0)  # access, modify, change, birth
    return (state.fileno, token16(node.token), otype, node.link_count, *times, num_attrs)


def object_times(node: api.Node) -> tuple[int, int, int, int]:
    """The node's times if its creation properties track times, else zeros."""
    if is_dataset(node):
        blob = node.meta.dcpl
    elif is_group(node):
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


def link_value(link: api.Link) -> bytes:
    if isinstance(link, api.SoftLink):
        return link.path.encode("utf-8", "surrogateescape") + b"\0"
    if isinstance(link, api.ExternalLink):
        return _encode_external(link)
    if isinstance(link, api.UserLink):
        return link.value
    raise TypeError("a hard link has no value")


def link_info(name: str, link: api.Link, order: tuple[bool, int]) -> tuple:
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
    return (ltype, valid, corder, cset, len(link_value(link)))


def attr_info(owner: api.Node, name: str, meta: api.ArrayMeta) -> tuple:
    corder = owner.attribute_names().index(name)
    cset = H5T_CSET_ASCII if name.isascii() else H5T_CSET_UTF8
    return (True, corder, cset, meta.size * meta.dtype.itemsize)


def new_space(meta: api.ArrayMeta) -> int:
    """A new dataspace id for the caller to own."""
    return plugin().make_space(None if meta.null else meta.shape, meta.maxshape)


def meta_from_ids(type_id: int, space_id: int, h, dcpl=b"") -> api.ArrayMeta:
    """The meta of a new array of `h`'s file (a committed type is remembered
    if it is that file's); `dcpl` is its creation properties, or a function
    of the encoded type that gives them."""
    blob, committed, shape, maxshape = plugin().array_info(type_id, space_id)
    token = _committed_token(h, type_id) if committed else b""
    if callable(dcpl):
        dcpl = dcpl(blob)
    return api.ArrayMeta(blob, () if shape is None else shape, maxshape, dcpl, shape is None, token)


def _committed_token(h, type_id: int) -> bytes:
    """The token of committed datatype `type_id` if it belongs to the file of `h`, else b""."""
    if connector_name(type_id) != CONNECTOR_NAME:
        return b""  # committed in a file of another connector
    handle = ctypes.cast(lib().H5VLobject(type_id), ctypes.py_object).value
    if not isinstance(handle, NodeHandle) or handle.state is not h.base()[0]:
        return b""
    return handle.node.token


def new_type(h, type_id: int) -> int:
    """A new datatype id for the elements of dataset or attribute `h`: its
    committed datatype (as H5Topen opens it) if it has one that still exists,
    else a copy of `type_id`."""
    state, meta = h.state, h.meta
    if meta.committed_type:
        try:
            node = state.file.open_node(meta.committed_type)
        except KeyError:
            node = None  # deleted since: the type is transient now
        if is_datatype(node) and decode_type(node.hdf5_type) == decode_type(meta.hdf5_type):
            return plugin().register(NodeHandle(state, node, None, opened_via(h)), H5I_DATATYPE)
    return plugin().copy_type(type_id)

