"""Selection must reproduce what native HDF5 does with the same dataspace.

Every case reads (and writes) the selection through the real HDF5 library
into a flat buffer and compares with what the Selection tells numpy to do.
"""

import itertools
import math
import os
import sys

import h5py
import numpy as np
import pytest
from h5py import h5s
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from h5pyvol.selection import Selection  # noqa: E402

SHAPES = [(), (0, 3), (7,), (7, 8), (5, 6, 7)]


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """Return ``get(shape) -> (dataset, data)`` over one native HDF5 file."""
    f = h5py.File(tmp_path_factory.mktemp("sel") / "native.h5", "w")
    made = {}

    def get(shape):
        if shape not in made:
            data = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
            made[shape] = (f.create_dataset(f"d{len(made)}", data=data), data)
        return made[shape]

    yield get
    f.close()


def space(shape):
    return h5s.create(h5s.SCALAR) if shape == () else h5s.create_simple(shape)


def native_read(dset, fspace):
    n = fspace.get_select_npoints()
    out = np.empty(n, dset.dtype)
    dset.id.read(h5s.create_simple((n,)), fspace, out)
    return out


def snapshot(sp):
    kind = sp.get_select_type()
    lists = {
        h5s.SEL_POINTS: sp.get_select_elem_pointlist,
        h5s.SEL_HYPERSLABS: sp.get_select_hyper_blocklist,
    }
    listed = lists[kind]().tolist() if kind in lists else None
    return kind, sp.get_select_npoints(), sp.get_simple_extent_dims(), listed


def check(get, shape, fspace):
    """Compare Selection.from_space(fspace) against native HDF5, both ways."""
    dset, data = get(shape)
    before = snapshot(fspace)
    sel = Selection.from_space(fspace)
    assert snapshot(fspace) == before  # from_space leaves the space alone
    assert fspace.valid

    out = native_read(dset, fspace)
    n = len(out)
    assert sel.count == n
    assert sel.shape == shape

    # index: right shape, right elements, right order; a view when basic
    got = data[sel.index]
    assert isinstance(got, np.ndarray)
    assert got.shape == sel.result_shape
    np.testing.assert_array_equal(got.ravel(), out)
    if sel.is_basic:
        assert all(isinstance(i, slice) or i is Ellipsis for i in sel.index)
        assert n == 0 or np.shares_memory(got, data)

    # coords
    coords = sel.coords()
    assert coords.dtype == np.int64 and coords.shape == (n, len(shape))
    if shape:
        np.testing.assert_array_equal(data[tuple(coords.T)], out)
    else:  # rank 0: coords is (n, 0), one empty row per element
        np.testing.assert_array_equal(data.ravel()[: len(coords)], out)

    # bounds
    if n and shape == ():  # h5py cannot ask HDF5 for rank-0 bounds
        assert sel.bounds() == ((), ())
    elif n:
        lo, hi = fspace.get_select_bounds()
        assert sel.bounds() == (tuple(lo), tuple(h + 1 for h in hi))
    else:
        assert sel.bounds() == ((0,) * len(shape), (0,) * len(shape))

    # blocks: boxes visited in order, each row-major, give HDF5 element order
    boxes = list(sel.blocks())
    parts = [
        data[tuple(slice(s, s + k) for s, k in zip(start, bshape, strict=True))].ravel()
        for start, bshape in boxes
    ]
    flat = np.concatenate(parts) if parts else np.empty(0, data.dtype)
    np.testing.assert_array_equal(flat, out)
    for start, bshape in boxes:
        assert len(start) == len(bshape) == len(shape)
        assert all(k > 0 for k in bshape)
    if sel.kind == "points":
        assert all(b == (1,) * len(shape) for _, b in boxes)

    # write direction: the same buffer through HDF5 and through numpy
    buf = -1 - np.arange(n, dtype=np.int64)
    dset.id.write(h5s.create_simple((n,)), fspace, buf)
    expect = data.copy()
    expect[sel.index] = buf.reshape(sel.result_shape)
    try:
        np.testing.assert_array_equal(dset[()], expect)
    finally:
        dset[()] = data
    return sel


# -- all / none / scalar / null ----------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_all(native, shape):
    sel = check(native, shape, space(shape))
    assert sel.kind == "all" and sel.is_basic
    assert sel.result_shape == shape
    assert sel.count == math.prod(shape)
    ev = Selection.everything(shape)
    assert (ev.kind, ev.shape, ev.count, ev.index) == ("all", shape, sel.count, sel.index)


def test_scalar(native):
    sel = check(native, (), space(()))
    assert sel.index == (Ellipsis,) and sel.count == 1
    assert list(sel.blocks()) == [((), ())]
    arr = np.array(3)
    arr[sel.index] = 9  # a view: writes land in the array
    assert arr == 9


@pytest.mark.parametrize("shape", SHAPES)
def test_none(native, shape):
    sp = space(shape)
    sp.select_none()
    sel = check(native, shape, sp)
    assert sel.kind == "none" and sel.count == 0
    assert sel.result_shape == (0,)
    assert list(sel.blocks()) == []


def test_null_dataspace():
    sel = Selection.from_space(h5s.create(h5s.NULL))
    assert (sel.shape, sel.kind, sel.count, sel.result_shape) == ((), "none", 0, (0,))
    assert np.zeros(())[sel.index].shape == (0,)
    assert sel.coords().shape == (0, 0)
    assert sel.bounds() == ((), ())
    assert list(sel.blocks()) == []


def test_null_dataspace_of_dataset(tmp_path):
    with h5py.File(tmp_path / "e.h5", "w") as f:
        d = f.create_dataset("e", data=h5py.Empty("i8"))
        sel = Selection.from_space(d.id.get_space())
    assert (sel.kind, sel.count) == ("none", 0)


# -- regular hyperslabs -------------------------------------------------------

# (start, stride, count, block) per dimension, each fitting in an extent >= 7
DIM_CASES = {
    "point": (2, 1, 1, 1),
    "block": (1, 1, 1, 3),
    "strided": (0, 3, 3, 1),
    "contig_blocks": (1, 2, 3, 2),
    "gapped_blocks": (0, 3, 2, 2),
    "unit": (1, 1, 4, 1),
    "big_stride": (0, 4, 2, 3),
}


def select_regular(shape, dims):
    sp = space(shape)
    start, stride, count, block = zip(*(DIM_CASES[d] for d in dims), strict=True)
    sp.select_hyperslab(start, count, stride, block)
    return sp


def regular_cases():
    for rank, shape in [(1, (7,)), (2, (7, 8))]:
        for dims in itertools.product(DIM_CASES, repeat=rank):
            yield shape, dims
    shape3 = (7, 7, 8)
    for dims in itertools.product(["point", "strided", "gapped_blocks", "unit"], repeat=3):
        yield shape3, dims


@pytest.mark.parametrize("shape,dims", list(regular_cases()), ids=lambda v: "-".join(map(str, v)))
def test_regular_hyperslab(native, shape, dims):
    sp = select_regular(shape, dims)
    assert sp.is_regular_hyperslab()
    sel = check(native, shape, sp)
    assert sel.kind == "hyperslab"
    _, _, count, block = sp.get_regular_hyperslab()
    assert sel.result_shape == tuple(c * b for c, b in zip(count, block, strict=True))
    gapped = any(d in ("gapped_blocks", "big_stride") for d in dims)
    assert sel.is_basic is not gapped


def test_regular_hyperslab_blocks_are_merged():
    sp = h5s.create_simple((10, 10, 10))
    # contiguous trailing dimensions -> one box per block row of dim 0
    sp.select_hyperslab((0, 2, 0), (2, 1, 1), (5, 1, 1), (2, 3, 10))
    sel = Selection.from_space(sp)
    assert list(sel.blocks()) == [((0, 2, 0), (2, 3, 10)), ((5, 2, 0), (2, 3, 10))]
    # a gapped last dimension forces single rows before it
    sp2 = h5s.create_simple((4, 10))
    sp2.select_hyperslab((0, 0), (1, 2), (1, 5), (2, 2))
    assert list(Selection.from_space(sp2).blocks()) == [
        ((0, 0), (1, 2)),
        ((0, 5), (1, 2)),
        ((1, 0), (1, 2)),
        ((1, 5), (1, 2)),
    ]


# -- irregular hyperslabs -----------------------------------------------------

OPS = {
    "or": h5s.SELECT_OR,
    "and": h5s.SELECT_AND,
    "xor": h5s.SELECT_XOR,
    "notb": h5s.SELECT_NOTB,
    "nota": h5s.SELECT_NOTA,
}

# (shape, [(op, start, count[, stride, block])...]); first op is SELECT_SET
IRREGULAR = {
    "overlap_out_of_order": (
        (7, 8),
        [("set", (3, 3), (2, 2)), ("or", (0, 0), (2, 2)), ("or", (1, 1), (3, 3))],
    ),
    "side_by_side_rows": (
        (7, 8),
        [("set", (1, 5), (3, 2)), ("or", (1, 0), (3, 2))],
    ),
    "hole": ((7, 8), [("set", (0, 0), (5, 6)), ("notb", (1, 2), (2, 2))]),
    "xor": ((7, 8), [("set", (0, 0), (4, 4)), ("xor", (2, 2), (4, 4))]),
    "and_then_or": (
        (7, 8),
        [("set", (0, 0), (4, 4)), ("and", (2, 2), (4, 4)), ("or", (6, 0), (1, 8))],
    ),
    "nota": ((7, 8), [("set", (0, 0), (3, 3)), ("nota", (1, 1), (4, 4))]),
    "strided_union": (
        (7, 8),
        [("set", (0, 0), (3, 2), (2, 4), (1, 2)), ("or", (1, 1), (2, 3), (3, 2), (2, 1))],
    ),
    "1d": ((7,), [("set", (5,), (2,)), ("or", (0,), (2,)), ("or", (1,), (2,))]),
    "3d_overlap": (
        (5, 6, 7),
        [("set", (2, 2, 2), (3, 3, 3)), ("or", (0, 0, 0), (3, 3, 3)), ("or", (4, 0, 6), (1, 6, 1))],
    ),
}


def select_ops(shape, ops):
    sp = space(shape)
    for op, *args in ops:
        sp.select_hyperslab(*args, op=h5s.SELECT_SET if op == "set" else OPS[op])
    return sp


@pytest.mark.parametrize("name", list(IRREGULAR))
def test_irregular_hyperslab(native, name):
    shape, ops = IRREGULAR[name]
    sp = select_ops(shape, ops)
    sel = check(native, shape, sp)
    assert sel.kind == "hyperslab"
    # HDF5 may rebuild a union into a regular hyperslab ("side_by_side_rows")
    if not sp.is_regular_hyperslab():
        assert not sel.is_basic and sel.result_shape == (sel.count,)
        c = sel.coords()  # strictly increasing row-major, so no duplicates
        assert all(tuple(a) < tuple(b) for a, b in zip(c[:-1], c[1:], strict=True))


def test_overlapping_blocks_are_deduplicated():
    # HDF5 never hands out overlapping blocks, but coords/index must still
    # list each element once, in row-major order.
    blocks = np.array([[[2, 2], [3, 3]], [[0, 0], [2, 2]]])
    sel = Selection((5, 5), "hyperslab", 12, blocks=blocks)
    expect = sorted({(i, j) for i in range(3) for j in range(3)} | {(i, j) for i in (2, 3) for j in (2, 3)})
    assert sel.coords().tolist() == [list(p) for p in expect]
    assert sel.result_shape == (12,)
    np.testing.assert_array_equal(np.arange(25).reshape(5, 5)[sel.index], [5 * i + j for i, j in expect])


def test_selection_past_extent_is_rejected():
    sp = h5s.create_simple((7, 8))
    sp.select_hyperslab((0, 6), (1, 2), (1, 3), (2, 1))  # columns 6 and 9
    with pytest.raises(ValueError, match="beyond"):
        Selection.from_space(sp)


def test_irregular_huge_extent():
    # Works from blocks: a dense mask of this extent could never be built.
    big = 10**12
    sp = h5s.create_simple((big, big))
    sp.select_hyperslab((big - 2, big - 3), (2, 3))
    sp.select_hyperslab((5, 7), (2, 2), op=h5s.SELECT_OR)
    sp.select_hyperslab((6, 8), (2, 2), op=h5s.SELECT_OR)
    sel = Selection.from_space(sp)
    assert sel.count == sp.get_select_npoints() == 6 + 7
    assert sel.bounds() == ((5, 7), (big, big))
    assert sel.coords()[0].tolist() == [5, 7] and sel.coords()[-1].tolist() == [big - 1, big - 1]
    assert sum(math.prod(b) for _, b in sel.blocks()) == sel.count


def test_regular_huge_extent_is_view_index():
    big = 10**15
    sp = h5s.create_simple((big,))
    sp.select_hyperslab((10,), (3,), (big // 4,), (1,))
    sel = Selection.from_space(sp)
    assert sel.is_basic and sel.index == (slice(10, 10 + 2 * (big // 4) + 1, big // 4),)


# -- points -------------------------------------------------------------------

POINTS = {
    "reversed_1d": ((7,), [6, 3, 0, 5]),
    "arbitrary_2d": ((7, 8), [(3, 1), (0, 0), (6, 7), (2, 5), (0, 1)]),
    "duplicates": ((7, 8), [(3, 1), (0, 0), (3, 1), (4, 5), (3, 1)]),
    "single": ((5, 6, 7), [(4, 5, 6)]),
    "arbitrary_3d": ((5, 6, 7), [(4, 0, 1), (0, 5, 6), (2, 2, 2), (0, 0, 0)]),
}


@pytest.mark.parametrize("name", list(POINTS))
def test_points(native, name):
    shape, pts = POINTS[name]
    sp = space(shape)
    sp.select_elements(np.array(pts, dtype=np.uint64).reshape(len(pts), len(shape)))
    sel = check(native, shape, sp)
    assert sel.kind == "points" and not sel.is_basic
    # HDF5 visits points in the given order, duplicates kept
    assert sel.coords().tolist() == np.reshape(pts, (len(pts), -1)).tolist()


def test_points_prepend_append(native):
    sp = space((7, 8))
    sp.select_elements([(1, 1), (2, 2)])
    sp.select_elements([(0, 5)], op=h5s.SELECT_PREPEND)
    sp.select_elements([(4, 0), (1, 1)], op=h5s.SELECT_APPEND)
    sel = check(native, (7, 8), sp)
    assert sel.coords().tolist() == [[0, 5], [1, 1], [2, 2], [4, 0], [1, 1]]


def test_coords_read_only():
    sel = Selection.everything((2, 3))
    with pytest.raises(ValueError):
        sel.coords()[0, 0] = 5


# -- hypothesis ---------------------------------------------------------------

H_SHAPES = [(9,), (6, 7), (4, 5, 6)]
hsettings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def regular_hyperslabs(draw):
    shape = draw(st.sampled_from(H_SHAPES))
    params = []
    for n in shape:
        block = draw(st.integers(1, n))
        stride = draw(st.integers(block, n))
        count = draw(st.integers(1, max(1, (n - block) // stride + 1)))
        start = draw(st.integers(0, n - (count - 1) * stride - block))
        params.append((start, stride, count, block))
    return shape, params


@hsettings
@given(regular_hyperslabs())
def test_random_regular_hyperslab(native, case):
    shape, params = case
    start, stride, count, block = zip(*params, strict=True)
    sp = space(shape)
    sp.select_hyperslab(start, count, stride, block)
    sel = check(native, shape, sp)
    assert sel.result_shape == tuple(c * b for c, b in zip(count, block, strict=True))


@st.composite
def unions(draw):
    shape = draw(st.sampled_from(H_SHAPES))
    ops = []
    for i in range(draw(st.integers(1, 5))):
        lo = [draw(st.integers(0, n - 1)) for n in shape]
        cnt = [draw(st.integers(1, n - s)) for n, s in zip(shape, lo, strict=True)]
        op = "set" if i == 0 else draw(st.sampled_from(["or", "or", "or", "xor", "notb", "and"]))
        ops.append((op, tuple(lo), tuple(cnt)))
    return shape, ops


@hsettings
@given(unions())
def test_random_union(native, case):
    shape, ops = case
    check(native, shape, select_ops(shape, ops))


@st.composite
def point_lists(draw):
    shape = draw(st.sampled_from(H_SHAPES))
    point = st.tuples(*[st.integers(0, n - 1) for n in shape])
    return shape, draw(st.lists(point, min_size=1, max_size=30))


@hsettings
@given(point_lists())
def test_random_points(native, case):
    shape, pts = case
    sp = space(shape)
    sp.select_elements(np.array(pts, dtype=np.uint64))
    sel = check(native, shape, sp)
    assert sel.coords().tolist() == [list(p) for p in pts]
