# shellcheck shell=bash
# Helpers shared by ceph.sh and seaweedfs.sh; sourced, not run.
# The caller sets LOG_TAG (prefix of messages).

log() { echo "${LOG_TAG:-services}: $*" >&2; }

# true while PID runs. A zombie counts as gone: daemons are reparented to
# init, which here can take ~2 s to reap them, and kill -0 still succeeds.
running() {
    local st
    st="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# true if process PID has ARG as one whole argument of its command line
# (cmdline is NUL-separated, hence -z)
has_arg() {
    grep -qxzF -- "$2" "/proc/$1/cmdline" 2>/dev/null
}

# pids of all processes having ARG as one whole argument; -f keeps ARG out
# of grep's own command line, so grep never finds itself
pids_with_arg() {
    grep -lxzF -f <(printf '%s\n' "$1") /proc/[0-9]*/cmdline 2>/dev/null \
        | sed -n 's#^/proc/\([0-9]*\)/cmdline$#\1#p' || true
}

# SIGTERM the given pids, wait up to ${TERM_CAP:-5} s, then SIGKILL the rest
terminate() {
    local pids=("$@") p i alive=()
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < ${TERM_CAP:-5} * 20; i++)); do
        alive=()
        for p in "${pids[@]}"; do running "$p" && alive+=("$p"); done
        ((${#alive[@]})) || return 0
        sleep 0.05
    done
    log "still running ${TERM_CAP:-5} s after SIGTERM, sending SIGKILL: ${alive[*]}"
    kill -KILL "${alive[@]}" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        alive=()
        for p in "${pids[@]}"; do running "$p" && alive+=("$p"); done
        ((${#alive[@]})) || return 0
        sleep 0.05
    done
}

# randstr N CHARSET: N random characters from CHARSET (tr syntax)
randstr() {
    local s=""
    while ((${#s} < $1)); do
        s+="$(head -c 512 /dev/urandom | tr -dc "$2")"
    done
    echo "${s:0:$1}"
}

# true if nothing listens on 127.0.0.1:PORT (or any address with that port)
port_free() {
    [[ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
}

# HTTP status code of a GET, or 000 when nothing answered; extra args go to curl
http_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" 2>/dev/null || true
}

# seconds since an $EPOCHREALTIME stamp, to 0.1 s
elapsed() {
    local now="${EPOCHREALTIME/./}" then="${1/./}"
    local ms=$(((10#$now - 10#$then) / 1000))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# value of VAR in an env file made of 'export VAR=value' lines
env_value() {
    sed -n "s/^export $2=//p" "$1" 2>/dev/null
}

# An authenticated S3 ListBuckets; true on HTTP 200. Sets S3_STATUS to the
# status seen (000: nothing answered), for error messages.
# UNSIGNED-PAYLOAD: curl 7.88 does not send x-amz-content-sha256, RGW needs it.
S3_STATUS=000
s3_ok() {  # s3_ok ENDPOINT ACCESS_KEY SECRET_KEY
    S3_STATUS="$(http_code --aws-sigv4 aws:amz:us-east-1:s3 --user "$2:$3" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$1/")"
    [[ "$S3_STATUS" == 200 ]]
}

# The 'stop' command of a service script: STOP_FN ends the daemons, then DIR
# goes, but only if MARKER proves that NAME made it.
stop_service_dir() {
    local stop_fn="$1" name="$2"
    if [[ -e "$DIR" && ! -f "$MARKER" ]]; then
        log "error: $DIR was not made by $name; not touching it"
        exit 1
    fi
    if [[ -d "$DIR" ]]; then
        "$stop_fn"
        rm -rf -- "$DIR"
        log "stopped; removed $DIR"
    else
        log "not running (no $DIR)"
    fi
}

# The 'status' command: exit 0 when the script's healthy() says so.
report_health() {
    if healthy; then
        log "healthy: $DIR"
    else
        log "not healthy: $DIR"
        exit 1
    fi
}
