"""Session fixtures: one Ceph cluster and one SeaweedFS server per test run.

Other suites (the S3 and RADOS connectors') can copy these few lines or
call tests/services/servers.py directly.

Without the packages of scripts/services/install.sh the fixtures skip, saying
what is missing; with H5PYVOL_REQUIRE_SERVICES=1 (for CI) they fail instead.
H5PYVOL_KEEP_SERVICES=1 leaves the servers running after the session, for
quick reruns: the next session reuses them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers  # noqa: E402

KEEP = os.environ.get("H5PYVOL_KEEP_SERVICES") == "1"
REQUIRE = os.environ.get("H5PYVOL_REQUIRE_SERVICES") == "1"


def _need(missing: list[str], what: str) -> None:
    if missing:
        msg = f"{what} needs {', '.join(missing)}: run scripts/services/install.sh {sys.executable}"
        if REQUIRE:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def ceph():
    _need(servers.missing_ceph(), "Ceph")
    info = servers.start_ceph()
    yield info
    if not KEEP:
        servers.stop_ceph(info)


@pytest.fixture(scope="session")
def seaweedfs():
    _need(servers.missing_seaweedfs(), "SeaweedFS")
    info = servers.start_seaweedfs()
    yield info
    if not KEEP:
        servers.stop_seaweedfs(info)


@pytest.fixture(params=["ceph-rgw", "seaweedfs"])
def s3_server(request):
    """Each S3 test runs against both S3 implementations."""
    return request.getfixturevalue("ceph" if request.param == "ceph-rgw" else "seaweedfs")


@pytest.fixture(params=["ceph-rgw", "seaweedfs", "rados"])
def store(request, monkeypatch):
    """A fresh container on each chunked store (stores.Store): a bucket on RGW
    and on SeaweedFS, a namespace on RADOS; emptied and removed afterwards."""
    from stores import make_store

    info = request.getfixturevalue("ceph" if request.param in ("ceph-rgw", "rados") else "seaweedfs")
    made = make_store(request.param, info, setenv=monkeypatch.setenv)
    yield made
    made.cleanup()
