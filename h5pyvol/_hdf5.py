"""Direct calls into the libhdf5 this process uses, for what h5py does not wrap.

Owns: finding that one libhdf5 (the copy h5py loaded, never a second one),
refusing a plugin built against another libhdf5 (`check_one_libhdf5`),
selecting the h5pyvol connector on a file access property list, asking which
connector an object uses, and (de)serializing property lists and datatypes.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import struct
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5f, h5i, h5p, h5s, h5t, h5z

PLUGIN_DIR = Path(__file__).resolve().parent / "plugin"
CONNECTOR_NAME = "h5pyvol"

_LIBHDF5 = re.compile(r"libhdf5(-[0-9a-f]+)?\.so")
_hid_t = ctypes.c_int64
_herr_t = ctypes.c_int
H5P_DEFAULT = 0


def loaded_libhdf5() -> str:
    """The path of the libhdf5 mapped into this process (the one h5py uses)."""
    candidates = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.rstrip("\n").split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            # libhdf5.so.N, or an h5py wheel's libhdf5-<hash>.so; not libhdf5_hl,
            # libhdf5_tools or libhdf5_test, which are other libraries.
            if _LIBHDF5.match(os.path.basename(path)) and path not in candidates:
                candidates.append(path)
    if not candidates:
        raise RuntimeError("h5py is imported but no libhdf5 is mapped into this process")
    if len(candidates) > 1:
        raise RuntimeError(
            "two HDF5 libraries are loaded in this process, which aborts HDF5: " + ", ".join(candidates)
        )
    return candidates[0]


def elf_dynamic(path: str | os.PathLike) -> tuple[str | None, list[str]]:
    """(DT_SONAME, [DT_NEEDED...]) of a 64-bit little-endian ELF shared object:
    the name the loader knows a library by, and the libraries it loads."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path} is not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for _name, kind, _flags, _addr, offset, size, link, *_ in sections:
        if kind != 6:  # SHT_DYNAMIC; its sh_link is the string table's index
            continue
        strtab = sections[link][4]
        soname, needed = None, []
        for tag, value in struct.iter_unpack("<qQ", data[offset : offset + size]):
            if tag in (1, 14):  # DT_NEEDED, DT_SONAME
                name = data[strtab + value : data.index(b"\0", strtab + value)].decode()
                if tag == 1:
                    needed.append(name)
                else:
                    soname = name
        return soname, needed
    return None, []


def plugin_file() -> Path | None:
    """The installed plugin library, or None if the package was not built."""
    found = sorted(PLUGIN_DIR.glob("libh5pyvol*.so"))
    return found[0] if found else None


def plugin_libhdf5(plugin: Path | None = None) -> str | None:
    """The libhdf5 (by the name the loader matches) the plugin needs."""
    plugin = plugin or plugin_file()
    if plugin is None:
        return None
    return next((n for n in elf_dynamic(plugin)[1] if _LIBHDF5.match(n)), None)


class TwoLibhdf5Error(RuntimeError):
    """h5py and the h5pyvol plugin would use two copies of libhdf5."""


def two_copies_message(h5py_lib: str, plugin: Path, needed: str) -> str:
    """What `h5pyvol info` and `check_one_libhdf5` say about a plugin built
    against another libhdf5 than the one h5py uses."""
    try:
        from . import _build_config as cfg

        built = (f"h5py {cfg.H5PY_VERSION}'s wheel (HDF5 {cfg.HDF5_VERSION})" if cfg.MODE == "wheel"
                 else f"HDF5 {cfg.HDF5_VERSION} at {cfg.HDF5_DIR}")
    except ImportError:
        built = "an unknown HDF5"
    return (
        f"h5py {h5py.version.version} and the h5pyvol plugin would load two different libhdf5 copies:\n"
        f"    h5py:   {os.path.realpath(h5py_lib)} (HDF5 {h5py.version.hdf5_version})\n"
        f"    plugin: {needed}, from {built} ({plugin})\n"
        "  Two copies in one process break HDF5 (errors like \"not a property list\"). Reinstall h5pyvol "
        "in this environment so that it links h5py's libhdf5 (`pip install --force-reinstall --no-deps "
        "--no-cache-dir .` from its source, without HDF5_DIR), or build h5py against the plugin's HDF5 "
        "(HDF5_DIR=... pip install --no-binary=h5py h5py; scripts/bootstrap.sh does that)."
    )


def one_libhdf5_problem(plugin: Path | None = None) -> str | None:
    """Why h5py and the plugin would not share one libhdf5, or None if they would.

    The loader shares a library by name: the plugin's libhdf5 entry must be
    the name (DT_SONAME) of the libhdf5 h5py loaded."""
    try:
        h5py_lib = loaded_libhdf5()
    except RuntimeError as exc:
        return str(exc)
    plugin = plugin or plugin_file()
    needed = plugin_libhdf5(plugin) if plugin else None
    if needed is None:
        return None  # not built, or not linked to a libhdf5: nothing to compare
    have = elf_dynamic(h5py_lib)[0] or os.path.basename(h5py_lib)
    return None if needed == have else two_copies_message(h5py_lib, plugin, needed)


_one_libhdf5_checked = False


def check_one_libhdf5() -> None:
    """Raise TwoLibhdf5Error (with `h5pyvol info`'s message) if loading the
    plugin would map a second libhdf5 into this process."""
    global _one_libhdf5_checked
    if _one_libhdf5_checked:
        return
    problem = one_libhdf5_problem()
    if problem:
        raise TwoLibhdf5Error(problem)
    _one_libhdf5_checked = True


@functools.cache
def lib() -> ctypes.CDLL:
    """ctypes handle on the process's libhdf5, with the signatures used here."""
    h = ctypes.CDLL(loaded_libhdf5())
    sigs = {
        "H5VLregister_connector_by_name": (_hid_t, [ctypes.c_char_p, _hid_t]),
        "H5VLconnector_str_to_info": (_herr_t, [ctypes.c_char_p, _hid_t, ctypes.POINTER(ctypes.c_void_p)]),
        "H5VLfree_connector_info": (_herr_t, [_hid_t, ctypes.c_void_p]),
        "H5VLclose": (_herr_t, [_hid_t]),
        "H5VLget_connector_id_by_name": (_hid_t, [ctypes.c_char_p]),
        "H5VLget_connector_name": (ctypes.c_ssize_t, [_hid_t, ctypes.c_char_p, ctypes.c_size_t]),
        "H5VLobject": (ctypes.c_void_p, [_hid_t]),
        "H5Pget_link_creation_order": (_herr_t, [_hid_t, ctypes.POINTER(ctypes.c_uint)]),
        "H5Pset_vol": (_herr_t, [_hid_t, _hid_t, ctypes.c_void_p]),
        "H5Pencode2": (_herr_t, [_hid_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), _hid_t]),
        "H5Pdecode": (_hid_t, [ctypes.c_void_p]),
        "H5Pget_fill_value": (_herr_t, [_hid_t, _hid_t, ctypes.c_void_p]),
        "H5Pset_fill_value": (_herr_t, [_hid_t, _hid_t, ctypes.c_void_p]),
        "H5free_memory": (_herr_t, [ctypes.c_void_p]),
        "H5Sselect_project_intersection": (_hid_t, [_hid_t, _hid_t, _hid_t]),
        "H5Dread": (_herr_t, [_hid_t, _hid_t, _hid_t, _hid_t, _hid_t, ctypes.c_void_p]),
        "H5Dwrite": (_herr_t, [_hid_t, _hid_t, _hid_t, _hid_t, _hid_t, ctypes.c_void_p]),
        "H5Dfill": (_herr_t, [ctypes.c_void_p, _hid_t, ctypes.c_void_p, _hid_t, _hid_t]),
        "H5Pget_elink_fapl": (_hid_t, [_hid_t]),
        "H5Pget_vol_id": (_herr_t, [_hid_t, ctypes.POINTER(_hid_t)]),
        "H5Pget_vol_info": (_herr_t, [_hid_t, ctypes.POINTER(ctypes.c_void_p)]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(h, name)
        fn.restype, fn.argtypes = restype, argtypes
    return h


def _check(result: int, what: str) -> int:
    if result < 0:
        raise RuntimeError(f"HDF5 call {what} failed")
    return result


def ensure_plugin_path() -> None:
    """Let HDF5 find the plugin without HDF5_PLUGIN_PATH being set."""
    wanted = str(PLUGIN_DIR)
    from h5py import h5pl

    if wanted not in (h5pl.get(i).decode() for i in range(h5pl.size())):
        h5pl.append(wanted.encode())


def register_plugin() -> int:
    """Have HDF5 load the plugin (if it has not yet) and register its
    connector; returns a connector id for the caller to close. Refused
    (TwoLibhdf5Error) where that would map a second libhdf5."""
    check_one_libhdf5()
    ensure_plugin_path()
    conn = lib().H5VLregister_connector_by_name(CONNECTOR_NAME.encode(), H5P_DEFAULT)
    if conn < 0:
        raise OSError(
            f"HDF5 cannot load the h5pyvol plugin from {PLUGIN_DIR} "
            f"(is the package built against this HDF5, {loaded_libhdf5()}?)"
        )
    return conn


def set_connector(fapl: h5p.PropFAID, spec: str) -> None:
    """Make `fapl` select the h5pyvol connector with the connector string `spec`."""
    h = lib()
    conn = register_plugin()
    info = ctypes.c_void_p()
    try:
        _check(h.H5VLconnector_str_to_info(spec.encode(), conn, ctypes.byref(info)), "H5VLconnector_str_to_info")
        try:
            _check(h.H5Pset_vol(fapl.id, conn, info), "H5Pset_vol")
        finally:
            h.H5VLfree_connector_info(conn, info)
    finally:
        h.H5VLclose(conn)


def elink_fapl(lapl_id: int) -> h5p.PropFAID | None:
    """The file access properties that link access properties give files
    opened through external links (H5Pset_elink_fapl), or None if not set."""
    fapl = _check(lib().H5Pget_elink_fapl(lapl_id), "H5Pget_elink_fapl")
    return h5p.PropFAID(fapl) if fapl > 0 else None  # H5P_DEFAULT when unset


def with_vol_of(fapl: h5p.PropFAID, source: h5p.PropFAID) -> h5p.PropFAID:
    """A copy of `fapl` that selects the VOL connector (with its info) of `source`."""
    h = lib()
    copy = fapl.copy()
    vol = _hid_t()
    _check(h.H5Pget_vol_id(source.id, ctypes.byref(vol)), "H5Pget_vol_id")
    info = ctypes.c_void_p()
    try:
        _check(h.H5Pget_vol_info(source.id, ctypes.byref(info)), "H5Pget_vol_info")
        try:
            _check(h.H5Pset_vol(copy.id, vol.value, info), "H5Pset_vol")
        finally:
            if info.value:
                h.H5VLfree_connector_info(vol.value, info)
    finally:
        h.H5VLclose(vol.value)
    return copy


def connector_name(obj: h5py.h5i.ObjectID | int) -> str:
    """The name of the VOL connector serving an HDF5 object (e.g. "h5pyvol", "native")."""
    ident = obj if isinstance(obj, int) else obj.id
    buf = ctypes.create_string_buffer(256)
    _check(lib().H5VLget_connector_name(ident, buf, len(buf)), "H5VLget_connector_name")
    return buf.value.decode()


def connector_string_of(file: h5py.File) -> str | None:
    """The h5pyvol connector string an open file uses (``"memory"``,
    ``"s3;bucket=b"``...), or None for a file another connector serves. The
    plugin's connector info is a struct whose first member is that string."""
    if connector_name(file.id) != CONNECTOR_NAME:
        return None
    h = lib()
    fapl = file.id.get_access_plist()
    conn = ctypes.c_int64(-1)
    info = ctypes.c_void_p()
    if h.H5Pget_vol_id(fapl.id, ctypes.byref(conn)) < 0:
        raise RuntimeError(f"HDF5 cannot tell the connector of {file!r}")
    try:
        if h.H5Pget_vol_info(fapl.id, ctypes.byref(info)) < 0 or not info.value:
            return "memory"  # no info: the default connector string
        try:
            return ctypes.cast(info, ctypes.POINTER(ctypes.c_char_p))[0].decode() or "memory"
        finally:
            h.H5VLfree_connector_info(conn.value, info)
    finally:
        h.H5VLclose(conn.value)


def encode_plist(plist_id: int) -> bytes:
    """HDF5's own serialization of a property list (H5Pencode)."""
    h = lib()
    size = ctypes.c_size_t(0)
    _check(h.H5Pencode2(plist_id, None, ctypes.byref(size), H5P_DEFAULT), "H5Pencode2")
    buf = ctypes.create_string_buffer(size.value)
    _check(h.H5Pencode2(plist_id, buf, ctypes.byref(size), H5P_DEFAULT), "H5Pencode2")
    return buf.raw[: size.value]


_scratch_files = iter(range(1 << 62))


def native_scratch_file() -> h5f.FileID:
    """A new native HDF5 file in memory (core driver, no backing store),
    whatever connector HDF5_VOL_CONNECTOR names."""
    h = lib()
    native = h.H5VLget_connector_id_by_name(b"native")
    if native < 0:
        raise OSError("HDF5's native connector is not registered")
    fapl = h5p.create(h5p.FILE_ACCESS)
    try:
        fapl.set_fapl_core(backing_store=False)
        _check(h.H5Pset_vol(fapl.id, native, None), "H5Pset_vol")
    finally:
        h.H5VLclose(native)
    return h5f.create(f"h5pyvol-scratch-{next(_scratch_files)}".encode(), h5f.ACC_EXCL, fapl=fapl)


# Filters that change the values they store: a connector keeps elements, so
# the bridge has native HDF5 apply these to what it writes.
LOSSY_FILTERS = frozenset({h5z.FILTER_SCALEOFFSET})


@functools.lru_cache(maxsize=256)
def has_lossy_filter(dcpl: bytes) -> bool:
    """Whether the encoded dataset creation properties hold a lossy filter."""
    if not dcpl or not is_dcpl(dcpl):
        return False
    plist = decode_plist(dcpl)
    return any(plist.get_filter(i)[0] in LOSSY_FILTERS for i in range(plist.get_nfilters()))


def through_native_filters(dcpl: bytes, type_id: int, shape: tuple[int, ...], boxes: list, arrays: list) -> list:
    """Each array as native HDF5 stores it at its box ``(start, stop)`` of a
    dataset with these creation properties, `shape` and file type, read
    back: what a lossy filter (scale-offset) keeps of it. (What a native
    file gives back while the chunk is still in its chunk cache is the
    unfiltered value; once the file is reopened, this.)"""
    fid = native_scratch_file()
    try:
        tid = borrow(type_id, h5t.typewrap).copy()
        plist = decode_dcpl(dcpl, type_id)
        dapl = h5p.create(h5p.DATASET_ACCESS)
        dapl.set_chunk_cache(0, 0, 1.0)  # no chunk cache: every chunk goes through the filters both ways
        dset = h5d.create(fid, b"d", tid, h5s.create_simple(shape, shape), dcpl=plist, dapl=dapl)
        for (start, stop), data in zip(boxes, arrays, strict=True):
            fspace = dset.get_space()
            fspace.select_hyperslab(tuple(start), tuple(b - a for a, b in zip(start, stop, strict=True)))
            dset.write(h5s.create_simple(data.shape), fspace, np.ascontiguousarray(data))
        out = []
        for (start, stop), data in zip(boxes, arrays, strict=True):
            fspace = dset.get_space()
            fspace.select_hyperslab(tuple(start), tuple(b - a for a, b in zip(start, stop, strict=True)))
            back = np.empty_like(data)
            dset.read(h5s.create_simple(back.shape), fspace, back)
            out.append(back)
        return out
    finally:
        fid.close()


def filters_as_created(plist: h5p.PropDCID, type_id: int, space_id: int) -> h5p.PropDCID:
    """`plist` with its filters' parameters as native HDF5 completes them when
    it creates a dataset: each filter's "set local" step adds what it needs
    from the type and shape (shuffle, for one, the element size), and
    H5Pget_filter2 on the dataset's creation properties reports the result.

    HDF5 offers no call for that step alone, so a dataset with the same type,
    shape and filters is created in a native in-memory file that never
    touches the disk. Filters native HDF5 cannot set up (not registered
    here) are left as given.
    """
    if plist.get_nfilters() == 0:
        return plist
    try:
        fid = native_scratch_file()
    except Exception:
        return plist
    try:
        trial = plist.copy()
        trial.set_alloc_time(h5d.ALLOC_TIME_LATE)  # nothing to allocate: only the properties matter
        space = borrow(space_id, h5s.SpaceID)
        created = h5d.create(fid, b"d", borrow(type_id, h5t.typewrap).copy(), space, dcpl=trial).get_create_plist()
    except Exception:
        return plist  # e.g. a filter this HDF5 does not have
    finally:
        fid.close()
    result = plist.copy()
    result.remove_filter(h5z.FILTER_ALL)
    for i in range(created.get_nfilters()):
        code, flags, values, _ = created.get_filter(i)
        result.set_filter(code, flags, values)
    return result


def encode_dcpl(dcpl_id: int, type_id: int) -> bytes:
    """Dataset creation properties as bytes that stay valid in any process.

    H5Pencode stores a fill value's raw memory, so a fill value of a
    variable-length type would be stored as a pointer. As native HDF5 does at
    dataset creation, the fill value is first converted to the dataset's own
    type. A variable-length string is kept as a fixed-length string of its
    bytes instead (`decode_dcpl` puts it back); for other types that hold
    pointers the fill value is left undefined.

    Also as native HDF5 does: a variable-length type with the default fill
    value gets fill time H5D_FILL_TIME_ALLOC instead of _IFSET.
    """
    from .datatypes import has_vlen

    plist = borrow(dcpl_id, h5p.PropDCID)
    ftype = borrow(type_id, h5t.typewrap)
    status = plist.fill_value_defined()
    if has_vlen(ftype):
        if plist.get_fill_time() == h5d.FILL_TIME_IFSET and status == h5d.FILL_VALUE_DEFAULT:
            plist = plist.copy()
            plist.set_fill_time(h5d.FILL_TIME_ALLOC)
    if status != h5d.FILL_VALUE_USER_DEFINED:
        return encode_plist(plist.id)
    h = lib()
    copy = plist.copy()
    if _is_vlen_string(ftype):
        pointer = ctypes.c_void_p()
        _check(h.H5Pget_fill_value(dcpl_id, type_id, ctypes.byref(pointer)), "H5Pget_fill_value")
        value = ctypes.string_at(pointer.value) if pointer.value else b""
        if pointer.value:
            h.H5free_memory(pointer)
        fixed = _fixed_string(len(value), ftype.get_cset())
        _check(h.H5Pset_fill_value(copy.id, fixed.id, ctypes.create_string_buffer(value, fixed.get_size())),
               "H5Pset_fill_value")
    elif _holds_pointers(ftype):
        _check(h.H5Pset_fill_value(copy.id, type_id, None), "H5Pset_fill_value")
    else:
        value = ctypes.create_string_buffer(ftype.get_size())
        _check(h.H5Pget_fill_value(dcpl_id, type_id, value), "H5Pget_fill_value")
        _check(h.H5Pset_fill_value(copy.id, type_id, value), "H5Pset_fill_value")
    return encode_plist(copy.id)


def decode_dcpl(blob: bytes, type_id: int) -> h5p.PropDCID:
    """The dataset creation properties `encode_dcpl` stored, as HDF5 would
    return them for a dataset of type `type_id`."""
    plist = decode_plist(blob)
    ftype = borrow(type_id, h5t.typewrap)
    if _is_vlen_string(ftype) and plist.fill_value_defined() == h5d.FILL_VALUE_USER_DEFINED:
        value = ctypes.c_char_p(string_fill(plist, len(blob), ftype.get_cset()))
        _check(lib().H5Pset_fill_value(plist.id, type_id, ctypes.byref(value)), "H5Pset_fill_value")  # copies it
    return plist


def string_fill(plist: h5p.PropDCID, limit: int, cset: int) -> bytes:
    """The bytes of a variable-length string fill value kept by `encode_dcpl`
    (at most `limit` of them: the length of the serialized properties)."""
    fixed = _fixed_string(limit, cset)
    buf = ctypes.create_string_buffer(fixed.get_size())
    _check(lib().H5Pget_fill_value(plist.id, fixed.id, buf), "H5Pget_fill_value")
    return buf.raw.rstrip(b"\0")  # HDF5's variable-length strings end at their first NUL


def _fixed_string(length: int, cset: int) -> h5t.TypeID:
    fixed = h5t.C_S1.copy()
    fixed.set_size(max(length, 1))
    fixed.set_strpad(h5t.STR_NULLPAD)
    fixed.set_cset(cset)
    return fixed


def _is_vlen_string(tid: h5t.TypeID) -> bool:
    return tid.get_class() == h5t.STRING and tid.is_variable_str()


def _holds_pointers(tid: h5t.TypeID) -> bool:
    from .datatypes import has_vlen

    return has_vlen(tid) or tid.detect_class(h5t.REFERENCE)


def decode_plist(blob: bytes, cls: type = h5p.PropDCID) -> h5p.PropID:
    """A new property list (an h5py `cls`) from `encode_plist` bytes."""
    buf = ctypes.create_string_buffer(blob, len(blob))
    return cls(_check(lib().H5Pdecode(buf), "H5Pdecode"))


def decode_type(blob: bytes) -> h5t.TypeID:
    """A new datatype from H5Tencode bytes (H5R_ref_t located in memory: see
    `datatypes.with_memory_refs`)."""
    from .datatypes import with_memory_refs

    return with_memory_refs(h5t.decode(blob))


def borrow(ident: int, wrap):
    """An h5py object for an id HDF5 lent us: it gets its own reference, so
    h5py closing its object leaves the lender's id alive."""
    obj = wrap(ident)
    h5i.inc_ref(obj)
    return obj


def detach(obj) -> int:
    """The id of an h5py object, with a reference for the caller to keep."""
    h5i.inc_ref(obj)
    return obj.id


@functools.lru_cache(maxsize=256)
def is_dcpl(blob: bytes) -> bool:
    """Whether serialized creation properties are a dataset's (an attribute's
    are kept in the same place: `ArrayMeta.dcpl`)."""
    plist = decode_plist(blob, h5p.PropInstanceID)
    return bool(plist.get_class().equal(h5p.DATASET_CREATE))


@functools.lru_cache(maxsize=256)
def dcpl_chunks(dcpl: bytes) -> tuple[int, ...] | None:
    """The chunk shape of serialized dataset creation properties, or None."""
    plist = decode_plist(dcpl)
    if plist.get_layout() != h5d.CHUNKED:
        return None
    return tuple(int(c) for c in plist.get_chunk())


@functools.lru_cache(maxsize=256)
def tracks_link_order(gcpl: bytes) -> bool:
    """Whether serialized group (or file) creation properties ask HDF5 to
    track link creation order (H5Pset_link_creation_order)."""
    if not gcpl:
        return False
    plist = decode_plist(gcpl, h5p.PropID)
    flags = ctypes.c_uint()
    _check(lib().H5Pget_link_creation_order(plist.id, ctypes.byref(flags)), "H5Pget_link_creation_order")
    return bool(flags.value & h5p.CRT_ORDER_TRACKED)


@functools.lru_cache(maxsize=256)
def dcpl_layout(dcpl: bytes) -> int:
    """The layout (h5d.CONTIGUOUS, CHUNKED, COMPACT...) of serialized dcpl bytes."""
    return decode_plist(dcpl).get_layout()


def dcpl_fill_value(dcpl: bytes, meta) -> np.generic | None:
    """The user-defined fill value, as an element of meta.dtype; None for the
    default, and for fill time "never" (HDF5 then leaves unwritten elements
    undefined: they read as zeros)."""
    return _fill_value(dcpl, meta.hdf5_type, meta.dtype)


@functools.lru_cache(maxsize=256)
def _fill_value(dcpl: bytes, hdf5_type: bytes, dtype: np.dtype) -> np.generic | None:
    """`dcpl_fill_value`, worked out once per creation properties and type."""
    plist = decode_plist(dcpl)
    if plist.fill_value_defined() != h5d.FILL_VALUE_USER_DEFINED or plist.get_fill_time() == h5d.FILL_TIME_NEVER:
        return None
    if dtype.hasobject:
        ftype = decode_type(hdf5_type)
        if not _is_vlen_string(ftype):
            return None  # other variable-length fill values are not kept
        value = string_fill(plist, len(dcpl), ftype.get_cset())
        kind = dtype.metadata.get("vlen") if dtype.metadata else None
        return value.decode("utf-8", "surrogateescape") if kind is str else value
    value = np.zeros((1,), dtype=dtype)
    plist.get_fill_value(value)
    return value[0]
