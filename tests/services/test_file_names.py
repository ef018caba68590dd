"""File names of existing programs on S3 and RADOS: the same C program runs
unchanged on both, with absolute and ./ paths (docs/s3-layout.md, "Keys")."""

from __future__ import annotations

import numpy as np
import pytest
from support import run, vol_env

import h5pyvol
from h5pyvol import registry


def test_c_program_with_local_paths_runs_unchanged(store, compile_c, tmp_path):
    prog = compile_c("roundtrip")
    spec = h5pyvol.connector_string(store.connector, **store.options)
    for name, stored in (("/tmp/run/out.h5", "tmp/run/out.h5"), ("./x/./y.h5", "x/y.h5")):
        proc = run([prog, name], vol_env(spec), cwd=tmp_path)
        assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr
        assert "connector: h5pyvol" in proc.stdout
        # S3 keys drop the leading '/' and './' parts; RADOS keeps the name as given
        head = store.head_key(stored if store.connector == "s3" else name)
        assert head in store.objects()
        with store.open(name) as f:
            np.testing.assert_array_equal(f["results/table"][()], np.arange(4)[:, None] * 10 + np.arange(5))
    assert not (tmp_path / "x").exists()  # nothing went to the local disk


def test_bad_names_are_refused_clearly(store):
    conn = registry.load(h5pyvol.connector_string(store.connector, **store.options))
    with pytest.raises(ValueError, match="NUL"):
        conn.create("run\x00.h5", overwrite=True)
    with pytest.raises(ValueError, match="NUL"):
        conn.open("run\x00.h5", writable=False)
    if store.connector == "s3":
        for bad in ("../up.h5", "a/../b.h5", "a//b.h5", "", "/"):
            with pytest.raises(ValueError, match="not usable as an S3 key"):
                conn.create(bad, overwrite=True)
    assert store.objects() == {}
