//! The descriptor limit (RLIMIT_NOFILE) a daemon runs with.
//!
//! A Postern smtpd serves many clients in one process, each holding at
//! least one descriptor, so the usual soft limit of 1024 would make
//! `accept` fail with EMFILE long before `smtpd_process_connection_limit`
//! (5,000 idle clients in one process is a stated goal). Every daemon
//! therefore raises its soft limit to the hard limit at start-up, which
//! needs no privilege, and says so in the log when even the hard limit is
//! below what its configured limits need: the fix (LimitNOFILE= in the
//! systemd unit, `ulimit -Hn`) is the operator's.

use mail_config::Main;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors a daemon keeps for itself beside its clients: listening
/// sockets, the status pipe, log, IPC connections to other services.
const RESERVE: u64 = 64;

/// The descriptor limit after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before the call.
    pub was: u64,
    /// The soft limit now (the hard limit, unless raising it failed).
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit.
pub fn raise_nofile_limit() -> nix::Result<NofileLimit> {
    let (was, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if was < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(NofileLimit { was, soft, hard })
}

/// The descriptors `program` needs under `config`, if its limits say:
/// smtpd holds one socket per client and, while a message is coming in,
/// one more for its queue file, up to `smtpd_process_connection_limit`
/// clients; plus a reserve of its own.
pub fn descriptors_needed(program: &str, config: &Main) -> Option<u64> {
    match program {
        "smtpd" => {
            let clients = mail_config::settings::Smtpd::new(config).smtpd_process_connection_limit;
            Some((clients as u64).saturating_mul(2).saturating_add(RESERVE))
        }
        _ => None,
    }
}

/// The warning to log when the limit [`raise_nofile_limit`] reached is
/// below `needed`.
pub fn shortfall(limit: &NofileLimit, needed: Option<u64>) -> Option<String> {
    let needed = needed?;
    (limit.soft < needed).then(|| {
        format!(
            "descriptor limit (RLIMIT_NOFILE) is {} (hard limit {}), below the {needed} that \
             smtpd_process_connection_limit needs; clients beyond it are refused: raise the hard limit \
             (LimitNOFILE= in the service unit, or ulimit -Hn before postern start)",
            limit.soft, limit.hard
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn main_toml(text: &str) -> Main {
        Main::from_str(Path::new("/nonexistent/main.toml"), text).expect("main.toml parses")
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        if hard < 64 {
            eprintln!(
                "skipped: hard RLIMIT_NOFILE {hard} is too small to lower the soft limit below it"
            );
            return;
        }
        // Start from a soft limit below the hard one, as a shell's 1024 is.
        let low = (hard / 2).min(1024);
        setrlimit(Resource::RLIMIT_NOFILE, low, hard).expect("lower the soft limit");
        let limit = raise_nofile_limit().expect("raise");
        assert_eq!(limit, NofileLimit { was: low, soft: hard, hard });
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit"), (hard, hard));
        // Calling it again changes nothing.
        assert_eq!(
            raise_nofile_limit().expect("raise"),
            NofileLimit { was: hard, soft: hard, hard }
        );
    }

    #[test]
    fn smtpd_needs_two_descriptors_per_client_plus_a_reserve() {
        let c = main_toml("smtpd_process_connection_limit = 5000\n");
        assert_eq!(descriptors_needed("smtpd", &c), Some(10_064));
        assert_eq!(descriptors_needed("smtpd", &main_toml("")), Some(256 * 2 + 64));
        assert_eq!(descriptors_needed("qmgr", &c), None);
    }

    #[test]
    fn a_hard_limit_below_the_need_is_reported_and_enough_is_silent() {
        let limit = NofileLimit { was: 1024, soft: 4096, hard: 4096 };
        let w = shortfall(&limit, Some(10_064)).expect("a warning");
        assert!(
            w.starts_with(
                "descriptor limit (RLIMIT_NOFILE) is 4096 (hard limit 4096), below the 10064"
            ),
            "{w}"
        );
        assert_eq!(shortfall(&limit, Some(4096)), None);
        assert_eq!(shortfall(&limit, None), None);
    }
}
