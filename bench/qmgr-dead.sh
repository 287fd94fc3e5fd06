#!/usr/bin/env bash
# bench/qmgr-dead.sh — what 10,000 queued messages to a dead destination
# cost qmgr, and whether they slow local mail (issue 8).
#
# A Postern dev instance without an SMTP client service (every remote
# delivery fails as an unreachable agent, so the destination is dead)
# gets DEAD messages to u@dead.example from Postfix's smtp-source. The
# backoff and queue run times are cut to RETRY seconds, so every RETRY
# seconds all of them are due again: qmgr reads deferred/ once, takes the
# due files back, finds the destination dead and defers them without an
# attempt. Then it measures qmgr's CPU (utime+stime from /proc/PID/stat)
# over IDLE seconds with nothing else flowing, and over a run of LOCAL
# local messages sent meanwhile, with the local messages' throughput.
# Target: qmgr under 5% of one core, local mail not delayed.
#
# Usage: bench/qmgr-dead.sh [BIN_DIR]   (default target/release, else target/debug)
# Loopback only; everything it starts is stopped by pid in the EXIT trap.

set -euo pipefail

DEAD=${DEAD:-10000}
LOCAL=${LOCAL:-2000}
RETRY=${RETRY:-10}
IDLE=${IDLE:-60}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-}
if [[ -z $BIN ]]; then
    BIN=$REPO/target/release
    [[ -x $BIN/postern ]] || BIN=$REPO/target/debug
fi
[[ -x $BIN/postern ]] || { echo "no postern binary in $BIN (cargo build --workspace --bins)" >&2; exit 1; }
command -v smtp-source >/dev/null || [[ -x /usr/sbin/smtp-source ]] || { echo "smtp-source missing (apt-get install postfix)" >&2; exit 1; }
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)

log() { printf '[qmgr-dead %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/qmgr-dead.XXXXXX")
DIR=$TMP/inst
MASTER=""
cleanup() {
    if [[ -n $MASTER ]] && kill -0 "$MASTER" 2>/dev/null; then
        kill -TERM "$MASTER" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$MASTER" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$MASTER" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN/postern" init --dev "$DIR" --any-port >/dev/null
for p in "queue_run_delay = ${RETRY}s" "minimal_backoff_time = ${RETRY}s" \
         "maximal_backoff_time = ${RETRY}s" "maillog_file = $DIR/maillog"; do
    "$BIN/postconf" -c "$DIR" -e "$p"
done
"$BIN/postern" -c "$DIR" start-fg --ready-json > "$TMP/ready.json" 2>"$TMP/master.err" &
MASTER=$!
for _ in $(seq 300); do [[ -s $TMP/ready.json ]] && break; sleep 0.1; done
[[ -s $TMP/ready.json ]] || { cat "$TMP/master.err" >&2; exit 1; }
ADDR=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(s["listen"][0] for s in r["services"] if s["name"]=="smtp"))' "$TMP/ready.json")
QMGR=""
for c in $(pgrep -P "$MASTER"); do
    [[ $(cat "/proc/$c/comm" 2>/dev/null) == qmgr ]] && QMGR=$c
done
[[ -n $QMGR ]] || { echo "no qmgr under master $MASTER" >&2; exit 1; }
ticks() { local s; s=$(cat "/proc/$QMGR/stat"); s=${s##*) }; read -ra f <<< "$s"; echo $((f[11] + f[12])); }
HZ=$(getconf CLK_TCK)
count() { find "$DIR/queue/$1" -maxdepth 1 -type f | wc -l; }

maildir_count() { find "$DIR/home/suporte/Maildir/new" -type f | wc -l; }
# local_run: sends LOCAL local messages, waits for them in the Maildir;
# sets RATE (msg/s) and PCT (qmgr's CPU meanwhile, % of a core).
local_run() {
    local want a b s0 s1 took
    want=$(( $(maildir_count) + LOCAL ))
    a=$(ticks); s0=$(date +%s.%N)
    "$SOURCE" -s 20 -m "$LOCAL" -l 4096 -f suporte@postern.test -t suporte@postern.test "$ADDR"
    while (( $(maildir_count) < want )); do sleep 0.1; done
    s1=$(date +%s.%N); b=$(ticks)
    took=$(echo "$s1 - $s0" | bc)
    PCT=$(echo "scale=2; ($b - $a) * 100 / $HZ / $took" | bc)
    RATE=$(echo "scale=1; $LOCAL / $took" | bc)
}
local_run
base_rate=$RATE; base_pct=$PCT
log "baseline, empty queue: $LOCAL local messages at $base_rate msg/s, qmgr ${base_pct}% of a core"

log "instance at $ADDR, qmgr pid $QMGR; queueing $DEAD messages to a dead destination"
t0=$(date +%s.%N)
"$SOURCE" -s 20 -m "$DEAD" -l 2048 -f suporte@postern.test -t u@dead.example "$ADDR"
# Taken in and deferred (the first pass reads, records and moves each one).
for _ in $(seq 600); do
    (( $(count incoming) == 0 && $(count active) == 0 && $(count deferred) >= DEAD )) && break
    sleep 1
done
t1=$(date +%s.%N)
log "$(count deferred) in deferred/, $(count active) in active/ after $(printf '%.1f' "$(echo "$t1 - $t0" | bc)") s"

# Let one retry round pass so the measurement starts in the steady state.
sleep "$RETRY"
a=$(ticks); s0=$(date +%s.%N)
sleep "$IDLE"
b=$(ticks); s1=$(date +%s.%N)
idle_pct=$(echo "scale=2; ($b - $a) * 100 / $HZ / ($s1 - $s0)" | bc)
rounds=$(grep -c "destination dead" "$DIR/maillog" || true)
log "idle with $DEAD dead messages: qmgr ${idle_pct}% of a core over ${IDLE}s ($rounds destination deaths logged so far)"
grep "rescheduled without an attempt" "$DIR/maillog" | tail -3 >&2 || true

local_run
log "$LOCAL local messages meanwhile: $RATE msg/s, qmgr ${PCT}% of a core (their scheduling included)"
printf '{"dead": %d, "retry_s": %d, "idle_s": %d, "qmgr_idle_cpu_pct": %s, "local": %d, "baseline_local_msgs_per_s": %s, "baseline_qmgr_cpu_pct": %s, "local_msgs_per_s": %s, "qmgr_cpu_pct_during_local": %s, "deferred_left": %d}\n' \
    "$DEAD" "$RETRY" "$IDLE" "$idle_pct" "$LOCAL" "$base_rate" "$base_pct" "$RATE" "$PCT" "$(count deferred)"
