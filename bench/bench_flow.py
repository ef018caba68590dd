"""Speed of `h5pyvol flow` against h5flow 0.2.4 on h5flow's own example, with
the engines' own cost separated from the example modules' own compute.

h5flow's example (``examples/example_config.yaml``: a generator of 1024-row
chunks, three stages writing data and references, a resource, a drop list) is
unpacked from ../shared/peers/h5flow-0.2.4.tar.gz into a scratch folder and
run, in this one run, by h5flow 0.2.4 (its own venv, scripts/h5flow-peer.sh)
and by h5pyvol flow, at each chunk count, serially and with 2 ranks, on
native files. The engines alternate, `--rounds` times per setting, and each
figure is the best round (this machine's speed swings under load).

Every run goes through bench/flow_probe.py, which times, inside the process,
the example's own code: the stages' ``run`` and the generator's ``next``,
less the data-manager calls they make (those are the engine's work). Printed
per setting:

- rows/s of each engine and their ratio (the issue's goal: 10x at 400 chunks);
- ``own``: seconds in the modules' own code (the same numpy work in both;
  ``np.unique(axis=0)`` per stage and chunk dominates it);
- ``engine``: wall seconds less ``own``, the framework's cost (process start,
  imports, discovery, requirements, references, writing, committing), and
  the ratio h5flow/ours of it;
- ``ceiling``: h5flow's wall over our ``own``, the most any engine could gain
  on this example, were its own cost zero.

Our time per chunk at the largest count over that at the smallest is printed
at the end (the goal: within 1.2x), measured over the chunk loop (from the
first generator ``next`` to the last) so that process start-up, the same at
every count, does not flatter it; ``ms/chunk`` is wall over chunks. h5flow's 2-rank run needs h5py built with
parallel HDF5 (driver 'mpio'); the peer venv's h5py is serial, so that column
says so instead of a figure. With 2 ranks ``own`` is summed over the ranks.

Usage: python bench/bench_flow.py [--chunks 100 400 2000] [--ranks 1 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().parent / "flow_probe.py"
sys.path.insert(0, str(REPO / "tests"))
from flow_support import example_folder  # noqa: E402


def peer() -> str:
    out = subprocess.run(["bash", str(REPO / "scripts" / "h5flow-peer.sh")], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def probed(python: str, engine: str, args: list[str], cwd: Path, env: dict, ranks: int) -> dict:
    """Run one engine through the probe; wall seconds and the probe's sums over ranks."""
    out = cwd / f"probe-{engine}.json"
    for old in cwd.glob(out.name + "*"):
        old.unlink()
    cmd = [python, str(PROBE), str(out), engine, *args]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    seconds: dict[str, float] = {}
    loop = 0.0
    for part in cwd.glob(out.name + "*"):
        got = json.loads(part.read_text())["seconds"]
        for key, value in got.items():
            seconds[key] = seconds.get(key, 0.0) + value
        if "loop_start" in got:  # the rank that runs the generator
            loop = got["loop_end"] - got["loop_start"]
    own = seconds.get("module", 0.0) - seconds.get("module_framework", 0.0)
    return {"wall": wall, "own": own, "engine": wall - own / ranks, "loop": loop, "seconds": seconds}


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, nargs="+", default=[100, 400, 2000])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2, help="runs of each engine per setting; the best is shown")
    args = ap.parse_args()
    py = peer()
    peer_mpi = subprocess.run([py, "-c", "import h5py, mpi4py; print(h5py.get_config().mpi)"], capture_output=True,
                              text=True).stdout.strip() == "True"
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; best of {args.rounds}")
    print(f"{'chunks':>6} {'ranks':>5} | {'h5flow rows/s':>13} {'ours rows/s':>11} {'ratio':>6} | "
          f"{'own s h5flow':>12} {'ours':>6} | {'engine s h5flow':>15} {'ours':>6} {'ratio':>6} | "
          f"{'ceiling':>7} | {'ours ms/chunk':>13} {'in loop':>7}")
    per_chunk: dict[int, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        folder = example_folder(Path(tmp))
        for n in args.chunks:
            for ranks in args.ranks:
                rows = n * 1024
                theirs_runs, ours_runs = [], []
                for _ in range(args.rounds):
                    if ranks == 1 or peer_mpi:
                        env = dict(os.environ, **({"H5FLOW_NOMPI": "1"} if ranks == 1 else {}))
                        theirs_runs.append(probed(py, "h5flow", ["-c", "examples/example_config.yaml", "-o",
                                                                 f"h5flow-{n}-{ranks}.h5", "-e", str(n)],
                                                  folder, env, ranks))
                    ours_runs.append(probed(sys.executable, "h5pyvol", [
                        "-c", "examples/example_config.yaml", "-o", f"ours-{n}-{ranks}.h5", "-e", str(n),
                        "--no-progress", "--quiet", "--no-reuse"], folder, dict(os.environ), ranks))
                    for f in folder.glob("*.h5"):
                        f.unlink()
                ours = best(ours_runs)
                per_chunk.setdefault(ranks, {})[n] = ours["loop"] / n
                line = f"{n:>6} {ranks:>5} | "
                if theirs_runs:
                    theirs = best(theirs_runs)
                    line += (f"{rows / theirs['wall']:13,.0f} {rows / ours['wall']:11,.0f} "
                             f"{theirs['wall'] / ours['wall']:6.1f} | {theirs['own']:12.2f} {ours['own']:6.2f} | "
                             f"{theirs['engine']:15.2f} {ours['engine']:6.2f} "
                             f"{theirs['engine'] / ours['engine']:6.1f} | {theirs['wall'] / ours['own']:7.1f} | ")
                else:
                    line += (f"{'n/a (no mpio)':>13} {rows / ours['wall']:11,.0f} {'-':>6} | {'-':>12} "
                             f"{ours['own']:6.2f} | {'-':>15} {ours['engine']:6.2f} {'-':>6} | {'-':>7} | ")
                print(line + f"{1e3 * ours['wall'] / n:13.2f} {1e3 * ours['loop'] / n:7.2f}", flush=True)
    print("own: seconds in the example's run/next less their data-manager calls; engine: wall less own "
          "(own per rank under MPI); ceiling: h5flow's wall / our own")
    for ranks, by_n in per_chunk.items():
        if len(by_n) > 1:
            lo, hi = min(by_n), max(by_n)
            print(f"ours, {ranks} rank(s): time per chunk in the loop at {hi} chunks / at {lo} chunks = "
                  f"{by_n[hi] / by_n[lo]:.2f} (goal <= 1.2)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
