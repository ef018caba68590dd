"""The manifest/head protocol: how many writers commit to one file without losing updates.

A file of a chunked store is its *head* (all metadata: the manifest) plus one
object per chunk version. The manifest, as every backend hands it over, is a
plain JSON object:

    {"file_id": "8 random bytes, hex",  # a re-created file gets a new one
     "generation": 12,                  # commits so far
     "root": TOKEN,                     # hex token of the root group
     "nodes": {TOKEN: RECORD, ...},     # records.py; only nodes reachable from the root
     "sessions": {SESSION: {"host", "pid", "since", "seen"}},  # writers with chunk uploads
     "blobs": {KEY: base64}}            # what HDF5 keeps for its references

**Commit.** A writer uploads chunks under fresh keys (never an object a
committed manifest names), then replaces the head with a *conditional* update
that succeeds only if the head is still the version it last saw (S3:
``If-Match`` on the manifest's ETag; RADOS: an asserted object version).
When another writer committed in between, the update fails; the writer
reloads the head, merges its own changes onto it (`merge`) and tries again.
Its changes are recorded per node and name (`Changes`), and their values are
taken from the writer's live objects at merge time, so a merge applies:

- new nodes as they are (tokens carry a per-writer random part: two writers
  never make the same token);
- per group, the links this writer set or deleted, by name;
- per node, the attributes it set, renamed or deleted, by name;
- per dataset, the chunk entries it wrote or dropped, by chunk, and its
  extent if it changed it;
- reference counts as deltas.

Whatever another writer did to other names, chunks and nodes stays. For the
same name or chunk, the last commit wins. Nodes no longer reachable from the
root (through hard links, or from an array to its committed datatype) are
dropped.

**Garbage.** After its commit succeeded, a writer deletes exactly the chunk
objects *its* commit superseded (entries of the previous head that it
replaced or dropped, with the nodes it removed) and the objects it uploaded
that the new head does not name. It never deletes what another writer's
commit names.

**Sessions.** Before its first chunk upload, a writer registers a *session*
in the head (a commit of that entry alone) and refreshes its ``seen`` time at
every commit and while it keeps uploading; its chunk keys carry the session
id (`version_session`). Closing removes the entry. A session whose ``seen``
is older than a grace period belongs to a dead writer: the next writer that
opens the file removes it from the head with a conditional update (only if
``seen`` is still the same), then deletes that session's unreferenced chunk
objects. A writer whose session was removed that way can no longer commit
(`SessionLost`): its uploads may be gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .records import hard_targets

SESSION_CHARS = 12
"""Hex digits of a session id; a chunk version is the session id, then a counter."""


def version_session(version: str) -> str | None:
    """The writer session a chunk version belongs to (None for older formats)."""
    return version[:SESSION_CHARS] if len(version) > SESSION_CHARS else None


def new_manifest(file_id: str, root: str, root_record: dict) -> dict:
    return {"file_id": file_id, "generation": 0, "root": root, "nodes": {root: root_record}, "sessions": {},
            "blobs": {}}


def chunk_entries(record: dict) -> dict[str, list]:
    """A dataset record's chunk entries: name -> [version, stored bytes, zone map or None]."""
    return record.get("chunks") or {}


class HeadConflict(Exception):
    """The head changed since it was read: reload, merge, retry.

    `maybe_stored`: the store answered with an error that does not say
    whether the update happened (RGW answers 500 to conditional PUTs racing
    each other); the writer then checks whether the head it reloads is its own."""

    def __init__(self, message: str = "", maybe_stored: bool = False):
        super().__init__(message)
        self.maybe_stored = maybe_stored


class SessionLost(OSError):
    """This writer's session was collected as stale by another writer."""


class FileRecreated(OSError):
    """The file was deleted or created anew since this writer opened it."""


class NodeChange:
    """What one writer changed of one existing node since its last commit."""

    __slots__ = ("nlink", "meta", "links", "attrs", "renames", "chunks")

    def __init__(self) -> None:
        self.nlink = 0                              # reference count delta
        self.meta = False                           # the extent (resize)
        self.links: dict[str, None] = {}            # names set or deleted (values from the live group)
        self.attrs: dict[str, None] = {}            # names set or deleted (values from the live node)
        self.renames: list[tuple[str, str]] = []    # attribute renames, in order
        self.chunks: dict[str, list | None] = {}    # chunk name -> new entry, None: dropped


class Changes:
    """One writer's changes since its last commit (see the module docstring)."""

    def __init__(self) -> None:
        self.new: dict[bytes, None] = {}                # tokens of nodes created here, in order
        self.nodes: dict[bytes, NodeChange] = {}
        self.sessions: dict[str, dict | None] = {}      # session entries to set, None: remove
        self.stale: dict[str, float] = {}               # sessions to remove if their `seen` is still this
        self.blobs: dict[str, str | None] = {}          # blob key (hex) -> base64, None: remove

    def node(self, token: bytes) -> NodeChange:
        change = self.nodes.get(token)
        if change is None:
            change = self.nodes[token] = NodeChange()
        return change

    def __bool__(self) -> bool:
        return bool(self.new or self.nodes or self.sessions or self.stale or self.blobs)


class LiveView(Protocol):
    """What `merge` asks of the writer's live objects."""

    def record(self, token: bytes) -> dict | None:
        """The full record of a live node (None if there is none)."""

    def link(self, token: bytes, name: str) -> tuple[dict, int] | None:
        """A live group's link and its creation-order number, or None."""

    def next_order(self, token: bytes) -> int:
        """The creation-order number a live group's next link gets."""

    def attr(self, token: bytes, name: str) -> dict | None:
        """A live node's attribute record, or None."""

    def meta(self, token: bytes) -> dict:
        """A live dataset's META record."""


@dataclass
class Touched:
    """Which records a merge changed, for backends that store them apart (RADOS)."""

    full: set[str] = field(default_factory=set)          # nodes written whole (new here)
    core: set[str] = field(default_factory=set)          # node records without attrs and chunks
    attrs: set[str] = field(default_factory=set)
    chunks: set[tuple[str, str]] = field(default_factory=set)          # (token, chunk) set or removed
    removed: dict[str, list[str]] = field(default_factory=dict)        # node -> its chunk names in the old head
    sessions: set[str] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)
    everything: bool = False                                           # rewrite the whole head


@dataclass
class Merged:
    head: dict
    touched: Touched
    superseded: set[str]          # keys of chunk objects the previous head named and this one does not
    collected: list[str]          # stale sessions this commit removed


def _merge_links(rec: dict, change: NodeChange, live: LiveView, token: bytes) -> None:
    names = [n for n, _ in rec.get("links", [])]
    orders = rec.get("link_orders") or list(range(len(names)))
    entries = {n: [link, o] for (n, link), o in zip(rec.get("links", []), orders, strict=True)}
    nxt = rec.get("next_order", len(entries))
    for name in change.links:
        got = live.link(token, name)
        if got is None:
            entries.pop(name, None)
            continue
        link, order = got
        taken = {o for n, (_, o) in entries.items() if n != name}
        if order in taken:  # another writer's link got this number meanwhile: the next free one
            order = max([nxt - 1, *taken]) + 1
        entries[name] = [link, order]
        nxt = max(nxt, order + 1)
    live_next = live.next_order(token)
    nxt = max(nxt, live_next) if entries else min(nxt, live_next)
    rec["links"] = [[n, e[0]] for n, e in entries.items()]
    rec["link_orders"] = [e[1] for e in entries.values()]
    rec["next_order"] = nxt


def _merge_attrs(rec: dict, change: NodeChange, live: LiveView, token: bytes) -> None:
    entries = dict((n, a) for n, a in rec.get("attrs", []))
    for old, new in change.renames:
        if old in entries and new not in entries:
            entries = {(new if n == old else n): a for n, a in entries.items()}
    for name in change.attrs:
        got = live.attr(token, name)
        if got is None:
            entries.pop(name, None)
        else:
            entries[name] = got
    rec["attrs"] = [[n, a] for n, a in entries.items()]


def merge(head: dict, changes: Changes, live: LiveView, key_of: Callable[[str, str, list], str]) -> Merged:
    """`changes` applied onto `head` (not modified): the next head, what it
    touched, the chunk objects it supersedes. `key_of(token, chunk, entry)` is
    a chunk entry's object key."""
    nodes = dict(head["nodes"])
    touched = Touched()
    superseded: set[str] = set()
    for token in changes.new:
        hx = token.hex()
        record = live.record(token)
        if record is None:
            continue
        if hx in nodes:
            raise OSError(f"token {hx} was made by two writers at once (a chance of 2**-32): nothing committed; retry")
        nodes[hx] = record
        touched.full.add(hx)
    for token, change in changes.nodes.items():
        hx = token.hex()
        if token in changes.new or hx not in nodes:
            continue  # new (written whole above), or removed by another writer
        rec = dict(nodes[hx])
        if change.nlink:
            rec["nlink"] = rec.get("nlink", 0) + change.nlink
            touched.core.add(hx)
        if change.meta:
            rec["meta"] = live.meta(token)
            touched.core.add(hx)
        if change.links:
            _merge_links(rec, change, live, token)
            touched.core.add(hx)
        if change.attrs or change.renames:
            _merge_attrs(rec, change, live, token)
            touched.attrs.add(hx)
        if change.chunks:
            chunks = dict(chunk_entries(rec))
            for name, entry in change.chunks.items():
                old = chunks.pop(name, None)
                if entry is not None:
                    chunks[name] = entry
                if old is not None and old != entry:
                    superseded.add(key_of(hx, name, old))
                touched.chunks.add((hx, name))
            rec["chunks"] = chunks
        nodes[hx] = rec

    # Keep what the root reaches. A node another writer removed comes back
    # (as this writer has it) when this writer's own records link to it.
    reached = {head["root"]}
    todo = [head["root"]]
    while todo:
        hx = todo.pop()
        rec = nodes.get(hx)
        if rec is None:
            rec = live.record(bytes.fromhex(hx))
            if rec is None:
                continue  # a dangling hard link: left as it is
            nodes[hx] = rec
            touched.full.add(hx)
        for target in hard_targets(rec):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    old_nodes = head["nodes"]
    for hx in [h for h in nodes if h not in reached]:
        del nodes[hx]
        touched.full.discard(hx)
        if hx in old_nodes:
            names = list(chunk_entries(old_nodes[hx]))
            touched.removed[hx] = names
            superseded.update(key_of(hx, n, e) for n, e in chunk_entries(old_nodes[hx]).items())

    sessions = dict(head.get("sessions") or {})
    collected = []
    for sid, seen in changes.stale.items():
        if sid in sessions and sessions[sid].get("seen") == seen:
            del sessions[sid]
            collected.append(sid)
            touched.sessions.add(sid)
    _apply(sessions, changes.sessions, touched.sessions)
    blobs = dict(head.get("blobs") or {})
    _apply(blobs, changes.blobs, touched.blobs)
    new = {**head, "nodes": nodes, "sessions": sessions, "blobs": blobs,
           "generation": int(head.get("generation", 0)) + 1}
    return Merged(new, touched, superseded, collected)


def _apply(entries: dict, changed: dict, touched: set) -> None:
    """Set, or with None remove, entries by key; note each key touched."""
    for key, value in changed.items():
        if value is None:
            entries.pop(key, None)
        else:
            entries[key] = value
        touched.add(key)


def referenced_keys(head: dict, key_of: Callable[[str, str, list], str]) -> set[str]:
    """Every chunk object key a manifest names."""
    return {key_of(hx, name, entry) for hx, rec in head["nodes"].items()
            for name, entry in chunk_entries(rec).items()}
