"""Files written by the code before the shared storage layer (formats
h5pyvol-s3 2 and h5pyvol-rados/2) still open, read the same, and take writes:
the first commit rewrites their head in format 3 and keeps using their chunk
objects. The stored objects are in tests/services/legacy/*.json."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from stores import make_store

import h5pyvol

LEGACY = Path(__file__).resolve().parent / "legacy"
sys.path.insert(0, str(LEGACY))
import content  # noqa: E402


def _upload(store) -> None:
    kind = "s3" if store.connector == "s3" else "rados"
    saved = json.loads((LEGACY / f"{kind}-v2.json").read_text())
    if kind == "s3":
        import servers

        client = servers.s3_client(store.info)
        for key, body in saved["objects"].items():
            client.put_object(Bucket=store.options["bucket"], Key=key, Body=base64.b64decode(body))
        return
    import rados
    import servers

    cluster = servers.rados_connect(store.info)
    try:
        with cluster.open_ioctx(store.options["pool"]) as io:
            io.set_namespace(store.options["namespace"])
            for name, body in saved["objects"].items():
                io.write_full(name, base64.b64decode(body))
            for name, omap in saved["omap"].items():
                with rados.WriteOpCtx() as w:
                    io.set_omap(w, tuple(omap), tuple(base64.b64decode(v) for v in omap.values()))
                    io.operate_write_op(w, name)
    finally:
        cluster.shutdown()


def _head_format(store) -> str:
    if store.connector == "s3":
        import servers

        body = servers.s3_client(store.info).get_object(Bucket=store.options["bucket"],
                                                        Key="legacy.h5/.manifest.json")["Body"].read()
        m = json.loads(body)
        return f"{m['format']} {m['format_version']}"
    import rados
    import servers

    cluster = servers.rados_connect(store.info)
    try:
        with cluster.open_ioctx(store.options["pool"]) as io:
            io.set_namespace(store.options["namespace"])
            with rados.ReadOpCtx() as op:
                it, _ = io.get_omap_vals_by_keys(op, ("file",))
                io.operate_read_op(op, "h5pyvol.f.legacy.h5")
                return json.loads(dict(it)["file"])["format"]
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("kind", ["seaweedfs", "rados"])
def test_format_2_files_open_and_take_writes(kind, request, monkeypatch):
    info = request.getfixturevalue("ceph" if kind == "rados" else "seaweedfs")
    store = make_store(kind, info, setenv=monkeypatch.setenv)
    try:
        _upload(store)
        old = {"s3": "h5pyvol-s3 2", "rados": "h5pyvol-rados/2"}[store.connector]
        assert _head_format(store) == old
        native = h5py.File("legacy-native.h5", "w", driver="core", backing_store=False)
        content.write(native)
        with store.open("legacy.h5") as f:
            assert h5pyvol.connector_name(f.id) == "h5pyvol"
            content.compare(f, native)
        assert _head_format(store) == old  # reading changes nothing
        with store.open("legacy.h5", "a") as f:
            f["chunked"][0, 0] = -5
            f["added"] = np.arange(3)
        native["chunked"][0, 0] = -5
        native["added"] = np.arange(3)
        assert _head_format(store) == {"s3": "h5pyvol-s3 3", "rados": "h5pyvol-rados/3"}[store.connector]
        with store.open("legacy.h5") as f:
            content.compare(f, native)
            # the committed datatype's count, as format 2 kept it
            assert h5py.h5o.get_info(f["type"].id).rc == h5py.h5o.get_info(native["type"].id).rc
        stored = {k for k in store.objects() if k != store.head_key("legacy.h5")}
        assert stored == store.named_keys("legacy.h5")  # old objects still named are kept, superseded ones gone
        native.close()
    finally:
        store.cleanup()
