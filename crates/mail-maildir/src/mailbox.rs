//! One Maildir opened for reading by pop3d (and imapd later): its messages
//! in a stable order with persistent UIDs, RFC 822 sizes and flags, kept in
//! the index file `postern-uidlist` (format in [`crate::uidlist`]).
//!
//! Consistency rules:
//! - The directory listing is the truth; the index only remembers what
//!   cannot be read from a name (UID, size, date). Opening costs two
//!   `readdir`s and the index read; only messages not yet in the index are
//!   opened (for their size, unless the name carries Dovecot's `,W=`) and
//!   `stat`ed.
//! - The listing is skipped, as Dovecot skips it, when `new/` and `cur/`
//!   still have the mtimes the index recorded before its last listing
//!   ([`uidlist::DirStamps`]): every delivery, rename and removal in a
//!   directory moves its mtime, except one in the same clock tick as the
//!   change before it, so the index records the mtimes only when both were
//!   at least [`SETTLED`] old when they were read. Our own renames and
//!   removals move them too, so the next open lists again.
//! - Local delivery only ever adds files to `new/`, so it needs no lock.
//!   Readers that change the index (new UIDs, vanished messages) take an
//!   `flock` on `postern-uidlist.lock` (bounded wait), read the index and
//!   the directories again under it, and replace the index atomically
//!   (temporary file, fsync, rename, fsync). Readers that change nothing
//!   take no lock.
//! - A `readdir` racing with a rename in the same directory may miss the
//!   entry; before a message is declared gone the directories are listed a
//!   second time, and it is gone only if both listings miss it.
//! - Flags live in the file names only (`:2,FLAGS`), so another process may
//!   rename a message at any time: every operation on a message looks it up
//!   again by its unique name when its last known name has gone.
//! - A damaged index (anything [`crate::uidlist::parse_index`] refuses) is
//!   rebuilt with a new UIDVALIDITY, above the old one when that can still be
//!   read; a missing one is first created from `dovecot-uidlist` or
//!   `courierimapuiddb` when one of those can be read, keeping their UIDs.
//! - Nothing found on disk makes this code panic or follow a symlink: such
//!   entries are skipped and listed in [`Mailbox::skipped`].

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::keywords::{KEYWORDS_FILE, Keywords, MAX_KEYWORDS_BYTES};
use crate::uidlist::{
    self, Expunged, INDEX_FILE, Index, MAX_INDEX_BYTES, Record, is_message_name, key_of,
};
use crate::{Error, Flags, crlf, layout};

/// How long [`Mailbox::open`] waits for another process's index update.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// The lock file that serialises index updates.
const INDEX_LOCK: &str = "postern-uidlist.lock";

/// How old the mtimes of `new/` and `cur/` must be, when read, before the
/// index may record them (module documentation): far above the clock
/// tick of any local file system, so a later change cannot leave them as
/// they were.
const SETTLED: Duration = Duration::from_secs(1);

/// Tunables of [`Mailbox::open_with`].
#[derive(Debug, Clone)]
pub struct MailboxOptions {
    /// The longest wait for the index lock before giving up with
    /// [`Error::Lock`] (a temporary failure).
    pub lock_wait: Duration,
    /// The most messages the Maildir may hold ([`Error::TooMany`] beyond).
    pub max_messages: usize,
}

impl Default for MailboxOptions {
    fn default() -> MailboxOptions {
        MailboxOptions { lock_wait: DEFAULT_LOCK_WAIT, max_messages: uidlist::MAX_MESSAGES }
    }
}

/// One message of a [`Mailbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Its UID: stable across sessions while UIDVALIDITY stays, the same
    /// for pop3d (UIDL) and imapd.
    pub uid: u32,
    /// The unique part of its file name (before `:2,`), which no flag
    /// change alters.
    pub key: String,
    /// RFC 822 size: its bytes with every bare LF counted as CRLF
    /// ([`crate::crlf`]); what RETR sends before dot-stuffing.
    pub size: u64,
    /// Its flags, from the file name.
    pub flags: Flags,
    /// Internal date: the file's mtime when first seen, seconds since the
    /// epoch.
    pub internal_date: i64,
    /// Whether the file is (was, at the last scan) in `new/`: IMAP's
    /// `\Recent` until [`Mailbox::take_recent`] moves it.
    pub in_new: bool,
    /// The modseq of its last change (CONDSTORE, RFC 7162).
    pub modseq: u64,
}

/// What [`Mailbox::refresh`] found changed since the last snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// UIDs of messages that appeared, ascending.
    pub added: Vec<u32>,
    /// UIDs of messages that are gone (removed by another process),
    /// ascending.
    pub vanished: Vec<u32>,
    /// UIDs whose flags changed (by another process), ascending.
    pub flags_changed: Vec<u32>,
    /// The index was rebuilt meanwhile: every old UID is void (all are in
    /// `vanished`, all current ones in `added`).
    pub uid_validity_changed: bool,
    /// The folder's keyword table changed (IMAP sends FLAGS again).
    pub keywords_changed: bool,
}

/// A directory entry that is not treated as a message, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry.
    pub path: PathBuf,
    /// Why it is not a message here.
    pub reason: &'static str,
}

/// An open Maildir: INBOX or a Maildir++ folder directory, read as its
/// owner. See the module documentation for the rules it keeps.
#[derive(Debug)]
pub struct Mailbox {
    dir: PathBuf,
    options: MailboxOptions,
    uid_validity: u32,
    uid_next: u32,
    highest_modseq: u64,
    expunge_floor: u64,
    expunged: Vec<Expunged>,
    keywords: Keywords,
    messages: Vec<MessageInfo>,
    /// The full file name of each message, parallel to `messages`.
    names: Vec<String>,
    skipped: Vec<Skipped>,
    rebuilt: Option<String>,
}

/// An exclusive lock on a mailbox for one purpose (POP3's one session at a
/// time), held until dropped; other processes and other [`Mailbox`]es in
/// this process see it.
#[derive(Debug)]
pub struct MailboxLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl MailboxLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Mailbox {
    /// Opens the Maildir `dir` with [`MailboxOptions::default`].
    pub fn open(dir: &Path) -> Result<Mailbox, Error> {
        Mailbox::open_with(dir, MailboxOptions::default())
    }

    /// Opens the Maildir `dir`: creates it (and a missing `tmp/`, `new/` or
    /// `cur/`, or works without them when that fails), lists `new/` and
    /// `cur/`, loads the index (creating, importing or rebuilding it), and
    /// gives every message not yet known a UID.
    ///
    /// A symlink as `dir` or as one of its subdirectories is refused
    /// ([`Error::Symlink`]).
    pub fn open_with(dir: &Path, options: MailboxOptions) -> Result<Mailbox, Error> {
        let dir = layout::normalize(dir);
        prepare(&dir)?;
        let mut mb = Mailbox {
            dir,
            options,
            uid_validity: 0,
            uid_next: 1,
            highest_modseq: 1,
            expunge_floor: 1,
            expunged: Vec::new(),
            keywords: Keywords::default(),
            messages: Vec::new(),
            names: Vec::new(),
            skipped: Vec::new(),
            rebuilt: None,
        };
        let state = mb.load()?;
        mb.install(state);
        mb.keywords = read_keywords(&mb.dir);
        Ok(mb)
    }

    /// The Maildir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// UIDVALIDITY of the index.
    pub fn uid_validity(&self) -> u32 {
        self.uid_validity
    }

    /// The UID the next new message will get.
    pub fn uid_next(&self) -> u32 {
        self.uid_next
    }

    /// The messages by ascending UID, as of the last open or refresh (minus
    /// those this handle expunged).
    pub fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    /// The message with this UID, if it is in the snapshot.
    pub fn message(&self, uid: u32) -> Option<&MessageInfo> {
        self.position(uid).map(|i| &self.messages[i])
    }

    /// Entries of `new/` and `cur/` skipped at the last scan (symlinks,
    /// non-regular files, names that are not message names, duplicates), for
    /// the caller to log.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Why the index had to be rebuilt with a new UIDVALIDITY at the last
    /// open or refresh, for the caller to log; `None` if it was not.
    pub fn rebuilt(&self) -> Option<&str> {
        self.rebuilt.as_deref()
    }

    /// Lists the Maildir again: new arrivals get UIDs (and are in
    /// [`Mailbox::messages`] from now on), messages removed by others are
    /// dropped, flags re-read.
    pub fn refresh(&mut self) -> Result<Changes, Error> {
        let state = self.load()?;
        let mut changes = Changes::default();
        let keywords = read_keywords(&self.dir);
        if keywords != self.keywords {
            changes.keywords_changed = true;
            self.keywords = keywords;
        }
        if state.index.uid_validity != self.uid_validity {
            changes.uid_validity_changed = true;
            changes.vanished = self.messages.iter().map(|m| m.uid).collect();
            changes.added = state.index.records.iter().map(|r| r.uid).collect();
        } else {
            let old: HashMap<u32, Flags> = self.messages.iter().map(|m| (m.uid, m.flags)).collect();
            let mut current = HashSet::new();
            for r in &state.index.records {
                current.insert(r.uid);
                match old.get(&r.uid) {
                    None => changes.added.push(r.uid),
                    Some(&f) if f != flags_of(&r.file_name) => changes.flags_changed.push(r.uid),
                    Some(_) => {}
                }
            }
            changes.vanished =
                self.messages.iter().map(|m| m.uid).filter(|u| !current.contains(u)).collect();
        }
        self.install(state);
        Ok(changes)
    }

    /// Opens the message for reading: `O_NOFOLLOW|O_NONBLOCK`, and only if
    /// it is a regular file. When another process has renamed it (changed
    /// its flags) it is found by its unique name; when it has been removed,
    /// or `uid` is not in the snapshot, the error is [`Error::NotFound`].
    pub fn open_message(&self, uid: u32) -> Result<File, Error> {
        let i = self.position(uid).ok_or_else(|| self.not_found(uid))?;
        let m = &self.messages[i];
        let mut path = self.path_of(m.in_new, &self.names[i]);
        for _ in 0..3 {
            match open_regular(&path) {
                Err(Error::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    match locate(&self.dir, &m.key)? {
                        Some((in_new, name)) => path = self.path_of(in_new, &name),
                        None => return Err(self.not_found(uid)),
                    }
                }
                other => return other,
            }
        }
        Err(self.not_found(uid))
    }

    /// Gives the message exactly `flags`, moving it to `cur/` as
    /// `KEY:2,FLAGS` (what Dovecot does with a message a POP3 client
    /// retrieved). Nothing is renamed when the name already says so.
    pub fn set_flags(&mut self, uid: u32, flags: Flags) -> Result<(), Error> {
        let i = self.position(uid).ok_or_else(|| self.not_found(uid))?;
        let key = self.messages[i].key.clone();
        let target = format!("{key}:2,{}", flags.to_maildir());
        let to = self.dir.join("cur").join(&target);
        let (mut in_new, mut name) = (self.messages[i].in_new, self.names[i].clone());
        for _ in 0..3 {
            if !in_new && name == target {
                break;
            }
            let from = self.path_of(in_new, &name);
            match rename_noreplace(&from, &to) {
                // EEXIST: another process made the same change.
                Ok(()) | Err(Errno::EEXIST) => {
                    (in_new, name) = (false, target.clone());
                    break;
                }
                Err(Errno::ENOENT) => match locate(&self.dir, &key)? {
                    // Still where it was: what is missing is cur/.
                    Some(found) if found == (in_new, name.clone()) => {
                        let source = io::Error::from_raw_os_error(libc::ENOENT);
                        return Err(Error::Link { from, to, source });
                    }
                    Some(found) => (in_new, name) = found,
                    None => return Err(self.not_found(uid)),
                },
                Err(e) => {
                    return Err(Error::Link { from, to, source: e.into() });
                }
            }
        }
        if in_new || name != target {
            return Err(self.not_found(uid));
        }
        self.messages[i].in_new = false;
        self.messages[i].flags = flags_of(&name);
        self.names[i] = name;
        Ok(())
    }

    /// Removes the messages' files (POP3's UPDATE state, IMAP's EXPUNGE)
    /// and their index records. Returns the UIDs this call removed, in the
    /// order given. Not in it: a UID not in the snapshot, one whose file
    /// another process removed first, and one whose file could not be
    /// removed (it stays, and shows again in the next session); so a
    /// caller that must tell apart "already gone" compares with
    /// [`Mailbox::refresh`].
    pub fn expunge(&mut self, uids: &[u32]) -> Result<Vec<u32>, Error> {
        let mut removed = Vec::new();
        let mut gone = HashSet::new();
        let mut touched = [false, false];
        for &uid in uids {
            let Some(i) = self.position(uid) else { continue };
            if gone.contains(&uid) {
                continue;
            }
            let key = self.messages[i].key.clone();
            let (mut in_new, mut name) = (self.messages[i].in_new, self.names[i].clone());
            for _ in 0..3 {
                let path = self.path_of(in_new, &name);
                match fs::remove_file(&path) {
                    Ok(()) => {
                        removed.push(uid);
                        gone.insert(uid);
                        touched[usize::from(in_new)] = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        match locate(&self.dir, &key)? {
                            Some(found) => (in_new, name) = found,
                            None => break,
                        }
                    }
                    // Kept: not removing is never a loss.
                    Err(_) => break,
                }
            }
        }
        // Removals that a crash undoes only bring mail back, so a failed
        // fsync is not reported as a failed expunge.
        for (sub, t) in ["cur", "new"].iter().zip(touched) {
            if t {
                let _ = stdx::fs::fsync_dir(&self.dir.join(sub));
            }
        }
        let (messages, names) = std::mem::take(&mut self.messages)
            .into_iter()
            .zip(std::mem::take(&mut self.names))
            .filter(|(m, _)| !gone.contains(&m.uid))
            .unzip();
        (self.messages, self.names) = (messages, names);
        if !gone.is_empty() {
            // The next open drops the records anyway; doing it now keeps a
            // file that reappears under the same name from getting its old
            // UID back.
            let _ = self.drop_records(&gone);
        }
        Ok(removed)
    }

    /// Takes the exclusive lock `what` (`pop3` for POP3 sessions) without
    /// waiting: `None` when another session holds it. `what` is a short
    /// lowercase word; the lock file is `postern-WHAT.lock` in the Maildir.
    pub fn lock_exclusive(&self, what: &str) -> Result<Option<MailboxLock>, Error> {
        let path = self.dir.join(format!("postern-{what}.lock"));
        let valid = !what.is_empty()
            && what.len() <= 32
            && what.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "bad lock name");
            return Err(Error::Lock { path, source });
        }
        let file = open_lock_file(&path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(MailboxLock { _lock: lock, path })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(Error::Lock { path, source: e.into() }),
        }
    }

    fn position(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    fn path_of(&self, in_new: bool, name: &str) -> PathBuf {
        self.dir.join(if in_new { "new" } else { "cur" }).join(name)
    }

    fn not_found(&self, uid: u32) -> Error {
        Error::NotFound { path: self.dir.clone(), uid }
    }

    fn install(&mut self, state: State) {
        self.uid_validity = state.index.uid_validity;
        self.uid_next = state.index.uid_next;
        self.highest_modseq = state.index.highest_modseq;
        self.expunge_floor = state.index.expunge_floor;
        self.expunged = state.index.expunged;
        self.skipped = state.skipped;
        self.rebuilt = state.rebuilt;
        self.messages.clear();
        self.names.clear();
        for r in state.index.records {
            self.messages.push(MessageInfo {
                uid: r.uid,
                key: key_of(&r.file_name).to_owned(),
                size: r.size,
                flags: flags_of(&r.file_name),
                internal_date: r.internal_date,
                in_new: r.in_new,
                modseq: r.modseq,
            });
            self.names.push(r.file_name);
        }
    }

    /// The current index and listing: without a lock when the index
    /// already says everything, else updated under the lock.
    fn load(&self) -> Result<State, Error> {
        if let Loaded::Present(index) = read_index(&self.dir)? {
            let now = dir_mtimes(&self.dir);
            if index.dirs.is_some() && index.dirs == now.map(|(d, _)| d) {
                return Ok(State { index, skipped: Vec::new(), rebuilt: None });
            }
            let settled = now.and_then(settled);
            let scan = scan(&self.dir, self.options.max_messages)?;
            // Unchanged, and no settled mtimes to record (which needs the
            // lock and a write): nothing to do.
            if let Some(index) = unchanged(&index, &scan)
                && (settled.is_none() || !scan.skipped.is_empty())
            {
                return Ok(State { index, skipped: scan.skipped, rebuilt: None });
            }
        }
        let mut lock = self.lock_index()?;
        self.load_locked(&mut lock)
    }

    /// The index updated from the listing, written if that changed it;
    /// the caller holds the index lock.
    pub(crate) fn load_locked(&self, lock: &mut Flock<File>) -> Result<State, Error> {
        let loaded = read_index(&self.dir)?;
        // Read before the listing: a change during it moves them past
        // what is recorded.
        let stamps = dir_mtimes(&self.dir).and_then(settled);
        let mut scan = scan(&self.dir, self.options.max_messages)?;
        let present = matches!(loaded, Loaded::Present(_));
        let (base, imported, rebuilt) = match loaded {
            Loaded::Present(index) => (index, None, None),
            Loaded::Missing => match index_was_written(lock) {
                // An index was lost: a foreign uidlist is older than it.
                Some(old) => {
                    let base = fresh(Some(old));
                    (base, None, Some("index missing".to_owned()))
                }
                None => match import(&self.dir) {
                    Some(imp) => {
                        // The UIDVALIDITY stays, so the modseqs must not go
                        // below the other server's (RFC 7162 §3.1.2): we
                        // cannot read those, but one change per second
                        // since 1970 is more than any mailbox has seen.
                        let start = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(1, |d| d.as_secs())
                            .max(1);
                        let base = Index {
                            uid_next: imp.uid_next,
                            highest_modseq: start,
                            expunge_floor: start,
                            ..Index::new(imp.uid_validity)
                        };
                        (base, Some(imp.uids.into_iter().collect::<HashMap<_, _>>()), None)
                    }
                    None => (fresh(None), None, None),
                },
            },
            Loaded::Damaged { reason, floor } => {
                (fresh(Some(floor)), None, Some(format!("index damaged: {reason}")))
            }
        };
        let missing = base.records.iter().any(|r| !scan.found.contains_key(key_of(&r.file_name)));
        if missing {
            // A second look before declaring anything gone (see the module
            // documentation); its locations are the newer ones.
            let again = self::scan(&self.dir, self.options.max_messages)?;
            scan.merge(again);
        }
        let mut rebuilt = rebuilt;
        let scan_skipped = std::mem::take(&mut scan.skipped);
        let mut skipped = scan_skipped.clone();
        let index = match merge(&self.dir, &base, &scan, imported.as_ref(), &mut skipped) {
            Some(index) => index,
            None => {
                rebuilt = Some("UIDs exhausted".to_owned());
                let base = fresh(Some(base.uid_validity));
                skipped = scan_skipped;
                // A fresh index has room for any count we accept.
                merge(&self.dir, &base, &scan, None, &mut skipped).unwrap_or(base)
            }
        };
        // Only a listing that took in every entry vouches for the
        // directories (a file that could not be measured is tried again at
        // the next listing; strays are reported at each).
        let mut index = index;
        if skipped.is_empty() && stamps.is_some() {
            index.dirs = stamps;
        }
        // Another process may have made the same update while we waited.
        let same = present
            && rebuilt.is_none()
            && unchanged(&base, &scan).is_some()
            && base.dirs == index.dirs;
        if !same {
            write_index(&self.dir, &index)?;
            mark_index_written(lock, index.uid_validity);
        }
        Ok(State { index, skipped, rebuilt })
    }

    pub(crate) fn lock_index(&self) -> Result<Flock<File>, Error> {
        lock_index_at(&self.dir, self.options.lock_wait)
    }

    fn drop_records(&self, gone: &HashSet<u32>) -> Result<(), Error> {
        let _lock = self.lock_index()?;
        if let Loaded::Present(mut index) = read_index(&self.dir)? {
            let before = index.records.len();
            let mut went = Vec::new();
            index.records.retain(|r| {
                let keep = !gone.contains(&r.uid);
                if !keep {
                    went.push(r.uid);
                }
                keep
            });
            if index.records.len() != before {
                index.log_expunge(went);
                write_index(&self.dir, &index)?;
            }
        }
        Ok(())
    }
}

/// Takes the index lock of the Maildir `dir`, waiting at most `wait`.
pub(crate) fn lock_index_at(dir: &Path, wait: Duration) -> Result<Flock<File>, Error> {
    lock_file_at(&dir.join(INDEX_LOCK), wait)
}

/// Takes an exclusive `flock` on the lock file `path` (created if
/// missing), waiting at most `wait`.
pub(crate) fn lock_file_at(path: &Path, wait: Duration) -> Result<Flock<File>, Error> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(2);
    loop {
        let file = open_lock_file(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                let source =
                    io::Error::new(io::ErrorKind::WouldBlock, "another process holds the lock");
                return Err(Error::Lock { path: path.to_owned(), source });
            }
            Err((_, e)) => return Err(Error::Lock { path: path.to_owned(), source: e.into() }),
        }
    }
}

/// The outcome of one load.
pub(crate) struct State {
    index: Index,
    skipped: Vec<Skipped>,
    rebuilt: Option<String>,
}

/// One listing of `new/` and `cur/`.
#[derive(Default)]
struct Scan {
    /// Unique name → (in `new/`, full file name).
    found: HashMap<String, (bool, String)>,
    skipped: Vec<Skipped>,
}

impl Scan {
    /// Adds a later listing: its locations win, and what only the
    /// earlier one saw stays.
    fn merge(&mut self, later: Scan) {
        self.found.extend(later.found);
        self.skipped = later.skipped;
    }
}

/// Makes sure `dir` is a usable Maildir: no symlinks, missing parts
/// created where possible.
fn prepare(dir: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => return Err(Error::Symlink { path: dir.to_owned() }),
        Ok(m) if !m.is_dir() => {
            return Err(Error::Unsafe { path: dir.to_owned(), reason: "not a directory" });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return layout::prepare(dir),
        Err(source) => return Err(Error::Read { path: dir.to_owned(), source }),
    }
    for sub in layout::SUBDIRS {
        let path = dir.join(sub);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Err(Error::Symlink { path }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Without it the Maildir still reads (an absent directory
                // lists as empty); a later rename into it reports the error.
                let _ = fs::DirBuilder::new().mode(0o700).create(&path);
            }
            Err(source) => return Err(Error::Read { path, source }),
        }
    }
    Ok(())
}

fn scan(dir: &Path, max_messages: usize) -> Result<Scan, Error> {
    let mut scan = Scan::default();
    // Strays are cheap to skip but still bounded.
    let max_entries = max_messages.saturating_mul(2).saturating_add(1000);
    let mut entries = 0usize;
    for (sub, in_new) in [("new", true), ("cur", false)] {
        let path = dir.join(sub);
        let read_error = |source| Error::Read { path: path.clone(), source };
        let listing = match fs::read_dir(&path) {
            Ok(l) => l,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => continue,
            Err(e) => return Err(read_error(e)),
        };
        for item in listing {
            let item = item.map_err(read_error)?;
            entries += 1;
            if entries > max_entries || scan.found.len() > max_messages {
                return Err(Error::TooMany { path: dir.to_owned(), limit: max_messages });
            }
            let os_name = item.file_name();
            let skip = |scan: &mut Scan, reason| {
                scan.skipped.push(Skipped { path: item.path(), reason });
            };
            let Some(name) = os_name.to_str() else {
                skip(&mut scan, "file name is not UTF-8");
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let file_type = match item.file_type() {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(read_error(e)),
            };
            if file_type.is_dir() {
                continue;
            }
            if file_type.is_symlink() {
                skip(&mut scan, "symbolic link (not followed)");
                continue;
            }
            if !file_type.is_file() {
                skip(&mut scan, "not a regular file");
                continue;
            }
            if !is_message_name(name) {
                skip(&mut scan, "not a Maildir message name");
                continue;
            }
            let key = key_of(name);
            match scan.found.get(key) {
                None => {
                    scan.found.insert(key.to_owned(), (in_new, name.to_owned()));
                }
                Some((was_new, was_name)) => {
                    // Seen twice: moved or renamed while we listed, or two
                    // files with one unique name. The one still there wins.
                    let earlier = dir.join(if *was_new { "new" } else { "cur" }).join(was_name);
                    if fs::symlink_metadata(&earlier).is_ok() {
                        skip(&mut scan, "same unique name as another message");
                    } else {
                        scan.found.insert(key.to_owned(), (in_new, name.to_owned()));
                    }
                }
            }
        }
    }
    if scan.found.len() > max_messages {
        return Err(Error::TooMany { path: dir.to_owned(), limit: max_messages });
    }
    Ok(scan)
}

/// The mtimes of `new/` and `cur/` now, with the time just before they
/// were read; `None` when either cannot be read.
fn dir_mtimes(dir: &Path) -> Option<(uidlist::DirStamps, SystemTime)> {
    let taken = SystemTime::now();
    let m = |sub: &str| {
        let meta = fs::symlink_metadata(dir.join(sub)).ok().filter(fs::Metadata::is_dir)?;
        Some((meta.mtime(), u32::try_from(meta.mtime_nsec()).ok()?))
    };
    Some((uidlist::DirStamps { new: m("new")?, cur: m("cur")? }, taken))
}

/// The stamps if both lay at least [`SETTLED`] before the time they were
/// read.
fn settled((stamps, taken): (uidlist::DirStamps, SystemTime)) -> Option<uidlist::DirStamps> {
    let limit = taken.duration_since(UNIX_EPOCH).ok()?.checked_sub(SETTLED)?;
    let limit = (i64::try_from(limit.as_secs()).ok()?, limit.subsec_nanos());
    (stamps.new <= limit && stamps.cur <= limit).then_some(stamps)
}

/// The index with the listing's names, if the listing holds exactly the
/// index's messages (no new UID, none gone): no update is needed.
fn unchanged(index: &Index, scan: &Scan) -> Option<Index> {
    if index.records.len() != scan.found.len() {
        return None;
    }
    let mut out = index.clone();
    for r in &mut out.records {
        let (in_new, name) = scan.found.get(key_of(&r.file_name))?;
        // A flag change by rename (pop3d, another server) needs a modseq.
        if flags_of(name) != flags_of(&r.file_name) {
            return None;
        }
        r.in_new = *in_new;
        r.file_name.clone_from(name);
    }
    Some(out)
}

/// The index after the listing: records of files gone dropped, names
/// updated, new files given UIDs (the imported ones where known, else from
/// `uid_next` up, in order of arrival). `None` when the UIDs would run out.
fn merge(
    dir: &Path,
    base: &Index,
    scan: &Scan,
    imported: Option<&HashMap<String, u32>>,
    skipped: &mut Vec<Skipped>,
) -> Option<Index> {
    let mut records = Vec::with_capacity(scan.found.len());
    let mut known = HashSet::new();
    let mut out = Index { records: Vec::new(), ..base.clone() };
    let mut went = Vec::new();
    for r in &base.records {
        let key = key_of(&r.file_name);
        if let Some((in_new, name)) = scan.found.get(key) {
            known.insert(key);
            let modseq =
                if flags_of(name) == flags_of(&r.file_name) { r.modseq } else { out.bump_modseq() };
            records.push(Record { in_new: *in_new, file_name: name.clone(), modseq, ..r.clone() });
        } else {
            went.push(r.uid);
        }
    }
    if !went.is_empty() {
        out.log_expunge(went);
    }
    let mut arrivals = Vec::new();
    for (key, (in_new, name)) in &scan.found {
        if known.contains(key.as_str()) {
            continue;
        }
        let path = dir.join(if *in_new { "new" } else { "cur" }).join(name);
        // A file that went away since the listing is simply not there;
        // one we cannot read is tried again next time.
        match measure(&path, key) {
            Ok((size, date, micros)) => {
                // Seconds and microseconds from one source: a name's
                // second can be the one before its file's mtime.
                let order = name_time(key).unwrap_or((date, micros));
                arrivals.push((order, key.as_str(), *in_new, name.clone(), size, date));
            }
            Err(Error::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                let reason = match e {
                    Error::Symlink { .. } => "symbolic link (not followed)",
                    Error::Unsafe { .. } => "not a regular file",
                    _ => "cannot be read",
                };
                skipped.push(Skipped { path, reason });
            }
        }
    }
    arrivals.sort();
    let mut uid_next = out.uid_next;
    let used: HashSet<u32> = records.iter().map(|r| r.uid).collect();
    for (_, key, in_new, name, size, date) in arrivals {
        let uid = match imported.and_then(|m| m.get(key)) {
            Some(&uid) if !used.contains(&uid) && uid < base.uid_next => uid,
            _ => {
                let uid = uid_next;
                uid_next = uid_next.checked_add(1).filter(|&n| n < u32::MAX)?;
                uid
            }
        };
        let modseq = out.bump_modseq();
        records.push(Record { uid, size, internal_date: date, modseq, in_new, file_name: name });
    }
    records.sort_by_key(|r| r.uid);
    Some(Index { uid_next, records, ..out })
}

/// A new index's UIDVALIDITY: the time, as Dovecot does, and always above
/// `old`, the highest value the index it replaces may have had.
fn fresh(old: Option<u32>) -> Index {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs());
    let mut validity = u32::try_from(now).unwrap_or(u32::MAX).max(1);
    if let Some(old) = old
        && validity <= old
    {
        validity = old.checked_add(1).unwrap_or(1);
    }
    Index::new(validity)
}

/// Size, internal date and the microseconds of the mtime (which orders
/// arrivals within one second where the name does not).
fn measure(path: &Path, key: &str) -> Result<(u64, i64, i64), Error> {
    let file = open_regular(path)?;
    let meta = file.metadata().map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let size = match name_field(key, "W=") {
        Some(w) => w,
        None => crlf::crlf_size(&file)
            .map_err(|source| Error::Read { path: path.to_owned(), source })?,
    };
    Ok((size, meta.mtime(), meta.mtime_nsec() / 1000))
}

/// The delivery time in a name of the recommended form
/// `secs.M{usec}P{pid}...` (ours, Dovecot's), as (seconds, microseconds):
/// a string sort would put `M105400` before `M65634`.
fn name_time(key: &str) -> Option<(i64, i64)> {
    let (secs, rest) = key.split_once('.')?;
    let rest = rest.strip_prefix('M')?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let digits = &rest[..end];
    if secs.is_empty() || secs.len() > 12 || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.is_empty() || digits.len() > 6 {
        return None;
    }
    Some((secs.parse().ok()?, digits.parse().ok()?))
}

/// The number after `,W=` (or another `,X=` field) in a unique name.
fn name_field(key: &str, field: &str) -> Option<u64> {
    key.split(',').skip(1).find_map(|f| f.strip_prefix(field)).and_then(|digits| {
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            digits.parse().ok()
        }
    })
}

pub(crate) fn flags_of(file_name: &str) -> Flags {
    Flags::from_maildir(crate::parse_file_name(file_name).flags)
}

pub(crate) fn open_regular(path: &Path) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                Error::Symlink { path: path.to_owned() }
            } else {
                Error::Read { path: path.to_owned(), source }
            }
        })?;
    let meta = file.metadata().map_err(|source| Error::Read { path: path.to_owned(), source })?;
    if !meta.is_file() {
        return Err(Error::Unsafe { path: path.to_owned(), reason: "not a regular file" });
    }
    Ok(file)
}

fn open_lock_file(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                Error::Symlink { path: path.to_owned() }
            } else {
                Error::Lock { path: path.to_owned(), source }
            }
        })
}

/// Where the message with unique name `key` is now, looked up by listing
/// `cur/` and then `new/`.
pub(crate) fn locate(dir: &Path, key: &str) -> Result<Option<(bool, String)>, Error> {
    for (sub, in_new) in [("cur", false), ("new", true)] {
        let path = dir.join(sub);
        let listing = match fs::read_dir(&path) {
            Ok(l) => l,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => continue,
            Err(source) => return Err(Error::Read { path, source }),
        };
        for item in listing {
            let item = item.map_err(|source| Error::Read { path: path.clone(), source })?;
            if let Some(name) = item.file_name().to_str()
                && is_message_name(name)
                && key_of(name) == key
            {
                return Ok(Some((in_new, name.to_owned())));
            }
        }
    }
    Ok(None)
}

/// `rename` that never replaces an existing name (`RENAME_NOREPLACE`,
/// plain `rename` where the file system lacks it).
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> Result<(), Errno> {
    use nix::fcntl::{RenameFlags, renameat2};
    match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(Errno::EEXIST);
            }
            fs::rename(from, to).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
        }
        other => other,
    }
}

/// What the index file held.
pub(crate) enum Loaded {
    Present(Index),
    Missing,
    /// `floor`: what its UIDVALIDITY may have been at most (its `V`
    /// field if readable, else the time it was last written, since
    /// UIDVALIDITY values are times of the past).
    Damaged {
        reason: String,
        floor: u32,
    },
}

/// If an index was ever written here (the lock file holds the mark of
/// [`mark_index_written`]), the highest UIDVALIDITY it may have had.
fn index_was_written(lock: &Flock<File>) -> Option<u32> {
    use std::io::Read;
    let meta = lock.metadata().ok()?;
    if meta.len() == 0 {
        return None;
    }
    let mut text = Vec::new();
    let mut file: &File = lock;
    let read = io::Seek::rewind(&mut file).and_then(|()| file.take(64).read_to_end(&mut text));
    let marked = read.ok().and_then(|_| header_validity(&text));
    // Unreadable: UIDVALIDITY values are past times, and the file was
    // changed after the index was written.
    Some(marked.unwrap_or_else(|| time_floor(meta.mtime().max(meta.ctime()))))
}

/// Records in the lock file that an index with this UIDVALIDITY exists, so
/// that a missing index is known to be lost (no foreign uidlist is
/// imported over it) and its replacement gets a higher UIDVALIDITY.
fn mark_index_written(lock: &mut Flock<File>, uid_validity: u32) {
    use std::io::{Seek, Write};
    // Fixed width, so that overwriting needs no truncation. Failing leaves
    // the mark as it was: a lost index is then taken for a first open.
    let mark = format!("index V{uid_validity:010}\n");
    let _ = lock.rewind().and_then(|()| lock.write_all(mark.as_bytes()));
}

/// A file time (seconds) as a UIDVALIDITY bound.
fn time_floor(secs: i64) -> u32 {
    u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
}

pub(crate) fn read_index(dir: &Path) -> Result<Loaded, Error> {
    use stdx::fs::BoundedReadError;
    let path = dir.join(INDEX_FILE);
    let written = || {
        let mtime = fs::symlink_metadata(&path).map_or(0, |m| m.mtime());
        time_floor(mtime)
    };
    let damaged = |reason: &str| Loaded::Damaged { reason: reason.to_owned(), floor: written() };
    match stdx::fs::read_regular_bounded(&path, MAX_INDEX_BYTES) {
        Ok((bytes, _)) => Ok(match uidlist::parse_index(&bytes) {
            Ok(index) => Loaded::Present(index),
            Err(reason) => {
                let floor = header_validity(&bytes).unwrap_or(0).max(written());
                Loaded::Damaged { reason, floor }
            }
        }),
        Err(BoundedReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(Loaded::Missing),
        Err(BoundedReadError::Io(e)) if e.raw_os_error() == Some(libc::ELOOP) => {
            Ok(damaged("it is a symbolic link"))
        }
        Err(BoundedReadError::Io(e)) if e.kind() == io::ErrorKind::InvalidInput => {
            Ok(damaged("not a regular file"))
        }
        Err(BoundedReadError::TooLarge(n)) => Ok(damaged(&format!("{n} bytes is too large"))),
        Err(BoundedReadError::Io(source)) => Err(Error::Read { path, source }),
    }
}

/// The `V` field of a damaged index's first line, if it can be read, so
/// that the rebuilt index gets a higher UIDVALIDITY.
fn header_validity(bytes: &[u8]) -> Option<u32> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.split(' ').find_map(|w| w.strip_prefix('V')).and_then(|v| v.parse().ok())
}

pub(crate) fn write_index(dir: &Path, index: &Index) -> Result<(), Error> {
    let path = dir.join(INDEX_FILE);
    stdx::fs::atomic_write(&path, &uidlist::render_index(index), 0o600)
        .map_err(|source| Error::Write { path, source })
}

/// The UIDs of `dovecot-uidlist`, else of `courierimapuiddb`, if one can be
/// read (a symlink or anything else odd is not).
fn import(dir: &Path) -> Option<uidlist::Imported> {
    ["dovecot-uidlist", "courierimapuiddb"].iter().find_map(|name| {
        let (bytes, _) = stdx::fs::read_regular_bounded(&dir.join(name), MAX_INDEX_BYTES).ok()?;
        uidlist::parse_foreign_uidlist(&bytes)
    })
}

/// The folder's keyword table; none when the file is missing or odd (a
/// symlink, too large).
pub(crate) fn read_keywords(dir: &Path) -> Keywords {
    match stdx::fs::read_regular_bounded(&dir.join(KEYWORDS_FILE), MAX_KEYWORDS_BYTES) {
        Ok((bytes, _)) => Keywords::parse(&bytes),
        Err(_) => Keywords::default(),
    }
}

#[path = "mailbox_imap.rs"]
mod imap;
pub use imap::{FlagOp, Stored, StoredFlags};

#[cfg(test)]
#[path = "mailbox_tests.rs"]
mod tests;
