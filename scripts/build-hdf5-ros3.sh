#!/usr/bin/env bash
# Builds what the S3 bench's ROS3 peer needs, once, cached by version:
#   1. HDF5 with the read-only S3 driver (ROS3) on, from the Debian source
#      tree scripts/bootstrap.sh fetched, into $CACHE/hdf5-VERSION-ros3
#      (shared and high-level libraries, which h5py needs; no tools or tests);
#   2. a virtualenv (default $CACHE/bench-ros3-venv) with numpy and h5py
#      built from source against that HDF5.
# Nothing of h5pyvol uses this HDF5: it is a second libhdf5 on purpose, only
# for the bench's ROS3 process, which loads no other.
#
# Prints the virtualenv's python on stdout; progress goes to stderr.
# Needs libcurl (libcurl4-openssl-dev) and OpenSSL (libssl-dev) headers:
# installed with apt-get when missing.
#
# Environment: H5PYVOL_CACHE (cache dir), PYTHON (interpreter for the venv).
set -euo pipefail

CACHE=${H5PYVOL_CACHE:-$HOME/.cache/h5pyvol}
PYTHON=${PYTHON:-python3}
HDF5_DEB_VERSION="1.14.6+repack-2" # the version scripts/bootstrap.sh builds
H5PY_VERSION=3.16.0
VENV=${1:-$CACHE/bench-ros3-venv}

PV_SCRIPT=build-hdf5-ros3
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # step, die, apt_install

case "${1:-}" in
  -h | --help)
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    echo
    echo "Usage: scripts/build-hdf5-ros3.sh [VENV]"
    exit 0 ;;
esac

PREFIX="$CACHE/hdf5-$HDF5_DEB_VERSION-ros3"
LOG="$CACHE/logs/hdf5-$HDF5_DEB_VERSION-ros3.log"

build_hdf5() {
  local src build="$CACHE/src/hdf5-$HDF5_DEB_VERSION/build-ros3" generator=()
  src=$(find "$CACHE/src/hdf5-$HDF5_DEB_VERSION" -maxdepth 1 -mindepth 1 -type d -name 'hdf5-*' | head -n1)
  [ -n "$src" ] || die "no HDF5 $HDF5_DEB_VERSION source under $CACHE/src: run scripts/bootstrap.sh first"
  apt_install libcurl4-openssl-dev libssl-dev zlib1g-dev gcc make
  mkdir -p "$CACHE/logs"
  step "building HDF5 $HDF5_DEB_VERSION with ROS3 (about 2 minutes on 2 cores; log: $LOG)"
  command -v ninja >/dev/null && generator=(-G Ninja)
  rm -rf "$build" "$PREFIX.tmp"
  {
    cmake -S "$src" -B "$build" "${generator[@]}" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX.tmp" \
      -DBUILD_SHARED_LIBS=ON -DBUILD_STATIC_LIBS=OFF -DBUILD_TESTING=OFF \
      -DHDF5_BUILD_HL_LIB=ON -DHDF5_BUILD_TOOLS=OFF -DHDF5_BUILD_UTILS=OFF -DHDF5_BUILD_EXAMPLES=OFF \
      -DHDF5_BUILD_FORTRAN=OFF -DHDF5_BUILD_CPP_LIB=OFF -DHDF5_BUILD_JAVA=OFF \
      -DHDF5_ENABLE_Z_LIB_SUPPORT=ON -DHDF5_ENABLE_SZIP_SUPPORT=OFF -DHDF5_ENABLE_ROS3_VFD=ON &&
      cmake --build "$build" -j"$(nproc)" &&
      cmake --install "$build"
  } >"$LOG" 2>&1 || die "the build failed; see $LOG"
  # cmake turns ROS3 off with only a warning when curl or OpenSSL is missing
  grep -q '^#define H5_HAVE_ROS3_VFD 1' "$PREFIX.tmp/include/H5pubconf.h" ||
    die "HDF5 was built without ROS3 (curl or OpenSSL not found); see $LOG"
  rm -rf "$PREFIX" && mv "$PREFIX.tmp" "$PREFIX"
  touch "$PREFIX/.complete"
  rm -rf "$build"
}

ensure_venv() {
  local key wheeldir stamp="$VENV/.h5pyvol-ros3"
  key="h5py-$H5PY_VERSION-$(printf '%s' "$PREFIX" | sha1sum | cut -c1-12)"
  wheeldir="$CACHE/wheels/$key"
  [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && return 0
  [ -x "$VENV/bin/python" ] || { step "creating virtualenv $VENV"; "$PYTHON" -m venv "$VENV"; }
  "$VENV/bin/pip" install -q numpy "Cython>=3" pkgconfig setuptools >&2
  if ! ls "$wheeldir"/h5py-*.whl >/dev/null 2>&1; then
    step "building h5py $H5PY_VERSION against $PREFIX (about 3 minutes)"
    mkdir -p "$wheeldir.tmp"
    HDF5_DIR="$PREFIX" "$VENV/bin/pip" wheel -q --no-deps --no-binary=h5py --no-cache-dir \
      -w "$wheeldir.tmp" "h5py==$H5PY_VERSION" >&2 || die "building h5py against $PREFIX failed"
    rm -rf "$wheeldir" && mv "$wheeldir.tmp" "$wheeldir"
  fi
  "$VENV/bin/pip" install -q --force-reinstall --no-deps "$wheeldir"/h5py-*.whl >&2
  "$VENV/bin/python" -c "import h5py, sys; sys.exit(0 if h5py.get_config().ros3 else 1)" ||
    die "h5py in $VENV was built without ROS3"
  echo "$key" >"$stamp"
}

[ -f "$PREFIX/.complete" ] || build_hdf5
ensure_venv
echo "$VENV/bin/python"
