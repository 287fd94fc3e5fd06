#!/usr/bin/env python3
"""bench/pop3-load.py — the Maildir maker and POP3 client of bench/pop3.sh.

Standard library only. Subcommands (each prints one JSON line):

  maildir DIR COUNT SEED      build a Maildir of COUNT realistic messages
  login HOST:PORT USER PASS   USER, PASS, STAT, UIDL (the index a client reads first)
  retr HOST:PORT USER PASS    LIST, then RETR of every message, pipelined
  idle HOST:PORT PREFIX N PASS READY_FILE RELEASE_FILE
                              N sessions (users PREFIX1..PREFIXN) logged in
                              and idle until RELEASE_FILE exists

The client reads with large buffered recv_into() calls and finds the end
of a multi-line reply with bytes.find, and RETR commands go out from a
second thread while the main one reads, so the server never waits for
the client to ask (POP3 allows pipelining; RFC 2449 PIPELINING).
"""

import json
import os
import random
import socket
import sys
import threading
import time

CHUNK = 1 << 20


class Pop3Error(Exception):
    pass


class Conn:
    """One POP3 connection with a receive buffer that is consumed by offset."""

    def __init__(self, addr, timeout=120):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.off = 0
        self.chunk = bytearray(CHUNK)
        self.received = 0

    def _fill(self):
        n = self.sock.recv_into(self.chunk)
        if n == 0:
            raise Pop3Error("connection closed by the server")
        self.received += n
        self.buf += memoryview(self.chunk)[:n]

    def line(self):
        # Consumed bytes go only here, between replies, where no caller
        # holds an index into the buffer.
        if self.off > CHUNK:
            del self.buf[: self.off]
            self.off = 0
        while True:
            i = self.buf.find(b"\r\n", self.off)
            if i >= 0:
                s = bytes(self.buf[self.off : i])
                self.off = i + 2
                return s
            self._fill()

    def ok(self, what):
        s = self.line()
        if not s.startswith(b"+OK"):
            raise Pop3Error("%s: %r" % (what, s[:200]))
        return s

    def _terminator(self):
        """Index of the "\r\n.\r\n" that ends the multi-line reply starting
        at self.off, reading more as needed; each byte is searched once."""
        start = self.off
        search = start
        while True:
            i = self.buf.find(b"\r\n.\r\n", search)
            if i >= 0:
                return start, i
            search = max(start, len(self.buf) - 4)
            self._fill()

    def multi(self):
        """The body of a multi-line reply after its +OK line, dot-stuffing kept."""
        while len(self.buf) - self.off < 3:
            self._fill()
        if self.buf[self.off : self.off + 3] == b".\r\n":  # empty body
            self.off += 3
            return b""
        start, i = self._terminator()
        self.off = i + 5
        return bytes(self.buf[start : i + 2])

    def multi_len(self):
        """Like multi, but only the payload's length (dots unstuffed)."""
        while len(self.buf) - self.off < 3:
            self._fill()
        if self.buf[self.off : self.off + 3] == b".\r\n":
            self.off += 3
            return 0
        start, i = self._terminator()
        body = bytes(self.buf[start : i + 2])
        self.off = i + 5
        # A stuffed dot is the "." added to a line that began with ".".
        return len(body) - body.count(b"\r\n..") - (1 if body.startswith(b"..") else 0)

    def send(self, data):
        self.sock.sendall(data)

    def login(self, user, password):
        self.ok("greeting")
        self.send(b"USER %s\r\n" % user.encode())
        self.ok("USER")
        self.send(b"PASS %s\r\n" % password.encode())
        self.ok("PASS")

    def close(self):
        try:
            self.send(b"QUIT\r\n")
            self.ok("QUIT")
        finally:
            self.sock.close()


def cmd_login(addr, user, password):
    t0 = time.perf_counter()
    c = Conn(addr)
    c.login(user, password)
    t_login = time.perf_counter()
    c.send(b"STAT\r\n")
    stat = c.ok("STAT").split()
    c.send(b"UIDL\r\n")
    c.ok("UIDL")
    body = c.multi()
    t1 = time.perf_counter()
    uidls = body.count(b"\r\n")
    uniq = len(set(line.split(b" ", 1)[1] for line in body.split(b"\r\n") if line))
    c.close()
    print(json.dumps({
        "seconds": round(t1 - t0, 6), "login_seconds": round(t_login - t0, 6),
        "stat_count": int(stat[1]), "stat_octets": int(stat[2]),
        "uidl_lines": uidls, "uidl_unique": uniq,
    }))


def cmd_retr(addr, user, password):
    c = Conn(addr, timeout=300)
    c.login(user, password)
    c.send(b"LIST\r\n")
    c.ok("LIST")
    sizes = {}
    for line in c.multi().split(b"\r\n"):
        if line:
            n, s = line.split()
            sizes[int(n)] = int(s)
    nums = sorted(sizes)
    err = []

    def writer():
        try:
            # Batches keep the send side's memory small; the socket buffer
            # and this thread keep the server busy.
            for i in range(0, len(nums), 256):
                c.send(b"".join(b"RETR %d\r\n" % n for n in nums[i : i + 256]))
        except Exception as e:  # noqa: BLE001 (reported with the result)
            err.append(repr(e))

    cpu0 = os.times()
    t0 = time.perf_counter()
    th = threading.Thread(target=writer)
    th.start()
    total = 0
    mismatches = 0
    for n in nums:
        c.ok("RETR %d" % n)
        got = c.multi_len()
        total += got
        if got != sizes[n]:
            mismatches += 1
    t1 = time.perf_counter()
    cpu1 = os.times()
    th.join()
    c.close()
    listed = sum(sizes.values())
    print(json.dumps({
        "messages": len(nums), "bytes": total, "list_bytes": listed, "size_mismatches": mismatches,
        "seconds": round(t1 - t0, 6), "mb_per_s": round(total / 1e6 / (t1 - t0), 3),
        "wire_bytes": c.received,
        "client_cpu_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 3),
        "writer_error": err[0] if err else None,
    }))


def cmd_idle(addr, prefix, count, password, ready_file, release_file):
    conns = []
    t0 = time.perf_counter()
    for i in range(1, count + 1):
        c = Conn(addr, timeout=600)
        c.login("%s%d" % (prefix, i), password)
        c.send(b"STAT\r\n")
        c.ok("STAT")
        conns.append(c)
    t1 = time.perf_counter()
    with open(ready_file + ".tmp", "w") as f:
        f.write("%d\n" % len(conns))
    os.rename(ready_file + ".tmp", ready_file)
    while not os.path.exists(release_file):
        time.sleep(0.05)
    alive = 0
    for c in conns:
        c.send(b"NOOP\r\n")
        c.ok("NOOP")
        alive += 1
        c.close()
    print(json.dumps({"sessions": count, "logged_in": len(conns), "noop_ok": alive,
                      "login_seconds": round(t1 - t0, 3)}))


WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her she there been one all we their has would when if so no will more can its said into "
         "time only new some could these two may first then do any like my now over such our man me even most made "
         "after also did many before must through back years where much your way well down should because each just "
         "those people how too little state good very make world still own see men work long get here between both "
         "mail server queue message delivery relay mailbox folder report meeting attached please thanks regards "
         "schedule invoice project review update tomorrow yesterday morning evening").split()


def body_text(rng, size):
    out = []
    n = 0
    while n < size:
        words = rng.randint(6, 14)
        line = " ".join(rng.choice(WORDS) for _ in range(words))
        if rng.random() < 0.01:
            line = "." + line  # a line that needs dot-stuffing
        out.append(line)
        n += len(line) + 1
        if rng.random() < 0.08:
            out.append("")
            n += 1
    return "\n".join(out) + "\n"


def cmd_maildir(d, count, seed):
    """COUNT messages of 2-50 KB, LF line ends as delivered, in new/ (30%)
    and cur/ (70%, mostly seen). Half carry Dovecot/Postern-style
    ,S=size,W=crlfsize names (the size needs no read), half the plain
    time.MusecPpid.host names other delivery agents write."""
    rng = random.Random(seed)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    t = 1764000000
    total = 0
    for i in range(count):
        t += rng.randint(1, 240)
        usec = rng.randint(0, 999999)
        pid = rng.randint(1000, 65000)
        # A skewed mix: many small notes, some longer mails (2-50 KB).
        size = int(2048 + (50 * 1024 - 2048) * (rng.random() ** 2.2))
        frm = "%s%d@example.org" % (rng.choice(("ana", "bruno", "carla", "davi", "eva", "fabio")), rng.randint(1, 99))
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))
        subj = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
        head = (
            "Return-Path: <%s>\n"
            "Delivered-To: bench@bench.test\n"
            "Received: from mx.example.org (mx.example.org [192.0.2.%d])\n"
            "\tby mail.bench.test (Postern) with ESMTPS id %05X%06X\n"
            "\tfor <bench@bench.test>; %s\n"
            "Received: from [10.0.0.%d] by mx.example.org with ESMTPSA; %s\n"
            "Message-ID: <%d.%d.%d@example.org>\n"
            "Date: %s\n"
            "From: %s\n"
            "To: Bench <bench@bench.test>\n"
            "Subject: %s\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            "\n"
        ) % (frm, rng.randint(1, 254), t & 0xFFFFF, usec, date, rng.randint(1, 254), date,
             t, usec, i, date, frm, subj.capitalize())
        data = (head + body_text(rng, max(0, size - len(head)))).encode()
        crlf = len(data) + data.count(b"\n")
        base = "%d.M%dP%d.mail.bench.test" % (t, usec, pid)
        if rng.random() < 0.5:
            base += ",S=%d,W=%d" % (len(data), crlf)
        if rng.random() < 0.3:
            path = os.path.join(d, "new", base)
        else:
            path = os.path.join(d, "cur", base + (":2,S" if rng.random() < 0.9 else ":2,"))
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (t, t))
        total += crlf
    print(json.dumps({"messages": count, "crlf_bytes": total}))


def main(argv):
    try:
        if argv[1:2] == ["maildir"]:
            cmd_maildir(argv[2], int(argv[3]), int(argv[4]))
        elif argv[1:2] == ["login"]:
            cmd_login(argv[2], argv[3], argv[4])
        elif argv[1:2] == ["retr"]:
            cmd_retr(argv[2], argv[3], argv[4])
        elif argv[1:2] == ["idle"]:
            cmd_idle(argv[2], argv[3], int(argv[4]), argv[5], argv[6], argv[7])
        else:
            sys.exit(__doc__)
    except (OSError, Pop3Error, ValueError, IndexError) as e:
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
