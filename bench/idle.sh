#!/usr/bin/env bash
# bench/idle.sh — CONNECTIONS idle SMTP clients held by ONE Postern smtpd.
#
# bench/smtp-load --idle opens CONNECTIONS connections (at most OPEN_AT_ONCE
# at a time), reads each greeting, sends one EHLO, holds them all HOLD
# seconds, then sends a NOOP on each (every one must answer 250) and QUIT.
# Postern runs with master.toml's smtpd maxproc = 1 and the per-client
# limits out of the way (smtpd_client_connection_count_limit = 0,
# smtpd_process_connection_limit = CONNECTIONS + 100), so one process
# serves them all; which process serves is read from the kernel (ss -tnp:
# the owner of every established socket on the port), and it must be one.
# During the hold its VmRSS and Pss (/proc/PID/smaps_rollup) are sampled
# every second; the largest values, the same process's figures before the
# load, the difference per connection, and the whole Postern tree's total
# are reported. Target (issue 7): CONNECTIONS = 5,000 in under 100 MB RSS.
#
# Postfix, for comparison, serves one client per smtpd process, so it gets
# default_process_limit = CONNECTIONS + 100 and is measured as the sum over
# its master's whole tree; it is skipped with a reason if the machine has
# too little memory or too small a pid limit for that many processes.
# Results go to RESULTS_FILE. Runs as root; loopback only; everything it
# starts is stopped by pid in the EXIT trap. See bench/README.md.

set -euo pipefail

CONNECTIONS=${CONNECTIONS:-5000}
HOLD=${HOLD:-10}
OPEN_AT_ONCE=${OPEN_AT_ONCE:-100}
SIDES=${SIDES:-"postern postfix"}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
POSTFIX_PORT=${POSTFIX_PORT:-26025}
TARGET_MB=100
# Both sides: long enough that the first clients are still idle-but-alive
# when the last are opened (Postfix forks 5,000 processes for them, which
# can take minutes on a small machine; its default is 300s).
SMTPD_TIMEOUT=${SMTPD_TIMEOUT:-3600s}

BENCH_NAME=idle
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
POSTERN_BIN=$(realpath -m "${POSTERN_BIN:-$REPO/target/release}")
RESULTS_FILE=$(realpath -m "${RESULTS_FILE:-$BENCH_DIR/results/issue7-idle.json}")
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for v in CONNECTIONS HOLD OPEN_AT_ONCE POSTFIX_PORT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
SIDE_LIST=()
for s in $SIDES; do
    [[ $s == postfix || $s == postern ]] || die "SIDES may only contain 'postfix' and 'postern' (got '$s')"
    [[ " ${SIDE_LIST[*]} " == *" $s "* ]] || SIDE_LIST+=("$s")
done
[[ $(id -u) -eq 0 ]] || die "run as root (Postfix's master needs it)"

bench_prereqs
bench_build
bench_scratch

# The load generator holds every connection: its descriptor limit must
# allow that (it raises its soft limit to the hard one itself).
NEED_FDS=$((CONNECTIONS + 200))
HARD_NOFILE=$(ulimit -Hn)
if [[ $HARD_NOFILE != unlimited ]] && ((HARD_NOFILE < NEED_FDS)); then
    # Root may raise its own hard limit; the servers started from here inherit it.
    ulimit -Hn "$NEED_FDS" 2>/dev/null || die "RLIMIT_NOFILE hard limit $HARD_NOFILE < $NEED_FDS and cannot be raised"
fi
ulimit -Sn "$(ulimit -Hn)"
log "RLIMIT_NOFILE: soft $(ulimit -Sn), hard $(ulimit -Hn)"

# serving_pids PORT: "PID COUNT" for every process owning an established
# TCP socket with local port PORT.
serving_pids() {
    ss -Htnp state established "( sport = :$1 )" \
        | grep -o 'pid=[0-9]*' | sort | uniq -c | awk '{ sub("pid=", "", $2); print $2, $1 }'
}

declare -A R=()    # SIDE|FIELD -> value (JSON literal)
# hold_and_measure SIDE PORT ROOT DIR BASE_PIDS: runs the idle load; during
# the hold samples the serving process(es) and the whole tree.
hold_and_measure() {
    local side=$1 port=$2 root=$3 dir=$4 i line n base_rss base_pss r p max_r=0 max_p=0 tr tp max_tr=0 max_tp=0 rc
    local -a serving
    # shellcheck disable=SC2086
    read -r base_rss base_pss <<< "$(mem_of $5)"
    log "$side: $LOADGEN --idle $CONNECTIONS --hold $HOLD --sessions $OPEN_AT_ONCE 127.0.0.1:$port"
    ( rc=0; "$LOADGEN" "127.0.0.1:$port" --idle "$CONNECTIONS" --hold "$HOLD" --sessions "$OPEN_AT_ONCE" \
        --timeout 120 --release-file "$dir/release" > "$dir/load.json" 2> "$dir/load.err" || rc=$?; echo "$rc" > "$dir/load.rc" ) &
    local sub=$!
    OUR_PIDS+=("$sub")
    for ((i = 0; i < 6000; i++)); do
        grep -q '"event":"holding"' "$dir/load.json" 2>/dev/null && break
        [[ -e $dir/load.rc ]] && break
        sleep 0.1
    done
    line=$(grep -m 1 '"event":"holding"' "$dir/load.json" 2>/dev/null || true)
    [[ -n $line ]] || die "$side: smtp-load did not get to the hold: $(cat "$dir/load.json" "$dir/load.err" | tail -c 600)"
    log "$side: holding $(jq -r .connections <<< "$line") connections ($(jq -r .failures <<< "$line") failed to open)"
    sleep 1
    serving_pids "$port" > "$dir/serving"
    mapfile -t serving < <(cut -d' ' -f1 "$dir/serving")
    local t_hold
    t_hold=$(now)
    # Sample for HOLD seconds (at least once); smtp-load holds on until the
    # release file exists, however long a sample of thousands of processes takes.
    for ((i = 0; i == 0 || $(awk -v a="$(now)" -v b="$t_hold" -v h="$HOLD" 'BEGIN { print (a - b < h - 1) ? 1 : 0 }'); i++)); do
        # shellcheck disable=SC2046
        read -r r p <<< "$(mem_of "${serving[@]}")"
        ((r > max_r)) && max_r=$r
        ((p > max_p)) && max_p=$p
        # shellcheck disable=SC2046
        read -r tr tp <<< "$(mem_of $(tree_pids "$root"))"
        ((tr > max_tr)) && max_tr=$tr
        ((tp > max_tp)) && max_tp=$tp
        sleep 1
    done
    : > "$dir/release"
    while [[ ! -e $dir/load.rc ]]; do sleep 0.2; done
    wait "$sub" 2>/dev/null || true
    forget OUR_PIDS "$sub"
    rc=$(cat "$dir/load.rc")
    local res
    res=$(grep -v '"event"' "$dir/load.json" | tail -n 1)
    log "$side: smtp-load exit $rc: $res"
    R[$side|load]=$res
    R[$side|rc]=$rc
    # Postfix has one process per connection: list at most 10 of them.
    R[$side|serving]=$(jq -R 'split(" ") | { pid: (.[0] | tonumber), connections: (.[1] | tonumber) }' < "$dir/serving" \
        | jq -s '{ processes: length, connections: (map(.connections) | add // 0), first: .[:10] }')
    R[$side|serving_rss_mb]=$(kb_to_mb "$max_r")
    R[$side|serving_pss_mb]=$(kb_to_mb "$max_p")
    R[$side|base_rss_mb]=$(kb_to_mb "$base_rss")
    R[$side|base_pss_mb]=$(kb_to_mb "$base_pss")
    R[$side|tree_rss_mb]=$(kb_to_mb "$max_tr")
    R[$side|tree_pss_mb]=$(kb_to_mb "$max_tp")
    R[$side|samples]=$i
    # Growth per connection: of Postern's one smtpd; of Postfix's whole
    # tree (every connection is a process of its own, the base is the tree).
    local grown=$max_r
    [[ $side == postfix ]] && grown=$max_tr
    R[$side|per_conn_kb]=$(awk -v a="$grown" -v b="$base_rss" -v n="$CONNECTIONS" 'BEGIN { printf "%.1f", (a - b) / n }')
}

run_postern() {
    local base=$SCRATCH/postern smtpd_pids
    pn_init "$base"
    pn_set_maxproc "$PN_INST" 1
    pn_set_params "$PN_INST" "smtpd_client_connection_count_limit = 0" "smtpd_client_connection_rate_limit = 0" \
        "smtpd_process_connection_limit = $((CONNECTIONS + 100))" "smtpd_timeout = \"$SMTPD_TIMEOUT\""
    pn_start "$base" || die "$PN_START_ERR"
    log "postern: smtpd on 127.0.0.1:$PN_PORT (master pid $PN_FG)"
    proc_scan
    smtpd_pids=$(tree_from_scan "$PN_FG" | while read -r p; do if is_proc "$p" smtpd; then echo "$p"; fi; done | tr '\n' ' ')
    log "postern: smtpd processes before the load: $smtpd_pids"
    # shellcheck disable=SC2086
    hold_and_measure postern "$PN_PORT" "$PN_FG" "$base" "$smtpd_pids"
    pn_stop "$base"
}

run_postfix() {
    local base=$SCRATCH/postfix port avail_mb pid_max need_mb
    # Each smtpd costs a process (about 1-2 MB of its own pages, more RSS).
    avail_mb=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
    pid_max=$(cat /proc/sys/kernel/pid_max)
    need_mb=$((CONNECTIONS * 3 / 2 + 2048))
    if ((avail_mb < need_mb)); then
        R[postfix|skipped]="\"$CONNECTIONS smtpd processes need about $need_mb MB; $avail_mb MB available\""
        return 0
    fi
    if ((pid_max < CONNECTIONS * 2 + 1000)); then
        R[postfix|skipped]="\"kernel.pid_max $pid_max is too small for $CONNECTIONS more processes\""
        return 0
    fi
    port=$(free_port "$POSTFIX_PORT")
    pf_instance "$base" "$port" "default_process_limit = $((CONNECTIONS + 100))
smtpd_client_connection_count_limit = 0
smtpd_timeout = $SMTPD_TIMEOUT" ""
    log "postfix: instance on 127.0.0.1:$port, default_process_limit = $((CONNECTIONS + 100))"
    pf_start "$base" "$port"
    # shellcheck disable=SC2046
    hold_and_measure postfix "$port" "$PF_MASTER" "$base" "$(tree_pids "$PF_MASTER" | tr '\n' ' ')"
    pf_stop "$base"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for s in "${SIDE_LIST[@]}"; do
    if [[ $s == postern ]]; then run_postern; else run_postfix; fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
side_json() {
    local s=$1
    if [[ -n ${R[$s|skipped]:-} ]]; then jq -n --argjson why "${R[$s|skipped]}" '{ skipped: $why }'; return; fi
    jq -n --argjson load "${R[$s|load]:-null}" --argjson rc "${R[$s|rc]}" --argjson serving "${R[$s|serving]}" \
        --argjson sr "${R[$s|serving_rss_mb]}" --argjson sp "${R[$s|serving_pss_mb]}" \
        --argjson br "${R[$s|base_rss_mb]}" --argjson bp "${R[$s|base_pss_mb]}" \
        --argjson tr "${R[$s|tree_rss_mb]}" --argjson tp "${R[$s|tree_pss_mb]}" --argjson pc "${R[$s|per_conn_kb]}" --argjson samples "${R[$s|samples]}" \
        '{ all_served: ($rc == 0), load: $load, serving_processes: $serving.processes, serving: $serving,
           serving_rss_mb: $sr, serving_pss_mb: $sp, before_load_rss_mb: $br, before_load_pss_mb: $bp,
           rss_kb_per_connection: $pc, samples: $samples, all_processes_rss_mb: $tr, all_processes_pss_mb: $tp }'
}
sides='{}'
for s in "${SIDE_LIST[@]}"; do sides=$(jq --arg k "$s" --argjson v "$(side_json "$s")" '. + { ($k): $v }' <<< "$sides"); done
target_met=null
if [[ -n ${R[postern|serving_rss_mb]:-} ]]; then
    target_met=$(jq -n --argjson s "$sides" --argjson t "$TARGET_MB" \
        --argjson c "$CONNECTIONS" \
        '$s.postern | (.all_served and .serving_processes == 1 and .serving.connections == $c and .serving_rss_mb < $t)')
fi
{
    echo
    echo "$CONNECTIONS idle connections (greeting + EHLO), held ${HOLD} s, then NOOP on each"
    for s in "${SIDE_LIST[@]}"; do
        if [[ -n ${R[$s|skipped]:-} ]]; then echo "$s: skipped: $(jq -r . <<< "${R[$s|skipped]}")"; continue; fi
        jq -r --arg s "$s" '"\($s): served \(.load.noop_ok // 0) of \(.load.requested // "?") (NOOP 250), opened in \(.load.open_s // "?") s, held \(.load.held_s // "?") s; " +
            "\(.serving_processes) process(es) serving: RSS \(.serving_rss_mb) MB, PSS \(.serving_pss_mb) MB " +
            "(before: RSS \(.before_load_rss_mb) MB, PSS \(.before_load_pss_mb) MB; \(.rss_kb_per_connection) KB RSS per connection, \(.samples) sample(s)); " +
            "all processes: RSS \(.all_processes_rss_mb) MB, PSS \(.all_processes_pss_mb) MB"' <<< "$(side_json "$s")"
    done
    [[ $target_met == null ]] || echo "target (issue 7): $CONNECTIONS idle connections in one smtpd under $TARGET_MB MB RSS: $([[ $target_met == true ]] && echo met || echo "NOT met")"
}
mkdir -p "$(dirname "$RESULTS_FILE")"
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson c "$CONNECTIONS" --argjson hold "$HOLD" \
    --argjson open "$OPEN_AT_ONCE" --argjson machine "$(machine_json "$LOAD_START" "$LOAD_END")" \
    --arg pf_version "$(postconf -c /etc/postfix -dh mail_version 2>/dev/null || echo unknown)" \
    --arg pn_rev "$(bin_rev "$POSTERN_BIN")" --arg pn_bin "$POSTERN_BIN" --argjson sides "$sides" \
    --argjson t "$TARGET_MB" --argjson met "$target_met" \
    '{ benchmark: "issue7-idle", date: $date,
       params: { connections: $c, hold_s: $hold, open_at_once: $open,
                 session: "greeting, EHLO, hold, NOOP (250 expected), QUIT; plain SMTP" },
       machine: $machine, versions: { postfix: $pf_version, postern: $pn_rev, postern_bin: $pn_bin },
       target: { postern_single_smtpd_rss_mb_max: $t, met: $met },
       sides: $sides }' > "$RESULTS_FILE.tmp"
mv "$RESULTS_FILE.tmp" "$RESULTS_FILE"
log "wrote $RESULTS_FILE"
