"""h5pyvol.analysis on MPI: every rank calls execute, the ranks share the maps.

Runs under ``mpiexec -n 2`` (scripts/test.sh). The same call gives the
serial engine's result on native files, memory files (whose shards stay on
the rank that holds them), RADOS and S3; a failing map or a timeout on one
rank is reported on every rank and leaves none waiting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import h5py
import numpy as np
import pytest
import servers

import h5pyvol
from h5pyvol.analysis import Histogram, MapError, Q, Sum, execute

SHAPE, CHUNKS = (64, 30), (8, 30)


def _data() -> np.ndarray:
    return np.arange(SHAPE[0] * SHAPE[1], dtype=np.int64).reshape(SHAPE)


def _row_sums(block):
    return block.selection[0].start, block["x"].sum(axis=1).tolist(), int(block.values().size)


@pytest.fixture
def source(request, comm, shared_name, monkeypatch):
    """(inputs for execute, close) on rank 0's freshly written file of each store."""
    kind = request.param
    written = None
    if kind == "native":
        path = comm.bcast(tempfile.mkdtemp(prefix="h5pyvol-mpi-") if comm.rank == 0 else None, root=0)
        name, opts, url = os.path.join(path, "x.h5"), None, None
    elif kind == "memory":
        name, opts, url = f"{shared_name}.h5", {}, None
    elif kind == "rados":
        ceph = request.getfixturevalue("ceph")
        opts = {"pool": ceph["pool"], "conf": ceph["conf"], "keyring": ceph["keyring"], "user": ceph["user"],
                "namespace": f"mpi-{shared_name}"}
        name = "x.h5"
        url = f"rados://{ceph['pool']}/{name}?" + "&".join(f"{k}={v}" for k, v in opts.items() if k != "pool")
    else:
        ceph = request.getfixturevalue("ceph")
        servers.set_aws_env(monkeypatch, ceph)
        bucket = f"h5pyvol-mpi-{uuid.uuid4().hex[:8]}" if comm.rank == 0 else None
        bucket = comm.bcast(bucket, root=0)
        if comm.rank == 0:
            servers.s3_client(ceph).create_bucket(Bucket=bucket)
        opts = {"bucket": bucket, "endpoint_url": ceph["endpoint"]}
        name = "x.h5"
        url = f"s3://{bucket}/{name}?endpoint_url={ceph['endpoint']}"
    if kind == "memory":  # each rank has its own memory: every rank holds the same file
        written = h5pyvol.File(name, "w", "memory")
        written.create_dataset("x", data=_data(), chunks=CHUNKS)
    elif comm.rank == 0:
        with (h5py.File(name, "w") if kind == "native" else h5pyvol.File(name, "w", kind, **opts)) as f:
            f.create_dataset("x", data=_data(), chunks=CHUNKS)
    comm.Barrier()
    f = written or (h5py.File(name, "r") if kind == "native" else None)
    inputs = {"x": f["x"]} if f is not None else {"x": (url, "/x")}
    yield kind, inputs
    if f is not None:
        f.close()
    comm.Barrier()
    if comm.rank == 0:  # what rank 0 made for the test goes
        if kind == "native":
            shutil.rmtree(path, ignore_errors=True)
        elif kind == "rados":
            servers.remove_namespace(ceph, opts["namespace"])
        elif kind == "s3":
            servers.remove_bucket(ceph, opts["bucket"])


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("source", ["native", "memory", "rados", "s3"], indirect=True)
def test_mpi_gives_the_serial_result(comm, source):
    kind, inputs = source
    query = (Q.value >= 200) & (Q.value < 1500)
    r = execute(_row_sums, None, inputs, query=query, engine="mpi", timeout=120)
    if kind == "memory":
        assert h5pyvol.connector_name(inputs["x"].id) == "h5pyvol"
    if comm.rank == 0:
        reference = execute(_row_sums, None, inputs, query=query, engine="serial")
        assert r.value == reference.value
    values = comm.allgather(r.value)
    assert values[0] == values[1]  # every rank returns the same result
    hist = execute(Histogram(5, (0, 2000)), inputs=inputs, query=query, engine="mpi", timeout=120)
    np.testing.assert_array_equal(hist.value, np.histogram(np.arange(200, 1500), 5, (0, 2000))[0])
    total = execute(Sum(), inputs=inputs, engine="mpi", timeout=120)
    assert total.value == int(_data().sum())
    ranks_used = set(r.stats["workers"])
    if kind == "memory":
        assert len(ranks_used) == 1  # the memory file's shards ran on rank 0, which holds it
    else:  # round-robin over the ranks (S3 reports one shard per dataset until it reports chunks)
        assert len(ranks_used) == min(comm.size, r.stats["shards_read"])


def _fails_on_rank_1(block):
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 1:
        raise RuntimeError(f"rank 1 cannot map {block.index}")
    return 1


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("source", ["native"], indirect=True)
def test_mpi_map_error_reaches_every_rank(comm, source):
    _, inputs = source
    with pytest.raises(MapError, match="rank 1 cannot map"):
        execute(_fails_on_rank_1, sum, inputs, engine="mpi", timeout=60)
    # the ranks are in step again
    assert execute(Sum(), inputs=inputs, engine="mpi", timeout=60).value == int(_data().sum())


def _slow_on_rank_1(block):
    import time

    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 1:
        time.sleep(60)
    return 1


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("source", ["native"], indirect=True)
def test_mpi_timeout_reaches_every_rank(comm, source):
    import time

    _, inputs = source
    t0 = time.perf_counter()
    with pytest.raises((MapError, TimeoutError), match="time"):
        execute(_slow_on_rank_1, sum, inputs, engine="mpi", timeout=2)
    assert time.perf_counter() - t0 < 30
    comm.Barrier()
    assert execute(Sum(), inputs=inputs, engine="mpi", timeout=60).value == int(_data().sum())
