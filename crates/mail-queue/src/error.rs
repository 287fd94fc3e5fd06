//! Queue errors. Every variant names the file involved.

use std::io;
use std::path::PathBuf;

/// What went wrong with the queue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a queue file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// A file exists but is not a valid queue file (truncated, wrong magic,
    /// unknown version, undecodable envelope).
    #[error("{path}: corrupt queue file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An envelope could not be encoded (a bug, or an absurd envelope).
    #[error("cannot encode queue file: {0}")]
    Encode(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Whether this is "no such file" (the file was moved or removed by
    /// someone else, a normal race in a queue).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether the disk is full (ENOSPC/EDQUOT): smtpd answers 452 4.3.1.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
    }
}
