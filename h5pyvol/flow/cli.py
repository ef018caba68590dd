"""``h5pyvol flow`` (also ``python -m h5pyvol.flow``): run h5flow workflows.

The flags are h5flow's (``-c -o -i -s -e -d -v --nompi``) plus the engine's:
``--resume``, ``--no-reuse``, ``--connector``/``-z`` (the output's connector
and options), ``--progress``/``--no-progress``, ``--checkpoint-every``,
``--chunk-bytes``, ``--many-writers``.
"""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  h5pyvol flow -c flow.yaml -o out.h5                      serial, native file
  mpiexec -n 4 h5pyvol flow -c flow.yaml -o out.h5         chunks shared by 4 ranks
  h5pyvol flow -c a.yaml b.yaml -i in.h5 -o out.h5         b runs on a's output
  h5pyvol flow -c flow.yaml -o s3://bucket/out.h5 -z endpoint_url=http://127.0.0.1:7480
  h5pyvol flow -c flow.yaml -o out.h5 --resume             continue after a crash

Inside a run `import h5flow` gives h5pyvol's h5flow-compatible API, so h5flow
modules and configs run unchanged.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--configs", nargs="+", required=True, metavar="YAML",
                   help="workflow config(s); several run in sequence, each on the previous one's output")
    p.add_argument("-o", "--output_filename", required=True, metavar="FILE",
                   help="output file: a path, s3://BUCKET/KEY or rados://POOL/NAME")
    p.add_argument("-i", "--input_filename", default=None, metavar="FILE", help="input file (for loop generators)")
    p.add_argument("-s", "--start_position", type=int, default=None, help="start position given to the generator")
    p.add_argument("-e", "--end_position", type=int, default=None, help="end position given to the generator")
    p.add_argument("-d", "--drop", nargs="+", default=None, metavar="NAME",
                   help="more objects to leave out of the output")
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v: info, -vv: debug")
    p.add_argument("--nompi", action="store_true", help="run serially even under mpiexec (also H5FLOW_NOMPI=1)")
    p.add_argument("--connector", default=None, help="h5pyvol connector for the output (memory, s3, rados, ...)")
    p.add_argument("-z", "--connector-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a connector option, e.g. -z endpoint_url=http://127.0.0.1:7480 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its journal")
    p.add_argument("--no-reuse", dest="reuse", action="store_false",
                   help="run every component, even those whose output the file holds from an earlier run "
                   "with the same identity and inputs, appending to what is there (h5flow's behaviour)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show the progress bar even when stderr is not a terminal")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="write pending rows and a journal checkpoint at least this often (default 30)")
    p.add_argument("--chunk-bytes", type=_size, default=1 << 20, metavar="BYTES",
                   help="storage chunk size the engine aims at for the datasets it creates, e.g. 256K "
                   "(default 1M); under MPI on S3/RADOS the other ranks write the storage chunks that lie "
                   "wholly inside their chunks' rows with --many-writers, so smaller ones move more writing off rank 0")
    p.add_argument("--many-writers", action="store_true",
                   help="under MPI with an S3 or RADOS output, let every rank write the storage chunks inside "
                   "its chunks' rows itself (default: rank 0 writes every row; see docs/flow.md)")
    p.add_argument("--quiet", action="store_true", help="do not print the summary and time profile")


def execute(args: argparse.Namespace) -> int:
    from .engine import run
    from .errors import FlowError

    options = {}
    for item in args.connector_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"h5pyvol flow: -z {item!r}: give KEY=VALUE", file=sys.stderr)
            return 2
        options[key] = value
    try:
        run(args.configs, args.output_filename, input_filename=args.input_filename,
            start_position=args.start_position, end_position=args.end_position, verbose=args.verbose,
            drop=args.drop, nompi=args.nompi, resume=args.resume, reuse=args.reuse, connector=args.connector,
            connector_options=options, progress=args.progress, profile=not args.quiet,
            checkpoint_seconds=args.checkpoint_every, chunk_bytes=args.chunk_bytes, many_writers=args.many_writers)
    except FlowError as exc:
        print(f"h5pyvol flow: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _size(text: str) -> int:
    """'4096', '256K', '1M' -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    scale = units.get(text[-1:].upper(), 1)
    try:
        n = int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 4096, 256K, 1M)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least 1 byte")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="h5pyvol flow", description="Run h5flow workflows (YAML configs of a "
                                "generator and stages) into an HDF5 file on any connector, serially or under MPI.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return execute(build_parser().parse_args(argv))
