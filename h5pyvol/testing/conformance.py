"""The conformance suite every connector runs, ours and third parties'.

Subclass `ConnectorConformance` in a test module, set `connector` (and
`options`), and pytest runs every check below against your connector:

    from h5pyvol.testing import ConnectorConformance

    class TestMyStore(ConnectorConformance):
        connector = "mystore"                # or "package.module:Class"
        options = {"root": "/tmp/store"}     # or override the connector_options fixture

Each check works through h5py, as users do, and most compare the result with
the same calls on a native HDF5 file (the in-memory "core" driver), so the
suite measures fidelity rather than restating the implementation. Checks for
optional features are skipped, never failed, where the connector's capability
booleans say the feature is not offered (`supports_resize`,
`supports_committed_datatypes`, `supports_creation_order`,
`supports_link_count_changes`, `supports_soft_links`, `supports_attributes`,
`supports_fill_values`); what has a default in `h5pyvol.connector` (storage
sizes, shards, blobs, attribute renames...) is checked for every connector.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any, ClassVar

import h5py
import numpy as np
import pytest

import h5pyvol
from h5pyvol import registry

_native_counter = itertools.count()

# (name, dtype, values) for the datatype round trips.
DTYPE_CASES: list[tuple[str, Any, Any]] = [
    ("int8", "i1", [-128, 0, 127]),
    ("uint16_be", ">u2", [0, 1, 65535]),
    ("int32", "<i4", [-(2**31), 7, 2**31 - 1]),
    ("int64_be", ">i8", [-(2**63), 0, 2**63 - 1]),
    ("float16", "f2", [0.5, -2.0, 65504.0]),
    ("float32_be", ">f4", [1.5, -0.0, 3.25e38]),
    ("float64", "f8", [np.pi, -np.inf, np.nan]),
    ("complex128", "c16", [1 + 2j, -3j, 0]),
    ("bool", "?", [True, False, True]),
    ("fixed_ascii", "S5", [b"ab", b"hello", b""]),
    ("vlen_utf8", h5py.string_dtype("utf-8"), ["αβγ", "", "plain"]),
    ("vlen_ascii", h5py.string_dtype("ascii"), [b"x", b"yz", b""]),
    ("enum", h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 42}, basetype="u1"), [0, 42, 1]),
    ("compound", np.dtype([("id", "<i8"), ("pos", "<f4", (3,)), ("tag", "S3")]),
     [(1, (0.5, 1.5, 2.5), b"abc"), (2, (0, 0, 0), b""), (-3, (1, 2, 3), b"xy")]),
    ("nested_compound", np.dtype([("a", [("x", "u1"), ("y", ">f8")]), ("b", "i2")]),
     [((1, 2.0), 3), ((4, -5.5), 6), ((0, 0.0), 0)]),
    ("array", np.dtype(("<i4", (2, 2))), [[[1, 2], [3, 4]], [[0, 0], [0, 0]], [[-1, -2], [-3, -4]]]),
    ("opaque", np.dtype("V4"), [b"\x00\x01\x02\x03", b"abcd", b"\xff\xff\xff\xff"]),
    ("vlen_int", h5py.vlen_dtype(np.dtype("i4")), [np.arange(3, dtype="i4"), np.array([], "i4"), np.array([7], "i4")]),
]

# Selections as numpy index expressions on a (20, 30) dataset.
SELECTIONS = {
    "all": np.s_[...],
    "row": np.s_[3],
    "block": np.s_[2:9, 5:17],
    "strided": np.s_[1:19:3, ::4],
    "single": np.s_[7, 11],
    "column_tail": np.s_[-5:, 29],
    "fancy_rows": np.s_[[0, 4, 5, 19], :],
    "bool_mask": (np.arange(20) % 3 == 0),
}


def _values(dtype: Any, values: Any) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.hasobject:
        out = np.empty(len(values), dtype=dt)
        for i, v in enumerate(values):
            out[i] = v
        return out
    return np.array(values, dtype=dt)


def assert_same(actual: Any, expected: Any) -> None:
    """Equal values, dtypes and shapes, element by element for objects."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    if actual.dtype.hasobject:
        for a, e in zip(actual.ravel(), expected.ravel(), strict=True):
            np.testing.assert_array_equal(a, e)
    else:
        np.testing.assert_array_equal(actual, expected)


class ConnectorConformance:
    """Behaviour every h5pyvol connector must show. Subclass and set `connector`."""

    connector: ClassVar[str] = ""
    options: ClassVar[dict[str, str]] = {}

    # ------------------------------------------------------------ helpers

    @pytest.fixture
    def cls(self):
        return registry.connector_class(self.connector)

    @pytest.fixture
    def connector_options(self) -> dict[str, str]:
        """The connector's options. Override this fixture when they are only
        known at run time (a server's address, say)."""
        return dict(self.options)

    @pytest.fixture
    def open_file(self, connector_options):
        """open_file(name, mode) -> h5py.File through the connector; names are unique per test."""
        opened: list[h5py.File] = []
        prefix = f"conformance-{uuid.uuid4().hex[:12]}"

        def opener(name: str = "f.h5", mode: str = "a", **kw: Any) -> h5py.File:
            f = h5pyvol.File(f"{prefix}-{name}", mode, self.connector, **connector_options, **kw)
            opened.append(f)
            return f

        yield opener
        for f in opened:
            f.close()

    @staticmethod
    def native(**kw: Any) -> h5py.File:
        """A native HDF5 file in memory, for comparisons."""
        return h5py.File(f"native-{next(_native_counter)}.h5", "w", driver="core", backing_store=False, **kw)

    def require(self, cls, capability: str) -> None:
        if not getattr(cls, capability, False):
            pytest.skip(f"{self.connector} does not offer {capability}")

    # ------------------------------------------------------------ files

    def test_connector_is_used(self, open_file):
        with open_file("a.h5", "w") as f:
            assert h5pyvol.connector_name(f.id) == "h5pyvol"

    def test_create_close_reopen(self, open_file):
        with open_file("a.h5", "w") as f:
            f["x"] = np.arange(6).reshape(2, 3)
        with open_file("a.h5", "r") as f:
            assert_same(f["x"][()], np.arange(6).reshape(2, 3))
            assert f.mode == "r"

    def test_missing_file(self, open_file):
        with pytest.raises(FileNotFoundError):
            open_file("never.h5", "r")

    def test_exclusive_create(self, open_file):
        open_file("x.h5", "w").close()
        with pytest.raises(FileExistsError):
            open_file("x.h5", "x")

    def test_truncate_discards_content(self, open_file):
        with open_file("t.h5", "w") as f:
            f["old"] = 1
        with open_file("t.h5", "w") as f:
            assert "old" not in f

    def test_read_only_file_refuses_writes(self, open_file):
        open_file("ro.h5", "w").close()
        with open_file("ro.h5", "r") as f:
            with pytest.raises(Exception, match="read-only"):
                f.create_group("g")

    # ------------------------------------------------------------ groups and links

    def test_groups_and_paths(self, open_file):
        with open_file() as f:
            f.create_group("a/b/c")
            f["a"].create_group("d")
            assert sorted(f["a"]) == ["b", "d"]
            assert isinstance(f["/a/b/c"], h5py.Group)
            assert f["a/b"].name == "/a/b"
            assert "a/b/c" in f and "a/x" not in f
            with pytest.raises(ValueError):
                f.create_group("a/b")

    def test_missing_object_is_keyerror(self, open_file):
        with open_file() as f:
            with pytest.raises(KeyError, match="nope"):
                f["nope"]

    def test_links(self, open_file, cls):
        with open_file() as f:
            f["data"] = np.arange(4)
            f["hard"] = f["data"]
            assert_same(f["hard"][()], np.arange(4))
            del f["data"]
            assert_same(f["hard"][()], np.arange(4))
            if cls.supports_soft_links:
                f["soft"] = h5py.SoftLink("/hard")
                assert_same(f["soft"][()], np.arange(4))
                assert f.get("soft", getlink=True).path == "/hard"
                f["dangling"] = h5py.SoftLink("/nowhere")
                assert "dangling" in f.keys() and f.get("dangling") is None
            f.move("hard", "moved")
            assert "hard" not in f and "moved" in f

    def test_iteration_orders_match_native(self, open_file, cls):
        self.require(cls, "supports_creation_order")
        names = ["zeta", "alpha", "Mid", "beta", "ä-umlaut"]
        results = []
        for f in (open_file(track_order=True), self.native(track_order=True)):
            for n in names:
                f.create_group(n)
            visited: list[str] = []
            f.visit(visited.append)
            results.append((list(f), visited))
        assert results[0] == results[1]

    def test_visit_nested_matches_native(self, open_file):
        results = []
        for f in (open_file(), self.native()):
            f.create_group("b/c")
            f["a"] = 1
            f["b/d"] = 2
            seen: list[tuple[str, str]] = []
            f.visititems(lambda name, obj, seen=seen: seen.append((name, type(obj).__name__)))
            results.append(seen)
        assert results[0] == results[1]

    # ------------------------------------------------------------ datasets

    @pytest.mark.parametrize("case", DTYPE_CASES, ids=[c[0] for c in DTYPE_CASES])
    def test_dtype_roundtrip_matches_native(self, open_file, case):
        _, dtype, values = case
        data = _values(dtype, values)
        with open_file() as f, self.native() as n:
            for target in (f, n):
                target.create_dataset("d", data=data)
            assert_same(f["d"][()], n["d"][()])
            assert f["d"].dtype == n["d"].dtype
            assert_same(f["d"][1:], n["d"][1:])

    @pytest.mark.parametrize("sel", list(SELECTIONS), ids=list(SELECTIONS))
    def test_selection_read_write_matches_native(self, open_file, sel):
        index = SELECTIONS[sel]
        base = np.arange(600, dtype="f8").reshape(20, 30)
        with open_file() as f, self.native() as n:
            for target in (f, n):
                target.create_dataset("d", data=base)
            assert_same(f["d"][index], n["d"][index])
            if sel == "bool_mask" and h5py.version.version_tuple < (3, 16):
                return  # h5py < 3.16 writes through no mask of fewer dimensions, natively neither
            patch = -np.asarray(n["d"][index]) - 1
            for target in (f, n):
                target["d"][index] = patch
            assert_same(f["d"][()], n["d"][()])

    def test_broadcast_writes_match_native(self, open_file):
        # h5py broadcasts with H5Soffset_simple: the offset moves the selection.
        with open_file() as f, self.native() as n:
            for target in (f, n):
                d = target.create_dataset("d", data=np.zeros((8, 60)))
                d[2:5, 10:50:3] = -1
                d[6, :] = np.arange(3.0).repeat(20)[:60]
                d[[0, 7], 1] = 5
            assert_same(f["d"][()], n["d"][()])

    def test_type_conversion_matches_native(self, open_file):
        source = np.array([1e20, -1e20, 3.7, -3.7, np.nan, 255.5], dtype="f8")
        with open_file() as f, self.native() as n:
            for target in (f, n):
                d = target.create_dataset("small", shape=(6,), dtype=">i2")
                d[...] = source
                target.create_dataset("f", data=np.arange(5, dtype="<i4"), dtype=">f4")
            assert_same(f["small"][()], n["small"][()])
            assert_same(f["f"][()], n["f"][()])
            assert_same(f["small"].astype("f4")[()], n["small"].astype("f4")[()])

    def test_scalar_and_empty(self, open_file):
        with open_file() as f:
            f["scalar"] = 3.5
            assert f["scalar"].shape == () and f["scalar"][()] == 3.5
            f.create_dataset("empty", data=h5py.Empty("f4"))
            assert f["empty"].shape is None
            f.create_dataset("zero", shape=(0, 4), dtype="i4")
            assert f["zero"][()].shape == (0, 4)

    def test_fill_value_and_unwritten_data(self, open_file, cls):
        self.require(cls, "supports_fill_values")
        with open_file() as f, self.native() as n:
            for target in (f, n):
                target.create_dataset("d", shape=(4, 5), dtype="i4", fillvalue=-7)
                target["d"][1, 1:3] = 9
                # h5py hands HDF5 a variable-length fill value for fixed strings.
                target.create_dataset("s", shape=(3,), dtype=h5py.string_dtype("ascii", 10), fillvalue=b"bar")
                target["s"][1] = b"x"
            assert_same(f["d"][()], n["d"][()])
            assert_same(f["s"][()], n["s"][()])
            assert f["d"].fillvalue == -7 and f["s"].fillvalue == b"bar"

    def test_resize(self, open_file, cls):
        self.require(cls, "supports_resize")
        with open_file() as f, self.native() as n:
            for target in (f, n):
                d = target.create_dataset("d", data=np.arange(12).reshape(3, 4), maxshape=(None, 4), chunks=(2, 2))
                d.resize((5, 4))
                d[4] = 1
                d.resize((2, 4))
                d.resize((4, 4))
            assert_same(f["d"][()], n["d"][()])
            assert f["d"].maxshape == (None, 4) and f["d"].chunks == (2, 2)
            with pytest.raises(RuntimeError, match="max"):  # the exception class native HDF5 gives h5py
                f["d"].resize((4, 5))

    def test_wrong_shape_write_is_rejected_and_data_kept(self, open_file):
        with open_file() as f:
            d = f.create_dataset("d", data=np.arange(10))
            with pytest.raises((TypeError, ValueError)):
                d[0:3] = np.arange(4)
            assert_same(d[()], np.arange(10))

    def test_out_of_range_selection_is_rejected(self, open_file):
        with open_file() as f:
            d = f.create_dataset("d", data=np.arange(10))
            with pytest.raises((IndexError, ValueError)):
                d[12]

    # ------------------------------------------------------------ attributes

    def test_attributes_match_native(self, open_file, cls):
        self.require(cls, "supports_attributes")
        with open_file() as f, self.native() as n:
            for target in (f, n):
                g = target.create_group("g")
                g.attrs["int"] = 3
                g.attrs["text"] = "héllo"
                g.attrs["array"] = np.arange(6.0).reshape(2, 3)
                g.attrs["bytes"] = np.bytes_(b"raw")
                g.attrs.create("later", data=[5, 6], dtype="i2")
                g.attrs.modify("int", 4)
                del g.attrs["bytes"]
            fa, na = f["g"].attrs, n["g"].attrs
            assert sorted(fa) == sorted(na)
            for key in na:
                assert_same(fa[key], na[key])
            assert "text" in fa and "bytes" not in fa
            # H5Aexists reaches the connector's has_attribute (an override
            # must agree with attribute_names)
            assert h5py.h5a.exists(f["g"].id, b"later") and not h5py.h5a.exists(f["g"].id, b"bytes")
            assert h5py.h5a.exists(f.id, b"later", obj_name=b"g")

    # ------------------------------------------------------------ other objects

    def test_link_count_changes(self, open_file, cls):
        self.require(cls, "supports_link_count_changes")
        import ctypes

        from h5pyvol._hdf5 import lib

        incr, decr = lib().H5Oincr_refcount, lib().H5Odecr_refcount
        for fn in (incr, decr):
            fn.argtypes, fn.restype = [ctypes.c_int64], ctypes.c_int
        with open_file() as f:
            g = f.create_group("g")
            before = h5py.h5o.get_info(g.id).rc
            assert incr(g.id.id) >= 0
            assert h5py.h5o.get_info(g.id).rc == before + 1
            assert decr(g.id.id) >= 0
            assert h5py.h5o.get_info(g.id).rc == before

    def test_shards_cover_every_element_once(self, open_file):
        with open_file() as f:
            for name, kw in (("chunked", {"chunks": (4, 2)}), ("plain", {})):
                d = f.create_dataset(name, shape=(17, 5), dtype="i4", **kw)
                d[3:9, 1] = 7
                shards = h5pyvol.shards(d)
                hits = np.zeros(d.shape, np.int32)
                for shard in shards:
                    assert all(s.step in (None, 1) for s in shard.selection)
                    hits[shard.selection] += 1
                assert (hits == 1).all(), name
                written = np.zeros(d.shape, bool)
                for shard in shards:
                    written[shard.selection] |= shard.written
                assert written[3:9, 1].all(), name  # what was written is in written shards
            f.create_dataset("empty", data=h5py.Empty("f4"))
            assert h5pyvol.shards(f["empty"]) == []

    def test_committed_datatype(self, open_file, cls):
        self.require(cls, "supports_committed_datatypes")
        with open_file() as f:
            f["point_t"] = np.dtype([("x", "f4"), ("y", "f4")])
            t = f["point_t"]
            assert isinstance(t, h5py.Datatype)
            assert t.dtype == np.dtype([("x", "f4"), ("y", "f4")])

    def test_object_copy(self, open_file):
        with open_file() as f:
            f["src/d"] = np.arange(5)
            f["src"].attrs["a"] = 1
            f.copy("src", "dst")
            assert_same(f["dst/d"][()], np.arange(5))
            assert f["dst"].attrs["a"] == 1
            f["dst/d"][0] = 99
            assert f["src/d"][0] == 0

    def test_exception_in_iteration_callback_propagates(self, open_file):
        class Stop(Exception):
            pass

        def stop(name, obj):
            raise Stop(name)

        with open_file() as f:
            f["a/b"] = 1
            # (h5py itself mishandles exceptions from visititems_links, natively too)
            with pytest.raises(Stop):
                f.visititems(stop)
            with pytest.raises(KeyError, match="missing"):  # errors still reported normally afterwards
                f["missing"]

    def test_connector_exception_reaches_h5py(self, open_file):
        with open_file() as f:
            with pytest.raises(KeyError) as info:
                f["missing/deeper"]
            assert "h5pyvol" in str(info.value) and "missing" in str(info.value)
