"""h5flow.core: the base classes and the shared ``resources`` registry."""

from h5pyvol.flow.components import H5FlowGenerator, H5FlowResource, H5FlowStage, resources

__all__ = ["H5FlowGenerator", "H5FlowResource", "H5FlowStage", "resources"]
