//! Counting what the daemons do, for master's Prometheus endpoint
//! (`metrics_listen`; design in docs/ARCHITECTURE.md, "Metrics").
//!
//! The numbers come from the log: the logger hands every line it writes
//! to [`Counts::observe`], which recognises Postfix's words
//! (`QUEUEID: client=`, `QUEUEID: uid=`, `to=<...>, ... status=sent`,
//! `connect from`, `SSL_accept error`, `authentication failed`), so the
//! metrics and pflogsumm's report of the same log cannot disagree. After
//! each counted line the process sends its totals since it started (not
//! the increment) in one datagram to `private/metrics`, which master
//! binds: a datagram lost to a full socket queue is made good by the
//! next, and master folds a process's last totals into the service's
//! when the process is gone.
//!
//! The datagram is text, at most [`MAX_DATAGRAM`] bytes:
//! `postern-metrics 1\npid P\nstart T\nservice S\nprogram X\n` then
//! `NAME VALUE` lines for the counters, `bucket I N` for the delay
//! histogram's buckets (not cumulative) and `delay_ms N` for its sum.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// master's datagram socket, relative to the queue directory.
pub const SOCKET: &str = "private/metrics";

/// The largest datagram either side handles.
pub const MAX_DATAGRAM: usize = 4096;

/// The first line of every datagram.
const MAGIC: &str = "postern-metrics 1";

/// The counters, in exposition order: name in the datagram, metric name,
/// help text.
pub const COUNTERS: [(&str, &str, &str); 7] = [
    (
        "received",
        "postern_messages_received_total",
        "Messages queued (smtpd's QUEUEID: client= lines, pickup's QUEUEID: uid= lines).",
    ),
    (
        "delivered",
        "postern_messages_delivered_total",
        "Recipients delivered (status=sent), counted as pflogsumm counts them.",
    ),
    (
        "deferred",
        "postern_messages_deferred_total",
        "Delivery attempts deferred (status=deferred).",
    ),
    ("bounced", "postern_messages_bounced_total", "Recipients bounced (status=bounced)."),
    ("connections", "postern_connections_total", "SMTP client connections (connect from lines)."),
    (
        "tls_failures",
        "postern_tls_failures_total",
        "Failed TLS handshakes (SSL_accept error lines).",
    ),
    (
        "auth_failures",
        "postern_auth_failures_total",
        "Failed logins: SMTP AUTH, POP3 and IMAP (authentication failed lines).",
    ),
];

/// The delivery delay histogram's upper bounds, in seconds (the last
/// bucket, +Inf, is implied).
pub const DELAY_BUCKETS: [f64; 14] =
    [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0];

/// One process's totals (or a service's, summed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Indexed as [`COUNTERS`].
    pub counters: [u64; 7],
    /// Per bucket of [`DELAY_BUCKETS`], plus one for +Inf; not cumulative.
    pub buckets: [u64; 15],
    /// The sum of the observed delays, in milliseconds.
    pub delay_ms: u64,
}

impl Counts {
    /// Counts one log line's text (without the `warning: ` prefix);
    /// true when it counted something.
    pub fn observe(&mut self, text: &str) -> bool {
        let Some(i) = classify(text) else { return false };
        self.counters[i] = self.counters[i].saturating_add(1);
        if i == 1
            && let Some(delay) = field(text, "delay=").and_then(|d| d.parse::<f64>().ok())
        {
            self.observe_delay(delay);
        }
        true
    }

    fn observe_delay(&mut self, seconds: f64) {
        let seconds = if seconds.is_finite() && seconds > 0.0 { seconds } else { 0.0 };
        let i = DELAY_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(DELAY_BUCKETS.len());
        self.buckets[i] = self.buckets[i].saturating_add(1);
        // Rounded to milliseconds; far beyond any real delay saturates.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = (seconds * 1000.0).round().min(u64::MAX as f64) as u64;
        self.delay_ms = self.delay_ms.saturating_add(ms);
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.counters.iter_mut().zip(other.counters) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a = a.saturating_add(b);
        }
        self.delay_ms = self.delay_ms.saturating_add(other.delay_ms);
    }
}

/// Which counter a line counts for, by Postfix's words.
fn classify(text: &str) -> Option<usize> {
    if text.starts_with("connect from ") {
        return Some(4);
    }
    if text.starts_with("SSL_accept error") {
        return Some(5);
    }
    if text.contains(" authentication failed") {
        return Some(6);
    }
    // QUEUEID: ... lines.
    let (id, rest) = text.split_once(": ")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    if rest.starts_with("client=") || rest.starts_with("uid=") {
        return Some(0);
    }
    if !rest.starts_with("to=<") {
        return None;
    }
    match field(rest, "status=")? {
        "sent" => Some(1),
        "deferred" => Some(2),
        "bounced" => Some(3),
        _ => None,
    }
}

/// The value of `, NAME=VALUE` (up to the next comma or blank).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let at = text.find(&format!(", {name}"))? + 2 + name.len();
    let value = &text[at..];
    Some(value.split([',', ' ']).next().unwrap_or(value))
}

/// Who sent a datagram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sender {
    /// Its pid.
    pub pid: u32,
    /// Its start time (`/proc/PID/stat` field 22), which tells a reused
    /// pid from the process that sent the totals.
    pub start: u64,
    /// Its master.toml service.
    pub service: String,
    /// Its program (`smtpd`, `local`, ...).
    pub program: String,
}

/// The datagram for `counts`.
pub fn encode(sender: &Sender, counts: &Counts) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "{MAGIC}\npid {}\nstart {}\nservice {}\nprogram {}\n",
        sender.pid, sender.start, sender.service, sender.program
    );
    for ((name, _, _), v) in COUNTERS.iter().zip(counts.counters) {
        let _ = writeln!(s, "{name} {v}");
    }
    for (i, v) in counts.buckets.iter().enumerate() {
        let _ = writeln!(s, "bucket {i} {v}");
    }
    let _ = writeln!(s, "delay_ms {}", counts.delay_ms);
    s
}

/// A service or program name as a label value may carry it: short, and
/// none of the characters the exposition format escapes.
fn label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

/// Reads a datagram; `None` for anything not exactly what [`encode`]
/// writes (anyone who can reach the socket could send bytes).
pub fn decode(d: &[u8]) -> Option<(Sender, Counts)> {
    if d.len() > MAX_DATAGRAM {
        return None;
    }
    let text = std::str::from_utf8(d).ok()?;
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut value = |key: &str| {
        let (k, v) = lines.next()?.split_once(' ')?;
        (k == key).then(|| v.to_owned())
    };
    let pid = value("pid")?.parse().ok()?;
    let start = value("start")?.parse().ok()?;
    let service = value("service")?;
    let program = value("program")?;
    if !label_ok(&service) || !label_ok(&program) {
        return None;
    }
    let mut counts = Counts::default();
    for (i, (name, _, _)) in COUNTERS.iter().enumerate() {
        counts.counters[i] = value(name)?.parse().ok()?;
    }
    for i in 0..counts.buckets.len() {
        let v = value("bucket")?;
        let (n, v) = v.split_once(' ')?;
        if n.parse::<usize>().ok()? != i {
            return None;
        }
        counts.buckets[i] = v.parse().ok()?;
    }
    counts.delay_ms = value("delay_ms")?.parse().ok()?;
    if lines.next().is_some() {
        return None;
    }
    let sender = Sender { pid, start, service, program };
    // Only the one form `encode` writes: `+2`, `02`, CRLF or a missing
    // last newline would parse too, and are no sender of ours.
    (encode(&sender, &counts).as_bytes() == d).then_some((sender, counts))
}

/// The start time of process `pid` (`/proc/PID/stat` field 22, clock
/// ticks since boot), or `None` when it does not exist.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold blanks and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A daemon's side: its totals and the socket to master.
pub(crate) struct Reporter {
    sender: Sender,
    counts: Counts,
    socket: UnixDatagram,
}

impl Reporter {
    /// Connects to `path` now, while the process may still be root:
    /// a connected datagram socket keeps working after the privilege drop.
    pub(crate) fn connect(path: &Path, service: &str, program: &str) -> Option<Reporter> {
        let socket = UnixDatagram::unbound().ok()?;
        socket.connect(path).ok()?;
        // Never wait for master: a full queue loses this datagram only.
        socket.set_nonblocking(true).ok()?;
        let pid = std::process::id();
        let sender = Sender {
            pid,
            start: start_time(pid)?,
            service: service.to_owned(),
            program: program.to_owned(),
        };
        Some(Reporter { sender, counts: Counts::default(), socket })
    }

    pub(crate) fn observe(&mut self, text: &str) {
        if self.counts.observe(text) {
            let _ = self.socket.send(encode(&self.sender, &self.counts).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_s_words_are_counted() {
        let mut c = Counts::default();
        for line in [
            "connect from localhost[127.0.0.1]",
            "6619C0205766605ZG4X: client=localhost[127.0.0.1]",
            "6619C020961F905ZG5D: uid=0 from=<suporte@postern.test>",
            "6619C0205766605ZG4X: to=<suporte@postern.test>, relay=local, delay=0.08, dsn=2.0.0, status=sent (delivered to maildir)",
            "6619C02076F6505ZG4X: to=<far@example.org>, relay=none, delay=0.17, delays=0.17/0/0/0, dsn=4.4.3, status=deferred (DNS lookups disabled)",
            "6619C020A0A8B05ZFY0: to=<ghost@postern.test>, relay=local, delay=0.03, dsn=5.1.1, status=bounced (unknown user: \"ghost\")",
            "SSL_accept error from unknown[192.0.2.1]: handshake",
            "unknown[192.0.2.1]: SASL PLAIN authentication failed: authentication failure",
            "localhost[127.0.0.1]: IMAP LOGIN authentication failed: user=<x>",
        ] {
            assert!(c.observe(line), "{line}");
        }
        for line in [
            "6619C0205766605ZG4X: message-id=<a@b>",
            "6619C0205766605ZG4X: removed",
            "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <to=<x>, status=sent>",
            "disconnect from localhost[127.0.0.1] ehlo=1 quit=1 commands=2",
            "6619C020A0A8B05ZFY0: sender non-delivery notification: 6619C020A936805ZG5D",
        ] {
            assert!(!c.observe(line), "{line}");
        }
        assert_eq!(c.counters, [2, 1, 1, 1, 1, 1, 2]);
        assert_eq!(c.buckets[0], 1, "0.08 s is in the first bucket");
        assert_eq!(c.delay_ms, 80);
    }

    #[test]
    fn datagrams_round_trip_and_bad_ones_are_refused() {
        let sender = Sender { pid: 42, start: 99, service: "smtp".into(), program: "smtpd".into() };
        let mut c = Counts::default();
        c.counters[3] = 7;
        c.observe_delay(4000.0);
        c.observe_delay(1e300);
        let d = encode(&sender, &c);
        assert!(d.len() < MAX_DATAGRAM);
        assert_eq!(decode(d.as_bytes()), Some((sender, c)));
        for bad in [
            d.replace("service smtp", "service sm\"tp"),
            d.replace("bucket 3", "bucket 4"),
            d.replace("bounced 7", "bounced -7"),
            format!("{d}extra 1\n"),
            d.replace(MAGIC, "postern-metrics 2"),
            d.rsplit_once("delay_ms").unwrap().0.to_owned(),
        ] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(decode(&vec![b'a'; MAX_DATAGRAM + 1]), None);
    }

    #[test]
    fn our_own_start_time_is_read() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
