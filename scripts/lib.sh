# Helpers shared by bootstrap.sh and build-hdf5-ros3.sh; sourced, not run.
# The sourcing script sets PV_SCRIPT, its name in error messages.

step() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "${PV_SCRIPT:-h5pyvol}" "$*" >&2; exit 1; }

apt_install() { # installs Debian packages that are missing
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
