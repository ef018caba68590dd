"""A metadata-heavy h5py workload through h5pyvol's memory connector, against
native HDF5 (the core driver, in memory), measured side by side in one run.

The workload (issue 11):
- create: N times, create a group, create a 16-element int64 dataset with
  data in it, and write an attribute on that dataset;
- open: N times, open the dataset by path, read one element, read the attribute.

Each round runs both passes on a fresh native file, then on a fresh h5pyvol
file; rounds alternate so that a busy moment of the machine weighs on both
alike, and the best round of each is kept. Printed: microseconds per
iteration of each pass, and the ratio h5pyvol / native of the total, in
wall-clock time and in the process's CPU time (which other processes on a
shared machine disturb less). Then, from one extra untimed round, how many
calls reached the bridge's Python per iteration, and how many reads and
writes the plugin's C fast path served.

Usage: python bench/bench_metadata.py [--iterations 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import h5py
import numpy as np

import h5pyvol

_names = itertools.count()


def native_file() -> h5py.File:
    return h5py.File(f"bench-meta-{next(_names)}.h5", "w", driver="core", backing_store=False)


def memory_file() -> h5py.File:
    f = h5pyvol.File(f"bench-meta-{next(_names)}.h5", "w", connector="memory")
    if h5pyvol.connector_name(f.id) != "h5pyvol":
        raise RuntimeError("the h5pyvol file is not served by h5pyvol")
    return f


def create_pass(f: h5py.File, n: int) -> None:
    data = np.arange(16)
    for i in range(n):
        g = f.create_group(f"g{i}")
        d = g.create_dataset("d", data=data)
        d.attrs["a"] = i


def open_pass(f: h5py.File, n: int) -> None:
    for i in range(n):
        d = f[f"g{i}/d"]
        if d[3] != 3 or d.attrs["a"] != i:
            raise RuntimeError(f"iteration {i} read back wrong values")


def one_round(make: Callable[[], h5py.File], n: int) -> dict[str, tuple[float, float]]:
    """(wall seconds, CPU seconds) of each pass on a new file."""
    f = make()
    times = {}
    try:
        for name, work in (("create", create_pass), ("open", open_pass)):
            w, c = time.perf_counter(), time.process_time()
            work(f, n)
            times[name] = (time.perf_counter() - w, time.process_time() - c)
    finally:
        f.close()
    return times


def count_calls(n: int) -> None:
    """Print the calls into the bridge's Python during one round through
    h5pyvol, per iteration and callback, and the reads and writes the C fast
    path served. Run in a process of its own (`--count`): the plugin looks
    its functions up once, when it first imports the bridge, so the counting
    wrappers, put in place before that, stay for the process's life."""
    from h5pyvol import bridge
    from h5pyvol.bridge.plugin import plugin

    counts: Counter = Counter()

    def counting(name, fn):
        def wrapper(*args):
            counts[name] += 1
            return fn(*args)
        return wrapper

    for name in bridge.CALLBACKS:
        setattr(bridge, name, counting(name, getattr(bridge, name)))
    one_round(memory_file, n)
    fast = plugin().io_stats()[0]
    total = sum(counts.values())
    print(f"Calls into the bridge's Python per iteration (both passes): {total / n:.1f}; "
          f"reads and writes served by the C fast path: {fast / n:.1f}")
    for name, k in counts.most_common():
        if k >= n / 10:
            print(f"  {name:26} {k / n:5.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000, help="iterations of each pass (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds; the best is kept (default 7)")
    parser.add_argument("--count", action="store_true", help="only count the calls into the bridge (one round)")
    args = parser.parse_args()
    n = args.iterations
    if args.count:
        count_calls(n)
        return

    one_round(native_file, n)  # warm-up of both
    one_round(memory_file, n)
    best: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for backend, make in (("native", native_file), ("h5pyvol", memory_file)):
            for name, (w, c) in one_round(make, n).items():
                slot = best.setdefault(backend, {}).setdefault(name, [float("inf"), float("inf")])
                slot[0], slot[1] = min(slot[0], w), min(slot[1], c)

    print(f"Metadata workload, {n} iterations per pass, best of {args.rounds} alternating rounds")
    print("(microseconds per iteration; native: HDF5's core driver; h5pyvol: the memory connector)\n")
    print(f"{'':10} {'create':>10} {'open':>10} {'total':>10} {'CPU total':>10}")
    for backend, passes in best.items():
        wall = [passes[p][0] / n * 1e6 for p in ("create", "open")]
        cpu = sum(passes[p][1] for p in passes) / n * 1e6
        print(f"{backend:10} {wall[0]:10.1f} {wall[1]:10.1f} {sum(wall):10.1f} {cpu:10.1f}")
    ratio = {i: sum(best["h5pyvol"][p][i] for p in ("create", "open")) /
             sum(best["native"][p][i] for p in ("create", "open")) for i in (0, 1)}
    print(f"\nh5pyvol / native: {ratio[0]:.2f}x wall clock, {ratio[1]:.2f}x CPU time\n")
    sys.stdout.flush()
    subprocess.run([sys.executable, *sys.argv[:1], "--count", "--iterations", str(n)], check=True)


if __name__ == "__main__":
    main()
