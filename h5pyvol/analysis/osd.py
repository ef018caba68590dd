"""Inside Ceph's OSDs: built-in reductions run as generated Lua next to RADOS chunks.

Owns deciding which tasks can run inside the OSD (`split`), the shards of
RADOS datasets with their object names (`shards_of`; until the storage layer
reports them through `h5pyvol.shards`, from the connector's chunk layout),
and running the Lua that `h5pyvol.analysis.lua` generates through Ceph's
``lua`` object class (``cls_lua``'s ``eval_json``), several at once, each
returning only its partial result. User Python never runs inside a daemon.
"""

from __future__ import annotations

import h5py

import h5pyvol
from h5pyvol.connector import Shard
from h5pyvol.storage import ChunkGrid

from .plan import Task
from .query import Query
from .reductions import Reduction
from .sources import Input
from .tasks import Outcome


def _rados_dataset(ds: h5py.Dataset):
    """The rados connector's dataset behind `ds`, or None (without importing
    the RADOS bindings for datasets of other connectors)."""
    try:
        node = h5pyvol.node_of(ds)
    except ValueError:
        return None
    if not type(node).__module__.endswith("connectors.rados") or not isinstance(node, h5pyvol.connector.Dataset):
        return None
    return node


def _node_chunks(node) -> tuple[int, ...] | None:
    """The chunk shape a RADOS dataset stores (its own grid, also for contiguous datasets)."""
    for attr in ("chunk_shape", "chunks"):
        shape = getattr(node, attr, None)
        if shape:
            return tuple(int(c) for c in shape)
    grid = getattr(node, "grid", None)
    return tuple(grid.chunks) if grid is not None else None


def _layout_shards(ds: h5py.Dataset, node) -> list[Shard]:
    """One shard per chunk of a RADOS dataset, from the connector's chunk
    layout (object name, size, OSDs). The adapter to today's connector."""
    from h5pyvol.connectors import rados as rados_connector

    from .sources import source_of

    grid = ChunkGrid(tuple(ds.shape), _node_chunks(node))
    stored = {tuple(e["chunk"]): e for e in rados_connector.layout(node)}
    hosts = _osd_hosts(source_of(ds).spec, {e["primary"] for e in stored.values()})
    out = []
    for cid in grid.ids():
        e = stored.get(cid)
        if e is None:
            out.append(Shard(grid.box(cid), 0, None, {}, written=False))
            continue
        where = {"osds": e["osds"], "primary": e["primary"], "pg": e["pgid"], "pool": e["pool"],
                 "namespace": e["namespace"], "chunk_shape": list(grid.chunks)}
        if hosts.get(e["primary"]):
            where["host"] = hosts[e["primary"]]
        out.append(Shard(grid.box(cid), int(e["bytes"]), e["object"], where))
    return out


_hosts: dict[tuple[str, int], str | None] = {}


def _osd_hosts(spec: str, osds: set[int]) -> dict[int, str | None]:
    """The host of each OSD (``ceph osd find``), cached."""
    import json

    from .lua import cluster_for

    missing = [o for o in osds if (spec, o) not in _hosts]
    if missing:
        cluster = cluster_for(spec)
        for osd in missing:
            ret, out, _ = cluster.mon_command(json.dumps({"prefix": "osd find", "id": int(osd), "format": "json"}),
                                              b"", timeout=30)
            found = json.loads(out) if ret == 0 and out else {}
            _hosts[(spec, osd)] = found.get("host") or found.get("crush_location", {}).get("host")
    return {o: _hosts[(spec, o)] for o in osds}


def shards_of(ds: h5py.Dataset) -> list[Shard]:
    """The shards of a dataset (`h5pyvol.shards`); for a RADOS dataset whose
    shards do not name their objects yet, the connector's chunk layout."""
    shards = h5pyvol.shards(ds)
    node = _rados_dataset(ds)
    if node is not None and all(s.key is None for s in shards) and hasattr(node, "layout"):
        return _layout_shards(ds, node)
    return shards


def chunk_shape(first: Input, shard: Shard) -> tuple[int, ...]:
    """The shape of the stored (padded) chunk holding `shard`."""
    shape = shard.location.get("chunk_shape") or first.chunks
    if not shape and first.dataset is not None:
        node = _rados_dataset(first.dataset)  # a contiguous dataset: the connector's own chunks
        shape = _node_chunks(node) if node is not None else None
    if not shape:
        raise ValueError(f"the chunk shape of {first.path!r} is unknown")
    return tuple(int(c) for c in shape)


def split(tasks: list[Task], first: Input, reduction: Reduction | None, query: Query | None,
          lua: bool | str) -> tuple[list[Task], list[Task]]:
    """(tasks for the OSDs, tasks for workers). ValueError when `lua` is True
    and the call cannot run inside the OSDs."""
    if lua is False or reduction is None:
        return [], tasks
    why = unpushable(first, reduction, query)
    if why:
        if lua is True:
            raise ValueError(f"lua=True, but this call cannot run inside the OSDs: {why}")
        return [], tasks
    return [t for t in tasks if t.shard.key], [t for t in tasks if not t.shard.key]


def unpushable(first: Input, reduction: Reduction, query: Query | None) -> str | None:
    """Why a reduction with a query cannot run as Lua in the OSDs, or None."""
    from . import lua

    if first.source is None or first.source.connector != "rados":
        return "the first input is not stored in RADOS"
    if first.filters:
        return "its chunks are filtered (compressed); only raw chunks can be decoded in the OSD"
    if not first.chunks:
        node = _rados_dataset(first.dataset) if first.dataset is not None else None
        if node is None or _node_chunks(node) is None:
            return "its chunk shape is unknown"
    return lua.unsupported(first, reduction, query)


def run(first: Input, reduction: Reduction, query: Query | None, tasks: list[Task],
        deadline: float | None) -> list[Outcome]:
    """Reduce each task's chunk inside its OSD; the outcomes hold the partials."""
    from . import lua

    return lua.run_in_osds(first, reduction, query, tasks, deadline)


