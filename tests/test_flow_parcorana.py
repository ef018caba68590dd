"""examples/parcorana: ParCorAna's G2 as a flow, checked against a brute-force
numpy G2 over the same events, serially and with 2 ranks."""

from __future__ import annotations

import shutil
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


@pytest.mark.parametrize("ranks", [0, 2])
def test_g2_flow_equals_brute_force(tmp_path, ranks):
    shutil.copytree(REPO / "examples" / "parcorana", tmp_path, dirs_exist_ok=True)
    flow(["-c", "g2.yaml", "-o", "g2.h5", "--quiet"], tmp_path, mpi=ranks)
    with h5py.File(tmp_path / "g2.h5") as f:
        frames, mask = f["events/data"][()], f["mask/data"][0]
        delays = list(f["g2"].attrs["delays"])
        assert len(frames) == 240 and mask.sum() > 0
        want = brute_force(frames, mask, delays, 20)
        assert np.array_equal(f["g2"].attrs["pixels"], np.flatnonzero(mask.ravel()))
        for name in ("G2", "IF", "IP"):
            got = f[f"g2/{name}/data"][()]
            assert got.shape == (12, len(delays), int(mask.sum()))
            np.testing.assert_allclose(got, want[name], rtol=1e-12, err_msg=name)
        assert abs(np.nanmean(f["g2/G2/data"][-1]) - 1) < 0.2  # Poisson speckle: G2 near 1
    if ranks:
        flow(["-c", "g2.yaml", "-o", "serial.h5", "--quiet"], tmp_path)
        with h5py.File(tmp_path / "serial.h5") as a, h5py.File(tmp_path / "g2.h5") as b:
            assert_same_outputs(a, b)


def test_example_folder_is_self_contained():
    names = sorted(p.name for p in (REPO / "examples" / "parcorana").iterdir() if p.suffix in (".py", ".yaml", ".md"))
    assert names == ["README.md", "g2.yaml", "parcorana.py"]
    assert Path(REPO / "examples" / "parcorana" / "g2.yaml").read_text().count("G2Worker") == 2
