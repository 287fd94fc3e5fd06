//! The identity of one version of a file, for caches that re-read a file
//! when it changes (the passwd-file in mail-auth, the aliases files in
//! mail-lookup).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// A change of any of these means the file was edited or replaced and
/// must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    /// The stamp of the file `meta` describes.
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_changes_the_stamp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "a").unwrap();
        let first = Stamp::of(&std::fs::metadata(&p).unwrap());
        assert_eq!(first, Stamp::of(&std::fs::metadata(&p).unwrap()));
        std::fs::write(&p, "ab").unwrap();
        assert_ne!(first, Stamp::of(&std::fs::metadata(&p).unwrap()));
    }
}
