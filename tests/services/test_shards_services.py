"""Shards and descriptors of S3 (RGW, SeaweedFS) and RADOS datasets: one chunk
grid for a dataset on every connector and on native files, keys and location
hints, zone maps from metadata alone, and chunks decoded from their stored
bytes with the JSON descriptor only (docs/s3-layout.md, docs/rados-layout.md)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import servers
from stores import make_store

import h5pyvol
from h5pyvol import storage


def _boxes(dataset) -> list[tuple]:
    return [tuple((s.start, s.stop) for s in shard.selection) for shard in h5pyvol.shards(dataset)]


CASES = {  # name: (shape, dtype, chunks)
    "chunked": ((100, 60), "<f8", (32, 32)),
    "unchunked": ((3000, 700), "<f4", None),
    "scalar": ((), "<i8", None),
}


def _fill(f: h5py.File) -> None:
    for name, (shape, dtype, chunks) in CASES.items():
        data = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
        f.create_dataset(name, data=data, chunks=chunks)


def test_one_grid_on_every_connector(ceph, seaweedfs, monkeypatch, tmp_path):
    grids = {}
    with h5py.File(tmp_path / "native.h5", "w") as f:
        _fill(f)
        grids["native"] = {name: _boxes(f[name]) for name in CASES}
    for connector, opts in (("memory", {}), ("passthru", {"root": str(tmp_path)})):
        with h5pyvol.File("grid.h5", "w", connector, **opts) as f:
            _fill(f)
            grids[connector] = {name: _boxes(f[name]) for name in CASES}
    for kind, info in (("seaweedfs", seaweedfs), ("rados", ceph)):
        s = make_store(kind, info, setenv=monkeypatch.setenv)
        try:
            with s.open("grid.h5", "w") as f:
                assert h5pyvol.connector_name(f.id) == "h5pyvol"
                _fill(f)
                grids[kind] = {name: _boxes(f[name]) for name in CASES}
        finally:
            s.cleanup()
    assert all(g == grids["memory"] for g in grids.values()), grids
    assert len(grids["memory"]["unchunked"]) > 1  # the default grid, not one piece


def test_shards_keys_locations_and_zone_maps(store, monkeypatch):
    data = np.arange(100 * 60, dtype="<f8").reshape(100, 60)
    with store.open("sh.h5", "w") as f:
        d = f.create_dataset("d", shape=(100, 60), dtype="<f8", chunks=(32, 32), fillvalue=-1)
        d[0:70, :] = data[0:70]  # chunk row 3 never written
        d[5, 5] = np.nan  # ignored by zone maps
    stored = store.objects()
    with store.open("sh.h5") as f:
        from h5pyvol.storage.backend import Backend

        backend = type(h5pyvol.node_of(f).backend)
        monkeypatch.setattr(backend, "read", lambda *a: pytest.fail("shards read a chunk"))
        got = h5pyvol.shards(f["d"])
        assert issubclass(backend, Backend)
    assert len(got) == 4 * 2
    for s in got:
        rows = s.selection[0]
        if rows.start >= 70:  # rows 96-100: never written
            assert not s.written and s.key is None and s.nbytes == 0 and s.stats is None
            continue
        assert s.written and stored[s.key] == s.nbytes == 32 * 32 * 8
        # the zone map of the chunk's elements: written ones, and the fill value where not written
        expected = np.where(np.arange(rows.start, rows.stop)[:, None] < 70, data[s.selection], -1.0)
        if rows.start == 0 and s.selection[1].start == 0:
            expected[5, 5] = np.nan
        assert s.stats == {"min": float(np.nanmin(expected)), "max": float(np.nanmax(expected))}
        loc = s.location
        if store.connector == "s3":
            assert loc == {"bucket": store.options["bucket"], "key": s.key, "endpoint": store.options["endpoint_url"]}
        else:
            placed = _osd_map(store, s.key)
            assert loc["pg"] == loc["pgid"] == placed["pgid"] and loc["osds"] == placed["acting"]
            assert loc["primary"] == placed["acting_primary"] and loc["host"]
            assert (loc["pool"], loc["namespace"]) == (store.options["pool"], store.options["namespace"])
    assert [s.written for s in got] == [True, True, True, True, True, True, False, False]


def _osd_map(store, key: str) -> dict:
    cluster = servers.rados_connect(store.info)
    try:
        cmd = {"prefix": "osd map", "pool": store.options["pool"], "object": key,
               "nspace": store.options["namespace"], "format": "json"}
        ret, out, err = cluster.mon_command(json.dumps(cmd), b"")
        assert ret == 0, err
        return json.loads(out)
    finally:
        cluster.shutdown()


def _object(store, key: str) -> bytes:
    if store.connector == "s3":
        return servers.s3_client(store.info).get_object(Bucket=store.options["bucket"], Key=key)["Body"].read()
    cluster = servers.rados_connect(store.info)
    try:
        with cluster.open_ioctx(store.options["pool"]) as io:
            io.set_namespace(store.options["namespace"])
            return io.read(key, length=1 << 26)
    finally:
        cluster.shutdown()


def test_chunks_decode_with_the_descriptor_alone(store):
    big_endian = np.arange(50, dtype=">i2")
    floats = np.linspace(0, 1, 64 * 48).reshape(64, 48)
    words = np.array(["a", "βγ", "", "long" * 20, "e"], dtype=object)
    with store.open("desc.h5", "w") as f:
        f.create_dataset("be", data=big_endian, chunks=(16,), fillvalue=7)
        f.create_dataset("zip", data=floats, chunks=(32, 32), compression="gzip", shuffle=True)
        f.create_dataset("words", data=words, dtype=h5py.string_dtype(), chunks=(2,))
        f.create_dataset("grid", data=np.ones((2000, 1000), "<f4"))  # default chunks
    with store.open("desc.h5") as f:
        for name, expected in (("be", big_endian), ("zip", floats), ("words", words),
                               ("grid", np.ones((2000, 1000), "<f4"))):
            desc = storage.describe(f[name])
            assert json.loads(json.dumps(desc)) == desc
            assert tuple(desc["chunks"]) == h5pyvol.shards(f[name])[0].shape
            for s in h5pyvol.shards(f[name]):
                chunk = storage.decode_chunk(_object(store, s.key), desc)
                assert chunk.shape == tuple(desc["chunks"])
                got = chunk[tuple(slice(0, n) for n in s.shape)]
                if expected.dtype.hasobject:
                    assert [v.decode() if isinstance(v, bytes) else v for v in got] == list(expected[s.selection])
                else:
                    np.testing.assert_array_equal(got, expected[s.selection])
        desc = storage.describe(f["be"])
        assert desc["dtype"] == ">i2" and desc["encoding"] == "raw" and storage.fill_value(desc) == 7
        assert storage.describe(f["zip"])["filters"] == [["shuffle"], ["gzip", 4]]
        assert storage.describe(f["words"])["encoding"] == "json"


def test_zone_maps_can_be_turned_off(store):
    with store.open("nozones.h5", "w", zone_maps="0") as f:
        f.create_dataset("d", data=np.arange(20.0), chunks=(5,))
    with store.open("nozones.h5") as f:
        got = h5pyvol.shards(f["d"])
        assert all(s.written for s in got) and all(s.stats is None for s in got)
