"""One fresh container on each chunked store, for tests that run on all of them.

`Store` gives the connector name and options of a new S3 bucket (on Ceph RGW
or SeaweedFS) or a new RADOS namespace, the environment a child process needs
to use it (AWS credentials for S3), every object stored there, and the chunk
keys a file's committed state names. Used by the service tests and the MPI
tests alike.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import h5py
import servers

import h5pyvol

KINDS = ("ceph-rgw", "seaweedfs", "rados")


@dataclass
class Store:
    kind: str
    info: dict
    connector: str
    options: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)

    def objects(self) -> dict[str, int]:
        """Every object of the bucket or namespace, with its size."""
        if self.connector == "s3":
            client = servers.s3_client(self.info)
            out: dict[str, int] = {}
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.options["bucket"]):
                out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
            return out
        cluster = servers.rados_connect(self.info)
        try:
            with cluster.open_ioctx(self.options["pool"]) as io:
                io.set_namespace(self.options["namespace"])
                return {o.key: io.stat(o.key)[0] for o in io.list_objects()}
        finally:
            cluster.shutdown()

    def head_key(self, name: str) -> str:
        return f"{name}/.manifest.json" if self.connector == "s3" else f"h5pyvol.f.{name}"

    def named_keys(self, name: str) -> set[str]:
        """The chunk objects the committed state of file `name` names (through `h5pyvol.shards`)."""
        keys: set[str] = set()
        with h5pyvol.File(name, "r", self.connector, **self.options) as f:
            def visit(_, obj):
                if isinstance(obj, h5py.Dataset) and obj.shape is not None:
                    keys.update(s.key for s in h5pyvol.shards(obj) if s.written)
            f.visititems(visit)
        return keys

    def open(self, name: str, mode: str = "r", **extra: str):
        return h5pyvol.File(name, mode, self.connector, **self.options, **extra)

    def cleanup(self) -> None:
        if self.connector == "s3":
            client = servers.s3_client(self.info)
            for key in self.objects():
                client.delete_object(Bucket=self.options["bucket"], Key=key)
            client.delete_bucket(Bucket=self.options["bucket"])
        else:
            cluster = servers.rados_connect(self.info)
            try:
                with cluster.open_ioctx(self.options["pool"]) as io:
                    io.set_namespace(self.options["namespace"])
                    for o in list(io.list_objects()):
                        io.remove_object(o.key)
            finally:
                cluster.shutdown()


def make_store(kind: str, info: dict, name: str | None = None, setenv=os.environ.__setitem__) -> Store:
    """A new bucket or namespace on the service `info` (of `kind`). For S3 the
    credentials are put into this process's environment with `setenv` (the AWS
    chain; pass pytest's ``monkeypatch.setenv``), and into `Store.env` for children."""
    tag = name or uuid.uuid4().hex[:12]
    if kind == "rados":
        opts = {"pool": info["pool"], "conf": info["conf"], "keyring": info["keyring"], "user": info["user"],
                "namespace": f"t-{tag}", "timeout": "20"}
        return Store(kind, info, "rados", opts, dict(os.environ))
    bucket = f"h5pyvol-mw-{tag}"
    servers.s3_client(info).create_bucket(Bucket=bucket)
    aws = {"AWS_ACCESS_KEY_ID": info["access_key"], "AWS_SECRET_ACCESS_KEY": info["secret_key"],
           "AWS_DEFAULT_REGION": info["region"], "AWS_EC2_METADATA_DISABLED": "true"}
    for key, value in aws.items():
        setenv(key, value)
    return Store(kind, info, "s3", {"bucket": bucket, "endpoint_url": info["endpoint"], "timeout": "20"},
                 {**os.environ, **aws})
