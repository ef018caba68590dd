"""Run h5py's own test suite natively and through an h5pyvol connector.

Each run is a child `python -m pytest --pyargs h5py` with a JUnit XML report;
the outcomes are compared test by test. With --expected, exits 1 when a test
that passed in the recorded run fails now (a regression), and prints them.

Usage: python tests/h5py_suite/run_h5py_suite.py [--connector memory]
           [--json FILE] [--expected FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import h5pyvol


def run_suite(env: dict[str, str], timeout: int) -> dict[str, str]:
    """test id -> 'passed' | 'failed' | 'skipped' (a crash fails the whole run)."""
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.xml"
        proc = subprocess.run(
            [sys.executable, "-P", "-m", "pytest", "--pyargs", "h5py", "-q", "-p", "no:cacheprovider",
             f"--junitxml={report}"],
            # TMPDIR: the temporary files h5py's tests leave go with `work`
            cwd=work, env={**env, "TMPDIR": work}, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode < 0 or not report.exists():
            tail = (proc.stdout + proc.stderr)[-3000:]
            raise SystemExit(f"h5py's suite did not finish (exit {proc.returncode}):\n{tail}")
        outcomes = {}
        for case in ET.parse(report).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            kinds = {child.tag for child in case}
            outcomes[name] = ("failed" if kinds & {"failure", "error"} else
                              "skipped" if "skipped" in kinds else "passed")
        return outcomes


def counts(outcomes: dict[str, str]) -> dict[str, int]:
    return {k: sum(1 for v in outcomes.values() if v == k) for k in ("passed", "failed", "skipped")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connector", default="memory", help="connector string (default: memory)")
    parser.add_argument("--json", type=Path, help="write counts and per-test outcomes here")
    parser.add_argument("--expected", type=Path, help="a --json file; exit 1 if a test that passed there fails now")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per run (default 1200)")
    args = parser.parse_args()

    native_env = {k: v for k, v in os.environ.items() if k != "HDF5_VOL_CONNECTOR"}
    vol_env = dict(native_env, HDF5_PLUGIN_PATH=str(h5pyvol.PLUGIN_DIR), HDF5_VOL_CONNECTOR=f"h5pyvol {args.connector}")
    native, vol = run_suite(native_env, args.timeout), run_suite(vol_env, args.timeout)
    nc, vc = counts(native), counts(vol)
    print(f"{'':22}{'passed':>8}{'failed':>8}{'skipped':>9}")
    print(f"{'native':22}{nc['passed']:8}{nc['failed']:8}{nc['skipped']:9}")
    print(f"{'h5pyvol ' + args.connector:22}{vc['passed']:8}{vc['failed']:8}{vc['skipped']:9}")
    lost = sorted(t for t, o in native.items() if o == "passed" and vol.get(t) != "passed")
    print(f"{len(lost)} tests pass natively but not through the connector")
    if args.json:
        args.json.write_text(json.dumps({"native": native, "h5pyvol": vol}, indent=1, sort_keys=True))
    if args.expected:
        before = json.loads(args.expected.read_text())["h5pyvol"]
        regressed = sorted(t for t, o in before.items() if o == "passed" and vol.get(t) != "passed")
        for test in regressed:
            print(f"REGRESSION: {test} passed before, now {vol.get(test, 'missing')}")
        return 1 if regressed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
