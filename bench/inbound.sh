#!/usr/bin/env bash
# bench/inbound.sh — Postern vs Postfix inbound benchmark.
#
# Runs the same workload against a throwaway Postfix instance (Debian
# packages, own config/queue/data dirs, own loopback port; the system
# Postfix is never touched) and a throwaway Postern dev instance:
# smtp-source sends MESSAGES messages of SIZE bytes over SESSIONS parallel
# sessions to one local Maildir user. Measured per run:
#   (a) messages/s accepted  = MESSAGES / wall time of smtp-source
#   (b) seconds from the start of smtp-source until Maildir/new holds
#       MESSAGES files
#   peak RSS = max over 100 ms samples of the sum of VmRSS of the server's
#       master and all its descendants
# Each side runs RUNS times, alternating (and alternating who goes first);
# medians are reported, with ratios (> 1 means Postern is better), and
# written as JSON to bench/results/latest.json. See bench/README.md.
#
# Runs as root. Only loopback traffic. Everything it starts is stopped by
# the EXIT trap, also on failure or Ctrl-C.

set -euo pipefail

MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-3}
SIDES=${SIDES:-"postfix postern"}          # which servers to run
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-300}   # seconds, per run
SKIP_BUILD=${SKIP_BUILD:-0}                 # 1: use existing target/release binaries
KEEP_TMP=${KEEP_TMP:-0}                     # 1: keep the scratch directory for inspection
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}  # where instances live (its filesystem matters: fsync)
POSTFIX_PORT=${POSTFIX_PORT:-26025}         # first port tried for the Postfix instance
RSS_TARGET_MB=64

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
POSTERN_BIN=$(realpath -m "${POSTERN_BIN:-$REPO/target/release}")
RESULTS_DIR=$BENCH_DIR/results

log() { printf '[inbound %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for v in MESSAGES SESSIONS SIZE RUNS DELIVERY_TIMEOUT POSTFIX_PORT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for s in $SIDES; do
    [[ $s == postfix || $s == postern ]] || die "SIDES may only contain 'postfix' and 'postern' (got '$s')"
done
[[ $(id -u) -eq 0 ]] || die "run as root (Postfix's master and virtual(8) need it)"

# ---------------------------------------------------------------- cleanup
# Everything we start is recorded here and torn down by the EXIT trap.
SCRATCH=""
PF_DIRS=()          # Postfix config dirs we started
PN_DIRS=()          # Postern instance dirs we started
PN_MASTERS=()       # their start-fg (= master) pids, our direct children
OUR_PIDS=()         # background pids we started (samplers, load subshells, start-fg)
SRC_PIDFILES=()     # files holding smtp-source pids (grandchildren)
# A pid is dropped from these lists as soon as it has been reaped (or the
# instance stopped), so the trap can never signal a reused pid; pids that are
# not our direct children are also checked by name (/proc/PID/comm) first.
forget() { # ARRAY_NAME VALUE: remove VALUE from the named array
    local -n arr=$1
    local x keep=()
    for x in "${arr[@]}"; do [[ $x == "$2" ]] || keep+=("$x"); done
    arr=("${keep[@]}")
}
tree_pids() { # ROOT: prints ROOT and all its descendants
    local f line rest pid ppid p
    local -a fields queue
    local -A kids=()
    for f in /proc/[0-9]*/stat; do
        { read -r line < "$f"; } 2>/dev/null || continue
        rest=${line##*) }
        read -ra fields <<< "$rest"
        pid=${f#/proc/}; pid=${pid%/stat}
        kids[${fields[1]}]+=" $pid"
    done
    queue=("$1")
    while ((${#queue[@]})); do
        p=${queue[0]}; queue=("${queue[@]:1}")
        echo "$p"
        # shellcheck disable=SC2206
        [[ -n ${kids[$p]:-} ]] && queue+=(${kids[$p]})
    done
    return 0
}
# kill_postern_leftovers PID...: SIGKILLs those of PIDs (a Postern master's
# tree captured before stopping it) that are still running a binary from
# POSTERN_BIN; prints how many it killed.
kill_postern_leftovers() {
    local p exe n=0
    for p in "$@"; do
        exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
        [[ $exe == "$POSTERN_BIN"/* ]] || continue
        kill -9 "$p" 2>/dev/null && n=$((n + 1))
    done
    echo "$n"
}
is_proc() { # PID COMM: true if PID is alive and named COMM
    local c
    { read -r c < "/proc/$1/comm"; } 2>/dev/null && [[ $c == "$2" ]]
}

pf_master_pid() { # config dir -> master pid (empty if none)
    local f="$1/../spool/pid/master.pid" p
    [[ -r $f ]] || return 0
    read -r p < "$f" || return 0
    [[ $p =~ ^[0-9]+$ ]] && is_proc "$p" master && echo "$p"
    return 0
}

cleanup() {
    local rc=$? d p f
    trap - EXIT INT TERM
    for f in "${SRC_PIDFILES[@]}"; do
        [[ -r $f ]] && read -r p < "$f" && is_proc "$p" smtp-source && kill "$p" 2>/dev/null || true
    done
    for p in "${OUR_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    local -a tree=()
    for p in "${PN_MASTERS[@]}"; do
        mapfile -t -O "${#tree[@]}" tree < <(tree_pids "$p")
    done
    for d in "${PN_DIRS[@]}"; do
        timeout 25 "$POSTERN_BIN/postern" -c "$d" stop >/dev/null 2>&1 || true
    done
    kill_postern_leftovers "${tree[@]}" > /dev/null
    for d in "${PF_DIRS[@]}"; do
        p=$(pf_master_pid "$d")
        if [[ -n $p ]]; then
            postfix -c "$d" stop >/dev/null 2>&1 || true
            is_proc "$p" master && kill -9 "$p" 2>/dev/null || true
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
PF_UID=$(id -u postfix) || die "no postfix user after installing postfix"
PF_GID=$(id -g postfix)

SCRATCH=$(mktemp -d "$BENCH_TMPDIR/postern-bench.XXXXXX")
chmod 755 "$SCRATCH"
log "scratch directory $SCRATCH"

if [[ " $SIDES " == *" postern "* ]]; then
    if [[ $SKIP_BUILD != 1 ]]; then
        log "cargo build --release --workspace"
        (cd "$REPO" && cargo build --release --workspace >&2) || die "cargo build --release --workspace failed"
    fi
    [[ -x $POSTERN_BIN/postern ]] || die "no $POSTERN_BIN/postern (build failed or SKIP_BUILD=1 without a build)"
fi

# ------------------------------------------------------------------ helpers
now() { echo "$EPOCHREALTIME"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "null"; else printf "%.3f", a / b }'; }
median() {
    (($#)) || { echo null; return; }
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) print "null"; else if (NR % 2) printf "%.3f", a[(NR + 1) / 2];
              else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
count_files() { # dir -> number of entries (0 if missing)
    if [[ -d $1 ]]; then ls -U -- "$1" | wc -l; else echo 0; fi
}

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

# run_load NAME PORT MAILDIR_NEW RUN_DIR: runs smtp-source, waits until
# MAILDIR_NEW holds MESSAGES files, sets RES_ACCEPT (msg/s) and RES_DELIV (s).
RES_ACCEPT=""; RES_DELIV=""
run_load() {
    local name=$1 port=$2 new=$3 dir=$4 t0 n rc t_end deadline done_file="$4/source.done"
    log "$name: smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE -> 127.0.0.1:$port"
    SRC_PIDFILES+=("$dir/source.pid")
    t0=$(now)
    (
        rc=0
        smtp-source -c -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
            -f sender@bench.test -t bench@bench.test "127.0.0.1:$port" \
            > "$dir/source.out" 2> "$dir/source.err" &
        echo "$!" > "$dir/source.pid"
        wait "$!" || rc=$?
        echo "$rc $EPOCHREALTIME" > "$done_file.tmp" && mv "$done_file.tmp" "$done_file"
    ) &
    local sub_pid=$!
    OUR_PIDS+=("$sub_pid")
    deadline=$(awk -v a="$t0" -v b="$DELIVERY_TIMEOUT" 'BEGIN { printf "%d", a + b }')
    local t_deliv=""
    while :; do
        n=$(count_files "$new")
        if ((n >= MESSAGES)) && [[ -z $t_deliv ]]; then t_deliv=$(now); fi
        [[ -n $t_deliv && -e $done_file ]] && break
        if ((${EPOCHREALTIME%.*} > deadline)); then
            die "$name: timeout after ${DELIVERY_TIMEOUT}s: $n of $MESSAGES in $new; see $dir"
        fi
        if [[ -e $done_file ]]; then
            read -r rc t_end < "$done_file"
            if ((rc != 0)); then
                die "$name: smtp-source failed (exit $rc): $(tail -c 400 "$dir/source.err")"
            fi
        fi
        sleep 0.05
    done
    wait "$sub_pid" 2>/dev/null || true
    forget OUR_PIDS "$sub_pid"
    forget SRC_PIDFILES "$dir/source.pid"
    read -r rc t_end < "$done_file"
    ((rc == 0)) || die "$name: smtp-source failed (exit $rc): $(tail -c 400 "$dir/source.err")"
    # smtp-source -c prints a running "N\r" counter of completed DATA commands.
    local sent
    sent=$(tr '\r' '\n' < "$dir/source.out" | grep -E '^[0-9]+$' | tail -n 1 || true)
    [[ -z $sent || $sent -eq $MESSAGES ]] || die "$name: smtp-source completed $sent of $MESSAGES messages"
    sleep 0.5   # late duplicates would show up here
    n=$(count_files "$new")
    ((n == MESSAGES)) || die "$name: $n files in $new, expected exactly $MESSAGES"
    RES_ACCEPT=$(fdiv "$MESSAGES" "$(fsub "$t_end" "$t0")")
    RES_DELIV=$(fsub "$t_deliv" "$t0")
}

start_sampler() { # root pid, out file -> sampler pid
    rss_sampler "$1" "$2" &
    OUR_PIDS+=("$!")
    SAMPLER_PID=$!
}
stop_sampler() {
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    forget OUR_PIDS "$SAMPLER_PID"
}
kb_to_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ----------------------------------------------------------- Postfix side
PF_ACCEPT=(); PF_DELIV=(); PF_RSS=(); PF_PSS=()
run_postfix() {
    local run=$1 base="$SCRATCH/postfix-$1" port
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
    log "postfix run $run: starting instance on 127.0.0.1:$port ($etc)"
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
    start_sampler "$master" "$base/rss"
    run_load "postfix" "$port" "$base/vmail/bench/Maildir/new" "$base"
    stop_sampler
    PF_ACCEPT+=("$RES_ACCEPT"); PF_DELIV+=("$RES_DELIV")
    PF_RSS+=("$(kb_to_mb "$(cat "$base/rss")")")
    PF_PSS+=("$(kb_to_mb "$(cat "$base/rss.pss")")")
    log "postfix run $run: $RES_ACCEPT msg/s accepted, $RES_DELIV s to deliver, peak RSS ${PF_RSS[-1]} MB (PSS ${PF_PSS[-1]} MB)"
    postfix -c "$etc" stop > /dev/null 2>&1 || true
    master=$(pf_master_pid "$etc")
    if [[ -n $master ]]; then
        sleep 2
        is_proc "$master" master && kill -9 "$master" 2>/dev/null || true
    fi
    forget PF_DIRS "$etc"
    [[ $KEEP_TMP == 1 ]] || rm -rf -- "$base"
}

# ----------------------------------------------------------- Postern side
PN_ACCEPT=(); PN_DELIV=(); PN_RSS=(); PN_PSS=()
run_postern() {
    local run=$1 base="$SCRATCH/postern-$1"
    local inst=$base/postern
    mkdir -p "$base"
    log "postern run $run: init --dev $inst"
    "$POSTERN_BIN/postern" init --dev "$inst" --user bench:bench --hostname mail.bench.test --any-port \
        > "$base/init.log" 2>&1 || die "postern init failed: $(tail -n 20 "$base/init.log")"
    PN_DIRS+=("$inst")
    "$POSTERN_BIN/postern" -c "$inst" start-fg --ready-json > "$base/ready.json" 2> "$base/postern.log" &
    local fg=$!
    OUR_PIDS+=("$fg")
    PN_MASTERS+=("$fg")
    local i line="" listen=""
    for ((i = 0; i < 300; i++)); do
        kill -0 "$fg" 2>/dev/null || die "postern start-fg exited during start-up: $(tail -n 20 "$base/postern.log")"
        line=$(grep -m 1 '^{' "$base/ready.json" 2>/dev/null || true)
        [[ -n $line ]] && break
        sleep 0.1
    done
    [[ -n $line ]] || die "postern did not print its ready line within 30s: $(tail -n 20 "$base/postern.log")"
    listen=$(jq -r '[.services[] | select(.name == "smtpd") | .listen[]] | first // empty' <<< "$line") \
        || die "cannot parse ready line: $line"
    [[ $listen == *:* ]] || die "no smtpd listen address in ready line: $line"
    local port=${listen##*:}
    log "postern run $run: smtpd on $listen (master pid $fg)"
    sleep 1
    start_sampler "$fg" "$base/rss"
    run_load "postern" "$port" "$inst/home/bench/Maildir/new" "$base"
    stop_sampler
    PN_ACCEPT+=("$RES_ACCEPT"); PN_DELIV+=("$RES_DELIV")
    PN_RSS+=("$(kb_to_mb "$(cat "$base/rss")")")
    PN_PSS+=("$(kb_to_mb "$(cat "$base/rss.pss")")")
    log "postern run $run: $RES_ACCEPT msg/s accepted, $RES_DELIV s to deliver, peak RSS ${PN_RSS[-1]} MB (PSS ${PN_PSS[-1]} MB)"
    local -a tree
    mapfile -t tree < <(tree_pids "$fg")
    timeout 25 "$POSTERN_BIN/postern" -c "$inst" stop > "$base/stop.log" 2>&1 \
        || log "postern run $run: postern stop failed: $(tail -n 3 "$base/stop.log")"
    for ((i = 0; i < 100; i++)); do kill -0 "$fg" 2>/dev/null || break; sleep 0.1; done
    kill "$fg" 2>/dev/null || true
    wait "$fg" 2>/dev/null || true
    local left
    left=$(kill_postern_leftovers "${tree[@]}")
    ((left == 0)) || log "postern run $run: WARNING: $left Postern process(es) outlived stop; killed"
    forget OUR_PIDS "$fg"
    forget PN_MASTERS "$fg"
    forget PN_DIRS "$inst"
    [[ $KEEP_TMP == 1 ]] || rm -rf -- "$base"
}

# ------------------------------------------------------------------- runs
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= RUNS; r++)); do
    # Alternate who goes first so drift in machine load hits both sides.
    if ((r % 2)); then order="postfix postern"; else order="postern postfix"; fi
    for side in $order; do
        [[ " $SIDES " == *" $side "* ]] || continue
        "run_$side" "$r"
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
json_arr() { if (($#)); then printf '[%s]' "$(IFS=,; echo "$*")"; else echo '[]'; fi; }
pf_a=$(median "${PF_ACCEPT[@]}"); pf_d=$(median "${PF_DELIV[@]}"); pf_r=$(median "${PF_RSS[@]}")
pn_a=$(median "${PN_ACCEPT[@]}"); pn_d=$(median "${PN_DELIV[@]}"); pn_r=$(median "${PN_RSS[@]}")
pf_p=$(median "${PF_PSS[@]}"); pn_p=$(median "${PN_PSS[@]}")
ratio_a=null; ratio_d=null
[[ $pf_a != null && $pn_a != null ]] && ratio_a=$(fdiv "$pn_a" "$pf_a")
[[ $pf_d != null && $pn_d != null ]] && ratio_d=$(fdiv "$pf_d" "$pn_d")
rss_ok=null
[[ $pn_r != null ]] && rss_ok=$(awk -v r="$pn_r" -v t="$RSS_TARGET_MB" 'BEGIN { print (r < t) ? "true" : "false" }')

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
fs_type=$(df --output=fstype "$BENCH_TMPDIR" | tail -n 1 | tr -d ' ')
pf_version=$(postconf -c /etc/postfix -dh mail_version 2>/dev/null || echo unknown)
pn_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1) ]] && pn_rev+="+dirty"

show() { [[ $1 == null ]] && echo "-" || echo "$1"; }
{
    echo
    echo "Inbound benchmark: $MESSAGES messages x $SIZE B, $SESSIONS sessions, median of $RUNS run(s)"
    printf '%-34s %12s %12s %10s\n' "" "Postfix" "Postern" "ratio"
    printf '%-34s %12s %12s %10s\n' "(a) accepted, msg/s" "$(show "$pf_a")" "$(show "$pn_a")" "$(show "$ratio_a")"
    printf '%-34s %12s %12s %10s\n' "(b) all in Maildir/new, s" "$(show "$pf_d")" "$(show "$pn_d")" "$(show "$ratio_d")"
    printf '%-34s %12s %12s %10s\n' "peak RSS, all processes, MB" "$(show "$pf_r")" "$(show "$pn_r")" ""
    printf '%-34s %12s %12s %10s\n' "peak PSS, all processes, MB" "$(show "$pf_p")" "$(show "$pn_p")" ""
    echo "ratios: (a) Postern/Postfix, (b) Postfix/Postern time; > 1 means Postern is better"
    if [[ $rss_ok != null ]]; then
        echo "Postern peak RSS $pn_r MB, target < $RSS_TARGET_MB MB: $([[ $rss_ok == true ]] && echo met || echo NOT met)"
    fi
    echo "per run: postfix a=[${PF_ACCEPT[*]}] b=[${PF_DELIV[*]}] rss=[${PF_RSS[*]}] pss=[${PF_PSS[*]}]"
    echo "         postern a=[${PN_ACCEPT[*]}] b=[${PN_DELIV[*]}] rss=[${PN_RSS[*]}] pss=[${PN_PSS[*]}]"
    echo "machine: $(nproc) CPU(s) $cpu_model, ${mem_mb} MB RAM, kernel $(uname -r), $BENCH_TMPDIR on $fs_type"
    echo "load average at start $LOAD_START, at end $LOAD_END; Postfix $pf_version, Postern $pn_rev"
}

mkdir -p "$RESULTS_DIR"
jq -n \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson messages "$MESSAGES" --argjson sessions "$SESSIONS" --argjson size "$SIZE" --argjson runs "$RUNS" \
    --argjson nproc "$(nproc)" --arg cpu "$cpu_model" --argjson mem "$mem_mb" --arg kernel "$(uname -r)" \
    --arg tmpdir "$BENCH_TMPDIR" --arg fs "$fs_type" --arg load_start "$LOAD_START" --arg load_end "$LOAD_END" \
    --arg pf_version "$pf_version" --arg pn_rev "$pn_rev" \
    --argjson pf_a "$pf_a" --argjson pf_d "$pf_d" --argjson pf_r "$pf_r" --argjson pf_p "$pf_p" \
    --argjson pn_a "$pn_a" --argjson pn_d "$pn_d" --argjson pn_r "$pn_r" --argjson pn_p "$pn_p" \
    --argjson pf_p_runs "$(json_arr "${PF_PSS[@]}")" --argjson pn_p_runs "$(json_arr "${PN_PSS[@]}")" \
    --argjson pf_a_runs "$(json_arr "${PF_ACCEPT[@]}")" --argjson pf_d_runs "$(json_arr "${PF_DELIV[@]}")" \
    --argjson pf_r_runs "$(json_arr "${PF_RSS[@]}")" \
    --argjson pn_a_runs "$(json_arr "${PN_ACCEPT[@]}")" --argjson pn_d_runs "$(json_arr "${PN_DELIV[@]}")" \
    --argjson pn_r_runs "$(json_arr "${PN_RSS[@]}")" \
    --argjson ratio_a "$ratio_a" --argjson ratio_d "$ratio_d" --argjson rss_ok "$rss_ok" \
    --argjson rss_target "$RSS_TARGET_MB" \
    '{
      benchmark: "inbound", date: $date,
      params: { messages: $messages, sessions: $sessions, size: $size, runs: $runs },
      machine: { nproc: $nproc, cpu_model: $cpu, mem_total_mb: $mem, kernel: $kernel,
                 tmpdir: $tmpdir, tmpdir_fs: $fs, loadavg_start: $load_start, loadavg_end: $load_end },
      versions: { postfix: $pf_version, postern: $pn_rev },
      postfix: { accepted_msgs_per_s: $pf_a, delivered_s: $pf_d, peak_rss_mb: $pf_r, peak_pss_mb: $pf_p,
                 runs: { accepted_msgs_per_s: $pf_a_runs, delivered_s: $pf_d_runs,
                         peak_rss_mb: $pf_r_runs, peak_pss_mb: $pf_p_runs } },
      postern: { accepted_msgs_per_s: $pn_a, delivered_s: $pn_d, peak_rss_mb: $pn_r, peak_pss_mb: $pn_p,
                 runs: { accepted_msgs_per_s: $pn_a_runs, delivered_s: $pn_d_runs,
                         peak_rss_mb: $pn_r_runs, peak_pss_mb: $pn_p_runs } },
      ratios: { accepted_postern_over_postfix: $ratio_a, delivery_time_postfix_over_postern: $ratio_d },
      postern_rss_target_mb: $rss_target, postern_rss_target_met: $rss_ok
    }' > "$RESULTS_DIR/latest.json.tmp"
mv "$RESULTS_DIR/latest.json.tmp" "$RESULTS_DIR/latest.json"
log "wrote $RESULTS_DIR/latest.json"
