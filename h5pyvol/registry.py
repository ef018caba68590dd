"""Finding connectors: connector strings, entry points and ``module:Class`` names.

A connector string is what follows ``h5pyvol`` in ``HDF5_VOL_CONNECTOR``:
``NAME[;key=value...]``. NAME is an entry point of the group
``h5pyvol.connectors`` (``memory``, ``s3``...) or ``package.module:Class``.
A blank string means ``memory``; empty names and options, options without
``=`` and options given twice are refused, as are values a connector does
not take (each connector checks its own).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from importlib.metadata import entry_points

from .connector import Connector

ENTRY_POINT_GROUP = "h5pyvol.connectors"
DEFAULT_CONNECTOR = "memory"


# An entry-point name, or package.module:Class (dotted on both sides of the colon).
_NAME = re.compile(r"[A-Za-z_][\w.-]*")
_CLASS_REF = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def check_name(name: object) -> str:
    """`name` if it can name a connector: an installed connector's name or
    ``package.module:Class``; else TypeError or ValueError saying why."""
    if not isinstance(name, str):
        raise TypeError(f"a connector is named by a str (e.g. 'memory'), not {type(name).__name__} {name!r}")
    if not name.strip():
        raise ValueError(f"connector name {name!r} is empty; name one (e.g. 'memory', the default)")
    if any(c.isspace() for c in name):
        raise ValueError(f"connector name {name!r} contains spaces (options go after ';' as key=value)")
    if not (_CLASS_REF.fullmatch(name) if ":" in name else _NAME.fullmatch(name)):
        raise ValueError(f"connector name {name!r} is neither an installed connector's name nor "
                         "package.module:Class")
    return name


@dataclass(frozen=True)
class ConnectorSpec:
    """A parsed connector string."""

    name: str
    options: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> ConnectorSpec:
        """Parse ``NAME;key=value;...``; ValueError names what is wrong. A
        blank string is the default connector."""
        if not isinstance(text, str):
            raise TypeError(f"a connector string is a str, not {type(text).__name__} {text!r}")
        if "\0" in text:
            raise ValueError(f"connector string {text!r} contains a NUL character")
        if not text.strip():
            return cls(DEFAULT_CONNECTOR, ())
        parts = [p.strip() for p in text.strip().split(";")]
        if not parts[0]:
            raise ValueError(f"connector string {text!r} names no connector before its options "
                             f"(NAME;key=value..., e.g. {DEFAULT_CONNECTOR})")
        name = check_name(parts[0])
        options: dict[str, str] = {}
        for part in parts[1:]:
            if not part:
                raise ValueError(f"connector string {text!r} has an empty option (';' twice in a row, or at the end)")
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"connector option {part!r} in {text!r} is not of the form key=value")
            if key in options:
                raise ValueError(f"connector option {key!r} is given twice in {text!r}")
            options[key] = value.strip()
        return cls(name, tuple(options.items()))

    def __str__(self) -> str:
        return ";".join([self.name, *(f"{k}={v}" for k, v in self.options)])


def available() -> dict[str, str]:
    """Installed connectors: entry-point name -> ``module:Class``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def connector_class(name: str) -> type[Connector]:
    """The class for an entry-point name or a ``module:Class`` reference."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise LookupError(f"cannot import connector module {module_name!r}: {exc}") from exc
        try:
            cls = getattr(module, attr)
        except AttributeError:
            raise LookupError(f"module {module_name!r} has no connector class {attr!r}") from None
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not matches:
            known = ", ".join(sorted(available())) or "none"
            raise LookupError(
                f"unknown connector {name!r}; installed connectors: {known} "
                "(or name a class as package.module:Class)"
            )
        cls = matches[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise TypeError(f"{name!r} is {cls!r}, not a subclass of h5pyvol.connector.Connector")
    return cls


_instances: dict[ConnectorSpec, Connector] = {}


def load(text: str) -> Connector:
    """The connector instance for a connector string (one per distinct string)."""
    spec = ConnectorSpec.parse(text)
    conn = _instances.get(spec)
    if conn is None:
        cls = connector_class(spec.name)
        conn = cls(**dict(spec.options))
        _instances[spec] = conn
    return conn


def close_all() -> None:
    """Close every connector instance (at shutdown)."""
    while _instances:
        _, conn = _instances.popitem()
        conn.close()
