"""The ``h5pyvol`` command (also ``python -m h5pyvol``).

Subcommands: ``info`` (what is installed and whether it fits together),
``env`` (shell exports that make any HDF5 program use a connector),
``config`` (compiler flags for C programs, like h5cc) and ``flow`` (run
h5flow workflows, `h5pyvol.flow`).
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
"""


def _build_config():
    try:
        from . import _build_config as cfg  # written by CMake at install time
    except ImportError:
        return None
    return cfg


def _plugin_file() -> Path | None:
    found = sorted(_hdf5.PLUGIN_DIR.glob("libh5pyvol*.so"))
    return found[0] if found else None


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
    plugin = _plugin_file()
    plugin_lib = _linked_libhdf5(plugin) if plugin else None
    rows = [
        ("h5pyvol", f"{sys.modules['h5pyvol'].__version__} ({Path(__file__).parent})"),
        ("HDF5 (built against)", f"{cfg.HDF5_VERSION} at {cfg.HDF5_DIR}" if cfg else "unknown (not built)"),
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
    elif plugin_lib and os.path.realpath(plugin_lib) != os.path.realpath(h5py_lib):
        problems.append(
            "h5py and the plugin would load DIFFERENT libhdf5 copies:\n"
            f"    h5py:   {os.path.realpath(h5py_lib)}\n    plugin: {os.path.realpath(plugin_lib)}\n"
            "  Two copies in one process abort HDF5. Build h5py against the plugin's HDF5 "
            "(HDF5_DIR=... pip install --no-binary=h5py h5py) or rebuild h5pyvol against h5py's."
        )
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


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _build_config()
    if cfg is None:
        print("h5pyvol config: h5pyvol was not built, so its HDF5 is unknown", file=sys.stderr)
        return 1
    prefix = cfg.HDF5_DIR
    words = []
    if args.prefix:
        words.append(prefix)
    if args.cflags:  # HDF5's headers, and h5as.h (H5ASexecute) installed with the plugin
        words += [f"-I{prefix}/include", f"-I{Path(__file__).resolve().parent / 'include'}"]
    if args.libs:
        words += [f"-L{prefix}/lib", f"-Wl,-rpath,{prefix}/lib"] + (["-lhdf5_hl"] if args.hl else []) + ["-lhdf5"]
    if not words:
        print("h5pyvol config: say what to print: --prefix, --cflags and/or --libs", file=sys.stderr)
        return 2
    print(" ".join(words))
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
    p = sub.add_parser("info", help="show versions and paths; warn if h5py and the plugin disagree on libhdf5")
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
