"""Per-stage reuse: what each component read and wrote, the version stamp of
every object a workflow wrote, and which components a new run must run again.

During a run the data manager notes, per component (the generator, each stage,
each resource), the objects it read (``get_dset``, ``get_attrs``, existence
checks, a stage's ``requires`` and its source) and the ones it wrote: datasets
it created or changed rows of, attribute keys it set, groups it created. The
run's provenance record keeps these as an `Access` per component.

The *version stamp* of an object is ``RECORD@RUN_ID``: the run in which the
components that write it last ran (a reused component keeps its stamp). An
object no recorded run wrote is ``untracked`` if it exists, else ``absent``.
Each component's record lists the stamps of the objects it read, as they were
when its run finished: those are its *input versions*.

A new run of a workflow plans against the latest finished run of the same
source (`make_plan`). A component runs again when it is new, its identity
changed (class, class version, parameters, requires, code hash unless listed
in ``equivalent_hashes``; for the generator also its input and bounds), its
record marks its accesses as unknown (it used h5py objects directly), or one
of its input versions differs from what it will be after this run. Then,
until nothing changes: every other writer of an object a rerun component
writes runs too (their rows interleave), and so does every component that
reads an object a rerun component writes. A changed generator or resource
reruns everything. The outputs of rerun components are deleted first
(`cleanup`), so the result equals a fresh run of the new workflow.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import h5py

from .store import norm

ABSENT = "absent"
UNTRACKED = "untracked"
IDENTITY_SKIP = {"code_hash", "equivalent_hashes", "module"}


class Access:
    """What one component read and wrote during a run (object paths in the output)."""

    __slots__ = ("reads", "writes", "attrs", "created", "opaque")

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.writes: set[str] = set()  # datasets it created or wrote rows of
        self.attrs: dict[str, set[str]] = {}  # object -> attribute keys it set
        self.created: set[str] = set()  # groups it created
        self.opaque: str | None = None  # why its accesses are unknown (direct h5py use)

    def __getstate__(self):
        return (self.reads, self.writes, self.attrs, self.created, self.opaque)

    def __setstate__(self, state):
        self.reads, self.writes, self.attrs, self.created, self.opaque = state

    def set_attrs(self, path: str, keys: Iterable[str]) -> None:
        self.attrs.setdefault(path, set()).update(keys)

    def merge(self, other: Access) -> None:
        self.reads |= other.reads
        self.writes |= other.writes
        for path, keys in other.attrs.items():
            self.set_attrs(path, keys)
        self.created |= other.created
        self.opaque = self.opaque or other.opaque

    def record(self, stamp: str, stamp_of: Callable[[str], str]) -> dict:
        """The JSON-able record: reads with their stamps, minus what it wrote itself."""
        own = self.writes | set(self.attrs)
        return {"reads": {p: stamp_of(p) for p in sorted(self.reads - own)}, "writes": sorted(self.writes),
                "attrs": {p: sorted(k) for p, k in sorted(self.attrs.items())}, "created": sorted(self.created),
                "opaque": self.opaque, "stamp": stamp}


def stamp(record: str, run_id: str) -> str:
    return f"{record}@{run_id}"


def written_stamps(records: list[dict]) -> dict[str, str]:
    """The stamp of every object the finished `records` (oldest first) wrote."""
    stamps: dict[str, str] = {}
    for rec in records:
        for entry in (rec.get("access") or {}).values():
            for path in [*entry.get("writes", ()), *entry.get("attrs", {})]:
                stamps[path] = entry["stamp"]
    return stamps


def stamp_function(stamps: dict[str, str], exists: Callable[[str], bool]) -> Callable[[str], str]:
    def stamp_of(path: str) -> str:
        return stamps.get(path) or (UNTRACKED if exists(path) else ABSENT)

    return stamp_of


def same_identity(old: dict, new: dict) -> bool:
    same_code = old.get("code_hash") == new.get("code_hash") or old.get("code_hash") in new.get(
        "equivalent_hashes", [])
    keys = (set(old) | set(new)) - IDENTITY_SKIP
    return same_code and all(old.get(k) == new.get(k) for k in keys)


def _difference(old: dict, new: dict) -> str:
    if old.get("code_hash") != new.get("code_hash") and old.get("code_hash") not in new.get("equivalent_hashes", []):
        return "its code changed"
    changed = sorted(k for k in (set(old) | set(new)) - IDENTITY_SKIP if old.get(k) != new.get(k))
    return f"its {', '.join(k.replace('_', ' ') for k in changed)} changed"


@dataclass
class Plan:
    """Which components of a run run, and against which earlier run the others are reused."""

    base: dict | None  # the finished record planned against, or None
    run: list[str]  # component names that run (in workflow order)
    reused: list[str]  # component names whose outputs are kept
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def base_name(self) -> str | None:
        return self.base["name"] if self.base else None

    def runs(self, name: str) -> bool:
        return name in self.run

    def as_json(self) -> str:
        return json.dumps({"base": self.base_name, "run": self.run, "reused": self.reused, "reasons": self.reasons})

    def describe(self) -> str:
        if not self.reused:
            return ""
        ran = ", ".join(f"{n} ({self.reasons[n]})" if n in self.reasons else n for n in self.run) or "nothing"
        return f"reusing {', '.join(self.reused)} from {self.base_name}; running {ran}"


def choose_base(records: list[dict], generator: dict) -> dict | None:
    """The latest finished record with access records and the same source (generator name and dataset)."""
    for rec in reversed(records):
        if not rec.get("access"):
            continue
        for comp in rec["components"]:
            if comp["role"] == "generator":
                if comp["name"] == generator["name"] and comp.get("dset_name") == generator.get("dset_name"):
                    return rec
                break
    return None


def make_plan(records: list[dict], components: list[dict], exists: Callable[[str], bool]) -> Plan:
    """Plan a run of `components` (identity records: resources, generator, stages,
    in workflow order) into an output whose finished runs are `records`."""
    names = [c["name"] for c in components]
    generator = next(c for c in components if c["role"] == "generator")
    base = choose_base(records, generator)
    if base is None:
        return Plan(None, names, [], {})
    old = {c["name"]: c for c in base["components"]}
    access = base["access"]
    reasons: dict[str, str] = {}
    for comp in components:
        name, before = comp["name"], old.get(comp["name"])
        if before is None or before["role"] != comp["role"]:
            reasons[name] = "new"
        elif not same_identity(before, comp):
            reasons[name] = _difference(before, comp)
        elif name not in access:
            reasons[name] = "no record of what it read and wrote"
        elif access[name].get("opaque"):
            reasons[name] = f"it used the file directly ({access[name]['opaque']})"
    roles = {c["name"]: c["role"] for c in components}
    forced = [f"{roles[n]} {n}" for n in reasons if roles[n] != "stage"]
    if {n for n, c in old.items() if c["role"] == "resource"} != {n for n in names if roles[n] == "resource"}:
        forced.append("the list of resources")
    if forced:
        for name in names:
            reasons.setdefault(name, f"{forced[0]} changed")
        return Plan(base, names, [], reasons)

    stamp_of = stamp_function(written_stamps(records), exists)
    rerun = set(reasons)
    mine = [n for n in names if n in access]
    writers: dict[str, set[str]] = {}
    for n in mine:
        for path in [*access[n].get("writes", ()), *(f"{p}\0{k}" for p, ks in access[n].get("attrs", {}).items()
                                                     for k in ks)]:
            writers.setdefault(path, set()).add(n)
    attr_writers: dict[str, set[str]] = {}
    for key, ws in writers.items():
        if "\0" in key:
            attr_writers.setdefault(key.split("\0")[0], set()).update(ws)

    def written_by_rerun(path: str) -> set[str]:
        return (writers.get(path, set()) | attr_writers.get(path, set())) & rerun

    while True:
        grow: dict[str, str] = {}
        for key, ws in writers.items():
            if ws & rerun and ws - rerun:
                for n in ws - rerun:
                    grow.setdefault(n, f"it writes {key.split(chr(0))[0]} with {sorted(ws & rerun)[0]}")
        for n in mine:
            if n in rerun or n in grow:
                continue
            for path, seen in access[n].get("reads", {}).items():
                by = written_by_rerun(path)
                if by:
                    grow[n] = f"it reads {path}, which {sorted(by)[0]} writes"
                    break
                if stamp_of(path) != seen:
                    grow[n] = f"{path} changed since {base['name']}"
                    break
        for n in sorted(rerun & set(mine)):  # objects a rerun component reads that are gone (dropped): remake them
            for path in access[n].get("reads", {}):
                if path in writers and not exists(path):
                    for w in writers[path] - rerun:
                        grow.setdefault(w, f"{n} reads {path}, which is not kept in the output")
        if not grow:
            break
        reasons.update(grow)
        rerun |= set(grow)
    moved = [n for n in rerun if roles[n] != "stage"]
    if moved:  # the generator or a resource must run again: so must everything
        for name in names:
            reasons.setdefault(name, f"{roles[moved[0]]} {moved[0]} runs again")
        rerun = set(names)
    run = [n for n in names if n in rerun]
    return Plan(base, run, [n for n in names if n not in rerun], {n: reasons[n] for n in run})


def cleanup(f: h5py.File, plan: Plan) -> list[str]:
    """Delete from `f` what the rerun components wrote in the base run: their
    datasets, their attribute keys, then the groups they created if left empty.
    Returns the paths deleted."""
    if plan.base is None:
        return []
    access = plan.base["access"]
    entries = [access[n] for n in plan.run if n in access]
    deleted = []
    for path in sorted({p for e in entries for p in e.get("writes", ())}, key=lambda p: -p.count("/")):
        if path in f:
            del f[path]
            deleted.append(path)
    for e in entries:
        for path, keys in e.get("attrs", {}).items():
            if path in f:
                obj = f[path] if norm(path) else f
                for key in keys:
                    if key in obj.attrs:
                        del obj.attrs[key]
    for path in sorted({p for e in entries for p in e.get("created", ())}, key=lambda p: -p.count("/")):
        if norm(path) and path in f and isinstance(f[path], h5py.Group) and not len(f[path]) and not len(
                f[path].attrs):
            del f[path]
            deleted.append(path)
    return deleted
