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
    /// A lookup table file could not be opened, inspected or read (a
    /// missing table is an error: see `maps`).
    #[error("cannot read lookup table {path}: {source}")]
    MapRead {
        /// The table file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A lookup table file is over one of the bounds of `maps`.
    #[error("{at}: {what}")]
    MapLimit {
        /// `path` or `path:line`.
        at: String,
        /// Which bound, and what to do.
        what: String,
    },
    /// Address rewriting failed: a table value that is no address, or an
    /// expansion past `virtual_alias_recursion_limit` or
    /// `virtual_alias_expansion_limit`.
    #[error("{0}")]
    Rewrite(String),
    /// The user database failed (the recipient table asks it whether a
    /// name is a user).
    #[error(transparent)]
    Users(#[from] mail_auth::Error),
}
