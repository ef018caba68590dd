"""Speed of `h5pyvol flow` against h5flow 0.2.4 on h5flow's own example.

h5flow's example (``examples/example_config.yaml``: a generator of 1024-row
chunks, three stages writing data and references, a resource, a drop list) is
unpacked from ../shared/peers/h5flow-0.2.4.tar.gz into a scratch folder and
run, in this one run, by h5flow 0.2.4 (its own venv, scripts/h5flow-peer.sh)
and by h5pyvol flow, at each chunk count, serially and with 2 ranks, on
native files. Prints rows per second, the ratio ours/h5flow, and our time per
chunk at the largest count over that at the smallest (the goal: within 1.2x).

h5flow's 2-rank run needs h5py built with parallel HDF5 (driver 'mpio'); the
peer venv's h5py is serial, so that column says so instead of a figure.
The example's own stages spend most of their time in numpy
(``np.unique(axis=0)`` per stage and chunk): the profile line shows how much
of our time is theirs.

Usage: python bench/bench_flow.py [--chunks 100 400 2000] [--ranks 1 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from flow_support import example_folder  # noqa: E402


def peer() -> str:
    out = subprocess.run(["bash", str(REPO / "scripts" / "h5flow-peer.sh")], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, nargs="+", default=[100, 400, 2000])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    py = peer()
    peer_mpi = subprocess.run([py, "-c", "import h5py, mpi4py; print(h5py.get_config().mpi)"], capture_output=True,
                              text=True).stdout.strip() == "True"
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    env = dict(os.environ)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'chunks':>7} {'ranks':>5} {'h5flow rows/s':>14} {'ours rows/s':>12} {'ratio':>7} {'ours ms/chunk':>14}")
    per_chunk: dict[int, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        folder = example_folder(Path(tmp))
        for n in args.chunks:
            for ranks in args.ranks:
                rows = n * 1024
                theirs = "n/a (h5py without MPI)"
                if ranks == 1 or peer_mpi:
                    cmd = [py, "-c", "import h5flow; h5flow.main()", "-c", "examples/example_config.yaml",
                           "-o", f"h5flow-{n}-{ranks}.h5", "-e", str(n)]
                    if ranks > 1:
                        cmd = [mpiexec, "-n", str(ranks), *cmd]
                    wall_t, _ = timed(cmd, folder, dict(env, **({"H5FLOW_NOMPI": "1"} if ranks == 1 else {})))
                    theirs = rows / wall_t
                cmd = [sys.executable, "-P", "-m", "h5pyvol.flow", "-c", "examples/example_config.yaml",
                       "-o", f"ours-{n}-{ranks}.h5", "-e", str(n), "--no-progress"]
                if ranks > 1:
                    cmd = [mpiexec, "-n", str(ranks), *cmd]
                wall_o, out = timed(cmd, folder, env)
                ours = rows / wall_o
                per_chunk.setdefault(ranks, {})[n] = wall_o / n
                ratio = f"{ours / theirs:7.1f}" if isinstance(theirs, float) else f"{'-':>7}"
                shown = f"{theirs:14,.0f}" if isinstance(theirs, float) else f"{theirs:>14}"
                print(f"{n:>7} {ranks:>5} {shown} {ours:12,.0f} {ratio} {1e3 * wall_o / n:14.2f}", flush=True)
                stage_ms = sum(float(line.split()[1]) for line in out.splitlines()
                               if line.startswith("example_stage"))
                print(f"{'':>13} ours: {1e3 * stage_ms / n:.1f} ms/chunk inside the example's own stages "
                      f"(CPU seconds over all ranks)", flush=True)
                for f in folder.glob("*.h5"):
                    f.unlink()
    for ranks, by_n in per_chunk.items():
        if len(by_n) > 1:
            lo, hi = min(by_n), max(by_n)
            print(f"ours, {ranks} rank(s): time per chunk at {hi} chunks / at {lo} chunks = {by_n[hi] / by_n[lo]:.2f} "
                  "(goal <= 1.2)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
