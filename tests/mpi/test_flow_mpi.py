"""The flow engine under mpiexec (2 ranks in scripts/test.sh): chunks are
handed out dynamically, most chunks of the sparse stage write nothing, and the
output equals a serial run's value for value; also on S3 (RGW, SeaweedFS) and
RADOS with many writers, where the other rank writes the storage chunks inside
its chunks' rows itself (`h5pyvol.flow.writers`)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import h5py
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flow_support import assert_same_outputs, example_folder, flow  # noqa: E402
from test_flow import SPARSE, sparse_config, three_stages  # noqa: E402
from test_many_writers_mpi import store  # noqa: E402, F401 - the fixture: a bucket or namespace on each store

import h5pyvol  # noqa: E402
from h5pyvol.flow import run  # noqa: E402


@pytest.fixture
def folder(comm):
    path = comm.bcast(tempfile.mkdtemp(prefix="h5pyvol-flow-mpi-") if comm.rank == 0 else None, root=0)
    yield Path(path)
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


def _run_everywhere(comm, folder: Path, config: str, out: str, **kw) -> list[dict]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        return run([config], out, profile=False, **kw)
    finally:
        os.chdir(old)


@pytest.mark.mpi(min_size=2)
def test_sparse_flow_equals_serial(comm, folder):
    if comm.rank == 0:
        sparse_config(folder, delay=0.002)
        flow(["-c", "flow.yaml", "-o", "serial.h5", "-e", "25", "--nompi", "--quiet"], folder)
    comm.Barrier()
    summary = _run_everywhere(comm, folder, "flow.yaml", "mpi.h5", end_position=25)
    assert summary[0]["chunks"] == 25
    if comm.rank == 0:
        with h5py.File(folder / "serial.h5") as a, h5py.File(folder / "mpi.h5") as b:
            assert_same_outputs(a, b)
            assert b["h5pyvol_flow/run000"].attrs["ranks"] == comm.size
    assert SPARSE  # the config the serial run used


@pytest.mark.mpi(min_size=2)
def test_h5flow_example_equals_serial(comm, folder):
    if comm.rank == 0:
        example_folder(folder)
        flow(["-c", "examples/example_config.yaml", "-o", "serial.h5", "-e", "6", "--nompi", "--quiet"], folder)
    comm.Barrier()
    _run_everywhere(comm, folder, "examples/example_config.yaml", "mpi.h5", end_position=6)
    if comm.rank == 0:
        with h5py.File(folder / "serial.h5") as a, h5py.File(folder / "mpi.h5") as b:
            assert_same_outputs(a, b)


@pytest.mark.mpi(min_size=2)
def test_failure_on_one_rank_stops_every_rank(comm, folder):
    if comm.rank == 0:
        sparse_config(folder)
        text = (folder / "flow.yaml").read_text().replace("classname: Reader", "classname: Explodes")
        (folder / "boom.yaml").write_text(text.replace("requires: [sparse]", ""))
    comm.Barrier()
    with pytest.raises(Exception, match="bad detector data|another rank failed"):
        _run_everywhere(comm, folder, "boom.yaml", "boom.h5", end_position=8)


@pytest.mark.mpi(min_size=2)
def test_ranks_write_their_rows_to_s3_and_rados(comm, folder, store):  # noqa: F811 - the imported fixture
    """Small storage chunks (128 bytes: 16 rows of f8) so that every chunk's rows
    hold whole storage chunks for the rank that ran it, and boundary ones for rank 0."""
    if comm.rank == 0:
        three_stages(folder)
        flow(["-c", "flow.yaml", "-o", "serial.h5", "-e", "12", "--nompi", "--quiet"], folder)
    comm.Barrier()
    where = store.options["pool" if store.connector == "rados" else "bucket"]
    url = f"{store.connector}://{where}/flow.h5"
    options = {k: v for k, v in store.options.items() if k not in ("pool", "bucket")}
    _run_everywhere(comm, folder, "flow.yaml", url, end_position=12, connector_options=options, chunk_bytes=128,
                   many_writers=True)
    if comm.rank == 0:
        with h5py.File(folder / "serial.h5") as a, store.open("flow.h5") as b:
            assert h5pyvol.connector_name(b.id) == "h5pyvol"
            assert b["scaled/data"].chunks == (16,)
            assert_same_outputs(a, b)
            record = b["h5pyvol_flow/run000"].attrs
            assert record["status"] == "finished" and record["ranks"] == comm.size
            assert record["rows_written_by_other_ranks"] > 0
