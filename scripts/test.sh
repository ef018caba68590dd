#!/usr/bin/env bash
# Runs every h5pyvol test on this machine: sets up what the tests need
# (scripts/bootstrap.sh, scripts/services/install.sh), runs pytest on the
# installed package, then the MPI stage: tests/mpi under mpiexec with 2 ranks.
# Extra arguments go to the first pytest only (and skip the MPI stage),
# e.g. scripts/test.sh -k selection -x
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
if [ $# -gt 0 ]; then
  exec "$VENV/bin/python" -P -m pytest "$@"
fi
status=0
"$VENV/bin/python" -P -m pytest || status=$?
echo "==> MPI stage: mpiexec -n 2 pytest --with-mpi tests/mpi"
"$VENV/bin/mpiexec" -n 2 "$VENV/bin/python" -P -m pytest --with-mpi -q -p no:cacheprovider tests/mpi || status=$?
exit "$status"
