"""Fixtures for tests run under MPI: ``mpiexec -n N python -m pytest --with-mpi tests/mpi``.

`scripts/test.sh` runs this folder that way after the main run (which skips
it). Every rank runs every test; `comm` is MPI.COMM_WORLD. The storage
services are started by rank 0 only and shared with the others, so the ranks
of one run write to the same Ceph cluster and S3 servers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
import servers  # noqa: E402

KEEP = os.environ.get("H5PYVOL_KEEP_SERVICES") == "1"


@pytest.fixture(scope="session")
def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _shared_service(comm, start, stop, missing):
    """Start a service on rank 0 and hand its info to every rank; a failure
    on rank 0 fails the test on all ranks (none is left waiting)."""
    info = error = None
    if comm.rank == 0:
        lacking = missing()
        if lacking:
            error = f"needs {', '.join(lacking)}: run scripts/services/install.sh {sys.executable}"
        else:
            try:
                info = start()
            except Exception as exc:  # noqa: BLE001 - reported on every rank below
                error = f"{type(exc).__name__}: {exc}"
    info, error = comm.bcast((info, error), root=0)
    if error:
        pytest.fail(error)
    yield info
    comm.Barrier()  # every rank is done with it
    if comm.rank == 0 and not KEEP and info.get("started"):
        stop(info)


@pytest.fixture(scope="session")
def ceph(comm):
    yield from _shared_service(comm, servers.start_ceph, servers.stop_ceph, servers.missing_ceph)


@pytest.fixture(scope="session")
def seaweedfs(comm):
    yield from _shared_service(comm, servers.start_seaweedfs, servers.stop_seaweedfs, servers.missing_seaweedfs)


@pytest.fixture(params=["ceph-rgw", "seaweedfs"])
def s3_server(request):
    """Each S3 test runs against both S3 implementations."""
    return request.getfixturevalue("ceph" if request.param == "ceph-rgw" else "seaweedfs")


@pytest.fixture
def shared_name(comm, request) -> str:
    """A name every rank agrees on, unique to this test and run (rank 0's pid)."""
    return f"{request.node.name.replace('[', '-').rstrip(']')}-{comm.bcast(os.getpid(), root=0)}"
