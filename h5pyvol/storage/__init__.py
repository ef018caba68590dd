"""The storage layer shared by connectors that keep chunks as objects.

It owns what every chunked store needs and none should copy: the chunk grid
(`grid`) and which chunks were written with their zone maps (`zones`).
Backends (S3, RADOS) only move bytes.
"""

from .grid import DEFAULT_CHUNK_BYTES, ChunkGrid, default_chunks
from .zones import ChunkTracker, zone_of

__all__ = ["DEFAULT_CHUNK_BYTES", "ChunkGrid", "ChunkTracker", "default_chunks", "zone_of"]
