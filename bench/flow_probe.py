"""Runs one flow engine with the time of the workflow's own module code measured
(for bench_flow.py).

    python bench/flow_probe.py OUT.json h5flow|h5pyvol ENGINE-ARGS...

Before the engine starts, the base classes of stages, generators and resources
(h5flow's, or h5pyvol's compatible ones) get an ``__init_subclass__`` that
wraps each module class's own ``run``/``next``/``init``/``finish`` in a
timer, and the data manager's methods (and those of the dataset objects it
hands out: h5py's Dataset for h5flow, the dataset view for h5pyvol) get a
timer that counts only calls made from inside a module hook. So, per rank:

- ``module``: time inside the modules' ``run`` and ``next`` (inclusive);
- ``module_framework``: the part of it spent in the framework's data-manager
  calls (``reserve_data``, ``write_data``, ``write_ref``...);
- ``own = module - module_framework``: the module's own code, the same work in
  both engines; everything else in the wall time is the engine's;
- ``loop_start``, ``loop_end``: seconds from the process start to the first
  generator ``next`` and to the end of the last (the chunk loop).

The same wrapping is applied to both engines, so its small cost (a few
microseconds per call) is on both sides. Writes OUT.json (OUT.json.RANK under
MPI) when the process exits.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections import defaultdict

STATE = {"depth": 0, "dm_depth": 0}
T_START = time.perf_counter()
SECONDS: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
PER_CHUNK_HOOKS = ("run", "next")


def _hook_timer(fn, hook: str):
    def timed(*args, **kwargs):
        STATE["depth"] += 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            STATE["depth"] -= 1
            if STATE["depth"] == 0:
                key = "module" if hook in PER_CHUNK_HOOKS else "module_setup"
                SECONDS[key] += dt
                CALLS[key] += 1
                if hook == "next":  # the chunk loop runs from the first next() to the last
                    SECONDS.setdefault("loop_start", t0 - T_START)
                    SECONDS["loop_end"] = t0 + dt - T_START

    timed.__wrapped__ = fn
    return timed


def _framework_timer(fn, what: str):
    def timed(*args, **kwargs):
        if STATE["depth"] == 0 or STATE["dm_depth"]:
            return fn(*args, **kwargs)
        STATE["dm_depth"] += 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            STATE["dm_depth"] -= 1
            dt = time.perf_counter() - t0
            SECONDS["module_framework"] += dt
            CALLS["module_framework"] += 1
            SECONDS[f"framework:{what}"] += dt

    timed.__wrapped__ = fn
    return timed


def _wrap_methods(cls, names=None) -> None:
    for name, value in list(vars(cls).items()):
        if names is not None and name not in names:
            continue
        if names is None and (name.startswith("_") and name not in ("__getitem__", "__setitem__", "__len__")):
            continue
        if callable(value) and not isinstance(value, type | staticmethod | classmethod):
            setattr(cls, name, _framework_timer(value, f"{cls.__name__}.{name}"))


def _time_subclasses(*bases) -> None:
    def init_subclass(cls, **kwargs):
        for hook in ("run", "next", "init", "finish"):
            if hook in vars(cls):
                setattr(cls, hook, _hook_timer(vars(cls)[hook], hook))

    for base in bases:
        base.__init_subclass__ = classmethod(init_subclass)


def _rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2
    out, engine, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    rank = _rank()
    path = out if rank == 0 and not any(v in os.environ for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")) \
        else f"{out}.{rank}"
    def dump() -> None:
        SECONDS["process"] = time.perf_counter() - T_START
        with open(path, "w") as fh:
            json.dump({"rank": rank, "seconds": SECONDS, "calls": CALLS}, fh)

    atexit.register(dump)
    if engine == "h5flow":
        import h5flow
        import h5py
        from h5flow.core import H5FlowGenerator, H5FlowResource, H5FlowStage
        from h5flow.data import H5FlowDataManager

        _time_subclasses(H5FlowStage, H5FlowGenerator, H5FlowResource)
        _wrap_methods(H5FlowDataManager)
        _wrap_methods(h5py.Dataset, ("__getitem__", "__setitem__", "__len__", "resize"))
        sys.argv = ["h5flow", *args]
        h5flow.main()
        return 0
    if engine == "h5pyvol":
        from h5pyvol.flow import cli, components, datamanager

        _time_subclasses(components.H5FlowStage, components.H5FlowGenerator, components.H5FlowResource)
        _wrap_methods(datamanager.H5FlowDataManager)
        _wrap_methods(datamanager.DatasetView, ("__getitem__", "__setitem__", "__len__", "resize", "read_rows",
                                                "take_rows"))
        return cli.main(args)
    raise SystemExit(f"unknown engine {engine!r}: give h5flow or h5pyvol")


if __name__ == "__main__":
    sys.exit(main())
