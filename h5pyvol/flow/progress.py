"""What people watching a run see: a progress bar over all ranks (chunks,
rows, bytes, ETA) and a per-stage time profile, printed at the end and kept
in the output."""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import numpy as np


class Profile:
    """Seconds and calls per step (``generator``, each stage, ``requirements``, ``commit``, ``flush``...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] += seconds
        self.calls[step] += 1

    def merge(self, other: dict) -> None:
        for step, (seconds, calls) in other.items():
            self.seconds[step] += seconds
            self.calls[step] += calls

    def as_dict(self) -> dict:
        return {k: (self.seconds[k], self.calls[k]) for k in self.seconds}

    class _Timer:
        def __init__(self, profile: Profile, step: str) -> None:
            self.profile, self.step = profile, step

        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            self.profile.add(self.step, time.perf_counter() - self.t0)

    def time(self, step: str) -> Profile._Timer:
        return Profile._Timer(self, step)

    def table(self, wall: float) -> str:
        rows = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        width = max([len(k) for k, _ in rows] + [4])
        lines = [f"{'step':<{width}}  {'seconds':>9}  {'calls':>7}  {'ms/call':>8}"]
        for step, seconds in rows:
            calls = self.calls[step]
            lines.append(f"{step:<{width}}  {seconds:9.3f}  {calls:7d}  {1e3 * seconds / max(calls, 1):8.2f}")
        lines.append(f"{'wall':<{width}}  {wall:9.3f}")
        return "\n".join(lines)

    def attrs(self) -> dict:
        steps = sorted(self.seconds)
        return {"profile_steps": np.array(steps, dtype=object) if steps else np.array([], dtype="S1"),
                "profile_seconds": np.array([self.seconds[s] for s in steps], dtype="f8"),
                "profile_calls": np.array([self.calls[s] for s in steps], dtype="i8")}


class Progress:
    """A tqdm bar on stderr (rank 0): chunks done, with rows and bytes as postfix.
    Shown when stderr is a terminal, or when asked (`enabled=True`)."""

    def __init__(self, total: int | None, enabled: bool | None, desc: str) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar = None
        self.rows = 0
        self.nbytes = 0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="chunk", file=sys.stderr, smoothing=0.1, dynamic_ncols=True)

    def update(self, chunks: int, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.nbytes += nbytes
        if self.bar is not None:
            self.bar.update(chunks)
            self.bar.set_postfix_str(f"{self.rows} rows, {self.nbytes / 2**20:.1f} MiB", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
