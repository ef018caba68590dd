"""The content of the legacy-format sample files (tests/services/legacy/*.json).

`write(f)` fills an h5py File with it: the same calls on a native file give
what the legacy files must read as. make_fixtures.py ran it through the S3 and
RADOS connectors of the code that wrote formats h5pyvol-s3 2 and
h5pyvol-rados/2 (commit 73420d9) and stored every object they made.
"""

from __future__ import annotations

import h5py
import numpy as np


def write(f: h5py.File) -> None:
    g = f.create_group("group")
    g.attrs["int"] = 7
    g.attrs["text"] = "héllo"
    g.attrs["list"] = np.arange(3.0)
    f.create_dataset("chunked", data=np.arange(60, dtype="<i4").reshape(6, 10), chunks=(4, 4), fillvalue=-1)
    f["chunked"][5, 9] = 99
    f.create_dataset("sparse", shape=(20,), dtype="f8", chunks=(5,), fillvalue=1.5)
    f["sparse"][7] = -2.0
    f.create_dataset("contiguous", data=np.linspace(0, 1, 50))
    f.create_dataset("zipped", data=np.arange(100, dtype="<u2"), chunks=(25,), compression="gzip", shuffle=True)
    f.create_dataset("strings", data=np.array(["a", "βγ", ""], dtype=object), dtype=h5py.string_dtype())
    f.create_dataset("ragged", shape=(2,), dtype=h5py.vlen_dtype("i2"))
    f["ragged"][0] = np.arange(3, dtype="i2")
    f["ragged"][1] = np.array([], "i2")
    f["scalar"] = 3.25
    f["type"] = np.dtype([("x", "<f4"), ("y", "<i2")])
    f.create_dataset("typed", (2,), dtype=f["type"])
    f["typed"][0] = (1.5, 2)
    f.attrs.create("typed_attr", (0.5, 1), dtype=f["type"])
    f.attrs["vlen_attr"] = np.array(["x", "yz"], dtype=h5py.string_dtype())
    f["soft"] = h5py.SoftLink("/group")
    f["hard"] = f["chunked"]
    f.create_dataset("grown", data=np.arange(10), maxshape=(None,), chunks=(4,))
    f["grown"].resize((13,))


def compare(a: h5py.File, b: h5py.File) -> None:
    """Every object, value and attribute of `a` and `b` agree."""
    def items(f):
        seen = {}
        f.visititems(lambda name, obj: seen.__setitem__(name, obj))
        return seen

    ia, ib = items(a), items(b)
    assert sorted(ia) == sorted(ib)
    for name, x in ia.items():
        y = ib[name]
        assert type(x) is type(y), name
        assert sorted(x.attrs) == sorted(y.attrs), name
        for key in x.attrs:
            _same(x.attrs[key], y.attrs[key], f"{name}@{key}")
        if isinstance(x, h5py.Dataset):
            assert x.dtype == y.dtype and x.shape == y.shape, name
            _same(x[()], y[()], name)
    assert sorted(a.attrs) == sorted(b.attrs)
    for key in a.attrs:
        _same(a.attrs[key], b.attrs[key], f"/@{key}")
    assert a.get("soft", getlink=True).path == b.get("soft", getlink=True).path


def _same(x, y, what: str) -> None:
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape, what
    if x.dtype.hasobject:
        for u, v in zip(x.ravel(), y.ravel(), strict=True):
            np.testing.assert_array_equal(u, v, err_msg=what)
    else:
        np.testing.assert_array_equal(x, y, err_msg=what)
