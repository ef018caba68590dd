"""HDF5's own API test suite (h5_api_test) through the pass-through connector:
no test that passed when results-passthru.json was recorded may fail now.
The whole suite takes about ten seconds this way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_api_suite_through_passthru_has_no_regressions(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-P", str(HERE / "run_api_suite.py"), "--vol-only", "--connector", "passthru",
         "--expected", str(HERE / "results-passthru.json"), "--json", str(tmp_path / "now.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "h5pyvol passthru" in proc.stdout and "total" in proc.stdout
