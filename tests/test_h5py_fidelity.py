"""h5py behaves through the connector as it does natively: one test per
difference found by running h5py's own test suite (tests/h5py_suite/TRIAGE.md)."""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest

import h5pyvol

_names = itertools.count()


def fresh(stem: str) -> str:
    """A file name not used before in this process (memory files outlive File objects)."""
    return f"fidelity-{stem}-{next(_names)}.h5"


def open_vol(name: str, mode: str, **kwargs) -> h5py.File:
    """h5py.File through the memory connector, with h5py's own keyword arguments."""
    h5pyvol.File(fresh("register"), "w").close()  # registers the h5pyvol driver with h5py
    return h5py.File(name, mode, driver="h5pyvol", h5pyvol_spec="memory", **kwargs)


def test_swmr_read_mode_is_part_of_the_intent():
    name = fresh("swmr-read")
    with h5pyvol.File(name, "w") as f:
        f.create_dataset("d", data=np.arange(4.0), chunks=(2,), maxshape=(None,))
    with open_vol(name, "r", swmr=True) as f:
        assert f.swmr_mode
        assert f["d"].file.swmr_mode
        with pytest.raises(ValueError):
            f.swmr_mode = False
        with pytest.raises(RuntimeError):  # a reader cannot start writing
            f.swmr_mode = True
        np.testing.assert_array_equal(f["d"][:], np.arange(4.0))
    with h5pyvol.File(name, "r") as f:
        assert not f.swmr_mode


def test_start_swmr_write():
    with open_vol(fresh("swmr-write"), "w", libver="latest") as f:
        d = f.create_dataset("d", shape=(0,), dtype="f4", chunks=(2,), maxshape=(None,))
        g = f.create_group("g")
        assert not f.swmr_mode
        f.swmr_mode = True
        assert f.swmr_mode and g.file.swmr_mode
        assert f.mode == "r+"
        d.resize((4,))
        d[:] = np.arange(4)
        d.flush()
        d.refresh()
        np.testing.assert_array_equal(d[:], np.arange(4))


def test_move_makes_intermediate_groups():
    with h5pyvol.File(fresh("move"), "w") as f:
        g = f.create_group("x")
        f.move("x", "a/b/c")  # h5py's lcpl asks for missing groups
        assert f["a/b/c"] == g and "x" not in f
        with pytest.raises(ValueError):  # without that, a missing parent is an error
            f.id.links.move(b"a/b/c", f.id, b"m/n")
        f.create_group("y")
        with pytest.raises(ValueError):  # and an existing name is not replaced
            f.move("y", "a/b/c")
        with pytest.raises(ValueError, match="no link named 'nope'"):
            f.move("nope", "elsewhere")
        assert f["a/b/c"] == g and "y" in f


@pytest.mark.parametrize("shape", [(), (2,), (2, 2)])
def test_attribute_of_an_array_datatype(shape):
    dt = np.dtype("(3,)i4")
    data = np.arange(np.prod(shape, dtype=int) * 3, dtype="i4").reshape(shape + (3,))
    with h5pyvol.File(fresh("array-attr"), "w") as f:
        f.attrs.create("a", data=data, dtype=dt)
        attr = h5py.h5a.open(f.id, b"a")
        assert attr.get_type().get_class() == h5py.h5t.ARRAY
        assert attr.shape == shape
        np.testing.assert_array_equal(f.attrs["a"], data)


def test_compound_with_variable_length_members_starts_empty():
    inner = np.dtype([("a", h5py.vlen_dtype(np.int32)), ("b", h5py.string_dtype())])
    dt = np.dtype([("s", h5py.string_dtype()), ("n", "i8"), ("pair", h5py.vlen_dtype(np.uint8), (2,)),
                   ("nest", inner)])
    with h5pyvol.File(fresh("compound-vlen"), "w") as f:
        d = f.create_dataset("d", shape=(3,), dtype=dt)
        first = d[0]
        assert first["s"] == b"" and first["n"] == 0
        assert [len(x) for x in first["pair"]] == [0, 0]
        assert len(first["nest"]["a"]) == 0 and first["nest"]["b"] == b""
        value = np.array([("t", 7, [np.arange(1, dtype=np.uint8), np.arange(3, dtype=np.uint8)],
                           (np.arange(4, dtype=np.int32), "y"))], dtype=dt)
        d[1:2] = value
        assert d[1]["s"] == b"t" and d[1]["n"] == 7 and list(d[1]["pair"][1]) == [0, 1, 2]
        assert d[2]["s"] == b""
        # h5py's own case: a scalar attribute of a compound with a vlen of compounds of vlens
        only_a = np.dtype([("a", h5py.vlen_dtype(np.int32))])
        outer = np.dtype([("f1", h5py.vlen_dtype(only_a)), ("f2", np.int64)])
        item = np.array((np.array([(np.arange(2, dtype=np.int32),)], dtype=only_a), 2), dtype=outer)[()]
        f.attrs["scalar"] = item
        assert f.attrs["scalar"]["f2"] == 2
        assert list(f.attrs["scalar"]["f1"][0]["a"]) == [0, 1]


def test_fill_time_never_leaves_the_fill_value_out():
    with h5pyvol.File(fresh("fill-never"), "w") as f:
        d = f.create_dataset("d", (10,), "f4", fillvalue=4.0, fill_time="never", chunks=(5,), maxshape=(20,))
        assert d.id.get_create_plist().get_fill_time() == h5py.h5d.FILL_TIME_NEVER
        assert d.fillvalue == 4.0  # still the property
        assert not np.isclose(d[:], 4.0).any()
        d[2] = 1.0
        d.resize((20,))
        assert not np.isclose(d[:], 4.0).any() and d[2] == 1.0
        e = f.create_dataset("e", (3,), "f4", fillvalue=4.0, fill_time="alloc")
        np.testing.assert_array_equal(e[:], 4.0)


def test_two_opens_of_one_file_keep_their_own_objects():
    name = fresh("two-opens")
    with h5pyvol.File(name, "w") as f:
        f.create_group("foo").attrs["a"] = 1
    f1, f2 = h5pyvol.File(name, "r"), h5pyvol.File(name, "r")
    g1, g2 = f1["foo"], f2["foo"]
    a2 = h5py.h5a.open(g2.id, b"a")
    assert g1.file.id == f1.id and g2.file.id == f2.id
    local = h5py.h5f.OBJ_LOCAL | h5py.h5f.OBJ_GROUP | h5py.h5f.OBJ_ATTR
    assert h5py.h5f.get_obj_count(f1.id, local) == 1 and h5py.h5f.get_obj_count(f2.id, local) == 2
    assert h5py.h5f.get_obj_count(f1.id, h5py.h5f.OBJ_GROUP) == 2  # without OBJ_LOCAL: the whole file
    f1.close()
    assert not g1.id.valid
    assert f2.id.valid and g2.id.valid and a2.valid
    f2.close()
    assert not g2.id.valid and not a2.valid


def test_file_of_an_object_whose_file_id_was_closed():
    name = fresh("file-of")
    with h5pyvol.File(name, "w") as f:
        f.create_dataset("d", data=[1, 2])
    f = h5pyvol.File(name, "r")
    d = f["d"]
    f.id.close()  # the file stays open for `d`
    again = d.file
    assert again.id.valid and list(again["d"][:]) == [1, 2]
    again.close()  # closes what was opened through it, `d` too
    assert not d.id.valid


def test_arrays_of_a_committed_datatype_report_it():
    with h5pyvol.File(fresh("committed"), "w") as f:
        f["t"] = np.dtype("f8")
        named = f["t"]
        d = f.create_dataset("x", (4,), dtype=named)
        d[:] = np.arange(4)
        assert d.dtype == np.dtype("f8")
        assert d.id.get_type() == named.id and d.id.get_type().committed()
        f.attrs.create("a", 42, dtype=named)
        atype = h5py.h5a.open(f.id, b"a").get_type()
        assert atype.committed() and atype == named.id
        assert f.attrs["a"] == 42 and list(d[:]) == [0, 1, 2, 3]
        plain = f.create_dataset("y", (2,), dtype="f8")
        assert not plain.id.get_type().committed()
        with h5pyvol.File(fresh("committed-copy"), "w") as other:
            f.copy(d, other, "x")  # another file: its type is that file's business
            assert list(other["x"][:]) == [0, 1, 2, 3]
        del f["t"]  # the type node is gone from this connector: a transient copy then
        assert d.dtype == np.dtype("f8") and list(d[:]) == [0, 1, 2, 3]


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_fill_value_of_a_variable_length_string(encoding):
    fill = "bár".encode() if encoding == "utf-8" else b"bar"
    name = fresh("vlen-fill")
    with h5pyvol.File(name, "w") as f:
        d = f.create_dataset("s", (3,), dtype=h5py.string_dtype(encoding), fillvalue=fill)
        assert d.fillvalue == fill
        d[1] = "x"
        assert list(d[:]) == [fill, b"x", fill]
    with h5pyvol.File(name, "r") as f:  # kept with the dataset, not as a pointer
        d = f["s"]
        assert d.fillvalue == fill and d[2] == fill
        assert d.id.get_create_plist().fill_value_defined() == h5py.h5d.FILL_VALUE_USER_DEFINED


def test_creation_time_is_reported_when_tracked():
    with h5pyvol.File(fresh("times"), "w") as f:
        tracked = f.create_dataset("t", data=np.arange(3), track_times=True)
        untracked = f.create_dataset("u", data=np.arange(3), track_times=False)
        like = f.create_dataset_like("l", tracked)
        assert h5py.h5g.get_objinfo(tracked.id).mtime != 0
        assert h5py.h5g.get_objinfo(like.id).mtime != 0
        assert h5py.h5g.get_objinfo(untracked.id).mtime == 0
        assert h5py.h5o.get_info(tracked.id).ctime != 0 and h5py.h5o.get_info(untracked.id).ctime == 0


@pytest.mark.parametrize("dtype", [h5py.string_dtype(), h5py.vlen_dtype("i4"), np.dtype("i4")])
def test_fill_time_of_variable_length_datasets_is_as_native(tmp_path, dtype):
    # Native HDF5 writes the default fill value of a variable-length type at
    # allocation (H5D_FILL_TIME_ALLOC, not _IFSET); h5dump -p prints it.
    with h5py.File(tmp_path / "native.h5", "w") as f:
        expected = f.create_dataset("d", (2,), dtype=dtype).id.get_create_plist().get_fill_time()
    with h5pyvol.File(fresh("fill-time"), "w") as f:
        got = f.create_dataset("d", (2,), dtype=dtype).id.get_create_plist().get_fill_time()
    assert got == expected


@pytest.mark.parametrize(
    "dt",
    [
        np.dtype({"names": ["f1", "f2", "f3"], "formats": ["<f4", "<i4", "<f8"], "offsets": [0, 16, 8]}),
        np.dtype({"names": ["a", "b", "c", "d"], "formats": ["<f8", "<u8", "<u4", "<u2"],
                  "offsets": [25, 9, 0, 5], "itemsize": 39}),
    ],
)
def test_compound_members_out_of_offset_order(dt, tmp_path):
    """Members listed out of offset order (HDF5 sorts them by offset on
    conversion) read back by name, whole or in part, as they do natively."""
    data = np.zeros(6, dtype=dt)
    for i, name in enumerate(dt.names):
        data[name] = np.arange(6) * (i + 1) + i
    part = np.dtype([(dt.names[-1], dt.fields[dt.names[-1]][0]), (dt.names[0], dt.fields[dt.names[0]][0])])
    results = []
    vol_name = fresh("offsets")
    for opener in (lambda mode: h5py.File(tmp_path / "native.h5", mode), lambda mode: h5pyvol.File(vol_name, mode)):
        with opener("w") as f:
            f.create_dataset("data", data=data)
            f.attrs.create("attr", data=data)
        with opener("r") as f:  # the types come back from what was stored
            d = f["data"]
            fields = [d[name] for name in dt.names]  # each read converts to a one-member type
            results.append((d[()], d[1:4], d.astype(part)[()], *fields, f.attrs["attr"], h5pyvol.connector_name(f.id)))
    (native, vol) = results
    assert native[-1] == "native" and vol[-1] == "h5pyvol"
    for got, want in zip(vol[:-1], native[:-1], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(vol[0], data)


def test_lossy_filter_keeps_what_native_hdf5_keeps(tmp_path):
    """Scale-offset changes what it stores: through the connector a dataset
    reads back exactly what a native file holds once reopened (floats with a
    decimal scale, also after partial writes into chunks; integers with too
    few bits). Integer chunks rewritten in part are left out: native HDF5
    merges into the unfiltered values while the chunk is in its chunk cache,
    into the filtered ones after that."""
    rng = np.random.default_rng(1)
    floats, ints = (rng.random((30, 20)) - 0.5) * 2e5, rng.integers(0, 1000, (30, 20))
    vol_name = fresh("scaleoffset")
    got = []
    for opener in (lambda mode: h5py.File(tmp_path / "native.h5", mode), lambda mode: h5pyvol.File(vol_name, mode)):
        with opener("w") as f:
            d = f.create_dataset("f", data=floats, chunks=(7, 6), scaleoffset=4)
            d[3:5, 4:9] = 1.2345678
            d[::4, 2] = -3.75
            f.create_dataset("i", data=ints, chunks=(10, 10), scaleoffset=4)
        with opener("r") as f:
            got.append((f["f"][()], f["i"][()], h5pyvol.connector_name(f.id)))
    (nf, ni, native), (vf, vi, vol) = got
    assert native == "native" and vol == "h5pyvol"
    assert (nf != floats).any() and (ni != ints).any()  # the filter did lose something
    np.testing.assert_array_equal(vf, nf)
    np.testing.assert_array_equal(vi, ni)
