"""xarray's h5netcdf engine writes and reads netCDF-4 files through the memory
and passthru connectors (S3 and RADOS: tests/services/test_xarray_services.py).
What passthru wrote is a plain netCDF-4 file: xarray reads it with no
connector, dimension scales and all."""

from __future__ import annotations

import xarray as xr
from xarray_case import round_trip, sample

import h5pyvol


def test_xarray_round_trip_through_memory():
    round_trip(lambda mode: h5pyvol.File("xarray.nc", mode, connector="memory"))


def test_xarray_round_trip_through_passthru_writes_a_native_netcdf_file(tmp_path):
    round_trip(lambda mode: h5pyvol.File("xarray.nc", mode, connector="passthru", root=str(tmp_path)))
    native = xr.open_dataset(tmp_path / "xarray.nc", engine="h5netcdf").load()  # no connector at all
    xr.testing.assert_identical(native, sample())
