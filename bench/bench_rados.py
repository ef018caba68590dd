"""Bulk bandwidth of the rados connector against raw librados, in the same run.

Writes and reads one float64 dataset of --gib GiB through h5py and the rados
connector, and the same bytes with plain librados aio (objects of the same
size, the same number in flight, the same one copy from and into a numpy
array). Prints MiB/s for each and the ratio connector / raw (goal >= 0.8).
Both sides are timed as bandwidth: each has its cluster connection (and the
connector its imports and plugin, through one empty file) before its clock
starts, and the previous repeat's objects are removed off the clock.

Uses the cluster named by H5PYVOL_RADOS_CONF (and H5PYVOL_RADOS_KEYRING,
H5PYVOL_RADOS_USER, H5PYVOL_RADOS_POOL, as in the env file scripts/services/
ceph.sh writes); otherwise starts (or reuses) the test cluster through
tests/services/servers.py, honouring H5PYVOL_CEPH_DIR and the port variables.

Usage: python -P bench/bench_rados.py [--gib 1.0] [--chunk-mib 4] [--inflight 32] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import deque
from pathlib import Path

import numpy as np

import h5pyvol

REPO = Path(__file__).resolve().parents[1]


def cluster_info() -> dict:
    if os.environ.get("H5PYVOL_RADOS_CONF"):
        e = os.environ
        return {"conf": e["H5PYVOL_RADOS_CONF"], "keyring": e.get("H5PYVOL_RADOS_KEYRING", ""),
                "user": e.get("H5PYVOL_RADOS_USER", "client.admin"), "pool": e.get("H5PYVOL_RADOS_POOL", "h5pyvol")}
    sys.path.insert(0, str(REPO / "tests" / "services"))
    import servers

    return servers.start_ceph()


def raw_write(io, data: np.ndarray, names: list[str], rows: int, inflight: int) -> None:
    pending: deque = deque()
    for i, name in enumerate(names):
        if len(pending) >= inflight:
            _check(pending.popleft())
        pending.append(io.aio_write_full(name, data[i * rows:(i + 1) * rows].tobytes()))
    while pending:
        _check(pending.popleft())


def raw_read(io, out: np.ndarray, names: list[str], rows: int, inflight: int) -> None:
    pending: deque = deque()

    def land(item):
        comp, slot, i = item
        _check(comp)
        part = out[i * rows:(i + 1) * rows]
        part[...] = np.frombuffer(slot["data"], out.dtype).reshape(part.shape)

    for i, name in enumerate(names):
        if len(pending) >= inflight:
            land(pending.popleft())
        n = min(rows, out.shape[0] - i * rows) * out.shape[1] * out.itemsize
        slot: dict = {}
        comp = io.aio_read(name, n, 0, lambda _c, d, slot=slot: slot.__setitem__("data", d))
        pending.append((comp, slot, i))
    while pending:
        land(pending.popleft())


def _check(comp) -> None:
    comp.wait_for_complete_and_cb()
    rc = comp.get_return_value()
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))


def best(fn, repeat: int, before=None) -> float:
    t = float("inf")
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--chunk-mib", type=float, default=4.0)
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a further rados connector option, e.g. zone_maps=0 (repeatable)")
    args = ap.parse_args()
    if any("=" not in o for o in args.option):
        ap.error("--option takes KEY=VALUE")
    extra = dict(o.split("=", 1) for o in args.option)

    import rados

    info = cluster_info()
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    cols = 1 << 16  # 512 KiB rows
    rows_total = max(1, int(args.gib * (1 << 30)) // (cols * 8))
    rows = max(1, int(args.chunk_mib * (1 << 20)) // (cols * 8))
    data = np.arange(rows_total * cols, dtype="f8").reshape(rows_total, cols)
    mib = data.nbytes / (1 << 20)
    nobj = -(-rows_total // rows)
    print(f"{mib:.0f} MiB as {nobj} objects of {rows * cols * 8 / (1 << 20):.1f} MiB, {args.inflight} in flight, "
          f"pool {info['pool']!r}, namespace {namespace!r}")

    cluster = rados.Rados(conffile=info["conf"], name=info["user"],
                          conf={"keyring": info["keyring"]} if info["keyring"] else {})
    cluster.connect(timeout=30)
    io = cluster.open_ioctx(info["pool"])
    io.set_namespace(namespace)
    names = [f"raw.{i}" for i in range(nobj)]
    out = np.empty_like(data)

    def clear_raw():
        for n in names:
            try:
                io.remove_object(n)
            except rados.ObjectNotFound:
                pass

    t_raw_w = best(lambda: raw_write(io, data, names, rows, args.inflight), args.repeat, clear_raw)
    t_raw_r = best(lambda: raw_read(io, out, names, rows, args.inflight), args.repeat)
    assert np.array_equal(out, data)
    clear_raw()
    out[...] = 0

    opts = {"conf": info["conf"], "user": info["user"], "namespace": namespace, "inflight": str(args.inflight)}
    if info["keyring"]:
        opts["keyring"] = info["keyring"]
    opts.update(extra)
    url = f"rados://{info['pool']}/bench.h5"

    def vol_write():
        with h5pyvol.File(url, "w", **opts) as f:
            d = f.create_dataset("d", shape=data.shape, dtype="f8", chunks=(rows, cols))
            d[...] = data

    def vol_read():
        with h5pyvol.File(url, "r", **opts) as f:
            f["d"].read_direct(out)

    from h5pyvol import registry

    connector = registry.load(h5pyvol.connector_string("rados", pool=info["pool"], **opts))

    def clear_vol():  # as clear_raw: the previous run's objects go before the clock starts
        connector.delete("bench.h5")

    # The raw runs open their cluster connection before their clocks start; so
    # does the connector: imports, plugin and connection, through one empty file.
    with h5pyvol.File(url, "w", **opts):
        pass
    t_vol_w = best(vol_write, args.repeat, clear_vol)
    t_vol_r = best(vol_read, args.repeat)
    assert np.array_equal(out, data)
    connector.delete("bench.h5")
    io.close()
    cluster.shutdown()

    print(f"{'':12}{'raw rados':>14}{'connector':>14}{'ratio':>8}")
    for what, raw, vol in (("write", t_raw_w, t_vol_w), ("read", t_raw_r, t_vol_r)):
        print(f"{what:12}{mib / raw:>10.0f} MiB/s{mib / vol:>10.0f} MiB/s{raw / vol:>8.2f}x")


if __name__ == "__main__":
    main()
