//! mbox delivery: append one message to a Unix mailbox file, as Postfix's
//! `local` does for `/var/mail/user` (`local/mailbox.c`, `global/mail_copy.c`).
//!
//! Locking is a `file.lock` dot-lock (for MUAs that only know dot-locks)
//! plus an fcntl write lock on the whole file (Postfix's
//! `mailbox_delivery_lock = fcntl, dotlock` on Linux). On Linux the fcntl
//! lock is an open-file-description lock (`F_OFD_SETLK`): it conflicts with
//! the classic POSIX locks other programs take and, unlike those, also with
//! other threads of this process.
//!
//! The format is mboxrd: a `From sender  asctime-date` separator line, body
//! lines matching `>*From ` get one more `>`, and a blank line ends the
//! message (<https://datatracker.ietf.org/doc/html/rfc4155> describes the
//! family).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::FcntlArg;

use crate::Error;

/// How long we wait for either lock before giving up (the delivery is then
/// deferred). Postfix tries 20 times, one second apart.
const LOCK_TIMEOUT: Duration = Duration::from_secs(20);

/// A dot-lock older than this is left over by a crashed program and removed
/// (Postfix's `stale_lock_time` is 500 s; five minutes is the common value).
const STALE_LOCK_AGE: Duration = Duration::from_secs(5 * 60);

/// Write buffer: large enough to make few system calls for a typical
/// message, small enough not to matter for memory.
const WRITE_BUFFER: usize = 64 * 1024;

/// Appends `prefix` and `content` as one message to the mbox file `path`
/// (created with mode 0600 when missing), with a `From` separator line for
/// `from_line_sender` (empty means `MAILER-DAEMON`) dated `when` in local
/// time.
///
/// The file is opened with `O_APPEND|O_NOFOLLOW`; a symbolic link, a
/// non-regular file or a file with several hard links is refused. After
/// writing, the file is fsynced. If anything fails after the first byte was
/// written, the file is truncated back to its previous length so that no
/// half message stays behind. Lock timeouts and errors are `Error::Lock`
/// (transient).
pub fn deliver_mbox(
    path: &Path,
    from_line_sender: &str,
    prefix: &[u8],
    content: &[u8],
    when: SystemTime,
) -> Result<(), Error> {
    let message = Message { sender: from_line_sender, prefix, content, when, owner: None };
    deliver_with(path, &message, LOCK_TIMEOUT, &buffered)
}

/// Like [`deliver_mbox`], for a mailbox that root writes on a user's
/// behalf (the mail spool): the file must already exist (it is never
/// created here) and belong to `owner_uid`.
///
/// Owner, file type and link count are checked with `fstat` on the
/// descriptor that is then written, not on the path: whatever is renamed
/// into the path between a caller's own checks and our `open` is what we
/// check, so a file swapped in is refused (`Error::Unsafe`), never
/// written.
pub fn deliver_mbox_owned_by(
    path: &Path,
    owner_uid: u32,
    from_line_sender: &str,
    prefix: &[u8],
    content: &[u8],
    when: SystemTime,
) -> Result<(), Error> {
    let message =
        Message { sender: from_line_sender, prefix, content, when, owner: Some(owner_uid) };
    deliver_with(path, &message, LOCK_TIMEOUT, &buffered)
}

fn buffered<'f>(file: &'f File) -> Box<dyn Write + 'f> {
    Box::new(BufWriter::with_capacity(WRITE_BUFFER, file))
}

struct Message<'a> {
    sender: &'a str,
    prefix: &'a [u8],
    content: &'a [u8],
    when: SystemTime,
    /// The uid the opened mailbox must belong to; `None` when we write as
    /// the mailbox's user ourselves (the kernel's permission check is the
    /// owner check then) and may create the file.
    owner: Option<u32>,
}

/// Builds the writer that message bytes go through; tests inject failing
/// writers here to exercise the truncate-on-error path.
type MakeWriter<'w> = dyn for<'f> Fn(&'f File) -> Box<dyn Write + 'f> + 'w;

fn deliver_with(
    path: &Path,
    message: &Message<'_>,
    lock_timeout: Duration,
    make_writer: &MakeWriter<'_>,
) -> Result<(), Error> {
    let deadline = Instant::now() + lock_timeout;
    // Held until the end of this function; dropping it removes the file.
    let _dotlock = DotLock::acquire(path, deadline)?;
    let file = open_mailbox(path, message.owner)?;
    lock_file(&file, path, deadline)?;
    let old_len =
        file.metadata().map_err(|source| Error::Read { path: path.to_owned(), source })?.len();

    let written = {
        let mut writer = make_writer(&file);
        write_message(&mut *writer, message).and_then(|()| writer.flush())
        // The writer is dropped here, before any truncation below, so a
        // buffered writer cannot add bytes after we cut the file.
    };
    let result = match written {
        Ok(()) => file.sync_all().map_err(|source| Error::Sync { path: path.to_owned(), source }),
        Err(source) => Err(Error::Write { path: path.to_owned(), source }),
    };
    if result.is_err() {
        // Best effort: if even this fails, the reader sees a message without
        // its final blank line, which mbox readers tolerate, and the
        // delivery is retried.
        let _ = file.set_len(old_len);
        let _ = file.sync_all();
    }
    result
}

fn open_mailbox(path: &Path, owner: Option<u32>) -> Result<File, Error> {
    let file = OpenOptions::new()
        .append(true)
        // Root must not create a file of its own where the user's was.
        .create(owner.is_none())
        .mode(0o600)
        // O_NONBLOCK so that a FIFO planted at the mailbox path cannot make
        // us hang in open(); it is refused just below.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                Error::Symlink { path: path.to_owned() }
            } else {
                Error::Create { path: path.to_owned(), source }
            }
        })?;
    let meta = file.metadata().map_err(|source| Error::Read { path: path.to_owned(), source })?;
    if !meta.file_type().is_file() {
        return Err(Error::Unsafe { path: path.to_owned(), reason: "not a regular file" });
    }
    // A hard link to someone else's file would make us write into it
    // (Postfix's safe_open refuses these too).
    if meta.nlink() > 1 {
        return Err(Error::Unsafe {
            path: path.to_owned(),
            reason: "file has more than one hard link",
        });
    }
    if owner.is_some_and(|uid| meta.uid() != uid) {
        return Err(Error::Unsafe {
            path: path.to_owned(),
            reason: "file is not owned by the recipient",
        });
    }
    Ok(file)
}

/// Waits between lock attempts: 5 ms doubling up to half a second, so that
/// short contention costs little and long contention few wake-ups.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(5u64 << attempt.min(7)).min(Duration::from_millis(500))
}

fn lock_timeout_error(path: &Path) -> Error {
    Error::Lock {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::WouldBlock, "lock is busy; giving up"),
    }
}

/// Takes a write lock on the whole file, waiting until `deadline`.
fn lock_file(file: &File, path: &Path, deadline: Instant) -> Result<(), Error> {
    let whole_file = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        // Must be 0 for open-file-description locks.
        l_pid: 0,
    };
    let mut attempt = 0;
    loop {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let arg = FcntlArg::F_OFD_SETLK(&whole_file);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let arg = FcntlArg::F_SETLK(&whole_file);
        match nix::fcntl::fcntl(file.as_raw_fd(), arg) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN | Errno::EACCES) => {}
            Err(e) => return Err(Error::Lock { path: path.to_owned(), source: e.into() }),
        }
        if Instant::now() >= deadline {
            return Err(lock_timeout_error(path));
        }
        std::thread::sleep(backoff(attempt));
        attempt += 1;
    }
}

/// A `mailbox.lock` file, removed when dropped.
#[derive(Debug)]
struct DotLock {
    path: PathBuf,
}

impl DotLock {
    /// Creates `mbox.lock` with `O_CREAT|O_EXCL`, removing a stale one and
    /// waiting for a live one until `deadline`.
    ///
    /// When the directory does not let us create files (`/var/mail` is
    /// often writable only by group `mail`), we go on without a dot-lock and
    /// rely on the fcntl lock, as mutt and procmail do; refusing would
    /// defer the mail forever.
    fn acquire(mbox: &Path, deadline: Instant) -> Result<Option<DotLock>, Error> {
        let mut name = mbox.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut attempt = 0;
        loop {
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path);
            match created {
                Ok(_) => return Ok(Some(DotLock { path })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if is_stale(&path) {
                        // Another deliverer may remove it at the same time;
                        // either way we simply try again.
                        let _ = fs::remove_file(&path);
                        if Instant::now() < deadline {
                            continue;
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EACCES | libc::EPERM | libc::EROFS)
                    ) =>
                {
                    return Ok(None);
                }
                Err(source) => return Err(Error::Lock { path, source }),
            }
            if Instant::now() >= deadline {
                return Err(lock_timeout_error(&path));
            }
            std::thread::sleep(backoff(attempt));
            attempt += 1;
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn is_stale(lock: &Path) -> bool {
    fs::symlink_metadata(lock)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > STALE_LOCK_AGE)
}

fn write_message(w: &mut dyn Write, message: &Message<'_>) -> io::Result<()> {
    writeln!(w, "From {}  {}", from_line_sender(message.sender), asctime(message.when))?;
    let last = write_quoted(w, &[message.prefix, message.content])?;
    // mbox messages end with an empty line; the message itself must end
    // with a newline first (Postfix's MAIL_COPY_BLANK).
    if last != Some(b'\n') {
        w.write_all(b"\n")?;
    }
    w.write_all(b"\n")
}

/// The envelope sender as it appears on the `From ` line: `MAILER-DAEMON`
/// for the null sender, and no blanks or control characters, which would
/// break the line's `From sender date` layout.
fn from_line_sender(sender: &str) -> String {
    if sender.is_empty() {
        return "MAILER-DAEMON".to_owned();
    }
    sender.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect()
}

/// `asctime(3)` layout in local time, e.g. `Sat Nov 28 12:57:20 2026`.
fn asctime(when: SystemTime) -> String {
    format_asctime(&chrono::DateTime::<chrono::Local>::from(when))
}

fn format_asctime<Tz: chrono::TimeZone>(when: &chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    // %e pads the day with a space, as asctime's "%3d" does.
    when.format("%a %b %e %H:%M:%S %Y").to_string()
}

/// Writes `parts` as one byte stream with mboxrd `From ` quoting, returning
/// the last byte written (None when nothing was). A line may straddle two
/// parts; only its start is copied to decide the quoting.
fn write_quoted(w: &mut dyn Write, parts: &[&[u8]]) -> io::Result<Option<u8>> {
    let mut carry: Vec<u8> = Vec::new();
    let mut last = None;
    for (index, part) in parts.iter().enumerate() {
        let is_last_part = index + 1 == parts.len();
        let mut rest: &[u8] = part;
        if !carry.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    carry.extend_from_slice(&rest[..=end]);
                    write_line(w, &carry)?;
                    last = carry.last().copied();
                    carry.clear();
                    rest = &rest[end + 1..];
                }
                None => {
                    carry.extend_from_slice(rest);
                    continue;
                }
            }
        }
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            match end {
                Some(end) => {
                    write_line(w, &rest[..=end])?;
                    rest = &rest[end + 1..];
                    last = Some(b'\n');
                }
                None if is_last_part => {
                    write_line(w, rest)?;
                    last = rest.last().copied();
                    rest = &[];
                }
                None => {
                    carry.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
    }
    if !carry.is_empty() {
        write_line(w, &carry)?;
        last = carry.last().copied();
    }
    Ok(last)
}

fn write_line(w: &mut dyn Write, line: &[u8]) -> io::Result<()> {
    let unquoted = &line[line.iter().take_while(|&&b| b == b'>').count()..];
    if unquoted.starts_with(b"From ") {
        w.write_all(b">")?;
    }
    w.write_all(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    fn quoted(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        write_quoted(&mut out, parts).unwrap();
        out
    }

    fn when() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_870_640)
    }

    #[test]
    fn asctime_layout() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 28, 12, 57, 20).unwrap();
        assert_eq!(format_asctime(&t), "Sat Nov 28 12:57:20 2026");
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 8, 2, 7, 0).unwrap();
        assert_eq!(format_asctime(&t), "Sun Nov  8 02:07:00 2026");
    }

    #[test]
    fn sender_on_from_line() {
        assert_eq!(from_line_sender(""), "MAILER-DAEMON");
        assert_eq!(from_line_sender("root@x.org"), "root@x.org");
        assert_eq!(from_line_sender("a b\r\nFrom x"), "a_b__From_x");
    }

    #[test]
    fn mboxrd_quoting() {
        assert_eq!(quoted(&[b"From x\n"]), b">From x\n");
        assert_eq!(quoted(&[b">From x\n>>From y\nFrom"]), b">>From x\n>>>From y\nFrom");
        assert_eq!(quoted(&[b"a\nFrom me\nFromage\n From\n"]), b"a\n>From me\nFromage\n From\n");
        // A line split between prefix and content is still seen whole.
        assert_eq!(quoted(&[b"X: 1\nFr", b"om y\nz"]), b"X: 1\n>From y\nz");
        assert_eq!(quoted(&[b"Fr", b"om"]), b"From");
        assert_eq!(quoted(&[b"", b""]), b"");
    }

    #[test]
    fn appends_messages() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("user");
        deliver_mbox(
            &mbox,
            "root@x.org",
            b"Delivered-To: u@x\n",
            b"Subject: a\n\nFrom here\n",
            when(),
        )
        .unwrap();
        deliver_mbox(&mbox, "", b"", b"Subject: b\n\nno newline", when()).unwrap();
        let text = String::from_utf8(fs::read(&mbox).unwrap()).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert!(lines[0].starts_with("From root@x.org  "), "{text}");
        assert_eq!(lines[0].len(), "From root@x.org  Sat Nov 28 12:57:20 2026".len());
        assert_eq!(&lines[1..5], ["Delivered-To: u@x", "Subject: a", "", ">From here"]);
        assert_eq!(lines[5], "");
        assert!(lines[6].starts_with("From MAILER-DAEMON  "));
        assert!(text.ends_with("Subject: b\n\nno newline\n\n"));
        assert_eq!(fs::metadata(&mbox).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!dir.path().join("user.lock").exists());
    }

    /// Writes `budget` bytes to the file, then fails like a full disk.
    struct FailAfter<'f> {
        file: &'f File,
        budget: usize,
    }

    impl Write for FailAfter<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.budget);
            let n = self.file.write(&buf[..n])?;
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_error_truncates_back() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("user");
        deliver_mbox(&mbox, "a@b", b"", b"first\n", when()).unwrap();
        let before = fs::read(&mbox).unwrap();
        let message = Message {
            sender: "a@b",
            prefix: b"X: y\n",
            content: &[b'z'; 10_000],
            when: when(),
            owner: None,
        };
        for budget in [0, 1, 60, 5000] {
            let err = deliver_with(&mbox, &message, LOCK_TIMEOUT, &|file| {
                Box::new(FailAfter { file, budget })
            })
            .unwrap_err();
            assert!(matches!(err, Error::Write { .. }), "{err:?}");
            assert!(err.is_transient());
            assert_eq!(fs::read(&mbox).unwrap(), before, "budget {budget}");
        }
        // Through a buffered writer too: the failure surfaces at flush.
        let err = deliver_with(&mbox, &message, LOCK_TIMEOUT, &|file| {
            Box::new(BufWriter::new(FailAfter { file, budget: 100 }))
        })
        .unwrap_err();
        assert!(matches!(err, Error::Write { .. }));
        assert_eq!(fs::read(&mbox).unwrap(), before);
        assert!(!dir.path().join("user.lock").exists());
    }

    #[test]
    fn concurrent_appends_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("user");
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let mbox = mbox.clone();
                std::thread::spawn(move || {
                    for i in 0..15 {
                        let body = format!(
                            "Subject: {t}-{i}\n\n{}",
                            format!("line {t}-{i}\n").repeat(200)
                        );
                        deliver_mbox(&mbox, "s@x", b"", body.as_bytes(), when()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = String::from_utf8(fs::read(&mbox).unwrap()).unwrap();
        let messages: Vec<&str> = text.split("From s@x  ").skip(1).collect();
        assert_eq!(messages.len(), 90);
        for m in messages {
            let mut lines = m.lines();
            lines.next(); // date
            let subject = lines.next().unwrap();
            let id = subject.strip_prefix("Subject: ").unwrap();
            assert_eq!(lines.next(), Some(""));
            let expected = format!("line {id}");
            let body: Vec<&str> = lines.collect();
            assert_eq!(body.len(), 201, "{id}");
            assert!(body[..200].iter().all(|l| *l == expected), "message {id} interleaved");
            assert_eq!(body[200], "");
        }
    }

    #[test]
    fn stale_dotlock_is_removed_and_busy_one_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("user");
        let lock = dir.path().join("user.lock");
        let f = File::create(&lock).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(600)).unwrap();
        drop(f);
        deliver_mbox(&mbox, "a@b", b"", b"x\n", when()).unwrap();
        assert!(!lock.exists());

        File::create(&lock).unwrap();
        let message =
            Message { sender: "a@b", prefix: b"", content: b"y\n", when: when(), owner: None };
        let err = deliver_with(&mbox, &message, Duration::from_millis(50), &|file| Box::new(file))
            .unwrap_err();
        assert!(matches!(err, Error::Lock { .. }), "{err:?}");
        assert!(err.is_transient());
        // Somebody else's lock is not ours to remove.
        assert!(lock.exists());
    }

    #[test]
    fn fcntl_lock_held_elsewhere_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("user");
        deliver_mbox(&mbox, "a@b", b"", b"x\n", when()).unwrap();
        let holder = File::options().append(true).open(&mbox).unwrap();
        lock_file(&holder, &mbox, Instant::now()).unwrap();
        let message =
            Message { sender: "a@b", prefix: b"", content: b"y\n", when: when(), owner: None };
        let err = deliver_with(&mbox, &message, Duration::from_millis(50), &|file| Box::new(file))
            .unwrap_err();
        assert!(matches!(err, Error::Lock { .. }), "{err:?}");
        drop(holder);
        deliver_with(&mbox, &message, Duration::from_millis(50), &|file| Box::new(file)).unwrap();
    }

    #[test]
    fn unsafe_mailboxes_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"").unwrap();
        let link = dir.path().join("user");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = deliver_mbox(&link, "a@b", b"", b"x\n", when()).unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }), "{err:?}");
        assert!(!err.is_transient());
        assert_eq!(fs::read(&target).unwrap(), b"");

        let hard = dir.path().join("hard");
        fs::hard_link(&target, &hard).unwrap();
        assert!(matches!(
            deliver_mbox(&hard, "a@b", b"", b"x\n", when()),
            Err(Error::Unsafe { .. })
        ));

        let sub = dir.path().join("dir");
        fs::create_dir(&sub).unwrap();
        assert!(deliver_mbox(&sub, "a@b", b"", b"x\n", when()).is_err());
        assert!(!dir.path().join("dir.lock").exists());
    }

    #[test]
    fn owner_is_checked_on_the_opened_file() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("user");
        let me = nix::unistd::geteuid().as_raw();
        // Never created: root must not make a file of its own there.
        let err = deliver_mbox_owned_by(&mbox, me, "a@b", b"", b"x\n", when()).unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert!(!mbox.exists());
        fs::write(&mbox, b"").unwrap();
        deliver_mbox_owned_by(&mbox, me, "a@b", b"", b"x\n", when()).unwrap();
        let len = fs::metadata(&mbox).unwrap().len();
        assert!(len > 0);
        // Someone else's file at the path: refused, nothing written.
        let err = deliver_mbox_owned_by(&mbox, me.wrapping_add(1), "a@b", b"", b"y\n", when())
            .unwrap_err();
        assert!(matches!(err, Error::Unsafe { .. }), "{err:?}");
        assert!(err.to_string().contains("not owned by the recipient"), "{err}");
        assert_eq!(fs::metadata(&mbox).unwrap().len(), len);
        assert!(!dir.path().join("user.lock").exists());
    }

    proptest! {
        #[test]
        fn quoting_never_panics_and_keeps_lines(
            a in proptest::collection::vec(any::<u8>(), 0..200),
            b in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let out = quoted(&[&a, &b]);
            let mut joined = a.clone();
            joined.extend_from_slice(&b);
            // Quoting only ever adds '>' characters.
            prop_assert_eq!(
                out.iter().filter(|&&c| c != b'>').collect::<Vec<_>>(),
                joined.iter().filter(|&&c| c != b'>').collect::<Vec<_>>()
            );
            for line in out.split(|&c| c == b'\n') {
                prop_assert!(!line.starts_with(b"From "));
            }
        }
    }
}
