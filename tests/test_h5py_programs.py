"""h5py programs, unchanged, through the connector: via HDF5_VOL_CONNECTOR in a
child process, and in-process via h5pyvol.File."""

from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest
from support import run_python, vol_env

import h5pyvol

UNCHANGED_PROGRAM = textwrap.dedent(
    """
    import h5py, numpy as np
    from h5pyvol import connector_name
    with h5py.File("plain.h5", "w") as f:
        assert connector_name(f.id) == "h5pyvol", connector_name(f.id)
        f["a/b"] = np.arange(12.0).reshape(3, 4)
        f["a/b"].attrs["note"] = "hello"
        f.create_group("c").create_dataset("d", data=[1, 2, 3], dtype="i2")
    with h5py.File("plain.h5", "r") as f:
        assert f["a/b"][1, 2] == 6.0
        assert f["a/b"].attrs["note"] == "hello"
        assert list(f["c/d"][:]) == [1, 2, 3]
        names = []
        f.visit(names.append)
        print("visited", names)
    print("OK", connector_name(h5py.File("plain.h5", "r").id))
    """
)


def test_unchanged_h5py_program_via_environment(tmp_path):
    proc = run_python(UNCHANGED_PROGRAM, vol_env("memory"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "visited ['a', 'a/b', 'c', 'c/d']" in proc.stdout
    assert "OK h5pyvol" in proc.stdout


def test_file_helper_selects_connector_without_environment():
    with h5pyvol.File("helper.h5", "w", connector="memory") as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        f["x"] = np.arange(10)
    with h5pyvol.File("helper.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][:], np.arange(10))
    # A file opened the ordinary way is still native.
    with h5py.File("native.h5", "w", driver="core", backing_store=False) as f:
        assert h5pyvol.connector_name(f.id) == "native"


def test_object_identity_and_close(tmp_path):
    with h5pyvol.File("ident.h5", "w") as f:
        g = f.create_group("g")
        assert f["g"] == g
        assert hash(f["g"]) == hash(g)
        assert f["g"] != f
        d = g.create_dataset("d", data=np.ones(3))
        assert d.parent == g
        assert d.file == f
    # File.close closed every object it had open.
    assert not g.id.valid and not d.id.valid


def test_missing_dataset_raises_keyerror_naming_it():
    with h5pyvol.File("missing.h5", "w") as f:
        with pytest.raises(KeyError, match="no object named 'nope'"):
            f["nope"]


def test_missing_file_raises_file_not_found():
    with pytest.raises(FileNotFoundError, match="no in-memory file named 'never-created.h5'"):
        h5pyvol.File("never-created.h5", "r")


def test_connector_string_of_names_the_connector_a_file_uses(tmp_path):
    with h5pyvol.File(tmp_path / "a.h5", "w", connector="memory") as f:
        assert h5pyvol.connector_string_of(f) == "memory"
    with h5pyvol.File(tmp_path / "b.h5", "w", connector="passthru", trace="0") as f:
        assert h5pyvol.connector_string_of(f) == "passthru;trace=0"
    with h5py.File(tmp_path / "c.h5", "w") as f:
        assert h5pyvol.connector_string_of(f) is None
