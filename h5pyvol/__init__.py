"""h5pyvol: HDF5 storage backends written in Python, used by every HDF5 program.

For users: `File` opens an `h5py.File` served by a connector,
`connector_name` tells which VOL connector serves an HDF5 object,
`node_of` gives the connector object behind one, and `shards` says where a
dataset's elements are stored (`Shard` records); `File` raises
`TwoLibhdf5Error` when the plugin was built against another libhdf5 than
h5py's. For
connector authors: subclass the classes in `h5pyvol.connector` and register
the `Connector` subclass under the entry-point group ``h5pyvol.connectors``.
"""

from __future__ import annotations

import os
from typing import Any

import h5py

from . import connector
from ._hdf5 import PLUGIN_DIR, TwoLibhdf5Error, connector_name, connector_string_of, set_connector
from .connector import Shard, check_file_name
from .registry import ConnectorSpec, check_name
from .shards import shards


def node_of(obj: Any) -> connector.File | connector.Node | connector.Attribute:
    """The connector object (a `connector.File`, `Node` or `Attribute`) behind
    an h5py object that h5pyvol serves in this process.

    Raises ValueError for an object another VOL connector serves."""
    from .bridge import node_of as find

    return find(obj)

__all__ = ["File", "Shard", "TwoLibhdf5Error", "connector", "connector_name", "connector_string",
           "connector_string_of", "node_of",
           "shards", "PLUGIN_DIR", "__version__"]
__version__ = "0.1.0"

_DRIVER = "h5pyvol"


def connector_string(connector: str = "memory", **options: Any) -> str:
    """The connector string for a connector name and options (``NAME;key=value...``)."""
    check_name(connector)
    for key, value in options.items():
        if ";" in f"{key}{value}" or "=" in key or "\0" in f"{key}{value}":
            raise ValueError(f"connector option {key}={value!r} may not contain ';' or NUL (or '=' in the key)")
    spec = ";".join([connector, *(f"{k}={v}" for k, v in options.items())])
    ConnectorSpec.parse(spec)  # fail early on a malformed string
    return spec


def _set_fapl(plist: h5py.h5p.PropFAID, h5pyvol_spec: str) -> None:
    set_connector(plist, h5pyvol_spec)


# URL schemes that choose a connector: scheme://container/key -> (connector, option for container)
URL_SCHEMES = {"s3": ("s3", "bucket"), "rados": ("rados", "pool")}


def File(name: str | bytes | os.PathLike, mode: str = "r", /, connector: str | None = None, *,
         track_order: bool | None = None, **options: Any) -> h5py.File:
    """Open an HDF5 file through an h5pyvol connector; returns an ordinary h5py.File.

    `connector` is an installed connector's name (``memory``...) or
    ``package.module:Class``; `options` become its ``key=value`` options.
    A name like ``s3://bucket/key.h5`` or ``rados://pool/name`` chooses the
    connector and its bucket or pool. The default connector is ``memory``.
    No environment variable is needed: the connector is set on the file's
    access property list. `name` and `mode` are positional, so connector
    options may use those words too. A name containing NUL is refused (HDF5
    would take only the part before it).
    """
    given = name
    name = os.fspath(name)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    check_file_name(name)
    if connector is not None:
        check_name(connector)
    scheme, sep, rest = name.partition("://")
    if sep and scheme in URL_SCHEMES:
        implied, container_option = URL_SCHEMES[scheme]
        if connector not in (None, implied):
            raise ValueError(f"{given!r} names the {implied!r} connector, but connector={connector!r} was given")
        container, _, key = rest.partition("/")
        if not container or not key:
            raise ValueError(f"{given!r} is not of the form {scheme}://{container_option.upper()}/NAME")
        connector, name = implied, key
        options.setdefault(container_option, container)
    spec = connector_string(connector or "memory", **options)
    if _DRIVER not in h5py.registered_drivers():
        h5py.register_driver(_DRIVER, _set_fapl)
    return h5py.File(name, mode, driver=_DRIVER, track_order=track_order, h5pyvol_spec=spec)
