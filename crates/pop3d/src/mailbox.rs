//! Where a user's Maildir is, and the POP3 view of it: the message list
//! the session numbers (mail-maildir's index, in UID order) and the UIDL
//! values.

use mail_ipc::auth::AuthUser;
use std::path::{Path, PathBuf};
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

/// The user's Maildir: authd's `mail` location when the user database
/// gives one (`maildir:~/Maildir`, `~/Maildir`, or an absolute path;
/// Dovecot's `:OPTIONS` suffix is ignored), else `home_mailbox` under the
/// home. A `home_mailbox` that names an mbox file (no trailing `/`), or
/// none, means `Maildir/`: pop3d serves Maildirs only.
pub(crate) fn location(user: &AuthUser, home_mailbox: &str) -> Result<PathBuf, String> {
    if let Some(mail) = user.mail.as_deref().filter(|m| !m.is_empty()) {
        let spec = mail.strip_prefix("maildir:").unwrap_or(mail);
        let spec = spec.split(':').next().unwrap_or(spec);
        let path = match spec.strip_prefix("~/") {
            Some(rest) => user.home.join(rest),
            None => PathBuf::from(spec),
        };
        if !path.is_absolute() || mail.starts_with("mbox:") {
            return Err(format!("mail location {mail:?} is not a Maildir path pop3d can serve"));
        }
        return Ok(path);
    }
    let relative = if home_mailbox.ends_with('/') { home_mailbox } else { "Maildir/" };
    let relative = Path::new(relative);
    if relative.is_absolute()
        || relative.components().any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("home_mailbox {home_mailbox:?} must be relative to the home"));
    }
    Ok(user.home.join(relative))
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

    fn user(mail: Option<&str>) -> AuthUser {
        AuthUser {
            user: "suporte".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/suporte".into(),
            mail: mail.map(str::to_owned),
        }
    }

    #[test]
    fn locations() {
        assert_eq!(location(&user(None), "Maildir/").unwrap(), Path::new("/home/suporte/Maildir/"));
        assert_eq!(location(&user(None), "").unwrap(), Path::new("/home/suporte/Maildir/"));
        assert_eq!(
            location(&user(None), "Mail/box/").unwrap(),
            Path::new("/home/suporte/Mail/box/")
        );
        assert!(location(&user(None), "../x/").is_err());
        assert_eq!(
            location(&user(Some("maildir:~/Mail:LAYOUT=fs")), "").unwrap(),
            Path::new("/home/suporte/Mail")
        );
        assert_eq!(location(&user(Some("/var/vmail/s")), "").unwrap(), Path::new("/var/vmail/s"));
        assert!(location(&user(Some("mbox:~/mail")), "").is_err());
        assert!(location(&user(Some("relative")), "").is_err());
    }

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
