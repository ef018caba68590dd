"""The ``h5pyvol`` command (also ``python -m h5pyvol``).

Subcommands: ``info`` (what is installed and whether it fits together),
``env`` (shell exports that make any HDF5 program use a connector),
``config`` (compiler flags for C programs, like h5cc), ``flow`` (run
h5flow workflows, `h5pyvol.flow`) and ``vacuum`` (remove the chunk objects
dead writers left behind, on S3 and RADOS).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from . import _hdf5, registry

EPILOG = """examples:
  h5pyvol info
  eval "$(h5pyvol env memory)"; h5dump myfile.h5
  cc prog.c $(h5pyvol config --cflags --libs) -o prog
  h5pyvol vacuum --dry-run "s3;bucket=data;endpoint_url=http://127.0.0.1:7480" run.h5
"""


def _build_config():
    try:
        from . import _build_config as cfg  # written by CMake at install time
    except ImportError:
        return None
    return cfg


def _mode(cfg) -> str:
    """How h5pyvol got its HDF5, in words."""
    if cfg is None:
        return "unknown (not built)"
    if getattr(cfg, "MODE", "source") == "wheel":
        return (f"h5py wheel: the plugin links the libhdf5 inside h5py {cfg.H5PY_VERSION}'s wheel "
                f"(HDF5 {cfg.HDF5_VERSION}; compiled with HDF5 {cfg.HDF5_HEADERS_VERSION} headers)")
    return f"own HDF5: HDF5 {cfg.HDF5_VERSION} at {cfg.HDF5_DIR} (HDF5_DIR at build time)"


def _linked_libhdf5(plugin: Path) -> str | None:
    """The libhdf5 the dynamic linker would give the plugin (from ldd)."""
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=False).stdout
    except OSError:
        return None
    for line in out.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if name.startswith("libhdf5.so") or (name.startswith("libhdf5-") and ".so" in name):
            return rest.split(" (")[0].strip() or None
    return None


def cmd_info(args: argparse.Namespace) -> int:
    import h5py

    cfg = _build_config()
    h5py_lib = _hdf5.loaded_libhdf5()
    plugin = _hdf5.plugin_file()
    plugin_lib = _linked_libhdf5(plugin) if plugin else None
    rows = [
        ("h5pyvol", f"{sys.modules['h5pyvol'].__version__} ({Path(__file__).parent})"),
        ("mode", _mode(cfg)),
        ("HDF5 (h5py runs)", f"{h5py.version.hdf5_version}: {h5py_lib}"),
        ("h5py", f"{h5py.version.version} ({Path(h5py.__file__).parent})"),
        ("plugin", str(plugin) if plugin else f"MISSING in {_hdf5.PLUGIN_DIR}"),
        ("plugin's libhdf5", plugin_lib or "unresolved"),
        ("HDF5_PLUGIN_PATH", os.environ.get("HDF5_PLUGIN_PATH", "(unset)")),
        ("HDF5_VOL_CONNECTOR", os.environ.get("HDF5_VOL_CONNECTOR", "(unset)")),
        ("connectors", ", ".join(f"{k} ({v})" for k, v in sorted(registry.available().items())) or "none"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    problems = []
    if plugin is None:
        problems.append("the plugin is not installed; reinstall h5pyvol (scripts/bootstrap.sh)")
    elif problem := _hdf5.one_libhdf5_problem(plugin):
        problems.append(problem)
    for problem in problems:
        print(f"\n!!! WARNING: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_env(args: argparse.Namespace) -> int:
    try:
        spec = registry.ConnectorSpec.parse(";".join([args.connector, *args.options]))
        registry.connector_class(spec.name)
    except (ValueError, LookupError, TypeError) as exc:
        print(f"h5pyvol env: {exc}", file=sys.stderr)
        return 2
    print(f"export HDF5_PLUGIN_PATH={shlex.quote(str(_hdf5.PLUGIN_DIR))}")
    print(f"export HDF5_VOL_CONNECTOR={shlex.quote(f'{_hdf5.CONNECTOR_NAME} {spec}')}")
    return 0


class _CannotConfigure(Exception):
    """What `h5pyvol config` cannot print, and what to do instead."""


def _wheel_config(cfg, args: argparse.Namespace) -> list[str]:
    """Compiler words for the libhdf5 inside h5py's wheel (wheel mode).
    Raises _CannotConfigure with a message where that cannot work."""
    import h5py

    if args.prefix:
        raise _CannotConfigure(
            "h5pyvol config: h5pyvol uses the libhdf5 inside h5py's wheel, which has no installation "
            "prefix and no HDF5 tools (h5dump, h5ls). For those, install HDF5 itself and h5pyvol from "
            "source against it (scripts/bootstrap.sh; README: Installation)."
        )
    include = _hdf5.PLUGIN_DIR.parent / "include"
    if args.cflags and (cfg.HDF5_HEADERS_VERSION != cfg.HDF5_VERSION or not (include / "hdf5.h").exists()):
        raise _CannotConfigure(
            f"h5pyvol config: h5py {cfg.H5PY_VERSION}'s wheel bundles HDF5 {cfg.HDF5_VERSION} but no headers, and "
            f"h5pyvol has none of that release (only {cfg.HDF5_HEADERS_VERSION}, which built the plugin). A C "
            "program compiled with other headers stops at its first HDF5 call, on HDF5's check that headers "
            "and library are the same release. To compile C programs, either use an h5py whose wheel "
            "bundles HDF5 1.14 (`pip install h5py==3.15.1`, then reinstall h5pyvol), or install h5pyvol "
            "from source against an HDF5 of yours (HDF5_DIR=PREFIX pip install ..., or scripts/bootstrap.sh). "
            "h5py programs need none of this."
        )
    libs = Path(h5py.__file__).resolve().parent.parent / "h5py.libs"
    words = [f"-I{include}"] if args.cflags else []
    if args.libs:
        names = ["libhdf5_hl-", "libhdf5-"] if args.hl else ["libhdf5-"]
        found = [sorted(libs.glob(f"{n}*.so*")) for n in names]
        if not all(found):
            raise _CannotConfigure(f"h5pyvol config: no {' or '.join(names)}*.so in {libs}")
        # The wheel's libraries have no libhdf5.so link, so they are named by path;
        # DT_RPATH also finds the libsz/libaec they need.
        words += [str(f[0]) for f in found] + [f"-Wl,-rpath,{libs}", "-Wl,--disable-new-dtags"]
    return words


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _build_config()
    if cfg is None:
        print("h5pyvol config: h5pyvol was not built, so its HDF5 is unknown", file=sys.stderr)
        return 1
    if not (args.prefix or args.cflags or args.libs):
        print("h5pyvol config: say what to print: --prefix, --cflags and/or --libs", file=sys.stderr)
        return 2
    if getattr(cfg, "MODE", "source") == "wheel":
        try:
            print(" ".join(_wheel_config(cfg, args)))
        except _CannotConfigure as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    prefix = cfg.HDF5_DIR
    words = []
    if args.prefix:
        words.append(prefix)
    if args.cflags:  # HDF5's headers, and h5as.h (H5ASexecute) installed with the plugin
        words += [f"-I{prefix}/include", f"-I{Path(__file__).resolve().parent / 'include'}"]
    if args.libs:
        words += [f"-L{prefix}/lib", f"-Wl,-rpath,{prefix}/lib"] + (["-lhdf5_hl"] if args.hl else []) + ["-lhdf5"]
    print(" ".join(words))
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    try:
        conn = registry.load(args.connector)
    except (ValueError, LookupError, TypeError, ImportError) as exc:
        print(f"h5pyvol vacuum: {exc}", file=sys.stderr)
        return 2
    if not hasattr(conn, "vacuum"):
        print(f"h5pyvol vacuum: connector {conn.name!r} keeps no chunk objects apart: no orphan collection",
              file=sys.stderr)
        return 2
    try:
        report = conn.vacuum(args.name, dry_run=args.dry_run, grace=args.grace,
                             progress=lambda msg: print(f"  {msg} ...", file=sys.stderr, flush=True))
    except (OSError, ValueError) as exc:
        print(f"h5pyvol vacuum: {exc}", file=sys.stderr)
        return 1
    verb = "would remove" if args.dry_run else "removed"
    print(f"{args.name}: {verb} {len(report.orphans)} orphan chunk object(s)")
    if args.dry_run:
        for key in report.orphans:
            print(f"  {key}")
    if report.sessions:
        print(f"removed {len(report.sessions)} dead writer session(s) from the file's head")
    if report.live:
        print(f"{report.live} chunk objects of live writers kept (writers heard from within the grace period)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="h5pyvol",
        description="HDF5 storage backends written in Python: inspect the installation and "
        "point HDF5 programs at a connector.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("info", help="show the mode (own HDF5 or h5py wheel), versions and paths; "
                       "warn if h5py and the plugin disagree on libhdf5")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser(
        "env",
        help="print shell exports that make any HDF5 program use a connector",
        description="Print HDF5_PLUGIN_PATH and HDF5_VOL_CONNECTOR exports. Use: eval \"$(h5pyvol env memory)\"",
    )
    p.add_argument("connector", help="an installed connector name (see 'h5pyvol info') or package.module:Class")
    p.add_argument("options", nargs="*", metavar="key=value", help="connector options")
    p.set_defaults(func=cmd_env)
    p = sub.add_parser("config", help="compiler flags for C programs using the same HDF5 (like h5cc)")
    p.add_argument("--prefix", action="store_true", help="the HDF5 installation prefix (tools are in PREFIX/bin)")
    p.add_argument("--cflags", action="store_true", help="include flags")
    p.add_argument("--libs", action="store_true", help="linker flags, with an rpath")
    p.add_argument("--hl", action="store_true", help="also link the high-level library")
    p.set_defaults(func=cmd_config)
    p = sub.add_parser(
        "vacuum",
        help="remove the chunk objects of writers that died before committing (S3, RADOS)",
        description="Find the chunk objects of a file that no committed state names and no live writer may "
        "still commit (writers that died, failed deletions), and remove them. Safe while other writers work on "
        "the file: writers heard from within the grace period keep theirs. Writers opening a file also collect "
        "what dead writers left; this command does it now.",
    )
    p.add_argument("connector", help="connector string, e.g. \"s3;bucket=data;endpoint_url=http://host:7480\" or "
                   "\"rados;pool=h5pyvol;conf=/etc/ceph/ceph.conf\"")
    p.add_argument("name", help="the HDF5 file name, as programs open it")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed; change nothing")
    p.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                   help="a writer silent for longer counts as dead (default: the connector's orphan_grace, 600)")
    p.set_defaults(func=cmd_vacuum)
    from .flow import cli as flow_cli

    p = sub.add_parser("flow", help="run h5flow workflows (YAML generator and stages) on any connector, serial or MPI",
                       description=flow_cli.build_parser().description, epilog=flow_cli.EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    flow_cli.add_arguments(p)
    p.set_defaults(func=flow_cli.execute)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
