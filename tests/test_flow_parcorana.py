"""examples/parcorana: ParCorAna's G2 as a flow, checked against a brute-force
numpy G2 over the same events, serially and with 2 ranks; a reader sees the
viewer's updates while the run goes; changing one worker runs only it and the
viewer again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from flow_support import REPO, assert_same_outputs, flow


def brute_force(frames: np.ndarray, mask: np.ndarray, delays: list[int], update: int) -> dict[str, np.ndarray]:
    """G2, IF, IP after every `update` events: all pairs (t-d, t) with t below the update's end."""
    x = frames.reshape(len(frames), -1)[:, np.flatnonzero(mask.ravel())].astype("f8")
    out = {k: [] for k in ("G2", "IF", "IP")}
    for end in range(update, len(x) + 1, update):
        g2, i_f, i_p = [], [], []
        for d in delays:
            past, now = x[: end - d], x[d:end]
            g2.append((past * now).mean(axis=0) / (past.mean(axis=0) * now.mean(axis=0)))
            i_f.append(past.mean(axis=0))
            i_p.append(now.mean(axis=0))
        out["G2"].append(g2)
        out["IF"].append(i_f)
        out["IP"].append(i_p)
    return {k: np.array(v) for k, v in out.items()}


def check_g2(f: h5py.File, updates: int = 12) -> None:
    """G2, IF and IP of the first `updates` updates equal the brute-force ones."""
    frames, mask = f["events/data"][()], f["mask/data"][0]
    delays = list(f["g2"].attrs["delays"])
    assert len(frames) >= 20 * updates and mask.sum() > 0
    want = brute_force(frames, mask, delays, 20)
    assert np.array_equal(f["g2"].attrs["pixels"], np.flatnonzero(mask.ravel()))
    for name in ("G2", "IF", "IP"):
        got = f[f"g2/{name}/data"][:updates]
        assert got.shape == (updates, len(delays), int(mask.sum()))
        np.testing.assert_allclose(got, want[name][:updates], rtol=1e-12, err_msg=name)


def example(folder: Path) -> Path:
    shutil.copytree(REPO / "examples" / "parcorana", folder, dirs_exist_ok=True)
    return folder


@pytest.mark.parametrize("ranks", [0, 2])
def test_g2_flow_equals_brute_force(tmp_path, ranks):
    example(tmp_path)
    flow(["-c", "g2.yaml", "-o", "g2.h5", "--quiet"], tmp_path, mpi=ranks)
    with h5py.File(tmp_path / "g2.h5") as f:
        check_g2(f)
        assert len(f["events/data"]) == 240
        assert abs(np.nanmean(f["g2/G2/data"][-1]) - 1) < 0.2  # Poisson speckle: G2 near 1
    if ranks:
        flow(["-c", "g2.yaml", "-o", "serial.h5", "--quiet"], tmp_path)
        with h5py.File(tmp_path / "serial.h5") as a, h5py.File(tmp_path / "g2.h5") as b:
            assert_same_outputs(a, b)


SLOW = """import time

from parcorana import DetectorEvents


class SlowEvents(DetectorEvents):
    def next(self):
        time.sleep(0.25)
        return super().next()
"""


@pytest.mark.parametrize("ranks", [0, 2])
def test_viewer_publishes_during_the_run(tmp_path, ranks):
    """A reader opening the output mid-run sees the updates published so far
    (right ones), and the run record counts the chunks done."""
    example(tmp_path)
    (tmp_path / "slow_events.py").write_text(SLOW)
    (tmp_path / "slow.yaml").write_text((tmp_path / "g2.yaml").read_text().replace("DetectorEvents", "SlowEvents"))
    cmd = [sys.executable, "-P", "-m", "h5pyvol.flow", "-c", "slow.yaml", "-o", "g2.h5", "--quiet"]
    if ranks:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), *cmd]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = None
    deadline = time.monotonic() + 120
    try:
        while seen is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            try:  # HDF5's lock is the writer's; a reader that opens during a flush tries again
                with h5py.File(tmp_path / "g2.h5", "r", locking=False) as f:
                    published = len(f["g2/G2/data"])
                    if published >= 2:
                        check_g2(f, published)
                        seen = (published, int(f["h5pyvol_flow/run000"].attrs["chunks"]))
            except (OSError, KeyError):
                continue
        running = proc.poll() is None
    finally:
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert seen is not None, "no update was published before the run ended"
    assert running, "the updates were seen only after the run"
    assert 2 <= seen[0] < 12 and seen[1] >= seen[0]
    with h5py.File(tmp_path / "g2.h5") as f:
        check_g2(f)
        assert len(f["events/data"]) == 240 and f["h5pyvol_flow/run000"].attrs["chunks"] == 12


def test_changed_worker_reruns_it_and_the_viewer_only(tmp_path):
    """The viewer reads the workers' rows without declaring them (get_dset):
    what it read is recorded, so a change to worker1 reruns worker1 and the
    viewer; the events and worker0 are reused, and the output equals a fresh run."""
    example(tmp_path)
    flow(["-c", "g2.yaml", "-o", "g2.h5", "--quiet"], tmp_path, mpi=2)
    text = (tmp_path / "g2.yaml").read_text()
    changed = text.replace("times: 16, part: 1", "times: 14, part: 1")
    assert changed != text
    (tmp_path / "g2.yaml").write_text(changed)
    proc = flow(["-c", "g2.yaml", "-o", "g2.h5", "--quiet"], tmp_path, mpi=2)
    assert "reusing events, worker0 from run000" in proc.stdout, proc.stdout
    fresh = example(tmp_path / "fresh")
    (fresh / "g2.yaml").write_text(changed)
    flow(["-c", "g2.yaml", "-o", "g2.h5", "--quiet"], fresh)
    with h5py.File(fresh / "g2.h5") as a, h5py.File(tmp_path / "g2.h5") as b:
        assert_same_outputs(a, b)
        check_g2(b)
        plan = json.loads(b["h5pyvol_flow/run001"].attrs["plan"])
        assert plan["run"] == ["worker1", "viewer"] and plan["reused"] == ["events", "worker0"]
        assert "g2/worker1/data" in json.loads(b["h5pyvol_flow/run001"].attrs["access"])["viewer"]["reads"]


def test_example_folder_is_self_contained():
    names = sorted(p.name for p in (REPO / "examples" / "parcorana").iterdir() if p.suffix in (".py", ".yaml", ".md"))
    assert names == ["README.md", "g2.yaml", "parcorana.py"]
    assert Path(REPO / "examples" / "parcorana" / "g2.yaml").read_text().count("G2Worker") == 2
