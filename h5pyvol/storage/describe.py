"""A dataset's chunks described in JSON, and decoded with that description alone.

`describe(dataset)` gives, for any h5py Dataset (or connector dataset), a
plain-JSON *descriptor*:

    {"dtype": "<f8",                # codecs.dtype_to_json: numpy's type string, or an object
     "shape": [1000, 1000],         # the extent
     "chunks": [524, 1000],         # the chunk grid (h5pyvol.storage.ChunkGrid)
     "filters": [],                 # applied to stored chunks, in order: ["shuffle"], ["gzip", 6], ["fletcher32"]
     "fill_value": "AAAAAAAAAAA=",  # one element, as codecs.encode_values stores it
     "encoding": "raw",             # "raw": C-order bytes of the full chunk; "json": codecs values
     "order": "C"}

`decode_chunk(raw, descriptor)` turns a chunk's stored bytes (an S3 object, a
RADOS object, or a native file's chunk at its `Shard.location["offset"]`)
into a numpy array of the full chunk shape, without libhdf5: a worker that
has the descriptor and a storage client reads chunks on its own.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .codecs import decode_values, dtype_from_json, dtype_to_json, encode_values, pipeline, undo_filters
from .grid import ChunkGrid


def describe(dataset: Any) -> dict:
    """The JSON descriptor of a dataset's stored chunks (see the module docstring)."""
    import h5py

    from .. import connector as api

    node = dataset
    if isinstance(dataset, h5py.Dataset):
        from .._hdf5 import CONNECTOR_NAME, connector_name

        node = None
        if connector_name(dataset.id.id) == CONNECTOR_NAME:
            from .. import node_of

            node = node_of(dataset)
    if node is not None and hasattr(node, "descriptor"):
        return node.descriptor()
    if isinstance(node, api.Dataset):  # another connector: its array, cut by the default grid
        meta = node.meta
        dtype, shape, chunks, filters = meta.dtype, meta.shape, meta.chunks, []
        fill = None if meta.null else meta.replace(shape=(), maxshape=None).fill_array()
    elif isinstance(dataset, h5py.Dataset):  # native HDF5 (or passthru): the file's own chunks
        dtype, shape, chunks = dataset.dtype, dataset.shape or (), dataset.chunks
        filters = pipeline(dataset.id.get_create_plist()) if chunks else []
        fill = None if dataset.shape is None else np.array(dataset.fillvalue, dtype)
    else:
        raise TypeError(f"describe() takes an h5py Dataset, not {type(dataset).__name__}")
    grid = ChunkGrid.for_array(shape, chunks, dtype.itemsize)
    hdf5_vlen = dtype.hasobject and isinstance(dataset, h5py.Dataset) and node is None
    return {"dtype": dtype_to_json(dtype), "shape": list(shape), "chunks": list(grid.chunks), "filters": filters,
            "fill_value": None if fill is None else encode_values(fill, dtype),
            "encoding": "hdf5-vlen" if hdf5_vlen else ("json" if dtype.hasobject else "raw"), "order": "C"}


def fill_value(descriptor: dict) -> Any:
    """The dataset's fill value (a 0-d array; None for a null dataspace)."""
    if descriptor.get("fill_value") is None:
        return None
    return decode_values(descriptor["fill_value"], dtype_from_json(descriptor["dtype"]), ())


def decode_chunk(raw: bytes | memoryview, descriptor: dict, filter_mask: int = 0) -> np.ndarray:
    """A stored chunk as an array of the descriptor's full chunk shape.
    `filter_mask` (a native chunk's, from its shard) skips filters whose bit is set."""
    dtype = dtype_from_json(descriptor["dtype"])
    shape = tuple(descriptor["chunks"])
    encoding = descriptor.get("encoding", "raw")
    if encoding not in ("raw", "json"):
        raise ValueError(f"chunks of encoding {encoding!r} (HDF5's variable-length heap references) "
                         "cannot be decoded without libhdf5")
    filters = [f for i, f in enumerate(descriptor.get("filters") or []) if not filter_mask & (1 << i)]
    for f in filters:
        if f[0] not in ("shuffle", "gzip", "fletcher32"):
            raise ValueError(f"filter {f!r} cannot be undone without libhdf5")
    if filters and filters[-1][0] == "fletcher32":  # a checksum appended to the filtered bytes
        raw, filters = _fletcher32_strip(bytes(raw)), filters[:-1]
    if encoding == "json":
        raw = undo_filters(raw, [f for f in filters if f[0] != "shuffle"], 1)
        return decode_values(json.loads(bytes(raw)), dtype, shape)
    raw = undo_filters(raw, filters, dtype.itemsize)
    base = dtype.subdtype[0] if dtype.subdtype else dtype
    count = math.prod(shape) * (dtype.itemsize // base.itemsize)
    if len(raw) != count * base.itemsize:
        raise ValueError(f"{len(raw)} bytes are not a chunk of shape {shape} and dtype {dtype}")
    return np.frombuffer(raw, base, count).reshape(shape + dtype.shape)


def _fletcher32_strip(raw: bytes) -> bytes:
    if len(raw) < 4:
        raise ValueError("a fletcher32 chunk holds at least its 4-byte checksum")
    return raw[:-4]  # the checksum itself is not verified here
