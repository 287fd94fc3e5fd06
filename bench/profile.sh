#!/usr/bin/env bash
# bench/profile.sh — where one inbound message's work goes, per daemon.
#
# Starts a throwaway Postern dev instance, sends MESSAGES messages of SIZE
# bytes with smtp-source over SESSIONS sessions (MODE keep: one connection
# per session, smtp-source -d; conn: one message per connection) to one
# Maildir user, waits until all are in Maildir/new, and prints per daemon
# (smtpd, qmgr, local-delivery, anvil, master) what each message cost:
#
#   TOOL=strace     syscalls per message, by name (strace -f -ff on the
#                   running master and every worker it starts)
#   TOOL=cpu        user and system CPU ms per message, from /proc of
#                   every worker (they outlive the run), no tracing
#   TOOL=callgrind  instructions per message (every worker started under
#                   valgrind --tool=callgrind through a wrapper directory;
#                   counts are repeatable on a noisy machine). The
#                   callgrind.out files stay in OUT for callgrind_annotate.
#
# Not a benchmark: tracing slows everything down. Counts, not times, are
# the result. Only loopback traffic; everything started is stopped on exit.

set -euo pipefail

TOOL=${TOOL:-strace}
MESSAGES=${MESSAGES:-1000}
SIZE=${SIZE:-4096}
SESSIONS=${SESSIONS:-10}
MODE=${MODE:-keep}
POSTERN_BIN=$(realpath -m "${POSTERN_BIN:-$(dirname "${BASH_SOURCE[0]}")/../target/release}")
OUT=$(realpath -m "${OUT:-/tmp/postern-profile}")

log() { printf '[profile %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $TOOL == strace || $TOOL == callgrind || $TOOL == cpu ]] || die "TOOL is strace, cpu or callgrind (got '$TOOL')"
[[ $MODE == keep || $MODE == conn ]] || die "MODE is keep or conn (got '$MODE')"
for v in MESSAGES SIZE SESSIONS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
command -v smtp-source > /dev/null || die "smtp-source not found (Debian package postfix)"
case $TOOL in strace) command -v strace ;; callgrind) command -v valgrind ;; esac > /dev/null || die "$TOOL not found"
[[ -x $POSTERN_BIN/postern ]] || die "no postern binary in $POSTERN_BIN (cargo build --release)"

rm -rf -- "$OUT"
mkdir -p "$OUT"
inst=$OUT/inst
bindir=$POSTERN_BIN
if [[ $TOOL == callgrind ]]; then
    # master runs daemon_directory/NAME; a wrapper there runs the real one
    # under valgrind. fds 3.. (status pipe, listeners) pass through.
    bindir=$OUT/wrap
    mkdir -p "$bindir" "$OUT/cg"
    for f in "$POSTERN_BIN"/*; do
        [[ -f $f && -x $f ]] || continue
        n=$(basename "$f")
        case $n in
            smtpd | qmgr | local-delivery | anvil | pickup)
                printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg/%s.%%p "%s" "$@"\n' \
                    "$OUT" "$n" "$f" > "$bindir/$n"
                chmod 755 "$bindir/$n" ;;
            *) cp "$f" "$bindir/$n" ;;
        esac
    done
fi

"$bindir/postern" init --dev "$inst" --user bench:bench --hostname mail.bench.test --any-port \
    > "$OUT/init.log" 2>&1 || die "postern init failed: $(tail -n 5 "$OUT/init.log")"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
    [[ -n ${fg:-} ]] && { timeout 60 "$bindir/postern" -c "$inst" stop > /dev/null 2>&1 || kill "$fg" 2> /dev/null || true; }
    wait 2> /dev/null || true
}
trap cleanup EXIT

"$bindir/postern" -c "$inst" start-fg --ready-json > "$OUT/ready.json" 2> "$OUT/postern.log" &
fg=$!
for ((i = 0; i < 600; i++)); do
    grep -q '^{' "$OUT/ready.json" 2> /dev/null && break
    kill -0 "$fg" 2> /dev/null || die "postern exited: $(tail -n 5 "$OUT/postern.log")"
    sleep 0.1
done
listen=$(jq -r '[.services[] | select(.name == "smtpd") | .listen[]] | first' < <(grep -m1 '^{' "$OUT/ready.json"))
port=${listen##*:}
[[ $port =~ ^[0-9]+$ ]] || die "no smtpd port in ready line"

cpu_snapshot() { # prints "NAME UTIME STIME" (clock ticks) per worker of master
    local p
    for p in $(pgrep -P "$fg"); do
        [[ -r /proc/$p/stat ]] || continue
        # Fields after the ")" that ends comm: utime is the 12th, stime the 13th.
        printf '%s %s\n' "$(cat "/proc/$p/comm")" "$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12, $13}')"
    done
}
[[ $TOOL == cpu ]] && cpu_snapshot > "$OUT/cpu0"
if [[ $TOOL == strace ]]; then
    # Attach to the workers that run now and follow what they start.
    mkdir -p "$OUT/st"
    mapfile -t workers < <(pgrep -P "$fg")
    ((${#workers[@]})) || die "no workers under master"
    args=()
    for w in "${workers[@]}"; do args+=(-p "$w"); done
    strace -f -ff -qq -o "$OUT/st/trace" "${args[@]}" 2> "$OUT/strace.err" &
    pids+=($!)
    sleep 2
fi

new=$inst/home/bench/Maildir/new
flags=(-s "$SESSIONS")
[[ $MODE == keep ]] && flags+=(-d)
log "smtp-source ${flags[*]} -m $MESSAGES -l $SIZE -> 127.0.0.1:$port ($TOOL)"
t0=$EPOCHREALTIME
smtp-source "${flags[@]}" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t bench@bench.test \
    "127.0.0.1:$port" > "$OUT/source.out" 2>&1 || die "smtp-source failed: $(tail -n 3 "$OUT/source.out")"
t1=$EPOCHREALTIME
for ((i = 0; i < 6000; i++)); do
    n=$(find "$new" -type f 2> /dev/null | wc -l)
    ((n >= MESSAGES)) && break
    sleep 0.1
done
((n >= MESSAGES)) || die "only $n of $MESSAGES delivered"
sleep 1
t2=$EPOCHREALTIME
log "all $MESSAGES delivered"
# Timed under the tool, so only a rough figure (meaningful for TOOL=cpu).
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$MESSAGES" 'BEGIN {
    printf "accepted in %.2f s (%.0f msg/s), all in Maildir/new after %.2f s\n", b - a, n / (b - a), c - a }'

if [[ $TOOL == cpu ]]; then
    cpu_snapshot > "$OUT/cpu1"
    awk -v n="$MESSAGES" -v hz="$(getconf CLK_TCK)" '
        FNR == NR { u0[$1] += $2; s0[$1] += $3; next }
        { u1[$1] += $2; s1[$1] += $3 }
        END {
            for (d in u1) {
                u = (u1[d] - u0[d]) * 1000 / hz / n; s = (s1[d] - s0[d]) * 1000 / hz / n
                tu += u; ts += s
                printf "%s: user %.3f ms, system %.3f ms per message\n", d, u, s
            }
            printf "all workers: user %.3f ms, system %.3f ms per message\n", tu, ts
        }' "$OUT/cpu0" "$OUT/cpu1" | sort
elif [[ $TOOL == strace ]]; then
    kill "${pids[0]}" 2> /dev/null || true
    wait "${pids[0]}" 2> /dev/null || true
    pids=()
    # Name every trace by the process it is (threads share their
    # process's name through /proc, gone by now, so use the exec'd path
    # recorded in master's log... simpler: the comm of each pid's first
    # line is not in the trace, so group by the thread group via -ff
    # files and ps snapshots taken while running is racy). Workers were
    # attached by pid; map pid -> name from the ready snapshot.
    for f in "$OUT"/st/trace.*; do
        p=${f##*.}
        name=$(cat "/proc/$p/comm" 2> /dev/null || echo "?")
        printf '%s %s\n' "$p" "$name"
    done > "$OUT/st/names"
    python3 - "$OUT/st" "$MESSAGES" << 'EOF'
import collections, os, re, sys
d, n = sys.argv[1], int(sys.argv[2])
names = dict(l.split(None, 1) for l in open(os.path.join(d, "names")).read().splitlines())
# A thread's name is its process's; threads that are gone show "?" and are
# attributed to the process that cloned them.
parent = {}
per = collections.defaultdict(collections.Counter)
pat = re.compile(r"^(?:\d+:\d+:\d+\.\d+ )?([a-z_0-9]+)\(")
files = sorted(f for f in os.listdir(d) if f.startswith("trace."))
for f in files:
    pid = f.split(".")[1]
    for line in open(os.path.join(d, f), errors="replace"):
        m = pat.match(line)
        if not m:
            continue
        sc = m.group(1)
        per[pid][sc] += 1
        if sc in ("clone", "clone3"):
            r = line.rsplit("=", 1)[-1].strip().split()[0]
            if r.isdigit():
                parent[r] = pid
def name(pid):
    seen = set()
    while names.get(pid, "?").strip() == "?" and pid in parent and pid not in seen:
        seen.add(pid); pid = parent[pid]
    return names.get(pid, "?").strip()
bydaemon = collections.defaultdict(collections.Counter)
for pid, c in per.items():
    bydaemon[name(pid)].update(c)
for dn in sorted(bydaemon):
    c = bydaemon[dn]
    tot = sum(c.values())
    print(f"{dn}: {tot / n:.1f} syscalls per message")
    print("   " + ", ".join(f"{k} {v / n:.2f}" for k, v in c.most_common() if v / n >= 0.05))
EOF
else
    timeout 120 "$bindir/postern" -c "$inst" stop > /dev/null 2>&1 || true
    wait "$fg" 2> /dev/null || true
    fg=
    for f in "$OUT"/cg/*; do
        [[ -s $f ]] || continue
        total=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
        [[ -n $total ]] || total=$(grep -m1 '^totals:' "$f" | awk '{print $2}')
        printf '%s %s\n' "$(basename "${f%.*}")" "${total:-0}"
    done | awk -v n="$MESSAGES" '{s[$1] += $2} END {for (d in s) printf "%s: %.0f instructions per message\n", d, s[d] / n}' | sort
    log "callgrind files in $OUT/cg (callgrind_annotate FILE)"
fi
