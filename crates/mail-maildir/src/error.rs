//! The error type of mail-maildir and its transient/permanent classification.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while creating, writing or reading a mailbox.
///
/// Each variant names the path involved so that the delivery agent can log a
/// useful reason (`status=deferred (cannot create /home/u/Maildir/tmp/...)`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory or file could not be created or opened.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The directory or file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing message data (or truncating after a failed write) failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// fsync of a file or directory failed, so the data may not be durable.
    #[error("cannot fsync {path}: {source}")]
    Sync {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Moving the message from `tmp/` to `new/` failed.
    #[error("cannot link {from} to {to}: {source}")]
    Link {
        /// The file in `tmp/`.
        from: PathBuf,
        /// The name in `new/`.
        to: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A Maildir, one of its subdirectories or an mbox file is a symbolic
    /// link; we never follow those when writing as a user.
    #[error("{path} is a symbolic link; refusing to use it")]
    Symlink {
        /// The symbolic link.
        path: PathBuf,
    },
    /// The mailbox exists but is not something we may write to (not a
    /// regular file, or hard-linked elsewhere).
    #[error("{path}: unsafe mailbox: {reason}")]
    Unsafe {
        /// The mailbox file.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Reading a directory or a file's metadata failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The mbox could not be locked (dot-lock busy, fcntl lock busy, or an
    /// error while locking).
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The mbox file or its `.lock` file.
        path: PathBuf,
        /// The OS error (`WouldBlock` when we gave up waiting).
        #[source]
        source: io::Error,
    },
    /// A Maildir++ folder name is not acceptable.
    #[error("invalid folder name {name:?}: {reason}")]
    FolderName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The message is not in the mailbox: its UID is not in the snapshot,
    /// or another process removed its file.
    #[error("{path}: no message with UID {uid}")]
    NotFound {
        /// The Maildir.
        path: PathBuf,
        /// The UID asked for.
        uid: u32,
    },
    /// The Maildir holds more messages than we read.
    #[error("{path}: more than {limit} messages")]
    TooMany {
        /// The Maildir.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// A folder (or a child a rename would make) already exists: CREATE
    /// or RENAME onto an existing name.
    #[error("folder {name:?} already exists")]
    FolderExists {
        /// The folder name (UTF-8).
        name: String,
    },
    /// There is no such folder (or it exists only by its children, which
    /// cannot be selected, deleted or renamed as such).
    #[error("folder {name:?} does not exist")]
    NoFolder {
        /// The folder name (UTF-8).
        name: String,
    },
    /// The operation is not allowed on this folder (deleting INBOX,
    /// renaming a folder into its own child).
    #[error("folder {name:?}: {reason}")]
    NotPermitted {
        /// The folder name (UTF-8).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A keyword is not acceptable (not an IMAP atom, too long) or the
    /// folder has no letter left for a new one (Maildir has 26).
    #[error("keyword {name:?}: {reason}")]
    Keyword {
        /// The keyword as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

impl Error {
    /// Whether the delivery should be retried later (`4.x.x`) rather than
    /// bounced (`5.x.x`).
    ///
    /// Postfix defers nearly every Maildir/mbox write error (disk full, quota,
    /// I/O error, permission problems an operator can fix), so we do too. A
    /// symbolic link or an otherwise unsafe mailbox is refused permanently,
    /// as Postfix does for `safe_open` failures, and a bad folder name will
    /// not get better by waiting.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Error::Symlink { .. }
                | Error::Unsafe { .. }
                | Error::FolderName { .. }
                | Error::NotFound { .. }
                | Error::TooMany { .. }
                | Error::FolderExists { .. }
                | Error::NoFolder { .. }
                | Error::NotPermitted { .. }
                | Error::Keyword { .. }
        )
    }

    /// The underlying OS error, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Create { source, .. }
            | Error::Write { source, .. }
            | Error::Sync { source, .. }
            | Error::Link { source, .. }
            | Error::Read { source, .. }
            | Error::Lock { source, .. } => Some(source),
            Error::Symlink { .. }
            | Error::Unsafe { .. }
            | Error::FolderName { .. }
            | Error::NotFound { .. }
            | Error::TooMany { .. }
            | Error::FolderExists { .. }
            | Error::NoFolder { .. }
            | Error::NotPermitted { .. }
            | Error::Keyword { .. } => None,
        }
    }

    /// The path this error is about (for `Link`, the destination).
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Create { path, .. }
            | Error::Write { path, .. }
            | Error::Sync { path, .. }
            | Error::Symlink { path }
            | Error::Unsafe { path, .. }
            | Error::Read { path, .. }
            | Error::Lock { path, .. }
            | Error::NotFound { path, .. }
            | Error::TooMany { path, .. } => Some(path),
            Error::Link { to, .. } => Some(to),
            Error::FolderName { .. }
            | Error::FolderExists { .. }
            | Error::NoFolder { .. }
            | Error::NotPermitted { .. }
            | Error::Keyword { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let io = || io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(Error::Write { path: "/x".into(), source: io() }.is_transient());
        assert!(Error::Lock { path: "/x".into(), source: io() }.is_transient());
        assert!(!Error::Symlink { path: "/x".into() }.is_transient());
        assert!(!Error::Unsafe { path: "/x".into(), reason: "r" }.is_transient());
        assert!(!Error::FolderName { name: "..".into(), reason: "r" }.is_transient());
    }

    #[test]
    fn display_names_the_path() {
        let e = Error::Create {
            path: "/home/u/Maildir/tmp".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(e.to_string().contains("/home/u/Maildir/tmp"));
        assert_eq!(e.path(), Some(std::path::Path::new("/home/u/Maildir/tmp")));
        assert!(e.io_error().is_some());
    }
}
