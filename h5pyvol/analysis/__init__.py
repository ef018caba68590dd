"""Analysis shipping: run map next to the data, combine at the caller.

`execute(map, combine, inputs, query, engine)` runs `map` once per shard of
the first input (`h5pyvol.shards`), where the shard is stored when an engine
can put it there, and `combine` on what the maps return. Queries (`Q`, the
H5Q of HDF5's FastForward design) select elements, attributes and objects
and let zone maps skip chunks before any byte moves; views (`view`, H5V)
keep what a query matched as references that save into HDF5 files. Built-in
reductions (`Count`, `Sum`, `Min`, `Max`, `Mean`, `Histogram`) on RADOS run
inside Ceph's OSDs as generated Lua. Engines: ``serial``, ``processes``,
``mpi``, ``dask``. C programs call ``H5ASexecute`` (``h5as.h``).

Modules, one layer each: `query` (H5Q), `sources` (inputs and reopening),
`scripts` (source text, introspection), `plan` (pruning, placement),
`tasks` (what workers run), `engines`, `reductions`, `lua` (the compiler),
`osd` (running it in Ceph), `views` (H5V), `execute`, `capi` (C glue).
"""

from .engines import CallTimeout, DaskEngine, Engine, MPIEngine, ProcessEngine, SerialEngine
from .execute import MapError, Result, associative, execute
from .plan import PlacementError, Worker, place
from .query import Q, Query
from .reductions import Count, Histogram, Max, Mean, Min, Reduction, Sum
from .tasks import Block
from .views import Region, View, view

__all__ = [
    "Block", "CallTimeout", "Count", "DaskEngine", "Engine", "Histogram", "MPIEngine", "MapError", "Max", "Mean",
    "Min", "PlacementError", "ProcessEngine", "Q", "Query", "Reduction", "Region", "Result", "SerialEngine", "Sum",
    "View", "Worker", "associative", "execute", "place", "view",
]
