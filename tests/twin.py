"""Run one h5py scenario twice: on native files, and on memory-connector
files; the two must give equal results.

The scenario gets a `Native` or a `Memory` opener. Native files live in a
temporary directory; memory-connector files live under a made-up directory
(the connector has no files on disk: names are only names), and every file
the memory opener opens is checked to be served by h5pyvol.
"""

from __future__ import annotations

import itertools
import os

import h5py
import numpy as np

import h5pyvol

_dirs = itertools.count()


class Native:
    """Opens native files under a real directory."""

    def __init__(self, tmp_path) -> None:
        self.dir = str(tmp_path)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def open(self, name: str, mode: str, **kwargs) -> h5py.File:
        os.makedirs(os.path.dirname(self.path(name)), exist_ok=True)
        return h5py.File(self.path(name), mode, **kwargs)


class Memory(Native):
    """Opens memory-connector files under a directory that exists only as a name."""

    def __init__(self, tmp_path) -> None:
        self.dir = f"/twin-{next(_dirs)}"
        h5pyvol.File(f"{self.dir}/register.h5", "w").close()  # registers h5py's h5pyvol driver

    def open(self, name: str, mode: str, **kwargs) -> h5py.File:
        f = h5py.File(self.path(name), mode, driver="h5pyvol", h5pyvol_spec="memory", **kwargs)
        assert h5pyvol.connector_name(f.id) == "h5pyvol"
        return f


def both(scenario, tmp_path):
    """The scenario's results natively and through the connector (asserted equal)."""
    native = scenario(Native(tmp_path))
    memory = scenario(Memory(tmp_path))
    assert set(native) == set(memory)
    for key in native:
        np.testing.assert_equal(memory[key], native[key], err_msg=key)
    return native
