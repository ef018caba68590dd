"""The modules h5flow ships: `H5FlowDatasetLoopGenerator` (loop over an
existing dataset in chunks) and `H5FlowTestStage` (log what a stage receives),
and `SliceList`, the loop over a list of chunk slices that the dataset loop
shares with the engine's stand-in for a reused generator."""

from __future__ import annotations

import logging

from .components import H5FlowGenerator, H5FlowStage

log = logging.getLogger("h5pyvol.flow")


class SliceList:
    """``next()`` and ``len()`` over a list of source slices (`slices`), one per chunk."""

    slices: list[slice]
    iteration: int = 0

    def next(self) -> slice:
        if self.iteration >= len(self.slices):
            return H5FlowGenerator.EMPTY
        self.iteration += 1
        return self.slices[self.iteration - 1]

    def __len__(self) -> int:
        return len(self.slices)


class H5FlowDatasetLoopGenerator(SliceList, H5FlowGenerator):
    """Loops over ``dset_name`` of the input file, ``chunk_size`` rows at a
    time (``'auto'``: the dataset's HDF5 chunk length). The engine first copies
    the input file to the output (``copies_input``), as h5flow does."""

    class_version = "0.0.0"
    copies_input = True

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.chunk_size = params.get("chunk_size", "auto")
        if self.input_filename is None:
            raise RuntimeError("must specify an input filename!")
        self.iteration = 0
        self.slices: list[slice] = []

    def init(self) -> None:
        super().init()
        dset = self.data_manager.get_dset(self.dset_name)
        start = self.start_position or 0
        end = min(self.end_position, len(dset)) if self.end_position is not None else len(dset)
        if self.chunk_size == "auto":
            self.chunk_size = (dset.chunks or (1024,))[0]
        self.chunk_size = int(self.chunk_size)
        self.slices = [slice(i, min(i + self.chunk_size, end)) for i in range(start, end, self.chunk_size)]


class H5FlowTestStage(H5FlowStage):
    """Loads its ``requires`` and logs what it receives (at INFO level, ``-v``)."""

    def __init__(self, **params) -> None:
        super().__init__(**params)
        for key, val in params.items():
            log.info("\t%s: %s", key, val)

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        super().run(source_name, source_slice, cache)
        if not log.isEnabledFor(logging.INFO):
            return
        log.info("%s: %s %s", self.name, source_name, source_slice)
        for key, val in cache.items():
            if hasattr(val, "dtype"):
                log.info("\t%s (%s%s): %s", key, val.dtype.kind, val.dtype.shape or "", val.shape)
            else:
                log.info("\t%s (%s): %r", key, type(val).__name__, val)


BUILTINS = {cls.__name__: cls for cls in (H5FlowDatasetLoopGenerator, H5FlowTestStage)}
