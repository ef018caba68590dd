"""xarray's h5netcdf engine through the S3 connector (on Ceph RGW and
SeaweedFS) and the RADOS connector (on Ceph), by the public API only:
``h5pyvol.File("s3://BUCKET/NAME")`` and ``h5pyvol.File("rados://POOL/NAME")``."""

from __future__ import annotations

import uuid

import servers
from xarray_case import round_trip

import h5pyvol


def test_xarray_round_trip_through_s3(s3_server, monkeypatch):
    client = servers.s3_client(s3_server)
    bucket = f"h5pyvol-xr-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    servers.set_aws_env(monkeypatch, s3_server)
    try:
        round_trip(lambda mode: h5pyvol.File(f"s3://{bucket}/runs/xarray.nc", mode,
                                             endpoint_url=s3_server["endpoint"]))
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)


def test_xarray_round_trip_through_rados(ceph):
    opts = {"conf": ceph["conf"], "keyring": ceph["keyring"], "user": ceph["user"],
            "namespace": f"xr-{uuid.uuid4().hex[:12]}"}
    try:
        round_trip(lambda mode: h5pyvol.File(f"rados://{ceph['pool']}/xarray.nc", mode, **opts))
    finally:
        servers.remove_namespace(ceph, opts["namespace"])
