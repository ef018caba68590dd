"""Reads and writes through the connector give what native HDF5 gives, on
both data paths: the C-planned fast path (equal types, selections numpy views
with slices) and the general one (everything else).

The fast path is csrc/io.c; the first tests pin down which calls it serves
(h5pyvol._plugin.io_stats counts them), the rest compare whole reads and writes with native HDF5 for
random selections, including h5py's broadcasting, which moves a selection
with an offset (H5Soffset_simple).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from h5py import h5s
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import h5pyvol


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A native file and a memory-connector file, open side by side."""
    d = tmp_path_factory.mktemp("io")
    native = h5py.File(d / "native.h5", "w")
    vol = h5pyvol.File(str(d / "vol.h5"), "w", connector="memory")
    yield native, vol
    vol.close()
    native.close()


def served_fast(fn) -> bool:
    """Run one read or write; True if the plugin's C fast path served it."""
    from h5pyvol import _plugin

    before = _plugin.io_stats()
    fn()
    fast, general = (a - b for a, b in zip(_plugin.io_stats(), before, strict=True))
    assert fast + general == 1
    return fast == 1


def test_fast_path_serves_slices(pair):
    _, vol = pair
    data = np.arange(60.0).reshape(6, 10)
    d = vol.create_dataset("plan", data=data)
    fs = d.id.get_space()
    fs.select_hyperslab((1, 2), (2, 3), stride=(2, 2))  # rows 1,3; cols 2,4,6
    out = np.zeros((2, 3))
    assert served_fast(lambda: d.id.read(h5s.create_simple((2, 3)), fs, out))
    np.testing.assert_array_equal(out, data[1:4:2, 2:7:2])
    # a slab inside a larger memory buffer, block-contiguous
    ms = h5s.create_simple((4, 5))
    ms.select_hyperslab((1, 1), (2, 1), block=(1, 3))
    big = np.full((4, 5), -1.0)
    assert served_fast(lambda: d.id.read(ms, fs, big))
    np.testing.assert_array_equal(big[1:3, 1:4], data[1:4:2, 2:7:2])
    assert (big[0] == -1).all() and (big[:, 0] == -1).all()
    whole = np.empty((6, 10))
    assert served_fast(lambda: d.read_direct(whole))
    np.testing.assert_array_equal(whole, data)
    assert served_fast(lambda: d.write_direct(data * 2))
    np.testing.assert_array_equal(d[...], data * 2)


@pytest.mark.parametrize("case", ["offset", "gaps", "points", "types", "shapes"])
def test_general_path_for_the_rest(pair, case):
    _, vol = pair
    d = vol.require_dataset("plan2", shape=(6, 10), dtype="f8")
    fs = d.id.get_space()
    ms = h5s.create_simple((2, 3))
    out = np.zeros((2, 3))
    mem_type = None
    if case == "offset":
        fs.select_hyperslab((0, 0), (2, 3))
        fs.offset_simple((1, 1))
    elif case == "gaps":  # blocks of 2 every 3: no slice views that
        fs.select_hyperslab((0, 0), (2, 1), stride=(3, 1), block=(2, 3))
        ms = h5s.create_simple((4, 3))
        out = np.zeros((4, 3))
    elif case == "points":
        ms = h5s.create_simple((6,))
        out = np.zeros(6)
        fs.select_elements([(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)])
    elif case == "types":
        fs.select_hyperslab((0, 0), (2, 3))
        mem_type = h5py.h5t.NATIVE_FLOAT
        out = np.zeros((2, 3), "f4")
    else:  # same count, other shape
        fs.select_hyperslab((0, 0), (3, 2))
    assert not served_fast(lambda: d.id.read(ms, fs, out, mem_type))


def selection(draw, shape):
    start, count, stride, block = [], [], [], []
    for n in shape:
        b = draw(st.integers(1, max(1, n)))
        s = draw(st.integers(b, max(b, n)))
        c = draw(st.integers(1, max(1, (n - b) // s + 1)))
        first = draw(st.integers(0, n - ((c - 1) * s + b)))
        start.append(first)
        count.append(c)
        stride.append(s)
        block.append(b)
    return tuple(start), tuple(count), tuple(stride), tuple(block)


@st.composite
def io_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=3)))
    start, count, stride, block = selection(draw, shape)
    npoints = int(np.prod(count) * np.prod(block))
    # the memory side: flat, the selection's own shape, or a larger buffer with a slab in it
    mem = draw(st.sampled_from(["flat", "shaped", "padded"]))
    return shape, (start, count, stride, block), mem, npoints, draw(st.sampled_from(["<f8", "<i4", ">i2"]))


def spaces(shape, sel, mem, npoints):
    fs = h5s.create_simple(shape)
    start, count, stride, block = sel
    fs.select_hyperslab(start, count, stride, block)
    if mem == "flat":
        return fs, h5s.create_simple((npoints,)), (npoints,)
    sel_shape = tuple(c * b for c, b in zip(count, block, strict=True))
    if mem == "shaped":
        return fs, h5s.create_simple(sel_shape), sel_shape
    padded = tuple(n + 2 for n in sel_shape)
    ms = h5s.create_simple(padded)
    ms.select_hyperslab((1,) * len(padded), sel_shape)
    return fs, ms, padded


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=io_case())
def test_random_slab_io_matches_native(pair, case):
    shape, sel, mem, npoints, dtype = case
    files = pair
    results = []
    for f in files:
        name = "rand"
        if name in f:
            del f[name]
        base = (np.arange(int(np.prod(shape))) % 97).astype(dtype).reshape(shape)
        d = f.create_dataset(name, data=base)
        fs, ms, extent = spaces(shape, sel, mem, npoints)
        out = np.full(extent, -1, dtype)
        d.id.read(ms, fs, out)
        src = (np.arange(int(np.prod(extent))) + 1000).astype(dtype).reshape(extent)
        d.id.write(ms, fs, src)
        results.append((out, d[...]))
    (n_out, n_after), (v_out, v_after) = results
    np.testing.assert_array_equal(v_out, n_out)
    np.testing.assert_array_equal(v_after, n_after)


@pytest.mark.parametrize("index", [np.s_[2:5, :], np.s_[:, 3], np.s_[1, 2:8:3]])
def test_broadcast_writes_match_native(pair, index):
    """h5py broadcasts a row over a region by moving a selection with an offset."""
    results = []
    for f in pair:
        if "bcast" in f:
            del f["bcast"]
        d = f.create_dataset("bcast", data=np.zeros((6, 10)))
        target = d[index]
        row = np.arange(target.shape[-1] if target.ndim else 1, dtype="f8") + 1
        d[index] = row
        results.append(d[...])
    np.testing.assert_array_equal(results[1], results[0])
