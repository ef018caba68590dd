"""Chunk planning (h5pyvol.storage.plan): a selection cut by chunk tasks must
cover every selected element exactly once, at the right place on both sides,
and call a chunk whole only when it is."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from h5pyvol.selection import Selection
from h5pyvol.storage.grid import ChunkGrid
from h5pyvol.storage.plan import plan


def random_case(rng: random.Random):
    rank = rng.randint(1, 3)
    shape = tuple(rng.randint(1, 40) for _ in range(rank))
    chunks = tuple(rng.randint(1, 12) for _ in range(rank))
    start, stride, count, block = [], [], [], []
    for n in shape:
        b = rng.choice([1, 1, 1, rng.randint(1, 4)])
        s = rng.randint(b, 2 * b + 15)  # strides wider than a chunk jump over chunks
        first = rng.randint(0, n - 1)
        c = rng.randint(1, max(1, (n - first - b) // s + 1)) if first + b <= n else 0
        if c == 0:
            first, b, c = 0, 1, 1
        start.append(first)
        stride.append(s)
        count.append(c)
        block.append(b)
    sel = Selection(shape, "hyperslab", math.prod(c * b for c, b in zip(count, block, strict=True)),
                    regular=(tuple(start), tuple(stride), tuple(count), tuple(block)))
    return shape, chunks, sel


@pytest.mark.parametrize("seed", range(300))
def test_tasks_cover_the_selection_once(seed):
    rng = random.Random(seed)
    shape, chunks, sel = random_case(rng)
    data = np.arange(math.prod(shape)).reshape(shape)
    grid = ChunkGrid(shape, chunks)
    want = data[sel.index]
    got = np.full(sel.result_shape, -1)
    hits = np.zeros(sel.result_shape, int)
    for task in plan(sel, grid):
        box = grid.box(task.cid)
        chunk = np.full(chunks, -2)
        inside = tuple(slice(0, b.stop - b.start) for b in box)
        chunk[inside] = data[box]
        got[task.outer] = chunk[task.local]
        hits[task.outer] += 1
        covered = np.zeros(chunks, bool)
        covered[task.local] = True
        assert task.whole == bool(covered[inside].all()), (task, box)
    assert (hits == 1).all()
    np.testing.assert_array_equal(got, want)


def test_whole_dataset_tasks_are_slices():
    grid = ChunkGrid((2048, 65536), (8, 65536))
    tasks = plan(Selection.everything((2048, 65536)), grid)
    assert len(tasks) == 256 and all(t.whole for t in tasks)
    assert tasks[3].outer == (slice(24, 32), slice(0, 65536))
    assert all(isinstance(i, slice) for i in tasks[3].local)
