"""Memory of C programs through the plugin.

Under valgrind: C programs' full runs through the in-memory connector (the
interpreter started and finalized by the plugin) show no definite leak and
no invalid memory access in the plugin's own code. The references program
also takes HDF5's reference conversion through the plugin's blob callbacks
and its file handles' stand-in (csrc/blob.c). Over many cycles: a program
that creates, writes and closes files again and again does not grow."""

from __future__ import annotations

import re
import shutil

import pytest
from support import run, vol_env

PLUGIN_FRAME = re.compile(r"(libh5pyvol\.so|: (pv|compat)_\w+ \()")  # every plugin function is pv_* or compat_*


def records(log: str) -> list[str]:
    """valgrind's error and leak records (blank-line separated blocks)."""
    return [b for b in re.split(r"\n==\d+== \n", log) if "==" in b]


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.parametrize("program", ["roundtrip", "references", "old_references"])
def test_no_leak_or_invalid_access_in_plugin(compile_c, tmp_path, program):
    env = vol_env("memory", PYTHONMALLOC="malloc")  # let valgrind see Python's allocations
    proc = run(
        ["valgrind", "--leak-check=full", "--show-leak-kinds=definite", "--num-callers=40",
         compile_c(program)],
        env, cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "ERROR SUMMARY" in proc.stderr, "valgrind did not run"
    bad = []
    for rec in records(proc.stderr):
        frames = [line for line in rec.splitlines() if re.search(r"==\d+==\s+(at|by) ", line)]
        if "definitely lost" in rec and any(PLUGIN_FRAME.search(f) for f in frames):
            bad.append(rec)
        elif re.search(r"Invalid (read|write|free)|Mismatched free", rec) and any(
                PLUGIN_FRAME.search(f) for f in frames[:3]):
            bad.append(rec)
    assert not bad, "\n\n".join(bad[:3])


@pytest.mark.parametrize("mode", ["plain", "attrs"])
def test_c_program_memory_stays_flat_over_many_files(compile_c, tmp_path, mode):
    """A C loop of H5Fcreate(TRUNC), H5Dcreate, an 8 KB H5Dwrite and close
    ("attrs": also an attribute, then a re-open reading both back), through
    the memory connector: the maximum RSS may not grow by more than 2 MB
    between cycle 1,000 and 10,000. In a C program all Python code runs in
    callbacks, where the plugin keeps the garbage collector off; a closed
    file's objects refer to each other, so they were never freed (about 12 KB
    a cycle) until the plugin ran the collections Python would have run."""
    proc = run([compile_c("cycle_rss"), mode, "10000", "1000", "2048"], vol_env("memory"), cwd=tmp_path, timeout=300)
    assert "connector: h5pyvol" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr[-3000:]
