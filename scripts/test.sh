#!/usr/bin/env bash
# Runs every h5pyvol test on this machine: sets up what the tests need
# (scripts/bootstrap.sh), then runs pytest on the installed package.
# Extra arguments go to pytest, e.g. scripts/test.sh -k selection -x
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${H5PYVOL_VENV:-$REPO/.venv}

bash "$REPO/scripts/bootstrap.sh"
cd "$REPO"
# -P: import the installed h5pyvol (with its plugin), not the source tree.
exec "$VENV/bin/python" -P -m pytest "$@"
