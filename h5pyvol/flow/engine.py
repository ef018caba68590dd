"""Running workflows: `run` loads each config, builds its components, runs
init, the chunk loop (`scheduler`) and finish, handles the drop list, reuse,
resume, the journal and the provenance record.

Rank 0 owns the output (`store.Store`); every unit of work (an init or
finish hook, a generator step, a chunk's stages) writes into an
`overlay.Overlay` that rank 0 commits in order.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from typing import Any

import numpy as np

from . import components, discovery, provenance, reuse
from .builtins import SliceList
from .config import Component, Requirement, Workflow, load_workflow
from .datamanager import H5FlowDataManager, open_output
from .dereference import dereference_chain, indices
from .errors import FlowError
from .journal import Journal, ResumePoint, journal_path
from .overlay import Overlay, commit
from .progress import Profile, Progress
from .store import CHUNK_BYTES, FLUSH_BYTES, Store, dropped, norm

log = logging.getLogger("h5pyvol.flow")

MPI_ENV = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_RANK")


def world(nompi: bool = False):
    """MPI.COMM_WORLD when launched by mpiexec with more than one rank (and not `nompi`), else None."""
    if nompi or os.environ.get("H5FLOW_NOMPI") or not any(v in os.environ for v in MPI_ENV):
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def _call(what: str, fn, *args):
    """Call a module's hook; an exception becomes a FlowError naming `what`."""
    try:
        return fn(*args)
    except FlowError as exc:
        raise FlowError(f"{what}: {exc}") from exc
    except Exception as exc:
        raise FlowError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def copy_tree(src_path: str, dst, options: dict) -> None:
    """Copy every object of an input file into the open output `dst` (any connector)."""
    import h5py

    with open_output(src_path, "r", **options) if "://" in src_path else h5py.File(src_path, "r") as src:
        dst.attrs.update(dict(src.attrs))

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out = dst.create_dataset(name, data=obj[()], maxshape=obj.maxshape, chunks=obj.chunks)
            else:
                out = dst.require_group(name)
            out.attrs.update(dict(obj.attrs))

        src.visititems(visit)


class Options:
    """One invocation's settings (the command-line flags)."""

    def __init__(self, output: str, input_filename: str | None = None, start_position: int | None = None,
                 end_position: int | None = None, drop: list[str] | None = None, resume: bool = False,
                 reuse: bool = True, connector: str | None = None, connector_options: dict | None = None,
                 progress: bool | None = None, profile: bool = True, flush_bytes: int = FLUSH_BYTES,
                 checkpoint_seconds: float = 30.0, journal: bool = True, many_writers: bool = False,
                 chunk_bytes: int = CHUNK_BYTES) -> None:
        self.output = output
        self.input_filename = input_filename
        self.start_position = start_position
        self.end_position = end_position
        self.drop = list(drop or [])
        self.resume = resume
        self.reuse = reuse
        self.connector = connector
        self.connector_options = dict(connector_options or {})
        self.progress = progress
        self.profile = profile
        self.flush_bytes = flush_bytes
        self.checkpoint_seconds = checkpoint_seconds
        self.journal = journal
        self.many_writers = many_writers  # under MPI on S3/RADOS, ranks write their chunks' rows (`writers`)
        if chunk_bytes < 1:
            raise FlowError(f"chunk_bytes must be at least 1 (got {chunk_bytes})")
        self.chunk_bytes = chunk_bytes  # storage chunk size target of the datasets the engine creates

    def open_options(self) -> dict:
        return dict(self.connector_options, **({"connector": self.connector} if self.connector else {}))


class StageCache(dict):
    """The cache a stage's ``run`` gets: a dict that notes which entries the
    stage looked at (`used`), so its record lists only the requirements it used."""

    __slots__ = ("used",)

    def __getitem__(self, key):
        self.used.add(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self.used.add(key)
        return dict.get(self, key, default)

    def __contains__(self, key) -> bool:
        self.used.add(key)
        return dict.__contains__(self, key)

    def _all(self):
        self.used.update(dict.keys(self))
        return self

    def __iter__(self):
        return dict.__iter__(self._all())

    def keys(self):
        return dict.keys(self._all())

    def values(self):
        return dict.values(self._all())

    def items(self):
        return dict.items(self._all())

    def copy(self) -> dict:
        return dict(self._all())


class ReplayedSource(SliceList):
    """Stands in for a reused generator: the chunks of the run it is reused
    from, whose rows are already in the output."""

    def __init__(self, slices) -> None:
        self.slices = [slice(int(a), int(b)) for a, b in slices]
        self.iteration = 0

    def init(self) -> None:
        pass

    def finish(self) -> None:
        pass


class WorkflowRun:
    """One config run into the output."""

    def __init__(self, wf: Workflow, index: int, opts: Options, comm, journal: Journal | None,
                 resume_point: ResumePoint | None) -> None:
        self.wf = wf
        self.index = index
        self.opts = opts
        self.comm = comm.Dup() if comm is not None else None  # this run's messages stay in this run
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.journal = journal if self.rank == 0 else None
        self.resume_point = resume_point
        self.profile = Profile()
        self.store: Store | None = None
        self.record: str | None = None
        self.run_id = ""
        self.plan: reuse.Plan | None = None
        self.access: dict[str, reuse.Access] = {}  # per component that runs
        self.req_access: dict[str, reuse.Access] = {}  # per requirement: what loading it reads
        self.cache_used: dict[str, set[str]] = {}  # per stage: the cache entries it looked at
        self.chunks_done = 0
        self.rows_done = 0
        self.slices: list[tuple[int, int]] = []  # every chunk's source slice, in order
        self._unjournaled: list[tuple[int, int]] = []
        self._last_checkpoint = time.monotonic()
        self.source = wf.source.dset_name
        self.between_stages = None  # under MPI, messages answered between stages
        self.lead = None  # rank 0 with many writers: `writers.Lead`
        self.written_by_workers = [0, 0]  # rows and bytes the other ranks wrote themselves
        self.follow_up = False  # a pass after a partial run (see `run`)

    # -- building ------------------------------------------------------------------------------
    def _classes(self) -> dict[str, type]:
        found = {}
        for comp in [self.wf.source, *self.wf.stages, *self.wf.resources]:
            found[comp.name] = discovery.find_class(comp.classname, comp.path, component=comp.name)
        return found

    def _component_records(self, classes: dict[str, type]) -> list[dict]:
        wf, opts = self.wf, self.opts
        recs = [provenance.component_record("resource", c.name, classes[c.name], c.params) for c in wf.resources]
        recs.append(provenance.component_record(
            "generator", wf.source.name, classes[wf.source.name], wf.source.params,
            {"dset_name": wf.source.dset_name, "input_identity": provenance.input_identity(opts.input_filename,
                                                                                           opts.output),
             "bounds": {"start": opts.start_position, "end": opts.end_position, "drop": wf.drop}}))
        recs += [provenance.component_record("stage", c.name, classes[c.name], c.params,
                                              {"requires": [r.as_dict() for r in c.requires]}) for c in wf.stages]
        return recs

    def _build(self, classes: dict[str, type], dm: H5FlowDataManager) -> None:
        """Make the resources, the generator (on rank 0) and the stages that run."""
        opts, wf, plan = self.opts, self.wf, self.plan
        components.resources.clear()
        for comp in wf.resources:
            cls = classes[comp.name]
            if not issubclass(cls, components.H5FlowResource):
                raise FlowError(f"resource {comp.classname}: the class does not inherit from H5FlowResource")
            components.resources[comp.classname] = _call(
                f"resource {comp.classname}", lambda cls=cls, comp=comp: cls(
                    classname=comp.classname, data_manager=dm, input_filename=opts.input_filename,
                    start_position=opts.start_position, end_position=opts.end_position, **comp.params))
        self.generator = None
        if self.rank == 0:
            if not plan.runs(wf.source.name):
                self.generator = ReplayedSource(plan.base["slices"])
            else:
                cls = classes[wf.source.name]
                self.generator = _call(f"generator {wf.source.name!r}", lambda: cls(
                    classname=wf.source.classname, dset_name=wf.source.dset_name, data_manager=dm,
                    input_filename=opts.input_filename, start_position=opts.start_position,
                    end_position=opts.end_position, **wf.source.params))
        self.stages = []
        self.parts: list[tuple[Any, list[Requirement]]] = []  # the stages that run, each with its cache's requirements
        for i, comp in enumerate(wf.stages):
            if not plan.runs(comp.name):
                continue
            cls = classes[comp.name]
            stage = _call(f"stage {comp.name!r}", lambda cls=cls, comp=comp: cls(
                classname=comp.classname, name=comp.name, data_manager=dm,
                requires=[r.as_dict() for r in comp.requires], **comp.params))
            self.stages.append(stage)
            self.parts.append((stage, [r for c in wf.stages[: i + 1] for r in c.requires]))
        # Stages from the first `in_order` one on run on rank 0, chunk by chunk in order, after the
        # chunk's earlier stages are committed (they see every earlier chunk's rows).
        first = next((i for i, (st, _) in enumerate(self.parts) if getattr(st, "in_order", False)), len(self.parts))
        self.head, self.tail = self.parts[:first], self.parts[first:]
        self.publishes = any(getattr(st, "publish", False) for st in self.stages)

    def resource_reused(self, classname: str) -> bool:
        return not self.plan.runs(classname)

    def track(self, dm: H5FlowDataManager, component: str | None) -> None:
        """Note what `dm` reads and writes from now on as `component`'s (None: nobody's)."""
        if component is None:
            dm._access = None
            return
        got = self.access.get(component)
        if got is None:
            got = self.access[component] = reuse.Access()
        dm._access = got

    # -- the cache ---------------------------------------------------------------------------------
    def _load_requirement(self, dm: H5FlowDataManager, req: Requirement, source_slice: slice, stage: str):
        path = req.path
        source = self.source
        what = f"stage {stage!r}: requirement {req.name!r} ({' -> '.join([source, *path])})"
        try:
            if dm.ref_exists(source, path[0]):
                chain = list(zip([source, *path[:-1]], path, strict=True))
            elif len(path) > 1:
                chain = list(zip(path[:-1], path[1:], strict=True))
            else:
                if not dm.dset_exists(path[0]):
                    raise FlowError(f"no dataset {path[0]!r} and no references from {source!r} to it")
                return indices(source_slice) if req.index_only else dm.get_dset(path[0])[source_slice]
            data = dm.get_dset(path[-1])
            refs, dirs = zip(*[dm.get_ref(p, c) for p, c in chain], strict=True)
            regions = [dm.get_ref_region(p, c) for p, c in chain]
            return dereference_chain(source_slice, refs, data=data, regions=regions, ref_directions=dirs,
                                     indices_only=req.index_only)
        except FlowError as exc:
            raise FlowError(f"{what}: {exc}") from exc
        except Exception as exc:
            raise FlowError(f"{what} could not be loaded: {type(exc).__name__}: {exc}") from exc

    def run_stages(self, dm: H5FlowDataManager, source_slice: slice, chunk: int, parts=None) -> None:
        """Run stages (`parts`, default all that run) on one chunk, into the data manager's current overlay."""
        cache = StageCache()
        has = dict.__contains__  # the engine's own look-ups are not the stage's
        source = self.source
        prof = self.profile
        req_access = self.req_access
        try:
            for stage, reqs in self.parts if parts is None else parts:
                t0 = time.perf_counter()
                names = {r.name for r in reqs}
                for key in [k for k in dict.keys(cache) if k not in names and k != source]:
                    del cache[key]
                if not has(cache, source):
                    dm._access = None
                    cache[source] = dm.get_dset(source)[source_slice]
                for req in reqs:
                    if not has(cache, req.name):
                        got = req_access.get(req.name)
                        dm._access = got if got is not None else req_access.setdefault(req.name, reuse.Access())
                        cache[req.name] = self._load_requirement(dm, req, source_slice, stage.name)
                used = self.cache_used.get(stage.name)
                cache.used = used if used is not None else self.cache_used.setdefault(stage.name, set())
                self.track(dm, stage.name)
                t1 = time.perf_counter()
                prof.add("requirements", t1 - t0)
                _call(f"stage {stage.name!r} on chunk {chunk} {source_slice}", stage.run, source, source_slice, cache)
                prof.add(stage.name, time.perf_counter() - t1)
                dm._access = None
                if self.between_stages is not None:
                    while self.between_stages():
                        pass
        finally:
            dm._access = None

    def stage_reads(self) -> dict[str, set[str]]:
        """Per stage that ran: what loading its source (whose chunks it runs on),
        its own requirements and the other cache entries it used read (the cache
        also holds earlier stages' requirements, as in h5flow)."""
        out = {}
        own = {c.name: {r.name for r in c.requires} for c in self.wf.stages}
        for stage, _ in self.parts:
            reads = {norm(f"{self.source}/data")}
            for key in own[stage.name] | self.cache_used.get(stage.name, set()):
                if key in self.req_access:
                    reads |= self.req_access[key].reads
            out[stage.name] = reads
        return out

    # -- rank 0: output, init, checkpoints, finish ------------------------------------------------------
    def _open(self, mode: str = "a"):
        return open_output(self.opts.output, mode, **self.opts.open_options())

    def prepare_output(self, classes: dict[str, type], records: list[dict]) -> None:
        """Open the output, plan what runs (`reuse`), copy the input for
        generators that ask for it, and delete what rerun components wrote before."""
        opts, wf = self.opts, self.wf
        names = [r["name"] for r in records]
        out = self._open()

        def exists(path: str) -> bool:
            return not norm(path) or norm(path) in out

        if self.resume_point is not None:
            self.record = self.resume_point.record
            self.run_id = str(out[provenance.GROUP][self.record].attrs.get("run_id", ""))
            self.plan = self._plan_of_record(out, names)
        elif opts.reuse:
            self.plan = reuse.make_plan(provenance.past_runs(out), records, exists)
        else:  # h5flow's behaviour: everything runs again, appending to what is there
            self.plan = reuse.Plan(None, names, [], {})
        if self.plan.base is not None:
            self.plan.base = dict(self.plan.base, slices=self.plan.base["slices"][()]
                                  if self.plan.base["slices"] is not None else np.zeros((0, 2), "i8"))
        inp = opts.input_filename
        gen = wf.source.name
        copies = getattr(classes[gen], "copies_input", False) and inp and inp != opts.output
        if copies and self.plan.runs(gen) and self.resume_point is None and self.plan.run:
            out.close()
            if "://" in inp or "://" in opts.output or opts.connector:
                with self._open("w") as dst:
                    copy_tree(inp, dst, opts.open_options())
            else:
                shutil.copyfile(inp, opts.output)
            out = self._open()
            self.plan = reuse.Plan(None, names, [], {})
            self._note_copied(out)
        elif self.resume_point is None and self.plan.run and self.plan.base is not None:
            deleted = reuse.cleanup(out, self.plan)
            log.info("deleted what the components that run again wrote before: %s", ", ".join(deleted) or "nothing")
        scratch = None if "://" in opts.output else os.path.dirname(os.path.abspath(opts.output))
        self.store = Store(out, self.wf.drop, scratch_dir=scratch, chunk_bytes=opts.chunk_bytes)

    def _plan_of_record(self, out, names: list[str]) -> reuse.Plan:
        """The plan an interrupted run was following (from its record)."""
        rec = out[provenance.GROUP][self.record]
        saved = json.loads(rec.attrs.get("plan", "{}"))
        base = next((r for r in provenance.past_runs(out) if r["name"] == saved.get("base")), None)
        if saved.get("base") and base is None:
            raise FlowError(f"cannot resume: the run {self.record} reused {saved['base']}, which is gone")
        run = saved.get("run", names)
        return reuse.Plan(base, run, [n for n in names if n not in run], saved.get("reasons", {}))

    def _note_copied(self, out) -> None:
        """The generator's copy of the input is the generator's output."""
        import h5py

        got = self.access.setdefault(self.wf.source.name, reuse.Access())

        def visit(name, obj):
            if name.split("/")[0] == provenance.GROUP:
                return
            if isinstance(obj, h5py.Dataset):
                got.writes.add(name)
            else:
                got.created.add(name)
                if len(obj.attrs):
                    got.set_attrs(name, obj.attrs.keys())

        out.visititems(visit)

    def lengths(self) -> dict[str, int]:
        store = self.store
        return {p: store.length(p) for p, t in store.tables.items() if store.route(p) is store.output}

    def unit(self, dm: H5FlowDataManager, what: str, fn, *args, forbid: set | None = None,
             component: str | None = None, discard: bool = False):
        """Run `fn` as one unit of work on rank 0 and commit it (or drop its writes: `discard`)."""
        ov = Overlay(self.store)
        dm._attach(self.store, ov)
        self.track(dm, None if discard else component)
        try:
            result = _call(what, fn, *args)
        finally:
            dm._attach(self.store, None)
            dm._access = None
        if not discard:
            with self.profile_step("commit"):
                commit(self.store, ov, forbid)
        return result, ov

    def profile_step(self, step: str):
        return self.profile.time(step)

    def chunk_committed(self, source_slice: slice, nbytes: int, progress: Progress) -> None:
        self.chunks_done += 1
        rows = max(0, (source_slice.stop or 0) - (source_slice.start or 0))
        self.rows_done += rows
        self.slices.append((source_slice.start, source_slice.stop))
        self._unjournaled.append((source_slice.start, source_slice.stop))
        progress.update(1, rows, nbytes)

    def maybe_checkpoint(self, lengths: dict | None = None, force: bool = False) -> None:
        """Write pending rows to the output and a journal checkpoint, when due
        (`force`: now; publishing stages ask for one every chunk)."""
        store = self.store
        due = store.pending_bytes() >= self.opts.flush_bytes or (
            time.monotonic() - self._last_checkpoint >= self.opts.checkpoint_seconds)
        if not (due or force):
            return
        with self.profile_step("flush"):
            if self.journal is not None:
                self.journal.before_flush(self.index)
            provenance.update_record(store.output, self.record, chunks=self.chunks_done, rows=self.rows_done)
            store.flush()
            if self.journal is not None:
                self.journal.checkpoint(self.index, self.chunks_done, self._unjournaled, lengths or self.lengths())
        self._unjournaled = []
        self._last_checkpoint = time.monotonic()

    def _restore(self, point: ResumePoint) -> None:
        """Cut the output back to the last checkpoint of an interrupted run."""
        store = self.store
        for path, start, old in reversed(point.undo):
            if store.kind(path) == "dataset":
                store.table(path).dset[start: start + len(old)] = old
        for path, n in point.lengths.items():
            if store.kind(path) == "dataset":
                store.table(path).truncate(int(n))
        store.output.flush()
        self.chunks_done = point.chunks
        self.slices = list(point.slices)
        self.rows_done = sum(max(0, b - a) for a, b in self.slices)

    def replay_generator(self, dm: H5FlowDataManager, point: ResumePoint) -> None:
        """Advance the generator past the chunks already done: its next() runs
        again over the lengths it saw then, and its writes are dropped."""
        replay = _ReplayRows(self.store, point.lengths0)
        for k in range(point.chunks):
            ov = Overlay(replay)
            dm._attach(self.store, ov)
            try:
                sl = _call(f"generator {self.wf.source.name!r} (replaying chunk {k} to resume)", self.generator.next)
            finally:
                dm._attach(self.store, None)
            if sl == components.H5FlowGenerator.EMPTY or (k < len(point.slices)
                                                          and (sl.start, sl.stop) != tuple(point.slices[k])):
                raise FlowError(f"cannot resume: the generator gave {sl} for chunk {k}, not {point.slices[k]} as "
                                "before (is it deterministic?)")
            replay.advance(ov)

    def access_record(self) -> dict:
        """Every component's access record for the provenance: its own from this
        run if it ran, else the one of the run it is reused from."""
        out = self.store.output
        earlier = reuse.written_stamps(provenance.past_runs(out))
        mine = reuse.stamp(self.record, self.run_id)
        for name in self.plan.run:
            acc = self.access.get(name)
            if acc is not None:
                for path in [*acc.writes, *acc.attrs]:
                    earlier[path] = mine
        stamp_of = reuse.stamp_function(earlier, lambda p: not norm(p) or norm(p) in out)
        cache_reads = self.stage_reads()
        records = {}
        base_access = self.plan.base["access"] if self.plan.base is not None else {}
        for comp in [*self.wf.resources, self.wf.source, *self.wf.stages]:
            if not self.plan.runs(comp.name):
                records[comp.name] = dict(base_access[comp.name])
                continue
            acc = self.access.get(comp.name) or reuse.Access()
            acc.reads |= cache_reads.get(comp.name, set())
            records[comp.name] = acc.record(mine, stamp_of)
        return records

    def drop_objects(self) -> None:
        """Delete dropped objects that are in the output itself (those created
        during the run went to the scratch file)."""
        store, out = self.store, self.store.output
        if not self.wf.drop:
            return
        doomed: list[str] = []
        out.visit(lambda name: doomed.append(name) if dropped(name, self.wf.drop) else None)
        for name in sorted(doomed, key=len):
            if any(name.startswith(d + "/") for d in doomed if d != name):
                continue
            if name in out:
                store.delete(name)
                log.info("dropped %s", name)


class _ReplayRows:
    """The rows a replayed generator sees: the output's objects, with lengths as they were."""

    def __init__(self, store: Store, lengths0: dict) -> None:
        self.store = store
        self.lens = {norm(k): int(v) for k, v in lengths0.items()}

    def kind(self, path):
        return self.store.kind(path)

    def info(self, path):
        return self.store.info(path)

    def attrs(self, path):
        return self.store.attrs(path)

    def length(self, path):
        path = norm(path)
        return self.lens.get(path, self.store.length(path))

    def read(self, path, a, b):
        return self.store.info(path).empty(b - a)

    def advance(self, ov: Overlay) -> None:
        for path, end in ov.ends.items():
            self.lens[path] = max(self.lens.get(path, 0), end)


def _setup_logging(verbose: int, rank: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logger = logging.getLogger("h5pyvol.flow")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"%(asctime)s (r{rank}) %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logging.getLogger().setLevel(level)


def run(configs: list[str] | str, output_filename: str, input_filename: str | None = None,
        start_position: int | None = None, end_position: int | None = None, verbose: int = 0,
        drop: list[str] | None = None, nompi: bool = False, **options: Any) -> list[dict]:
    """Run workflow `configs` in sequence into `output_filename` (h5flow's ``run``,
    plus `options` of `Options`: resume, reuse, connector, progress...).
    Returns one summary dict per config (on every rank)."""
    from . import scheduler
    from .compat import h5flow_compat

    if isinstance(configs, str):
        configs = [configs]
    comm = world(nompi)
    rank = comm.Get_rank() if comm is not None else 0
    components.RUNTIME.update(comm=comm, rank=rank, size=comm.Get_size() if comm is not None else 1)
    _setup_logging(verbose, rank)
    opts = Options(output_filename, input_filename, start_position, end_position, drop, **options)
    journal = Journal(journal_path(output_filename)) if rank == 0 and opts.journal else None
    finished: set[int] = set()
    point: ResumePoint | None = None
    if journal is not None:
        if opts.resume:
            finished, point = journal.read()
            if point is None and not finished:
                raise FlowError(f"--resume: no journal at {journal.path}; nothing to resume")
        elif os.path.exists(journal.path):
            os.remove(journal.path)  # a fresh run starts a fresh journal
    summaries = []
    with h5flow_compat():
        for index, config in enumerate(configs):
            if index > 0:
                opts.input_filename = output_filename
            wf = load_workflow(config, opts.drop)
            resume_point = point if point is not None and point.config == index else None
            skip = index in finished
            if comm is not None:
                skip = comm.bcast(skip, root=0)
            if skip:
                summaries.append({"config": config, "status": "done before (resumed past it)"})
                continue
            summary = scheduler.execute(WorkflowRun(wf, index, opts, comm, journal, resume_point))
            # A stage that ran may now write what a reused one read (its outputs are known only once it ran):
            # plan again against the run just finished until nothing is left to run.
            for _ in range(len(wf.stages) + 1):
                if summary["status"] != "finished" or not summary.get("reused"):
                    break
                job = WorkflowRun(wf, index, opts, comm, journal, None)
                job.follow_up = True
                again = scheduler.execute(job)
                if again["status"] != "finished":
                    break
                summary = dict(again, passes=summary.get("passes", 1) + 1)
            summaries.append(summary)
    if journal is not None:
        journal.close(remove=True)
    return summaries


__all__ = ["run", "Options", "WorkflowRun", "Component"]
