"""Bad input gets a clear error naming the cause, never a crash, and a failed
write leaves earlier data intact: in h5py (in-process and through the
environment variable) and in C programs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import WITH_DEFAULT_SIGINT, run, run_python, vol_env

import h5pyvol

TESTS = Path(__file__).resolve().parent
FAILING = "failing_connector:FailingConnector"


@pytest.fixture(autouse=True)
def importable_test_connectors(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def test_exception_in_connector_reaches_h5py_and_keeps_data():
    with h5pyvol.File("fail.h5", "w", connector=FAILING) as f:
        d = f.create_dataset("d", data=np.arange(5.0))
        with pytest.raises(OSError, match=r"h5pyvol: RuntimeError: disk on fire \[failing_connector.py:\d+ in write\]"):
            d[...] = -1
        np.testing.assert_array_equal(d[...], np.arange(5.0))


def test_exception_in_connector_through_environment(tmp_path):
    code = textwrap.dedent(
        """
        import h5py, numpy as np
        f = h5py.File("x.h5", "w")
        f["d"] = np.arange(3)
        try:
            f["d"][0] = 7
        except OSError as e:
            print("raised:", e)
        print("kept:", f["d"][:].tolist())
        """
    )
    env = vol_env(FAILING, PYTHONPATH=str(TESTS))
    proc = run_python(code, env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeError: disk on fire" in proc.stdout
    assert "kept: [0, 1, 2]" in proc.stdout


def test_failed_close_names_its_cause_and_can_be_repeated():
    """The connector's exception reaches h5py's message from HDF5's error
    stack; HDF5 keeps the file id, and the next close releases it."""
    f = h5pyvol.File("close.h5", "w", connector=FAILING)
    assert h5pyvol.connector_name(f.id) == "h5pyvol"
    f.attrs["refuse_flush"] = 1
    with pytest.raises(RuntimeError, match=r"h5pyvol: OSError: \[Errno 5\] the store refused the commit, errno = 5"):
        f.close()
    assert f.id.valid
    f.close()
    assert not f.id.valid


def test_connector_constructor_error_is_reported():
    with pytest.raises(OSError, match="ValueError: cannot reach the store"):
        h5pyvol.File("b.h5", "w", connector="failing_connector:BrokenConnector", url="x")


def test_unknown_connector_in_process():
    with pytest.raises(OSError, match="unknown connector 'nosuch'; installed connectors: memory"):
        h5pyvol.File("u.h5", "w", connector="nosuch")


def test_not_a_connector_class():
    with pytest.raises(OSError, match="not a subclass of h5pyvol.connector.Connector"):
        h5pyvol.File("n.h5", "w", connector="numpy:ndarray")


def test_malformed_option_is_rejected_before_hdf5():
    with pytest.raises(ValueError, match="may not contain ';'"):
        h5pyvol.File("o.h5", "w", connector="memory", bad="a;b")


def test_wrong_object_kind():
    with h5pyvol.File("kind.h5", "w") as f:
        f.create_group("g")
        with pytest.raises(Exception, match="'/g' is not a dataset"):
            h5py.h5d.open(f.id, b"g")


def test_selection_outside_dataset():
    with h5pyvol.File("sel.h5", "w") as f:
        d = f.create_dataset("d", data=np.arange(10))
        fspace = h5py.h5s.create_simple((20,))
        fspace.select_hyperslab((15,), (2,))
        with pytest.raises(Exception, match="outside the dataset's shape"):
            d.id.read(h5py.h5s.create_simple((2,)), fspace, np.empty(2, "i8"))


def test_count_mismatch_between_selections():
    with h5pyvol.File("cnt.h5", "w") as f:
        d = f.create_dataset("d", data=np.arange(10))
        fspace = d.id.get_space()
        fspace.select_hyperslab((0,), (4,))
        with pytest.raises(Exception, match="memory selection has 3 elements but the file selection has 4"):
            d.id.read(h5py.h5s.create_simple((3,)), fspace, np.empty(3, "i8"))


def test_c_program_sees_connector_exception(compile_c, tmp_path):
    proc = run([compile_c("failed_write")], vol_env(FAILING, PYTHONPATH=str(TESTS)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "second write: failed; message on the error stack: yes" in proc.stdout
    assert "data kept: yes" in proc.stdout


def test_bad_region_references_are_refused_cleanly(tmp_path):
    # HDF5's own refusal of 1.10-style references through a non-native
    # connector corrupts its error stack (a major code used as a minor one);
    # printing a later error then overflowed the C stack. The plugin serves
    # them itself: a bad one is its own error, and later errors still print.
    code = textwrap.dedent(
        """
        import h5py
        f = h5py.File("refs.h5", "w")
        d = f.create_dataset("d", (10,), "f4")
        null = f.create_dataset("r", (1,), dtype=h5py.regionref_dtype)[0]
        for _ in range(3):
            try:
                h5py.h5r.get_name(null, f.id)
            except Exception as e:
                print("refused:", e)
        print("made:", d[d.regionref[0:5]].shape)
        h5py._errors.unsilence_errors()
        try:
            f["nope"]
        except KeyError:
            print("later errors still reported")
        """
    )
    proc = run_python(code, vol_env("memory"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("refused: H5pyvol: a null region reference names no region") == 3
    assert "made: (5,)" in proc.stdout and "later errors still reported" in proc.stdout
    assert "no object named 'nope'" in proc.stderr


def test_bridge_leaves_no_cycles_holding_hdf5_objects(tmp_path):
    """Bridge objects that hold HDF5 ids must be freed when released, not by
    the cyclic collector: a collection that closes an h5py id clears HDF5's
    error stack, and if it runs while h5py is reading an error's messages,
    those come out as garbage."""
    import gc

    from h5pyvol.bridge import handles

    def work():
        with h5pyvol.File(str(tmp_path / "t.h5"), "w") as t:
            t.create_dataset("data/x", data=np.arange(3))
        with h5pyvol.File(str(tmp_path / "m.h5"), "w", track_order=True) as f:
            f["ext"] = h5py.ExternalLink(str(tmp_path / "t.h5"), "/data")
            assert f["ext/x"][2] == 2
            g = f.create_group("g")
            g.attrs["a"] = 1
            g.create_dataset("d", data=np.arange(4.0)).attrs["b"] = 2
            f.visit(lambda name: None)
            assert list(g.attrs.items()) == [("a", 1)] and "d" in list(g)
            f.copy("g", "g2")
            with pytest.raises(KeyError):
                f["nope"]

    gc.collect()
    was = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        work()
        gc.collect()
        held = [o for o in gc.garbage if isinstance(o, (handles.FileState, handles.FileHandle, handles.NodeHandle,
                                                         handles.AttrHandle, h5py._objects.ObjectID))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was:
            gc.enable()
    assert held == []


def test_error_message_survives_garbage_collection_while_h5py_reads_it():
    """The collector may free h5py objects (each H5Idec_ref clears HDF5's error
    stack) between a failed call and h5py's reading of its messages; the
    message must still come through whole."""
    import gc

    threshold = gc.get_threshold()
    with h5pyvol.File("litter.h5", "w", connector="failing_connector:LitteringConnector") as f:
        d = f.create_dataset("d", (4,), dtype="f8")
        try:
            gc.set_threshold(1)  # a collection at every allocation, as when one is due
            for _ in range(5):
                with pytest.raises(OSError, match=r"h5pyvol: RuntimeError: disk on fire"):
                    d[...] = 1.0
        finally:
            gc.set_threshold(*threshold)


STOPPING = "failing_connector:StoppingConnector"


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_exit_in_connector_reach_h5py_as_such(monkeypatch, stop):
    """Not turned into an OSError: h5py raises them once HDF5 has unwound,
    and the file goes on working."""
    import failing_connector

    monkeypatch.setattr(failing_connector, "STOP_WITH", stop)
    with h5pyvol.File("stop.h5", "w", connector=STOPPING) as f:
        d = f.create_dataset("d", data=np.arange(4.0))
        d.attrs["stop"] = 1
        with pytest.raises(stop) as info:
            d[...]
        assert any(frame.name == "read" for frame in info.traceback)  # raised where the connector raised it
        f["e"] = np.arange(3)
        np.testing.assert_array_equal(f["e"][...], np.arange(3))


def _wait_for(path: Path, proc, timeout: float = 60) -> None:
    """Until `path` exists (the program got there); fails if it ends first."""
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"{path.name} never appeared\nstdout:\n{out}\nstderr:\n{err}")
        time.sleep(0.05)


def test_ctrl_c_stops_a_slow_read_in_h5py(tmp_path):
    import signal
    import subprocess
    import sys

    code = textwrap.dedent(
        """
        import numpy as np
        import h5pyvol
        with h5pyvol.File("slow.h5", "w", connector="failing_connector:StoppingConnector") as f:
            d = f.create_dataset("d", data=np.arange(4.0))
            d.attrs["slow"] = 1
            try:
                d[...]
                print("read: ok")
            except KeyboardInterrupt:
                print("read: KeyboardInterrupt")
            f["e"] = [1, 2]
            print("after:", f["e"][...].tolist())
        """
    )
    mark = tmp_path / "reading"
    env = vol_env(STOPPING, PYTHONPATH=str(TESTS), H5PYVOL_TEST_MARK=str(mark))
    proc = subprocess.Popen([*WITH_DEFAULT_SIGINT, sys.executable, "-c", code], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(mark, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "read: KeyboardInterrupt" in out and "after: [1, 2]" in out, out + err


def test_sigint_ends_a_slow_read_in_a_c_program_with_an_error(compile_c, tmp_path):
    import signal
    import subprocess

    mark = tmp_path / "reading"
    env = vol_env(STOPPING, PYTHONPATH=str(TESTS), H5PYVOL_TEST_MARK=str(mark))
    proc = subprocess.Popen([*WITH_DEFAULT_SIGINT, str(compile_c("interrupted_read"))], env=env, cwd=tmp_path,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(mark, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "connector: h5pyvol" in out, out + err
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    assert "read: failed" in out and "after: ok" in out, out + err
    assert "message: h5pyvol: KeyboardInterrupt: interrupted (Ctrl-C, SIGINT)" in out, out


def test_sigint_outside_callbacks_is_the_c_programs_own(compile_c, tmp_path):
    """After the interrupted call, the program sleeps in C: a SIGINT then has
    the default disposition (the program ends by the signal), as without the plugin."""
    import signal
    import subprocess

    mark = tmp_path / "reading"
    env = vol_env(STOPPING, PYTHONPATH=str(TESTS), H5PYVOL_TEST_MARK=str(mark))
    proc = subprocess.Popen([*WITH_DEFAULT_SIGINT, str(compile_c("interrupted_read")), "then-wait"], env=env,
                            cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(mark, proc)
    proc.send_signal(signal.SIGINT)
    _wait_for(tmp_path / "waiting", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT, f"exit {proc.returncode}\n{out}\n{err}"
    assert "read: failed" in out and "after: ok" in out, out + err


def test_message_with_lone_surrogate_and_nul_stays_readable(monkeypatch):
    import failing_connector

    text = "name b'\\xff' read as '\udcff', then\0more"
    monkeypatch.setattr(failing_connector, "STOP_WITH", lambda: ValueError(text))
    with h5pyvol.File("msg.h5", "w", connector=STOPPING) as f:
        d = f.create_dataset("d", data=np.arange(4.0))
        d.attrs["stop"] = 1
        with pytest.raises(OSError) as info:
            d[...]
    assert r"h5pyvol: ValueError: name b'\xff' read as '\udcff', then\x00more [failing_connector.py:" in str(info.value)


@pytest.mark.parametrize(
    "spec, message",
    [
        (";;;", "names no connector before its options"),
        ("memory;;", "has an empty option"),
        ("memory;", "has an empty option"),
        (":", "neither an installed connector's name nor package.module:Class"),
        ("memory;a=1;a=2", "option 'a' is given twice"),
        ("passthru;trace=maybe", "passthru option trace='maybe' is not 1 (stderr), 0 or a path"),
    ],
)
def test_bad_connector_strings_are_refused_in_c_programs(compile_c, tmp_path, spec, message):
    proc = run([compile_c("roundtrip")], vol_env(spec), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr[-3000:]


def test_blank_connector_string_is_the_memory_connector(compile_c, tmp_path):
    proc = run([compile_c("roundtrip")], vol_env(""), cwd=tmp_path)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"connector": ""}, ValueError, "connector name '' is empty"),
        ({"connector": ":"}, ValueError, "':' is neither an installed connector's name nor package.module:Class"),
        ({"connector": 5}, TypeError, "a connector is named by a str .*, not int 5"),
        ({"connector": "memory", "bad": "x\0y"}, ValueError, "may not contain ';' or NUL"),
        ({"connector": "passthru", "trace": "maybe"}, OSError, "trace='maybe' is not 1"),
    ],
)
def test_bad_connector_arguments_are_refused_in_h5py(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        h5pyvol.File(str(tmp_path / "c.h5"), "w", **kwargs)


def test_url_without_a_key_quotes_what_was_given():
    with pytest.raises(ValueError, match=r"'s3://bucket' is not of the form s3://BUCKET/NAME"):
        h5pyvol.File("s3://bucket", "w")


@pytest.mark.parametrize("connector", ["memory", "passthru"])
def test_file_name_with_nul_is_refused(tmp_path, connector):
    with h5pyvol.File(str(tmp_path / "a.h5"), "w", connector=connector) as f:
        f["x"] = 1
    with pytest.raises(ValueError, match=r"contains a NUL character \(HDF5 would take only '.*a.h5'\)"):
        h5pyvol.File(str(tmp_path / "a.h5\0b"), "r", connector=connector)
    conn = h5pyvol.registry.load(connector)
    for call in (lambda: conn.open("a.h5\0b", writable=False), lambda: conn.exists("a.h5\0b"),
                 lambda: conn.create("a.h5\0b", overwrite=True), lambda: conn.delete("a.h5\0b")):
        with pytest.raises(ValueError, match="contains a NUL character"):
            call()


def test_bridge_refuses_file_names_with_nul():
    from h5pyvol.bridge import files

    for call in (lambda: files.file_open("memory", "x\0y", 0, 0), lambda: files.file_create("memory", "x\0y", 2, 0, 0),
                 lambda: files.file_is_accessible("memory", "x\0y", 0), lambda: files.file_delete("memory", "x\0y", 0)):
        with pytest.raises(ValueError, match="contains a NUL character"):
            call()


def test_path_and_bytes_file_names(tmp_path):
    with h5pyvol.File(tmp_path / "p.h5", "w") as f:
        f["x"] = 1
    with h5pyvol.File(str(tmp_path / "p.h5").encode(), "r") as f:
        assert f["x"][()] == 1
