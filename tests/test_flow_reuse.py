"""The reuse plan (h5pyvol.flow.reuse.make_plan) on records made by hand: which
components run again when one changes, and why. The end-to-end runs are in
test_flow.py and test_flow_parcorana.py."""

from __future__ import annotations

import copy

from h5pyvol.flow.reuse import ABSENT, make_plan

STAMP0, STAMP1 = "run000@aaaa", "run001@bbbb"


def comp(role: str, name: str, **extra) -> dict:
    return {"role": role, "name": name, "classname": name.title(), "class_version": "1", "params": {},
            "code_hash": f"hash-{name}", "equivalent_hashes": [], **extra}


def access(reads: dict | None = None, writes: list | None = None, attrs: dict | None = None,
           stamp: str = STAMP0, opaque: str | None = None) -> dict:
    return {"reads": reads or {}, "writes": writes or [], "attrs": attrs or {}, "created": [], "opaque": opaque,
            "stamp": stamp}


def workflow() -> tuple[list[dict], dict]:
    """gen -> rows; a reads rows, writes a; b reads a, writes b; c reads rows, writes c and (attrs) meta."""
    comps = [comp("generator", "gen", dset_name="rows"), comp("stage", "a"), comp("stage", "b"), comp("stage", "c")]
    acc = {"gen": access(writes=["rows/data"]),
           "a": access({"rows/data": STAMP0}, ["a/data"]),
           "b": access({"rows/data": STAMP0, "a/data": STAMP0}, ["b/data"]),
           "c": access({"rows/data": STAMP0}, ["c/data"], {"meta": ["k"]})}
    return comps, {"name": "run000", "components": comps, "access": acc, "run_id": "aaaa", "slices": None}


def plan(records: list[dict], new: list[dict], missing: tuple[str, ...] = ()):
    return make_plan(records, new, lambda path: path not in missing)


def changed(comps: list[dict], name: str, **change) -> list[dict]:
    new = copy.deepcopy(comps)
    next(c for c in new if c["name"] == name).update(change)
    return new


def test_unchanged_runs_nothing_and_a_change_runs_its_readers():
    comps, rec = workflow()
    p = plan([rec], comps)
    assert p.run == [] and p.reused == ["gen", "a", "b", "c"] and p.base_name == "run000"
    p = plan([rec], changed(comps, "a", params={"x": 1}))
    assert p.run == ["a", "b"] and p.reused == ["gen", "c"]
    assert p.reasons == {"a": "its params changed", "b": "it reads a/data, which a writes"}


def test_code_hash_and_equivalent_hashes():
    comps, rec = workflow()
    assert plan([rec], changed(comps, "c", code_hash="new")).run == ["c"]
    assert plan([rec], changed(comps, "c", code_hash="new", equivalent_hashes=["hash-c"])).run == []


def test_generator_or_resource_change_runs_everything():
    comps, rec = workflow()
    p = plan([rec], changed(comps, "gen", bounds={"end": 5}))
    assert p.run == ["gen", "a", "b", "c"] and p.reasons["c"] == "generator gen changed"
    with_res = [comp("resource", "res"), *comps]
    rec2 = dict(rec, components=with_res, access=dict(rec["access"], res=access()))
    assert plan([rec2], with_res).run == []
    assert plan([rec2], changed(with_res, "res", params={"p": 2})).run == ["res", "gen", "a", "b", "c"]
    assert plan([rec2], comps).run == ["gen", "a", "b", "c"]  # a resource went away


def test_other_writers_of_what_a_rerun_component_writes_run_too():
    comps, rec = workflow()
    rec["access"]["c"]["writes"].append("a/data")  # c appends to a's table too: their rows interleave
    p = plan([rec], changed(comps, "a", params={"x": 1}))
    assert p.run == ["a", "b", "c"] and p.reasons["c"] == "it writes a/data with a"
    comps, rec = workflow()
    rec["access"]["a"]["attrs"] = {"meta": ["k"]}  # the same attribute key
    assert plan([rec], changed(comps, "a", params={"x": 1})).run == ["a", "b", "c"]
    comps, rec = workflow()
    rec["access"]["a"]["attrs"] = {"meta": ["other"]}  # another key of the same object: independent
    assert plan([rec], changed(comps, "a", params={"x": 1})).run == ["a", "b"]


def test_reads_of_attributes_and_of_dropped_objects():
    comps, rec = workflow()
    rec["access"]["b"]["reads"]["meta"] = STAMP0  # b reads the attributes c sets
    assert plan([rec], changed(comps, "c", params={"x": 1})).run == ["b", "c"]
    comps, rec = workflow()
    # b reads c's output, which the drop list removed: changing b makes c run again to remake it
    rec["access"]["b"]["reads"]["c/data"] = STAMP0
    p = plan([rec], changed(comps, "b", params={"x": 1}), missing=("c/data",))
    assert p.run == ["b", "c"] and p.reasons["c"] == "b reads c/data, which is not kept in the output"


def test_an_input_rewritten_by_another_run_or_appearing():
    comps, rec = workflow()
    rec["access"]["a"]["reads"]["other/data"] = STAMP0  # written by another workflow's run...
    other = {"name": "run001", "components": [comp("generator", "o", dset_name="other")], "run_id": "bbbb",
             "access": {"o": access(writes=["other/data"], stamp=STAMP1)}, "slices": None}
    older = dict(other, name="run00", access={"o": access(writes=["other/data"], stamp=STAMP0)})
    assert plan([older, rec], comps).run == []
    p = plan([rec, other], comps)  # ...which ran again after ours
    assert p.run == ["a", "b"] and p.reasons["a"] == "other/data changed since run000"
    comps, rec = workflow()
    rec["access"]["c"]["reads"]["maybe/data"] = ABSENT  # c looked for it; now it exists
    assert plan([rec], comps).run == ["c"]
    assert plan([rec], comps, missing=("maybe/data",)).run == []


def test_base_is_the_latest_finished_run_of_the_same_source():
    comps, rec = workflow()
    assert plan([], comps).base is None and plan([], comps).run == ["gen", "a", "b", "c"]
    other_source = changed(comps, "gen", dset_name="elsewhere")
    p = plan([rec], other_source)
    assert p.base is None and p.run == ["gen", "a", "b", "c"]
    no_access = dict(rec, access=None)
    assert plan([no_access], comps).base is None
    comps2 = [*comps, comp("stage", "d")]  # a new stage runs alone
    p = plan([rec], comps2)
    assert p.run == ["d"] and p.reasons == {"d": "new"}
    rec["access"]["c"]["opaque"] = "data_manager.fh"
    assert plan([rec], comps).run == ["c"]
