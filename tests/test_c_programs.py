"""C programs, compiled against the same HDF5, run unchanged with HDF5_VOL_CONNECTOR."""

from __future__ import annotations

from support import native_env, run, vol_env


def test_c_program_roundtrip_through_memory_connector(compile_c, tmp_path):
    proc = run([compile_c("roundtrip")], vol_env("memory"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "connector: h5pyvol" in proc.stdout
    assert "PASS" in proc.stdout


def test_check_catches_native_fallback(compile_c, tmp_path):
    # Without our connector the program must notice: this guards the check itself.
    env = native_env()
    proc = run([compile_c("roundtrip")], env, cwd=tmp_path)
    assert proc.returncode != 0
    assert "connector: native" in proc.stdout


def test_unknown_connector_name_is_a_clear_error(compile_c, tmp_path):
    proc = run([compile_c("roundtrip")], vol_env("nosuchconnector"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "unknown connector 'nosuchconnector'" in proc.stderr
    assert "installed connectors: memory" in proc.stderr


def test_unknown_module_is_a_clear_error(compile_c, tmp_path):
    proc = run([compile_c("roundtrip")], vol_env("no_such_module:Conn"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "cannot import connector module 'no_such_module'" in proc.stderr


def test_unknown_class_is_a_clear_error(compile_c, tmp_path):
    proc = run([compile_c("roundtrip")], vol_env("h5pyvol.connectors.memory:NoSuchClass"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "has no connector class 'NoSuchClass'" in proc.stderr


def test_malformed_options_are_a_clear_error(compile_c, tmp_path):
    proc = run([compile_c("roundtrip")], vol_env("memory;oops"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "connector option 'oops'" in proc.stderr
    assert "key=value" in proc.stderr


def test_object_accounting_as_native(compile_c, tmp_path):
    # Open-object counts (without h5py's and the bridge's own datatype ids),
    # names of moved and unlinked objects, references to committed datatypes,
    # attribute creation properties, object times and mounting.
    prog = compile_c("object_accounting")
    env = native_env()
    (tmp_path / "n").mkdir()
    (tmp_path / "v").mkdir()
    native = run([prog], env, cwd=tmp_path / "n")
    assert native.returncode == 0 and "connector: native" in native.stderr, native.stdout + native.stderr
    vol = run([prog], vol_env("memory"), cwd=tmp_path / "v")
    assert vol.returncode == 0 and "connector: h5pyvol" in vol.stderr, vol.stdout + vol.stderr
    assert "DONE" in native.stdout
    assert vol.stdout.splitlines() == native.stdout.splitlines()
