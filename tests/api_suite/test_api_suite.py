"""HDF5's own API test suite (h5_api_test) through the in-memory connector:
no test that passed when results-memory.json was recorded may fail now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_api_suite_has_no_regressions(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-P", str(HERE / "run_api_suite.py"), "--vol-only",
         "--expected", str(HERE / "results-memory.json"), "--json", str(tmp_path / "now.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "total" in proc.stdout
