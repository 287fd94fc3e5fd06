#!/usr/bin/env python3
# Captures Dovecot's SORT, THREAD and SEARCH answers on tests/mailbox/,
# the fixture tests/mailbox.rs compares against.
#
#   python3 tests/mailbox_capture.py tests/mailbox tests/mailbox-commands.txt > tests/mailbox-dovecot-2.3.19.json
#
# The Maildir gets the messages in file order (the names' time stamps
# give Dovecot's UID order), the flags of meta.txt in the names and its
# internal dates as mtimes. Run as in dovecot_capture.py.
import json, os, re, shutil, subprocess, sys, tempfile

msgdir, cmdfile = sys.argv[1], sys.argv[2]
# A literal \r\n in a command line stands for CRLF (before a literal's data).
cmds = [l.rstrip('\n') for l in open(cmdfile, encoding='utf-8') if l.strip()]
meta = [l.split() for l in open(os.path.join(msgdir, 'meta.txt')) if l.strip() and not l.startswith('#')]
root = tempfile.mkdtemp(prefix='dovecot-capture-')
os.chmod(root, 0o755)
with open(f'{root}/dovecot.conf', 'w') as f:
    f.write(f'base_dir = {root}/run\nlog_path = {root}/log\nmail_location = maildir:{root}/Maildir\nssl = no\nprotocols = imap\n')
out = {}
try:
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(f'{root}/Maildir/{d}')
    for i, (name, flags, date) in enumerate(meta, 1):
        flags = '' if flags == '-' else ''.join(sorted(flags))
        dest = f'{root}/Maildir/cur/{1000000000 + i}.M{i}P1.test:2,{flags}'
        shutil.copy(os.path.join(msgdir, name), dest)
        os.utime(dest, (int(date), int(date)))
    subprocess.run(['chown', '-R', 'nobody:nogroup', root], check=True)
    for c in cmds:
        script = 'a EXAMINE INBOX\r\nt ' + c.replace('\\r\\n', '\r\n') + '\r\nz LOGOUT\r\n'
        p = subprocess.run(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', 'env', 'USER=nobody',
                            f'HOME={root}', '/usr/lib/dovecot/imap', '-c', f'{root}/dovecot.conf'],
                           input=script.encode('utf-8'), capture_output=True, check=True)
        data = p.stdout
        pos = data.index(b'\r\na OK') + 2
        pos = data.index(b'\r\n', pos) + 2
        m = re.compile(rb'(^|\r\n)t (OK|NO|BAD)([^\r]*)\r\n').search(data, pos - 2)
        chunk = data[pos:m.start() + len(m.group(1))]
        out[c] = {'status': m.group(2).decode(), 'data': chunk.decode('latin-1')}
finally:
    shutil.rmtree(root, ignore_errors=True)
json.dump(out, sys.stdout, indent=1, ensure_ascii=True)
print()
