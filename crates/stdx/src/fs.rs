//! Durable file operations: the write-fsync-rename-fsync sequence that every
//! "250 Ok" and every config edit rests on, files that get their name only
//! once complete ([`create_unnamed`], [`link_unnamed`]), and directory
//! fsyncs shared by the threads that wait for them ([`DirSync`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Why [`read_regular_bounded`] failed.
#[derive(Debug)]
pub enum BoundedReadError {
    /// Opening, a `stat` or the read failed, or the path is not a
    /// regular file (`InvalidInput`) or is a symlink (`ELOOP`).
    Io(io::Error),
    /// The file is (or grew, while being read, to) more than the limit;
    /// the size seen.
    TooLarge(u64),
}

/// Reads a file an operator or user controls (tables, aliases): opened
/// without following a symlink in its last component and without
/// blocking on a FIFO, refused unless it is a regular file, and never
/// more than `max` bytes, even if it grows meanwhile. Returns the
/// contents and the metadata of the file read (for [`crate::stamp`]).
pub fn read_regular_bounded(
    path: &Path,
    max: u64,
) -> Result<(Vec<u8>, fs::Metadata), BoundedReadError> {
    use std::io::Read;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(BoundedReadError::Io)?;
    let meta = file.metadata().map_err(BoundedReadError::Io)?;
    if !meta.is_file() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
        return Err(BoundedReadError::Io(e));
    }
    if meta.len() > max {
        return Err(BoundedReadError::TooLarge(meta.len()));
    }
    let mut text = Vec::new();
    Read::by_ref(&mut file)
        .take(max.saturating_add(1))
        .read_to_end(&mut text)
        .map_err(BoundedReadError::Io)?;
    if text.len() as u64 > max {
        return Err(BoundedReadError::TooLarge(text.len() as u64));
    }
    Ok((text, meta))
}

/// Flushes a directory's entries (new names, renames) to stable storage.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `path` exclusively (never following a symlink) with `mode`.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Creates a file without a name in `dir` (`O_TMPFILE`), open for
/// reading and writing with `mode`. It has an inode at once, and it
/// vanishes with its last descriptor: a writer that dies or gives up
/// leaves nothing to clean up. [`link_unnamed`] names it once complete.
///
/// Fails with [`is_unsupported`] errors on file systems and kernels
/// without `O_TMPFILE`; callers fall back to a named temporary file.
pub fn create_unnamed(dir: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).mode(mode).custom_flags(libc::O_TMPFILE).open(dir)
}

/// Whether `e` from [`create_unnamed`] or [`link_unnamed`] means "not
/// available here" rather than a real failure (disk full, permissions).
pub fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOSYS))
}

/// Gives a file from [`create_unnamed`] the name `to`, never replacing
/// anything there (`AlreadyExists`): `linkat` through `/proc/self/fd`,
/// which any process may do to its own descriptors, or, without `/proc`,
/// `AT_EMPTY_PATH` (which needs `CAP_DAC_READ_SEARCH`).
pub fn link_unnamed(file: &File, to: &Path) -> io::Result<()> {
    use nix::fcntl::AtFlags;
    let fd = file.as_raw_fd();
    let proc_path = PathBuf::from(format!("/proc/self/fd/{fd}"));
    match nix::unistd::linkat(None, proc_path.as_path(), None, to, AtFlags::AT_SYMLINK_FOLLOW) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ENOENT) if !Path::new("/proc/self/fd").exists() => {
            nix::unistd::linkat(Some(fd), Path::new(""), None, to, AtFlags::AT_EMPTY_PATH)
                .map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

/// One directory's fsync, shared by the threads of a process that need
/// it (group commit): a thread that has put a name into the directory
/// takes a [`DirSync::ticket`] right after, and [`DirSync::sync_after`]
/// returns once an fsync that started after the ticket has finished.
/// While one fsync runs, every thread that arrives waits for the next,
/// which one of them then runs for all: n sessions finishing together
/// cost two fsyncs, not n, and none returns before its own entry is on
/// disk. Taking the ticket at the rename rather than at the wait lets a
/// thread that still fsyncs its file's content be covered by a directory
/// fsync another thread started meanwhile.
///
/// A failed fsync fails every caller it was run for, and also those
/// waiting on any fsync up to the next success (Linux may report a
/// write-back error only once, so a later success does not prove an
/// earlier entry reached the disk).
#[derive(Debug)]
pub struct DirSync {
    dir: PathBuf,
    state: Mutex<SyncState>,
    finished: Condvar,
    /// Wakes the background thread of [`DirSync::start_after`].
    wanted: Condvar,
    background: std::sync::OnceLock<()>,
}

/// What [`DirSync::ticket`] hands out: the number of the first fsync that
/// covers the caller's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTicket(u64);

#[derive(Debug, Default)]
struct SyncState {
    /// fsyncs begun and finished, counted from 1.
    started: u64,
    completed: u64,
    running: bool,
    /// The highest fsync number a caller of [`DirSync::start_after`]
    /// needs started.
    wanted: u64,
    /// The last fsync that failed, and how.
    failed: u64,
    failure: Option<(io::ErrorKind, String)>,
    /// The directory, kept open between fsyncs.
    handle: Option<File>,
}

impl DirSync {
    /// Shares fsyncs of `dir`; nothing is opened until the first sync.
    pub fn new(dir: impl Into<PathBuf>) -> DirSync {
        DirSync {
            dir: dir.into(),
            state: Mutex::default(),
            finished: Condvar::new(),
            wanted: Condvar::new(),
            background: std::sync::OnceLock::new(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns once the directory's entries as they are now are on
    /// stable storage (see the type's documentation). Blocks.
    pub fn sync(&self) -> io::Result<()> {
        self.sync_after(self.ticket())
    }

    /// The point a caller's entry has reached: taken after the entry was
    /// made (the rename or link returned), it is covered by every fsync
    /// that starts from now on.
    pub fn ticket(&self) -> SyncTicket {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // One that is running now may have started before this caller's
        // entry was made: only the next one counts.
        SyncTicket(st.started + 1)
    }

    /// Has a thread of the `DirSync`'s own start the fsync that covers
    /// `ticket` as soon as none is running, so that the caller can fsync
    /// its file's content meanwhile and then wait in
    /// [`DirSync::sync_after`] for both at once, not one after the other.
    /// The thread is started at the first call and stays for the life of
    /// the process.
    pub fn start_after(self: &std::sync::Arc<Self>, ticket: SyncTicket) {
        self.background.get_or_init(|| {
            let this = std::sync::Arc::clone(self);
            // Without the thread, sync_after runs the fsync itself.
            let _ = std::thread::Builder::new()
                .name("dir-fsync".into())
                .spawn(move || this.background_loop());
        });
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if ticket.0 > st.wanted {
            st.wanted = ticket.0;
            self.wanted.notify_one();
        }
    }

    fn background_loop(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if st.running || st.wanted <= st.started {
                st = self.wanted.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st = self.run_one(st);
        }
    }

    /// Runs one fsync (the caller saw none running), numbered next;
    /// returns with the lock held again and every waiter woken.
    fn run_one<'a>(&'a self, mut st: MutexGuard<'a, SyncState>) -> MutexGuard<'a, SyncState> {
        st.running = true;
        st.started += 1;
        let this = st.started;
        let handle = st.handle.take();
        drop(st);
        let result = match handle {
            Some(h) => h.sync_all().map(|()| h),
            None => File::open(&self.dir).and_then(|h| h.sync_all().map(|()| h)),
        };
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.running = false;
        st.completed = this;
        match result {
            Ok(h) => st.handle = Some(h),
            Err(e) => {
                st.failed = this;
                st.failure = Some((e.kind(), format!("fsync {}: {e}", self.dir.display())));
            }
        }
        self.finished.notify_all();
        // A request that came while this one ran needs the next.
        self.wanted.notify_one();
        st
    }

    /// Returns once the directory's entries as they were when `ticket`
    /// was taken are on stable storage. Blocks.
    pub fn sync_after(&self, ticket: SyncTicket) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let needed = ticket.0;
        loop {
            if st.completed >= needed {
                return match &st.failure {
                    Some((kind, text)) if st.failed >= needed => {
                        Err(io::Error::new(*kind, text.clone()))
                    }
                    _ => Ok(()),
                };
            }
            if st.running {
                st = self.finished.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st = self.run_one(st);
        }
    }
}

/// Replaces `path` with `contents` so that a crash leaves either the old or
/// the new file, never a mix: temporary file in the same directory, fsync,
/// rename over, fsync the directory. The new file keeps `mode`.
pub fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("main.toml");
        atomic_write(&p, b"one", 0o644).unwrap();
        atomic_write(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn unnamed_file_is_invisible_until_linked_and_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let mut f = match create_unnamed(d.path(), 0o600) {
            Ok(f) => f,
            Err(e) if is_unsupported(&e) => {
                eprintln!("skipped: no O_TMPFILE on {}: {e}", d.path().display());
                return;
            }
            Err(e) => panic!("{e}"),
        };
        f.write_all(b"body").unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        fs::write(d.path().join("taken"), b"other").unwrap();
        let e = link_unnamed(&f, &d.path().join("taken")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(d.path().join("taken")).unwrap(), b"other");
        link_unnamed(&f, &d.path().join("mine")).unwrap();
        assert_eq!(fs::read(d.path().join("mine")).unwrap(), b"body");
        // Dropped without a link: nothing stays behind.
        drop(create_unnamed(d.path(), 0o600).unwrap());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn dir_sync_shares_fsyncs_and_reports_failures() {
        let d = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(DirSync::new(d.path()));
        s.sync().unwrap();
        // An fsync in flight (as another thread would have it): every
        // caller that arrives meanwhile needs the next one, and one fsync
        // serves them all.
        let before = {
            let mut st = s.state.lock().unwrap();
            st.running = true;
            st.started += 1;
            st.started
        };
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let s = std::sync::Arc::clone(&s);
                std::thread::spawn(move || s.sync())
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300));
        {
            let mut st = s.state.lock().unwrap();
            assert_eq!(st.completed, before - 1, "nobody may pass an fsync in flight");
            st.running = false;
            st.completed = before;
            s.finished.notify_all();
        }
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert_eq!(s.state.lock().unwrap().completed, before + 1, "16 callers, one fsync");
        // A directory that is gone fails its caller with the path named.
        let gone = DirSync::new(d.path().join("none"));
        let e = gone.sync().unwrap_err();
        assert!(e.to_string().contains("none"), "{e}");
    }

    #[test]
    fn a_ticket_is_covered_by_an_fsync_started_after_it() {
        let d = tempfile::tempdir().unwrap();
        let s = DirSync::new(d.path());
        s.sync().unwrap();
        let done = s.state.lock().unwrap().completed;
        // Taken at the rename; another thread's fsync starts and finishes
        // while this one is still busy with its file's content.
        let early = s.ticket();
        s.sync().unwrap();
        assert_eq!(s.state.lock().unwrap().completed, done + 1);
        s.sync_after(early).unwrap();
        assert_eq!(s.state.lock().unwrap().completed, done + 1, "covered: no fsync of its own");
        // One in flight when the ticket is taken may predate the entry.
        s.state.lock().unwrap().running = true;
        s.state.lock().unwrap().started += 1;
        let during = s.ticket();
        {
            let mut st = s.state.lock().unwrap();
            st.running = false;
            st.completed = st.started;
        }
        s.sync_after(during).unwrap();
        let st = s.state.lock().unwrap();
        assert_eq!(st.completed, done + 3, "the fsync in flight does not count; one more ran");
    }

    #[test]
    fn start_after_runs_the_fsync_on_its_own_thread() {
        let d = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(DirSync::new(d.path()));
        let t = s.ticket();
        s.start_after(t);
        // Without any caller waiting, the background thread covers it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while s.state.lock().unwrap().completed < 1 {
            assert!(std::time::Instant::now() < deadline, "no background fsync");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        s.sync_after(t).unwrap();
        assert_eq!(s.state.lock().unwrap().completed, 1, "the caller ran no fsync of its own");
        // Many requests in a row while one runs: at most one more each
        // time one finishes, and every ticket is covered.
        let tickets: Vec<_> = (0..50)
            .map(|_| {
                let t = s.ticket();
                s.start_after(t);
                t
            })
            .collect();
        for t in tickets {
            s.sync_after(t).unwrap();
        }
        assert!(s.state.lock().unwrap().completed <= 51);
        // A failure reaches the caller whose ticket it covered.
        let gone = std::sync::Arc::new(DirSync::new(d.path().join("none")));
        let t = gone.ticket();
        gone.start_after(t);
        assert!(gone.sync_after(t).unwrap_err().to_string().contains("none"));
    }

    #[test]
    fn create_new_refuses_existing_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        create_new(&p, 0o600).unwrap();
        assert!(create_new(&p, 0o600).is_err());
        let l = d.path().join("l");
        std::os::unix::fs::symlink(d.path().join("nowhere"), &l).unwrap();
        assert!(create_new(&l, 0o600).is_err());
        assert!(!d.path().join("nowhere").exists());
    }
}
