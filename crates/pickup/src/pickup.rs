//! Picking up maildrop files: lock, read, qualify, submit (cleanup and
//! commit to `incoming/`, through `mail_submit`), remove the maildrop
//! file.
//!
//! Ordering is what keeps accepted mail safe: the queue file is committed
//! (fsync, rename, fsync `incoming/`) before the maildrop file is
//! unlinked, so a crash between the two leaves both and the next scan
//! queues the message again. The cost is a possible duplicate, never a
//! loss.
//!
//! Maildrop files are untrusted (any local user can write one): symbolic
//! links, non-regular files, files with more than one link and files we
//! are not allowed to open are set aside, and the sender's identity comes
//! from the file's owner uid, never from the file's `user` field.
//!
//! Severities: a bad maildrop file is a warning and goes to `corrupt/`
//! (data is never destroyed for being unreadable), except a message with
//! no recipients, which is a user's mistake and is removed with a warning
//! (Postfix bounces it instead). Queue write errors are returned to the
//! caller, which leaves the file for the next scan.

use mail_cleanup::CleanupParams;
use mail_lookup::rewrite::{RewriteParams, Rewriter};
use mail_queue::{Error, Queue, Recipient, State};
use mail_submit::Origin;
use mail_types::{Address, QueueId};
use nix::fcntl::{Flock, FlockArg};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Room for the maildrop framing and envelope on top of the message.
const MAILDROP_OVERHEAD: u64 = 64 << 10;
/// A dot file this old in `maildrop/` is an abandoned `sendmail` write.
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

/// The parameters pickup uses, converted once.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) cleanup: CleanupParams,
    /// `message_size_limit`; 0 means no limit.
    pub(crate) message_size_limit: u64,
    /// cleanup's canonical and virtual alias rewriting of the envelope.
    pub(crate) rewriter: Arc<Rewriter>,
}

impl Settings {
    /// `Err` is a configuration error of the rewriting tables.
    pub(crate) fn from_config(c: &mail_config::Main) -> Result<Settings, String> {
        let common = mail_config::settings::Common::new(c);
        let rewriter = Arc::new(Rewriter::new(RewriteParams::from_settings(&common))?);
        let header_rewrite = mail_lookup::rewrite::header_rewriter(&rewriter);
        Ok(Settings {
            cleanup: CleanupParams {
                myhostname: c.str("myhostname"),
                myorigin: c.str("myorigin"),
                append_at_myorigin: c.bool("append_at_myorigin"),
                header_size_limit: usize::try_from(c.size("header_size_limit"))
                    .unwrap_or(usize::MAX),
                mail_name: c.str("mail_name"),
                header_rewrite,
            },
            message_size_limit: c.size("message_size_limit"),
            rewriter,
        })
    }

    fn max_file(&self) -> u64 {
        match self.message_size_limit {
            0 => mail_queue::format::MAX_CONTENT,
            n => n.saturating_add(MAILDROP_OVERHEAD),
        }
    }
}

/// What became of one maildrop file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Picked {
    /// Queued under this id and removed from maildrop/.
    Queued(QueueId),
    /// Queued under this id, but the maildrop file could not be removed:
    /// skip it from now on, or it would be queued again at every scan.
    QueuedNotRemoved(QueueId),
    /// Another pickup holds the lock, or already finished the file.
    Skipped,
    /// Unreadable or unacceptable: moved to `corrupt/`.
    Quarantined,
    /// No recipients: removed.
    Discarded,
}

/// The login name of `uid`, if it has a passwd entry.
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
}

/// `<addr>` or `addr` as given to `sendmail -f` / `MAIL FROM`.
fn bare(addr: &str) -> &str {
    let t = addr.trim();
    t.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(t)
}

/// An RFC 5322 §3.2.5 phrase for a display name: atoms stay as they are,
/// anything else becomes a quoted string. Control characters (which could
/// start a new header line) become spaces.
fn display_name(name: &str) -> String {
    let name: String =
        name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let name = name.trim();
    let atext = |c: char| c.is_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atext) {
        name.to_owned()
    } else {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }
}

fn quarantine(queue: &Queue, id: &QueueId, reason: &str) -> Result<Picked, Error> {
    tracing::warn!("{id}: corrupt maildrop file: {reason}; moved to corrupt/");
    queue.quarantine(id, State::Maildrop)?;
    Ok(Picked::Quarantined)
}

/// What to do with a maildrop file that cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenFailure {
    /// Gone: another pickup finished it.
    Gone,
    /// A symbolic link (`O_NOFOLLOW`).
    Symlink,
    /// Permission denied: its owner made it unreadable for us. Retrying
    /// would fail forever, so it is set aside.
    Unreadable,
    /// Anything else may be transient: retry at the next scan.
    Retry,
}

fn open_failure(e: &std::io::Error) -> OpenFailure {
    match e.raw_os_error() {
        Some(nix::libc::ENOENT) => OpenFailure::Gone,
        Some(nix::libc::ELOOP) => OpenFailure::Symlink,
        Some(nix::libc::EACCES | nix::libc::EPERM) => OpenFailure::Unreadable,
        _ => OpenFailure::Retry,
    }
}

/// The sender name for a message without `-f`: the login name of the
/// file's owner. A uid without a passwd entry (sendmail refuses to submit
/// for one, as Postfix's does, so the user was removed since, or the file
/// was not written by sendmail) becomes `uidN`, so the envelope still
/// says who sent it. The file's `user` field is never trusted: anyone can
/// write it.
fn sender_name(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| format!("uid{uid}"))
}

/// Picks up one maildrop file.
pub(crate) fn pickup_file(queue: &Queue, s: &Settings, id: &QueueId) -> Result<Picked, Error> {
    let path = queue.path(State::Maildrop, id);
    // O_NONBLOCK: a FIFO planted in maildrop/ must not hang the open.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => match open_failure(&e) {
            OpenFailure::Gone => return Ok(Picked::Skipped),
            OpenFailure::Symlink => return quarantine(queue, id, "symbolic link"),
            OpenFailure::Unreadable => {
                let owner = fs::symlink_metadata(&path)
                    .map_or_else(|_| "unknown".to_owned(), |m| m.uid().to_string());
                return quarantine(queue, id, &format!("cannot open file of uid {owner}: {e}"));
            }
            OpenFailure::Retry => return Err(Error::Io { path, source: e }),
        },
    };
    let meta = file.metadata().map_err(|e| Error::Io { path: path.clone(), source: e })?;
    if !meta.is_file() {
        return quarantine(queue, id, "not a regular file");
    }
    // Two pickups never process one file: the second one skips it.
    let locked: Flock<File> = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(Picked::Skipped),
        Err((_, e)) => return Err(Error::Io { path, source: e.into() }),
    };
    // Unlinked while we waited: another pickup finished it. More than one
    // link: a user linked a file of theirs (or one they can only read)
    // into maildrop/; Postfix's pickup refuses those too.
    match locked.metadata() {
        Ok(m) if m.nlink() == 0 => return Ok(Picked::Skipped),
        Ok(m) if m.nlink() != 1 => {
            let reason = format!("file of uid {} has {} links", m.uid(), m.nlink());
            return quarantine(queue, id, &reason);
        }
        Ok(_) => {}
        Err(e) => return Err(Error::Io { path, source: e }),
    }
    // Read through the descriptor we locked and checked, never the path
    // again: a file swapped in meanwhile cannot be read in its place.
    if meta.len() > s.max_file() {
        return quarantine(queue, id, "larger than the size limit");
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    let reader: &File = &locked;
    if let Err(e) = reader.take(s.max_file() + 1).read_to_end(&mut bytes) {
        return Err(Error::Io { path, source: e });
    }
    let uid = meta.uid();
    let m = match mail_queue::maildrop::decode(&path, &bytes) {
        Ok(m) => m,
        Err(Error::Corrupt { reason, .. }) => return quarantine(queue, id, &reason),
        Err(e) => return Err(e),
    };
    if s.message_size_limit > 0 && m.content.len() as u64 > s.message_size_limit {
        return quarantine(queue, id, "message file too big");
    }

    // The uid is the file owner's, never the content's claim.
    let owner = sender_name(uid);
    let sender: Option<Address> = if bare(&m.sender).is_empty() && !m.sender.is_empty() {
        None
    } else {
        let given = if m.sender.is_empty() { owner.clone() } else { m.sender.clone() };
        let parsed = Address::parse(bare(&given)).or_else(|e| {
            tracing::warn!("{id}: bad sender address <{given}>: {e}; using <{owner}>");
            Address::parse(&owner)
        });
        match parsed {
            Ok(a) => Some(mail_cleanup::qualify(a, &s.cleanup)),
            Err(_) => return quarantine(queue, id, "no usable sender address"),
        }
    };

    let mut content = m.content;
    let mut raw = Vec::new();
    if m.extract_recipients {
        let (found, without_bcc) = mail_cleanup::extract_recipients(&content);
        raw = found;
        content = without_bcc;
    }
    // Postfix: with -t, command-line recipients are added to the header ones.
    raw.extend(m.recipients);
    let mut seen = HashSet::new();
    let mut recipients = Vec::new();
    for r in raw {
        match Address::parse(bare(&r)) {
            Ok(a) => {
                // The original as parsed, not as typed: the raw string may
                // carry spaces or line breaks (a -t header folded over
                // lines), which must not reach the DSN's Original-Recipient
                // or the orig_to= of log lines.
                let original = a.to_string();
                let a = mail_cleanup::qualify(a, &s.cleanup);
                if seen.insert(a.to_string()) {
                    recipients.push(Recipient { address: a, original, esmtp: Default::default() });
                }
            }
            Err(e) => tracing::warn!("{id}: bad recipient address {r:?}: {e}; skipped"),
        }
    }
    if recipients.is_empty() {
        tracing::warn!("{id}: warning: no recipients; message from uid {uid} removed");
        remove_maildrop(queue, id)?;
        return Ok(Picked::Discarded);
    }

    // `sendmail -F`: cleanup would add a bare `From: sender`; give it the
    // full name instead when the message has no From of its own.
    if let Some(addr) = &sender
        && !m.full_name.trim().is_empty()
        && mail_cleanup::header_value(&content, "From").is_none()
    {
        let from = format!("From: {} <{addr}>\n", display_name(&m.full_name));
        content.splice(0..0, from.into_bytes());
    }

    // cleanup's rewriting (canonical, then virtual alias expansion). A
    // table that cannot be read leaves the file for the next scan, as a
    // queue write error does: nothing is lost, nothing half-rewritten.
    let rewrite_error = |e: mail_lookup::Error| Error::Io {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let sender = match sender {
        Some(a) => Some(s.rewriter.sender(&a).map_err(rewrite_error)?),
        None => None,
    };
    let mut rewritten: Vec<Recipient> = Vec::with_capacity(recipients.len());
    let mut seen = HashSet::new();
    for r in recipients {
        for a in s.rewriter.recipient(&r.address).map_err(rewrite_error)? {
            if seen.insert(a.to_string()) {
                rewritten.push(Recipient {
                    address: a,
                    original: r.original.clone(),
                    esmtp: r.esmtp.clone(),
                });
            }
        }
    }
    let recipients = rewritten;
    let sub = mail_submit::Submission {
        esmtp: Default::default(),
        sender,
        recipients,
        origin: Origin::Pickup { uid, cleanup: s.cleanup.clone() },
    };
    let qid = match mail_submit::submit(queue, &sub, &content) {
        Ok(queued) => {
            let sender_text = sub.sender.as_ref().map(ToString::to_string).unwrap_or_default();
            tracing::info!("{}: uid={uid} from=<{sender_text}>", queued.id);
            if let Some(mid) = &queued.message_id {
                tracing::info!("{}: message-id={mid}", queued.id);
            }
            queued.id
        }
        Err(mail_submit::Error::Queue(e)) => return Err(e),
        // A canonical table for the headers could not be read: the file
        // stays for the next scan, as with the envelope's tables.
        Err(e) if !e.is_permanent() => {
            return Err(Error::Io { path, source: std::io::Error::other(e.to_string()) });
        }
        // The content itself is refused (its header block is too large).
        Err(e) => return quarantine(queue, id, &e.to_string()),
    };
    // Only now, with the queue file durable, may the maildrop file go.
    if let Err(e) = remove_maildrop(queue, id) {
        tracing::error!(
            "{qid}: cannot remove maildrop file {id}: {e}; it will not be picked up again by this process"
        );
        return Ok(Picked::QueuedNotRemoved(qid));
    }
    Ok(Picked::Queued(qid))
}

fn remove_maildrop(queue: &Queue, id: &QueueId) -> Result<(), Error> {
    let path = queue.path(State::Maildrop, id);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Io { path, source: e }),
    }
    let dir = queue.dir(State::Maildrop);
    // The unlink must be durable too, or a crash could bring the file
    // back after qmgr delivered its copy.
    stdx::fs::fsync_dir(&dir).map_err(|e| Error::Io { path: dir, source: e })
}

/// Removes dot files (unfinished `sendmail` writes) older than a day.
/// Returns how many were removed.
pub(crate) fn remove_stale_temps(queue: &Queue, now: SystemTime) -> usize {
    let dir = queue.dir(State::Maildrop);
    let Ok(entries) = fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMP);
        if old && fs::remove_file(entry.path()).is_ok() {
            tracing::info!("removed abandoned maildrop file {}", entry.path().display());
            n += 1;
        }
    }
    n
}

/// Remembers files that could not be removed after queueing.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    skip: HashSet<QueueId>,
}

impl Scanner {
    /// Picks up every file in maildrop/, stopping early (after the current
    /// file) when `stop` is set. Returns the queue ids of the messages
    /// queued (for qmgr's trigger).
    pub(crate) fn scan(&mut self, queue: &Queue, s: &Settings, stop: &AtomicBool) -> Vec<QueueId> {
        remove_stale_temps(queue, SystemTime::now());
        let ids = match queue.scan(State::Maildrop) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("cannot scan maildrop: {e}");
                return Vec::new();
            }
        };
        let mut queued = Vec::new();
        for id in ids {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if self.skip.contains(&id) {
                continue;
            }
            match pickup_file(queue, s, &id) {
                Ok(Picked::Queued(qid)) => queued.push(qid),
                Ok(Picked::QueuedNotRemoved(qid)) => {
                    queued.push(qid);
                    self.skip.insert(id);
                }
                Ok(Picked::Skipped | Picked::Quarantined | Picked::Discarded) => {}
                Err(e) => {
                    tracing::warn!("{id}: cannot queue maildrop file, will retry: {e}");
                    if e.is_disk_full() {
                        break;
                    }
                }
            }
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_queue::Maildrop;

    fn sender_of(e: &mail_queue::Envelope) -> String {
        e.sender.as_ref().map(ToString::to_string).unwrap_or_default()
    }

    fn settings() -> Settings {
        Settings {
            cleanup: CleanupParams {
                myhostname: "mail.postern.test".into(),
                myorigin: "postern.test".into(),
                append_at_myorigin: true,
                header_size_limit: 102_400,
                mail_name: "Postern".into(),
                header_rewrite: None,
            },
            message_size_limit: 10_240_000,
            rewriter: Arc::new(Rewriter::new(RewriteParams::default()).unwrap()),
        }
    }

    fn setup() -> (tempfile::TempDir, Queue) {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        (d, q)
    }

    fn drop_file(q: &Queue, m: Maildrop) -> QueueId {
        q.write_maildrop(&m).unwrap()
    }

    fn maildrop(content: &str) -> Maildrop {
        Maildrop {
            sender: String::new(),
            recipients: vec!["suporte".into()],
            extract_recipients: false,
            full_name: String::new(),
            user: "nobody-in-particular".into(),
            content: content.as_bytes().to_vec(),
        }
    }

    fn me() -> String {
        user_name(nix::unistd::getuid().as_raw()).unwrap()
    }

    #[test]
    fn original_recipients_are_kept_as_parsed_not_as_typed() {
        let (_d, q) = setup();
        let mut m = maildrop("x\n");
        m.recipients = vec![" <suporte>\n".into(), "\tsuporte+a@postern.test ".into()];
        let id = drop_file(&q, m);
        let Picked::Queued(qid) = pickup_file(&q, &settings(), &id).unwrap() else { panic!() };
        let f = q.read(State::Incoming, &qid).unwrap();
        let originals: Vec<_> = f.envelope.recipients.iter().map(|r| r.original.as_str()).collect();
        assert_eq!(originals, ["suporte", "suporte+a@postern.test"]);
    }

    #[test]
    fn queues_a_simple_message() {
        let (_d, q) = setup();
        let id = drop_file(&q, maildrop("Teste de envio\n"));
        let Picked::Queued(qid) = pickup_file(&q, &settings(), &id).unwrap() else { panic!() };
        assert!(q.scan(State::Maildrop).unwrap().is_empty());
        let f = q.read(State::Incoming, &qid).unwrap();
        assert_eq!(sender_of(&f.envelope), format!("{}@postern.test", me()));
        assert_eq!(f.envelope.recipients[0].address, "suporte@postern.test");
        assert_eq!(f.envelope.recipients[0].original, "suporte");
        assert_eq!(f.envelope.origin, "pickup");
        let uid = nix::unistd::getuid().as_raw().to_string();
        assert_eq!(f.envelope.attrs, vec![("uid".to_string(), uid.clone())]);
        let text = String::from_utf8(f.content).unwrap();
        assert!(
            text.starts_with("Received: by mail.postern.test (Postern, from userid "),
            "{text}"
        );
        assert!(text.contains(&format!("From: {}@postern.test\n", me())), "{text}");
        assert!(text.ends_with("\n\nTeste de envio\n"), "{text}");
    }

    #[test]
    fn extracts_recipients_removes_bcc_and_adds_full_name() {
        let (_d, q) = setup();
        let mut m = maildrop("To: ana@example.org\nBcc: hidden\nSubject: s\n\nbody\n");
        m.extract_recipients = true;
        m.sender = "<root@example.org>".into();
        m.full_name = "Root \"the\" User".into();
        m.recipients = vec!["extra".into(), "ana@example.org".into()];
        let id = drop_file(&q, m);
        let Picked::Queued(qid) = pickup_file(&q, &settings(), &id).unwrap() else { panic!() };
        let f = q.read(State::Incoming, &qid).unwrap();
        let rcpts: Vec<_> = f.envelope.recipients.iter().map(|r| r.address.to_string()).collect();
        assert_eq!(rcpts, ["ana@example.org", "hidden@postern.test", "extra@postern.test"]);
        assert_eq!(sender_of(&f.envelope), "root@example.org");
        let text = String::from_utf8(f.content).unwrap();
        assert!(!text.contains("Bcc"), "{text}");
        assert!(text.contains("From: \"Root \\\"the\\\" User\" <root@example.org>\n"), "{text}");
    }

    #[test]
    fn null_sender_and_no_recipients() {
        let (_d, q) = setup();
        let mut m = maildrop("x\n");
        m.sender = "<>".into();
        let id = drop_file(&q, m);
        let Picked::Queued(qid) = pickup_file(&q, &settings(), &id).unwrap() else { panic!() };
        assert_eq!(sender_of(&q.read(State::Incoming, &qid).unwrap().envelope), "");

        let mut m = maildrop("Subject: nobody\n\nx\n");
        m.recipients.clear();
        m.extract_recipients = true;
        let id = drop_file(&q, m);
        assert_eq!(pickup_file(&q, &settings(), &id).unwrap(), Picked::Discarded);
        assert!(q.scan(State::Maildrop).unwrap().is_empty());
    }

    #[test]
    fn corrupt_and_oversized_files_go_to_corrupt() {
        let (_d, q) = setup();
        let id = QueueId::generate();
        std::fs::write(q.path(State::Maildrop, &id), b"garbage").unwrap();
        assert_eq!(pickup_file(&q, &settings(), &id).unwrap(), Picked::Quarantined);
        assert_eq!(q.locate(&id), Some(State::Corrupt));

        let mut s = settings();
        s.message_size_limit = 4;
        let id = drop_file(&q, maildrop("too long\n"));
        assert_eq!(pickup_file(&q, &s, &id).unwrap(), Picked::Quarantined);
        assert_eq!(q.locate(&id), Some(State::Corrupt));

        let id = QueueId::generate();
        std::os::unix::fs::symlink("/etc/passwd", q.path(State::Maildrop, &id)).unwrap();
        assert_eq!(pickup_file(&q, &settings(), &id).unwrap(), Picked::Quarantined);
    }

    #[test]
    fn hard_linked_files_go_to_corrupt() {
        let (d, q) = setup();
        let id = drop_file(&q, maildrop("x\n"));
        std::fs::hard_link(q.path(State::Maildrop, &id), d.path().join("other-name")).unwrap();
        assert_eq!(pickup_file(&q, &settings(), &id).unwrap(), Picked::Quarantined);
        assert_eq!(q.locate(&id), Some(State::Corrupt));
        assert!(q.scan(State::Incoming).unwrap().is_empty());
    }

    #[test]
    fn open_failures_are_classified() {
        use std::io::Error as E;
        assert_eq!(open_failure(&E::from_raw_os_error(nix::libc::ENOENT)), OpenFailure::Gone);
        assert_eq!(open_failure(&E::from_raw_os_error(nix::libc::ELOOP)), OpenFailure::Symlink);
        assert_eq!(open_failure(&E::from_raw_os_error(nix::libc::EACCES)), OpenFailure::Unreadable);
        assert_eq!(open_failure(&E::from_raw_os_error(nix::libc::EPERM)), OpenFailure::Unreadable);
        assert_eq!(open_failure(&E::from_raw_os_error(nix::libc::EIO)), OpenFailure::Retry);
        assert_eq!(open_failure(&E::from_raw_os_error(nix::libc::EMFILE)), OpenFailure::Retry);
    }

    #[test]
    fn unreadable_file_goes_to_corrupt() {
        // Root reads anything, so only an ordinary user can see EACCES.
        if nix::unistd::geteuid().is_root() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: unreadable_file_goes_to_corrupt: needs a non-root user\n",
            );
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let (_d, q) = setup();
        let id = drop_file(&q, maildrop("x\n"));
        let path = q.path(State::Maildrop, &id);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        assert_eq!(pickup_file(&q, &settings(), &id).unwrap(), Picked::Quarantined);
        assert_eq!(q.locate(&id), Some(State::Corrupt));
    }

    #[test]
    fn sender_never_comes_from_the_file() {
        assert_eq!(sender_name(0), "root");
        // No passwd entry: the uid, not the file's `user` claim.
        assert_eq!(sender_name(3_999_999_999), "uid3999999999");
        let (_d, q) = setup();
        let mut m = maildrop("x\n");
        m.user = "ceo".into();
        let id = drop_file(&q, m);
        let Picked::Queued(qid) = pickup_file(&q, &settings(), &id).unwrap() else { panic!() };
        let f = q.read(State::Incoming, &qid).unwrap();
        assert_eq!(sender_of(&f.envelope), format!("{}@postern.test", me()));
    }

    #[test]
    fn locked_file_is_skipped() {
        let (_d, q) = setup();
        let id = drop_file(&q, maildrop("x\n"));
        let f = File::open(q.path(State::Maildrop, &id)).unwrap();
        let _lock = Flock::lock(f, FlockArg::LockExclusiveNonblock).unwrap();
        assert_eq!(pickup_file(&q, &settings(), &id).unwrap(), Picked::Skipped);
        assert_eq!(q.scan(State::Maildrop).unwrap(), vec![id]);
    }

    #[test]
    fn scanner_stops_and_cleans_stale_temps() {
        let (_d, q) = setup();
        drop_file(&q, maildrop("a\n"));
        drop_file(&q, maildrop("b\n"));
        let stale = q.dir(State::Maildrop).join(".ABANDONED");
        std::fs::write(&stale, b"x").unwrap();
        assert_eq!(remove_stale_temps(&q, SystemTime::now()), 0);
        let later = SystemTime::now() + Duration::from_secs(2 * 24 * 3600);
        assert_eq!(remove_stale_temps(&q, later), 1);

        let stop = AtomicBool::new(true);
        assert_eq!(Scanner::default().scan(&q, &settings(), &stop), vec![]);
        stop.store(false, Ordering::Relaxed);
        let mut queued = Scanner::default().scan(&q, &settings(), &stop);
        queued.sort();
        assert_eq!(q.scan(State::Incoming).unwrap(), queued);
        assert_eq!(queued.len(), 2);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("Ana Silva"), "Ana Silva");
        assert_eq!(display_name("Silva, Ana"), "\"Silva, Ana\"");
        assert_eq!(display_name("a\r\nBcc: x"), "\"a  Bcc: x\"");
    }

    /// cleanup's rewriting applies to mail from sendmail too: the
    /// sender through canonical_maps, each recipient through
    /// virtual_alias_maps (one to many); a table that cannot be read
    /// leaves the maildrop file for the next scan.
    #[test]
    fn canonical_and_virtual_rewriting() {
        let (d, q) = setup();
        let canon = d.path().join("canonical");
        let virt = d.path().join("virtual");
        std::fs::write(&canon, format!("{}@postern.test  Equipe.Suporte@postern.test\n", me()))
            .unwrap();
        std::fs::write(&virt, "equipe@postern.test  suporte, ana@postern.test\n").unwrap();
        let mut s = settings();
        s.rewriter = Arc::new(
            Rewriter::new(RewriteParams {
                canonical_maps: vec![canon],
                virtual_alias_maps: vec![virt.clone()],
                myorigin: "postern.test".into(),
                mydestination: vec!["postern.test".into()],
                virtual_alias_recursion_limit: 1000,
                virtual_alias_expansion_limit: 1000,
                ..RewriteParams::default()
            })
            .unwrap(),
        );
        let mut m = maildrop("Subject: x\n\nx\n");
        m.recipients = vec!["equipe".into(), "suporte@postern.test".into()];
        let id = drop_file(&q, m);
        let Picked::Queued(qid) = pickup_file(&q, &s, &id).unwrap() else { panic!() };
        let f = q.read(State::Incoming, &qid).unwrap();
        assert_eq!(sender_of(&f.envelope), "Equipe.Suporte@postern.test");
        let to: Vec<(String, String)> = f
            .envelope
            .recipients
            .iter()
            .map(|r| (r.address.to_string(), r.original.clone()))
            .collect();
        assert_eq!(
            to,
            [
                ("suporte@postern.test".to_owned(), "equipe".to_owned()),
                ("ana@postern.test".to_owned(), "equipe".to_owned()),
            ]
        );
        std::fs::remove_file(&virt).unwrap();
        let id = drop_file(&q, maildrop("x\n"));
        assert!(pickup_file(&q, &s, &id).is_err());
        assert!(q.path(State::Maildrop, &id).exists(), "the maildrop file must stay");
    }
}
