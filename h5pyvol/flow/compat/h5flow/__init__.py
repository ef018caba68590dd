"""h5flow's API, served by h5pyvol's flow engine (``import h5flow`` inside a run).

`run` and `main` run workflows with `h5pyvol.flow`; the classes are in
``h5flow.core``, ``h5flow.data`` and ``h5flow.modules`` as in h5flow 0.2.4.
"""

from h5pyvol.flow.components import RUNTIME as _RUNTIME

from .core import H5FlowGenerator, H5FlowResource, H5FlowStage, resources  # noqa: F401

H5FLOW_MPI = _RUNTIME["size"] > 1


def run(configs, output_filename, input_filename=None, start_position=None, end_position=None, verbose=0,
        drop=None, nompi=False, **options):
    """Run workflow configs in sequence (h5flow's ``h5flow.run``)."""
    from h5pyvol.flow.engine import run as engine_run

    return engine_run(configs, output_filename, input_filename=input_filename, start_position=start_position,
                      end_position=end_position, verbose=verbose, drop=drop, nompi=nompi, **options)


def main(argv=None):
    from h5pyvol.flow.cli import main as cli_main

    return cli_main(argv)
