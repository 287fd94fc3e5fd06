//! `postcat`: show a queue file (Postfix postcat(1)).
//!
//! `postcat -q ID` finds the message in `incoming/`, `active/`,
//! `deferred/`, `hold/` or `corrupt/` (looking again when qmgr moves it
//! meanwhile, a bounded number of times); `postcat FILE...` reads the
//! named files. The output has Postfix's shape, each section headed
//! `*** ENVELOPE RECORDS deferred/ID ***`, `*** MESSAGE CONTENTS ... ***`,
//! `*** HEADER EXTRACTED ... ***` and ended by `*** MESSAGE FILE END ...
//! ***`, with Postfix's record names where Postern has the fact
//! (`message_size:`, `message_arrival_time:`, `create_time:`,
//! `named_attribute:`, `sender:`, `original_recipient:`, `recipient:`,
//! and `done_recipient:` for a recipient whose final result is in the
//! status log).
//!
//! `-e` shows the envelope (the section markers stay), `-h` the header
//! block, `-b` the body (from the blank line that ends the header);
//! `-h` and `-b` without `-e` print no markers, as in Postfix. `-v` is
//! accepted. The file is read through `mail_queue::format`, bounded and
//! checked (lengths, both checksums, every envelope field): a damaged
//! file gets `postcat: warning: PATH: input is not a valid queue file:
//! REASON` and nothing of it is shown. Exit status as Postfix's: 1 for a
//! file that cannot be opened or an id that is not in the queue, 0
//! otherwise.

use mail_config::{Main, settings};
use mail_queue::{Queue, QueueFile, State};
use mail_types::QueueId;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EX_USAGE: u8 = 64;

/// Where `-q` looks, in this order.
const SEARCHED: [State; 5] =
    [State::Incoming, State::Active, State::Deferred, State::Hold, State::Corrupt];

/// What to show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Show {
    envelope: bool,
    header: bool,
    body: bool,
}

impl Show {
    /// No `-e`, `-h` or `-b` means everything, with the markers.
    fn resolved(self) -> (Show, bool) {
        if self == Show::default() {
            (Show { envelope: true, header: true, body: true }, true)
        } else {
            (self, self.envelope)
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    config_dir: Option<PathBuf>,
    show: Show,
    queue_id: bool,
    names: Vec<String>,
}

const USAGE: &str = "usage: postcat [-b (body)] [-c config_dir] [-e (envelope)] \
[-h (header)] [-q (access queue)] [-v] [file(s)...]";

fn parse_args(args: &[String]) -> Result<Request, String> {
    let mut req = Request::default();
    let (opts, names) = crate::getopt::parse(args, "c")
        .map_err(|c| format!("option requires an argument -- '{c}'\n{USAGE}"))?;
    for (c, value) in opts {
        match c {
            'b' => req.show.body = true,
            'e' => req.show.envelope = true,
            'h' => req.show.header = true,
            'q' => req.queue_id = true,
            'v' => {}
            'c' => req.config_dir = value.map(PathBuf::from),
            other => return Err(format!("invalid option -- '{other}'\n{USAGE}")),
        }
    }
    req.names = names.to_vec();
    if req.queue_id && req.names.is_empty() {
        return Err(format!("-q requires a queue id\n{USAGE}"));
    }
    Ok(req)
}

/// Entry point of the `postcat` binary.
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let req = match parse_args(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postcat: fatal: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    if req.queue_id {
        let main = match Main::load(&mail_config::config_dir_from(req.config_dir.as_deref())) {
            Ok(m) => m,
            Err(e) => return crate::fatal("postcat", &e.to_string()),
        };
        let queue = Queue::new(settings::Common::new(&main).queue_directory);
        for name in &req.names {
            let Ok(id) = QueueId::parse(name) else {
                return crate::fatal("postcat", &format!("bad mail queue ID: {}", printable(name)));
            };
            match find_and_read(&queue, &id) {
                Found::File(state, qf, offset) => {
                    let label = format!("{}/{id}", state.dir_name());
                    let done = done_recipients(&queue, &id);
                    let text = render(&label, &qf, offset, &done, req.show);
                    if out.write_all(&text).is_err() {
                        return ExitCode::SUCCESS;
                    }
                }
                Found::Bad(path, reason) => {
                    eprintln!(
                        "postcat: warning: {}: input is not a valid queue file: {reason}",
                        path.display()
                    );
                }
                Found::Error(text) => {
                    eprintln!("postcat: fatal: {text}");
                    failed = true;
                }
                Found::Nothing => {
                    let _ = out.flush();
                    return crate::fatal(
                        "postcat",
                        &format!("open queue file {id}: No such file or directory"),
                    );
                }
            }
        }
    } else {
        if req.names.is_empty() {
            // Postfix reads standard input; a queue file is binary and
            // may be large, so read it bounded like any other.
            let mut bytes = Vec::new();
            let limit =
                mail_queue::format::MAX_CONTENT + u64::from(mail_queue::format::MAX_ENVELOPE);
            if let Err(e) = std::io::stdin().lock().take(limit + 64).read_to_end(&mut bytes) {
                return crate::fatal("postcat", &format!("read standard input: {e}"));
            }
            return match mail_queue::format::decode(Path::new("-"), &bytes) {
                Ok(qf) => {
                    let offset = content_offset(&bytes);
                    let _ = out.write_all(&render("-", &qf, offset, &HashSet::new(), req.show));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("postcat: warning: {}", bad_text(&e));
                    ExitCode::SUCCESS
                }
            };
        }
        for name in &req.names {
            let path = Path::new(name);
            match read_file(path) {
                Ok((qf, offset)) => {
                    if out.write_all(&render(name, &qf, offset, &HashSet::new(), req.show)).is_err()
                    {
                        return ExitCode::SUCCESS;
                    }
                }
                Err(mail_queue::Error::Io { source, .. }) => {
                    let _ = out.flush();
                    return crate::fatal("postcat", &format!("open {name}: {}", strerror(&source)));
                }
                Err(e) => eprintln!("postcat: warning: {}", bad_text(&e)),
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// `PATH: input is not a valid queue file: REASON`.
fn bad_text(e: &mail_queue::Error) -> String {
    match e {
        mail_queue::Error::Corrupt { path, reason } => {
            format!("{}: input is not a valid queue file: {reason}", path.display())
        }
        other => other.to_string(),
    }
}

/// The strerror text without Rust's `(os error N)`.
fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

enum Found {
    File(State, QueueFile, u64),
    Bad(PathBuf, String),
    Error(String),
    Nothing,
}

/// Finds the message in the searched states and reads it. qmgr may move
/// it between the look and the open: then look again, a few times.
fn find_and_read(queue: &Queue, id: &QueueId) -> Found {
    for _ in 0..mail_queue::CHASE_ROUNDS {
        let mut seen = false;
        for state in SEARCHED {
            let path = queue.path(state, id);
            match read_file(&path) {
                Ok((qf, offset)) => return Found::File(state, qf, offset),
                Err(e) if e.is_not_found() => {}
                Err(mail_queue::Error::Corrupt { reason, .. }) => return Found::Bad(path, reason),
                Err(mail_queue::Error::Io { path, source }) => {
                    return Found::Error(format!(
                        "open queue file {}: {}",
                        path.display(),
                        strerror(&source)
                    ));
                }
                Err(e) => return Found::Error(e.to_string()),
            }
            seen |= path.symlink_metadata().is_ok();
        }
        if !seen {
            break;
        }
    }
    Found::Nothing
}

/// Reads and checks a queue file; also returns where its content starts
/// (Postfix's `message_size:` shows the data offset).
fn read_file(path: &Path) -> Result<(QueueFile, u64), mail_queue::Error> {
    let qf = mail_queue::format::read(path)?;
    // The header is fixed, the envelope length is in it: 22 bytes.
    let mut head = [0u8; 14];
    let offset = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|()| content_offset(&head))
        .unwrap_or(0);
    Ok((qf, offset))
}

/// The content's offset from a file's first 14 bytes (magic, version,
/// envelope length), as docs/queue-format.md lays the file out.
fn content_offset(head: &[u8]) -> u64 {
    let (Some(version), Some(len)) = (head.get(8..10), head.get(10..14)) else { return 0 };
    let version = u16::from_be_bytes([version[0], version[1]]);
    let env_len = u64::from(u32::from_be_bytes([len[0], len[1], len[2], len[3]]));
    let crc = if version == mail_queue::format::VERSION_1 { 0 } else { 4 };
    14 + env_len + 8 + crc
}

/// Recipients (by index) whose final result is in the status log.
fn done_recipients(queue: &Queue, id: &QueueId) -> HashSet<u32> {
    queue
        .read_status(id)
        .map(|records| {
            records.iter().filter(|r| r.outcome.is_final()).map(|r| r.recipient).collect()
        })
        .unwrap_or_default()
}

fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn asctime(t: std::time::SystemTime) -> String {
    let t: chrono::DateTime<chrono::Local> = t.into();
    t.format("%a %b %e %H:%M:%S %Y").to_string()
}

/// The postcat text of one file.
fn render(label: &str, qf: &QueueFile, offset: u64, done: &HashSet<u32>, show: Show) -> Vec<u8> {
    use std::fmt::Write as _;
    let (show, markers) = show.resolved();
    let e = &qf.envelope;
    let mut out = String::new();
    if markers {
        let _ = writeln!(out, "*** ENVELOPE RECORDS {label} ***");
    }
    if show.envelope {
        let size = qf.content.len();
        let smtputf8 = if e.esmtp.smtputf8 { 8 } else { 0 };
        let _ = writeln!(
            out,
            "message_size: {size:>15} {offset:>15} {:>15} {:>15} {size:>15} {smtputf8:>15}",
            e.recipients.len(),
            0
        );
        let arrival = std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.arrival);
        let _ = writeln!(out, "message_arrival_time: {}", asctime(arrival));
        if let Some(created) = label
            .rsplit('/')
            .next()
            .and_then(|n| QueueId::parse(n).ok())
            .and_then(|id| id.created())
        {
            let _ = writeln!(out, "create_time: {}", asctime(created));
        }
        let _ = writeln!(out, "named_attribute: client={}", e.client);
        let _ = writeln!(out, "named_attribute: origin={}", e.origin);
        for (name, value) in &e.attrs {
            let _ = writeln!(out, "named_attribute: {name}={value}");
        }
        if let Some(body) = &e.esmtp.body {
            let _ = writeln!(out, "named_attribute: body={body:?}");
        }
        if let Some(ret) = &e.esmtp.ret {
            let _ = writeln!(out, "named_attribute: dsn_ret={ret:?}");
        }
        if let Some(envid) = &e.esmtp.envid {
            let _ = writeln!(out, "named_attribute: dsn_envid={envid}");
        }
        let sender = e.sender.as_ref().map(ToString::to_string).unwrap_or_default();
        let _ = writeln!(out, "sender: {sender}");
        for (i, r) in e.recipients.iter().enumerate() {
            if let Some(o) = &r.esmtp.orcpt {
                let _ =
                    writeln!(out, "named_attribute: dsn_orig_rcpt={};{}", o.addr_type, o.address);
            }
            let _ = writeln!(out, "original_recipient: {}", r.original);
            let kind = if done.contains(&(i as u32)) { "done_recipient" } else { "recipient" };
            let _ = writeln!(out, "{kind}: {}", r.address);
        }
    }
    if markers {
        let _ = writeln!(out, "*** MESSAGE CONTENTS {label} ***");
    }
    let mut bytes = out.into_bytes();
    let (header, body) = split_header(&qf.content);
    if show.header {
        bytes.extend_from_slice(header);
    }
    if show.body {
        bytes.extend_from_slice(body);
    }
    if (show.header || show.body) && !bytes.is_empty() && !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    if markers {
        bytes.extend_from_slice(format!("*** HEADER EXTRACTED {label} ***\n").as_bytes());
        bytes.extend_from_slice(format!("*** MESSAGE FILE END {label} ***\n").as_bytes());
    }
    bytes
}

/// The header block and the rest, which starts with the empty line that
/// ends the header (so `-h` then `-b` together give the whole message).
fn split_header(content: &[u8]) -> (&[u8], &[u8]) {
    if content.starts_with(b"\n") {
        return (&[], content);
    }
    match content.windows(2).position(|w| w == b"\n\n") {
        Some(at) => content.split_at(at + 1),
        None => (content, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_queue::{Envelope, Recipient};

    fn file() -> QueueFile {
        QueueFile {
            envelope: Envelope {
                sender: Some("root@example.org".parse().unwrap()),
                recipients: vec![
                    Recipient::new("a@example.org".parse().unwrap(), "a"),
                    Recipient::new("b@remote.example".parse().unwrap(), "b@remote.example"),
                ],
                arrival: 1_795_870_954,
                client: "localhost[127.0.0.1]".into(),
                origin: "smtpd".into(),
                attrs: vec![("helo".into(), "client.example".into())],
                esmtp: Default::default(),
            },
            content: b"Subject: hi\nFrom: root@example.org\n\nbody\n".to_vec(),
        }
    }

    #[test]
    fn shows_envelope_and_content_in_postfix_shape() {
        let done: HashSet<u32> = [0].into();
        let text =
            String::from_utf8(render("deferred/X", &file(), 100, &done, Show::default())).unwrap();
        let time = asctime(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_870_954));
        let expected = format!(
            "*** ENVELOPE RECORDS deferred/X ***\n\
             message_size:              41             100               2               0              41               0\n\
             message_arrival_time: {time}\n\
             named_attribute: client=localhost[127.0.0.1]\n\
             named_attribute: origin=smtpd\n\
             named_attribute: helo=client.example\n\
             sender: root@example.org\n\
             original_recipient: a\n\
             done_recipient: a@example.org\n\
             original_recipient: b@remote.example\n\
             recipient: b@remote.example\n\
             *** MESSAGE CONTENTS deferred/X ***\n\
             Subject: hi\nFrom: root@example.org\n\nbody\n\
             *** HEADER EXTRACTED deferred/X ***\n\
             *** MESSAGE FILE END deferred/X ***\n"
        );
        assert_eq!(text, expected);
        let part = |show| String::from_utf8(render("x", &file(), 0, &done, show)).unwrap();
        let h = Show { header: true, ..Show::default() };
        let b = Show { body: true, ..Show::default() };
        assert_eq!(part(h), "Subject: hi\nFrom: root@example.org\n");
        assert_eq!(part(b), "\nbody\n");
        let e = part(Show { envelope: true, ..Show::default() });
        assert!(e.starts_with("*** ENVELOPE RECORDS x ***\n"), "{e}");
        assert!(e.ends_with("*** MESSAGE CONTENTS x ***\n*** HEADER EXTRACTED x ***\n*** MESSAGE FILE END x ***\n"), "{e}");
    }

    #[test]
    fn parses_arguments() {
        let p = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let r = p(&["-c", "/x", "-eh", "-q", "ID"]).unwrap();
        assert_eq!(r.config_dir, Some(PathBuf::from("/x")));
        assert!(r.queue_id && r.show.envelope && r.show.header && !r.show.body);
        assert_eq!(r.names, ["ID"]);
        assert!(p(&["-q"]).is_err());
        assert!(p(&["-z"]).unwrap_err().starts_with("invalid option -- 'z'"));
    }

    #[test]
    fn damaged_files_are_named_with_their_problem() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = q.reserve().unwrap().commit(&file().envelope, &file().content).unwrap();
        let path = q.path(State::Incoming, &id);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        match find_and_read(&q, &id) {
            Found::Bad(p, reason) => {
                assert_eq!(p, path);
                assert_eq!(reason, "content checksum mismatch");
            }
            _ => panic!("a damaged file was shown"),
        }
        assert!(matches!(find_and_read(&q, &QueueId::generate()), Found::Nothing));
    }
}
