#!/usr/bin/env bash
# h5pyvol next to a stock h5py wheel, as a new user installs it: for each
# h5py version named (default: 3.15.1 with HDF5 1.14.6, and 3.16.0 with HDF5
# 2.0.0), a virtualenv with only that h5py wheel, numpy and the test tools,
# then a plain `pip install .` of this checkout (wheel mode: no HDF5_DIR, no
# bootstrap), then the bridge suites run in it: the memory conformance suite,
# the h5py programs, datatypes, errors, references, and tests/wheels (the
# wheel mode itself; with 1.14 wheels also the C programs). Then the
# distribution: `python -m build` makes an sdist and a wheel from it, the
# wheel goes into a fresh virtualenv with its dependencies from the index,
# and tests/wheels/test_dist.py checks both there (--no-dist skips this).
#
# The virtualenvs are cached under ~/.cache/h5pyvol/wheel-envs, keyed by the
# Python, h5py and tool versions; h5pyvol itself is reinstalled every run.
#
# Environment: H5PYVOL_CACHE (cache dir), PYTHON (interpreter for the venvs),
# H5PYVOL_FOREIGN_PLUGIN (a plugin built against another libhdf5, e.g. the
# bootstrap .venv's: tests/wheels checks that it is refused).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${H5PYVOL_CACHE:-$HOME/.cache/h5pyvol}
PYTHON=${PYTHON:-python3}
TOOLS=(numpy pytest hypothesis)
BRIDGE_SUITES=(tests/test_conformance_memory.py tests/test_h5py_programs.py tests/test_datatypes.py
  tests/test_errors.py tests/test_references.py tests/test_zones.py tests/wheels)

PV_SCRIPT=wheel-envs
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh" # step, die

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  echo
  echo "Usage: scripts/wheel-envs.sh [--no-tests] [--no-dist] [H5PY_VERSION...] [-- PYTEST_ARGS...]"
}

env_dir() { # $1 = h5py version
  local pyver key
  pyver=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  key=$(printf '%s ' "$("$PYTHON" -c 'import sys; print(sys.prefix)')" "${TOOLS[@]}" | sha1sum | cut -c1-8)
  echo "$CACHE/wheel-envs/py$pyver-h5py-$1-$key"
}

ensure_env() { # $1 = h5py version; prints the venv path
  local venv
  venv=$(env_dir "$1")
  if [ ! -f "$venv/.complete" ]; then
    step "creating $venv (h5py $1 wheel, ${TOOLS[*]})"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >/dev/null
    "$venv/bin/pip" install -q --only-binary=h5py "h5py==$1" "${TOOLS[@]}" || die "installing h5py $1 failed"
    touch "$venv/.complete"
  fi
  echo "$venv"
}

install_checkout() { # $1 = venv: what a user runs, with nothing of ours in the environment
  local venv=$1 start=$SECONDS
  step "pip install . into $venv (wheel mode)"
  "$venv/bin/pip" uninstall -q -y h5pyvol-connector 2>/dev/null || true
  env -u HDF5_DIR -u HDF5_PLUGIN_PATH -u HDF5_VOL_CONNECTOR "$venv/bin/pip" install -q "$REPO" \
    || die "pip install . failed in $venv"
  step "installed in $((SECONDS - start)) s"
  (cd / && env -u HDF5_PLUGIN_PATH -u HDF5_VOL_CONNECTOR "$venv/bin/h5pyvol" info) || die "h5pyvol info failed in $venv"
}

check_dist() { # python -m build, then the wheel in a fresh venv as on another machine
  local out=$CACHE/dist-check tools=$CACHE/tools-venv start=$SECONDS
  echo "==> distribution: python -m build (sdist, then a wheel from it)"
  [ -x "$tools/bin/pip" ] || "$PYTHON" -m venv "$tools"
  "$tools/bin/python" -c 'import build' 2>/dev/null || "$tools/bin/pip" install -q build
  rm -rf "$out" && mkdir -p "$out"
  (cd "$REPO" && env -u HDF5_DIR "$tools/bin/python" -m build -q --outdir "$out/dist" . >"$out/build.log" 2>&1) \
    || { tail -n 30 "$out/build.log" >&2; die "python -m build failed (log: $out/build.log)"; }
  ls -l "$out/dist" >&2
  step "installing the wheel into a fresh virtualenv ($out/venv), dependencies from the index"
  "$PYTHON" -m venv "$out/venv"
  "$out/venv/bin/pip" install -q "$out"/dist/*.whl pytest || die "installing the built wheel failed"
  (cd "$REPO" && env -u HDF5_PLUGIN_PATH -u HDF5_VOL_CONNECTOR H5PYVOL_DIST_DIR="$out/dist" \
    "$out/venv/bin/python" -P -m pytest -q -p no:cacheprovider tests/wheels/test_dist.py) || return 1
  step "distribution checked in $((SECONDS - start)) s"
}

main() {
  local run_tests=1 dist=1 versions=() pytest_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --no-tests) run_tests=0 ;;
      --no-dist) dist=0 ;;
      --) shift; pytest_args=("$@"); break ;;
      -*) usage >&2; exit 2 ;;
      *) versions+=("$1") ;;
    esac
    shift
  done
  [ ${#versions[@]} -gt 0 ] || versions=(3.15.1 3.16.0)
  local status=0 v venv suites
  for v in "${versions[@]}"; do
    echo "==> wheel environment: h5py $v"
    venv=$(ensure_env "$v")
    install_checkout "$venv"
    [ "$run_tests" = 1 ] || continue
    suites=("${BRIDGE_SUITES[@]}")
    # C programs compile against the wheel's libhdf5 where h5pyvol has its headers (1.14).
    if "$venv/bin/python" -c 'import h5py, sys; sys.exit(h5py.version.hdf5_version_tuple >= (2,))'; then
      suites+=(tests/test_c_programs.py)
    fi
    (cd "$REPO" && env -u HDF5_DIR -u HDF5_PLUGIN_PATH -u HDF5_VOL_CONNECTOR \
      "$venv/bin/python" -P -m pytest -q -p no:cacheprovider "${suites[@]}" "${pytest_args[@]}") || status=1
  done
  if [ "$dist" = 1 ]; then
    check_dist || status=1
  fi
  exit "$status"
}

main "$@"
