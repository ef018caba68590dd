"""h5pyvol.analysis: queries, pruning, reductions, scripts, errors and engines.

Real HDF5 through the memory connector and native files; the processes
engine's workers reopen native files in other processes; Dask runs a real
LocalCluster. Services (S3, RADOS, Lua in the OSD) are in tests/services.
"""

from __future__ import annotations

import os
import time

import h5py
import numpy as np
import pytest
from analysis_fixtures import dask_client  # noqa: F401 - a fixture

import h5pyvol
from h5pyvol.analysis import (
    Count,
    Histogram,
    MapError,
    Max,
    Mean,
    Min,
    PlacementError,
    Q,
    Query,
    Sum,
    Worker,
    associative,
    execute,
    place,
)
from h5pyvol.analysis.query import ALWAYS, MAYBE, NEVER
from h5pyvol.connector import Shard

ROWS, COLS, CHUNK = 400, 50, (40, 50)


def _data() -> np.ndarray:
    rng = np.random.default_rng(7)
    # clustered: each chunk's values lie in its own range, so zone maps prune
    base = np.repeat(np.arange(ROWS // CHUNK[0]) * 1000.0, CHUNK[0] * COLS).reshape(ROWS, COLS)
    return base + rng.random((ROWS, COLS)) * 100


@pytest.fixture
def memfile(request):
    name = f"analysis-{request.node.name}.h5"
    f = h5pyvol.File(name, "w", "memory")
    f.create_dataset("x", data=_data(), chunks=CHUNK)
    f["x"].attrs["units"] = "K"
    f.create_dataset("w", data=np.arange(COLS, dtype=np.int32))
    f.create_dataset("n", data=np.arange(ROWS * COLS, dtype=np.int64).reshape(ROWS, COLS), chunks=CHUNK)
    assert h5pyvol.connector_name(f.id) == "h5pyvol"
    yield f
    f.close()


@pytest.fixture
def nativefile(tmp_path):
    path = tmp_path / "native.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=_data(), chunks=CHUNK)
        f.create_dataset("n", data=np.arange(ROWS * COLS, dtype=np.int64).reshape(ROWS, COLS), chunks=CHUNK)
    return path


# ---------------------------------------------------------------- queries


def test_query_json_round_trip_and_masks():
    q = ((Q.value > 3) & ~(Q.value("b") == 5)) | Q.value.between(-1, 0.5) | (Q.attr("units") == "K")
    q = q & (Q.attr_name.like("un*") | (Q.link_name == "x"))
    back = Query.from_json(q.to_json())
    assert back == q and back.to_json() == q.to_json()
    a, b = np.array([-2, 0, 4, 5, 6]), np.array([5, 5, 5, 1, 5])
    values = {None: a, "b": b}.__getitem__
    got = ((Q.value > 3) & ~(Q.value("b") == 5)).mask(values)
    assert got.tolist() == [False, False, False, True, False]
    assert Q.value.between(-1, 4).mask(values).tolist() == [False, True, True, False, False]
    assert (Q.attr("units") == "K").mask(values, {"units": b"K"}) is True
    assert (Q.attr_name == "units").mask(values, {"other": 1}) is False
    assert (Q.link_name.like("te*")).mask(values, {}, "/g/temp") is True
    with pytest.raises(ValueError, match="unknown query kind"):
        Query.from_json('{"kind": "nope"}')
    with pytest.raises(TypeError, match="no truth value"):
        bool(Q.value > 1)


def test_query_prunes_with_zone_maps():
    zone = {"min": 10, "max": 20}
    assert (Q.value > 20).prune(zone, exact=True) == NEVER
    assert (Q.value > 9).prune(zone, exact=True) == ALWAYS
    assert (Q.value > 9).prune(zone, exact=False) == MAYBE  # floats may hold NaN
    assert (Q.value == 15).prune(zone, exact=True) == MAYBE
    assert (~(Q.value > 9)).prune(zone, exact=True) == NEVER
    assert ((Q.value < 5) | (Q.value > 25)).prune(zone, exact=False) == NEVER
    assert (Q.value.between(0, 9)).prune(zone, exact=False) == NEVER
    assert (Q.value != 30).prune(zone, exact=False) == ALWAYS
    assert (Q.value > 1).prune(None, exact=True) == MAYBE
    assert ((Q.value > 0) & (Q.attr("units") == "m")).prune(zone, True, {"units": "K"}) == NEVER


# ---------------------------------------------------------------- execute on memory


@pytest.mark.parametrize("reduction, expected", [
    (Count(), lambda v: v.size), (Sum(), np.sum), (Min(), np.min), (Max(), np.max), (Mean(), np.mean),
    (Histogram(16, (2000.0, 8000.0)), lambda v: np.histogram(v, 16, (2000.0, 8000.0))[0]),
])
def test_reductions_with_query_skip_chunks(memfile, reduction, expected):
    data = memfile["x"][...]
    query = (Q.value >= 3050.0) & (Q.value < 6020.0)
    r = execute(reduction, inputs={"x": memfile["x"]}, query=query, engine="serial")
    np.testing.assert_allclose(r.value, expected(data[(data >= 3050.0) & (data < 6020.0)]), rtol=1e-12)
    # Only chunks 3..6 hold values in range: the other six are skipped unread.
    assert r.stats["shards"] == 10 and r.stats["shards_skipped"] == 6
    assert r.stats["bytes_read"] == 4 * CHUNK[0] * COLS * 8
    assert r.stats["bytes_returned"] < 1000


def test_map_and_combine_functions_blocks_and_broadcast_inputs(memfile):
    def weighted(block):
        assert block["x"].shape == block["w"].shape[-1:] * 0 + (CHUNK[0], COLS)
        return block.selection, float((block["x"] * block["w"]).sum())

    r = execute(weighted, lambda parts: sorted(parts), {"x": memfile["x"], "w": memfile["w"]}, engine="serial")
    assert [p[0][0].start for p in r.value] == list(range(0, ROWS, CHUNK[0]))
    total = sum(p[1] for p in r.value)
    np.testing.assert_allclose(total, (memfile["x"][...] * memfile["w"][...]).sum())


def test_source_text_with_inputs_found_in_the_script(memfile):
    map_script = '''
def map(block):
    x = block["/x"]
    return float((x * block.get("/w")).sum()), int(block["/n"][0, 0])
'''
    combine_script = '''
def combine(parts):
    return sum(p[0] for p in parts), [p[1] for p in parts]
'''
    r = execute(map_script, combine_script, file=memfile, engine="serial")
    np.testing.assert_allclose(r.value[0], (memfile["x"][...] * memfile["w"][...]).sum())
    assert r.value[1] == list(range(0, ROWS * COLS, CHUNK[0] * COLS))
    with pytest.raises(ValueError, match="references no dataset"):
        execute("def map(b):\n    return 1\n", None, file=memfile, engine="serial")
    with pytest.raises(SyntaxError):
        execute("def map(b) return 1", None, {"x": memfile["x"]}, engine="serial")


def test_inputs_by_url_and_path(memfile, nativefile):
    r = execute(Sum(), inputs={"n": (f"memory://{memfile.filename}", "/n")}, engine="serial")
    assert r.value == int(np.arange(ROWS * COLS).sum())
    r = execute(Sum(), inputs={"n": (str(nativefile), "/n")}, query=Q.value < 100, engine="serial")
    assert r.value == sum(range(100)) and r.stats["shards_skipped"] == 0  # native chunks keep no zone maps
    with pytest.raises(ValueError, match="unknown connector"):
        execute(Sum(), inputs={"n": ("nope://x.h5", "/n")}, engine="serial")
    with pytest.raises(KeyError, match="no dataset"):
        execute(Sum(), inputs={"n": (memfile, "/missing")}, engine="serial")
    with pytest.raises(ValueError, match="does not line up"):
        execute(Sum(), inputs={"x": memfile["x"], "bad": np.zeros(3)}, engine="serial")
    with pytest.raises(ValueError, match="not inputs"):
        execute(Sum(), inputs={"x": memfile["x"]}, query=Q.value("y") > 1, engine="serial")


def _boom(block):
    if block.index == 3:
        raise ZeroDivisionError("bad shard")
    return 1


def test_failing_map_reports_shard_and_traceback(memfile, nativefile):
    with pytest.raises(MapError, match=r"shard 3 \[120:160, 0:50\]") as err:
        execute(_boom, sum, {"x": memfile["x"]}, engine="serial")
    assert "ZeroDivisionError: bad shard" in str(err.value) and "_boom" in str(err.value)
    with h5py.File(nativefile, "r") as f, pytest.raises(MapError, match="ZeroDivisionError"):
        execute(_boom, sum, {"x": f["x"]}, engine="processes", workers=2)


def _dies(block):
    if block.index == 5:
        os._exit(3)
    return 1


def test_a_dying_worker_is_reported_not_waited_for(nativefile):
    with h5py.File(nativefile, "r") as f:
        with pytest.raises(MapError, match=r"died \(exit code 3\) while mapping shards \[5"):
            execute(_dies, sum, {"x": f["x"]}, engine="processes", workers=2, timeout=60)
        assert execute(Count(), inputs={"x": f["x"]}, engine="processes", workers=2).value == ROWS * COLS


def _sleepy(block):
    time.sleep(30)


def test_timeout_interrupts_maps(memfile, nativefile):
    t0 = time.perf_counter()
    with pytest.raises((MapError, TimeoutError), match="time"):
        execute(_sleepy, None, {"x": memfile["x"]}, engine="serial", timeout=0.5)
    with h5py.File(nativefile, "r") as f, pytest.raises((MapError, TimeoutError), match="time"):
        execute(_sleepy, None, {"x": f["x"]}, engine="processes", workers=2, timeout=1.0)
    assert time.perf_counter() - t0 < 20
    # the pool works again afterwards
    with h5py.File(nativefile, "r") as f:
        assert execute(Count(), inputs={"x": f["x"]}, engine="processes", workers=2).value == ROWS * COLS


# ---------------------------------------------------------------- engines


def _row_sums(block):
    return block.selection[0].start, block["n"].sum(axis=1).tolist(), int(block.values().sum())


@associative
def _add_counts(parts):
    return sum(parts)


@pytest.mark.parametrize("engine", ["serial", "processes", "dask"])
@pytest.mark.parametrize("store", ["memory", "native"])
def test_same_call_same_result_on_every_engine(engine, store, memfile, nativefile, request):
    options = {"workers": 2} if engine == "processes" else {}
    if engine == "dask":
        options = {"client": request.getfixturevalue("dask_client")}
    f = memfile if store == "memory" else h5py.File(nativefile, "r")
    try:
        query = (Q.value("n") >= 4321) & (Q.value("n") < 15000)
        r = execute(_row_sums, None, {"n": f["n"]}, query=query, engine=engine, **options)
        reference = execute(_row_sums, None, {"n": f["n"]}, query=query, engine="serial")
        assert r.value == reference.value
        assert r.stats["shards_skipped"] == reference.stats["shards_skipped"] == (4 if store == "memory" else 0)
        hist = execute(Histogram(7, (0, 20000)), inputs={"n": f["n"]}, query=query, engine=engine, **options)
        np.testing.assert_array_equal(hist.value, np.histogram(np.arange(4321, 15000), 7, (0, 20000))[0])
        ones = execute(lambda b: int(b.values().size), _add_counts, {"n": f["n"]}, query=query, engine=engine,
                       **options)
        assert ones.value == 15000 - 4321
        if store == "native" and engine != "serial":
            assert os.getpid() not in {int(w.rsplit(":", 1)[1]) for w in r.stats["workers"]} or engine == "dask"
        if store == "memory" and engine == "processes":
            assert set(r.stats["workers"]) == {f"{os.uname().nodename}:{os.getpid()}"}  # memory files: in-process
    finally:
        if f is not memfile:
            f.close()


def test_placement_rule_on_several_hosts():
    def shard(i, **loc):
        return Shard((slice(i, i + 1),), 8, f"obj{i}", loc)

    workers = [Worker("a1", "hostA"), Worker("a2", "hostA"), Worker("b1", "hostB"), Worker("c1", "hostC", pid=42)]
    shards = [shard(0, host="hostA", primary=1), shard(1, host="hostB"), shard(2, host="hostA"),
              shard(3, host="hostA"), shard(4, host="hostZ"), shard(5), shard(6), shard(7, host="hostC", process=42)]
    got = [w.name for w in place(shards, workers)]
    assert got[:4] == ["a1", "b1", "a2", "a1"]  # by the host of the primary copy, round-robin on that host
    assert got[4:7] == ["a1", "a2", "b1"]  # no worker on hostZ, no host: round-robin over all
    assert got[7] == "c1"  # a process-local shard goes to that process
    caller = Worker("caller", "hostC", pid=7)
    assert place([shard(0, host="hostC", process=7)], workers, caller) == [caller]
    with pytest.raises(PlacementError, match="process 9"):
        place([shard(0, host="hostC", process=9)], workers, caller)


# ---------------------------------------------------------------- views


def test_view_regions_objects_attributes_save_and_reopen(memfile):
    g = memfile.create_group("g")
    g.attrs["units"] = "K"
    memfile["x"].attrs["flagged"] = 1
    query = Q.value.between(4010.5, 4010.9) | ((Q.value < 50.0) & (Q.attr("units") == "K"))
    v = h5pyvol.analysis.view(memfile, query)
    data = memfile["x"][...]
    expect = ((data >= 4010.5) & (data <= 4010.9)) | (data < 50.0)
    assert [r.path for r in v.regions] == ["/x"]  # /n holds no value in range and has no units
    region = v.region("/x")
    assert region.shape == (ROWS, COLS) and region.blocks.shape[1:] == (2, 2)  # keeps the dataset's rank
    np.testing.assert_array_equal(region.mask(), expect)
    np.testing.assert_array_equal(region.read(memfile["x"]), data[expect])
    np.testing.assert_array_equal(region.read(memfile["n"]), memfile["n"][...][expect])  # another dataset
    assert ("/x", "units") in v.attributes and v.objects == []
    assert v.is_current(memfile)

    objs = h5pyvol.analysis.view(memfile, (Q.attr_name == "units") & Q.link_name.like("*"))
    assert objs.objects == ["/g", "/x"] and objs.regions == []
    assert sorted(objs.attributes) == [("/g", "units"), ("/x", "units")]

    saved = v.save(memfile, "saved_view")
    objs.save(memfile, "saved_objects")
    back = h5pyvol.analysis.View.load(memfile["saved_view"])
    assert back.version == v.version and back.query == query and back.attributes == v.attributes
    np.testing.assert_array_equal(back.region("/x").mask(), expect)
    # The region reference HDF5 stored selects the same elements.
    ref = saved["regions/refs"][0]
    np.testing.assert_array_equal(memfile["x"][ref], data[expect])
    obj_back = h5pyvol.analysis.View.load(memfile["saved_objects"])
    assert obj_back.objects == ["/g", "/x"]
    assert memfile[memfile["saved_objects/object_refs"][0]].name == "/g"

    memfile["x"][0, 0] = -1.0  # a new minimum: the chunk's zone map changes
    assert not v.is_current(memfile)
    with pytest.raises(ValueError, match="not a saved view"):
        h5pyvol.analysis.View.load(memfile["g"])


# ---------------------------------------------------------------- C programs


def test_h5asexecute_from_c(compile_c, tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from support import native_env, run, vol_env

    prog = compile_c("analysis_execute")
    proc = run([prog, "shipped.h5"], vol_env("memory", H5PYVOL_ANALYSIS_ENGINE="processes"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "connector: h5pyvol" in proc.stdout
    result = json.loads(proc.stdout.split("result: ", 1)[1].splitlines()[0])
    x = np.arange(600)
    assert result == {"sum": int(x[x % 7 == 0].sum()), "count": 600, "shards": 4}  # the Python computation
    assert "failing map: status -1, result (none)" in proc.stdout
    assert "map failed on shard 2 [30:45, 0:10]" in proc.stdout and "no good shard" in proc.stdout
    assert "no map function: status -1" in proc.stdout and "must define a function named 'map'" in proc.stdout
    assert proc.stdout.rstrip().endswith("done")
    # A native file: a clear error, no crash.
    native = run([prog, "native.h5"], native_env(), cwd=tmp_path)
    assert native.returncode == 1 and "'native' VOL connector" in native.stdout + native.stderr


# ---------------------------------------------------------------- command line


def test_launcher_under_mpiexec(nativefile, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "job.py"
    script.write_text(f'''
from h5pyvol.analysis import Q
inputs = {{"n": ({str(nativefile)!r}, "/n")}}
query = (Q.value >= 100) & (Q.value < 9000)

def map(block):
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_rank(), int(block.values().sum())

def combine(parts):
    return {{"sum": sum(p[1] for p in parts), "ranks": sorted({{p[0] for p in parts}})}}
''')
    mpiexec = Path(sys.executable).parent / "mpiexec"
    out = tmp_path / "out.json"
    proc = subprocess.run([str(mpiexec), "-n", "2", sys.executable, "-P", "-m", "h5pyvol.analysis", str(script),
                           "--output", str(out), "--stats", "--timeout", "60"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(out.read_text()) == {"sum": sum(range(100, 9000)), "ranks": [0, 1]}
    assert '"engine": "mpi"' in proc.stderr
    bad = subprocess.run([sys.executable, "-P", "-m", "h5pyvol.analysis", str(tmp_path / "missing.py")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cannot load" in bad.stderr


# ---------------------------------------------------------------- the Lua compiler (run in Ceph by tests/services)


def test_lua_runs_cover_exactly_the_in_extent_elements():
    from h5pyvol.analysis.lua import runs

    for chunk, extent in [((4, 5), (4, 5)), ((4, 5), (3, 5)), ((4, 5), (4, 2)), ((3, 4, 5), (2, 4, 3)),
                          ((3, 4, 5), (2, 4, 5)), ((7,), (3,)), ((), ())]:
        inside = np.zeros(chunk, bool)
        inside[tuple(slice(0, e) for e in extent)] = True
        covered = np.zeros(int(np.prod(chunk)), bool)
        for start, count in runs(chunk, extent):
            assert not covered[start:start + count].any()
            covered[start:start + count] = True
        np.testing.assert_array_equal(covered, inside.reshape(-1))
    assert len(runs((4, 5), (3, 5))) == 1  # whole rows merge into one read


def test_lua_script_prints_its_own_constants():
    from h5pyvol.analysis.lua import compile_script, unsupported
    from h5pyvol.analysis.sources import Input

    first = Input("x", (10, 10), np.dtype("<f8"), attrs={"units": "K"}, descriptor={"chunks": [5, 10], "filters": []})
    q = (Q.value > 0.1) & (Q.attr("units") == "K") & ~Q.value.between(float("-inf"), -1e300) | (Q.value != float("nan"))
    text = compile_script(Histogram(4, (0.0, 1.0)), q, first, (5, 10), (5, 10))
    assert "true" in text and "units" not in text  # the attribute predicate was folded to a constant
    assert "(-math.huge)" in text and "(0.0/0.0)" in text and "objclass.register" in text
    assert unsupported(Input("x", (3,), np.dtype(">f8")), Sum(), None).startswith("Lua cannot decode")
    assert "another input" in unsupported(first, Sum(), Q.value("y") > 1)


def test_lua_auto_runs_in_the_osds_only_where_chunks_would_cross_the_network():
    import socket

    from h5pyvol.analysis.osd import split
    from h5pyvol.analysis.plan import Task
    from h5pyvol.analysis.sources import Input, Source

    here = socket.gethostname()
    first = Input("x", (40,), np.dtype("<f8"), Source("rados;pool=p", "f.h5", "/x"),
                  descriptor={"chunks": [10], "filters": []})
    hosts = [here, "osd-host-b", None, "worker-host"]
    tasks = [Task(i, Shard((slice(10 * i, 10 * i + 10),), 80, f"obj{i}", {"host": h} if h else {}))
             for i, h in enumerate(hosts)]
    inside, fetched = split(tasks, first, Sum(), None, "auto", {"worker-host"})
    assert [t.index for t in inside] == [1]  # only the chunk on a host where no map can run
    assert [t.index for t in fetched] == [0, 2, 3]
    inside, _ = split(tasks, first, Sum(), None, True)
    assert len(inside) == 4
    assert split(tasks, first, Sum(), None, False) == ([], tasks)
    with pytest.raises(ValueError, match="built-in reduction"):
        split(tasks, first, None, None, True)
    with pytest.raises(ValueError, match="lua must be"):
        split(tasks, first, Sum(), None, "always")
    gzipped = Input("x", (40,), np.dtype("<f8"), first.source, descriptor={"chunks": [10], "filters": [["gzip", 4]]})
    assert split(tasks, gzipped, Sum(), None, "auto", {"elsewhere"}) == ([], tasks)  # falls back quietly
    with pytest.raises(ValueError, match="filtered"):
        split(tasks, gzipped, Sum(), None, True)


# ---------------------------------------------------------------- reading blocks without HDF5


def test_native_chunks_are_read_straight_from_the_file(tmp_path):
    data = np.arange(90 * 40, dtype="<f8").reshape(90, 40) % 97
    path = tmp_path / "direct.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=data, chunks=(20, 40))
        f.create_dataset("gzip", data=data, chunks=(20, 16), compression="gzip", shuffle=True, fletcher32=True)
        f.create_dataset("lzf", data=data, chunks=(20, 40), compression="lzf")  # only libhdf5 decodes it
        f.create_dataset("holes", shape=(90, 40), dtype="<i4", chunks=(30, 40), fillvalue=7)[30:60] = 1
        f.create_dataset("contiguous", data=data)
    with h5py.File(path, "r") as f:
        for name, direct in (("raw", True), ("gzip", True), ("lzf", False), ("contiguous", False)):
            r = execute(Sum(), inputs={"x": f[name]}, query=Q.value > 50, engine="serial")
            assert r.value == data[data > 50].sum(), name
            assert r.stats["shards_direct"] == (r.stats["shards_read"] if direct else 0), name
        r = execute(_row_sums_of("x"), None, {"x": f["holes"]}, engine="serial")
        assert r.stats["shards_direct"] == 3  # two chunks never written: the fill value, no read at all
        assert [p[1] for p in r.value] == [[7 * 40] * 30, [40] * 30, [7 * 40] * 30]


def _row_sums_of(name):
    def row_sums(block):
        block[name][0, 0] += 0  # blocks are writable, as h5py's are
        return block.selection[0].start, block[name].sum(axis=1).tolist()
    return row_sums


def test_memory_blocks_go_through_h5py(memfile):
    r = execute(Sum(), inputs={"x": memfile["x"]}, engine="serial")
    assert r.stats["shards_direct"] == 0 and r.stats["shards_read"] == 10
