"""Many writers of one file on S3 (RGW, SeaweedFS) and RADOS: no update is lost.

Writers open one file in mode "a" at once and write different datasets,
attributes, groups and chunks; each commit merges onto the head another writer
left (docs/s3-layout.md, "Many writers"). Checked here: two writers in one
process, step by step (merge rules, last commit wins on the same element,
garbage of only what a commit superseded); 2 and 4 processes at once (100
datasets each, and chunks of one shared dataset); a killed writer's orphans
collected at the next open for writing; a writer whose session was taken for
dead cannot commit; `h5pyvol vacuum`. Writers run with faulthandler, so that
a crash shows where.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import h5pyvol


def _stored_chunks(store, name: str) -> set[str]:
    return {k for k in store.objects() if k != store.head_key(name)}


# ---------------------------------------------------------------- two writers, step by step


def test_two_writers_merge_every_change(store):
    with store.open("m.h5", "w") as f:
        f.create_dataset("shared", data=np.zeros(40), chunks=(10,))
        f.create_group("g")
    a = store.open("m.h5", "a")
    b = store.open("m.h5", "a", max_workers="3") if store.connector == "s3" else store.open("m.h5", "a", inflight="7")
    try:
        assert h5pyvol.connector_name(a.id) == h5pyvol.connector_name(b.id) == "h5pyvol"
        a["from_a"] = np.arange(5)
        a["g"].attrs["a"] = 1
        a["shared"][0:10] = 1  # chunk 0
        b["from_b"] = np.arange(6)
        b["g"].attrs["b"] = 2
        b["g"].create_group("sub_b")
        b["shared"][30:40] = 4  # chunk 3
        a.flush()
        b.flush()  # conflicts with a's commit: merged onto it
        a["later_a"] = 1.5
        a.attrs["note"] = "a"
        a.close()
        b.attrs["other"] = "b"
        b.close()
    finally:
        a.close()
        b.close()
    with store.open("m.h5") as f:
        assert sorted(f) == ["from_a", "from_b", "g", "later_a", "shared"]
        np.testing.assert_array_equal(f["from_a"][()], np.arange(5))
        np.testing.assert_array_equal(f["from_b"][()], np.arange(6))
        assert dict(f["g"].attrs) == {"a": 1, "b": 2} and list(f["g"]) == ["sub_b"]
        assert f.attrs["note"] == "a" and f.attrs["other"] == "b"
        np.testing.assert_array_equal(f["shared"][()], np.repeat([1.0, 0, 0, 4], 10))
    # every stored chunk object is named by the committed state: nothing leaked, nothing lost
    assert _stored_chunks(store, "m.h5") == store.named_keys("m.h5")


def test_same_element_last_commit_wins(store):
    with store.open("same.h5", "w") as f:
        f.create_dataset("d", data=np.zeros(8), chunks=(4,))
        f["d"].attrs["who"] = "nobody"
    a = store.open("same.h5", "a")
    b = store.open("same.h5", "a", max_workers="3") if store.connector == "s3" else store.open("same.h5", "a",
                                                                                             inflight="7")
    try:
        a["d"][1] = 1.0
        a["d"].attrs["who"] = "a"
        b["d"][2] = 2.0  # the same chunk as a's element: the whole chunk is the unit
        b["d"].attrs["who"] = "b"
        b.flush()
        a.flush()  # the last commit
    finally:
        b.close()
        a.close()
    with store.open("same.h5") as f:
        np.testing.assert_array_equal(f["d"][()], [0, 1, 0, 0, 0, 0, 0, 0])
        assert f["d"].attrs["who"] == "a"
    assert _stored_chunks(store, "same.h5") == store.named_keys("same.h5")


def test_deleted_by_one_written_by_another(store):
    with store.open("del.h5", "w") as f:
        f.create_dataset("gone", data=np.ones(20), chunks=(5,))
        f["kept"] = 1
    a = store.open("del.h5", "a")
    b = store.open("del.h5", "a", max_workers="3") if store.connector == "s3" else store.open("del.h5", "a",
                                                                                           inflight="7")
    try:
        del a["gone"]
        a.flush()
        b["gone"][0:5] = 7  # writes a dataset another writer deleted meanwhile
        b["new"] = 2
        b.flush()
    finally:
        a.close()
        b.close()
    with store.open("del.h5") as f:
        assert sorted(f) == ["kept", "new"]  # the deletion stands; b's other changes too
    assert _stored_chunks(store, "del.h5") == store.named_keys("del.h5")


# ---------------------------------------------------------------- processes at once

WRITER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import h5pyvol
    connector, name, rank, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    opts = json.loads(sys.argv[5])
    print("ready", flush=True)
    sys.stdin.readline()  # every writer starts at once
    with h5pyvol.File(name, "a", connector, **opts) as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        g = f.create_group(f"g{rank}")
        g.attrs["rank"] = rank
        for i in range(count):
            f.create_dataset(f"r{rank}_d{i}", data=np.arange(4) + 1000 * rank + i)
            if i % 25 == 24:
                f.flush()
        f.attrs[f"rank{rank}"] = rank
        shared = f["shared"]
        shared[rank * 16:(rank + 1) * 16] = rank + 1  # two chunks of its own
        shared.attrs[f"by{rank}"] = rank
    print("done", flush=True)
""")


def run_writers(store, name: str, procs: int, count: int) -> None:
    children = [subprocess.Popen([sys.executable, "-P", "-X", "faulthandler", "-c", WRITER, store.connector, name,
                                  str(rank), str(count),
                                  json.dumps(store.options)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=store.env) for rank in range(procs)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, err = child.communicate(timeout=600)
            assert child.returncode == 0 and "done" in out, f"exit {child.returncode}, out {out!r}:\n{err[-3000:]}"
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()


def check_written(store, name: str, procs: int, count: int) -> None:
    with store.open(name) as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        names = set(f)
        for rank in range(procs):
            assert f[f"g{rank}"].attrs["rank"] == rank
            assert f.attrs[f"rank{rank}"] == rank
            assert f["shared"].attrs[f"by{rank}"] == rank
            for i in range(count):
                np.testing.assert_array_equal(f[f"r{rank}_d{i}"][()], np.arange(4) + 1000 * rank + i)
        assert len(names) == procs * (count + 1) + 1
        np.testing.assert_array_equal(f["shared"][()], np.repeat(np.arange(procs) + 1, 16))
    assert _stored_chunks(store, name) == store.named_keys(name)


@pytest.mark.parametrize(("procs", "count"), [(2, 20), (4, 100)])
def test_processes_write_one_file_at_once(store, procs, count):
    with store.open("many.h5", "w") as f:
        f.create_dataset("shared", shape=(16 * procs,), dtype="i4", chunks=(8,))
    run_writers(store, "many.h5", procs, count)
    check_written(store, "many.h5", procs, count)


# ---------------------------------------------------------------- dead writers

KILLED = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import h5pyvol
    connector, name, opts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    f = h5pyvol.File(name, "w", connector, **opts)
    f.create_dataset("big", data=np.ones((64, 1024)), chunks=(4, 1024))  # 16 chunk objects of 32 KiB
    print("written", flush=True)
    time.sleep(600)
""")


def killed_writer(store, name: str) -> None:
    """A writer of a new file `name` killed after uploading 16 chunks, before any commit of them."""
    child = subprocess.Popen([sys.executable, "-P", "-c", KILLED, store.connector, name, json.dumps(store.options)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=store.env)
    try:
        assert child.stdout.readline().strip() == "written", child.stderr.read()
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)


def test_killed_writer_orphans_are_collected_at_the_next_open(store):
    killed_writer(store, "new.h5")
    assert len(_stored_chunks(store, "new.h5")) == 16  # the dead writer's uploads
    with store.open("new.h5") as f:  # a reader: the file exists, empty (its create committed nothing else)
        assert list(f) == []
    assert len(_stored_chunks(store, "new.h5")) == 16  # readers never collect
    with store.open("new.h5", "a", orphan_grace="0") as f:  # the dead writer's session is stale at once
        f["after"] = 1
    assert _stored_chunks(store, "new.h5") == store.named_keys("new.h5") and len(store.named_keys("new.h5")) == 1


def test_live_writer_keeps_its_uploads(store):
    with store.open("live.h5", "w") as f:
        f["x"] = 0
    a = store.open("live.h5", "a")
    try:
        a.create_dataset("pending", data=np.arange(100.0), chunks=(10,))  # uploaded, not committed
        with store.open("live.h5", "a", max_workers="3") if store.connector == "s3" else \
                store.open("live.h5", "a", inflight="7") as b:  # the default grace: a is alive
            b["y"] = 1
        a.flush()
    finally:
        a.close()
    with store.open("live.h5") as f:
        np.testing.assert_array_equal(f["pending"][()], np.arange(100.0))
        assert f["y"][()] == 1
    assert _stored_chunks(store, "live.h5") == store.named_keys("live.h5")


def test_writer_taken_for_dead_cannot_commit(store):
    with store.open("taken.h5", "w") as f:
        f["x"] = 0
    a = store.open("taken.h5", "a")
    try:
        a.create_dataset("pending", data=np.arange(100.0), chunks=(10,))
        # another writer with a grace of 0 s takes a's session for a dead one's and collects its uploads
        store.open("taken.h5", "a", orphan_grace="0").close()
        with pytest.raises(RuntimeError, match="SessionLost.*collected as dead"):  # h5py's class for flush errors
            a.flush()
    finally:
        with pytest.raises(Exception, match="collected as dead"):  # the close commits again, and says why
            a.close()
    with store.open("taken.h5") as f:
        assert list(f) == ["x"]  # the last commit, intact
    assert _stored_chunks(store, "taken.h5") == store.named_keys("taken.h5")


@pytest.mark.parametrize("store", ["seaweedfs", "rados"], indirect=True)  # the command is one for both S3 servers
def test_vacuum_command_lists_then_removes_orphans(store):
    killed_writer(store, "vac.h5")
    spec = h5pyvol.connector_string(store.connector, **store.options)
    before = _stored_chunks(store, "vac.h5")
    cmd = [sys.executable, "-P", "-m", "h5pyvol", "vacuum", spec, "vac.h5"]
    live = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, env=store.env)
    assert live.returncode == 0, live.stderr
    assert "16 chunk objects of live writers kept" in live.stdout  # within the grace period: maybe alive
    dry = subprocess.run([*cmd, "--dry-run", "--grace", "0"], capture_output=True, text=True, env=store.env)
    assert dry.returncode == 0 and "would remove 16 orphan" in dry.stdout, dry.stdout + dry.stderr
    assert _stored_chunks(store, "vac.h5") == before
    done = subprocess.run([*cmd, "--grace", "0"], capture_output=True, text=True, env=store.env)
    assert done.returncode == 0 and "removed 16 orphan" in done.stdout, done.stdout + done.stderr
    assert _stored_chunks(store, "vac.h5") == set()
    with store.open("vac.h5") as f:
        assert list(f) == []
    bad = subprocess.run([*cmd[:-2], "memory", "x.h5"], capture_output=True, text=True, env=store.env)
    assert bad.returncode != 0 and "no orphan collection" in bad.stderr
