"""h5flow.modules: the built-in generator and stage, and class lookup."""

from h5pyvol.flow.builtins import H5FlowDatasetLoopGenerator, H5FlowTestStage  # noqa: F401
from h5pyvol.flow.discovery import find_class as _find_class


def get_class(classname, path=None):
    """The class `classname` (from module `path` if given), found as h5flow finds it."""
    return _find_class(classname, path)
