"""Tracing: with ``H5PYVOL_TRACE=1`` every call into the bridge is printed.

One line per call on stderr, as ``h5pyvol: NAME(ARGS)``, for each of the
three ways a call is served, so that a trace shows what normal runs do:

- a bridge function the plugin calls (`wrap`);
- a read or write the plugin's C fast path hands straight to the connector
  (`FastPathNode`, which `fastpath.plan` puts in place of the dataset node):
  ``h5pyvol: dataset_read <dataset '/d'> [C fast path]: read(...)``;
- a question the plugin answers in C from the handle (`answered_in_c`):
  ``h5pyvol: attr_get_type(<attribute 'a'>) [answered in C]``.

``H5PYVOL_TRACE`` takes 1, true or yes to trace, and 0, false, no or nothing
not to; any other value is refused (the bridge does not import, so the
first HDF5 call through h5pyvol fails with that message).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np


def flag(name: str, value: str | None) -> bool:
    """The yes/no value of environment variable `name`: 1, true, yes (any case) or 0, false, no, empty."""
    text = (value or "").strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("", "0", "false", "no"):
        return False
    raise ValueError(f"{name}={value!r}: use 1, true or yes to turn it on, 0, false or no (or leave it unset) "
                     "to leave it off")


ENABLED = flag("H5PYVOL_TRACE", os.environ.get("H5PYVOL_TRACE"))


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, dtype={value.dtype})"
    return repr(value)


def _print(line: str) -> None:
    print(f"h5pyvol: {line}", file=sys.stderr, flush=True)


def wrap(name: str, fn: Callable) -> Callable:
    """`fn`, printing each call first."""

    @functools.wraps(fn)
    def traced(*args):
        _print(f"{name}({', '.join(map(_show, args))})")
        return fn(*args)

    return traced


def answered_in_c(name: str, handle: Any) -> None:
    """Called by the plugin, when tracing, for a question it answers in C."""
    _print(f"{name}({handle!r}) [answered in C]")


class FastPathNode:
    """A dataset node as the C fast path reaches it while tracing: it prints
    each read and write, then hands it to the node. Only the handle's repr is
    kept, so that the handle (which holds this object) forms no cycle."""

    __slots__ = ("node", "shown")

    def __init__(self, handle: Any) -> None:
        self.node = handle.node
        self.shown = repr(handle)

    @property
    def meta(self):
        return self.node.meta

    def read(self, selection, out: np.ndarray) -> None:
        _print(f"dataset_read {self.shown} [C fast path]: read({selection!r}, {_show(out)})")
        self.node.read(selection, out)

    def write(self, selection, data: np.ndarray) -> None:
        _print(f"dataset_write {self.shown} [C fast path]: write({selection!r}, {_show(data)})")
        self.node.write(selection, data)
