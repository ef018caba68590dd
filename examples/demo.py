"""demo.py: an h5py program using the in-memory Python connector, without any
environment variable: h5pyvol.File returns an ordinary h5py.File."""

import numpy as np

import h5pyvol

with h5pyvol.File("inventory.h5", "w", connector="memory") as f:
    f["fruit/apples"] = np.arange(5, dtype="i4")
    f["fruit/apples"].attrs["unit"] = "crates"
    f.create_dataset("fruit/names", data=["apple", "pear", "fig"])
    print(f"[h5py] inventory.h5 is served by '{h5pyvol.connector_name(f.id)}'")
    print(f"[h5py] apples: {f['fruit/apples'][:]} ({f['fruit/apples'].attrs['unit']}); "
          f"names: {[n.decode() for n in f['fruit/names'][:]]}")
    print(f"[h5py] members: {sorted(f['fruit'])}")
