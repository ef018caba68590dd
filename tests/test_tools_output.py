"""HDF5's tools (h5dump, h5ls) print through h5pyvol what they print natively.

A C program and an h5py script each write their sample file twice: natively,
and through the passthru connector (native files underneath, no services).
Every tool invocation of tests/tools/compare_tools.py must print the same
output on both, once the fields only the native format has are normalized.
The connector's call trace proves the tools went through h5pyvol: HDF5 falls
back to its native connector silently when the plugin does not load.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import pytest
from support import run, vol_env

import h5pyvol

TOOLS = Path(__file__).resolve().parent / "tools"
sys.path.insert(0, str(TOOLS))

import compare_tools  # noqa: E402


def write_c(compile_c, native_dir: Path, spec: str) -> None:
    prog = compile_c("tools_sample")
    native = run([prog, "sample.h5", "native"], compare_tools.native_env(), cwd=native_dir)
    assert native.returncode == 0, native.stdout + native.stderr
    through = run([prog, "sample.h5", "h5pyvol"], vol_env(spec), cwd=native_dir.parent)
    assert through.returncode == 0, through.stdout + through.stderr
    assert "sample.h5: connector h5pyvol" in through.stdout


def write_h5py(native_dir: Path, spec: str) -> None:
    script = TOOLS / "write_sample_h5py.py"
    native = run([sys.executable, script, "sample.h5"], compare_tools.native_env(), cwd=native_dir)
    assert native.returncode == 0, native.stderr
    through = run(
        [sys.executable, script, "sample.h5", "--connector", spec], compare_tools.native_env(), cwd=native_dir.parent
    )
    assert through.returncode == 0, through.stderr


WRITERS = {"c": write_c, "h5py": lambda compile_c, d, spec: write_h5py(d, spec)}


@pytest.fixture(scope="module", params=sorted(WRITERS))
def written(request, tmp_path_factory, compile_c):
    """(writer, native file, store directory of the passthru copy) for each writer."""
    base = tmp_path_factory.mktemp(f"tools-{request.param}")
    native_dir, store = base / "native", base / "store"
    native_dir.mkdir()
    store.mkdir()
    WRITERS[request.param](compile_c, native_dir, f"passthru;root={store}")
    assert (store / "sample.h5").is_file() and (store / "sample_ext.h5").is_file()
    return request.param, native_dir / "sample.h5", store


@pytest.mark.parametrize("invocation", list(compare_tools.INVOCATIONS))
def test_tool_output_through_passthru_matches_native(written, invocation, tmp_path):
    writer, native_file, store = written
    trace = tmp_path / "calls.log"
    [c] = compare_tools.compare(native_file, f"passthru;root={store};trace={trace}", invocations=[invocation])
    assert c.native.returncode == 0, c.native.stderr
    assert c.native.stdout.count("\n") > 50  # the tool printed the file, not an error
    assert c.same, "".join(c.diff)
    # The tool went through h5pyvol: the connector opened the file and the tool walked its groups.
    calls = trace.read_text()
    assert f"PassthruConnector.open(<passthru {store}>, 'sample.h5', writable=False)" in calls
    assert calls.count("PassthruGroup.links(") >= 10
    if invocation.startswith("h5dump"):
        assert calls.count("PassthruDataset.read(") >= 30


def test_every_normalization_rule_is_needed(written):
    # A rule that never fires normalizes nothing: it must go (or the sample lost what it covers).
    _, native_file, store = written
    fired: set[str] = set()
    for c in compare_tools.compare(native_file, f"passthru;root={store}"):
        fired |= set(c.fired)
    assert fired == {r.name for r in compare_tools.RULES}


def test_a_real_difference_is_reported(written, tmp_path):
    # The comparison can fail: a file with other content through the connector gives a diff.
    _, native_file, store = written
    [c] = compare_tools.compare(native_file, f"passthru;root={store}", name="sample_ext.h5", invocations=["h5ls -r"])
    assert not c.same
    assert any(line.startswith("-/numbers") for line in c.diff)


def test_native_fallback_is_not_compared_with_itself(written):
    # If the plugin does not load, HDF5 uses its native connector: the connector
    # run happens in an empty directory, so that finds no file and fails.
    _, native_file, _ = written
    [c] = compare_tools.compare(native_file, "nosuchconnector", invocations=["h5ls -r"])
    assert not c.same and c.through.returncode != 0


def test_compare_script_cli(written, tmp_path):
    _, native_file, store = written
    script = TOOLS / "compare_tools.py"
    help_text = run([sys.executable, script, "--help"], compare_tools.native_env()).stdout
    for rule in compare_tools.RULES:
        assert rule.name in help_text
    proc = run(
        [sys.executable, script, "--connector", f"passthru;root={store}", native_file], compare_tools.native_env()
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": same") == len(compare_tools.INVOCATIONS)
    proc = run(
        [sys.executable, script, "--connector", f"passthru;root={store}", "--name", "sample_ext.h5", native_file],
        compare_tools.native_env(),
    )
    assert proc.returncode == 1 and "DIFFERENT" in proc.stdout and "\n-" in proc.stdout
    proc = run([sys.executable, script, "--connector", "passthru", tmp_path / "missing.h5"], compare_tools.native_env())
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_passthru_reports_the_native_object_times(written):
    # h5ls -v prints "Modified" from these (the comparison drops that line: see docs/tools.md).
    from h5py import h5o

    _, _, store = written
    with h5py.File(store / "sample.h5", "r") as native:
        expected = h5o.get_info(native["ordered"].id)
    assert expected.mtime > 0  # a version-2 object header: it records times
    with h5pyvol.File("sample.h5", "r", "passthru", root=str(store)) as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        got = h5o.get_info(f["ordered"].id)
    assert (got.atime, got.mtime, got.ctime, got.btime) == (
        expected.atime,
        expected.mtime,
        expected.ctime,
        expected.btime,
    )
