"""The in-memory connector passes the shared conformance suite."""

from h5pyvol.testing import ConnectorConformance


class TestMemoryConnector(ConnectorConformance):
    connector = "memory"
