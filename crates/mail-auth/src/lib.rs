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
//! - [`aliases`] reads `/etc/aliases`-format files (aliases(5): addresses,
//!   `/file`, `|command`, `:include:`), cached and re-read on change, and
//!   [`local_recipient_exists`] answers smtpd's "is this a local recipient"
//!   (an alias or a user, with the `recipient_delimiter` extension removed);
//! - [`format_passwd_line`] / [`try_format_passwd_line`] write a
//!   passwd-file line (for `postern init --dev`).
//!
//! What it does not: no sockets and no failure delays (that is the `authd`
//! service), no PAM and no yescrypt yet (system users' passwords are checked
//! through PAM later), no SASL framing, no alias expansion (following aliases to users, files and
//! commands is local delivery's job).
//!
//! Used by `authd` (later), `local-delivery` (home and uid of a recipient,
//! aliases), `smtpd` (local recipient check), `newaliases`,
//! `pop3d`/`imapd`, and `postern init`.
#![forbid(unsafe_code)]

pub mod aliases;
mod error;
mod passwd_file;
mod password;
mod recipients;
mod stamp;
mod userdb;

pub use error::Error;
pub use passwd_file::{LineError, PasswdFile, parse_passwd_file, parse_passwd_line};
pub use password::{format_passwd_line, hash_password, try_format_passwd_line, verify_password};
pub use recipients::local_recipient_exists;
pub use userdb::{User, UserDb};
