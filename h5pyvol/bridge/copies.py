"""Object copies: H5Ocopy, done by the bridge for every connector.

Owns: copying a group, dataset or committed datatype (and what it holds)
within a file or into another, with HDF5's copy flags: shallow hierarchy,
without attributes, expanding soft links, and expanding references (objects
a copied 1.10-style reference names are copied too).
"""

from __future__ import annotations

import numpy as np
from h5py import h5o, h5p

from .. import connector as api
from .. import datatypes
from .._hdf5 import borrow, decode_type
from ..selection import Selection
from .handles import is_dataset, is_group
from .paths import follow, insert_link, locate, parent, walk
from .references import copied_refs, old_style_ref_size


def object_copy(src_h, loc1, src_name: str, dst_h, loc2, dst_name: str, ocpypl: int, lcpl: int) -> None:
    sstate, sbase, sbase_path = locate(src_h, loc1)
    sstate, source, _ = walk(sstate, sbase, sbase_path, src_name)
    dstate, dbase, dbase_path = locate(dst_h, loc2)
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
            insert_link(dstate.file.root, name, api.HardLink(copy.token))
        return copy.token

    def clone(node: api.Node, depth: int = 0) -> api.Node:
        if node.token in copies:
            return copies[node.token]
        if is_group(node):
            new: api.Node = dstate.file.create_group(node.gcpl)
            copies[node.token] = new
            if shallow and depth > 0:  # only the top group's immediate members
                return _with_attrs(node, new)
            for name, link in node.links():
                if expand_soft and isinstance(link, api.SoftLink):
                    try:
                        target = follow(sstate, node, None, link, 0)[1]
                    except (KeyError, NotImplementedError, OSError):
                        target = None  # dangling: copied as the soft link it is
                    if target is not None:
                        link = api.HardLink(target.token)
                if isinstance(link, api.HardLink):
                    link = api.HardLink(clone(sstate.file.open_node(link.token), depth + 1).token)
                insert_link(new, name, link)
        elif is_dataset(node):
            # a committed type of the source file means nothing in another file
            new = dstate.file.create_dataset(node.meta if dstate is sstate else node.meta.replace(committed_type=b""))
            copies[node.token] = new  # before its references, which may name it
            everything = Selection.everything(node.meta.shape)
            if node.meta.size:
                data = np.empty(everything.result_shape, datatypes.dtype_of(decode_type(node.meta.hdf5_type)))
                node.read(everything, data)
                if dstate is not sstate and (size := old_style_ref_size(node.meta.hdf5_type)):
                    data = copied_refs(data, size, sstate, dstate, expand_refs, copy_target)
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
                if size := old_style_ref_size(meta.hdf5_type):
                    data = copied_refs(data, size, sstate, dstate, expand_refs, copy_target)
                new.create_attribute(name, meta).write(data)
        return new

    try:
        copy = clone(source)
    finally:
        clone = _with_attrs = copy_target = None  # they refer to each other (see link_iterate)
    lstate, group, gpath, leaf = parent(dstate, dbase, dbase_path, dst_name)
    if lstate is not dstate:
        raise ValueError("an object copy cannot be linked into another file through an external link")
    if group.has_link(leaf):
        raise ValueError(f"an object named {leaf!r} already exists in {gpath or '?'!r}")
    insert_link(group, leaf, api.HardLink(copy.token))

