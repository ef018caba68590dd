"""Speed of the S3 connector against raw boto3 transfers of the same bytes, in one run.

Against Ceph RGW on loopback (started with tests/services/servers.py, or
reused if running), this measures:
- h5pyvol: writing a 2-D float64 dataset (chunks 1024x1024, 8 MiB objects)
  through h5py and the s3 connector, reading it back whole, reading one
  chunk, and a strided read ``[::64, :]`` (which needs every chunk);
- raw boto3: PUT and GET of the same bytes as 8 MiB objects with 8 threads,
  and one 8 MiB GET.
Prints MiB/s, milliseconds and h5pyvol/raw ratios (time ratios: 1.0 = as
fast as raw boto3; bigger is slower).

Usage: python -P bench/bench_s3.py [--gib 1.0] [--workers 8] [--server ceph|seaweedfs]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import h5pyvol

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "services"))
import servers  # noqa: E402

MIB = 1 << 20
COLS = 8192
CHUNK = (1024, 1024)


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0, help="dataset size in GiB (default 1)")
    ap.add_argument("--workers", type=int, default=8, help="parallel requests, both sides (default 8)")
    ap.add_argument("--server", choices=["ceph", "seaweedfs"], default="ceph")
    args = ap.parse_args()

    rows = max(CHUNK[0], int(round(args.gib * (1 << 30) / (COLS * 8) / CHUNK[0])) * CHUNK[0])
    nbytes = rows * COLS * 8
    info = servers.start_ceph() if args.server == "ceph" else servers.start_seaweedfs()
    os.environ.update(AWS_ACCESS_KEY_ID=info["access_key"], AWS_SECRET_ACCESS_KEY=info["secret_key"],
                      AWS_DEFAULT_REGION=info["region"])
    client = servers.s3_client(info, max_pool_connections=max(10, args.workers))
    bucket = f"h5pyvol-bench-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    opts = {"bucket": bucket, "endpoint_url": info["endpoint"], "max_workers": str(args.workers), "timeout": "60"}
    print(f"server: {args.server} at {info['endpoint']}; dataset ({rows}, {COLS}) float64 = {nbytes / MIB:.0f} MiB, "
          f"chunks {CHUNK} = {CHUNK[0] * CHUNK[1] * 8 / MIB:.0f} MiB, {args.workers} parallel requests")

    data = np.random.default_rng(1).random((rows, COLS))
    results: dict[str, float] = {}
    try:
        # -- h5pyvol through h5py
        def vol_write():
            with h5pyvol.File("bench.h5", "w", "s3", **opts) as f:
                assert h5pyvol.connector_name(f.id) == "h5pyvol"
                f.create_dataset("d", shape=data.shape, dtype="f8", chunks=CHUNK)[...] = data

        results["vol write"] = timed(vol_write)
        out = np.empty_like(data)
        with h5pyvol.File("bench.h5", "r", "s3", **opts) as f:
            d = f["d"]
            results["vol read"] = timed(lambda: d.read_direct(out), 2)
            assert np.array_equal(out, data)
            results["vol one chunk"] = timed(lambda: d[0:CHUNK[0], 0:CHUNK[1]], 5)
            strided = d[::64, :]
            results["vol strided"] = timed(lambda: d[::64, :], 2)
            assert np.array_equal(strided, data[::64, :])

        # -- raw boto3: the same bytes as 8 MiB objects, the same number of threads
        flat = memoryview(data.reshape(-1).view(np.uint8))
        parts = [(f"raw/{i:06d}", flat[i * 8 * MIB:(i + 1) * 8 * MIB]) for i in range(-(-nbytes // (8 * MIB)))]
        pool = ThreadPoolExecutor(args.workers)

        def raw_write():
            list(pool.map(lambda p: client.put_object(Bucket=bucket, Key=p[0], Body=bytes(p[1])), parts))

        def raw_read():
            def get(p):
                body = client.get_object(Bucket=bucket, Key=p[0])["Body"].read()
                np.frombuffer(body, np.uint8)  # the bytes in hand, as the connector has them
            list(pool.map(get, parts))

        results["raw write"] = timed(raw_write)
        results["raw read"] = timed(raw_read, 2)
        results["raw one object"] = timed(lambda: client.get_object(Bucket=bucket, Key=parts[0][0])["Body"].read(), 5)
        pool.shutdown()
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=o["Key"])
        client.delete_bucket(Bucket=bucket)

    mib = nbytes / MIB
    print(f"{'operation':<34}{'h5pyvol':>14}{'raw boto3':>14}{'ratio':>8}")
    for label, vol, raw, size in [
        ("write whole dataset", "vol write", "raw write", mib),
        ("read whole dataset", "vol read", "raw read", mib),
    ]:
        a, b = results[vol], results[raw]
        print(f"{label:<34}{size / a:>9.0f} MiB/s{size / b:>9.0f} MiB/s{a / b:>8.2f}")
    a, b = results["vol one chunk"], results["raw one object"]
    print(f"{'read one chunk (8 MiB)':<34}{a * 1e3:>11.1f} ms{b * 1e3:>11.1f} ms{a / b:>8.2f}")
    a = results["vol strided"]
    print(f"{'strided read [::64, :]':<34}{a * 1e3:>11.1f} ms{results['raw read'] * 1e3:>11.1f} ms"
          f"{a / results['raw read']:>8.2f}   (raw: all objects, as every chunk holds selected rows)")


if __name__ == "__main__":
    main()
