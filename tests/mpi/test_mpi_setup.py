"""The MPI stage itself: mpi4py works, every rank runs, and the ranks see one h5pyvol."""

from __future__ import annotations

import pytest

import h5pyvol


@pytest.mark.mpi(min_size=2)
def test_ranks_agree(comm, shared_name):
    names = comm.allgather(shared_name)
    assert len(set(names)) == 1
    assert comm.allreduce(1) == comm.size
    # Each rank's own in-memory file goes through the plugin.
    with h5pyvol.File(f"{shared_name}-{comm.rank}.h5", "w", connector="memory") as f:
        f["x"] = [comm.rank]
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        assert f["x"][0] == comm.rank
