"""h5pyvol.flow: an engine for h5flow workflows, on any connector, serial or MPI.

h5flow's YAML workflows and modules run unchanged: inside a run ``import
h5flow`` resolves to the compatible API in ``compat/``. One layer per module:

- `cli`: the command line (``h5pyvol flow``);
- `config`: YAML configs with ``!include``, checked;
- `discovery`: finding a module's class by reading syntax trees;
- `components`: the base classes (stage, generator, resource);
- `builtins`: the dataset loop generator and the test stage;
- `datamanager`: h5flow's data-manager API and dataset views;
- `dereference`: following references;
- `store`, `overlay`: committed rows, and one unit of work's rows over them;
- `engine`, `scheduler`: running a workflow, serially or under MPI;
- `journal`: checkpoints and ``--resume``;
- `provenance`: records of what made the output;
- `reuse`: what each component read and wrote, version stamps, and which
  components a new run must run again;
- `progress`: the progress bar and the time profile.
"""

from __future__ import annotations

from .errors import FlowError


def run(*args, **kwargs):
    """Run workflow configs into an output file; see `engine.run`."""
    from .engine import run as engine_run

    return engine_run(*args, **kwargs)


__all__ = ["FlowError", "run"]
