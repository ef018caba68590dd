"""Datasets: the H5D callbacks and the general data path.

Owns: creating and opening datasets (filters' parameters completed as
native HDF5 completes them), reads and writes that the C fast path does not
serve (`fastpath` says which it does): selections, datatype conversion,
virtual datasets and lossy filters; the dataset's space, type and property
lists, storage size and extent.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from h5py import h5d, h5p, h5s, h5t

from .. import connector as api
from .. import datatypes, virtual
from .._hdf5 import borrow, dcpl_layout, decode_dcpl, detach, encode_dcpl, filters_as_created, through_native_filters
from ..selection import Selection
from .constants import H5D_SPACE_STATUS_ALLOCATED, H5D_SPACE_STATUS_NOT_ALLOCATED
from .handles import NodeHandle, close, opened_via
from .info import meta_from_ids, new_space, new_type
from .paths import new_node, open_node
from .plugin import plugin
from .references import refs


def dataset_create(h, loc, name, lcpl: int, type_id: int, space_id: int, dcpl: int, dapl: int) -> NodeHandle:
    meta = meta_from_ids(type_id, space_id, h, lambda blob: _dcpl_blob(dcpl, type_id, space_id, blob))
    dcpl_blob = meta.dcpl
    layout = dcpl_layout(dcpl_blob) if dcpl_blob else h5d.CONTIGUOUS
    if meta.maxshape is not None and layout not in (h5d.CHUNKED, h5d.VIRTUAL):
        raise ValueError("a dataset whose shape can change needs a chunked or virtual layout")
    if layout == h5d.CHUNKED and meta.chunks is not None and len(meta.chunks) != len(meta.shape):
        raise ValueError(f"chunk shape {meta.chunks} does not match the dataset's rank {len(meta.shape)}")
    state, node, path = new_node(h, loc, name, lcpl, lambda f: f.create_dataset(meta))
    handle = NodeHandle(state, node, path, opened_via(h))
    handle.dapl = borrow(dapl, h5p.PropDAID).copy() if dapl > 0 else None
    return handle


def _dcpl_blob(dcpl: int, type_id: int, space_id: int, type_blob: bytes) -> bytes:
    """The creation properties a new dataset keeps (b"": HDF5's defaults)."""
    if dcpl <= 0:
        return b""
    nfilters, fill_defined = plugin().dcpl_facts(dcpl)
    if not (nfilters or fill_defined or datatypes.has_vlen_encoded(type_blob)):
        return plugin().encode_plist(dcpl)
    # Filters get their parameters as native HDF5 completes them at creation;
    # fill values are kept as encode_dcpl describes.
    plist = filters_as_created(borrow(dcpl, h5p.PropDCID), type_id, space_id)
    return encode_dcpl(plist.id, type_id)


def dataset_open(h, loc, name: str, dapl: int) -> NodeHandle:
    handle = open_node(h, loc, name, api.Dataset, "a dataset", dapl)
    handle.dapl = borrow(dapl, h5p.PropDAID).copy() if dapl > 0 else None
    return handle


dataset_close = close


def _selection(space: int) -> Selection:
    quick = plugin().selection(space)  # all, none and regular hyperslabs, from C
    if quick is None:
        return Selection.from_space(borrow(space, h5s.SpaceID))
    if len(quick) == 1:  # a copy with h5py's selection offset folded in; ours to close
        return Selection.from_space(h5s.SpaceID(quick[0]))
    shape, kind, count, regular = quick
    return Selection(shape, kind, count, regular=regular)


def _fresh(h: NodeHandle) -> None:
    """Another handle may have resized the dataset since `h` cached its meta."""
    if h.node.meta is not h.meta:
        h._load_meta()


def _selections(shape: tuple[int, ...], mem_space: int, file_space: int) -> tuple[Selection, Selection, tuple]:
    """File and memory selections, and the memory buffer's extent."""
    fsel = Selection.everything(shape) if file_space == 0 else _selection(file_space)
    if mem_space == 0:
        return fsel, fsel, shape
    msel = _selection(mem_space)
    return fsel, msel, msel.shape


def _check_io(h: NodeHandle, fsel: Selection, msel: Selection) -> None:
    if fsel.count != msel.count:
        raise ValueError(
            f"the memory selection has {msel.count} elements but the file selection has {fsel.count}"
        )
    # A valid selection (HDF5 checked it against its own extent) of a space
    # shaped like the dataset needs no bounds check.
    if fsel.count and fsel.kind != "all" and fsel.shape != h.meta.shape:
        start, stop = fsel.bounds()
        if len(stop) != len(h.meta.shape) or any(s > d for s, d in zip(stop, h.meta.shape, strict=True)):
            raise ValueError(f"the selection (up to {stop}) lies outside the dataset's shape {h.meta.shape}")


def _view(buf, dtype: np.dtype, extent: tuple) -> np.ndarray:
    # numpy expands an array datatype into trailing dimensions.
    return np.frombuffer(buf, dtype=dtype).reshape(extent + dtype.shape)


def dxpl_of(dxpl: int):
    return borrow(dxpl, h5p.PropDXID) if dxpl > 0 else None


def _call(h: NodeHandle, mem_type: int, mem_space: int, file_space: int, addr: int, reading: bool):
    """What a read or write of the general path works with: (file selection,
    memory selection, memory extent, whether the types are equal, memory
    element size, HDF5's buffer)."""
    fsel, msel, extent = _selections(h.meta.shape, mem_space, file_space)
    _check_io(h, fsel, msel)
    equal, msize = plugin().same_type(mem_type, h.file_type_id)
    return fsel, msel, extent, equal, msize, plugin().buffer(addr, math.prod(extent) * msize, reading)


def dataset_read(h: NodeHandle, mem_type: int, mem_space: int, file_space: int, dxpl: int, addr: int) -> None:
    _fresh(h)
    if h.plan.virtual is not None:
        return virtual.read(h, mem_type, mem_space, file_space, dxpl, addr)
    fsel, msel, extent, equal, msize, buf = _call(h, mem_type, mem_space, file_space, addr, True)
    if fsel.count == 0:
        return
    if equal and h.plan.plain:
        mem = _view(buf, h.dtype, extent)
        target = mem if msel.kind == "all" else (mem[msel.index] if msel.is_basic else None)
        if target is not None and target.shape == fsel.result_shape + h.dtype.shape:
            h.node.read(fsel, target)
            return
        tmp = np.empty(fsel.result_shape, h.dtype)
        h.node.read(fsel, tmp)
        mem[msel.index] = tmp.reshape(msel.result_shape + h.dtype.shape)
        return
    mtype = borrow(mem_type, h5t.typewrap)
    tmp = np.empty(fsel.result_shape, h.dtype)
    h.node.read(fsel, tmp)
    if msel.kind == "all":
        datatypes.from_numpy(h.file_type, mtype, tmp, buf, dxpl_of(dxpl), refs=refs(h))
        return
    # Convert over the user's current bytes: they are HDF5's background for
    # compound members the file type lacks.
    elem = np.dtype((np.void, msize))
    mem = _view(buf, elem, extent)
    raw = np.ascontiguousarray(mem[msel.index])
    datatypes.from_numpy(h.file_type, mtype, tmp, raw, dxpl_of(dxpl), refs=refs(h))
    mem[msel.index] = raw


def dataset_write(h: NodeHandle, mem_type: int, mem_space: int, file_space: int, dxpl: int, addr: int) -> None:
    h.state.check_writable()
    _fresh(h)
    if h.plan.virtual is not None:
        return virtual.write(h, mem_type, mem_space, file_space, dxpl, addr)
    fsel, msel, extent, equal, msize, buf = _call(h, mem_type, mem_space, file_space, addr, False)
    if fsel.count == 0:
        return
    if equal and h.plan.plain:
        mem = _view(buf, h.dtype, extent)
        data = mem if msel.kind == "all" else mem[msel.index]
        _store(h, fsel, data.reshape(fsel.result_shape + h.dtype.shape))
        return
    mtype = borrow(mem_type, h5t.typewrap)
    stored = None
    if datatypes.keeps_stored_members(mtype, h.file_type):
        stored = np.empty(fsel.result_shape, h.dtype)
        h.node.read(fsel, stored)
    if msel.kind == "all":
        data = datatypes.to_numpy(mtype, h.file_type, buf, fsel.count, dxpl_of(dxpl), stored, refs=refs(h))
    else:
        elem = np.dtype((np.void, msize))
        gathered = np.ascontiguousarray(_view(buf, elem, extent)[msel.index])
        data = datatypes.to_numpy(mtype, h.file_type, gathered, fsel.count, dxpl_of(dxpl), stored, refs=refs(h))
    _store(h, fsel, data.reshape(fsel.result_shape + h.dtype.shape))


def _store(h: NodeHandle, fsel: Selection, data: np.ndarray) -> None:
    h.node.write(fsel, data)
    if h.plan.lossy:
        apply_lossy_filters(h, fsel)


def apply_lossy_filters(h: NodeHandle, fsel: Selection) -> None:
    """Leave in the chunks a write touched what native HDF5 would keep there.

    A lossy filter (scale-offset) changes values as it stores a chunk, while
    connectors keep elements as given; so each touched chunk is read back,
    passed through native HDF5 with the dataset's own creation properties
    (in memory) and stored again."""
    shape, chunks = h.meta.shape, h.meta.chunks
    if not chunks or fsel.count == 0:
        return
    start, stop = fsel.bounds()
    boxes, arrays = [], []
    for corner in itertools.product(*(range(a - a % c, b, c) for a, b, c in zip(start, stop, chunks, strict=True))):
        end = tuple(min(x + c, n) for x, c, n in zip(corner, chunks, shape, strict=True))
        box = Selection(shape, "hyperslab", math.prod(e - x for x, e in zip(corner, end, strict=True)),
                        regular=(corner, (1,) * len(shape), (1,) * len(shape),
                                 tuple(e - x for x, e in zip(corner, end, strict=True))))
        part = np.empty(box.result_shape, h.dtype)
        h.node.read(box, part)
        boxes.append((corner, end))
        arrays.append(part)
    kept = through_native_filters(h.meta.dcpl, h.file_type_id, shape, boxes, arrays)
    for (corner, end), part in zip(boxes, kept, strict=True):
        size = tuple(e - x for x, e in zip(corner, end, strict=True))
        h.node.write(Selection(shape, "hyperslab", part.size, regular=(corner, (1,) * len(shape), (1,) * len(shape),
                                                                       size)), part)


def dataset_get_space(h: NodeHandle) -> int:
    _fresh(h)
    if h.plan.virtual is not None:  # unlimited mappings follow their sources' extents
        return plugin().make_space(h.plan.virtual.shape(), h.meta.maxshape)
    return new_space(h.meta)


def dataset_get_type(h: NodeHandle) -> int:
    return new_type(h, h.file_type_id)


def dataset_get_dcpl(h: NodeHandle) -> int:
    if h.meta.dcpl:
        return detach(decode_dcpl(h.meta.dcpl, h.file_type_id))
    return detach(h5p.create(h5p.DATASET_CREATE))


def dataset_get_dapl(h: NodeHandle) -> int:
    """A copy of the access properties the dataset was opened with."""
    dapl = h.dapl.copy() if h.dapl is not None else h5p.create(h5p.DATASET_ACCESS)
    return detach(h.plan.virtual.access_plist(dapl) if h.plan.virtual is not None else dapl)


def dataset_get_storage_size(h: NodeHandle) -> int:
    return h.node.storage_size()


def dataset_get_space_status(h: NodeHandle) -> int:
    return H5D_SPACE_STATUS_ALLOCATED if h.node.is_allocated() else H5D_SPACE_STATUS_NOT_ALLOCATED


def dataset_set_extent(h: NodeHandle, addr: int) -> None:
    h.state.check_writable()
    if not h.meta.dcpl or dcpl_layout(h.meta.dcpl) != h5d.CHUNKED:
        raise ValueError("only a chunked dataset can change its shape")
    rank = len(h.meta.shape)
    dims = tuple(int(d) for d in np.frombuffer(plugin().buffer(addr, 8 * rank, False), dtype=np.uint64))
    limit = h.meta.maxshape or h.meta.shape
    for new, cap in zip(dims, limit, strict=True):
        if cap is not None and new > cap:
            raise ValueError(f"new shape {dims} exceeds the dataset's maximum shape {h.meta.maxshape or h.meta.shape}")
    h.node.resize(dims)
    h._load_meta()

