#!/usr/bin/env python3
"""Run HDF5's API test suite (h5_api_test) natively and through h5pyvol.

Each test group runs in its own subprocess and temporary directory, with a
timeout. The per-test result lines are parsed into passed/failed/skipped
counts, shown as a table, and optionally saved as JSON or compared with a
saved JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

GROUPS = ["file", "group", "dataset", "datatype", "attribute", "link", "object", "misc"]
NATIVE = "native"
RESULTS = {"PASSED": "passed", "*FAILED*": "failed", "-SKIP-": "skipped"}
# "Testing <name>" (top level) or "  Testing <name>" (a part of a multi-part test),
# padded with spaces, then maybe a result on the same line.
TEST_LINE = re.compile(r"^(  )?Testing (.*)$")
# " PASSED" and " -SKIP-" bring their own space; "*FAILED*" does not (long names touch it).
RESULT_AT_END = re.compile(r"(?:(?:^|\s)(PASSED|-SKIP-)|(\*FAILED\*))\s*$")
SUMMARY = re.compile(r"^(\d+)/(\d+) \([\d.]+%\) API tests (passed|did not pass|were skipped)")

EPILOG = """examples:
  run_api_suite.py                          # all groups, natively and with h5pyvol's memory connector
  run_api_suite.py --vol-only --groups link,object --log-dir /tmp/logs
  run_api_suite.py --json results-memory.json
  run_api_suite.py --expected tests/api_suite/results-memory.json   # exit 1 on a regression

Counts come from the suite's per-test lines (PASSED, *FAILED*, -SKIP-). The
suite's own summary counts a failed part of a multi-part test twice, so it is
only recorded in the JSON ("suite_summary"), not used.
"""


@dataclass
class GroupResult:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    status: str = "ok"  # ok, failures, crashed (SIGxxx), timeout, error
    failing: list[str] = field(default_factory=list)
    unfinished: str | None = None  # the test that was running when the process died
    suite_summary: dict[str, int] = field(default_factory=dict)
    message: str = ""


def parse_output(text: str) -> GroupResult:
    """Counts and failing test names from h5_api_test's output (stdout and stderr merged)."""
    res = GroupResult()
    header = ""  # the current top-level test (a multi-part test's title)
    pending: str | None = None  # the last test started, before its result
    last: str | None = None
    for line in text.splitlines():
        m = TEST_LINE.match(line)
        if m:
            name = RESULT_AT_END.sub("", m.group(2))
            # Drop the padding, and error text that stderr appended to the line.
            name = re.split(r"\s{2,}|HDF5-DIAG|h5pyvol(?:-DIAG)?:", name.strip())[0].strip()
            if m.group(1):
                name = f"{header}: {name}"
            else:
                header = name
            pending = last = name
        found = RESULT_AT_END.search(line)
        if found and (m or pending or line.strip() in RESULTS):  # progress text may precede a result
            kind = RESULTS[found.group(1) or found.group(2)]
            setattr(res, kind, getattr(res, kind) + 1)
            who = pending or last or "?"
            if kind == "failed" and who not in res.failing:
                res.failing.append(who)
            pending = None
        s = SUMMARY.match(line)
        if s:
            key = {"passed": "passed", "did not pass": "failed", "were skipped": "skipped"}[s.group(3)]
            res.suite_summary[key] = int(s.group(1))
            res.suite_summary["run"] = int(s.group(2))
    res.unfinished = pending
    return res


def h5pyvol_cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-P", "-m", "h5pyvol", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"h5pyvol {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def vol_environment(connector: str) -> dict[str, str]:
    """HDF5_PLUGIN_PATH and HDF5_VOL_CONNECTOR as `h5pyvol env` prints them."""
    env = {}
    for line in h5pyvol_cli("env", *connector.split(";")).splitlines():
        key, _, value = shlex.split(line)[1].partition("=")  # export KEY=VALUE
        env[key] = value
    return env


# Run in a child process with the VOL environment: creates a file through the
# default file access properties and prints the name of the connector serving it.
CHECK_CODE = r"""
import ctypes, sys
h = ctypes.CDLL(sys.argv[1])
h.H5open()
h.H5Fcreate.restype = ctypes.c_int64
h.H5Fcreate.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_int64, ctypes.c_int64]
h.H5VLget_connector_name.argtypes = [ctypes.c_int64, ctypes.c_char_p, ctypes.c_size_t]
h.H5Fclose.argtypes = [ctypes.c_int64]
f = h.H5Fcreate(b"check.h5", 2, 0, 0)  # H5F_ACC_TRUNC, default property lists
if f < 0:
    sys.exit("H5Fcreate failed")
buf = ctypes.create_string_buffer(64)
h.H5VLget_connector_name(f, buf, 64)
print(buf.value.decode())
h.H5Fclose(f)
"""


def check_connector(libhdf5: Path, env: dict[str, str]) -> str | None:
    """None if HDF5 programs really use h5pyvol in `env`, else what went wrong."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run([sys.executable, "-P", "-c", CHECK_CODE, str(libhdf5)], env=env, cwd=tmp,
                                  capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "the connector check timed out"
    name = proc.stdout.strip()
    if proc.returncode == 0 and name == "h5pyvol":
        return None
    got = f"a file was served by {name!r}" if name else f"the check ended with {describe_rc(proc.returncode)}"
    return f"HDF5 does not use h5pyvol: {got}\n{proc.stderr.strip()}"


def describe_rc(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"


def run_group(exe: Path, group: str, env: dict[str, str], timeout: float, log: Path | None) -> GroupResult:
    with tempfile.TemporaryDirectory(prefix=f"api-{group}-") as tmp:
        proc = subprocess.Popen([str(exe), group], cwd=tmp, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    text = out.decode(errors="replace")
    if log:
        log.write_text(text)
    res = parse_output(text)
    rc = proc.returncode
    if timed_out:
        res.status = f"timeout ({timeout:g} s)"
    elif rc < 0:
        res.status = f"crashed ({describe_rc(rc)})"
    elif not res.suite_summary:
        res.status = "error"
    elif res.failed or rc != 0:
        res.status = "failures"
    if res.status not in ("ok", "failures"):
        res.message = "\n".join(text.strip().splitlines()[-5:])
    if (timed_out or rc < 0) and res.unfinished:  # the test that hung or crashed counts as failed
        res.failed += 1
        res.failing.append(res.unfinished)
    return res


def run_mode(mode: str, exe: Path, groups: list[str], env: dict[str, str], args) -> dict[str, GroupResult]:
    results = {}
    for group in groups:
        # a connector string may hold '/' (an endpoint URL): not in a file name
        stem = re.sub(r"[^\w.=,;-]+", "-", mode)
        log = Path(args.log_dir) / f"{stem}-{group}.log" if args.log_dir else None
        res = run_group(exe, group, env, args.timeout, log)
        note = f" in {res.unfinished!r}" if res.unfinished and res.status not in ("ok", "failures") else ""
        print(f"[{mode}] {group:<10} {res.passed:4d} passed {res.failed:4d} failed {res.skipped:4d} skipped"
              f"  {res.status}{note}", file=sys.stderr, flush=True)
        if res.message:
            print("    " + res.message.replace("\n", "\n    "), file=sys.stderr)
        results[group] = res
        if res.status == "error" and not (res.passed or res.failed or res.skipped):
            # The suite could not even set up (e.g. the connector is not registered): so would the rest.
            print(f"[{mode}] the suite did not start; remaining groups not run", file=sys.stderr)
            for rest in groups[len(results):]:
                results[rest] = GroupResult(status="not run", message=res.message)
            break
    return results


def print_table(all_results: dict[str, dict[str, GroupResult]], groups: list[str]) -> None:
    modes = list(all_results)
    cols = "".join(f" | {m[:26]:>26}" for m in modes)
    sub = "".join(" | " + f"{'passed':>8}{'failed':>8}{'skipped':>10}" for _ in modes)
    print(f"{'':<10}{cols}\n{'group':<10}{sub}")
    print("-" * len(f"{'group':<10}{sub}"))
    totals = {m: [0, 0, 0] for m in modes}
    notes = []
    for g in groups:
        row = f"{g:<10}"
        for m in modes:
            r = all_results[m][g]
            row += f" | {r.passed:>8}{r.failed:>8}{r.skipped:>10}"
            for i, n in enumerate((r.passed, r.failed, r.skipped)):
                totals[m][i] += n
            if r.status not in ("ok", "failures"):
                notes.append(f"{m} / {g}: {r.status}" + (f" in test {r.unfinished!r}" if r.unfinished else ""))
        print(row)
    print("-" * len(f"{'group':<10}{sub}"))
    print(f"{'total':<10}" + "".join(f" | {p:>8}{f:>8}{s:>10}" for p, f, s in totals.values()))
    for note in notes:
        print(f"!! {note}")


def compare(all_results: dict[str, dict[str, GroupResult]], expected: dict) -> list[str]:
    """Regressions against a saved --json file: fewer passes, or newly failing tests."""
    problems = []
    for mode, groups in all_results.items():
        before_groups = expected.get("modes", {}).get(mode)
        if before_groups is None:
            print(f"note: the expected file has no results for {mode!r}; not compared", file=sys.stderr)
            continue
        for group, now in groups.items():
            before = before_groups.get(group)
            if before is None:
                continue
            if now.passed < before["passed"]:
                problems.append(f"{mode} / {group}: {now.passed} passed, expected {before['passed']} ({now.status})")
            for name in now.failing:
                if name not in before["failing"]:
                    problems.append(f"{mode} / {group}: newly failing: {name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connector", default="memory",
                        help="h5pyvol connector string, NAME or NAME;key=value;... (default: memory)")
    parser.add_argument("--label", metavar="NAME",
                        help="name of the h5pyvol results in the table and JSON (default: the HDF5_VOL_CONNECTOR "
                        "value); a stable one lets --expected compare runs whose connector strings differ, "
                        "e.g. in a bucket or port")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--native-only", action="store_true", help="run only with HDF5's native connector")
    only.add_argument("--vol-only", action="store_true", help="run only through h5pyvol")
    parser.add_argument("--groups", default=",".join(GROUPS),
                        help=f"comma-separated test groups (default: all: {','.join(GROUPS)})")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per group (default: 600)")
    parser.add_argument("--json", metavar="FILE", help="write counts and failing test names per group to FILE")
    parser.add_argument("--expected", metavar="FILE",
                        help="a file written by --json; exit 1 if a test that passed there fails now, "
                        "or a group's pass count dropped")
    parser.add_argument("--log-dir", metavar="DIR", help="save each group's full output in DIR")
    parser.add_argument("--h5-api-test", metavar="PATH",
                        help="the h5_api_test program (default: the one in h5pyvol's HDF5 prefix)")
    args = parser.parse_args(argv)

    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    prefix = Path(h5pyvol_cli("config", "--prefix").strip())
    exe = Path(args.h5_api_test) if args.h5_api_test else prefix / "bin" / "h5_api_test"
    if not exe.is_file():
        sys.exit(f"{exe} not found (HDF5 must be built with -DHDF5_TEST_API=ON -DHDF5_TEST_API_INSTALL=ON)")
    if args.log_dir:
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    expected = json.loads(Path(args.expected).read_text()) if args.expected else None

    base_env = {k: v for k, v in os.environ.items() if k not in ("HDF5_VOL_CONNECTOR", "HDF5_PLUGIN_PATH")}
    if not args.native_only:
        vol_env = {**base_env, **vol_environment(args.connector)}
        problem = check_connector(prefix / "lib" / "libhdf5.so", vol_env)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    all_results: dict[str, dict[str, GroupResult]] = {}
    if not args.vol_only:
        all_results[NATIVE] = run_mode(NATIVE, exe, groups, base_env, args)
    if not args.native_only:
        mode = args.label or vol_env["HDF5_VOL_CONNECTOR"]
        all_results[mode] = run_mode(mode, exe, groups, vol_env, args)

    print_table(all_results, groups)
    not_started = any(r.status == "not run" for rs in all_results.values() for r in rs.values())
    if args.json:
        data = {"h5_api_test": str(exe), "groups": groups,
                "modes": {m: {g: vars(r) for g, r in rs.items()} for m, rs in all_results.items()}}
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    if expected is not None:
        problems = compare(all_results, expected)
        for p in problems:
            print(f"REGRESSION: {p}")
        if problems:
            return 1
    return 2 if not_started else 0


if __name__ == "__main__":
    sys.exit(main())
