"""Built-in reductions: count, sum, min, max, mean, histogram with fixed bins.

Each is a map (one partial result per block, over the values the query
selects) and an associative combine, usable on every engine. Because their
meaning is fixed, `h5pyvol.analysis.lua` can compile them with a query into
Lua that runs inside Ceph OSDs; the Python map here is the reference that
path is tested against, and the fallback everywhere else.

Semantics are numpy's on the selected values: sums of integers are exact
(combined as Python ints), sums of floats accumulate in float64; NaN
propagates through sum, mean, min and max and is never counted by a
histogram; min, max and mean of no values are None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LUA_DTYPES = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "f4", "f8"}
"""Little-endian element types the Lua path decodes (uint64 does not fit Lua's integers)."""


class Reduction:
    """A built-in map/combine pair over the values of one input (default: the first)."""

    name = ""
    associative = True

    def __init__(self, input: str | None = None):
        self.input = input

    def __call__(self, block) -> Any:
        return self.partial(block.values(self.input))

    def partial(self, values: np.ndarray) -> Any:
        raise NotImplementedError

    def combine(self, partials: list) -> Any:
        raise NotImplementedError

    def finish(self, combined: Any) -> Any:
        """The user-facing value from a combined partial."""
        return combined

    def to_dict(self) -> dict:
        return {"reduction": self.name, "input": self.input}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self))


def _is_int(values: np.ndarray) -> bool:
    return values.dtype.kind in "biu"


class Count(Reduction):
    """How many values the query selects."""

    name = "count"

    def partial(self, values):
        return int(values.size)

    def combine(self, partials):
        return sum(partials)


class Sum(Reduction):
    name = "sum"

    def partial(self, values):
        if _is_int(values):
            return int(values.sum(dtype=np.int64 if values.dtype.kind != "u" else np.uint64))
        return float(values.sum(dtype=np.float64))

    def combine(self, partials):
        return sum(partials) if partials else 0


class _Extreme(Reduction):
    """The least (Min) or greatest (Max) selected value; NaN if any is NaN."""

    pick = min

    def partial(self, values):
        if not values.size:
            return None
        return (values.min() if self.pick is min else values.max()).item()

    def combine(self, partials):
        found = [p for p in partials if p is not None]
        if any(isinstance(p, float) and math.isnan(p) for p in found):
            return math.nan
        return type(self).pick(found) if found else None


class Min(_Extreme):
    name = "min"
    pick = min


class Max(_Extreme):
    name = "max"
    pick = max


class Mean(Reduction):
    name = "mean"

    def partial(self, values):
        return (Sum.partial(self, values), int(values.size))

    def combine(self, partials):
        return (sum(p[0] for p in partials), sum(p[1] for p in partials))

    def finish(self, combined):
        total, count = combined
        return total / count if count else None


class Histogram(Reduction):
    """Counts of values in `bins` equal bins over ``range=(low, high)``, as
    numpy.histogram with those arguments counts float64 values (the last
    bin includes `high`; values outside the range, and NaN, are not counted)."""

    name = "histogram"

    def __init__(self, bins: int, range: tuple[float, float], input: str | None = None):
        super().__init__(input)
        low, high = float(range[0]), float(range[1])
        if int(bins) < 1:
            raise ValueError(f"a histogram needs at least one bin, not {bins}")
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"histogram range {range!r} must be finite with low < high")
        self.bins, self.range = int(bins), (low, high)

    @property
    def edges(self) -> np.ndarray:
        """The bin edges, as numpy.histogram gives them."""
        return np.linspace(self.range[0], self.range[1], self.bins + 1)

    def partial(self, values):
        counts, _ = np.histogram(values.astype(np.float64, copy=False), self.bins, self.range)
        return counts.astype(np.int64)

    def combine(self, partials):
        out = np.zeros(self.bins, np.int64)
        for p in partials:
            out += p
        return out

    def to_dict(self):
        return {**super().to_dict(), "bins": self.bins, "range": list(self.range)}


BUILTIN = {cls.name: cls for cls in (Count, Sum, Min, Max, Mean, Histogram)}
