//! Change notification for IMAP IDLE without polling: an inotify
//! descriptor on one folder's `new/` and `cur/` (deliveries, flag
//! renames, expunges) and on the index and keyword files (modseq and
//! keyword changes made by other sessions), which the async imapd waits
//! on with tokio's `AsyncFd` and answers with [`crate::Mailbox::refresh`].
//!
//! The watcher only says "something changed": it is non-blocking and
//! edge-triggered in effect (each [`Watcher::changed`] drains what is
//! queued), and a kernel queue overflow also counts as a change, so no
//! change is ever missed, at worst one refresh finds nothing new. Our own
//! changes wake us too; that costs one refresh.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::Error;

/// Files in the folder directory itself whose replacement is a change.
const WATCHED_FILES: [&str; 2] = [crate::uidlist::INDEX_FILE, crate::keywords::KEYWORDS_FILE];

/// An inotify watch on one folder.
#[derive(Debug)]
pub struct Watcher {
    inotify: Inotify,
    dir: PathBuf,
    /// The watch on the folder directory, whose events count only for
    /// [`WATCHED_FILES`].
    top: WatchDescriptor,
}

impl Watcher {
    /// Watches the Maildir (INBOX or a folder) `dir`. Fails with
    /// [`Error::Read`] when inotify is unavailable or a directory is
    /// missing (the caller may then fall back to a timer).
    pub fn new(dir: &Path) -> Result<Watcher, Error> {
        let err = |path: &Path, e: Errno| Error::Read { path: path.to_owned(), source: e.into() };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| err(dir, e))?;
        let entries = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR
            | AddWatchFlags::IN_DONT_FOLLOW;
        for sub in ["new", "cur"] {
            let path = dir.join(sub);
            inotify.add_watch(&path, entries).map_err(|e| err(&path, e))?;
        }
        let top = inotify
            .add_watch(
                dir,
                AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_ONLYDIR
                    | AddWatchFlags::IN_DONT_FOLLOW,
            )
            .map_err(|e| err(dir, e))?;
        Ok(Watcher { inotify, dir: dir.to_owned(), top })
    }

    /// Whether anything changed since the last call, reading every queued
    /// event without blocking.
    pub fn changed(&self) -> Result<bool, Error> {
        let mut changed = false;
        loop {
            match self.inotify.read_events() {
                Ok(events) if events.is_empty() => return Ok(changed),
                Ok(events) => {
                    for e in events {
                        let relevant = e.wd != self.top
                            || e.mask.intersects(
                                AddWatchFlags::IN_Q_OVERFLOW
                                    | AddWatchFlags::IN_DELETE_SELF
                                    | AddWatchFlags::IN_MOVE_SELF
                                    | AddWatchFlags::IN_IGNORED,
                            )
                            || e.name
                                .as_ref()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| WATCHED_FILES.contains(&n));
                        changed |= relevant;
                    }
                }
                Err(Errno::EAGAIN) => return Ok(changed),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::Read { path: self.dir.clone(), source: e.into() }),
            }
        }
    }
}

impl AsFd for Watcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Flags, Mailbox};

    fn wait_readable(w: &Watcher) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(5000u16)).unwrap() == 1
    }

    #[test]
    fn delivery_flag_change_and_expunge_wake_the_watcher() {
        let t = tempfile::tempdir().unwrap();
        let md = t.path().join("Maildir");
        let mut mb = Mailbox::open(&md).unwrap();
        let w = Watcher::new(&md).unwrap();
        assert!(!w.changed().unwrap(), "nothing yet");

        crate::deliver(&md, b"", b"hello\n", "h").unwrap();
        assert!(wait_readable(&w));
        assert!(w.changed().unwrap());
        assert!(!w.changed().unwrap(), "drained");

        let mut other = Mailbox::open(&md).unwrap();
        let _ = w.changed();
        other.store(&[1], crate::FlagOp::Add, Flags::SEEN, None).unwrap();
        assert!(wait_readable(&w));
        assert!(w.changed().unwrap());
        assert_eq!(mb.refresh().unwrap().flags_changed, Vec::<u32>::new(), "added, not changed");

        other.refresh().unwrap();
        other.expunge(&[1]).unwrap();
        assert!(wait_readable(&w));
        assert!(w.changed().unwrap());
        assert_eq!(mb.refresh().unwrap().vanished, [1]);
    }

    #[test]
    fn unrelated_files_in_the_folder_do_not_wake_it() {
        let t = tempfile::tempdir().unwrap();
        let md = t.path().join("Maildir");
        Mailbox::open(&md).unwrap();
        let w = Watcher::new(&md).unwrap();
        std::fs::create_dir(md.join(".Sent")).unwrap();
        stdx::fs::atomic_write(&md.join("subscriptions"), b"Sent\n", 0o600).unwrap();
        assert!(!w.changed().unwrap());
        assert!(matches!(Watcher::new(&t.path().join("nope")), Err(Error::Read { .. })));
    }
}
