"""datatypes must convert exactly as native HDF5 does.

Every case runs the real HDF5 library: the user's memory buffer is what a
native ``H5Dread`` in the memory type produces; it is written natively
(``H5Dwrite`` through ctypes, bypassing h5py's own conversion) into a dataset
of the file type, and what HDF5 stored must equal ``to_numpy``.  The other
way, whatever a native ``H5Dread`` in the memory type leaves in a buffer
must equal what ``from_numpy`` writes there.  Vlen buffers are compared
after decoding both through HDF5 and h5py, then freed with ``H5Treclaim``,
so memory allocated the wrong way crashes the test run.
"""

import ctypes
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from h5py import h5d, h5p, h5s, h5t
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from h5pyvol import datatypes  # noqa: E402

HDF5 = ctypes.PyDLL(h5t.__file__)  # dlsym finds libhdf5 through the module's dependencies
for _name in ("H5Dwrite", "H5Dread"):
    getattr(HDF5, _name).argtypes = [ctypes.c_int64] * 5 + [ctypes.c_void_p]
HDF5.H5Treclaim.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p]
ALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
HDF5.H5Pset_vlen_mem_manager.argtypes = [ctypes.c_int64, ALLOC, ctypes.c_void_p, FREE, ctypes.c_void_p]
LIBC = ctypes.CDLL(None)
LIBC.malloc.restype = ctypes.c_void_p
LIBC.malloc.argtypes = [ctypes.c_size_t]
LIBC.free.argtypes = [ctypes.c_void_p]
HVL = np.dtype([("len", np.uintp), ("p", np.uintp)])


# ---------------------------------------------------------------- native HDF5


def native_write(ds, mtype, buf, dxpl=0):
    assert HDF5.H5Dwrite(ds.id.id, mtype.id, 0, 0, dxpl, buf.ctypes.data) >= 0


def native_read(ds, mtype, buf, dxpl=0):
    assert HDF5.H5Dread(ds.id.id, mtype.id, 0, 0, dxpl, buf.ctypes.data) >= 0


def reclaim(tid, buf, dxpl=0):
    n = buf.size // tid.get_size()
    assert HDF5.H5Treclaim(tid.id, h5s.create_simple((n,)).id, dxpl, buf.ctypes.data) >= 0


def dataset(f, tid, n):
    name = f"d{len(f)}".encode()
    return h5py.Dataset(h5d.create(f.id, name, tid, h5s.create_simple((n,))))


def dataset_with(f, tid, values):
    """A dataset of type tid holding values: vlen data written by h5py, other data as raw bytes of tid."""
    ds = dataset(f, tid, len(values))
    if datatypes.has_vlen(tid):
        ds[...] = values
    else:
        ds.id.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(values), mtype=tid)
    return ds


def user_buffer(f, mem_type, values):
    """What a native H5Dread in mem_type hands the user for these values (vlen memory from HDF5)."""
    return read_back(dataset_with(f, mem_type, values), mem_type)


def read_back(ds, mtype, fill=0):
    buf = np.full(ds.shape[0] * mtype.get_size(), fill, dtype=np.uint8)
    native_read(ds, mtype, buf)
    return buf


def decoded(f, mem_type, buf):
    """The values in a memory buffer, through a native write and an h5py read."""
    ds = dataset(f, mem_type, buf.size // mem_type.get_size())
    native_write(ds, mem_type, buf)
    return ds[...]


def plain(x):
    """Comparable form of arrays holding objects; str is compared as its UTF-8 bytes."""
    if isinstance(x, str):
        return x.encode("utf-8", "surrogateescape")
    if isinstance(x, np.ndarray):
        if not x.dtype.hasobject:
            return (x.dtype, x.shape, x.tobytes())
        if x.dtype.names:
            return {name: plain(x[name]) for name in x.dtype.names}
        return (x.shape, [plain(v) for v in x.reshape(-1)])
    return x


def leaves(x):
    """All non-array objects held in x, at any depth."""
    if isinstance(x, np.ndarray):
        if x.dtype.names:
            return [v for name in x.dtype.names for v in leaves(x[name])]
        if x.dtype.hasobject:
            return [v for item in x.reshape(-1) for v in leaves(item)]
        return []
    return [x]


def check_to_numpy(f, file_type, mem_type, values):
    """to_numpy of the user's buffer equals what native HDF5 stores; the buffer is left alone."""
    buf = user_buffer(f, mem_type, values)
    before = buf.copy()
    try:
        dst = dataset(f, file_type, len(values))
        native_write(dst, mem_type, buf)
        got = datatypes.to_numpy(mem_type, file_type, memoryview(buf).toreadonly(), len(values))
        assert (buf == before).all()
        assert not np.shares_memory(got, buf)
        assert got.dtype == datatypes.dtype_of(file_type).base
        assert got.shape == (len(values), *datatypes.dtype_of(file_type).shape)
        if datatypes.has_vlen(file_type):
            assert plain(got) == plain(dst[...])
        else:
            assert got.tobytes() == read_back(dst, file_type).tobytes()
        return got
    finally:
        if datatypes.has_vlen(mem_type):
            reclaim(mem_type, buf)


def check_from_numpy(f, file_type, mem_type, values, dxpl=None):
    """from_numpy of the stored values fills the user's buffer as a native H5Dread does."""
    src = dataset_with(f, file_type, values)
    vlen = datatypes.has_vlen(mem_type)
    if datatypes.has_vlen(file_type):
        stored = src[...]
    else:
        stored = read_back(src, file_type).view(datatypes.dtype_of(file_type).base)
    fill = 0 if vlen else 0xAB  # compound members missing from the file keep the user's bytes
    native = read_back(src, mem_type, fill)
    ours = np.full_like(native, fill)
    datatypes.from_numpy(file_type, mem_type, stored, ours, dxpl)
    if not vlen:
        assert ours.tobytes() == native.tobytes()
        return
    try:
        assert plain(decoded(f, mem_type, ours)) == plain(decoded(f, mem_type, native))
    finally:
        reclaim(mem_type, native)
        reclaim(mem_type, ours, dxpl.id if dxpl is not None else 0)


def both_ways(f, file_type, mem_type, file_values, mem_values):
    check_to_numpy(f, file_type, mem_type, mem_values)
    check_from_numpy(f, file_type, mem_type, file_values)


@pytest.fixture
def f(tmp_path):
    with h5py.File(tmp_path / "native.h5", "w") as fh:
        yield fh


# ---------------------------------------------------------------- types


def t(dtype):
    return h5t.py_create(np.dtype(dtype), logical=True)


def fixed_str(size, pad=h5t.STR_NULLPAD, cset=h5t.CSET_ASCII):
    tid = h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(pad)
    tid.set_cset(cset)
    return tid


def vlen_str(cset=h5t.CSET_UTF8):
    tid = h5t.C_S1.copy()
    tid.set_size(h5t.VARIABLE)
    tid.set_cset(cset)
    return tid


def compound(*members, size=None):
    """members: (name, type) packed in order, or (name, type, offset)."""
    offset, placed = 0, []
    for m in members:
        name, tid, off = (*m, offset) if len(m) == 2 else m
        placed.append((name, tid, off))
        offset = off + tid.get_size()
    tid = h5t.create(h5t.COMPOUND, size or max(o + m.get_size() for _, m, o in placed))
    for name, member, off in placed:
        tid.insert(name.encode(), off, member)
    return tid


def enum(base, **values):
    tid = h5t.enum_create(base)
    for name, value in values.items():
        tid.enum_insert(name.encode(), value)
    return tid


def objects(items):
    a = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        a[i] = x
    return a


def structured(tid, **fields):
    a = np.zeros(len(next(iter(fields.values()))), datatypes.dtype_of(tid))
    for name, v in fields.items():
        a[name] = objects(v) if a.dtype[name].hasobject and a.dtype[name].shape == () else v
    return a


NUMBERS = [f"{order}{kind}{size}" for kind, sizes in (("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)), ("f", (2, 4, 8)))
           for size in sizes for order in ("<", ">")]


def special_values(dtype):
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        raw = [0, 1, info.max, info.min, info.max - 1, info.min + 1, info.max // 3, 100]
        if dt.kind == "i":
            raw += [-1, -100, info.min // 3]
        return np.array(raw, dtype=dt)
    info = np.finfo(dt)
    raw = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 127.9, 128.5, -129.5, 255.5, 32767.5, -32768.7, 65535.9,
           1e5, 2.0**31, -(2.0**31) - 2, 2.0**32, 2.0**63, -(2.0**63), 2.0**64, 1e20, -1e20, 1e300,
           float(info.max), float(info.min), float(info.tiny), np.inf, -np.inf, np.nan]
    with np.errstate(over="ignore"):
        return np.array(raw, dtype=np.float64).astype(dt)


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("file_dt", NUMBERS)
@pytest.mark.parametrize("mem_dt", NUMBERS)
def test_numbers(f, mem_dt, file_dt):
    file_type, mem_type = t(file_dt), t(mem_dt)
    assert datatypes.needs_conversion(mem_type, file_type) == (np.dtype(mem_dt) != np.dtype(file_dt))
    assert not datatypes.has_vlen(file_type)
    check_to_numpy(f, file_type, mem_type, special_values(mem_dt))
    check_from_numpy(f, file_type, mem_type, special_values(file_dt))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_numbers_random(f, data):
    mem_dt = np.dtype(data.draw(st.sampled_from(NUMBERS)))
    file_dt = np.dtype(data.draw(st.sampled_from(NUMBERS)))
    mem_values = data.draw(hnp.arrays(mem_dt, st.integers(1, 20)))
    file_values = data.draw(hnp.arrays(file_dt, st.integers(1, 20)))
    check_to_numpy(f, t(file_dt), t(mem_dt), mem_values)
    check_from_numpy(f, t(file_dt), t(mem_dt), file_values)


TEXT = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=30)
SEQ = hnp.arrays(np.float64, st.integers(0, 6), elements=st.floats(-1e6, 1e6, allow_nan=False))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(TEXT, SEQ, st.integers(-(2**40), 2**40)), min_size=2, max_size=8))
def test_vlen_records_random(f, rows):
    file_type = compound(("s", vlen_str()), ("v", h5t.vlen_create(t("<i2"))), ("n", t("<i4")))
    mem_type = compound(("n", t(">f8")), ("v", h5t.vlen_create(t(">f8"))), ("s", vlen_str()))
    texts, seqs, numbers = zip(*rows, strict=True)
    mem_values = structured(mem_type, s=texts, v=seqs, n=numbers)
    got = check_to_numpy(f, file_type, mem_type, mem_values)
    assert got["s"].tolist() == list(texts)
    check_from_numpy(f, file_type, mem_type, got)


def test_overflow_clips_like_hdf5(f):
    got = check_to_numpy(f, t(">i2"), t("<f8"), np.array([1e20, -1e20, 40000.0, 3.7, -3.7]))
    assert got.dtype == np.dtype(">i2")
    assert got[:4].tolist() == [32767, -32768, 32767, 3]
    out = np.zeros(3 * 1, dtype=np.uint8)
    datatypes.from_numpy(t("<i2"), t("<u1"), np.array([-5, 300, 7], "<i2"), out)
    assert out.tolist() == [0, 255, 7]


def test_byte_swap(f):
    got = check_to_numpy(f, t(">i4"), t("<i4"), np.array([1, 0x01020304], "<i4"))
    assert got.tobytes() == b"\0\0\0\1\1\2\3\4"
    out = bytearray(8)
    datatypes.from_numpy(t(">f4"), t("<f4"), np.array([1.5, -2.0], ">f4"), out)
    assert np.frombuffer(out, "<f4").tolist() == [1.5, -2.0]


def test_equal_types_copy(f):
    values = np.arange(5, dtype="<i8")
    got = datatypes.to_numpy(t("<i8"), t("<i8"), values.tobytes(), 5)
    assert got.tolist() == list(range(5)) and got.flags.writeable
    assert not datatypes.needs_conversion(t("<i8"), t("<i8"))


# ---------------------------------------------------------------- bool and enums


def test_bool(f):
    boolean = t("?")
    wide_bool = enum(h5t.STD_I16BE, FALSE=0, TRUE=1)
    assert datatypes.dtype_of(boolean) == np.dtype("?")
    # h5py says bool, whose itemsize is wrong: keep the enum
    assert h5py.check_enum_dtype(datatypes.dtype_of(wide_bool)) == {"FALSE": 0, "TRUE": 1}
    assert datatypes.dtype_of(wide_bool) == np.dtype(">i2")
    values = np.array([True, False, True])
    both_ways(f, boolean, boolean, values, values)
    both_ways(f, boolean, wide_bool, values, np.array([1, 0, 1], ">i2"))
    both_ways(f, wide_bool, boolean, np.array([0, 1, 1], ">i2"), values)


def test_enums_map_by_name(f):
    file_type = enum(h5t.STD_I8LE, RED=0, GREEN=1, BLUE=2)
    mem_type = enum(h5t.STD_I16BE, BLUE=10, RED=20, GREEN=30)
    assert h5py.check_enum_dtype(datatypes.dtype_of(file_type)) == {"RED": 0, "GREEN": 1, "BLUE": 2}
    got = check_to_numpy(f, file_type, mem_type, np.array([10, 20, 30, 50], ">i2"))
    assert got.tolist() == [2, 0, 1, -1]  # a value without a name becomes all ones
    check_from_numpy(f, file_type, mem_type, np.array([0, 1, 2, 2, 7], "<i1"))
    # HDF5 1.14.6 mis-maps sources with names the destination lacks: whatever it does, we do.
    wider = enum(h5t.STD_I16LE, BLUE=10, RED=20, GREEN=30, BLACK=40)
    check_to_numpy(f, file_type, wider, np.array([10, 20, 30, 40], "<i2"))


# ---------------------------------------------------------------- strings


PADS = [h5t.STR_NULLTERM, h5t.STR_NULLPAD, h5t.STR_SPACEPAD]
WORDS = [b"", b"a", b"ab", b"abc", b"a c", b"abcdefgh", b"abcdefghijk"]


@pytest.mark.parametrize("file_pad", PADS)
@pytest.mark.parametrize("mem_pad", PADS)
@pytest.mark.parametrize(("file_size", "mem_size"), [(3, 8), (8, 3), (5, 5)])
def test_fixed_strings(f, file_size, mem_size, file_pad, mem_pad):
    file_type, mem_type = fixed_str(file_size, file_pad), fixed_str(mem_size, mem_pad)
    assert datatypes.dtype_of(file_type) == np.dtype(f"S{file_size}")
    both_ways(f, file_type, mem_type, np.array(WORDS, f"S{file_size}"), np.array(WORDS, f"S{mem_size}"))


def test_fixed_utf8_strings(f):
    file_type = fixed_str(12, h5t.STR_NULLTERM, h5t.CSET_UTF8)
    mem_type = fixed_str(6, h5t.STR_SPACEPAD, h5t.CSET_UTF8)
    assert h5py.check_string_dtype(datatypes.dtype_of(file_type)).encoding == "utf-8"
    words = [w.encode() for w in ["", "é", "héllo", "wörld!"]]
    both_ways(f, file_type, mem_type, np.array(words, "S12"), np.array(words, "S6"))
    with pytest.raises(AssertionError):  # native HDF5 does not convert fixed ASCII <-> UTF-8
        native_write(dataset(f, file_type, 4), fixed_str(6), np.zeros(24, np.uint8))
    with pytest.raises(TypeError):
        datatypes.to_numpy(fixed_str(6), file_type, np.array(words, "S6"), 4)


UTF8_WORDS = ["", "a", "héllo wörld", "日本語", "emoji 🎉", "x" * 1000]
ASCII_WORDS = [b"", b"a", b"hello world", b"y" * 1000]


@pytest.mark.parametrize(("cset", "words", "kind"), [(h5t.CSET_UTF8, UTF8_WORDS, str),
                                                     (h5t.CSET_ASCII, ASCII_WORDS, bytes)])
def test_vlen_strings(f, cset, words, kind):
    vs = vlen_str(cset)
    assert h5py.check_string_dtype(datatypes.dtype_of(vs)).length is None
    assert datatypes.has_vlen(vs) and datatypes.needs_conversion(vs, vs)
    got = check_to_numpy(f, vs, vs, objects(words))
    assert got.tolist() == list(words) and all(type(v) is kind for v in got)
    check_from_numpy(f, vs, vs, objects(words))
    # the connector may hand back str or bytes, and None for a never-written string
    out = np.zeros(3, np.uintp)
    datatypes.from_numpy(vs, vs, objects([words[2], words[2].encode() if kind is str else words[2], None]), out)
    assert datatypes.to_numpy(vs, vs, out, 3).tolist() == [words[2], words[2], kind()]
    reclaim(vs, out)


def test_fixed_and_vlen_strings(f):
    """Converted in memory by h5py's converters, which HDF5 uses once h5py is loaded."""
    vs, fixed = vlen_str(h5t.CSET_ASCII), fixed_str(4, h5t.STR_NULLPAD)
    # vlen in memory, fixed in the file: native dataset I/O works, compare with it
    both_ways(f, fixed, vs, np.array([b"", b"ab", b"abcd"], "S4"), objects([b"", b"ab", b"abcdefg"]))
    # fixed in memory, vlen in the file: native dataset I/O runs h5py's converters on the file
    # form of the vlen type (corrupt writes, crashing reads), so check the values directly
    got = datatypes.to_numpy(fixed, vs, np.array([b"", b"ab", b"abcd"], "S4"), 3)
    assert got.tolist() == [b"", b"ab", b"abcd"]
    out = np.full(8, 0xAB, np.uint8)
    datatypes.from_numpy(vs, fixed, objects([b"abcdefg", b"x"]), out)
    assert out.tobytes() == b"abcdx\0\0\0"


def test_vlen_ascii_utf8_bytes_pass_through(f):
    """Native dataset I/O hands vlen string bytes over between ASCII and UTF-8 unchanged."""
    ascii_vs, utf8_vs = vlen_str(h5t.CSET_ASCII), vlen_str(h5t.CSET_UTF8)
    both_ways(f, utf8_vs, ascii_vs, objects(["é", "ab"]), objects([b"\xc3\xa9", b"ab"]))
    both_ways(f, ascii_vs, utf8_vs, objects([b"\xc3\xa9", b"ab"]), objects(["é", "ab"]))
    file_type = compound(("s", utf8_vs), ("n", t("<i4")))
    mem_type = compound(("n", t(">i8")), ("s", ascii_vs))
    got = check_to_numpy(f, file_type, mem_type, structured(mem_type, n=[1, 2], s=[b"\xc3\xa9", b"ab"]))
    assert got["s"].tolist() == ["é", "ab"]
    check_from_numpy(f, file_type, mem_type, structured(file_type, n=[1, 2], s=["é", "ab"]))


FRESH_PROCESS = """
import ctypes, sys
import numpy as np
from h5py import h5t
from h5pyvol import datatypes

def vs(cset):
    tid = h5t.C_S1.copy(); tid.set_size(h5t.VARIABLE); tid.set_cset(cset); return tid

def record(*members):
    tid = h5t.create(h5t.COMPOUND, 16)
    for off, (name, member) in enumerate(members):
        tid.insert(name, 8 * off, member)
    return tid

mem = record((b"n", h5t.STD_I64BE), (b"s", vs(h5t.CSET_ASCII)))
file = record((b"s", vs(h5t.CSET_UTF8)), (b"n", h5t.STD_I32LE))
texts = [ctypes.create_string_buffer(b"\\xc3\\xa9"), ctypes.create_string_buffer(b"ab")]
buf = np.array([(1, ctypes.addressof(texts[0])), (2, ctypes.addressof(texts[1]))], [("n", ">i8"), ("s", np.uintp)])
if sys.argv[1] == "write":
    got = datatypes.to_numpy(mem, file, buf, 2)
    print(got["s"].tolist(), got["n"].tolist())
else:
    out = np.zeros(32, np.uint8)
    datatypes.from_numpy(file, mem, np.array([("é", 1)], datatypes.dtype_of(file)).repeat(2), out)
    print([ctypes.string_at(int(p)) for p in out.view([("n", ">i8"), ("s", np.uintp)])["s"]])
"""


@pytest.mark.parametrize(("direction", "expected"), [("write", "['é', 'ab'] [1, 2]"),
                                                     ("read", "[b'\\xc3\\xa9', b'\\xc3\\xa9']")])
def test_vlen_cset_pass_through_in_fresh_process(direction, expected):
    """HDF5 refuses a *new* ASCII <-> UTF-8 vlen path; as the first conversion of a process we must not."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(datatypes.__file__)))
    code = f"import sys; sys.path.insert(0, {root!r})\n" + FRESH_PROCESS
    proc = subprocess.run([sys.executable, "-c", code, direction], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_vlen_string_errors():
    vs = vlen_str()
    out = np.zeros(2, np.uintp)
    with pytest.raises(ValueError):
        datatypes.from_numpy(vs, vs, objects(["ok", "nul\0inside"]), out)
    with pytest.raises(TypeError):
        datatypes.from_numpy(vs, vs, objects(["ok", 5]), out)
    with pytest.raises(UnicodeEncodeError):
        datatypes.from_numpy(vlen_str(h5t.CSET_ASCII), vlen_str(h5t.CSET_ASCII), objects(["é"]),
                             np.zeros(1, np.uintp))
    assert out.tolist() == [0, 0]  # failures leave the user's buffer alone


def test_invalid_utf8_round_trips():
    vs = vlen_str()
    raw = b"ok\xff\xfe"
    out = np.zeros(1, np.uintp)
    datatypes.from_numpy(vs, vs, objects([raw]), out)
    text = datatypes.to_numpy(vs, vs, out, 1)[0]
    assert isinstance(text, str) and text.encode("utf-8", "surrogateescape") == raw
    reclaim(vs, out)


# ---------------------------------------------------------------- opaque and arrays


def test_opaque(f):
    tid = h5t.create(h5t.OPAQUE, 5)
    tid.set_tag(b"five bytes")
    assert datatypes.dtype_of(tid) == np.dtype("V5")
    values = np.array([b"abcde", b"\0\1\2\3\4"], "V5")
    both_ways(f, tid, tid, values, values)
    other = h5t.create(h5t.OPAQUE, 5)
    other.set_tag(b"another tag")
    with pytest.raises(TypeError):  # HDF5 has no conversion between opaque tags
        datatypes.to_numpy(tid, other, values.tobytes(), 2)


def test_array_types(f):
    file_type = h5t.array_create(t("<i4"), (2, 3))
    mem_type = h5t.array_create(t(">f8"), (2, 3))
    assert datatypes.dtype_of(file_type) == np.dtype(("<i4", (2, 3)))
    both_ways(f, file_type, mem_type, np.arange(24, dtype="<i4").reshape(4, 2, 3),
              np.array([[[1e10, -1.5, 2.5], [0, 7, 1e300]]] * 3, ">f8"))


def test_array_of_compounds(f):
    file_type = h5t.array_create(compound(("x", t("<i2")), ("y", t("<f4"))), (3,))
    mem_type = h5t.array_create(compound(("y", t(">f8")), ("x", t(">i8"))), (3,))
    fv = np.zeros((2, 3), datatypes.dtype_of(file_type).base)
    fv["x"], fv["y"] = [[1, 2, 3], [4, 5, 6]], [[0.5, 1.5, 2.5], [3.5, 4.5, 5.5]]
    mv = np.zeros((2, 3), datatypes.dtype_of(mem_type).base)
    mv["x"], mv["y"] = [[1, 1 << 40, 3], [4, -5, 6]], [[0.5, 1e300, 2.5], [3.5, 4.5, 5.5]]
    both_ways(f, file_type, mem_type, fv, mv)


# ---------------------------------------------------------------- compounds


def test_compound_subset_reorder_nested(f):
    inner_f = compound(("x", t("<f4")), ("y", t(">i2")))
    inner_m = compound(("y", t("<i8")), ("x", t(">f8")))
    file_type = compound(("a", t("<i4"), 0), ("b", inner_f, 8), ("c", fixed_str(4), 16), size=24)
    mem_type = compound(("c", fixed_str(6, h5t.STR_NULLTERM)), ("b", inner_m), ("extra", t("<u2")))
    fv = np.zeros(3, datatypes.dtype_of(file_type))
    fv["a"], fv["b"]["x"], fv["b"]["y"], fv["c"] = [1, 2, 3], [0.5, -1, 2], [7, 8, -9], [b"", b"ab", b"abcd"]
    mv = np.zeros(3, datatypes.dtype_of(mem_type))
    mv["b"]["x"], mv["b"]["y"], mv["c"] = [1e300, -1, 2], [1 << 40, 8, -9], [b"", b"ab", b"abcde"]
    mv["extra"] = 99
    got = check_to_numpy(f, file_type, mem_type, mv)
    assert got["a"].tolist() == [0, 0, 0]  # missing from the memory type: zero, as in a fresh dataset
    check_from_numpy(f, file_type, mem_type, fv)  # and "extra" keeps the user's bytes


def test_complex_compound(f):
    file_type = compound(("r", t("<f8")), ("i", t("<f8")))
    mem_type = compound(("r", t(">f4")), ("i", t(">f4")))
    assert datatypes.dtype_of(file_type) == np.dtype("<c16")
    assert datatypes.dtype_of(mem_type) == np.dtype(">c8")
    both_ways(f, file_type, mem_type, np.array([1 + 2j, -3.5j]), np.array([1e30 + 1j, 0.5 - 2j], ">c8"))


def test_compound_with_vlen_members(f):
    file_type = compound(("id", t("<i4")), ("name", vlen_str()), ("tags", h5t.vlen_create(t("<i2"))))
    mem_type = compound(("tags", h5t.vlen_create(t(">f8"))), ("name", vlen_str()), ("id", t(">i8")),
                        ("note", vlen_str(h5t.CSET_ASCII)))
    names = ["", "héllo", "x" * 300]
    fv = structured(file_type, id=[1, 2, 3], name=names,
                    tags=[np.array([], "<i2"), np.array([1, -2], "<i2"), np.arange(50, dtype="<i2")])
    mv = structured(mem_type, id=[1 << 40, -2, 3], name=names, note=[b"n1", b"", b"n3"],
                    tags=[np.array([1e20, -1e20, 2.5]), np.array([], ">f8"), np.arange(50.0)])
    got = check_to_numpy(f, file_type, mem_type, mv)
    assert got["tags"][0].tolist() == [32767, -32768, 2]
    assert got["name"].tolist() == names and all(type(v) is str for v in leaves(got["name"]))
    check_from_numpy(f, file_type, mem_type, fv)
    check_to_numpy(f, file_type, file_type, fv)
    check_from_numpy(f, file_type, file_type, fv)


# ---------------------------------------------------------------- vlen sequences


def test_vlen_of_numbers(f):
    file_type, mem_type = h5t.vlen_create(t("<i2")), h5t.vlen_create(t(">f8"))
    assert h5py.check_vlen_dtype(datatypes.dtype_of(file_type)) == np.dtype("<i2")
    seqs = [np.array([1e20, -1e20, 0.5, np.nan]), np.array([], ">f8"), np.arange(1000.0)]
    got = check_to_numpy(f, file_type, mem_type, objects(seqs))
    assert got[0].tolist() == [32767, -32768, 0, 0] and got[0].flags.writeable
    check_from_numpy(f, file_type, mem_type, objects([np.arange(5, dtype="<i2"), np.array([], "<i2")]))
    same = h5t.vlen_create(t("<i4"))
    both_ways(f, same, same, objects([np.arange(3, dtype="<i4"), np.array([], "<i4")]),
              objects([np.arange(7, dtype="<i4"), np.arange(2, dtype="<i4")]))


def hand_built_records(seqs, layout, keep):
    """Memory form of a vlen of records whose "s" field is a vlen string, in test-owned memory
    (h5py cannot write vlen sequences of compounds holding vlen strings)."""
    outer = np.zeros(len(seqs), HVL)
    for i, seq in enumerate(seqs):
        records = np.zeros(len(seq), layout)
        for j, (a, text) in enumerate(seq):
            keep.append(ctypes.create_string_buffer(text))
            records[j] = (a, ctypes.addressof(keep[-1]))
        keep.append(records)
        outer[i] = (len(seq), records.ctypes.data if len(seq) else 0)
    return outer.view(np.uint8)


def records_of(buf, layout):
    """Decode a hand-built-style buffer back to lists of (a, bytes), reading C memory directly."""
    result = []
    for length, p in np.frombuffer(buf, HVL).tolist():
        raw = ctypes.string_at(p, length * layout.itemsize) if length else b""
        result.append([(a, ctypes.string_at(sp) if sp else b"") for a, sp in np.frombuffer(raw, layout).tolist()])
    return result


def test_vlen_of_compounds(f):
    """Checked by reading C memory directly: h5py 3.16 cannot read an empty vlen of such compounds."""
    file_type = h5t.vlen_create(compound(("a", t("<i4")), ("s", vlen_str(h5t.CSET_ASCII))))
    mem_type = h5t.vlen_create(compound(("a", t(">f8")), ("s", vlen_str(h5t.CSET_ASCII))))
    file_layout = np.dtype({"names": ["a", "s"], "formats": ["<i4", np.uintp], "offsets": [0, 4], "itemsize": 12})
    mem_layout = np.dtype([("a", ">f8"), ("s", np.uintp)])
    keep = []
    buf = hand_built_records([[(1.5, b"x"), (1e20, b"")], [], [(-7, b"z" * 99)]], mem_layout, keep)
    dst = dataset(f, file_type, 3)
    native_write(dst, mem_type, buf)
    stored_raw = read_back(dst, file_type)
    expected = records_of(stored_raw, file_layout)
    assert expected == [[(1, b"x"), (2**31 - 1, b"")], [], [(-7, b"z" * 99)]]
    got = datatypes.to_numpy(mem_type, file_type, buf, 3)
    assert [list(zip(seq["a"].tolist(), seq["s"].tolist(), strict=True)) for seq in got] == expected
    assert all(type(v) is bytes for v in leaves(got))  # ASCII vlen strings are bytes
    # and back: the stored values, read natively in the memory type
    native = read_back(dst, mem_type)
    ours = np.zeros_like(native)
    datatypes.from_numpy(file_type, mem_type, got, ours)
    try:
        assert records_of(ours, mem_layout) == records_of(native, mem_layout)
    finally:
        reclaim(mem_type, native)
        reclaim(mem_type, ours)
        reclaim(file_type, stored_raw)
    same = datatypes.to_numpy(file_type, file_type, hand_built_records([[(1, b"q")], []], file_layout, keep), 2)
    assert same[0]["s"].tolist() == [b"q"] and same[1].shape == (0,)


def test_array_of_vlen_strings(f):
    tid = h5t.array_create(vlen_str(), (2,))
    values = np.array([["a", "bé"], ["", "c" * 50]], dtype=object)
    got = check_to_numpy(f, tid, tid, values)
    assert got.shape == (2, 2) and got.tolist() == values.tolist()
    assert all(type(v) is str for v in leaves(got))
    check_from_numpy(f, tid, tid, values)


def hand_built_nested(seqs):
    """Memory form of vlen<vlen<int16>>, in test-owned memory (h5py cannot write nested vlen)."""
    keep = []
    outer = np.zeros(len(seqs), HVL)
    for i, inner in enumerate(seqs):
        level = np.zeros(len(inner), HVL)
        for j, a in enumerate(inner):
            a = np.ascontiguousarray(a, "<i2")
            keep.append(a)
            level[j] = (len(a), a.ctypes.data if len(a) else 0)
        keep.append(level)
        outer[i] = (len(inner), level.ctypes.data if len(inner) else 0)
    return outer.view(np.uint8), keep


def test_vlen_of_vlen(f):
    file_type = h5t.vlen_create(h5t.vlen_create(t("<i2")))
    mem_type = h5t.vlen_create(h5t.vlen_create(t(">i8")))
    seqs = [[np.arange(3), np.array([], "<i2")], [], [np.array([-7])]]
    buf, keep = hand_built_nested(seqs)
    src = dataset(f, file_type, len(seqs))
    native_write(src, file_type, buf)
    stored = src[...]
    got = datatypes.to_numpy(file_type, file_type, buf, len(seqs))
    assert plain(got) == plain(stored)
    native = read_back(src, mem_type)
    ours = np.zeros_like(native)
    datatypes.from_numpy(file_type, mem_type, stored, ours)
    try:
        assert plain(decoded(f, mem_type, ours)) == plain(decoded(f, mem_type, native))
        assert plain(datatypes.to_numpy(mem_type, file_type, ours, len(seqs))) == plain(stored)
    finally:
        reclaim(mem_type, native)
        reclaim(mem_type, ours)
    del keep


# ---------------------------------------------------------------- ownership


def test_custom_vlen_allocator_is_honoured(f):
    """With H5Pset_vlen_mem_manager, HDF5 allocates with the user's functions: so must from_numpy."""
    calls = {"alloc": 0, "free": 0}

    @ALLOC
    def alloc(size, info):
        calls["alloc"] += 1
        return LIBC.malloc(size)

    @FREE
    def free(p, info):
        calls["free"] += 1
        LIBC.free(p)

    dxpl = h5p.create(h5p.DATASET_XFER)
    assert HDF5.H5Pset_vlen_mem_manager(dxpl.id, alloc, None, free, None) >= 0
    vs = vlen_str()
    check_from_numpy(f, vs, vs, objects(["a", "b", "c"]), dxpl)
    assert calls == {"alloc": 3, "free": 3}
    seq = h5t.vlen_create(t("<i4"))
    values = objects([np.arange(3, dtype="<i4"), np.array([], "<i4")])
    check_from_numpy(f, seq, h5t.vlen_create(t(">i2")), values, dxpl)
    assert calls == {"alloc": 4, "free": 4}  # an empty sequence allocates nothing


def _in_use():
    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]

    LIBC.mallinfo2.restype = Mallinfo2
    return LIBC.mallinfo2().uordblks


@pytest.mark.skipif(not hasattr(LIBC, "mallinfo2"), reason="needs glibc's mallinfo2")
def test_no_leaks():
    """Repeated conversions with vlen data leave the C heap where it was."""
    file_type = compound(("id", t("<i4")), ("name", vlen_str()), ("tags", h5t.vlen_create(t("<i2"))))
    mem_type = compound(("name", vlen_str()), ("tags", h5t.vlen_create(t(">i8"))), ("id", t(">i8")))
    n = 2000
    values = structured(file_type, id=np.arange(n), name=[f"name {i}" for i in range(n)],
                        tags=[np.arange(i % 9, dtype="<i2") for i in range(n)])
    out = np.zeros(n * mem_type.get_size(), np.uint8)
    bad_name, bad_tags = values.copy(), values.copy()
    bad_name["name"][-1] = "NUL\0"  # fails once every other name is allocated
    bad_tags["tags"][-1] = np.array(["text"])  # fails once (nearly) everything is allocated

    def cycle():
        for _ in range(5):
            out[:] = 0
            for bad in (bad_name, bad_tags):
                with pytest.raises((ValueError, TypeError)):
                    datatypes.from_numpy(file_type, mem_type, bad, out)
            datatypes.from_numpy(file_type, mem_type, values, out)
            datatypes.to_numpy(mem_type, file_type, out, n)
            datatypes.to_numpy(file_type, file_type, values_buf, n)
            reclaim(mem_type, out)

    values_buf = np.zeros(n * file_type.get_size(), np.uint8)
    datatypes.from_numpy(file_type, file_type, values, values_buf)
    cycle()
    start = _in_use()
    for _ in range(4):
        cycle()
    grown = _in_use() - start
    reclaim(file_type, values_buf)
    assert grown < 200_000, grown  # one leaked cycle would be ~1 MB


# ---------------------------------------------------------------- API details


def test_dtype_of_conventions():
    assert datatypes.dtype_of(t("<f2")) == np.dtype("<f2")
    assert h5py.check_string_dtype(datatypes.dtype_of(vlen_str(h5t.CSET_ASCII))).encoding == "ascii"
    nested = h5t.vlen_create(compound(("s", vlen_str())))
    base = h5py.check_vlen_dtype(datatypes.dtype_of(nested))
    assert h5py.check_string_dtype(base["s"]).length is None
    odd = h5t.IEEE_F32LE.copy()
    odd.set_fields(31, 23, 8, 0, 23)
    odd.set_ebias(100)  # not IEEE: numpy cannot read it, so connectors get the raw bytes
    assert datatypes.dtype_of(odd) == np.dtype("V4")


@pytest.mark.parametrize("tid", [h5t.STD_REF_OBJ, h5t.STD_REF_DSETREG,
                                 compound(("r", h5t.STD_REF_OBJ)), h5t.vlen_create(h5t.STD_REF_OBJ)])
def test_old_style_references_are_bytes(tid):
    """hobj_ref_t and hdset_reg_ref_t are plain bytes to the connector."""
    dt = datatypes.dtype_of(tid)
    leaf = h5py.check_vlen_dtype(dt) or dt
    leaf = leaf["r"] if leaf.names else leaf
    assert leaf == np.dtype(f"V{h5t.STD_REF_OBJ.get_size() if leaf.itemsize == 8 else 12}")


def std_ref() -> h5t.TypeID:
    """HDF5's H5T_STD_REF (h5py has no name for it)."""
    from h5pyvol import _hdf5

    return _hdf5.borrow(ctypes.c_int64.in_dll(_hdf5.lib(), "H5T_STD_REF_g").value, h5t.typewrap).copy()


@pytest.mark.parametrize("make", [std_ref, lambda: compound(("r", std_ref())), lambda: h5t.vlen_create(std_ref())])
def test_new_style_references_are_stored_bytes(make):
    """H5R_ref_t holds pointers: connectors see its stored form, which only
    HDF5 can make, through a file (test_references.py covers that)."""
    tid = make()
    dt = datatypes.dtype_of(tid)
    leaf = h5py.check_vlen_dtype(dt) or dt
    assert (leaf["r"] if leaf.names else leaf) == datatypes.REF_DTYPE
    assert datatypes.has_vlen(tid) and datatypes.needs_conversion(tid, tid)
    if tid.get_class() != h5t.VLEN:  # (an empty sequence holds no reference to convert)
        with pytest.raises(TypeError, match="H5R_ref_t references needs the file"):
            datatypes.to_numpy(tid, tid, bytes(tid.get_size()), 1)
    with pytest.raises(TypeError, match="HDF5 cannot convert"):
        datatypes.from_numpy(t("<i8"), tid, np.zeros(1, "<i8"), bytearray(tid.get_size()))


def test_buffer_checks():
    with pytest.raises(ValueError):
        datatypes.to_numpy(t("<i4"), t("<i8"), bytes(7), 2)
    with pytest.raises(ValueError):
        datatypes.from_numpy(t("<i4"), t("<i8"), np.zeros(2, "<i4"), bytes(16))
    with pytest.raises(ValueError):
        datatypes.from_numpy(t("<i4"), t("<i8"), np.zeros(2, "<i4"), bytearray(15))
    with pytest.raises(TypeError):
        datatypes.from_numpy(t("<i4"), t("<i8"), np.zeros(2, "<f8"), bytearray(16))
    assert datatypes.to_numpy(vlen_str(), vlen_str(), b"", 0).shape == (0,)
    datatypes.from_numpy(vlen_str(), vlen_str(), objects([]), bytearray())
    out = bytearray(16)
    datatypes.from_numpy(t("<i4"), t("<i8"), np.array([[1], [2]], "<i2"), out)  # any shape, safe cast
    assert np.frombuffer(out, "<i8").tolist() == [1, 2]
