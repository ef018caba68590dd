"""The flow engine writing to S3 (Ceph RGW, SeaweedFS) and RADOS: serial and
under mpiexec -n 2 (rank 0 writes, the other ranks run chunks), each output
equal to a native serial run's, also after a per-stage rerun."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import h5py
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers  # noqa: E402
from flow_support import assert_same_outputs, flow  # noqa: E402
from test_flow import sparse_config  # noqa: E402

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
