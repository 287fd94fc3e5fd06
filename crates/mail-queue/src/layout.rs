//! Queue directories and the operations that move files between them.

use crate::Error;
use crate::format::{self, Envelope, QueueFile};
use mail_types::QueueId;
use std::fs;
use std::io::{ErrorKind, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use stdx::fs::DirSync;

/// A queue state: one directory under `queue_directory` (Postfix
/// `mail_queue.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Written by `sendmail`, read by pickup. Untrusted content.
    Maildrop,
    /// Complete, new messages, not yet seen by qmgr.
    Incoming,
    /// Messages qmgr is delivering.
    Active,
    /// Messages waiting for a retry.
    Deferred,
    /// Messages held by the operator (`postsuper -h`).
    Hold,
    /// Files that could not be read; kept for the operator.
    Corrupt,
}

impl State {
    /// Every state, in the order `postqueue -p` lists them.
    pub const ALL: [State; 6] = [
        State::Maildrop,
        State::Incoming,
        State::Active,
        State::Deferred,
        State::Hold,
        State::Corrupt,
    ];

    /// The directory name.
    pub fn dir_name(self) -> &'static str {
        match self {
            State::Maildrop => "maildrop",
            State::Incoming => "incoming",
            State::Active => "active",
            State::Deferred => "deferred",
            State::Hold => "hold",
            State::Corrupt => "corrupt",
        }
    }
}

/// Where files are written before they are complete.
pub(crate) const TMP: &str = "tmp";
/// Finished queue files kept for reuse (see [`Queue::retire`]).
pub(crate) const FREE: &str = "free";
/// Most files kept in `free/`, and the largest one kept: at most 32 MiB
/// of disk held for reuse.
const POOL_MAX_FILES: usize = 512;
const POOL_MAX_SIZE: u64 = 64 * 1024;
/// How often a process re-reads `free/` when it found it empty, and
/// recounts it when adding to it.
const POOL_LOOK_EVERY: Duration = Duration::from_millis(20);
const POOL_COUNT_EVERY: Duration = Duration::from_secs(10);
/// How many times [`Queue::move_from_any`] and [`Queue::delete_from_any`]
/// look through the states for a message that qmgr keeps moving.
pub const CHASE_ROUNDS: usize = 4;
/// Per-message status logs (see `status.rs`).
pub(crate) const STATUS: &str = "status";
/// Unix sockets of services other processes may use only as mail_owner.
pub const PRIVATE: &str = "private";
/// Unix sockets any local user may use (qmgr and pickup triggers).
pub const PUBLIC: &str = "public";
/// master's pid file and control socket.
pub const PID: &str = "pid";

/// A queue rooted at `queue_directory`. Clones share the fsyncs of
/// `incoming/` (group commit, [`stdx::fs::DirSync`]): every thread of a
/// process that commits through the same `Queue` (or a clone) waits for
/// one shared fsync instead of running its own.
#[derive(Debug, Clone)]
pub struct Queue {
    root: PathBuf,
    incoming_sync: Arc<DirSync>,
    pool: Arc<Mutex<Pool>>,
}

/// What this process knows of `free/`: names it may try to claim, and
/// an estimate of how many files are there.
#[derive(Debug, Default)]
struct Pool {
    names: Vec<String>,
    looked: Option<Instant>,
    count: usize,
    counted: Option<Instant>,
}

impl Queue {
    /// A queue at `root`; nothing is touched until used.
    pub fn new(root: impl Into<PathBuf>) -> Queue {
        let root = root.into();
        let incoming_sync = Arc::new(DirSync::new(root.join(State::Incoming.dir_name())));
        Queue { root, incoming_sync, pool: Arc::default() }
    }

    /// The queue directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a state.
    pub fn dir(&self, state: State) -> PathBuf {
        self.root.join(state.dir_name())
    }

    /// The path of a queue file.
    pub fn path(&self, state: State, id: &QueueId) -> PathBuf {
        self.dir(state).join(id.as_str())
    }

    /// A socket path under `private/` or `public/`.
    pub fn socket(&self, class: &str, name: &str) -> PathBuf {
        self.root.join(class).join(name)
    }

    /// Creates every queue directory that is missing. `maildrop/` is
    /// writable by all and sticky (a development instance's; a system
    /// install's is narrowed by [`Queue::secure_maildrop`]); the others are
    /// private to the queue owner.
    pub fn create_layout(&self) -> Result<(), Error> {
        let mut dirs: Vec<(String, u32)> =
            State::ALL.iter().map(|s| (s.dir_name().to_owned(), 0o700)).collect();
        dirs.extend([
            (TMP.into(), 0o700),
            (FREE.into(), 0o700),
            (STATUS.into(), 0o700),
            (PRIVATE.into(), 0o700),
            (PUBLIC.into(), 0o711),
            (PID.into(), 0o755),
        ]);
        for (name, mode) in dirs {
            let mode = if name == "maildrop" { 0o1733 } else { mode };
            let path = self.root.join(&name);
            if path.is_dir() {
                // Never loosen an existing one: a system install's
                // maildrop/ is 1730 (secure_maildrop), and qmgr runs this
                // too, as maildrop/'s owner.
                continue;
            }
            match fs::DirBuilder::new().recursive(true).mode(mode).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::Io { path, source: e }),
            }
            if name == "maildrop" {
                use std::os::unix::fs::PermissionsExt;
                // umask trims the mode given to mkdir; set it explicitly.
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode));
            }
        }
        Ok(())
    }

    /// Makes `maildrop/` a system install's: owner `uid` (mail_owner),
    /// group `gid` (setgid_group), mode 1730, so only that group's setgid
    /// `postdrop` may drop files there and no other user may list it or
    /// open a file in it (see `maildrop`'s permissions).
    pub fn secure_maildrop(&self, uid: u32, gid: u32) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir(State::Maildrop);
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(Error::io(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o1730)).map_err(Error::io(path))
    }

    /// Gives the directories the daemons write to `owner` (uid, gid):
    /// master runs as root in a system install and creates the layout, but
    /// smtpd, pickup and qmgr run as mail_owner. `pid/` stays root's.
    pub fn chown_layout(&self, owner: (u32, u32)) -> Result<(), Error> {
        let mut names: Vec<&str> = State::ALL.iter().map(|s| s.dir_name()).collect();
        names.extend([TMP, FREE, STATUS, PRIVATE, PUBLIC]);
        for name in names {
            let path = self.root.join(name);
            std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1))
                .map_err(Error::io(path))?;
        }
        Ok(())
    }

    /// Reserves a new queue id by creating its temporary file. The id is
    /// known before the content is written, so cleanup can put it in the
    /// `Received:` header.
    ///
    /// A finished file from `free/` is taken first when there is one
    /// ([`Queue::retire`]): it is overwritten and cut to its new length,
    /// so the file system allocates and frees no inode for the message.
    /// The file's inode becomes part of the id ([`QueueId::for_inode`]):
    /// no other live queue file can have it. The file is created without
    /// a name (`O_TMPFILE` in `tmp/`), so a writer that dies leaves
    /// nothing behind, and gets its only name in `incoming/` at commit;
    /// where `O_TMPFILE` is missing it is `tmp/ID` until then. Whether the
    /// id is in use anyway (a file copied in by hand, a status log left
    /// behind, a clock set back) is checked at commit, where it counts.
    pub fn reserve(&self) -> Result<Pending, Error> {
        if let Some(p) = self.reserve_recycled() {
            return Ok(p);
        }
        let tmp_dir = self.root.join(TMP);
        // Once O_TMPFILE has failed as unsupported, the rest go named.
        if !NO_TMPFILE.load(Ordering::Relaxed) {
            match stdx::fs::create_unnamed(&tmp_dir, 0o600) {
                Ok(file) => {
                    let ino = file.metadata().map_err(Error::io(&tmp_dir))?.ino();
                    let id = QueueId::for_inode(ino);
                    let path = tmp_dir.join(id.as_str());
                    return Ok(Pending {
                        queue: self.clone(),
                        id,
                        path,
                        file: Some(file),
                        named: false,
                        recycled: false,
                    });
                }
                Err(e) if stdx::fs::is_unsupported(&e) => NO_TMPFILE.store(true, Ordering::Relaxed),
                Err(e) => return Err(Error::Io { path: tmp_dir, source: e }),
            }
        }
        self.reserve_named()
    }

    /// Takes a file from `free/` by renaming it into `tmp/` (as
    /// `OLDID.reuse`: no live message has the old id), so that of several
    /// processes trying the same one exactly one gets it. `None` when
    /// there is none to take, or on any doubt about it (then the caller
    /// creates a new file): a file that is not a plain file of this
    /// process's user with one link is removed, never written.
    fn reserve_recycled(&self) -> Option<Pending> {
        let tmp_dir = self.root.join(TMP);
        let free = self.root.join(FREE);
        for _ in 0..8 {
            let name = self.pool_next()?;
            // Not a queue id: an abandoned one must not look like the
            // old message's file.
            let path = tmp_dir.join(format!("{name}.reuse"));
            match rename_noreplace(&free.join(&name), &path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(_) => return None,
            }
            use std::os::unix::fs::OpenOptionsExt;
            let opened = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
                .and_then(|f| f.metadata().map(|m| (f, m)));
            let Ok((file, meta)) = opened else {
                let _ = fs::remove_file(&path);
                continue;
            };
            let mine = meta.is_file()
                && meta.nlink() == 1
                && meta.uid() == nix::unistd::geteuid().as_raw()
                && meta.mode() & 0o077 == 0;
            // A fresh mtime, or qmgr's clean_tmp could take the file
            // for abandoned before its first write.
            if !mine || file.set_modified(std::time::SystemTime::now()).is_err() {
                let _ = fs::remove_file(&path);
                continue;
            }
            let id = QueueId::for_inode(meta.ino());
            return Some(Pending {
                queue: self.clone(),
                id,
                path,
                file: Some(file),
                named: true,
                recycled: true,
            });
        }
        None
    }

    /// The next name in `free/` to try, re-reading the directory when the
    /// ones known are used up (at most every [`POOL_LOOK_EVERY`] while it
    /// is empty). Each process starts at a different place in the list,
    /// so two smtpd processes seldom race for the same file.
    fn pool_next(&self) -> Option<String> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.names.is_empty() {
            if pool.looked.is_some_and(|t| t.elapsed() < POOL_LOOK_EVERY) {
                return None;
            }
            pool.looked = Some(Instant::now());
            let mut names: Vec<String> = fs::read_dir(self.root.join(FREE))
                .ok()?
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| QueueId::parse(n).is_ok())
                .take(POOL_MAX_FILES)
                .collect();
            if !names.is_empty() {
                let k = std::process::id() as usize % names.len();
                names.rotate_left(k);
            }
            pool.names = names;
        }
        pool.names.pop()
    }

    /// Ends a delivered message like [`Queue::remove`], but keeps a small
    /// file for reuse by the next message ([`Queue::reserve`]) instead of
    /// deleting it: in `free/`, at most [`POOL_MAX_FILES`] of at most
    /// [`POOL_MAX_SIZE`] bytes. Creating and deleting an inode per
    /// message is most of the kernel's work for a small message (on ext4
    /// without a journal, every new inode is searched for past the ones
    /// freed in the last minutes). Only qmgr calls this, for files it has
    /// finished; what it keeps is never read again, only overwritten.
    pub fn retire(&self, id: &QueueId, state: State) -> Result<(), Error> {
        let path = self.path(state, id);
        let small =
            fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() <= POOL_MAX_SIZE);
        if small && self.pool_has_room() {
            // Failing that (no free/ in an older layout, a name taken),
            // the file is deleted as before.
            if rename_noreplace(&path, &self.root.join(FREE).join(id.as_str())).is_ok() {
                return self.remove_status(id);
            }
        }
        self.remove(id, state)
    }

    /// Whether `free/` may take one more file (counted again every
    /// [`POOL_COUNT_EVERY`], or [`POOL_LOOK_EVERY`] while it seems full;
    /// in between, every file added counts).
    fn pool_has_room(&self) -> bool {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        // Others take files without telling: an estimate at the cap is
        // checked again soon, one below it now and then.
        let every = if pool.count >= POOL_MAX_FILES { POOL_LOOK_EVERY } else { POOL_COUNT_EVERY };
        if pool.counted.is_none_or(|t| t.elapsed() >= every) {
            pool.counted = Some(Instant::now());
            pool.count = fs::read_dir(self.root.join(FREE)).map_or(POOL_MAX_FILES, |d| d.count());
        }
        if pool.count >= POOL_MAX_FILES {
            return false;
        }
        pool.count += 1;
        true
    }

    /// [`Queue::reserve`] for file systems without `O_TMPFILE`: a scratch
    /// name, then the inode's id as the name in `tmp/`.
    pub(crate) fn reserve_named(&self) -> Result<Pending, Error> {
        let tmp_dir = self.root.join(TMP);
        let (scratch, file) = loop_create_new(&tmp_dir)?;
        let ino = match file.metadata() {
            Ok(m) => m.ino(),
            Err(e) => {
                let _ = fs::remove_file(&scratch);
                return Err(Error::Io { path: scratch, source: e });
            }
        };
        for _ in 0..1000 {
            let id = QueueId::for_inode(ino);
            let path = tmp_dir.join(id.as_str());
            match rename_noreplace(&scratch, &path) {
                Ok(()) => {
                    return Ok(Pending {
                        queue: self.clone(),
                        id,
                        path,
                        file: Some(file),
                        named: true,
                        recycled: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    let _ = fs::remove_file(&scratch);
                    return Err(Error::Io { path, source: e });
                }
            }
        }
        let _ = fs::remove_file(&scratch);
        Err(Error::Io {
            path: tmp_dir,
            source: std::io::Error::other("cannot find a free queue id"),
        })
    }

    /// Whether a file named `id` exists in any state a queue file can
    /// be in, or a status log of that name: such an id must not be
    /// given to a new message, which would replace the file or inherit
    /// the log's results.
    fn id_in_use(&self, id: &QueueId) -> bool {
        [State::Incoming, State::Active, State::Deferred, State::Hold, State::Corrupt]
            .into_iter()
            .map(|s| self.path(s, id))
            .chain([self.status_path(id)])
            .any(|p| !matches!(fs::symlink_metadata(&p), Err(e) if e.kind() == ErrorKind::NotFound))
    }

    /// Lists the queue ids in a state, oldest first. Names that are not
    /// queue ids (editor droppings, dot files) are skipped.
    pub fn scan(&self, state: State) -> Result<Vec<QueueId>, Error> {
        let dir = self.dir(state);
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let entry = entry.map_err(Error::io(&dir))?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| QueueId::parse(n).ok()) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Finds which state a queue id is in.
    pub fn locate(&self, id: &QueueId) -> Option<State> {
        State::ALL.into_iter().find(|s| self.path(*s, id).exists())
    }

    /// Moves a message that is in one of `from` to `to`, wherever it is
    /// now: qmgr moves files between incoming/, active/ and deferred/
    /// while an operator tool acts, so a rename that finds no file looks
    /// in the other states again, [`CHASE_ROUNDS`] times at most.
    /// Returns the state it was taken from, or `None` when it is in none
    /// of them (delivered meanwhile, or never there). Like
    /// [`Queue::move_to`] it never replaces a file.
    pub fn move_from_any(
        &self,
        id: &QueueId,
        from: &[State],
        to: State,
    ) -> Result<Option<State>, Error> {
        self.chase(id, from, |s| {
            if s == to {
                // Already there: nothing to move, and not "found" either,
                // so `postsuper -h` does not count a held message again.
                return Err(std::io::Error::from(ErrorKind::NotFound));
            }
            rename_noreplace(&self.path(s, id), &self.path(to, id))
        })
        .map_err(|(s, e)| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::Io {
                    path: self.path(to, id),
                    source: std::io::Error::new(
                        ErrorKind::AlreadyExists,
                        format!("{} exists already; not replacing it", to.dir_name()),
                    ),
                }
            } else {
                Error::Io { path: self.path(s, id), source: e }
            }
        })
    }

    /// Deletes a message that is in one of `from`, wherever it is now
    /// (see [`Queue::move_from_any`]), then its status log. Returns the
    /// state it was deleted from, or `None` when it is in none of them.
    pub fn delete_from_any(&self, id: &QueueId, from: &[State]) -> Result<Option<State>, Error> {
        let found = self
            .chase(id, from, |s| fs::remove_file(self.path(s, id)))
            .map_err(|(s, e)| Error::Io { path: self.path(s, id), source: e })?;
        if found.is_some() {
            self.remove_status(id)?;
        }
        Ok(found)
    }

    /// Runs `act` on the message's file in each state of `from` until it
    /// succeeds; `NotFound` means "look elsewhere", any other error ends
    /// the search. Bounded: a file that keeps moving faster than we look
    /// counts as not found after [`CHASE_ROUNDS`] rounds.
    fn chase(
        &self,
        id: &QueueId,
        from: &[State],
        mut act: impl FnMut(State) -> std::io::Result<()>,
    ) -> Result<Option<State>, (State, std::io::Error)> {
        for _ in 0..CHASE_ROUNDS {
            for &s in from {
                match act(s) {
                    Ok(()) => return Ok(Some(s)),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err((s, e)),
                }
            }
            // Not in any: stop unless it may be between two of them (a
            // rename is atomic, so it is in one state at every instant,
            // but our look at each came at a different instant).
            if !from.iter().any(|s| self.path(*s, id).symlink_metadata().is_ok()) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Reads a whole queue file, checking both checksums.
    pub fn read(&self, state: State, id: &QueueId) -> Result<QueueFile, Error> {
        format::read(&self.path(state, id))
    }

    /// Reads only a file's envelope (checking it is complete and that the
    /// header and envelope checksum matches).
    pub fn read_envelope(&self, state: State, id: &QueueId) -> Result<Envelope, Error> {
        format::read_envelope(&self.path(state, id))
    }

    /// Reads a file's envelope and checks the whole file, content
    /// checksum included, without holding the content in memory: what
    /// qmgr does before it hands a message to delivery agents.
    pub fn read_envelope_verified(&self, state: State, id: &QueueId) -> Result<Envelope, Error> {
        format::read_envelope_verified(&self.path(state, id))
    }

    /// Moves a file between states. Only qmgr and postsuper do this.
    /// The rename is not fsynced: after a crash the file is in one state
    /// or the other, and both are scanned. It never replaces a file that
    /// is already there (an `AlreadyExists` error instead): that file is
    /// another message's.
    pub fn move_to(&self, id: &QueueId, from: State, to: State) -> Result<(), Error> {
        let src = self.path(from, id);
        let dst = self.path(to, id);
        rename_noreplace(&src, &dst).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::Io {
                    path: dst,
                    source: std::io::Error::new(
                        ErrorKind::AlreadyExists,
                        format!("{} exists already; not replacing it", to.dir_name()),
                    ),
                }
            } else {
                Error::Io { path: src, source: e }
            }
        })
    }

    /// Sets when a file in `deferred/` is due: its modification time.
    /// Opened like every queue file, so a link or FIFO put in its place
    /// is refused rather than followed or waited on.
    pub fn set_retry_time(&self, id: &QueueId, when: std::time::SystemTime) -> Result<(), Error> {
        let path = self.path(State::Deferred, id);
        let (f, _) = open_regular(&path)?;
        f.set_modified(when).map_err(Error::io(path))
    }

    /// Moves an unreadable file to `corrupt/` (never deletes it), with its
    /// status log left in place for the operator. If `corrupt/ID` exists
    /// already, the file becomes `corrupt/ID.1` (`.2`, ...): neither is
    /// replaced. Returns where the file went.
    pub fn quarantine(&self, id: &QueueId, from: State) -> Result<PathBuf, Error> {
        let src = self.path(from, id);
        let dir = self.dir(State::Corrupt);
        for n in 0..1000u32 {
            let name = if n == 0 { id.as_str().to_owned() } else { format!("{}.{n}", id.as_str()) };
            let dst = dir.join(name);
            match rename_noreplace(&src, &dst) {
                Ok(()) => return Ok(dst),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::Io { path: src, source: e }),
            }
        }
        Err(Error::Io { path: src, source: std::io::Error::other("no free name in corrupt/") })
    }

    /// Removes a message that is finished: its queue file, then its status
    /// log (so a crash in between leaves a log without a file, which the
    /// next recovery removes, never a file without its log).
    pub fn remove(&self, id: &QueueId, state: State) -> Result<(), Error> {
        let path = self.path(state, id);
        fs::remove_file(&path).map_err(Error::io(path))?;
        self.remove_status(id)
    }

    fn remove_status(&self, id: &QueueId) -> Result<(), Error> {
        let log = self.status_path(id);
        match fs::remove_file(&log) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::Io { path: log, source: e }),
            _ => Ok(()),
        }
    }

    /// Deletes files in `tmp/` not modified for `older_than`: writes
    /// abandoned by a crashed writer, never acknowledged. Younger files
    /// may belong to a writer at work (smtpd keeps running while qmgr
    /// restarts), so they stay. Returns how many were removed.
    pub fn clean_tmp(&self, older_than: std::time::Duration) -> Result<usize, Error> {
        let dir = self.root.join(TMP);
        let now = std::time::SystemTime::now();
        let mut n = 0;
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let entry = entry.map_err(Error::io(&dir))?;
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= older_than));
            if stale && fs::remove_file(entry.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Set once `O_TMPFILE` has failed as unsupported in this process, so the
/// rest of its files go the named way without trying again.
static NO_TMPFILE: AtomicBool = AtomicBool::new(false);

/// Creates a scratch file in `dir` with `O_EXCL` under a name no other
/// process uses (`.` and a [`QueueId::generate`] id, which has the full
/// pid), retrying on the rare clash.
fn loop_create_new(dir: &Path) -> Result<(PathBuf, fs::File), Error> {
    for _ in 0..100 {
        let path = dir.join(format!(".{}", QueueId::generate()));
        match stdx::fs::create_new(&path, 0o600) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::Io { path, source: e }),
        }
    }
    Err(Error::Io {
        path: dir.to_owned(),
        source: std::io::Error::other("cannot create a temporary file"),
    })
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to`:
/// `renameat2(RENAME_NOREPLACE)`, or, on a file system without it,
/// `link` (which never replaces) then `unlink`.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{RenameFlags, renameat2};
        match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::hard_link(from, to)?;
    fs::remove_file(from)
}

/// Opens a queue file for reading without following a symbolic link and
/// without blocking on a FIFO or device that someone left in its place,
/// and requires a regular file: anything else is `Corrupt`, so the
/// caller quarantines it instead of hanging.
pub(crate) fn open_regular(path: &Path) -> Result<(fs::File, fs::Metadata), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let corrupt = |reason: &str| Error::Corrupt { path: path.to_owned(), reason: reason.into() };
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(corrupt("symbolic link")),
        Err(e) => return Err(Error::Io { path: path.to_owned(), source: e }),
    };
    let meta = f.metadata().map_err(Error::io(path))?;
    if !meta.is_file() {
        return Err(corrupt("not a regular file"));
    }
    Ok((f, meta))
}

/// A queue file being written. Dropping it without [`Pending::commit`]
/// removes the temporary file, so an aborted transaction (client gone in
/// the middle of DATA, disk full) leaves nothing behind.
#[derive(Debug)]
pub struct Pending {
    queue: Queue,
    id: QueueId,
    /// `tmp/ID`: the file's name if `named`, else only what errors show.
    path: PathBuf,
    file: Option<fs::File>,
    /// Whether the file has a name in `tmp/` (no `O_TMPFILE`, or taken
    /// from `free/`).
    named: bool,
    /// Taken from `free/`: old content past what is written now must be
    /// cut off before the file is published.
    recycled: bool,
}

impl Pending {
    /// The queue id this file will have.
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// Writes the file, moves it into `incoming/` and makes both durable:
    /// write, link (or rename) into `incoming/`, fsync the file, fsync
    /// `incoming/` (shared). Only after this returns may the client be
    /// told 250.
    pub fn commit(mut self, envelope: &Envelope, content: &[u8]) -> Result<QueueId, Error> {
        self.write_all(envelope, content)?;
        self.publish()
    }

    /// The open tmp file, for [`crate::spool::Spool`], which writes it in
    /// pieces; `None` once published.
    pub(crate) fn file(&mut self) -> Result<(&mut fs::File, &Path), Error> {
        match self.file.as_mut() {
            Some(f) => Ok((f, &self.path)),
            None => Err(Error::Encode("pending file already committed".into())),
        }
    }

    /// Whether the file has a name in `tmp/` that [`Queue::clean_tmp`]
    /// could take for abandoned (an unnamed one has none).
    pub(crate) fn is_named(&self) -> bool {
        self.named
    }

    /// Moves the complete tmp file into `incoming/` without replacing
    /// anything, fsyncs it, then waits for the shared fsync of the
    /// directory.
    pub(crate) fn publish(mut self) -> Result<QueueId, Error> {
        let incoming = self.queue.dir(State::Incoming);
        let dest = incoming.join(self.id.as_str());
        // A file of this name in another state, or a stale log, is not
        // ours to replace or inherit (the id's inode part rules out every
        // live queue file; hand copies and clock steps remain).
        if self.queue.id_in_use(&self.id) {
            return Err(Error::Io {
                path: dest,
                source: std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("queue id {} is in use; not replacing its files", self.id),
                ),
            });
        }
        let Some(file) = self.file.as_ref() else {
            return Err(Error::Encode("pending file already committed".into()));
        };
        if self.named {
            rename_noreplace(&self.path, &dest)
        } else {
            stdx::fs::link_unnamed(file, &dest)
        }
        .map_err(Error::io(&dest))?;
        let ticket = self.queue.incoming_sync.ticket();
        // From here the file is in incoming/; Drop must not remove it.
        let file = self.file.take();
        self.path = dest;
        // Named first, synced second: one fsync then writes the content,
        // the inode and its new directory entry in one journal commit
        // (synced first, the link would need a second commit). The file
        // is complete, so qmgr may see it already; what it may not yet
        // be is durable, and the caller says 250 only after this returns.
        // The directory's fsync runs beside the file's (on the DirSync's
        // thread), so a lone session waits for one fsync's time, not two;
        // one that another session started after the link covers the new
        // name too.
        self.queue.incoming_sync.start_after(ticket);
        if let Some(f) = file {
            f.sync_all().map_err(Error::io(&self.path))?;
        }
        self.queue.incoming_sync.sync_after(ticket).map_err(Error::io(&incoming))?;
        Ok(self.id.clone())
    }

    fn write_all(&mut self, envelope: &Envelope, content: &[u8]) -> Result<(), Error> {
        let bytes = format::encode(envelope, content)?;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Encode("pending file already committed".into()))?;
        file.write_all(&bytes).map_err(Error::io(&self.path))?;
        self.cut_here()
    }

    /// Ends the file at the current write position: a file taken from
    /// `free/` still holds the old message past it. Writers call this
    /// once the last byte is written, before they seek back to patch.
    pub(crate) fn cut_here(&mut self) -> Result<(), Error> {
        if !self.recycled {
            return Ok(());
        }
        let (file, path) = self.file()?;
        let path = path.to_owned();
        file.stream_position().and_then(|end| file.set_len(end)).map_err(Error::io(path))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // An unnamed file goes with its descriptor.
        if self.file.is_some() && self.named {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Recipient;

    fn env() -> Envelope {
        Envelope {
            sender: Some("a@b.c".parse().unwrap()),
            recipients: vec![Recipient {
                address: "d@e.f".parse().unwrap(),
                original: "d@e.f".into(),
                esmtp: Default::default(),
            }],
            arrival: 1,
            client: "local".into(),
            origin: "pickup".into(),
            attrs: vec![],
            esmtp: Default::default(),
        }
    }

    #[test]
    fn commit_lands_in_incoming_and_abort_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let p = q.reserve().unwrap();
        let id = p.commit(&env(), b"x\n").unwrap();
        assert_eq!(q.scan(State::Incoming).unwrap(), vec![id.clone()]);
        assert_eq!(q.read(State::Incoming, &id).unwrap().content, b"x\n");
        assert_eq!(fs::read_dir(d.path().join(TMP)).unwrap().count(), 0);

        let p = q.reserve().unwrap();
        drop(p);
        assert_eq!(fs::read_dir(d.path().join(TMP)).unwrap().count(), 0);
        assert_eq!(q.scan(State::Incoming).unwrap().len(), 1);
    }

    #[test]
    fn clean_tmp_spares_files_being_written() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let p = q.reserve_named().unwrap();
        assert_eq!(q.clean_tmp(std::time::Duration::from_secs(600)).unwrap(), 0);
        assert!(d.path().join(TMP).join(p.id().as_str()).exists());
        assert_eq!(q.clean_tmp(std::time::Duration::ZERO).unwrap(), 1);
        drop(p);
    }

    #[test]
    fn no_move_replaces_a_file_of_the_same_name() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = q.reserve().unwrap().commit(&env(), b"mine\n").unwrap();
        // Another message of the same name waits in active/ and deferred/.
        for s in [State::Active, State::Deferred] {
            fs::write(q.path(s, &id), b"other message").unwrap();
            let e = q.move_to(&id, State::Incoming, s).unwrap_err();
            assert!(
                matches!(&e, Error::Io { source, .. } if source.kind() == ErrorKind::AlreadyExists),
                "{e}"
            );
            assert_eq!(fs::read(q.path(s, &id)).unwrap(), b"other message");
            assert_eq!(q.read(State::Incoming, &id).unwrap().content, b"mine\n");
        }
        fs::remove_file(q.path(State::Active, &id)).unwrap();
        q.move_to(&id, State::Incoming, State::Active).unwrap();
        fs::write(q.path(State::Incoming, &id), b"third").unwrap();
        assert!(q.move_to(&id, State::Active, State::Incoming).is_err());
        assert_eq!(fs::read(q.path(State::Incoming, &id)).unwrap(), b"third");
        assert_eq!(q.read(State::Active, &id).unwrap().content, b"mine\n");
    }

    #[test]
    fn commit_never_replaces_or_inherits() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        // A file of the would-be name in incoming/.
        let p = q.reserve().unwrap();
        let id = p.id().clone();
        fs::write(q.path(State::Incoming, &id), b"live mail").unwrap();
        assert!(p.commit(&env(), b"new\n").is_err());
        assert_eq!(fs::read(q.path(State::Incoming, &id)).unwrap(), b"live mail");
        assert_eq!(fs::read_dir(d.path().join(TMP)).unwrap().count(), 0);
        // ... in active/ or deferred/ (where a plain rename into
        // incoming/ would not even notice it).
        for s in [State::Active, State::Deferred, State::Hold] {
            let p = q.reserve().unwrap();
            let id = p.id().clone();
            fs::write(q.path(s, &id), b"live mail").unwrap();
            assert!(p.commit(&env(), b"new\n").is_err());
            assert_eq!(fs::read(q.path(s, &id)).unwrap(), b"live mail");
            assert!(!q.path(State::Incoming, &id).exists());
        }
        // A stale status log: the new message would inherit its results.
        let p = q.reserve().unwrap();
        let id = p.id().clone();
        let rec = crate::StatusRecord {
            recipient: 0,
            outcome: mail_types::DeliveryStatus::sent("old"),
            time: 1,
        };
        q.append_status(&id, std::slice::from_ref(&rec)).unwrap();
        assert!(p.commit(&env(), b"new\n").is_err());
        assert!(!q.path(State::Incoming, &id).exists());
        assert_eq!(q.read_status(&id).unwrap(), vec![rec]);
        // Without any of that, ids are new and distinct.
        let a = q.reserve().unwrap().commit(&env(), b"a\n").unwrap();
        let b = q.reserve().unwrap().commit(&env(), b"b\n").unwrap();
        assert_ne!(a, b);
        assert_eq!(q.read(State::Incoming, &a).unwrap().content, b"a\n");
    }

    #[test]
    fn reserve_skips_ids_in_use() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = QueueId::for_inode(7);
        assert!(!q.id_in_use(&id));
        fs::write(q.status_path(&id), b"").unwrap();
        assert!(q.id_in_use(&id));
        fs::remove_file(q.status_path(&id)).unwrap();
        std::os::unix::fs::symlink("/nonexistent", q.path(State::Deferred, &id)).unwrap();
        assert!(q.id_in_use(&id), "a dangling link still holds the name");
    }

    #[test]
    fn retired_files_are_reused_cut_to_the_new_message() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let long = vec![b'x'; 5000];
        let id = q.reserve().unwrap().commit(&env(), &long).unwrap();
        let ino = fs::metadata(q.path(State::Incoming, &id)).unwrap().ino();
        q.move_to(&id, State::Incoming, State::Active).unwrap();
        q.append_status(&id, &[]).unwrap();
        q.retire(&id, State::Active).unwrap();
        assert!(!q.path(State::Active, &id).exists());
        assert!(!q.status_path(&id).exists(), "the log goes as with remove");
        assert!(d.path().join(FREE).join(id.as_str()).exists());
        // The next message takes that inode, under a new id, and holds
        // exactly its own bytes; the spooled kind is cut the same way. (A
        // new Queue: this one looked at free/ a moment ago, found it empty
        // and waits POOL_LOOK_EVERY before looking again.)
        let q = Queue::new(d.path());
        let p = q.reserve().unwrap();
        assert_ne!(p.id(), &id);
        let new = p.commit(&env(), b"short\n").unwrap();
        let path = q.path(State::Incoming, &new);
        assert_eq!(fs::metadata(&path).unwrap().ino(), ino);
        assert_eq!(fs::read(&path).unwrap(), format::encode(&env(), b"short\n").unwrap());
        q.retire(&new, State::Incoming).unwrap();
        let q = Queue::new(d.path());
        let mut sp = q.spool(&env()).unwrap();
        sp.write(b"tiny\n").unwrap();
        let third = sp.commit().unwrap();
        let path = q.path(State::Incoming, &third);
        assert_eq!(fs::metadata(&path).unwrap().ino(), ino);
        assert_eq!(fs::read(&path).unwrap(), format::encode(&env(), b"tiny\n").unwrap());
        assert_eq!(fs::read_dir(d.path().join(FREE)).unwrap().count(), 0);
        assert_eq!(fs::read_dir(d.path().join(TMP)).unwrap().count(), 0);
        // An abandoned one leaves nothing in tmp/.
        q.retire(&third, State::Incoming).unwrap();
        drop(Queue::new(d.path()).reserve().unwrap());
        assert_eq!(fs::read_dir(d.path().join(TMP)).unwrap().count(), 0);
    }

    #[test]
    fn big_files_and_a_full_pool_are_deleted_and_strange_files_never_used() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let free = d.path().join(FREE);
        let big = q.reserve().unwrap().commit(&env(), &vec![b'x'; 70_000]).unwrap();
        q.retire(&big, State::Incoming).unwrap();
        assert_eq!(fs::read_dir(&free).unwrap().count(), 0);
        // A link, a file others may read, and a FIFO in free/: removed
        // when met, and the message gets a new file.
        let other = d.path().join("elsewhere");
        fs::write(&other, b"not mail").unwrap();
        std::os::unix::fs::symlink(&other, free.join(QueueId::for_inode(1).as_str())).unwrap();
        let open = free.join(QueueId::for_inode(2).as_str());
        fs::write(&open, b"x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
        nix::unistd::mkfifo(
            &free.join(QueueId::for_inode(3).as_str()),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let q = Queue::new(d.path());
        let id = q.reserve().unwrap().commit(&env(), b"m\n").unwrap();
        assert_eq!(q.read(State::Incoming, &id).unwrap().content, b"m\n");
        assert_eq!(fs::read(&other).unwrap(), b"not mail");
        assert_eq!(fs::read_dir(&free).unwrap().count(), 0, "strange files are removed");
        assert_eq!(fs::read_dir(d.path().join(TMP)).unwrap().count(), 0);
        // A full pool: the file is deleted.
        let q = Queue::new(d.path());
        for n in 0..POOL_MAX_FILES as u64 {
            fs::write(free.join(QueueId::for_inode(100 + n).as_str()), b"").unwrap();
        }
        q.retire(&id, State::Incoming).unwrap();
        assert!(!q.path(State::Incoming, &id).exists());
        assert!(!free.join(id.as_str()).exists());
        assert_eq!(fs::read_dir(&free).unwrap().count(), POOL_MAX_FILES);
    }

    #[test]
    fn quarantine_keeps_an_earlier_corrupt_file() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = q.reserve().unwrap().commit(&env(), b"x\n").unwrap();
        fs::write(q.path(State::Corrupt, &id), b"earlier").unwrap();
        fs::write(q.dir(State::Corrupt).join(format!("{id}.1")), b"earlier 2").unwrap();
        let went = q.quarantine(&id, State::Incoming).unwrap();
        assert_eq!(went, q.dir(State::Corrupt).join(format!("{id}.2")));
        assert_eq!(fs::read(q.path(State::Corrupt, &id)).unwrap(), b"earlier");
        assert!(q.read(State::Corrupt, &id).is_err(), "the earlier file is still the earlier one");
        assert!(fs::read(&went).unwrap().starts_with(format::MAGIC));
    }

    #[test]
    fn rename_noreplace_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        assert_eq!(rename_noreplace(&a, &b).unwrap_err().kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"b");
        fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read(&b).unwrap(), b"a");
    }

    #[test]
    fn operator_moves_find_the_message_in_any_state_and_never_replace() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let queues = [State::Incoming, State::Active, State::Deferred];
        let id = q.reserve().unwrap().commit(&env(), b"x\n").unwrap();
        q.move_to(&id, State::Incoming, State::Deferred).unwrap();
        assert_eq!(q.move_from_any(&id, &queues, State::Hold).unwrap(), Some(State::Deferred));
        assert_eq!(q.locate(&id), Some(State::Hold));
        // Not in the states asked about: nothing happens.
        assert_eq!(q.move_from_any(&id, &queues, State::Hold).unwrap(), None);
        assert_eq!(q.move_from_any(&id, &[State::Hold], State::Hold).unwrap(), None);
        assert_eq!(q.locate(&id), Some(State::Hold));
        // Another file of that name where it would go: refused, both kept.
        fs::write(q.path(State::Deferred, &id), b"other").unwrap();
        let e = q.move_from_any(&id, &[State::Hold], State::Deferred).unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
        assert_eq!(fs::read(q.path(State::Deferred, &id)).unwrap(), b"other");
        assert!(q.path(State::Hold, &id).exists());
        fs::remove_file(q.path(State::Deferred, &id)).unwrap();
        // Delete takes the status log too.
        let rec = crate::StatusRecord {
            recipient: 0,
            outcome: mail_types::DeliveryStatus::sent("ok"),
            time: 1,
        };
        q.append_status(&id, std::slice::from_ref(&rec)).unwrap();
        assert_eq!(q.delete_from_any(&id, &queues).unwrap(), None);
        assert!(q.status_path(&id).exists(), "not deleted, so the log stays");
        assert_eq!(q.delete_from_any(&id, &[State::Hold]).unwrap(), Some(State::Hold));
        assert_eq!(q.locate(&id), None);
        assert!(!q.status_path(&id).exists());
    }

    #[test]
    fn move_quarantine_remove() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = q.reserve().unwrap().commit(&env(), b"x\n").unwrap();
        q.move_to(&id, State::Incoming, State::Active).unwrap();
        assert_eq!(q.locate(&id), Some(State::Active));
        q.quarantine(&id, State::Active).unwrap();
        assert_eq!(q.locate(&id), Some(State::Corrupt));
        q.remove(&id, State::Corrupt).unwrap();
        assert_eq!(q.locate(&id), None);
    }
}
