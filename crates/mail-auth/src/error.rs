//! The error type of mail-auth.

use std::io;
use std::path::PathBuf;

/// Why a user lookup or a password operation failed. "No such user" and
/// "wrong password" are not errors: they are `Ok(None)` and `false`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The passwd-file could not be opened, inspected or read.
    #[error("cannot read passwd-file {path}: {source}")]
    Read {
        /// The passwd-file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The passwd-file is larger than we are willing to load.
    #[error("passwd-file {path} is too large ({size} bytes, limit {limit})")]
    TooLarge {
        /// The passwd-file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The system passwd database (NSS) failed for this name.
    #[error("cannot look up system user {name:?}: {source}")]
    System {
        /// The user name looked up.
        name: String,
        /// The error from getpwnam_r.
        #[source]
        source: nix::Error,
    },
    /// A value cannot be written into a passwd-file line.
    #[error("{field} {value:?} cannot be stored in a passwd-file: {reason}")]
    InvalidField {
        /// Which field (`user`, `password`, `home`).
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
