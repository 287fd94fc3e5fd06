//! `postqueue`: the user's view of the queue (Postfix postqueue(1)).
//!
//! - `postqueue -p` (also `mailq`, `sendmail -bp`) lists `incoming/`,
//!   `active/`, `deferred/` and `hold/` in the layout of Postfix's
//!   `showq_compat.c` with its long-queue-id column widths (Postern's ids
//!   are 19 characters): an id followed by `*` is being delivered, by `!`
//!   is on hold; each pending recipient is listed under its latest defer
//!   reason from the message's status log; recipients with a final
//!   outcome are not shown. Like Postfix's showq it also lists
//!   `maildrop/` (not yet picked up; sender and command-line recipients
//!   from the file when it can be read, else the file is left out), and
//!   not `corrupt/`. A queue directory the user may not open is fatal
//!   (`postqueue: fatal: open queue directory PATH: Permission denied`,
//!   exit 1), never an empty queue.
//! - `postqueue -j` prints the same as one JSON object per message, byte
//!   for byte in the shape of Postfix's `postqueue -j` (field order,
//!   `", "` and `": "` separators, the null sender as `MAILER-DAEMON`).
//! - `postqueue -f` sends `Trigger::Flush` to qmgr (`public/qmgr`): retry
//!   every deferred message now; `-i ID` sends `Trigger::FlushId` (that
//!   message; a valid id no longer queued is no error, as in Postfix) and
//!   `-s SITE` `Trigger::FlushSite` (mail for that destination). A bad id
//!   or site gets Postfix's `Cannot flush ... - invalid name: "ID"` /
//!   `invalid destination: "SITE"` (exit 69).
//!
//! It reads the queue directly (no showq daemon). A file that vanishes
//! during the scan (delivered meanwhile) is skipped silently; an
//! unreadable one is skipped with a warning on stderr. `-c DIR` selects
//! the configuration directory.

use mail_config::{Main, settings};
use mail_ipc::trigger::Trigger;
use mail_queue::{Queue, State};
use mail_types::DeliveryStatus;
use mail_types::QueueId;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const EX_USAGE: u8 = 64;
const EX_UNAVAILABLE: u8 = 69;
const EX_CONFIG: u8 = 78;

/// The queues listed, in Postfix's order (hold last, as showq does).
const LISTED: [State; 4] = [State::Incoming, State::Active, State::Deferred, State::Hold];

/// One message as `postqueue -p` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Which queue it is in.
    pub state: State,
    /// Its queue id.
    pub id: QueueId,
    /// Size of the queue file in bytes.
    pub size: u64,
    /// Arrival time, seconds since the epoch.
    pub arrival: u64,
    /// Envelope sender; empty for the null sender.
    pub sender: String,
    /// Recipients still to deliver, each with its latest defer reason.
    pub recipients: Vec<(String, Option<String>)>,
}

/// The queue cannot be listed at all: a queue directory we may not open
/// (an ordinary user in a system install, where they belong to
/// `mail_owner`).
#[derive(Debug)]
pub struct QueueUnreadable {
    /// The directory.
    pub path: PathBuf,
    /// Why it could not be opened.
    pub source: std::io::Error,
}

impl std::fmt::Display for QueueUnreadable {
    /// Postfix's shape: `open queue directory PATH: Permission denied`
    /// (the strerror text, without Rust's `(os error N)`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.source.to_string();
        let text = match text.rfind(" (os error ") {
            Some(at) => &text[..at],
            None => &text,
        };
        write!(f, "open queue directory {}: {text}", self.path.display())
    }
}

/// Reads every listed message: `maildrop/` first (as Postfix's showq),
/// then the queues. Problems with single files go to `warn` as
/// `postqueue: warning: ...` and the file is skipped; a queue directory
/// we are not allowed to open is an error, never an empty queue.
pub fn collect(queue: &Queue, warn: &mut dyn Write) -> Result<Vec<Entry>, QueueUnreadable> {
    let mut out = maildrop_entries(queue);
    for state in LISTED {
        let ids = match queue.scan(state) {
            Ok(ids) => ids,
            Err(mail_queue::Error::Io { path, source })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                return Err(QueueUnreadable { path, source });
            }
            Err(e) => {
                let _ = writeln!(warn, "postqueue: warning: {e}");
                continue;
            }
        };
        for id in ids {
            match entry(queue, state, id) {
                Ok(Some(e)) => out.push(e),
                Ok(None) => {}
                Err(e) => {
                    let _ = writeln!(warn, "postqueue: warning: {e}");
                }
            }
        }
    }
    Ok(out)
}

/// Files in `maildrop/`, not yet picked up: id, size, the time it was
/// written, the sender (`-f`, else the owner's login name, as pickup will
/// use) and the command-line recipients. A directory we cannot list (it
/// is 1733 in a system install) or a file we cannot read or decode is
/// skipped silently: pickup decides what becomes of it.
fn maildrop_entries(queue: &Queue) -> Vec<Entry> {
    let Ok(ids) = queue.scan(State::Maildrop) else { return Vec::new() };
    let limit = mail_queue::format::MAX_CONTENT + (64 << 10);
    let mut out = Vec::new();
    for id in ids {
        // Anyone may leave a symbolic link or a FIFO here, and mailq may
        // run as root: look at the entry itself, and let read_maildrop
        // open it without following links or waiting for a writer.
        let Ok(meta) = std::fs::symlink_metadata(queue.path(State::Maildrop, &id)) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let Ok((m, uid)) = queue.read_maildrop(&id, limit) else { continue };
        let given = m.sender.trim();
        let sender = match given.strip_prefix('<').and_then(|g| g.strip_suffix('>')) {
            Some(inner) => inner.trim().to_owned(),
            None if given.is_empty() => owner_name(uid),
            None => given.to_owned(),
        };
        let arrival = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        out.push(Entry {
            state: State::Maildrop,
            id,
            size: meta.len(),
            arrival,
            sender,
            recipients: m.recipients.into_iter().map(|r| (r, None)).collect(),
        });
    }
    out
}

/// The login name of `uid`, or `uidN` without a passwd entry (as pickup
/// names such a sender).
fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid{uid}"), |u| u.name)
}

fn entry(queue: &Queue, state: State, id: QueueId) -> Result<Option<Entry>, mail_queue::Error> {
    let size = match std::fs::symlink_metadata(queue.path(state, &id)) {
        Ok(m) => m.len(),
        // Delivered or moved since the scan: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(mail_queue::Error::Io { path: queue.path(state, &id), source: e }),
    };
    let envelope = match queue.read_envelope(state, &id) {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    // Latest outcome per recipient index; records are in append order.
    let mut latest: HashMap<u32, DeliveryStatus> = HashMap::new();
    for r in queue.read_status(&id)? {
        latest.insert(r.recipient, r.outcome);
    }
    let mut recipients = Vec::new();
    for (i, r) in envelope.recipients.iter().enumerate() {
        let reason = match latest.get(&(i as u32)) {
            Some(o) if o.is_final() => continue,
            Some(DeliveryStatus::Deferred { text, .. }) => Some(text.clone()),
            _ => None,
        };
        recipients.push((r.address.to_string(), reason));
    }
    // Group recipients under their reasons (first appearance order),
    // recipients not yet tried first.
    let mut order: Vec<Option<String>> = vec![None];
    for (_, reason) in &recipients {
        if !order.contains(reason) {
            order.push(reason.clone());
        }
    }
    recipients.sort_by_key(|(_, reason)| order.iter().position(|r| r == reason));
    Ok(Some(Entry {
        state,
        id,
        size,
        arrival: envelope.arrival,
        sender: envelope.sender.map(|a| a.to_string()).unwrap_or_default(),
        recipients,
    }))
}

fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn asctime(secs: u64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(i64::try_from(secs).unwrap_or(0), 0).single() {
        Some(t) => t.format("%a %b %e %H:%M:%S").to_string(),
        None => "??".into(),
    }
}

/// Postfix's `L_STRING_FORMAT`/`L_SENDER_FORMAT`, with the id column
/// widened from 17 to 20 for a 19-character id and its status mark.
fn line(out: &mut String, id: &str, size: &str, time: &str, addr: &str) {
    let _ = writeln!(out, "{id:<20} {size:>8} {time:<19} {addr}");
}

/// The `postqueue -p` text for `entries`.
pub fn format_compat(entries: &[Entry]) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("Mail queue is empty\n");
        return out;
    }
    let mut total = 0u64;
    for (n, e) in entries.iter().enumerate() {
        if n == 0 {
            line(
                &mut out,
                "-------Queue ID-----",
                "--Size--",
                "---Arrival Time----",
                "--Sender/Recipient------",
            );
        } else {
            out.push('\n');
        }
        total += e.size;
        let mark = match e.state {
            State::Active => "*",
            State::Hold => "!",
            _ => "",
        };
        let sender =
            if e.sender.is_empty() { "MAILER-DAEMON".into() } else { printable(&e.sender) };
        line(
            &mut out,
            &format!("{}{mark}", e.id),
            &e.size.to_string(),
            &asctime(e.arrival),
            &sender,
        );
        // showq_compat: print a reason line whenever it changes.
        let mut previous: Option<&str> = None;
        for (addr, reason) in &e.recipients {
            let reason = reason.as_deref();
            if reason != previous && !(previous.is_none() && reason.is_none()) {
                let shown = printable(reason.unwrap_or("reason unavailable"));
                let padding = 76usize.saturating_sub(shown.chars().count());
                let _ = writeln!(out, "{:padding$}({shown})", "");
            }
            previous = reason;
            line(&mut out, "", "", "", &printable(addr));
        }
    }
    let n = entries.len();
    let _ = write!(
        out,
        "\n-- {} Kbytes in {n} Request{}.\n",
        total / 1024,
        if n == 1 { "" } else { "s" }
    );
    out
}

/// The `postqueue -j` text: one JSON object per line, with Postfix's
/// fields, order and spacing (`{"queue_name": "deferred", ...}`), the
/// null sender as `MAILER-DAEMON` and `delay_reason` only for a
/// recipient that has one, as Postfix's showq writes them.
pub fn format_json(entries: &[Entry]) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let mut out = String::new();
    for e in entries {
        let rcpts: Vec<String> = e
            .recipients
            .iter()
            .map(|(a, r)| match r {
                Some(r) => format!("{{\"address\": {}, \"delay_reason\": {}}}", q(a), q(r)),
                None => format!("{{\"address\": {}}}", q(a)),
            })
            .collect();
        let sender = if e.sender.is_empty() { "MAILER-DAEMON" } else { &e.sender };
        let _ = writeln!(
            out,
            "{{\"queue_name\": {}, \"queue_id\": {}, \"arrival_time\": {}, \"message_size\": {}, \"forced_expire\": false, \"sender\": {}, \"recipients\": [{}]}}",
            q(e.state.dir_name()),
            q(e.id.as_str()),
            e.arrival,
            e.size,
            q(sender),
            rcpts.join(", ")
        );
    }
    out
}

/// Prints the queue (`postqueue -p`, `mailq`, `sendmail -bp`).
pub fn list(main: &Main) -> ExitCode {
    print_with(main, format_compat)
}

fn print_with(main: &Main, format: fn(&[Entry]) -> String) -> ExitCode {
    let queue = Queue::new(settings::Common::new(main).queue_directory);
    if !queue.root().is_dir() {
        eprintln!("postqueue: fatal: queue directory {} does not exist", queue.root().display());
        return ExitCode::from(EX_UNAVAILABLE);
    }
    let entries = match collect(&queue, &mut std::io::stderr()) {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("postqueue: fatal: {e}");
            return ExitCode::from(1);
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (mailq | head) is not an error worth reporting.
    let _ = stdout.write_all(format(&entries).as_bytes()).and_then(|()| stdout.flush());
    ExitCode::SUCCESS
}

/// A fatal error on standard error and, as Postfix's postqueue also
/// syslogs it, in the mail log (`postern/postqueue[PID]: fatal: ...`),
/// when the log is not standard error already.
fn fatal_logged(program: &str, text: &str) {
    eprintln!("{program}: fatal: {text}");
    if !mail_daemon::log::writes_stderr() {
        tracing::error!("fatal: {text}");
    }
}

/// Asks qmgr to retry deferred mail now (`postqueue -f`, `sendmail -q`).
pub fn flush(main: &Main, program: &str) -> ExitCode {
    send_flush(main, program, Trigger::Flush, "Cannot flush mail queue")
}

/// A destination for `postqueue -s`: a domain name or an address literal
/// (`[192.0.2.1]`), lower-cased, within the trigger's bound; `None` for
/// anything else, which Postfix calls an invalid destination.
fn valid_site(site: &str) -> Option<String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    let inner = site.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(site);
    let ok = !inner.is_empty()
        && site.len() <= mail_ipc::trigger::MAX_SITE
        && inner.chars().all(ok_char)
        && !inner.starts_with(['.', '-'])
        && !inner.contains("..");
    ok.then(|| site.to_ascii_lowercase())
}

fn send_flush(main: &Main, program: &str, trigger: Trigger, what: &str) -> ExitCode {
    match crate::sendmail::poke(main, "qmgr", trigger) {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::sendmail::Poke::NoService(e)) => {
            fatal_logged(program, &format!("{what} - {e}"));
            ExitCode::from(EX_UNAVAILABLE)
        }
        Err(crate::sendmail::Poke::Unreachable(e)) => {
            fatal_logged(program, &format!("{what} - mail system is down ({e})"));
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Action {
    List,
    Json,
    Flush,
    FlushId(String),
    FlushSite(String),
}

/// Postfix's postqueue(1) command line: exactly one of `-f`, `-i`, `-j`,
/// `-p`, `-s`, as Postfix insists.
#[derive(Debug, clap::Parser)]
#[command(
    name = "postqueue",
    about = "List the mail queue, or ask qmgr to retry deferred mail now",
    override_usage = "postqueue [-c config_dir] -f | -i queue_id | -j | -p | -s site",
    disable_version_flag = true
)]
#[command(group = clap::ArgGroup::new("action").required(true).multiple(false))]
struct Cli {
    /// The configuration directory (default: $POSTERN_CONFIG_DIR, else /etc/postern).
    #[arg(short = 'c', value_name = "config_dir")]
    dir: Option<PathBuf>,
    /// Retry every deferred message now (flush).
    #[arg(short = 'f', group = "action")]
    flush: bool,
    /// Retry deferred mail now, if message queue_id is in the queue.
    #[arg(short = 'i', value_name = "queue_id", group = "action")]
    id: Option<String>,
    /// List the queue as one JSON object per message.
    #[arg(short = 'j', group = "action")]
    json: bool,
    /// List the queue (what mailq shows).
    #[arg(short = 'p', group = "action")]
    list: bool,
    /// Retry deferred mail for one destination now.
    #[arg(short = 's', value_name = "site", group = "action")]
    site: Option<String>,
    /// Accepted for compatibility (more verbose logging in Postfix).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

/// A usage problem: `--help` (text for stdout) or an error naming the bad
/// option.
#[derive(Debug, PartialEq, Eq)]
enum Usage {
    Help(String),
    Bad(String),
}

fn parse_args(args: &[String]) -> Result<(Option<PathBuf>, Action), Usage> {
    use clap::Parser;
    let cli =
        Cli::try_parse_from(std::iter::once("postqueue".to_owned()).chain(args.iter().cloned()))
            .map_err(|e| crate::clap_error(e, Usage::Help, Usage::Bad))?;
    let action = if cli.list {
        Action::List
    } else if cli.json {
        Action::Json
    } else if let Some(id) = cli.id {
        Action::FlushId(id)
    } else if let Some(site) = cli.site {
        Action::FlushSite(site)
    } else {
        // -f: the group makes one of the actions present.
        Action::Flush
    };
    Ok((cli.dir, action))
}

/// Entry point of the `postqueue` binary.
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let (dir, action) = match parse_args(&args) {
        Ok(x) => x,
        Err(Usage::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(Usage::Bad(e)) => {
            eprint!("postqueue: fatal: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let main = match Main::load(&mail_config::config_dir_from(dir.as_deref())) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("postqueue: fatal: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    mail_daemon::log::init_command(&main, "postqueue");
    match action {
        Action::List => list(&main),
        Action::Json => print_with(&main, format_json),
        Action::Flush => flush(&main, "postqueue"),
        // A valid id not in the queue is no error (delivered meanwhile),
        // as with Postfix's flush service; qmgr ignores it.
        Action::FlushId(id) => match QueueId::parse(&id) {
            Ok(q) => send_flush(&main, "postqueue", Trigger::FlushId(q), "Cannot flush queue ID"),
            Err(_) => {
                let text = format!("Cannot flush queue ID - invalid name: \"{}\"", printable(&id));
                fatal_logged("postqueue", &text);
                ExitCode::from(EX_UNAVAILABLE)
            }
        },
        Action::FlushSite(site) => match valid_site(&site) {
            Some(site) => {
                send_flush(&main, "postqueue", Trigger::FlushSite(site), "Cannot flush mail queue")
            }
            None => {
                let text = format!(
                    "Cannot flush mail queue - invalid destination: \"{}\"",
                    printable(&site)
                );
                fatal_logged("postqueue", &text);
                ExitCode::from(EX_UNAVAILABLE)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_queue::{Envelope, Recipient, StatusRecord};

    fn envelope(sender: &str, rcpts: &[&str]) -> Envelope {
        Envelope {
            sender: (!sender.is_empty()).then(|| sender.parse().unwrap()),
            recipients: rcpts
                .iter()
                .map(|r| Recipient {
                    address: r.parse().unwrap(),
                    original: (*r).into(),
                    esmtp: Default::default(),
                })
                .collect(),
            arrival: 1_795_870_954,
            client: "local".into(),
            origin: "pickup".into(),
            attrs: vec![],
            esmtp: Default::default(),
        }
    }

    #[test]
    fn empty_queue() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let mut warn = Vec::new();
        assert_eq!(format_compat(&collect(&q, &mut warn).unwrap()), "Mail queue is empty\n");
        assert_eq!(format_json(&[]), "");
        assert!(warn.is_empty());
    }

    #[test]
    fn lists_active_deferred_and_hold_with_reasons() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let a = q
            .reserve()
            .unwrap()
            .commit(&envelope("root@example.org", &["suporte@example.org"]), b"x\n")
            .unwrap();
        q.move_to(&a, State::Incoming, State::Active).unwrap();
        let b = q
            .reserve()
            .unwrap()
            .commit(
                &envelope(
                    "",
                    &[
                        "done@example.org",
                        "someone@remote.example",
                        "other@remote.example",
                        "new@x.y",
                    ],
                ),
                b"y\n",
            )
            .unwrap();
        q.move_to(&b, State::Incoming, State::Deferred).unwrap();
        let why = "connect to transport private/smtp: No such file or directory";
        let rec = |recipient, outcome| StatusRecord { recipient, outcome, time: 1 };
        q.append_status(
            &b,
            &[
                rec(0, DeliveryStatus::sent("ok")),
                rec(1, DeliveryStatus::defer(mail_types::EnhancedStatus(4, 4, 1), "old")),
                rec(1, DeliveryStatus::defer(mail_types::EnhancedStatus(4, 4, 1), why)),
                rec(2, DeliveryStatus::defer(mail_types::EnhancedStatus(4, 4, 1), why)),
            ],
        )
        .unwrap();
        let c = q.reserve().unwrap().commit(&envelope("a@b.c", &["d@e.f"]), b"z\n").unwrap();
        q.move_to(&c, State::Incoming, State::Hold).unwrap();
        // Garbage in a queue directory is skipped with a warning.
        let bad = QueueId::generate();
        std::fs::write(q.path(State::Incoming, &bad), b"not a queue file").unwrap();

        let mut warn = Vec::new();
        let entries = collect(&q, &mut warn).unwrap();
        let warn = String::from_utf8(warn).unwrap();
        assert!(warn.starts_with("postqueue: warning: ") && warn.contains(bad.as_str()), "{warn}");
        assert_eq!(entries.len(), 3);
        let text = format_compat(&entries);
        let time = asctime(1_795_870_954);
        let size =
            |id: &QueueId| std::fs::metadata(q.path(q.locate(id).unwrap(), id)).unwrap().len();
        let pad = " ".repeat(50);
        let expected = format!(
            "-------Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n\
             {a}* {sa:>8} {time} root@example.org\n\
             {pad}suporte@example.org\n\
             \n\
             {b}  {sb:>8} {time} MAILER-DAEMON\n\
             {pad}new@x.y\n\
             {rpad}({why})\n\
             {pad}someone@remote.example\n\
             {pad}other@remote.example\n\
             \n\
             {c}! {sc:>8} {time} a@b.c\n\
             {pad}d@e.f\n\
             \n\
             -- {kb} Kbytes in 3 Requests.\n",
            sa = size(&a),
            sb = size(&b),
            sc = size(&c),
            rpad = " ".repeat(76 - why.len()),
            kb = (size(&a) + size(&b) + size(&c)) / 1024,
        );
        assert_eq!(text, expected);

        let json = format_json(&entries);
        // Postfix's exact shape (spacing and field order), parsed back too.
        assert_eq!(
            json.lines().nth(2).unwrap(),
            format!(
                "{{\"queue_name\": \"hold\", \"queue_id\": \"{c}\", \"arrival_time\": 1795870954, \
                 \"message_size\": {sc}, \"forced_expire\": false, \"sender\": \"a@b.c\", \
                 \"recipients\": [{{\"address\": \"d@e.f\"}}]}}",
                sc = size(&c)
            )
        );
        assert!(json.lines().nth(1).unwrap().contains("\"sender\": \"MAILER-DAEMON\""), "{json}");
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["queue_name"], "active");
        assert_eq!(first["recipients"][0]["address"], "suporte@example.org");
        let second: serde_json::Value = serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
        assert_eq!(second["recipients"][1]["delay_reason"], why);
    }

    #[test]
    fn maildrop_files_are_listed_first() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let queued = q.reserve().unwrap().commit(&envelope("a@b.c", &["d@e.f"]), b"z\n").unwrap();
        let m = |sender: &str| mail_queue::Maildrop {
            sender: sender.into(),
            recipients: vec!["suporte".into()],
            extract_recipients: false,
            full_name: String::new(),
            user: "ignored".into(),
            content: b"x\n".to_vec(),
        };
        let given = q.write_maildrop(&m("<ana@example.org>")).unwrap();
        let own = q.write_maildrop(&m("")).unwrap();
        // Not a maildrop file: left out silently.
        let junk = QueueId::generate();
        std::fs::write(q.path(State::Maildrop, &junk), b"junk").unwrap();
        let mut warn = Vec::new();
        let entries = collect(&q, &mut warn).unwrap();
        assert!(warn.is_empty(), "{}", String::from_utf8_lossy(&warn));
        let ids: Vec<_> = entries.iter().map(|e| (e.state, e.id.clone())).collect();
        let mut drops = [given.clone(), own.clone()];
        drops.sort();
        assert_eq!(
            ids,
            [
                (State::Maildrop, drops[0].clone()),
                (State::Maildrop, drops[1].clone()),
                (State::Incoming, queued)
            ]
        );
        let by_id = |id: &QueueId| entries.iter().find(|e| &e.id == id).unwrap();
        assert_eq!(by_id(&given).sender, "ana@example.org");
        assert_eq!(by_id(&own).sender, owner_name(nix::unistd::geteuid().as_raw()));
        assert_eq!(by_id(&own).recipients, [("suporte".to_owned(), None)]);
        assert_eq!(
            by_id(&own).size,
            std::fs::metadata(q.path(State::Maildrop, &own)).unwrap().len()
        );
        let text = format_compat(&entries);
        assert!(text.contains(&format!("\n{given}  ")), "{text}");
        assert!(text.ends_with("in 3 Requests.\n"), "{text}");
    }

    #[test]
    fn fifos_and_links_neither_block_nor_are_followed() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let fifo_mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
        let drop_fifo = QueueId::generate();
        nix::unistd::mkfifo(&q.path(State::Maildrop, &drop_fifo), fifo_mode).unwrap();
        let active_fifo = QueueId::generate();
        nix::unistd::mkfifo(&q.path(State::Active, &active_fifo), fifo_mode).unwrap();
        // A link to a maildrop file elsewhere (say, another user's file
        // that root could read): not listed, not read.
        let elsewhere = tempfile::tempdir().unwrap();
        let other = Queue::new(elsewhere.path());
        other.create_layout().unwrap();
        let m = mail_queue::Maildrop {
            sender: "<secret@example.org>".into(),
            recipients: vec!["victim".into()],
            extract_recipients: false,
            full_name: String::new(),
            user: "x".into(),
            content: b"x\n".to_vec(),
        };
        let target = other.write_maildrop(&m).unwrap();
        let link = QueueId::generate();
        std::os::unix::fs::symlink(
            other.path(State::Maildrop, &target),
            q.path(State::Maildrop, &link),
        )
        .unwrap();
        let queued = q.reserve().unwrap().commit(&envelope("a@b.c", &["d@e.f"]), b"z\n").unwrap();
        // A blocking open would hang here; fail the test instead.
        let (tx, rx) = std::sync::mpsc::channel();
        let qc = q.clone();
        std::thread::spawn(move || {
            let mut warn = Vec::new();
            let entries = collect(&qc, &mut warn).unwrap();
            let _ = tx.send((entries, String::from_utf8(warn).unwrap()));
        });
        let (entries, warn) = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("postqueue blocked on a FIFO");
        let ids: Vec<&QueueId> = entries.iter().map(|e| &e.id).collect();
        assert_eq!(ids, [&queued]);
        assert!(
            warn.contains(active_fifo.as_str()) && warn.contains("not a regular file"),
            "{warn}"
        );
        assert!(!warn.contains("secret"), "{warn}");
    }

    #[test]
    fn unreadable_queue_is_fatal_not_empty() {
        let e = QueueUnreadable {
            path: PathBuf::from("/var/spool/postern/incoming"),
            source: std::io::Error::from_raw_os_error(nix::errno::Errno::EACCES as i32),
        };
        assert_eq!(
            e.to_string(),
            "open queue directory /var/spool/postern/incoming: Permission denied"
        );
        // Root opens anything; as an ordinary user, a real directory.
        if nix::unistd::geteuid().is_root() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: unreadable_queue_is_fatal_not_empty: needs a non-root user\n",
            );
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let dir = q.dir(State::Deferred);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
        let err = collect(&q, &mut Vec::new()).unwrap_err();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(err.path, dir);
    }

    #[test]
    fn parses_arguments() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&["-c", "/x", "-p"]).unwrap(), (Some(PathBuf::from("/x")), Action::List));
        assert_eq!(a(&["-f"]).unwrap().1, Action::Flush);
        assert_eq!(a(&["-i", "ABC"]).unwrap().1, Action::FlushId("ABC".into()));
        assert_eq!(a(&["-j"]).unwrap().1, Action::Json);
        assert_eq!(
            a(&["-s", "example.com", "-v", "-v"]).unwrap().1,
            Action::FlushSite("example.com".into())
        );
        assert_eq!(valid_site("Example.COM").as_deref(), Some("example.com"));
        assert_eq!(valid_site("[127.0.0.1]").as_deref(), Some("[127.0.0.1]"));
        for bad in ["", "bad site", "a..b", "../x", "[]", &"a".repeat(300)] {
            assert_eq!(valid_site(bad), None, "{bad:?}");
        }
        assert_eq!(a(&["-c/x", "-vp"]).unwrap(), (Some(PathBuf::from("/x")), Action::List));
        let bad = |v: &[&str]| match a(v) {
            Err(Usage::Bad(m)) => m,
            other => panic!("{v:?}: {other:?}"),
        };
        assert!(bad(&[]).contains("required arguments were not provided"));
        assert!(bad(&["-x"]).contains("unexpected argument '-x'"));
        assert!(bad(&["-i"]).contains("'-i <queue_id>'"));
        // Postfix's postqueue refuses two actions too.
        assert!(bad(&["-p", "-f"]).contains("the argument '-p' cannot be used with '-f'"));
        assert!(matches!(a(&["--help"]), Err(Usage::Help(h)) if h.contains("-i <queue_id>")));
    }
}
