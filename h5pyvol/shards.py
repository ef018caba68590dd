"""`shards(dataset)`: where the elements of any h5py Dataset are stored.

For a dataset served by h5pyvol the connector answers (`Dataset.shards`).
For a native HDF5 dataset the answer comes from HDF5's own layout: one shard
per chunk of a chunked dataset, with the chunk's file offset
(H5Dget_chunk_info), or one shard for a contiguous, compact or virtual one.
Either way the shards cover every element exactly once.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import h5py
from h5py import h5d

from ._hdf5 import CONNECTOR_NAME, connector_name
from .connector import Dataset, Shard
from .storage.grid import ChunkGrid


def shards(dataset: Any) -> list[Shard]:
    """The shards of an h5py Dataset (or of a connector `Dataset`), in
    row-major order of their first element."""
    if isinstance(dataset, Dataset):
        return dataset.shards()
    if not isinstance(dataset, h5py.Dataset):
        raise TypeError(f"shards() takes an h5py Dataset, not {type(dataset).__name__}")
    if connector_name(dataset.id.id) == CONNECTOR_NAME:
        from . import node_of

        node = node_of(dataset)
        if not isinstance(node, Dataset):  # pragma: no cover - h5py Datasets are datasets
            raise TypeError(f"{dataset!r} is not served as a dataset")
        return node.shards()
    return native_shards(dataset)


def native_shards(dataset: h5py.Dataset) -> list[Shard]:
    """The shards of a dataset of a native HDF5 file (or one under passthru)."""
    if dataset.shape is None:
        return []  # null dataspace: no elements
    where = {"host": socket.gethostname(), "file": os.path.abspath(dataset.file.filename)}
    dsid = dataset.id
    layout = dsid.get_create_plist().get_layout()
    whole = tuple(slice(0, n) for n in dataset.shape)
    if layout == h5d.CHUNKED:
        return _chunk_shards(dataset, where)
    if layout == h5d.CONTIGUOUS:
        offset = dsid.get_offset()
        nbytes = dsid.get_storage_size()
        return [Shard(whole, nbytes, None, {**where, "layout": "contiguous", "offset": offset},
                      written=offset is not None)]
    kind = "compact" if layout == h5d.COMPACT else "virtual"
    return [Shard(whole, dsid.get_storage_size(), None, {**where, "layout": kind})]


def _chunk_shards(dataset: h5py.Dataset, where: dict) -> list[Shard]:
    grid = ChunkGrid(dataset.shape, dataset.chunks)
    stored: dict[tuple[int, ...], Any] = {}

    def note(info) -> None:
        stored[grid.chunk_of(info.chunk_offset)] = info

    if hasattr(dataset.id, "chunk_iter"):
        dataset.id.chunk_iter(note)
    else:  # older HDF5: one call per chunk
        for i in range(dataset.id.get_num_chunks()):
            note(dataset.id.get_chunk_info(i))
    out = []
    for cid in grid.ids():
        info = stored.get(cid)
        if info is None:
            out.append(Shard(grid.box(cid), 0, None, {**where, "layout": "chunked"}, written=False))
        else:
            loc = {**where, "layout": "chunked", "offset": int(info.byte_offset), "filter_mask": int(info.filter_mask)}
            out.append(Shard(grid.box(cid), int(info.size), None, loc))
    return out
