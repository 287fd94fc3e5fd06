# shellcheck shell=bash disable=SC2034
# bench/lib.sh — helpers shared by bench/inbound.sh, tls.sh and idle.sh.
#
# Sourced, not run. Throwaway Postfix instances in their
# own config/queue/data directories on their own loopback port (the system
# Postfix is never touched), throwaway Postern dev instances from a release
# build, every process recorded and stopped by pid in the EXIT trap, CPU
# from /proc/PID/stat of the server's whole tree, memory from VmRSS and
# smaps_rollup's Pss.
#
# The sourcing script sets BENCH_NAME (for log lines), POSTERN_BIN and
# BENCH_TMPDIR before sourcing, then calls bench_prereqs and bench_scratch.

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${BENCH_NAME:-bench}" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
SCRATCH=""
KEEP_TMP=${KEEP_TMP:-0}
PF_DIRS=()             # Postfix config dirs we started
declare -A PN_DIRS=()  # Postern instance dirs we started -> their binary directory
PN_MASTERS=()          # their start-fg (= master) pids, our direct children
OUR_PIDS=()            # background pids we started (samplers, load generators, start-fg)
forget() { # ARRAY_NAME VALUE: remove VALUE from the named array
    local -n arr=$1
    local x keep=()
    for x in "${arr[@]}"; do [[ $x == "$2" ]] || keep+=("$x"); done
    arr=("${keep[@]}")
}
declare -A PS_KIDS=() PS_TICKS=()
proc_scan() { # fills PS_KIDS (ppid -> children) and PS_TICKS (pid -> utime+stime+cutime+cstime)
    local f line rest pid
    local -a fields
    PS_KIDS=(); PS_TICKS=()
    for f in /proc/[0-9]*/stat; do
        { read -r line < "$f"; } 2>/dev/null || continue
        rest=${line##*) }                  # comm may contain spaces or ')'
        read -ra fields <<< "$rest"
        pid=${f#/proc/}; pid=${pid%/stat}
        PS_KIDS[${fields[1]}]+=" $pid"
        PS_TICKS[$pid]=$((fields[11] + fields[12] + fields[13] + fields[14]))
    done
}
tree_from_scan() { # ROOT: ROOT and all its descendants, as of the last proc_scan
    local p
    local -a queue=("$1")
    while ((${#queue[@]})); do
        p=${queue[0]}; queue=("${queue[@]:1}")
        echo "$p"
        # shellcheck disable=SC2206
        [[ -n ${PS_KIDS[$p]:-} ]] && queue+=(${PS_KIDS[$p]})
    done
    return 0
}
tree_pids() { proc_scan; tree_from_scan "$1"; }
# CPU ticks of ROOT's tree: own utime+stime of every live process plus the
# cutime+cstime of the children each has reaped (workers that exited
# during the run count in their reaper's figure). Read it while the server
# idles, so no worker is between exiting and being reaped.
tree_cpu_ticks() {
    local p sum=0
    proc_scan
    while read -r p; do sum=$((sum + ${PS_TICKS[$p]:-0})); done < <(tree_from_scan "$1")
    echo "$sum"
}
kill_postern_leftovers() { # PID...: SIGKILL those still running a binary from POSTERN_BIN
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
bench_cleanup() {
    local rc=$? d p
    trap - EXIT INT TERM
    for p in "${OUR_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    local -a tree=()
    for p in "${PN_MASTERS[@]}"; do mapfile -t -O "${#tree[@]}" tree < <(tree_pids "$p"); done
    for d in "${!PN_DIRS[@]}"; do timeout 25 "${PN_DIRS[$d]}/postern" -c "$d" stop >/dev/null 2>&1 || true; done
    ((${#tree[@]})) && kill_postern_leftovers "${tree[@]}" > /dev/null
    for d in "${PF_DIRS[@]}"; do
        p=$(pf_master_pid "$d")
        if [[ -n $p ]]; then
            postfix -c "$d" stop >/dev/null 2>&1 || true
            if is_proc "$p" master; then kill -9 "$p" 2>/dev/null || true; fi
        fi
    done
    for p in "${OUR_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n $SCRATCH && -d $SCRATCH ]]; then
        if [[ $KEEP_TMP == 1 || $rc -ne 0 ]]; then log "scratch directory kept: $SCRATCH"; else rm -rf -- "$SCRATCH"; fi
    fi
    exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ prerequisites
bench_prereqs() { # installs postfix, jq, iproute2, openssl if missing (Debian packages)
    local need=() created=0
    command -v smtp-source >/dev/null && [[ -x /usr/sbin/postfix ]] || need+=(postfix)
    command -v jq >/dev/null || need+=(jq)
    command -v ss >/dev/null || need+=(iproute2)
    command -v openssl >/dev/null || need+=(openssl)
    if ((${#need[@]})); then
        log "installing ${need[*]} from Debian packages"
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
    PF_UID=$(id -u postfix) || die "no postfix user after installing postfix"
    PF_GID=$(id -g postfix)
    CLK_TCK=$(getconf CLK_TCK)
    [[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"
}
bench_build() { # SKIP_BUILD=1 skips; builds the release binaries and smtp-load
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "cargo build --release --workspace --bins"
        (cd "$REPO" && cargo build --release --workspace --bins >&2) || die "cargo build --release --workspace --bins failed"
    fi
    LOADGEN=$POSTERN_BIN/smtp-load
    [[ -x $LOADGEN ]] || die "no $LOADGEN (cargo build --release -p smtp-load)"
}
bench_scratch() {
    SCRATCH=$(mktemp -d "$BENCH_TMPDIR/postern-$BENCH_NAME.XXXXXX")
    chmod 755 "$SCRATCH"
    log "scratch directory $SCRATCH"
}

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
free_port() { # FIRST -> the first free port from FIRST on
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); ((p < $1 + 100)) || die "no free port near $1"; done
    echo "$p"
}
count_files() { # dir -> number of entries (0 if missing)
    # shellcheck disable=SC2012
    if [[ -d $1 ]]; then ls -U -- "$1" | wc -l; else echo 0; fi
}
kb_to_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
mem_of() { # PID... -> "RSS_KB PSS_KB" summed over the given processes
    local p k v rss=0 pss=0
    for p in "$@"; do
        { while read -r k v _; do
              if [[ $k == VmRSS: ]]; then rss=$((rss + v)); break; fi
          done < "/proc/$p/status"; } 2>/dev/null || true
        { while read -r k v _; do
              if [[ $k == Pss: ]]; then pss=$((pss + v)); break; fi
          done < "/proc/$p/smaps_rollup"; } 2>/dev/null || true
    done
    echo "$rss $pss"
}
# rss_sampler ROOT OUT: every 100 ms the sum of VmRSS and of Pss over ROOT
# and all its descendants; the largest sums seen go to OUT and OUT.pss (kB).
rss_sampler() {
    local root=$1 out=$2 max=0 pmax=0 r p
    echo 0 > "$out"; echo 0 > "$out.pss"
    while kill -0 "$root" 2>/dev/null; do
        # shellcheck disable=SC2046
        read -r r p <<< "$(mem_of $(tree_pids "$root"))"
        if ((r > max)); then max=$r; echo "$max" > "$out"; fi
        if ((p > pmax)); then pmax=$p; echo "$pmax" > "$out.pss"; fi
        sleep 0.1
    done
}
start_sampler() { rss_sampler "$1" "$2" & OUR_PIDS+=("$!"); SAMPLER_PID=$!; }
stop_sampler() {
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    forget OUR_PIDS "$SAMPLER_PID"
}
machine_json() { # LOAD_START LOAD_END -> the "machine" object
    jq -n --argjson nproc "$(nproc)" --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
        --argjson mem "$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)" --arg kernel "$(uname -r)" \
        --arg tmpdir "$BENCH_TMPDIR" --arg fs "$(df --output=fstype "$BENCH_TMPDIR" | tail -n 1 | tr -d ' ')" \
        --arg ls "$1" --arg le "$2" \
        '{ nproc: $nproc, cpu_model: $cpu, mem_total_mb: $mem, kernel: $kernel, tmpdir: $tmpdir,
           tmpdir_fs: $fs, loadavg_start: $ls, loadavg_end: $le }'
}
bin_rev() { # DIR -> git revision of the tree DIR is in (+dirty), or unknown
    local rev
    rev=$(git -C "$1" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
    [[ -n $(git -C "$1" status --porcelain 2>/dev/null | head -n 1) ]] && rev+="+dirty"
    echo "$rev"
}

# ----------------------------------------------------------- Postfix side
# pf_instance BASE PORT MAIN_EXTRA MASTER_EXTRA [SMTPD_MAXPROC]: writes a
# throwaway Postfix instance under BASE, as bench/inbound.sh does (virtual(8)
# delivers bench@bench.test into BASE/vmail/bench/Maildir), with MAIN_EXTRA
# appended to main.cf and MASTER_EXTRA to master.cf.
pf_instance() {
    local base=$1 port=$2 etc=$1/etc maxproc=${5:--}
    mkdir -p "$etc" "$base/spool" "$base/vmail/bench/Maildir/"{new,cur,tmp}
    chown -R "$PF_UID:$PF_GID" "$base/vmail"
    printf 'bench@bench.test bench/Maildir/\n' > "$base/vmailbox"
    cat > "$etc/main.cf" <<EOF
# Throwaway Postfix instance written by bench/$BENCH_NAME.sh; deleted after the run.
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
$3
EOF
    cat > "$etc/master.cf" <<EOF
127.0.0.1:$port inet  n       -       n       -       $maxproc       smtpd
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
$4
EOF
}
# pf_start BASE PORT: starts it; sets PF_MASTER.
pf_start() {
    local base=$1 port=$2 etc=$1/etc i
    PF_DIRS+=("$etc")
    postfix -c "$etc" start > "$base/start.log" 2>&1 || die "postfix start failed: $(tail -n 20 "$base/start.log")"
    PF_MASTER=""
    for ((i = 0; i < 300; i++)); do
        PF_MASTER=$(pf_master_pid "$etc")
        [[ -n $PF_MASTER ]] && ! port_free "$port" && break
        sleep 0.1
    done
    [[ -n $PF_MASTER ]] || die "postfix master did not start; see $base"
    ! port_free "$port" || die "postfix smtpd is not listening on $port; see $base"
    sleep 1   # let qmgr and friends settle, as for Postern
}
pf_stop() { # BASE
    local etc=$1/etc m i
    postfix -c "$etc" stop > /dev/null 2>&1 || true
    m=$(pf_master_pid "$etc")
    if [[ -n $m ]]; then
        for ((i = 0; i < 50; i++)); do is_proc "$m" master || break; sleep 0.2; done
        if is_proc "$m" master; then kill -9 "$m" 2>/dev/null || true; fi
    fi
    forget PF_DIRS "$etc"
}

# ----------------------------------------------------------- Postern side
# pn_init BASE: `postern init --dev BASE/postern`; sets PN_INST.
pn_init() {
    PN_INST=$1/postern
    mkdir -p "$1"
    "$POSTERN_BIN/postern" init --dev "$PN_INST" --user bench:bench --hostname mail.bench.test --any-port \
        > "$1/init.log" 2>&1 || die "postern init failed: $(tail -n 20 "$1/init.log")"
}
# pn_set_params INST "name = value"...: sets main.toml parameters, replacing
# any line init --dev wrote for the same name (TOML forbids a key twice).
pn_set_params() {
    local inst=$1 kv name
    shift
    for kv in "$@"; do
        name=${kv%% *}
        grep -v -E "^[[:space:]]*${name}[[:space:]]*=" "$inst/main.toml" > "$inst/main.toml.new" || true
        printf '%s\n' "$kv" >> "$inst/main.toml.new"
        mv "$inst/main.toml.new" "$inst/main.toml"
    done
}
# pn_set_maxproc INST N: maxproc of the SMTP service (command smtpd,
# listening on TCP: named smtpd, or smtp once the services are named as in
# master.cf) in master.toml.
pn_set_maxproc() {
    awk -v n="$2" '
        function flush() { if (blk != "") { if (blk ~ /command = "smtpd"/ && blk ~ /type = "inet"/ && blk ~ /name = "smtpd?"/) gsub(/maxproc = [0-9]+/, "maxproc = " n, blk); printf "%s", blk; blk = "" } }
        /^\[\[service\]\]/ { flush() }
        { blk = blk $0 "\n" }
        END { flush() }' "$1/master.toml" > "$1/master.toml.new"
    mv "$1/master.toml.new" "$1/master.toml"
}
# pn_start BASE: starts PN_INST in the foreground (start-fg --ready-json);
# sets PN_FG (its pid, the master) and PN_PORT (the SMTP service's port).
pn_start() {
    local base=$1 i line="" listen=""
    PN_DIRS[$PN_INST]=$POSTERN_BIN
    "$POSTERN_BIN/postern" -c "$PN_INST" start-fg --ready-json > "$base/ready.json" 2> "$base/postern.log" &
    PN_FG=$!
    OUR_PIDS+=("$PN_FG")
    PN_MASTERS+=("$PN_FG")
    for ((i = 0; i < 300; i++)); do
        kill -0 "$PN_FG" 2>/dev/null || { PN_START_ERR="postern start-fg exited during start-up: $(tail -n 5 "$base/postern.log")"; return 1; }
        line=$(grep -m 1 '^{' "$base/ready.json" 2>/dev/null || true)
        [[ -n $line ]] && break
        sleep 0.1
    done
    [[ -n $line ]] || die "postern did not print its ready line within 30s: $(tail -n 20 "$base/postern.log")"
    # The port-25 service: "smtp" as in master.cf, or "smtpd" before the
    # services were named that way.
    listen=$(jq -r '[.services[] | select(.name == "smtp" or .name == "smtpd") | .listen[]] | first // empty' <<< "$line") \
        || die "cannot parse ready line: $line"
    [[ $listen == *:* ]] || die "no SMTP listen address in ready line: $line"
    PN_PORT=${listen##*:}
    sleep 1
}
pn_stop() { # BASE
    local base=$1 i left
    local -a tree
    mapfile -t tree < <(tree_pids "$PN_FG")
    timeout 25 "$POSTERN_BIN/postern" -c "$PN_INST" stop > "$base/stop.log" 2>&1 \
        || log "postern stop failed: $(tail -n 3 "$base/stop.log")"
    for ((i = 0; i < 100; i++)); do kill -0 "$PN_FG" 2>/dev/null || break; sleep 0.1; done
    kill "$PN_FG" 2>/dev/null || true
    wait "$PN_FG" 2>/dev/null || true
    left=$(kill_postern_leftovers "${tree[@]}")
    ((left == 0)) || log "WARNING: $left Postern process(es) outlived stop; killed"
    forget OUR_PIDS "$PN_FG"
    forget PN_MASTERS "$PN_FG"
    unset 'PN_DIRS[$PN_INST]'
}
