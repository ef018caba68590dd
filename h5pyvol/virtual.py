"""Virtual datasets: HDF5's VIRTUAL layout on top of any connector.

A virtual dataset stores no elements. Its creation properties (kept by the
connector like any dcpl) map selections of its dataspace to selections of
source datasets, each named by a file ("." for its own file) and a path. As
native HDF5 does, a read fills the caller's buffer from each mapped source
through HDF5 itself (so the sources' own datatypes convert straight to the
memory type), the fill value goes where no source is mapped or found, and a
write goes to the sources and is refused if it touches unmapped elements.
Source files open through the virtual dataset's own file access properties,
so through the same connector, with its file's intent.

A mapping whose selections have an unlimited dimension follows its source's
current extent; the virtual dataset's extent in that dimension follows the
mappings (the dataset access property "view": the last available element, or
the first missing one).

Owns: the mappings of a virtual dataset, its current extent, and its read and
write paths. Not supported: "printf"-style mappings (`%b` in source names).
"""

from __future__ import annotations

import ctypes
import posixpath
from dataclasses import dataclass

from h5py import h5d, h5f, h5p, h5s

from ._hdf5 import borrow, decode_plist, lib
from .linked_files import VDS_PREFIX_ENV, candidate_names, expand_origin

UNLIMITED = h5s.UNLIMITED
MAX_NESTING = 16  # virtual datasets whose sources are virtual, and so on (a cycle never ends)
_nesting = 0
_too_deep: str | None = None  # the nesting error, while it travels back up through HDF5
H5F_ACC_RDWR, H5F_ACC_SWMR_READ = 0x1, 0x40


@dataclass
class Mapping:
    """One mapping: a selection of the virtual dataset and its source."""

    virtual: h5s.SpaceID
    file_name: str
    dset_name: str
    source: h5s.SpaceID
    virtual_unlim: int  # the unlimited dimension of each selection, or -1
    source_unlim: int


@dataclass
class Source:
    """A mapping made ready for one I/O call: its open source dataset and
    both selections clipped to the current extents."""

    dset: h5d.DatasetID
    virtual: h5s.SpaceID
    source: h5s.SpaceID


def _unlimited_dim(space: h5s.SpaceID) -> int:
    if space.get_select_type() != h5s.SEL_HYPERSLABS or not space.is_regular_hyperslab():
        return -1
    _, _, count, block = space.get_regular_hyperslab()
    for dim, (c, b) in enumerate(zip(count, block, strict=True)):
        if c == UNLIMITED or b == UNLIMITED:
            return dim
    return -1


def mappings(dcpl: bytes) -> list[Mapping]:
    """The mappings in serialized virtual dataset creation properties."""
    plist = decode_plist(dcpl)
    found = []
    for i in range(plist.get_virtual_count()):
        virtual, source = plist.get_virtual_vspace(i), plist.get_virtual_srcspace(i)
        file_name = plist.get_virtual_filename(i)
        dset_name = plist.get_virtual_dsetname(i)
        mapping = Mapping(virtual, file_name, dset_name, source, _unlimited_dim(virtual), _unlimited_dim(source))
        if mapping.virtual_unlim >= 0 and mapping.source_unlim < 0:
            raise NotImplementedError(
                f"virtual dataset mapping {i} is printf-style (source {file_name!r}:{dset_name!r} named per block); "
                "h5pyvol does not follow such mappings"
            )
        found.append(mapping)
    return found


# ------------------------------------------------- unlimited selections
# One dimension of a regular hyperslab: (start, stride, count, block), where
# count or block may be UNLIMITED. These follow HDF5's clipping rules.


def _dim(space: h5s.SpaceID, dim: int) -> tuple[int, int, int, int]:
    start, stride, count, block = space.get_regular_hyperslab()
    return start[dim], stride[dim], count[dim], block[dim]


def _clipped_dim(start: int, stride: int, count: int, block: int, extent: int) -> tuple[int, int]:
    """(count, block) of an unlimited dimension clipped to `extent`."""
    if start >= extent:
        return 0, 0
    if block == UNLIMITED or block == stride:
        return 1, extent - start
    return (extent - start + stride - 1) // stride, block


def _slices_within(start: int, stride: int, count: int, block: int, extent: int) -> int:
    """How many positions of the unlimited dimension lie within `extent`."""
    count, block = _clipped_dim(start, stride, count, block, extent)
    if count == 0 or block == 0:
        return 0
    span = stride * (count - 1) + block
    return count * block - max(0, span - (extent - start))


def _extent_for(start: int, stride: int, count: int, block: int, slices: int, incl_trail: bool) -> int:
    """The extent at which an unlimited dimension holds `slices` positions."""
    if slices == 0:
        return start if incl_trail else 0
    if block == UNLIMITED or block == stride:
        return start + slices
    full, rest = divmod(slices, block)
    if rest:
        return start + full * stride + rest
    return start + full * stride if incl_trail else start + (full - 1) * stride + block


def _clip(space: h5s.SpaceID, unlim: int, extent: int, dims: tuple[int, ...]) -> h5s.SpaceID:
    """A finite copy of an unlimited selection: what lies below `extent` in
    its unlimited dimension, in a dataspace of shape `dims`."""
    start, stride, count, block = (list(v) for v in space.get_regular_hyperslab())
    out = h5s.create_simple(dims, tuple(UNLIMITED for _ in dims))
    s, t, c, b = start[unlim], stride[unlim], count[unlim], block[unlim]
    c, b = _clipped_dim(s, t, c, b, extent)
    if c == 0:
        out.select_none()
        return out
    last = s + (c - 1) * (t if c > 1 else 0)
    partial = min(b, extent - last)
    full = c if partial == b else c - 1
    out.select_none()
    if full:
        count[unlim], block[unlim], stride[unlim] = full, b, max(t, 1) if full > 1 else 1
        out.select_hyperslab(tuple(start), tuple(count), tuple(stride), tuple(block), h5s.SELECT_OR)
    if partial != b:
        start[unlim], count[unlim], block[unlim] = last, 1, partial
        stride[unlim] = 1
        out.select_hyperslab(tuple(start), tuple(count), tuple(stride), tuple(block), h5s.SELECT_OR)
    return out


def _with_extent(space: h5s.SpaceID, like: h5s.SpaceID) -> h5s.SpaceID:
    """A copy of a selection in the extent of `like`."""
    out = space.copy()
    out.extent_copy(like)
    return out


def _nested(io):
    """Run one I/O call on the sources, refusing endless nesting (a source
    that maps, directly or not, onto its own virtual dataset)."""

    def guarded(*args):
        global _nesting, _too_deep
        if _nesting >= MAX_NESTING:
            _too_deep = f"virtual dataset sources nest more than {MAX_NESTING} deep (do they form a cycle?)"
            raise RecursionError(_too_deep)
        _nesting += 1
        try:
            return io(*args)
        finally:
            _nesting -= 1
            if not _nesting:
                _too_deep = None

    guarded.__doc__ = io.__doc__
    return guarded


# ------------------------------------------------- the dataset


class VirtualDataset:
    """The virtual layout of one open dataset handle (`h`: a bridge NodeHandle)."""

    def __init__(self, h) -> None:
        self.h = h
        self._mappings: list[Mapping] | None = None

    @property
    def mappings(self) -> list[Mapping]:
        # parsed on first use: a mapping it cannot serve fails I/O, not H5Dopen
        if self._mappings is None:
            self._mappings = mappings(self.h.meta.dcpl)
        return self._mappings

    @property
    def unlimited(self) -> bool:
        return any(m.virtual_unlim >= 0 for m in self.mappings)

    # -- access properties

    def _dapl(self) -> h5p.PropDAID | None:
        return self.h.dapl

    def _first_missing(self) -> bool:
        dapl = self._dapl()
        return dapl is not None and dapl.get_virtual_view() == h5d.VDS_FIRST_MISSING

    def _prefix(self) -> str | None:
        dapl = self._dapl()
        prefix = dapl.get_virtual_prefix() if dapl is not None else b""
        return prefix.decode("utf-8", "surrogateescape") if prefix else None

    def access_plist(self, dapl: h5p.PropDAID) -> h5p.PropDAID:
        """`dapl` as H5Dget_access_plist reports it: with the prefix in use
        (`${ORIGIN}` expanded)."""
        prefix = self._prefix()
        if prefix:
            expanded = expand_origin(prefix, self.h.state.name)
            dapl.set_virtual_prefix(expanded.encode("utf-8", "surrogateescape"))
        return dapl

    # -- sources

    def _open_source(self, mapping: Mapping) -> h5d.DatasetID | None:
        """The source dataset, opened through HDF5; None if its file or the
        dataset is not there (HDF5 then reads the fill value)."""
        state = self.h.state
        flags = (H5F_ACC_RDWR if state.writable else 0) | (state.swmr & H5F_ACC_SWMR_READ)
        if mapping.file_name == ".":
            name = state.name
        else:
            conn = state.connector
            from .bridge.handles import open_files  # the files open in this process, by connector

            tried = candidate_names(mapping.file_name, state.name, self._prefix(), VDS_PREFIX_ENV)
            name = next((n for n in tried if (id(conn), n) in open_files or conn.exists(n)), None)
            if name is None:
                return None
        try:
            fid = h5f.open(name.encode("utf-8", "surrogateescape"), flags, fapl=state.fapl)
        except OSError:
            return None
        try:
            path = posixpath.normpath(mapping.dset_name) if mapping.dset_name.startswith("/") else mapping.dset_name
            return h5d.open(fid, path.encode("utf-8", "surrogateescape"))
        except (KeyError, OSError, ValueError):
            return None
        finally:
            fid.close()  # the open dataset keeps its file open

    def _clip_extent(self, mapping: Mapping, dset: h5d.DatasetID | None) -> int:
        """The virtual extent, in the mapping's unlimited dimension, that its
        source (as large as it is now) fills."""
        if dset is None:
            return 0
        available = dset.shape[mapping.source_unlim]
        slices = _slices_within(*_dim(mapping.source, mapping.source_unlim), available)
        return _extent_for(*_dim(mapping.virtual, mapping.virtual_unlim), slices, self._first_missing())

    @_nested
    def shape(self, opened: dict[int, h5d.DatasetID | None] | None = None) -> tuple[int, ...]:
        """The current extent: the stored one, with unlimited dimensions set
        by the mappings' sources as HDF5 sets them."""
        stored = tuple(self.h.meta.shape)
        if not self.unlimited:
            return stored
        opened = {} if opened is None else opened
        found: dict[int, int] = {}
        first_missing = self._first_missing()
        for i, m in enumerate(self.mappings):
            if m.virtual_unlim < 0:
                continue
            if i not in opened:
                opened[i] = self._open_source(m)
            clip = self._clip_extent(m, opened[i])
            old = found.get(m.virtual_unlim)
            if old is None or (clip < old if first_missing else clip > old):
                found[m.virtual_unlim] = clip
        shape = list(stored)
        for dim, size in found.items():
            shape[dim] = max(size, self._min_extent(dim))
        return tuple(shape)

    def _min_extent(self, dim: int) -> int:
        """The extent in `dim` that the mappings need whatever their sources
        hold (HDF5's minimum dimensions: unlimited dimensions do not count)."""
        least = 0
        for m in self.mappings:
            if m.virtual_unlim == dim or not m.virtual.get_select_npoints():
                continue
            if m.virtual_unlim >= 0:  # bounds of a limited dimension of an unlimited hyperslab
                start, stride, count, block = _dim(m.virtual, dim)
                least = max(least, start + (count - 1) * stride + block)
            elif m.virtual.get_select_type() in (h5s.SEL_HYPERSLABS, h5s.SEL_POINTS):
                least = max(least, m.virtual.get_select_bounds()[1][dim] + 1)
        return least

    def sources(self) -> tuple[tuple[int, ...], list[Source]]:
        """The current extent, and every mapping whose source is there, with
        its selections clipped to the current extents."""
        opened: dict[int, h5d.DatasetID | None] = {}
        shape = self.shape(opened)
        dims = h5s.create_simple(shape, tuple(UNLIMITED for _ in shape))
        ready = []
        for i, m in enumerate(self.mappings):
            dset = opened[i] if i in opened else self._open_source(m)
            if dset is None:
                continue
            src_dims = dset.shape
            if m.virtual_unlim < 0:
                ready.append(Source(dset, _with_extent(m.virtual, dims), _with_extent(m.source, dset.get_space())))
                continue
            # Both selections hold as many positions as the source (LAST_AVAILABLE)
            # or the virtual extent (FIRST_MISSING) allows.
            src_slices = _slices_within(*_dim(m.source, m.source_unlim), src_dims[m.source_unlim])
            virt_slices = _slices_within(*_dim(m.virtual, m.virtual_unlim), shape[m.virtual_unlim])
            slices = min(src_slices, virt_slices)
            v_extent = _extent_for(*_dim(m.virtual, m.virtual_unlim), slices, False)
            s_extent = _extent_for(*_dim(m.source, m.source_unlim), slices, False)
            virtual = _clip(m.virtual, m.virtual_unlim, v_extent, shape)
            source = _clip(m.source, m.source_unlim, s_extent, src_dims)
            ready.append(Source(dset, virtual, source))
        return shape, ready


def _project(src: h5s.SpaceID, dst: h5s.SpaceID, within: h5s.SpaceID) -> h5s.SpaceID:
    """The elements of `dst` that correspond (in selection order) to the
    elements of `src` inside the selection `within` (H5Sselect_project_intersection)."""
    return h5s.SpaceID(
        _check(lib().H5Sselect_project_intersection(src.id, dst.id, within.id), "H5Sselect_project_intersection")
    )


def _check(result: int, what: str) -> int:
    if result < 0:
        if _too_deep:  # HDF5 keeps the nested error's text on its stack only
            raise RecursionError(_too_deep)
        raise RuntimeError(f"HDF5 call {what} failed")
    return result


def _spaces(shape: tuple[int, ...], mem_space: int, file_space: int) -> tuple[h5s.SpaceID, h5s.SpaceID]:
    """The file and memory dataspaces of an I/O call (0: H5S_ALL)."""
    fspace = h5s.create_simple(shape) if file_space == 0 else borrow(file_space, h5s.SpaceID)
    mspace = fspace if mem_space == 0 else borrow(mem_space, h5s.SpaceID)
    return fspace, mspace


def _pieces(sources: list[Source], fspace: h5s.SpaceID, mspace: h5s.SpaceID):
    """Per source: (dataset, memory selection, source selection) of the
    elements of this call that it holds."""
    for src in sources:
        if not src.virtual.get_select_npoints():
            continue
        in_source = _project(src.virtual, src.source, fspace)
        count = in_source.get_select_npoints()
        if count:
            yield src.dset, _project(fspace, mspace, src.virtual), in_source, count


@_nested
def read(h, mem_type: int, mem_space: int, file_space: int, dxpl: int, addr: int) -> None:
    """H5Dread of virtual dataset `h` into the buffer at `addr`."""
    vds = h.plan.virtual
    shape, sources = vds.sources()
    fspace, mspace = _spaces(shape, mem_space, file_space)
    wanted = fspace.get_select_npoints()
    pieces = list(_pieces(sources, fspace, mspace))
    if sum(p[3] for p in pieces) < wanted:
        _fill(h, mem_type, mspace, addr)
    for dset, mem_sel, src_sel, _ in pieces:
        _check(lib().H5Dread(dset.id, mem_type, mem_sel.id, src_sel.id, dxpl, addr), "H5Dread")


@_nested
def write(h, mem_type: int, mem_space: int, file_space: int, dxpl: int, addr: int) -> None:
    """H5Dwrite to virtual dataset `h`: each element goes to its source."""
    h.state.check_writable()
    vds = h.plan.virtual
    shape, sources = vds.sources()
    fspace, mspace = _spaces(shape, mem_space, file_space)
    pieces = list(_pieces(sources, fspace, mspace))
    if sum(p[3] for p in pieces) < fspace.get_select_npoints():
        raise ValueError("the write selects elements of the virtual dataset that no available source dataset maps")
    for dset, mem_sel, src_sel, _ in pieces:
        _check(lib().H5Dwrite(dset.id, mem_type, mem_sel.id, src_sel.id, dxpl, addr), "H5Dwrite")


def _fill(h, mem_type: int, mspace: h5s.SpaceID, addr: int) -> None:
    """Write the dataset's fill value (converted to the memory type) to the
    selected elements of the buffer, as HDF5 does for unmapped elements;
    nothing if the fill value is undefined."""
    plist = decode_plist(h.meta.dcpl)
    status = plist.fill_value_defined()
    if status == h5d.FILL_VALUE_UNDEFINED:
        return
    value = None
    if status == h5d.FILL_VALUE_USER_DEFINED and not h.dtype.hasobject:
        value = ctypes.create_string_buffer(h.file_type.get_size())
        _check(lib().H5Pget_fill_value(plist.id, h.file_type_id, value), "H5Pget_fill_value")
    _check(lib().H5Dfill(value, h.file_type_id, addr, mem_type, mspace.id), "H5Dfill")
