"""The storage layer shared by connectors that keep chunks as objects.

It owns what every chunked store needs and none should copy, one module each:

- `grid`: the one chunk grid (`ChunkGrid`) and `default_chunks`;
- `plan`: a selection cut by chunks (`Selection.chunk_tasks`), byte ranges;
- `codecs`: filters, chunk bytes, JSON values and dtypes;
- `records`: the JSON records of groups, datasets, links and attributes;
- `manifest`: the head protocol: conditional commits merged onto other
  writers' heads, garbage of only what a commit superseded, writer sessions;
- `backend`: what a storage system provides (`Backend`: bytes, heads, locations);
- `chunked`: the connector classes built on a backend (`ChunkedConnector`);
- `zones`: zone maps (per-chunk minimum and maximum) and `ChunkTracker`;
- `describe`: a dataset's JSON descriptor, and chunks decoded with it alone.

Backends (connectors/s3.py, connectors/rados.py) only move bytes.
"""

from .describe import decode_chunk, describe, fill_value
from .grid import DEFAULT_CHUNK_BYTES, ChunkGrid, default_chunks
from .zones import ChunkTracker, zone_of, zoned_bytes

__all__ = ["DEFAULT_CHUNK_BYTES", "ChunkGrid", "ChunkTracker", "decode_chunk", "default_chunks", "describe",
           "fill_value", "zone_of", "zoned_bytes"]
