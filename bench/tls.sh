#!/usr/bin/env bash
# bench/tls.sh — Postern vs Postfix over STARTTLS, same certificate, same run.
#
# One self-signed ECDSA P-256 certificate (openssl) serves both sides:
# Postfix through smtpd_tls_cert_file/smtpd_tls_key_file with
# smtpd_tls_security_level = may (and its tlsmgr service), Postern through
# the main.toml parameters of the same names. The load generator is
# bench/smtp-load (smtp-source has no STARTTLS): no pipelining, every reply
# checked, full handshakes (no resumption), classical key exchange.
# Workloads (WORKLOADS, SESSIONS:KIND):
#   N:sessions  SESSIONS_TOTAL sessions of greeting, EHLO, STARTTLS, EHLO,
#               QUIT over N parallel clients: TLS sessions per second
#   N:conn      MESSAGES messages over STARTTLS, one per connection
#   N:keep      MESSAGES messages over STARTTLS, one connection per client
# Mail goes end to end into a Maildir (virtual(8) for Postfix, local
# delivery for Postern), and a run fails unless exactly MESSAGES files
# arrive. Per run: rate (sessions/s or msg/s, from smtp-load), seconds
# until all are in Maildir/new, CPU per session or message of the
# server's whole process tree, peak RSS and PSS of that tree. RUNS runs per
# side, alternating who goes first; medians and Postern/Postfix ratios are
# printed and written to RESULTS_FILE. If this Postern's smtpd does not
# offer STARTTLS (or does not know the TLS parameters), the Postern side is
# skipped with the reason and the Postfix figures are still reported.
#
# Runs as root. Only loopback traffic. Everything it starts is stopped by
# pid in the EXIT trap, also on failure or Ctrl-C. See bench/README.md.

set -euo pipefail

MESSAGES=${MESSAGES:-2000}
SESSIONS_TOTAL=${SESSIONS_TOTAL:-2000}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-"10:sessions 50:sessions 10:conn 10:keep 50:conn 50:keep"}
SIDES=${SIDES:-"postfix postern"}
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-300}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
POSTFIX_PORT=${POSTFIX_PORT:-26025}
LOADGEN_THREADS=${LOADGEN_THREADS:-2}
TARGET_RATE=1.5         # issue 7: TLS throughput >= 1.5x Postfix's

BENCH_NAME=tls
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
POSTERN_BIN=$(realpath -m "${POSTERN_BIN:-$REPO/target/release}")
RESULTS_FILE=$(realpath -m "${RESULTS_FILE:-$BENCH_DIR/results/issue7-tls.json}")
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for v in MESSAGES SESSIONS_TOTAL SIZE RUNS DELIVERY_TIMEOUT POSTFIX_PORT LOADGEN_THREADS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
WL_LIST=()
for w in $WORKLOADS; do
    [[ $w =~ ^[1-9][0-9]*:(sessions|conn|keep)$ ]] || die "WORKLOADS entries are SESSIONS:sessions, SESSIONS:conn or SESSIONS:keep (got '$w')"
    [[ " ${WL_LIST[*]} " == *" $w "* ]] || WL_LIST+=("$w")
done
((${#WL_LIST[@]})) || die "WORKLOADS is empty"
SIDE_LIST=()
for s in $SIDES; do
    [[ $s == postfix || $s == postern ]] || die "SIDES may only contain 'postfix' and 'postern' (got '$s')"
    [[ " ${SIDE_LIST[*]} " == *" $s "* ]] || SIDE_LIST+=("$s")
done
((${#SIDE_LIST[@]})) || die "SIDES is empty"
[[ $(id -u) -eq 0 ]] || die "run as root (Postfix's master and virtual(8) need it)"

bench_prereqs
bench_build
bench_scratch

# ------------------------------------------------------------ certificate
CERT=$SCRATCH/cert.pem
KEY=$SCRATCH/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=mail.bench.test -addext subjectAltName=DNS:mail.bench.test \
    -keyout "$KEY" -out "$CERT" 2> "$SCRATCH/openssl.log" || die "openssl req failed: $(cat "$SCRATCH/openssl.log")"
chmod 644 "$CERT"
chown "root:$PF_GID" "$KEY"
chmod 640 "$KEY"
log "certificate: ECDSA P-256, $(openssl x509 -in "$CERT" -noout -fingerprint -sha256)"
PF_TLS_MAIN="smtpd_tls_cert_file = $CERT
smtpd_tls_key_file = $KEY
smtpd_tls_security_level = may"
# smtpd asks tlsmgr for its PRNG seed and TLS session tickets.
PF_TLS_MASTER="tlsmgr    unix  -       -       n       1000?   1       tlsmgr"
PN_TLS_PARAMS=("smtpd_tls_cert_file = \"$CERT\"" "smtpd_tls_key_file = \"$KEY\"" 'smtpd_tls_security_level = "may"')

# ---------------------------------------------------------------- the run
declare -A VALS=()
add_val() { VALS["$1|$2|$3"]+="${VALS["$1|$2|$3"]:+ }$4"; }
vals() { echo "${VALS["$1|$2|$3"]:-}"; }
last_val() { local -a a; read -ra a <<< "$(vals "$@")"; echo "${a[-1]}"; }

loadgen_args() { # WORKLOAD PORT -> smtp-load arguments
    local n=${1%%:*} kind=${1#*:}
    local -a a=("127.0.0.1:$2" --sessions "$n" --starttls --threads "$LOADGEN_THREADS")
    case $kind in
        sessions) a+=(--no-mail --messages "$SESSIONS_TOTAL") ;;
        conn) a+=(--messages "$MESSAGES" --per-conn 1 --size "$SIZE") ;;
        keep) a+=(--messages "$MESSAGES" --per-conn 0 --size "$SIZE") ;;
    esac
    echo "${a[@]}"
}

# measure SIDE WORKLOAD RUN PORT MAILDIR_NEW DIR ROOT
measure() {
    local side=$1 wl=$2 run=$3 port=$4 new=$5 dir=$6 root=$7 kind=${2#*:} units n t0 t_deliv="" deadline cpu0 cpu1 rc
    units=$MESSAGES
    [[ $kind == sessions ]] && units=$SESSIONS_TOTAL
    # shellcheck disable=SC2046
    set -- $(loadgen_args "$wl" "$port")
    log "$side $wl run $run: smtp-load $*"
    start_sampler "$root" "$dir/rss"
    cpu0=$(tree_cpu_ticks "$root")
    t0=$(now)
    ( rc=0; "$LOADGEN" "$@" > "$dir/load.json" 2> "$dir/load.err" || rc=$?; echo "$rc" > "$dir/load.rc" ) &
    local sub=$!
    OUR_PIDS+=("$sub")
    deadline=$(awk -v a="$t0" -v b="$DELIVERY_TIMEOUT" 'BEGIN { printf "%d", a + b }')
    while :; do
        if [[ $kind != sessions && -z $t_deliv ]]; then
            n=$(count_files "$new")
            ((n >= units)) && t_deliv=$(now)
        fi
        [[ -e $dir/load.rc && ($kind == sessions || -n $t_deliv) ]] && break
        if [[ -e $dir/load.rc ]] && (($(cat "$dir/load.rc") != 0)); then break; fi
        ((${EPOCHREALTIME%.*} <= deadline)) || die "$side $wl: timeout after ${DELIVERY_TIMEOUT}s; see $dir"
        sleep 0.05
    done
    wait "$sub" 2>/dev/null || true
    forget OUR_PIDS "$sub"
    rc=$(cat "$dir/load.rc")
    ((rc == 0)) || die "$side $wl: smtp-load failed (exit $rc): $(tail -c 600 "$dir/load.json") $(tail -c 300 "$dir/load.err")"
    local ok
    ok=$(jq -r .ok "$dir/load.json")
    ((ok == units)) || die "$side $wl: smtp-load completed $ok of $units"
    if [[ $kind != sessions ]]; then
        sleep 0.5   # late duplicates would show up here
        n=$(count_files "$new")
        ((n == units)) || die "$side $wl: $n files in $new, expected exactly $units"
    fi
    cpu1=$(tree_cpu_ticks "$root")
    stop_sampler
    if [[ $kind == sessions ]]; then
        add_val "$wl" "$side" rate "$(jq -r .sessions_per_s "$dir/load.json")"
        add_val "$wl" "$side" deliv null
    else
        add_val "$wl" "$side" rate "$(jq -r .msgs_per_s "$dir/load.json")"
        add_val "$wl" "$side" deliv "$(fsub "$t_deliv" "$t0")"
    fi
    add_val "$wl" "$side" hs "$(jq -r .tls_handshakes_per_s "$dir/load.json")"
    add_val "$wl" "$side" cpu "$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v m="$units" 'BEGIN { printf "%.3f", t * 1000 / hz / m }')"
    add_val "$wl" "$side" rss "$(kb_to_mb "$(cat "$dir/rss")")"
    add_val "$wl" "$side" pss "$(kb_to_mb "$(cat "$dir/rss.pss")")"
    log "$side $wl run $run: $(last_val "$wl" "$side" rate) $([[ $kind == sessions ]] && echo sessions || echo msg)/s," \
        "$(last_val "$wl" "$side" hs) handshakes/s, delivered in $(last_val "$wl" "$side" deliv) s," \
        "$(last_val "$wl" "$side" cpu) ms CPU per unit, peak RSS $(last_val "$wl" "$side" rss) MB (PSS $(last_val "$wl" "$side" pss) MB)"
}

run_postfix() { # WORKLOAD RUN
    local base="$SCRATCH/postfix-${1/:/-}-$2" port
    port=$(free_port "$POSTFIX_PORT")
    pf_instance "$base" "$port" "$PF_TLS_MAIN" "$PF_TLS_MASTER"
    log "postfix $1 run $2: instance on 127.0.0.1:$port"
    pf_start "$base" "$port"
    measure postfix "$1" "$2" "$port" "$base/vmail/bench/Maildir/new" "$base" "$PF_MASTER"
    pf_stop "$base"
}

run_postern() { # WORKLOAD RUN
    local base="$SCRATCH/postern-${1/:/-}-$2"
    pn_init "$base"
    pn_set_params "$PN_INST" "${PN_TLS_PARAMS[@]}"
    pn_start "$base" || die "$PN_START_ERR"
    log "postern $1 run $2: smtpd on 127.0.0.1:$PN_PORT (master pid $PN_FG)"
    measure postern "$1" "$2" "$PN_PORT" "$PN_INST/home/bench/Maildir/new" "$base" "$PN_FG"
    pn_stop "$base"
}

# Does this Postern take the TLS parameters and offer STARTTLS? If not, its
# side is skipped with the reason rather than failing the whole run.
PN_SKIP=""
if [[ " ${SIDE_LIST[*]} " == *" postern "* ]]; then
    base=$SCRATCH/postern-probe
    pn_init "$base"
    pn_set_params "$PN_INST" "${PN_TLS_PARAMS[@]}"
    if ! pn_start "$base"; then
        PN_SKIP="Postern does not start with smtpd_tls_cert_file/smtpd_tls_key_file/smtpd_tls_security_level set ($PN_START_ERR)"
        wait "$PN_FG" 2>/dev/null || true
        forget OUR_PIDS "$PN_FG"; forget PN_MASTERS "$PN_FG"; unset 'PN_DIRS[$PN_INST]'
    else
        probe=$("$LOADGEN" --probe "127.0.0.1:$PN_PORT" 2> "$base/probe.err" || true)
        if [[ $(jq -r '.starttls // empty' <<< "$probe" 2>/dev/null) != true ]]; then
            PN_SKIP="Postern's smtpd does not offer STARTTLS with smtpd_tls_security_level = may (EHLO keywords: $(jq -c '.keywords // .error' <<< "$probe" 2>/dev/null || echo "$probe"))"
        fi
        pn_stop "$base"
    fi
    PN_SKIP=${PN_SKIP//$'\n'/; }
    if [[ -n $PN_SKIP ]]; then
        log "skipped: postern side: $PN_SKIP"
        forget SIDE_LIST postern
    fi
fi
((${#SIDE_LIST[@]})) || die "no side left to run"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "workloads: ${WL_LIST[*]}; sides: ${SIDE_LIST[*]}; $MESSAGES x $SIZE B messages, $SESSIONS_TOTAL sessions, $RUNS run(s) each"
nsides=${#SIDE_LIST[@]}
for wl in "${WL_LIST[@]}"; do
    for ((r = 1; r <= RUNS; r++)); do
        for ((k = 0; k < nsides; k++)); do
            side=${SIDE_LIST[$(((r - 1 + k) % nsides))]}
            if [[ $side == postfix ]]; then run_postfix "$wl" "$r"; else run_postern "$wl" "$r"; fi
        done
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
declare -A MED=()
for wl in "${WL_LIST[@]}"; do
    for side in postfix postern; do
        for m in rate hs deliv cpu rss pss; do
            # shellcheck disable=SC2046
            MED["$wl|$side|$m"]=$(median $(vals "$wl" "$side" "$m" | tr ' ' '\n' | grep -v '^null$'))
            # Memory is sampled to 0.1 MB and rates are printed to 0.1/s by
            # smtp-load; more digits would be noise.
            if [[ ${MED["$wl|$side|$m"]} != null ]]; then
                case $m in rate | hs | rss | pss) MED["$wl|$side|$m"]=$(awk -v v="${MED["$wl|$side|$m"]}" 'BEGIN { printf "%.1f", v }') ;; esac
            fi
        done
    done
done
ratio() { # WORKLOAD METRIC: Postern against Postfix, > 1 means Postern is better
    local x=${MED["$1|postern|$2"]:-null} y=${MED["$1|postfix|$2"]:-null}
    if [[ $x == null || $y == null ]]; then echo null
    elif [[ $2 == rate || $2 == hs ]]; then fdiv "$x" "$y"
    else fdiv "$y" "$x"
    fi
}
met() { # VALUE -> true/false/null against TARGET_RATE
    [[ $1 == null ]] && { echo null; return; }
    awk -v v="$1" -v t="$TARGET_RATE" 'BEGIN { print (v >= t) ? "true" : "false" }'
}
show() { [[ $1 == null || -z $1 ]] && echo - || echo "$1"; }
{
    for wl in "${WL_LIST[@]}"; do
        kind=${wl#*:}
        case $kind in
            sessions) what="$SESSIONS_TOTAL STARTTLS sessions (EHLO, STARTTLS, EHLO, QUIT), no mail"; unit=session ;;
            conn) what="$MESSAGES messages x $SIZE B over STARTTLS, one per connection"; unit=message ;;
            keep) what="$MESSAGES messages x $SIZE B over STARTTLS, one connection per client"; unit=message ;;
        esac
        echo
        echo "Workload $wl: ${wl%%:*} parallel clients, $what; median of $RUNS run(s)"
        printf '%-32s %10s %10s %10s\n' "" Postfix Postern Pn/Pf
        row() { printf '%-32s %10s %10s %10s\n' "$1" "$(show "${MED["$wl|postfix|$2"]}")" "$(show "${MED["$wl|postern|$2"]}")" "$( (($3)) && show "$(ratio "$wl" "$2")")"; }
        if [[ $kind == sessions ]]; then row "sessions/s" rate 1; else row "messages/s" rate 1; fi
        row "TLS handshakes/s" hs 1
        [[ $kind == sessions ]] || row "all in Maildir/new, s" deliv 1
        row "CPU per $unit, ms" cpu 1
        row "peak RSS, all processes, MB" rss 0
        row "peak PSS, all processes, MB" pss 0
        for s in postfix postern; do
            [[ -n $(vals "$wl" "$s" rate) ]] || continue
            printf 'per run %-8s rate=[%s] deliv=[%s] cpu=[%s] rss=[%s] pss=[%s]\n' "$s:" "$(vals "$wl" "$s" rate)" \
                "$(vals "$wl" "$s" deliv)" "$(vals "$wl" "$s" cpu)" "$(vals "$wl" "$s" rss)" "$(vals "$wl" "$s" pss)"
        done
        v=$(ratio "$wl" rate)
        if [[ $v != null ]]; then
            m=$(met "$v")
            echo "target (issue 7): $(show "$v")x Postfix's rate, target >= ${TARGET_RATE}x: $([[ $m == true ]] && echo met || echo "NOT met")"
        fi
    done
    echo
    [[ -z $PN_SKIP ]] || echo "postern side skipped: $PN_SKIP"
    echo "ratios Pn/Pf: rates Postern/Postfix, seconds and CPU Postfix/Postern; > 1 means Postern is better"
    echo "machine: $(nproc) CPU(s) $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); load average $LOAD_START -> $LOAD_END"
}

wls='[]'
for wl in "${WL_LIST[@]}"; do
    sides='{}'
    for s in postfix postern; do
        [[ -n $(vals "$wl" "$s" rate) ]] || continue
        arr() { local x; x=$(vals "$wl" "$s" "$1"); [[ -n $x ]] && echo "[${x// /,}]" || echo '[]'; }
        sides=$(jq --arg k "$s" --argjson rate "${MED["$wl|$s|rate"]}" --argjson hs "${MED["$wl|$s|hs"]}" \
            --argjson deliv "${MED["$wl|$s|deliv"]}" --argjson cpu "${MED["$wl|$s|cpu"]}" \
            --argjson rss "${MED["$wl|$s|rss"]}" --argjson pss "${MED["$wl|$s|pss"]}" \
            --argjson rr "$(arr rate)" --argjson dr "$(arr deliv)" --argjson cr "$(arr cpu)" \
            --argjson sr "$(arr rss)" --argjson pr "$(arr pss)" \
            '. + { ($k): { rate_per_s: $rate, tls_handshakes_per_s: $hs, delivered_s: $deliv, cpu_ms_per_unit: $cpu,
                           peak_rss_mb: $rss, peak_pss_mb: $pss,
                           runs: { rate_per_s: $rr, delivered_s: $dr, cpu_ms_per_unit: $cr, peak_rss_mb: $sr, peak_pss_mb: $pr } } }' <<< "$sides")
    done
    v=$(ratio "$wl" rate)
    wls=$(jq --arg name "$wl" --argjson n "${wl%%:*}" --arg kind "${wl#*:}" --argjson sides "$sides" \
        --argjson rr "$v" --argjson rd "$(ratio "$wl" deliv)" --argjson rc "$(ratio "$wl" cpu)" \
        --argjson t "$TARGET_RATE" --argjson met "$(met "$v")" \
        --argjson units "$([[ ${wl#*:} == sessions ]] && echo "$SESSIONS_TOTAL" || echo "$MESSAGES")" \
        '. + [{ name: $name, clients: $n, units: $units,
                kind: ({ sessions: "STARTTLS sessions without mail", conn: "messages over STARTTLS, one per connection",
                         keep: "messages over STARTTLS, one connection per client" }[$kind]),
                unit: (if $kind == "sessions" then "session" else "message" end),
                sides: $sides,
                ratios: { postern_vs_postfix: { rate: $rr, delivery_time: $rd, cpu_per_unit: $rc } },
                target: { rate_min_ratio: $t, value: $rr, met: $met } }]' <<< "$wls")
done
mkdir -p "$(dirname "$RESULTS_FILE")"
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson messages "$MESSAGES" --argjson sessions "$SESSIONS_TOTAL" --argjson size "$SIZE" --argjson runs "$RUNS" \
    --argjson machine "$(machine_json "$LOAD_START" "$LOAD_END")" \
    --arg pf_version "$(postconf -c /etc/postfix -dh mail_version 2>/dev/null || echo unknown)" \
    --arg openssl "$(openssl version)" --arg pn_rev "$(bin_rev "$POSTERN_BIN")" --arg pn_bin "$POSTERN_BIN" \
    --arg skip "$PN_SKIP" --argjson workloads "$wls" \
    '{ benchmark: "issue7-tls", date: $date,
       params: { messages: $messages, sessions_total: $sessions, size: $size, runs: $runs,
                 certificate: "self-signed ECDSA P-256, the same file for both sides",
                 client: "bench/smtp-load: no pipelining, full TLS handshakes (no resumption), X25519/P-256/P-384 key exchange" },
       machine: $machine,
       versions: { postfix: $pf_version, openssl: $openssl, postern: $pn_rev, postern_bin: $pn_bin },
       postern_skipped: (if $skip == "" then null else $skip end),
       ratios_note: "postern_vs_postfix: rate = Postern/Postfix, delivery_time and cpu_per_unit = Postfix/Postern; > 1 means Postern is better",
       workloads: $workloads }' > "$RESULTS_FILE.tmp"
mv "$RESULTS_FILE.tmp" "$RESULTS_FILE"
log "wrote $RESULTS_FILE"
