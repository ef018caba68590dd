"""The flow engine on native files and the memory connector: h5flow's example
gives h5flow 0.2.4's output, h5flow's own tests pass against the compatible
API, class discovery imports only what it needs, errors name their stage,
``--resume`` after ``kill -9`` equals an uninterrupted run, and reuse."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import numpy.ma as ma
import pytest
from flow_support import (
    MODULES,
    assert_same_outputs,
    compare_with_h5flow,
    example_folder,
    flow,
    peer_python,
    unpack_h5flow,
)

import h5pyvol
from h5pyvol.flow import FlowError
from h5pyvol.flow.compat import h5flow_compat

CHUNKS = 12  # chunks of 1024 rows for the example runs: enough to cross checkpoints, small enough to be quick


@pytest.fixture(scope="module")
def h5flow_reference(tmp_path_factory):
    """h5flow 0.2.4 itself on its example: (folder, output file)."""
    folder = example_folder(tmp_path_factory.mktemp("h5flow"))
    out = folder / "h5flow.h5"
    proc = subprocess.run([peer_python(), "-c", "import h5flow; h5flow.main()", "-c", "examples/example_config.yaml",
                           "-o", str(out), "-e", str(CHUNKS)], cwd=folder, capture_output=True, text=True,
                          env=dict(os.environ, H5FLOW_NOMPI="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder, out


def test_example_matches_h5flow(h5flow_reference, tmp_path):
    folder = example_folder(tmp_path)
    proc = flow(["-c", "examples/example_config.yaml", "-o", "ours.h5", "-e", str(CHUNKS)], folder)
    assert f"{CHUNKS} chunks" in proc.stdout and "example_stage1" in proc.stdout  # the time profile
    with h5py.File(h5flow_reference[1]) as theirs, h5py.File(folder / "ours.h5") as ours:
        compare_with_h5flow(theirs, ours, dropped="example_stage2")
        assert len(ours["input/index/data"]) == CHUNKS * 1024
        run = ours["h5pyvol_flow/run000"]
        assert run.attrs["status"] == "finished" and run.attrs["chunks"] == CHUNKS
        assert "example_stage0" in list(run.attrs["profile_steps"])
        assert "ExampleStage" in run.attrs["components"] and "classname: ExampleGenerator" in run.attrs["config"]
    assert not list(folder.glob(".h5pyvol-flow-drop-*")), "the scratch file of dropped objects is removed"


DEREF_SCRIPT = r"""
import sys, numpy as np, h5py
from h5flow.data import dereference, dereference_chain
f = h5py.File(sys.argv[1], "r"); out = {}
ref = f["input/index/ref/stage0/example/ref"]; data = f["stage0/example/data"]; idx = f["input/index/data"]
reg_a = f["input/index/ref/stage0/example/ref_region"]; reg_b = f["stage0/example/ref/input/index/ref_region"]
cases = {
    "fwd": lambda: dereference(slice(1000, 1100), ref, data, region=reg_a),
    "fwd_noregion": lambda: dereference(slice(0, 50), ref, data),
    "fwd_idx": lambda: dereference(np.array([5, 3, 3, 2000]), ref, data, region=reg_a, indices_only=True),
    "back": lambda: dereference(slice(2040, 2060), ref, idx, region=reg_b, ref_direction=(1, 0)),
    "masked": lambda: dereference(np.arange(10, 20), ref, data, region=reg_a, mask=np.arange(10) % 3 == 0),
    "chain": lambda: dereference_chain(slice(3000, 3010), [ref, ref], idx, regions=[reg_a, reg_b],
                                       ref_directions=[(0, 1), (1, 0)]),
}
for name, fn in cases.items():
    got = fn()
    out[name + ".data"] = np.ma.getdata(got); out[name + ".mask"] = np.ma.getmaskarray(got)
lists = dereference(slice(7, 12), ref, data, region=reg_a, as_masked=False)
for i, a in enumerate(lists):
    out[f"list{i}"] = a
np.savez(sys.argv[2], **out)
"""


def test_dereference_matches_h5flow(h5flow_reference, tmp_path):
    """h5flow's dereference on its own file vs ours on its file (32-bit) and on ours (64-bit)."""
    folder, theirs = h5flow_reference
    script = tmp_path / "deref.py"
    script.write_text(DEREF_SCRIPT)
    subprocess.run([peer_python(), str(script), str(theirs), str(tmp_path / "theirs.npz")], check=True,
                   env=dict(os.environ, H5FLOW_NOMPI="1"))
    subprocess.run([sys.executable, str(script), str(theirs), str(tmp_path / "ours_on_theirs.npz")], check=True,
                   env=dict(os.environ, PYTHONPATH=str(Path(h5pyvol.flow.compat.HERE))))
    ours_folder = example_folder(tmp_path / "ours")
    flow(["-c", "examples/example_config.yaml", "-o", "ours.h5", "-e", "4"], ours_folder)
    subprocess.run([sys.executable, str(script), str(ours_folder / "ours.h5"), str(tmp_path / "ours.npz")],
                   check=True, env=dict(os.environ, PYTHONPATH=str(Path(h5pyvol.flow.compat.HERE))))
    ref = np.load(tmp_path / "theirs.npz")
    for other in ("ours_on_theirs.npz", "ours.npz"):
        got = np.load(tmp_path / other)
        assert sorted(got.files) == sorted(ref.files)
        for key in ref.files:
            if key.endswith(".data"):  # compare where unmasked; masked slots hold no value
                mask = ref[key[:-5] + ".mask"]
                assert got[key].shape == ref[key].shape, (other, key)
                assert np.array_equal(np.where(mask, 0, got[key]), np.where(mask, 0, ref[key])), (other, key)
            else:
                assert np.array_equal(got[key], ref[key]), (other, key)


def test_h5flow_own_tests_pass_on_compat_api(tmp_path):
    """h5flow 0.2.4's own test suite, run against h5pyvol's h5flow package."""
    unpack_h5flow(tmp_path, ("examples/", "tests/"))
    env = dict(os.environ, PYTHONPATH=h5pyvol.flow.compat.HERE, H5FLOW_NOMPI="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "15 passed" in proc.stdout, proc.stdout[-2000:]


def _config(folder: Path, text: str, name: str = "flow.yaml") -> str:
    (folder / name).write_text(text)
    return name


COUNTER = """
counter:
  classname: Counter
  dset_name: rows
  params: {chunk_size: 100}
"""

SPARSE = """
flow:
  source: counter
  stages: [sparse, reader]
""" + COUNTER + """
sparse:
  classname: Sparse
  params: {every: 7, delay: DELAY}
reader:
  classname: Reader
  requires: [sparse]
"""


def sparse_config(folder: Path, delay: float = 0.0) -> str:
    shutil.copy(MODULES / "sample_modules.py", folder / "sample_modules.py")
    return _config(folder, SPARSE.replace("DELAY", str(delay)))


def test_discovery_reads_syntax_trees_only(tmp_path):
    cfg = sparse_config(tmp_path)
    mark = tmp_path / "executed"
    (tmp_path / "bystander.py").write_text(f"open({str(mark)!r}, 'w').close()\nclass Unrelated: pass\n")
    (tmp_path / "broken.py").write_text("this is not python(\n")
    sub = tmp_path / "h5flow_modules" / "deeper"
    sub.mkdir(parents=True)
    (sub / "other.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    flow(["-c", cfg, "-o", "out.h5", "-e", "3"], tmp_path)
    assert not mark.exists(), "a module that does not define the class was executed"
    with h5py.File(tmp_path / "out.h5") as f:
        rows = f["rows/data"][()]
        assert len(rows) == 300 and np.array_equal(rows["i"], np.arange(300))
        assert np.array_equal(f["sparse/data"][:, 0], (np.arange(0, 300, 7) ** 2).astype("f8"))
        counted = f["counted/data"][()]
        assert np.array_equal(np.flatnonzero(counted), np.arange(0, 300, 7))


def test_errors_name_the_stage(tmp_path):
    cfg = sparse_config(tmp_path)
    text = (tmp_path / cfg).read_text()
    _config(tmp_path, text.replace("requires: [sparse]", "requires: [{name: x, path: [nowhere]}]"), "badreq.yaml")
    proc = flow(["-c", "badreq.yaml", "-o", "a.h5", "-e", "2"], tmp_path, check=False)
    assert proc.returncode == 1
    assert "stage 'reader': requirement 'x' (rows -> nowhere)" in proc.stderr and "nowhere" in proc.stderr
    _config(tmp_path, text.replace("classname: Reader", "classname: Explodes").replace("requires: [sparse]", ""),
            "boom.yaml")
    proc = flow(["-c", "boom.yaml", "-o", "b.h5", "-e", "5"], tmp_path, check=False)
    assert proc.returncode == 1
    assert "stage 'reader' on chunk 3 slice(300, 400, None) failed: ValueError: bad detector data" in proc.stderr
    _config(tmp_path, text.replace("classname: Reader", "classname: NoSuchStage"), "missing.yaml")
    proc = flow(["-c", "missing.yaml", "-o", "c.h5"], tmp_path, check=False)
    assert proc.returncode == 1 and "'reader': no class NoSuchStage" in proc.stderr


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    straight = tmp_path / "straight"
    crashed = tmp_path / "crashed"
    for d in (straight, crashed):
        d.mkdir()
        sparse_config(d, delay=0.05)
    flow(["-c", "flow.yaml", "-o", "out.h5", "-e", "40", "--quiet"], straight)
    cmd = [sys.executable, "-P", "-m", "h5pyvol.flow", "-c", "flow.yaml", "-o", "out.h5", "-e", "40",
           "--checkpoint-every", "0", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=crashed, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = crashed / "out.h5.flow-journal"
    deadline = time.monotonic() + 120

    def checkpoints() -> int:
        return journal.read_text().count('"checkpoint"') if journal.exists() else 0

    while checkpoints() < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = journal.read_text().count('"checkpoint"')
    assert 8 <= done < 40
    proc = flow(["-c", "flow.yaml", "-o", "out.h5", "-e", "40", "--resume", "--quiet"], crashed)
    assert not journal.exists()
    with h5py.File(straight / "out.h5") as a, h5py.File(crashed / "out.h5") as b:
        assert_same_outputs(a, b)
        assert len(b["rows/data"]) == 4000
        assert b["h5pyvol_flow/run000"].attrs["status"] == "finished"


THREE = """
flow:
  source: counter
  stages: [sparse, reader, scaled]
""" + COUNTER + """
sparse:
  classname: Sparse
  params: {every: EVERY}
reader:
  classname: Reader
  requires: [sparse]
scaled:
  classname: Scaled
  params: {factor: FACTOR}
"""


def three_stages(folder: Path, every: int = 7, factor: float = 2.0, name: str = "flow.yaml") -> str:
    shutil.copy(MODULES / "sample_modules.py", folder / "sample_modules.py")
    return _config(folder, THREE.replace("EVERY", str(every)).replace("FACTOR", str(factor)), name)


def _calls(folder: Path, args: list[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run a flow and return which components' hooks ran (noted by the test modules)."""
    log = folder / "calls.log"
    log.unlink(missing_ok=True)
    proc = flow(args, folder, env={"H5PYVOL_FLOW_TEST_CALLS": str(log)})
    calls = log.read_text().split() if log.exists() else []
    return proc, sorted({c.split(".")[0] for c in calls})


def test_per_stage_reuse_runs_only_what_changed(tmp_path):
    """A stage whose identity and input versions are unchanged is not run again;
    a changed stage runs, and so does every stage that reads what it writes."""
    three_stages(tmp_path)
    _, ran = _calls(tmp_path, ["-c", "flow.yaml", "-o", "out.h5", "-e", "4", "--quiet"])
    assert ran == ["counter", "reader", "scaled", "sparse"]
    with h5py.File(tmp_path / "out.h5") as f:
        access = json.loads(f["h5pyvol_flow/run000"].attrs["access"])
        assert "sparse/data" in access["reader"]["reads"]  # through its requires
        assert "sparse/data" in access["sparse"]["writes"] and "scaled/data" in access["scaled"]["writes"]
        assert access["reader"]["reads"]["rows/data"] == access["counter"]["stamp"]

    # sparse's parameter changes: sparse runs, and reader (which requires it); counter and scaled are reused
    three_stages(tmp_path, every=5)
    proc, ran = _calls(tmp_path, ["-c", "flow.yaml", "-o", "out.h5", "-e", "4", "--quiet"])
    assert ran == ["reader", "sparse"], proc.stdout
    assert "reusing counter, scaled from run000" in proc.stdout
    assert "sparse (its params changed)" in proc.stdout and "reader (it reads" in proc.stdout
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    three_stages(fresh, every=5)
    flow(["-c", "flow.yaml", "-o", "out.h5", "-e", "4", "--quiet"], fresh)
    with h5py.File(fresh / "out.h5") as a, h5py.File(tmp_path / "out.h5") as b:
        assert_same_outputs(a, b)
        assert len(b["sparse/data"]) == len(range(0, 400, 5))
        run1 = b["h5pyvol_flow/run001"]
        assert json.loads(run1.attrs["plan"])["reused"] == ["counter", "scaled"]
        assert np.array_equal(run1["slices"][()], b["h5pyvol_flow/run000/slices"][()])

    # now only scaled changes
    three_stages(tmp_path, every=5, factor=3.0)
    _, ran = _calls(tmp_path, ["-c", "flow.yaml", "-o", "out.h5", "-e", "4", "--quiet"])
    assert ran == ["scaled"]
    three_stages(fresh, every=5, factor=3.0, name="flow.yaml")
    flow(["-c", "flow.yaml", "-o", "again.h5", "-e", "4", "--quiet"], fresh)
    with h5py.File(fresh / "again.h5") as a, h5py.File(tmp_path / "out.h5") as b:
        assert_same_outputs(a, b)
        assert b["scaled"].attrs["factor"] == 3.0

    # nothing changes: nothing runs
    proc, ran = _calls(tmp_path, ["-c", "flow.yaml", "-o", "out.h5", "-e", "4"])
    assert ran == [] and "reusing h5pyvol_flow/run002" in proc.stdout
    # the generator's bounds change: everything runs again, as a fresh run would
    _, ran = _calls(tmp_path, ["-c", "flow.yaml", "-o", "out.h5", "-e", "3", "--quiet"])
    assert ran == ["counter", "reader", "scaled", "sparse"]
    with h5py.File(tmp_path / "out.h5") as f:
        assert len(f["rows/data"]) == 300 and len(f["scaled/data"]) == 300


PROBE = """
flow:
  source: counter
  stages: [probe, sparse]
counter: {classname: Counter, dset_name: rows, params: {chunk_size: 100}}
probe: {classname: Probe, params: {looks_for: extra}}
sparse: {classname: Sparse, params: {output: OUTPUT}}
"""


def test_reuse_second_pass_when_a_rerun_stage_writes_something_new(tmp_path):
    """A rerun stage writes a dataset it did not write before, which a reused
    stage looked for: a second pass runs that stage too."""
    shutil.copy(MODULES / "sample_modules.py", tmp_path / "sample_modules.py")
    _config(tmp_path, PROBE.replace("OUTPUT", "sparse"))
    flow(["-c", "flow.yaml", "-o", "out.h5", "-e", "2", "--quiet"], tmp_path)
    _config(tmp_path, PROBE.replace("OUTPUT", "extra"))
    proc, ran = _calls(tmp_path, ["-c", "flow.yaml", "-o", "out.h5", "-e", "2", "--quiet"])
    assert ran == ["probe", "sparse"], proc.stdout
    assert "running again after this run changed what they read" in proc.stdout
    flow(["-c", "flow.yaml", "-o", "fresh.h5", "-e", "2", "--quiet"], tmp_path)
    with h5py.File(tmp_path / "fresh.h5") as a, h5py.File(tmp_path / "out.h5") as b:
        assert_same_outputs(a, b)
        assert b["probe/data"][()].all() and "sparse" not in b
        assert list(b["h5pyvol_flow"]) == ["run000", "run001", "run002"]


def test_reuse_and_equivalent_hashes(tmp_path):
    cfg = sparse_config(tmp_path)
    flow(["-c", cfg, "-o", "out.h5", "-e", "3", "--quiet"], tmp_path)
    proc = flow(["-c", cfg, "-o", "out.h5", "-e", "3"], tmp_path)
    assert "reusing h5pyvol_flow/run000" in proc.stdout
    with h5py.File(tmp_path / "out.h5") as f:
        assert len(f["rows/data"]) == 300 and list(f["h5pyvol_flow"]) == ["run000"]
        old_hash = f["h5pyvol_flow/run000"].attrs["code_hash:sparse"]
    (tmp_path / "out2.h5").write_bytes((tmp_path / "out.h5").read_bytes())
    # new code in Sparse's class: sparse and reader run again, over the same rows
    src = tmp_path / "sample_modules.py"
    src.write_text(src.read_text().replace('self.every = params.get("every", 7)',
                                           'self.every = int(params.get("every", 7))'))
    proc = flow(["-c", cfg, "-o", "out.h5", "-e", "3"], tmp_path)
    assert "reusing counter from run000" in proc.stdout and "sparse (its code changed)" in proc.stdout
    with h5py.File(tmp_path / "out.h5") as f:
        assert len(f["rows/data"]) == 300 and len(f["sparse/data"]) == len(range(0, 300, 7))
    # the author says the old code gives the same output: reused
    anchor = "    def __init__(self, **params):\n        super().__init__(**params)\n        self.every"
    src.write_text(src.read_text().replace(anchor, f"    equivalent_hashes = ['{old_hash}']\n\n{anchor}"))
    proc = flow(["-c", cfg, "-o", "out2.h5", "-e", "3"], tmp_path)
    assert "reusing h5pyvol_flow/run000" in proc.stdout
    # --no-reuse: h5flow's behaviour, everything runs again and appends
    flow(["-c", cfg, "-o", "out2.h5", "-e", "3", "--no-reuse", "--quiet"], tmp_path)
    with h5py.File(tmp_path / "out2.h5") as f:
        assert len(f["rows/data"]) == 600


def test_memory_connector_output_equals_native(tmp_path, monkeypatch):
    cfg = sparse_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    from h5pyvol.flow import run

    run([cfg], "native.h5", end_position=4, profile=False)
    run([cfg], "flow-mem.h5", end_position=4, profile=False, connector="memory")
    with h5pyvol.File("flow-mem.h5", "r", connector="memory") as mem, h5py.File("native.h5") as nat:
        assert h5pyvol.connector_name(mem.id) == "h5pyvol"
        assert_same_outputs(nat, mem)


def test_data_manager_and_dereference(tmp_path):
    with h5flow_compat():
        from h5flow.data import H5FlowDataManager, dereference

        dm = H5FlowDataManager(str(tmp_path / "dm.h5"))
        dm.create_dset("A", int)
        dm.create_dset("B", "f4")
        dm.create_ref("A", "B")
        a = dm.reserve_data("A", 5)
        dm.write_data("A", a, np.arange(5) * 10)
        b = dm.reserve_data("B", 8)
        dm.write_data("B", b, np.arange(8, dtype="f4") / 2)
        dm.write_ref("A", "B", np.array([[0, 1], [0, 2], [3, 7], [4, 0]]))
        dm.write_ref("B", "A", np.array([[5, 3]]))  # the other way round: stored reversed
        ref, direction = dm.get_ref("A", "B")
        assert direction == (0, 1) and ref.dtype == np.int64 and len(ref) == 5
        assert dm.get_ref("B", "A")[1] == (1, 0)
        region = dm.get_ref_region("A", "B")[()]
        assert region[0].tolist() == (0, 2) and region[3].tolist() == (2, 5) and region[1].tolist() == (0, 0)
        back = dm.get_ref_region("B", "A")[()]  # kept both ways
        assert back[7].tolist() == (2, 3) and back[5].tolist() == (4, 5) and len(back) == 8
        got = dm["A", "B", 0:5]  # chained access
        assert got.shape == (5, 2) and got[0].tolist() == [0.5, 1.0] and got[3].compressed().tolist() == [2.5, 3.5]
        assert ma.getmaskarray(got)[1].all()
        idx = dereference(slice(0, 5), ref, indices_only=True, region=dm.get_ref_region("A", "B"))
        assert idx[3].compressed().tolist() == [5, 7]
        dm.set_attrs("A", note="x")
        assert dm.get_attrs("A")["note"] == "x"
        with pytest.raises(FlowError, match="already exist"):
            dm.create_ref("B", "A")
        with pytest.raises(FlowError, match=r"\(N, 2\) integer array"):
            dm.write_ref("A", "B", np.zeros((2, 3)))
        dm.finish()
    with h5py.File(tmp_path / "dm.h5") as f:
        assert f["A/ref/B/ref"][()].tolist() == [[0, 1], [0, 2], [3, 7], [4, 0], [3, 5]]
        assert f["B/ref/A/ref_region"].dtype["stop"] == np.int64


def test_help_and_bad_flags(tmp_path):
    proc = subprocess.run([sys.executable, "-P", "-m", "h5pyvol", "flow", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--resume" in proc.stdout and "mpiexec" in proc.stdout
    proc = flow(["-c", "nope.yaml", "-o", "x.h5"], tmp_path, check=False)
    assert proc.returncode == 1 and "cannot read config nope.yaml" in proc.stderr
    (tmp_path / "bad.yaml").write_text("flow: {stages: [a]}\n")
    proc = flow(["-c", "bad.yaml", "-o", "x.h5"], tmp_path, check=False)
    assert "no 'source'" in proc.stderr
    proc = flow(["-c", "bad.yaml", "-o", "x.h5", "--resume"], tmp_path, check=False)
    assert "nothing to resume" in proc.stderr


def test_four_ranks_equal_serial(tmp_path):
    sparse_config(tmp_path, delay=0.002)
    flow(["-c", "flow.yaml", "-o", "serial.h5", "-e", "30", "--quiet"], tmp_path)
    proc = flow(["-c", "flow.yaml", "-o", "mpi4.h5", "-e", "30"], tmp_path, mpi=4)
    assert "on 4 rank(s)" in proc.stdout
    with h5py.File(tmp_path / "serial.h5") as a, h5py.File(tmp_path / "mpi4.h5") as b:
        assert_same_outputs(a, b)
