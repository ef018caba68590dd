"""Groups, committed datatypes and objects: the H5G, H5T and H5O callbacks (but H5Ocopy).

Owns: creating and opening groups and committed datatypes, group info (and
H5Gget_objinfo, with which h5py hashes objects), opening any object, object
info, names (H5Iget_name: the path an object was opened by, while it still
reaches it), existence, reference counts, visiting, flushes and refreshes.
"""

from __future__ import annotations

from h5py import h5p, h5t

from .. import connector as api
from .._hdf5 import borrow, decode_plist, detach, tracks_link_order
from .constants import H5G_LINK, H5G_STORAGE_TYPE_COMPACT, H5G_UDLINK, OBJ_TYPE
from .handles import (
    AttrHandle,
    FileHandle,
    FileState,
    NodeHandle,
    close,
    id_type,
    is_dataset,
    is_group,
    opened_via,
    token16,
)
from .info import link_value, object_info, object_times
from .paths import components, follow, join, locate, new_node, open_node, ordered, parent, walk
from .plugin import plugin


def group_create(h, loc, name, lcpl: int, gcpl: int, gapl: int) -> NodeHandle:
    gcpl_blob = plugin().encode_plist(gcpl) if gcpl > 0 else b""
    state, node, path = new_node(h, loc, name, lcpl, lambda f: f.create_group(gcpl_blob))
    return NodeHandle(state, node, path, opened_via(h))


def group_open(h, loc, name: str, gapl: int) -> NodeHandle:
    return open_node(h, loc, name, api.Group, "a group", gapl)


group_close = close


def group_get_gcpl(h) -> int:
    state, node, _ = h.base()
    if node.gcpl:
        return detach(decode_plist(node.gcpl, h5p.PropGCID))
    return detach(h5p.create(h5p.GROUP_CREATE))


def group_get_info(h, loc) -> tuple:
    _, node, path = locate(h, loc)
    if not is_group(node):
        raise TypeError(f"{path or 'object'!r} is not a group")
    max_corder = node.next_creation_order() if tracks_link_order(node.gcpl) else 0
    return (H5G_STORAGE_TYPE_COMPACT, len(node.links()), max_corder, False)


def group_get_objinfo(h, loc, follow_link: bool) -> tuple:
    """H5Gget_objinfo (h5py's object hashing): (fileno, token, nlink, type, linklen, mtime)."""
    state, base, path = h.base()
    name = loc[1] if loc is not None and loc[0] == "name" else "."
    if not follow_link and components(name):
        state, group, _, leaf = parent(state, base, path, name)
        link = group.get_link(leaf)
        if not isinstance(link, api.HardLink):
            kind = H5G_LINK if isinstance(link, api.SoftLink) else H5G_UDLINK
            return (state.fileno, b"", 0, kind, len(link_value(link)), 0)
    state, node, _ = walk(state, base, path, name)
    return (state.fileno, token16(node.token), node.link_count, OBJ_TYPE[id_type(node)], 0, object_times(node)[1])


def datatype_commit(h, loc, name, type_id: int, lcpl: int, tcpl: int, tapl: int) -> NodeHandle:
    blob = borrow(type_id, h5t.typewrap).encode()
    state, node, path = new_node(h, loc, name, lcpl, lambda f: f.commit_datatype(blob))
    return NodeHandle(state, node, path, opened_via(h))


def datatype_open(h, loc, name: str, tapl: int) -> NodeHandle:
    return open_node(h, loc, name, api.Datatype, "a committed datatype", tapl)


datatype_close = close


def datatype_get_binary(h: NodeHandle) -> bytes:
    return h.node.hdf5_type


def datatype_get_tcpl(h: NodeHandle) -> int:
    return plugin().new_plist("datatype create")


def object_open(h, loc) -> tuple:
    state, node, path = locate(h, loc)
    handle = NodeHandle(state, node, path, opened_via(h))
    return handle, handle.kind



def object_get_file(h) -> tuple:
    """(the file handle of `h`, whether HDF5 needs a new id for it)."""
    state, via = h.base()[0], opened_via(h)
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
    state, node, path = locate(h, loc)
    if path is not None and loc is None and isinstance(h, NodeHandle) and not _reaches(state, path, node):
        # The link it was opened through is gone: HDF5 names it by where it
        # was moved to, and not at all once no link reaches it.
        path = h.path = path_to(state, node.token)
    elif path is None and loc is None and isinstance(h, NodeHandle):
        # opened by token (a reference): name it by a path that reaches it, as HDF5 does
        path = h.path = path_to(state, node.token)
    elif path is None and loc is not None and loc[0] == "token":  # H5Rget_obj_name
        path = path_to(state, node.token)
    return path


def _reaches(state: FileState, path: str, node: api.Node) -> bool:
    """Whether `path` still leads to `node` (from the root of the file that
    its file is mounted in, if it is)."""
    top = state
    while top.mounted_on is not None:
        top = top.mounted_on
    try:
        there, found, _ = walk(top, top.file.root, "/", path)
    except (KeyError, NotImplementedError, OSError, RecursionError, TypeError, ValueError):
        return False
    return there is state and found.token == node.token


def path_to(state: FileState, token: bytes) -> str | None:
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
                return join(gpath, name)
            seen.add(link.token)
            child = state.file.open_node(link.token)
            if is_group(child):
                queue.append((child, join(gpath, name)))
    return None


def object_get_type(h, loc) -> int:
    return OBJ_TYPE[id_type(locate(h, loc)[1])]


def object_get_info(h, loc, fields: int) -> tuple:
    state, node, _ = locate(h, loc)
    return object_info(state, node, fields)


def object_change_rc(h, loc, delta: int) -> None:
    state, node, _ = locate(h, loc)
    state.check_writable()
    node.change_link_count(delta)


def object_exists(h, loc) -> bool:
    if loc is None or loc[0] != "name":
        locate(h, loc)
        return True
    state, node, path = h.base()
    state, group, gpath, name = parent(state, node, path, loc[1])
    if not group.has_link(name):
        return False
    try:
        follow(state, group, gpath, group.get_link(name), 0)
    except (KeyError, NotImplementedError, OSError):
        return False  # a dangling soft or external link
    return True


def object_lookup(h, loc) -> bytes:
    return token16(locate(h, loc)[1].token)


def object_visit(h, loc, idx_type: int, order: int, fields: int) -> tuple:
    state, start, path = locate(h, loc)
    items = [(".", object_info(state, start, fields))]
    seen = {start.token}

    def visit(g: api.Group, prefix: str) -> None:
        links = dict(g.links())
        for name in ordered(list(links), idx_type, order):
            link = links[name]
            if not isinstance(link, api.HardLink):
                continue
            child = state.file.open_node(link.token)
            if link.token in seen:
                continue
            seen.add(link.token)
            items.append((prefix + name, object_info(state, child, fields)))
            if is_group(child):
                visit(child, prefix + name + "/")

    try:
        if is_group(start):
            visit(start, "")
    finally:
        visit = None  # it refers to itself (see link_iterate)
    handle = NodeHandle(state, start, path, opened_via(h))
    return handle, handle.kind, items


def object_flush(h) -> None:
    state, node, _ = h.base()
    node.flush()


def object_refresh(h) -> None:
    state, node, _ = h.base()
    node.refresh()
    if isinstance(h, NodeHandle) and is_dataset(node):
        h._load_meta()

