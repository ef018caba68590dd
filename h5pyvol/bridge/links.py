"""Links: the H5L callbacks.

Owns: creating hard, soft, external and user-defined links (external links
as HDF5 encodes them), copying and moving links, link info, names and
values, existence (with HDF5's answers for "/" and "."), deletion and
iteration (also recursive: H5Lvisit).
"""

from __future__ import annotations

from .. import connector as api
from .._hdf5 import tracks_link_order
from .constants import H5L_TYPE_EXTERNAL
from .handles import NodeHandle, is_group, opened_via
from .info import link_info, link_value
from .paths import creation_parent, get_link, insert_link, join, link_order, link_target, locate, ordered


def _add_link(h, loc, link: api.Link, lcpl: int) -> None:
    state, base, base_path = h.base()
    state.check_writable()
    if loc is None or loc[0] != "name":
        raise ValueError("a new link needs a name")
    state, group, _, leaf = creation_parent(state, base, base_path, loc[1], lcpl)
    state.check_writable()
    insert_link(group, leaf, link)


def link_create_hard(h, loc, target_h, target_loc, lcpl: int, lapl: int) -> None:
    tstate, target, _ = locate(target_h if target_h is not None else h, target_loc)
    if h is not None and h.base()[0] is not tstate:
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
    sstate, sgroup, spath, sname = link_target(src_h if src_h is not None else dst_h, loc1)
    dst = dst_h if dst_h is not None else src_h
    dstate = dst.base()[0]
    if sstate is not dstate:
        raise ValueError("links cannot be copied or moved between files")
    sstate.check_writable()
    try:
        link = sgroup.get_link(sname)
    except KeyError:
        raise KeyError(f"no link named {sname!r} in {spath or '?'!r}") from None
    if loc2 is not None and loc2[0] == "name":  # missing groups on the way are made if lcpl asks
        _, dgroup, _, dname = creation_parent(dstate, *dst.base()[1:], loc2[1], lcpl)
    else:
        _, dgroup, dpath, dname = link_target(dst, loc2)
        if dgroup.has_link(dname):
            raise ValueError(f"a link named {dname!r} already exists in {dpath or '?'!r}")
    insert_link(dgroup, dname, link)
    if move:
        sgroup.delete_link(sname)


def link_copy(src_h, loc1, dst_h, loc2, lcpl: int, lapl: int) -> None:
    _copy_link(src_h, loc1, dst_h, loc2, lcpl, move=False)


def link_move(src_h, loc1, dst_h, loc2, lcpl: int, lapl: int) -> None:
    _copy_link(src_h, loc1, dst_h, loc2, lcpl, move=True)


def link_get_info(h, loc) -> tuple:
    _, group, gpath, name = link_target(h, loc)
    return link_info(name, get_link(group, gpath, name), link_order(group, name))


def link_get_name(h, loc) -> str:
    return link_target(h, loc)[3]


def link_get_val(h, loc) -> bytes:
    _, group, gpath, name = link_target(h, loc)
    return link_value(get_link(group, gpath, name))


def link_delete(h, loc) -> None:
    state, group, gpath, name = link_target(h, loc)
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
    _, group, _, name = link_target(h, loc)
    return group.has_link(name)


def link_iterate(h, loc, recursive: bool, idx_type: int, order: int, start: int) -> tuple:
    state, group, path = locate(h, loc)
    if not is_group(group):
        raise TypeError(f"{path or 'object'!r} is not a group")
    items: list = []
    seen = {group.token}

    def visit(g: api.Group, prefix: str, gpath, skip: int) -> None:
        links = dict(g.links())
        orders = g.creation_orders() if tracks_link_order(g.gcpl) else None
        for name in ordered(list(links), idx_type, order)[skip:]:
            link = links[name]
            rel = prefix + name
            items.append((rel, link_info(name, link, link_order(g, name, orders))))
            if recursive and isinstance(link, api.HardLink) and link.token not in seen:
                seen.add(link.token)
                child = state.file.open_node(link.token)
                if is_group(child):
                    visit(child, rel + "/", join(gpath, name), 0)

    try:
        visit(group, "", path, 0 if recursive else start)
    finally:
        visit = None  # it refers to itself: a cycle, holding the file, that only the collector would free
    return NodeHandle(state, group, path, opened_via(h)), items

