#!/usr/bin/env bash
# The install test (issue 11), run by tests/tests/install_deb.rs as root:
#
#   tests/install-deb.sh DEB CACHE_DIR
#
# 1. A Debian 12 root made by debootstrap (--variant=minbase), cached in
#    CACHE_DIR/base so one checkout builds it once; every run copies it.
# 2. In that root (a chroot in its own mount and UTS namespace, host name
#    mail.fiap.edu.br as in the tutorial): `apt-get install ./DEB
#    bsd-mailx`, with a policy-rc.d that forbids starting daemons, so
#    nothing listens in this machine's network namespace.
# 3. In a network namespace of its own (port 25 is its own, only lo is
#    up), the tutorial as written: the `postconf -e` lines, a system user
#    suporte with password suporte, `mail -s`, the SMTP dialog on port 25,
#    `maildirmake` folders, POP3 `retr 1` on 110, an IMAP LOGIN on 143 and
#    a LIST showing the folders; then the package is upgraded over itself
#    (master restarted by postinst, the configuration kept) and removed
#    (master stopped, configuration, queue and mail kept), then purged.
#
#   tests/install-deb.sh --base CACHE_DIR
#
# only makes the cached root: tests/run.sh starts that in the background
# before it compiles, so the download overlaps the build; a test that
# starts meanwhile waits for it (the root is made under a lock).
#
# Exit 77 (with a "skipped: REASON" line) when Debian's mirror cannot be
# reached; anything else but 0 is a failure.
set -euo pipefail
if [ "$1" = --base ]; then
    deb=
else
    deb=$(realpath "$1")
fi
cache=$(realpath -m "$2")
mirror=http://deb.debian.org/debian
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
started=$SECONDS
say() { echo "install-deb: [$((SECONDS - started))s] $*"; }

base=$cache/base
mkdir -p "$cache"
exec 9>"$cache/.base.lock"
flock 9
if [ ! -e "$base/.complete" ]; then
    if ! timeout 20 curl -fsSI "$mirror/dists/bookworm/Release" >/dev/null 2>&1; then
        echo "skipped: debootstrap cannot reach Debian's mirror ($mirror)"
        exit 77
    fi
    say "debootstrap bookworm into $base"
    rm -rf "$base"
    mkdir -p "$cache"
    # What postern depends on beyond minbase, so each run downloads only
    # bsd-mailx's few packages.
    debootstrap --variant=minbase --include=adduser,ssl-cert bookworm "$base" "$mirror" \
        > "$cache/debootstrap.log" 2>&1 || { tail -n 30 "$cache/debootstrap.log"; exit 1; }
    rm -rf "$base/var/cache/apt/archives/"*.deb
    touch "$base/.complete"
fi
flock -u 9
[ -n "$deb" ] || exit 0

root=$cache/root
rm -rf "$root"
say "copy the cached root"
cp -a "$base" "$root"
mkdir -p "$cache/archives/partial"
cp "$deb" "$root/tmp/"
pkg=/tmp/$(basename "$deb")
cat > "$root/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.1.1 mail.fiap.edu.br mail
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

# The tutorial, run inside the chroot and the network namespace.
cat > "$root/root/tutorial.sh" <<'TUTORIAL'
#!/bin/bash
set -euo pipefail
pkg=$1
log() { echo "tutorial: $*"; }
fail() { echo "tutorial: FAILED: $*"; tail -n 40 /var/spool/postern/maillog 2>/dev/null || true; exit 1; }
stop_master() {
    if [ -s /var/spool/postern/pid/master.pid ]; then
        postern stop >/dev/null 2>&1 || kill "$(cat /var/spool/postern/pid/master.pid)" 2>/dev/null || true
    fi
}
trap stop_master EXIT

# A line-oriented client on fd 3 over bash's /dev/tcp, as telnet shows it.
open() { exec 3<>"/dev/tcp/127.0.0.1/$1"; }
send() { printf '%s\r\n' "$1" >&3; echo "C: $1"; }
line() { IFS= read -r -t 10 L <&3 || fail "no answer (after: $*)"; L=${L%$'\r'}; echo "S: $L"; }
expect() { line "$1"; [[ $L == "$1"* ]] || fail "expected '$1', got '$L'"; }
# Reads until a line starting with $1; the lines read are in $TEXT.
until_line() { TEXT=; while line "$1"; do TEXT+="$L"$'\n'; [[ $L == "$1"* ]] && return 0; done; }
# A process that has exited, or exited and waits for its parent (master
# outlives `postern start`, so its parent is whoever reaps orphans here).
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
wait_for() { for _ in $(seq 100); do eval "$1" && return 0; sleep 0.1; done; fail "timed out waiting for: $1"; }

[ "$(hostname -f)" = mail.fiap.edu.br ] || fail "hostname -f is $(hostname -f)"
log "the package set myhostname from the FQDN and wrote /etc/mailname"
postconf -h myhostname | grep -qx mail.fiap.edu.br || fail "myhostname: $(postconf -h myhostname)"
grep -qx mail.fiap.edu.br /etc/mailname || fail "/etc/mailname: $(cat /etc/mailname)"
[ "$(stat -c '%U:%G %a' /var/spool/postern/maildrop)" = "postern:postdrop 1730" ] \
    || fail "maildrop/ is $(stat -c '%U:%G %a' /var/spool/postern/maildrop)"
[ "$(stat -c '%G %a' /usr/sbin/postdrop)" = "postdrop 2555" ] || fail "postdrop is $(stat -c '%G %a' /usr/sbin/postdrop)"

log "postconf -e, as the tutorial"
postconf -e "smtpd_banner = Bem Vindo - \$myhostname"
postconf -e "mydestination = \$myhostname, localhost, \$mydomain"
postconf -e "mynetworks = 127.0.0.1/32"
postconf -e "inet_interfaces = all"
postconf -e "mydomain = $(hostname -d)"
postconf -e "myorigin = /etc/mailname"
postconf -e "myhostname = $(hostname -f)"
useradd -m -s /bin/bash suporte
echo suporte:suporte | chpasswd
postern start || fail "postern start"
[ -s /var/spool/postern/pid/master.pid ] || fail "no pid file"

log "mail -s (delivered to /var/mail/suporte: no home_mailbox yet)"
echo "Teste de envio" | mail -s "Teste" "suporte@$(hostname -d)"
wait_for 'grep -q "Teste de envio" /var/mail/suporte 2>/dev/null'

log "the SMTP dialog on port 25"
open 25
expect "220 Bem Vindo - mail.fiap.edu.br"
send "HELO mail.fiap.edu.br"; expect "250 mail.fiap.edu.br"
send "MAIL FROM: <root@fiap.edu.br>"; expect "250 2.1.0 Ok"
send "RCPT TO: <suporte@fiap.edu.br>"; expect "250 2.1.5 Ok"
send "DATA"; expect "354 End data with <CR><LF>.<CR><LF>"
send "From: Nome do Remetente <root@fiap.edu.br>"
send ""
send "To: Nome do Destinatario <ubuntu@fiap.edu.br>"
send "Subject: Teste de Comandos SMTP"
send "E-mail teste - Comandos SMTP"
send "."; expect "250 2.0.0 Ok: queued as "
send "QUIT"; expect "221 2.0.0 Bye"
exec 3<&-
wait_for 'grep -q "E-mail teste - Comandos SMTP" /var/mail/suporte'

log "home_mailbox = Maildir/ and the tutorial's maildirmake folders"
postconf -e "home_mailbox = Maildir/"
postern reload
maildirmake /home/suporte/Maildir
maildirmake /home/suporte/Maildir/.Enviados
maildirmake /home/suporte/Maildir/.Rascunhos
maildirmake /home/suporte/Maildir/.Lixeira
maildirmake /home/suporte/Maildir/.Spam
chown -R suporte: /home/suporte

echo "Testtando o POP" | mail -s "Teste" suporte@fiap.edu.br
wait_for 'ls /home/suporte/Maildir/new/* >/dev/null 2>&1'
log "a local user's mail -s goes through the setgid postdrop"
runuser -u suporte -- sh -c 'echo "Enviado por suporte" | mail -s "De suporte" root@fiap.edu.br'
wait_for 'grep -qs "Enviado por suporte" /root/Maildir/new/*'

log "POP3 on 110: user, pass, retr 1, quit"
open 110
expect "+OK"
send "user suporte"; expect "+OK"
send "pass suporte"; expect "+OK"
send "retr 1"; expect "+OK"
until_line "."
[[ $TEXT == *"Testtando o POP"* ]] || fail "retr 1 did not show the message"
send "quit"; expect "+OK"
exec 3<&-

log "IMAP on 143: LOGIN and a LIST showing the folders"
open 143
expect "* OK"
send "a1 LOGIN suporte suporte"; until_line "a1 "
[[ $L == "a1 OK"* ]] || fail "LOGIN: $L"
send 'a2 LIST "" "*"'; until_line "a2 "
[[ $L == "a2 OK"* ]] || fail "LIST: $L"
for f in INBOX Enviados Rascunhos Lixeira Spam; do
    grep -q "$f" <<<"$TEXT" || fail "LIST does not show $f"
done
send "a3 LOGOUT"; until_line "a3 "
exec 3<&-

log "upgrade the package over itself: config kept, master restarted"
old_pid=$(cat /var/spool/postern/pid/master.pid)
rm -f /usr/sbin/policy-rc.d
dpkg -i "$pkg" >/tmp/upgrade.log 2>&1 || { cat /tmp/upgrade.log; fail "upgrade"; }
grep -q 'Bem Vindo' /etc/postern/main.toml || fail "upgrade lost smtpd_banner"
postconf -h home_mailbox | grep -qx Maildir/ || fail "upgrade lost home_mailbox"
wait_for '[ -s /var/spool/postern/pid/master.pid ] && [ "$(cat /var/spool/postern/pid/master.pid)" != "$old_pid" ]'
wait_for 'gone "$old_pid"'
open 25; expect "220 Bem Vindo - mail.fiap.edu.br"; send "QUIT"; expect "221"; exec 3<&-

log "remove: master stopped; configuration, queue and mail kept"
new_pid=$(cat /var/spool/postern/pid/master.pid)
apt-get -y remove postern >/tmp/remove.log 2>&1 || { cat /tmp/remove.log; fail "remove"; }
wait_for 'gone "$new_pid"'
[ ! -e /usr/sbin/postern ] || fail "remove left /usr/sbin/postern"
grep -q 'Bem Vindo' /etc/postern/main.toml || fail "remove lost main.toml"
[ -d /var/spool/postern/maildrop ] || fail "remove lost the queue"
grep -q "Testtando o POP" /home/suporte/Maildir/*/* || fail "remove lost the Maildir"
grep -q "Teste de envio" /var/mail/suporte || fail "remove lost the mbox"

log "purge: configuration and queue gone, mail kept"
dpkg --purge postern >/tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "purge"; }
[ ! -e /etc/postern ] || fail "purge left /etc/postern"
[ ! -e /var/spool/postern ] || fail "purge left /var/spool/postern"
grep -q "Testtando o POP" /home/suporte/Maildir/*/* || fail "purge lost the Maildir"
log "all steps passed"
TUTORIAL
chmod 0755 "$root/root/tutorial.sh"

# Everything below runs in private mount and UTS namespaces: the chroot's
# mounts and host name vanish with them, even on failure.
say "apt-get install ./$(basename "$deb") bsd-mailx in the chroot"
unshare --mount --uts --propagation private bash -euo pipefail -c '
    root=$1; cache=$2; pkg=$3
    hostname mail
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --bind "$cache/archives" "$root/var/cache/apt/archives"
    if ! chroot "$root" apt-get -q update >"$cache/apt-update.log" 2>&1; then
        tail -n 5 "$cache/apt-update.log"
        echo "skipped: apt-get update cannot reach Debian'"'"'s mirror"
        exit 77
    fi
    chroot "$root" apt-get -q -y install "$pkg" bsd-mailx > "$cache/apt.log" 2>&1 \
        || { tail -n 40 "$cache/apt.log"; exit 1; }
    chroot "$root" dpkg-query -W -f "\${Package} \${Status}\n" postern bsd-mailx
    if chroot "$root" dpkg-query -W exim4-base postfix 2>/dev/null; then
        echo "another MTA was installed"; exit 1
    fi
    say() { echo "install-deb: $*"; }
    say "the tutorial in its own network namespace"
    unshare --net bash -euo pipefail -c "ip link set lo up; chroot \"$root\" /root/tutorial.sh \"$pkg\""
' _ "$root" "$cache" "$pkg"
rm -rf "$root"
say "done in $((SECONDS - started))s"
