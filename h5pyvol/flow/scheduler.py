"""Running a workflow's chunk loop: serially, or under MPI with chunks handed
out dynamically and no collective call inside the loop.

Under MPI, rank 0 runs the generator (its rows are final at once), sends each
chunk with the generator's overlay to a rank that has room (two chunks in
flight per rank), runs chunks itself when every other rank is busy, and
commits the stage overlays in chunk order (`overlay.commit` moves appended
rows and the references to them). Other ranks see the output as it was after
init (a snapshot; rows are fetched from rank 0 on demand). A rank with nothing
to do just waits for messages, so it cannot hold the others up. Rank 0 writes
the output; with ``--many-writers`` and an S3 or RADOS output the other ranks
write the storage chunks inside their chunks' rows themselves (`writers`).

Stages from the first one marked ``in_order`` on (a viewer gathering every
worker's rows, say) run on rank 0 as each chunk is committed, in chunk order.
A stage marked ``publish`` makes the engine write the output and a journal
checkpoint after every chunk, so readers see its rows as the run goes.

Only the components the reuse plan (`reuse`) says must run are run; the
others' outputs are already in the file.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import h5py

from . import components, provenance, reuse, writers
from .components import H5FlowGenerator
from .datamanager import H5FlowDataManager
from .errors import FlowError
from .overlay import Overlay, commit
from .progress import Progress
from .store import DatasetInfo, norm

log = logging.getLogger("h5pyvol.flow")

TAG_WORK, TAG_DONE, TAG_READ, TAG_DATA = 11, 12, 13, 14
IN_FLIGHT = 2


class Outbox:
    """Sends that never block: two ranks each sending a large message to the
    other with a blocking send would wait for each other forever."""

    def __init__(self, comm) -> None:
        self.comm = comm
        self.requests: list = []

    def send(self, msg, dest: int, tag: int) -> None:
        self.requests = [r for r in self.requests if not r.Test()]
        self.requests.append(self.comm.isend(msg, dest=dest, tag=tag))

    def drain(self) -> None:
        for r in self.requests:
            r.wait()
        self.requests = []


def _poll(comm, source: int, tag: int, serve=None):
    """Receive a message without MPI's busy wait (it would take a core from the other ranks)."""
    from mpi4py import MPI

    status = MPI.Status()
    delay = 2e-5
    while not comm.Iprobe(source=source, tag=tag, status=status):
        if serve is not None and serve():
            delay = 2e-5
            continue
        time.sleep(delay)
        delay = min(delay * 2, 2e-3)
    return status.Get_source(), status.Get_tag(), comm.recv(source=status.Get_source(), tag=status.Get_tag())


class SnapshotRows:
    """What a rank other than 0 sees below its overlays: the output after
    init (objects, attributes, lengths), with rows read from rank 0."""

    def __init__(self, comm, snapshot: dict) -> None:
        self.comm = comm
        self.objects: dict[str, tuple[str, DatasetInfo | None, int]] = snapshot["objects"]
        self.attrs_of: dict[str, dict] = snapshot["attrs"]
        self.visible: dict[str, int] = {}

    def show_generated(self, lengths: dict[str, int]) -> None:
        """The generator's rows up to the current chunk are final: let stages read them all
        (a stage may look back, e.g. over a rolling buffer of earlier events)."""
        self.visible = lengths

    def kind(self, path: str) -> str | None:
        got = self.objects.get(norm(path))
        return got[0] if got else ("group" if not norm(path) else None)

    def info(self, path: str) -> DatasetInfo:
        got = self.objects.get(norm(path))
        if not got or got[0] != "dataset":
            raise KeyError(f"no dataset {norm(path)!r} in the output")
        return got[1]

    def length(self, path: str) -> int:
        path = norm(path)
        return max(self.objects[path][2], self.visible.get(path, 0)) if path in self.objects else self.visible[path]

    def attrs(self, path: str) -> dict:
        if self.kind(path) is None:
            raise KeyError(f"no object {norm(path)!r} in the output")
        return dict(self.attrs_of.get(norm(path), {}))

    def read(self, path: str, a: int, b: int):
        self.comm.send((norm(path), a, b), dest=0, tag=TAG_READ)
        _, _, reply = _poll(self.comm, 0, TAG_DATA)
        if isinstance(reply, Exception):
            raise reply
        return reply


def snapshot(store, shared: dict[str, int] | None = None) -> dict:
    """The output's objects, attributes and lengths after init, for the other ranks
    (and, with many writers, the datasets they may write storage chunks of)."""
    objects: dict[str, Any] = {}
    attrs: dict[str, dict] = {}
    for f in [store.output] + ([store.scratch] if store.scratch is not None else []):
        def visit(name, obj):
            path = norm(name)
            if isinstance(obj, h5py.Dataset):
                info = store.info(path)
                objects[path] = ("dataset", info, store.length(path))
            else:
                objects[path] = ("group", None, 0)
            if len(obj.attrs):
                attrs[path] = dict(obj.attrs)

        f.visititems(visit)
    attrs[""] = dict(store.output.attrs)
    return {"objects": objects, "attrs": attrs, "shared": shared}


def execute(job) -> dict:
    """Run one WorkflowRun end to end on every rank; returns its summary."""
    t_start = time.perf_counter()
    comm, rank = job.comm, job.rank
    classes = job._classes()
    dm = H5FlowDataManager(job.opts.output, drop_list=job.wf.drop)
    error = None
    plan = None
    if rank == 0:
        try:
            records = job._component_records(classes)
            job.prepare_output(classes, records)
            dm._attach(job.store)
            if job.resume_point is not None:
                job._restore(job.resume_point)
            elif job.plan.run:
                job.record, job.run_id = provenance.start_record(job.store.output, job.wf.file, job.wf.text,
                                                                 records, job.size, job.plan.as_json())
            plan = (job.plan.run, job.plan.reused, job.plan.base_name)
        except Exception as exc:  # reported on every rank below
            error = exc
    if comm is not None:
        error_text, plan = comm.bcast((str(error) if error else None, plan), root=0)
        if error_text and error is None:
            raise FlowError(f"rank 0 failed: {error_text}")
    if error is not None:
        raise error
    if rank != 0:
        job.plan = reuse.Plan(None, plan[0], plan[1])
    if not job.plan.run:
        base = plan[2]
        if rank == 0:
            job.store.close()
            job.store.output.close()
            if not job.follow_up:
                print(f"{job.wf.file}: reusing {provenance.GROUP}/{base} (same classes, versions, parameters, "
                      "code and inputs); not run again")
        return {"config": job.wf.file, "status": "reused", "record": base}
    if rank == 0 and job.plan.reused:
        print(f"{job.wf.file}: {'running again after this run changed what they read: ' if job.follow_up else ''}"
              f"{job.plan.describe()}")
    job._build(classes, dm)
    if comm is None:
        _serial(job, dm)
    elif rank == 0:
        _coordinator(job, dm)
    else:
        _worker(job, dm)
    wall = time.perf_counter() - t_start
    summary = {"config": job.wf.file, "status": "finished", "record": job.record, "chunks": job.chunks_done,
               "rows": job.rows_done, "seconds": wall, "profile": job.profile.as_dict(), "ran": list(job.plan.run),
               "reused": list(job.plan.reused), "written_by_workers": job.written_by_workers}
    if rank == 0:
        _close(job, wall)
    if comm is not None:
        summary = comm.bcast(summary, root=0)
        if isinstance(summary, Exception):
            raise summary
    return summary


def _hooks(job, kind: str) -> list[tuple[str, Any, tuple, str, bool]]:
    """This rank's init or finish hooks, in order: (what, hook, its arguments, component, drop its writes)."""
    source = job.source
    res = [(f"resource {c}.{kind}", getattr(r, kind), (source,), c, job.resource_reused(c))
           for c, r in components.resources.items()]
    stages = [(f"stage {st.name!r}.{kind}", getattr(st, kind), (source,), st.name, False) for st in job.stages]
    gen = []
    if job.generator is not None:
        gen = [(f"generator {job.wf.source.name!r}.{kind}", getattr(job.generator, kind), (), job.wf.source.name,
                False)]
    return res + gen + stages if kind == "init" else gen + stages + res


def _init(job, dm: H5FlowDataManager) -> None:
    """Rank 0: every init hook as a unit of work, then a flush."""
    for what, fn, args, comp, discard in _hooks(job, "init"):
        job.unit(dm, what, fn, *args, component=comp, discard=discard)
    job.store.flush()
    if job.resume_point is not None:
        job.replay_generator(dm, job.resume_point)
    elif job.journal is not None:
        job.journal.start(job.index, job.lengths(), job.record)


def _finish_rank0(job, dm: H5FlowDataManager) -> None:
    for what, fn, args, comp, discard in _hooks(job, "finish"):
        job.unit(dm, what, fn, *args, component=comp, discard=discard)


def _generate(job, dm: H5FlowDataManager, chunk: int):
    """Rank 0: the generator's next chunk, committed at once (its rows are final)."""
    with job.profile_step("generator"):
        sl, gov = job.unit(dm, f"generator {job.wf.source.name!r}.next (chunk {chunk})", job.generator.next,
                           component=job.wf.source.name)
    if sl == H5FlowGenerator.EMPTY:
        return None, gov
    if not isinstance(sl, slice):
        raise FlowError(f"generator {job.wf.source.name!r}.next returned {sl!r}, not a slice")
    return sl, gov


def _progress(job) -> Progress:
    total = None
    try:
        total = len(job.generator) - (job.resume_point.chunks if job.resume_point else 0)
    except TypeError:
        pass
    return Progress(total, job.opts.progress, job.wf.source.name)


def _run_chunk(job, dm: H5FlowDataManager, below, sl: slice, chunk: int, parts) -> Overlay:
    """Run `parts` of the stages on one chunk into a new overlay over `below`."""
    ov = Overlay(below)
    dm._attach(job.store, ov)
    try:
        job.run_stages(dm, sl, chunk, parts)
    finally:
        dm._attach(job.store, None)
    return ov


def _serial(job, dm: H5FlowDataManager) -> None:
    _init(job, dm)
    progress = _progress(job)
    chunk = job.chunks_done
    try:
        while True:
            sl, gov = _generate(job, dm, chunk)
            if sl is None:
                break
            sov = _run_chunk(job, dm, job.store, sl, chunk, job.parts)
            with job.profile_step("commit"):
                commit(job.store, sov)
            job.chunk_committed(sl, gov.nbytes() + sov.nbytes(), progress)
            job.maybe_checkpoint(force=job.publishes)
            chunk += 1
    finally:
        progress.close()
    _finish_rank0(job, dm)


def _coordinator(job, dm: H5FlowDataManager) -> None:
    comm = job.comm
    outbox = Outbox(comm)
    workers = list(range(1, job.size))
    store = job.store
    try:
        _init(job, dm)
    except Exception as exc:
        comm.bcast(("error", str(exc)), root=0)
        raise
    shared = None
    if job.opts.many_writers and not job.tail and writers.can_share(store.output):
        shared = writers.shared_datasets(store)
    comm.bcast(("snapshot", snapshot(store, shared)), root=0)
    progress = _progress(job)
    in_flight: dict[int, int] = {}  # chunk -> rank
    load = dict.fromkeys(workers, 0)
    done: dict[int, tuple[Overlay, int, int, dict]] = {}  # chunk -> (overlay, bytes, rank, rows it kept)
    slices: dict[int, slice] = {}
    gen_nbytes: dict[int, int] = {}
    gen_paths: set[str] = set()
    gen_lengths: dict[int, dict] = {}
    next_chunk = next_commit = job.chunks_done
    exhausted = False
    errors: list[str] = []

    def serve() -> bool:
        """Answer one message if there is one; True if it did."""
        from mpi4py import MPI

        status = MPI.Status()
        if not comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            return False
        src, tag = status.Get_source(), status.Get_tag()
        msg = comm.recv(source=src, tag=tag)
        if tag == TAG_READ:
            path, a, b = msg
            try:
                reply = store.read(path, a, min(b, store.length(path)))
            except Exception as exc:  # goes back to the rank that asked
                reply = FlowError(f"reading {path}[{a}:{b}] on rank 0: {type(exc).__name__}: {exc}")
            outbox.send(reply, dest=src, tag=TAG_DATA)
        elif tag == TAG_DONE:
            kind = msg[0]
            if kind == "done":
                _, chunk, sov, nbytes, kept = msg
                done[chunk] = (sov, nbytes, src, kept)
                in_flight.pop(chunk, None)
                load[src] -= 1
            elif kind == "synced":
                lead.synced(src, msg[1])
            elif kind == "error":
                errors.append(msg[1])
            elif kind == "finished":
                finished[src] = msg[1:]
        return True

    def commit_ready() -> None:
        nonlocal next_commit
        while next_commit in done:
            sov, nbytes, src, kept = done.pop(next_commit)
            with job.profile_step("commit"):
                before = lead.before(sov, gen_lengths.get(next_commit, {})) if lead is not None and src else None
                spans = commit(store, sov, gen_paths)
                if before is not None:
                    lead.place(next_commit, src, sov, spans, kept, before)
            sl = slices.pop(next_commit)
            if job.tail:  # in-order stages: here, now that every earlier chunk is committed
                tov = _run_chunk(job, dm, store, sl, next_commit, job.tail)
                with job.profile_step("commit"):
                    commit(store, tov, gen_paths)
                nbytes += tov.nbytes()
            job.chunk_committed(sl, gen_nbytes.pop(next_commit, 0) + nbytes, progress)
            lengths = job.lengths()
            for path, n in gen_lengths.pop(next_commit, {}).items():
                lengths[path] = n
                for region in store.regions_of.get(path, []):
                    if region in lengths:
                        lengths[region] = n
            job.maybe_checkpoint(lengths, force=job.publishes)
            next_commit += 1

    finished: dict[int, tuple] = {}
    job.between_stages = serve
    lead = job.lead = None if shared is None else writers.Lead(
        comm, store, outbox, serve, errors, shared, lambda: writers.open_fresh(job.opts))
    try:
        while True:
            while serve():
                pass
            if errors:
                raise FlowError(errors[0])
            commit_ready()
            if not exhausted:
                free = [w for w in workers if load[w] < IN_FLIGHT]
                sl, gov = _generate(job, dm, next_chunk)
                if sl is None:
                    exhausted = True
                    continue
                gen_paths.update(gov.reserves)
                gen_lengths[next_chunk] = {p: store.length(p) for p in gen_paths}
                slices[next_chunk] = sl
                gen_nbytes[next_chunk] = gov.nbytes()
                if not job.head:  # every stage runs in order, here
                    done[next_chunk] = (Overlay(store), 0, 0, {})
                elif free:
                    target = min(free, key=lambda w: load[w])
                    outbox.send(("chunk", next_chunk, sl, gov, gen_lengths[next_chunk]), dest=target, tag=TAG_WORK)
                    load[target] += 1
                    in_flight[next_chunk] = target
                else:  # every other rank is busy: run this chunk here
                    sov = _run_chunk(job, dm, store, sl, next_chunk, job.head)
                    done[next_chunk] = (sov, sov.nbytes(), 0, {})
                next_chunk += 1
                continue
            if not in_flight and not done:
                break
            _poll_any(comm, serve)
        if lead is not None:  # every handed-over row is stored before the workers finish
            with job.profile_step("flush"):
                lead.sync()
    except Exception as exc:
        _abort_workers(comm, outbox, workers, f"stopped because another rank failed: {exc}", store)
        raise
    finally:
        progress.close()
    for w in workers:
        outbox.send(("finish",), dest=w, tag=TAG_WORK)
    try:
        _finish_rank0(job, dm)
    except Exception as exc:
        while len(finished) < len(workers) and not errors:  # take in their results so none waits on us
            _poll_any(comm, serve)
        if len(finished) == len(workers):  # they wait for the run's summary (`execute`): send the error instead
            outbox.drain()
            comm.bcast(FlowError(f"rank 0 failed: {exc}"), root=0)
        raise
    while len(finished) < len(workers) and not errors:
        _poll_any(comm, serve)
    if errors:
        _abort_workers(comm, outbox, [w for w in workers if w not in finished], errors[0], store)
        raise FlowError(errors[0])
    outbox.drain()
    for w in workers:
        ov, prof, access, req_access, cache_used, written = finished[w]
        job.written_by_workers = [a + b for a, b in zip(job.written_by_workers, written, strict=True)]
        with job.profile_step("commit"):
            commit(store, ov)
        job.profile.merge(prof)
        for mine, theirs in ((job.access, access), (job.req_access, req_access)):
            for name, acc in theirs.items():
                mine.setdefault(name, reuse.Access()).merge(acc)
        for name, keys in cache_used.items():
            job.cache_used.setdefault(name, set()).update(keys)


def _abort_workers(comm, outbox: Outbox, workers: list[int], reason: str, store) -> None:
    """Tell every other rank to stop, and take in what they still send until each has
    stopped, so no message is left in flight (a pending send would hang MPI at exit)."""
    from mpi4py import MPI

    for w in workers:
        outbox.send(("abort", reason), dest=w, tag=TAG_WORK)
    stopped: set[int] = set()
    status = MPI.Status()
    delay = 2e-5
    while len(stopped) < len(workers):
        if not comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            time.sleep(delay)
            delay = min(delay * 2, 2e-3)
            continue
        src, tag = status.Get_source(), status.Get_tag()
        msg = comm.recv(source=src, tag=tag)
        if tag == TAG_READ:
            outbox.send(FlowError(reason), dest=src, tag=TAG_DATA)
        elif tag == TAG_DONE and msg[0] == "aborted":
            stopped.add(src)
    outbox.drain()


def _poll_any(comm, serve) -> None:
    delay = 2e-5
    while not serve():
        time.sleep(delay)
        delay = min(delay * 2, 2e-3)


def _worker(job, dm: H5FlowDataManager) -> None:
    comm = job.comm
    outbox = Outbox(comm)
    kind, payload = comm.bcast(None, root=0)
    if kind == "error":
        raise FlowError(f"rank 0 failed: {payload}")
    base = SnapshotRows(comm, payload)
    own = None
    if payload["shared"] is not None:  # this rank writes rows of its chunks itself (module `writers`)
        own = writers.Own(comm, outbox, job._open("a"), payload["shared"], job.profile, TAG_DONE)
        job.between_stages = own.serve
    try:
        _work(job, dm, base, outbox, own)
    finally:
        if own is not None:
            own.output.close()


def _work(job, dm: H5FlowDataManager, base: SnapshotRows, outbox: Outbox, own: writers.Own | None) -> None:
    """A worker's init hooks, chunks and finish hooks."""
    comm = job.comm
    serve = own.serve if own is not None else None

    def stop(reason: str):
        outbox.send(("aborted",), dest=0, tag=TAG_DONE)
        outbox.drain()
        return FlowError(reason)

    def fail(text: str) -> FlowError:
        """Tell rank 0 this rank failed, wait for its abort, stop."""
        outbox.send(("error", text), dest=0, tag=TAG_DONE)
        _, _, msg = _poll(comm, 0, TAG_WORK)
        while msg[0] != "abort":  # rank 0 answers with abort
            _, _, msg = _poll(comm, 0, TAG_WORK)
        return stop(msg[1])

    def hooks(which: str, ov: Overlay) -> None:
        """Run init or finish hooks into `ov` (a reused resource's writes are dropped);
        on failure tell rank 0 and stop when it says so."""
        try:
            for what, fn, args, comp, discard in _hooks(job, which):
                dm._attach(None, Overlay(base) if discard else ov)
                job.track(dm, None if discard else comp)
                try:
                    _report(outbox, what, fn, *args)
                finally:
                    dm._access = None
        except FlowError:
            _, _, msg = _poll(comm, 0, TAG_WORK)
            while msg[0] != "abort":
                _, _, msg = _poll(comm, 0, TAG_WORK)
            stop(msg[1])
            raise

    # init runs here too (stages may set themselves up in it); its writes were rank 0's to make.
    hooks("init", Overlay(base))

    while True:
        try:
            _, _, msg = _poll(comm, 0, TAG_WORK, serve)
        except Exception as exc:  # writing rows rank 0 handed over (module `writers`)
            raise fail(f"rank {job.rank}: writing its rows into the output: {exc}") from exc
        if msg[0] == "abort":
            raise stop(msg[1])
        if msg[0] == "finish":
            break
        _, chunk, sl, gov, generated = msg
        base.show_generated(generated)
        gov.below = base
        sov = Overlay(gov)
        dm._attach(None, sov)
        try:
            job.run_stages(dm, sl, chunk, job.head)
        except Exception as exc:
            fail(f"rank {job.rank}: {exc}")
            raise
        sent, kept = own.withhold(chunk, sov, generated) if own is not None else (sov, {})
        outbox.send(("done", chunk, sent, sov.nbytes(), kept), dest=0, tag=TAG_DONE)
    written = (0, 0)
    if own is not None:  # rank 0 synced every placed chunk before it sent "finish"
        try:
            own.close()
        except Exception as exc:
            raise fail(f"rank {job.rank}: closing the output: {exc}") from exc
        written = (own.rows_written, own.bytes_written)
    ov = Overlay(base)
    hooks("finish", ov)
    outbox.send(("finished", ov, job.profile.as_dict(), job.access, job.req_access, job.cache_used, written),
                dest=0, tag=TAG_DONE)
    outbox.drain()
    dm._attach(None, None)


def _report(outbox: Outbox, what: str, fn, *args) -> None:
    from .engine import _call

    try:
        _call(what, fn, *args)
    except FlowError as exc:
        outbox.send(("error", f"rank {outbox.comm.Get_rank()}: {exc}\n{traceback.format_exc()}"), dest=0,
                    tag=TAG_DONE)
        raise


def _close(job, wall: float) -> None:
    """Rank 0: drop list, provenance, flush and close."""
    store = job.store
    job.drop_objects()
    store.flush()
    if job.lead is not None:
        job.lead.close()
    prof = job.profile
    provenance.finish_record(store.output, job.record, job.slices, job.access_record(), chunks=job.chunks_done,
                             rows=job.rows_done, wall_seconds=wall,
                             rows_written_by_other_ranks=job.written_by_workers[0], **prof.attrs())
    store.close()
    store.output.close()
    if job.journal is not None:
        job.journal.finished(job.index)
    if job.opts.profile:
        rate = job.rows_done / wall if wall > 0 else 0.0
        print(f"{job.wf.file}: {job.chunks_done} chunks, {job.rows_done} rows in {wall:.2f} s "
              f"({rate:,.0f} rows/s) on {job.size} rank(s)")
        if job.lead is not None:
            rows, nbytes = job.written_by_workers
            print(f"ranks 1-{job.size - 1} wrote {rows} rows ({nbytes / 2**20:.1f} MiB) of their chunks into the "
                  "output themselves")
        print(prof.table(wall))
