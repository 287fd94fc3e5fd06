//! mail-config reads and checks Postern's two configuration files, the
//! `main.cf` and `master.cf` of Postfix written as TOML:
//!
//! - `main.toml`, one flat table of parameters with Postfix's names and
//!   meanings ([`Main`], declared once each in [`params`]), with `$name`
//!   expansion ([`expand`]) and `-o` overrides, turned into typed
//!   per-program structs ([`settings`]), and the reference page
//!   generated from that table ([`reference`]);
//! - `master.toml`, the service table ([`MasterFile`], [`ServiceDef`]).
//!
//! Every problem is reported with the file, line and parameter or service,
//! and loading collects all of them ([`Errors`]). It also knows the few
//! rules that several daemons share: [`Networks`] for `mynetworks` and
//! [`LocalDomains`] for `mydestination`.
//!
//! It does not open sockets, write files, or know what the daemons do with
//! the values; `postconf`'s editing lives in `postern-cli` (it uses
//! [`value::text_to_toml`] to write typed values). Used by master, every
//! daemon and every operator command.
#![forbid(unsafe_code)]

mod domains;
mod error;
pub mod expand;
mod main_file;
mod master;
mod networks;
pub mod params;
pub mod reference;
pub mod settings;
pub mod value;

use std::path::{Path, PathBuf};

pub use domains::LocalDomains;
pub use error::{Error, Errors};
pub use main_file::{MAIN_FILE, Main, domain_of, qualify_host_name};
pub use master::{
    CONNECTED_SERVICES, ListenSpec, MASTER_FILE, MasterFile, ServiceDef, ServiceKind, Spawn, check,
    parse_listen,
};
pub use networks::Networks;

/// The environment variable that names the configuration directory when
/// `-c` is not given.
pub const CONFIG_DIR_ENV: &str = "POSTERN_CONFIG_DIR";

/// The configuration directory when neither `-c` nor the environment says.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/postern";

/// The configuration directory: `-c DIR` if given, else
/// `$POSTERN_CONFIG_DIR` if set and non-empty, else `/etc/postern`.
pub fn config_dir_from(cli: Option<&Path>) -> PathBuf {
    if let Some(dir) = cli {
        return dir.to_owned();
    }
    match std::env::var_os(CONFIG_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_CONFIG_DIR),
    }
}

/// Whether `domain` is one of `mydestination`'s domains ([`LocalDomains`]).
/// This builds the set on every call; a daemon should keep
/// [`settings::Common::mydestination`] instead.
pub fn is_local_domain(main: &Main, domain: &str) -> bool {
    LocalDomains::new(main.list("mydestination")).contains(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_prefers_cli() {
        assert_eq!(config_dir_from(Some(Path::new("/tmp/x"))), PathBuf::from("/tmp/x"));
        // The environment is process-wide; only check the fallback shape.
        let d = config_dir_from(None);
        match std::env::var_os(CONFIG_DIR_ENV) {
            Some(v) if !v.is_empty() => assert_eq!(d, PathBuf::from(v)),
            _ => assert_eq!(d, PathBuf::from(DEFAULT_CONFIG_DIR)),
        }
    }

    #[test]
    fn local_domains() {
        let m = Main::from_str(
            Path::new("/etc/postern/main.toml"),
            "myhostname = \"mail.example.com\"\nmydestination = \"$myhostname, localhost.$mydomain, localhost, $mydomain\"",
        )
        .unwrap();
        assert!(is_local_domain(&m, "MAIL.example.com"));
        assert!(is_local_domain(&m, "example.com."));
        assert!(is_local_domain(&m, "localhost.example.com"));
        assert!(is_local_domain(&m, "localhost"));
        assert!(!is_local_domain(&m, "other.example.com"));
        assert!(!is_local_domain(&m, ""));
    }
}
