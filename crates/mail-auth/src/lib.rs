//! Users and passwords: who a mail user is (uid, gid, home) and whether a
//! password is right.
//!
//! What it does:
//! - [`UserDb`] looks users up either in the system passwd database (what
//!   courier-authdaemon's `authpam`/`authshadow` modules do in the tutorial)
//!   or in a Dovecot-style passwd-file of virtual users
//!   (`user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`), re-reading the
//!   file when it changes;
//! - [`verify_password`] checks a password against a stored
//!   `{SHA512-CRYPT}`, `{SHA256-CRYPT}`, `{PLAIN}` or bare `$6$`/`$5$` crypt
//!   string, and [`hash_password`] makes a new `{SHA512-CRYPT}` one;
//! - [`format_passwd_line`] / [`try_format_passwd_line`] write a
//!   passwd-file line (for `postern init --dev`).
//!
//! What it does not: no sockets and no failure delays (that is the `authd`
//! service), no PAM and no yescrypt yet (system users' passwords are checked
//! through PAM later), no SASL framing, no aliases and no local recipient
//! table (those are `mail-lookup`, which asks [`UserDb`] whether a name is
//! a user).
//!
//! Used by `authd` (later), `local-delivery` (home and uid of a recipient),
//! `smtpd` and `mail-lookup` (the users of the local recipient table),
//! `pop3d`/`imapd`, and `postern init`.
#![forbid(unsafe_code)]

mod error;
mod passwd_file;
mod password;
mod userdb;

pub use error::Error;
pub use passwd_file::{LineError, PasswdFile, parse_passwd_file, parse_passwd_line};
pub use password::{format_passwd_line, hash_password, try_format_passwd_line, verify_password};
pub use userdb::{User, UserDb};
