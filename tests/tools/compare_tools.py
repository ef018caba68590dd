"""Run HDF5's tools on a native file and through an h5pyvol connector, and diff.

Owns: the tool invocations compared (h5dump, h5dump -p, h5ls -r -v, h5ls -r),
running them natively and through a connector, the normalization rules for
the fields that exist only in the native file format (each named, with its
reason; docs/tools.md lists them), and the unified diff of everything else.

The native run opens NATIVE_FILE from its own directory by its base name; the
connector run opens the connector's file name (--name, default the same base
name) from a new empty directory, so that HDF5 falling back silently to its
native connector (what it does when the plugin does not load) finds no file
there and the run fails instead of comparing a native file with itself.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

INVOCATIONS: dict[str, list[str]] = {
    "h5dump": ["h5dump"],
    "h5dump -p": ["h5dump", "-p"],
    "h5ls -r -v": ["h5ls", "-r", "-v"],
    "h5ls -r": ["h5ls", "-r"],
}


@dataclass(frozen=True)
class Rule:
    """One normalization: lines matching `pattern` become `replacement` (None: dropped)."""

    name: str
    tools: tuple[str, ...]
    pattern: re.Pattern
    replacement: str | None
    reason: str


# A token as the tools print it: a native address in decimal, or h5pyvol's 16 token bytes in hex.
_TOKEN = r"(?:[0-9a-f]{32}|\d+)"

RULES: tuple[Rule, ...] = (
    Rule(
        "raw data offset",
        ("h5dump",),
        re.compile(r"^\s*OFFSET (\d+|HADDR_UNDEF)$"),
        None,
        "h5dump -p prints H5Dget_offset, the address of a contiguous dataset's data in the native file; "
        "a connector has no file addresses (a native-only optional operation), so h5dump prints nothing",
    ),
    Rule(
        "file driver",
        ("h5ls",),
        re.compile(r'^(Opened ".*" with )\S* (driver\.)$'),
        r"\1<driver> \2",
        "h5ls -v names the virtual file driver (sec2...), a layer of the native connector only; "
        "for another terminal connector the tools print an empty name",
    ),
    Rule(
        "object location",
        ("h5ls",),
        re.compile(rf"^(\s+Location:\s+\d+:){_TOKEN}$"),
        r"\1<token>",
        "h5ls -v prints the object token: natively the object header's file address in decimal, "
        "through a connector the connector's token (hex bytes)",
    ),
    Rule(
        "object times",
        ("h5ls",),
        re.compile(r"^\s+Modified:\s"),
        None,
        "native HDF5 records object times only in version-2 object headers (files created with a newer "
        "format, objects that track creation order), a detail of the file format; h5pyvol reports them "
        "wherever the creation properties track times (HDF5's default). The values also differ between two "
        "files written at different moments",
    ),
    Rule(
        "allocated storage",
        ("h5ls",),
        re.compile(r"^(\s+Storage:\s+\d+ logical bytes), \d+ allocated bytes, [\d.]+% utilization$"),
        r"\1, <allocated>",
        "the bytes a dataset occupies in its storage format (H5Dget_storage_size): natively the file's "
        "encoding (for variable-length data, 16-byte global heap references, not the data), through a "
        "connector its own objects; the logical size is kept",
    ),
    Rule(
        "allocated storage",
        ("h5dump",),
        re.compile(r"^(\s+SIZE )\d+( \([\d.]+:1 COMPRESSION\))?$"),
        r"\1<allocated>",
        "h5dump -p prints the same storage size, and the compression ratio computed from it",
    ),
    Rule(
        "shared type location",
        ("h5ls",),
        re.compile(rf"^(\s+Type:\s+shared-\d+:){_TOKEN}"),
        r"\1<token>",
        "h5ls -v prints a committed datatype as shared-FILENO:TOKEN, the same token as its Location",
    ),
)


def normalize(tool: str, text: str) -> tuple[str, dict[str, int]]:
    """`text` with the native-only fields normalized, and how often each rule fired."""
    fired: dict[str, int] = {}
    out = []
    for line in text.splitlines():
        for rule in RULES:
            if tool not in rule.tools or not rule.pattern.search(line):
                continue
            fired[rule.name] = fired.get(rule.name, 0) + 1
            line = None if rule.replacement is None else rule.pattern.sub(rule.replacement, line)
            if line is None:
                break
        if line is not None:
            out.append(line)
    return "\n".join(out) + ("\n" if out else ""), fired


def native_env() -> dict[str, str]:
    """The environment of a process that uses HDF5's native connector only."""
    env = dict(os.environ)
    env.pop("HDF5_VOL_CONNECTOR", None)
    env.pop("HDF5_PLUGIN_PATH", None)
    return env


def connector_env(spec: str) -> dict[str, str]:
    """The environment `h5pyvol env` prints for connector string `spec`."""
    import h5pyvol

    env = native_env()
    env["HDF5_PLUGIN_PATH"] = str(h5pyvol.PLUGIN_DIR)
    env["HDF5_VOL_CONNECTOR"] = f"h5pyvol {spec}"
    return env


def hdf5_bin() -> Path:
    """The bin/ directory of the HDF5 h5pyvol is built against (h5pyvol config --prefix)."""
    from h5pyvol import cli

    cfg = cli._build_config()
    if cfg is None:
        raise SystemExit("h5pyvol is not built: its HDF5 (and so its tools) are unknown")
    return Path(cfg.HDF5_DIR) / "bin"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_tool(argv: list[str], name: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> Run:
    proc = subprocess.run(
        [str(hdf5_bin() / argv[0]), *argv[1:], name],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Comparison:
    invocation: str
    native: Run
    through: Run
    diff: list[str]
    fired: dict[str, int]

    @property
    def same(self) -> bool:
        return not self.diff


def compare(
    native_file: Path, spec: str, name: str | None = None, invocations: list[str] | None = None
) -> list[Comparison]:
    """Run each invocation on `native_file` natively and on `name` through connector `spec`."""
    native_file = Path(native_file).resolve()
    name = name or native_file.name
    results = []
    with tempfile.TemporaryDirectory(prefix="h5pyvol-tools-") as empty:
        for inv in invocations or list(INVOCATIONS):
            argv = INVOCATIONS[inv]
            nat = run_tool(argv, native_file.name, native_env(), native_file.parent)
            vol = run_tool(argv, name, connector_env(spec), Path(empty))
            tool = argv[0]
            a, fired_a = normalize(tool, nat.stdout)
            b, fired_b = normalize(tool, vol.stdout)
            diff = list(
                difflib.unified_diff(a.splitlines(True), b.splitlines(True), f"native: {inv}", f"h5pyvol {spec}: {inv}")
            )
            if (nat.returncode, nat.stderr) != (vol.returncode, vol.stderr):
                diff += [
                    f"--- native: {inv} (exit {nat.returncode}, stderr)\n",
                    f"+++ h5pyvol: {inv} (exit {vol.returncode}, stderr)\n",
                ]
                diff += [f"-{line}\n" for line in nat.stderr.splitlines()]
                diff += [f"+{line}\n" for line in vol.stderr.splitlines()]
            fired = {k: fired_a.get(k, 0) + fired_b.get(k, 0) for k in {*fired_a, *fired_b}}
            results.append(Comparison(inv, nat, vol, diff, fired))
    return results


EPILOG = """normalization rules (only fields that exist in the native format alone):
{rules}

exit status: 0 when every invocation prints the same normalized output (and
the same exit status and stderr), 1 when one differs, 2 on a usage error.

examples:
  compare_tools.py --connector 'passthru;root=/tmp/store' /tmp/native/sample.h5
  compare_tools.py --connector 's3;bucket=b;endpoint_url=http://127.0.0.1:7480' --name run1.h5 run1.h5
  compare_tools.py --connector 'passthru;root=/tmp/store' --invocation 'h5ls -r -v' --raw sample.h5
"""


def main(argv: list[str] | None = None) -> int:
    rules = "\n".join(f"  {r.name} ({', '.join(r.tools)}): {r.reason}" for r in RULES)
    parser = argparse.ArgumentParser(
        description="Run h5dump and h5ls on a native HDF5 file and on a file with the same content "
        "through an h5pyvol connector; normalize the fields only the native format has and print a "
        "unified diff of everything else.",
        epilog=EPILOG.format(rules=rules),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("native_file", type=Path, help="the native HDF5 file (read with no connector)")
    parser.add_argument(
        "--connector",
        required=True,
        metavar="SPEC",
        help="the h5pyvol connector string, e.g. 'passthru;root=DIR' (as for h5pyvol env)",
    )
    parser.add_argument("--name", help="the file's name for the connector (default: NATIVE_FILE's base name)")
    parser.add_argument(
        "--invocation",
        action="append",
        choices=list(INVOCATIONS),
        help="compare only this invocation (repeatable; default: all)",
    )
    parser.add_argument("--raw", action="store_true", help="also print both outputs, before normalization")
    args = parser.parse_args(argv)
    if not args.native_file.is_file():
        parser.error(f"{args.native_file}: no such file")
    status = 0
    for c in compare(args.native_file, args.connector, args.name, args.invocation):
        applied = ", ".join(f"{k} x{v}" for k, v in sorted(c.fired.items())) or "none"
        print(f"== {c.invocation}: {'same' if c.same else 'DIFFERENT'} (normalized: {applied})")
        if args.raw:
            print(f"-- native output (exit {c.native.returncode}):\n{c.native.stdout}{c.native.stderr}")
            print(f"-- h5pyvol output (exit {c.through.returncode}):\n{c.through.stdout}{c.through.stderr}")
        sys.stdout.writelines(c.diff)
        status |= 0 if c.same else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
