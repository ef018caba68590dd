"""Bytes of chunks and small arrays, and the JSON forms that describe them.

Everything here is numpy and the standard library: a worker process decodes
a chunk with these functions and a dataset descriptor alone, without libhdf5
(`filters_of`, which reads HDF5's serialized creation properties, is the one
exception, and runs only where the dataset is created).

- **Filters.** Chunked stores apply HDF5's *shuffle* and *deflate* (gzip)
  filters themselves, in the creation properties' order, and record them as
  ``[["shuffle"], ["gzip", level]]``. Other filters HDF5 accepted stay in the
  creation properties (HDF5 reports them) but are not applied to stored
  chunks: the stored bytes are what the descriptor's filter list says.
- **Values.** `encode_values`/`decode_values`: an array as JSON: base64 of
  the raw bytes for fixed-size types; for types holding variable-length
  values, a list of elements (strings, ``{"b": base64}`` bytes, ``{"a":
  base64}`` sequences, ``{"c": [...]}`` compounds, ``{"s": [...]}`` array
  members, ``{"r": base64}`` fixed-size members, null). Nothing is pickled.
- **Dtypes.** `dtype_to_json`/`dtype_from_json`: a numpy dtype with h5py's
  conventions (variable-length strings and sequences, enums) as JSON.
- **Chunks.** `ChunkCodec`: a chunk of a dataset to its stored bytes and
  back. Unfiltered fixed-size chunks are the raw bytes of the full (padded)
  chunk in the dtype's own byte order, row-major, so that any reader (a Lua
  script in a Ceph OSD with ``string.unpack``, say) can decode them;
  variable-length chunks are the JSON values.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from typing import Any

import numpy as np

from .buffers import scratch_buffer

FILTER_DEFLATE, FILTER_SHUFFLE, FILTER_FLETCHER32 = 1, 2, 3  # HDF5's filter ids (H5Z_FILTER_*)


# ---------------------------------------------------------------- base64


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


# ---------------------------------------------------------------- filters


def filters_of(dcpl: bytes) -> list:
    """The filters a chunked store applies for these (serialized) creation
    properties, in pipeline order: shuffle and deflate; others are not applied."""
    if not dcpl:
        return []
    from .._hdf5 import decode_plist, is_dcpl

    return pipeline(decode_plist(dcpl), others=False) if is_dcpl(dcpl) else []


def pipeline(plist, others: bool = True) -> list:
    """A creation property list's filters as stored-filter entries, in order:
    ``["shuffle"]``, ``["gzip", level]``, ``["fletcher32"]``; any other as
    ``["hdf5", id]`` if `others`, else left out."""
    out: list = []
    for i in range(plist.get_nfilters()):
        code, _flags, values, _name = plist.get_filter(i)
        if code == FILTER_SHUFFLE:
            out.append(["shuffle"])
        elif code == FILTER_DEFLATE:
            out.append(["gzip", int(values[0]) if values else 6])
        elif others:
            out.append(["fletcher32"] if code == FILTER_FLETCHER32 else ["hdf5", int(code)])
    return out


def apply_filters(raw: bytes | memoryview, filters: list, itemsize: int) -> bytes | memoryview:
    for f in filters:
        if f[0] == "shuffle" and itemsize > 1:
            raw = np.frombuffer(raw, np.uint8).reshape(-1, itemsize).T.tobytes()
        elif f[0] == "gzip":
            raw = zlib.compress(raw, f[1])
    return raw


def undo_filters(raw: bytes | memoryview, filters: list, itemsize: int) -> bytes | memoryview:
    for f in reversed(filters):
        if f[0] == "shuffle" and itemsize > 1:
            raw = np.frombuffer(raw, np.uint8).reshape(itemsize, -1).T.tobytes()
        elif f[0] == "gzip":
            raw = zlib.decompress(raw)
    return raw


# ---------------------------------------------------------------- values


def element_base(dtype: np.dtype) -> np.dtype:
    """The dtype of one stored element: an array type's base."""
    return dtype.subdtype[0] if dtype.subdtype else dtype


def _encode_one(v: Any, dtype: np.dtype) -> Any:
    """One element of a type holding variable-length values, as JSON."""
    if dtype.names:  # compound: its members in order
        return {"c": [_encode_one(v[name], dtype.fields[name][0]) for name in dtype.names]}
    if dtype.subdtype:  # array member: its elements, row-major
        return {"s": [_encode_one(x, dtype.subdtype[0]) for x in np.asarray(v).reshape(-1)]}
    if dtype.kind != "O":  # a fixed-size member
        return {"r": b64(np.asarray(v, dtype).tobytes())}
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bytes | np.bytes_):
        return {"b": b64(bytes(v))}
    return {"a": b64(np.ascontiguousarray(v).tobytes())}


def _decode_one(e: Any, dtype: np.dtype) -> Any:
    """The inverse of `_encode_one`: a value numpy assigns to an element of `dtype`."""
    if dtype.names:
        return tuple(_decode_one(x, dtype.fields[name][0]) for name, x in zip(dtype.names, e["c"], strict=True))
    if dtype.subdtype:
        base, shape = dtype.subdtype
        out = np.empty(len(e["s"]), base)
        for i, x in enumerate(e["s"]):
            out[i] = _decode_one(x, base)
        return out.reshape(shape)
    if dtype.kind != "O":
        return np.frombuffer(unb64(e["r"]), dtype)[0]
    if isinstance(e, dict) and "b" in e:
        return unb64(e["b"])
    if isinstance(e, dict):
        vlen = dtype.metadata.get("vlen") if dtype.metadata else None
        return np.frombuffer(unb64(e["a"]), np.dtype(vlen)).copy()
    return e


def encode_values(arr: np.ndarray, dtype: np.dtype) -> Any:
    """An array's elements as JSON (see the module docstring)."""
    if not dtype.hasobject:
        return b64(np.ascontiguousarray(arr).tobytes())
    base = element_base(dtype)
    return [_encode_one(v, base) for v in np.asarray(arr).reshape(-1)]


def decode_values(data: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `encode_values`; a new writable array of `shape` (+ the dtype's own shape)."""
    if not dtype.hasobject:
        raw = unb64(data) if isinstance(data, str) else data
        return np.frombuffer(raw, element_base(dtype)).reshape(shape + dtype.shape).copy()
    base = element_base(dtype)
    out = np.empty(len(data), dtype=base)
    for i, v in enumerate(data):
        out[i] = _decode_one(v, base)
    return out.reshape(shape + dtype.shape)


# ---------------------------------------------------------------- dtypes


def dtype_to_json(dtype: np.dtype) -> Any:
    """A numpy dtype (h5py's conventions included) as JSON: a type string such
    as ``"<f8"``, or an object for compound, array, enum and variable-length
    types. `dtype_from_json` reverses it."""
    meta = dtype.metadata or {}
    if "vlen" in meta:
        kind = meta["vlen"]
        if kind is str or kind is bytes:
            return {"vlen": kind.__name__}
        return {"vlen": dtype_to_json(np.dtype(kind))}
    if "ref" in meta:
        return {"ref": getattr(meta["ref"], "__name__", "object")}
    if "enum" in meta:
        return {"enum": {str(k): int(v) for k, v in meta["enum"].items()}, "base": np.dtype(dtype.str).str}
    if dtype.names:
        return {"fields": [[name, dtype_to_json(dtype.fields[name][0]), int(dtype.fields[name][1])]
                           for name in dtype.names], "itemsize": dtype.itemsize}
    if dtype.subdtype:
        return {"base": dtype_to_json(dtype.subdtype[0]), "shape": list(dtype.subdtype[1])}
    if "h5py_encoding" in meta:
        return {"base": dtype.str, "encoding": meta["h5py_encoding"]}
    return dtype.str


def dtype_from_json(d: Any) -> np.dtype:
    """The inverse of `dtype_to_json` (references come back as plain objects)."""
    if isinstance(d, str):
        return np.dtype(d)
    if "vlen" in d:
        kind = d["vlen"]
        base: Any = {"str": str, "bytes": bytes}.get(kind) if isinstance(kind, str) else dtype_from_json(kind)
        return np.dtype("O", metadata={"vlen": base})
    if "ref" in d:
        return np.dtype("O")
    if "enum" in d:
        return np.dtype(d["base"], metadata={"enum": dict(d["enum"])})
    if "fields" in d:
        return np.dtype({"names": [f[0] for f in d["fields"]], "formats": [dtype_from_json(f[1]) for f in d["fields"]],
                         "offsets": [f[2] for f in d["fields"]], "itemsize": d["itemsize"]})
    if "shape" in d:
        return np.dtype((dtype_from_json(d["base"]), tuple(d["shape"])))
    if "encoding" in d:
        return np.dtype(d["base"], metadata={"h5py_encoding": d["encoding"]})
    raise ValueError(f"not a dtype description: {d!r}")


# ---------------------------------------------------------------- chunks


class ChunkCodec:
    """A dataset's chunks as stored bytes: dtype, chunk shape and filters."""

    __slots__ = ("dtype", "shape", "filters", "base", "raw", "nbytes")

    def __init__(self, dtype: np.dtype, shape: tuple[int, ...], filters: list):
        self.dtype = dtype
        self.shape = tuple(shape)
        self.filters = filters
        self.base = element_base(dtype)
        self.raw = not filters and not dtype.hasobject
        """Chunks are stored as their raw bytes (no filters, fixed-size elements)."""
        self.nbytes = math.prod(self.shape) * dtype.itemsize
        """Bytes of a whole chunk in memory."""

    def view(self, buf) -> np.ndarray:
        """A chunk array over raw chunk bytes (no copy)."""
        return np.frombuffer(buf, self.base, self.nbytes // self.base.itemsize).reshape(self.shape + self.dtype.shape)

    def encode(self, chunk: np.ndarray) -> bytes | memoryview:
        """The stored form of a chunk array; for raw chunks possibly a view of
        `chunk`, or of a per-thread buffer valid until this thread encodes again."""
        dtype = self.dtype
        if dtype.hasobject:
            raw = json.dumps(encode_values(chunk, dtype), separators=(",", ":")).encode()
            return apply_filters(raw, [f for f in self.filters if f[0] != "shuffle"], 1)
        if self.filters:
            return apply_filters(np.ascontiguousarray(chunk, self.base).tobytes(), self.filters, dtype.itemsize)
        if chunk.dtype == self.base and chunk.flags.c_contiguous and chunk.nbytes == self.nbytes:
            return memoryview(chunk.reshape(-1).view(np.uint8))  # sent as it is: no copy
        buf = scratch_buffer(self.nbytes)
        np.copyto(self.view(buf), chunk, casting="unsafe")
        return buf

    def decode(self, raw, writable: bool = True) -> np.ndarray:
        """The chunk array of stored bytes; a new array if `writable`."""
        dtype = self.dtype
        if dtype.hasobject:
            raw = undo_filters(raw, [f for f in self.filters if f[0] != "shuffle"], 1)
            return decode_values(json.loads(bytes(raw)), dtype, self.shape)
        raw = undo_filters(raw, self.filters, dtype.itemsize)
        if writable:
            raw = bytearray(raw)  # one copy, only when the chunk is modified
        if len(raw) != self.nbytes:
            raise ValueError(f"a stored chunk decodes to {len(raw)} bytes, not the {self.nbytes} of shape "
                             f"{self.shape} of {dtype}")
        return self.view(raw)
