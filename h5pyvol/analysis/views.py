"""Views (H5V): what a query matched in a file, as references that save into HDF5.

Owns `view(file, query)`, which walks every object of a file and keeps

- object references: groups and datasets the query matches as a whole
  (through object-level predicates: attributes, link names);
- region references: for queries on element values, the matching elements
  of each dataset, as hyperslab blocks in the dataset's own coordinates and
  rank (so a region applies to any dataset of the same shape);
- attribute references: the attributes that satisfied an attribute predicate;

stamped with a version that changes when the referenced datasets' stored
chunks change. Element queries run through `execute` shard by shard, so zone
maps skip chunks that cannot match. `View.save` writes a view into a group
of an HDF5 file through any connector; `View.load` reads it back.

Saved layout (group G): attributes ``h5pyvol_view`` (format 1), ``version``,
``query`` (JSON), ``file``, ``created``; datasets ``objects`` (paths) and,
for a view saved in the viewed file, ``object_refs`` (HDF5 object
references, on every connector whose object tokens fit them: memory, native,
S3, RADOS; `View.load` follows them, so objects renamed since keep their
place in the view, as do regions through ``regions/refs``);
``regions/paths``, ``regions/shapes``, ``regions/blocks`` (per region the
flattened int64 (start, stop) pairs of its blocks) and, for regions of the
same file, ``regions/refs`` (HDF5 region references); ``attributes/paths``
and ``attributes/names``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
from h5py import h5r, h5s

from .. import shards as shards_of
from .query import NEVER, Query, _AttrName, _AttrValue, as_query
from .sources import _read_attrs, open_input_file

FORMAT = 1


@dataclass
class Region:
    """Elements of one dataset: blocks of (start, stop) per dimension."""

    path: str
    shape: tuple[int, ...]
    blocks: np.ndarray
    """int64 array (k, 2, rank): block i covers ``start = blocks[i, 0]`` up to ``stop = blocks[i, 1]``."""

    @property
    def count(self) -> int:
        """How many elements the region holds."""
        return int(np.prod(self.blocks[:, 1] - self.blocks[:, 0], axis=1).sum()) if len(self.blocks) else 0

    def mask(self) -> np.ndarray:
        """A boolean array of `shape`, True on the region's elements."""
        out = np.zeros(self.shape, bool)
        for start, stop in self.blocks:
            out[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] = True
        return out

    def read(self, dataset: Any) -> np.ndarray:
        """The region's elements of `dataset` (this one's, or any of the same
        shape), in C order, as a 1-D array. Reads only their bounding box."""
        if tuple(dataset.shape) != self.shape:
            raise ValueError(f"region of {self.path!r} has shape {self.shape}; {dataset!r} has {dataset.shape}")
        if not len(self.blocks):
            return np.empty(0, dataset.dtype)
        lo, hi = self.blocks[:, 0].min(axis=0), self.blocks[:, 1].max(axis=0)
        data = np.asarray(dataset[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))])
        keep = np.zeros(data.shape, bool)
        for start, stop in self.blocks - lo:
            keep[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] = True
        return data[keep]


@dataclass
class View:
    """A version-stamped set of object, region and attribute references."""

    file: str
    query: Query
    version: str
    objects: list[str] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    attributes: list[tuple[str, str]] = field(default_factory=list)
    created: str = ""

    def region(self, path: str) -> Region:
        for r in self.regions:
            if r.path == path:
                return r
        raise KeyError(f"the view has no region of {path!r}")

    def is_current(self, file: Any) -> bool:
        """Whether `file` still holds what the view was taken from."""
        f = open_input_file(file)
        try:
            return _stamp(f, self.query, self.objects, self.regions) == self.version
        finally:
            if f is not file:
                f.close()

    # -- saving ------------------------------------------------------------
    def save(self, group: h5py.Group, name: str = "view") -> h5py.Group:
        """Write the view into `group` as a new group `name`; returns it."""
        g = group.create_group(name)
        g.attrs.update({"h5pyvol_view": FORMAT, "version": self.version, "query": self.query.to_json(),
                        "file": self.file, "created": self.created})
        text = h5py.string_dtype()
        same_file = group.file.filename == self.file
        g.create_dataset("objects", data=np.array(self.objects, dtype=object), dtype=text)
        if same_file and self.objects:
            refs = _object_refs(group.file, self.objects)
            if refs is not None:
                g.create_dataset("object_refs", data=refs)
        r = g.create_group("regions")
        r.create_dataset("paths", data=np.array([x.path for x in self.regions], dtype=object), dtype=text)
        ints = h5py.vlen_dtype(np.int64)
        shapes = np.empty(len(self.regions), object)
        blocks = np.empty(len(self.regions), object)
        for i, x in enumerate(self.regions):
            shapes[i] = np.array(x.shape, np.int64)
            blocks[i] = x.blocks.astype(np.int64).reshape(-1)
        r.create_dataset("shapes", data=shapes, dtype=ints)
        r.create_dataset("blocks", data=blocks, dtype=ints)
        if same_file and self.regions:
            refs = [_region_ref(group.file[x.path], x) for x in self.regions]
            r.create_dataset("refs", data=np.array(refs, dtype=h5py.regionref_dtype))
        a = g.create_group("attributes")
        a.create_dataset("paths", data=np.array([p for p, _ in self.attributes], dtype=object), dtype=text)
        a.create_dataset("names", data=np.array([n for _, n in self.attributes], dtype=object), dtype=text)
        return g

    @classmethod
    def load(cls, group: h5py.Group) -> View:
        """A view `save` wrote."""
        if group.attrs.get("h5pyvol_view") != FORMAT:
            raise ValueError(f"{group.name!r} is not a saved view (format {FORMAT})")

        def strings(ds) -> list[str]:
            return [s.decode() if isinstance(s, bytes) else str(s) for s in ds[...]]

        regions = []
        paths = strings(group["regions/paths"])
        if "regions/refs" in group:  # region references name their dataset: follow it too
            paths = [_name_of(group.file, ref, path) for ref, path in zip(group["regions/refs"][...], paths,
                                                                          strict=True)]
        for path, shape, flat in zip(paths, group["regions/shapes"][...], group["regions/blocks"][...],
                                     strict=True):
            shape = tuple(int(n) for n in shape)
            regions.append(Region(path, shape, np.asarray(flat, np.int64).reshape(-1, 2, len(shape))))
        attrs = list(zip(strings(group["attributes/paths"]), strings(group["attributes/names"]), strict=True))
        meta = group.attrs
        text = {k: (meta[k].decode() if isinstance(meta[k], bytes) else str(meta[k]))
                for k in ("version", "query", "file", "created")}
        objects = strings(group["objects"])
        if "object_refs" in group:  # the objects' names now: references follow renames and moves
            objects = [_name_of(group.file, ref, path) for ref, path in zip(group["object_refs"][...], objects,
                                                                            strict=True)]
        return cls(text["file"], Query.from_json(text["query"]), text["version"], objects, regions, attrs,
                   text["created"])


def _object_refs(f: h5py.File, paths: list[str]) -> np.ndarray | None:
    """HDF5 object references to `paths`, or None where the connector's
    object tokens do not fit HDF5's 8-byte references (memory, native, S3
    and RADOS tokens all fit; a third-party connector's may not)."""
    try:
        return np.array([f[p].ref for p in paths], dtype=h5py.ref_dtype)
    except (OSError, ValueError, TypeError, RuntimeError):
        return None


def _name_of(f: h5py.File, ref: h5py.Reference | h5py.RegionReference, saved: str) -> str:
    """The current path of a referenced object; the saved path when the
    object is gone (the view is then no longer current)."""
    try:
        name = f[ref].name if ref else None
    except (KeyError, ValueError, OSError):
        name = None
    return name or saved


def _region_ref(ds: h5py.Dataset, region: Region):
    """An HDF5 region reference to `region`'s elements of `ds`."""
    space = ds.id.get_space()
    if not region.shape:
        space.select_all()
    else:
        space.select_none()
        for start, stop in region.blocks:
            space.select_hyperslab(tuple(int(a) for a in start), tuple(int(b - a) for a, b in zip(start, stop,
                                                                                                     strict=True)),
                                   op=h5s.SELECT_OR)
    return h5r.create(ds.id, b".", h5r.DATASET_REGION, space)


def _blocks_of(block) -> np.ndarray:
    """The matching elements of one map block, as (start, stop) blocks in dataset coordinates."""
    sel = block.selection
    rank = len(sel)
    origin = np.array([s.start for s in sel], np.int64)
    if block.mask is None or bool(block.mask.all()):
        stop = np.array([s.stop for s in sel], np.int64)
        return np.stack([origin, stop])[None] if rank else np.zeros((1, 2, 0), np.int64)
    if rank == 0:
        return np.zeros((1 if bool(block.mask) else 0, 2, 0), np.int64)
    rows = block.mask.reshape(-1, block.mask.shape[-1])
    edges = np.diff(np.pad(rows, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    r_start, c_start = np.nonzero(edges == 1)
    _, c_stop = np.nonzero(edges == -1)
    lead = np.array(np.unravel_index(r_start, block.mask.shape[:-1]), np.int64).T if rank > 1 else \
        np.zeros((len(r_start), 0), np.int64)
    start = np.concatenate([lead, c_start[:, None]], axis=1) + origin
    stop = np.concatenate([lead + 1, c_stop[:, None]], axis=1) + origin
    return np.stack([start, stop], axis=1)


def _concat(parts: list) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0, 2, 0), np.int64)


def _signature(obj: Any) -> list:
    if not isinstance(obj, h5py.Dataset):
        return [obj.name]
    return [obj.name, list(obj.shape or ()), obj.dtype.str,
            [[s.key, s.nbytes, s.written, s.stats] for s in shards_of(obj)]]


def _stamp(f: h5py.File, query: Query, objects: list[str], regions: list[Region]) -> str:
    """The version of what a view references: changes with the referenced
    datasets' stored chunks (their keys, sizes and zone maps)."""
    paths = sorted(set(objects) | {r.path for r in regions})
    sig = [query.to_dict(), [_signature(f[p]) if p in f else [p, None] for p in paths]]
    return hashlib.sha1(json.dumps(sig, sort_keys=True, default=str).encode()).hexdigest()


def view(file: Any, query: Query | str | dict, engine: str = "serial", **options: Any) -> View:
    """The objects, regions and attributes of `file` (an h5py File or a file
    URL) that `query` matches. Element queries run through `execute` with
    `engine` and its `options`, one shard at a time."""
    from .execute import execute

    q = as_query(query)
    if q is None:
        raise TypeError("view() needs a query")
    if any(name is not None for name in q.value_inputs()):
        raise ValueError("a view compares each dataset's own values: use Q.value, not Q.value(name)")
    f = open_input_file(file)
    try:
        found: list[tuple[str, Any]] = [("/", f)]
        f.visititems(lambda name, obj: found.append(("/" + name, obj)))
        objects, regions, attributes = [], [], []
        attr_leaves = [leaf for leaf in q.leaves() if isinstance(leaf, _AttrName | _AttrValue)]
        for path, obj in found:
            attrs = _read_attrs(obj)
            is_data = isinstance(obj, h5py.Dataset) and obj.shape is not None and obj.dtype.kind in "biuf"
            if is_data and q.reads_values:
                if q.prune(None, False, attrs, path) == NEVER:
                    continue
                blocks = execute(_blocks_of, _concat, {"values": obj}, query=q, engine=engine, **options).value
                if len(blocks) == 0:
                    continue
                regions.append(Region(path, tuple(obj.shape), blocks.reshape(-1, 2, len(obj.shape))))
            elif q.mask(lambda name: None, attrs, path) is True:
                objects.append(path)
            else:
                continue
            attributes += [(path, n) for leaf in attr_leaves for n in leaf.matching(attrs)
                           if (path, n) not in attributes]
        created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return View(f.filename, q, _stamp(f, q, objects, regions), objects, regions, attributes, created)
    finally:
        if f is not file:
            f.close()
