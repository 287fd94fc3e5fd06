#!/usr/bin/env bash
# bench/imap.sh — Postern's IMAP against Dovecot's on copies of one Maildir (issue 10).
#
# Builds one Maildir of MESSAGES realistic messages (bench/pop3-load.py
# maildir: 2-50 KB, new/ and cur/, delivery-style names) and one of
# IDLE_MESSAGES for the idle users, then per run and side hard-links fresh
# copies of them (same files, no index: each side starts cold) and starts a
# throwaway Dovecot (dovecot -F -c FILE: its own base_dir, state_dir, log,
# passwd-file, loopback port) or a throwaway Postern dev instance
# (its imap service, the same passwd entries). Workloads, in this order on
# every instance, each by bench/imap-load.py:
#   cold    the first session: LOGIN, SELECT INBOX (both build their index)
#   warm    the second session, the same commands
#   fetch   FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE), checked: one
#           response per message and the same RFC822.SIZE sum on both sides
#   bodies  UID FETCH 1:* BODY.PEEK[]; MB/s = literal octets / time
#   search  SEARCH HEADER SUBJECT "invoice", then SEARCH BODY "tomorrow
#           yesterday" (the same hits on both sides)
#   idle    IDLE_SESSIONS users logged in, INBOX selected, in IDLE: PSS of
#           the server tree minus the PSS before, / IDLE_SESSIONS
# CPU per workload: utime+stime+cutime+cstime of the server's whole tree
# (lib.sh), read before and after while the server idles. RUNS runs per
# side, alternating who goes first; medians and Postern/Dovecot ratios
# (> 1: Postern better) go to the terminal and RESULTS_FILE. See
# bench/README.md.
#
# Runs as root (the mailboxes belong to nobody, as a real user's would not
# belong to the server) or as an ordinary user (everything runs as that
# user). Only loopback traffic. Everything it starts is stopped by pid in
# the EXIT trap.

set -euo pipefail

MESSAGES=${MESSAGES:-100000}
RUNS=${RUNS:-3}
IDLE_SESSIONS=${IDLE_SESSIONS:-1000}
IDLE_MESSAGES=${IDLE_MESSAGES:-100}
SEED=${SEED:-1}
SIDES=${SIDES:-"dovecot postern"}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
DOVECOT_PORT=${DOVECOT_PORT:-27143}
TARGET_RATIO=1.5        # issue 10: >= 1.5x Dovecot on every line
TARGET_IDLE_KB=64       # issue 10: idle connections under 64 KB each

BENCH_NAME=imap
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
POSTERN_BIN=$(realpath -m "${POSTERN_BIN:-$REPO/target/release}")
RESULTS_FILE=$(realpath -m "${RESULTS_FILE:-$BENCH_DIR/results/issue10-imap.json}")
CLIENT=$BENCH_DIR/imap-load.py
MAKER=$BENCH_DIR/pop3-load.py
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for v in MESSAGES RUNS IDLE_SESSIONS IDLE_MESSAGES SEED DOVECOT_PORT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
SIDE_LIST=()
for s in $SIDES; do
    [[ $s == dovecot || $s == postern ]] || die "SIDES may only contain 'dovecot' and 'postern' (got '$s')"
    [[ " ${SIDE_LIST[*]} " == *" $s "* ]] || SIDE_LIST+=("$s")
done
((${#SIDE_LIST[@]})) || die "SIDES is empty"

# ------------------------------------------------------------ prerequisites
need=()
[[ -x /usr/lib/dovecot/imap ]] || need+=(dovecot-imapd)
command -v jq >/dev/null || need+=(jq)
command -v python3 >/dev/null || need+=(python3)
command -v ss >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
    (($(id -u) == 0)) || die "missing ${need[*]}: apt-get install -y ${need[*]} (as root)"
    log "installing ${need[*]} from Debian packages"
    created=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # Keep the package's own service from starting; removed right after.
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2; }
    ((created)) && rm -f /usr/sbin/policy-rc.d
fi
command -v dovecot >/dev/null || die "no dovecot binary"
CLK_TCK=$(getconf CLK_TCK)
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release --workspace --bins"
    (cd "$REPO" && cargo build --release --workspace --bins >&2) || die "cargo build --release --workspace --bins failed"
fi
[[ -x $POSTERN_BIN/postern && -x $POSTERN_BIN/imapd ]] || die "no postern and imapd binaries in $POSTERN_BIN"

# Who owns the mailboxes and runs the mail processes. As root: nobody (a
# mailbox owner that is not the server's user; Dovecot refuses uid 0 for
# mail anyway). Otherwise: the invoking user, and Dovecot's internal and
# login processes run as that user too.
if (($(id -u) == 0)); then
    MAIL_USER=nobody
    DC_INTERNAL=dovecot DC_LOGIN=dovenull
    if ! id dovecot >/dev/null 2>&1 || ! id dovenull >/dev/null 2>&1; then
        die "no dovecot/dovenull users (dovecot-core makes them)"
    fi
else
    MAIL_USER=$(id -un)
    DC_INTERNAL=$MAIL_USER DC_LOGIN=$MAIL_USER
    # Only root may chroot; anvil and imap-login do by default.
    DC_NOCHROOT="service anvil {
  chroot =
}"
fi
DC_NOCHROOT=${DC_NOCHROOT:-}
MAIL_UID=$(id -u "$MAIL_USER")
MAIL_GID=$(id -g "$MAIL_USER")
DC_INTERNAL_GROUP=$(id -gn "$DC_INTERNAL")

bench_scratch
PASS=bench

# -------------------------------------------------------------- mailboxes
log "building the $MESSAGES-message Maildir (seed $SEED) and the $IDLE_MESSAGES-message one for idle users"
mkdir -p "$SCRATCH/src"
python3 "$MAKER" maildir "$SCRATCH/src/Maildir" "$MESSAGES" "$SEED" > "$SCRATCH/src/maildir.json" \
    || die "building the Maildir failed: $(cat "$SCRATCH/src/maildir.json")"
python3 "$MAKER" maildir "$SCRATCH/src/Idle" "$IDLE_MESSAGES" "$((SEED + 1))" > "$SCRATCH/src/idle.json" \
    || die "building the idle Maildir failed: $(cat "$SCRATCH/src/idle.json")"
EXPECT_OCTETS=$(jq -r .crlf_bytes "$SCRATCH/src/maildir.json")
log "Maildir: $MESSAGES messages, $EXPECT_OCTETS octets (CRLF), $(count_files "$SCRATCH/src/Maildir/new") in new/, $(count_files "$SCRATCH/src/Maildir/cur") in cur/"
((MAIL_UID == $(id -u))) || chown -R "$MAIL_UID:$MAIL_GID" "$SCRATCH/src"

# homes BASE: BASE/home/bench/Maildir and BASE/home/iN/Maildir, hard links
# to the built files (cp -al: the same inodes, new directories), so both
# sides read the same bytes and neither finds an index of the other.
homes() {
    local base=$1 i
    mkdir -p "$base/home/bench"
    cp -al "$SCRATCH/src/Maildir" "$base/home/bench/Maildir"
    for ((i = 1; i <= IDLE_SESSIONS; i++)); do
        mkdir -p "$base/home/i$i"
        cp -al "$SCRATCH/src/Idle" "$base/home/i$i/Maildir"
    done
    ((MAIL_UID == $(id -u))) || chown -R "$MAIL_UID:$MAIL_GID" "$base/home"
    chmod 755 "$base" "$base/home"
}
# passwd_lines BASE HASH: the Dovecot passwd-file lines of every user
passwd_lines() {
    local i
    echo "bench:$2:$MAIL_UID:$MAIL_GID::$1/home/bench::"
    for ((i = 1; i <= IDLE_SESSIONS; i++)); do echo "i$i:$2:$MAIL_UID:$MAIL_GID::$1/home/i$i::"; done
}

# ---------------------------------------------------------------- Dovecot
DC_PID=""
dc_start() { # BASE: sets DC_PID, DC_ADDR
    local base=$1 port i
    mkdir -p "$base/run" "$base/state"
    port=$(free_port "$DOVECOT_PORT")
    passwd_lines "$base" "{PLAIN}$PASS" > "$base/passwd"
    cat > "$base/dovecot.conf" <<EOF
# Throwaway Dovecot written by bench/imap.sh; deleted after the run.
base_dir = $base/run
state_dir = $base/state
instance_name = postern-bench-imap
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = $base/dovecot.log
info_log_path = $base/dovecot.info.log
default_internal_user = $DC_INTERNAL
default_internal_group = $DC_INTERNAL_GROUP
default_login_user = $DC_LOGIN
# Every idle session is an imap process (and, with Dovecot's default
# service_count = 1, an imap-login process): room for all of them.
default_process_limit = $((IDLE_SESSIONS + 50))
default_client_limit = $((IDLE_SESSIONS * 2 + 100))
first_valid_uid = $MAIL_UID
passdb {
  driver = passwd-file
  args = scheme=PLAIN $base/passwd
}
userdb {
  driver = passwd-file
  args = $base/passwd
}
mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
$([[ -n $DC_NOCHROOT ]] && echo "  chroot =")
}
$DC_NOCHROOT
EOF
    dovecot -F -c "$base/dovecot.conf" > "$base/dovecot.fg.log" 2>&1 &
    DC_PID=$!
    OUR_PIDS+=("$DC_PID")
    for ((i = 0; i < 100; i++)); do
        kill -0 "$DC_PID" 2>/dev/null || die "dovecot exited at start-up: $(tail -n 5 "$base/dovecot.fg.log" "$base/dovecot.log" 2>/dev/null)"
        ! port_free "$port" && break
        sleep 0.1
    done
    ! port_free "$port" || die "dovecot is not listening on $port; see $base"
    DC_ADDR=127.0.0.1:$port
    sleep 1   # let config, auth and anvil settle, as for Postern
}
dc_stop() {
    local i
    kill "$DC_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$DC_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$DC_PID" 2>/dev/null || true
    wait "$DC_PID" 2>/dev/null || true
    forget OUR_PIDS "$DC_PID"
    DC_PID=""
}
# bench_cleanup (EXIT) TERMs DC_PID with the rest of OUR_PIDS; Dovecot's
# master stops its children on the way out.

# ---------------------------------------------------------------- Postern
pn_setup() { # BASE: a dev instance whose users are ours, imap on a free port
    local base=$1
    pn_init "$base"
    passwd_lines "$base" "{PLAIN}$PASS" > "$PN_INST/passwd"
    # Every idle session is its own imap-mail process (one session each,
    # as Dovecot's imap processes); the login process would stop a client
    # address at imap_client_connection_limit (10), and a user at imap_user_connection_limit.
    awk -v n=$((IDLE_SESSIONS + 20)) '
        function flush() { if (blk != "") { if (blk ~ /name = "imap-mail"/) gsub(/maxproc = [0-9]+/, "maxproc = " n, blk); printf "%s", blk; blk = "" } }
        /^\[\[service\]\]/ { flush() }
        { blk = blk $0 "\n" }
        END { flush() }' "$PN_INST/master.toml" > "$PN_INST/master.toml.new"
    mv "$PN_INST/master.toml.new" "$PN_INST/master.toml"
    pn_set_params "$PN_INST" "imap_client_connection_limit = 0" "imap_user_connection_limit = 0"
}

# ---------------------------------------------------------------- workloads
declare -A VALS=()
add_val() { VALS["$1|$2|$3"]+="${VALS["$1|$2|$3"]:+ }$4"; }
vals() { echo "${VALS["$1|$2|$3"]:-}"; }
last_val() { local -a a; read -ra a <<< "$(vals "$@")"; echo "${a[-1]}"; }
cpu_ms() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t * 1000 / hz }'; }
# What both sides must agree on (the first side's answers, then compared).
declare -A AGREE=()
agree() { # WHAT VALUE SIDE RUN
    if [[ -z ${AGREE[$1]:-} ]]; then AGREE[$1]=$2
    elif [[ ${AGREE[$1]} != "$2" ]]; then die "$3 run $4: $1 is $2, the other side said ${AGREE[$1]}"
    fi
}
# client SIDE RUN ROOT DIR NAME SUBCOMMAND ADDR: runs one client, CPU of the server tree around it
client() {
    local side=$1 run=$2 root=$3 dir=$4 name=$5 c0 c1 out
    c0=$(tree_cpu_ticks "$root")
    out=$(python3 "$CLIENT" "$6" "$7" bench "$PASS") || die "$side run $run $name: $out"
    c1=$(tree_cpu_ticks "$root")
    echo "$out" > "$dir/$name.json"
    [[ $(jq -r .exists <<< "$out") == "$MESSAGES" ]] || die "$side run $run $name: SELECT said $(jq -r .exists <<< "$out") EXISTS, expected $MESSAGES"
    add_val "$side" "$name" cpu "$(cpu_ms $((c1 - c0)))"
    CLIENT_OUT=$out
}

# workloads SIDE RUN ADDR ROOT DIR
workloads() {
    local side=$1 run=$2 addr=$3 root=$4 dir=$5 w out
    for w in cold warm; do
        client "$side" "$run" "$root" "$dir" "$w" select "$addr"
        add_val "$side" "$w" secs "$(jq -r .seconds <<< "$CLIENT_OUT")"
    done
    client "$side" "$run" "$root" "$dir" fetch fetch "$addr"
    out=$CLIENT_OUT
    [[ $(jq -r .fetched <<< "$out") == "$MESSAGES" ]] || die "$side run $run fetch: $(jq -r .fetched <<< "$out") FETCH responses, expected $MESSAGES"
    [[ $(jq -r .size_sum <<< "$out") == "$EXPECT_OCTETS" ]] || die "$side run $run fetch: RFC822.SIZE sum $(jq -r .size_sum <<< "$out"), expected $EXPECT_OCTETS"
    agree "RFC822.SIZE sum" "$(jq -r .size_sum <<< "$out")" "$side" "$run"
    add_val "$side" fetch secs "$(jq -r .seconds <<< "$out")"
    client "$side" "$run" "$root" "$dir" bodies bodies "$addr"
    out=$CLIENT_OUT
    [[ $(jq -r .fetched <<< "$out") == "$MESSAGES" ]] || die "$side run $run bodies: $(jq -r .fetched <<< "$out") FETCH responses, expected $MESSAGES"
    [[ $(jq -r .bytes <<< "$out") == "$EXPECT_OCTETS" ]] || die "$side run $run bodies: $(jq -r .bytes <<< "$out") octets of bodies, expected $EXPECT_OCTETS"
    agree "body octets" "$(jq -r .bytes <<< "$out")" "$side" "$run"
    add_val "$side" bodies mbps "$(jq -r .mb_per_s <<< "$out")"
    add_val "$side" bodies secs "$(jq -r .seconds <<< "$out")"
    client "$side" "$run" "$root" "$dir" search search "$addr"
    out=$CLIENT_OUT
    agree "SEARCH HEADER hits" "$(jq -r .header_hits <<< "$out")" "$side" "$run"
    agree "SEARCH BODY hits" "$(jq -r .body_hits <<< "$out")" "$side" "$run"
    add_val "$side" search_header secs "$(jq -r .header_seconds <<< "$out")"
    add_val "$side" search_body secs "$(jq -r .body_seconds <<< "$out")"

    # Idle sessions: PSS of the whole tree before and while they are held.
    local before after rb ra pid i n
    sleep 1
    # shellcheck disable=SC2046
    read -r rb before <<< "$(mem_of $(tree_pids "$root"))"
    python3 "$CLIENT" idle "$addr" i "$IDLE_SESSIONS" "$PASS" "$dir/idle.ready" "$dir/idle.release" \
        > "$dir/idle.json" 2>&1 &
    pid=$!
    OUR_PIDS+=("$pid")
    for ((i = 0; i < 3000; i++)); do
        [[ -e $dir/idle.ready ]] && break
        kill -0 "$pid" 2>/dev/null || die "$side run $run idle: the client exited: $(cat "$dir/idle.json")"
        sleep 0.1
    done
    [[ -e $dir/idle.ready ]] || die "$side run $run idle: $IDLE_SESSIONS sessions not in IDLE after 300 s"
    sleep 2   # every session is in IDLE; let its process settle
    # shellcheck disable=SC2046
    read -r ra after <<< "$(mem_of $(tree_pids "$root"))"
    n=$(tree_pids "$root" | wc -l)
    touch "$dir/idle.release"
    wait "$pid" || die "$side run $run idle: $(cat "$dir/idle.json")"
    forget OUR_PIDS "$pid"
    jq -e --argjson n "$IDLE_SESSIONS" '.done_ok == $n' "$dir/idle.json" > /dev/null \
        || die "$side run $run idle: not every session ended its IDLE with OK: $(cat "$dir/idle.json")"
    add_val "$side" idle pss_kb "$(awk -v a="$after" -v b="$before" -v n="$IDLE_SESSIONS" 'BEGIN { printf "%.1f", (a - b) / n }')"
    add_val "$side" idle total_pss_mb "$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.1f", (a - b) / 1024 }')"
    add_val "$side" idle rss_kb "$(awk -v a="$ra" -v b="$rb" -v n="$IDLE_SESSIONS" 'BEGIN { printf "%.1f", (a - b) / n }')"
    add_val "$side" idle procs "$n"
    log "$side run $run: cold $(last_val "$side" cold secs) s, warm $(last_val "$side" warm secs) s," \
        "FETCH envelopes $(last_val "$side" fetch secs) s, bodies $(last_val "$side" bodies mbps) MB/s," \
        "SEARCH header $(last_val "$side" search_header secs) s body $(last_val "$side" search_body secs) s," \
        "idle $(last_val "$side" idle pss_kb) kB PSS per session ($n processes)"
}

run_dovecot() { # RUN
    local base="$SCRATCH/dovecot-$1"
    mkdir -p "$base"
    homes "$base"
    dc_start "$base"
    log "dovecot run $1: imap on $DC_ADDR (master pid $DC_PID)"
    workloads dovecot "$1" "$DC_ADDR" "$DC_PID" "$base"
    dc_stop
}
run_postern() { # RUN
    local base="$SCRATCH/postern-$1" line port
    mkdir -p "$base"
    homes "$base"
    pn_setup "$base"
    pn_start "$base" || die "$PN_START_ERR"
    line=$(grep -m 1 '^{' "$base/ready.json")
    port=$(jq -r '[.services[] | select(.name == "imap") | .listen[]] | first // empty' <<< "$line")
    [[ $port == *:* ]] || die "no imap listen address in the ready line: $line"
    log "postern run $1: imap on $port (master pid $PN_FG)"
    workloads postern "$1" "$port" "$PN_FG" "$base"
    pn_stop "$base"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
nsides=${#SIDE_LIST[@]}
for ((r = 1; r <= RUNS; r++)); do
    for ((k = 0; k < nsides; k++)); do
        side=${SIDE_LIST[$(((r - 1 + k) % nsides))]}
        if [[ $side == dovecot ]]; then run_dovecot "$r"; else run_postern "$r"; fi
        rm -rf -- "$SCRATCH/$side-$r/home"   # links and indexes only; the results stay
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
declare -A MED=()
LINES=("cold secs" "cold cpu" "warm secs" "warm cpu" "fetch secs" "fetch cpu" "bodies mbps" "bodies cpu"
       "search_header secs" "search_body secs" "search cpu" "idle pss_kb" "idle total_pss_mb" "idle rss_kb")
for side in dovecot postern; do
    for l in "${LINES[@]}"; do
        read -r w m <<< "$l"
        # shellcheck disable=SC2046
        MED["$side|$w|$m"]=$(median $(vals "$side" "$w" "$m"))
    done
done
ratio() { # WORKLOAD METRIC: > 1 means Postern is better
    local x=${MED["postern|$1|$2"]} y=${MED["dovecot|$1|$2"]}
    if [[ $x == null || $y == null || -z $x || -z $y ]]; then echo null
    elif [[ $2 == mbps ]]; then fdiv "$x" "$y"
    else fdiv "$y" "$x"
    fi
}
met() { [[ $1 == null ]] && { echo null; return; }; awk -v v="$1" -v t="$TARGET_RATIO" 'BEGIN { print (v >= t) ? "true" : "false" }'; }
show() { [[ $1 == null || -z $1 ]] && echo - || echo "$1"; }
label() {
    case "$1 $2" in
        "cold secs") echo "(a) cold LOGIN+SELECT, s" ;;
        "warm secs") echo "(b) warm LOGIN+SELECT, s" ;;
        "fetch secs") echo "(c) FETCH 1:* (FLAGS UID SIZE ENV), s" ;;
        "bodies mbps") echo "(d) UID FETCH 1:* BODY.PEEK[], MB/s" ;;
        "search_header secs") echo "(e) SEARCH HEADER SUBJECT, s" ;;
        "search_body secs") echo "(f) SEARCH BODY, s" ;;
        "search cpu") echo "    CPU of (e)+(f), ms" ;;
        "idle pss_kb") echo "(g) idle connection, PSS kB each" ;;
        "idle total_pss_mb") echo "    total PSS of them, MB" ;;
        "idle rss_kb") echo "    RSS kB each (not a target)" ;;
        *) echo "    CPU, ms" ;;
    esac
}
IDLE_MET=null
[[ -n ${MED["postern|idle|pss_kb"]} && ${MED["postern|idle|pss_kb"]} != null ]] \
    && IDLE_MET=$(awk -v v="${MED["postern|idle|pss_kb"]}" -v t="$TARGET_IDLE_KB" 'BEGIN { print (v < t) ? "true" : "false" }')
{
    echo
    echo "IMAP: $MESSAGES messages (${AGREE["RFC822.SIZE sum"]:-?} octets) in INBOX; idle: $IDLE_SESSIONS connections of users with $IDLE_MESSAGES messages each; median of $RUNS run(s)"
    printf '%-38s %10s %10s %10s  %s\n' "" Dovecot Postern Pn/Dc "target >= ${TARGET_RATIO}x"
    for l in "${LINES[@]}"; do
        read -r w m <<< "$l"
        v=$(ratio "$w" "$m")
        t=""
        [[ $m == rss_kb ]] || t=$(case $(met "$v") in true) echo met ;; false) echo "NOT met" ;; *) echo - ;; esac)
        printf '%-38s %10s %10s %10s  %s\n' "$(label "$w" "$m")" "$(show "${MED["dovecot|$w|$m"]}")" "$(show "${MED["postern|$w|$m"]}")" "$(show "$v")" "$t"
    done
    echo "Postern idle connection under ${TARGET_IDLE_KB} kB PSS: $IDLE_MET"
    echo "agreed by both sides: RFC822.SIZE sum ${AGREE["RFC822.SIZE sum"]:-?}, body octets ${AGREE["body octets"]:-?}, SEARCH hits header ${AGREE["SEARCH HEADER hits"]:-?} body ${AGREE["SEARCH BODY hits"]:-?}"
    echo "ratios Pn/Dc: MB/s Postern/Dovecot; seconds, CPU and memory Dovecot/Postern; > 1 means Postern is better"
    echo "machine: $(nproc) CPU(s) $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); load average $LOAD_START -> $LOAD_END"
}

sides='{}'
for s in dovecot postern; do
    obj='{}'
    for l in "${LINES[@]}"; do
        read -r w m <<< "$l"
        x=$(vals "$s" "$w" "$m")
        [[ -n $x ]] || continue
        obj=$(jq --arg k "${w}_$m" --argjson med "${MED["$s|$w|$m"]}" --argjson runs "[${x// /,}]" \
            '. + { ($k): { median: $med, runs: $runs } }' <<< "$obj")
    done
    x=$(vals "$s" idle procs)
    [[ -n $x ]] && obj=$(jq --argjson p "[${x// /,}]" '. + { idle_tree_processes: $p }' <<< "$obj")
    sides=$(jq --arg k "$s" --argjson o "$obj" '. + { ($k): $o }' <<< "$sides")
done
ratios='{}'
targets='{}'
for l in "${LINES[@]}"; do
    read -r w m <<< "$l"
    v=$(ratio "$w" "$m")
    ratios=$(jq --arg k "${w}_$m" --argjson v "$v" '. + { ($k): $v }' <<< "$ratios")
    [[ $m == rss_kb ]] || targets=$(jq --arg k "${w}_$m" --argjson v "$(met "$v")" '. + { ($k): $v }' <<< "$targets")
done
targets=$(jq --argjson t "$TARGET_RATIO" --argjson k "$TARGET_IDLE_KB" --argjson im "$IDLE_MET" \
    '. + { min_ratio: $t, idle_kb_max: $k, idle_under_kb_max: $im }' <<< "$targets")
mkdir -p "$(dirname "$RESULTS_FILE")"
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson messages "$MESSAGES" --argjson runs "$RUNS" \
    --argjson idle "$IDLE_SESSIONS" --argjson idle_messages "$IDLE_MESSAGES" --argjson seed "$SEED" \
    --arg mail_user "$MAIL_USER" \
    --arg octets "${AGREE["RFC822.SIZE sum"]:-}" --arg hh "${AGREE["SEARCH HEADER hits"]:-}" --arg bh "${AGREE["SEARCH BODY hits"]:-}" \
    --argjson machine "$(machine_json "$LOAD_START" "$LOAD_END")" \
    --arg dc_version "$(dovecot --version 2>/dev/null || echo unknown)" \
    --arg pn_rev "$(bin_rev "$POSTERN_BIN")" --arg pn_bin "$POSTERN_BIN" \
    --argjson sides "$sides" --argjson ratios "$ratios" --argjson targets "$targets" \
    '{ benchmark: "issue10-imap", date: $date,
       params: { messages: $messages, runs: $runs, idle_sessions: $idle, idle_messages: $idle_messages,
                 seed: $seed, mailbox_owner: $mail_user,
                 client: "bench/imap-load.py: Python stdlib sockets, 1 MiB reads, literals skipped by count" },
       agreed: { rfc822_size_sum: $octets, search_header_hits: $hh, search_body_hits: $bh },
       machine: $machine,
       versions: { dovecot: $dc_version, postern: $pn_rev, postern_bin: $pn_bin },
       sides: $sides,
       ratios_note: "postern_vs_dovecot: mbps = Postern/Dovecot; seconds, cpu and kB = Dovecot/Postern; > 1 means Postern is better",
       ratios: { postern_vs_dovecot: $ratios },
       targets: $targets }' > "$RESULTS_FILE.tmp"
mv "$RESULTS_FILE.tmp" "$RESULTS_FILE"
log "wrote $RESULTS_FILE"
