#!/usr/bin/env bash
# shellcheck disable=SC2129  # one redirect per step reads better than grouping
# A throw-away single-node Ceph (mon + one memstore OSD + RGW) on 127.0.0.1,
# for the RADOS and S3 connector tests. Everything lives under one directory.
set -Eeuo pipefail  # -E: the ERR trap of "start" also fires inside functions

usage() {
    cat <<'EOF'
Usage: scripts/services/ceph.sh start|stop|status|env [DIR]

A single-node Ceph cluster on loopback, for tests: one mon, one memstore OSD
(data in RAM, pools of size 1), pool `h5pyvol`, and an RGW S3 endpoint.
cephx is on. All files (config, keys, data, logs, pids, sockets) live in DIR,
default ${H5PYVOL_CEPH_DIR:-/tmp/h5pyvol-ceph}.

  start   start the cluster; a no-op if it is already running and healthy.
          Waits until the pool takes a write and RGW lists buckets for the
          generated S3 user, or fails with the log tails after
          H5PYVOL_CEPH_TIMEOUT seconds (default 60). A stale DIR left by a
          crash is cleaned first.
  stop    stop RGW, then the OSD, then the mon (each SIGTERM, SIGKILL after
          5 s), and remove DIR.
  status  exit 0 only if all daemons run, the pool takes a write and RGW
          answers a signed request.
  env     print the export lines of DIR/rados.env and DIR/s3.env.

Files written by start:
  DIR/ceph.conf, DIR/keyring         config and keys (client.admin and daemons)
  DIR/nocaps.keyring                 key of a user with no OSD caps
  DIR/rados.env   CEPH_CONF, H5PYVOL_RADOS_{CONF,KEYRING,USER,POOL},
                  H5PYVOL_RADOS_NOCAPS_{USER,KEYRING}
  DIR/s3.env      AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
                  H5PYVOL_S3_ENDPOINT   (keys are random, made at each start)
  DIR/log/        daemon logs

Environment (ports default off Ceph's usual ones, so a system Ceph or a
second test cluster with other ports can run beside this one):
  H5PYVOL_CEPH_DIR          data dir when DIR is not given
  H5PYVOL_CEPH_MON_PORT     mon msgr2 port      (default 13300)
  H5PYVOL_CEPH_MON_V1_PORT  mon legacy v1 port  (default 16789)
  H5PYVOL_RGW_PORT          RGW HTTP port       (default 17480)
  H5PYVOL_CEPH_OSD_BYTES    memstore capacity   (default 4294967296)
  H5PYVOL_CEPH_TIMEOUT      start timeout, s    (default 60)
The OSD takes free ports from Ceph's usual 6800-7300 range, on 127.0.0.1.

Needs the packages from scripts/services/install.sh.
EOF
}

CMD="${1:-}"
case "$CMD" in
    start|stop|status|env) ;;
    -h|--help|help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac

DIR="${2:-${H5PYVOL_CEPH_DIR:-/tmp/h5pyvol-ceph}}"
# Absolute paths only: the daemons chdir to / after forking.
DIR="$(realpath -m -- "$DIR")"
MON_PORT="${H5PYVOL_CEPH_MON_PORT:-13300}"
MON_V1_PORT="${H5PYVOL_CEPH_MON_V1_PORT:-16789}"
RGW_PORT="${H5PYVOL_RGW_PORT:-17480}"
OSD_BYTES="${H5PYVOL_CEPH_OSD_BYTES:-4294967296}"
TIMEOUT="${H5PYVOL_CEPH_TIMEOUT:-60}"
POOL=h5pyvol
RGW_NAME=client.rgw.h5pyvol
NOCAPS_USER=client.h5pyvol-nocaps
S3_UID=h5pyvol

CONF="$DIR/ceph.conf"
KEYRING="$DIR/keyring"
MARKER="$DIR/.h5pyvol-ceph"   # proves DIR is ours before we rm -rf it
RUN="$DIR/run"
LOGS="$DIR/log"

LOG_TAG=ceph.sh
# The ceph CLI runs on Debian's /usr/bin/python3: a caller's venv settings
# must not leak into it.
unset PYTHONPATH PYTHONHOME
# shellcheck source=scripts/services/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------------------
# Process handling: only pids recorded under DIR and checked against their
# command line (which holds our ceph.conf path), so a reused pid or another
# cluster is never touched.

# pid from a daemon's pid file, only if that process is alive and ours
daemon_pid() {
    local f="$RUN/$1.pid" pid
    [[ -s "$f" ]] || return 1
    pid="$(<"$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] && has_arg "$pid" "$CONF" || return 1
    echo "$pid"
}

stop_daemons() {
    local pids=() n p
    # One at a time, clients before servers: RGW needs the OSD to shut down
    # cleanly, and an OSD whose mon is gone waits ~5 s before it exits.
    for n in "$RGW_NAME" osd.0 mon.a; do
        p="$(daemon_pid "$n" || true)"
        if [[ -n "$p" ]]; then terminate "$p"; fi
    done
    # Anything still holding our conf (a daemon that died before writing its
    # pid file, a hung client): by exact path, never by name.
    mapfile -t pids < <(pids_with_arg "$CONF")
    terminate "${pids[@]}"
}

# ---------------------------------------------------------------------------
# health

pool_takes_write() {
    # rados blocks until the PG is active; timeout bounds it. The probe is
    # removed again so that tests listing the pool find only their objects.
    printf 'probe\n' >"$RUN/probe"
    timeout "$1" rados -c "$CONF" -p "$POOL" put h5pyvol-probe "$RUN/probe" >/dev/null 2>&1 &&
        timeout 10 rados -c "$CONF" -p "$POOL" rm h5pyvol-probe >/dev/null 2>&1
}

healthy() {
    [[ -f "$MARKER" && -f "$DIR/s3.env" && -f "$DIR/rados.env" ]] || return 1
    local n
    for n in mon.a osd.0 "$RGW_NAME"; do
        daemon_pid "$n" >/dev/null || return 1
    done
    pool_takes_write 10 || return 1
    local e="$DIR/s3.env"
    s3_ok "$(env_value "$e" H5PYVOL_S3_ENDPOINT)" \
        "$(env_value "$e" AWS_ACCESS_KEY_ID)" "$(env_value "$e" AWS_SECRET_ACCESS_KEY)"
}

# ---------------------------------------------------------------------------
# start

fail_start() {
    trap - ERR
    log "error: $*"
    local f
    for f in "$LOGS"/mon.a.log "$LOGS"/osd.0.log "$LOGS/$RGW_NAME.log" "$LOGS"/setup.log; do
        [[ -s "$f" ]] || continue
        echo "---- last lines of $f ----" >&2
        tail -n 15 "$f" >&2
    done
    stop_daemons
    log "daemons stopped; files left in $DIR for inspection (next start wipes them)"
    exit 1
}

DEADLINE=0
T=0
budget() {  # budget WHAT: set T to the seconds left before the deadline
    T=$((DEADLINE - SECONDS))
    ((T > 0)) || fail_start "timed out after ${TIMEOUT}s while $1"
}

write_conf() {
    cat >"$CONF" <<EOF
# generated by scripts/services/ceph.sh; removed by 'ceph.sh stop'
[global]
fsid = $1
mon_host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]
# loopback only, IPv4 only
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = $KEYRING
run_dir = $RUN
crash_dir = $DIR/crash
# one OSD: pools of size 1, few PGs, replicas chosen per OSD not per host
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
# RGW creates ~7 pools of its own
mon_max_pg_per_osd = 1000
mon_allow_pool_delete = true
# each map change waits this long; the default 1.0 s adds seconds to start
paxos_propose_interval = 0.1
# a mon on a fullish disk would warn or exit
mon_data_avail_warn = 1
mon_data_avail_crit = 0

[mon]
mon_data = $DIR/mon/\$name
mon_cluster_log_file = $LOGS/cluster.log
log_file = $LOGS/\$name.log
pid_file = $RUN/\$name.pid
admin_socket = $RUN/\$name.asok

[osd]
osd_data = $DIR/osd/\$name
osd_objectstore = memstore
memstore_device_bytes = $OSD_BYTES
# every object class Ceph ships may load and run, the lua one included
# (h5pyvol.analysis runs generated Lua inside the OSD)
osd_class_load_list = *
osd_class_default_list = *
log_file = $LOGS/\$name.log
pid_file = $RUN/\$name.pid
admin_socket = $RUN/\$name.asok

[$RGW_NAME]
# tcp_nodelay: without it RGW 16.2 answers small requests ~44 ms late
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw_data = $DIR/rgw
rgw_thread_pool_size = 128
# RGW frees the tails of deleted objects (all but their first 4 MiB) in its
# garbage collector, 2 hours later by default; on the 4 GiB in-memory OSD
# the tails of a few 1 GiB bench runs or big tests would fill it first.
rgw_gc_obj_min_wait = 5
rgw_gc_processor_period = 10
rgw_gc_processor_max_time = 10
log_file = $LOGS/\$name.log
pid_file = $RUN/\$name.pid
admin_socket = $RUN/\$name.asok
EOF
}

write_keys() {
    # All daemon and admin keys in one keyring: 'ceph-mon --mkfs' imports
    # them with their caps, so no 'ceph auth add' round trips are needed.
    local at=(ceph-authtool)
    "${at[@]}" --create-keyring "$KEYRING" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    "${at[@]}" "$KEYRING" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
    "${at[@]}" "$KEYRING" --gen-key -n osd.0 \
        --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
    "${at[@]}" "$KEYRING" --gen-key -n "$RGW_NAME" --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
    # For fault tests: may read cluster maps, may not touch any object.
    "${at[@]}" --create-keyring "$DIR/nocaps.keyring" --gen-key -n "$NOCAPS_USER" \
        --cap mon 'allow r' >/dev/null
    "${at[@]}" "$KEYRING" --import-keyring "$DIR/nocaps.keyring" >/dev/null
    chmod 600 "$KEYRING" "$DIR/nocaps.keyring"
}

write_env_files() {
    local ak="$1" sk="$2"
    umask 077
    cat >"$DIR/rados.env.tmp" <<EOF
export CEPH_CONF=$CONF
export H5PYVOL_RADOS_CONF=$CONF
export H5PYVOL_RADOS_KEYRING=$KEYRING
export H5PYVOL_RADOS_USER=client.admin
export H5PYVOL_RADOS_POOL=$POOL
export H5PYVOL_RADOS_NOCAPS_USER=$NOCAPS_USER
export H5PYVOL_RADOS_NOCAPS_KEYRING=$DIR/nocaps.keyring
EOF
    cat >"$DIR/s3.env.tmp" <<EOF
export AWS_ACCESS_KEY_ID=$ak
export AWS_SECRET_ACCESS_KEY=$sk
export AWS_DEFAULT_REGION=us-east-1
export H5PYVOL_S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
EOF
    mv "$DIR/rados.env.tmp" "$DIR/rados.env"
    mv "$DIR/s3.env.tmp" "$DIR/s3.env"
}

do_start() {
    local b
    for b in ceph-mon ceph-osd ceph-authtool monmaptool ceph rados radosgw radosgw-admin curl ss; do
        command -v "$b" >/dev/null 2>&1 || { log "error: '$b' not found; run scripts/services/install.sh first"; exit 1; }
    done

    if healthy; then
        log "already running and healthy in $DIR"
        return 0
    fi
    if [[ -e "$DIR" ]]; then
        if [[ -f "$MARKER" ]]; then
            # Left over from a crash or a failed start: memstore data is gone
            # with the OSD anyway, so start clean.
            log "cleaning stale cluster in $DIR"
            stop_daemons
            rm -rf -- "$DIR"
        elif [[ -n "$(ls -A -- "$DIR")" ]]; then
            log "error: $DIR exists, is not empty and was not made by ceph.sh; refusing to use it"
            exit 1
        fi
    fi
    local p
    for p in "$MON_PORT" "$MON_V1_PORT" "$RGW_PORT"; do
        port_free "$p" || { log "error: port 127.0.0.1:$p is in use; set H5PYVOL_CEPH_MON_PORT / H5PYVOL_CEPH_MON_V1_PORT / H5PYVOL_RGW_PORT"; exit 1; }
    done

    DEADLINE=$((SECONDS + TIMEOUT))
    local t0="$EPOCHREALTIME"
    mkdir -p "$DIR" "$RUN" "$LOGS" "$DIR/mon" "$DIR/osd/osd.0" "$DIR/rgw" "$DIR/crash"
    : >"$MARKER"
    local setup_log="$LOGS/setup.log"
    # Any unexpected failure below stops what was started and shows logs.
    trap 'fail_start "command failed at ceph.sh line $LINENO (see $setup_log)"' ERR

    local fsid osd_uuid
    fsid="$(cat /proc/sys/kernel/random/uuid)"
    osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
    write_conf "$fsid"
    write_keys

    monmaptool --create --fsid "$fsid" \
        --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]" \
        "$DIR/monmap" >>"$setup_log" 2>&1
    ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" --keyring "$KEYRING" >>"$setup_log" 2>&1
    ceph-mon -c "$CONF" -i a >>"$setup_log" 2>&1

    # 'osd new' also waits for the mon to form its one-member quorum.
    local osd_id
    budget 'registering the OSD'
    osd_id="$(timeout "$T" ceph -c "$CONF" osd new "$osd_uuid" 2>>"$setup_log")" \
        || fail_start "'ceph osd new' failed: mon not reachable on 127.0.0.1:$MON_PORT?"
    [[ "$osd_id" == 0 ]] || fail_start "expected OSD id 0, got '$osd_id'"

    # Each ceph CLI call costs ~0.4 s (Python start + a map change), so the
    # pool is created in the background while the OSD and RGW come up.
    # (trap - ERR: a failing background job must not run fail_start itself.)
    budget "creating pool $POOL"
    (trap - ERR; exec timeout "$T" ceph -c "$CONF" osd pool create "$POOL" 8 8) >>"$setup_log" 2>&1 &
    local pool_job=$!
    ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$setup_log" 2>&1
    ceph-osd -c "$CONF" -i 0 >>"$setup_log" 2>&1
    # RGW waits for its own pools by itself; start it now to overlap.
    radosgw -c "$CONF" -n "$RGW_NAME" >>"$setup_log" 2>&1
    wait "$pool_job" || fail_start "'ceph osd pool create $POOL' failed"
    # Only silences a health warning; nothing waits for it until the end.
    budget "tagging pool $POOL"
    (trap - ERR; exec timeout "$T" ceph -c "$CONF" osd pool application enable "$POOL" rados) >>"$setup_log" 2>&1 &
    local tag_job=$!

    budget "waiting for pool $POOL to take a write"
    until pool_takes_write "$T"; do
        daemon_pid osd.0 >/dev/null || fail_start "the OSD exited"
        sleep 0.1
        budget "waiting for pool $POOL to take a write"
    done

    local ak sk
    ak="$(randstr 20 'A-Z0-9')"
    sk="$(randstr 40 'A-Za-z0-9')"
    budget 'creating the S3 user'
    timeout "$T" radosgw-admin -c "$CONF" user create \
        --uid="$S3_UID" --display-name="h5pyvol tests" --access-key="$ak" --secret="$sk" \
        >/dev/null 2>>"$setup_log"

    # RGW may still be loading its zone; the user is already stored in RADOS.
    until s3_ok "http://127.0.0.1:$RGW_PORT" "$ak" "$sk"; do
        daemon_pid "$RGW_NAME" >/dev/null || fail_start "radosgw exited"
        budget "waiting for RGW on 127.0.0.1:$RGW_PORT to list buckets (last HTTP status: $S3_STATUS)"
        sleep 0.1
    done

    wait "$tag_job" || fail_start "'ceph osd pool application enable $POOL rados' failed"
    write_env_files "$ak" "$sk"
    trap - ERR
    log "up in $(elapsed "$t0")s: S3 http://127.0.0.1:$RGW_PORT, mon 127.0.0.1:$MON_PORT, dir $DIR"
}

case "$CMD" in
    start)
        do_start
        ;;
    stop)
        stop_service_dir stop_daemons ceph.sh
        ;;
    status)
        report_health
        ;;
    env)
        [[ -f "$DIR/rados.env" && -f "$DIR/s3.env" ]] || { log "error: no env files in $DIR; run 'ceph.sh start' first"; exit 1; }
        cat "$DIR/rados.env" "$DIR/s3.env"
        ;;
esac
