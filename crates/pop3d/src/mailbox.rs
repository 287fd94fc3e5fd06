//! Where a user's Maildir is, and the POP3 view of it: the message list
//! the session numbers (mail-maildir's index, in UID order) and the UIDL
//! values.

use mail_ipc::auth::AuthUser;
use std::path::{Path, PathBuf};

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
    fn uidl_is_dovecots_default() {
        assert_eq!(uidl(1, 0x5f3e_1a2b), "000000015F3E1A2B");
        assert_eq!(uidl(0xffff_ffff, 1), "FFFFFFFF00000001");
    }
}
