//! The identity of one version of a file, for the cache that re-reads the
//! aliases files when they change (mail-auth keeps the same for its
//! passwd-file cache).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// A change of any of these means the file was edited or replaced and
/// must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    pub(crate) fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}
