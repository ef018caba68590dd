"""h5pyvol.analysis on real Ceph (RADOS, with Lua inside the OSD) and S3 (RGW).

Built-in reductions with a query run as generated Lua in the OSD and agree
with the Python path and numpy while no chunk byte reaches a client;
filtered chunks fall back to Python; a failed script names its object;
every engine gives one result on RADOS and S3; views save through both;
the G2 example on RADOS matches brute force.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
import servers

import h5pyvol
from h5pyvol.analysis import Count, Histogram, MapError, Max, Mean, Min, Q, Sum, execute, view

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES.parent / "tests"))
from analysis_fixtures import dask_client  # noqa: E402, F401 - a fixture


def _rados_opts(ceph: dict) -> dict:
    return {"pool": ceph["pool"], "conf": ceph["conf"], "keyring": ceph["keyring"], "user": ceph["user"],
            "namespace": f"an-{uuid.uuid4().hex[:10]}", "timeout": "20"}


@pytest.fixture
def rados_file(ceph):
    opts = _rados_opts(ceph)
    f = h5pyvol.File("analysis.h5", "w", "rados", **opts)
    assert h5pyvol.connector_name(f.id) == "h5pyvol"
    yield f
    f.close()
    servers.remove_namespace(ceph, opts["namespace"])


@pytest.fixture
def s3_file(ceph, monkeypatch):
    servers.set_aws_env(monkeypatch, ceph)
    bucket = f"h5pyvol-an-{uuid.uuid4().hex[:10]}"
    client = servers.s3_client(ceph)
    client.create_bucket(Bucket=bucket)
    f = h5pyvol.File(f"s3://{bucket}/analysis.h5", "w", endpoint_url=ceph["endpoint"])
    yield f
    f.close()
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


def _clustered(rows=300, cols=64, seed=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, cols)) + np.arange(rows)[:, None] // 50 * 10.0
    data[7, 3] = np.nan
    return data


@pytest.mark.parametrize("reduction", [Count(), Sum(), Min(), Max(), Mean(), Histogram(12, (-2.0, 40.0))],
                         ids=lambda r: r.name)
def test_lua_reductions_run_inside_the_osd(rados_file, reduction):
    data = _clustered()
    ds = rados_file.create_dataset("x", data=data, chunks=(50, 32))
    query = (Q.value > 8.5) & ~Q.value.between(20.0, 21.0)
    inside = execute(reduction, inputs={"x": ds}, query=query, engine="serial", lua=True)
    python = execute(reduction, inputs={"x": ds}, query=query, engine="serial", lua=False)
    sel = data[(data > 8.5) & ~((data >= 20.0) & (data <= 21.0))]
    expected = {"count": sel.size, "sum": sel.sum(), "min": sel.min(), "max": sel.max(), "mean": sel.mean(),
                "histogram": np.histogram(sel, 12, (-2.0, 40.0))[0]}[reduction.name]
    np.testing.assert_allclose(inside.value, expected, rtol=1e-12)
    np.testing.assert_allclose(python.value, expected, rtol=1e-12)
    # RADOS keeps zone maps: the two chunks of rows 0-100 (values about 0-10) cannot match, and are skipped
    assert inside.stats["shards_skipped"] == python.stats["shards_skipped"] == 2
    assert inside.stats["lua_shards"] == 10 and python.stats["lua_shards"] == 0
    assert inside.stats["bytes_fetched"] == 0 < inside.stats["bytes_read"]  # no chunk byte reached a client
    assert python.stats["bytes_fetched"] == python.stats["bytes_read"] == data.nbytes * 10 // 12
    assert inside.stats["bytes_returned"] <= 12 * (8 * 12 + 16)
    # lua="auto": the OSDs are on this host, where fetching a chunk costs less than decoding it in Lua
    auto = execute(reduction, inputs={"x": ds}, query=query, engine="serial")
    assert auto.stats["lua_shards"] == 0 and auto.stats["bytes_fetched"] == python.stats["bytes_fetched"]


def test_lua_nan_integers_and_partial_edge_chunks(rados_file):
    ints = rados_file.create_dataset("i", data=np.arange(-500, 503, dtype=np.int16).reshape(17, 59), chunks=(5, 20))
    r = execute(Sum(), inputs={"i": ints}, query=Q.value("i") != 7, engine="serial", lua=True)
    assert r.value == int(np.arange(-500, 503).sum()) - 7 and r.stats["lua_shards"] == 12
    f32 = rados_file.create_dataset("f", data=_clustered().astype(np.float32), chunks=(64, 64))
    assert np.isnan(execute(Max(), inputs={"f": f32}, engine="serial", lua=True).value)  # NaN propagates
    assert execute(Count(), inputs={"f": f32}, query=Q.value != 1.5, engine="serial", lua=True).value == 300 * 64
    contiguous = rados_file.create_dataset("c", data=np.arange(1000.0))  # the connector chunks it itself
    assert execute(Sum(), inputs={"c": contiguous}, engine="serial", lua=True).value == sum(range(1000))


def test_lua_histogram_bins_values_at_and_beside_every_edge_as_numpy(rados_file):
    """The generated Lua scales once by a multiplication and checks against the
    edges only near one: values on, just under and just over every edge land
    where numpy puts them."""
    bins, low, high = 7, -1.3, 2.9
    edges = np.linspace(low, high, bins + 1)
    near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    rng = np.random.default_rng(11)
    data = np.concatenate([near, rng.uniform(low - 0.5, high + 0.5, 64 * 40 - near.size)]).reshape(64, 40)
    ds = rados_file.create_dataset("h", data=data, chunks=(16, 40))
    r = execute(Histogram(bins, (low, high)), inputs={"h": ds}, engine="serial", lua=True)
    assert r.stats["lua_shards"] == 4
    np.testing.assert_array_equal(r.value, np.histogram(data, bins, (low, high))[0])


def test_filtered_chunks_fall_back_to_python(rados_file):
    data = _clustered()
    ds = rados_file.create_dataset("z", data=data, chunks=(50, 64), compression="gzip")
    r = execute(Sum(), inputs={"z": ds}, query=Q.value < 0, engine="serial")
    assert r.stats["lua_shards"] == 0 and np.isclose(r.value, data[data < 0].sum())
    assert r.stats["shards_direct"] == r.stats["shards_read"] == 1  # gzip undone by the storage layer's decoder
    with pytest.raises(ValueError, match="filtered"):
        execute(Sum(), inputs={"z": ds}, engine="serial", lua=True)


def test_rados_shards_name_objects_osds_and_host(rados_file):
    import socket

    ds = rados_file.create_dataset("x", data=np.arange(100.0), chunks=(30,))
    shards = h5pyvol.shards(ds)
    assert [s.selection[0] for s in shards] == [slice(0, 30), slice(30, 60), slice(60, 90), slice(90, 100)]
    assert all(s.key and s.location["osds"] == [0] and s.location["primary"] == 0 for s in shards)
    assert {s.location["host"] for s in shards} == {socket.gethostname()}  # the primary OSD's host


def test_a_lost_chunk_object_names_itself_in_the_osd_and_in_workers(rados_file, ceph):
    ds = rados_file.create_dataset("x", data=_clustered(), chunks=(100, 64))
    rados_file.flush()
    victim = h5pyvol.shards(ds)[1].key
    cluster = servers.rados_connect(ceph)
    try:
        with cluster.open_ioctx(ceph["pool"]) as io:
            io.set_namespace(_namespace_of(ds))
            io.remove_object(victim)
    finally:
        cluster.shutdown()
    with pytest.raises(MapError, match=f"{victim}.*shard 1"):
        execute(Sum(), inputs={"x": ds}, engine="serial", lua=True)
    # read straight from storage by a worker: the traceback names the object and the shard
    with pytest.raises(MapError, match=f"(?s)shard 1.*{victim}"):
        execute(Sum(), inputs={"x": ds}, engine="processes", workers=2, lua=False, timeout=60)


def _namespace_of(ds) -> str:
    from h5pyvol.analysis.sources import source_of
    from h5pyvol.registry import ConnectorSpec

    return dict(ConnectorSpec.parse(source_of(ds).spec).options)["namespace"]


def _column_sums(block):
    matches = block["x"].size if block.mask is None else int(np.count_nonzero(block.mask))  # None: all match
    return block.index, block["x"].sum(axis=0).tolist(), matches


@pytest.mark.parametrize("engine", ["serial", "processes", "dask"])
def test_same_result_on_every_engine(store, engine, request):
    f = store.open("analysis.h5", "w")
    assert h5pyvol.connector_name(f.id) == "h5pyvol"
    try:
        data = np.arange(200 * 30, dtype=np.int64).reshape(200, 30)
        ds = f.create_dataset("x", data=data, chunks=(40, 30))
        f.flush()
        options = {"workers": 2} if engine == "processes" else {}
        if engine == "dask":
            options = {"client": request.getfixturevalue("dask_client")}
        query = Q.value >= 1000
        r = execute(_column_sums, None, {"x": ds}, query=query, engine=engine, timeout=120, **options)
        reference = execute(_column_sums, None, {"x": ds}, query=query, engine="serial")
        assert r.value == reference.value
        assert sum(part[2] for part in r.value) == int((data >= 1000).sum())
        assert r.stats["shards_skipped"] == reference.stats["shards_skipped"] == 0  # chunk 0 holds 0..1199
        assert r.stats["shards_direct"] == r.stats["shards_read"] == 5  # chunk objects read without HDF5
        hist = execute(Histogram(9, (0, 6000)), inputs={"x": ds}, engine=engine, timeout=120, **options)
        np.testing.assert_array_equal(hist.value, np.histogram(data, 9, (0, 6000))[0])
    finally:
        f.close()


def test_selective_query_reads_one_chunk_in_a_hundred(store):
    """Zone maps kept by the storage layer, from metadata alone: a query
    matching 1% of clustered values reads at most 2% of the chunks."""
    rng = np.random.default_rng(5)
    data = np.arange(400)[:, None] * 10.0 + rng.random((400, 16))  # row r holds values in [10r, 10r + 1)
    with store.open("selective.h5", "w") as f:
        f.create_dataset("x", data=data, chunks=(4, 16))  # 100 chunks
    with store.open("selective.h5") as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        query = Q.value.between(2000.0, 2031.0)  # rows 200..203: 1% of the values, all in chunk 50
        for engine, options in (("serial", {}), ("processes", {"workers": 2})):
            r = execute(Sum(), inputs={"x": f["x"]}, query=query, engine=engine, **options)
            keep = (data >= 2000.0) & (data <= 2031.0)
            assert keep.mean() == 0.01 and np.isclose(r.value, data[keep].sum(), rtol=1e-12)
            assert r.stats["shards"] == 100 and r.stats["shards_skipped"] == 99 and r.stats["shards_read"] == 1
            assert r.stats["bytes_read"] == 4 * 16 * 8


def test_views_hold_object_and_region_references(store):
    """A saved view holds HDF5 object and region references through the
    connector (its tokens fit them); loading follows them across a move."""
    data = _clustered()
    with store.open("views.h5", "w") as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        f.create_dataset("raw/x", data=data, chunks=(50, 64)).attrs["units"] = "K"
        f["raw"].attrs["units"] = "none"
        v = view(f, Q.value.between(30.0, 30.5) | (Q.attr("units") == "none"))
        assert v.objects == ["/raw"] and [r.path for r in v.regions] == ["/raw/x"]
        v.save(f, "view")
    expect = (data >= 30.0) & (data <= 30.5)
    with store.open("views.h5", "r+") as f:
        refs = f["view/object_refs"][...]
        assert refs.dtype == h5py.ref_dtype and f[refs[0]].name == "/raw"
        # HDF5's own region reference, stored through the connector, selects the same elements
        np.testing.assert_array_equal(f["raw/x"][f["view/regions/refs"][0]], data[expect])
        f.move("raw", "moved")
    with store.open("views.h5") as f:
        back = h5pyvol.analysis.View.load(f["view"])
        assert back.version == v.version
        assert back.objects == ["/moved"] and [r.path for r in back.regions] == ["/moved/x"]  # refs followed
        assert list(f["view/objects"].asstr()[...]) == ["/raw"]  # the paths as saved
        np.testing.assert_array_equal(back.region("/moved/x").mask(), expect)
        np.testing.assert_array_equal(back.region("/moved/x").read(f["moved/x"]), data[expect])
        assert not back.is_current(f)  # what it referenced moved


def _load_g2():
    spec = importlib.util.spec_from_file_location("g2_example", EXAMPLES / "g2.py")
    module = sys.modules["g2_example"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)  # workers cannot import the example by name
    return module


def test_g2_example_on_rados_matches_brute_force(rados_file):
    g2 = _load_g2()
    frames = g2.synthetic_stack(48, 20, 18)
    ds = g2.write_stack(rados_file, frames, (8, 6))
    rados_file.flush()
    mask = g2.default_mask(20, 18)
    delays = [1, 3, 7]
    r = g2.run(ds, mask, delays, engine="processes", workers=2, timeout=120)
    np.testing.assert_allclose(r.value, g2.brute_force(frames, mask, delays), rtol=1e-6, equal_nan=True)
    assert r.stats["shards"] == 9 and len(r.stats["workers"]) == 2  # pixels sharded over both workers
    assert np.isnan(r.value[:, 0, :]).all() and np.isfinite(r.value[:, 5, 5]).all()


def test_native_read_is_the_baseline(tmp_path):
    # The bench's baseline reads through h5py: make sure the same data gives the same G2 natively.
    g2 = _load_g2()
    frames = g2.synthetic_stack(16, 6, 6)
    with h5py.File(tmp_path / "n.h5", "w") as f:
        ds = g2.write_stack(f, frames, (3, 3))
        r = g2.run(ds, np.ones((6, 6), np.uint8), [1, 2], engine="serial")
    np.testing.assert_allclose(r.value, g2.g2_of(frames, [1, 2]), rtol=1e-6)
