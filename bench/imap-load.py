#!/usr/bin/env python3
"""bench/imap-load.py — the IMAP client of bench/imap.sh.

Standard library only. Subcommands (each prints one JSON line):

  select HOST:PORT USER PASS     LOGIN, SELECT INBOX (the index a client reads first)
  fetch HOST:PORT USER PASS      SELECT, then FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)
  bodies HOST:PORT USER PASS     SELECT, then UID FETCH 1:* BODY.PEEK[] (every message whole)
  search HOST:PORT USER PASS     SELECT, then SEARCH HEADER SUBJECT ... and SEARCH BODY ...
  idle HOST:PORT PREFIX N PASS READY_FILE RELEASE_FILE
                                 N sessions (users PREFIX1..PREFIXN) logged in, INBOX
                                 selected, in IDLE until RELEASE_FILE exists

Responses are read with large recv_into() calls; literals ({n}) are
skipped by count, so the client costs little next to the server. Times are
from the command sent to its tagged OK.
"""

import json
import os
import re
import socket
import sys
import time

CHUNK = 1 << 20
LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class ImapError(Exception):
    pass


class Conn:
    def __init__(self, addr, timeout=600):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = bytearray()
        self.pos = 0
        self.received = 0
        self.n = 0
        self.line()  # greeting

    def fill(self):
        if self.pos > CHUNK:
            del self.buf[: self.pos]
            self.pos = 0
        chunk = self.s.recv(CHUNK)
        if not chunk:
            raise ImapError("connection closed")
        self.received += len(chunk)
        self.buf += chunk

    def line(self):
        """One response line with its literals; returns (line bytes without
        literal contents, literal bytes total)."""
        head = bytearray()
        lit = 0
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            while end < 0:
                self.fill()
                end = self.buf.find(b"\r\n", self.pos)
            piece = bytes(self.buf[self.pos: end + 2])
            self.pos = end + 2
            head += piece
            m = LITERAL.search(piece)
            if not m:
                return bytes(head), lit
            size = int(m.group(1))
            lit += size
            while len(self.buf) - self.pos < size:
                self.fill()
            self.pos += size

    def send(self, data):
        self.s.sendall(data)

    def cmd(self, text):
        """Sends a command; returns (untagged lines, literal octets, seconds)."""
        self.n += 1
        tag = b"b%d" % self.n
        t0 = time.perf_counter()
        self.send(tag + b" " + text.encode() + b"\r\n")
        lines = []
        lit = 0
        while True:
            line, n = self.line()
            lit += n
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1:].startswith(b"OK"):
                    raise ImapError("%s: %s" % (text, line.decode(errors="replace").strip()))
                return lines, lit, time.perf_counter() - t0
            lines.append(line)

    def login(self, user, password):
        self.cmd('LOGIN "%s" "%s"' % (user, password))

    def select(self):
        lines, _, secs = self.cmd("SELECT INBOX")
        exists = None
        for l in lines:
            m = re.match(rb"\* (\d+) EXISTS", l)
            if m:
                exists = int(m.group(1))
        return exists, secs

    def close(self):
        try:
            self.cmd("LOGOUT")
        except (ImapError, OSError):
            pass
        self.s.close()


def cpu():
    t = os.times()
    return t.user + t.system


def cmd_select(addr, user, password):
    t0 = time.perf_counter()
    c = Conn(addr)
    c.login(user, password)
    exists, _ = c.select()
    secs = time.perf_counter() - t0
    c.close()
    print(json.dumps({"exists": exists, "seconds": round(secs, 4)}))


def session(addr, user, password):
    c = Conn(addr)
    c.login(user, password)
    exists, _ = c.select()
    return c, exists


def cmd_fetch(addr, user, password):
    c, exists = session(addr, user, password)
    cpu0 = cpu()
    lines, lit, secs = c.cmd("FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)")
    cpu1 = cpu()
    fetched = sum(1 for l in lines if b" FETCH (" in l and b"ENVELOPE" in l)
    sizes = 0
    for l in lines:
        m = re.search(rb"RFC822\.SIZE (\d+)", l)
        if m:
            sizes += int(m.group(1))
    c.close()
    print(json.dumps({"exists": exists, "fetched": fetched, "size_sum": sizes, "seconds": round(secs, 4),
                      "wire_bytes": c.received, "client_cpu_s": round(cpu1 - cpu0, 3)}))


def cmd_bodies(addr, user, password):
    c, exists = session(addr, user, password)
    cpu0 = cpu()
    lines, lit, secs = c.cmd("UID FETCH 1:* BODY.PEEK[]")
    cpu1 = cpu()
    c.close()
    print(json.dumps({"exists": exists, "fetched": len(lines), "bytes": lit, "seconds": round(secs, 4),
                      "mb_per_s": round(lit / secs / 1e6, 2), "client_cpu_s": round(cpu1 - cpu0, 3)}))


def cmd_search(addr, user, password):
    c, exists = session(addr, user, password)
    out = {"exists": exists}
    # A word in some subjects and a word only in some bodies (see
    # bench/pop3-load.py's vocabulary): both servers must find the same.
    for key, q in (("header", 'SEARCH HEADER SUBJECT "invoice"'), ("body", 'SEARCH BODY "tomorrow yesterday"')):
        lines, _, secs = c.cmd(q)
        hits = sum(len(l.split()) - 2 for l in lines if l.startswith(b"* SEARCH"))
        out[key + "_seconds"] = round(secs, 4)
        out[key + "_hits"] = hits
    c.close()
    print(json.dumps(out))


def cmd_idle(addr, prefix, count, password, ready_file, release_file):
    conns = []
    t0 = time.perf_counter()
    for i in range(1, count + 1):
        c = Conn(addr)
        c.login("%s%d" % (prefix, i), password)
        c.select()
        c.send(b"i IDLE\r\n")
        line, _ = c.line()
        if not line.startswith(b"+"):
            raise ImapError("IDLE: %s" % line.decode(errors="replace").strip())
        conns.append(c)
    t1 = time.perf_counter()
    with open(ready_file + ".tmp", "w") as f:
        f.write("%d\n" % len(conns))
    os.rename(ready_file + ".tmp", ready_file)
    while not os.path.exists(release_file):
        time.sleep(0.05)
    alive = 0
    for c in conns:
        c.send(b"DONE\r\n")
        while True:
            line, _ = c.line()
            if line.startswith(b"i "):
                break
        if line.startswith(b"i OK"):
            alive += 1
        c.close()
    print(json.dumps({"sessions": count, "logged_in": len(conns), "done_ok": alive,
                      "login_seconds": round(t1 - t0, 3)}))


def main(argv):
    try:
        cmds = {"select": cmd_select, "fetch": cmd_fetch, "bodies": cmd_bodies, "search": cmd_search}
        if argv[1:2] and argv[1] in cmds:
            cmds[argv[1]](argv[2], argv[3], argv[4])
        elif argv[1:2] == ["idle"]:
            cmd_idle(argv[2], argv[3], int(argv[4]), argv[5], argv[6], argv[7])
        else:
            sys.exit(__doc__)
    except (OSError, ImapError, ValueError, IndexError) as e:
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
