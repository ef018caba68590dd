"""Helpers for the flow tests: h5flow 0.2.4's example (unpacked from the peer
tarball at test time, never committed), the peer's own venv, running
``h5pyvol flow`` and comparing outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = Path(__file__).resolve().parent / "flow"  # small test modules, copied into each run folder


def h5flow_tarball() -> Path:
    for d in (REPO.parent / "shared" / "peers", REPO.parents[1] / "shared" / "peers", Path("/work/shared/peers")):
        if (d / "h5flow-0.2.4.tar.gz").is_file():
            return d / "h5flow-0.2.4.tar.gz"
    pytest.fail("h5flow-0.2.4.tar.gz not found in ../shared/peers")


def unpack_h5flow(dest: Path, members: tuple[str, ...] = ("examples/",)) -> Path:
    """Unpack h5flow 0.2.4's files starting with `members` into `dest` (prefix stripped)."""
    with tarfile.open(h5flow_tarball()) as tar:
        for m in tar.getmembers():
            rel = m.name.split("/", 1)[1] if "/" in m.name else ""
            if m.isfile() and rel.startswith(members):
                m.name = rel
                tar.extract(m, dest, filter="data")
    return dest


def example_folder(dest: Path, extra_modules: tuple[str, ...] = ()) -> Path:
    """h5flow's example (config and modules) in `dest`, plus test modules from tests/flow."""
    unpack_h5flow(dest)
    for name in extra_modules:
        (dest / name).write_text((MODULES / name).read_text())
    return dest


def peer_python() -> str:
    """The python of the h5flow 0.2.4 venv (installed once, cached)."""
    out = subprocess.run(["bash", str(REPO / "scripts" / "h5flow-peer.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"scripts/h5flow-peer.sh failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def flow(args: list[str], cwd: Path, mpi: int = 0, timeout: int = 300, check: bool = True,
         env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m h5pyvol.flow ARGS`` in `cwd` (under ``mpiexec -n MPI`` if asked)."""
    cmd = [sys.executable, "-P", "-m", "h5pyvol.flow", *args]
    if mpi:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(mpi), *cmd]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    if check and proc.returncode != 0:
        pytest.fail(f"h5pyvol flow {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
    """Every dataset of a flow output except the provenance records."""
    found: dict[str, h5py.Dataset] = {}
    f.visititems(lambda n, o: found.__setitem__(n, o) if isinstance(o, h5py.Dataset)
                 and not n.startswith("h5pyvol_flow") else None)
    return found


def assert_same_outputs(a: h5py.File, b: h5py.File) -> None:
    """Same datasets, dtypes and values (references as pairs, value for value)."""
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    for name in da:
        x, y = da[name][()], db[name][()]
        assert x.dtype == y.dtype, name
        assert x.shape == y.shape, name
        assert np.array_equal(x, y), name


def compare_with_h5flow(theirs: h5py.File, ours: h5py.File, dropped: str) -> None:
    """Our output holds h5flow's datasets and values, minus the dropped one:
    data equal, references equal as sets of pairs (and int64 here), ref_region row by row."""
    dt, do = datasets(theirs), datasets(ours)
    assert not any(dropped in n for n in do), sorted(do)
    assert sorted(dt) == sorted(do)
    for name, d in dt.items():
        x, y = d[()], do[name][()]
        assert x.shape == y.shape, name
        if name.endswith("/ref"):
            assert y.dtype == np.int64 and x.dtype == np.uint32
            assert set(map(tuple, x.astype(np.int64))) == set(map(tuple, y)), name
        elif name.endswith("/ref_region"):
            assert y.dtype.names == ("start", "stop") and y.dtype["start"] == np.int64
            # each row: the same [start, stop) into the same reference rows
            assert np.array_equal(x["start"].astype(np.int64), y["start"]), name
            assert np.array_equal(x["stop"].astype(np.int64), y["stop"]), name
            ref_t, ref_o = theirs[d.attrs["ref"]][()], ours[ours[name].attrs["ref"]][()]
            for row in np.linspace(0, len(x) - 1, 50).astype(int):
                st, sp = y["start"][row], y["stop"][row]
                assert np.array_equal(ref_t[st:sp].astype(np.int64), ref_o[st:sp]), (name, row)
        else:
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        if not name.endswith(("/ref", "/ref_region")):
            parent = name.rsplit("/", 1)[0]
            assert dict(theirs[parent].attrs) == dict(ours[parent].attrs), parent
