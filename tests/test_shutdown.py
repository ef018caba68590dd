"""Programs that exit with files still open end cleanly: HDF5 closes them at
exit, before (C host) or after (h5py host) Python has shut down."""

from __future__ import annotations

from support import native_env, run, run_python, vol_env


def test_c_program_exits_with_open_objects(compile_c, tmp_path):
    proc = run([compile_c("left_open")], vol_env("memory"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "leaving objects open" in proc.stdout
    assert "Error" not in proc.stderr


def test_h5py_program_exits_with_open_objects_via_environment(tmp_path):
    code = (
        "import h5py\nf = h5py.File('x.h5', 'w')\nd = f.create_dataset('d', data=[1, 2])\n"
        "g = f.create_group('g')\nprint('bye')"
    )
    proc = run_python(code, vol_env("memory"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bye" and proc.stderr == ""


def test_h5py_program_exits_with_open_objects_via_file_helper(tmp_path):
    code = "import h5pyvol\nf = h5pyvol.File('x.h5', 'w')\nf['d'] = [1, 2]\nd = f['d']\nprint('bye')"
    env = native_env()
    proc = run_python(code, env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bye" and proc.stderr == ""
