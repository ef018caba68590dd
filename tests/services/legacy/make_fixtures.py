"""Write tests/services/legacy/{s3-v2,rados-v2}.json: every object of a sample
file as the code of commit 73420d9 stored it (formats h5pyvol-s3 2 and
h5pyvol-rados/2). Run it with that commit's installation, services started:

    git worktree add --detach /tmp/old 73420d9 && (cd /tmp/old && bash scripts/bootstrap.sh)
    /tmp/old/.venv/bin/python -P tests/services/legacy/make_fixtures.py
"""

from __future__ import annotations

import base64
import json
import os
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import content  # noqa: E402
import servers  # noqa: E402

import h5pyvol  # noqa: E402


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def main() -> None:
    info = servers.start_ceph()
    os.environ.update(AWS_ACCESS_KEY_ID=info["access_key"], AWS_SECRET_ACCESS_KEY=info["secret_key"])
    client = servers.s3_client(info)
    bucket = f"legacy-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    with h5pyvol.File("legacy.h5", "w", "s3", bucket=bucket, endpoint_url=info["endpoint"]) as f:
        content.write(f)
    objects = {}
    for o in client.list_objects_v2(Bucket=bucket)["Contents"]:
        objects[o["Key"]] = b64(client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        client.delete_object(Bucket=bucket, Key=o["Key"])
    client.delete_bucket(Bucket=bucket)
    (HERE / "s3-v2.json").write_text(json.dumps({"objects": objects}, indent=0, sort_keys=True))

    ns = f"legacy-{uuid.uuid4().hex[:8]}"
    opts = {"pool": info["pool"], "conf": info["conf"], "keyring": info["keyring"], "namespace": ns}
    with h5pyvol.File("legacy.h5", "w", "rados", **opts) as f:
        content.write(f)
    cluster = servers.rados_connect(info)
    import rados

    out = {"objects": {}, "omap": {}}
    with cluster.open_ioctx(info["pool"]) as io:
        io.set_namespace(ns)
        for o in list(io.list_objects()):
            out["objects"][o.key] = b64(io.read(o.key, length=1 << 24))
            with rados.ReadOpCtx() as op:
                it, _ = io.get_omap_vals(op, "", "", 100000)
                io.operate_read_op(op, o.key)
                omap = {k: b64(v) for k, v in it}
            if omap:
                out["omap"][o.key] = omap
            io.remove_object(o.key)
    cluster.shutdown()
    (HERE / "rados-v2.json").write_text(json.dumps(out, indent=0, sort_keys=True))


if __name__ == "__main__":
    main()
