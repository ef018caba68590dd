"""h5dump and h5ls through the S3 (Ceph RGW, SeaweedFS) and RADOS connectors
print what they print on the native file with the same content.

The same comparison as tests/test_tools_output.py (passthru), on connectors
with storage formats of their own. The connector run reads a file that
exists only in the bucket or pool, from an empty directory: HDF5 falling
back to its native connector would find nothing there.
"""

from __future__ import annotations

import gc
import sys
import uuid
from pathlib import Path

import pytest
import servers

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "tools"))
import compare_tools  # noqa: E402
from support import run, vol_env  # noqa: E402

import h5pyvol  # noqa: E402


def write_both(writer: str, compile_c, native_dir: Path, spec: str) -> None:
    """Write the writer's sample natively into native_dir and through connector `spec`."""
    if writer == "c":
        prog = compile_c("tools_sample")
        native = run([prog, "sample.h5", "native"], compare_tools.native_env(), cwd=native_dir)
        through = run([prog, "sample.h5", "h5pyvol"], vol_env(spec), cwd=native_dir.parent)
    else:
        script = TESTS / "tools" / "write_sample_h5py.py"
        native = run([sys.executable, script, "sample.h5"], compare_tools.native_env(), cwd=native_dir)
        through = run(
            [sys.executable, script, "sample.h5", "--connector", spec],
            compare_tools.native_env(),
            cwd=native_dir.parent,
        )
    assert native.returncode == 0, native.stdout + native.stderr
    assert through.returncode == 0, through.stdout + through.stderr
    assert not (native_dir.parent / "sample.h5").exists()  # the connector's file went to the service


def check_tools(writer: str, compile_c, tmp_path: Path, spec: str) -> None:
    native_dir = tmp_path / "native"
    native_dir.mkdir()
    write_both(writer, compile_c, native_dir, spec)
    for c in compare_tools.compare(native_dir / "sample.h5", spec):
        assert c.native.returncode == 0 and c.through.returncode == 0, "".join(c.diff)
        assert c.through.stdout.count("\n") > 50  # the tool printed the file through the connector
        assert not c.diff, f"{c.invocation}:\n" + "".join(c.diff)


@pytest.fixture
def bucket_spec(s3_server, monkeypatch):
    """A fresh bucket on each S3 server, with credentials in the environment the tools inherit."""
    gc.collect()
    client = servers.s3_client(s3_server)
    bucket = f"h5pyvol-tools-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    servers.set_aws_env(monkeypatch, s3_server)
    yield client, bucket, h5pyvol.connector_string("s3", bucket=bucket, endpoint_url=s3_server["endpoint"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=o["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.mark.parametrize("writer", ["c", "h5py"])
def test_tools_through_s3_match_native(writer, bucket_spec, compile_c, tmp_path):
    client, bucket, spec = bucket_spec
    check_tools(writer, compile_c, tmp_path, spec)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert "sample.h5/.manifest.json" in keys and "sample_ext.h5/.manifest.json" in keys


@pytest.mark.parametrize("writer", ["c", "h5py"])
def test_tools_through_rados_match_native(writer, ceph, compile_c, tmp_path):
    gc.collect()
    opts = {
        "pool": ceph["pool"],
        "conf": ceph["conf"],
        "keyring": ceph["keyring"],
        "user": ceph["user"],
        "namespace": f"tools-{uuid.uuid4().hex[:12]}",
    }
    spec = h5pyvol.connector_string("rados", **opts)
    try:
        check_tools(writer, compile_c, tmp_path, spec)
        with h5pyvol.File("sample.h5", "r", "rados", **opts) as f:  # the file lives in the pool
            assert h5pyvol.connector_name(f.id) == "h5pyvol" and "numbers" in f
    finally:
        servers.remove_namespace(ceph, opts["namespace"])
