"""Attributes: the H5A callbacks.

Owns: finding an attribute's owner from a location, creating, opening,
reading and writing attributes (converted as HDF5 converts them), their
info, names, creation properties, iteration, renaming and deletion.
"""

from __future__ import annotations

import functools

import numpy as np
from h5py import h5p, h5t

from .. import connector as api
from .. import datatypes
from .._hdf5 import borrow, decode_plist, detach
from .datasets import dxpl_of
from .handles import AttrHandle, NodeHandle, close, opened_via
from .info import attr_info, meta_from_ids, new_space, new_type
from .paths import locate, nth, ordered, walk
from .plugin import plugin
from .references import refs


def _attr_owner(h, loc):
    """(state, owner node) for attribute operations (idx locations name the owner)."""
    if loc is not None and loc[0] == "idx":
        state, node, path = h.base()
        state, owner, _ = walk(state, node, path, loc[1], lapl=loc[-1])
        return state, owner
    state, owner, _ = locate(h, loc)
    return state, owner


def _attr_by_idx(owner: api.Node, loc) -> str:
    return nth(owner.attribute_names(), loc[2], loc[3], loc[4])


def attr_create(h, loc, name: str, type_id: int, space_id: int, acpl: int, aapl: int) -> AttrHandle:
    state, owner = _attr_owner(h, loc)
    state.check_writable()
    if owner.has_attribute(name):
        raise ValueError(f"an attribute named {name!r} already exists")
    attr = owner.create_attribute(name, meta_from_ids(type_id, space_id, h, _acpl_blob(acpl)))
    return AttrHandle(state, owner, attr, name, opened_via(h))


def _acpl_blob(acpl: int) -> bytes:
    """Attribute creation properties to keep: b"" for HDF5's defaults."""
    if acpl <= 0:
        return b""
    plist = borrow(acpl, h5p.PropID)
    return b"" if plist.equal(_default_acpl()) else plugin().encode_plist(acpl)


@functools.cache
def _default_acpl() -> h5p.PropID:
    return h5p.PropID(plugin().new_plist("attribute create"))


def attr_open(h, loc, name, aapl: int) -> AttrHandle:
    state, owner = _attr_owner(h, loc)
    if loc is not None and loc[0] == "idx":
        name = _attr_by_idx(owner, loc)
    try:
        attr = owner.open_attribute(name)
    except KeyError:
        raise KeyError(f"no attribute named {name!r}") from None
    return AttrHandle(state, owner, attr, name, opened_via(h))


attr_close = close


def attr_read(h: AttrHandle, mem_type: int, addr: int, dxpl: int) -> None:
    equal, msize = plugin().same_type(mem_type, h.file_type.id)
    n = h.meta.size
    buf = plugin().buffer(addr, n * msize, True)
    if n == 0:
        return
    data = h.attr.read()
    if equal and h.plain:
        mem = np.frombuffer(buf, h.dtype)  # (n,) or, for an array datatype, (n,) + its dimensions
        np.copyto(mem, data.reshape(mem.shape))
    else:
        mtype = borrow(mem_type, h5t.typewrap)
        datatypes.from_numpy(h.file_type, mtype, data, buf, dxpl_of(dxpl), refs=refs(h))


def attr_write(h: AttrHandle, mem_type: int, addr: int, dxpl: int) -> None:
    h.state.check_writable()
    equal, msize = plugin().same_type(mem_type, h.file_type.id)
    n = h.meta.size
    buf = plugin().buffer(addr, n * msize, False)
    if equal and h.plain:
        data = np.frombuffer(buf, h.dtype)
    else:
        mtype = borrow(mem_type, h5t.typewrap)
        stored = h.attr.read() if datatypes.keeps_stored_members(mtype, h.file_type) else None
        data = datatypes.to_numpy(mtype, h.file_type, buf, n, dxpl_of(dxpl), stored, refs=refs(h))
    h.attr.write(data.reshape(h.meta.shape + h.dtype.shape))


def attr_get_acpl(h: AttrHandle) -> int:
    """A copy of the creation properties the attribute was created with."""
    if h.meta.dcpl:
        return detach(decode_plist(h.meta.dcpl, h5p.PropID))
    return plugin().new_plist("attribute create")


def attr_get_info(h, loc, name) -> tuple:
    if loc is None and name is None:
        return attr_info(h.owner, h.name, h.meta)
    _, owner = _attr_owner(h, loc)
    if loc is not None and loc[0] == "idx":
        name = _attr_by_idx(owner, loc)
    return attr_info(owner, name, owner.open_attribute(name).meta)


def attr_get_name(h, loc) -> str:
    if loc is None:
        return h.name
    _, owner = _attr_owner(h, loc)
    return _attr_by_idx(owner, loc)


def attr_get_space(h: AttrHandle) -> int:
    return new_space(h.meta)


def attr_get_type(h: AttrHandle) -> int:
    return new_type(h, h.file_type.id)


def attr_get_storage_size(h: AttrHandle) -> int:
    return h.meta.size * h.dtype.itemsize


def attr_delete(h, loc, name: str) -> None:
    state, owner = _attr_owner(h, loc)
    state.check_writable()
    owner.delete_attribute(name)


def attr_delete_by_idx(h, loc, idx_type: int, order: int, n: int) -> None:
    state, owner = _attr_owner(h, loc)
    state.check_writable()
    owner.delete_attribute(nth(owner.attribute_names(), idx_type, order, n))


def attr_exists(h, loc, name: str) -> bool:
    owner = h.node if loc is None and isinstance(h, NodeHandle) else _attr_owner(h, loc)[1]
    return owner.has_attribute(name)


def attr_iterate(h, loc, idx_type: int, order: int, start: int) -> tuple:
    state, owner = _attr_owner(h, loc)
    names = ordered(owner.attribute_names(), idx_type, order)[start:]
    items = [(n, attr_info(owner, n, owner.open_attribute(n).meta)) for n in names]
    fresh = NodeHandle(state, owner, None, opened_via(h))
    return fresh, fresh.kind, items


def attr_rename(h, loc, old: str, new: str) -> None:
    state, owner = _attr_owner(h, loc)
    state.check_writable()
    if new in owner.attribute_names():
        raise ValueError(f"an attribute named {new!r} already exists")
    owner.rename_attribute(old, new)

