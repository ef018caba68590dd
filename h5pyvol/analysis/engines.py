"""Engines: where the maps of one call run.

Every engine takes the same `Job` and the tasks placed on its workers
(`plan.place`) and returns the same outcomes, so a call gives the same
result on all of them:

- `SerialEngine` runs every map in the calling process, in order (for debugging);
- `ProcessEngine` (the default) runs them on a local pool of worker processes
  started with ``spawn``, which reopen files by their `Source`;
- `MPIEngine` runs them on the ranks of an MPI communicator: every rank calls
  `execute`, rank 0 plans, combines and hands the result to all;
- `DaskEngine` runs them on a ``dask.distributed`` cluster, each task pinned
  to its worker with ``workers=``.

Tasks placed on the caller itself (shards of memory files, which live in one
process) run in the calling process on every engine. A map that raises
stops the call with its shard and traceback; the call's timeout interrupts
maps (on workers' main threads) and stops waiting for workers, which are
killed (process pool) or cancelled (Dask) rather than left running.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from .plan import Task, Worker
from .tasks import Job, MapTimeout, Outcome, Partial, run_batch

Report = Callable[[Outcome], None]


def _caller() -> Worker:
    return Worker("caller", socket.gethostname(), os.getpid())


def _run_here(job: Job, tasks: list[Task], report: Report, partials: list[Partial]) -> None:
    local = Job(**{**job.__dict__, "local": True})
    for item in run_batch(local, tasks):
        if isinstance(item, Partial):
            partials.append(item)
        else:
            report(item)


def _deliver(items: list, report: Report, partials: list[Partial]) -> None:
    for item in items:
        if isinstance(item, Partial):
            partials.append(item)
        else:
            report(item)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.time())


class CallTimeout(TimeoutError):
    """The call's timeout expired before every map finished."""


class Engine:
    """Runs placed tasks. Subclasses give `workers` and `run`."""

    name = ""
    collective = False
    """Every process of the engine calls `execute` (MPI)."""

    def workers(self) -> list[Worker]:
        """Where tasks can go, besides the caller."""
        return []

    def hosts(self) -> set[str]:
        """The hosts maps may run on (the caller's and its workers')."""
        return {self.caller.host} | {w.host for w in self.workers()}

    @property
    def caller(self) -> Worker:
        return _caller()

    def run(self, job: Job, batches: dict[Worker, list[Task]], report: Report) -> list[Partial]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine started."""


class SerialEngine(Engine):
    """Every map in the calling process, in shard order."""

    name = "serial"

    def run(self, job, batches, report):
        partials: list[Partial] = []
        for tasks in batches.values():
            _run_here(job, tasks, report, partials)
        return partials


# ---------------------------------------------------------------- processes


def _pool_worker(conn) -> None:
    """A pool process: run batches until told to stop or the pipe closes."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg[0] == "stop":
            return
        _, job, tasks = msg
        for item in run_batch(job, tasks):
            conn.send(item)
        conn.send(("done",))


class _Pool:
    """Worker processes started with spawn, each with its own pipe."""

    def __init__(self, size: int):
        ctx = multiprocessing.get_context("spawn")
        self.procs, self.conns = [], []
        # Workers take this process's sys.path: put the h5pyvol this process
        # runs first, so that a source tree on the path (without the built
        # plugin) cannot shadow it.
        saved = list(sys.path)
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        try:
            for _ in range(size):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_pool_worker, args=(child,), daemon=True, name="h5pyvol-analysis")
                proc.start()
                child.close()
                self.procs.append(proc)
                self.conns.append(parent)
        finally:
            sys.path[:] = saved
        host = socket.gethostname()
        self.workers = [Worker(f"process-{i}", host, p.pid) for i, p in enumerate(self.procs)]
        self.broken = False
        self.environ = dict(os.environ)  # what the workers inherited (credentials, endpoints...)

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()

    def kill(self) -> None:
        self.broken = True
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
        for proc in self.procs:
            proc.join()


_pools: dict[int, _Pool] = {}
_pools_lock = threading.Lock()


@atexit.register
def _close_pools() -> None:
    while _pools:
        _, pool = _pools.popitem()
        pool.close()


class ProcessEngine(Engine):
    """A local pool of `workers` processes (default: the number of CPUs), kept
    between calls while the environment stays the same. Files of the memory
    connector cannot be opened there: their shards run in the calling process."""

    name = "processes"

    def __init__(self, workers: int | None = None):
        self.size = int(workers or os.cpu_count() or 1)
        if self.size < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")

    def _pool(self) -> _Pool:
        with _pools_lock:
            pool = _pools.get(self.size)
            if pool is not None and not pool.broken and pool.environ != os.environ:
                pool.close()  # connectors read credentials from the environment: start afresh
                pool = None
            if pool is None or pool.broken:
                pool = _pools[self.size] = _Pool(self.size)
            return pool

    def workers(self):
        return list(self._pool().workers)

    def hosts(self):
        return {self.caller.host}  # a local pool: no need to start it to know

    def run(self, job, batches, report):
        partials: list[Partial] = []
        if all(w == self.caller for w, tasks in batches.items() if tasks):  # memory files only: no pool needed
            _run_here(job, batches.get(self.caller, []), report, partials)
            return partials
        pool = self._pool()
        busy: dict[int, list[Task]] = {}
        for i, w in enumerate(pool.workers):
            if batches.get(w):
                pool.conns[i].send(("run", job, batches[w]))
                busy[i] = batches[w]
        mine = batches.get(self.caller, [])
        if mine:
            _run_here(job, mine, report, partials)
        failed = False
        done: set[int] = set()
        while busy:
            waiting = [pool.conns[i] for i in busy] + [pool.procs[i].sentinel for i in busy]
            ready = wait(waiting, timeout=_left(job.deadline))
            if not ready:
                pool.kill()
                shards = sorted(t.index for i in busy for t in busy[i] if t.index not in done)
                raise CallTimeout(f"the call timed out with shards {shards} unfinished; the worker processes "
                                  "were stopped")
            for i in list(busy):
                conn, proc = pool.conns[i], pool.procs[i]
                while i in busy and conn in ready and conn.poll():
                    try:
                        item = conn.recv()
                    except (EOFError, OSError):
                        break
                    if isinstance(item, Partial):
                        partials.append(item)
                    elif isinstance(item, Outcome):
                        done.add(item.index)
                        failed |= item.error is not None
                        report(item)
                    else:
                        del busy[i]
                if i in busy and proc.sentinel in ready and not proc.is_alive():
                    pool.broken = True
                    left = [t.index for t in busy.pop(i) if t.index not in done]
                    report(Outcome(left[0] if left else -1, error=(
                        f"worker process {proc.pid} died (exit code {proc.exitcode}) while mapping shards {left}")))
        if pool.broken:
            pool.kill()
        return partials


# ---------------------------------------------------------------- MPI


_private_comms: dict[int, Any] = {}
_mpi_calls = [0]


class MPIEngine(Engine):
    """The ranks of `comm` (default MPI.COMM_WORLD). Every rank calls `execute`
    with the same arguments; rank 0 plans and combines, every rank maps the
    shards placed on it, and every rank returns the same result."""

    name = "mpi"
    collective = True
    POLL = 0.002

    def __init__(self, comm: Any = None):
        from mpi4py import MPI

        user = comm if comm is not None else MPI.COMM_WORLD
        # A private duplicate (made once, collectively): our messages never
        # meet the program's own.
        key = user.py2f()
        if key not in _private_comms:
            _private_comms[key] = user.Dup()
        self.comm = _private_comms[key]
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        here = (MPI.Get_processor_name(), os.getpid())
        self._ranks = [Worker(f"rank-{r}", host, pid) for r, (host, pid) in enumerate(self.comm.allgather(here))]

    @property
    def caller(self) -> Worker:
        return self._ranks[self.rank]

    def workers(self):
        return list(self._ranks)

    def _tag(self) -> int:
        # One tag per call (every rank counts the same calls): a late message
        # of a call that failed or timed out is never taken for the next one's.
        return 1 + _mpi_calls[0] % 30000

    def _recv(self, source: int, deadline: float | None) -> Any:
        """A message from `source`, waiting no longer than `deadline`."""
        tag = self._tag()
        while not self.comm.iprobe(source=source, tag=tag):
            if deadline is not None and time.time() > deadline:
                raise CallTimeout(f"rank {self.rank} timed out waiting for rank {source}")
            time.sleep(self.POLL)
        return self.comm.recv(source=source, tag=tag)

    def _send(self, obj: Any, dest: int, deadline: float | None) -> None:
        """Send without blocking past `deadline` (a blocking send waits for the
        receiver, which may be gone)."""
        req = self.comm.isend(obj, dest=dest, tag=self._tag())
        while not req.Test():
            if deadline is not None and time.time() > deadline:
                req.Cancel()
                raise CallTimeout(f"rank {self.rank} timed out sending to rank {dest}")
            time.sleep(self.POLL)

    def start_call(self) -> None:
        _mpi_calls[0] += 1

    def run(self, job, batches, report):
        for r in range(1, self.size):
            self._send(("job", job, batches.get(self._ranks[r], [])), r, job.deadline)
        partials: list[Partial] = []
        _run_here(job, batches.get(self._ranks[0], []), report, partials)
        for r in range(1, self.size):
            try:
                items = self._recv(r, job.deadline)
            except CallTimeout as exc:
                raise CallTimeout(f"{exc} (its maps did not finish within the call's timeout)") from None
            _deliver(items, report, partials)
        return partials

    def finish(self, outcome: tuple, grace: float = 60.0) -> None:
        """Rank 0 hands ("result", Result) or ("error", exception) to the other ranks."""
        for r in range(1, self.size):
            self._send(outcome, r, time.time() + grace)

    def abort(self, exc: BaseException) -> None:
        """Rank 0 failed before running tasks: release the other ranks."""
        self.finish(("error", _portable(exc)))

    def follow(self, deadline: float | None) -> Any:
        """A rank other than 0: run what rank 0 sends, return its result."""
        msg = self._recv(0, deadline)
        if msg[0] == "job":
            _, job, tasks = msg
            items: list = []
            try:
                items = list(run_batch(job, tasks))
            finally:
                self._send(items, 0, None if deadline is None else deadline + 30)
            msg = self._recv(0, None if deadline is None else deadline + 30)
        if msg[0] == "error":
            raise msg[1]
        return msg[1]


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it pickles, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- Dask


def _dask_batch(job: Job, tasks: list[Task]) -> list:
    return list(run_batch(job, tasks))


def _host_and_pid() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


class DaskEngine(Engine):
    """The workers of a ``dask.distributed`` cluster: `client`, or a client
    for the scheduler at `address`, or the current default client."""

    name = "dask"

    def __init__(self, client: Any = None, address: str | None = None):
        import distributed

        if client is None and address is not None:
            client = distributed.Client(address)
        if client is None:
            try:
                client = distributed.get_client()
            except ValueError:
                raise ValueError("engine='dask' needs client=distributed.Client(...) or address='tcp://...' "
                                 "(or a default client)") from None
        self.client = client

    def workers(self):
        where = self.client.run(_host_and_pid)
        return [Worker(addr, host, pid) for addr, (host, pid) in sorted(where.items())]

    def run(self, job, batches, report):
        import distributed

        remote = pickle.loads(pickle.dumps(job))  # never the caller's open datasets, even in-process
        partials: list[Partial] = []
        futures = [self.client.submit(_dask_batch, remote, tasks, workers=[w.name], allow_other_workers=False,
                                      pure=False, key=f"h5pyvol-analysis-{job.call_id}-{w.name}")
                   for w, tasks in batches.items() if tasks and w != self.caller]
        mine = batches.get(self.caller, [])
        if mine:
            _run_here(job, mine, report, partials)
        try:
            distributed.wait(futures, timeout=_left(job.deadline))
        except (TimeoutError, distributed.TimeoutError):
            self.client.cancel(futures)
            raise CallTimeout("the call timed out before every Dask task finished; its tasks were cancelled") from None
        for fut in futures:
            if fut.status == "error":
                exc = fut.exception()
                report(Outcome(-1, error=f"a Dask task failed: {type(exc).__name__}: {exc}"))
                continue
            _deliver(fut.result(), report, partials)
        return partials


ENGINES = {"serial": SerialEngine, "processes": ProcessEngine, "mpi": MPIEngine, "dask": DaskEngine}


def get_engine(engine: str | Engine, **options: Any) -> Engine:
    """An engine by name (``serial``, ``processes``, ``mpi``, ``dask``) with its
    options (``workers=`` for processes; ``comm=`` for mpi; ``client=`` or
    ``address=`` for dask), or an Engine as given."""
    if isinstance(engine, Engine):
        if options:
            raise TypeError(f"unexpected options {sorted(options)} for an Engine instance")
        return engine
    cls = ENGINES.get(engine)
    if cls is None:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise TypeError(f"engine {engine!r}: {exc}") from None


__all__ = ["CallTimeout", "DaskEngine", "Engine", "MPIEngine", "MapTimeout", "ProcessEngine", "SerialEngine",
           "get_engine"]
