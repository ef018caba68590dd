#!/usr/bin/env bash
# Runs every h5pyvol test on this machine: sets up what the tests need
# (scripts/bootstrap.sh, scripts/services/install.sh), then runs pytest on the
# installed package.
# Extra arguments go to pytest, e.g. scripts/test.sh -k selection -x
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${H5PYVOL_VENV:-$REPO/.venv}

bash "$REPO/scripts/bootstrap.sh"
# Real storage servers for the service tests (Ceph with RGW, SeaweedFS); the
# tests start and stop them. Missing ones are failures, not skips.
bash "$REPO/scripts/services/install.sh" "$VENV/bin/python"
export H5PYVOL_REQUIRE_SERVICES=1
cd "$REPO"
# -P: import the installed h5pyvol (with its plugin), not the source tree.
exec "$VENV/bin/python" -P -m pytest "$@"
