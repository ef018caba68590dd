"""A file opened by following an external link gets what native HDF5 gives
it: the link access properties' intent (H5Pset_elink_acc_flags), else the
linking file's; their file access properties (H5Pset_elink_fapl), else the
linking file's; and the file is looked for with their prefix
(H5Pset_elink_prefix) and HDF5_EXT_PREFIX, as native HDF5 looks for it."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from twin import both


def _linked(fs, target: str = "ext.h5", link_name: str | None = None) -> None:
    with fs.open(target, "w", libver="latest") as f:
        f["g/data"] = np.arange(3)
    with fs.open("main.h5", "w", libver="latest") as f:
        f["ext"] = h5py.ExternalLink(link_name or fs.path(target), "/g")


def _target_intent(fs, mode: str, swmr: bool = False, **elink) -> tuple:
    """(mode, swmr mode, writable) of the file behind main.h5's link "ext"."""
    with fs.open("main.h5", mode, swmr=swmr) as f:
        g = f.get("ext", **elink)
        try:
            g["new"] = 1
            g.file.flush()
            writable = True
        except (ValueError, OSError):
            writable = False
        return g.file.mode, g.file.swmr_mode, writable


def test_intent_from_the_link_access_properties(tmp_path):
    def scenario(fs):
        _linked(fs)
        out = {
            "default": _target_intent(fs, "a"),
            "r": _target_intent(fs, "a", elink_mode="r"),
            "r_swmr": _target_intent(fs, "a", elink_mode="r", elink_swmr=True),
            "inherited_swmr": _target_intent(fs, "r", swmr=True),
            "swmr_off": _target_intent(fs, "r", swmr=True, elink_swmr=False),
            "read_only_parent": _target_intent(fs, "r"),
        }
        with fs.open("main.h5", "r") as f:
            lapl = h5py.h5p.create(h5py.h5p.LINK_ACCESS)
            lapl.set_elink_acc_flags(h5py.h5f.ACC_RDWR)
            g = h5py.Group(h5py.h5o.open(f.id, b"ext", lapl=lapl))  # HDF5 allows it (h5py's get() does not)
            out["rdwr_from_read_only"] = g.file.mode
            del g
        return out

    result = both(scenario, tmp_path)
    assert result["default"] == ("r+", False, True) and result["r"] == ("r", False, False)
    assert result["r_swmr"] == ("r", True, False) and result["rdwr_from_read_only"] == "r+"


def test_file_access_properties_from_the_link_access_properties(tmp_path):
    def scenario(fs):
        _linked(fs)
        out = {}
        for locking in (None, True, "best-effort"):
            with fs.open("main.h5", "r", locking=False) as f:
                g = f.get("ext", elink_locking=locking)
                out[f"locking-{locking}"] = g.file.id.get_access_plist().get_file_locking()
                out[f"data-{locking}"] = g["data"][()]
                del g
        return out

    result = both(scenario, tmp_path)
    assert result["locking-True"] == (True, False) and result["locking-None"] == (False, False)


def test_target_found_with_prefixes(tmp_path, monkeypatch):
    def scenario(fs):
        _linked(fs, target="sub/ext.h5", link_name="ext.h5")  # not beside main.h5
        out = {}
        with fs.open("main.h5", "r") as f:
            with pytest.raises(KeyError):
                f["ext"]
            lapl = h5py.h5p.create(h5py.h5p.LINK_ACCESS)
            lapl.set_elink_prefix(fs.path("sub").encode())
            out["prefix"] = h5py.Dataset(h5py.h5o.open(f.id, b"ext/data", lapl=lapl))[()]
            lapl.set_elink_prefix(b"${ORIGIN}/sub")  # only a virtual dataset's prefix expands ${ORIGIN}
            with pytest.raises(KeyError):
                h5py.h5o.open(f.id, b"ext/data", lapl=lapl)
        monkeypatch.setenv("HDF5_EXT_PREFIX", "/nonexistent:" + fs.path("sub"))
        with fs.open("main.h5", "r") as f:
            out["env"] = f["ext/data"][()]
        monkeypatch.delenv("HDF5_EXT_PREFIX")
        return out

    assert both(scenario, tmp_path)["env"].tolist() == [0, 1, 2]
