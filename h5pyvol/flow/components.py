"""The base classes workflow modules subclass: `H5FlowStage`,
`H5FlowGenerator` and `H5FlowResource`, with h5flow's constructor arguments,
hooks and attributes, and the shared `resources` registry.

``rank``, ``size`` and ``comm`` come from the run (`RUNTIME`): stages and
resources get MPI.COMM_WORLD's; the generator runs once, on rank 0, and sees
rank 0 of 1 (its chunks are handed out to every rank by the engine).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("h5pyvol.flow")

RUNTIME: dict[str, Any] = {"comm": None, "rank": 0, "size": 1}

resources: dict[str, H5FlowResource] = {}


def _mpi(kind: str) -> tuple[Any, int, int]:
    if kind == "generator":
        return None, 0, 1
    return RUNTIME["comm"], RUNTIME["rank"], RUNTIME["size"]


class H5FlowResource:
    """A static resource shared by stages (``resources[classname]``); implement
    ``init(source_name)`` and ``finish(source_name)`` as needed."""

    class_version = "0.0.0"

    def __init__(self, classname: str, data_manager, input_filename: str | None = None,
                 start_position: int | None = None, end_position: int | None = None, **params: Any) -> None:
        self.classname = classname
        self.data_manager = data_manager
        self.input_filename = input_filename
        self.start_position = start_position
        self.end_position = end_position
        self.comm, self.rank, self.size = _mpi("resource")
        log.info("create %s()", classname)

    def init(self, source_name: str) -> None:
        log.info("%s.init(%s)", self.classname, source_name)

    def finish(self, source_name: str) -> None:
        log.info("%s.finish(%s)", self.classname, source_name)


class H5FlowGenerator:
    """Makes the chunks of the loop: ``next()`` returns a slice into
    ``dset_name`` (writing its rows first if it makes them), or
    ``H5FlowGenerator.EMPTY`` when done."""

    EMPTY = slice(-1, -1)
    class_version = "0.0.0"

    def __init__(self, classname: str, dset_name: str, data_manager, input_filename: str | None = None,
                 start_position: int | None = None, end_position: int | None = None, **params: Any) -> None:
        self.classname = classname
        self.dset_name = dset_name
        self.data_manager = data_manager
        self.input_filename = input_filename
        self.start_position = start_position
        self.end_position = end_position
        self.comm, self.rank, self.size = _mpi("generator")
        log.info("create %s(%s)", classname, dset_name)

    def __iter__(self):
        return self

    def __next__(self) -> slice:
        next_slice = self.next()
        if next_slice == H5FlowGenerator.EMPTY:
            raise StopIteration
        return next_slice

    def init(self) -> None:
        log.info("%s.init()", self.classname)

    def next(self) -> slice:
        raise NotImplementedError(f"{type(self).__name__} does not implement next()")

    def finish(self) -> None:
        log.info("%s.finish()", self.classname)


class H5FlowStage:
    """One step of the loop: ``init(source_name)``, then ``run(source_name,
    source_slice, cache)`` per chunk, then ``finish(source_name)``.

    Two class attributes are this engine's (h5flow has neither; both default
    to False): ``in_order = True`` runs the stage (and the ones after it) on
    rank 0, chunk by chunk in order, once the chunk's earlier stages are
    committed, so it sees every earlier chunk's rows (a viewer gathering what
    workers computed); ``publish = True`` writes the output and a journal
    checkpoint after every chunk, so readers see its rows during the run.
    """

    class_version = "0.0.0"
    in_order = False
    publish = False

    def __init__(self, name: str, classname: str, data_manager, requires: list | None = None, **params: Any) -> None:
        self.name = name
        self.classname = classname
        self.data_manager = data_manager
        self.requires = requires if requires is not None else []
        self.comm, self.rank, self.size = _mpi("stage")
        log.info("create %s: %s(%s)", name, classname, ", ".join(f"{k}={v}" for k, v in params.items()))

    def init(self, source_name: str) -> None:
        log.info("%s.init(%s)", self.name, source_name)

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s.run(%s, %s, <cache: %s>)", self.name, source_name, source_slice, "; ".join(cache))

    def finish(self, source_name: str) -> None:
        log.info("%s.finish(%s)", self.name, source_name)
