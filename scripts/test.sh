#!/usr/bin/env bash
# Runs every h5pyvol test on this machine: sets up what the tests need
# (scripts/bootstrap.sh, scripts/services/install.sh), runs pytest on the
# installed package, then the MPI stage: tests/mpi under mpiexec with 2 ranks,
# then h5pyvol next to stock h5py wheels (scripts/wheel-envs.sh: HDF5 1.14.6
# and 2.0.0, and the sdist and wheel of `python -m build`), then the
# container images (scripts/containers.sh: podman build, the demo in the
# image, the Ceph demo composition).
# Extra arguments go to the first pytest only (and skip the later stages),
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
echo "==> wheel environments: h5py 3.15.1 (HDF5 1.14.6), h5py 3.16.0 (HDF5 2.0.0), python -m build"
# The bootstrap's plugin is built against another libhdf5: tests/wheels checks it is refused there.
H5PYVOL_FOREIGN_PLUGIN=$("$VENV/bin/python" -P -c 'import h5pyvol; print(h5pyvol.PLUGIN_DIR)') \
  bash "$REPO/scripts/wheel-envs.sh" || status=$?
echo "==> container images: podman build, the demo inside, the Ceph demo composition"
bash "$REPO/scripts/containers.sh" || status=$?
exit "$status"
