"""The pass-through connector stores real native HDF5 files.

What programs write through ``h5pyvol passthru`` must open natively (plain
h5py, h5dump, no connector) with the same content; native files must read
the same through it; options and the call trace must do what they say.
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import textwrap

import h5py
import numpy as np
import pytest
from support import run, run_python, vol_env

import h5pyvol
from h5pyvol import _hdf5, registry


def native_env() -> dict[str, str]:
    """The environment of a process that uses HDF5's native connector only."""
    env = dict(os.environ)
    env.pop("HDF5_VOL_CONNECTOR", None)
    env.pop("HDF5_PLUGIN_PATH", None)
    return env


def passthru_file(tmp_path, name: str, mode: str, **options: str) -> h5py.File:
    return h5pyvol.File(name, mode, "passthru", root=str(tmp_path), **options)


# ---------------------------------------------------------------- C programs and tools


def test_c_program_writes_a_native_file(compile_c, tmp_path, hdf5_prefix):
    store = tmp_path / "store"
    store.mkdir()
    proc = run([compile_c("roundtrip")], vol_env(f"passthru;root={store}"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "connector: h5pyvol" in proc.stdout  # H5VLget_connector_name, checked by the program too
    assert "PASS" in proc.stdout
    assert not (tmp_path / "roundtrip.h5").exists()  # the name went under root=

    # The same file, opened with no connector at all.
    with h5py.File(store / "roundtrip.h5", "r") as f:
        assert _hdf5.connector_name(f.id) == "native"
        table = f["results/table"]
        assert table.dtype == np.dtype("<i4")
        np.testing.assert_array_equal(table[()], np.add.outer(np.arange(4) * 10, np.arange(5)))
        assert table.attrs["answer"] == 42 and table.attrs["answer"].dtype == np.dtype(">i4")
        assert f.get("shortcut", getlink=True).path == "/results/table"
        np.testing.assert_array_equal(f["shortcut"][()], table[()])

    dump = run([hdf5_prefix / "bin" / "h5dump", store / "roundtrip.h5"], native_env())
    assert dump.returncode == 0, dump.stderr
    assert 'DATASET "table"' in dump.stdout and 'H5T_STD_I32LE' in dump.stdout
    assert 'ATTRIBUTE "answer"' in dump.stdout and 'H5T_STD_I32BE' in dump.stdout
    assert 'SOFTLINK "shortcut"' in dump.stdout and 'LINKTARGET "/results/table"' in dump.stdout
    assert "(3,0): 30, 31, 32, 33, 34" in dump.stdout


def test_c_program_exiting_with_open_objects_leaves_a_complete_native_file(compile_c, tmp_path):
    # HDF5 closes the leftovers at exit; our native file must close before HDF5's
    # sweeps do it object by object (and h5py closes the same ids again).
    proc = run([compile_c("left_open")], vol_env("passthru"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "leaving objects open" in proc.stdout and "Error" not in proc.stderr
    with h5py.File(tmp_path / "left_open.h5", "r") as f:
        assert list(f["g/d"][()]) == [1, 2, 3]


def test_h5py_program_exiting_with_open_objects_leaves_a_complete_native_file(tmp_path):
    code = "import h5py\nf = h5py.File('x.h5', 'w')\nf['g/d'] = [1, 2]\nd = f['g/d']\nprint('bye')"
    proc = run_python(code, vol_env("passthru"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bye" and proc.stderr == ""
    with h5py.File(tmp_path / "x.h5", "r") as f:
        assert list(f["g/d"][()]) == [1, 2]


def test_h5dump_through_passthru_matches_native_h5dump(tmp_path, hdf5_prefix):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w", track_order=True) as f:
        f["g/d"] = np.arange(12.0).reshape(3, 4)
        f["g"].attrs["note"] = "text"
        f["s"] = h5py.SoftLink("/g/d")
        f["point_t"] = np.dtype([("x", "<f4"), ("y", "<i2")])
        f.create_dataset("z", data=np.arange(100), chunks=(10,), compression="gzip", fillvalue=-1)
        f.create_dataset("v", data=["a", "bcd"], dtype=h5py.string_dtype())
    h5dump = hdf5_prefix / "bin" / "h5dump"
    native = run([h5dump, path.name], native_env(), cwd=tmp_path)
    stacked = run([h5dump, path.name], vol_env("passthru"), cwd=tmp_path)
    assert native.returncode == 0 and stacked.returncode == 0, stacked.stderr
    assert 'DATASET "z"' in native.stdout
    assert stacked.stdout == native.stdout


# ---------------------------------------------------------------- h5py programs

WRITER = textwrap.dedent(
    """
    import h5py, numpy as np
    from h5pyvol import connector_name
    with h5py.File("w.h5", "w", track_order=True) as f:
        print("connector", connector_name(f.id))
        f["point_t"] = np.dtype([("x", "<f8"), ("y", "<i2")])
        g = f.create_group("run/1")
        g.attrs["when"] = "2024-01-01"
        g.attrs.create("ids", data=[3, 1, 2], dtype="u2")
        d = g.create_dataset("grow", shape=(2, 3), maxshape=(None, 3), chunks=(2, 3), dtype="f4",
                             compression="gzip", shuffle=True, fillvalue=-1)
        d[0] = [1, 2, 3]
        d.resize((5, 3))
        d[4] = [7, 8, 9]
        f.create_dataset("points", data=np.array([(1.5, 2), (3.5, 4)], dtype=f["point_t"].dtype))
        f.create_dataset("names", data=["α", "beta", ""], dtype=h5py.string_dtype())
        f.create_dataset("ragged", shape=(2,), dtype=h5py.vlen_dtype("i4"))
        f["ragged"][0] = [1, 2, 3]
        f["ragged"][1] = [4]
        sel = f.create_dataset("sel", data=np.zeros((6, 8), "i8"))
        sel[1:5:2, ::3] = 5
        sel[[0, 5], 7] = 9
        f["alias"] = f["run/1/grow"]
        f["soft"] = h5py.SoftLink("/run/1")
        f["ext"] = h5py.ExternalLink("other.h5", "/x")
        f["zeta"] = 1
        f["alpha"] = 2
        f.copy("run", "run_copy")
    """
)


def check_written(f: h5py.File) -> None:
    """The content WRITER writes, checked the same way however the file is opened."""
    assert list(f) == ["point_t", "run", "points", "names", "ragged", "sel", "alias", "soft", "ext", "zeta",
                       "alpha", "run_copy"]  # creation order, tracked natively
    assert isinstance(f["point_t"], h5py.Datatype)
    g = f["run/1"]
    assert g.attrs["when"] == "2024-01-01"
    np.testing.assert_array_equal(g.attrs["ids"], np.array([3, 1, 2], "u2"))
    d = g["grow"]
    assert d.shape == (5, 3) and d.maxshape == (None, 3) and d.chunks == (2, 3)
    assert d.compression == "gzip" and d.shuffle and d.fillvalue == -1
    expected = np.full((5, 3), -1, "f4")
    expected[0] = [1, 2, 3]
    expected[4] = [7, 8, 9]
    np.testing.assert_array_equal(d[()], expected)
    assert f["points"][1]["x"] == 3.5 and f["points"].dtype == f["point_t"].dtype
    assert list(f["names"].asstr()[()]) == ["α", "beta", ""]
    assert [list(r) for r in f["ragged"][()]] == [[1, 2, 3], [4]]
    expected_sel = np.zeros((6, 8), "i8")
    expected_sel[1:5:2, ::3] = 5
    expected_sel[[0, 5], 7] = 9
    np.testing.assert_array_equal(f["sel"][()], expected_sel)
    assert f["alias"] == f["run/1/grow"]  # the same object, by two hard links
    assert f.get("soft", getlink=True).path == "/run/1"
    ext = f.get("ext", getlink=True)
    assert (ext.filename, ext.path) == ("other.h5", "/x")
    np.testing.assert_array_equal(f["run_copy/1/grow"][()], expected)
    assert f["run_copy/1"].attrs["when"] == "2024-01-01"


def test_h5py_program_writes_a_native_file(tmp_path):
    proc = run_python(WRITER, vol_env("passthru"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "connector h5pyvol" in proc.stdout
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert _hdf5.connector_name(f.id) == "native"
        check_written(f)
        assert h5py.h5o.get_info(f["alias"].id).rc == 2  # the reference count HDF5 itself keeps
        assert f["run_copy/1/grow"] != f["run/1/grow"]  # copied, not linked
    # And back through the connector.
    with passthru_file(tmp_path, "w.h5", "r") as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        check_written(f)


def test_native_file_reads_the_same_through_passthru(tmp_path):
    with h5py.File(tmp_path / "n.h5", "w", track_order=True) as f:
        f["data"] = np.arange(20, dtype=">i8").reshape(4, 5)
        f["data"].attrs["unit"] = "m"
        f["text"] = np.array([b"fixed", b"len"], dtype="S5")
        f.create_group("empty")
        f["link"] = h5py.SoftLink("/data")
    with passthru_file(tmp_path, "n.h5", "a") as f:
        assert list(f) == ["data", "text", "empty", "link"]
        np.testing.assert_array_equal(f["link"][1:3, ::2], np.arange(20).reshape(4, 5)[1:3, ::2])
        assert f["data"].dtype == np.dtype(">i8") and f["data"].attrs["unit"] == "m"
        assert list(f["text"][()]) == [b"fixed", b"len"]
        f["data"][0, 0] = 100
        del f["empty"]
    with h5py.File(tmp_path / "n.h5", "r") as f:
        assert f["data"][0, 0] == 100 and "empty" not in f


def test_external_links_lead_to_other_native_files(tmp_path):
    with passthru_file(tmp_path, "target.h5", "w") as target:
        target["data/x"] = np.arange(4)
    with passthru_file(tmp_path, "source.h5", "w") as source:
        source["ext"] = h5py.ExternalLink("target.h5", "/data")
        np.testing.assert_array_equal(source["ext/x"][()], np.arange(4))
    with h5py.File(tmp_path / "source.h5", "r") as source:  # HDF5 itself follows it
        np.testing.assert_array_equal(source["ext/x"][()], np.arange(4))


def test_link_creation_order_numbers_are_the_native_ones(tmp_path):
    with passthru_file(tmp_path, "order.h5", "w", track_order=True) as f:
        for name in ("a", "b", "c"):
            f[name] = 0
        del f["b"]
        f["d"] = 0
        through = {n: f.id.links.get_info(n.encode()).corder for n in f}
    with h5py.File(tmp_path / "order.h5", "r") as f:
        native = {n: f.id.links.get_info(n.encode()).corder for n in f}
    assert through == native == {"a": 0, "c": 2, "d": 3}


# ---------------------------------------------------------------- storage details


def test_storage_size_and_allocation_are_native(tmp_path):
    with passthru_file(tmp_path, "s.h5", "w") as f:
        d = f.create_dataset("d", shape=(100,), dtype="i4", chunks=(10,))
        assert d.id.get_storage_size() == 0
        assert d.id.get_space_status() == h5py.h5d.SPACE_STATUS_NOT_ALLOCATED
        d[0:25] = 1  # three chunks
        through = d.id.get_storage_size()
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["d"].id.get_storage_size() == through == 3 * 10 * 4


def test_reference_count_changes_reach_the_native_file(tmp_path):
    incr = _hdf5.lib().H5Oincr_refcount
    incr.argtypes, incr.restype = [ctypes.c_int64], ctypes.c_int
    with passthru_file(tmp_path, "rc.h5", "w") as f:
        f["a"] = 1
        f["b"] = f["a"]
        assert incr(f["a"].id.id) >= 0
        assert h5py.h5o.get_info(f["a"].id).rc == 3
    with h5py.File(tmp_path / "rc.h5", "r") as f:
        assert h5py.h5o.get_info(f["a"].id).rc == 3


def test_deleted_file_is_gone(tmp_path):
    passthru_file(tmp_path, "gone.h5", "w").close()
    conn = registry.load(f"passthru;root={tmp_path}")
    assert conn.exists("gone.h5")
    conn.delete("gone.h5")
    assert not (tmp_path / "gone.h5").exists() and not conn.exists("gone.h5")
    with pytest.raises(FileNotFoundError):
        conn.delete("gone.h5")


def test_a_non_hdf5_file_is_not_accessible(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"not an HDF5 file")
    assert not registry.load(f"passthru;root={tmp_path}").exists("junk.h5")


def test_closing_leaves_no_native_object_to_the_garbage_collector(tmp_path):
    # Freed by the cyclic collector, an h5py object calls HDF5, which clears
    # HDF5's error stack, maybe while h5py reads it: ours go at close time.
    gc.collect()
    with passthru_file(tmp_path, "gc.h5", "w") as f:
        f["a/b"] = np.arange(3)
        f["a"].attrs["x"] = 1
        f.visit(lambda name: None)  # the bridge's iteration keeps the open file in a reference cycle
        list(f["a"].attrs)
    was = gc.isenabled()
    gc.disable()
    try:
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        native = [o for o in gc.garbage if isinstance(o, h5py.h5g.GroupID | h5py.h5d.DatasetID | h5py.h5a.AttrID)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was:
            gc.enable()
    assert native == []


# ---------------------------------------------------------------- options


def test_names_stay_under_root(tmp_path):
    (tmp_path / "sub").mkdir()
    with passthru_file(tmp_path, "/sub/abs.h5", "w") as f:
        f["x"] = 1
    assert (tmp_path / "sub" / "abs.h5").is_file()
    with pytest.raises(PermissionError, match="outside the root directory"):
        passthru_file(tmp_path, "../escape.h5", "w")
    assert not (tmp_path.parent / "escape.h5").exists()


def test_unknown_option_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="ValueError: the passthru connector takes the options root and trace"):
        h5pyvol.File("x.h5", "w", "passthru", root=str(tmp_path), colour="blue")


def test_missing_file_names_the_native_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.h5"))):
        passthru_file(tmp_path, "nope.h5", "r")


# ---------------------------------------------------------------- tracing

TRACE_LINE = re.compile(r"^passthru: +(\d+\.\d{3}) ms  (\w+)\.(\w+)\((.*)\) (->|raised) ?(.*)$")


def test_trace_to_a_file_logs_every_call_with_arguments_and_time(tmp_path):
    log = tmp_path / "calls.log"
    program = textwrap.dedent(
        """
        import h5py, numpy as np
        with h5py.File("t.h5", "w") as f:
            f.create_dataset("d", data=np.arange(10))
            f["d"][2:5] = -1
            f["d"].attrs["a"] = 1
            try:
                f["missing"]
            except KeyError:
                pass
        """
    )
    proc = run_python(program, vol_env(f"passthru;root={tmp_path};trace={log}"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "passthru:" not in proc.stderr  # into the file, not onto stderr
    lines = log.read_text().splitlines()
    parsed = [TRACE_LINE.match(line) for line in lines]
    assert lines and all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m][:3]
    calls = [f"{m.group(2)}.{m.group(3)}" for m in parsed]
    assert calls[0] == "PassthruConnector.create"
    for call in ("PassthruFile.create_dataset", "PassthruGroup.set_link", "PassthruDataset.write",
                 "PassthruDataset.create_attribute", "PassthruAttribute.write", "PassthruFile.flush",
                 "PassthruFile.close"):
        assert call in calls, call
    create = parsed[0]
    assert "'t.h5'" in create.group(4) and "overwrite=True" in create.group(4)
    writes = [m for m in parsed if m.group(3) == "write" and m.group(2) == "PassthruDataset"]
    assert any("kind='hyperslab', count=3" in m.group(4) and "shape=(3,)" in m.group(4) for m in writes)
    missing = [m for m in parsed if m.group(3) == "get_link" and "'missing'" in m.group(4)]
    assert missing and missing[0].group(5) == "raised" and "KeyError" in missing[0].group(6)
    assert all(float(m.group(1)) >= 0 for m in parsed)


def test_trace_to_stderr(tmp_path, capfd):
    with passthru_file(tmp_path, "e.h5", "w", trace="1") as f:
        f["x"] = np.arange(3)
    err = capfd.readouterr().err
    assert re.search(r"^passthru: +\d+\.\d{3} ms  PassthruConnector\.create\(", err, re.M)
    assert "PassthruDataset.write(" in err


def test_no_trace_by_default(tmp_path, capfd):
    with passthru_file(tmp_path, "q.h5", "w") as f:
        f["x"] = np.arange(3)
    assert "passthru:" not in capfd.readouterr().err
