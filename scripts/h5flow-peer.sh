#!/usr/bin/env bash
# Installs the peer h5flow 0.2.4 (MIT; the tarball in ../shared/peers/) into
# its own virtualenv under ~/.cache/h5pyvol, for the comparison test and
# bench/bench_flow.py. It never goes into the project's .venv: inside an
# `h5pyvol flow` run `import h5flow` must resolve to h5pyvol's compatible API.
# The venv shares the project's h5py wheel (built against the same HDF5), so
# both engines write through one libhdf5. Cached; prints the venv's python.
#
# Environment: H5FLOW_TARBALL (default: ../shared/peers/h5flow-0.2.4.tar.gz
# next to the repository), H5PYVOL_CACHE, PYTHON.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${H5PYVOL_CACHE:-$HOME/.cache/h5pyvol}
PYTHON=${PYTHON:-python3}
H5PY_VERSION=3.16.0
PV_SCRIPT=h5flow-peer
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tarball=${H5FLOW_TARBALL:-}
if [ -z "$tarball" ]; then
  for d in "$REPO/../shared/peers" "$REPO/../../shared/peers" /work/shared/peers; do
    [ -f "$d/h5flow-0.2.4.tar.gz" ] && { tarball="$d/h5flow-0.2.4.tar.gz"; break; }
  done
fi
[ -n "$tarball" ] && [ -f "$tarball" ] || die "h5flow-0.2.4.tar.gz not found (set H5FLOW_TARBALL)"

hdf5=$(bash "$REPO/scripts/bootstrap.sh" --print-hdf5-dir 2>/dev/null)
wheel=$(ls "$CACHE/wheels/h5py-$H5PY_VERSION-$(printf '%s' "$hdf5" | sha1sum | cut -c1-12)"/h5py-*.whl 2>/dev/null | head -n1)
[ -n "$wheel" ] || die "no cached h5py wheel for $hdf5: run scripts/bootstrap.sh first"

venv="$CACHE/peers/h5flow-0.2.4"
key="$(sha1sum "$tarball" | cut -c1-12) $(basename "$wheel")"
if [ "$(cat "$venv/.h5pyvol-peer" 2>/dev/null)" != "$key" ]; then
  step "installing h5flow 0.2.4 into $venv"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install -q numpy "pyyaml" "pyyaml-include<2" tqdm setuptools wheel >&2
  "$venv/bin/pip" install -q --no-deps "$wheel" >&2
  # h5flow's setup.py also lists pytest; its runtime needs only the above.
  "$venv/bin/pip" install -q --no-deps --no-build-isolation "$tarball" >&2
  "$venv/bin/python" -c "import h5flow, yamlinclude" >&2
  echo "$key" >"$venv/.h5pyvol-peer"
fi
echo "$venv/bin/python"
