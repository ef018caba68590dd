"""The flow engine under mpiexec (2 ranks in scripts/test.sh): chunks are
handed out dynamically, most chunks of the sparse stage write nothing, and the
output equals a serial run's value for value."""

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
from test_flow import SPARSE, sparse_config  # noqa: E402

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
