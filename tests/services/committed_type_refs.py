"""A committed datatype's reference count through a connector, step by step
against native HDF5.

HDF5 counts, in a committed datatype's H5Oget_info rc, its hard links and
every dataset and attribute created with it; deleting such an attribute, or
reclaiming a dataset or group that holds such arrays, takes those back. The
S3 and RADOS tests run `compare` with their connector's options.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

import h5pyvol

Opener = Callable[[str, str], h5py.File]


def _rc(f: h5py.File) -> int:
    return h5py.h5o.get_info(f["type"].id).rc


def steps(open_file: Opener, name: str) -> list[tuple[str, int]]:
    """Create and delete arrays of a committed datatype; its rc after each step
    (the last ones after reopening the file)."""
    seen: list[tuple[str, int]] = []
    with open_file(name, "w") as f:
        f["type"] = np.dtype("<i4")
        seen.append(("committed", _rc(f)))
        f.create_dataset("a", (3,), dtype=f["type"])
        seen.append(("dataset a", _rc(f)))
        f.attrs.create("x", 1, dtype=f["type"])
        f["a"].attrs.create("y", 2, dtype=f["type"])
        f["a"].attrs.create("plain", 3, dtype="<i4")  # a transient type: no reference
        seen.append(("attributes x, a.y", _rc(f)))
        g = f.create_group("g")
        g.attrs.create("z", 4, dtype=f["type"])
        g.create_dataset("d", (2,), dtype=f["type"])
        g.create_group("h").create_dataset("e", (2,), dtype=f["type"])
        seen.append(("group g and its arrays", _rc(f)))
        del f.attrs["x"]
        seen.append(("attribute x deleted", _rc(f)))
        del f["a"].attrs["y"]
        f["a"].attrs.create("y", 5, dtype=f["type"])
        seen.append(("attribute a.y deleted and made again", _rc(f)))
        del f["a"]
        seen.append(("dataset a and its attribute reclaimed", _rc(f)))
        f["g2"] = f["g"]  # a second link: deleting one reclaims nothing
        del f["g"]
        seen.append(("one of g's two links deleted", _rc(f)))
        f.create_dataset("kept", (1,), dtype=f["type"])
        f["lone"] = np.dtype("<f8")
        f.create_dataset("u", (1,), dtype=f["lone"])
        del f["lone"]  # no link left: dataset u keeps the type
    with open_file(name, "r+") as f:
        seen.append(("reopened", _rc(f)))
        del f["g2"]
        seen.append(("group g reclaimed with its members", _rc(f)))
        f["type2"] = f["type"]
        del f["type"]
        f["type"] = f["type2"]
        del f["type2"]
        seen.append(("type relinked", _rc(f)))
    with open_file(name, "r") as f:
        seen.append(("reopened again", _rc(f)))
        assert f["kept"].id.get_type().committed()  # the dataset's type is the committed one
        seen.append(("type without links still committed", int(f["u"].id.get_type().committed())))
    return seen


def rc_in_another_process(connector: str, options: dict[str, str], name: str) -> int:
    """The type's rc as a new process opening the file through the connector reads it."""
    code = (
        "import json, sys, h5py, h5pyvol\n"
        "with h5pyvol.File(sys.argv[1], 'r', sys.argv[2], **json.loads(sys.argv[3])) as f:\n"
        "    assert h5pyvol.connector_name(f.id) == 'h5pyvol'\n"
        "    print(h5py.h5o.get_info(f['type'].id).rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, name, connector, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def compare(connector: str, options: dict[str, str], tmp_path: Path) -> None:
    """The same steps natively and through a connector give the same counts,
    also in another process."""
    native = steps(lambda name, mode: h5py.File(tmp_path / name, mode), "native.h5")

    def through_connector(name: str, mode: str) -> h5py.File:
        return h5pyvol.File(name, mode, connector, **options)

    with through_connector("probe.h5", "w") as f:
        assert h5pyvol.connector_name(f.id) == "h5pyvol"  # HDF5 really went through the connector
    through = steps(through_connector, "typerc.h5")
    assert through == native
    assert [rc for _, rc in native][:4] == [1, 2, 4, 7]  # the counts do move: the comparison means something
    with h5py.File(tmp_path / "native.h5", "r") as f:
        assert rc_in_another_process(connector, options, "typerc.h5") == _rc(f) == 2
