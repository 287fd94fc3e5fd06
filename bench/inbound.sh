#!/usr/bin/env bash
# bench/inbound.sh — Postern vs Postfix inbound benchmark.
#
# Runs the same workloads against a throwaway Postfix instance (Debian
# packages, own config/queue/data dirs, own loopback port; the system
# Postfix is never touched), a throwaway Postern dev instance and, if
# POSTERN_BIN_B names a second Postern build, a third side "postern-b" from
# that build. In every workload smtp-source sends MESSAGES messages of SIZE
# bytes to one local Maildir user over N parallel sessions, either one
# message per connection ("N:conn", smtp-source without -d) or every session
# keeping its connection for all its messages ("N:keep", smtp-source -d).
# Measured per run:
#   (a) messages/s accepted  = MESSAGES / wall time of smtp-source
#   (b) seconds from the start of smtp-source until Maildir/new holds
#       MESSAGES files
#   CPU per message = growth during the run of utime+stime+cutime+cstime
#       summed over the server's master and all its descendants (exited
#       workers are in their reaper's cutime/cstime), / MESSAGES
#   peak RSS/PSS = max over 100 ms samples of the sum over the master and
#       all its descendants
# Each workload runs every side RUNS times, rotating who goes first; medians
# are reported per workload, with ratios (> 1 means the first-named side is
# better), and written as JSON to RESULTS_FILE. See bench/README.md.
# After the timed runs of a workload every side gets FSYNC_RUNS more,
# untimed, runs under strace -c attached to its whole process tree: they
# count the fsync-like system calls per message (tracing slows the server,
# so none of the timed figures come from them).
#
# Runs as root. Only loopback traffic. Everything it starts is stopped by
# the EXIT trap, also on failure or Ctrl-C.

set -euo pipefail

MESSAGES=${MESSAGES:-5000}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-"10:conn 10:keep 50:conn 50:keep"}  # SESSIONS:conn|keep ...
POSTERN_BIN_B=${POSTERN_BIN_B:-}            # optional second Postern build (directory of binaries)
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-300}   # seconds, per run
SKIP_BUILD=${SKIP_BUILD:-0}                 # 1: use existing target/release binaries
KEEP_TMP=${KEEP_TMP:-0}                     # 1: keep the scratch directory for inspection
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}  # where instances live (its filesystem matters: fsync)
POSTFIX_PORT=${POSTFIX_PORT:-26025}         # first port tried for the Postfix instance
FSYNC_RUNS=${FSYNC_RUNS:-1}                 # untimed strace runs per side and workload (0: none)
RSS_TARGET_MB=64
# Issue 6's targets for Postern against Postfix, on every workload.
TARGET_ACCEPT=2.0       # accept rate >= 2.0x Postfix's
TARGET_DELIV=1.8        # end to end (time until all are in Maildir/new) >= 1.8x as fast
TARGET_CPU=0.5          # CPU per message <= 0.5x Postfix's
TARGET_PSS_MB=32        # peak PSS <= 32 MB, stated for 50 sessions: checked up to 50
TARGET_PSS_SESSIONS=50
# The calls that force data to stable storage, counted per message.
FSYNC_CALLS=(fsync fdatasync sync_file_range syncfs sync)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
POSTERN_BIN=$(realpath -m "${POSTERN_BIN:-$REPO/target/release}")
[[ -z $POSTERN_BIN_B ]] || POSTERN_BIN_B=$(realpath -m "$POSTERN_BIN_B")
RESULTS_DIR=$BENCH_DIR/results
RESULTS_FILE=$(realpath -m "${RESULTS_FILE:-$RESULTS_DIR/latest.json}")
if [[ -z ${SIDES:-} ]]; then
    SIDES="postfix postern"
    [[ -z $POSTERN_BIN_B ]] || SIDES+=" postern-b"
fi

# log, die, the cleanup lists and the /proc, timing and memory helpers
# are bench/lib.sh's; this script adds its own kill_postern_leftovers and
# rss_sampler below, which differ.
BENCH_NAME=inbound
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

# SESSIONS used to pick the one workload; silently ignoring it would run
# something other than what the caller asked for.
[[ -z ${SESSIONS:-} ]] || die "SESSIONS is replaced by WORKLOADS (e.g. WORKLOADS=\"$SESSIONS:conn\")"
for v in MESSAGES SIZE RUNS DELIVERY_TIMEOUT POSTFIX_PORT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[[ $FSYNC_RUNS =~ ^[0-9]+$ ]] || die "FSYNC_RUNS must be 0 or a positive integer (got '$FSYNC_RUNS')"
WL_LIST=()
for w in $WORKLOADS; do
    [[ $w =~ ^[1-9][0-9]*:(conn|keep)$ ]] || die "WORKLOADS entries are SESSIONS:conn or SESSIONS:keep (got '$w')"
    [[ " ${WL_LIST[*]} " == *" $w "* ]] || WL_LIST+=("$w")
done
((${#WL_LIST[@]})) || die "WORKLOADS is empty"
SIDE_LIST=()
for s in $SIDES; do
    [[ $s == postfix || $s == postern || $s == postern-b ]] \
        || die "SIDES may only contain 'postfix', 'postern' and 'postern-b' (got '$s')"
    [[ " ${SIDE_LIST[*]} " == *" $s "* ]] || SIDE_LIST+=("$s")
done
((${#SIDE_LIST[@]})) || die "SIDES is empty"
[[ " ${SIDE_LIST[*]} " != *" postern-b "* || -n $POSTERN_BIN_B ]] || die "SIDES has postern-b but POSTERN_BIN_B is not set"
[[ $(id -u) -eq 0 ]] || die "run as root (Postfix's master and virtual(8) need it)"
has_side() { [[ " ${SIDE_LIST[*]} " == *" $1 "* ]]; }

side_bin() { # postern|postern-b -> its binary directory
    case $1 in postern) echo "$POSTERN_BIN" ;; postern-b) echo "$POSTERN_BIN_B" ;; esac
}
side_label() {
    case $1 in postfix) echo Postfix ;; postern) echo Postern ;; postern-b) echo Postern-B ;; esac
}

# ---------------------------------------------------------------- cleanup
# Everything we start is recorded here and torn down by the EXIT trap.
# SCRATCH, PF_DIRS, PN_DIRS, PN_MASTERS and OUR_PIDS come from lib.sh.
SRC_PIDFILES=()     # files holding smtp-source pids (grandchildren)
# A pid is dropped from these lists as soon as it has been reaped (or the
# instance stopped), so the trap can never signal a reused pid; pids that are
# not our direct children are also checked by name (/proc/PID/comm) first.
# kill_postern_leftovers PID...: SIGKILLs those of PIDs (a Postern master's
# tree captured before stopping it) that are still running a binary from
# POSTERN_BIN or POSTERN_BIN_B; prints how many it killed.
kill_postern_leftovers() {
    local p exe n=0
    for p in "$@"; do
        exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
        [[ $exe == "$POSTERN_BIN"/* || (-n $POSTERN_BIN_B && $exe == "$POSTERN_BIN_B"/*) ]] || continue
        kill -9 "$p" 2>/dev/null && n=$((n + 1))
    done
    echo "$n"
}

cleanup() {
    local rc=$? d p f
    trap - EXIT INT TERM
    for f in "${SRC_PIDFILES[@]}"; do
        if [[ -r $f ]] && read -r p < "$f" && is_proc "$p" smtp-source; then kill "$p" 2>/dev/null || true; fi
    done
    for p in "${OUR_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    local -a tree=()
    for p in "${PN_MASTERS[@]}"; do
        mapfile -t -O "${#tree[@]}" tree < <(tree_pids "$p")
    done
    for d in "${!PN_DIRS[@]}"; do
        timeout 25 "${PN_DIRS[$d]}/postern" -c "$d" stop >/dev/null 2>&1 || true
    done
    kill_postern_leftovers "${tree[@]}" > /dev/null
    for d in "${PF_DIRS[@]}"; do
        p=$(pf_master_pid "$d")
        if [[ -n $p ]]; then
            postfix -c "$d" stop >/dev/null 2>&1 || true
            if is_proc "$p" master; then kill -9 "$p" 2>/dev/null || true; fi
        fi
    done
    # Anything still alive from the trees we started (e.g. a Postern
    # master that ignored stop): SIGKILL by pid, never by name.
    for p in "${OUR_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ -n $SCRATCH && -d $SCRATCH ]]; then
        if [[ $KEEP_TMP == 1 || $rc -ne 0 ]]; then
            log "scratch directory kept: $SCRATCH"
        else
            rm -rf -- "$SCRATCH"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ prerequisites
need_pkgs=()
command -v smtp-source >/dev/null && [[ -x /usr/sbin/postfix ]] || need_pkgs+=(postfix)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v ss >/dev/null || need_pkgs+=(iproute2)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]} from Debian packages"
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # Keep the package's own service from starting; removed right after.
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >&2; }
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
fi
# strace only feeds the fsync column; without it the benchmark still runs
# and says why that column is n/a.
FSYNC_SKIP=""       # why fsyncs are not counted ("" = they are)
if ((FSYNC_RUNS == 0)); then
    FSYNC_SKIP="FSYNC_RUNS=0"
elif ! command -v strace >/dev/null; then
    log "installing strace from Debian packages (counts fsyncs)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y strace >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y strace >&2; } \
        || true
    command -v strace >/dev/null || FSYNC_SKIP="strace is not installed and apt-get install strace failed"
fi
[[ -z $FSYNC_SKIP ]] || log "skipped: fsync counting ($FSYNC_SKIP); the fsync column is n/a"
PF_UID=$(id -u postfix) || die "no postfix user after installing postfix"
PF_GID=$(id -g postfix)
CLK_TCK=$(getconf CLK_TCK)
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"

check_postern_bin() { # SIDE: its directory must hold real binaries (see below)
    local dir real
    dir=$(side_bin "$1")
    [[ -x $dir/postern && -x $dir/master ]] || die "$1: no postern and master binaries in $dir"
    # init --dev sets daemon_directory to the directory of postern's resolved
    # path, so a directory of symlinks would really run the targets' build.
    real=$(dirname "$(realpath "$dir/postern")")
    [[ $real == "$dir" ]] || die "$1: $dir/postern resolves to $real; copy the binaries instead of linking them"
}
if has_side postern; then
    if [[ $SKIP_BUILD != 1 ]]; then
        log "cargo build --release --workspace --bins"
        (cd "$REPO" && cargo build --release --workspace --bins >&2) || die "cargo build --release --workspace --bins failed"
    fi
    check_postern_bin postern
fi
has_side postern-b && check_postern_bin postern-b

SCRATCH=$(mktemp -d "$BENCH_TMPDIR/postern-bench.XXXXXX")
chmod 755 "$SCRATCH"
log "scratch directory $SCRATCH"

# ------------------------------------------------------------------ helpers

# rss_sampler ROOT_PID OUT_FILE: every 100 ms sums VmRSS (kB) over ROOT_PID
# and all its descendants and writes the largest sum seen to OUT_FILE, and
# the same for Pss (proportional set size: shared pages divided among the
# processes sharing them, so shared libraries are not counted once per
# process) to OUT_FILE.pss. Only builtins in the loop (plus sleep).
rss_sampler() {
    local root=$1 out=$2 max=0 sum pmax=0 psum f line rest pid ppid p k v
    local -a queue fields
    local -A kids
    echo 0 > "$out"
    echo 0 > "$out.pss"
    while kill -0 "$root" 2>/dev/null; do
        kids=()
        for f in /proc/[0-9]*/stat; do
            { read -r line < "$f"; } 2>/dev/null || continue
            rest=${line##*) }                  # comm may contain spaces or ')'
            read -ra fields <<< "$rest"        # state ppid ...
            ppid=${fields[1]}
            pid=${f#/proc/}; pid=${pid%/stat}
            kids[$ppid]+=" $pid"
        done
        sum=0 psum=0
        queue=("$root")
        while ((${#queue[@]})); do
            p=${queue[0]}
            queue=("${queue[@]:1}")
            { while read -r k v _; do
                  if [[ $k == VmRSS: ]]; then sum=$((sum + v)); break; fi
              done < "/proc/$p/status"; } 2>/dev/null || true
            { while read -r k v _; do
                  if [[ $k == Pss: ]]; then psum=$((psum + v)); break; fi
              done < "/proc/$p/smaps_rollup"; } 2>/dev/null || true
            # shellcheck disable=SC2206
            [[ -n ${kids[$p]:-} ]] && queue+=(${kids[$p]})
        done
        if ((sum > max)); then max=$sum; echo "$max" > "$out"; fi
        if ((psum > pmax)); then pmax=$psum; echo "$pmax" > "$out.pss"; fi
        sleep 0.1
    done
}

# ------------------------------------------------------------ fsync counts
# fsync_trace_start ROOT_PID OUT_FILE: attaches strace -f -c to ROOT_PID and
# every process below it (all their threads; -f then follows every process
# and thread they start, such as workers Postfix's master spawns on demand)
# and waits until every thread of the tree has strace as its tracer, so no
# message of the load that follows goes uncounted. Sets TRACER_PID. Fails
# (with TRACE_ERR set) if strace cannot attach.
TRACER_PID=""
TRACE_ERR=""
fsync_trace_start() {
    local root=$1 out=$2 p t k tp i all ok calls
    local -a args=() tree=()
    mapfile -t tree < <(tree_pids "$root")
    for p in "${tree[@]}"; do args+=(-p "$p"); done
    calls=$(IFS=,; echo "${FSYNC_CALLS[*]}")
    strace -f -qq -c -e "trace=$calls" -o "$out" "${args[@]}" 2> "$out.err" &
    TRACER_PID=$!
    OUR_PIDS+=("$TRACER_PID")
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$TRACER_PID" 2>/dev/null; then
            TRACE_ERR="strace exited: $(tail -n 3 "$out.err")"
            fsync_trace_reap
            return 1
        fi
        # Re-read the tree: whatever was forked meanwhile must be traced too.
        all=1
        while read -r p; do
            for t in /proc/"$p"/task/[0-9]*; do
                ok=0
                while read -r k tp; do
                    if [[ $k == TracerPid: ]]; then [[ $tp == "$TRACER_PID" ]] && ok=1; break; fi
                done < "$t/status" 2>/dev/null || ok=1   # gone meanwhile
                ((ok)) || { all=0; break 2; }
            done
        done < <(tree_pids "$root")
        ((all)) && return 0
        sleep 0.05
    done
    TRACE_ERR="strace did not attach to every process of the tree within 10 s"
    kill "$TRACER_PID" 2>/dev/null || true
    fsync_trace_reap
    return 1
}
fsync_trace_reap() {
    wait "$TRACER_PID" 2>/dev/null || true
    forget OUR_PIDS "$TRACER_PID"
    TRACER_PID=""
}
# fsync_trace_stop OUT_FILE: detaches strace (SIGINT makes it write its
# summary) and writes "CALL COUNT" for every name in FSYNC_CALLS to
# OUT_FILE.counts. A call strace never saw is absent from its summary (an
# empty file if none was). Not to be run in a subshell: only this shell can
# wait for strace to finish writing.
fsync_trace_stop() {
    local out=$1 c
    kill -INT "$TRACER_PID" 2>/dev/null || true
    fsync_trace_reap
    for c in "${FSYNC_CALLS[@]}"; do
        # Summary rows: % time, seconds, usecs/call, calls, [errors,] syscall.
        awk -v c="$c" '$NF == c && $4 ~ /^[0-9]+$/ { n = $4 } END { print c, n + 0 }' "$out"
    done > "$out.counts"
}

# Per-run figures: VALS["WORKLOAD|SIDE|METRIC"] = "run1 run2 ...".
declare -A VALS=()
add_val() { VALS["$1|$2|$3"]+="${VALS["$1|$2|$3"]:+ }$4"; }
vals() { echo "${VALS["$1|$2|$3"]:-}"; }

# run_load SIDE WORKLOAD PORT MAILDIR_NEW RUN_DIR ROOT_PID: runs smtp-source
# for WORKLOAD, waits until MAILDIR_NEW holds MESSAGES files, and records
# accept rate, delivery time and CPU per message of ROOT_PID's tree; or,
# if TRACING=1, only the fsync-like calls per message of that tree.
TRACING=0
FSYNC_NOTES=()      # why some fsync counts are missing
run_load() {
    local side=$1 wl=$2 port=$3 new=$4 dir=$5 root=$6 t0 n rc t_end deadline done_file="$5/source.done"
    local sessions=${wl%%:*} mode=${wl#*:} cpu0 cpu1 timeout=$DELIVERY_TIMEOUT
    local -a flags=(-s "$sessions")
    # Without -d smtp-source opens a new connection for every message; with
    # -d each session sends its share of the messages over one connection.
    [[ $mode == keep ]] && flags+=(-d)
    log "$side $wl: smtp-source ${flags[*]} -m $MESSAGES -l $SIZE -> 127.0.0.1:$port"
    if ((TRACING)); then
        if ! fsync_trace_start "$root" "$dir/strace.out"; then
            log "$side $wl: skipped: fsync count ($TRACE_ERR)"
            FSYNC_NOTES+=("$side $wl: $TRACE_ERR")
            return 0
        fi
        # Every syscall of the tree now stops in strace: slower, not stuck.
        timeout=$((DELIVERY_TIMEOUT * 3))
    fi
    SRC_PIDFILES+=("$dir/source.pid")
    cpu0=$(tree_cpu_ticks "$root")
    t0=$(now)
    (
        rc=0
        smtp-source -c "${flags[@]}" -m "$MESSAGES" -l "$SIZE" \
            -f sender@bench.test -t bench@bench.test "127.0.0.1:$port" \
            > "$dir/source.out" 2> "$dir/source.err" &
        echo "$!" > "$dir/source.pid"
        wait "$!" || rc=$?
        echo "$rc $EPOCHREALTIME" > "$done_file.tmp" && mv "$done_file.tmp" "$done_file"
    ) &
    local sub_pid=$!
    OUR_PIDS+=("$sub_pid")
    deadline=$(awk -v a="$t0" -v b="$timeout" 'BEGIN { printf "%d", a + b }')
    local t_deliv=""
    while :; do
        n=$(count_files "$new")
        if ((n >= MESSAGES)) && [[ -z $t_deliv ]]; then t_deliv=$(now); fi
        [[ -n $t_deliv && -e $done_file ]] && break
        if ((${EPOCHREALTIME%.*} > deadline)); then
            die "$side $wl: timeout after ${timeout}s: $n of $MESSAGES in $new; see $dir"
        fi
        if [[ -e $done_file ]]; then
            read -r rc t_end < "$done_file"
            if ((rc != 0)); then
                die "$side $wl: smtp-source failed (exit $rc): $(tail -c 400 "$dir/source.err")"
            fi
        fi
        sleep 0.05
    done
    wait "$sub_pid" 2>/dev/null || true
    forget OUR_PIDS "$sub_pid"
    forget SRC_PIDFILES "$dir/source.pid"
    read -r rc t_end < "$done_file"
    ((rc == 0)) || die "$side $wl: smtp-source failed (exit $rc): $(tail -c 400 "$dir/source.err")"
    # smtp-source -c prints a running "N\r" counter of completed DATA commands.
    local sent
    sent=$(tr '\r' '\n' < "$dir/source.out" | grep -E '^[0-9]+$' | tail -n 1 || true)
    [[ -z $sent || $sent -eq $MESSAGES ]] || die "$side $wl: smtp-source completed $sent of $MESSAGES messages"
    sleep 0.5   # late duplicates would show up here
    n=$(count_files "$new")
    ((n == MESSAGES)) || die "$side $wl: $n files in $new, expected exactly $MESSAGES"
    if ((TRACING)); then
        # Work a delivery leaves behind (e.g. a status log written after the
        # Maildir file) belongs to the message too.
        sleep 1
        local c k total=0
        fsync_trace_stop "$dir/strace.out"
        while read -r c k; do
            add_val "$wl" "$side" "sc_$c" "$(fdiv "$k" "$MESSAGES")"
            total=$((total + k))
        done < "$dir/strace.out.counts"
        add_val "$wl" "$side" fsync "$(fdiv "$total" "$MESSAGES")"
        return 0
    fi
    # Read while the server idles (every message delivered, smtp-source
    # gone), so no worker is between exiting and being reaped.
    cpu1=$(tree_cpu_ticks "$root")
    add_val "$wl" "$side" accept "$(fdiv "$MESSAGES" "$(fsub "$t_end" "$t0")")"
    add_val "$wl" "$side" deliv "$(fsub "$t_deliv" "$t0")"
    add_val "$wl" "$side" cpu "$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v m="$MESSAGES" \
        'BEGIN { printf "%.3f", t * 1000 / hz / m }')"
}

last_val() { local -a a; read -ra a <<< "$(vals "$@")"; echo "${a[-1]}"; }
log_run() { # SIDE WORKLOAD RUN
    log "$1 $2 run $3: $(last_val "$2" "$1" accept) msg/s accepted, $(last_val "$2" "$1" deliv) s to deliver," \
        "$(last_val "$2" "$1" cpu) ms CPU/msg, peak RSS $(last_val "$2" "$1" rss) MB (PSS $(last_val "$2" "$1" pss) MB)"
}

# measure SIDE WORKLOAD RUN PORT MAILDIR_NEW RUN_DIR ROOT_PID: one run's load
# on a started instance: timed, with memory sampling; or, if TRACING=1, the
# untimed fsync count.
measure() {
    local side=$1 wl=$2 run=$3 port=$4 new=$5 dir=$6 root=$7
    if ((TRACING)); then
        local before c by=""
        before=$(vals "$wl" "$side" fsync)
        run_load "$side" "$wl" "$port" "$new" "$dir" "$root"
        [[ $(vals "$wl" "$side" fsync) != "$before" ]] || return 0   # not counted (logged why)
        for c in "${FSYNC_CALLS[@]}"; do by+="${by:+, }$c $(last_val "$wl" "$side" "sc_$c")"; done
        log "$side $wl run $run: $(last_val "$wl" "$side" fsync) fsync-like calls per message ($by)"
        return 0
    fi
    start_sampler "$root" "$dir/rss"
    run_load "$side" "$wl" "$port" "$new" "$dir" "$root"
    stop_sampler
    add_val "$wl" "$side" rss "$(kb_to_mb "$(cat "$dir/rss")")"
    add_val "$wl" "$side" pss "$(kb_to_mb "$(cat "$dir/rss.pss")")"
    log_run "$side" "$wl" "$run"
}

# ----------------------------------------------------------- Postfix side
run_postfix() { # WORKLOAD RUN
    local wl=$1 run=$2 base="$SCRATCH/postfix-${1/:/-}-$2" port
    local etc=$base/etc
    mkdir -p "$etc" "$base/spool" "$base/vmail/bench/Maildir/"{new,cur,tmp}
    chown -R "$PF_UID:$PF_GID" "$base/vmail"
    port=$POSTFIX_PORT
    while ! port_free "$port"; do port=$((port + 1)); ((port < POSTFIX_PORT + 100)) || die "no free port near $POSTFIX_PORT"; done
    printf 'bench@bench.test bench/Maildir/\n' > "$base/vmailbox"
    cat > "$etc/main.cf" <<EOF
# Throwaway Postfix instance written by bench/inbound.sh; deleted after the run.
compatibility_level = 3.6
config_directory = $etc
queue_directory = $base/spool
data_directory = $base/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.bench.test
mydomain = bench.test
myorigin = \$mydomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination = localhost
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
biff = no
smtpd_recipient_restrictions = permit_mynetworks, reject
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $base/vmail
virtual_mailbox_maps = texthash:$base/vmailbox
virtual_uid_maps = static:$PF_UID
virtual_gid_maps = static:$PF_GID
maillog_file = $base/maillog
maillog_file_prefixes = $base
EOF
    # Debian's master.cf with chroot off (column 5 = n) and a single inet
    # service: smtpd on our own loopback port.
    cat > "$etc/master.cf" <<EOF
127.0.0.1:$port inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    PF_DIRS+=("$etc")
    log "postfix $wl run $run: starting instance on 127.0.0.1:$port ($etc)"
    postfix -c "$etc" start > "$base/start.log" 2>&1 || die "postfix start failed: $(tail -n 20 "$base/start.log")"
    local i master=""
    for ((i = 0; i < 300; i++)); do
        master=$(pf_master_pid "$etc")
        [[ -n $master ]] && ! port_free "$port" && break
        sleep 0.1
    done
    [[ -n $master ]] || die "postfix master did not start; see $base"
    ! port_free "$port" || die "postfix smtpd is not listening on $port; see $base"
    sleep 1   # let qmgr and friends settle, as for Postern
    measure postfix "$wl" "$run" "$port" "$base/vmail/bench/Maildir/new" "$base" "$master"
    postfix -c "$etc" stop > /dev/null 2>&1 || true
    master=$(pf_master_pid "$etc")
    if [[ -n $master ]]; then
        sleep 2
        if is_proc "$master" master; then kill -9 "$master" 2>/dev/null || true; fi
    fi
    forget PF_DIRS "$etc"
    # The run's files stay until the end (the EXIT trap removes SCRATCH):
    # ext4 skips inodes freed in the last 60-300 s when it allocates new
    # ones (recently_deleted), so deleting thousands of Maildir files here
    # would slow down whichever side runs next.
}

# ----------------------------------------------------------- Postern sides
run_postern_side() { # SIDE WORKLOAD RUN
    local side=$1 wl=$2 run=$3 base="$SCRATCH/$1-${2/:/-}-$3" bin
    local inst=$base/postern
    bin=$(side_bin "$side")
    mkdir -p "$base"
    log "$side $wl run $run: $bin/postern init --dev $inst"
    "$bin/postern" init --dev "$inst" --user bench:bench --hostname mail.bench.test --any-port \
        > "$base/init.log" 2>&1 || die "$side: postern init failed: $(tail -n 20 "$base/init.log")"
    PN_DIRS[$inst]=$bin
    "$bin/postern" -c "$inst" start-fg --ready-json > "$base/ready.json" 2> "$base/postern.log" &
    local fg=$!
    OUR_PIDS+=("$fg")
    PN_MASTERS+=("$fg")
    local i line="" listen=""
    for ((i = 0; i < 300; i++)); do
        kill -0 "$fg" 2>/dev/null || die "$side: postern start-fg exited during start-up: $(tail -n 20 "$base/postern.log")"
        line=$(grep -m 1 '^{' "$base/ready.json" 2>/dev/null || true)
        [[ -n $line ]] && break
        sleep 0.1
    done
    [[ -n $line ]] || die "$side: postern did not print its ready line within 30s: $(tail -n 20 "$base/postern.log")"
    listen=$(jq -r '[.services[] | select(.name == "smtp") | .listen[]] | first // empty' <<< "$line") \
        || die "$side: cannot parse ready line: $line"
    [[ $listen == *:* ]] || die "$side: no smtpd listen address in ready line: $line"
    local port=${listen##*:}
    log "$side $wl run $run: smtpd on $listen (master pid $fg)"
    sleep 1
    measure "$side" "$wl" "$run" "$port" "$inst/home/bench/Maildir/new" "$base" "$fg"
    local -a tree
    mapfile -t tree < <(tree_pids "$fg")
    timeout 25 "$bin/postern" -c "$inst" stop > "$base/stop.log" 2>&1 \
        || log "$side $wl run $run: postern stop failed: $(tail -n 3 "$base/stop.log")"
    for ((i = 0; i < 100; i++)); do kill -0 "$fg" 2>/dev/null || break; sleep 0.1; done
    kill "$fg" 2>/dev/null || true
    wait "$fg" 2>/dev/null || true
    local left
    left=$(kill_postern_leftovers "${tree[@]}")
    ((left == 0)) || log "$side $wl run $run: WARNING: $left Postern process(es) outlived stop; killed"
    forget OUR_PIDS "$fg"
    forget PN_MASTERS "$fg"
    unset 'PN_DIRS[$inst]'
    # The run's files stay until the end (the EXIT trap removes SCRATCH):
    # ext4 skips inodes freed in the last 60-300 s when it allocates new
    # ones (recently_deleted), so deleting thousands of Maildir files here
    # would slow down whichever side runs next.
}

# ------------------------------------------------------------------- runs
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "workloads: ${WL_LIST[*]}; sides: ${SIDE_LIST[*]}; $MESSAGES x $SIZE B, $RUNS run(s) each"
nsides=${#SIDE_LIST[@]}
for wl in "${WL_LIST[@]}"; do
    for ((r = 1; r <= RUNS; r++)); do
        # Rotate who goes first so drift in machine load hits every side.
        for ((k = 0; k < nsides; k++)); do
            side=${SIDE_LIST[$(((r - 1 + k) % nsides))]}
            if [[ $side == postfix ]]; then run_postfix "$wl" "$r"; else run_postern_side "$side" "$wl" "$r"; fi
        done
    done
    # Untimed: strace stops the tree at every system call.
    if [[ -z $FSYNC_SKIP ]]; then
        TRACING=1
        for ((r = 1; r <= FSYNC_RUNS; r++)); do
            for ((k = 0; k < nsides; k++)); do
                side=${SIDE_LIST[$(((r - 1 + k) % nsides))]}
                log "$side $wl: untimed run $r of $FSYNC_RUNS under strace (fsync count)"
                if [[ $side == postfix ]]; then run_postfix "$wl" "strace$r"; else run_postern_side "$side" "$wl" "strace$r"; fi
            done
        done
        TRACING=0
    fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
METRICS=(accept deliv cpu rss pss fsync)
for c in "${FSYNC_CALLS[@]}"; do METRICS+=("sc_$c"); done
declare -A MED=()
for wl in "${WL_LIST[@]}"; do
    for side in "${SIDE_LIST[@]}"; do
        for m in "${METRICS[@]}"; do
            # shellcheck disable=SC2046
            MED["$wl|$side|$m"]=$(median $(vals "$wl" "$side" "$m"))
            # Memory is sampled to 0.1 MB; more digits would be noise.
            [[ $m == rss || $m == pss ]] && [[ ${MED["$wl|$side|$m"]} != null ]] \
                && MED["$wl|$side|$m"]=$(awk -v v="${MED["$wl|$side|$m"]}" 'BEGIN { printf "%.1f", v }')
        done
    done
done
# ratio WORKLOAD METRIC A B: > 1 means side A is better than side B
# (more msg/s; fewer seconds, CPU ms or fsyncs).
ratio() {
    local x=${MED["$1|$3|$2"]:-null} y=${MED["$1|$4|$2"]:-null}
    if [[ $x == null || $y == null ]]; then echo null
    elif [[ $2 == accept ]]; then fdiv "$x" "$y"
    else fdiv "$y" "$x"
    fi
}
PAIRS=()    # "A B" for every pair of sides that ran
has_side postern && has_side postfix && PAIRS+=("postern postfix")
has_side postern-b && has_side postfix && PAIRS+=("postern-b postfix")
has_side postern && has_side postern-b && PAIRS+=("postern postern-b")
pair_label() { # "A B" -> short column head
    local a b
    read -r a b <<< "$1"
    short() { case $1 in postfix) echo Pf ;; postern) echo Pn ;; postern-b) echo PnB ;; esac; }
    echo "$(short "$a")/$(short "$b")"
}

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
fs_type=$(df --output=fstype "$BENCH_TMPDIR" | tail -n 1 | tr -d ' ')
pf_version=$(postconf -c /etc/postfix -dh mail_version 2>/dev/null || echo unknown)
pn_rev=$(bin_rev "$POSTERN_BIN")
pnb_rev=""
[[ -z $POSTERN_BIN_B ]] || pnb_rev=$(bin_rev "$POSTERN_BIN_B")

show() { [[ $1 == null || -z $1 ]] && echo "${2:--}" || echo "$1"; }
row() { # LABEL METRIC WITH_RATIOS
    local line p s none=-
    [[ $2 == fsync ]] && none=n/a
    line=$(printf '%-30s' "$1")
    for s in "${SIDE_LIST[@]}"; do line+=$(printf ' %10s' "$(show "${MED["$wl|$s|$2"]}" "$none")"); done
    for p in "${PAIRS[@]}"; do
        # shellcheck disable=SC2086
        if (($3)); then line+=$(printf ' %10s' "$(show "$(ratio "$wl" "$2" $p)")"); else line+=$(printf ' %10s' ""); fi
    done
    echo "$line"
}
# target WORKLOAD SIDE WHAT: "VALUE TARGET MET" for one of issue 6's targets
# (WHAT: accept, deliv, cpu, pss) of Postern side SIDE against Postfix;
# VALUE is null if a figure is missing, MET is true, false or null (not
# measured, or the target does not apply).
target() {
    local wl=$1 side=$2 v t op
    case $3 in
        accept) v=$(ratio "$wl" accept "$side" postfix); t=$TARGET_ACCEPT; op=ge ;;
        deliv) v=$(ratio "$wl" deliv "$side" postfix); t=$TARGET_DELIV; op=ge ;;
        # Postern's CPU per message as a fraction of Postfix's, as the
        # target is stated: the cpu ratio with the sides swapped.
        cpu) v=$(ratio "$wl" cpu postfix "$side"); t=$TARGET_CPU; op=le ;;
        pss) v=${MED["$wl|$side|pss"]:-null}; t=$TARGET_PSS_MB; op=le
             ((${wl%%:*} <= TARGET_PSS_SESSIONS)) || { echo "$v $t null"; return; } ;;
    esac
    [[ $v == null ]] && { echo "null $t null"; return; }
    echo "$v $t $(awk -v v="$v" -v t="$t" -v op="$op" \
        'BEGIN { print ((op == "ge" ? v >= t : v <= t) ? "true" : "false") }')"
}
met_word() { case $1 in true) echo met ;; false) echo "NOT met" ;; *) echo "n/a" ;; esac; }
TARGET_SIDES=()     # Postern sides compared with Postfix against the targets
if has_side postfix; then
    for s in postern postern-b; do has_side "$s" && TARGET_SIDES+=("$s"); done
fi
{
    for wl in "${WL_LIST[@]}"; do
        sessions=${wl%%:*}
        if [[ ${wl#*:} == conn ]]; then how="one message per connection"; else how="one connection per session (-d)"; fi
        echo
        echo "Workload $wl: $MESSAGES messages x $SIZE B, $sessions sessions, $how; median of $RUNS run(s)"
        head=$(printf '%-30s' "")
        for s in "${SIDE_LIST[@]}"; do head+=$(printf ' %10s' "$(side_label "$s")"); done
        for p in "${PAIRS[@]}"; do head+=$(printf ' %10s' "$(pair_label "$p")"); done
        echo "$head"
        row "(a) accepted, msg/s" accept 1
        row "(b) all in Maildir/new, s" deliv 1
        row "CPU per message, ms" cpu 1
        row "peak RSS, all processes, MB" rss 0
        row "peak PSS, all processes, MB" pss 0
        row "fsyncs per message (strace)" fsync 1
        for s in "${SIDE_LIST[@]}"; do
            printf 'per run %-9s a=[%s] b=[%s] cpu=[%s] rss=[%s] pss=[%s] fsync=[%s]\n' "$s:" "$(vals "$wl" "$s" accept)" \
                "$(vals "$wl" "$s" deliv)" "$(vals "$wl" "$s" cpu)" "$(vals "$wl" "$s" rss)" "$(vals "$wl" "$s" pss)" \
                "$(vals "$wl" "$s" fsync)"
        done
        for s in "${SIDE_LIST[@]}"; do
            [[ ${MED["$wl|$s|fsync"]} == null ]] && continue
            line=""
            for c in "${FSYNC_CALLS[@]}"; do
                v=${MED["$wl|$s|sc_$c"]}
                [[ $v == null || $v == 0.000 ]] || line+=" $c $v,"
            done
            echo "fsyncs per message, $s:${line:- none}" | sed 's/,$//'
        done
        for s in "${TARGET_SIDES[@]}"; do
            echo "targets (issue 6), $(side_label "$s") against Postfix:"
            read -r v t m <<< "$(target "$wl" "$s" accept)"
            printf '  %-18s %-22s target >= %sx   %s\n' "accept rate" "$(show "$v" n/a)x Postfix's" "$t" "$(met_word "$m")"
            read -r v t m <<< "$(target "$wl" "$s" deliv)"
            printf '  %-18s %-22s target >= %sx   %s\n' "end to end" "$(show "$v" n/a)x as fast" "$t" "$(met_word "$m")"
            read -r v t m <<< "$(target "$wl" "$s" cpu)"
            printf '  %-18s %-22s target <= %sx   %s\n' "CPU per message" "$(show "$v" n/a)x Postfix's" "$t" "$(met_word "$m")"
            read -r v t m <<< "$(target "$wl" "$s" pss)"
            if ((sessions <= TARGET_PSS_SESSIONS)); then
                printf '  %-18s %-22s target <= %s MB  %s\n' "peak PSS" "$(show "$v" n/a) MB" "$t" "$(met_word "$m")"
            else
                printf '  %-18s %-22s target <= %s MB is for <= %s sessions\n' "peak PSS" "$(show "$v" n/a) MB" "$t" "$TARGET_PSS_SESSIONS"
            fi
        done
        for s in postern postern-b; do
            has_side "$s" || continue
            r=${MED["$wl|$s|rss"]}
            [[ $r == null ]] && continue
            echo "$(side_label "$s") peak RSS $r MB, target < $RSS_TARGET_MB MB: $(awk -v r="$r" -v t="$RSS_TARGET_MB" 'BEGIN { print (r < t) ? "met" : "NOT met" }')"
        done
    done
    echo
    if ((${#PAIRS[@]})); then
        legend="Pf Postfix, Pn Postern"
        has_side postern-b && legend+=", PnB Postern-B"
        echo "ratios X/Y: (a) X msg/s / Y msg/s, (b), CPU and fsyncs: Y / X; > 1 means X is better ($legend)"
    fi
    if [[ -n $FSYNC_SKIP ]]; then
        echo "fsyncs per message: n/a, skipped: $FSYNC_SKIP"
    else
        echo "fsyncs per message: $FSYNC_RUNS untimed run(s) per side and workload under" \
            "strace -f -c -e trace=$(IFS=,; echo "${FSYNC_CALLS[*]}"), all calls summed"
    fi
    for n in "${FSYNC_NOTES[@]}"; do echo "fsync count missing: $n"; done
    echo "machine: $(nproc) CPU(s) $cpu_model, ${mem_mb} MB RAM, kernel $(uname -r), $BENCH_TMPDIR on $fs_type"
    echo "load average at start $LOAD_START, at end $LOAD_END; Postfix $pf_version, Postern $pn_rev ($POSTERN_BIN)"
    [[ -z $POSTERN_BIN_B ]] || echo "Postern-B $pnb_rev ($POSTERN_BIN_B)"
}

json_arr() { # space-separated numbers -> JSON array
    local -a a
    read -ra a <<< "$1"
    if ((${#a[@]})); then printf '[%s]' "$(IFS=,; echo "${a[*]}")"; else echo '[]'; fi
}
side_json() { # WORKLOAD SIDE
    local c calls='{}'
    for c in "${FSYNC_CALLS[@]}"; do
        calls=$(jq --arg k "$c" --argjson v "${MED["$1|$2|sc_$c"]}" '. + { ($k): $v }' <<< "$calls")
    done
    jq -n --argjson f "${MED["$1|$2|fsync"]}" --argjson fr "$(json_arr "$(vals "$1" "$2" fsync)")" \
        --argjson calls "$calls" --argjson a "${MED["$1|$2|accept"]}" --argjson d "${MED["$1|$2|deliv"]}" \
        --argjson c "${MED["$1|$2|cpu"]}" --argjson r "${MED["$1|$2|rss"]}" --argjson p "${MED["$1|$2|pss"]}" \
        --argjson ar "$(json_arr "$(vals "$1" "$2" accept)")" --argjson dr "$(json_arr "$(vals "$1" "$2" deliv)")" \
        --argjson cr "$(json_arr "$(vals "$1" "$2" cpu)")" --argjson rr "$(json_arr "$(vals "$1" "$2" rss)")" \
        --argjson pr "$(json_arr "$(vals "$1" "$2" pss)")" \
        '{ accepted_msgs_per_s: $a, delivered_s: $d, cpu_ms_per_msg: $c, peak_rss_mb: $r, peak_pss_mb: $p,
           fsyncs_per_msg: $f, fsync_calls_per_msg: $calls,
           runs: { accepted_msgs_per_s: $ar, delivered_s: $dr, cpu_ms_per_msg: $cr,
                   peak_rss_mb: $rr, peak_pss_mb: $pr, fsyncs_per_msg: $fr } }'
}
target_json() { # WORKLOAD SIDE WHAT -> { value, target, met }
    local v t m
    read -r v t m <<< "$(target "$1" "$2" "$3")"
    jq -n --argjson v "$v" --argjson t "$t" --argjson m "$m" '{ value: $v, target: $t, met: $m }'
}
workload_json() { # WORKLOAD
    local s p a b sides='{}' ratios='{}' targets='{}'
    for s in "${SIDE_LIST[@]}"; do
        sides=$(jq --arg k "$s" --argjson v "$(side_json "$1" "$s")" '. + { ($k): $v }' <<< "$sides")
    done
    for p in "${PAIRS[@]}"; do
        read -r a b <<< "$p"
        ratios=$(jq --arg k "${a//-/_}_vs_${b//-/_}" --argjson ra "$(ratio "$1" accept "$a" "$b")" \
            --argjson rd "$(ratio "$1" deliv "$a" "$b")" --argjson rc "$(ratio "$1" cpu "$a" "$b")" \
            --argjson rf "$(ratio "$1" fsync "$a" "$b")" \
            '. + { ($k): { accepted: $ra, delivery_time: $rd, cpu_per_msg: $rc, fsyncs_per_msg: $rf } }' <<< "$ratios")
    done
    for s in "${TARGET_SIDES[@]}"; do
        targets=$(jq --arg k "${s//-/_}_vs_postfix" --argjson a "$(target_json "$1" "$s" accept)" \
            --argjson d "$(target_json "$1" "$s" deliv)" --argjson c "$(target_json "$1" "$s" cpu)" \
            --argjson p "$(target_json "$1" "$s" pss)" \
            '. + { ($k): { accepted: $a, end_to_end: $d, cpu_fraction_of_postfix: $c, peak_pss_mb: $p } }' <<< "$targets")
    done
    jq -n --arg name "$1" --argjson sessions "${1%%:*}" --arg mode "${1#*:}" \
        --argjson sides "$sides" --argjson ratios "$ratios" --argjson targets "$targets" \
        '{ name: $name, sessions: $sessions,
           mode: (if $mode == "conn" then "one message per connection" else "one connection per session (smtp-source -d)" end),
           sides: $sides, ratios: $ratios, targets: $targets }'
}
wls='[]'
for wl in "${WL_LIST[@]}"; do
    wls=$(jq --argjson w "$(workload_json "$wl")" '. + [$w]' <<< "$wls")
done

mkdir -p "$(dirname "$RESULTS_FILE")"
jq -n \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson messages "$MESSAGES" --argjson size "$SIZE" --argjson runs "$RUNS" \
    --argjson nproc "$(nproc)" --arg cpu "$cpu_model" --argjson mem "$mem_mb" --arg kernel "$(uname -r)" \
    --arg tmpdir "$BENCH_TMPDIR" --arg fs "$fs_type" --arg load_start "$LOAD_START" --arg load_end "$LOAD_END" \
    --arg pf_version "$pf_version" --arg pn_rev "$pn_rev" --arg pn_bin "$POSTERN_BIN" \
    --arg pnb_rev "$pnb_rev" \
    --arg pnb_bin "$POSTERN_BIN_B" --argjson workloads "$wls" --argjson rss_target "$RSS_TARGET_MB" \
    --arg sides "${SIDE_LIST[*]}" \
    --argjson fsync_runs "$FSYNC_RUNS" --arg fsync_skip "$FSYNC_SKIP" --arg fsync_calls "${FSYNC_CALLS[*]}" \
    --argjson fsync_notes "$(printf '%s\n' "${FSYNC_NOTES[@]}" | jq -R . | jq -s 'map(select(. != ""))')" \
    --argjson t_accept "$TARGET_ACCEPT" --argjson t_deliv "$TARGET_DELIV" --argjson t_cpu "$TARGET_CPU" \
    --argjson t_pss "$TARGET_PSS_MB" --argjson t_pss_sessions "$TARGET_PSS_SESSIONS" \
    '{
      benchmark: "inbound", date: $date,
      params: { messages: $messages, size: $size, runs: $runs, sides: ($sides | split(" ")),
                workloads: [$workloads[].name] },
      machine: { nproc: $nproc, cpu_model: $cpu, mem_total_mb: $mem, kernel: $kernel,
                 tmpdir: $tmpdir, tmpdir_fs: $fs, loadavg_start: $load_start, loadavg_end: $load_end },
      versions: { postfix: $pf_version, postern: $pn_rev, postern_bin: $pn_bin,
                  postern_b: (if $pnb_rev == "" then null else $pnb_rev end), postern_b_bin: (if $pnb_bin == "" then null else $pnb_bin end) },
      ratios_note: "X_vs_Y: accepted = X/Y msg/s, delivery_time and cpu_per_msg = Y/X; > 1 means X is better",
      postern_rss_target_mb: $rss_target,
      fsync_counting: { untimed_runs: $fsync_runs, calls: ($fsync_calls | split(" ")),
                        skipped: (if $fsync_skip == "" then null else $fsync_skip end), missing: $fsync_notes },
      targets_note: { accepted: { min_ratio: $t_accept }, end_to_end: { min_ratio: $t_deliv },
                      cpu_fraction_of_postfix: { max: $t_cpu },
                      peak_pss_mb: { max: $t_pss, up_to_sessions: $t_pss_sessions } },
      workloads: $workloads
    }' > "$RESULTS_FILE.tmp"
mv "$RESULTS_FILE.tmp" "$RESULTS_FILE"
log "wrote $RESULTS_FILE"
