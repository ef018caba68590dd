"""The JSON records of a chunked store's metadata: arrays, links, nodes.

A record is a plain JSON object, the same in every backend (S3 keeps all of a
file's records in one manifest object, RADOS one omap entry per node). What
they hold is specified in docs/s3-layout.md ("The manifest"):

- ``META`` (`meta_to_json`): the connector API's `ArrayMeta` (HDF5's own
  serialized type and creation properties, base64, kept as given) plus what
  a reader without libhdf5 needs: ``dtype`` (`codecs.dtype_to_json`);
- ``LINK`` (`link_to_json`): ``{"hard": token}``, ``{"soft": path}``,
  ``{"external": [file, path]}`` or ``{"user": [class, base64]}``;
- node records (built by `h5pyvol.storage.chunked`): ``kind``, ``nlink``,
  ``created``, ``attrs`` and the kind's own fields.
"""

from __future__ import annotations

from typing import Any

from .. import connector as api
from .codecs import b64, dtype_to_json, unb64


def meta_to_json(meta: api.ArrayMeta, *, dtype: bool = True) -> dict:
    """An `ArrayMeta` as JSON; with `dtype`, also its numpy dtype (derived with libhdf5)."""
    out: dict[str, Any] = {
        "type": b64(meta.hdf5_type),
        "shape": list(meta.shape),
        "maxshape": None if meta.maxshape is None else list(meta.maxshape),
        "dcpl": b64(meta.dcpl),
        "null": meta.null,
    }
    if meta.committed_type:
        out["committed_type"] = meta.committed_type.hex()
    if dtype:
        out["dtype"] = dtype_to_json(meta.dtype)
    return out


def meta_from_json(d: dict) -> api.ArrayMeta:
    maxshape = None if d.get("maxshape") is None else tuple(d["maxshape"])
    committed = bytes.fromhex(d.get("committed_type", ""))
    return api.ArrayMeta(unb64(d["type"]), tuple(d["shape"]), maxshape, unb64(d["dcpl"]), bool(d["null"]), committed)


def link_to_json(link: api.Link) -> dict:
    if isinstance(link, api.HardLink):
        return {"hard": link.token.hex()}
    if isinstance(link, api.SoftLink):
        return {"soft": link.path}
    if isinstance(link, api.ExternalLink):
        return {"external": [link.filename, link.path]}
    return {"user": [link.link_class, b64(link.value)]}


def link_from_json(d: dict) -> api.Link:
    if "hard" in d:
        return api.HardLink(bytes.fromhex(d["hard"]))
    if "soft" in d:
        return api.SoftLink(d["soft"])
    if "external" in d:
        return api.ExternalLink(*d["external"])
    return api.UserLink(int(d["user"][0]), unb64(d["user"][1]))


def hard_targets(record: dict) -> list[str]:
    """The hex tokens a node record refers to: a group's hard links, and the
    committed datatypes its arrays were created with (one per use)."""
    out = [link["hard"] for _, link in record.get("links", ()) if "hard" in link]
    out += [a["meta"]["committed_type"] for _, a in record.get("attrs", ()) if "committed_type" in a["meta"]]
    meta = record.get("meta")
    if meta is not None and "committed_type" in meta:
        out.append(meta["committed_type"])
    return out


def chunk_name(cid: tuple[int, ...]) -> str:
    """A chunk's name in a dataset record: its grid coordinates joined by '.' ("" for a scalar)."""
    return ".".join(map(str, cid))


def chunk_cid(name: str, rank: int) -> tuple[int, ...]:
    return tuple(int(v) for v in name.split(".")) if rank else ()
