"""MPI ranks write one file on S3 (RGW, SeaweedFS) and RADOS at once, and lose nothing.

Rank 0 creates the file; then every rank opens it in mode "a", adds datasets,
a group and attributes of its own and fills its own chunks of one shared
dataset, committing a few times; rank 0 then finds every value, and no chunk
object that the file does not name.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

import h5pyvol

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
from stores import KINDS, make_store  # noqa: E402

COUNT = 40  # datasets per rank


@pytest.fixture(params=KINDS)
def store(request, comm):
    info = request.getfixturevalue("ceph" if request.param in ("ceph-rgw", "rados") else "seaweedfs")
    made = error = None
    if comm.rank == 0:  # one bucket or namespace for all ranks; a failure fails every rank (none is left waiting)
        try:
            made = make_store(request.param, info, name=f"mpi-{uuid.uuid4().hex[:12]}")
        except Exception as exc:  # noqa: BLE001 - reported on every rank below
            error = f"{type(exc).__name__}: {exc}"
    s, error = comm.bcast((made, error), root=0)
    if error:
        pytest.fail(error)
    if comm.rank != 0 and s.connector == "s3":  # credentials through the AWS chain, as rank 0 has them
        os.environ.update({k: v for k, v in s.env.items() if k.startswith("AWS_")})
    yield s
    comm.Barrier()
    if comm.rank == 0:
        s.cleanup()


@pytest.mark.mpi(min_size=2)
def test_ranks_write_one_file(comm, store):
    rank, size = comm.rank, comm.size
    if rank == 0:
        with store.open("mpi.h5", "w") as f:
            f.create_dataset("shared", shape=(8 * size,), dtype="i8", chunks=(4,))
    comm.Barrier()
    with store.open("mpi.h5", "a") as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        f.create_group(f"rank{rank}").attrs["rank"] = rank
        for i in range(COUNT):
            f[f"r{rank}_{i}"] = np.full(3, 100 * rank + i)
            if i % 10 == 9:
                f.flush()
        f["shared"][8 * rank:8 * (rank + 1)] = rank + 1  # two chunks of its own
        f.attrs[f"rank{rank}"] = rank
    comm.Barrier()
    if rank == 0:
        with store.open("mpi.h5") as f:
            for r in range(size):
                assert f[f"rank{r}"].attrs["rank"] == r and f.attrs[f"rank{r}"] == r
                for i in range(COUNT):
                    np.testing.assert_array_equal(f[f"r{r}_{i}"][()], np.full(3, 100 * r + i))
            np.testing.assert_array_equal(f["shared"][()], np.repeat(np.arange(size) + 1, 8))
            assert len(f) == size * (COUNT + 1) + 1
        stored = {k for k in store.objects() if k != store.head_key("mpi.h5")}
        assert stored == store.named_keys("mpi.h5")
