"""Paths: walking from a handle to the node a location names.

Owns: HDF5 location parameters (`locate`), walking paths through hard, soft
and external links (`walk`, `follow`; external links open files of the same
connector, kept in `_linked_files` until no id uses them), the parent group
of a link (`parent`, `link_target`, `creation_parent`), links' creation-order
numbers, HDF5's iteration orders (`ordered`, `nth`), and making and opening
linked nodes (`new_node`, `open_node`).
"""

from __future__ import annotations

import posixpath

from h5py import h5p

from .. import connector as api
from .. import linked_files
from .._hdf5 import borrow, elink_fapl, tracks_link_order, with_vol_of
from .constants import (
    H5_INDEX_NAME,
    H5_ITER_DEC,
    H5F_ACC_DEFAULT,
    H5F_ACC_RDWR,
    H5F_ACC_SWMR_READ,
    H5F_ACC_SWMR_WRITE,
    MAX_SOFT_LINK_DEPTH,
)
from .handles import FileState, NodeHandle, is_group, open_files, opened_via, untoken16
from .plugin import plugin


def join(base: str | None, path: str) -> str | None:
    """The absolute path of `path` from `base` (None if `base` is unknown)."""
    if base is not None and "/" not in path and path not in (".", "..", ""):  # a member: the common case
        return base + path if base.endswith("/") else base + "/" + path
    if path.startswith("/"):
        return posixpath.normpath(path).replace("//", "/")
    if base is None:
        return None
    return posixpath.normpath(posixpath.join(base, path)).replace("//", "/")


def components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def follow(state: FileState, group: api.Group, group_path: str | None, link: api.Link,
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
        return walk(state, group, group_path, link.path, depth + 1, lapl)[:2]
    if isinstance(link, api.ExternalLink):
        target = _open_linked_file(state, link.filename, lapl)
        return walk(target, target.file.root, "/", link.path, depth + 1, lapl)[:2]
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
        if (id(conn), name) in open_files:
            return open_files[(id(conn), name)]
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


def walk(state: FileState, start: api.Node, start_path: str | None, path: str,
          depth: int = 0, lapl: int = 0) -> tuple[FileState, api.Node, str | None]:
    """The node at `path` from `start`, the file that holds it (external links
    lead to others), and its absolute path there (None if unknown)."""
    if path == ".":  # the start itself: by far the most common (H5Aexists_by_name...)
        return state, start, start_path
    node = state.file.root if path.startswith("/") else start
    here = "/" if path.startswith("/") else start_path
    for part in components(path):
        if not is_group(node):
            raise KeyError(f"{here or 'object'!r} is not a group, so it has no member {part!r}")
        try:
            link = node.get_link(part)
        except KeyError:
            raise KeyError(f"no object named {part!r} in group {here or '?'!r}") from None
        state, node = follow(state, node, here, link, depth, lapl)
        here = join("/", link.path) if isinstance(link, api.ExternalLink) else join(here, part)
    return state, node, here


def parent(state: FileState, start: api.Node, start_path: str | None, path: str, lapl: int = 0):
    """(file, group holding the last component of `path`, its path, that component)."""
    if path and "/" not in path and path != ".":  # a member of `start`: the common case
        if not is_group(start):
            raise KeyError(f"{start_path or 'object'!r} is not a group")
        return state, start, start_path, path
    parts = components(path)
    if not parts:
        raise ValueError(f"{path!r} names no link")
    prefix = ("/" if path.startswith("/") else "") + "/".join(parts[:-1])
    state, group, gpath = walk(state, start, start_path, prefix or ".", lapl=lapl)
    if not is_group(group):
        raise KeyError(f"{gpath or prefix!r} is not a group")
    return state, group, gpath, parts[-1]


def ordered(names: list[str], idx_type: int, order: int) -> list[str]:
    """Names in HDF5's index order. `names` come in creation order."""
    if idx_type == H5_INDEX_NAME:
        result = sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape"))  # HDF5 compares bytes
    else:
        result = list(names)
    if order == H5_ITER_DEC:
        result.reverse()
    return result


def nth(names: list[str], idx_type: int, order: int, n: int) -> str:
    names = ordered(names, idx_type, order)
    if n >= len(names):
        raise IndexError(f"index {n} is out of range ({len(names)} entries)")
    return names[n]


def locate(h, loc):
    """Resolve HDF5 location parameters to (state, node, path).

    loc is None (the object itself), ("name", path, lapl), ("idx", group
    path, index type, order, n, lapl) or ("token", 16 bytes).
    """
    state, node, path = h.base()
    if loc is None:
        return state, node, path
    kind = loc[0]
    if kind == "name":
        return (state, node, path) if loc[1] == "." else walk(state, node, path, loc[1], lapl=loc[-1])
    if kind == "idx":
        state, group, gpath = walk(state, node, path, loc[1], lapl=loc[-1])
        if not is_group(group):
            raise TypeError(f"{gpath!r} is not a group")
        names = [name for name, _ in group.links()]
        name = nth(names, loc[2], loc[3], loc[4])
        state, target = follow(state, group, gpath, group.get_link(name), 0, loc[-1])
        return state, target, join(gpath, name)
    if kind == "token":
        return state, state.file.open_node(untoken16(loc[1])), None
    raise ValueError(f"unknown location {loc!r}")


def link_target(h, loc):
    """For link operations: (state, group, group path, link name)."""
    state, node, path = h.base()
    if loc is None:
        raise ValueError("this link operation needs a link name")
    if loc[0] == "name":
        name = loc[1]
        if name and "/" not in name and name != "." and is_group(node):
            return state, node, path, name  # a member of the object itself: parent's common case, inline
        return parent(state, node, path, name, loc[-1])
    if loc[0] == "idx":
        state, group, gpath = walk(state, node, path, loc[1], lapl=loc[-1])
        if not is_group(group):
            raise TypeError(f"{gpath!r} is not a group")
        return state, group, gpath, nth([n for n, _ in group.links()], loc[2], loc[3], loc[4])
    raise ValueError(f"unsupported location {loc!r} for a link operation")


def creation_parent(state: FileState, base: api.Node, base_path: str | None, name: str, lcpl: int):
    """(file, group, group path, leaf) where a new link `name` goes; makes
    missing intermediate groups when the link creation properties ask for it."""
    parts = components(name)
    if not parts:
        raise ValueError(f"{name!r} is not a valid name for a new link")
    intermediate = len(parts) > 1 and lcpl > 0 and plugin().intermediate_groups(lcpl)
    group, gpath = (state.file.root, "/") if name.startswith("/") else (base, base_path)
    for part in parts[:-1]:
        if not is_group(group):
            raise KeyError(f"{gpath!r} is not a group")
        if intermediate and not group.has_link(part):
            child = state.file.create_group()
            insert_link(group, part, api.HardLink(child.token))
            group = child
        else:
            try:
                link = group.get_link(part)
            except KeyError:
                raise KeyError(f"no group named {part!r} in {gpath or '?'!r} (parent groups are not created)") from None
            state, group = follow(state, group, gpath, link, 0)
            if isinstance(link, api.ExternalLink):
                gpath = join("/", link.path)
                continue
        gpath = join(gpath, part)
    if not is_group(group):
        raise KeyError(f"{gpath!r} is not a group")
    if group.has_link(parts[-1]):
        raise ValueError(f"an object named {parts[-1]!r} already exists in {gpath or '?'!r}")
    return state, group, gpath, parts[-1]


def insert_link(group: api.Group, name: str, link: api.Link) -> None:
    """Add a link under the group's next creation-order number, as HDF5 does."""
    order = group.next_creation_order()
    group.set_link(name, link)
    group.note_creation_order(name, order)


def link_order(group: api.Group, name: str, orders: dict[str, int] | None = None) -> tuple[bool, int]:
    """(valid, number): a link's creation order, valid when the group tracks it."""
    if not tracks_link_order(group.gcpl):
        return False, 0
    orders = group.creation_orders() if orders is None else orders
    return True, orders.get(name, 0)


def new_node(h, loc, name: str | None, lcpl: int, make):
    """Create a node with `make(file)` and link it at `name` (None: anonymous)."""
    state, base, base_path = locate(h, loc)
    state.check_writable()
    if name is None:
        return state, make(state.file), None
    state, group, gpath, leaf = creation_parent(state, base, base_path, name, lcpl)
    state.check_writable()  # an external link may lead to another file
    node = make(state.file)
    insert_link(group, leaf, api.HardLink(node.token))
    return state, node, join(gpath, leaf)


def open_node(h, loc, name: str, kind: type, what: str, apl: int = 0) -> NodeHandle:
    """Open the node at `name` from the location, checking it is a `kind`
    (`apl`: access properties, which include the link access properties)."""
    state, base, base_path = locate(h, loc)
    state, node, path = walk(state, base, base_path, name, lapl=apl)
    if not isinstance(node, kind):
        raise TypeError(f"{path or name!r} is not {what}")
    return NodeHandle(state, node, path, opened_via(h))


def get_link(group: api.Group, gpath, name: str) -> api.Link:
    try:
        return group.get_link(name)
    except KeyError:
        raise KeyError(f"no link named {name!r} in {gpath or '?'!r}") from None

