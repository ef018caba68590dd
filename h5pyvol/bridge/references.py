"""References and blobs.

HDF5 converts H5R_ref_t (H5T_STD_REF) to its stored form and back itself,
with H5T_STD_REF located in a file of ours (csrc/blob.c); what it does not
store inline it hands to the blob callbacks here, with that file's handle.
HDF5 1.10-style region references (csrc/compat.c) keep their dataset's token
and selection as a blob too, through blob_put/blob_get with the handle of any
object of the file.

Owns: the blob callbacks, the file a handle's references are converted
through (`refs`), and 1.10-style references in copied objects.
"""

from __future__ import annotations

import numpy as np
from h5py import h5t

from .. import datatypes
from .._hdf5 import decode_type
from .handles import FileHandle, FileState, opened_via, token16, untoken16
from .plugin import plugin


def _ref_file(h) -> FileHandle:
    """The file handle the references of `h` are converted through: the one
    `h` was opened through, as object_get_file reports it to HDF5."""
    state, via = h.base()[0], opened_via(h)
    if via is not None and via.state is state:
        return via
    if state.file_handles:
        return state.file_handles[0]
    handle = FileHandle(state)  # with no id yet: object_get_file registers one when HDF5 asks
    state.file_handles.remove(handle)
    return handle


def refs(h) -> datatypes.References:
    handle = _ref_file(h)
    return datatypes.References(lambda: plugin().ref_file_type(handle, handle.state.fapl.id))


def _blob_key(blob_id: bytes) -> bytes:
    if not 0 < blob_id[0] < len(blob_id):
        raise ValueError(f"{blob_id.hex()} is not a blob id of h5pyvol (a corrupt reference?)")
    return untoken16(blob_id)


def blob_put(h, data: bytes) -> bytes:
    h.state.check_writable()
    key = h.state.file.put_blob(data)
    if not isinstance(key, bytes) or not 0 < len(key) < 16:
        raise ValueError(f"the connector's put_blob returned {key!r}, not a key of 1 to 15 bytes")
    return token16(key)


def blob_get(h, blob_id: bytes) -> bytes:
    key = _blob_key(blob_id)
    try:
        return bytes(h.state.file.get_blob(key))
    except KeyError:
        raise KeyError(f"no blob {key!r} in file {h.state.name!r} (a reference to data since deleted?)") from None


def blob_delete(h: FileHandle, blob_id: bytes) -> None:
    h.state.check_writable()
    h.state.file.delete_blob(_blob_key(blob_id))


# HDF5 1.10-style references in copied objects (H5Ocopy), as HDF5 copies
# them: an attribute's are made again (or zeroed, without
# H5O_COPY_EXPAND_REFERENCE_FLAG), a dataset's only when copied to another
# file. "Made again" means the referenced object is copied too (once per
# H5Ocopy) and the reference points to its copy. An object reference is the
# first 8 bytes of a token16 (csrc/compat.c); a region reference the key
# length, the key and a checksum of a blob: "PVR1", the dataset's token16 and
# its encoded selection (the same format compat.c makes).

_REGION_MAGIC = b"PVR1"
_REGION_REF_SIZE = 12


def old_style_ref_size(hdf5_type: bytes) -> int:
    """8 or 12 for the element types of 1.10-style object or region references, else 0."""
    tid = decode_type(hdf5_type)
    if tid.get_class() != h5t.REFERENCE:
        return 0
    return 8 if tid == h5t.STD_REF_OBJ else _REGION_REF_SIZE if tid == h5t.STD_REF_DSETREG else 0


def _region_check(blob: bytes, size: int) -> bytes:
    """The checksum bytes a region reference keeps after its key (32-bit FNV-1a, little-endian)."""
    h = 2166136261
    for byte in blob:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return (h.to_bytes(4, "little") + bytes(size))[:size]


def _region_read(state: FileState, ref: bytes) -> tuple[bytes, bytes]:
    """(token16 of the dataset, encoded selection) of a region reference of `state`'s file."""
    n = ref[0]
    if not 0 < n < _REGION_REF_SIZE:
        raise ValueError(f"{ref.hex()} is not a region reference of h5pyvol")
    try:
        blob = bytes(state.file.get_blob(ref[1 : 1 + n]))
    except KeyError:
        raise KeyError(f"the data of region reference {ref.hex()} is not in file {state.name!r}") from None
    if blob[:4] != _REGION_MAGIC or len(blob) < 20 or _region_check(blob, 11 - n) != ref[1 + n :]:
        raise ValueError(f"file {state.name!r} holds other data under region reference {ref.hex()}")
    return blob[4:20], blob[20:]


def _region_make(state: FileState, token: bytes, space: bytes) -> bytes:
    """A new region reference of `state`'s file to the dataset `token` (token16), selection `space`."""
    blob = _REGION_MAGIC + token + space
    key = state.file.put_blob(blob)
    if not isinstance(key, bytes) or not 0 < len(key) < _REGION_REF_SIZE:
        raise ValueError(f"the connector's blob key {key!r} does not fit an HDF5 1.10-style region reference")
    return bytes([len(key)]) + key + _region_check(blob, 11 - len(key))


def copied_refs(
    data: np.ndarray, size: int, sstate: FileState, dstate: FileState, expand: bool, copy_target
) -> np.ndarray:
    """`data` (1.10-style references of `size` bytes, of sstate's file) as an
    object copy into dstate's file keeps them: each non-null one made again
    for copy_target(token) (the token of the referenced object's copy) when
    `expand`, else zeroed."""
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1, size)
    out = np.zeros_like(raw)
    if expand:
        for i, ref in enumerate(raw):
            ref = ref.tobytes()
            if not any(ref):
                continue
            if size == 8:
                full = token16(copy_target(untoken16(ref + bytes(8))))
                if any(full[8:]):  # as csrc/compat.c: nothing but zeros past 8 bytes
                    raise ValueError(f"token {untoken16(full)!r} is too long for an HDF5 1.10-style object reference")
                out[i] = np.frombuffer(full[:8], np.uint8)
            else:
                token, space = _region_read(sstate, ref)
                new = token16(copy_target(untoken16(token)))
                out[i] = np.frombuffer(_region_make(dstate, new, space), np.uint8)
    return out.view(data.dtype).reshape(data.shape)

