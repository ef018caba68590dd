"""Small h5flow modules for the flow tests (copied into each run folder)."""

import os
import time

import numpy as np
from h5flow.core import H5FlowGenerator, H5FlowStage


def note_call(name, hook):
    """Note one call of a component's hook in $H5PYVOL_FLOW_TEST_CALLS (for the reuse tests)."""
    path = os.environ.get("H5PYVOL_FLOW_TEST_CALLS")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{name}.{hook}\n")


class Counter(H5FlowGenerator):
    """Appends `chunk_size` rows (i, i*i) per chunk, `end_position` chunks."""

    def __init__(self, **params):
        super().__init__(**params)
        self.chunk_size = params.get("chunk_size", 100)
        self.end_position = self.end_position if self.end_position is not None else 10
        self.iteration = 0

    def __len__(self):
        return self.end_position

    def init(self):
        self.data_manager.create_dset(self.dset_name, dtype=[("i", "i8"), ("sq", "f8")])

    def next(self):
        note_call("counter", "next")
        if self.iteration >= self.end_position:
            return H5FlowGenerator.EMPTY
        self.iteration += 1
        sl = self.data_manager.reserve_data(self.dset_name, self.chunk_size)
        rows = np.zeros(self.chunk_size, dtype=[("i", "i8"), ("sq", "f8")])
        rows["i"] = np.arange(sl.start, sl.stop)
        rows["sq"] = rows["i"].astype("f8") ** 2
        self.data_manager.write_data(self.dset_name, sl, rows)
        return sl


class Sparse(H5FlowStage):
    """Writes rows (and references) only for sources whose index is a multiple of
    `every`: most chunks write nothing, on whichever rank runs them."""

    def __init__(self, **params):
        super().__init__(**params)
        self.every = params.get("every", 7)
        self.output = params.get("output", "sparse")
        self.delay = params.get("delay", 0.0)

    def init(self, source_name):
        self.data_manager.create_dset(self.output, dtype="f8", shape=(2,))
        self.data_manager.create_ref(source_name, self.output)

    def run(self, source_name, source_slice, cache):
        note_call(self.name, "run")
        if self.delay:
            time.sleep(self.delay)
        rows = cache[source_name]
        keep = rows[rows["i"] % self.every == 0]
        if not len(keep):
            return
        sl = self.data_manager.reserve_data(self.output, len(keep))
        self.data_manager.write_data(self.output, sl, np.stack([keep["sq"], -keep["sq"]], axis=1))
        self.data_manager.write_ref(source_name, self.output, np.stack([keep["i"], np.arange(sl.start, sl.stop)], 1))


class Reader(H5FlowStage):
    """Writes, per source row, how many sparse rows it refers to (from its `requires`)."""

    def init(self, source_name):
        self.data_manager.create_dset("counted", dtype="i8")

    def run(self, source_name, source_slice, cache):
        note_call(self.name, "run")
        got = cache["sparse"]  # (rows, matches, 2), masked where there is no match
        empty = np.ma.getmaskarray(got).reshape(len(got), -1).all(axis=1)
        self.data_manager.reserve_data("counted", source_slice)
        self.data_manager.write_data("counted", source_slice, (~empty).astype("i8"))


class Scaled(H5FlowStage):
    """Writes sq * `factor` for every source row, and references to them (reads only its source)."""

    def __init__(self, **params):
        super().__init__(**params)
        self.factor = params.get("factor", 2.0)

    def init(self, source_name):
        note_call(self.name, "init")
        self.data_manager.set_attrs(self.name, factor=self.factor)
        self.data_manager.create_dset(self.name, dtype="f8")
        self.data_manager.create_ref(source_name, self.name)

    def run(self, source_name, source_slice, cache):
        note_call(self.name, "run")
        rows = cache[source_name]
        sl = self.data_manager.reserve_data(self.name, len(rows))
        self.data_manager.write_data(self.name, sl, rows["sq"] * self.factor)
        self.data_manager.write_ref(source_name, self.name, np.stack([rows["i"], np.arange(sl.start, sl.stop)], 1))


class Probe(H5FlowStage):
    """Writes, per source row, whether the dataset `looks_for` exists (an existence check is a read)."""

    def init(self, source_name):
        self.data_manager.create_dset(self.name, dtype="i8")

    def run(self, source_name, source_slice, cache):
        note_call(self.name, "run")
        found = self.data_manager.dset_exists(self.requires_name)
        self.data_manager.reserve_data(self.name, source_slice)
        self.data_manager.write_data(self.name, source_slice, np.full(source_slice.stop - source_slice.start, found))

    def __init__(self, **params):
        super().__init__(**params)
        self.requires_name = params.get("looks_for", "extra")


class Totals(H5FlowStage):
    """At finish, on rank 0: sums `watch` (every chunk's rows, whoever wrote them) into an
    attribute, and rewrites rows 3:45 of it negated (in place, over earlier chunks' rows)."""

    def __init__(self, **params):
        super().__init__(**params)
        self.watch = params.get("watch", "scaled")

    def finish(self, source_name):
        if self.rank != 0:
            return
        rows = self.data_manager.get_dset(self.watch)
        self.data_manager.set_attrs(self.name, total=float(np.sum(rows[:])))
        self.data_manager.write_data(self.watch, slice(3, 45), -rows[3:45])


class Explodes(H5FlowStage):
    """Fails on its chunk `at`."""

    def run(self, source_name, source_slice, cache):
        if source_slice.start >= 100 * 3:
            raise ValueError("bad detector data in this chunk")


if os.environ.get("H5PYVOL_FLOW_TEST_MARK"):  # executing this module leaves a mark (it should not be executed)
    open(os.environ["H5PYVOL_FLOW_TEST_MARK"], "w").close()
