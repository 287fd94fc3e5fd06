//! The error type of mail-lookup.

use std::io;
use std::path::PathBuf;

/// Why a lookup failed. "No such alias" or "no such recipient" is not an
/// error: that is `Ok(None)` and `Ok(false)`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An aliases or `:include:` file could not be opened, inspected or
    /// read (a missing aliases file is not an error for lookups).
    #[error("cannot read aliases file {path}: {source}")]
    AliasesRead {
        /// The aliases or include file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An aliases or `:include:` file is larger than we are willing to load.
    #[error("aliases file {path} is too large ({size} bytes, limit {limit})")]
    AliasesTooLarge {
        /// The aliases or include file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The user database failed (the recipient table asks it whether a
    /// name is a user).
    #[error(transparent)]
    Users(#[from] mail_auth::Error),
}
