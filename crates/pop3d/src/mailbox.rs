//! The POP3 view of a Maildir: the UIDL values (the message list the
//! session numbers is mail-maildir's index, in UID order; where the
//! Maildir is, mail-session's `maildir_location`), and whether the
//! Maildir changed between opening it and taking the POP3 lock.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// How far in the past a directory's mtime must lie before an unchanged
/// mtime is taken to mean an unchanged directory: a change in the same
/// clock tick as the last one would leave the mtime as it was, and the
/// filesystem's coarse clock ticks in milliseconds, far below this.
const SETTLED: Duration = Duration::from_secs(1);

/// The mtimes of `new/` and `cur/`, taken before the mailbox is opened,
/// with the time they were taken.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamps {
    taken: SystemTime,
    mtimes: Option<(SystemTime, SystemTime)>,
}

pub(crate) fn stamps(dir: &Path) -> Stamps {
    let taken = SystemTime::now();
    let m = |sub: &str| std::fs::symlink_metadata(dir.join(sub)).and_then(|m| m.modified()).ok();
    Stamps { taken, mtimes: m("new").zip(m("cur")) }
}

/// Whether neither `new/` nor `cur/` can have changed since `before`:
/// both mtimes are as they were, and were already [`SETTLED`] then. A
/// session that opened the mailbox, then took the POP3 lock, lists it
/// again (what arrived in between is its mail) unless this holds; the
/// second listing of a 10,000-message Maildir cost as much as the first.
pub(crate) fn unchanged_since(dir: &Path, before: Stamps) -> bool {
    let Some((new, cur)) = before.mtimes else { return false };
    let settled = |t: SystemTime| t + SETTLED < before.taken;
    settled(new) && settled(cur) && stamps(dir).mtimes == Some((new, cur))
}

/// The UIDL value of a message: UID then UIDVALIDITY, each as eight
/// upper-case hex digits (Dovecot's default `%08Xu%08Xv`), so a client
/// that moves from Dovecot, or uses IMAP beside POP3, sees the same ids.
pub(crate) fn uidl(uid: u32, uid_validity: u32) -> String {
    format!("{uid:08X}{uid_validity:08X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_unchanged_directories_count_as_unchanged() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path();
        let set = |sub: &str, age: u64| {
            let f = std::fs::File::open(dir.join(sub)).expect("open dir");
            f.set_modified(SystemTime::now() - Duration::from_secs(age)).expect("set mtime");
        };
        // No Maildir yet: nothing to trust.
        assert!(!unchanged_since(dir, stamps(dir)));
        std::fs::create_dir(dir.join("new")).expect("new");
        std::fs::create_dir(dir.join("cur")).expect("cur");
        // Just modified: an arrival in the same tick would not show.
        assert!(!unchanged_since(dir, stamps(dir)));
        set("new", 60);
        set("cur", 60);
        let before = stamps(dir);
        assert!(unchanged_since(dir, before));
        // A delivery into new/ after the stamps were taken.
        std::fs::write(dir.join("new").join("1.M1P1.host"), b"x\n").expect("deliver");
        assert!(!unchanged_since(dir, before));
        // A flag change (rename within cur/) counts too.
        set("new", 60);
        std::fs::write(dir.join("cur").join("2.M2P2.host:2,"), b"y\n").expect("cur file");
        set("cur", 60);
        let before = stamps(dir);
        std::fs::rename(
            dir.join("cur").join("2.M2P2.host:2,"),
            dir.join("cur").join("2.M2P2.host:2,S"),
        )
        .expect("rename");
        assert!(!unchanged_since(dir, before));
    }

    #[test]
    fn uidl_is_dovecots_default() {
        assert_eq!(uidl(1, 0x5f3e_1a2b), "000000015F3E1A2B");
        assert_eq!(uidl(0xffff_ffff, 1), "FFFFFFFF00000001");
    }
}
