//! Does a local part name a local recipient? (Postfix's
//! `local_recipient_maps = proxy:unix:passwd.byname $alias_maps`.)
//!
//! smtpd asks this at `RCPT TO` for addresses in `mydestination`, so that
//! mail for unknown users is refused with 550 during the SMTP dialogue
//! instead of being accepted and bounced later (backscatter).

use mail_auth::UserDb;

use crate::Error;
use crate::aliases::Aliases;
use crate::extension::split_extension;

/// True if `local_part`, or, when `delimiter` is non-empty and the local
/// part contains one of its characters, the part before the first such
/// character (`suporte+news` -> `suporte`), is an alias or a user.
///
/// The whole local part is tried first, as Postfix does, so an alias that
/// itself contains the delimiter (`owner-list+x`) still matches. No name is
/// special: `postmaster` and `MAILER-DAEMON` exist because the aliases file
/// provides them. An empty local part names nobody.
pub fn local_recipient_exists(
    users: &UserDb,
    aliases: &Aliases,
    local_part: &str,
    delimiter: &str,
) -> Result<bool, Error> {
    if name_exists(users, aliases, local_part)? {
        return Ok(true);
    }
    match split_extension(local_part, delimiter) {
        (base, Some(_)) => name_exists(users, aliases, base),
        (_, None) => Ok(false),
    }
}

fn name_exists(users: &UserDb, aliases: &Aliases, name: &str) -> Result<bool, Error> {
    if name.is_empty() {
        return Ok(false);
    }
    if aliases.lookup(name)?.is_some() {
        return Ok(true);
    }
    Ok(users.lookup(name)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn setup(dir: &Path) -> (UserDb, Aliases) {
        let users = dir.join("users");
        std::fs::File::create(&users).unwrap();
        std::io::Write::write_all(
            &mut std::fs::File::create(&users).unwrap(),
            b"suporte:{PLAIN}x:1000:1000::/home/suporte\n",
        )
        .unwrap();
        let aliases = dir.join("aliases");
        std::io::Write::write_all(
            &mut std::fs::File::create(&aliases).unwrap(),
            b"postmaster: root\nroot: suporte\nowner-a+b: suporte\n",
        )
        .unwrap();
        (UserDb::passwd_file(users), Aliases::new(vec![aliases, dir.join("absent")]))
    }

    #[test]
    fn users_aliases_and_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let (users, aliases) = setup(dir.path());
        let exists = |local: &str, delim: &str| {
            local_recipient_exists(&users, &aliases, local, delim).unwrap()
        };
        assert!(exists("suporte", "+"));
        assert!(exists("Suporte", "+"));
        assert!(exists("postmaster", ""));
        assert!(exists("POSTMASTER", "+"));
        assert!(exists("suporte+news", "+"));
        assert!(exists("suporte-news", "+-"));
        assert!(!exists("suporte+news", ""));
        assert!(!exists("suporte-news", "+"));
        assert!(exists("owner-a+b", "+"));
        assert!(!exists("ghost", "+"));
        assert!(!exists("ghost+suporte", "+"));
        assert!(!exists("+suporte", "+"));
        assert!(!exists("", "+"));
        assert!(!exists("mailer-daemon", "+"));
    }

    #[test]
    fn unreadable_user_db_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let users = UserDb::passwd_file(dir.path().join("nope"));
        let aliases = Aliases::new(vec![]);
        assert!(local_recipient_exists(&users, &aliases, "x", "+").is_err());
    }
}
