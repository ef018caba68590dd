"""Virtual datasets through the memory connector read, write and report
exactly what native HDF5 does with the same program (h5pyvol/virtual.py).

Each scenario runs twice in this process: on native files in a temporary
directory, and on memory-connector files under a made-up directory (the
connector has no files on disk; names are only names). The two runs must
give equal results, and the second must really be served by h5pyvol.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from twin import both

import h5pyvol


def _sources(fs, count: int = 3, rows: int = 4) -> None:
    for k in range(count):
        with fs.open(f"src{k}.h5", "w") as f:
            f["data"] = np.arange(rows * 5, dtype="f8").reshape(rows, 5) + 100 * k + 0.5


def test_sources_in_other_files_the_same_file_and_missing_ones(tmp_path):
    def scenario(fs):
        _sources(fs)
        layout = h5py.VirtualLayout((5, 4, 5), dtype="i4")
        for k in range(3):  # absolute names
            layout[k] = h5py.VirtualSource(fs.path(f"src{k}.h5"), "data", shape=(4, 5))
        with fs.open("vds.h5", "w", libver="latest") as f:
            f["local"] = np.full((4, 5), 7, "i2")
            layout[3, :, 1:3] = h5py.VirtualSource(fs.path("vds.h5"), "local", shape=(4, 5))[:, 1:4:2]
            f.create_virtual_dataset("v", layout, fillvalue=-9)
            # relative names are looked for beside the virtual dataset's file
            rel = h5py.VirtualLayout((2, 5), dtype="f8", maxshape=(2, 5))
            rel[0] = h5py.VirtualSource("src1.h5", "data", shape=(4, 5))[2]
            rel[1] = h5py.VirtualSource("missing.h5", "data", shape=(4, 5))[2]
            f.create_virtual_dataset("rel", rel)
            picks = h5py.VirtualLayout((12,), dtype="f4")
            picks[[0, 3, 4, 9]] = h5py.VirtualSource(fs.path("src2.h5"), "data", shape=(4, 5))[1, 1:5]
            f.create_virtual_dataset("picks", picks, fillvalue=np.nan)
        with fs.open("vds.h5", "r") as f:
            v = f["v"]
            plist = v.id.get_create_plist()
            fill = np.zeros(1, "i4")
            plist.get_fill_value(fill)
            return {
                "is_virtual": v.is_virtual,
                "all": v[()],
                "strided": v[::2, 1:, ::3],
                "point": v[2, 3, 4],
                "as_float": v.astype("f8")[1],  # converted from the sources' own type
                "rel": f["rel"][()],
                "rel_maxshape": f["rel"].maxshape,
                "picks": f["picks"][()],
                "count": plist.get_virtual_count(),
                "files": [os.path.basename(plist.get_virtual_filename(i)) for i in range(plist.get_virtual_count())],
                "dsets": [plist.get_virtual_dsetname(i) for i in range(plist.get_virtual_count())],
                "vspace": [plist.get_virtual_vspace(i).get_select_bounds() for i in range(4)],
                "srcspace": [plist.get_virtual_srcspace(i).get_select_type() for i in range(4)],
                "fill": fill,
                "layout": plist.get_layout(),
            }

    result = both(scenario, tmp_path)
    assert result["all"][3, 0, 1] == 7 and result["all"][4].min() == -9  # the test is not vacuous
    assert result["rel"][1].tolist() == [0.0] * 5


def test_unlimited_mappings_follow_their_sources(tmp_path):
    def scenario(fs):
        out = {}
        with fs.open("grow.h5", "w", libver="latest") as f:
            src = f.create_dataset("s", data=np.arange(20).reshape(10, 2), maxshape=(None, 2), chunks=(4, 2))
            layout = h5py.VirtualLayout((10,), "i8", maxshape=(None,))
            layout[: h5py.h5s.UNLIMITED] = h5py.VirtualSource(src)[: h5py.h5s.UNLIMITED, 1]
            f.create_virtual_dataset("v", layout, fillvalue=-1)
            # interleaved: source k fills every third row from row k
            vspace = h5py.h5s.create_simple((1, 3), (h5py.h5s.UNLIMITED, 3))
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_fill_value(np.array([-7]))
            for k in range(3):
                f.create_dataset(f"p{k}", data=np.full((4 + k, 3), k), maxshape=(None, 3), chunks=(2, 3))
                sspace = h5py.h5s.create_simple((4 + k, 3), (h5py.h5s.UNLIMITED, 3))
                sspace.select_hyperslab((0, 0), (h5py.h5s.UNLIMITED, 1), (1, 1), (1, 3))
                vspace.select_hyperslab((k, 0), (h5py.h5s.UNLIMITED, 1), (3, 1), (1, 3))
                dcpl.set_virtual(vspace, b".", f"p{k}".encode(), sspace)
            h5py.h5d.create(f.id, b"inter", h5py.h5t.NATIVE_INT32, vspace, dcpl=dcpl)
        with fs.open("grow.h5", "a") as f:
            v, inter = f["v"], f["inter"]
            out["v0"], out["shape0"] = v[()], v.shape
            f["s"].resize(13, axis=0)
            out["v1"], out["shape1"] = v[()], v.shape
            f["s"][10:, 1] = [5, 6, 7]
            out["v2"] = v[()]
            out["inter"], out["inter_shape"] = inter[:, 0], inter.shape
        with fs.open("grow.h5", "r") as f:
            dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
            dapl.set_virtual_view(h5py.h5d.VDS_FIRST_MISSING)
            first_missing = h5py.Dataset(h5py.h5d.open(f.id, b"inter", dapl=dapl))
            out["fm_shape"], out["fm"] = first_missing.shape, first_missing[:, 2]
            out["maxshape"] = f["v"].maxshape
        return out

    result = both(scenario, tmp_path)
    assert result["shape1"] == (13,) and result["inter_shape"] == (18, 3) and result["fm_shape"] == (12, 3)


def test_virtual_prefix_finds_sources(tmp_path):
    def scenario(fs):
        with fs.open("a/src.h5", "w") as f:
            f["data"] = np.arange(6)
        with fs.open("b/vds.h5", "w") as f:
            layout = h5py.VirtualLayout((6,), "i8")
            layout[:] = h5py.VirtualSource("src.h5", "data", shape=(6,))
            f.create_virtual_dataset("v", layout, fillvalue=-1)
        out = {}
        # one open each: HDF5 keeps the access properties of a dataset's first open
        for key, prefix in (("plain", None), ("prefix", fs.path("a")), ("origin", "${ORIGIN}/../a")):
            with fs.open("b/vds.h5", "r") as f:
                dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
                if prefix is not None:
                    dapl.set_virtual_prefix(prefix.encode())
                dset = h5py.Dataset(h5py.h5d.open(f.id, b"v", dapl=dapl))
                out[key] = dset[()]
                out[key + "_back"] = dset.id.get_access_plist().get_virtual_prefix() == (prefix or "").encode()
        return out

    result = both(scenario, tmp_path)
    assert result["plain"].tolist() == [-1] * 6
    assert result["prefix"].tolist() == result["origin"].tolist() == list(range(6))


def test_writes_go_to_the_sources(tmp_path):
    def scenario(fs):
        _sources(fs, count=2, rows=2)
        layout = h5py.VirtualLayout((3, 2, 5), dtype="f8")
        for k in range(2):
            layout[k] = h5py.VirtualSource(fs.path(f"src{k}.h5"), "data", shape=(2, 5))
        out = {}
        with fs.open("w.h5", "w") as f:
            v = f.create_virtual_dataset("v", layout, fillvalue=3)
            v[0:2, 1, 1:3] = [[-1, -2], [-3, -4]]
            with pytest.raises(OSError):  # row 2 maps to no source
                v[1:3, 0, 0] = [8, 9]
            out["v"] = v[()]
        for k in range(2):
            with fs.open(f"src{k}.h5", "r") as f:
                out[f"src{k}"] = f["data"][()]
        with fs.open("w.h5", "r") as f, pytest.raises(OSError):
            f["v"][0, 0, 0] = 1  # a read-only file
        return out

    result = both(scenario, tmp_path)
    assert result["src1"][1, 1:3].tolist() == [-3, -4]


def test_a_virtual_dataset_without_mappings_is_all_fill(tmp_path):
    def scenario(fs):
        with fs.open("empty.h5", "w") as f:
            with f.build_virtual_dataset("v", (3, 4), "i2", fillvalue=5):
                pass
            return {"v": f["v"][()], "sources": len(f["v"].virtual_sources())}

    assert both(scenario, tmp_path)["v"].tolist() == [[5] * 4] * 3


def test_a_virtual_dataset_that_maps_onto_itself_is_an_error():
    """Native HDF 1.14.6 crashes (stack overflow) here; h5pyvol reports the cycle."""
    with h5pyvol.File("/twin-cycle.h5", "w") as f:
        layout = h5py.VirtualLayout((4,), "i4")
        layout[:] = h5py.VirtualSource(".", "v", shape=(4,))
        f.create_virtual_dataset("v", layout, fillvalue=3)
        with pytest.raises(OSError, match="nest more than 16 deep"):
            f["v"][()]
