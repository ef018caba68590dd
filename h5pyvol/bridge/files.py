"""Files and mounts: the H5F callbacks, capability flags, H5Fmount and H5Funmount.

Owns: creating, opening, closing and deleting connector files by name (one
`FileState` per open file, however many ids refer to it), their access and
creation properties, intent, flushes and SWMR writing, and files mounted on
groups of other files.
"""

from __future__ import annotations

from .. import connector as api
from .. import registry
from .._hdf5 import detach, encode_plist
from ..connector import check_file_name
from .constants import CAP_FLAGS, H5F_ACC_RDWR, H5F_ACC_SWMR_WRITE, H5F_ACC_TRUNC
from .handles import FileHandle, FileState, close, is_group, open_files, opened_via
from .paths import get_link, parent


def cap_flags(spec: str) -> int:
    conn = registry.load(spec)
    flags = CAP_FLAGS["always"]
    for attr, bits in CAP_FLAGS.items():
        if attr != "always" and getattr(conn, attr, False):
            flags |= bits
    return flags



def file_create(spec: str, name: str, flags: int, fcpl: int, fapl: int) -> FileHandle:
    check_file_name(name)
    conn = registry.load(spec)
    if (id(conn), name) in open_files:
        raise OSError(f"file {name!r} is already open, so it cannot be created or truncated")
    fcpl_blob = encode_plist(fcpl) if fcpl > 0 else b""
    file = conn.create(name, overwrite=bool(flags & H5F_ACC_TRUNC), fcpl=fcpl_blob)
    return FileHandle(FileState(conn, file, name, flags | H5F_ACC_RDWR, fapl, fcpl))


def file_open(spec: str, name: str, flags: int, fapl: int) -> FileHandle:
    check_file_name(name)
    conn = registry.load(spec)
    state = open_files.get((id(conn), name))
    if state is not None:
        if flags & H5F_ACC_RDWR and not state.writable:
            raise OSError(f"file {name!r} is already open read-only; it cannot also be opened for writing")
        return FileHandle(state)
    file = conn.open(name, writable=bool(flags & H5F_ACC_RDWR))
    return FileHandle(FileState(conn, file, name, flags, fapl, -1))


file_close = close


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
    return registry.load(spec).exists(check_file_name(name))


def file_delete(spec: str, name: str, fapl: int) -> None:
    check_file_name(name)
    conn = registry.load(spec)
    if (id(conn), name) in open_files:
        raise OSError(f"file {name!r} is open; close it before deleting it")
    conn.delete(name)


def file_is_equal(a, b) -> bool:
    return a.state is b.state


def same_file(h, file_handle, local: bool = False) -> bool:
    """Whether `h` belongs to the file of `file_handle`; with `local`
    (H5F_OBJ_LOCAL), whether it was opened through that very file id."""
    if local and opened_via(h) is not None:
        return opened_via(h) is file_handle
    return h.state is file_handle.state


# ---------------------------------------------------------------- mounts


def _mount_point(h, name: str) -> tuple[FileState, api.Group]:
    """The group `name` names from `h`, in the file that holds it (not the
    root of a file mounted on it)."""
    state, base, path = h.base()
    state, group, gpath, leaf = parent(state, base, path, name)
    link = get_link(group, gpath, leaf)
    if not isinstance(link, api.HardLink):
        raise TypeError(f"{name!r} is a soft, external or user-defined link, not a group to mount on")
    node = state.file.open_node(link.token)
    if not is_group(node):
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
    state.unmount(state.mounts[group.token])

