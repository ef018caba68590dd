"""The flow engine writing to S3 (Ceph RGW, SeaweedFS) and RADOS: serial and
under mpiexec -n 2 (with the engine's default storage chunks rank 0 writes
everything), each output equal to a native serial run's, also after a
per-stage rerun; under mpiexec -n 4 with ``--many-writers`` and small storage
chunks, where every rank writes the storage chunks inside its chunks' rows
itself (`h5pyvol.flow.writers`); and ``--resume`` after ``kill -9`` of such a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import h5py
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers  # noqa: E402
from flow_support import assert_same_outputs, flow  # noqa: E402
from test_flow import sparse_config, three_stages  # noqa: E402

import h5pyvol  # noqa: E402


def _check(tmp_path: Path, url: str, connector: str, opts: dict, ranks: int) -> None:
    sparse_config(tmp_path, delay=0.001)
    flow(["-c", "flow.yaml", "-o", "native.h5", "-e", "12", "--quiet"], tmp_path)
    zopts = [a for k, v in opts.items() for a in ("-z", f"{k}={v}")]
    flow(["-c", "flow.yaml", "-o", url, "-e", "12", "--quiet", *zopts], tmp_path, mpi=ranks)
    with h5pyvol.File(url, "r", **opts) as remote, h5py.File(tmp_path / "native.h5") as native:
        assert h5pyvol.connector_name(remote.id) == "h5pyvol"
        assert_same_outputs(native, remote)
        assert remote["h5pyvol_flow/run000"].attrs["status"] == "finished"
        assert remote["h5pyvol_flow/run000"].attrs["rows_written_by_other_ranks"] == 0  # one writer by default
    # per-stage reuse through the connector: a changed stage's outputs are deleted and made again
    text = (tmp_path / "flow.yaml").read_text()
    (tmp_path / "flow.yaml").write_text(text.replace("every: 7", "every: 4"))
    flow(["-c", "flow.yaml", "-o", "native2.h5", "-e", "12", "--quiet"], tmp_path)
    proc = flow(["-c", "flow.yaml", "-o", url, "-e", "12", "--quiet", *zopts], tmp_path, mpi=ranks)
    assert "reusing counter from run000" in proc.stdout, proc.stdout
    with h5pyvol.File(url, "r", **opts) as remote, h5py.File(tmp_path / "native2.h5") as native:
        assert_same_outputs(native, remote)
        assert remote["h5pyvol_flow/run001"].attrs["status"] == "finished"


@pytest.mark.parametrize("ranks", [0, 2])
def test_flow_to_s3(s3_server, tmp_path, monkeypatch, ranks):
    client = servers.s3_client(s3_server)
    bucket = f"h5pyvol-flow-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    servers.set_aws_env(monkeypatch, s3_server)
    try:
        _check(tmp_path, f"s3://{bucket}/flow.h5", "s3", {"endpoint_url": s3_server["endpoint"]}, ranks)
    finally:
        servers.remove_bucket(s3_server, bucket)


@pytest.mark.parametrize("ranks", [0, 2])
def test_flow_to_rados(ceph, tmp_path, ranks):
    opts = {"conf": ceph["conf"], "keyring": ceph["keyring"], "user": ceph["user"],
            "namespace": f"flow-{uuid.uuid4().hex[:12]}"}
    try:
        _check(tmp_path, f"rados://{ceph['pool']}/flow.h5", "rados", opts, ranks)
    finally:
        servers.remove_namespace(ceph, opts["namespace"])


def _url_and_flags(store) -> tuple[str, list[str], dict]:
    """The output URL of file flow.h5 in `store`, its -z flags, and its options for h5pyvol.File."""
    where = store.options["pool" if store.connector == "rados" else "bucket"]
    options = {k: v for k, v in store.options.items() if k not in ("pool", "bucket")}
    return f"{store.connector}://{where}/flow.h5", [a for k, v in options.items() for a in ("-z", f"{k}={v}")], options


def test_four_ranks_write_their_own_rows(store, tmp_path):
    """mpiexec -n 4, storage chunks of 128 bytes (16 rows of f8): ranks 1-3 write
    the storage chunks inside their chunks' rows, rank 0 the others; the output
    equals a serial native run's value for value; a finish hook on rank 0 reads
    every row (those the others wrote are read back) and rewrites a few."""
    three_stages(tmp_path)
    text = (tmp_path / "flow.yaml").read_text().replace("stages: [sparse, reader, scaled]",
                                                        "stages: [sparse, reader, scaled, totals]")
    (tmp_path / "flow.yaml").write_text(text + "totals:\n  classname: Totals\n")
    flow(["-c", "flow.yaml", "-o", "native.h5", "-e", "16", "--nompi", "--quiet"], tmp_path)
    url, zflags, _ = _url_and_flags(store)
    proc = flow(["-c", "flow.yaml", "-o", url, "-e", "16", "--many-writers", "--chunk-bytes", "128", *zflags],
                tmp_path, mpi=4, env=store.env)
    assert "on 4 rank(s)" in proc.stdout and "ranks 1-3 wrote" in proc.stdout, proc.stdout
    with store.open("flow.h5") as remote, h5py.File(tmp_path / "native.h5") as native:
        assert h5pyvol.connector_name(remote.id) == "h5pyvol"
        assert remote["scaled/data"].chunks == (16,) and remote["counted/data"].chunks == (16,)
        assert_same_outputs(native, remote)
        record = remote["h5pyvol_flow/run000"].attrs
        assert record["status"] == "finished" and record["ranks"] == 4
        assert record["rows_written_by_other_ranks"] > 0
        assert remote["totals"].attrs["total"] == native["totals"].attrs["total"] != 0


def test_resume_after_kill_with_many_writers(ceph, tmp_path):
    """kill -9 of a 2-rank run on RADOS whose rank 1 writes rows itself, mid-run;
    --resume finishes it, equal to an uninterrupted run value for value."""
    from stores import make_store

    store = make_store("rados", ceph)
    try:
        sparse_config(tmp_path, delay=0.05)
        flow(["-c", "flow.yaml", "-o", "native.h5", "-e", "30", "--nompi", "--quiet"], tmp_path)
        url, zflags, _ = _url_and_flags(store)
        args = ["-c", "flow.yaml", "-o", url, "-e", "30", "--many-writers", "--chunk-bytes", "64", "--quiet", *zflags]
        mpiexec = str(Path(sys.executable).parent / "mpiexec")
        proc = subprocess.Popen([mpiexec, "-n", "2", sys.executable, "-P", "-m", "h5pyvol.flow", *args,
                                 "--checkpoint-every", "0"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        journals = lambda: list(tmp_path.glob(".h5pyvol-flow-*.journal"))  # noqa: E731
        checkpoints = lambda: sum(j.read_text().count('"checkpoint"') for j in journals())  # noqa: E731
        deadline = time.monotonic() + 120
        while checkpoints() < 6 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # mpiexec and both ranks, at once
        proc.communicate()
        done = checkpoints()
        assert 6 <= done < 30
        flow([*args, "--resume"], tmp_path, mpi=2)
        assert not journals()
        with store.open("flow.h5") as remote, h5py.File(tmp_path / "native.h5") as native:
            assert h5pyvol.connector_name(remote.id) == "h5pyvol"
            assert_same_outputs(native, remote)
            record = remote["h5pyvol_flow/run000"].attrs
            assert record["status"] == "finished" and record["rows_written_by_other_ranks"] > 0
            assert len(remote["rows/data"]) == 3000
    finally:
        store.cleanup()
