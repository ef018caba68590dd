"""h5py's own test suite through the in-memory connector: no test that passed
when results-memory.json was recorded may fail now, and the run may not crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_h5py_suite_has_no_regressions(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-P", str(HERE / "run_h5py_suite.py"), "--expected", str(HERE / "results-memory.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=2400,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
