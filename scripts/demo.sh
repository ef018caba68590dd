#!/usr/bin/env bash
# The h5pyvol demo: a C program and an h5py program write and read through the
# in-memory Python connector. H5PYVOL_TRACE=1 prints each call the connector
# receives (the lines starting with "h5pyvol:"), i.e. what the connector saw.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${H5PYVOL_VENV:-$REPO/.venv}

bash "$REPO/scripts/bootstrap.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo
echo "== 1. A C program, unchanged, with HDF5_VOL_CONNECTOR='h5pyvol memory'"
# shellcheck disable=SC2046
cc -Wall -o "$work/demo" "$REPO/examples/demo.c" $("$VENV/bin/h5pyvol" config --cflags --libs)
eval "$("$VENV/bin/h5pyvol" env memory)"
(cd "$work" && H5PYVOL_TRACE=1 ./demo)

echo
echo "== 2. An h5py program, choosing the connector per file with h5pyvol.File"
unset HDF5_VOL_CONNECTOR
H5PYVOL_TRACE=1 "$VENV/bin/python" "$REPO/examples/demo.py"
