//! Does an address name a local recipient? Postfix's
//! `local_recipient_maps` (default `proxy:unix:passwd.byname $alias_maps`).
//!
//! smtpd asks this at `RCPT TO` for addresses in `mydestination`, so that
//! mail for unknown users is refused with 550 during the SMTP dialogue
//! instead of being accepted and bounced later (backscatter).
//!
//! The parameter is a list of tables, searched in order, first hit wins:
//! - `unix:passwd.byname` (or `proxy:unix:passwd.byname`: Postfix's
//!   proxymap only shares the lookup, Postern reads the table itself) is
//!   the user database: the system users, or `passwd_file` when set, as
//!   local delivery sees them;
//! - an element that names one of the `alias_maps` files is that aliases
//!   file, read in aliases(5) format (which is what `$alias_maps` in the
//!   default expands to);
//! - anything else is a key-value table of [`crate::maps`], looked up in
//!   the order of Postfix's `mail_addr_find`: `user+ext@domain`,
//!   `user@domain`, `user+ext`, `user`, `@domain`.
//!
//! An empty list turns the check off (Postfix: "local_recipient_maps ="
//! accepts every local name). Users and aliases are asked for the local
//! part, then for it without its `recipient_delimiter` extension.

use std::path::{Path, PathBuf};

use mail_auth::UserDb;

use crate::Error;
use crate::aliases::Aliases;
use crate::extension::split_extension;
use crate::maps::{self, Maps};

/// One element of `local_recipient_maps`.
#[derive(Debug)]
enum Table {
    Users(UserDb),
    Aliases(Aliases),
    Map(Maps),
}

/// The local recipient tables, built once per process.
#[derive(Debug)]
pub struct LocalRecipientMaps {
    tables: Vec<Table>,
}

impl LocalRecipientMaps {
    /// The tables `specs` (the expanded elements of `local_recipient_maps`)
    /// name. `passwd_file` is the user database's file (`None`: system
    /// users); `alias_maps` are the alias files (resolved paths), so an
    /// element naming one is read as an aliases file; relative names are
    /// relative to `config_dir`. `Err` is a configuration error naming the
    /// parameter.
    pub fn new(
        specs: &[String],
        passwd_file: Option<&Path>,
        alias_maps: &[PathBuf],
        config_dir: &Path,
    ) -> Result<LocalRecipientMaps, String> {
        let mut tables = Vec::with_capacity(specs.len());
        for spec in specs {
            let table = mail_config::params::strip_proxy(spec);
            if table.eq_ignore_ascii_case(mail_config::params::USER_DATABASE_TABLE) {
                tables.push(Table::Users(match passwd_file {
                    Some(p) => UserDb::passwd_file(p),
                    None => UserDb::System,
                }));
                continue;
            }
            let file = maps::map_file(table, config_dir)
                .map_err(|why| format!("parameter \"local_recipient_maps\": {why}"))?;
            tables.push(if alias_maps.contains(&file) {
                Table::Aliases(Aliases::new(vec![file]))
            } else {
                Table::Map(Maps::new(vec![file]))
            });
        }
        Ok(LocalRecipientMaps { tables })
    }

    /// The check is off (`local_recipient_maps =`): every local name is
    /// a recipient.
    pub fn is_disabled(&self) -> bool {
        self.tables.is_empty()
    }

    /// Whether a lookup may wait on something other than local files:
    /// system users come through NSS (LDAP, sssd, ...), which can take as
    /// long as a network.
    pub fn may_block(&self) -> bool {
        self.tables.iter().any(|t| matches!(t, Table::Users(UserDb::System)))
    }

    /// True if `local@domain` (a local domain) is listed: always when the
    /// check is off. The whole local part is tried before the one without
    /// its extension (`suporte+news` -> `suporte`, with `delimiter`), as
    /// Postfix does, so an alias that itself contains the delimiter
    /// (`owner-list+x`) still matches. No name is special: `postmaster`
    /// exists because the aliases file provides it. An empty local part
    /// names nobody. A table that cannot be read is an error (the caller
    /// answers 451), never a silent yes or no.
    pub fn exists(&self, local: &str, domain: &str, delimiter: &str) -> Result<bool, Error> {
        if self.is_disabled() {
            return Ok(true);
        }
        if local.is_empty() {
            return Ok(false);
        }
        let (base, ext) = split_extension(local, delimiter);
        for t in &self.tables {
            let found = match t {
                Table::Users(users) => {
                    users.lookup(local)?.is_some()
                        || (ext.is_some() && !base.is_empty() && users.lookup(base)?.is_some())
                }
                Table::Aliases(aliases) => {
                    aliases.lookup(local)?.is_some()
                        || (ext.is_some() && !base.is_empty() && aliases.lookup(base)?.is_some())
                }
                Table::Map(m) => maps::address_lookup(m, local, domain, true, delimiter)?.is_some(),
            };
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(dir: &Path) -> (PathBuf, PathBuf) {
        let users = dir.join("users");
        std::fs::write(&users, "suporte:{PLAIN}x:1000:1000::/home/suporte\n").unwrap();
        let aliases = dir.join("aliases");
        std::fs::write(&aliases, "postmaster: root\nroot: suporte\nowner-a+b: suporte\n").unwrap();
        (users, aliases)
    }

    fn default_maps(dir: &Path) -> LocalRecipientMaps {
        let (users, aliases) = setup(dir);
        let specs =
            vec!["proxy:unix:passwd.byname".to_owned(), format!("hash:{}", aliases.display())];
        LocalRecipientMaps::new(&specs, Some(&users), &[aliases, dir.join("absent")], dir).unwrap()
    }

    #[test]
    fn users_aliases_and_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let m = default_maps(dir.path());
        let exists = |local: &str, delim: &str| m.exists(local, "postern.test", delim).unwrap();
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
        assert!(!m.may_block());
        assert!(!m.is_disabled());
    }

    #[test]
    fn only_the_listed_tables_count() {
        let dir = tempfile::tempdir().unwrap();
        let (users, aliases) = setup(dir.path());
        let extra = dir.path().join("extra");
        std::fs::write(&extra, "ana@postern.test x\nbia ok\n@other.test any\n").unwrap();
        let alias_maps = [aliases.clone()];
        let m = |specs: &[&str]| {
            let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
            LocalRecipientMaps::new(&specs, Some(&users), &alias_maps, dir.path()).unwrap()
        };
        // Users only: the aliases no longer count.
        let u = m(&["unix:passwd.byname"]);
        assert!(u.exists("suporte", "postern.test", "+").unwrap());
        assert!(!u.exists("postmaster", "postern.test", "+").unwrap());
        // A key-value table, in mail_addr_find's order.
        let t = m(&["texthash:extra"]);
        assert!(t.exists("ana", "postern.test", "+").unwrap());
        assert!(t.exists("ana+x", "postern.test", "+").unwrap());
        assert!(!t.exists("ana", "localhost", "+").unwrap());
        assert!(t.exists("bia", "localhost", "+").unwrap());
        assert!(t.exists("anyone", "other.test", "+").unwrap());
        assert!(!t.exists("suporte", "postern.test", "+").unwrap());
        // Empty: everyone.
        let all = m(&[]);
        assert!(all.is_disabled());
        assert!(all.exists("ghost", "postern.test", "+").unwrap());
        // System users may wait on NSS.
        let sys = LocalRecipientMaps::new(
            &["unix:passwd.byname".to_owned()],
            None,
            &alias_maps,
            dir.path(),
        )
        .unwrap();
        assert!(sys.may_block());
    }

    #[test]
    fn unreadable_tables_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let nope = dir.path().join("nope");
        let m = LocalRecipientMaps::new(
            &["unix:passwd.byname".to_owned()],
            Some(&nope),
            &[],
            dir.path(),
        )
        .unwrap();
        assert!(m.exists("x", "postern.test", "+").is_err());
        let m = LocalRecipientMaps::new(&["hash:nope".to_owned()], None, &[], dir.path()).unwrap();
        assert!(m.exists("x", "postern.test", "+").is_err());
        let e =
            LocalRecipientMaps::new(&["regexp:/x".to_owned()], None, &[], dir.path()).unwrap_err();
        assert!(e.starts_with("parameter \"local_recipient_maps\": "), "{e}");
    }
}
