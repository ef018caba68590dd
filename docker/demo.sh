#!/usr/bin/env bash
# The demo inside the runtime image (installed as h5pyvol-demo): a C program
# and an h5py program write and read through the in-memory Python connector.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "== 1. A C program, unchanged, with HDF5_VOL_CONNECTOR='h5pyvol memory'"
eval "$(h5pyvol env memory)"
h5pyvol-demo-c

echo "== 2. An h5py program, choosing the connector per file with h5pyvol.File"
unset HDF5_VOL_CONNECTOR
python /opt/h5pyvol/share/h5pyvol/demo.py
