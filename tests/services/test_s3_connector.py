"""The S3 connector against real S3 servers (Ceph RGW and SeaweedFS, on loopback).

Every test runs on both servers (the `s3_server` fixture). Each test gets a
fresh bucket; credentials reach the connector only through the standard AWS
chain (the environment, set here with monkeypatch).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import zlib
from pathlib import Path

import committed_type_refs
import h5py
import numpy as np
import pytest
import servers
from support import run, vol_env

import h5pyvol
from h5pyvol.testing import ConnectorConformance

# boto3 and the connector module are imported inside fixtures and tests:
# without boto3 the service fixtures skip instead of collection failing.


def _layout(dataset) -> dict:
    from h5pyvol.connectors.s3 import layout

    return layout(dataset)


def _all_keys(client, bucket: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def _drop_bucket(client, bucket: str) -> None:
    for key in _all_keys(client, bucket):
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A fresh bucket: (boto3 client, connector options). Removed afterwards."""
    # Collect garbage cycles holding h5py objects now rather than in the middle
    # of h5py reading HDF5's error stack (see _timed_failure).
    gc.collect()
    client = servers.s3_client(s3_server)
    bucket = f"h5pyvol-s3c-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    servers.set_aws_env(monkeypatch, s3_server)
    yield client, {"bucket": bucket, "endpoint_url": s3_server["endpoint"], "timeout": "5"}
    _drop_bucket(client, bucket)
    gc.collect()


class TestS3Conformance(ConnectorConformance):
    connector = "s3"

    @pytest.fixture
    def connector_options(self, s3):
        return s3[1]


# ---------------------------------------------------------------- layout


def test_chunk_objects_and_sizes(s3):
    client, opts = s3
    data = np.arange(100 * 60, dtype="<f8").reshape(100, 60)
    with h5pyvol.File("lay.h5", "w", "s3", **opts) as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        d = f.create_dataset("d", data=data, chunks=(32, 32))
        f.create_dataset("sparse", shape=(100, 60), dtype="i2", chunks=(50, 30), fillvalue=-3)
        f["sparse"][60:70, 40:50] = 1  # touches one chunk: (1, 1)
        f.flush()
        lay = _layout(d)
        sparse = _layout(f["sparse"])
    assert lay["chunk_shape"] == (32, 32) and lay["filters"] == []
    assert [c["index"] for c in lay["chunks"]] == [(i, j) for i in range(4) for j in range(2)]
    assert all(c["bytes"] == 32 * 32 * 8 for c in lay["chunks"])  # edge chunks are stored whole
    assert [c["index"] for c in sparse["chunks"]] == [(1, 1)]
    keys = _all_keys(client, opts["bucket"])
    for c in lay["chunks"] + sparse["chunks"]:
        assert keys[c["key"]] == c["bytes"]
        assert c["key"].startswith("lay.h5/.chunks/")
    # nothing else than the manifest and the chunks
    assert set(keys) == {lay["manifest"]} | {c["key"] for c in lay["chunks"] + sparse["chunks"]}
    with h5pyvol.File("lay.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["d"][()], data)
        expected = np.full((100, 60), -3, "i2")
        expected[60:70, 40:50] = 1
        np.testing.assert_array_equal(f["sparse"][()], expected)
        assert f["d"].id.get_storage_size() == 8 * 32 * 32 * 8


def test_unchunked_dataset_gets_documented_default_chunks(s3):
    from h5pyvol.storage import default_chunks

    client, opts = s3
    data = np.arange(300 * 200, dtype="f8").reshape(300, 200)  # 480 KB
    with h5pyvol.File("def.h5", "w", "s3", chunk_bytes=str(64 << 10), **opts) as f:
        f["d"] = data
        lay = _layout(f["d"])
    # the storage layer's one default for every connector: whole trailing rows
    assert lay["chunk_shape"] == default_chunks((300, 200), 8, 64 << 10) == (40, 200)
    assert len(lay["chunks"]) == 8
    with h5pyvol.File("def.h5", "r", "s3", chunk_bytes=str(64 << 10), **opts) as f:
        np.testing.assert_array_equal(f["d"][::7, 3::11], data[::7, 3::11])


def test_partial_chunk_write_is_read_modify_write(s3):
    client, opts = s3
    data = np.arange(40 * 40, dtype="i4").reshape(40, 40)
    with h5pyvol.File("rmw.h5", "w", "s3", **opts) as f:
        f.create_dataset("d", data=data, chunks=(16, 16))
        before = {c["index"]: c["key"] for c in _layout(f["d"])["chunks"]}
    with h5pyvol.File("rmw.h5", "a", "s3", **opts) as f:
        f["d"][5, 3:7] = np.array([-1, -2, -3, -4])  # inside chunk (0, 0) only
        f["d"][[1, 20, 39], 39] = np.array([7, 8, 9])  # points in chunks (0, 2), (1, 2), (2, 2)
        after = {c["index"]: c["key"] for c in _layout(f["d"])["chunks"]}
    data[5, 3:7] = [-1, -2, -3, -4]
    data[[1, 20, 39], 39] = [7, 8, 9]
    changed = {i for i in before if before[i] != after[i]}
    assert changed == {(0, 0), (0, 2), (1, 2), (2, 2)}
    keys = _all_keys(client, opts["bucket"])
    assert not any(before[i] in keys for i in changed)  # superseded objects were deleted at close
    assert all(after[i] in keys for i in after)
    with h5pyvol.File("rmw.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["d"][()], data)


def test_gzip_and_shuffle(s3):
    client, opts = s3
    data = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    with h5pyvol.File("z.h5", "w", "s3", **opts) as f:
        f.create_dataset("d", data=data, chunks=(32, 64), compression="gzip", compression_opts=6, shuffle=True)
        lay = _layout(f["d"])
        assert f["d"].compression == "gzip" and f["d"].shuffle
    assert lay["filters"] == [["shuffle"], ["gzip", 6]]
    raw_bytes = 32 * 64 * 8
    for c in lay["chunks"]:
        assert c["bytes"] < raw_bytes / 2
        body = client.get_object(Bucket=opts["bucket"], Key=c["key"])["Body"].read()
        shuffled = np.frombuffer(zlib.decompress(body), np.uint8)
        chunk = shuffled.reshape(8, -1).T.copy().view("<f8").reshape(32, 64)
        np.testing.assert_array_equal(chunk, data[c["index"][0] * 32:][:32])
    with h5pyvol.File("z.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["d"][()], data)
        np.testing.assert_array_equal(f["d"][3:50:5, 7], data[3:50:5, 7])


def test_variable_length_members_of_compound_and_array_types(s3):
    client, opts = s3
    dt = np.dtype([("name", h5py.string_dtype()), ("ids", h5py.vlen_dtype("i4")), ("xy", "<f8", (2,)),
                   ("raw", h5py.vlen_dtype(bytes))])
    rows = np.empty(5, dt)
    for i in range(5):
        rows[i] = (f"row {i} é", np.arange(i, dtype="i4"), [i / 2, -i], b"a\xff" * i)
    with h5pyvol.File("vl.h5", "w", "s3", **opts) as f:
        f.create_dataset("rows", data=rows, chunks=(2,), maxshape=(None,))
        f["rows"].attrs["first"] = rows[:1]
        f.create_dataset("tags", shape=(2,), dtype=np.dtype((h5py.string_dtype(), (3,))))
        f["tags"][0] = ["a", "bb", "ccc"]
    manifest = json.loads(client.get_object(Bucket=opts["bucket"], Key="vl.h5/.manifest.json")["Body"].read())
    assert "pickle" not in json.dumps(manifest)
    with h5pyvol.File("vl.h5", "r", "s3", **opts) as f:
        back = f["rows"][()]
        first = f["rows"].attrs["first"]
        tags = f["tags"][()]
    for got in (back, first):
        for i in range(len(got)):
            name = got[i]["name"]
            assert (name.decode() if isinstance(name, bytes) else name) == f"row {i} é"
            np.testing.assert_array_equal(got[i]["ids"], np.arange(i, dtype="i4"))
            np.testing.assert_array_equal(got[i]["xy"], [i / 2, -i])
            assert bytes(got[i]["raw"]) == b"a\xff" * i
    assert [t.decode() if isinstance(t, bytes) else t for t in tags[0]] == ["a", "bb", "ccc"]


def test_other_filters_are_kept_in_the_properties_not_applied(s3):
    client, opts = s3
    data = np.arange(10, dtype="<f4")
    with h5pyvol.File("f32.h5", "w", "s3", **opts) as f:
        d = f.create_dataset("d", data=data, chunks=(5,), fletcher32=True, compression="gzip")
        assert d.fletcher32 and d.compression == "gzip"  # HDF5 reports every filter of the properties
        lay = _layout(d)
    assert lay["filters"] == [["gzip", 4]]  # the stored chunks went through gzip only
    body = client.get_object(Bucket=opts["bucket"], Key=lay["chunks"][1]["key"])["Body"].read()
    np.testing.assert_array_equal(np.frombuffer(zlib.decompress(body), "<f4"), data[5:])
    with h5pyvol.File("f32.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["d"][()], data)


def test_hostile_names_stay_under_the_prefix(s3):
    client, opts = s3
    names = ["..", "...", "x..y", "%2e%2e", "a\\b", "ünï©ødé", " ", "-", "~", "$HOME", "null\u2028x"]
    with h5pyvol.File("safe.h5", "w", "s3", prefix="team/run1", **opts) as f:
        g = f
        for i, name in enumerate(names):
            g = g.create_group(name)
            g.attrs[name] = i
            g.create_dataset(name + "-d", data=np.arange(i + 1))
    keys = _all_keys(client, opts["bucket"])
    assert keys and all(k.startswith("team/run1/safe.h5/") for k in keys), sorted(keys)
    for key in keys:
        assert all(part not in ("", ".", "..") for part in key.split("/"))
    with h5pyvol.File("safe.h5", "r", "s3", prefix="team/run1", **opts) as f:
        g = f
        for i, name in enumerate(names):
            g = g[name]
            assert g.attrs[name] == i
            np.testing.assert_array_equal(g[name + "-d"][()], np.arange(i + 1))
    # File names and prefixes are keys: the ones that could leave the prefix are refused.
    for bad in ("../escape.h5", "a/../../b.h5", "/../b.h5", "x//y.h5", "x/", ".hidden.h5", "a/.b/c.h5"):
        with pytest.raises(OSError, match="ValueError: file name .* is not usable as an S3 key"):
            h5pyvol.File(bad, "w", "s3", **opts)
    assert set(_all_keys(client, opts["bucket"])) == set(keys)


def test_s3_url_names_bucket_and_key(s3):
    client, opts = s3
    url = f"s3://{opts['bucket']}/results/run.h5"
    with h5pyvol.File(url, "w", endpoint_url=opts["endpoint_url"]) as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        f["x"] = np.arange(5)
    assert "results/run.h5/.manifest.json" in _all_keys(client, opts["bucket"])
    with h5pyvol.File(url, "r", endpoint_url=opts["endpoint_url"]) as f:
        np.testing.assert_array_equal(f["x"][()], np.arange(5))
    # keys are signed and sent URL-encoded: spaces, non-ASCII, reserved characters
    odd = "run 2/été+ü=%41 (1).h5"
    with h5pyvol.File(odd, "w", "s3", **opts) as f:
        f.create_dataset("x", data=np.arange(50.0), chunks=(10,))
    assert f"{odd}/.manifest.json" in _all_keys(client, opts["bucket"])
    with h5pyvol.File(odd, "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["x"][3:47:4], np.arange(50.0)[3:47:4])


def test_manifest_is_json_with_base64_metadata(s3):
    client, opts = s3
    with h5pyvol.File("m.h5", "w", "s3", **opts) as f:
        f["g/d"] = np.arange(3, dtype="i8")
        f["g"].attrs["note"] = "hello"
    manifest = json.loads(client.get_object(Bucket=opts["bucket"], Key="m.h5/.manifest.json")["Body"].read())
    assert manifest["format"] == "h5pyvol-s3" and manifest["format_version"] == 3
    kinds = sorted(n["kind"] for n in manifest["nodes"].values())
    assert kinds == ["dataset", "group", "group"]
    root = manifest["nodes"][manifest["root"]]
    assert [name for name, _ in root["links"]] == ["g"]
    assert all(len(bytes.fromhex(t)) <= 15 for t in manifest["nodes"])


# ---------------------------------------------------------------- parallel transfers


def test_many_chunks_move_through_several_threads(s3):
    from h5pyvol.connectors.s3 import S3Backend, S3Connector

    from h5pyvol import registry

    _, opts = s3
    threads: set[str] = set()
    spec = h5pyvol.connector_string("s3", max_workers="4", **opts)
    conn = registry.load(spec)
    assert isinstance(conn, S3Connector)
    real_get = S3Backend.get_into  # every chunk read of uncompressed data goes through it

    def spy(self, *args, **kw):
        import threading

        threads.add(threading.current_thread().name)
        return real_get(self, *args, **kw)

    data = np.random.default_rng(0).random((64, 64))
    with h5pyvol.File("par.h5", "w", "s3", max_workers="4", **opts) as f:
        f.create_dataset("d", data=data, chunks=(8, 8))  # 64 chunks
    S3Backend.get_into = spy
    try:
        with h5pyvol.File("par.h5", "r", "s3", max_workers="4", **opts) as f:
            np.testing.assert_array_equal(f["d"][()], data)
    finally:
        S3Backend.get_into = real_get
    workers = {t for t in threads if t.startswith("h5pyvol-s3")}
    assert 1 < len(workers) <= 4, threads


def test_reads_fetch_only_the_bytes_they_need(s3, monkeypatch):
    from h5pyvol.connectors.s3 import S3Backend

    _, opts = s3
    data = np.random.default_rng(3).random((1024, 2048))
    with h5pyvol.File("rng.h5", "w", "s3", **opts) as f:
        f.create_dataset("d", data=data, chunks=(256, 512))  # 16 chunks of 1 MiB
        f.create_dataset("z", data=data, chunks=(256, 512), compression="gzip")
    asked: list[tuple[int, int, bool]] = []
    real = S3Backend.get_into

    def spy(self, key, buf, start, what, whole=False):
        asked.append((start, len(buf), whole))
        return real(self, key, buf, start, what, whole)

    monkeypatch.setattr(S3Backend, "get_into", spy)
    with h5pyvol.File("rng.h5", "r", "s3", **opts) as f:
        d = f["d"]
        np.testing.assert_array_equal(d[5, :], data[5, :])  # one row: 4 KiB of each of 4 chunks
        assert sorted(asked) == [(5 * 4096, 4096, False)] * 4
        asked.clear()
        np.testing.assert_array_equal(d[256:512, 512:1024], data[256:512, 512:1024])  # one whole chunk
        assert asked == [(0, 1 << 20, True)]
        asked.clear()
        np.testing.assert_array_equal(d[300:302, 600:1100], data[300:302, 600:1100])
        # two rows of two chunks, each pair merged into one range (704 bytes apart)
        assert sorted(asked) == [(44 * 4096, 4096 + 76 * 8, False), (44 * 4096 + 88 * 8, 4096 + 424 * 8, False)]
        asked.clear()
        np.testing.assert_array_equal(d[...], data)  # everything: whole objects
        assert len(asked) == 16 and all(whole for _, _, whole in asked)
        for sel in [np.s_[::37, 5], np.s_[[3, 700, 1000], 100:900:7], np.s_[1000:1024, 3:2040:5],
                    np.s_[17, [0, 511, 512, 2047]], np.s_[::255, ::511]]:
            np.testing.assert_array_equal(d[sel], data[sel])
        asked.clear()
        np.testing.assert_array_equal(f["z"][5, :], data[5, :])  # compressed chunks are read whole
    assert len(asked) == 4 and all(start == 0 and whole for start, _, whole in asked)


def _connections_to(port: int) -> set[int]:
    """This process's established TCP connections to `port` (socket inodes)."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                mine.add(int(target[8:-1]))
    found = set()
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and int(fields[9]) in mine:
            found.add(int(fields[9]))
    return found


def test_last_close_releases_connections_and_workers(s3):
    """One connector per bucket stays loaded for the process's life; its
    keep-alive connections and worker threads go with its last open file."""
    _, opts = s3
    port = int(opts["endpoint_url"].rsplit(":", 1)[1])
    before = _connections_to(port)
    with h5pyvol.File("idle.h5", "w", "s3", **opts) as f:
        f.create_dataset("d", data=np.arange(1000.0), chunks=(10,))  # 100 chunk objects, in parallel
        with h5pyvol.File("idle.h5", "r", "s3", **opts) as g:
            assert g["d"].shape == (1000,)
        assert _connections_to(port) - before  # kept while a file is open
        assert any(t.name.startswith("h5pyvol-s3") for t in threading.enumerate())
    assert not _connections_to(port) - before
    assert not any(t.name.startswith("h5pyvol-s3") for t in threading.enumerate())
    with h5pyvol.File("idle.h5", "r", "s3", **opts) as f:  # made again on demand
        np.testing.assert_array_equal(f["d"][()], np.arange(1000.0))


# ---------------------------------------------------------------- consistency

_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import h5pyvol
    opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
    f = h5pyvol.File("crash.h5", "w", "s3", **opts)
    f.create_dataset("d", data=np.ones((64, 64)), chunks=(16, 16))
    f.attrs["stage"] = 1
    f.flush()                                   # commit 1
    f["d"][...] = 2                             # new chunk objects, not committed
    f["d"][3, 3] = 5                            # a cached partial write
    f.create_dataset("late", data=np.arange(100))
    f.attrs["stage"] = 2
    from h5pyvol.connectors.s3 import layout
    layout(f["d"])                              # uploads the cached chunk: orphans for sure
    print("ready", flush=True)
    time.sleep(120)
""")


def test_killed_writer_leaves_last_commit_readable(s3):
    from h5pyvol.connectors.s3 import S3Connector

    client, opts = s3
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, *(f"{k}={v}" for k, v in opts.items())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.poll() is not None else line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    with h5pyvol.File("crash.h5", "r", "s3", **opts) as f:
        assert f.attrs["stage"] == 1
        assert "late" not in f
        np.testing.assert_array_equal(f["d"][()], np.ones((64, 64)))
        committed = {c["key"] for c in _layout(f["d"])["chunks"]}
    # The dead writer's objects are unreferenced; vacuum removes them and only them
    # (orphan_grace=0: we know the writer is dead, so its session counts as dead at once).
    conn = S3Connector(**opts, orphan_grace="0")
    before = set(_all_keys(client, opts["bucket"]))
    removed = len(conn.vacuum("crash.h5").orphans)
    after = set(_all_keys(client, opts["bucket"]))
    assert removed == len(before - after) > 0
    assert committed <= after and after == committed | {"crash.h5/.manifest.json"}
    with h5pyvol.File("crash.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["d"][()], np.ones((64, 64)))


def test_readers_see_nothing_before_flush(s3):
    _, opts = s3
    writer = h5pyvol.File("vis.h5", "w", "s3", **opts)
    try:
        writer["a"] = np.arange(3)
        writer.flush()
        writer["b"] = np.arange(4)
        writer["a"][0] = 42
        # another connector instance (another option set) reads the stored state
        with h5pyvol.File("vis.h5", "r", "s3", max_workers="3", **opts) as r:
            assert list(r) == ["a"] and r["a"][0] == 0
        writer.flush()
        with h5pyvol.File("vis.h5", "r", "s3", max_workers="2", **opts) as r:
            assert sorted(r) == ["a", "b"] and r["a"][0] == 42
    finally:
        writer.close()


def test_truncate_and_delete_remove_objects(s3):
    from h5pyvol.connectors.s3 import S3Connector

    client, opts = s3
    with h5pyvol.File("t.h5", "w", "s3", **opts) as f:
        f.create_dataset("d", data=np.zeros((32, 32)), chunks=(8, 8))
    assert len(_all_keys(client, opts["bucket"])) == 17
    with h5pyvol.File("t.h5", "w", "s3", **opts) as f:
        assert "d" not in f
    assert set(_all_keys(client, opts["bucket"])) == {"t.h5/.manifest.json"}
    S3Connector(**opts).delete("t.h5")
    assert _all_keys(client, opts["bucket"]) == {}


def test_resize_drops_and_trims_chunks(s3):
    client, opts = s3
    with h5pyvol.File("rs.h5", "w", "s3", **opts) as f:
        d = f.create_dataset("d", data=np.arange(100).reshape(10, 10), maxshape=(None, 10), chunks=(4, 10),
                             fillvalue=-1)
        d.resize((6, 10))  # chunk row 2 dropped, row 1 trimmed
        d.resize((12, 10))
        expected = np.full((12, 10), -1)
        expected[:6] = np.arange(60).reshape(6, 10)
        np.testing.assert_array_equal(d[()], expected)
        assert [c["index"] for c in _layout(d)["chunks"]] == [(0, 0), (1, 0)]
    with h5pyvol.File("rs.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["d"][()], expected)


# ---------------------------------------------------------------- errors


def _timed_failure(expected, fn):
    """(message, seconds) of the expected failure of fn().

    The exception's traceback is dropped: kept, it would hold h5py objects in
    a reference cycle, and a garbage collection that frees them (H5Idec_ref)
    while h5py reads a later error stack clears that stack under it."""
    t0 = time.monotonic()
    with pytest.raises(expected) as info:
        fn()
    took = time.monotonic() - t0
    msg = str(info.value)
    info.value.__traceback__ = None
    del info
    return msg, took


def test_missing_bucket(s3):
    _, opts = s3
    opts = {**opts, "bucket": f"h5pyvol-none-{uuid.uuid4().hex[:8]}"}
    for mode in ("r", "w"):
        msg, took = _timed_failure(FileNotFoundError, lambda mode=mode: h5pyvol.File("x.h5", mode, "s3", **opts))
        assert opts["bucket"] in msg and "does not exist" in msg
        assert took < 5


def test_missing_key(s3):
    _, opts = s3
    msg, took = _timed_failure(FileNotFoundError, lambda: h5pyvol.File("nope/x.h5", "r", "s3", **opts))
    assert "nope/x.h5" in msg and opts["bucket"] in msg
    assert took < 5


@pytest.mark.parametrize("which", ["secret", "access"])
def test_bad_credentials(s3, s3_server, monkeypatch, which):
    _, opts = s3
    with h5pyvol.File("ok.h5", "w", "s3", **opts) as f:
        f["x"] = 1
    bad = "wrongwrongwrong" + uuid.uuid4().hex
    if which == "secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", bad)
    else:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHUSER" + uuid.uuid4().hex[:6].upper())
    # a different option set: a new connector instance, which reads the environment again
    # (the connectors sharing the good credentials' client are not affected)
    opts = {**opts, "max_workers": "5"}
    msg, took = _timed_failure(PermissionError, lambda: h5pyvol.File("ok.h5", "r", "s3", **opts))
    assert "credentials" in msg and took < 5
    assert bad not in msg and s3_server["secret_key"] not in msg


def test_no_credentials_at_all(s3, monkeypatch):
    _, opts = s3
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    opts = {**opts, "max_workers": "6"}
    msg, took = _timed_failure(PermissionError, lambda: h5pyvol.File("ok.h5", "r", "s3", **opts))
    assert "no AWS credentials" in msg and took < 5


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused(s3):
    _, opts = s3
    endpoint = f"http://127.0.0.1:{_unused_port()}"
    opts = {**opts, "endpoint_url": endpoint, "timeout": "2"}
    msg, took = _timed_failure(ConnectionError, lambda: h5pyvol.File("x.h5", "r", "s3", **opts))
    assert endpoint in msg and took < 2 * 2 + 3


def test_silent_endpoint_times_out(s3):
    _, opts = s3
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        opts = {**opts, "endpoint_url": endpoint, "timeout": "1"}
        msg, took = _timed_failure(TimeoutError, lambda: h5pyvol.File("x.h5", "r", "s3", **opts))
    assert endpoint in msg and "1 s" in msg and took < 2 * 1 + 3


def test_bad_options_are_clear(s3):
    _, opts = s3
    with pytest.raises(Exception, match="unknown s3 connector options"):
        h5pyvol.File("x.h5", "w", "s3", colour="blue", **opts)
    with pytest.raises(Exception, match="needs a bucket"):
        h5pyvol.File("x.h5", "w", "s3", endpoint_url=opts["endpoint_url"])


# ---------------------------------------------------------------- other programs


def _spec(opts: dict) -> str:
    return h5pyvol.connector_string("s3", **opts)


def test_c_program_through_hdf5_vol_connector(s3, compile_c, tmp_path):
    client, opts = s3
    proc = run([compile_c("roundtrip"), "c/roundtrip.h5"], vol_env(_spec(opts)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "connector: h5pyvol" in proc.stdout and "PASS" in proc.stdout
    assert "c/roundtrip.h5/.manifest.json" in _all_keys(client, opts["bucket"])
    with h5pyvol.File("c/roundtrip.h5", "r", "s3", **opts) as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        expected = np.array([[i * 10 + j for j in range(5)] for i in range(4)], "i4")
        np.testing.assert_array_equal(f["results/table"][()], expected)
        assert f["results/table"].attrs["answer"] == 42


def test_h5py_through_the_environment(s3, tmp_path):
    _, opts = s3
    code = textwrap.dedent("""
        import h5py, numpy as np, h5pyvol
        with h5py.File("env/plain.h5", "w") as f:
            assert h5pyvol.connector_name(f.id) == "h5pyvol"
            f.create_dataset("x", data=np.arange(1000.0).reshape(10, 100), chunks=(5, 50), compression="gzip")
            f["x"].attrs["unit"] = "m"
        with h5py.File("env/plain.h5", "r") as f:
            assert f["x"][9, 99] == 999.0
        print("ok")
    """)
    proc = run([sys.executable, "-c", code], vol_env(_spec(opts)), cwd=tmp_path)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr
    with h5pyvol.File("env/plain.h5", "r", "s3", **opts) as f:
        assert isinstance(f, h5py.File)
        np.testing.assert_array_equal(f["x"][()], np.arange(1000.0).reshape(10, 100))
        assert f["x"].attrs["unit"] == "m"
        assert len(_layout(f["x"])["chunks"]) == 4
    assert not os.path.exists(tmp_path / "env")  # nothing went to the local disk


# ---------------------------------------------------------------- the server dies mid-write


def _free_port_block() -> int:
    """A port P with P..P+4 and P+10000..P+10004 free on 127.0.0.1 (a SeaweedFS's ports)."""
    import random

    rng = random.Random()
    for _ in range(100):
        base = rng.randrange(30000, 45000)
        socks = []
        try:
            for p in [base + i for i in range(5)] + [base + 10000 + i for i in range(5)]:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of ports for a SeaweedFS")


@pytest.fixture
def throwaway_seaweedfs(tmp_path_factory):
    """A SeaweedFS of this test's own (own dir and ports), which the test may kill."""
    missing = servers.missing_seaweedfs()
    if missing:
        msg = f"SeaweedFS needs {', '.join(missing)}: run scripts/services/install.sh {sys.executable}"
        if os.environ.get("H5PYVOL_REQUIRE_SERVICES") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    info = servers.start_seaweedfs(str(tmp_path_factory.mktemp("weed") / "s3"), port=_free_port_block())
    yield info
    with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError):
        os.kill(servers.seaweedfs_pid(info), signal.SIGCONT)
    servers.stop_seaweedfs(info)


# Adds a 256 MiB dataset (256 chunk objects of 1 MiB) to a committed file in
# one write, and reports as JSON how that write and the close ended.
_BIG_WRITER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import h5pyvol
    opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
    f = h5pyvol.File("fault.h5", "a", "s3", **opts)
    d = f.create_dataset("big", shape=(4096, 8192), dtype="f8", chunks=(128, 1024))
    data = np.full((4096, 8192), 7.0)
    out = {}
    print("writing", flush=True)
    try:
        d[...] = data
    except Exception as exc:
        out.update(write=f"{type(exc).__name__}: {exc}", write_failed_at=time.time())
    try:
        f.close()
    except Exception as exc:
        out.update(close=f"{type(exc).__name__}: {exc}", close_failed_at=time.time())
    print(json.dumps(out), flush=True)
""")


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_server_dies_during_a_big_write(throwaway_seaweedfs, monkeypatch, fault):
    """The S3 server is killed (SIGKILL) or frozen (SIGSTOP) while a writer
    uploads a big dataset. The writer gets a clear error naming the cause
    within the configured timeout, and neither hangs nor crashes; once the
    server is back, the file's last commit reads intact."""
    from h5pyvol.connectors.s3 import S3Connector

    server = throwaway_seaweedfs
    servers.set_aws_env(monkeypatch, server)
    client = servers.s3_client(server)
    bucket = f"h5pyvol-fault-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    timeout = 2
    opts = {"bucket": bucket, "endpoint_url": server["endpoint"], "timeout": str(timeout), "max_workers": "4"}
    kept = np.arange(256 * 256, dtype="f8").reshape(256, 256)
    with h5pyvol.File("fault.h5", "w", "s3", **opts) as f:
        f.create_dataset("kept", data=kept, chunks=(64, 64))
        f.attrs["stage"] = 1
    committed = set(_all_keys(client, bucket))

    proc = subprocess.Popen([sys.executable, "-P", "-c", _BIG_WRITER, *(f"{k}={v}" for k, v in opts.items())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = servers.seaweedfs_pid(server)
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        # strike once the write is under way: a few of its 256 chunk objects are stored
        deadline = time.monotonic() + 60
        while len(set(_all_keys(client, bucket)) - committed) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the big write ended before the fault"
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        struck = time.time()
        out, err = proc.communicate(timeout=10 * timeout + 30)  # no hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"the writer ended with {proc.returncode}:\n{err[-3000:]}"  # no crash
    report = json.loads(out.strip().splitlines()[-1])
    # h5py raised the connector's error, which names what happened and where
    cause = "ConnectionRefusedError|ConnectionResetError" if fault == "killed" else "TimeoutError"
    assert re.search(f"({cause}).*{re.escape(server['endpoint'])}", report.get("write", "")), report
    if fault == "frozen":
        assert f"did not answer within {timeout} s" in report["write"], report
    assert report["write_failed_at"] - struck < 2 * timeout + 2, report
    assert "close" in report, report  # the commit at close could not happen either, and said so
    assert report["close_failed_at"] - struck < 4 * timeout + 4, report

    if fault == "killed":
        servers.restart_seaweedfs(server)
    else:
        os.kill(pid, signal.SIGCONT)
    with h5pyvol.File("fault.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["kept"][()], kept)
        assert f.attrs["stage"] == 1
        if fault == "killed":
            assert list(f) == ["kept"]
        elif "big" in f:
            # A frozen server still holds the requests that timed out, and runs
            # them once thawed: the close's manifest PUT may land. That commit
            # names no chunk of "big" (none of its uploads had succeeded), so
            # the file is still consistent: "big" reads as its fill value.
            assert not f["big"][::64, ::64].any()
    # what the writer uploaded is unreferenced: vacuum removes it, the file still reads
    assert S3Connector(**opts, orphan_grace="0").vacuum("fault.h5").orphans
    with h5pyvol.File("fault.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["kept"][()], kept)
    _drop_bucket(client, bucket)


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_failed_close_names_its_cause(throwaway_seaweedfs, monkeypatch, fault):
    """The server is killed or frozen between a commit and the close: the
    close fails with h5py's exception, whose message carries the connector's
    cause (the S3 error of the final commit, taken from HDF5's error stack).
    The file id stays open, a second close releases it, and the last commit
    reads intact once the server is back."""
    server = throwaway_seaweedfs
    servers.set_aws_env(monkeypatch, server)
    client = servers.s3_client(server)
    bucket = f"h5pyvol-close-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    opts = {"bucket": bucket, "endpoint_url": server["endpoint"], "timeout": "1"}
    f = h5pyvol.File("closing.h5", "w", "s3", **opts)
    assert h5pyvol.connector_name(f.id) == "h5pyvol"
    f["kept"] = np.arange(100.0)
    f.attrs["stage"] = 1
    f.flush()  # the last commit
    f["lost"] = np.ones(10)
    f.attrs["stage"] = 2
    pid = servers.seaweedfs_pid(server)
    os.kill(pid, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
    try:
        with pytest.raises(Exception) as failed:
            f.close()
        assert f.id.valid  # HDF5 keeps a file id whose close failed
        f.close()  # ... and the next close releases it
        assert not f.id.valid
    finally:
        if fault == "killed":
            servers.restart_seaweedfs(server)
        else:
            os.kill(pid, signal.SIGCONT)
    message = str(failed.value)
    cause = "ConnectionRefusedError|ConnectionResetError" if fault == "killed" else "TimeoutError"
    assert re.search(f"h5pyvol: ({cause}).*committing 'closing.h5'.*{re.escape(server['endpoint'])}", message), message
    with h5pyvol.File("closing.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["kept"][()], np.arange(100.0))
        if fault == "frozen" and "lost" in f:
            # A frozen server runs the requests that timed out once thawed, so
            # a manifest PUT of the close may land: then it holds everything.
            assert f.attrs["stage"] == 2
            np.testing.assert_array_equal(f["lost"][()], np.ones(10))
        else:
            assert list(f) == ["kept"]
            assert f.attrs["stage"] == 1
    _drop_bucket(client, bucket)


# ---------------------------------------------------------------- HDF5's API test suite


def test_hdf5_api_suite_through_s3_has_no_regressions(ceph, tmp_path):
    """h5_api_test through the s3 connector on RGW (about 40 s): no test that
    passed when tests/api_suite/results-s3.json was recorded may fail now."""
    suite = Path(__file__).resolve().parents[1] / "api_suite"
    client = servers.s3_client(ceph)
    bucket = f"h5pyvol-api-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ceph["access_key"], AWS_SECRET_ACCESS_KEY=ceph["secret_key"],
               AWS_DEFAULT_REGION=ceph["region"], AWS_EC2_METADATA_DISABLED="true")
    try:
        proc = subprocess.run(
            [sys.executable, "-P", str(suite / "run_api_suite.py"), "--vol-only", "--label", "h5pyvol s3",
             "--connector", f"s3;bucket={bucket};endpoint_url={ceph['endpoint']}",
             "--expected", str(suite / "results-s3.json"), "--json", str(tmp_path / "now.json")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
        )
    finally:
        _drop_bucket(client, bucket)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "not compared" not in proc.stderr, proc.stderr  # the label matches the recorded results
    now = json.loads((tmp_path / "now.json").read_text())["modes"]["h5pyvol s3"]
    assert sum(g["passed"] for g in now.values()) >= 1000  # the suite really ran through the connector


def test_committed_datatype_counts_its_arrays_as_hdf5_does(s3, tmp_path):
    committed_type_refs.compare("s3", s3[1], tmp_path)


# ---------------------------------------------------------------- conditional commits


def test_servers_honour_conditional_puts(s3, s3_server):
    """RGW and SeaweedFS refuse a PUT whose If-Match or If-None-Match fails
    (RGW 16 takes the ETag unquoted only), which is what lets many writers
    merge their commits instead of overwriting each other's."""
    from h5pyvol.connectors import s3 as s3mod

    _, opts = s3
    s3mod._CONDITIONS.pop(opts["endpoint_url"], None)  # probe again, now
    conn = s3mod.S3Connector(**opts)
    backend = conn.backend
    style = backend.condition_style()
    rgw = "H5PYVOL_RADOS_CONF" in s3_server.get("env", {})
    assert style == "unquoted" if rgw else style == "quoted"
    with h5pyvol.File("cond.h5", "w", "s3", **opts) as f:
        f["x"] = 1
    head, version = backend.load_head("cond.h5")
    from h5pyvol.storage.manifest import HeadConflict, Touched

    stale = {**head, "generation": head["generation"] + 1}
    backend.store_head("cond.h5", stale, Touched(), version)  # at the version read: accepted
    with pytest.raises(HeadConflict):
        backend.store_head("cond.h5", stale, Touched(), version)  # that version is gone
    with pytest.raises(HeadConflict):
        backend.store_head("cond.h5", stale, Touched(), None, create="exclusive")  # it exists
    conn.close()


def test_a_server_ignoring_conditions_is_detected(s3, monkeypatch):
    """A server that ignores If-Match (simulated by dropping the headers on the
    way) is found out by the probe: writers get a warning that the last commit
    wins, and still work alone."""
    from h5pyvol.connectors import _s3wire
    from h5pyvol.connectors import s3 as s3mod

    _, opts = s3
    real_put = _s3wire.Wire.put
    monkeypatch.setattr(_s3wire.Wire, "put", lambda self, key, body, conditions=None: real_put(self, key, body))
    monkeypatch.delitem(s3mod._CONDITIONS, opts["endpoint_url"], raising=False)
    with pytest.warns(RuntimeWarning, match="ignores conditional PUTs.*last commit wins"):
        with h5pyvol.File("blind.h5", "w", "s3", **opts) as f:
            f["x"] = np.arange(3)
    assert s3mod._CONDITIONS[opts["endpoint_url"]] is None
    monkeypatch.delitem(s3mod._CONDITIONS, opts["endpoint_url"])  # the real server honours them
    with h5pyvol.File("blind.h5", "r", "s3", **opts) as f:
        np.testing.assert_array_equal(f["x"][()], np.arange(3))
