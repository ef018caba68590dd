"""The plugin's C module, h5pyvol._plugin, as the bridge reaches it.

The plugin makes the module when HDF5 loads it: it gives the bridge
buffers, dataspaces, property lists and ids made in C, and the bases of the
handles (``Handle``, whose fields the plugin's C paths read; ``FileBase``,
which HDF5 may misread as a native file). Where the plugin cannot load
(the source tree, not built), the bases are plain ``object``: no HDF5 id
can reach a handle there.
"""

from __future__ import annotations

import sys
from types import ModuleType


def _load() -> ModuleType | None:
    """h5pyvol._plugin, which the plugin adds when HDF5 loads it into this
    Python; so when the bridge is imported first (by a program, not by the
    plugin), HDF5 is asked to load the plugin now. None where it cannot."""
    found = sys.modules.get("h5pyvol._plugin")
    if found is None:
        try:
            from .._hdf5 import lib, register_plugin

            lib().H5VLclose(register_plugin())
        except (OSError, RuntimeError):
            return None
        found = sys.modules.get("h5pyvol._plugin")
    return found


_module = _load()
HandleBase: type = getattr(_module, "Handle", object)
FileBase: type = getattr(_module, "FileBase", object)


def plugin() -> ModuleType:
    """h5pyvol._plugin (ImportError outside the plugin)."""
    global _module
    if _module is None:
        from .. import _plugin  # type: ignore[attr-defined]

        _module = _plugin
    return _module
