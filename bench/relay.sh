#!/usr/bin/env bash
# bench/relay.sh — Postern vs Postfix relaying to Postfix's smtp-sink (issue 8).
#
# smtp-source sends MESSAGES messages of SIZE bytes to user@remote.test
# over SESSIONS parallel sessions (MODE keep: smtp-source -d, one connection
# per session; conn: one message per connection) to a throwaway Postfix or
# Postern on loopback, which relays them to relayhost = [127.0.0.1]:SINKPORT,
# where an smtp-sink of its own (one per run) captures every message to a
# file on tmpfs. Measured per run:
#   messages/s end to end = MESSAGES / time from the start of smtp-source
#       until the sink holds MESSAGES messages and the server's queue
#       directories (incoming, active, deferred, hold, maildrop) are empty
#   CPU per message = growth of utime+stime+cutime+cstime summed over the
#       server's process tree (not smtp-source, not the sink) / MESSAGES
#   peak PSS = max over 100 ms samples of the sum over the server's tree
# Every message must reach the sink exactly once (counted by smtp-source's
# unique Message-Id headers). Before the runs, one direct smtp-source ->
# smtp-sink run shows what the sink alone takes, so it is known not to be
# the bottleneck. RUNS runs per side, alternating who goes first, fresh
# instances each time; medians and Postern/Postfix ratios are printed and
# written to RESULTS_FILE. See bench/README.md.
#
# Runs as root (Postfix's master needs it). Only loopback traffic.
# Everything it starts is stopped by pid in the EXIT trap.

set -euo pipefail

MESSAGES=${MESSAGES:-5000}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-3}
SESSIONS=${SESSIONS:-10}
MODE=${MODE:-keep}                          # keep (smtp-source -d) or conn
SIDES=${SIDES:-"postfix postern"}
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-300}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
POSTFIX_PORT=${POSTFIX_PORT:-26025}
SINK_PORT=${SINK_PORT:-27025}
TARGET_RATE=2.0         # issue 8: relay rate >= 2.0x Postfix's

BENCH_NAME=relay
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
POSTERN_BIN=$(realpath -m "${POSTERN_BIN:-$REPO/target/release}")
RESULTS_FILE=$(realpath -m "${RESULTS_FILE:-$BENCH_DIR/results/issue8-relay.json}")
# The sink's capture files are the measuring instrument, not the servers'
# work: on tmpfs they cost the sink no disk writes (on a busy ext4 disk
# smtp-sink -d managed ~850 msg/s, on tmpfs ~3,400).
SINK_TMPDIR=${SINK_TMPDIR:-/dev/shm}
[[ -d $SINK_TMPDIR && -w $SINK_TMPDIR ]] || SINK_TMPDIR=$BENCH_TMPDIR
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for v in MESSAGES SIZE RUNS SESSIONS DELIVERY_TIMEOUT POSTFIX_PORT SINK_PORT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[[ $MODE == keep || $MODE == conn ]] || die "MODE is keep or conn (got '$MODE')"
SIDE_LIST=()
for s in $SIDES; do
    [[ $s == postfix || $s == postern ]] || die "SIDES may only contain 'postfix' and 'postern' (got '$s')"
    [[ " ${SIDE_LIST[*]} " == *" $s "* ]] || SIDE_LIST+=("$s")
done
((${#SIDE_LIST[@]})) || die "SIDES is empty"
[[ $(id -u) -eq 0 ]] || die "run as root (Postfix's master needs it)"

bench_prereqs
[[ -x /usr/sbin/smtp-sink ]] || command -v smtp-sink >/dev/null || die "smtp-sink missing (it comes with the postfix package)"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release --workspace --bins"
    (cd "$REPO" && cargo build --release --workspace --bins >&2) || die "cargo build --release --workspace --bins failed"
fi
[[ -x $POSTERN_BIN/postern && -x $POSTERN_BIN/postqueue ]] || die "no postern binaries in $POSTERN_BIN"
bench_scratch
SINK_SCRATCH=$(mktemp -d "$SINK_TMPDIR/postern-relay-sink.XXXXXX")
chmod 755 "$SINK_SCRATCH"   # the sink runs as nobody under root
# The sink's directory is not under SCRATCH: removed here, after its sink
# is stopped, keeping the exit status for bench_cleanup.
relay_cleanup() {
    local rc=$?
    [[ -z ${SINK_PID:-} ]] || kill "$SINK_PID" 2>/dev/null || true
    rm -rf -- "$SINK_SCRATCH"
    (exit "$rc")
    bench_cleanup
}
trap relay_cleanup EXIT

SOURCE_FLAGS=(-s "$SESSIONS")
[[ $MODE == keep ]] && SOURCE_FLAGS+=(-d)
RCPT=user@remote.test

# ---------------------------------------------------------------- the sink
# sink_start DIR: an smtp-sink on a free port capturing every transaction
# to DIR/m.XXXXXXXX; sets SINK_PID and SINK_ADDR. As root it must drop to
# a user (-u): nobody, who gets DIR.
sink_start() {
    local dir=$1 port i
    local -a u=()
    mkdir -p "$dir"
    if (($(id -u) == 0)); then chown nobody "$dir"; u=(-u nobody); fi
    port=$(free_port "$SINK_PORT")
    # -m: as many sessions as both servers may open (Postfix's smtp
    # process limit is 100); the backlog is listen(2)'s.
    smtp-sink "${u[@]}" -h sink.remote.test -m 512 -d "$dir/m." "127.0.0.1:$port" 512 \
        > "$dir.log" 2>&1 &
    SINK_PID=$!
    OUR_PIDS+=("$SINK_PID")
    for ((i = 0; i < 100; i++)); do ! port_free "$port" && break; sleep 0.05; done
    ! port_free "$port" || die "smtp-sink did not listen on $port: $(tail -n 5 "$dir.log")"
    SINK_ADDR=127.0.0.1:$port
}
sink_stop() {
    kill "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
    forget OUR_PIDS "$SINK_PID"
}
# sink_check DIR: every capture holds one of smtp-source's Message-Ids
# (pid.fd.counter, unique within one smtp-source run); prints
# "FILES UNIQUE_IDS".
sink_check() {
    local files ids
    files=$(count_files "$1")
    ids=$(find "$1" -maxdepth 1 -type f -name 'm.*' -exec grep -h -m 1 -i '^Message-Id:' {} + | sort -u | wc -l)
    echo "$files $ids"
}

# -------------------------------------------------------------- the queues
queue_left() { # DIR...: files left in these queue directories (recursively)
    local d n=0
    for d in "$@"; do
        [[ -d $d ]] || continue
        n=$((n + $(find "$d" -type f | wc -l)))
    done
    echo "$n"
}

declare -A VALS=()
add_val() { VALS["$1|$2"]+="${VALS["$1|$2"]:+ }$3"; }
vals() { echo "${VALS["$1|$2"]:-}"; }
last_val() { local -a a; read -ra a <<< "$(vals "$@")"; echo "${a[-1]}"; }

# measure SIDE RUN PORT SINKDIR RUN_DIR ROOT QUEUE_DIR...
measure() {
    local side=$1 run=$2 port=$3 sink=$4 dir=$5 root=$6 n left t0 t_end="" deadline cpu0 cpu1 rc files ids
    shift 6
    local -a queues=("$@")
    log "$side run $run: smtp-source ${SOURCE_FLAGS[*]} -m $MESSAGES -l $SIZE -t $RCPT -> 127.0.0.1:$port -> sink $SINK_ADDR"
    start_sampler "$root" "$dir/rss"
    cpu0=$(tree_cpu_ticks "$root")
    t0=$(now)
    ( rc=0; smtp-source -c "${SOURCE_FLAGS[@]}" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t "$RCPT" \
          "127.0.0.1:$port" > "$dir/source.out" 2> "$dir/source.err" || rc=$?
      echo "$EPOCHREALTIME" > "$dir/source.end"; echo "$rc" > "$dir/source.rc" ) &
    local sub=$!
    OUR_PIDS+=("$sub")
    deadline=$(awk -v a="$t0" -v b="$DELIVERY_TIMEOUT" 'BEGIN { printf "%d", a + b }')
    while :; do
        n=$(count_files "$sink")
        if ((n >= MESSAGES)); then
            left=$(queue_left "${queues[@]}")
            if ((left == 0)); then t_end=$(now); break; fi
        fi
        if [[ -e $dir/source.rc ]] && (($(cat "$dir/source.rc") != 0)); then break; fi
        ((${EPOCHREALTIME%.*} <= deadline)) \
            || die "$side run $run: timeout after ${DELIVERY_TIMEOUT}s: $n of $MESSAGES at the sink, $(queue_left "${queues[@]}") queue files left; see $dir"
        sleep 0.05
    done
    wait "$sub" 2>/dev/null || true
    forget OUR_PIDS "$sub"
    rc=$(cat "$dir/source.rc")
    ((rc == 0)) || die "$side run $run: smtp-source failed (exit $rc): $(tail -c 400 "$dir/source.err")"
    local sent
    sent=$(tr '\r' '\n' < "$dir/source.out" | grep -E '^[0-9]+$' | tail -n 1 || true)
    [[ -z $sent || $sent -eq $MESSAGES ]] || die "$side run $run: smtp-source completed $sent of $MESSAGES messages"
    sleep 0.5   # late duplicates would show up here
    cpu1=$(tree_cpu_ticks "$root")
    stop_sampler
    read -r files ids <<< "$(sink_check "$sink")"
    ((files == MESSAGES)) || die "$side run $run: the sink has $files messages, expected exactly $MESSAGES"
    ((ids == MESSAGES)) || die "$side run $run: the sink's $files messages carry $ids distinct Message-Ids, expected $MESSAGES (duplicates)"
    add_val "$side" rate "$(fdiv "$MESSAGES" "$(fsub "$t_end" "$t0")")"
    add_val "$side" accept "$(fdiv "$MESSAGES" "$(fsub "$(cat "$dir/source.end")" "$t0")")"
    add_val "$side" secs "$(fsub "$t_end" "$t0")"
    add_val "$side" cpu "$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v m="$MESSAGES" 'BEGIN { printf "%.3f", t * 1000 / hz / m }')"
    add_val "$side" rss "$(kb_to_mb "$(cat "$dir/rss")")"
    add_val "$side" pss "$(kb_to_mb "$(cat "$dir/rss.pss")")"
    log "$side run $run: $(last_val "$side" rate) msg/s end to end ($(last_val "$side" secs) s; accepted at $(last_val "$side" accept) msg/s)," \
        "$(last_val "$side" cpu) ms CPU per message, peak PSS $(last_val "$side" pss) MB (RSS $(last_val "$side" rss) MB);" \
        "sink: $files messages, $ids distinct"
}

run_postfix() { # RUN
    local base="$SCRATCH/postfix-$1" port sp
    sink_start "$SINK_SCRATCH/postfix-$1"
    port=$(free_port "$POSTFIX_PORT")
    # disable_dns_lookups: deprecated in Postfix 3.x but still honoured;
    # smtp_dns_support_level = disabled is the current spelling. The
    # bracketed relayhost needs no MX lookup either way.
    pf_instance "$base" "$port" "relayhost = [127.0.0.1]:${SINK_ADDR##*:}
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtp_tls_security_level = none" ""
    log "postfix run $1: instance on 127.0.0.1:$port"
    pf_start "$base" "$port"
    sp=$base/spool
    measure postfix "$1" "$port" "$SINK_SCRATCH/postfix-$1" "$base" "$PF_MASTER" \
        "$sp/incoming" "$sp/active" "$sp/deferred" "$sp/hold" "$sp/maildrop"
    postqueue -c "$base/etc" -p > "$base/postqueue.out" 2>&1 || true
    grep -q 'Mail queue is empty' "$base/postqueue.out" || die "postfix run $1: postqueue -p: $(head -n 5 "$base/postqueue.out")"
    pf_stop "$base"
    sink_stop
}

run_postern() { # RUN
    local base="$SCRATCH/postern-$1" q
    sink_start "$SINK_SCRATCH/postern-$1"
    pn_init "$base"
    pn_set_params "$PN_INST" "relayhost = \"[127.0.0.1]:${SINK_ADDR##*:}\"" 'smtp_tls_security_level = "none"' \
        'disable_dns_lookups = true'
    pn_start "$base" || die "$PN_START_ERR"
    log "postern run $1: smtpd on 127.0.0.1:$PN_PORT (master pid $PN_FG)"
    q=$PN_INST/queue
    measure postern "$1" "$PN_PORT" "$SINK_SCRATCH/postern-$1" "$base" "$PN_FG" \
        "$q/incoming" "$q/active" "$q/deferred" "$q/hold" "$q/maildrop"
    "$POSTERN_BIN/postqueue" -c "$PN_INST" -p > "$base/postqueue.out" 2>&1 || true
    grep -q 'Mail queue is empty' "$base/postqueue.out" || die "postern run $1: postqueue -p: $(head -n 5 "$base/postqueue.out")"
    pn_stop "$base"
    sink_stop
}

# ------------------------------------------------------- the sink, alone
sink_start "$SINK_SCRATCH/direct"
log "direct: smtp-source ${SOURCE_FLAGS[*]} -m $MESSAGES -l $SIZE -> sink $SINK_ADDR (no server in between)"
t0=$(now)
smtp-source "${SOURCE_FLAGS[@]}" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t "$RCPT" "$SINK_ADDR" \
    > "$SCRATCH/direct.out" 2>&1 || die "direct smtp-source -> smtp-sink failed: $(tail -c 400 "$SCRATCH/direct.out")"
for ((i = 0; i < 100; i++)); do (($(count_files "$SINK_SCRATCH/direct") >= MESSAGES)) && break; sleep 0.05; done
t1=$(now)
read -r files ids <<< "$(sink_check "$SINK_SCRATCH/direct")"
((files == MESSAGES && ids == MESSAGES)) || die "direct run: the sink has $files messages with $ids distinct Message-Ids"
SINK_RATE=$(fdiv "$MESSAGES" "$(fsub "$t1" "$t0")")
log "direct: $SINK_RATE msg/s into the sink"
sink_stop
rm -rf -- "$SINK_SCRATCH/direct"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
nsides=${#SIDE_LIST[@]}
for ((r = 1; r <= RUNS; r++)); do
    for ((k = 0; k < nsides; k++)); do
        side=${SIDE_LIST[$(((r - 1 + k) % nsides))]}
        if [[ $side == postfix ]]; then run_postfix "$r"; else run_postern "$r"; fi
        # Captures are checked; they only take memory on tmpfs now.
        rm -rf -- "$SINK_SCRATCH/$side-$r"
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
declare -A MED=()
for side in postfix postern; do
    for m in rate secs accept cpu rss pss; do
        # shellcheck disable=SC2046
        MED["$side|$m"]=$(median $(vals "$side" "$m"))
    done
done
ratio() { # METRIC: Postern against Postfix, > 1 means Postern is better
    local x=${MED["postern|$1"]} y=${MED["postfix|$1"]}
    if [[ $x == null || $y == null ]]; then echo null
    elif [[ $1 == rate || $1 == accept ]]; then fdiv "$x" "$y"
    else fdiv "$y" "$x"
    fi
}
show() { [[ $1 == null || -z $1 ]] && echo - || echo "$1"; }
RATE_RATIO=$(ratio rate)
MET=null
[[ $RATE_RATIO == null ]] || MET=$(awk -v v="$RATE_RATIO" -v t="$TARGET_RATE" 'BEGIN { print (v >= t) ? "true" : "false" }')
if [[ $MODE == keep ]]; then how="one connection per session (smtp-source -d)"; else how="one message per connection"; fi
{
    echo
    echo "Relay: $MESSAGES messages x $SIZE B to $RCPT, $SESSIONS sessions, $how,"
    echo "relayhost [127.0.0.1]:port (smtp-sink, one per run); median of $RUNS run(s)"
    printf '%-32s %10s %10s %10s\n' "" Postfix Postern Pn/Pf
    row() { printf '%-32s %10s %10s %10s\n' "$1" "$(show "${MED["postfix|$2"]}")" "$(show "${MED["postern|$2"]}")" "$( (($3)) && show "$(ratio "$2")")"; }
    row "messages/s end to end" rate 1
    row "seconds end to end" secs 1
    row "accepted, msg/s (smtp-source)" accept 1
    row "CPU per message, ms" cpu 1
    row "peak PSS, all processes, MB" pss 1
    row "peak RSS, all processes, MB" rss 0
    for s in postfix postern; do
        [[ -n $(vals "$s" rate) ]] || continue
        printf 'per run %-8s rate=[%s] accept=[%s] cpu=[%s] pss=[%s] rss=[%s]\n' "$s:" "$(vals "$s" rate)" "$(vals "$s" accept)" "$(vals "$s" cpu)" "$(vals "$s" pss)" "$(vals "$s" rss)"
    done
    echo "sink alone (smtp-source -> smtp-sink, no server): $SINK_RATE msg/s"
    if [[ $MET != null ]]; then
        echo "target (issue 8): $(show "$RATE_RATIO")x Postfix's rate, target >= ${TARGET_RATE}x: $([[ $MET == true ]] && echo met || echo "NOT met")"
    fi
    echo "ratios Pn/Pf: rate Postern/Postfix; seconds, CPU and PSS Postfix/Postern; > 1 means Postern is better"
    echo "machine: $(nproc) CPU(s) $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); load average $LOAD_START -> $LOAD_END"
}

arr() { local x; x=$(vals "$1" "$2"); [[ -n $x ]] && echo "[${x// /,}]" || echo '[]'; }
sides='{}'
for s in postfix postern; do
    [[ -n $(vals "$s" rate) ]] || continue
    sides=$(jq --arg k "$s" --argjson rate "${MED["$s|rate"]}" --argjson secs "${MED["$s|secs"]}" \
        --argjson acc "${MED["$s|accept"]}" --argjson ar "$(arr "$s" accept)" \
        --argjson cpu "${MED["$s|cpu"]}" --argjson rss "${MED["$s|rss"]}" --argjson pss "${MED["$s|pss"]}" \
        --argjson rr "$(arr "$s" rate)" --argjson sr "$(arr "$s" secs)" --argjson cr "$(arr "$s" cpu)" \
        --argjson mr "$(arr "$s" rss)" --argjson pr "$(arr "$s" pss)" \
        '. + { ($k): { msgs_per_s: $rate, seconds: $secs, accepted_msgs_per_s: $acc, cpu_ms_per_msg: $cpu,
                       peak_rss_mb: $rss, peak_pss_mb: $pss,
                       runs: { msgs_per_s: $rr, seconds: $sr, accepted_msgs_per_s: $ar, cpu_ms_per_msg: $cr,
                               peak_rss_mb: $mr, peak_pss_mb: $pr } } }' <<< "$sides")
done
mkdir -p "$(dirname "$RESULTS_FILE")"
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson messages "$MESSAGES" --argjson size "$SIZE" --argjson runs "$RUNS" --argjson sessions "$SESSIONS" \
    --arg mode "$how" --arg rcpt "$RCPT" --argjson sink_rate "$SINK_RATE" \
    --argjson machine "$(machine_json "$LOAD_START" "$LOAD_END")" \
    --arg pf_version "$(postconf -c /etc/postfix -dh mail_version 2>/dev/null || echo unknown)" \
    --arg pn_rev "$(bin_rev "$POSTERN_BIN")" --arg pn_bin "$POSTERN_BIN" --argjson sides "$sides" \
    --argjson rr "$RATE_RATIO" --argjson rs "$(ratio secs)" --argjson rc "$(ratio cpu)" --argjson rp "$(ratio pss)" \
    --argjson ra "$(ratio accept)" \
    --argjson t "$TARGET_RATE" --argjson met "$MET" \
    '{ benchmark: "issue8-relay", date: $date,
       params: { messages: $messages, size: $size, runs: $runs, sessions: $sessions, mode: $mode, recipient: $rcpt,
                 relayhost: "[127.0.0.1]:SINKPORT, smtp-sink -d capturing to tmpfs, one sink per run" },
       sink_alone_msgs_per_s: $sink_rate,
       machine: $machine,
       versions: { postfix: $pf_version, postern: $pn_rev, postern_bin: $pn_bin },
       sides: $sides,
       ratios_note: "postern_vs_postfix: msgs_per_s = Postern/Postfix; seconds, cpu_per_msg and peak_pss = Postfix/Postern; > 1 means Postern is better",
       ratios: { postern_vs_postfix: { msgs_per_s: $rr, seconds: $rs, accepted_msgs_per_s: $ra, cpu_per_msg: $rc, peak_pss: $rp } },
       target: { msgs_per_s_min_ratio: $t, value: $rr, met: $met } }' > "$RESULTS_FILE.tmp"
mv "$RESULTS_FILE.tmp" "$RESULTS_FILE"
log "wrote $RESULTS_FILE"
