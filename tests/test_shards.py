"""h5pyvol.shards: every element covered once, on native files and through connectors."""

from __future__ import annotations

import itertools
import json

import h5py
import numpy as np
import pytest

import h5pyvol
from h5pyvol import storage
from h5pyvol.storage import ChunkGrid, default_chunks


def box(selection) -> tuple:
    """A hashable form of a tuple of slices (slices hash only from Python 3.12)."""
    return tuple((s.start, s.stop) for s in selection)


def covered_once(shards, shape) -> bool:
    hits = np.zeros(shape, np.int32)
    for s in shards:
        hits[s.selection] += 1
    return bool((hits == 1).all())


def test_grid_boxes_cover_the_extent():
    for shape, chunks in [((10,), (3,)), ((7, 5), (2, 5)), ((0, 4), (1, 2)), ((), ())]:
        grid = ChunkGrid(shape, chunks)
        boxes = [grid.box(c) for c in grid.ids()]
        assert len(boxes) == len(grid)
        hits = np.zeros(shape, np.int32)
        for b in boxes:
            hits[b] += 1
        assert (hits == 1).all()


def test_default_chunks_are_whole_trailing_rows():
    assert default_chunks((1000, 1000), 8, 4 << 20) == (524, 1000)
    assert default_chunks((10,), 8) == (10,)
    assert default_chunks((0, 3), 4) == (1, 3)
    with pytest.raises(ValueError, match="rank"):
        ChunkGrid((3, 3), (3,))


def test_native_chunked_dataset(tmp_path):
    with h5py.File(tmp_path / "n.h5", "w") as f:
        d = f.create_dataset("x", (10, 7), "f8", chunks=(4, 3))
        d[0:4, 0:3] = 1  # one chunk written
        d[9, 6] = 2  # the last, partial one
        got = h5pyvol.shards(d)
        assert covered_once(got, d.shape)
        assert len(got) == 3 * 3
        written = {box(s.selection): s for s in got if s.written}
        assert set(written) == {((0, 4), (0, 3)), ((8, 10), (6, 7))}
        for s in written.values():
            assert s.nbytes == 4 * 3 * 8
            assert s.location["offset"] > 0
        assert all(s.nbytes == 0 and s.key is None for s in got if not s.written)


def test_native_contiguous_and_null(tmp_path):
    with h5py.File(tmp_path / "n.h5", "w") as f:
        d = f.create_dataset("x", data=np.arange(12).reshape(3, 4))
        (only,) = h5pyvol.shards(d)
        assert only.selection == (slice(0, 3), slice(0, 4)) and only.written
        assert only.location["layout"] == "contiguous" and only.location["offset"] > 0
        e = f.create_dataset("empty", data=h5py.Empty("f8"))
        assert h5pyvol.shards(e) == []
        s = f.create_dataset("scalar", data=1.5)
        assert [x.selection for x in h5pyvol.shards(s)] == [()]


@pytest.mark.parametrize("shape", [(17,), (5, 6), ()])
def test_connector_shards_cover_once(shape):
    with h5pyvol.File(f"shards-{len(shape)}.h5", "w", connector="memory") as f:
        d = f.create_dataset("x", shape, "i4")
        got = h5pyvol.shards(d)
        assert got and covered_once(got, shape)


def test_wrong_type_is_refused():
    with pytest.raises(TypeError, match="h5py Dataset"):
        h5pyvol.shards(np.zeros(3))


def test_shard_shape_and_size():
    s = h5pyvol.Shard((slice(2, 5), slice(0, 4)), 96, "k")
    assert s.shape == (3, 4) and s.size == 12 and s.written
    assert list(itertools.islice([s], 1))[0].stats is None


def test_memory_shards_follow_writes_and_zone_maps():
    with h5pyvol.File("shards-zones.h5", "w", connector="memory") as f:
        d = f.create_dataset("x", (10, 6), "f8", chunks=(4, 3))
        assert h5pyvol.connector_name(d.id) == "h5pyvol"
        assert not any(s.written for s in h5pyvol.shards(d))
        d[5, 4] = 7.0  # chunk (1, 1)
        d[8:10, 0:2] = [[1, 2], [3, np.nan]]  # chunk (2, 0)
        d[0:10:9, 0] = -1  # rows 0 and 9: chunks (0, 0) and (2, 0)
        got = {box(s.selection): s for s in h5pyvol.shards(d)}
        assert covered_once(got.values(), d.shape)
        written = {k for k, s in got.items() if s.written}
        assert written == {((4, 8), (3, 6)), ((8, 10), (0, 3)), ((0, 4), (0, 3))}
        assert got[((4, 8), (3, 6))].stats == {"min": 0.0, "max": 7.0}
        assert got[((8, 10), (0, 3))].stats == {"min": -1.0, "max": 2.0}  # NaN ignored
        assert got[((4, 8), (3, 6))].location["process"] > 0
        d[4, 3] = 100.0  # a new write refreshes the zone map
        assert {box(s.selection): s for s in h5pyvol.shards(d)}[((4, 8), (3, 6))].stats["max"] == 100.0


def test_memory_default_grid_matches_storage_default():
    with h5pyvol.File("shards-default.h5", "w", connector="memory") as f:
        d = f.create_dataset("x", (3000, 1000), "f8")
        chunks = default_chunks((3000, 1000), 8)
        grid = ChunkGrid((3000, 1000), chunks)
        assert [box(s.selection) for s in h5pyvol.shards(d)] == [box(grid.box(c)) for c in grid.ids()]


def test_memory_shards_after_resize():
    with h5pyvol.File("shards-resize.h5", "w", connector="memory") as f:
        d = f.create_dataset("x", (4,), "i4", maxshape=(None,), chunks=(2,))
        d[0:2] = 5
        d.resize((7,))
        got = h5pyvol.shards(d)
        assert covered_once(got, (7,))
        assert [s.written for s in got] == [True, False, False, False]
        d[6] = 1
        assert [s.written for s in h5pyvol.shards(d)] == [True, False, False, True]


def _file_bytes(path, offset: int, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(n)


def test_native_contiguous_is_cut_by_the_default_grid(tmp_path):
    data = np.arange(3000 * 1000, dtype="<f8").reshape(3000, 1000)  # 24 MB: several default chunks
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", data=data)
        got = h5pyvol.shards(d)
        grid = ChunkGrid((3000, 1000), default_chunks((3000, 1000), 8))
        assert [box(s.selection) for s in got] == [box(grid.box(c)) for c in grid.ids()] and len(got) > 1
        assert covered_once(got, d.shape)
    for s in got:  # each piece is one contiguous byte range of the file, at its offset
        raw = _file_bytes(path, s.location["offset"], s.nbytes)
        np.testing.assert_array_equal(np.frombuffer(raw, "<f8").reshape(s.shape), data[s.selection])
    with h5py.File(path, "a") as f:
        e = f.create_dataset("never", (10, 4), "i2")
        assert [s.written for s in h5pyvol.shards(e)] == [False]


def test_describe_and_decode_native_chunks(tmp_path):
    data = np.arange(40 * 30, dtype=">i4").reshape(40, 30)
    path = tmp_path / "z.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", data=data, chunks=(16, 16), compression="gzip", shuffle=True, fletcher32=True,
                             fillvalue=-9)
        desc = storage.describe(d)
        located = h5pyvol.shards(d)
    assert json.loads(json.dumps(desc)) == desc  # plain JSON
    assert desc["dtype"] == ">i4" and desc["chunks"] == [16, 16] and desc["shape"] == [40, 30]
    assert desc["filters"] == [["shuffle"], ["gzip", 4], ["fletcher32"]]
    assert storage.fill_value(desc) == -9
    for s in located:
        raw = _file_bytes(path, s.location["offset"], s.nbytes)
        chunk = storage.decode_chunk(raw, desc, s.location["filter_mask"])
        assert chunk.shape == (16, 16)
        np.testing.assert_array_equal(chunk[tuple(slice(0, n) for n in s.shape)], data[s.selection])


def test_passthru_shards_are_the_native_files(tmp_path):
    data = np.arange(100, dtype="<u2").reshape(10, 10)
    with h5pyvol.File("p.h5", "w", connector="passthru", root=str(tmp_path)) as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        f.create_dataset("x", data=data, chunks=(5, 5))
        f.create_dataset("flat", data=data)
        through = {name: h5pyvol.shards(f[name]) for name in ("x", "flat")}
    with h5py.File(tmp_path / "p.h5", "r") as f:
        native = {name: h5pyvol.shards(f[name]) for name in ("x", "flat")}
    for name in ("x", "flat"):
        assert [(box(s.selection), s.nbytes, s.location["offset"]) for s in through[name]] == \
            [(box(s.selection), s.nbytes, s.location["offset"]) for s in native[name]]
    for s in through["x"]:
        raw = _file_bytes(tmp_path / "p.h5", s.location["offset"], s.nbytes)
        np.testing.assert_array_equal(np.frombuffer(raw, "<u2").reshape(5, 5), data[s.selection])


def test_describe_memory_dataset_matches_its_shards():
    with h5pyvol.File("describe-mem.h5", "w", connector="memory") as f:
        d = f.create_dataset("x", (3000, 700), "f4", fillvalue=2.5)
        desc = storage.describe(d)
        assert desc["chunks"] == list(default_chunks((3000, 700), 4))
        assert tuple(desc["chunks"]) == h5pyvol.shards(d)[0].shape and storage.fill_value(desc) == 2.5
