"""The demo composition's client (docker/compose.yaml): one HDF5 file written
and read back through the s3 connector (Ceph RGW) and the rados connector
(Ceph RADOS), with the credentials scripts/services/ceph.sh wrote into the
shared folder. Exits non-zero unless both round trips match."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import boto3
import numpy as np

import h5pyvol


def read_env(path: Path) -> dict[str, str]:
    """The `export KEY=VALUE` lines of one of ceph.sh's env files."""
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            out[key.strip()] = value.strip().strip("'\"")
    return out


def roundtrip(label: str, name: str, connector: str, **options: str) -> None:
    data = np.arange(240, dtype="<f8").reshape(12, 20)
    with h5pyvol.File(name, "w", connector, **options) as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol", "HDF5 did not use the h5pyvol connector"
        f.create_dataset("run/temperature", data=data, chunks=(4, 20))
        f["run"].attrs["site"] = "demo"
    with h5pyvol.File(name, "r", connector, **options) as f:
        back = f["run/temperature"][...]
        assert np.array_equal(back, data) and f["run"].attrs["site"] == "demo"
        print(f"[{label}] {name}: {back.shape} float64 read back equal, via {h5pyvol.connector_name(f.id)}")


def main() -> int:
    shared = Path(os.environ.get("H5PYVOL_CEPH_DIR", "/ceph"))
    deadline = time.monotonic() + 300
    while not (shared / "s3.env").exists() or not (shared / "rados.env").exists():
        if time.monotonic() > deadline:
            print(f"services_demo: no Ceph credentials in {shared} after 300 s", file=sys.stderr)
            return 1
        time.sleep(2)
    s3, rados = read_env(shared / "s3.env"), read_env(shared / "rados.env")
    os.environ.update({k: v for k, v in s3.items() if k.startswith("AWS_")})
    bucket = f"demo-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3["H5PYVOL_S3_ENDPOINT"]).create_bucket(Bucket=bucket)
    roundtrip("s3", "run1.h5", "s3", bucket=bucket, endpoint_url=s3["H5PYVOL_S3_ENDPOINT"])
    roundtrip("rados", "run1.h5", "rados", pool=rados["H5PYVOL_RADOS_POOL"], conf=rados["H5PYVOL_RADOS_CONF"],
              keyring=rados["H5PYVOL_RADOS_KEYRING"], user=rados["H5PYVOL_RADOS_USER"])
    print("services demo: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
