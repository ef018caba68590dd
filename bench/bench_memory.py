"""Speed of the bridge, through the in-memory connector, against native HDF5.

Prints, all measured in this run:
- per-call time of metadata and small data calls through h5py, for native
  HDF5 (core driver, in memory) and for h5pyvol's memory connector;
- what the bridge itself adds to a 1-element H5Dread/H5Dwrite: the time
  through h5pyvol, less the connector's own work (its read/write method
  called directly with the same selection) and less the cost of issuing the
  call (the same h5py call on a native dataset with an empty selection,
  which HDF5 returns from before touching data);
- what the bridge adds to a metadata callback (H5Aexists, H5Lexists): the
  time through h5pyvol, less the connector's own answer (its method called
  directly) and less the cost of issuing the call through a VOL connector
  (the same h5py call on a file of bench/null_vol.c, a C connector that
  answers at once; compiled in this run with `h5pyvol config`);
- bulk write and read bandwidth of a large float64 dataset for both, and for
  a plain numpy copy of the same bytes (memcpy), as ratios.

Usage: python bench/bench_memory.py [--gib 1.0] [--calls 20000]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

import h5pyvol
from h5pyvol import _hdf5
from h5pyvol.selection import Selection

HERE = Path(__file__).resolve().parent


def per_call(fn, n: int, repeat: int = 5) -> float:
    """Best of `repeat` runs, in microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def per_call_interleaved(fns: dict, n: int, rounds: int = 25) -> dict[str, float]:
    """Best per-call microseconds of each function, timed in alternation so
    that a busy moment of the machine weighs on all of them alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], per_call(fn, max(1, n // rounds), repeat=1))
    return best


def best_time(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def open_pair(tag: str):
    native = h5py.File(f"bench-{tag}.h5", "w", driver="core", backing_store=False)
    vol = h5pyvol.File(f"bench-{tag}.h5", "w", connector="memory")
    return {"native": native, "h5pyvol": vol}


def metadata(calls: int) -> None:
    files = open_pair("meta")
    rows = []
    for name, f in files.items():
        d = f.create_dataset("d", data=np.arange(10.0))
        d.attrs["a"] = 1
        one = np.empty(1)
        sel = np.s_[3:4]
        mspace = h5py.h5s.create_simple((1,))
        fspace = d.id.get_space()
        fspace.select_hyperslab((3,), (1,))
        ops = {
            "attribute exists (H5Aexists)": lambda d=d: h5py.h5a.exists(d.id, b"a"),
            "dataset shape (H5Dget_space)": lambda d=d: d.id.get_space(),
            "link exists (H5Lexists)": lambda f=f: f.id.links.exists(b"d"),
            "1-element read, h5py low level": lambda d=d, m=mspace, s=fspace, o=one: d.id.read(m, s, o),
            "1-element write, h5py low level": lambda d=d, m=mspace, s=fspace, o=one: d.id.write(m, s, o),
            "1-element read, Dataset.read_direct": lambda d=d, one=one, sel=sel: d.read_direct(one, sel, np.s_[0:1]),
        }
        rows.append((name, {k: per_call(v, calls) for k, v in ops.items()}))
    bridge = data_call_breakdown(files["h5pyvol"], files["native"], calls)
    print(f"\nPer call, microseconds (best of 5 x {calls} calls):")
    print(f"{'operation':38} {'native':>9} {'h5pyvol':>9} {'added':>8} {'ratio':>7}")
    for op in rows[0][1]:
        nat, vol = rows[0][1][op], rows[1][1][op]
        print(f"{op:38} {nat:9.2f} {vol:9.2f} {vol - nat:8.2f} {vol / nat:7.2f}x")
    print("\nWhat the bridge adds to a 1-element call, microseconds:")
    print(f"{'call':8} {'h5pyvol':>9} {'connector':>10} {'issuing':>8} {'bridge':>8}")
    for op, (vol, own, floor) in bridge.items():
        print(f"{op:8} {vol:9.2f} {own:10.2f} {floor:8.2f} {vol - own - floor:8.2f}")
    callbacks = metadata_call_breakdown(files["h5pyvol"], calls)
    if callbacks:
        print("\nWhat the bridge adds to a metadata callback, microseconds:")
        print(f"{'call':22} {'h5pyvol':>9} {'connector':>10} {'issuing':>8} {'bridge':>8}")
        for op, (vol, own, floor) in callbacks.items():
            print(f"{op:22} {vol:9.2f} {own:10.2f} {floor:8.2f} {vol - own - floor:8.2f}")
    for f in files.values():
        f.close()


def null_connector_file(workdir: str) -> h5py.h5f.FileID | None:
    """A file of bench/null_vol.c's connector, compiled here against the same
    HDF5; None (with the reason printed) if it cannot be built."""
    lib = os.path.join(workdir, "libnull_vol.so")
    flags = subprocess.run([os.path.join(os.path.dirname(sys.executable), "h5pyvol"), "config", "--cflags",
                            "--libs"], capture_output=True, text=True)
    cc = os.environ.get("CC", "cc")
    build = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", lib, str(HERE / "null_vol.c"),
                            *flags.stdout.split()], capture_output=True, text=True)
    if flags.returncode or build.returncode:
        print(f"\n(no metadata floor: cannot build null_vol.c: {(flags.stderr + build.stderr).strip()[:300]})")
        return None
    null = ctypes.CDLL(lib)
    null.null_vol_register.restype = ctypes.c_int64
    conn = null.null_vol_register()
    if conn < 0:
        print("\n(no metadata floor: HDF5 refused to register null_vol.c)")
        return None
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    if _hdf5.lib().H5Pset_vol(fapl.id, ctypes.c_int64(conn), None) < 0:
        print("\n(no metadata floor: H5Pset_vol failed)")
        return None
    fid = h5py.h5f.create(os.path.join(workdir, "null.h5").encode(), h5py.h5f.ACC_TRUNC, fapl=fapl)
    if _hdf5.connector_name(fid) != "h5pyvol_bench_null":
        raise RuntimeError("the floor file is not served by null_vol.c")
    return fid


def metadata_call_breakdown(vol: h5py.File, calls: int) -> dict[str, tuple[float, float, float]]:
    """(through h5pyvol, connector's own work, cost of issuing) per metadata call."""
    d = vol.require_dataset("d", shape=(10,), dtype="f8")
    node, root = h5pyvol.node_of(d), h5pyvol.node_of(vol).root
    with tempfile.TemporaryDirectory() as workdir:
        fid = null_connector_file(workdir)
        if fid is None:
            return {}
        nd, ng = h5py.h5d.open(fid, b"d"), h5py.h5g.open(fid, b"/")
        exists, root_id = h5py.h5a.exists, vol.id
        t = per_call_interleaved({
            "attr": lambda: exists(d.id, b"a"),
            "attr own": lambda: node.has_attribute("a"),
            "attr issuing": lambda: exists(nd, b"a"),
            "link": lambda: root_id.links.exists(b"d"),
            "link own": lambda: root.has_link("d"),
            "link issuing": lambda: ng.links.exists(b"d"),
        }, 4 * calls)
        nd.close(), ng.close(), fid.close()
    names = {"attr": "exists (H5Aexists)", "link": "link exists (H5Lexists)"}
    return {names[op]: (t[op], t[f"{op} own"], t[f"{op} issuing"]) for op in names}


def data_call_breakdown(vol: h5py.File, native: h5py.File, calls: int) -> dict[str, tuple[float, float, float]]:
    """(through h5pyvol, connector's own work, cost of issuing) per 1-element call."""
    d = vol.create_dataset("breakdown", data=np.arange(10.0))
    n = native.create_dataset("breakdown", data=np.arange(10.0))
    one = np.empty(1)
    mspace = h5py.h5s.create_simple((1,))
    fspace = d.id.get_space()
    fspace.select_hyperslab((3,), (1,))
    node = h5pyvol.node_of(d)
    sel = Selection((10,), "hyperslab", 1, regular=((3,), (1,), (1,), (1,)))
    sel.index  # noqa: B018 -- computed once, as the bridge hands it over
    empty_m, empty_f = h5py.h5s.create_simple((1,)), n.id.get_space()
    empty_m.select_none()
    empty_f.select_none()
    t = per_call_interleaved({
        "read": lambda: d.id.read(mspace, fspace, one),
        "read own": lambda: node.read(sel, one),
        "read issuing": lambda: n.id.read(empty_m, empty_f, one),
        "write": lambda: d.id.write(mspace, fspace, one),
        "write own": lambda: node.write(sel, one),
        "write issuing": lambda: n.id.write(empty_m, empty_f, one),
    }, 4 * calls)
    return {op: (t[op], t[f"{op} own"], t[f"{op} issuing"]) for op in ("read", "write")}


def bulk(gib: float) -> None:
    n = int(gib * 2**30 / 8)
    src = np.random.default_rng(0).random(n)
    out = np.empty_like(src)
    copy_s = best_time(lambda: np.copyto(out, src))
    results = {}
    for name, f in open_pair("bulk").items():
        d = f.create_dataset("x", shape=src.shape, dtype="f8")
        d[...] = src  # first touch allocates; time the steady state below
        w = best_time(lambda d=d: d.write_direct(src))
        r = best_time(lambda d=d: d.read_direct(out))
        assert np.array_equal(out, src), f"{name}: data read back differs"
        results[name] = (w, r)
        f.close()
    size = src.nbytes / 2**30
    print(f"\nBulk float64, {size:.2f} GiB, GiB/s (best of 3) and ratio to a numpy copy (memcpy):")
    print(f"{'':10} {'write':>8} {'x memcpy':>9} {'read':>8} {'x memcpy':>9}")
    print(f"{'memcpy':10} {size / copy_s:8.2f} {1.0:9.2f} {size / copy_s:8.2f} {1.0:9.2f}")
    for name, (w, r) in results.items():
        print(f"{name:10} {size / w:8.2f} {copy_s / w:9.2f} {size / r:8.2f} {copy_s / r:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="bulk dataset size in GiB (default 1)")
    parser.add_argument("--calls", type=int, default=20000, help="calls per metadata timing (default 20000)")
    args = parser.parse_args()
    metadata(args.calls)
    bulk(args.gib)


if __name__ == "__main__":
    main()
