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
//!   `{SHA512-CRYPT}`, `{SHA256-CRYPT}`, `{YESCRYPT}`, `{PLAIN}` or bare
//!   `$6$`/`$5$`/`$y$` crypt string, [`hash_password`] makes a new
//!   `{SHA512-CRYPT}` one and [`hash_password_with`] one in any [`Scheme`];
//! - [`sasl`]: the server side of SASL PLAIN and LOGIN as a sans-I/O state
//!   machine, for smtpd, pop3d and imapd;
//! - [`format_passwd_line`] / [`try_format_passwd_line`] write a
//!   passwd-file line (for `postern init --dev`).
//!
//! What it does not: no sockets, no PAM and no failure delays (that is the
//! `authd` service, which checks system users' passwords through PAM), no
//! protocol framing of SASL (`334 `, `+ `), no aliases and no local recipient
//! table (those are `mail-lookup`, which asks [`UserDb`] whether a name is
//! a user).
//!
//! Used by `authd`, `local-delivery` (home and uid of a recipient),
//! `smtpd` and `mail-lookup` (the users of the local recipient table),
//! `pop3d`/`imapd`, and `postern init`.
#![forbid(unsafe_code)]

mod error;
mod passwd_file;
mod password;
pub mod sasl;
mod userdb;

pub use error::Error;
pub use passwd_file::{LineError, PasswdFile, parse_passwd_file, parse_passwd_line};
pub use password::{
    Scheme, format_passwd_line, hash_password, hash_password_with, try_format_passwd_line,
    verify_password,
};
pub use userdb::{User, UserDb};
