"""Rows per second of `h5pyvol flow` under MPI on S3 and RADOS: rank 0 as the
one writer (the default) against every rank writing the storage chunks
inside its chunks' rows (``--many-writers``), in the same run.

The workflow: a generator of ``--rows`` rows per chunk (two int64/float64
columns) and one stage that appends, per source row, a row of ``--row-bytes``
bytes of float64 and a reference to it; so most bytes are the stage's, which
the other ranks write themselves with many writers. Storage chunks are
``--chunk-bytes`` (the engine's ``--chunk-bytes``), so each flow chunk's rows
hold several whole storage chunks. The stage sleeps ``--stage-ms`` per chunk
(its own work), so that chunks spread over the ranks. The two modes alternate ``--rounds`` times
per setting; each figure is the best round. Printed per store and rank count:
rows/s of each mode end to end (the mpiexec command's wall time, start-up and
the last flush and close included: with one writer, rank 0 writes most rows
then), their ratio, and how many rows the other ranks wrote.

Stores: Ceph RGW, SeaweedFS, RADOS on loopback, started (or reused) through
tests/services/servers.py, honouring H5PYVOL_CEPH_DIR, H5PYVOL_SEAWEEDFS_DIR
and the port variables.

Usage: python -P bench/bench_flow_writers.py [--stores rados ceph-rgw seaweedfs] [--ranks 2 4]
       [--chunks 32] [--rows 1024] [--row-bytes 1024] [--stage-ms 20] [--chunk-bytes 256K]
       [--rounds 1]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "services")]

MODULE = '''
import time

import numpy as np
from h5flow.core import H5FlowGenerator, H5FlowStage


class Rows(H5FlowGenerator):
    def __init__(self, **params):
        super().__init__(**params)
        self.rows = params["rows"]
        self.chunks = params["chunks"]
        self.done = 0

    def __len__(self):
        return self.chunks

    def init(self):
        self.data_manager.create_dset(self.dset_name, dtype=[("i", "i8"), ("x", "f8")])

    def next(self):
        if self.done >= self.chunks:
            return H5FlowGenerator.EMPTY
        self.done += 1
        sl = self.data_manager.reserve_data(self.dset_name, self.rows)
        rows = np.zeros(self.rows, dtype=[("i", "i8"), ("x", "f8")])
        rows["i"] = np.arange(sl.start, sl.stop)
        rows["x"] = rows["i"] * 0.5
        self.data_manager.write_data(self.dset_name, sl, rows)
        return sl


class Wide(H5FlowStage):
    def __init__(self, **params):
        super().__init__(**params)
        self.width = params["width"]
        self.seconds = params["seconds"]

    def init(self, source_name):
        self.data_manager.create_dset(self.name, dtype="f8", shape=(self.width,))
        self.data_manager.create_ref(source_name, self.name)

    def run(self, source_name, source_slice, cache):
        time.sleep(self.seconds)  # the stage's own work (waiting, not taking a core of this 2-core machine)
        rows = cache[source_name]
        sl = self.data_manager.reserve_data(self.name, len(rows))
        self.data_manager.write_data(self.name, sl, rows["x"][:, None] + np.arange(self.width))
        self.data_manager.write_ref(source_name, self.name, np.stack([rows["i"], np.arange(sl.start, sl.stop)], 1))
'''

CONFIG = """
flow:
  source: rows
  stages: [wide]
rows:
  classname: Rows
  dset_name: rows
  params: {{rows: {rows}, chunks: {chunks}}}
wide:
  classname: Wide
  params: {{width: {width}, seconds: {seconds}}}
"""


def run_once(folder: Path, store, ranks: int, one_writer: bool, chunk_bytes: str, name: str,
             rows: int) -> tuple[float, int]:
    """One run into a new file; (rows/s end to end, rows other ranks wrote). End to end:
    the summary line's rate leaves out the last flush and close, where one writer writes most."""
    where = store.options["pool" if store.connector == "rados" else "bucket"]
    zflags = [a for k, v in store.options.items() if k not in ("pool", "bucket") for a in ("-z", f"{k}={v}")]
    cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), sys.executable, "-P", "-m",
           "h5pyvol.flow", "-c", "flow.yaml", "-o", f"{store.connector}://{where}/{name}", "--chunk-bytes",
           chunk_bytes, "--no-reuse", *zflags] + ([] if one_writer else ["--many-writers"])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=store.env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    wrote = re.search(r"wrote (\d+) rows", proc.stdout)
    return rows / seconds, int(wrote.group(1)) if wrote else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", nargs="+", default=["rados", "ceph-rgw", "seaweedfs"],
                    choices=["rados", "ceph-rgw", "seaweedfs"])
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--chunks", type=int, default=32, help="flow chunks per run (default 32)")
    ap.add_argument("--rows", type=int, default=1024, help="rows per flow chunk (default 1024)")
    ap.add_argument("--row-bytes", type=int, default=1024, help="bytes per row the stage writes (default 1024)")
    ap.add_argument("--stage-ms", type=float, default=20.0,
                    help="the stage's own time per chunk, slept (default 20): chunks then spread over the ranks")
    ap.add_argument("--chunk-bytes", default="256K", help="storage chunk size (default 256K)")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each mode per setting; the best is shown")
    args = ap.parse_args()

    import servers
    from stores import make_store

    print(f"{args.chunks} chunks x {args.rows} rows, {args.row_bytes} B per stage row, {args.stage_ms} ms of "
          f"stage work per chunk, storage chunks {args.chunk_bytes}; rows/s (best of {args.rounds})")
    print(f"{'store':10} {'ranks':>5} {'one writer':>12} {'many writers':>13} {'ratio':>6} {'rows by others':>15}")
    with tempfile.TemporaryDirectory(prefix="h5pyvol-bench-flow-writers-") as tmp:
        folder = Path(tmp)
        (folder / "bench_modules.py").write_text(MODULE)
        (folder / "flow.yaml").write_text(CONFIG.format(rows=args.rows, chunks=args.chunks,
                                                        width=max(1, args.row_bytes // 8),
                                                        seconds=args.stage_ms / 1000))
        for kind in args.stores:
            info = servers.start_ceph() if kind in ("rados", "ceph-rgw") else servers.start_seaweedfs()
            store = make_store(kind, info)
            try:
                for ranks in args.ranks:
                    one, many, wrote = 0.0, 0.0, 0
                    total = args.chunks * args.rows
                    for r in range(args.rounds):
                        rate, _ = run_once(folder, store, ranks, True, args.chunk_bytes, f"one{ranks}-{r}.h5", total)
                        one = max(one, rate)
                        rate, wrote = run_once(folder, store, ranks, False, args.chunk_bytes, f"many{ranks}-{r}.h5",
                                               total)
                        many = max(many, rate)
                    print(f"{kind:10} {ranks:5d} {one:12,.0f} {many:13,.0f} {many / one:6.2f} {wrote:15,d}")
            finally:
                store.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
