"""Links through the connector behave as in native HDF5: external links are
followed (into other files of the same connector), and creation-order
numbers follow HDF5's rules (a new link gets the group's next number; the
count restarts once the group is empty)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import h5pyvol


def open_pair(kind, path, mode="a", track_order=None):
    if kind == "native":
        return h5py.File(path, mode, track_order=track_order)
    return h5pyvol.File(str(path), mode, connector="memory", track_order=track_order)


@pytest.mark.parametrize("kind", ["native", "memory"])
def test_external_links_are_followed(kind, tmp_path):
    with open_pair(kind, tmp_path / "target.h5", "w") as t:
        t.create_dataset("data/x", data=np.arange(3))
    with open_pair(kind, tmp_path / "main.h5", "w") as f:
        f["ext"] = h5py.ExternalLink(str(tmp_path / "target.h5"), "/data")
        f["dangling"] = h5py.ExternalLink(str(tmp_path / "nowhere.h5"), "/")
        np.testing.assert_array_equal(f["ext/x"][...], np.arange(3))
        f["ext"].create_dataset("y", data=[7])  # created in the target file
        assert f.get("dangling", getlink=True).filename.endswith("nowhere.h5")
        assert "dangling" in f and f.get("dangling") is None
        with pytest.raises(KeyError):
            f["dangling"]
    with open_pair(kind, tmp_path / "target.h5", "r") as t:
        assert t["data/y"][0] == 7


@pytest.mark.parametrize("kind", ["native", "memory"])
def test_creation_order_numbers(kind, tmp_path):
    with open_pair(kind, tmp_path / "o.h5", "w", track_order=True) as f:
        g = f.create_group("g", track_order=True)
        for name in "cab":
            g.create_group(name)
        del g["a"]
        g.create_group("d")
        orders = {n: g.id.links.get_info(n.encode()).corder for n in g}
        assert orders == {"c": 0, "b": 2, "d": 3}
        assert list(g) == ["c", "b", "d"]  # creation order, as tracked
        for name in list(g):
            del g[name]
        g.create_group("e")  # an emptied group numbers from 0 again
        assert g.id.links.get_info(b"e").corder == 0


def _outcome(call):
    try:
        return call()
    except Exception as exc:  # the kind of failure is what must match
        return type(exc).__name__


@pytest.mark.parametrize("kind", ["native", "memory"])
def test_names_of_the_object_itself_and_the_root(kind, tmp_path):
    """"." names the object a call is made on and "/" the root, in existence
    and info queries by name, with the same answers and failures as native."""
    with open_pair(kind, tmp_path / "dot.h5", "w") as f:
        if kind == "memory":
            assert h5pyvol.connector_name(f.id) == "h5pyvol"
        d = f.create_dataset("g/d", data=np.arange(3))
        d.attrs["a"] = 1
        g = f["g"]
        got = [
            _outcome(lambda: h5py.h5a.exists(d.id, b"a", obj_name=b".")),
            _outcome(lambda: h5py.h5a.exists(d.id, b"zz", obj_name=b".")),
            _outcome(lambda: h5py.h5a.exists(g.id, b"a", obj_name=b"d")),
            _outcome(lambda: h5py.h5a.get_info(d.id, b"a", obj_name=b".").data_size),
            _outcome(lambda: h5py.h5o.get_info(d.id, b".").type),
            _outcome(lambda: f.id.links.exists(b"/")),
            _outcome(lambda: g.id.links.exists(b"d")),
            _outcome(lambda: g.id.links.exists(b"nope")),
            _outcome(lambda: g.id.links.exists(b".")),
            _outcome(lambda: g.id.links.exists(b"d/.")),
        ]
    assert got == [True, False, True, 8, h5py.h5o.TYPE_DATASET, True, True, False, False, False]
