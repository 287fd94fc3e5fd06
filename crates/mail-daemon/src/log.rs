//! Logging in Postfix's line format, so tools written for Postfix logs
//! (pflogsumm, fail2ban filters) read ours:
//!
//! `Nov 28 12:57:20 host postern/smtpd[4242]: 19BC...: client=localhost[127.0.0.1]`
//!
//! Where lines go (`maillog_destination`, unless `maillog_file` is set,
//! which wins as it replaces syslog in Postfix):
//! - `syslog`: one RFC 3164 datagram per line to `syslog_socket`
//!   (`/dev/log`), byte for byte what Postfix's syslog(3) calls send:
//!   `<PRI>Mmm dd hh:mm:ss postern/smtpd[PID]: TEXT`, without a host name
//!   (the syslog daemon adds it), facility `syslog_facility`, severity
//!   info, warning, err or crit (fatal:, panic:) as Postfix maps them;
//! - `journald`: the journal's native protocol through tracing-journald,
//!   `SYSLOG_IDENTIFIER=postern/smtpd`, `SYSLOG_PID`, `SYSLOG_FACILITY`,
//!   and `MESSAGE` the same text as a syslog line carries;
//! - `stderr` (master passes its own stderr to children), or the file.
//!
//! Warnings and errors get Postfix's `warning: ` and `error: ` prefixes in
//! every destination. A line the syslog daemon or journald does not take
//! (no socket, a full queue for a second) is written to stderr instead, so
//! no line vanishes without a trace.

use mail_config::Main;
use mail_config::settings::{LogDestination, Logging};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static TO_STDERR: AtomicBool = AtomicBool::new(true);

/// The longest text sent in one syslog datagram: rsyslog's and
/// syslog-ng's default message size is 8 KiB, and a longer datagram is
/// cut or dropped by them.
const MAX_SYSLOG_TEXT: usize = 8000;

/// How long one line may wait for a full syslog socket before it goes
/// to stderr instead: a stalled syslog daemon must not stall mail.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether [`init`] has run.
pub fn is_initialized() -> bool {
    INITIALIZED.load(Ordering::Relaxed)
}

/// Whether log lines end up on this process's standard error (no
/// logger yet, or `maillog_destination = stderr`): commands that also
/// print their messages for the operator use it not to print them twice.
pub fn writes_stderr() -> bool {
    TO_STDERR.load(Ordering::Relaxed)
}

/// Where a [`Main`] sends the log, as [`init`] would choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard error.
    Stderr,
    /// Appended to this file.
    File(PathBuf),
    /// RFC 3164 datagrams to this socket, with this facility code.
    Syslog(PathBuf, u8),
    /// The systemd journal, with this facility code.
    Journald(u8),
}

impl Destination {
    /// The destination `config` names.
    pub fn of(config: &Main) -> Destination {
        // The typed settings resolve a relative maillog_file against the
        // configuration directory, as `postern start` does.
        let common = mail_config::settings::Common::new(config);
        let logging = Logging::new(config);
        match (common.maillog_file, logging.maillog_destination) {
            (Some(f), _) => Destination::File(f),
            (None, LogDestination::Syslog) => {
                Destination::Syslog(logging.syslog_socket, logging.syslog_facility)
            }
            (None, LogDestination::Journald) => Destination::Journald(logging.syslog_facility),
            (None, _) => Destination::Stderr,
        }
    }
}

/// Postfix's severities: `msg_info` is LOG_INFO, `msg_warn` LOG_WARNING,
/// `msg_error` LOG_ERR, `msg_fatal` and `msg_panic` LOG_CRIT.
#[derive(Clone, Copy)]
enum Severity {
    Info = 6,
    Warning = 4,
    Err = 3,
    Crit = 2,
}

struct Syslog {
    path: PathBuf,
    facility: u8,
    socket: Option<UnixDatagram>,
}

impl Syslog {
    fn connect(path: &Path) -> Option<UnixDatagram> {
        let s = UnixDatagram::unbound().ok()?;
        s.connect(path).ok()?;
        s.set_write_timeout(Some(SEND_TIMEOUT)).ok()?;
        Some(s)
    }

    /// Sends one line; false when the syslog daemon did not take it even
    /// after a reconnect (it may have restarted and bound a new socket).
    fn send(&mut self, severity: Severity, tag: &str, text: &str) -> bool {
        let text = truncate(text, MAX_SYSLOG_TEXT);
        let now = chrono::Local::now().format("%b %e %H:%M:%S");
        let pri = u32::from(self.facility) * 8 + severity as u32;
        let datagram = format!("<{pri}>{now} {tag}: {text}");
        for _ in 0..2 {
            if self.socket.is_none() {
                self.socket = Syslog::connect(&self.path);
            }
            match &self.socket {
                Some(s) if s.send(datagram.as_bytes()).is_ok() => return true,
                _ => self.socket = None,
            }
        }
        false
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

enum Sink {
    Stderr,
    File(std::fs::File),
    Syslog(Syslog),
    /// tracing-journald's layer in a dispatcher of its own, handed the
    /// finished text as an event's message (see [`PostfixLayer::journal`]).
    Journald(tracing::Dispatch),
}

struct PostfixLayer {
    /// `postern/smtpd`: syslog's tag and the journal's identifier.
    ident: String,
    pid: u32,
    host: String,
    sink: Mutex<Sink>,
    /// Counts this process's lines for master's metrics endpoint.
    metrics: Option<Mutex<crate::metrics::Reporter>>,
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, ", {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, ", {}={:?}", field.name(), value);
        }
    }
}

impl PostfixLayer {
    /// The file and stderr form: timestamp, short host name, tag.
    fn file_line(&self, text: &str) -> String {
        let now = chrono::Local::now().format("%b %e %H:%M:%S");
        format!("{now} {} {}[{}]: {text}\n", self.host, self.ident, self.pid)
    }

    /// Hands `text` to tracing-journald as the message of an event of
    /// the same level, given to its dispatcher directly: the thread's
    /// default dispatcher is busy with the event being logged.
    fn journal(dispatch: &tracing::Dispatch, severity: Severity, text: &str) {
        let meta: &'static Metadata<'static> = match severity {
            Severity::Info => &JOURNAL_INFO,
            Severity::Warning => &JOURNAL_WARN,
            Severity::Err | Severity::Crit => &JOURNAL_ERROR,
        };
        let fields = meta.fields();
        let Some(message) = fields.field("message") else { return };
        let value = format_args!("{text}");
        let values = [(&message, Some(&value as &dyn tracing::Value))];
        dispatch.event(&tracing::Event::new(meta, &fields.value_set(&values)));
    }
}

/// The callsite of the events [`PostfixLayer::journal`] makes: they are
/// never registered with the global dispatcher, so interest is moot.
struct JournalCallsite(&'static Metadata<'static>);

impl Callsite for JournalCallsite {
    fn set_interest(&self, _: tracing::subscriber::Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.0
    }
}

macro_rules! journal_callsite {
    ($site:ident, $meta:ident, $level:expr) => {
        static $site: JournalCallsite = JournalCallsite(&$meta);
        static $meta: Metadata<'static> = Metadata::new(
            "log line",
            "postern",
            $level,
            None,
            None,
            None,
            FieldSet::new(&["message"], Identifier(&$site)),
            Kind::EVENT,
        );
    };
}

journal_callsite!(JOURNAL_INFO_SITE, JOURNAL_INFO, Level::INFO);
journal_callsite!(JOURNAL_WARN_SITE, JOURNAL_WARN, Level::WARN);
journal_callsite!(JOURNAL_ERROR_SITE, JOURNAL_ERROR, Level::ERROR);

impl<S: Subscriber> Layer<S> for PostfixLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::INFO {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let fatal = f.message.starts_with("fatal:") || f.message.starts_with("panic:");
        let (prefix, severity) = match level {
            Level::ERROR if fatal => ("", Severity::Crit),
            Level::ERROR => ("error: ", Severity::Err),
            Level::WARN => ("warning: ", Severity::Warning),
            _ => ("", Severity::Info),
        };
        if let Some(m) = &self.metrics
            && let Ok(mut m) = m.lock()
        {
            m.observe(&f.message);
        }
        let text = format!("{prefix}{}{}", f.message, f.rest);
        let Ok(mut sink) = self.sink.lock() else { return };
        // One write per line keeps lines whole when processes share a file.
        let taken = match &mut *sink {
            Sink::Stderr => false,
            Sink::File(file) => file.write_all(self.file_line(&text).as_bytes()).is_ok(),
            Sink::Syslog(s) => s.send(severity, &format!("{}[{}]", self.ident, self.pid), &text),
            Sink::Journald(d) => {
                PostfixLayer::journal(d, severity, &text);
                true
            }
        };
        if !taken {
            let _ = std::io::stderr().write_all(self.file_line(&text).as_bytes());
        }
    }
}

/// Installs the logger for `program` (the part after `postern/`).
/// Safe to call more than once; only the first call takes effect.
pub fn init(config: &Main, program: &str) {
    let name = mail_config::settings::Common::new(config).syslog_name;
    init_with(&name, program, Destination::of(config));
}

/// [`init`] for a daemon master started as `service`: with
/// `metrics_listen` set, its lines are also counted for master's
/// metrics endpoint (connected now, before any privilege drop).
pub fn init_service(config: &Main, program: &str, service: &str) {
    let common = mail_config::settings::Common::new(config);
    let reporter = Logging::new(config).metrics_listen.and_then(|_| {
        let path = common.queue_directory.join(crate::metrics::SOCKET);
        crate::metrics::Reporter::connect(&path, service, program)
    });
    install(&common.syslog_name, program, Destination::of(config), reporter);
}

/// [`init`] for a command any local user may run (postqueue): a log
/// file that user cannot open is no warning, since the command prints
/// its messages on standard error anyway.
pub fn init_command(config: &Main, program: &str) {
    let name = mail_config::settings::Common::new(config).syslog_name;
    let destination = match Destination::of(config) {
        Destination::File(p)
            if std::fs::OpenOptions::new().append(true).create(true).open(&p).is_err() =>
        {
            Destination::Stderr
        }
        d => d,
    };
    init_with(&name, program, destination);
}

/// Like [`init`] with the parts given (tools that must log before or
/// without loading a configuration).
pub fn init_with(syslog_name: &str, program: &str, destination: Destination) {
    install(syslog_name, program, destination, None);
}

fn install(
    syslog_name: &str,
    program: &str,
    destination: Destination,
    reporter: Option<crate::metrics::Reporter>,
) {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return;
    }
    let ident = format!("{syslog_name}/{program}");
    let pid = std::process::id();
    let sink = match destination {
        Destination::Stderr => Sink::Stderr,
        Destination::File(p) => {
            match std::fs::OpenOptions::new().append(true).create(true).open(&p) {
                Ok(f) => Sink::File(f),
                Err(e) => {
                    eprintln!("{ident}[{pid}]: warning: cannot open {}: {e}", p.display());
                    Sink::Stderr
                }
            }
        }
        // Connected at the first line, and again after a failed send.
        Destination::Syslog(path, facility) => {
            Sink::Syslog(Syslog { path, facility, socket: None })
        }
        Destination::Journald(facility) => match journald(&ident, pid, facility) {
            Ok(d) => Sink::Journald(d),
            Err(e) => {
                eprintln!("{ident}[{pid}]: warning: cannot reach journald: {e}");
                Sink::Stderr
            }
        },
    };
    TO_STDERR.store(matches!(sink, Sink::Stderr), Ordering::Relaxed);
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let host = host.split('.').next().unwrap_or("localhost").to_owned();
    let metrics = reporter.map(Mutex::new);
    let layer = PostfixLayer { ident, pid, host, sink: Mutex::new(sink), metrics };
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

fn journald(ident: &str, pid: u32, facility: u8) -> std::io::Result<tracing::Dispatch> {
    use tracing_journald::{Priority, PriorityMappings};
    // Postfix's info lines are LOG_INFO, not tracing-journald's notice.
    let priorities = PriorityMappings { info: Priority::Informational, ..PriorityMappings::new() };
    let layer = tracing_journald::layer()?
        .with_syslog_identifier(ident.to_owned())
        .with_priority_mappings(priorities)
        .with_custom_fields([
            ("SYSLOG_PID", pid.to_string()),
            ("SYSLOG_FACILITY", facility.to_string()),
        ]);
    Ok(tracing::Dispatch::new(tracing_subscriber::registry().with(layer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_datagrams_are_postfix_s() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut s = Syslog { path: path.clone(), facility: 2, socket: None };
        assert!(s.send(Severity::Warning, "postern/smtpd[7]", "warning: x"));
        let mut buf = [0u8; 9000];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<20>"), "{got}");
        assert!(got.ends_with(" postern/smtpd[7]: warning: x"), "{got}");
        // "<20>Dec  2 00:34:44 ": the timestamp is 15 characters.
        assert_eq!(got.find(" postern"), Some(4 + 15), "{got}");

        let long = "é".repeat(MAX_SYSLOG_TEXT);
        assert!(s.send(Severity::Info, "t[1]", &long));
        let n = server.recv(&mut buf).unwrap();
        assert!(n < MAX_SYSLOG_TEXT + 40 && std::str::from_utf8(&buf[..n]).is_ok());

        // The syslog daemon restarted: a new socket at the same path.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        assert!(!s.send(Severity::Info, "t[1]", "lost"), "no socket: the caller uses stderr");
        let server = UnixDatagram::bind(&path).unwrap();
        assert!(s.send(Severity::Crit, "t[1]", "fatal: back"));
        let n = server.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("<18>"));
    }

    /// journald's socket path is fixed, so this runs the check below in
    /// a child with a private mount namespace and a tmpfs on /run, where
    /// the child binds the journal socket itself.
    #[test]
    fn journald_gets_postfix_s_text_and_identity() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for a private mount namespace");
            return;
        }
        let me = std::env::current_exe().unwrap();
        let out = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && exec \"$0\" --exact log::tests::journald_child --nocapture")
            .arg(&me)
            .env("POSTERN_JOURNALD_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("journald child: ok"), "{text}");
    }

    #[test]
    fn journald_child() {
        if std::env::var_os("POSTERN_JOURNALD_CHILD").is_none() {
            return;
        }
        let server = UnixDatagram::bind("/run/systemd/journal/socket").unwrap();
        let dispatch = journald("postfix/smtpd", 4242, 2).unwrap();
        // The probe tracing-journald sends when it starts.
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(n, 0);
        let layer = PostfixLayer {
            ident: "postfix/smtpd".into(),
            pid: 4242,
            host: "h".into(),
            sink: Mutex::new(Sink::Journald(dispatch)),
            metrics: None,
        };
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!("hostname x does not resolve");
        });
        let n = server.recv(&mut buf).unwrap();
        let got = journal_fields(&buf[..n]);
        for (key, value) in [
            ("MESSAGE", "warning: hostname x does not resolve"),
            ("SYSLOG_IDENTIFIER", "postfix/smtpd"),
            ("SYSLOG_PID", "4242"),
            ("SYSLOG_FACILITY", "2"),
            ("PRIORITY", "4"),
        ] {
            assert!(got.contains(&(key.to_owned(), value.to_owned())), "{key}={value} in {got:?}");
        }
        println!("journald child: ok");
    }

    /// The journal's native datagram: `KEY=value\n`, or `KEY\n`, a
    /// little-endian u64 length, the value and `\n`.
    fn journal_fields(mut d: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Some(nl) = d.iter().position(|b| *b == b'\n') {
            let line = &d[..nl];
            if let Some(eq) = line.iter().position(|b| *b == b'=') {
                let key = String::from_utf8_lossy(&line[..eq]).into_owned();
                out.push((key, String::from_utf8_lossy(&line[eq + 1..]).into_owned()));
                d = &d[nl + 1..];
            } else {
                let key = String::from_utf8_lossy(line).into_owned();
                let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
                let value = &d[nl + 9..nl + 9 + len];
                out.push((key, String::from_utf8_lossy(value).into_owned()));
                d = &d[nl + 10 + len..];
            }
        }
        out
    }
}
