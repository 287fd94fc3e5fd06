#!/usr/bin/env bash
# bench/profile.sh — where one inbound message's work goes, per daemon.
#
# Starts a throwaway Postern dev instance, sends MESSAGES messages of SIZE
# bytes with smtp-source over SESSIONS sessions (MODE keep: one connection
# per session, smtp-source -d; conn: one message per connection) to one
# Maildir user, waits until all are in Maildir/new, and prints per daemon
# (smtpd, qmgr, local-delivery, anvil, pickup, master) what each message
# cost:
#
#   TOOL=strace     syscalls per message, by name (strace -f -ff attached
#                   to master and every process under it, following every
#                   process and thread they start). A thread counts for the
#                   process it belongs to (its thread group), so smtpd's
#                   tokio-rt-worker threads count for smtpd.
#   TOOL=cpu        user and system CPU ms per message, from /proc of
#                   master and every process under it, no tracing. Workers
#                   that exit during the run show up as "exited workers"
#                   (master reaps them: their CPU moves into its cutime).
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
MARKER=.postern-profile     # OUT is emptied at start only if it holds this (or is empty)

log() { printf '[profile %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $TOOL == strace || $TOOL == callgrind || $TOOL == cpu ]] || die "TOOL is strace, cpu or callgrind (got '$TOOL')"
[[ $MODE == keep || $MODE == conn ]] || die "MODE is keep or conn (got '$MODE')"
for v in MESSAGES SIZE SESSIONS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
command -v smtp-source > /dev/null || die "smtp-source not found (Debian package postfix)"
command -v jq > /dev/null || die "jq not found (Debian package jq)"
case $TOOL in
    strace) command -v strace > /dev/null || die "strace not found (Debian package strace)"
        command -v python3 > /dev/null || die "python3 not found (strace mode sums the traces with it)" ;;
    callgrind) command -v valgrind > /dev/null || die "valgrind not found (Debian package valgrind)" ;;
esac
[[ -x $POSTERN_BIN/postern ]] || die "no postern binary in $POSTERN_BIN (cargo build --release)"

# OUT is removed and recreated: refuse anything this script did not make.
if [[ -e $OUT ]]; then
    [[ -d $OUT && ( -e $OUT/$MARKER || -z $(ls -A -- "$OUT") ) ]] \
        || die "OUT=$OUT exists and was not made by profile.sh; choose another OUT"
    rm -rf -- "$OUT"
fi
mkdir -p "$OUT"
: > "$OUT/$MARKER"
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
pids=()   # our background processes (strace), stopped first on exit
fg=""     # postern start-fg, which is the master
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
    if [[ -n $fg ]]; then
        timeout 60 "$bindir/postern" -c "$inst" stop > /dev/null 2>&1 || kill "$fg" 2> /dev/null || true
    fi
    wait 2> /dev/null || true
}
trap cleanup EXIT

"$bindir/postern" -c "$inst" start-fg --ready-json > "$OUT/ready.json" 2> "$OUT/postern.log" &
fg=$!
ready=""
for ((i = 0; i < 600; i++)); do
    ready=$(grep -m1 '^{' "$OUT/ready.json" 2> /dev/null || true)
    [[ -n $ready ]] && break
    kill -0 "$fg" 2> /dev/null || die "postern exited: $(tail -n 5 "$OUT/postern.log")"
    sleep 0.1
done
[[ -n $ready ]] || die "postern printed no ready line within 60 s: $(tail -n 5 "$OUT/postern.log")"
listen=$(jq -r '[.services[] | select(.name == "smtp") | .listen[]] | first // empty' <<< "$ready") \
    || die "cannot parse ready line: $ready"
port=${listen##*:}
[[ $port =~ ^[0-9]+$ ]] || die "no smtpd port in ready line: $ready"

tree_pids() { # master and every process under it, master first
    local f line rest pid p
    local -a fields queue=("$fg")
    local -A kids=()
    for f in /proc/[0-9]*/stat; do
        { read -r line < "$f"; } 2> /dev/null || continue
        rest=${line##*) } # comm may contain spaces or ')'
        read -ra fields <<< "$rest"
        pid=${f#/proc/}
        kids[${fields[1]}]+=" ${pid%/stat}"
    done
    while ((${#queue[@]})); do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        echo "$p"
        # shellcheck disable=SC2206
        [[ -n ${kids[$p]:-} ]] && queue+=(${kids[$p]})
    done
    return 0
}
# cpu_snapshot: "PID NAME UTIME STIME CUTIME CSTIME" (clock ticks) for
# master and every process under it. start-fg's process is the master
# whatever its comm says, so it is named "master".
cpu_snapshot() {
    local p name line
    local -a f
    while read -r p; do
        { read -r line < "/proc/$p/stat"; } 2> /dev/null || continue
        read -ra f <<< "${line##*) }" # f[0] is field 3 (state), so utime (field 14) is f[11]
        if [[ $p == "$fg" ]]; then
            name=master
        else
            { read -r name < "/proc/$p/comm"; } 2> /dev/null || continue
        fi
        printf '%s %s %s %s %s %s\n' "$p" "${name// /_}" "${f[11]}" "${f[12]}" "${f[13]}" "${f[14]}"
    done < <(tree_pids)
}
# thread_names TID...: "TID TGID NAME" per thread that still exists: its
# thread group from /proc/TID/status and that group's name from
# /proc/TGID/comm (a thread's own comm is the thread's name, e.g.
# tokio-rt-worker, not the daemon's).
thread_names() {
    local t tgid name
    for t in "$@"; do
        tgid=$(awk '/^Tgid:/ { print $2 }' "/proc/$t/status" 2> /dev/null) || continue
        [[ -n $tgid ]] || continue
        if [[ $tgid == "$fg" ]]; then
            name=master
        else
            { read -r name < "/proc/$tgid/comm"; } 2> /dev/null || continue
        fi
        printf '%s %s %s\n' "$t" "$tgid" "${name// /_}"
    done
}
tracer=""
if [[ $TOOL == cpu ]]; then
    cpu_snapshot > "$OUT/cpu0"
elif [[ $TOOL == strace ]]; then
    # Attach to master and every process under it (-p with -f takes every
    # thread of each) and follow whatever they start from now on: workers
    # master spawns on demand, threads the runtimes add.
    mkdir -p "$OUT/st"
    mapfile -t procs < <(tree_pids)
    ((${#procs[@]} > 1)) || die "no workers under master"
    args=()
    for w in "${procs[@]}"; do args+=(-p "$w"); done
    strace -f -ff -qq -o "$OUT/st/trace" "${args[@]}" 2> "$OUT/strace.err" &
    tracer=$!
    pids+=("$tracer")
    # The load starts only once every thread has strace as its tracer; a
    # fixed sleep may start it early on a busy machine.
    attached=0
    for ((i = 0; i < 200 && !attached; i++)); do
        kill -0 "$tracer" 2> /dev/null || die "strace exited: $(tail -n 3 "$OUT/strace.err")"
        attached=1
        while read -r w; do
            for t in /proc/"$w"/task/[0-9]*; do
                tp=$(awk '/^TracerPid:/ { print $2 }' "$t/status" 2> /dev/null) || continue
                [[ -z $tp || $tp == "$tracer" ]] || { attached=0; break 2; }
            done
        done < <(tree_pids)
        ((attached)) || sleep 0.05
    done
    ((attached)) || die "strace did not attach to every thread within 10 s"
    # Threads that end during the run are gone from /proc by the end.
    mapfile -t tids < <(for w in $(tree_pids); do ls /proc/"$w"/task 2> /dev/null; done)
    thread_names "${tids[@]}" > "$OUT/st/names.start"
fi

new=$inst/home/bench/Maildir/new
flags=(-s "$SESSIONS")
[[ $MODE == keep ]] && flags+=(-d)
log "smtp-source ${flags[*]} -m $MESSAGES -l $SIZE -> 127.0.0.1:$port ($TOOL)"
t0=$EPOCHREALTIME
smtp-source "${flags[@]}" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t bench@bench.test \
    "127.0.0.1:$port" > "$OUT/source.out" 2>&1 || die "smtp-source failed: $(tail -n 3 "$OUT/source.out")"
t1=$EPOCHREALTIME
n=0
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
    # Per pid: growth of its own utime/stime (a process started during the
    # run counts whole). One that exited during the run is missing from the
    # second snapshot; its CPU is in the cutime/cstime of whoever reaped it,
    # whose growth is the "exited workers" line.
    awk -v n="$MESSAGES" -v hz="$(getconf CLK_TCK)" '
        FNR == NR { u0[$1] = $3; s0[$1] = $4; cu0[$1] = $5; cs0[$1] = $6; next }
        {
            u[$2] += $3 - u0[$1]; s[$2] += $4 - s0[$1]
            xu += $5 - cu0[$1]; xs += $6 - cs0[$1]
        }
        END {
            k = 1000 / hz / n
            for (d in u) {
                tu += u[d]; ts += s[d]
                printf "%s: user %.3f ms, system %.3f ms per message\n", d, u[d] * k, s[d] * k | "sort"
            }
            close("sort")
            if (xu + xs > 0) printf "exited workers: user %.3f ms, system %.3f ms per message\n", xu * k, xs * k
            printf "all processes: user %.3f ms, system %.3f ms per message\n", (tu + xu) * k, (ts + xs) * k
        }' "$OUT/cpu0" "$OUT/cpu1"
elif [[ $TOOL == strace ]]; then
    # Name every traced thread by its thread group while the instance
    # still runs (before strace lets go, so none has been reaped meanwhile).
    mapfile -t tids < <(for f in "$OUT"/st/trace.*; do echo "${f##*.}"; done)
    thread_names "${tids[@]}" > "$OUT/st/names.end"
    kill "$tracer" 2> /dev/null || true
    wait "$tracer" 2> /dev/null || true
    pids=()
    python3 - "$OUT/st" "$MESSAGES" << 'EOF'
import collections, os, re, sys

d, n = sys.argv[1], int(sys.argv[2])
# tid -> name of its thread group, for every thread alive when tracing
# started or when it ended (the later wins: a process may exec meanwhile).
names = {}
for f in ("names.start", "names.end"):
    for line in open(os.path.join(d, f)):
        tid, _tgid, name = line.split()
        names[tid] = name
# A thread or process started during the run and gone by its end: one that
# ran execve is named after the program it ran; any other after the
# thread that cloned it (a thread belongs to its creator's group; a fork
# without exec runs its parent's code).
parent, execd = {}, {}
per = collections.defaultdict(collections.Counter)
pat = re.compile(r"^(?:\d+:\d+:\d+\.\d+ )?([a-z_0-9]+)\(")
ret = re.compile(r"\)\s+=\s+(-?\d+)")
for f in sorted(f for f in os.listdir(d) if f.startswith("trace.")):
    tid = f.split(".", 1)[1]
    for line in open(os.path.join(d, f), errors="replace"):
        m = pat.match(line)
        if not m:
            continue
        sc = m.group(1)
        per[tid][sc] += 1
        r = ret.search(line)
        if sc in ("clone", "clone3", "fork", "vfork") and r and int(r.group(1)) > 0:
            parent[r.group(1)] = tid
        elif sc == "execve" and r and r.group(1) == "0" and line.count('"') >= 2:
            execd[tid] = os.path.basename(line.split('"', 2)[1])


def name(tid):
    seen = set()
    while tid not in seen:
        seen.add(tid)
        if tid in names:
            return names[tid]
        if tid in execd:
            return execd[tid]
        if tid not in parent:
            break
        tid = parent[tid]
    return "?"


bydaemon = collections.defaultdict(collections.Counter)
threads = collections.Counter()
for tid, c in per.items():
    dn = name(tid)
    bydaemon[dn].update(c)
    threads[dn] += 1
for dn in sorted(bydaemon):
    c = bydaemon[dn]
    tot = sum(c.values())
    print(f"{dn}: {tot / n:.1f} syscalls per message ({threads[dn]} threads traced)")
    top = [f"{k} {v / n:.2f}" for k, v in c.most_common() if v / n >= 0.05]
    print("   " + (", ".join(top) if top else "(no call 0.05 times per message or more)"))
EOF
else
    timeout 120 "$bindir/postern" -c "$inst" stop > /dev/null 2>&1 || true
    wait "$fg" 2> /dev/null || true
    fg=""
    for f in "$OUT"/cg/*; do
        [[ -s $f ]] || continue
        total=$(grep -m1 '^summary:' "$f" | awk '{print $2}' || true)
        [[ -n $total ]] || total=$(grep -m1 '^totals:' "$f" | awk '{print $2}' || true)
        printf '%s %s\n' "$(basename "${f%.*}")" "${total:-0}"
    done | awk -v n="$MESSAGES" '{s[$1] += $2} END {for (d in s) printf "%s: %.0f instructions per message\n", d, s[d] / n}' | sort
    log "callgrind files in $OUT/cg (callgrind_annotate FILE)"
fi
