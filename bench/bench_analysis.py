"""Analysis shipping against reading everything, in the same run, on RADOS and S3.

Four workloads on --gib GiB each, through h5pyvol.analysis.execute and two
baselines measured in the same run on the same files:

- masked sum: the sum of the values a query keeps (about half of them);
- histogram: 64 fixed bins over every value;
- selective: the sum of the values of a query matching 1% of clustered data;
- G2: the XPCS autocorrelation of examples/g2.py on a (T, Y, X) stack
  chunked by pixels.

Baselines: "h5py": read the whole dataset through h5py (the same connector),
then numpy; "dask": dask.array.from_array(dataset, chunks=its chunks) and
the same expression, computed with dask's threads. Analysis shipping runs
with its defaults (lua="auto": on loopback every chunk goes to a Python map,
which reads it straight from storage); its worker pool is started once per
store before timing, as a Dask client is set up once. For RADOS, built-in
reductions also run forced into the OSDs as generated Lua (lua=True),
reported in a table of their own. Prints, per store and workload, the best
of --repeat runs, the ratio of the faster baseline's time to analysis
shipping's (goal >= 1.0), bytes_returned as a fraction of the input (goal
<= 0.1% for reductions), the fraction of chunks read (goal <= 2% for the
selective query), the shards read without HDF5, and the chunk bytes the Lua
path moved to clients (goal 0).

Uses the cluster of H5PYVOL_CEPH_DIR and the port variables (started if
needed through tests/services/servers.py). Data is written once per store
and removed afterwards. ``--stores memory`` runs the same in this process on
the memory connector, whose zone maps show the pruning.

Usage: python -P bench/bench_analysis.py [--gib 1.0] [--stores rados,s3] [--engine processes] [--workers 2]
       [--repeat 3] [--workloads masked_sum,histogram,selective,g2]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import uuid
from pathlib import Path

import numpy as np

import h5pyvol
from h5pyvol.analysis import Count, Histogram, Q, Sum, execute

REPO = Path(__file__).resolve().parents[1]
CHUNK_BYTES = 4 << 20
COLS = 4096
BINS, RANGE = 64, (0.0, 1000.0)
DELAYS = [1, 2, 4, 8, 16]


def _g2_module():
    spec = importlib.util.spec_from_file_location("g2_example", REPO / "examples" / "g2.py")
    module = sys.modules["g2_example"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def clustered(rows: int, seed: int = 0) -> np.ndarray:
    """Values rising with the row (0..1000), with noise: a range query touches few chunks."""
    rng = np.random.default_rng(seed)
    out = np.empty((rows, COLS))
    step = max(1, rows // 64)
    for r0 in range(0, rows, step):
        n = min(step, rows - r0)
        out[r0:r0 + n] = (np.arange(r0, r0 + n)[:, None] + rng.random((n, COLS))) * (1000.0 / rows)
    return out


def best(fn, repeat: int):
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def open_store(store: str, info: dict, name: str, mode: str):
    if store == "memory":
        return h5pyvol.File(name, mode, "memory")
    if store == "rados":
        return h5pyvol.File(name, mode, "rados", pool=info["pool"], conf=info["conf"], keyring=info["keyring"],
                            user=info["user"], namespace=info["namespace"])
    return h5pyvol.File(f"s3://{info['bucket']}/{name}", mode, endpoint_url=info["endpoint"])


def workloads(gib: float, names: list[str]):
    rows = max(64, int(gib * (1 << 30)) // (COLS * 8))
    lo, hi = 250.0, 750.0
    sel_lo = 500.0
    sel_hi = sel_lo + 10.0  # 1% of the 0..1000 range
    specs = {
        "masked_sum": (Sum(), (Q.value > lo) & (Q.value < hi), lambda x: x[(x > lo) & (x < hi)].sum()),
        "histogram": (Histogram(BINS, RANGE), None, lambda x: np.histogram(x, BINS, RANGE)[0]),
        "selective": (Sum(), Q.value.between(sel_lo, sel_hi), lambda x: x[(x >= sel_lo) & (x <= sel_hi)].sum()),
    }
    return rows, {k: v for k, v in specs.items() if k in names}


def run_store(store: str, info: dict, args, out: list) -> None:
    import dask.array as da

    names = args.workloads.split(",")
    rows, specs = workloads(args.gib, names)
    engine_opts = {"workers": args.workers} if args.engine == "processes" else {}
    fname = f"bench-analysis-{uuid.uuid4().hex[:8]}.h5"
    f = open_store(store, info, fname, "w")
    chunk_rows = max(1, CHUNK_BYTES // (COLS * 8))
    t0 = time.perf_counter()
    if specs:
        ds = f.create_dataset("x", shape=(rows, COLS), dtype="f8", chunks=(chunk_rows, COLS))
        data = clustered(rows)
        ds[...] = data
        del data
    g2 = _g2_module() if "g2" in names else None
    if g2 is not None:
        t_frames, side = 256, max(64, int((args.gib * (1 << 30) / (256 * 4)) ** 0.5) // 64 * 64)
        stack = g2.synthetic_stack(t_frames, side, side)
        g2.write_stack(f, stack, (64, 64))
        mask = g2.default_mask(side, side)
        del stack
    f.close()
    print(f"[{store}] wrote {args.gib:g} GiB per dataset in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    f = open_store(store, info, fname, "r")
    try:
        warm = f["x"] if specs else f["frames"]
        t0 = time.perf_counter()
        execute(Count(), inputs={"x": warm}, engine=args.engine, lua=False, **engine_opts)  # start the pool
        print(f"[{store}] worker pool warmed in {time.perf_counter() - t0:.1f} s (not timed)", file=sys.stderr)
        for name, (reduction, query, numpy_fn) in specs.items():
            ds = f["x"]
            n_in = ds.size * ds.dtype.itemsize
            base_h5py, want = best(lambda ds=ds, fn=numpy_fn: fn(ds[...]), args.repeat)
            arr = da.from_array(ds, chunks=(chunk_rows, COLS))
            base_dask, _ = best(lambda arr=arr, fn=numpy_fn: np.asarray(fn(arr).compute()), args.repeat)
            modes = [("auto", "auto")] + ([("lua", True)] if store == "rados" else [])
            for label, lua in modes:
                t, r = best(lambda red=reduction, ds=ds, q=query, lua=lua: execute(
                    red, inputs={"x": ds}, query=q, engine=args.engine, lua=lua, **engine_opts), args.repeat)
                ok = np.allclose(r.value, want, rtol=1e-9)
                out.append((store, name, label, t, base_h5py, base_dask, r.stats, n_in, ok))
        if g2 is not None:
            gds = f["frames"]
            n_in = gds.size * gds.dtype.itemsize
            base_h5py, want = best(lambda: g2.g2_of(gds[...], DELAYS), args.repeat)
            arr = da.from_array(gds, chunks=gds.chunks)
            base_dask, _ = best(lambda: arr.map_blocks(lambda b: g2.g2_of(b, DELAYS), dtype=float,
                                                       chunks=(len(DELAYS),) + arr.chunks[1:]).compute(),
                                args.repeat)
            t, r = best(lambda: g2.run(gds, np.ones_like(mask), DELAYS, engine=args.engine, **engine_opts),
                        args.repeat)
            ok = np.allclose(r.value, want, rtol=1e-6, equal_nan=True)
            out.append((store, "g2", "auto", t, base_h5py, base_dask, r.stats, n_in, ok))
    finally:
        f.close()
        cleanup(store, info, fname)


def cleanup(store: str, info: dict, fname: str) -> None:
    if store == "memory":
        from h5pyvol import registry

        registry.load("memory").delete(fname)
    elif store == "rados":
        from h5pyvol import registry

        registry.load(h5pyvol.connector_string("rados", pool=info["pool"], conf=info["conf"],
                                               keyring=info["keyring"], user=info["user"],
                                               namespace=info["namespace"])).delete(fname)
    else:
        client = info["client"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=info["bucket"]):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=info["bucket"], Key=obj["Key"])


def report(rows: list, args) -> int:
    print(f"\nh5pyvol.analysis bench: {args.gib:g} GiB per dataset, engine {args.engine} "
          f"({args.workers} workers, pool started before timing), best of {args.repeat}")
    head = (f"{'store':6} {'workload':11} {'analysis s':>10} {'h5py s':>8} {'dask s':>8} {'ratio':>6} "
            f"{'returned/in':>12} {'chunks read':>11} {'direct':>7} {'to clients':>11} ok")
    failed = 0
    for title, paths in (("default path (lua='auto')", {"auto"}),
                         ("inside the OSDs (lua=True), reported apart", {"lua"})):
        chosen = [row for row in rows if row[2] in paths]
        if not chosen:
            continue
        print(f"\n{title}\n{head}\n{'-' * len(head)}")
        for store, name, _, t, b1, b2, stats, n_in, ok in chosen:
            read = 1.0 - stats["shards_skipped"] / max(1, stats["shards"])
            direct = f"{stats.get('shards_direct', 0)}/{stats['shards_read'] - stats['lua_shards']}"
            print(f"{store:6} {name:11} {t:10.3f} {b1:8.3f} {b2:8.3f} {min(b1, b2) / t:6.2f} "
                  f"{stats['bytes_returned'] / n_in:12.2e} {read:11.1%} {direct:>7} {stats['bytes_fetched']:11d} "
                  f"{'yes' if ok else 'NO'}")
            failed += not ok
    print("\nratio: the faster baseline's time over analysis shipping's (goal >= 1.0 on the default path); "
          "returned/in <= 1e-3 for reductions; chunks read <= 2% for selective; direct: shards read without "
          "HDF5 over shards mapped in Python; to clients: chunk bytes fetched (Lua: goal 0)")
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--gib", type=float, default=1.0, help="size of each dataset (default 1)")
    ap.add_argument("--stores", default="rados,s3",
                    help="comma-separated: rados, s3, memory (in this process, with zone maps: shows pruning)")
    ap.add_argument("--engine", default="processes", choices=["serial", "processes", "dask"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workloads", default="masked_sum,histogram,selective,g2")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tests" / "services"))
    import servers

    stores = args.stores.split(",")
    ceph = servers.start_ceph() if {"rados", "s3"} & set(stores) else {}
    rows: list = []
    for store in stores:
        if store == "memory":
            info = {}
        elif store == "rados":
            info = {**ceph, "namespace": f"bench-{uuid.uuid4().hex[:8]}"}
        elif store == "s3":
            import os

            for key, value in (("AWS_ACCESS_KEY_ID", ceph["access_key"]), ("AWS_SECRET_ACCESS_KEY",
                                                                            ceph["secret_key"])):
                os.environ[key] = value
            client = servers.s3_client(ceph)
            bucket = f"bench-analysis-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)
            info = {**ceph, "bucket": bucket, "client": client}
        else:
            raise SystemExit(f"unknown store {store!r} (rados, s3)")
        try:
            run_store(store, info, args, rows)
        finally:
            if store == "s3":
                info["client"].delete_bucket(Bucket=info["bucket"])
    return report(rows, args)


if __name__ == "__main__":
    sys.exit(main())
