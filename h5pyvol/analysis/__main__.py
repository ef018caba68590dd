"""``python -m h5pyvol.analysis SCRIPT``: run an analysis script (also under mpiexec).

The script defines ``map(block)`` and optionally ``combine(results)``,
``inputs`` (names to ``(file URL, dataset path)`` pairs), ``file`` (where a
map's ``block["/path"]`` references are found when there are no inputs),
``query`` (a `Q` query or its JSON) and ``associative``. Under
``mpiexec -n N`` every rank runs the script and the maps are spread over the
ranks (engine ``mpi``); rank 0 prints combine's value as JSON, and the
statistics with ``--stats``.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys

EPILOG = """examples:
  python -m h5pyvol.analysis sum_positive.py
  mpiexec -n 4 python -m h5pyvol.analysis g2.py --output g2.json --stats
"""

_MPI_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


def _under_mpiexec() -> bool:
    return any(int(os.environ.get(v, "1") or 1) > 1 for v in _MPI_SIZE_VARS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m h5pyvol.analysis", description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("script", help="a Python file defining map (and combine, inputs, file, query...)")
    parser.add_argument("--engine", choices=["serial", "processes", "mpi", "dask"],
                        help="default: mpi under mpiexec with several ranks, else processes")
    parser.add_argument("--workers", type=int, help="processes engine: pool size")
    parser.add_argument("--address", help="dask engine: the scheduler's address")
    parser.add_argument("--timeout", type=float, help="seconds for the whole call")
    parser.add_argument("--output", help="write the JSON result here instead of standard output")
    parser.add_argument("--stats", action="store_true", help="also print the call's statistics (to standard error)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    args = parser.parse_args(argv)

    from .capi import jsonable
    from .execute import MapError, execute

    engine = args.engine or ("mpi" if _under_mpiexec() else "processes")
    options = {k: v for k, v in (("workers", args.workers), ("address", args.address)) if v is not None}
    try:
        script = runpy.run_path(args.script, run_name="h5pyvol_analysis_script")
    except (OSError, SyntaxError) as exc:
        print(f"h5pyvol.analysis: cannot load {args.script}: {exc}", file=sys.stderr)
        return 2
    if "map" not in script:
        print(f"h5pyvol.analysis: {args.script} defines no map function", file=sys.stderr)
        return 2
    try:
        result = execute(script["map"], script.get("combine"), script.get("inputs"), script.get("query"),
                         engine, associative=script.get("associative"), timeout=args.timeout,
                         file=script.get("file"), progress=args.progress, **options)
    except (MapError, TimeoutError, ValueError, TypeError, KeyError, OSError) as exc:
        print(f"h5pyvol.analysis: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if engine == "mpi":
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() != 0:
            return 0
    text = json.dumps(jsonable(result.value))
    if args.output:
        with open(args.output, "w") as out:
            out.write(text + "\n")
    else:
        print(text)
    if args.stats:
        print(json.dumps(jsonable(result.stats), indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
