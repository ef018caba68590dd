"""Capability flags reach HDF5 from the booleans a connector declares."""

from __future__ import annotations

import ctypes
from pathlib import Path

import h5py
import pytest

from h5pyvol import _hdf5

TESTS = Path(__file__).resolve().parent
ATTR_BASIC, SOFT_LINKS, HARD_LINKS = 0x8, 0x80000000, 0x40000000


def flags_for(spec: str) -> int:
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    _hdf5.set_connector(fapl, spec)
    fn = _hdf5.lib().H5Pget_vol_cap_flags
    fn.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_uint64)]
    flags = ctypes.c_uint64()
    if fn(fapl.id, ctypes.byref(flags)) < 0:
        raise RuntimeError(f"HDF5 could not get the capability flags of {spec!r}")
    return flags.value


def test_memory_connector_flags():
    flags = flags_for("memory")
    assert flags & ATTR_BASIC and flags & SOFT_LINKS and flags & HARD_LINKS


def test_declared_booleans_become_flags(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    flags = flags_for("failing_connector:PlainConnector")
    assert flags & HARD_LINKS
    assert not flags & SOFT_LINKS and not flags & ATTR_BASIC


def test_unknown_connector_flags_fail_clearly():
    with pytest.raises(RuntimeError):
        flags_for("nosuchconnector")
