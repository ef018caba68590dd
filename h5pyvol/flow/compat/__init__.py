"""Making ``import h5flow`` resolve to h5pyvol's compatible API during a run.

`h5flow_compat()` puts this folder first on ``sys.path`` and sets aside any
``h5flow`` modules already imported (a real h5flow, if installed, is left
alone on disk and comes back afterwards). Nothing is installed globally.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)


def _ours(name: str) -> bool:
    return name == "h5flow" or name.startswith("h5flow.")


@contextlib.contextmanager
def h5flow_compat() -> Iterator[None]:
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _ours(name)
             and not getattr(sys.modules[name], "__file__", "").startswith(HERE)}
    sys.path.insert(0, HERE)
    try:
        import h5flow  # noqa: F401 - ours, from HERE

        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(HERE)
        for name in [n for n in sys.modules if _ours(n)]:
            del sys.modules[name]
        sys.modules.update(saved)
