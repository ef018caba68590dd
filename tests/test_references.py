"""HDF5 1.10-style object references through the connector, as h5py makes
them (`Dataset.ref`, `h5py.ref_dtype`): created, stored in datasets and
attributes, and followed back, compared with native HDF5. Region references
are refused with a clear error, never a crash."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import h5pyvol


@pytest.fixture(params=["native", "memory"])
def f(request, tmp_path):
    if request.param == "native":
        fh = h5py.File(tmp_path / "native.h5", "w")
    else:
        fh = h5pyvol.File(str(tmp_path / "vol.h5"), "w", connector="memory")
        assert h5pyvol.connector_name(fh.id) == "h5pyvol"
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


def test_region_references_are_refused_clearly(tmp_path):
    with h5pyvol.File(str(tmp_path / "r.h5"), "w", connector="memory") as f:
        d = f.create_dataset("d", data=np.arange(10))
        with pytest.raises(Exception, match="region references are not supported"):
            d.regionref[2:5]
        d[...] = np.arange(10) * 2  # the file still works
        np.testing.assert_array_equal(d[...], np.arange(10) * 2)
