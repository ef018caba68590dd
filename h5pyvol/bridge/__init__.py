"""The bridge: HDF5's semantics on top of a connector, one function per VOL callback.

The C plugin (csrc/) imports this module and looks up, by name, the
functions in `CALLBACKS`: one per VOL callback, or per get/specific
operation, named after it (csrc/pv.h lists the same names). The plugin
passes hid_t values as ints, location parameters as tuples (see
`paths.locate`), and buffers as addresses. Every handle returned becomes an
HDF5 VOL object (`handles`).

Modules, each owning one part:

- `handles`: the VOL objects (file, node, attribute handles) and open files;
- `paths`: location parameters, path walking, links followed, iteration orders;
- `info`: object, link and attribute info, and the ids get-calls hand out;
- `files`: the H5F callbacks, capability flags and mounts;
- `objects`: groups, committed datatypes and the H5O callbacks;
- `datasets`: the H5D callbacks and the general data path with its filters;
- `fastpath`: which reads and writes the plugin's C fast path may serve;
- `attributes`, `links`, `copies` (H5Ocopy), `references` (and blobs);
- `tracing`: ``H5PYVOL_TRACE=1``, of every path a call takes;
- `constants` and `plugin` (the C module h5pyvol._plugin).
"""

from __future__ import annotations

from . import attributes, copies, datasets, files, links, objects, references, tracing
from .handles import node_of

# The functions the plugin calls, in the order of csrc/pv.h (PV_BRIDGE_FUNCTIONS).
CALLBACKS = (
    "cap_flags",
    "file_create", "file_open", "file_close", "file_get_fapl", "file_get_fcpl", "file_get_fileno",
    "file_get_intent", "file_get_name", "file_flush", "file_reopen", "file_is_accessible", "file_delete",
    "file_is_equal", "same_file", "file_start_swmr_write",
    "group_create", "group_open", "group_close", "group_get_gcpl", "group_get_info", "group_get_objinfo",
    "group_mount", "group_unmount",
    "dataset_create", "dataset_open", "dataset_close", "dataset_read", "dataset_write", "dataset_get_space",
    "dataset_get_type", "dataset_get_dcpl", "dataset_get_dapl", "dataset_get_storage_size",
    "dataset_get_space_status", "dataset_set_extent",
    "attr_create", "attr_open", "attr_close", "attr_read", "attr_write", "attr_get_acpl", "attr_get_info",
    "attr_get_name", "attr_get_space", "attr_get_type", "attr_get_storage_size", "attr_delete",
    "attr_delete_by_idx", "attr_exists", "attr_iterate", "attr_rename",
    "datatype_commit", "datatype_open", "datatype_close", "datatype_get_binary", "datatype_get_tcpl",
    "link_create_hard", "link_create_soft", "link_create_ud", "link_copy", "link_move", "link_get_info",
    "link_get_name", "link_get_val", "link_delete", "link_exists", "link_iterate",
    "object_open", "object_copy", "object_get_file", "object_get_name", "object_get_type", "object_get_info",
    "object_change_rc", "object_exists", "object_lookup", "object_visit", "object_flush", "object_refresh",
    "blob_put", "blob_get", "blob_delete",
)

_MODULES = (files, objects, datasets, attributes, links, copies, references)


def _callback(name: str):
    """The function for callback `name`, from the one module that defines it."""
    (fn,) = [vars(m)[name] for m in _MODULES if name in vars(m)]
    return tracing.wrap(name, fn) if tracing.ENABLED else fn


globals().update({name: _callback(name) for name in CALLBACKS})

# With tracing on, the plugin calls this for the questions it answers in C.
trace_answered_in_c = tracing.answered_in_c if tracing.ENABLED else None

__all__ = ["CALLBACKS", "node_of", "trace_answered_in_c"]
