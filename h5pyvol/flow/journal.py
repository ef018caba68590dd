"""The per-chunk journal that makes ``--resume`` possible.

At each checkpoint the engine writes, in order: the old contents of rows
already in the file that the checkpoint overwrites (``undo`` records), then
the HDF5 writes and flush, then a ``checkpoint`` record with the chunks done
(and their slices) and every dataset's length. Each record is one JSON line,
fsync'd. After a crash the last checkpoint tells where to restart: datasets
are cut back to its lengths and later in-place writes are undone.

A kill during the HDF5 flush itself can leave a native HDF5 file unreadable
(HDF5 has no crash consistency); anywhere else, resuming gives the output of
an uninterrupted run.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from dataclasses import dataclass, field

import numpy as np


def journal_path(output: str) -> str:
    if "://" in output:
        return os.path.abspath(f".h5pyvol-flow-{hashlib.sha1(output.encode()).hexdigest()[:12]}.journal")
    return os.path.abspath(output) + ".flow-journal"


def _encode(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode()


def _decode(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


@dataclass
class ResumePoint:
    """Where an interrupted config stopped: chunks done, their slices, the
    dataset lengths at that point and the in-place writes to undo."""

    config: int
    lengths0: dict
    chunks: int = 0
    slices: list = field(default_factory=list)
    lengths: dict = field(default_factory=dict)
    undo: list = field(default_factory=list)
    record: str | None = None


class Journal:
    def __init__(self, path: str) -> None:
        self.path = path
        self.undo: list[tuple[str, int, np.ndarray]] = []
        self._fh = None

    def _write(self, record: dict) -> None:
        if self._fh is None:
            self._fh = open(self.path, "a")  # noqa: SIM115 - kept open for the run
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def collect_undo(self, path: str, start: int, old: np.ndarray) -> None:
        self.undo.append((path, start, np.array(old)))

    def start(self, config: int, lengths0: dict, record: str) -> None:
        self._write({"type": "start", "config": config, "lengths0": lengths0, "record": record})

    def before_flush(self, config: int) -> None:
        for path, start, old in self.undo:
            self._write({"type": "undo", "config": config, "path": path, "start": start, "data": _encode(old)})
        self.undo = []

    def checkpoint(self, config: int, chunks: int, new_slices: list, lengths: dict) -> None:
        self._write({"type": "checkpoint", "config": config, "chunks": chunks, "slices": new_slices,
                     "lengths": lengths})

    def finished(self, config: int) -> None:
        self._write({"type": "finished", "config": config})

    def close(self, remove: bool = False) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if remove and os.path.exists(self.path):
            os.remove(self.path)

    def read(self) -> tuple[set[int], ResumePoint | None]:
        """The configs finished and where the unfinished one stopped."""
        finished: set[int] = set()
        point: ResumePoint | None = None
        if not os.path.exists(self.path):
            return finished, None
        with open(self.path) as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    break  # a torn last line: the crash came while writing it
                kind = rec.get("type")
                if kind == "start":
                    finished.discard(rec["config"])  # a later pass of a config that finished once
                    point = ResumePoint(rec["config"], rec["lengths0"], lengths=dict(rec["lengths0"]),
                                        record=rec.get("record"))
                elif kind == "undo" and point is not None:
                    point.undo.append((rec["path"], rec["start"], _decode(rec["data"])))
                elif kind == "checkpoint" and point is not None:
                    point.chunks = rec["chunks"]
                    point.slices += [tuple(s) for s in rec["slices"]]
                    point.lengths = rec["lengths"]
                    point.undo = []  # the flush they guarded completed
                elif kind == "finished":
                    finished.add(rec["config"])
                    point = None
        return finished, point
