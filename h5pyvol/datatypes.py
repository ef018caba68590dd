"""HDF5 datatypes as numpy dtypes, and the data conversion between them.

This module owns the translation between the raw buffers HDF5 hands a VOL
connector (the user's memory, in the user's memory datatype) and the numpy
arrays Python storage connectors see (always in the numpy dtype of the
dataset's stored, "file", datatype, following h5py's conventions).

Every conversion between two different HDF5 types is done by HDF5 itself
(``H5Tconvert`` through :func:`h5py.h5t.convert`), so byte order, int/float
rounding and overflow clipping, enum mapping by name, string padding and
compound member matching by name are exactly those of native HDF5.  Numpy
only reinterprets bytes (it casts nothing but a connector's array that is
not in the file dtype, ``same_kind``).  Vlen strings pass their bytes
through between ASCII and UTF-8, as native dataset I/O does.

Variable-length data become Python objects: ``str`` for UTF-8 and ``bytes``
for ASCII vlen strings, 1-D numpy arrays of the base dtype for vlen
sequences, at any depth inside compounds and arrays.  Ownership rules, as
measured against HDF5 1.14 and h5py 3.16:

* ``H5Tconvert`` between memory types never frees its source, and always
  deep-copies vlen data, even between equal types (vlen types carry HDF5's
  "force conversion" flag).  So converting the user's buffer into a
  scratch buffer leaves the user's data alone, and everything reachable from
  the scratch buffer is ours to free with ``H5Treclaim``.
* h5py's vlen -> Python object converters (``vlen2str``, ``vlen2ndarray``)
  free or steal the memory they read, and hand back object references in a
  raw buffer, which Python cannot move into a numpy object array safely.
  Its Python object -> vlen converters convert sequence elements with the
  first element's dtype through ``py_create`` rather than the stored base
  type.  So this module reads and writes vlen memory itself (numpy views of
  the pointers plus ctypes), and leaves the value conversions to HDF5.
* Vlen memory handed to the user is allocated like HDF5 does it: with the
  transfer property list's vlen allocator when one is set (HDF5 allocates it
  while converting), else with the C library's ``malloc``, so ``H5Treclaim``
  / ``H5Dvlen_reclaim`` with the same property list frees it.

References: HDF5 1.10-style object and region references
(``H5T_STD_REF_OBJ``, ``H5T_STD_REF_DSETREG``) are plain bytes.  An HDF5
1.12-style reference (``H5R_ref_t``, type ``H5T_STD_REF``) holds pointers in
memory; connectors see its stored form, ``REF_DTYPE`` (raw bytes), which
HDF5 itself makes and reads back through a file of the connector (see
`References`): a same-file object reference inline, the others as a blob
the connector keeps.  Converting them needs that file, so `to_numpy` and
`from_numpy` take a `References`.

Not covered: HDF5 time types (no numpy equivalent), integers and floats numpy
cannot represent bit for bit (they are exposed as raw ``V<size>`` bytes).
Members of a file compound that are missing from the memory type come out
zero (empty for vlen members): native HDF5 would keep the values already
stored, which only the caller can merge in.  Conversions between fixed and
vlen strings exist only because h5py registers converters for them; those
allocate with ``malloc`` whatever the property list says.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np
from h5py import h5s, h5t

__all__ = ["REF_DTYPE", "References", "dtype_of", "from_numpy", "has_vlen", "needs_conversion", "to_numpy"]

_PTR = np.dtype(np.uintp)  # char * of a vlen string
# An H5R_ref_t in memory, and its stored form: HDF5's encoding header (2
# bytes), a 4-byte size and a blob id of H5VL_MAX_BLOB_ID_SIZE (16) bytes,
# which also holds an inline object reference (header, token size, 16-byte
# token). HDF5 sizes it from the plugin's container info (csrc/file.c).
_REF_MEM = np.dtype("V64")
REF_DTYPE = np.dtype("V22")
_HVL = np.dtype([("len", np.uintp), ("p", np.uintp)])  # hvl_t of a vlen sequence

_libc = ctypes.CDLL(None)
_libc.calloc.restype = ctypes.c_void_p
_libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
_libc.strdup.restype = ctypes.c_void_p
_libc.strdup.argtypes = [ctypes.c_char_p]
_libc.free.argtypes = [ctypes.c_void_p]

# The libhdf5 h5py is linked with; dlsym searches a module's dependencies.
# PyDLL keeps the GIL held, so h5py's HDF5 calls in other threads cannot interleave.
_hdf5 = ctypes.PyDLL(h5t.__file__)
_hdf5.H5Treclaim.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
_hdf5.H5Treclaim.restype = ctypes.c_int
_hdf5.H5Pget_vlen_mem_manager.argtypes = [ctypes.c_int64] + [ctypes.POINTER(ctypes.c_void_p)] * 4
_hdf5.H5Pget_vlen_mem_manager.restype = ctypes.c_int
_hdf5.H5Rdestroy.argtypes = [ctypes.c_void_p]
_hdf5.H5Rdestroy.restype = ctypes.c_int

_CLASS_NAMES = {
    getattr(h5t, name): name
    for name in ("INTEGER", "FLOAT", "TIME", "STRING", "BITFIELD", "OPAQUE", "COMPOUND",
                 "REFERENCE", "ENUM", "VLEN", "ARRAY")
}


@dataclass(frozen=True)
class _Node:
    """A type's layout, computed once per call so per-element loops make no HDF5 calls.

    ``kind`` is "plain" (no vlen inside: numpy reads its bytes as they are),
    "compound", "array", "str" (vlen string), "seq" (vlen sequence) or
    "ref" (an H5R_ref_t: ``raw`` is its memory form, ``dtype`` its stored form).
    ``raw`` is the numpy view of the memory form, with vlen pointers as integers.
    """

    kind: str
    dtype: np.dtype
    raw: np.dtype
    size: int
    utf8: bool = False
    tid: h5t.TypeID | None = None  # kind "ref": the memory type H5T_STD_REF
    members: tuple[tuple[str, _Node], ...] = ()
    base: _Node | None = None


def _class_name(tid: h5t.TypeID) -> str:
    return _CLASS_NAMES.get(tid.get_class(), str(tid.get_class()))


def _leaf_dtype(tid: h5t.TypeID) -> np.dtype:
    """h5py's dtype for a type without members, or raw bytes if it would not match bit for bit."""
    cls = tid.get_class()
    if cls == h5t.REFERENCE:
        return np.dtype(f"V{tid.get_size()}")  # an hobj_ref_t / hdset_reg_ref_t is plain bytes
    try:
        dt = tid.dtype
    except (TypeError, ValueError) as e:
        raise TypeError(f"no numpy dtype for HDF5 type class {_class_name(tid)}: {e}") from e
    size = tid.get_size()
    if cls == h5t.ENUM and dt.itemsize != size:  # e.g. h5py's bool over a wider integer
        base = _leaf_dtype(tid.get_super())
        values = {tid.get_member_name(i).decode(): tid.get_member_value(i)
                  for i in range(tid.get_nmembers())}
        return h5py.enum_dtype(values, basetype=base)
    if dt.itemsize != size or (cls in (h5t.INTEGER, h5t.FLOAT) and h5t.py_create(dt) != tid):
        return np.dtype(f"V{size}")
    return dt


def _compound_dtype(names, nodes, offsets, size, raw=False) -> np.dtype:
    formats = [n.raw if raw else n.dtype for n in nodes]
    half = formats[0].itemsize if formats else 0
    if (not raw and tuple(names) == tuple(h5py.get_config().complex_names) and formats[0] == formats[1]
            and formats[0].kind == "f" and half in (4, 8, 16) and offsets == [0, half] and size == 2 * half):
        return np.dtype(f"{formats[0].str[0]}c{2 * half}")  # h5py's complex convention
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


def _plan(tid: h5t.TypeID) -> _Node:
    cls = tid.get_class()
    size = tid.get_size()
    if cls == h5t.COMPOUND:
        count = tid.get_nmembers()
        names = [tid.get_member_name(i).decode() for i in range(count)]
        nodes = [_plan(tid.get_member_type(i)) for i in range(count)]
        offsets = [tid.get_member_offset(i) for i in range(count)]
        dt = _compound_dtype(names, nodes, offsets, size)
        if all(n.kind == "plain" for n in nodes):
            return _Node("plain", dt, dt, size)
        raw = _compound_dtype(names, nodes, offsets, size, raw=True)
        return _Node("compound", dt, raw, size, members=tuple(zip(names, nodes, strict=True)))
    if cls == h5t.ARRAY:
        base = _plan(tid.get_super())
        dims = tuple(tid.get_array_dims())
        dt = np.dtype((base.dtype, dims))
        if base.kind == "plain":
            return _Node("plain", dt, dt, size)
        return _Node("array", dt, np.dtype((base.raw, dims)), size, base=base)
    if cls == h5t.VLEN:
        base = _plan(tid.get_super())
        return _Node("seq", h5py.vlen_dtype(base.dtype), _HVL, size, base=base)
    if cls == h5t.STRING and tid.is_variable_str():
        return _Node("str", tid.dtype, _PTR, size, utf8=tid.get_cset() == h5t.CSET_UTF8)
    if _is_ref(tid):
        if size != _REF_MEM.itemsize:
            raise TypeError(f"H5R_ref_t of {size} bytes; this HDF5 build is not supported")
        return _Node("ref", REF_DTYPE, _REF_MEM, size, tid=_memory_ref(tid))
    dt = _leaf_dtype(tid)
    return _Node("plain", dt, dt, size)


def dtype_of(tid: h5t.TypeID) -> np.dtype:
    """The numpy dtype a connector sees for an HDF5 type.

    h5py's conventions: vlen strings are ``h5py.string_dtype`` objects, vlen
    sequences ``h5py.vlen_dtype`` objects, enums carry h5py's enum metadata,
    h5py's two-member boolean enum is ``bool``, an ``r``/``i`` float compound
    is complex, array types are numpy subarray dtypes.  For types without
    vlen data the itemsize and layout are exactly HDF5's, so stored bytes can
    be viewed with it.  An H5R_ref_t is `REF_DTYPE`, its stored form, at
    its memory offset inside a compound.  Raises ``TypeError`` for time types.
    """
    return _plan(tid).dtype


@functools.lru_cache(maxsize=1024)
def dtype_of_encoded(blob: bytes) -> np.dtype:
    """`dtype_of` the type that H5Tencode serialized as `blob`, worked out
    once per distinct type (every array's meta holds its type so)."""
    from ._hdf5 import decode_type

    return dtype_of(decode_type(blob))


@functools.lru_cache(maxsize=1024)
def has_vlen_encoded(blob: bytes) -> bool:
    """`has_vlen` of the type that H5Tencode serialized as `blob`, once per distinct type."""
    from ._hdf5 import decode_type

    return has_vlen(decode_type(blob))


def _is_ref(tid: h5t.TypeID) -> bool:
    """Whether tid is an HDF5 1.12-style reference (H5T_STD_REF), not a 1.10 one."""
    return tid.get_class() == h5t.REFERENCE and tid != h5t.STD_REF_OBJ and tid != h5t.STD_REF_DSETREG


def has_refs(tid: h5t.TypeID) -> bool:
    """True if the type holds an H5R_ref_t (H5T_STD_REF) anywhere."""
    if not tid.detect_class(h5t.REFERENCE):
        return False
    cls = tid.get_class()
    if cls == h5t.REFERENCE:
        return _is_ref(tid)
    if cls in (h5t.ARRAY, h5t.VLEN):
        return has_refs(tid.get_super())
    if cls == h5t.COMPOUND:
        return any(has_refs(tid.get_member_type(i)) for i in range(tid.get_nmembers()))
    return False


def _memory_ref(ref: h5t.TypeID) -> h5t.TypeID:
    """The H5T_STD_REF `ref`, located in memory (h5py has no constant for it)."""
    return _decoded_ref(ref.encode())


@functools.cache
def _decoded_ref(blob: bytes) -> h5t.TypeID:
    return h5t.decode(blob)  # H5Tdecode locates a top-level reference type in memory


def with_memory_refs(tid: h5t.TypeID) -> h5t.TypeID:
    """tid, rebuilt where needed so that each H5T_STD_REF in it is located in
    memory. A decoded variable-length type's H5T_STD_REF base has no location
    (HDF5's H5T_set_loc leaves it for the file's blob code), and converting
    it would crash."""
    if not has_refs(tid):
        return tid
    cls = tid.get_class()
    if cls == h5t.REFERENCE:
        return _memory_ref(tid).copy()
    if cls == h5t.VLEN:
        return h5t.vlen_create(with_memory_refs(tid.get_super()))
    if cls == h5t.ARRAY:
        return h5t.array_create(with_memory_refs(tid.get_super()), tid.get_array_dims())
    new = h5t.create(h5t.COMPOUND, tid.get_size())
    for i in range(tid.get_nmembers()):
        new.insert(tid.get_member_name(i), tid.get_member_offset(i), with_memory_refs(tid.get_member_type(i)))
    return new


def has_vlen(tid: h5t.TypeID) -> bool:
    """True if the memory form of the type holds pointers anywhere (vlen
    string/sequence, H5R_ref_t), so its bytes cannot be stored as they are."""
    if tid.detect_class(h5t.VLEN) or has_refs(tid):  # from the API, vlen strings count as STRING, not VLEN
        return True
    if not tid.detect_class(h5t.STRING):
        return False
    cls = tid.get_class()
    if cls == h5t.STRING:
        return tid.is_variable_str()
    if cls == h5t.ARRAY:
        return has_vlen(tid.get_super())
    if cls == h5t.COMPOUND:
        return any(has_vlen(tid.get_member_type(i)) for i in range(tid.get_nmembers()))
    return False


def needs_conversion(mem_type: h5t.TypeID, file_type: h5t.TypeID) -> bool:
    """False only when the bytes can be copied as they are (types equal and no vlen): the zero-copy path."""
    return has_vlen(mem_type) or has_vlen(file_type) or mem_type != file_type


def _bytes_of(buf, nbytes: int, writable: bool = False) -> np.ndarray:
    """A flat uint8 view of a buffer-protocol object, checked to hold exactly nbytes."""
    view = np.frombuffer(buf, dtype=np.uint8)
    if view.size != nbytes:
        raise ValueError(f"buffer holds {view.size} bytes, expected {nbytes}")
    if writable and not view.flags.writeable:
        raise ValueError("output buffer is read-only")
    return view


def _ascii_vlen_strings(tid: h5t.TypeID) -> h5t.TypeID:
    """tid with every vlen string made ASCII (a copy only where something changes)."""
    cls = tid.get_class()
    if cls == h5t.STRING:
        if not tid.is_variable_str() or tid.get_cset() == h5t.CSET_ASCII:
            return tid
        tid = tid.copy()
        tid.set_cset(h5t.CSET_ASCII)
        return tid
    if cls not in (h5t.VLEN, h5t.ARRAY, h5t.COMPOUND) or not has_vlen(tid):
        return tid
    if cls == h5t.VLEN:
        return h5t.vlen_create(_ascii_vlen_strings(tid.get_super()))
    if cls == h5t.ARRAY:
        return h5t.array_create(_ascii_vlen_strings(tid.get_super()), tid.get_array_dims())
    new = h5t.create(h5t.COMPOUND, tid.get_size())
    for i in range(tid.get_nmembers()):
        new.insert(tid.get_member_name(i), tid.get_member_offset(i), _ascii_vlen_strings(tid.get_member_type(i)))
    return new


def _conversion(src: h5t.TypeID, dst: h5t.TypeID) -> tuple[h5t.TypeID, h5t.TypeID]:
    """The pair of types to hand H5Tconvert; TypeError if HDF5 has no conversion.

    HDF5 compares vlen strings without their character set, so dataset I/O
    reuses any vlen-string conversion path and passes the bytes through
    between ASCII and UTF-8; only the creation of a new path checks the
    character sets, so a first H5Tconvert between them fails.  Converting
    ASCII-only copies gives the pass-through every time.
    """
    if has_vlen(src) and has_vlen(dst):
        src, dst = _ascii_vlen_strings(src), _ascii_vlen_strings(dst)
    if h5t.find(src, dst) is None:
        raise TypeError(f"HDF5 cannot convert {_class_name(src)} to {_class_name(dst)}")
    return src, dst


def _needs_bkg(a: h5t.TypeID, b: h5t.TypeID) -> bool:
    return a.detect_class(h5t.COMPOUND) or b.detect_class(h5t.COMPOUND)


def keeps_stored_members(mem_type: h5t.TypeID, file_type: h5t.TypeID) -> bool:
    """True when writing mem_type into file_type leaves some members as they
    are stored: a memory compound with only some of the file compound's
    members. Native HDF5 then converts over the stored values."""
    if mem_type.get_class() != h5t.COMPOUND or file_type.get_class() != h5t.COMPOUND:
        return False
    given = {mem_type.get_member_name(i) for i in range(mem_type.get_nmembers())}
    return any(file_type.get_member_name(i) not in given for i in range(file_type.get_nmembers()))


def _reclaim(tid: h5t.TypeID, buf: np.ndarray, n: int, dxpl: h5py.h5p.PropID | None) -> None:
    """Free the vlen memory of n elements of tid in buf, as H5Treclaim does for the user."""
    space = h5s.create_simple((n,))
    if _hdf5.H5Treclaim(tid.id, space.id, dxpl.id if dxpl is not None else 0, buf.ctypes.data) < 0:
        raise RuntimeError("H5Treclaim failed")


def _custom_vlen_alloc(dxpl: h5py.h5p.PropID | None) -> bool:
    if dxpl is None:
        return False
    ptrs = [ctypes.c_void_p() for _ in range(4)]
    if _hdf5.H5Pget_vlen_mem_manager(dxpl.id, *(ctypes.byref(p) for p in ptrs)) < 0:
        raise RuntimeError("H5Pget_vlen_mem_manager failed")
    return bool(ptrs[0].value)


def _elements(arr, dt: np.dtype) -> np.ndarray:
    """arr as a C-contiguous array of shape (n, *dt.shape) and dtype dt.base."""
    base, sub = dt.base, dt.shape
    a = arr if isinstance(arr, np.ndarray) else np.asarray(arr, dtype=base)
    if a.dtype != base and a.dtype.names and base.names and a.dtype.names != base.names:
        if set(a.dtype.names) != set(base.names):
            raise TypeError(f"array of dtype {a.dtype} given where {dt} is expected")
        a = _fields_by_name(a, base)  # HDF5 may have sorted the members by offset since
    if a.dtype != base:
        if a.dtype.names != base.names:
            raise TypeError(f"array of dtype {a.dtype} given where {dt} is expected")
        try:
            a = a.astype(base, casting="same_kind")
        except TypeError as e:
            raise TypeError(f"array of dtype {a.dtype} given where {dt} is expected") from e
    count = a.size // max(1, int(np.prod(sub)))
    return np.ascontiguousarray(a).reshape((count, *sub))


def _fields_by_name(a: np.ndarray, base: np.dtype) -> np.ndarray:
    """A structured array as `base`, whose fields are `a`'s in another order
    (numpy casts structured arrays field by position, not by name)."""
    out = np.empty(a.shape, base)
    for name in base.names:
        field, target = a[name], base.fields[name][0]
        if field.dtype.names and target.names and field.dtype.names != target.names:
            field = _fields_by_name(field, target)
        out[name] = field
    return out


def _from_address(p: int, nbytes: int):
    return (ctypes.c_char * nbytes).from_address(p)


def _set_objects(out: np.ndarray, values: list) -> None:
    flat = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # item by item: numpy would merge equal-length arrays
        flat[i] = v
    out[...] = flat.reshape(out.shape)


class References:
    """Converts H5R_ref_t references between memory and their stored form, for one file.

    ``make_file_type`` returns a new datatype id: H5T_STD_REF as stored in
    the file (``H5VLget_file_type``); it is called once, when the first
    reference is met. HDF5 does the conversion, asking the plugin's blob
    callbacks to keep what it does not store inline. Whatever the type
    refers to must stay alive as long as this object.
    """

    def __init__(self, make_file_type: Callable[[], int]) -> None:
        self._make = make_file_type
        self._stored: h5t.TypeID | None = None

    def _stored_type(self) -> h5t.TypeID:
        if self._stored is None:
            stored = h5t.typewrap(self._make())
            if stored.get_size() != REF_DTYPE.itemsize:
                raise TypeError(f"HDF5 stores H5R_ref_t in {stored.get_size()} bytes here, "
                                f"not the {REF_DTYPE.itemsize} h5pyvol expects")
            self._stored = stored
        return self._stored

    def to_stored(self, raw: np.ndarray, mem_type: h5t.TypeID) -> np.ndarray:
        """The stored form of the H5R_ref_t in raw (any shape); raw is left as it is."""
        flat = np.ascontiguousarray(raw).reshape(-1)
        out = np.empty(flat.size, REF_DTYPE)
        one = np.empty(_REF_MEM.itemsize, np.uint8)
        for i in range(flat.size):
            # One at a time: when HDF5 fails to store an element after others,
            # its clean-up frees the stored ones as if they were H5R_ref_t.
            one[:] = flat[i : i + 1].view(np.uint8)
            h5t.convert(mem_type, self._stored_type(), 1, one)
            out[i] = one[: REF_DTYPE.itemsize].view(REF_DTYPE)[0]
        return out.reshape(raw.shape)

    def to_memory(self, stored: np.ndarray, mem_type: h5t.TypeID) -> np.ndarray:
        """New H5R_ref_t for the stored references (the caller owns them: H5Rdestroy)."""
        n = stored.size
        buf = np.zeros(n * _REF_MEM.itemsize, np.uint8)
        buf[: n * REF_DTYPE.itemsize] = np.ascontiguousarray(stored, REF_DTYPE).reshape(-1).view(np.uint8)
        if n:
            h5t.convert(self._stored_type(), mem_type, n, buf)
        return buf.view(_REF_MEM).reshape(stored.shape)


def _refs_needed(refs: References | None) -> References:
    if refs is None:
        raise TypeError("converting H5R_ref_t references needs the file they are stored in")
    return refs


def _lift(raw: np.ndarray, node: _Node, out: np.ndarray, refs: References | None = None) -> None:
    """Copy memory-form data (raw) into out, of node.dtype, turning vlen data into Python objects."""
    if node.kind == "plain":
        out[...] = raw
    elif node.kind == "ref":
        out[...] = _refs_needed(refs).to_stored(raw, node.tid)
    elif node.kind == "compound":
        for name, member in node.members:
            _lift(raw[name], member, out[name], refs)
    elif node.kind == "array":  # numpy already unfolded the dimensions
        _lift(raw, node.base, out, refs)
    elif node.kind == "str":
        values = [ctypes.string_at(p) if p else b"" for p in raw.ravel().tolist()]
        if node.utf8:  # surrogateescape: invalid UTF-8 survives a round trip
            values = [v.decode("utf-8", "surrogateescape") for v in values]
        _set_objects(out, values)
    else:
        base = node.base
        values = []
        for length, p in zip(raw["len"].ravel().tolist(), raw["p"].ravel().tolist(), strict=True):
            if not length:
                values.append(np.empty(0, base.dtype))
                continue
            view = np.frombuffer(_from_address(p, length * base.size), base.raw)
            if base.kind == "plain":
                values.append(view.copy())
            else:
                seq = np.empty(length, base.dtype)
                _lift(view, base, seq, refs)
                values.append(seq)
        _set_objects(out, values)


def _malloc_string(value, utf8: bool) -> int:
    if value is None:  # a NULL string, which HDF5 reads back as ""
        return 0
    if isinstance(value, str):
        value = value.encode("utf-8" if utf8 else "ascii", "surrogateescape")
    elif not isinstance(value, bytes):
        raise TypeError(f"vlen string element must be str or bytes, not {type(value).__name__}")
    if b"\0" in value:
        raise ValueError("vlen strings cannot contain NUL characters")
    p = _libc.strdup(value)  # malloc'd, like HDF5's own vlen strings
    if not p:
        raise MemoryError
    return p


def _lower(values: np.ndarray, node: _Node, raw: np.ndarray, refs: References | None = None) -> None:
    """Write values (of node.dtype) into the zeroed memory form raw, malloc-ing vlen data.

    Sequence blocks are zeroed and reach raw as soon as they are allocated,
    strings once all of a level is allocated (or are freed here on error),
    references once all of a level is made, so on error `_free` on the whole
    buffer frees exactly what was allocated.
    """
    if node.kind == "plain":
        raw[...] = values
    elif node.kind == "ref":
        raw[...] = _refs_needed(refs).to_memory(values, node.tid)
    elif node.kind == "compound":
        for name, member in node.members:
            _lower(values[name], member, raw[name], refs)
    elif node.kind == "array":
        _lower(values, node.base, raw, refs)
    elif node.kind == "str":
        pointers = []
        try:
            for v in values.ravel().tolist():
                pointers.append(_malloc_string(v, node.utf8))
        except BaseException:
            for p in pointers:
                _libc.free(p)
            raise
        raw[...] = np.array(pointers, dtype=np.uintp).reshape(raw.shape)
    else:
        base = node.base
        for i, v in enumerate(values.ravel().tolist()):
            if v is None:
                continue
            seq = _elements(v, base.dtype)
            length = len(seq)
            if not length:
                continue
            nbytes = length * base.size
            p = _libc.calloc(length, base.size)
            if not p:
                raise MemoryError
            raw.flat[i] = (length, p)
            if base.kind == "plain":
                ctypes.memmove(p, seq.ctypes.data, nbytes)
            else:
                _lower(seq, base, np.frombuffer(_from_address(p, nbytes), base.raw), refs)


def _free(raw: np.ndarray, node: _Node, destroy_refs: bool) -> None:
    """Free the malloc'd vlen memory reachable from raw (memory form of node),
    and with destroy_refs its H5R_ref_t too. H5Treclaim would always destroy
    references, also those a conversion copied (bytewise) to the user, and
    fails on null ones."""
    if node.kind == "plain":
        return
    if node.kind == "ref":
        if destroy_refs:
            flat = np.ascontiguousarray(raw).reshape(-1)
            for i in np.flatnonzero(flat.view(np.uint8).reshape(flat.size, -1).any(axis=1)):
                _hdf5.H5Rdestroy(flat[i : i + 1].ctypes.data)
        return
    if node.kind == "compound":
        for name, member in node.members:
            _free(raw[name], member, destroy_refs)
    elif node.kind == "array":
        _free(raw, node.base, destroy_refs)
    elif node.kind == "str":
        for p in raw.ravel().tolist():
            if p:
                _libc.free(p)
    else:
        base = node.base
        for length, p in zip(raw["len"].ravel().tolist(), raw["p"].ravel().tolist(), strict=True):
            if p:
                if length and base.kind != "plain":
                    _free(np.frombuffer(_from_address(p, length * base.size), base.raw), base, destroy_refs)
                _libc.free(p)


def to_numpy(mem_type: h5t.TypeID, file_type: h5t.TypeID, buf, n: int,
             dxpl: h5py.h5p.PropID | None = None, stored: np.ndarray | None = None,
             refs: References | None = None) -> np.ndarray:
    """n elements of the user's buffer ``buf`` in memory type mem_type, as a new array of dtype_of(file_type).

    ``buf`` is any buffer-protocol object (read-only is fine) of exactly
    ``n * mem_type.get_size()`` bytes; it is never modified, and the result
    never shares memory with it.  The result is 1-D of length n, except for
    array file types, where numpy appends the array dimensions.  Values are
    those native HDF5 would store when writing ``buf`` with mem_type into a
    dataset of file_type.  ``stored`` (n elements of dtype_of(file_type)) are
    the values the elements hold now: compound members that mem_type lacks
    keep them (see `keeps_stored_members`); without it they become zeros.
    ``refs`` converts H5R_ref_t references to their stored form.
    """
    node = _plan(file_type)
    with_refs = has_refs(file_type)
    msize, fsize = mem_type.get_size(), file_type.get_size()
    src = _bytes_of(buf, n * msize)
    if n == 0:
        return np.empty(0, node.dtype)
    if mem_type == file_type:
        if node.kind == "plain":
            return np.frombuffer(src, node.dtype, count=n).copy()
        out = np.empty(n, node.dtype)  # reading the user's pointers directly copies the vlen data
        _lift(np.frombuffer(src, node.raw, count=n), node, out, refs)
        return out
    if with_refs and _custom_vlen_alloc(dxpl):
        raise TypeError("converting types that hold H5R_ref_t with a custom vlen allocator is not supported")
    tmp = np.empty(n * max(msize, fsize), dtype=np.uint8)
    tmp[: src.size] = src
    bkg = np.zeros(n * fsize, dtype=np.uint8) if _needs_bkg(mem_type, file_type) else None
    if bkg is not None and stored is not None and node.kind == "plain":
        bkg[:] = np.ascontiguousarray(stored, node.dtype).reshape(-1).view(np.uint8)
    h5t.convert(*_conversion(mem_type, file_type), n, tmp, bkg, dxpl)
    if node.kind == "plain":
        return np.frombuffer(tmp, node.dtype, count=n)
    # Every vlen block in tmp was freshly allocated by the conversion: copy it out, then free it.
    try:
        out = np.empty(n, node.dtype)
        _lift(np.frombuffer(tmp, node.raw, count=n), node, out, refs)
    finally:
        if with_refs:  # the references in tmp are the user's (copied bytewise)
            _free(np.frombuffer(tmp, node.raw, count=n), node, destroy_refs=False)
        else:
            _reclaim(file_type, tmp, n, dxpl)
    return out


def from_numpy(file_type: h5t.TypeID, mem_type: h5t.TypeID, arr: np.ndarray, out,
               dxpl: h5py.h5p.PropID | None = None, refs: References | None = None) -> None:
    """Write the elements of ``arr`` into the user's buffer ``out`` in mem_type, as native HDF5 reads them.

    ``arr`` holds n elements of dtype_of(file_type) (any shape, C order; for
    array types the array dimensions come last).  ``out`` is a writable
    buffer of exactly ``n * mem_type.get_size()`` bytes; its current contents
    serve as HDF5's background buffer, so memory compound members missing
    from the file type keep their values, as in native HDF5.  Vlen memory
    written into ``out`` belongs to the user, who frees it with H5Treclaim
    (or H5Dvlen_reclaim) and the same transfer property list; H5R_ref_t
    references (made by ``refs``) too, with H5Rdestroy or H5Treclaim.
    """
    node = _plan(file_type)
    with_refs = has_refs(file_type)
    values = _elements(arr, node.dtype)
    n = len(values)
    msize, fsize = mem_type.get_size(), file_type.get_size()
    dst = _bytes_of(out, n * msize, writable=True)
    if n == 0:
        return
    if node.kind == "plain" and mem_type == file_type:
        dst[:] = values.reshape(-1).view(np.uint8)
        return
    src_type, dst_type = _conversion(file_type, mem_type)  # fails before anything is allocated
    tmp = np.zeros(n * max(msize, fsize), dtype=np.uint8)
    if node.kind == "plain":
        tmp[: n * fsize] = values.reshape(-1).view(np.uint8)
    else:
        try:
            _lower(values, node, np.frombuffer(tmp, node.raw, count=n), refs)
        except BaseException:
            if with_refs:
                _free(np.frombuffer(tmp, node.raw, count=n), node, destroy_refs=True)
            else:
                _reclaim(file_type, tmp, n, None)
            raise
        if mem_type == file_type and not _custom_vlen_alloc(dxpl):
            dst[:] = tmp[: n * msize]  # our malloc'd blocks now belong to the user
            return
    # The conversion deep-copies vlen data (with dxpl's allocator) and overwrites tmp,
    # so keep our own blocks' pointers to free them afterwards.
    ours = tmp[: n * fsize].copy() if node.kind != "plain" else None
    try:
        bkg = dst.copy() if _needs_bkg(file_type, mem_type) else None
        h5t.convert(src_type, dst_type, n, tmp, bkg, dxpl)
        dst[:] = tmp[: n * msize]
    finally:
        if ours is not None and with_refs:  # the references now are the user's (copied bytewise)
            _free(np.frombuffer(ours, node.raw, count=n), node, destroy_refs=False)
        elif ours is not None:
            _reclaim(file_type, ours, n, None)
