"""h5flow.data: the data manager and dereferencing."""

from h5pyvol.flow.datamanager import H5FlowDataManager  # noqa: F401, I001

from .lib import dereference, dereference_chain, print_attr, print_data, print_ref, ref_region_dtype  # noqa: F401
