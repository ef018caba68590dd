"""The local storage services work as the connectors will use them.

Real servers, real clients: boto3 against Ceph RGW and SeaweedFS, librados
(Debian's python3-rados) against the Ceph cluster.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import servers

# boto3 and rados are imported inside the tests: without them the fixtures
# skip (or fail, with H5PYVOL_REQUIRE_SERVICES=1) instead of collection erroring.


def _client_error():
    from botocore.exceptions import ClientError

    return ClientError

# --- S3 (each test runs on both servers) -------------------------------------


def _bucket_name() -> str:
    return f"h5pyvol-test-{uuid.uuid4().hex[:12]}"


def test_s3_object_roundtrip(s3_server):
    s3 = servers.s3_client(s3_server)
    bucket = _bucket_name()
    s3.create_bucket(Bucket=bucket)
    try:
        assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
        s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=payload)
        s3.put_object(Bucket=bucket, Key="dir/small", Body=b"x")

        got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read()
        assert got == payload
        head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
        assert head["ContentLength"] == len(payload)

        listing = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
        assert sorted(o["Key"] for o in listing["Contents"]) == ["dir/obj.bin", "dir/small"]
        sizes = {o["Key"]: o["Size"] for o in listing["Contents"]}
        assert sizes == {"dir/obj.bin": len(payload), "dir/small": 1}

        s3.delete_object(Bucket=bucket, Key="dir/obj.bin")
        s3.delete_object(Bucket=bucket, Key="dir/small")
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
        with pytest.raises(_client_error()) as exc:
            s3.get_object(Bucket=bucket, Key="dir/obj.bin")
        assert exc.value.response["Error"]["Code"] in {"NoSuchKey", "404"}
    finally:
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


def test_s3_ranged_get(s3_server):
    # The connectors read chunks with Range requests.
    s3 = servers.s3_client(s3_server)
    bucket = _bucket_name()
    s3.create_bucket(Bucket=bucket)
    try:
        payload = bytes(i % 251 for i in range(200_000))
        s3.put_object(Bucket=bucket, Key="r", Body=payload)
        part = s3.get_object(Bucket=bucket, Key="r", Range="bytes=65536-131071")
        assert part["Body"].read() == payload[65536:131072]
        assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
        s3.delete_object(Bucket=bucket, Key="r")
    finally:
        s3.delete_bucket(Bucket=bucket)


@pytest.mark.parametrize("which", ["secret", "access"])
def test_s3_bad_credentials_refused(s3_server, which):
    if which == "secret":
        s3 = servers.s3_client(s3_server, secret_key="wrong" + s3_server["secret_key"][5:])
        expected = {"SignatureDoesNotMatch", "AccessDenied"}
    else:
        s3 = servers.s3_client(s3_server, access_key="AKIANOSUCHUSER000000")
        expected = {"InvalidAccessKeyId", "AccessDenied", "SignatureDoesNotMatch"}
    with pytest.raises(_client_error()) as exc:
        s3.list_buckets()
    err = exc.value.response["Error"]["Code"]
    assert err in expected, exc.value.response
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_s3_env_file_matches(s3_server):
    # What the scripts print with `env` is what start_*() returned.
    script = "ceph.sh" if "conf" in s3_server else "seaweedfs.sh"
    out = subprocess.run(
        ["bash", str(servers.SCRIPTS / script), "env", s3_server["dir"]],
        check=True, capture_output=True, text=True,
    ).stdout
    assert f"export H5PYVOL_S3_ENDPOINT={s3_server['endpoint']}" in out.splitlines()
    assert f"export AWS_ACCESS_KEY_ID={s3_server['access_key']}" in out.splitlines()
    assert s3_server["endpoint"].startswith("http://127.0.0.1:")


# --- RADOS --------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin(ceph):
    cluster = servers.rados_connect(ceph)
    yield cluster
    cluster.shutdown()


def test_rados_write_read_stat(ceph, admin):
    with admin.open_ioctx(ceph["pool"]) as io:
        name = f"obj-{uuid.uuid4().hex}"
        data = b"h5pyvol" * 150_000  # ~1 MiB
        io.write_full(name, data)
        assert io.read(name, length=len(data)) == data
        assert io.read(name, length=7, offset=7 * 1000) == b"h5pyvol"
        size, _mtime = io.stat(name)
        assert size == len(data)
        io.remove_object(name)
        import rados

        with pytest.raises(rados.ObjectNotFound):
            io.stat(name)


def test_rados_osd_placement(ceph, admin):
    with admin.open_ioctx(ceph["pool"]) as io:
        io.write_full("placed", b"x")
    cmd = {"prefix": "osd map", "pool": ceph["pool"], "object": "placed", "format": "json"}
    ret, out, err = admin.mon_command(json.dumps(cmd), b"")
    assert ret == 0, err
    placement = json.loads(out)
    # one OSD, pool size 1: every object maps to osd.0 alone
    assert placement["pool"] == ceph["pool"]
    assert placement["acting"] == [0] and placement["acting_primary"] == 0
    assert placement["pgid"].startswith(f"{placement['pool_id']}.")

    # The ceph CLI with the env file's CEPH_CONF says the same.
    cli = subprocess.run(
        ["ceph", "osd", "map", ceph["pool"], "placed", "--format", "json"],
        env={**ceph["env"], "PATH": "/usr/bin:/bin"},
        check=True, capture_output=True, text=True, timeout=30,
    )
    assert json.loads(cli.stdout)["pgid"] == placement["pgid"]
    with admin.open_ioctx(ceph["pool"]) as io:
        io.remove_object("placed")


def test_rados_user_without_osd_caps_is_refused(ceph, admin):
    import rados

    with admin.open_ioctx(ceph["pool"]) as io:
        io.write_full("guarded", b"secret")
    limited = servers.rados_connect(ceph, nocaps=True)
    try:
        # mon 'allow r' lets it connect and see the pool...
        assert ceph["pool"] in limited.list_pools()
        with limited.open_ioctx(ceph["pool"]) as io:
            # ...but without OSD caps every object op is refused, at once.
            with pytest.raises(rados.PermissionError):
                io.write_full("forbidden", b"x")
            with pytest.raises(rados.PermissionError):
                io.read("guarded")
    finally:
        limited.shutdown()
        with admin.open_ioctx(ceph["pool"]) as io:
            io.remove_object("guarded")


def test_rados_wrong_key_is_refused(ceph):
    import rados

    bogus = subprocess.run(["ceph-authtool", "--gen-print-key"], check=True,
                           capture_output=True, text=True).stdout.strip()
    cluster = rados.Rados(conffile=ceph["conf"], name=ceph["user"],
                          conf={"key": bogus, "keyring": "/nonexistent"})
    with pytest.raises((rados.PermissionError, rados.Error)) as exc:
        cluster.connect(timeout=5)
    assert "ermission" in str(exc.value) or "denied" in str(exc.value).lower()


# --- scripts ------------------------------------------------------------------


@pytest.mark.parametrize("script", ["ceph.sh", "seaweedfs.sh"])
def test_status_and_idempotent_start(request, script):
    info = request.getfixturevalue("ceph" if script == "ceph.sh" else "seaweedfs")
    path = str(servers.SCRIPTS / script)
    env = servers._script_env()
    assert subprocess.run(["bash", path, "status", info["dir"]], env=env).returncode == 0
    # a second start is a no-op: same keys, still healthy
    out = subprocess.run(["bash", path, "start", info["dir"]], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "already running" in out.stderr
    again = servers.read_env_file(f"{info['dir']}/s3.env")
    assert again["AWS_SECRET_ACCESS_KEY"] == info["secret_key"]


def test_status_fails_when_not_running(tmp_path):
    for script in ("ceph.sh", "seaweedfs.sh"):
        proc = subprocess.run(["bash", str(servers.SCRIPTS / script), "status", str(tmp_path / "none")],
                              capture_output=True, text=True)
        assert proc.returncode == 1, (script, proc.stderr)
