//! Lookup tables of local delivery and smtpd: the aliases database and the
//! local recipient table.
//!
//! What it does:
//! - [`aliases`] reads `/etc/aliases`-format files (aliases(5): addresses,
//!   `/file`, `|command`, `:include:`), cached and re-read on change, and
//!   `:include:` files;
//! - [`LocalRecipientMaps`] answers smtpd's "is this a local recipient"
//!   from Postfix's `local_recipient_maps` (the user database, aliases
//!   files and key-value tables, with the `recipient_delimiter` extension
//!   removed);
//! - [`maps`] reads Postfix key-value tables (`hash:`/`texthash:`/`lmdb:`
//!   source files), cached and re-read on change, with the lookup orders of
//!   access(5), canonical(5) and virtual(5);
//! - [`rewrite`] is cleanup's address rewriting on those tables:
//!   `canonical_maps`, `sender_canonical_maps`, `recipient_canonical_maps`,
//!   `virtual_alias_maps` and `virtual_alias_domains`;
//! - [`DomainList`] matches domains against lists like `relay_domains`
//!   (names with their subdomains, and tables);
//! - [`split_extension`] splits `user+ext` at the `recipient_delimiter`,
//!   for the recipient table and local delivery alike.
//!
//! What it does not: no alias expansion (following aliases to users, files
//! and commands, `.forward` files and loops are local delivery's job), no
//! passwords (users come from `mail-auth`'s [`mail_auth::UserDb`], which
//! this crate only asks whether a name exists), no sockets, no `.db` files.
//!
//! Used by `local-delivery` (aliases), `smtpd` (local recipient check) and
//! `newaliases` in `postern-cli`. It depends on `mail-auth`, never the
//! reverse, so smtpd's recipient check needs no password code of its own.
#![forbid(unsafe_code)]

pub mod aliases;
mod domains;
mod error;
mod extension;
pub mod maps;
mod recipients;
pub mod rewrite;

pub use domains::DomainList;
pub use error::Error;
pub use extension::split_extension;
pub use recipients::LocalRecipientMaps;
