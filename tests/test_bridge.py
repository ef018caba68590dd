"""The bridge package as the plugin sees it: its table of callbacks, the
rules of the C fast path, the questions answered in C, and tracing of every
path a call takes."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import run_python, vol_env

import h5pyvol
from h5pyvol import bridge
from h5pyvol.bridge import fastpath, handles

TESTS = Path(__file__).resolve().parent


def test_callbacks_are_the_ones_the_plugin_looks_up():
    names = re.findall(r"\bX\((\w+)\)", (TESTS.parent / "csrc" / "pv.h").read_text())
    assert tuple(names) == bridge.CALLBACKS
    for name in names:
        assert callable(getattr(bridge, name)), name


def _handle(obj) -> handles.NodeHandle | handles.AttrHandle:
    """The bridge's handle behind an h5py object or low-level id."""
    import ctypes

    from h5pyvol._hdf5 import lib

    ident = obj.id if isinstance(obj.id, int) else obj.id.id
    return ctypes.cast(lib().H5VLobject(ident), ctypes.py_object).value


def _stats() -> tuple[int, int]:
    from h5pyvol.bridge.plugin import plugin

    return plugin().io_stats()


@pytest.mark.parametrize(
    "make, fast",
    [
        (lambda f: f.create_dataset("d", data=np.arange(10.0)), True),
        (lambda f: f.create_dataset("d", data=np.arange(10.0), chunks=(5,), maxshape=(None,)), True),
        (lambda f: f.create_dataset("d", data=["a", "bc"], dtype=h5py.string_dtype()), False),  # elements hold pointers
        (lambda f: f.create_dataset("d", data=np.arange(10), scaleoffset=0, chunks=(5,)), False),  # lossy filter
        (lambda f: f.create_dataset("d", (3,), dtype=np.dtype(("f8", (2,)))), False),  # array datatype
        (lambda f: f.create_dataset("d", data=h5py.Empty("f8")), False),  # null dataspace
    ],
)
def test_fast_path_is_decided_by_the_plan(make, fast):
    with h5pyvol.File("plan.h5", "w") as f:
        d = make(f)
        h = _handle(d)
        assert isinstance(h.plan, fastpath.Plan)
        assert (h.io is not None) == fast
        if fast:
            before = _stats()
            d[2:4]
            after = _stats()
            assert after[0] == before[0] + 1 and after[1] == before[1]


def test_calls_the_fast_path_declines_go_to_the_general_path():
    with h5pyvol.File("decline.h5", "w") as f:
        d = f.create_dataset("d", data=np.arange(10.0))
        before = _stats()
        assert d.astype("f4")[3] == 3.0  # another memory type
        assert d[[1, 2, 5]].tolist() == [1.0, 2.0, 5.0]  # no regular hyperslab
        after = _stats()
        assert after[0] == before[0] and after[1] == before[1] + 2


def test_attribute_type_and_space_are_answered_in_c():
    with h5pyvol.File("attr.h5", "w") as f:
        f.attrs["a"] = np.arange(6).reshape(2, 3)
        f.attrs["s"] = 1.5
        f.attrs.create("n", h5py.Empty("i4"))
        a = h5py.h5a.open(f.id, b"a")
        h = _handle(a)
        assert h.get_type_id is not None and h.space == ((2, 3), None)
        assert a.shape == (2, 3) and a.get_space().get_simple_extent_dims(True) == (2, 3)
        assert a.get_type().get_size() == 8
        assert h5py.h5a.open(f.id, b"s").get_space().get_simple_extent_type() == h5py.h5s.SCALAR
        assert h5py.h5a.open(f.id, b"n").get_space().get_simple_extent_type() == h5py.h5s.NULL
        assert f.attrs["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and f.attrs["s"] == 1.5


def test_dataset_space_answered_in_c_follows_a_resize_through_another_handle():
    with h5pyvol.File("space.h5", "w") as f:
        d = f.create_dataset("d", (4,), "f4", maxshape=(None,), chunks=(2,))
        assert _handle(d).space == ((4,), (None,))
        other = h5py.h5d.open(f.id, b"d")  # a second handle on the same dataset
        assert d.shape == (4,) and d.id.get_space().get_simple_extent_dims(True) == (h5py.h5s.UNLIMITED,)
        other.set_extent((9,))
        assert d.shape == (9,)  # the first handle's meta is stale: C declines, the bridge reloads
        assert _handle(d).space == ((9,), (None,))


def test_attribute_of_a_committed_type_is_typed_by_the_bridge():
    with h5pyvol.File("ctype.h5", "w") as f:
        f["t"] = np.dtype("i2")
        f.attrs.create("a", 7, dtype=f["t"])
        a = h5py.h5a.open(f.id, b"a")
        assert _handle(a).get_type_id is None
        assert a.get_type().committed()


TRACED = """
import numpy as np
import h5pyvol
with h5pyvol.File("t.h5", "w") as f:
    d = f.create_dataset("d", data=np.arange(4.0))
    d.attrs["a"] = 1
    d[1:3]
    d.astype("f4")[...]
    f["d"].attrs["a"]
print("done")
"""


def test_trace_shows_both_data_paths_and_answers_in_c(tmp_path):
    proc = run_python(TRACED, vol_env("memory", H5PYVOL_TRACE="1"), cwd=tmp_path)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-3000:]
    err = proc.stderr
    assert "h5pyvol: dataset_create(" in err
    assert re.search(r"h5pyvol: dataset_read <dataset '/d'> \[C fast path\]: read\(.*hyperslab", err), err
    assert "h5pyvol: dataset_read(<dataset '/d'>," in err  # the f4 read: the general path
    assert "h5pyvol: attr_get_type(<attribute 'a'>) [answered in C]" in err
    assert "h5pyvol: attr_get_space(<attribute 'a'>) [answered in C]" in err
    assert "h5pyvol: dataset_get_space(<dataset '/d'>) [answered in C]" in err


@pytest.mark.parametrize("value", ["0", "no", "false", ""])
def test_trace_off_values(tmp_path, value):
    proc = run_python(TRACED, vol_env("memory", H5PYVOL_TRACE=value), cwd=tmp_path)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-3000:]
    assert "h5pyvol: dataset_create(" not in proc.stderr


def test_trace_bad_value_is_refused(tmp_path):
    code = textwrap.dedent(
        """
        import h5pyvol
        try:
            h5pyvol.File("t.h5", "w")
        except Exception as e:
            print("refused:", e)
        """
    )
    proc = run_python(code, vol_env("memory", H5PYVOL_TRACE="maybe"), cwd=tmp_path)
    assert "H5PYVOL_TRACE='maybe': use 1, true or yes" in proc.stdout, proc.stdout + proc.stderr[-2000:]
