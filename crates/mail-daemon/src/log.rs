//! Logging in Postfix's line format, so tools written for Postfix logs
//! (pflogsumm, fail2ban filters) read ours:
//!
//! `Nov 28 12:57:20 host postern/smtpd[4242]: 19BC...: client=localhost[127.0.0.1]`
//!
//! Lines go to stderr (master passes its own stderr to children), or are
//! appended to `maillog_file` when set. Warnings and errors get Postfix's
//! `warning: ` and `error: ` prefixes.

use mail_config::Main;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] has run.
pub fn is_initialized() -> bool {
    INITIALIZED.load(Ordering::Relaxed)
}

enum Sink {
    Stderr,
    File(std::fs::File),
}

struct PostfixLayer {
    prefix: String,
    host: String,
    sink: Mutex<Sink>,
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

impl<S: Subscriber> Layer<S> for PostfixLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::INFO {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let severity = match level {
            Level::ERROR
                if !f.message.starts_with("fatal:") && !f.message.starts_with("panic:") =>
            {
                "error: "
            }
            Level::WARN => "warning: ",
            _ => "",
        };
        let now = chrono::Local::now().format("%b %e %H:%M:%S");
        let line =
            format!("{now} {} {}: {severity}{}{}\n", self.host, self.prefix, f.message, f.rest);
        let Ok(mut sink) = self.sink.lock() else { return };
        // One write per line keeps lines whole when processes share a file.
        let _ = match &mut *sink {
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Sink::File(file) => file.write_all(line.as_bytes()),
        };
    }
}

/// Installs the logger for `program` (the part after `postern/`).
/// Safe to call more than once; only the first call takes effect.
pub fn init(config: &Main, program: &str) {
    // The typed settings resolve a relative maillog_file against the
    // configuration directory, as `postern start` does.
    let common = mail_config::settings::Common::new(config);
    let file = common.maillog_file.map(|p| p.display().to_string());
    init_with(&common.syslog_name, program, file.as_deref());
}

/// Like [`init`] without a configuration (tools that must log before or
/// without loading one).
pub fn init_with(syslog_name: &str, program: &str, maillog_file: Option<&str>) {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return;
    }
    let sink =
        match maillog_file.map(|p| std::fs::OpenOptions::new().append(true).create(true).open(p)) {
            Some(Ok(f)) => Sink::File(f),
            _ => Sink::Stderr,
        };
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let host = host.split('.').next().unwrap_or("localhost").to_owned();
    let layer = PostfixLayer {
        prefix: format!("{syslog_name}/{program}[{}]", std::process::id()),
        host,
        sink: Mutex::new(sink),
    };
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}
