"""Many writers: under MPI, the rank that ran a chunk writes its rows into an S3 or RADOS output itself
(``--many-writers``; off by default: rank 0 then writes every row).

The storage layer lets several processes write one S3 or RADOS file at once
(docs/s3-layout.md, "Many writers"): every writer's storage chunks and
datasets survive its commit, and for one storage chunk, or one extent, the
last commit wins. A storage chunk is the unit of a write: two ranks writing
different rows of one chunk would overwrite each other. So the engine gives
every storage chunk one writer at a time. Rank 0 still decides where every
row goes, in chunk order, as with one writer (`overlay.commit`).

- **What a worker keeps.** A worker runs a chunk and sends rank 0 the
  chunk's overlay without the middle of each span of rows the chunk appended
  to a *shared* dataset (one that existed after init, in the output file, with
  a chunked layout, not the generator's, not a ``ref_region``, not a
  reference dataset): rows from ``C - 1`` after the span's start to ``C - 1``
  before its end, ``C`` being the dataset's rows per storage chunk
  (`Own.withhold`). References always go to rank 0, which computes
  ``ref_region`` from them.
- **What it is handed.** Rank 0 commits the overlay (final offsets), then hands
  the worker the storage chunks that lie wholly inside rows the chunk wrote
  and no earlier chunk did (`Lead.place`): those inside each appended span,
  and those inside rows written in place past the dataset's length before the
  commit. Whatever the final offset, that covers every withheld row. The
  worker writes them at their final rows with references moved along
  (`Own.placed`), through its own handle of the output, opened once per run.
- **What rank 0 writes.** Every other storage chunk: the ends of spans
  (shared with neighbouring chunks' rows), rows written over earlier rows, the
  generator's rows, ``ref_region``, init and finish hooks, chunks rank 0 ran
  itself. Handed-over chunks are *away* in rank 0's `store.Table`: it does not
  write them, and reads them back from storage (`Lead.fetch`, through a
  handle of its own, `open_fresh`) if it ever needs their rows (a finish hook
  reading them, a later write over part of one).
- **Extents and commits.** Rank 0 owns extents. Before rank 0 flushes (a
  checkpoint, the end, or a read back), the workers handed chunks since the
  last time *sync* (`Lead.sync`): each grows its extents to rank 0's lengths,
  commits and answers. Rank 0's own commit comes after and sets every extent
  it handed rows of, so the last commit is rank 0's. Journal checkpoints follow
  rank 0's flush: ``--resume`` finds every row the journal counts.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import provenance
from .errors import FlowError
from .overlay import Overlay, placed_pieces

TAG_CTRL = 15  # rank 0 -> worker: "placed", "sync" (the worker's answers go with the scheduler's TAG_DONE)


def can_share(output) -> bool:
    """Whether `output` (an h5py File) is on a store where several processes may
    write one file at once: an h5pyvol chunked store with conditional commits."""
    try:
        import h5pyvol
        from h5pyvol.storage.chunked import ChunkedFile

        node = h5pyvol.node_of(output)
    except (ImportError, ValueError, TypeError):
        return False
    return isinstance(node, ChunkedFile) and bool(getattr(node.backend, "conditional", False))


def shared_datasets(store) -> dict[str, int]:
    """Rank 0, after init: the datasets other ranks may write storage chunks of,
    with their rows per storage chunk (see the module docstring)."""
    import h5py

    found: dict[str, int] = {}

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or obj.ndim == 0 or not obj.chunks or obj.maxshape[0] is not None:
            return
        path = name.strip("/")
        if path.split("/")[0] == provenance.GROUP or path.endswith("ref_region"):
            return
        if store.info(path).region_of is None:
            found[path] = int(obj.chunks[0])

    store.output.visititems(visit)
    return found


def open_fresh(opts) -> Any:
    """A read-only handle of the output (`engine.Options`) that sees what the other
    ranks committed. h5pyvol gives a process one view of a file per connector
    instance, and a reader through rank 0's instance would see rank 0's own
    view; there is one instance per distinct option string, so a write-cache
    size (unused when reading) that no other handle uses gives a fresh one."""
    from .datamanager import open_output

    options = opts.open_options()
    cache = int(options.get("write_cache_bytes", 128 << 20)) + 1
    return open_output(opts.output, "r", **dict(options, write_cache_bytes=str(cache)))


class Lead:
    """Rank 0's side: hands storage chunks over, syncs the workers, reads rows back."""

    def __init__(self, comm, store, outbox, serve, errors: list[str], shared: dict[str, int], open_reader) -> None:
        self.comm = comm
        self.store = store
        self.outbox = outbox
        self.serve = serve
        self.errors = errors
        self.shared = shared
        self.open_reader = open_reader
        self.unsynced: set[int] = set()  # workers handed chunks since the last sync
        self.handed: set[str] = set()  # datasets with chunks handed over, ever
        self.acks: set[tuple[int, int]] = set()  # (worker, sync token) answered
        self.token = 0
        self.syncing = False
        self.reader = None
        self.reader_token = -1
        self.rows_handed = 0
        self.bytes_handed = 0
        store.sync = self.sync
        store.fetch = self.fetch

    def before(self, ov: Overlay, generated) -> dict[str, int]:
        """The lengths, before `ov` is committed, of the shared datasets it writes."""
        return {p: self.store.length(p) for p in ov.pieces if p in self.shared and p not in generated}

    def place(self, chunk: int, rank: int, ov: Overlay, spans: dict, withheld: dict, before: dict[str, int]) -> None:
        """After rank `rank`'s chunk `chunk` is committed: hand it its storage chunks."""
        writes: list[tuple[str, int, int]] = []
        for path, length in before.items():
            runs = []
            span = spans.get(path)
            if span is not None:
                runs.append((span[0] + span[2], span[1] + span[2]))
            inside = (span[0], span[1]) if span is not None else (0, 0)
            runs += [(max(a, length), b) for a, b in _runs(ov.pieces[path], inside) if b > length]
            for a, b in runs:
                got = self.store.hand_over(path, a, b)
                if got is not None:
                    writes.append((path, *got))
        for path, (a, b) in withheld.items():
            shift = spans[path][2]
            if not any(p == path and lo <= a + shift and b + shift <= hi for p, lo, hi in writes):
                raise FlowError(f"chunk {chunk}: rows {a + shift}:{b + shift} of {path} stayed on rank {rank} "
                                "but were not handed to it (the ranks disagree on the storage chunks)")
        for path, lo, hi in writes:
            info = self.store.info(path)
            self.rows_handed += hi - lo
            self.bytes_handed += (hi - lo) * info.dtype.itemsize * int(np.prod(info.rowshape, dtype=np.int64))
            self.handed.add(path)
        # Sent even when nothing is handed over: the worker keeps the chunk's rows until it hears.
        self.outbox.send(("placed", chunk, spans, writes), dest=rank, tag=TAG_CTRL)
        if writes:
            self.unsynced.add(rank)

    def synced(self, rank: int, token: int) -> None:
        self.acks.add((rank, token))

    def sync(self) -> None:
        """Every worker handed chunks since the last sync stores them and commits,
        with rank 0's lengths as extents; returns when all have answered."""
        if not self.unsynced:
            return
        if self.syncing:
            raise FlowError("internal error: a sync was asked for while one was under way")
        self.syncing = True
        try:
            self.token += 1
            token = self.token
            lengths = {p: self.store.length(p) for p in sorted(self.handed)}
            waiting = sorted(self.unsynced)
            self.unsynced = set()
            for w in waiting:
                self.outbox.send(("sync", token, lengths), dest=w, tag=TAG_CTRL)
            delay = 2e-5
            while not all((w, token) in self.acks for w in waiting):
                if self.errors:
                    raise FlowError(self.errors[0])
                if self.serve():
                    delay = 2e-5
                    continue
                time.sleep(delay)
                delay = min(delay * 2, 2e-3)
            self.acks = {k for k in self.acks if k[1] != token}
        finally:
            self.syncing = False

    def fetch(self, path: str, a: int, b: int) -> np.ndarray:
        """Rows [a, b) of `path` as stored (after the workers stored theirs)."""
        if self.syncing:
            raise FlowError(f"internal error: rows {a}:{b} of {path} were read back during a sync")
        self.sync()
        if self.reader is None or self.reader_token != self.token:
            if self.reader is not None:
                self.reader.close()
            self.reader = self.open_reader()
            self.reader_token = self.token
        return self.reader[path][a:b]

    def close(self) -> None:
        self.store.sync = self.store.fetch = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None


def _runs(pieces: list, skip: tuple[int, int]) -> list[tuple[int, int]]:
    """The rows `pieces` cover, outside rows [skip), merged into runs."""
    spans = []
    for start, arr in pieces:
        end = start + len(arr)
        for a, b in ((start, min(end, skip[0])), (max(start, skip[1]), end)):
            if a < b:
                spans.append((a, b))
    spans.sort()
    runs: list[tuple[int, int]] = []
    for a, b in spans:
        if runs and a <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], b))
        else:
            runs.append((a, b))
    return runs


class Own:
    """A worker's side: keeps the middle of its appended rows, writes what it is handed."""

    def __init__(self, comm, outbox, output, shared: dict[str, int], profile, answer_tag: int) -> None:
        self.comm = comm
        self.outbox = outbox
        self.answer_tag = answer_tag
        self.output = output  # this rank's handle of the output, open in mode "a"
        self.shared = shared
        self.profile = profile
        self.dsets: dict[str, Any] = {}
        self.pending: dict[int, Overlay] = {}  # chunks sent, waiting for their places
        self.rows_written = 0
        self.bytes_written = 0

    def withhold(self, chunk: int, ov: Overlay, generated) -> tuple[Overlay, dict[str, tuple[int, int]]]:
        """What to send rank 0 for chunk `chunk`: the overlay less the rows this rank
        will write itself, and those rows per dataset, in the overlay's rows."""
        refs = {path for path, _, _, _ in ov.refs}
        cut = {}
        for path, (base, end) in ov.reserves.items():
            n = self.shared.get(path)
            if n and path not in generated and path not in refs and end - base > 2 * (n - 1):
                cut[path] = (base + n - 1, end - n + 1)
        self.pending[chunk] = ov
        return (ov.without(cut) if cut else ov), cut

    def _dset(self, path: str):
        d = self.dsets.get(path)
        if d is None:
            d = self.dsets[path] = self.output[path]
        return d

    def placed(self, chunk: int, spans: dict, writes: list[tuple[str, int, int]]) -> None:
        """Write the storage chunks rank 0 handed over for chunk `chunk`."""
        ov = self.pending.pop(chunk)
        with self.profile.time("write"):
            for path, lo, hi in writes:
                info = ov.info(path)
                rows = info.empty(hi - lo)
                for _, start, arr in placed_pieces(ov, spans, only=path):
                    a, b = max(lo, start), min(hi, start + len(arr))
                    if a < b:
                        rows[a - lo: b - lo] = arr[a - start: b - start]
                d = self._dset(path)
                if d.shape[0] < hi:
                    d.resize(hi, axis=0)
                d[lo:hi] = rows
                self.rows_written += hi - lo
                self.bytes_written += rows.nbytes

    def sync(self, token: int, lengths: dict[str, int]) -> None:
        """Grow the extents to rank 0's lengths, commit, answer."""
        with self.profile.time("write"):
            for path, n in lengths.items():
                d = self._dset(path)
                if d.shape[0] < n:
                    d.resize(n, axis=0)
            self.output.flush()
        self.outbox.send(("synced", token), dest=0, tag=self.answer_tag)

    def serve(self) -> bool:
        """Handle one message from rank 0 about writing, if there is one; True if it did."""
        if not self.comm.Iprobe(source=0, tag=TAG_CTRL):
            return False
        msg = self.comm.recv(source=0, tag=TAG_CTRL)
        if msg[0] == "placed":
            self.placed(*msg[1:])
        elif msg[0] == "sync":
            self.sync(*msg[1:])
        return True

    def close(self, patience: float = 60.0) -> None:
        """After rank 0's "finish": take in the last "placed" messages (another tag
        than "finish", so they may come after it), then close the output."""
        delay, deadline = 2e-5, time.monotonic() + patience
        while self.pending and time.monotonic() < deadline:
            if not self.serve():
                time.sleep(delay)
                delay = min(delay * 2, 2e-3)
        if self.pending:
            raise FlowError(f"chunks {sorted(self.pending)} were never placed by rank 0")
        self.output.close()
