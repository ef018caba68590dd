"""Printing what a flow file holds: its tables, references and attributes
(h5flow's ``print_data``, ``print_ref`` and ``print_attr``)."""

from __future__ import annotations

import h5py


def _listing(grp: h5py.Group, keep) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    grp.visititems(lambda n, obj: found.append((n, obj)) if keep(n, obj) else None)
    return found


def _print(rows: list[tuple[str, object]]) -> None:
    if rows:
        width = max(len(n) for n, _ in rows)
        for name, obj in rows:
            print(f"{name:<{width}} {obj}")


def print_ref(grp: h5py.Group) -> None:
    """Every reference dataset under `grp`."""
    _print(_listing(grp, lambda n, d: n.endswith("/ref") and isinstance(d, h5py.Dataset)))


def print_data(grp: h5py.Group) -> None:
    """Every data table under `grp`."""
    _print(_listing(grp, lambda n, d: n.endswith("/data") and isinstance(d, h5py.Dataset)))


def print_attr(grp: h5py.Group) -> None:
    """The attributes of every object under `grp` except reference tables."""
    for name, obj in _listing(grp, lambda n, d: len(d.attrs) and not n.endswith(("/ref", "/ref_region"))):
        print(name)
        for key, value in obj.attrs.items():
            print(f"\t{key}: {value}")
