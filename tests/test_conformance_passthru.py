"""The pass-through connector passes the shared conformance suite, storing
every file as a native HDF5 file in a temporary directory."""

from __future__ import annotations

import pytest

from h5pyvol.testing import ConnectorConformance


class TestPassthruConnector(ConnectorConformance):
    connector = "passthru"

    @pytest.fixture
    def connector_options(self, tmp_path) -> dict[str, str]:
        return {"root": str(tmp_path)}
