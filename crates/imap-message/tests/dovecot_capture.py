#!/usr/bin/env python3
# Captures Dovecot's FETCH answers for the test messages, the fixture that
# tests/dovecot.rs compares against.
#
#   apt-get install dovecot-imapd
#   python3 tests/dovecot_capture.py tests/messages tests/dovecot-items.txt > tests/dovecot-2.3.19.json
#
# Each message gets a throwaway Maildir in a temporary directory, and
# Dovecot's imap binary runs preauthenticated on stdin/stdout as nobody
# (Dovecot refuses root), with its own config: no listener, no daemon.
# One process per item, because Dovecot runs pipelined FETCHes in
# parallel and its tagged answers then arrive out of order.
import json, os, re, shutil, subprocess, sys, tempfile

msgdir, itemfile = sys.argv[1], sys.argv[2]
items = [l.strip() for l in open(itemfile) if l.strip()]
root = tempfile.mkdtemp(prefix='dovecot-capture-')
os.chmod(root, 0o755)
with open(f'{root}/dovecot.conf', 'w') as f:
    f.write(f'base_dir = {root}/run\nlog_path = {root}/log\nmail_location = maildir:{root}/Maildir\nssl = no\nprotocols = imap\n')
out = {}
try:
    for name in sorted(os.listdir(msgdir)):
        if not name.endswith('.eml'):
            continue
        shutil.rmtree(f'{root}/Maildir', ignore_errors=True)
        for d in ('cur', 'new', 'tmp'):
            os.makedirs(f'{root}/Maildir/{d}')
        shutil.copy(os.path.join(msgdir, name), f'{root}/Maildir/cur/1.test:2,S')
        subprocess.run(['chown', '-R', 'nobody:nogroup', root], check=True)
        res = {}
        for it in items:
            cmds = f'a EXAMINE INBOX\r\nt FETCH 1 ({it})\r\nz LOGOUT\r\n'
            p = subprocess.run(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', 'env', 'USER=nobody',
                                f'HOME={root}', '/usr/lib/dovecot/imap', '-c', f'{root}/dovecot.conf'],
                               input=cmds.encode(), capture_output=True, check=True)
            data = p.stdout
            pos = data.index(b'\r\na OK') + 2
            pos = data.index(b'\r\n', pos) + 2
            m = re.compile(rb'(^|\r\n)t (OK|NO|BAD)([^\r]*)\r\n').search(data, pos - 2)
            chunk = data[pos:m.start() + len(m.group(1))]
            res[it] = {'status': m.group(2).decode(), 'data': chunk.decode('latin-1')}
        out[name] = res
finally:
    shutil.rmtree(root, ignore_errors=True)
json.dump(out, sys.stdout, indent=1, sort_keys=True, ensure_ascii=True)
print()
