"""References through the connector, compared with native HDF5.

HDF5 1.10-style object and region references as h5py makes them
(`Dataset.ref`, `Dataset.regionref`, `h5py.ref_dtype`, `h5py.regionref_dtype`),
also as object copies rewrite them; a bad region reference is a clear error,
never a crash. HDF5 1.12-style references (H5R_ref_t): dimension
scales (HDF5's H5DS uses them through any non-native connector), the H5R
calls of a C program, and H5R_ref_t values kept as connector blobs."""

from __future__ import annotations

import ctypes
from pathlib import Path

import h5py
import numpy as np
import pytest
from h5py import h5a, h5ds, h5s, h5t
from h5py._hl import selections
from support import native_env, run, vol_env

import h5pyvol
from h5pyvol import connector as api
from h5pyvol._hdf5 import lib

TESTS = Path(__file__).resolve().parent

# h5py < 3.16 cannot store a list of region references (natively neither):
# "Object dtype dtype('O') has no native HDF5 equivalent".
needs_regionref_lists = pytest.mark.skipif(
    h5py.version.version_tuple < (3, 16), reason="h5py < 3.16 stores no list of region references"
)


CONNECTORS = ["memory", "passthru"]


def _vol(tmp_path, name: str, mode: str, connector: str) -> h5py.File:
    """A file of `connector` (passthru: a native file in tmp_path), checked to be served by h5pyvol."""
    options = {"root": str(tmp_path)} if connector == "passthru" else {}
    fh = h5pyvol.File(name, mode, connector=connector, **options)
    assert h5pyvol.connector_name(fh.id) == "h5pyvol"
    return fh


@pytest.fixture(params=["native", *CONNECTORS])
def f(request, tmp_path):
    fh = h5py.File(tmp_path / "native.h5", "w") if request.param == "native" else _vol(tmp_path, "vol.h5", "w",
                                                                                      request.param)
    yield fh
    fh.close()


def test_object_references_round_trip(f):
    g = f.create_group("a/b")
    d = f.create_dataset("a/data", data=np.arange(4))
    refs = f.create_dataset("refs", (3,), dtype=h5py.ref_dtype)
    refs[0], refs[1] = g.ref, d.ref
    f.attrs["to_data"] = d.ref
    assert f[refs[0]].name == "/a/b" and isinstance(f[refs[0]], h5py.Group)
    np.testing.assert_array_equal(f[refs[1]][...], np.arange(4))
    assert f[f.attrs["to_data"]].name == "/a/data"
    assert h5py.h5r.get_obj_type(d.ref, f.id) == h5py.h5o.TYPE_DATASET
    assert not refs[2]  # unwritten elements are null references
    with pytest.raises(ValueError):
        f[refs[2]]


def test_reference_to_moved_object_follows_it(f):
    d = f.create_dataset("old", data=[1, 2])
    ref = d.ref
    f.move("old", "new")
    assert f[ref].name == "/new"


def _region_facts(f, reopen) -> dict:
    """What h5py reports about region references made, stored and read back in `f`."""
    data = np.arange(100).reshape(10, 10)
    d = f.create_dataset("x", data=data)
    scalar = f.create_dataset("s", data=1.5, dtype="f4")
    refs = {
        "block": d.regionref[2:5, 1:9:3],
        "points": d.regionref[[1, 4, 7], 2],
        "all": d.regionref[...],
        "empty": d.regionref[:0],
    }
    sid = h5s.create(h5s.SCALAR)
    sid.select_none()
    refs["scalar_none"] = h5py.h5r.create(scalar.id, b".", h5py.h5r.DATASET_REGION, sid)
    sid.select_all()
    refs["scalar_all"] = h5py.h5r.create(scalar.id, b".", h5py.h5r.DATASET_REGION, sid)
    stored = f.create_dataset("regs", (len(refs) + 1,), dtype=h5py.regionref_dtype)
    for i, ref in enumerate(refs.values()):
        stored[i] = ref
    f.attrs["reg"] = refs["block"]
    f = reopen(f)

    def read(ref):
        target = f[ref]
        value = target[ref]
        return {
            "name": target.name,
            "h5r_name": h5py.h5r.get_name(ref, f.id),
            "type": h5py.h5r.get_obj_type(ref, f.id),
            "shape": target.regionref.shape(ref),
            "selection": target.regionref.selection(ref),
            "value": repr(value),
        }

    stored = f["regs"]
    facts = {name: read(ref) for name, ref in zip(refs, stored[: len(refs)], strict=True)}
    facts["attr"] = read(f.attrs["reg"])
    facts["null"] = (bool(stored[len(refs)]), type(stored[len(refs)]).__name__, stored.dtype == h5py.regionref_dtype)
    facts["selected"] = selections.select((10, 10), stored[0], f["x"]).nselect
    return facts


@pytest.mark.parametrize("connector", CONNECTORS)
def test_region_references_as_native(tmp_path, connector):
    native = _region_facts(h5py.File(tmp_path / "n.h5", "w"), lambda f: (f.close(), h5py.File(tmp_path / "n.h5"))[1])

    def reopen(f):
        f.close()
        return _vol(tmp_path, "v.h5", "r", connector)

    assert _region_facts(_vol(tmp_path, "v.h5", "w", connector), reopen) == native
    assert native["block"]["value"] == repr(np.arange(100).reshape(10, 10)[2:5, 1:9:3])
    assert native["scalar_none"]["value"].startswith("Empty") and native["null"][0] is False


@needs_regionref_lists
def test_region_reference_keeps_its_blob(tmp_path):
    """The 12 bytes name a blob holding the dataset's token and the encoded selection."""
    with h5pyvol.File(str(tmp_path / "v.h5"), "w", connector="memory") as f:
        d = f.create_dataset("d", data=np.arange(6))
        stored = f.create_dataset("r", data=[d.regionref[1:3], d.regionref[4:]])
        raw = np.zeros(2, "V12")
        stored.id.read(h5s.ALL, h5s.ALL, raw, mtype=h5t.STD_REF_DSETREG)
        blobs = h5pyvol.node_of(f)._store.blobs
        for ref in raw:
            ref = ref.tobytes()
            blob = blobs[ref[1 : 1 + ref[0]]]  # key length, then the key
            assert blob.startswith(b"PVR1") and h5pyvol.node_of(d).token in blob
        assert raw[0] != raw[1] and len(blobs) == 2
        np.testing.assert_array_equal(d[stored[1]], [4, 5])


def test_bad_region_references_are_clear_errors(tmp_path):
    with (
        h5pyvol.File(str(tmp_path / "a.h5"), "w", connector="memory") as f,
        h5pyvol.File(str(tmp_path / "b.h5"), "w", connector="memory") as g,
    ):
        d, e = f.create_dataset("d", data=np.arange(10)), g.create_dataset("d", data=np.arange(10))
        ref, other = d.regionref[2:4], e.regionref[5:]
        null = f.create_dataset("z", (1,), dtype=h5py.regionref_dtype)[0]
        with pytest.raises(RuntimeError, match="null region reference"):
            h5py.h5r.get_name(null, f.id)  # h5py checks for null in its other calls
        # b.h5 keeps a blob under the same key (each in-memory file counts from 1): the checksum tells
        with pytest.raises(RuntimeError, match="other data under the region reference's key"):
            d[other]
        with pytest.raises(RuntimeError, match="other data under the region reference's key"):
            g[ref]
        h5pyvol.node_of(f)._store.blobs.clear()  # what a lost blob looks like
        with pytest.raises(RuntimeError, match="no blob .* since deleted"):
            d[ref]
        np.testing.assert_array_equal(e[other], [5, 6, 7, 8, 9])  # both files still work
        d[...] = np.arange(10) * 2
        np.testing.assert_array_equal(d[d.regionref[::5]], [0, 10])
    with h5pyvol.File(str(tmp_path / "a.h5"), "r", connector="memory") as f:
        with pytest.raises(RuntimeError, match="read-only"):
            f["d"].regionref[1:2]


def test_region_references_need_short_blob_keys(tmp_path):
    with h5pyvol.File(str(tmp_path / "k.h5"), "w", connector="failing_connector:LongBlobKeyConnector") as f:
        d = f.create_dataset("d", data=np.arange(4))
        with pytest.raises(RuntimeError, match=r"blob keys \(13 bytes\) are too long .*\(at most 11 bytes"):
            d.regionref[1:]
        assert f[d.ref].name == "/d"  # object references do not need blobs


def _copy_facts(f, g) -> dict:
    """What object copies (H5Ocopy, with and without expand_refs, in one file
    and to another) make of the 1.10-style references they copy."""
    f["foo"], f["bar"], f["dir/x"] = [1, 2, 3], [4, 5, 6], [7]
    bar = f["bar"]
    f["foo"].attrs["bar"] = bar.ref
    f["foo"].attrs["reg"] = bar.regionref[1:]
    f.create_dataset("refs", data=np.array([bar.ref, f["dir"].ref, h5py.Reference()], dtype=h5py.ref_dtype))
    f.create_dataset("regs", data=[bar.regionref[:2]])

    def show(file, ref):
        if not ref:
            return None
        target = file[ref]
        # HDF5 names a copied referenced object ~obj_pointed_by_<address>: compare the prefix
        name = target.name.split("_by_")[0]
        value = (
            target[ref].tolist()
            if isinstance(ref, h5py.RegionReference)
            else target[()].tolist()
            if isinstance(target, h5py.Dataset)
            else sorted(target)
        )
        return name, value

    facts = {}
    for tag, dst, expand in [("same", f, True), ("same_kept", f, False), ("other", g, True), ("other_kept", g, False)]:
        for src in ["foo", "refs", "regs"]:
            f.copy(src, dst, f"{tag}_{src}", expand_refs=expand)
            copy = dst[f"{tag}_{src}"]
            values = [copy.attrs["bar"], copy.attrs["reg"]] if src == "foo" else list(copy[()])
            facts[f"{tag}_{src}"] = [show(dst, ref) for ref in values]
    facts["roots"] = [sorted(n.split("_by_")[0] for n in file) for file in (f, g)]
    f.close()
    g.close()
    return facts


@needs_regionref_lists
@pytest.mark.parametrize("connector", CONNECTORS)
def test_copied_references_as_native(tmp_path, connector):
    native = _copy_facts(h5py.File(tmp_path / "n1.h5", "w"), h5py.File(tmp_path / "n2.h5", "w"))
    f, g = _vol(tmp_path, "v1.h5", "w", connector), _vol(tmp_path, "v2.h5", "w", connector)
    assert _copy_facts(f, g) == native
    assert native["same_foo"] == [("/~obj_pointed", [4, 5, 6]), ("/~obj_pointed", [5, 6])]  # copied once
    assert native["same_kept_foo"] == [None, None] and native["other_kept_refs"] == [None] * 3
    assert native["other_refs"][1] == ("/~obj_pointed", ["x"])


# ---------------------------------------------------------------- dimension scales


def _scale_facts(f) -> dict:
    """What h5py reports about the dimension scales of `f` (from h5py's
    high-level API and from H5DS directly)."""
    d = f["data"]
    seen = []
    h5ds.iterate(d.id, 1, lambda dsid: seen.append(h5ds.get_scale_name(dsid)) and None)
    return {
        "is_scale": [f[n].is_scale for n in ("data", "x", "y", "z")],
        "labels": [dim.label for dim in d.dims],
        "keys": [list(dim.keys()) for dim in d.dims],
        "values": [[v.name for v in dim.values()] for dim in d.dims],
        "items": [[(k, v.name) for k, v in dim.items()] for dim in d.dims],
        "lens": [len(dim) for dim in d.dims],
        "first": d.dims[1][0].name,
        "by_name": d.dims[1]["Y"].name,
        "attached": [h5ds.is_attached(d.id, f[n].id, i) for n, i in (("x", 0), ("y", 1), ("z", 1), ("x", 1))],
        "iterated": seen,
        "num_scales": h5ds.get_num_scales(d.id, 1),
    }


def _dims_run(f, reopen) -> list[dict]:
    d = f.create_dataset("data", data=np.arange(12).reshape(3, 4))
    x = f.create_dataset("x", data=np.arange(3))
    y = f.create_dataset("y", data=np.arange(4) * 10)
    z = f.create_dataset("z", data=np.arange(4) * 100)
    x.make_scale("X")
    y.make_scale("Y")
    z.make_scale()
    d.dims[0].attach_scale(x)
    d.dims[1].attach_scale(y)
    d.dims[1].attach_scale(z)
    d.dims[0].label = "rows"
    facts = [_scale_facts(f)]
    f = reopen(f)
    facts.append(_scale_facts(f))
    f["data"].dims[1].detach_scale(f["z"])
    facts.append(_scale_facts(f))
    f.close()
    return facts


@pytest.mark.parametrize("connector", CONNECTORS)
def test_dimension_scales_as_native(tmp_path, connector):
    native = _dims_run(h5py.File(tmp_path / "n.h5", "w"), lambda f: (f.close(), h5py.File(tmp_path / "n.h5", "a"))[1])

    def reopen(f):
        f.close()
        return _vol(tmp_path, "v.h5", "a", connector)

    assert _dims_run(_vol(tmp_path, "v.h5", "w", connector), reopen) == native
    assert native[0]["keys"] == [["X"], ["Y", ""]] and native[2]["lens"] == [1, 1]  # the runs did something


@pytest.mark.parametrize("connector", CONNECTORS)
def test_dimension_list_holds_references_as_in_native_files(tmp_path, connector):
    """HDF5's dimension scales store 1.12-style references (H5R_ref_t) for
    objects of any non-native connector, which h5py cannot read; for a
    connector whose tokens fit a 1.10-style reference the plugin has them
    stored as in native files, so h5py reads DIMENSION_LIST as it does there."""
    got = {}
    for kind in ("native", connector):
        path = str(tmp_path / f"{kind}.h5")
        with (h5py.File(path, "w") if kind == "native" else _vol(tmp_path, f"{kind}.h5", "w", connector)) as f:
            d = f.create_dataset("data", data=np.arange(3))
            x = f.create_dataset("x", data=np.arange(3))
            x.make_scale("X")
            d.dims[0].attach_scale(x)
            (refs,) = d.attrs["DIMENSION_LIST"]
            got[kind] = (d.attrs["DIMENSION_LIST"].dtype, [f[r].name for r in refs], sorted(dict(d.attrs)),
                         h5pyvol.connector_name(f.id))
            if kind != "native":
                attr = h5pyvol.node_of(d).open_attribute("DIMENSION_LIST")
                assert attr.meta.dtype == h5py.vlen_dtype(np.dtype("V8"))  # hobj_ref_t, not H5R_ref_t
            if kind == "memory":
                assert not h5pyvol.node_of(f)._store.blobs
    assert got[connector][:3] == got["native"][:3] and got[connector][3] == "h5pyvol"
    assert got["native"][1] == ["/x"]


def test_passthru_stores_dimension_scales_and_object_references_natively(tmp_path):
    """passthru keeps 1.10-style object references as the native addresses
    they stand for: plain h5py, with no connector, follows the references and
    the dimension scales of a file written through it."""
    with _vol(tmp_path, "p.h5", "w", "passthru") as f:
        d = f.create_dataset("data", data=np.arange(6).reshape(2, 3))
        x = f.create_dataset("x", data=[1, 2])
        x.make_scale("X")
        d.dims[0].attach_scale(x)
        f.attrs["to_x"] = x.ref
        f.create_dataset("refs", data=np.array([d.ref, x.ref, h5py.Reference()], dtype=h5py.ref_dtype))
    with h5py.File(tmp_path / "p.h5", "r") as native:
        assert h5pyvol.connector_name(native.id) == "native"
        assert native["data"].dims[0].keys() == ["X"] and native["data"].dims[0][0].name == "/x"
        assert native[native.attrs["to_x"]].name == "/x"
        refs = native["refs"][()]
        assert [native[r].name for r in refs[:2]] == ["/data", "/x"] and not refs[2]


# ---------------------------------------------------------------- H5R from C


def _lines(proc) -> list[str]:
    # Native HDF5 answers H5Requal 0 for two reads of one stored region
    # reference (their decoded extents differ); that is not the connector's.
    return [line for line in proc.stdout.splitlines() if not line.startswith(("connector:", "attribute ref 2 equal"))]


def _run_natively_and_through(prog, tmp_path, connector):
    """(native run, run through `connector`) of a C program, each checked to
    succeed and to name the connector that served it."""
    native = run([prog, "n.h5"], native_env(), cwd=tmp_path)
    assert native.returncode == 0 and "connector: native" in native.stdout, native.stdout + native.stderr
    spec = f"passthru;root={tmp_path / 'store'}" if connector == "passthru" else connector
    (tmp_path / "store").mkdir(exist_ok=True)
    vol = run([prog, "v.h5"], vol_env(spec), cwd=tmp_path)
    assert vol.returncode == 0 and "connector: h5pyvol" in vol.stdout, vol.stdout + vol.stderr
    return native, vol


@pytest.mark.parametrize("connector", CONNECTORS)
def test_c_program_references_as_native(compile_c, tmp_path, connector):
    native, vol = _run_natively_and_through(compile_c("references"), tmp_path, connector)
    assert _lines(vol) == _lines(native)
    assert "region values: 4 9 16" in vol.stdout and "PASS" in vol.stdout


@pytest.mark.parametrize("connector", CONNECTORS)
def test_c_program_old_style_references_as_native(compile_c, tmp_path, connector):
    """H5Rcreate/H5Rdereference2/H5Rget_region from C, served by the plugin's compat layer."""
    native, vol = _run_natively_and_through(compile_c("old_references"), tmp_path, connector)
    assert vol.stdout.splitlines()[1:] == native.stdout.splitlines()[1:]
    assert "region 0 values: 11 12 13 21 22 23" in vol.stdout and "PASS" in vol.stdout


# ---------------------------------------------------------------- H5R_ref_t in-process, blobs


class _H5R:
    """The H5R calls of this process's libhdf5 (h5py wraps none of them)."""

    def __init__(self) -> None:
        L = self.lib = lib()
        ref, hid, cp = ctypes.c_void_p, ctypes.c_int64, ctypes.c_char_p
        for name, res, args in [
            ("H5Rcreate_object", ctypes.c_int, [hid, cp, hid, ref]),
            ("H5Rcreate_attr", ctypes.c_int, [hid, cp, cp, hid, ref]),
            ("H5Ropen_object", hid, [ref, hid, hid]),
            ("H5Ropen_attr", hid, [ref, hid, hid]),
            ("H5Rdestroy", ctypes.c_int, [ref]),
            ("H5Awrite", ctypes.c_int, [hid, hid, ref]),
            ("H5Aread", ctypes.c_int, [hid, hid, ref]),
            ("H5Tcopy", hid, [hid]),
        ]:
            fn = getattr(L, name)
            fn.restype, fn.argtypes = res, args
        self.type = h5t.typewrap(L.H5Tcopy(ctypes.c_int64.in_dll(L, "H5T_STD_REF_g").value))

    @staticmethod
    def at(buf, i: int):
        return ctypes.byref(buf, 64 * i)


def test_attribute_and_external_references_are_blobs(tmp_path):
    r = _H5R()
    native = h5py.File(tmp_path / "native.h5", "w")
    native.create_group("g")
    with h5pyvol.File(str(tmp_path / "v.h5"), "w", connector="memory") as f:
        d = f.create_dataset("d", data=[1, 2])
        d.attrs["units"] = 7
        refs = (ctypes.c_ubyte * 192)()
        assert r.lib.H5Rcreate_attr(f.id.id, b"d", b"units", 0, r.at(refs, 0)) >= 0
        assert r.lib.H5Rcreate_object(native.id.id, b"g", 0, r.at(refs, 1)) >= 0  # into another connector's file
        aid = h5a.create(f.id, b"r", r.type, h5s.create_simple((3,)))
        assert r.lib.H5Awrite(aid.id, r.type.id, refs) >= 0
        blobs = h5pyvol.node_of(f)._store.blobs
        assert len(blobs) == 2 and any(b"units" in v for v in blobs.values())
        assert any(str(tmp_path / "native.h5").encode() in v for v in blobs.values())

        back = (ctypes.c_ubyte * 192)()
        assert r.lib.H5Aread(aid.id, r.type.id, back) >= 0
        attr = h5a.AttrID(r.lib.H5Ropen_attr(r.at(back, 0), 0, 0))
        assert h5pyvol.connector_name(attr.id) == "h5pyvol" and attr.name == b"units"
        group = h5py.h5g.GroupID(r.lib.H5Ropen_object(r.at(back, 1), 0, 0))  # opened natively, by file name
        assert h5py.h5i.get_name(group) == b"/g" and h5pyvol.connector_name(group.id) == "native"
        assert bytes(back[128:]) == bytes(64)  # the unwritten third is a null reference
        for i in range(2):
            r.lib.H5Rdestroy(r.at(refs, i))
            r.lib.H5Rdestroy(r.at(back, i))
        assert r.lib.H5Ropen_object(r.at(back, 2), 0, 0) < 0  # a null reference: an HDF5 error
    native.close()


def test_default_blob_storage_is_an_unlinked_dataset(tmp_path):
    with h5pyvol.File(str(tmp_path / "v.h5"), "w", connector="memory") as f:
        file = h5pyvol.node_of(f)
        key = api.File.put_blob(file, b"\0some bytes")
        assert 0 < len(key) < 16 and api.File.get_blob(file, key) == b"\0some bytes"
        assert api.File.get_blob(file, api.File.put_blob(file, b"")) == b""
        assert list(f) == []  # nothing linked
        with pytest.raises(KeyError):
            api.File.get_blob(file, b"nope")


def test_blob_of_a_deleted_file_object_is_a_clear_error(tmp_path):
    r = _H5R()
    with h5pyvol.File(str(tmp_path / "v.h5"), "w", connector="memory") as f:
        d = f.create_dataset("d", data=[1, 2])
        d.attrs["units"] = 7
        ref = (ctypes.c_ubyte * 64)()
        assert r.lib.H5Rcreate_attr(f.id.id, b"d", b"units", 0, ref) >= 0
        aid = h5a.create(f.id, b"r", r.type, h5s.create(h5s.SCALAR))
        assert r.lib.H5Awrite(aid.id, r.type.id, ref) >= 0
        h5pyvol.node_of(f)._store.blobs.clear()  # what a lost blob looks like
        back = (ctypes.c_ubyte * 64)()
        assert r.lib.H5Aread(aid.id, r.type.id, back) < 0
        r.lib.H5Rdestroy(ref)
        f["d"][...] = [3, 4]  # the file still works


def test_failing_blob_store_is_an_error_not_a_crash(compile_c, tmp_path):
    """A connector whose blob store refuses: storing an attribute reference
    fails. HDF5 would crash cleaning up a half-stored batch; the bridge
    stores one at a time."""
    env = vol_env("failing_connector:BlobRefusingConnector", PYTHONPATH=str(TESTS))
    proc = run([compile_c("references"), "v.h5"], env, cwd=tmp_path)  # run() fails on a crash
    assert proc.returncode == 1 and "FAIL line" in proc.stdout and "H5Dwrite" in proc.stdout, proc.stdout
