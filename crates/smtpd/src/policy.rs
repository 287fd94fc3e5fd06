//! Who may send what to whom: smtpd's recipient decision (Postfix's
//! `reject_unauth_destination` and `reject_unlisted_recipient` with
//! `local_recipient_maps`), address qualification, client naming, free
//! space at MAIL FROM, and the per-client connection count.
//!
//! Severities: lookup failures are returned as a 451 reply for the
//! session to send and log; nothing here is fatal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use mail_auth::UserDb;
use mail_config::{LocalDomains, Main, Networks, settings};
use mail_lookup::aliases::Aliases;
use mail_types::{Address, EnhancedStatus};
use smtp_proto::Reply;

/// The recipient policy, built once per process from main.toml.
#[derive(Debug)]
pub(crate) struct Policy {
    /// `mydestination`, the local-domain test qmgr routes by too.
    mydestination: LocalDomains,
    myorigin: String,
    append_at_myorigin: bool,
    mynetworks: Networks,
    users: UserDb,
    aliases: Aliases,
    recipient_delimiter: String,
}

/// The outcome of a RCPT TO check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accept; the address qualified with `myorigin` if it had no domain.
    Accept(Address),
    /// Answer with this reply (the session logs it as a NOQUEUE reject).
    Reject(Reply),
}

fn reply(code: u16, status: (u8, u16, u16), text: String) -> Reply {
    Reply::with_status(code, EnhancedStatus(status.0, status.1, status.2), text)
}

impl Policy {
    /// Reads the parameters the policy needs: myorigin,
    /// append_at_myorigin, mydestination, mynetworks, passwd_file,
    /// alias_maps and recipient_delimiter.
    pub(crate) fn from_config(config: &Main) -> Policy {
        let common = settings::Common::new(config);
        let users = match common.passwd_file {
            Some(path) => UserDb::passwd_file(path),
            None => UserDb::System,
        };
        Policy {
            mydestination: common.mydestination,
            myorigin: common.myorigin,
            append_at_myorigin: common.append_at_myorigin,
            mynetworks: settings::Smtpd::new(config).mynetworks,
            users,
            aliases: Aliases::new(common.alias_maps),
            recipient_delimiter: common.recipient_delimiter,
        }
    }

    /// `addr` with `@myorigin` appended when it has no domain and
    /// `append_at_myorigin` is on.
    pub(crate) fn qualify(&self, addr: Address) -> Address {
        if self.append_at_myorigin && !self.myorigin.is_empty() {
            addr.qualified(&self.myorigin)
        } else {
            addr
        }
    }

    /// Whether `client` may relay (it is in `mynetworks`).
    pub(crate) fn is_trusted(&self, client: IpAddr) -> bool {
        self.mynetworks.contains(client)
    }

    /// Whether mail for `domain` is delivered here: `mydestination` only,
    /// as in Postfix, and the same rule qmgr routes by.
    fn is_local(&self, domain: &str) -> bool {
        self.mydestination.contains(domain)
    }

    /// Whether a RCPT check may wait on something other than local
    /// files: system users come through NSS (LDAP, sssd, ...), which can
    /// take as long as a network. File tables are cached in memory and
    /// re-read only when they change.
    pub(crate) fn rcpt_check_may_block(&self) -> bool {
        matches!(self.users, UserDb::System)
    }

    /// Decides RCPT TO. It may read the passwd-file and the aliases
    /// files, or wait on the system user database (see
    /// [`Policy::rcpt_check_may_block`]).
    ///
    /// - Local domains (`mydestination`, or no domain at
    ///   all when `append_at_myorigin = no`): the local part must be a
    ///   user or an alias, else 550 5.1.1 (RFC 3463 §3.2: bad destination
    ///   mailbox address).
    /// - Other domains: only clients in `mynetworks` may relay, else
    ///   554 5.7.1, so Postern is never an open relay.
    pub(crate) fn check_rcpt(&self, to: &Address, client: IpAddr) -> Verdict {
        let qualified = self.qualify(to.clone());
        let local = qualified.domain().is_none_or(|d| self.is_local(d));
        if !local {
            if self.is_trusted(client) {
                return Verdict::Accept(qualified);
            }
            return Verdict::Reject(reply(554, (5, 7, 1), format!("<{to}>: Relay access denied")));
        }
        match mail_lookup::local_recipient_exists(
            &self.users,
            &self.aliases,
            qualified.local(),
            &self.recipient_delimiter,
        ) {
            Ok(true) => Verdict::Accept(qualified),
            Ok(false) => Verdict::Reject(reply(
                550,
                (5, 1, 1),
                format!(
                    "<{to}>: Recipient address rejected: User unknown in local recipient table"
                ),
            )),
            Err(e) => {
                tracing::warn!("local recipient lookup for <{qualified}>: {e}");
                Verdict::Reject(reply(451, (4, 3, 0), format!("<{to}>: Temporary lookup failure")))
            }
        }
    }
}

/// The client's name for logs and `Received:`. smtpd does no DNS lookups:
/// loopback clients are `localhost`, every other client is `unknown`, as
/// Postfix names a client whose address does not resolve.
pub(crate) fn client_name(addr: IpAddr) -> &'static str {
    if addr.is_loopback() { "localhost" } else { "unknown" }
}

/// An address as the logs print it: IPv4-mapped IPv6 addresses (what a
/// dual-stack socket reports) become plain IPv4.
pub(crate) fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

/// Free space in the queue file system, in bytes, or `None` if it cannot
/// be determined.
pub(crate) fn queue_free_space(queue_dir: &std::path::Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(queue_dir).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let (avail, frsize) = (u64::from(st.blocks_available()), u64::from(st.fragment_size()));
    Some(avail.saturating_mul(frsize))
}

/// Postfix's MAIL FROM free-space rule: refuse with 452 4.3.1 when the
/// queue file system has less than `minfree` plus the announced SIZE
/// (RFC 1870 §6.1) left.
pub(crate) fn enough_space(free: u64, minfree: u64, size: Option<u64>) -> bool {
    free >= minfree.saturating_add(size.unwrap_or(0))
}

/// Simultaneous connections per client in this process
/// (`smtpd_client_connection_count_limit`; Postfix counts them in anvil).
/// A client is an IPv4 address or an IPv6 /64 (see [`client_key`]).
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounts {
    counts: Mutex<HashMap<IpAddr, u32>>,
}

/// One counted connection; dropping it (even while a session task
/// unwinds from a panic) gives the slot back.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    addr: IpAddr,
}

/// What the per-client limit counts under: the IPv4 address, or the /64
/// of an IPv6 one. One IPv6 host usually has a whole /64 (RFC 4291 §2.5.1
/// interface identifiers, SLAAC privacy addresses), so counting exact
/// addresses would give it 2^64 separate allowances; Postfix 3.8 counts
/// IPv6 clients per /64 by default for the same reason
/// (`smtpd_client_ipv6_prefix_length = 64`).
pub(crate) fn client_key(addr: IpAddr) -> IpAddr {
    match canonical(addr) {
        IpAddr::V6(a) => {
            IpAddr::V6(std::net::Ipv6Addr::from_bits(a.to_bits() & !u128::from(u64::MAX)))
        }
        v4 => v4,
    }
}

impl ConnectionCounts {
    /// Counts a new connection from `addr` (under [`client_key`]) and
    /// returns its slot, or `Err(count)` when `limit` (> 0) connections
    /// are already open.
    pub(crate) fn enter(self: &Arc<Self>, addr: IpAddr, limit: u32) -> Result<ConnectionSlot, u32> {
        let addr = client_key(addr);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(addr).or_insert(0);
        if limit > 0 && *n >= limit {
            return Err(n.saturating_add(1));
        }
        *n += 1;
        Ok(ConnectionSlot { counts: Arc::clone(self), addr })
    }

    /// Open connections from `addr`.
    #[cfg(test)]
    fn count(&self, addr: IpAddr) -> u32 {
        let addr = client_key(addr);
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&addr).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A policy over a temporary passwd-file and aliases file, as
    /// `postern init --dev` writes them.
    fn policy(extra: &str) -> (tempfile::TempDir, Policy) {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let aliases = dir.path().join("aliases");
        std::fs::write(&passwd, "suporte:{PLAIN}suporte:1000:1000::/home/suporte::\n").unwrap();
        std::fs::write(&aliases, "postmaster: root\nroot: suporte\n").unwrap();
        let text = format!(
            "myhostname = \"mail.fiap.edu.br\"\nmydomain = \"fiap.edu.br\"\nmyorigin = \"$mydomain\"\n\
             mydestination = [\"$myhostname\", \"localhost\", \"$mydomain\"]\n\
             mynetworks = [\"127.0.0.0/8\", \"[::1]/128\"]\n\
             passwd_file = \"{}\"\nalias_maps = [\"hash:{}\"]\n{extra}",
            passwd.display(),
            aliases.display()
        );
        let main = Main::from_str(&dir.path().join("main.toml"), &text).unwrap();
        (dir, Policy::from_config(&main))
    }

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OUTSIDE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    fn rejected(v: Verdict) -> String {
        match v {
            Verdict::Reject(r) => r.to_string(),
            Verdict::Accept(a) => panic!("accepted {a}"),
        }
    }

    #[test]
    fn local_users_and_aliases_are_accepted_from_anywhere() {
        let (_d, p) = policy("");
        for (to, want) in [
            ("suporte@fiap.edu.br", "suporte@fiap.edu.br"),
            ("Suporte@FIAP.edu.br", "Suporte@fiap.edu.br"),
            ("postmaster@mail.fiap.edu.br", "postmaster@mail.fiap.edu.br"),
            ("root@localhost", "root@localhost"),
            // Unqualified: qualified with myorigin, then local.
            ("suporte", "suporte@fiap.edu.br"),
        ] {
            assert_eq!(p.check_rcpt(&addr(to), OUTSIDE), Verdict::Accept(addr(want)), "{to}");
        }
    }

    #[test]
    fn unknown_local_user_is_550() {
        let (_d, p) = policy("");
        assert_eq!(
            rejected(p.check_rcpt(&addr("ninguem@fiap.edu.br"), LOOPBACK)),
            "550 5.1.1 <ninguem@fiap.edu.br>: Recipient address rejected: User unknown in local recipient table"
        );
        // Without a delimiter, an extension is part of the name.
        assert!(matches!(
            p.check_rcpt(&addr("suporte+x@fiap.edu.br"), OUTSIDE),
            Verdict::Reject(_)
        ));
        let (_d, p) = policy("recipient_delimiter = \"+\"\n");
        assert_eq!(
            p.check_rcpt(&addr("suporte+x@fiap.edu.br"), OUTSIDE),
            Verdict::Accept(addr("suporte+x@fiap.edu.br"))
        );
    }

    #[test]
    fn relay_only_for_mynetworks() {
        let (_d, p) = policy("");
        assert_eq!(
            rejected(p.check_rcpt(&addr("x@example.org"), OUTSIDE)),
            "554 5.7.1 <x@example.org>: Relay access denied"
        );
        assert_eq!(
            p.check_rcpt(&addr("x@example.org"), LOOPBACK),
            Verdict::Accept(addr("x@example.org"))
        );
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        assert!(matches!(p.check_rcpt(&addr("x@example.org"), v6), Verdict::Accept(_)));
        // A dual-stack socket's mapped form of a trusted IPv4 address.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(matches!(p.check_rcpt(&addr("x@example.org"), mapped), Verdict::Accept(_)));
        // A sub-domain of a local domain is not local.
        assert!(matches!(p.check_rcpt(&addr("x@sub.fiap.edu.br"), OUTSIDE), Verdict::Reject(_)));
    }

    #[test]
    fn unqualified_without_append_at_myorigin_is_local() {
        let (_d, p) = policy("append_at_myorigin = false\n");
        assert_eq!(p.check_rcpt(&addr("suporte"), OUTSIDE), Verdict::Accept(addr("suporte")));
        assert!(matches!(p.check_rcpt(&addr("nobody-here"), OUTSIDE), Verdict::Reject(_)));
    }

    #[test]
    fn lookup_failure_is_451() {
        // A passwd-file that is a directory cannot be read.
        let (d, _) = policy("");
        let text = format!(
            "myhostname = \"mail.fiap.edu.br\"\npasswd_file = \"{}\"\nalias_maps = []\n",
            d.path().display()
        );
        let main = Main::from_str(&d.path().join("main.toml"), &text).unwrap();
        let p = Policy::from_config(&main);
        assert_eq!(
            rejected(p.check_rcpt(&addr("a@mail.fiap.edu.br"), LOOPBACK)),
            "451 4.3.0 <a@mail.fiap.edu.br>: Temporary lookup failure"
        );
    }

    #[test]
    fn qualification_and_names() {
        let (_d, p) = policy("");
        assert_eq!(p.qualify(addr("root")).to_string(), "root@fiap.edu.br");
        assert_eq!(p.qualify(addr("root@x.org")).to_string(), "root@x.org");
        assert_eq!(client_name(LOOPBACK), "localhost");
        assert_eq!(client_name("::1".parse().unwrap()), "localhost");
        assert_eq!(client_name(OUTSIDE), "unknown");
        assert_eq!(canonical("::ffff:10.1.2.3".parse().unwrap()).to_string(), "10.1.2.3");
    }

    #[test]
    fn free_space_rule() {
        assert!(enough_space(100, 50, Some(50)));
        assert!(!enough_space(100, 50, Some(51)));
        assert!(enough_space(100, 0, None));
        assert!(!enough_space(0, u64::MAX, Some(u64::MAX)));
        assert!(queue_free_space(Path::new("/")).is_some());
        assert_eq!(queue_free_space(Path::new("/no/such/dir/postern")), None);
    }

    #[test]
    fn connection_counts() {
        let c = Arc::new(ConnectionCounts::default());
        let a = c.enter(LOOPBACK, 2).unwrap();
        let b = c.enter(LOOPBACK, 2).unwrap();
        assert_eq!(c.enter(LOOPBACK, 2).unwrap_err(), 3);
        assert!(c.enter(OUTSIDE, 2).is_ok());
        drop(a);
        assert_eq!(c.count(LOOPBACK), 1);
        let _again = c.enter(LOOPBACK, 2).unwrap();
        drop(b);
        // No limit.
        let many: Vec<_> = (0..10).map(|_| c.enter(OUTSIDE, 0).unwrap()).collect();
        assert_eq!(c.count(OUTSIDE), 10);
        drop(many);
        assert_eq!(c.count(OUTSIDE), 0);
    }

    /// IPv6 clients share one allowance per /64; IPv4 ones count per
    /// address, mapped or not.
    #[test]
    fn ipv6_clients_count_per_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let c = Arc::new(ConnectionCounts::default());
        let a = c.enter(ip("2001:db8:1:2::1"), 2).unwrap();
        let _b = c.enter(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 2).unwrap();
        assert_eq!(c.enter(ip("2001:db8:1:2:ffff::9"), 2).unwrap_err(), 3);
        // The next /64 is another client.
        let _other = c.enter(ip("2001:db8:1:3::1"), 2).unwrap();
        assert_eq!(c.count(ip("2001:db8:1:2::77")), 2);
        drop(a);
        assert!(c.enter(ip("2001:db8:1:2::5"), 2).is_ok());
        // IPv4: per address; a mapped address is the same client.
        let _v4 = c.enter(ip("192.0.2.1"), 1).unwrap();
        assert!(c.enter(ip("::ffff:192.0.2.1"), 1).is_err());
        assert!(c.enter(ip("192.0.2.2"), 1).is_ok());
        assert_eq!(client_key(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
    }
}
