"""`shards(dataset)`: where the elements of any h5py Dataset are stored.

For a dataset served by h5pyvol the connector answers (`Dataset.shards`).
For a native HDF5 dataset (and under the passthru connector, which keeps
native files) the answer comes from HDF5's own layout: one shard per chunk of
a chunked dataset, with the chunk's file offset (H5Dget_chunk_info). Other
layouts are cut by the storage layer's default grid (`default_chunks`: whole
trailing rows), as every connector cuts a dataset without a chunk shape, so
one dataset gets the same grid everywhere; a contiguous dataset's pieces are
contiguous byte ranges of the file, each with its offset. Either way the
shards cover every element exactly once.
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
    return native_shards(dataset.id, dataset.file.filename)


def native_shards(dsid: h5d.DatasetID, filename: str) -> list[Shard]:
    """The shards of a dataset of a native HDF5 file (`dsid`, an open native dataset id)."""
    space = dsid.get_space()
    if space.get_simple_extent_type() == h5py.h5s.NULL:
        return []  # null dataspace: no elements
    shape = space.shape
    where = {"host": socket.gethostname(), "file": os.path.abspath(filename)}
    plist = dsid.get_create_plist()
    layout = plist.get_layout()
    if layout == h5d.CHUNKED:
        return _chunk_shards(dsid, ChunkGrid(shape, plist.get_chunk()), where)
    itemsize = dsid.get_type().get_size()  # as stored (a variable-length element is a heap reference)
    grid = ChunkGrid.for_array(shape, None, itemsize)
    if layout == h5d.CONTIGUOUS:
        base = dsid.get_offset()
        loc = {**where, "layout": "contiguous"}
        out = []
        for cid in grid.ids():
            box = grid.box(cid)
            n = _count(box) * itemsize
            if base is None:  # never written: no storage yet
                out.append(Shard(box, 0, None, loc, written=False))
            else:  # default chunks are whole trailing rows: one contiguous byte range each
                out.append(Shard(box, n, None, {**loc, "offset": base + _first(box, shape) * itemsize}))
        return out
    if layout == h5d.COMPACT:
        return [Shard(grid.box(c), _count(grid.box(c)) * itemsize, None, {**where, "layout": "compact"})
                for c in grid.ids()]
    return [Shard(grid.box(c), 0, None, {**where, "layout": "virtual"}) for c in grid.ids()]


def _count(box: tuple[slice, ...]) -> int:
    n = 1
    for s in box:
        n *= s.stop - s.start
    return n


def _first(box: tuple[slice, ...], shape: tuple[int, ...]) -> int:
    """The row-major position of a box's first element."""
    pos = 0
    for s, n in zip(box, shape, strict=True):
        pos = pos * n + s.start
    return pos


def _chunk_shards(dsid: h5d.DatasetID, grid: ChunkGrid, where: dict) -> list[Shard]:
    stored: dict[tuple[int, ...], Any] = {}

    def note(info) -> None:
        stored[grid.chunk_of(info.chunk_offset)] = info

    if hasattr(dsid, "chunk_iter"):
        dsid.chunk_iter(note)
    else:  # older HDF5: one call per chunk
        for i in range(dsid.get_num_chunks()):
            note(dsid.get_chunk_info(i))
    out = []
    for cid in grid.ids():
        info = stored.get(cid)
        if info is None:
            out.append(Shard(grid.box(cid), 0, None, {**where, "layout": "chunked"}, written=False))
        else:
            loc = {**where, "layout": "chunked", "offset": int(info.byte_offset), "filter_mask": int(info.filter_mask)}
            out.append(Shard(grid.box(cid), int(info.size), None, loc))
    return out
