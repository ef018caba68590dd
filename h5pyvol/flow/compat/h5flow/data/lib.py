"""h5flow.data.lib: dereferencing, the ref_region dtype and printing helpers."""

from h5pyvol.flow.dereference import dereference, dereference_chain, ref_region_dtype  # noqa: F401
from h5pyvol.flow.printing import print_attr, print_data, print_ref  # noqa: F401
