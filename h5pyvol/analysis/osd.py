"""Inside Ceph's OSDs: which tasks run as generated Lua next to their RADOS chunks.

Owns the decision (`split`): a built-in reduction (with or without a query)
over a raw RADOS dataset can run inside the OSD that holds each chunk
(`h5pyvol.analysis.lua` compiles and runs it); `unpushable` says why a call
cannot, and `lua_pays` whether it is worth it for a shard (``lua="auto"``).
Everything it needs comes from the storage layer: the shards of
`h5pyvol.shards` (object name, PG, OSDs, the primary's host) and the
dataset's descriptor (`h5pyvol.storage.describe`: chunk shape, dtype,
filters). User Python never runs inside a daemon.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from h5pyvol.connector import Shard

from .plan import Task
from .query import Query
from .reductions import Reduction
from .sources import Input
from .tasks import Outcome

LUA_MODES = ("auto", True, False)


def lua_pays(shard: Shard, client_hosts: Iterable[str]) -> bool:
    """Whether reducing `shard` inside its OSD beats fetching it (``lua="auto"``).

    Lua reduces values 10 to 100 times slower than numpy, so it
    wins only when moving the chunk costs more than that: when no process
    that could map the shard runs on the host of its primary OSD (the chunk
    would cross the network). A shard whose host is unknown is fetched."""
    host = shard.location.get("host")
    return bool(host) and host not in set(client_hosts)


def split(tasks: list[Task], first: Input, reduction: Reduction | None, query: Query | None,
          lua: bool | str, client_hosts: Iterable[str] = ()) -> tuple[list[Task], list[Task]]:
    """(tasks for the OSDs, tasks for workers). `lua`: True runs every
    written chunk inside the OSDs (ValueError when the call cannot), False
    none, ``"auto"`` those for which `lua_pays` given the hosts the engine's
    processes run on (`client_hosts`; the caller's host is always one)."""
    if lua not in LUA_MODES:
        raise ValueError(f"lua must be 'auto', True or False, not {lua!r}")
    if lua is False or reduction is None:
        if lua is True:
            raise ValueError("lua=True needs a built-in reduction (Count, Sum, Min, Max, Mean, Histogram) as map")
        return [], tasks
    why = unpushable(first, reduction, query)
    if why:
        if lua is True:
            raise ValueError(f"lua=True, but this call cannot run inside the OSDs: {why}")
        return [], tasks
    hosts = {socket.gethostname(), *client_hosts}
    inside = [t for t in tasks if t.shard.key and (lua is True or lua_pays(t.shard, hosts))]
    chosen = {t.index for t in inside}
    return inside, [t for t in tasks if t.index not in chosen]


def unpushable(first: Input, reduction: Reduction, query: Query | None) -> str | None:
    """Why a reduction with a query cannot run as Lua in the OSDs, or None."""
    from . import lua

    if first.source is None or first.source.connector != "rados":
        return "the first input is not stored in RADOS"
    if first.filters:
        return "its chunks are filtered (compressed); only raw chunks can be decoded in the OSD"
    if not first.chunks:
        return "its chunk shape is unknown"
    return lua.unsupported(first, reduction, query)


def run(first: Input, reduction: Reduction, query: Query | None, tasks: list[Task],
        deadline: float | None) -> list[Outcome]:
    """Reduce each task's chunk inside its OSD; the outcomes hold the partials."""
    from . import lua

    return lua.run_in_osds(first, reduction, query, tasks, deadline)
