"""Fixtures the analysis tests share (imported by tests/test_analysis.py and tests/services)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def dask_client():
    """A real dask.distributed LocalCluster: two single-thread workers in this process."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
