"""Running maps: what every engine's workers execute.

Owns the `Block` a map receives, the `Job` (what all tasks of one call
share, sent once to each worker), turning map and combine (functions,
source text or built-in reductions) into something any process can load,
running a worker's tasks in order (`run_batch`, the first input's chunks
fetched ahead by `reader.Prefetch`), and the `Outcome` of each:
its value or the failing shard's traceback, bytes read and returned, and
the time spent reading and mapping. With an associative combine a worker
folds its own results into one partial before anything travels back.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .plan import Task
from .query import Query
from .reader import Prefetch
from .reductions import Reduction
from .scripts import compile_function
from .sources import Input, open_dataset

try:  # lambdas and functions of __main__ travel by value with cloudpickle (a dask dependency)
    import cloudpickle as _pickler
except ImportError:  # pragma: no cover - plain pickle handles module-level functions
    _pickler = pickle


class Block(Mapping):
    """The data of one shard: ``block[name]`` is input `name` over `selection`."""

    def __init__(self, arrays: dict[str, np.ndarray], first: str, selection: tuple[slice, ...],
                 mask: np.ndarray | None, index: int, location: dict):
        self._arrays, self._first = arrays, first
        self.selection = selection
        """The shard's elements in the first input's coordinates (one slice per dimension)."""
        self.mask = mask
        """The query's boolean mask over the first input's block, or None (no query, or all match)."""
        self.index = index
        """The shard's number among the first input's shards."""
        self.location = location
        """Where the shard is stored (`Shard.location`)."""

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(f"no input named {name!r} (inputs: {', '.join(self._arrays)})") from None

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def values(self, name: str | None = None) -> np.ndarray:  # type: ignore[override]
        """The elements of input `name` (default: the first) that the query
        selects, as a 1-D array in C order."""
        data = self[name or self._first]
        if self.mask is None:
            return data.reshape(-1)
        return data[np.broadcast_to(self.mask, data.shape)] if data.shape != self.mask.shape else data[self.mask]

    def __repr__(self) -> str:
        sel = ", ".join(f"{s.start}:{s.stop}" for s in self.selection)
        return f"<Block {self.index} [{sel}] of {', '.join(self._arrays)}>"


# ---------------------------------------------------------------- callables


def callable_spec(fn: Any, want: str) -> tuple:
    """A picklable description of a map or combine: source text, a built-in
    reduction, or a function (pickled by value where needed)."""
    if isinstance(fn, str):
        compile_function(fn, want)  # report syntax errors in the caller, not in every worker
        return ("text", fn, want)
    if isinstance(fn, Reduction):
        return ("reduction", fn)
    if not callable(fn):
        raise TypeError(f"{want} must be a function, source text or a built-in reduction, not {type(fn).__name__}")
    try:
        return ("pickle", _pickler.dumps(fn))
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing
        raise TypeError(f"the {want} function {fn!r} cannot be sent to workers: {exc}") from exc


_loaded: dict[int, Callable] = {}


def load_callable(spec: tuple) -> Callable:
    kind = spec[0]
    if kind == "text":
        return compile_function(spec[1], spec[2])
    if kind == "reduction":
        return spec[1]
    key = hash(spec[1])
    fn = _loaded.get(key)
    if fn is None:
        if len(_loaded) > 64:
            _loaded.clear()
        fn = _loaded[key] = pickle.loads(spec[1])
    return fn


def combine_function(spec: tuple | None) -> Callable | None:
    """The combine function of a spec (a reduction's own combine for one)."""
    if spec is None:
        return None
    fn = load_callable(spec)
    return fn.combine if isinstance(fn, Reduction) else fn


# ---------------------------------------------------------------- jobs


@dataclass
class Job:
    """What the tasks of one call share."""

    call_id: str
    inputs: dict[str, Input]
    map: tuple
    query: Query | None = None
    combine: tuple | None = None
    """Set when combine is associative: workers then combine their own results first."""
    deadline: float | None = None
    """Absolute time (time.time()) after which maps are interrupted."""
    local: bool = field(default=False, compare=False)
    """Runs in the caller's process: use its open datasets, never reopen."""

    def __getstate__(self) -> dict:
        return {**self.__dict__, "local": False}

    @property
    def first(self) -> str:
        return next(iter(self.inputs))


@dataclass
class Outcome:
    """What one task gave."""

    index: int
    value: Any = None
    error: str | None = None
    """The failing map's traceback (with the shard it ran on), or None."""
    bytes_read: int = 0
    bytes_returned: int = 0
    direct: bool = False
    """The first input's block came straight from storage (no HDF5 call)."""
    read_seconds: float = 0.0
    map_seconds: float = 0.0
    worker: str = ""


@dataclass
class Partial:
    """A worker's own combine of its tasks' values (associative combines only)."""

    value: Any
    bytes_returned: int = 0
    seconds: float = 0.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class MapTimeout(TimeoutError):
    """The call's time ran out while a map was running."""


@contextlib.contextmanager
def _interrupt_at(deadline: float | None):
    """Raise MapTimeout in the running map at `deadline` (main thread only;
    elsewhere engines check the deadline between tasks)."""
    if deadline is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    left = deadline - time.time()
    if left <= 0:
        raise MapTimeout("the call's timeout expired before this map started")

    def ring(signum, frame):
        raise MapTimeout("the call's timeout expired while this map was running")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, left)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _read(job: Job, inp: Input, selection: tuple[slice, ...]) -> np.ndarray:
    """Input `inp` over the block: a slice of a numpy input, or read through h5py."""
    own = selection[len(selection) - len(inp.shape):] if inp.shape else ()
    if inp.array is not None:
        return inp.array[own]
    ds = inp.dataset if job.local and inp.dataset is not None else open_dataset(job.call_id, inp.source)
    return np.asarray(ds[own])


def run_task(job: Job, task: Task, map_fn: Callable, fetched: Prefetch | None = None) -> Outcome:
    """Read the block of `task` (the first input's from `fetched` when it
    could be read without h5py), compute the query's mask, run the map."""
    out = Outcome(task.index, worker=worker_name())
    sel = task.selection
    try:
        t0 = time.perf_counter()
        arrays = {}
        for name, inp in job.inputs.items():
            block = fetched.take(task) if fetched is not None and name == job.first else None
            out.direct |= block is not None
            arrays[name] = _read(job, inp, sel) if block is None else block
            if inp.array is None and (name != job.first or task.shard.written):
                out.bytes_read += arrays[name].nbytes
        mask = None
        if job.query is not None and not task.full:
            first = job.inputs[job.first]
            got = job.query.mask(lambda n: arrays[n or job.first], first.attrs, first.path)
            if isinstance(got, np.ndarray):
                mask = np.broadcast_to(got, arrays[job.first].shape)
            elif not got:
                mask = np.zeros(arrays[job.first].shape, bool)
        t1 = time.perf_counter()
        out.read_seconds = t1 - t0
        with _interrupt_at(job.deadline):
            out.value = map_fn(Block(arrays, job.first, sel, mask, task.index, dict(task.shard.location)))
        out.map_seconds = time.perf_counter() - t1
    except Exception:  # noqa: BLE001 - reported to the caller with the shard
        where = ", ".join(f"{s.start}:{s.stop}" for s in sel)
        out.error = f"map failed on shard {task.index} [{where}] in {out.worker}:\n{traceback.format_exc()}"
    return out


def run_batch(job: Job, tasks: list[Task]) -> Iterator[Outcome | Partial]:
    """Run a worker's tasks in order, yielding each Outcome; stops at the first
    failure. With an associative combine, values are held back and one
    `Partial` follows the outcomes."""
    map_fn = load_callable(job.map)
    combine = combine_function(job.combine)
    held = []
    first = job.inputs[job.first]
    with Prefetch(first, tasks if first.array is None else []) as fetched:
        for task in tasks:
            if job.deadline is not None and time.time() > job.deadline:
                yield Outcome(task.index, error=f"timed out before shard {task.index} started", worker=worker_name())
                return
            out = run_task(job, task, map_fn, fetched)
            if out.error is None:
                out.bytes_returned = len(pickle.dumps(out.value, protocol=pickle.HIGHEST_PROTOCOL))
                if combine is not None:
                    held.append(out.value)
                    out.value, out.bytes_returned = None, 0
            yield out
            if out.error is not None:
                return
    if combine is not None and held:
        t0 = time.perf_counter()
        value = combine(held)
        yield Partial(value, len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)), time.perf_counter() - t0)
