"""What the data path does for a dataset, and so whether the C fast path may serve it.

H5Dread and H5Dwrite take one of two paths:

- the **C fast path** (`csrc/io.c`): the plugin hands the connector's
  `Dataset.read`/`write` the file selection and a numpy view of HDF5's
  buffer, with no Python of the bridge in between;
- the **general path** (`datasets.dataset_read`/`dataset_write`), which
  serves every case: conversions, point and irregular selections, virtual
  datasets, lossy filters, and the errors (count mismatches, selections out
  of range, writes to read-only files).

`plan` decides, once per dataset handle and meta, what the general path must
do beyond copying elements: each such *stage* is a field of `Plan`, and the
general path branches on those same fields. A dataset with no stage gets an
`io` description, and only then may the plugin serve its calls in C. So a
new stage of the general path goes into `Plan` and `plan`, and is by that
alone kept off the fast path.

What only a call can tell is checked in C, per call, and a call that fails
any of it goes to the general path, which serves it or raises the error:
the memory type equals the file type; both selections are "all" or one
regular hyperslab that numpy can view with slices, inside the current
extent and without a selection offset; the dataset was not resized since
its handle loaded its meta (the node's `meta` is still the same object);
and, for writes, the file is open for writing.

With tracing on (`H5PYVOL_TRACE=1`) both paths are taken as in normal runs;
the fast path reaches the connector through `tracing.FastPathNode`, which
prints each call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from h5py import h5d

from .. import datatypes, virtual
from .._hdf5 import dcpl_layout, has_lossy_filter
from . import tracing

if TYPE_CHECKING:
    from .handles import NodeHandle


class Plan(NamedTuple):
    """The stages of the general data path for one dataset."""

    virtual: virtual.VirtualDataset | None
    """Its elements are in source datasets (virtual.py): reads and writes go there."""
    lossy: bool
    """A lossy filter (scale-offset) changes what is stored: written chunks are
    passed through native HDF5 (`datasets.apply_lossy_filters`)."""
    plain: bool
    """Elements copy as bytes (no variable-length data or H5R_ref_t): equal
    types need no conversion."""
    io: tuple | None
    """(node, meta, file type id, dtype, shape, writable) for the C fast path;
    None when a stage above applies, for a null dataspace (no elements) and
    for an array datatype (numpy views its elements with trailing dimensions,
    which csrc/io.c does not build)."""


def plan(h: NodeHandle) -> Plan:
    """The stages of dataset handle `h`, from the meta it has just loaded."""
    meta = h.meta
    found = virtual.VirtualDataset(h) if meta.dcpl and dcpl_layout(meta.dcpl) == h5d.VIRTUAL else None
    lossy = found is None and has_lossy_filter(meta.dcpl)
    plain = not datatypes.has_vlen_encoded(meta.hdf5_type)
    io = None
    if plain and found is None and not lossy and not meta.null and not h.dtype.shape:
        node = tracing.FastPathNode(h) if tracing.ENABLED else h.node
        io = (node, meta, h.file_type_id, h.dtype, tuple(meta.shape), h.state.writable)
    return Plan(found, lossy, plain, io)
