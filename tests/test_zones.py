"""Zone maps: the compiled one-pass kernels against numpy, on every element
type they take, and the numpy fallback for everything else."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from h5pyvol.storage import zone_of, zoned_bytes
from h5pyvol.storage import zones as zones_module

KERNEL_TYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]
# Lengths around the vector widths (up to 4 x 32 bytes of int8 per step) and a large odd one.
LENGTHS = [1, 2, 3, 7, 15, 16, 17, 63, 127, 128, 129, 1000, 100_003]


def numpy_zone(values: np.ndarray) -> dict | None:
    if values.dtype.kind == "f":
        if np.isnan(values).all():
            return None
        return {"min": np.nanmin(values).item(), "max": np.nanmax(values).item()}
    return {"min": values.min().item(), "max": values.max().item()}


def sample(dtype: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.standard_normal(n) * 1e3).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)


def test_the_compiled_kernels_are_installed():
    # A build that silently left the extension out would run numpy's two passes.
    assert zones_module._zones is not None
    assert zones_module._zones.VECTOR_BYTES in (16, 32)


@pytest.mark.parametrize("dtype", KERNEL_TYPES)
@pytest.mark.parametrize("n", LENGTHS)
def test_kernel_matches_numpy(dtype, n):
    values = sample(dtype, n, seed=n)
    assert zones_module._kernel_takes(values)
    zone = zone_of(values)
    assert zone == numpy_zone(values)
    assert type(zone["min"]) is type(values.min().item())
    raw, zone2 = zoned_bytes(values)
    assert raw == values.tobytes() and zone2 == zone


@pytest.mark.parametrize("dtype", KERNEL_TYPES)
def test_extremes_of_the_type_anywhere(dtype):
    dt = np.dtype(dtype)
    lo, hi = (np.finfo(dt).min, np.finfo(dt).max) if dt.kind == "f" else (np.iinfo(dt).min, np.iinfo(dt).max)
    for where in (0, 1, 63, 64, 65, 199):
        values = np.zeros(200, dt)
        values[where] = lo
        values[199 - where] = hi
        assert zone_of(values) == numpy_zone(values) == {"min": lo, "max": hi}


@pytest.mark.parametrize("dtype", ["f4", "f8"])
def test_nans_are_ignored_and_infinities_kept(dtype):
    values = sample(dtype, 1001)
    values[::7] = np.nan
    values[0] = np.nan  # a NaN first must not become a bound
    assert zone_of(values) == numpy_zone(values)
    values[500] = np.inf
    values[3] = -np.inf
    assert zone_of(values) == {"min": -np.inf, "max": np.inf}
    assert zone_of(np.full(77, np.nan, dtype)) is None
    assert zoned_bytes(np.full(77, np.nan, dtype))[1] is None
    one = np.full(77, np.nan, dtype)
    one[76] = 2.5
    assert zone_of(one) == {"min": 2.5, "max": 2.5}
    assert zone_of(np.full(40, np.inf, dtype)) == {"min": np.inf, "max": np.inf}


def test_views_with_a_contiguous_last_dimension():
    base = sample("f8", 60 * 70 * 5).reshape(60, 70, 5)
    for view in (base[3:50, 10:60, :], base[::3, :, 1:4], base[5], base[:, 7, :]):
        assert view.strides[-1] == 8
        assert zones_module._kernel_takes(view)
        assert zone_of(view) == numpy_zone(view)
        raw, zone = zoned_bytes(view)
        assert raw == np.ascontiguousarray(view).tobytes() and zone == numpy_zone(view)


@pytest.mark.parametrize("values", [
    np.arange(100.0)[::2],                          # strided last dimension
    np.arange(50, dtype=">f8"),                     # not in native byte order
    np.arange(50, dtype=">i4") - 20,
    np.array([1.5, -2.0, 3.25], dtype="f2"),        # float16
    np.array([True, False, True]),                  # bool
    np.array(7.5),                                  # a scalar
], ids=["strided", "big-endian-f8", "big-endian-i4", "float16", "bool", "scalar"])
def test_what_the_kernels_do_not_take_goes_through_numpy(values):
    expected = {"min": values.min().item(), "max": values.max().item()}
    assert zone_of(values) == expected
    raw, zone = zoned_bytes(values)
    assert raw == values.tobytes() and zone == expected


def test_no_zone_for_empty_or_non_numeric_values():
    assert zone_of(np.zeros(0)) is None
    assert zoned_bytes(np.zeros((0, 3)))[1] is None
    assert zone_of(np.array(["a", "b"], dtype="S1")) is None
    assert zone_of(np.zeros(3, dtype=[("a", "f8")])) is None


def test_the_kernel_refuses_what_it_cannot_read():
    kernels = zones_module._zones
    with pytest.raises(TypeError, match="no zone kernel"):
        kernels.minmax(np.zeros(4, "f2"))
    with pytest.raises(ValueError, match="not contiguous"):
        kernels.minmax(np.zeros((4, 4))[:, ::2])
    with pytest.raises(TypeError):
        kernels.copy_minmax(object())


KERNEL_WORKOUT = """
import numpy as np
from h5pyvol.storage import _zones
for dt in ("i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"):
    for n in (1, 3, 17, 129, 1001):
        a = np.arange(n * 6, dtype=dt).reshape(n, 6)
        for view in (a, a[:, 1:5], a[::2]):
            assert _zones.copy_minmax(view)[0] == np.ascontiguousarray(view).tobytes()
            _zones.minmax(view)
print("PASS")
"""


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_kernels_read_and_write_only_their_buffers(tmp_path):
    proc = subprocess.run(["valgrind", "--num-callers=20", sys.executable, "-P", "-c", KERNEL_WORKOUT],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONMALLOC": "malloc"})
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "ERROR SUMMARY" in proc.stderr, "valgrind did not run"
    bad = [rec for rec in re.split(r"\n==\d+== \n", proc.stderr)
           if re.search(r"Invalid (read|write)|uninitialised", rec) and "zones.c" in rec]
    assert not bad, "\n\n".join(bad[:3])
