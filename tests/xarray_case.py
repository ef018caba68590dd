"""One xarray round trip, for every connector: a netCDF-4 dataset written with
xarray's h5netcdf engine into an h5py file that h5pyvol serves, read back the
same way, must be identical. Dimension scales (HDF5's H5DS, which the engine
attaches to every variable), attributes, variable-length strings, an
unlimited dimension, compression and a scalar variable are all in it."""

from __future__ import annotations

from collections.abc import Callable

import h5py
import numpy as np

import h5pyvol


def sample():
    import xarray as xr

    return xr.Dataset(
        {
            "temperature": (("time", "x"), np.arange(12.0).reshape(3, 4), {"units": "K", "long_name": "temperature"}),
            "label": (("x",), np.array(["a", "bb", "ccc", "dddd"], dtype=object)),
            "count": ((), np.int32(7)),
        },
        coords={"time": [1, 2, 3], "x": [10.0, 20.0, 30.0, 40.0]},
        attrs={"title": "round trip", "history": "written through h5pyvol"},
    )


ENCODING = {"temperature": {"zlib": True, "complevel": 4, "chunksizes": (1, 4)}}


def round_trip(open_file: Callable[[str], h5py.File]):
    """Write `sample()` into open_file("w"), read it from open_file("r") and
    check it is identical; returns what was read."""
    import xarray as xr

    ds = sample()
    with open_file("w") as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        ds.to_netcdf(f, engine="h5netcdf", encoding=ENCODING, unlimited_dims=["time"])
    with open_file("r") as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        back = xr.open_dataset(f, engine="h5netcdf").load()
        # the engine attached each variable to its dimensions' scales (H5DS)
        assert f["temperature"].dims[0][0].name == "/time" and f["temperature"].dims[1][0].name == "/x"
        assert f["time"].maxshape == (None,)
    xr.testing.assert_identical(back, ds)
    return back
