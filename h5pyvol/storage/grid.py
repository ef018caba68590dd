"""The one chunk grid: how a dataset's extent is cut into chunks.

Every connector that stores chunks, and `h5pyvol.shards`, uses this grid, so a
dataset gets the same chunks on every store: the creation properties' chunk
shape when there is one, else `default_chunks`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

DEFAULT_CHUNK_BYTES = 4 << 20
"""The target size of a default chunk (before filters)."""


def default_chunks(shape: tuple[int, ...], itemsize: int, target: int = DEFAULT_CHUNK_BYTES) -> tuple[int, ...]:
    """The chunk shape of a dataset created without one: whole trailing rows,
    at most about `target` bytes, so that a chunk is one contiguous run of the
    row-major array. Zero-length dimensions count as 1."""
    chunk = []
    left = max(1, target // max(1, itemsize))
    for n in reversed(shape):
        c = max(1, min(max(1, int(n)), left))
        chunk.append(c)
        left = max(1, left // c)
    return tuple(reversed(chunk))


class ChunkGrid:
    """The chunks of an extent `shape` cut by `chunks` (same rank).

    A chunk is named by its grid coordinates (`cid`); its box is clipped to
    the extent. A scalar extent has one chunk, `()`.
    """

    __slots__ = ("shape", "chunks")

    def __init__(self, shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
        if len(shape) != len(chunks):
            raise ValueError(f"chunk shape {tuple(chunks)} does not have the rank of extent {tuple(shape)}")
        if any(int(c) < 1 for c in chunks):
            raise ValueError(f"chunk shape {tuple(chunks)} has a dimension below 1")
        self.shape = tuple(int(n) for n in shape)
        self.chunks = tuple(int(c) for c in chunks)

    @classmethod
    def for_array(cls, shape: tuple[int, ...], chunks: tuple[int, ...] | None, itemsize: int,
                  target: int = DEFAULT_CHUNK_BYTES) -> ChunkGrid:
        """The grid of an array: its own `chunks`, or `default_chunks`."""
        return cls(shape, tuple(chunks) if chunks else default_chunks(shape, itemsize, target))

    def __repr__(self) -> str:
        return f"ChunkGrid(shape={self.shape}, chunks={self.chunks})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChunkGrid) and (self.shape, self.chunks) == (other.shape, other.chunks)

    def __hash__(self) -> int:
        return hash((self.shape, self.chunks))

    @property
    def counts(self) -> tuple[int, ...]:
        """Chunks per dimension (0 along a zero-length dimension)."""
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunks, strict=True))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def ids(self) -> Iterator[tuple[int, ...]]:
        """Every chunk's grid coordinates, in row-major order."""
        return itertools.product(*(range(n) for n in self.counts))

    def box(self, cid: tuple[int, ...]) -> tuple[slice, ...]:
        """The elements of chunk `cid`, clipped to the extent, as slices."""
        return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(cid, self.chunks, self.shape, strict=True))

    def chunk_of(self, coords: tuple[int, ...]) -> tuple[int, ...]:
        """The chunk holding element `coords`."""
        return tuple(int(x) // c for x, c in zip(coords, self.chunks, strict=True))

    def pads(self, cid: tuple[int, ...]) -> bool:
        """Whether chunk `cid` reaches past the extent."""
        return any((i + 1) * c > n for i, c, n in zip(cid, self.chunks, self.shape, strict=True))
