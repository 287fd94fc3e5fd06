//! `postsuper`: the superintendent's queue operations (Postfix
//! postsuper(1)).
//!
//! - `-d ID|ALL|-` deletes messages (default queues: hold, incoming,
//!   active, deferred) with their status logs;
//! - `-h ID|ALL|-` puts messages on hold (default: incoming, active,
//!   deferred), `-H ID|ALL|-` releases them (default: hold) to
//!   `deferred/` with the modification time of now, so qmgr's next look
//!   at `deferred/` takes them;
//! - `-r ID|ALL|-` requeues (default: hold, incoming, active, deferred):
//!   the message gets a new queue file in `incoming/` under a new id, as
//!   Postfix's pickup gives it, with the recipients still to deliver run
//!   through the address rewriting again (canonical and virtual alias
//!   maps, as pickup does), and qmgr routes it afresh;
//! - `-p` purges abandoned files in `tmp/`, `-s` checks the structure
//!   (names in the queue directories that are not queue files are
//!   reported, status logs without a message removed); either runs before
//!   the other operations, and `-s` is what a bare `postsuper` does.
//!
//! Queue names after the options replace the defaults (`maildrop`,
//! `incoming`, `active`, `deferred`, `hold`; anything else is fatal, as in
//! Postfix). `-` reads queue ids from standard input, one per line. An id
//! that is not a queue id (`../x`, lower case) gets Postfix's
//! `warning: invalid mail queue id: ID` and is skipped; an id found in
//! none of the queues is not an error (it was delivered meanwhile).
//!
//! Messages move while qmgr works on them. Every move and removal looks
//! in the other queues again when the file is gone from where it was
//! (`mail_queue::Queue::move_from_any`, bounded), and no move replaces a
//! file. As Postfix's postsuper does, a message in `active/` may be
//! deleted or put on hold while qmgr delivers it; qmgr copes with the
//! file vanishing. A requeue first moves the message to `hold/` (so qmgr
//! can no longer finish it from under us), writes the new file durably,
//! and only then removes the old one: a crash in between leaves the
//! message on hold or queued twice, never lost.
//!
//! SECURITY: only root, the `mail_owner` user or the owner of the queue
//! directory (an unprivileged instance) may run it; anyone else gets
//! Postfix's `fatal: use of this command is reserved for the superuser`.
//!
//! DIAGNOSTICS: each action is logged in Postfix's words through the
//! daemons' logger (`postern/postsuper[PID]: ID: removed`, `placed on
//! hold`, `released from hold`, `requeued`), then the count of each
//! operation (`Deleted: N messages`). When the log goes elsewhere (syslog,
//! journald, `maillog_file`) the same texts also go to standard error as
//! `postsuper: TEXT`, as Postfix's postsuper writes them; with
//! `maillog_destination = stderr` the log lines themselves are on
//! standard error. Exit 1 for a fatal error, 64 for a usage error.

use mail_config::{Main, settings};
use mail_lookup::rewrite::{RewriteParams, Rewriter};
use mail_queue::{Queue, Recipient, State};
use mail_types::QueueId;
use std::collections::HashSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

const EX_USAGE: u8 = 64;

/// Longest line read from standard input for `-`: a queue id is at most
/// 32 characters, so anything longer is junk, shown cut.
const MAX_ID_LINE: usize = 256;

/// What one `-d`, `-h`, `-H` or `-r` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Delete,
    Hold,
    Release,
    Requeue,
}

impl Op {
    /// The queues an operation looks in when none are named (Postfix's
    /// defaults).
    fn default_queues(self) -> &'static [State] {
        match self {
            Op::Delete | Op::Requeue => {
                &[State::Hold, State::Incoming, State::Active, State::Deferred]
            }
            Op::Hold => &[State::Incoming, State::Active, State::Deferred],
            Op::Release => &[State::Hold],
        }
    }

    /// Postfix's summary line: `Deleted: 2 messages`.
    fn summary(self, n: usize) -> String {
        let what = match self {
            Op::Delete => "Deleted",
            Op::Hold => "Placed on hold",
            Op::Release => "Released from hold",
            Op::Requeue => "Requeued",
        };
        format!("{what}: {n} message{}", if n == 1 { "" } else { "s" })
    }
}

/// Which messages: one id, every message, or ids from standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Which {
    Id(String),
    All,
    Stdin,
}

impl Which {
    fn from_arg(arg: &str) -> Which {
        // As a safety measure ALL must be upper case (postsuper(1)).
        match arg {
            "ALL" => Which::All,
            "-" => Which::Stdin,
            id => Which::Id(id.to_owned()),
        }
    }
}

/// The command line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    config_dir: Option<PathBuf>,
    ops: Vec<(Op, Which)>,
    purge: bool,
    structure: bool,
    queues: Vec<State>,
}

const USAGE: &str = "usage: postsuper [-c config_dir] [-d queue_id (delete)] \
[-h queue_id (hold)] [-H queue_id (un-hold)] [-p (purge temporary files)] \
[-r queue_id (requeue)] [-s (structure fix)] [-v (verbose)] [queue...]";

/// Parses Postfix's getopt-style command line: options may be grouped
/// (`-ps`) and take their value attached or as the next word (`-dALL`,
/// `-d ALL`); the words after the options are queue names.
fn parse_args(args: &[String]) -> Result<Request, String> {
    let mut req = Request::default();
    let (opts, names) = crate::getopt::parse(args, "cdhHr")
        .map_err(|c| format!("option requires an argument -- '{c}'\n{USAGE}"))?;
    for (c, value) in opts {
        match (c, value) {
            ('c', Some(v)) => req.config_dir = Some(PathBuf::from(v)),
            ('d', Some(v)) => req.ops.push((Op::Delete, Which::from_arg(&v))),
            ('h', Some(v)) => req.ops.push((Op::Hold, Which::from_arg(&v))),
            ('H', Some(v)) => req.ops.push((Op::Release, Which::from_arg(&v))),
            ('r', Some(v)) => req.ops.push((Op::Requeue, Which::from_arg(&v))),
            ('p', _) => req.purge = true,
            ('s' | 'S', _) => req.structure = true,
            // Verbose logging in Postfix; accepted, nothing more to say.
            ('v', _) => {}
            (other, _) => return Err(format!("invalid option -- '{other}'\n{USAGE}")),
        }
    }
    for name in names {
        let state = match name.as_str() {
            "maildrop" => State::Maildrop,
            "incoming" => State::Incoming,
            "active" => State::Active,
            "deferred" => State::Deferred,
            "hold" => State::Hold,
            _ => return Err(format!("invalid directory name: {name}")),
        };
        if !req.queues.contains(&state) {
            req.queues.push(state);
        }
    }
    if req.ops.is_empty() && !req.purge {
        // A bare `postsuper` checks the structure, as Postfix's does.
        req.structure = true;
    }
    Ok(req)
}

/// Whether the calling user may operate on the queue: root, the
/// `mail_owner` user, or the owner of the queue directory (in an
/// unprivileged instance that is the user who made it).
fn may_operate(main: &Main, queue: &Queue) -> bool {
    use std::os::unix::fs::MetadataExt;
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return true;
    }
    let owner = settings::Common::new(main).mail_owner;
    if nix::unistd::User::from_name(&owner).ok().flatten().is_some_and(|u| u.uid == euid) {
        return true;
    }
    std::fs::metadata(queue.root()).is_ok_and(|m| m.uid() == euid.as_raw())
}

/// Where the texts of one run go: the log, and standard error when the
/// log is elsewhere.
struct Report {
    echo: bool,
}

impl Report {
    fn info(&self, text: &str) {
        tracing::info!("{text}");
        if self.echo {
            eprintln!("postsuper: {text}");
        }
    }

    fn warn(&self, text: &str) {
        tracing::warn!("{text}");
        if self.echo {
            eprintln!("postsuper: warning: {text}");
        }
    }
}

/// Entry point of the `postsuper` binary.
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let req = match parse_args(&args) {
        Ok(r) => r,
        Err(e) if e.starts_with("invalid directory name") => {
            eprintln!("postsuper: fatal: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("postsuper: fatal: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let main = match Main::load(&mail_config::config_dir_from(req.config_dir.as_deref())) {
        Ok(m) => m,
        Err(e) => return crate::fatal("postsuper", &e.to_string()),
    };
    let common = settings::Common::new(&main);
    let queue = Queue::new(common.queue_directory.clone());
    if !may_operate(&main, &queue) {
        return crate::fatal("postsuper", "use of this command is reserved for the superuser");
    }
    if !queue.root().is_dir() {
        let text = format!("queue directory {} does not exist", queue.root().display());
        return crate::fatal("postsuper", &text);
    }
    mail_daemon::log::init(&main, "postsuper");
    let report = Report { echo: !mail_daemon::log::writes_stderr() };
    let mut stdin_ids: Option<Vec<String>> = None;
    let mut requeued: Vec<QueueId> = Vec::new();

    if req.purge {
        purge(&queue, &report);
    }
    if req.structure {
        structure(&queue, &report);
    }
    let mut rewriter: Option<Result<Rewriter, String>> = None;
    for (op, which) in &req.ops {
        let from: Vec<State> =
            if req.queues.is_empty() { op.default_queues().to_vec() } else { req.queues.clone() };
        let ids: Vec<QueueId> = match which {
            Which::All => every_id(&queue, &from, &report),
            Which::Id(text) => valid_ids(std::slice::from_ref(text), &report),
            Which::Stdin => {
                let lines = stdin_ids.get_or_insert_with(read_stdin_ids);
                valid_ids(lines, &report)
            }
        };
        let mut done = 0usize;
        for id in &ids {
            let ok = match op {
                Op::Delete => delete(&queue, id, &from, &report),
                Op::Hold => hold(&queue, id, &from, &report),
                Op::Release => release(&queue, id, &from, &report),
                Op::Requeue => {
                    let r = rewriter.get_or_insert_with(|| {
                        Rewriter::new(RewriteParams::from_settings(&common))
                    });
                    match r {
                        Ok(r) => match requeue(&queue, id, &from, r, &report) {
                            Some(new) => {
                                requeued.push(new);
                                true
                            }
                            None => false,
                        },
                        Err(e) => {
                            report.warn(&format!("{id}: cannot requeue: {e}"));
                            false
                        }
                    }
                }
            };
            if ok {
                done += 1;
            }
        }
        report.info(&op.summary(done));
    }
    if !requeued.is_empty() {
        // As every queue writer does: name the new files so qmgr takes
        // them at once. A lost trigger only delays them (qmgr scans).
        for chunk in requeued.chunks(mail_ipc::trigger::MAX_QUEUED_IDS) {
            let _ = crate::sendmail::poke(
                &main,
                "qmgr",
                mail_ipc::trigger::Trigger::queued(chunk.to_vec()),
            );
        }
    }
    ExitCode::SUCCESS
}

/// The ids among `texts` that are queue ids; the others get Postfix's
/// warning. Duplicates are dropped (an id acted on once is gone).
fn valid_ids(texts: &[String], report: &Report) -> Vec<QueueId> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for t in texts {
        match QueueId::parse(t) {
            Ok(id) => {
                if seen.insert(id.clone()) {
                    out.push(id);
                }
            }
            Err(_) => report.warn(&format!("invalid mail queue id: {}", printable(t))),
        }
    }
    out
}

/// Control characters of a bad id shown as `?`, so the warning stays one
/// line whatever came in.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Queue ids from standard input, one per line (line ends removed, a
/// line cut at [`MAX_ID_LINE`] bytes: no id is that long).
fn read_stdin_ids() -> Vec<String> {
    read_ids(&mut std::io::stdin().lock())
}

fn read_ids(lock: &mut impl BufRead) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match std::io::Read::take(&mut *lock, MAX_ID_LINE as u64 + 1).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let ended = buf.ends_with(b"\n");
        if !ended && buf.len() > MAX_ID_LINE {
            skip_line(lock);
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push(String::from_utf8_lossy(line).into_owned());
    }
    out
}

/// Discards input up to and including the next line end, a buffer at a
/// time (an over-long line is never held whole).
fn skip_line(r: &mut impl BufRead) {
    loop {
        let (found, n) = match r.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(b) => match b.iter().position(|&c| c == b'\n') {
                Some(at) => (true, at + 1),
                None => (false, b.len()),
            },
        };
        r.consume(n);
        if found {
            return;
        }
    }
}

/// Every message in the queues of `from`, oldest first per queue.
fn every_id(queue: &Queue, from: &[State], report: &Report) -> Vec<QueueId> {
    let mut out = Vec::new();
    for &s in from {
        match queue.scan(s) {
            Ok(ids) => out.extend(ids),
            Err(e) => report.warn(&e.to_string()),
        }
    }
    out
}

fn delete(queue: &Queue, id: &QueueId, from: &[State], report: &Report) -> bool {
    match queue.delete_from_any(id, from) {
        Ok(Some(_)) => {
            report.info(&format!("{id}: removed"));
            true
        }
        Ok(None) => false,
        Err(e) => {
            report.warn(&format!("{id}: cannot remove: {e}"));
            false
        }
    }
}

fn hold(queue: &Queue, id: &QueueId, from: &[State], report: &Report) -> bool {
    // Mail not yet sanitized by pickup cannot be held (postsuper(1) BUGS).
    let from: Vec<State> =
        from.iter().copied().filter(|s| !matches!(s, State::Maildrop | State::Hold)).collect();
    match queue.move_from_any(id, &from, State::Hold) {
        Ok(Some(_)) => {
            report.info(&format!("{id}: placed on hold"));
            true
        }
        Ok(None) => false,
        Err(e) => {
            report.warn(&format!("{id}: cannot place on hold: {e}"));
            false
        }
    }
}

fn release(queue: &Queue, id: &QueueId, from: &[State], report: &Report) -> bool {
    let from: Vec<State> =
        from.iter().copied().filter(|s| !matches!(s, State::Maildrop | State::Deferred)).collect();
    match queue.move_from_any(id, &from, State::Deferred) {
        Ok(Some(_)) => {
            // Due now: qmgr retries a deferred file once its mtime has
            // passed, and a held message's is from when it was held.
            if let Err(e) = queue.set_retry_time(id, std::time::SystemTime::now()) {
                report.warn(&format!("{id}: cannot set the retry time: {e}"));
            }
            report.info(&format!("{id}: released from hold"));
            true
        }
        Ok(None) => false,
        Err(e) => {
            report.warn(&format!("{id}: cannot release from hold: {e}"));
            false
        }
    }
}

/// Requeues one message; returns its new id.
fn requeue(
    queue: &Queue,
    id: &QueueId,
    from: &[State],
    rewriter: &Rewriter,
    report: &Report,
) -> Option<QueueId> {
    // Claim it: in hold/ qmgr leaves it alone, so it cannot be delivered
    // from its old file while the new one is written.
    let held_already = from.contains(&State::Hold) && queue.path(State::Hold, id).is_file();
    if !held_already {
        let from: Vec<State> =
            from.iter().copied().filter(|s| !matches!(s, State::Maildrop | State::Hold)).collect();
        match queue.move_from_any(id, &from, State::Hold) {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                report.warn(&format!("{id}: cannot requeue: {e}"));
                return None;
            }
        }
    }
    let left = |why: String| {
        report.warn(&format!("{id}: cannot requeue: {why}; the message is in hold/"));
        None
    };
    let qf = match queue.read(State::Hold, id) {
        Ok(qf) => qf,
        Err(mail_queue::Error::Corrupt { reason, .. }) => {
            // Never deleted for being unreadable: to corrupt/, for the
            // operator, as qmgr would.
            return match queue.quarantine(id, State::Hold) {
                Ok(to) => {
                    report.warn(&format!(
                        "{id}: corrupt queue file: {reason}; moved to {}",
                        to.display()
                    ));
                    None
                }
                Err(e) => left(format!("corrupt queue file: {reason}; {e}")),
            };
        }
        Err(e) => return left(e.to_string()),
    };
    let finals: HashSet<u32> = match queue.read_status(id) {
        Ok(records) => {
            records.iter().filter(|r| r.outcome.is_final()).map(|r| r.recipient).collect()
        }
        // Without the log we cannot tell who has their mail already.
        Err(e) => return left(format!("cannot read the status log: {e}")),
    };
    let mut envelope = qf.envelope;
    // The address rewriting again, as pickup does for new mail, on the
    // sender and on each recipient still to deliver.
    let sender = match envelope.sender.take().map(|s| rewriter.sender(&s)).transpose() {
        Ok(s) => s,
        Err(e) => return left(e.to_string()),
    };
    let mut recipients: Vec<Recipient> = Vec::new();
    let mut seen = HashSet::new();
    for (i, r) in envelope.recipients.iter().enumerate() {
        if finals.contains(&(i as u32)) {
            continue;
        }
        let addresses = match rewriter.recipient(&r.address) {
            Ok(a) => a,
            Err(e) => return left(e.to_string()),
        };
        for a in addresses {
            if seen.insert(a.to_string()) {
                recipients.push(Recipient {
                    address: a,
                    original: r.original.clone(),
                    esmtp: r.esmtp.clone(),
                });
            }
        }
    }
    if recipients.is_empty() {
        // Everyone has their mail: nothing to queue again.
        return match queue.remove(id, State::Hold) {
            Ok(()) => {
                report.info(&format!("{id}: removed"));
                None
            }
            Err(e) => left(e.to_string()),
        };
    }
    envelope.sender = sender;
    envelope.recipients = recipients;
    let new = match mail_submit::requeue(queue, &envelope, &qf.content) {
        Ok(q) => q.id,
        Err(e) => return left(e.to_string()),
    };
    // The new file is durable; only now may the old one go.
    if let Err(e) = queue.remove(id, State::Hold) {
        report.warn(&format!(
            "{id}: requeued as {new}, but cannot remove the old file: {e}; delete it with postsuper -d {id} hold"
        ));
    }
    report.info(&format!("{id}: requeued"));
    tracing::info!("{new}: requeued from {id}");
    Some(new)
}

/// `-p`: files abandoned in `tmp/` (a writer that crashed), as qmgr
/// removes them: untouched for ten minutes, never acknowledged.
fn purge(queue: &Queue, report: &Report) {
    match queue.clean_tmp(std::time::Duration::from_secs(600)) {
        Ok(0) => {}
        Ok(n) => {
            report.info(&format!("Deleted: {n} temporary file{}", if n == 1 { "" } else { "s" }))
        }
        Err(e) => report.warn(&e.to_string()),
    }
}

/// `-s`: names in the message queues that are not queue files are
/// reported (nothing of the operator's is removed), and status logs
/// whose message is gone are removed.
fn structure(queue: &Queue, report: &Report) {
    for s in [State::Incoming, State::Active, State::Deferred, State::Hold] {
        let dir = queue.dir(s);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let regular = e.file_type().is_ok_and(|t| t.is_file());
            if QueueId::parse(&name).is_err() || !regular {
                report.warn(&format!(
                    "{}/{}: not a queue file; left for the operator",
                    s.dir_name(),
                    printable(&name)
                ));
            }
        }
    }
    match queue.remove_orphan_status() {
        Ok(0) => {}
        Ok(n) => report.info(&format!(
            "Deleted: {n} status log{} without a message",
            if n == 1 { "" } else { "s" }
        )),
        Err(e) => report.warn(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Request, String> {
        parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_postfix_command_lines() {
        let r = parse(&["-c", "/x", "-d", "ALL", "deferred"]).unwrap();
        assert_eq!(r.config_dir, Some(PathBuf::from("/x")));
        assert_eq!(r.ops, [(Op::Delete, Which::All)]);
        assert_eq!(r.queues, [State::Deferred]);
        let r = parse(&["-dABC", "-h", "-", "-H", "all", "-r", "X"]).unwrap();
        assert_eq!(
            r.ops,
            [
                (Op::Delete, Which::Id("ABC".into())),
                (Op::Hold, Which::Stdin),
                (Op::Release, Which::Id("all".into())),
                (Op::Requeue, Which::Id("X".into())),
            ]
        );
        let r = parse(&["-ps"]).unwrap();
        assert!(r.purge && r.structure && r.ops.is_empty());
        assert!(parse(&[]).unwrap().structure, "a bare postsuper checks the structure");
        assert!(parse(&["-x"]).unwrap_err().starts_with("invalid option -- 'x'"));
        assert!(parse(&["-d"]).unwrap_err().starts_with("option requires an argument -- 'd'"));
        assert_eq!(
            parse(&["-d", "ALL", "corrupt"]).unwrap_err(),
            "invalid directory name: corrupt"
        );
    }

    #[test]
    fn reads_ids_one_per_line_bounded() {
        let long = "A".repeat(10_000);
        let input = format!("19BD0C4A1F3E2000E4K\r\n../x\n\n{long}\nLAST");
        let lines = read_ids(&mut input.as_bytes());
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], "19BD0C4A1F3E2000E4K");
        assert_eq!(lines[1], "../x");
        assert_eq!(lines[2], "");
        assert_eq!(lines[3].len(), MAX_ID_LINE + 1, "an over-long line is cut, the rest skipped");
        assert_eq!(lines[4], "LAST");
    }

    proptest::proptest! {
        #[test]
        fn id_lines_never_panic_and_stay_bounded(input in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            for line in read_ids(&mut input.as_slice()) {
                proptest::prop_assert!(line.len() <= 3 * (MAX_ID_LINE + 1));
                if let Ok(id) = QueueId::parse(&line) {
                    proptest::prop_assert!(!id.as_str().contains(['/', '.']));
                }
            }
        }
    }

    #[test]
    fn summaries_count_as_postfix_does() {
        assert_eq!(Op::Delete.summary(0), "Deleted: 0 messages");
        assert_eq!(Op::Hold.summary(1), "Placed on hold: 1 message");
        assert_eq!(Op::Release.summary(2), "Released from hold: 2 messages");
        assert_eq!(Op::Requeue.summary(1), "Requeued: 1 message");
    }
}
