"""The pass-through connector: h5pyvol over real, native HDF5 files.

Every connector call is forwarded to HDF5's own native VOL connector on a
file underneath, through h5py's low-level API (`h5py.h5f`, `h5g`, `h5d`,
`h5a`, `h5t`, `h5o`, `h5l`, `h5s`, `h5p`) and, for the few calls h5py does not
wrap, ctypes on the same libhdf5. What a program writes through
``HDF5_VOL_CONNECTOR="h5pyvol passthru"`` is therefore an ordinary HDF5 file
that plain h5py, h5dump or a C program read without h5pyvol: the connector
proves that Python can add behaviour (here: tracing) on top of real HDF5.

Owns: mapping connector file names to native paths (option ``root``),
opening native files with a file access property list that forces the
native connector (without it, ``HDF5_VOL_CONNECTOR`` would route the inner
open back into h5pyvol), node tokens (the native object address, 7 bytes),
references in native files (object references as native addresses; the
others as tagged opaque values), blobs (unlinked native datasets),
the translation of links, attributes, datasets (selections become native
dataspace selections) and committed datatypes into native calls, and the
call trace (option ``trace``).

Options (strings):

- ``root=DIR``: file names are relative to DIR and may not leave it.
  Without it, names are paths as HDF5 would take them (relative to the
  current directory).
- ``trace=1`` (or ``stderr``, ``yes``, ``true``): log every connector call,
  its arguments, its result and its duration to stderr; ``trace=PATH`` (a
  path with a ``/``, e.g. ``./calls.log``) appends the log to PATH.
  ``trace=0`` (the default; also ``no``, ``false``) logs nothing. Other
  values are refused.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import gc
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Any

import numpy as np
from h5py import h5, h5a, h5d, h5f, h5g, h5i, h5l, h5o, h5p, h5s, h5t

from h5pyvol import connector as api
from h5pyvol import datatypes
from h5pyvol._hdf5 import decode_plist, encode_dcpl, encode_plist, loaded_libhdf5
from h5pyvol.selection import Selection

H5P_DEFAULT = 0
_hid_t = ctypes.c_int64
_herr_t = ctypes.c_int


class _Token(ctypes.Structure):
    """HDF5's H5O_token_t: 16 opaque bytes, passed by value."""

    _fields_ = [("data", ctypes.c_uint8 * 16)]


class _GroupInfo(ctypes.Structure):
    """HDF5's H5G_info_t."""

    _fields_ = [("storage_type", ctypes.c_int), ("nlinks", ctypes.c_uint64), ("max_corder", ctypes.c_int64),
                ("mounted", ctypes.c_bool)]


@functools.cache
def _lib() -> ctypes.PyDLL:
    """The process's libhdf5 (the one h5py uses), for calls h5py does not wrap.

    A PyDLL of our own: its function objects (and their signatures) are not
    shared with other modules, and the GIL stays held, as h5py holds it.
    """
    h = ctypes.PyDLL(loaded_libhdf5())
    sigs = {
        "H5VLget_connector_id_by_name": (_hid_t, [ctypes.c_char_p]),
        "H5VLclose": (_herr_t, [_hid_t]),
        "H5Pset_vol": (_herr_t, [_hid_t, _hid_t, ctypes.c_void_p]),
        "H5VLnative_addr_to_token": (_herr_t, [_hid_t, ctypes.c_uint64, ctypes.POINTER(_Token)]),
        "H5Oopen_by_token": (_hid_t, [_hid_t, _Token]),
        "H5Oincr_refcount": (_herr_t, [_hid_t]),
        "H5Odecr_refcount": (_herr_t, [_hid_t]),
        "H5Oflush": (_herr_t, [_hid_t]),
        "H5Orefresh": (_herr_t, [_hid_t]),
        "H5Tcommit_anon": (_herr_t, [_hid_t, _hid_t, _hid_t, _hid_t]),
        "H5Tget_create_plist": (_hid_t, [_hid_t]),
        "H5Pget_attr_creation_order": (_herr_t, [_hid_t, ctypes.POINTER(ctypes.c_uint)]),
        "H5Pclose": (_herr_t, [_hid_t]),
        "H5Treclaim": (_herr_t, [_hid_t, _hid_t, _hid_t, ctypes.c_void_p]),
        "H5Dread": (_herr_t, [_hid_t, _hid_t, _hid_t, _hid_t, _hid_t, ctypes.c_void_p]),
        "H5Dwrite": (_herr_t, [_hid_t, _hid_t, _hid_t, _hid_t, _hid_t, ctypes.c_void_p]),
        "H5Aread": (_herr_t, [_hid_t, _hid_t, ctypes.c_void_p]),
        "H5Awrite": (_herr_t, [_hid_t, _hid_t, ctypes.c_void_p]),
        "H5Lcreate_ud": (_herr_t, [_hid_t, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                                   _hid_t, _hid_t]),
        "H5Lget_val": (_herr_t, [_hid_t, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, _hid_t]),
        "H5Fis_accessible": (_herr_t, [ctypes.c_char_p, _hid_t]),
        "H5Fdelete": (_herr_t, [ctypes.c_char_p, _hid_t]),
        "H5atclose": (_herr_t, [ctypes.c_void_p, ctypes.c_void_p]),
        "H5Pcreate": (_hid_t, [_hid_t]),
        "H5Pset_attr_creation_order": (_herr_t, [_hid_t, ctypes.c_uint]),
        "H5Gget_info": (_herr_t, [_hid_t, ctypes.POINTER(_GroupInfo)]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(h, name)
        fn.restype, fn.argtypes = restype, argtypes
    return h


def _hid_variable(name: str) -> int:
    """The value of one of libhdf5's global hid_t variables (H5P_CLS_..._ID_g).

    Looked up in the program's global scope first: a C program that uses the
    variable has its own copy (a copy relocation) that libhdf5 itself then
    uses, and the library's original is never set.
    """
    try:
        return ctypes.c_int64.in_dll(ctypes.CDLL(None), name).value
    except ValueError:  # libhdf5 is not global (Python loaded it): only the library has it
        return ctypes.c_int64.in_dll(_lib(), name).value


def _check(result: int, what: str) -> int:
    if result < 0:
        raise RuntimeError(f"native HDF5 call {what} failed")
    return result


def native_fapl() -> h5p.PropFAID:
    """A file access property list that selects HDF5's native VOL connector.

    A new list copies the default one, which names h5pyvol itself when
    HDF5_VOL_CONNECTOR is set: the inner file would recurse into us.
    """
    fapl = h5p.create(h5p.FILE_ACCESS)
    h = _lib()
    native = _check(h.H5VLget_connector_id_by_name(b"native"), "H5VLget_connector_id_by_name")
    try:
        _check(h.H5Pset_vol(fapl.id, native, None), "H5Pset_vol")
    finally:
        h.H5VLclose(native)
    # Closing the file closes what is still open in it, as h5py does: the
    # bridge closes a file only once no handle of the program refers to it.
    fapl.set_fclose_degree(h5f.CLOSE_STRONG)
    return fapl


# ---------------------------------------------------------------- shutdown

_open_files: weakref.WeakSet[PassthruFile] = weakref.WeakSet()
_AtClose = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_atclose_callbacks: list[Any] = []  # HDF5 keeps only the C pointer: the ctypes object must live


def _close_native_files(_context: int | None) -> None:
    """Close every native file (and all its objects) before HDF5 shuts down.

    HDF5's shutdown closes the program's leftover ids in sweeps, during which
    a closed id stays findable until the sweep ends. Closing a leftover
    h5pyvol object drops our h5py objects, and h5py would close their
    native ids a second time. Closed here first, they are gone for good.
    """
    for file in list(_open_files):
        file._close_native()


@functools.cache
def _close_before_hdf5_shutdown() -> None:
    # Only where a C program hosts the interpreter: there HDF5 shuts down
    # first (at H5close or exit) while Python still runs. Where Python is the
    # program, Python finalizes (and frees our objects) before HDF5's atexit,
    # and a Python callback would then run without an interpreter.
    if os.path.realpath("/proc/self/exe") == os.path.realpath(sys.executable):
        return
    callback = _AtClose(_close_native_files)
    _check(_lib().H5atclose(ctypes.cast(callback, ctypes.c_void_p), None), "H5atclose")
    _atclose_callbacks.append(callback)


def _name(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _lcpl(name: str) -> h5p.PropID | None:
    """Link creation properties that record a non-ASCII name as UTF-8."""
    if name.isascii():
        return None
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_char_encoding(h5t.CSET_UTF8)
    return lcpl


def _space(meta: api.ArrayMeta) -> h5s.SpaceID:
    if meta.null:
        return h5s.create(h5s.NULL)
    if not meta.shape:
        return h5s.create(h5s.SCALAR)
    maxdims = None
    if meta.maxshape is not None:
        maxdims = tuple(h5s.UNLIMITED if m is None else m for m in meta.maxshape)
    return h5s.create_simple(meta.shape, maxdims)


def _committed_token(tid: h5t.TypeID) -> bytes:
    """The token (address) of the committed datatype a native object's type is, else b""."""
    return _token(h5o.get_info(tid).addr) if tid.committed() else b""


def _meta_of(tid: h5t.TypeID, space: h5s.SpaceID, dcpl: bytes = b"") -> api.ArrayMeta:
    """An ArrayMeta describing a native dataset's or attribute's type and space."""
    committed = _committed_token(tid)
    if space.get_simple_extent_type() == h5s.NULL:
        return api.ArrayMeta(_logical_type(tid).encode(), (), None, dcpl, True, committed)
    shape = tuple(int(d) for d in space.shape)
    maxshape = None
    if shape:
        dims = tuple(int(d) for d in space.get_simple_extent_dims(True))
        if dims != shape:  # None unless the space can change, as the bridge builds it
            maxshape = tuple(None if d == h5s.UNLIMITED else d for d in dims)
    return api.ArrayMeta(_logical_type(tid).encode(), shape, maxshape, dcpl, False, committed)


def _mem_space(shape: tuple[int, ...]) -> h5s.SpaceID:
    return h5s.create_simple(shape) if shape else h5s.create(h5s.SCALAR)


def _select(space: h5s.SpaceID, sel: Selection) -> None:
    """Make `space` (the dataset's extent) select what `sel` selects, in the same element order."""
    if sel.kind == "all":
        space.select_all()
        return
    if sel.kind == "none":
        space.select_none()
        return
    if sel.kind == "points":  # a point list keeps its order and duplicates natively too
        space.select_elements(np.ascontiguousarray(sel.coords(), dtype=np.uint64))
        return
    index = sel.index
    if all(isinstance(i, slice) for i in index):  # a regular hyperslab: one call
        ranges = [range(*i.indices(n)) for i, n in zip(index, sel.shape, strict=True)]
        space.select_hyperslab(tuple(r.start for r in ranges), tuple(len(r) for r in ranges),
                               tuple(r.step for r in ranges))
        return
    # Boxes come in HDF5's element order; their union is visited in row-major order natively.
    op = h5s.SELECT_SET
    for start, shape in sel.blocks():
        space.select_hyperslab(start, (1,) * len(shape), None, shape, op)
        op = h5s.SELECT_OR


# ---------------------------------------------------------------- tokens and references
#
# A token is the object's native address, 7 bytes little-endian (files up to
# 64 PiB): short enough for HDF5 1.10-style object references (hobj_ref_t),
# which h5pyvol makes as a length byte and the token (csrc/compat.c). So
# dimension scales and h5py's object references work, and passthru stores
# them as the native addresses they stand for: the native file holds real
# references, which native HDF5 and h5py follow. The references only h5pyvol
# can resolve (HDF5 1.12-style H5R_ref_t in h5pyvol's stored form, and
# 1.10-style region references, which name a blob) are stored as opaque
# values tagged as such, and come back as the reference types they were.

_TOKEN_BYTES = 7
_REF_TAG, _REGION_TAG = b"h5pyvol H5R_ref_t", b"h5pyvol hdset_reg_ref_t"


_OBJECT1, _REGION1 = 0, 1  # H5R_type_t of 1.10-style object and region references


def _ref_type(tid: h5t.TypeID) -> int:
    """The H5R_type_t of a reference type, from its datatype message (H5Tencode: 2
    bytes of header, then the class and version byte and the class bit field,
    whose low 4 bits are the reference type; HDF5's file format). Equality with
    h5py's STD_REF_OBJ depends on where the type is located; this does not."""
    return tid.encode()[3] & 0x0F


@functools.cache
def _std_ref() -> h5t.TypeID:
    """HDF5's H5T_STD_REF (h5py has no constant for it)."""
    h = _lib()
    h.H5Tcopy.restype, h.H5Tcopy.argtypes = _hid_t, [_hid_t]
    return h5t.typewrap(_check(h.H5Tcopy(_hid_variable("H5T_STD_REF_g")), "H5Tcopy(H5T_STD_REF)"))


def _token(addr: int) -> bytes:
    if addr >> (8 * _TOKEN_BYTES):
        raise OverflowError(f"native address {addr} does not fit a passthru token of {_TOKEN_BYTES} bytes")
    return addr.to_bytes(_TOKEN_BYTES, "little")


def _address(token: bytes) -> int:
    return int.from_bytes(token, "little")


def _native_type(tid: h5t.TypeID) -> h5t.TypeID:
    """`tid` as stored natively: references only h5pyvol resolves become tagged opaque values."""
    if not tid.detect_class(h5t.REFERENCE):
        return tid
    cls = tid.get_class()
    if cls == h5t.REFERENCE:
        if _ref_type(tid) == _OBJECT1:
            return tid
        region = _ref_type(tid) == _REGION1
        opaque = h5t.create(h5t.OPAQUE, 12 if region else datatypes.REF_DTYPE.itemsize)
        opaque.set_tag(_REGION_TAG if region else _REF_TAG)
        return opaque
    return _rebuilt(tid, _native_type)


def _logical_type(tid: h5t.TypeID) -> h5t.TypeID:
    """The type `_native_type` stored as `tid`. Object references come back
    as HDF5's own type, not located in the native file: h5pyvol converts
    them in memory."""
    if not (tid.detect_class(h5t.OPAQUE) or tid.detect_class(h5t.REFERENCE)):
        return tid
    cls = tid.get_class()
    if cls == h5t.REFERENCE:  # a native file's own region and H5R_ref_t references stay as they are
        kind = _ref_type(tid)
        return h5t.STD_REF_OBJ if kind == _OBJECT1 else h5t.STD_REF_DSETREG if kind == _REGION1 else _std_ref()
    if cls == h5t.OPAQUE:
        tag = tid.get_tag()
        return _std_ref() if tag == _REF_TAG else h5t.STD_REF_DSETREG if tag == _REGION_TAG else tid
    return _rebuilt(tid, _logical_type)


def _rebuilt(tid: h5t.TypeID, each) -> h5t.TypeID:
    """A compound, array or variable-length type with `each` applied to its parts (same layout)."""
    cls = tid.get_class()
    if cls == h5t.VLEN:
        return h5t.vlen_create(each(tid.get_super()))
    if cls == h5t.ARRAY:
        return h5t.array_create(each(tid.get_super()), tid.get_array_dims())
    if cls == h5t.COMPOUND:
        new = h5t.create(h5t.COMPOUND, tid.get_size())
        for i in range(tid.get_nmembers()):
            new.insert(tid.get_member_name(i), tid.get_member_offset(i), each(tid.get_member_type(i)))
        return new
    return tid


def _object_refs(tid: h5t.TypeID, data: np.ndarray, to_native: bool) -> np.ndarray:
    """`data` (elements of native type `tid`) with each 1.10-style object
    reference in it turned into a native address (`to_native`) or back into
    h5pyvol's form (a length byte and the token); `data` itself if none."""
    if not tid.detect_class(h5t.REFERENCE):
        return data
    cls = tid.get_class()
    if cls == h5t.REFERENCE:
        if _ref_type(tid) != _OBJECT1:
            return data  # a native file's own region or H5R_ref_t references: as they are
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1, 8)
        out = np.zeros_like(raw)
        if to_native:
            tag = raw[:, 0]
            if np.any((tag != 0) & (tag != _TOKEN_BYTES)):
                raise ValueError("an object reference that does not name an object of a passthru file")
            out[:, :_TOKEN_BYTES] = raw[:, 1:]
            out[tag == 0] = 0
        else:
            if np.any(raw[:, _TOKEN_BYTES:] != 0):
                raise ValueError("a native object reference beyond the addresses passthru tokens hold")
            named = np.any(raw != 0, axis=1)
            out[named, 0] = _TOKEN_BYTES
            out[named, 1:] = raw[named, :_TOKEN_BYTES]
        return out.view(data.dtype if data.dtype.itemsize == 8 else np.dtype("V8")).reshape(data.shape)
    if cls == h5t.COMPOUND:
        out = data.copy()
        for i in range(tid.get_nmembers()):
            name = tid.get_member_name(i).decode()
            out[name] = _object_refs(tid.get_member_type(i), data[name], to_native)
        return out
    if cls == h5t.ARRAY:
        return _object_refs(tid.get_super(), data, to_native)
    if cls == h5t.VLEN:
        out = np.empty(data.shape, object)
        for i, seq in np.ndenumerate(data):
            out[i] = _object_refs(tid.get_super(), seq, to_native)
        return out
    return data


def _reclaim(tid: h5t.TypeID, raw: np.ndarray, count: int) -> None:
    """Free the variable-length memory that `count` elements of `tid` in `raw` point to."""
    space = h5s.create_simple((count,))
    _check(_lib().H5Treclaim(tid.id, space.id, H5P_DEFAULT, raw.ctypes.data), "H5Treclaim")


# ---------------------------------------------------------------- tracing


class Tracer:
    """Writes one line per connector call: what was called, with what, what it gave, how long it took."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._stream: IO[str] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _out(self) -> IO[str]:
        if self.target == "stderr":
            return sys.stderr
        if self._stream is None:  # opened on first use: a connector may never be used
            self._stream = open(self.target, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        return self._stream

    def record(self, call: str, args: tuple, kwargs: dict, outcome: str, seconds: float) -> None:
        shown = ", ".join([_show(a) for a in args] + [f"{k}={_show(v)}" for k, v in kwargs.items()])
        line = f"passthru: {seconds * 1e3:9.3f} ms  {call}({shown}) {outcome}\n"
        with self._lock:
            if self._closed:
                return
            out = self._out()
            out.write(line)
            out.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._stream is not None:
                self._stream.close()
                self._stream = None


def _tracer(trace: str) -> Tracer | None:
    """The tracer option ``trace`` asks for: None for 0/no/false/off (or
    empty), stderr for 1/yes/true/on/stderr, else a file, named by a path
    with a '/' in it (so that a mistyped word is not taken for a file name)."""
    word = trace.strip().lower()
    if word in ("", "0", "no", "false", "off"):
        return None
    if word in ("1", "yes", "true", "on", "stderr"):
        return Tracer("stderr")
    if "/" not in trace:
        raise ValueError(f"passthru option trace={trace!r} is not 1 (stderr), 0 or a path to a log file "
                         f"(a path has a '/': trace=./{trace} for a file here)")
    return Tracer(trace)


def _show(value: Any, limit: int = 160) -> str:
    """A short, cheap description of an argument or result for the trace."""
    if isinstance(value, api.HardLink) and len(value.token) == _TOKEN_BYTES:
        text = f"HardLink({_show(value.token)})"
    elif isinstance(value, bytes) and len(value) == _TOKEN_BYTES:  # a token: the native object's address
        text = f"@{_address(value)}"
    elif isinstance(value, bytes | bytearray) and len(value) > 24:
        text = f"<{len(value)} bytes>"
    elif isinstance(value, np.ndarray):
        text = f"array(shape={value.shape}, dtype={value.dtype})"
    elif isinstance(value, api.ArrayMeta):
        text = f"ArrayMeta(shape={value.shape}, maxshape={value.maxshape}, null={value.null})"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _traced(attr: str, fn):
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        tracer = self._tracer
        start = time.perf_counter()
        try:
            result = fn(self, *args, **kwargs)
        except BaseException as exc:
            _collect_before_raising()
            if tracer is not None:
                message = " ".join(str(exc).split())
                tracer.record(f"{type(self).__name__}.{attr}", (self, *args), kwargs,
                              f"raised {type(exc).__name__}: {message}", time.perf_counter() - start)
            raise
        if tracer is not None:
            tracer.record(f"{type(self).__name__}.{attr}", (self, *args), kwargs, f"-> {_show(result)}",
                          time.perf_counter() - start)
        return result

    return wrapper


def _collect_before_raising() -> None:
    """Run the young generation of Python's cyclic garbage collector now.

    The plugin switches the collector off during its calls, so allocations
    pile up and the first ones after a failed call (h5py building its
    exception from HDF5's error stack) start a collection. Any h5py object it
    frees calls HDF5, which clears that error stack while h5py reads it.
    Collected here, before HDF5 has the error, the count starts again at zero.
    """
    gc.collect(0)


def _trace_calls(cls):
    """Wrap every public method and property a class defines: traced when its
    object has a tracer, and collecting garbage when it fails."""
    for attr, value in list(vars(cls).items()):
        if attr.startswith("_"):
            continue
        if isinstance(value, property):
            setattr(cls, attr, property(_traced(attr, value.fget), value.fset, value.fdel, value.__doc__))
        elif callable(value):
            setattr(cls, attr, _traced(attr, value))
    return cls


# ---------------------------------------------------------------- nodes


@_trace_calls
class PassthruAttribute(api.Attribute):
    """A native attribute, kept open while h5pyvol uses it."""

    def __init__(self, owner: PassthruNode, name: str, aid: h5a.AttrID, meta: api.ArrayMeta | None = None):
        self._owner = owner
        self._name = name
        self._id = aid
        self._tracer = owner._tracer
        self._meta = meta
        owner._file._wrappers.add(self)

    def __repr__(self) -> str:
        return f"<attribute {self._name!r} of {self._owner!r}>"

    @property
    def meta(self) -> api.ArrayMeta:
        return self._load_meta()

    def _load_meta(self) -> api.ArrayMeta:
        if self._meta is None:
            self._meta = _meta_of(self._id.get_type(), self._id.get_space())
        return self._meta

    def read(self) -> np.ndarray:
        meta = self._load_meta()
        tid = self._id.get_type()
        if not datatypes.has_vlen(tid):
            out = np.empty(meta.shape, meta.dtype)
            _check(_lib().H5Aread(self._id.id, tid.id, out.ctypes.data), "H5Aread")
            return _object_refs(tid, out, to_native=False)
        n = meta.size
        raw = np.zeros(n * tid.get_size(), np.uint8)
        _check(_lib().H5Aread(self._id.id, tid.id, raw.ctypes.data), "H5Aread")
        try:
            return _object_refs(tid, datatypes.to_numpy(tid, tid, raw, n).reshape(meta.shape), to_native=False)
        finally:
            _reclaim(tid, raw, n)  # HDF5 allocated the variable-length data on read

    def write(self, data: np.ndarray) -> None:
        meta = self._load_meta()
        tid = self._id.get_type()
        data = _object_refs(tid, data, to_native=True)
        if not datatypes.has_vlen(tid):
            buf = np.ascontiguousarray(data, dtype=meta.dtype)
            _check(_lib().H5Awrite(self._id.id, tid.id, buf.ctypes.data), "H5Awrite")
            return
        n = meta.size
        raw = np.zeros(n * tid.get_size(), np.uint8)
        datatypes.from_numpy(tid, tid, data, raw)
        try:
            _check(_lib().H5Awrite(self._id.id, tid.id, raw.ctypes.data), "H5Awrite")
        finally:
            _reclaim(tid, raw, n)  # HDF5 copied the variable-length data; ours are freed


@_trace_calls
class PassthruNode(api.Node):
    """What every native object offers: a token (its address), attributes and a reference count."""

    def __init__(self, file: PassthruFile, oid: h5o.ObjectID, token: bytes | None = None) -> None:
        self._file = file
        self._id = oid
        self._tracer = file._tracer
        self._token = token if token is not None else _token(h5o.get_info(oid).addr)
        self._attr_order: int | None = None
        file._wrappers.add(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__[8:].lower()} @{_address(self._token)}>"

    @property
    def token(self) -> bytes:
        return self._token

    def _attribute_index(self) -> int:
        """Creation order where the object tracks it (native HDF5 refuses it otherwise), else name order."""
        if self._attr_order is None:
            tracked = self._attr_creation_order() & h5p.CRT_ORDER_TRACKED
            self._attr_order = h5.INDEX_CRT_ORDER if tracked else h5.INDEX_NAME
        return self._attr_order

    def _attr_creation_order(self) -> int:
        """The attribute creation order flags of the object's creation properties."""
        return self._id.get_create_plist().get_attr_creation_order()

    def attribute_names(self) -> list[str]:
        names: list[str] = []
        h5a.iterate(self._id, lambda name: names.append(_text(name)), index_type=self._attribute_index())
        return names

    def create_attribute(self, name: str, meta: api.ArrayMeta) -> api.Attribute:
        aid = h5a.create(self._id, _name(name), self._file._type_of(meta), _space(meta))
        return PassthruAttribute(self, name, aid, meta)

    def open_attribute(self, name: str) -> api.Attribute:
        if not h5a.exists(self._id, _name(name)):
            raise KeyError(f"no attribute named {name!r}")
        return PassthruAttribute(self, name, h5a.open(self._id, _name(name)))

    def delete_attribute(self, name: str) -> None:
        if not h5a.exists(self._id, _name(name)):
            raise KeyError(f"no attribute named {name!r}")
        h5a.delete(self._id, _name(name))

    def rename_attribute(self, old: str, new: str) -> None:
        h5a.rename(self._id, _name(old), _name(new))

    @property
    def link_count(self) -> int:
        return h5o.get_info(self._id).rc

    @property
    def times(self) -> tuple[int, int, int, int]:
        info = h5o.get_info(self._id)  # zeros where the native object does not track times
        return (info.atime, info.mtime, info.ctime, info.btime)

    def change_link_count(self, delta: int) -> None:
        change = _lib().H5Oincr_refcount if delta > 0 else _lib().H5Odecr_refcount
        for _ in range(abs(delta)):
            _check(change(self._id.id), "H5Oincr_refcount" if delta > 0 else "H5Odecr_refcount")

    def flush(self) -> None:
        _check(_lib().H5Oflush(self._id.id), "H5Oflush")

    def refresh(self) -> None:
        _check(_lib().H5Orefresh(self._id.id), "H5Orefresh")


@_trace_calls
class PassthruGroup(PassthruNode, api.Group):
    """A native group: links are native links."""

    def __init__(self, file: PassthruFile, oid: h5g.GroupID, token: bytes | None = None, root: bool = False):
        super().__init__(file, oid, token)
        self._root = root
        self._gcpl: bytes | None = None
        self._link_order: int | None = None

    @property
    def gcpl(self) -> bytes:
        if self._gcpl is None:
            plist = self._id.get_create_plist()
            if self._root:
                # h5pyvol takes the root's properties for the file's (H5Fget_create_plist) too.
                # A reopened native file's list does not say how the root group orders
                # its links and attributes (h5py iterates by it): copy that in.
                fcpl = self._file._live().get_create_plist()
                fcpl.set_link_creation_order(plist.get_link_creation_order())
                fcpl.set_attr_creation_order(plist.get_attr_creation_order())
                fcpl.set_attr_phase_change(*plist.get_attr_phase_change())
                plist = fcpl
            self._gcpl = encode_plist(plist.id)
        return self._gcpl

    def _link_index(self) -> int:
        if self._link_order is None:
            tracked = self._id.get_create_plist().get_link_creation_order() & h5p.CRT_ORDER_TRACKED
            self._link_order = h5.INDEX_CRT_ORDER if tracked else h5.INDEX_NAME
        return self._link_order

    def _link(self, name: bytes, ltype: int, u: int) -> api.Link:
        if ltype == h5l.TYPE_HARD:
            return api.HardLink(_token(u))
        if ltype == h5l.TYPE_SOFT:
            return api.SoftLink(_text(self._id.links.get_val(name)))
        if ltype == h5l.TYPE_EXTERNAL:
            filename, path = self._id.links.get_val(name)
            return api.ExternalLink(_text(filename), _text(path))
        value = ctypes.create_string_buffer(u)
        _check(_lib().H5Lget_val(self._id.id, name, value, u, H5P_DEFAULT), "H5Lget_val")
        return api.UserLink(ltype, value.raw)

    def _link_infos(self) -> list[tuple[bytes, int, int, int]]:
        """(name, link type, address or value size, creation order) of every link, in creation order
        where the group tracks it (native HDF5 refuses that order otherwise), else by name."""
        found: list[tuple[bytes, int, int, int]] = []
        # h5py reuses one LinkInfo object for every callback: copy its fields out.
        self._id.links.iterate(lambda name, info: found.append((name, info.type, info.u, info.corder)),
                               idx_type=self._link_index(), info=True)
        return found

    def links(self) -> list[tuple[str, api.Link]]:
        return [(_text(name), self._link(name, ltype, u)) for name, ltype, u, _ in self._link_infos()]

    # Native HDF5 numbers links itself, as the bridge would: nothing to note.

    def creation_orders(self) -> dict[str, int]:
        return {_text(name): corder for name, _, _, corder in self._link_infos()}

    def next_creation_order(self) -> int:
        info = _GroupInfo()
        _check(_lib().H5Gget_info(self._id.id, ctypes.byref(info)), "H5Gget_info")
        return info.max_corder

    def get_link(self, name: str) -> api.Link:
        raw = _name(name)
        if not self._id.links.exists(raw):
            raise KeyError(f"no link named {name!r}")
        info = self._id.links.get_info(raw)
        return self._link(raw, info.type, info.u)

    def has_link(self, name: str) -> bool:
        return self._id.links.exists(_name(name))

    def set_link(self, name: str, link: api.Link) -> None:
        raw, lcpl = _name(name), _lcpl(name)
        if isinstance(link, api.HardLink):
            h5o.link(self._file._node(link.token)._id, self._id, raw, lcpl=lcpl)
        elif isinstance(link, api.SoftLink):
            self._id.links.create_soft(raw, _name(link.path), lcpl=lcpl)
        else:
            if isinstance(link, api.ExternalLink):
                # HDF5's own encoding (flags, file, object), stored as given: unlike
                # H5Lcreate_external, H5Lcreate_ud accepts every value a program can.
                link = api.UserLink(h5l.TYPE_EXTERNAL, b"\0" + _name(link.filename) + b"\0" + _name(link.path) + b"\0")
            # Native HDF5 stores user-defined links only of classes registered with H5Lregister.
            _check(_lib().H5Lcreate_ud(self._id.id, raw, link.link_class, link.value, len(link.value),
                                       lcpl.id if lcpl is not None else H5P_DEFAULT, H5P_DEFAULT),
                   f"H5Lcreate_ud (link class {link.link_class})")

    def delete_link(self, name: str) -> None:
        raw = _name(name)
        if not self._id.links.exists(raw):
            raise KeyError(f"no link named {name!r}")
        self._id.unlink(raw)  # native HDF5 frees the object when its last link and handle go


@_trace_calls
class PassthruDataset(PassthruNode, api.Dataset):
    """A native dataset: selections become native dataspace selections, I/O is H5Dread/H5Dwrite."""

    def __init__(self, file: PassthruFile, oid: h5d.DatasetID, token: bytes | None = None) -> None:
        super().__init__(file, oid, token)
        self._meta: api.ArrayMeta | None = None
        self._type: h5t.TypeID | None = None  # the stored type, also the memory type of all I/O
        self._vlen = False  # whether that memory type holds pointers
        self._refs = False  # whether it holds object references

    @property
    def meta(self) -> api.ArrayMeta:
        return self._load_meta()

    def _load_meta(self) -> api.ArrayMeta:
        # The same object until the extent changes: the bridge reloads its view when it does not.
        if self._meta is None:
            tid = self._id.get_type()
            dcpl = self._id.get_create_plist()
            self._type, self._vlen = tid, datatypes.has_vlen(tid)
            self._refs = tid.detect_class(h5t.REFERENCE)  # object references: native addresses
            self._meta = _meta_of(tid, self._id.get_space(), encode_dcpl(dcpl.id, tid.id))
        return self._meta

    def _spaces(self, selection: Selection) -> tuple[h5s.SpaceID, h5s.SpaceID, tuple[int, ...]]:
        fspace = self._id.get_space()
        _select(fspace, selection)
        shape = selection.result_shape
        return _mem_space(shape), fspace, shape

    def read(self, selection: Selection, out: np.ndarray) -> None:
        meta = self._load_meta()
        tid = self._type
        mspace, fspace, shape = self._spaces(selection)
        n = selection.count
        if not self._vlen:
            # Straight into the caller's buffer when it is one contiguous block of the right bytes.
            target = out if out.flags.c_contiguous and out.dtype == meta.dtype.base else np.empty(shape, meta.dtype)
            _check(_lib().H5Dread(self._id.id, tid.id, mspace.id, fspace.id, H5P_DEFAULT, target.ctypes.data),
                   "H5Dread")
            if self._refs:
                out[...] = _object_refs(tid, target, to_native=False)
            elif target is not out:
                out[...] = target
            return
        raw = np.zeros(n * tid.get_size(), np.uint8)
        _check(_lib().H5Dread(self._id.id, tid.id, mspace.id, fspace.id, H5P_DEFAULT, raw.ctypes.data), "H5Dread")
        try:
            out[...] = _object_refs(tid, datatypes.to_numpy(tid, tid, raw, n), to_native=False).reshape(out.shape)
        finally:
            _reclaim(tid, raw, n)

    def write(self, selection: Selection, data: np.ndarray) -> None:
        meta = self._load_meta()
        tid = self._type
        mspace, fspace, _ = self._spaces(selection)
        n = selection.count
        if self._refs:
            data = _object_refs(tid, data, to_native=True)
        if not self._vlen:
            buf = np.ascontiguousarray(data, dtype=meta.dtype.base)
            _check(_lib().H5Dwrite(self._id.id, tid.id, mspace.id, fspace.id, H5P_DEFAULT, buf.ctypes.data),
                   "H5Dwrite")
            return
        raw = np.zeros(n * tid.get_size(), np.uint8)
        datatypes.from_numpy(tid, tid, data, raw)
        try:
            _check(_lib().H5Dwrite(self._id.id, tid.id, mspace.id, fspace.id, H5P_DEFAULT, raw.ctypes.data),
                   "H5Dwrite")
        finally:
            _reclaim(tid, raw, n)

    def resize(self, shape: tuple[int, ...]) -> None:
        self._id.set_extent(tuple(shape))
        self._meta = None

    def storage_size(self) -> int:
        return self._id.get_storage_size()

    def is_allocated(self) -> bool:
        return self._id.get_space_status() != h5d.SPACE_STATUS_NOT_ALLOCATED

    def shards(self) -> list[api.Shard]:
        """As for the native file underneath: chunks with their file offsets (`h5pyvol.shards`)."""
        from h5pyvol.shards import native_shards

        return native_shards(self._id, self._file.path)

    def flush(self) -> None:
        self._id.flush()

    def refresh(self) -> None:
        self._id.refresh()
        self._meta = None


@_trace_calls
class PassthruDatatype(PassthruNode, api.Datatype):
    """A native committed datatype."""

    def _attr_creation_order(self) -> int:
        # h5py's TypeID has no get_create_plist.
        h = _lib()
        plist = _check(h.H5Tget_create_plist(self._id.id), "H5Tget_create_plist")
        flags = ctypes.c_uint(0)
        try:
            _check(h.H5Pget_attr_creation_order(plist, ctypes.byref(flags)), "H5Pget_attr_creation_order")
        finally:
            h.H5Pclose(plist)
        return flags.value

    @property
    def hdf5_type(self) -> bytes:
        return _logical_type(self._id).encode()


# ---------------------------------------------------------------- files


@_trace_calls
class PassthruFile(api.File):
    """An open native HDF5 file."""

    def __init__(self, connector: PassthruConnector, fid: h5f.FileID, path: str, writable: bool) -> None:
        self._connector = connector
        self._fid: h5f.FileID | None = fid
        self._tracer = connector._tracer
        self.path = path
        self._writable = writable
        # One node object per live native object: the bridge compares the meta
        # objects it gets, and an anonymous object must stay open until linked.
        self._nodes: weakref.WeakValueDictionary[bytes, PassthruNode] = weakref.WeakValueDictionary()
        self._wrappers: weakref.WeakSet[PassthruNode | PassthruAttribute] = weakref.WeakSet()
        self._root = PassthruGroup(self, h5g.open(fid, b"/"), root=True)
        self._nodes[self._root._token] = self._root

    def __repr__(self) -> str:
        return f"<native file {self.path!r}>"

    def _live(self) -> h5f.FileID:
        if self._fid is None:
            raise ValueError(f"native file {self.path!r} is closed")
        return self._fid

    @property
    def root(self) -> api.Group:
        return self._root

    @property
    def writable(self) -> bool:
        return self._writable

    def _wrap(self, oid: h5o.ObjectID, token: bytes | None = None) -> PassthruNode:
        kind = h5i.get_type(oid)
        if kind == h5i.GROUP:
            node: PassthruNode = PassthruGroup(self, oid, token)
        elif kind == h5i.DATASET:
            node = PassthruDataset(self, oid, token)
        elif kind == h5i.DATATYPE:
            node = PassthruDatatype(self, oid, token)
        else:
            raise TypeError(f"native object of HDF5 id type {kind} is not a group, dataset or datatype")
        self._nodes[node._token] = node
        return node

    def _node(self, token: bytes) -> PassthruNode:
        node = self._nodes.get(token)
        if node is not None:
            return node
        if len(token) != _TOKEN_BYTES:
            raise KeyError(f"no object with token {token.hex()}")
        addr = _address(token)
        native = _Token()
        h = _lib()
        fid = self._live()
        if h.H5VLnative_addr_to_token(fid.id, addr, ctypes.byref(native)) < 0:
            raise KeyError(f"no object with token {token.hex()}")
        oid = h.H5Oopen_by_token(fid.id, native)
        if oid < 0:
            raise KeyError(f"no object at address {addr} in {self.path!r}")
        return self._wrap(h5i.wrap_identifier(oid), token)

    def open_node(self, token: bytes) -> api.Node:
        return self._node(token)

    def create_group(self, gcpl: bytes = b"") -> api.Group:
        plist = decode_plist(gcpl, h5p.PropGCID) if gcpl else None
        return self._wrap(h5g.create(self._live(), None, gcpl=plist))

    def create_dataset(self, meta: api.ArrayMeta) -> api.Dataset:
        plist = decode_plist(meta.dcpl, h5p.PropDCID) if meta.dcpl else None
        return self._wrap(h5d.create(self._live(), None, self._type_of(meta), _space(meta), dcpl=plist))

    def _type_of(self, meta: api.ArrayMeta) -> h5t.TypeID:
        """The native type to create an array of `meta` with: its committed
        datatype where it names one (so the native object refers to it), else
        the type itself."""
        if meta.committed_type:
            try:
                node = self._node(meta.committed_type)
            except KeyError:
                node = None
            if isinstance(node, PassthruDatatype):
                return node._id
        return _native_type(h5t.decode(meta.hdf5_type))

    def commit_datatype(self, hdf5_type: bytes) -> api.Datatype:
        tid = _native_type(h5t.decode(hdf5_type))
        h = _lib()
        # The program's datatype creation properties do not reach connectors;
        # tracking attribute creation order keeps the order h5pyvol reports.
        tcpl = _check(h.H5Pcreate(_hid_variable("H5P_CLS_DATATYPE_CREATE_ID_g")), "H5Pcreate")
        try:
            _check(h.H5Pset_attr_creation_order(tcpl, h5p.CRT_ORDER_TRACKED | h5p.CRT_ORDER_INDEXED),
                   "H5Pset_attr_creation_order")
            _check(h.H5Tcommit_anon(self._live().id, tid.id, tcpl, H5P_DEFAULT), "H5Tcommit_anon")
        finally:
            h.H5Pclose(tcpl)
        return self._wrap(tid)

    # Blobs (what references keep, see api.File.put_blob): each one an
    # anonymous native dataset of bytes, as the default makes it, kept alive
    # with no link by a reference count of one; its key is its token.

    def put_blob(self, data: bytes) -> bytes:
        node = self.create_dataset(api.ArrayMeta(h5t.STD_U8LE.encode(), (len(data),)))
        if data:
            node.write(Selection.everything((len(data),)), np.frombuffer(data, np.uint8))
        node.change_link_count(1)  # before the last handle closes: native HDF5 would free it
        return node.token

    def delete_blob(self, key: bytes) -> None:
        try:
            node = self._node(key)
        except KeyError:
            return
        if isinstance(node, PassthruDataset) and node.link_count > 0:
            node.change_link_count(-1)

    def flush(self) -> None:
        if self._writable and self._fid is not None:  # None: closed already, at HDF5's shutdown
            h5f.flush(self._fid)

    def close(self) -> None:
        self._close_native()

    def _close_native(self) -> None:
        _open_files.discard(self)
        fid, self._fid = self._fid, None
        if fid is None:
            return
        if fid.valid:
            fid.close()  # the close degree is strong: every object of the file closes too
        # Drop our h5py objects now, while nothing else runs. Left to the cyclic
        # garbage collector (the program may keep our objects in a cycle), their
        # deallocation calls HDF5, which clears HDF5's error stack, maybe while
        # h5py is reading it to raise an exception.
        for wrapper in list(self._wrappers):
            wrapper._id = None
        self._nodes.clear()
        self._root = None  # type: ignore[assignment]


# ---------------------------------------------------------------- connector


@_trace_calls
class PassthruConnector(api.Connector):
    """HDF5 files stored as native HDF5 files, through HDF5's native connector."""

    name = "passthru"
    # Each one is what native HDF5 does underneath.
    supports_attributes = True
    supports_soft_links = True
    supports_external_links = True
    supports_user_links = True  # of the classes registered with H5Lregister, as natively
    supports_creation_order = True  # where the creation properties ask for it
    supports_committed_datatypes = True
    supports_resize = True  # chunked datasets
    supports_link_count_changes = True
    supports_delete = True
    supports_storage_size = True
    supports_fill_values = True
    supports_filters = True  # applied: gzip really compresses

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        unknown = sorted(set(options) - {"root", "trace"})
        if unknown:
            raise ValueError(f"the passthru connector takes the options root and trace, got {unknown}")
        root = options.get("root")
        self.root_dir = Path(root).resolve() if root else None
        self._tracer = _tracer(options.get("trace", "0"))

    def __repr__(self) -> str:
        return f"<passthru {self.root_dir or '.'}>"

    def _native_path(self, name: str) -> str:
        """The native file that holds the HDF5 file `name`."""
        api.check_file_name(name)
        if self.root_dir is None:
            return name
        path = (self.root_dir / name.lstrip("/")).resolve()
        if not path.is_relative_to(self.root_dir):
            raise PermissionError(errno.EACCES, f"file name {name!r} leads outside the root directory {self.root_dir}")
        return str(path)

    def create(self, name: str, *, overwrite: bool, fcpl: bytes = b"") -> api.File:
        path = self._native_path(name)
        if not overwrite and os.path.exists(path):
            raise FileExistsError(errno.EEXIST, f"native file {path!r} already exists")
        plist = decode_plist(fcpl, h5p.PropFCID) if fcpl else None
        flags = h5f.ACC_TRUNC if overwrite else h5f.ACC_EXCL
        fid = h5f.create(path.encode(), flags, fcpl=plist, fapl=native_fapl())
        return self._opened(fid, path, True)

    def open(self, name: str, *, writable: bool) -> api.File:
        path = self._native_path(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, f"no native file {path!r}")
        fid = h5f.open(path.encode(), h5f.ACC_RDWR if writable else h5f.ACC_RDONLY, fapl=native_fapl())
        return self._opened(fid, path, writable)

    def _opened(self, fid: h5f.FileID, path: str, writable: bool) -> PassthruFile:
        _close_before_hdf5_shutdown()
        file = PassthruFile(self, fid, path, writable)
        _open_files.add(file)
        return file

    def exists(self, name: str) -> bool:
        path = self._native_path(name)
        fapl = native_fapl()  # kept referenced: h5py closes the id with the object
        return os.path.isfile(path) and _lib().H5Fis_accessible(path.encode(), fapl.id) > 0

    def delete(self, name: str) -> None:
        path = self._native_path(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, f"no native file {path!r}")
        fapl = native_fapl()
        _check(_lib().H5Fdelete(path.encode(), fapl.id), f"H5Fdelete({path!r})")

    def close(self) -> None:
        for file in list(_open_files):
            if file._connector is self:
                file.close()
        if self._tracer is not None:
            self._tracer.close()

