//! Who may send what to whom: smtpd's recipient decision (the
//! restriction lists of [`crate::restrictions`], relay control that
//! sender-specified routing cannot trick, Postfix's implicit
//! `reject_unlisted_recipient` with the virtual alias table and
//! `local_recipient_maps`), the envelope rewriting of accepted addresses
//! (`mail_lookup::rewrite`), client naming, free space at MAIL FROM, and
//! the per-client connection count.
//!
//! Severities: lookup failures are returned as a 451 reply for the
//! session to send and log; nothing here is fatal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use mail_config::{LocalDomains, Main, Networks, settings};
use mail_lookup::LocalRecipientMaps;
use mail_lookup::maps::{self, Maps};
use mail_lookup::rewrite::{RewriteParams, Rewriter};
use mail_types::{Address, EnhancedStatus};
use smtp_proto::Reply;

use crate::restrictions::{
    self, CheckContext, Decision, Restriction, Restrictions, Stage, addr_text, rejected,
};

/// The recipient policy, built once per process from main.toml.
#[derive(Debug)]
pub(crate) struct Policy {
    /// `mydestination`, the local-domain test qmgr routes by too.
    mydestination: LocalDomains,
    myorigin: String,
    append_at_myorigin: bool,
    mynetworks: Networks,
    local_recipients: LocalRecipientMaps,
    recipient_delimiter: String,
    restrictions: Restrictions,
    rewriter: Arc<Rewriter>,
    relay_domains: mail_lookup::DomainList,
    sender_login_maps: Maps,
    reject_unlisted_recipient: bool,
    reject_unlisted_sender: bool,
    allow_untrusted_routing: bool,
    allow_percent_hack: bool,
    swap_bangpath: bool,
}

/// The outcome of a RCPT TO check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accept; the final envelope recipients: the address qualified with
    /// `myorigin` if it had no domain, its sender-specified routing to a
    /// local domain resolved, then canonical-mapped and virtual-alias
    /// expanded (one or more).
    Accept(Vec<Address>),
    /// Answer with this reply (the session logs it as a NOQUEUE reject).
    Reject(Reply),
}

fn reply(code: u16, status: (u8, u16, u16), text: String) -> Reply {
    Reply::with_status(code, EnhancedStatus(status.0, status.1, status.2), text)
}

fn lookup_failure(name: &str) -> Reply {
    reply(451, (4, 3, 0), format!("<{name}>: Temporary lookup failure"))
}

/// Where a recipient goes once the routing inside it is undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The address mail would go to.
    pub(crate) address: Address,
    /// Its domain is ours (`mydestination`), or it has none.
    pub(crate) local: bool,
    /// The client's address carried routing (`user%remote@ours`,
    /// `"user@remote"@ours`, `remote!user@ours`) that was followed.
    pub(crate) routed: bool,
}

/// The local part without its quotes (`"a b"` to `a b`, `\x` to `x`).
fn unquote(local: &str) -> String {
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return local.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many routing steps [`Policy::resolve`] follows.
const MAX_ROUTING_STEPS: usize = 8;

impl Policy {
    /// Reads the parameters the policy needs: myorigin,
    /// append_at_myorigin, mydestination, mynetworks, passwd_file,
    /// alias_maps, local_recipient_maps, recipient_delimiter, the restriction lists,
    /// relay_domains, smtpd_sender_login_maps, the routing switches and
    /// the rewriting tables. `Err` is a configuration error naming the
    /// parameter.
    pub(crate) fn from_config(config: &Main) -> Result<Policy, String> {
        let common = settings::Common::new(config);
        let smtpd = settings::Smtpd::new(config);
        let rewriter = Rewriter::new(RewriteParams::from_settings(&common))?;
        let local_recipients = LocalRecipientMaps::new(
            &smtpd.local_recipient_maps,
            common.passwd_file.as_deref(),
            &common.alias_maps,
            &smtpd.config_directory,
        )?;
        let restrictions = Restrictions::from_settings(&smtpd)?;
        let relay_domains = mail_lookup::DomainList::new(
            "relay_domains",
            &smtpd.relay_domains,
            &smtpd.config_directory,
        )?;
        Ok(Policy {
            mydestination: common.mydestination,
            myorigin: common.myorigin,
            append_at_myorigin: common.append_at_myorigin,
            mynetworks: smtpd.mynetworks,
            local_recipients,
            recipient_delimiter: common.recipient_delimiter,
            restrictions,
            rewriter: Arc::new(rewriter),
            relay_domains,
            sender_login_maps: Maps::new(smtpd.smtpd_sender_login_maps),
            reject_unlisted_recipient: smtpd.smtpd_reject_unlisted_recipient,
            reject_unlisted_sender: smtpd.smtpd_reject_unlisted_sender,
            allow_untrusted_routing: smtpd.allow_untrusted_routing,
            allow_percent_hack: smtpd.allow_percent_hack,
            swap_bangpath: smtpd.swap_bangpath,
        })
    }

    /// The canonical tables for cleanup's header pass, when some table
    /// rewrites header addresses (`*_canonical_classes`).
    pub(crate) fn header_rewriter(&self) -> Option<mail_cleanup::HeaderRewriter> {
        mail_lookup::rewrite::header_rewriter(&self.rewriter)
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

    /// The envelope sender for the queue file: qualified, then
    /// `sender_canonical_maps` and `canonical_maps`. `Err` is the reply
    /// to MAIL FROM when a table cannot be read.
    pub(crate) fn envelope_sender(&self, from: Option<&Address>) -> Result<Option<Address>, Reply> {
        let Some(from) = from else { return Ok(None) };
        let q = self.qualify(from.clone());
        match self.rewriter.sender(&q) {
            Ok(a) => Ok(Some(a)),
            Err(e) => {
                tracing::warn!("sender address rewriting for <{from}>: {e}");
                Err(lookup_failure(&from.to_string()))
            }
        }
    }

    /// Whether `client` may relay (it is in `mynetworks`).
    pub(crate) fn is_trusted(&self, client: IpAddr) -> bool {
        self.mynetworks.contains(client)
    }

    /// Whether mail for `domain` is delivered here: `mydestination` only,
    /// as in Postfix, and the same rule qmgr routes by. Address literals
    /// (`user@[127.0.0.1]`) are never local: `mydestination` holds names,
    /// and qmgr would route such an address to the network, so smtpd
    /// must not call it ours (Postfix counts literals of
    /// `inet_interfaces` as local; Postern leaves that out on purpose).
    fn is_local(&self, domain: &str) -> bool {
        self.mydestination.contains(domain)
    }

    /// Whether a RCPT check may wait on something other than local
    /// files: system users come through NSS (LDAP, sssd, ...), which can
    /// take as long as a network. File tables are cached in memory and
    /// re-read only when they change.
    pub(crate) fn rcpt_check_may_block(&self) -> bool {
        self.local_recipients.may_block()
    }

    /// Undoes sender-specified routing in an address for one of our
    /// domains, as Postfix's trivial-rewrite resolves a recipient: the
    /// local part is unquoted; then `user@remote` inside it (a quoted
    /// `"user@remote"@ours`), with `allow_percent_hack` `user%remote`,
    /// and with `swap_bangpath` `remote!user` each name the real
    /// destination, which is resolved again. Upper case and a trailing
    /// dot in the domain never matter (the address parser folds both).
    /// A route that does not give a valid address resolves to nowhere
    /// local, so it can only be relayed, never delivered here by mistake.
    pub(crate) fn resolve(&self, to: &Address) -> Resolved {
        let mut a = self.qualify(to.clone());
        let mut routed = false;
        for _ in 0..MAX_ROUTING_STEPS {
            let local = a.domain().is_none_or(|d| self.is_local(d));
            if !local {
                return Resolved { address: a, local: false, routed };
            }
            let lp = unquote(a.local());
            let split = if let Some(i) = lp.rfind('@') {
                Some((lp[..i].to_owned(), lp[i + 1..].to_owned()))
            } else if let Some(i) = lp.rfind('%').filter(|_| self.allow_percent_hack) {
                Some((lp[..i].to_owned(), lp[i + 1..].to_owned()))
            } else {
                lp.find('!')
                    .filter(|_| self.swap_bangpath)
                    .map(|i| (lp[i + 1..].to_owned(), lp[..i].to_owned()))
            };
            let Some((local_part, domain)) = split else {
                // No routing; a quoted local part that needs no quotes is
                // the same mailbox unquoted (`"suporte"@ours`).
                if lp != a.local()
                    && let Ok(plain) = Address::new(&lp, a.domain())
                {
                    a = plain;
                }
                return Resolved { address: a, local: true, routed };
            };
            routed = true;
            match Address::new(&local_part, Some(&domain)) {
                Ok(next) => a = next,
                Err(_) => return Resolved { address: a, local: false, routed },
            }
        }
        Resolved { address: a, local: false, routed }
    }

    /// Whether mail to `res` may come from anyone: a local domain, a
    /// virtual alias domain, or `relay_domains` (routed addresses only
    /// with `allow_untrusted_routing`).
    fn auth_destination(&self, res: &Resolved) -> Result<bool, mail_lookup::Error> {
        if res.local {
            return Ok(true);
        }
        let Some(d) = res.address.domain() else { return Ok(true) };
        if self.rewriter.is_virtual_alias_domain(d)? {
            return Ok(true);
        }
        if self.relay_domains.matches(d)? {
            return Ok(!res.routed || self.allow_untrusted_routing);
        }
        Ok(false)
    }

    /// The unknown-user reply for `addr` (resolved to `res`) in `class`,
    /// or `None` when some table lists it or it is not ours to know.
    /// Postfix's order: the canonical and virtual alias tables, then, for
    /// local domains, `local_recipient_maps` (by default users and
    /// aliases; empty: every name); for
    /// virtual alias domains only `virtual_alias_maps`.
    fn unlisted(
        &self,
        name: &str,
        res: &Resolved,
        sender: bool,
    ) -> Result<Option<Reply>, mail_lookup::Error> {
        let (dsn, class) =
            if sender { ((5, 1, 0), "Sender address") } else { ((5, 1, 1), "Recipient address") };
        if res.local {
            if self.rewriter.knows_recipient(&res.address)? {
                return Ok(None);
            }
            let domain = res.address.domain().unwrap_or(&self.myorigin);
            let exists = self.local_recipients.exists(
                res.address.local(),
                domain,
                &self.recipient_delimiter,
            )?;
            return Ok((!exists).then(|| {
                rejected(550, dsn, name, class, "User unknown in local recipient table")
            }));
        }
        if let Some(d) = res.address.domain()
            && self.rewriter.is_virtual_alias_domain(d)?
            && !self.rewriter.has_virtual_alias(&res.address)?
        {
            return Ok(Some(rejected(
                550,
                dsn,
                name,
                class,
                "User unknown in virtual alias table",
            )));
        }
        Ok(None)
    }

    /// Decides RCPT TO: the five restriction lists in Postfix's order
    /// (client, helo, sender, relay, recipient; `smtpd_delay_reject =
    /// yes`), then the implicit `reject_unlisted_recipient`
    /// (`smtpd_reject_unlisted_recipient`) and `reject_unlisted_sender`,
    /// then the rewriting of the accepted recipient. It may read the
    /// passwd-file, the aliases files and the tables, or wait on the
    /// system user database (see [`Policy::rcpt_check_may_block`]).
    /// A table that cannot be read is a 451 4.3.0.
    pub(crate) fn check_rcpt(&self, ctx: &CheckContext) -> Verdict {
        match self.check_rcpt_inner(ctx) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("recipient check for <{}>: {e}", ctx.recipient);
                Verdict::Reject(lookup_failure(&ctx.recipient.to_string()))
            }
        }
    }

    fn check_rcpt_inner(&self, ctx: &CheckContext) -> Result<Verdict, mail_lookup::Error> {
        let res = self.resolve(&ctx.recipient);
        for stage in [Stage::Client, Stage::Helo, Stage::Sender, Stage::Relay, Stage::Recipient] {
            for r in self.restrictions.list(stage) {
                match self.apply(r, stage, ctx, &res)? {
                    Decision::Dunno => continue,
                    Decision::Permit => break,
                    Decision::Reject(reply) => return Ok(Verdict::Reject(reply)),
                }
            }
        }
        let name = ctx.recipient.to_string();
        if self.reject_unlisted_recipient
            && let Some(r) = self.unlisted(&name, &res, false)?
        {
            return Ok(Verdict::Reject(r));
        }
        if self.reject_unlisted_sender
            && let Some(r) = self.unlisted_sender(ctx)?
        {
            return Ok(Verdict::Reject(r));
        }
        Ok(Verdict::Accept(self.rewriter.recipient(&res.address)?))
    }

    fn unlisted_sender(&self, ctx: &CheckContext) -> Result<Option<Reply>, mail_lookup::Error> {
        let Some(sender) = &ctx.sender else { return Ok(None) };
        let res = self.resolve(sender);
        self.unlisted(&sender.to_string(), &res, true)
    }

    /// One restriction.
    fn apply(
        &self,
        r: &Restriction,
        stage: Stage,
        ctx: &CheckContext,
        res: &Resolved,
    ) -> Result<Decision, mail_lookup::Error> {
        let permit_if = |b: bool| if b { Decision::Permit } else { Decision::Dunno };
        let (name, class) = restrictions::subject(stage, ctx);
        let rcpt = ctx.recipient.to_string();
        Ok(match r {
            Restriction::Permit => Decision::Permit,
            Restriction::Reject => {
                Decision::Reject(rejected(554, (5, 7, 1), &name, class, "Access denied"))
            }
            Restriction::Defer => {
                Decision::Reject(rejected(450, (4, 7, 1), &name, class, "Try again later"))
            }
            Restriction::PermitMynetworks => permit_if(self.is_trusted(ctx.client_addr)),
            Restriction::PermitSaslAuthenticated => permit_if(ctx.sasl_username.is_some()),
            Restriction::PermitAuthDestination => permit_if(self.auth_destination(res)?),
            Restriction::RejectUnauthDestination | Restriction::DeferUnauthDestination => {
                if self.auth_destination(res)? {
                    Decision::Dunno
                } else {
                    let (code, dsn) = if matches!(r, Restriction::RejectUnauthDestination) {
                        (554, (5, 7, 1))
                    } else {
                        (450, (4, 7, 1))
                    };
                    Decision::Reject(reply(code, dsn, format!("<{rcpt}>: Relay access denied")))
                }
            }
            Restriction::RejectUnlistedRecipient => match self.unlisted(&rcpt, res, false)? {
                Some(reply) => Decision::Reject(reply),
                None => Decision::Dunno,
            },
            Restriction::RejectUnlistedSender => match self.unlisted_sender(ctx)? {
                Some(reply) => Decision::Reject(reply),
                None => Decision::Dunno,
            },
            Restriction::RejectNonFqdnHeloHostname => match &ctx.helo {
                Some(h) if !restrictions::is_fqdn_or_literal(h) => Decision::Reject(rejected(
                    504,
                    (5, 5, 2),
                    h,
                    "Helo command",
                    "need fully-qualified hostname",
                )),
                _ => Decision::Dunno,
            },
            Restriction::RejectInvalidHeloHostname => match &ctx.helo {
                Some(h) if !restrictions::is_valid_helo(h) => {
                    Decision::Reject(rejected(501, (5, 5, 2), h, "Helo command", "Invalid name"))
                }
                _ => Decision::Dunno,
            },
            Restriction::RejectNonFqdnSender => match &ctx.sender {
                Some(s) if !restrictions::has_fqdn(s) => Decision::Reject(rejected(
                    504,
                    (5, 5, 2),
                    &s.to_string(),
                    "Sender address",
                    "need fully-qualified address",
                )),
                _ => Decision::Dunno,
            },
            Restriction::RejectNonFqdnRecipient => {
                if restrictions::has_fqdn(&ctx.recipient) {
                    Decision::Dunno
                } else {
                    Decision::Reject(rejected(
                        504,
                        (5, 5, 2),
                        &rcpt,
                        "Recipient address",
                        "need fully-qualified address",
                    ))
                }
            }
            Restriction::RejectSenderLoginMismatch { authenticated, unauthenticated } => {
                self.login_mismatch(ctx, *authenticated, *unauthenticated)?
            }
            Restriction::RejectPlaintextSession => {
                if ctx.tls {
                    Decision::Dunno
                } else {
                    Decision::Reject(reply(450, (4, 7, 1), "Session encryption is required".into()))
                }
            }
            Restriction::CheckClientAccess(t) => {
                match maps::access_client(t, &ctx.client_name, ctx.client_addr)? {
                    Some(v) => restrictions::access_action(&v, &name, class, t),
                    None => Decision::Dunno,
                }
            }
            Restriction::CheckHeloAccess(t) => match ctx.helo.as_deref() {
                Some(h) => match maps::access_domain(t, h)? {
                    Some(v) => restrictions::access_action(&v, h, "Helo command", t),
                    None => Decision::Dunno,
                },
                None => Decision::Dunno,
            },
            Restriction::CheckSenderAccess(t) => match &ctx.sender {
                Some(s) => {
                    let s = self.qualify(s.clone());
                    match maps::access_address(t, s.local(), s.domain(), &self.recipient_delimiter)?
                    {
                        Some(v) => restrictions::access_action(
                            &v,
                            &addr_text(ctx.sender.as_ref()),
                            "Sender address",
                            t,
                        ),
                        None => Decision::Dunno,
                    }
                }
                None => Decision::Dunno,
            },
            Restriction::CheckRecipientAccess(t) => {
                let a = &res.address;
                match maps::access_address(t, a.local(), a.domain(), &self.recipient_delimiter)? {
                    Some(v) => restrictions::access_action(&v, &rcpt, "Recipient address", t),
                    None => Decision::Dunno,
                }
            }
        })
    }

    /// `reject_sender_login_mismatch` and its two halves, with
    /// `smtpd_sender_login_maps` (sender -> owning logins, separated by
    /// commas or spaces; canonical(5) lookup order).
    fn login_mismatch(
        &self,
        ctx: &CheckContext,
        authenticated: bool,
        unauthenticated: bool,
    ) -> Result<Decision, mail_lookup::Error> {
        let Some(sender) = &ctx.sender else { return Ok(Decision::Dunno) };
        let q = self.qualify(sender.clone());
        let owners = match q.domain() {
            Some(d) if !self.sender_login_maps.is_empty() => maps::address_lookup(
                &self.sender_login_maps,
                q.local(),
                d,
                self.is_local(d) || d == self.myorigin,
                &self.recipient_delimiter,
            )?
            .map(|m| m.value),
            _ => None,
        };
        let name = sender.to_string();
        match (&ctx.sasl_username, owners) {
            (Some(user), owners) if authenticated => {
                let owned = owners.is_some_and(|o| {
                    o.split([',', ' ', '\t']).any(|x| !x.is_empty() && x.eq_ignore_ascii_case(user))
                });
                if owned {
                    Ok(Decision::Dunno)
                } else {
                    Ok(Decision::Reject(rejected(
                        553,
                        (5, 7, 1),
                        &name,
                        "Sender address",
                        &format!("not owned by user {user}"),
                    )))
                }
            }
            (None, Some(_)) if unauthenticated => Ok(Decision::Reject(rejected(
                553,
                (5, 7, 1),
                &name,
                "Sender address",
                "not logged in",
            ))),
            _ => Ok(Decision::Dunno),
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
        (dir, Policy::from_config(&main).unwrap())
    }

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    /// A RCPT TO from `client` without HELO, AUTH or TLS, sender `<>`.
    fn check(p: &Policy, to: &Address, client: IpAddr) -> Verdict {
        p.check_rcpt(&CheckContext {
            client_addr: client.to_canonical(),
            client_name: client_name(client.to_canonical()).to_owned(),
            helo: None,
            sasl_username: None,
            tls: false,
            sender: None,
            recipient: to.clone(),
        })
    }

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OUTSIDE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    fn rejected(v: Verdict) -> String {
        match v {
            Verdict::Reject(r) => r.to_string(),
            Verdict::Accept(a) => panic!("accepted {a:?}"),
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
            assert_eq!(check(&p, &addr(to), OUTSIDE), Verdict::Accept(vec![addr(want)]), "{to}");
        }
    }

    #[test]
    fn unknown_local_user_is_550() {
        let (_d, p) = policy("");
        assert_eq!(
            rejected(check(&p, &addr("ninguem@fiap.edu.br"), LOOPBACK)),
            "550 5.1.1 <ninguem@fiap.edu.br>: Recipient address rejected: User unknown in local recipient table"
        );
        // Without a delimiter, an extension is part of the name.
        assert!(matches!(check(&p, &addr("suporte+x@fiap.edu.br"), OUTSIDE), Verdict::Reject(_)));
        let (_d, p) = policy("recipient_delimiter = \"+\"\n");
        assert_eq!(
            check(&p, &addr("suporte+x@fiap.edu.br"), OUTSIDE),
            Verdict::Accept(vec![addr("suporte+x@fiap.edu.br")])
        );
    }

    #[test]
    fn local_recipient_maps_lists_the_tables() {
        // Empty: every local name is a recipient.
        let (_d, p) = policy("local_recipient_maps = \"\"\n");
        assert_eq!(
            check(&p, &addr("ninguem@fiap.edu.br"), OUTSIDE),
            Verdict::Accept(vec![addr("ninguem@fiap.edu.br")])
        );
        // Users only: the aliases file is no longer asked.
        let (_d, p) = policy("local_recipient_maps = \"unix:passwd.byname\"\n");
        assert!(matches!(check(&p, &addr("suporte@fiap.edu.br"), OUTSIDE), Verdict::Accept(_)));
        assert!(matches!(check(&p, &addr("postmaster@fiap.edu.br"), OUTSIDE), Verdict::Reject(_)));
        // A bad element is an error naming the parameter.
        let d = tempfile::tempdir().unwrap();
        let e = Main::from_str(
            &d.path().join("main.toml"),
            "local_recipient_maps = \"proxy:unix:passwd.byname, nis:mail.aliases\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("local_recipient_maps") && e.contains("\"nis:\""), "{e}");
    }

    #[test]
    fn relay_only_for_mynetworks() {
        let (_d, p) = policy("");
        assert_eq!(
            rejected(check(&p, &addr("x@example.org"), OUTSIDE)),
            "554 5.7.1 <x@example.org>: Relay access denied"
        );
        assert_eq!(
            check(&p, &addr("x@example.org"), LOOPBACK),
            Verdict::Accept(vec![addr("x@example.org")])
        );
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        assert!(matches!(check(&p, &addr("x@example.org"), v6), Verdict::Accept(_)));
        // A dual-stack socket's mapped form of a trusted IPv4 address.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(matches!(check(&p, &addr("x@example.org"), mapped), Verdict::Accept(_)));
        // A sub-domain of a local domain is not local.
        assert!(matches!(check(&p, &addr("x@sub.fiap.edu.br"), OUTSIDE), Verdict::Reject(_)));
    }

    #[test]
    fn unqualified_without_append_at_myorigin_is_local() {
        let (_d, p) = policy("append_at_myorigin = false\n");
        assert_eq!(check(&p, &addr("suporte"), OUTSIDE), Verdict::Accept(vec![addr("suporte")]));
        assert!(matches!(check(&p, &addr("nobody-here"), OUTSIDE), Verdict::Reject(_)));
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
        let p = Policy::from_config(&main).unwrap();
        assert_eq!(
            rejected(check(&p, &addr("a@mail.fiap.edu.br"), LOOPBACK)),
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

    /// A RCPT TO with every field of the context given.
    fn check_full(
        p: &Policy,
        client: &str,
        helo: Option<&str>,
        sasl: Option<&str>,
        tls: bool,
        sender: Option<&str>,
        to: &str,
    ) -> Verdict {
        let ip: IpAddr = client.parse().unwrap();
        p.check_rcpt(&CheckContext {
            client_addr: ip,
            client_name: client_name(ip).to_owned(),
            helo: helo.map(str::to_owned),
            sasl_username: sasl.map(str::to_owned),
            tls,
            sender: sender.map(addr),
            recipient: addr(to),
        })
    }

    fn accepted(v: Verdict) -> Vec<String> {
        match v {
            Verdict::Accept(a) => a.iter().map(ToString::to_string).collect(),
            Verdict::Reject(r) => panic!("rejected: {r}"),
        }
    }

    /// The open-relay battery from a client outside mynetworks: none
    /// relays; each is refused or accepted as a local recipient.
    #[test]
    fn relay_battery_from_outside() {
        let (_d, p) = policy("");
        let denied = |to: &str| {
            assert_eq!(
                rejected(check(&p, &addr(to), OUTSIDE)),
                format!("554 5.7.1 <{}>: Relay access denied", addr(to)),
                "{to}"
            )
        };
        denied("user%remote.example@fiap.edu.br");
        denied("remote.example!user@fiap.edu.br");
        denied("\"user@remote.example\"@fiap.edu.br");
        denied("\"user%remote.example\"@fiap.edu.br");
        denied("\"remote.example!user\"@fiap.edu.br");
        denied("user%remote.example%fiap.edu.br@fiap.edu.br");
        denied("user@[192.0.2.1]");
        denied("user@[127.0.0.1]");
        denied("user@[IPv6:::1]");
        denied("x@remote.example.");
        // The source route is dropped by the protocol machine: what
        // reaches the policy is the final address, a remote one.
        denied("user@remote.example");
        // Case and a trailing dot: the same local domain.
        assert_eq!(
            accepted(check(&p, &addr("SUPORTE@FIAP.EDU.BR."), OUTSIDE)),
            ["SUPORTE@fiap.edu.br"]
        );
        // Routing that ends in one of our domains is a local recipient,
        // stored as the address it resolves to.
        assert_eq!(
            accepted(check(&p, &addr("suporte%localhost@fiap.edu.br"), OUTSIDE)),
            ["suporte@localhost"]
        );
        assert_eq!(
            accepted(check(&p, &addr("\"suporte\"@fiap.edu.br"), OUTSIDE)),
            ["suporte@fiap.edu.br"]
        );
        assert_eq!(
            rejected(check(&p, &addr("ghost%localhost@fiap.edu.br"), OUTSIDE)),
            "550 5.1.1 <ghost%localhost@fiap.edu.br>: Recipient address rejected: User unknown in local recipient table"
        );
        // From mynetworks the same routed address is relayed to where it
        // really goes.
        assert_eq!(
            accepted(check(&p, &addr("user%remote.example@fiap.edu.br"), LOOPBACK)),
            ["user@remote.example"]
        );
    }

    #[test]
    fn routing_switches_and_relay_domains() {
        let (_d, p) = policy("allow_percent_hack = false\nswap_bangpath = false\n");
        // Without the hacks `%` and `!` are plain local-part characters.
        assert_eq!(
            rejected(check(&p, &addr("user%remote.example@fiap.edu.br"), OUTSIDE)),
            "550 5.1.1 <user%remote.example@fiap.edu.br>: Recipient address rejected: User unknown in local recipient table"
        );
        let (_d, p) = policy("relay_domains = [\"relay.example\"]\n");
        assert_eq!(accepted(check(&p, &addr("a@relay.example"), OUTSIDE)), ["a@relay.example"]);
        assert_eq!(
            accepted(check(&p, &addr("a@sub.relay.example"), OUTSIDE)),
            ["a@sub.relay.example"]
        );
        assert!(matches!(check(&p, &addr("a@notrelay.example"), OUTSIDE), Verdict::Reject(_)));
        // Routed to a relay domain: refused unless allow_untrusted_routing.
        assert_eq!(
            rejected(check(&p, &addr("a%relay.example@fiap.edu.br"), OUTSIDE)),
            "554 5.7.1 <a%relay.example@fiap.edu.br>: Relay access denied"
        );
        let (_d, p) =
            policy("relay_domains = [\"relay.example\"]\nallow_untrusted_routing = true\n");
        assert_eq!(
            accepted(check(&p, &addr("a%relay.example@fiap.edu.br"), OUTSIDE)),
            ["a@relay.example"]
        );
    }

    #[test]
    fn default_relay_restrictions_permit_sasl_clients() {
        let (_d, p) = policy("");
        let v = check_full(
            &p,
            "192.0.2.7",
            Some("c.example"),
            Some("suporte"),
            true,
            None,
            "x@remote.example",
        );
        assert_eq!(accepted(v), ["x@remote.example"]);
        let v =
            check_full(&p, "192.0.2.7", Some("c.example"), None, true, None, "x@remote.example");
        assert_eq!(rejected(v), "554 5.7.1 <x@remote.example>: Relay access denied");
    }

    /// The submission service's `smtpd_client_restrictions = permit_sasl_authenticated, reject`.
    #[test]
    fn client_restrictions() {
        let (_d, p) = policy("smtpd_client_restrictions = \"permit_sasl_authenticated, reject\"\n");
        let v = check_full(&p, "192.0.2.7", None, None, false, None, "suporte@fiap.edu.br");
        assert_eq!(
            rejected(v),
            "554 5.7.1 <unknown[192.0.2.7]>: Client host rejected: Access denied"
        );
        let v =
            check_full(&p, "192.0.2.7", None, Some("suporte"), false, None, "suporte@fiap.edu.br");
        assert_eq!(accepted(v), ["suporte@fiap.edu.br"]);
        let (_d, p) = policy("smtpd_client_restrictions = \"permit_mynetworks, defer\"\n");
        let v = check_full(&p, "192.0.2.7", None, None, false, None, "suporte@fiap.edu.br");
        assert_eq!(
            rejected(v),
            "450 4.7.1 <unknown[192.0.2.7]>: Client host rejected: Try again later"
        );
        assert_eq!(
            accepted(check(&p, &addr("suporte@fiap.edu.br"), LOOPBACK)),
            ["suporte@fiap.edu.br"]
        );
        let (_d, p) = policy("smtpd_client_restrictions = \"reject_plaintext_session\"\n");
        let v = check_full(&p, "192.0.2.7", None, None, false, None, "suporte@fiap.edu.br");
        assert_eq!(rejected(v), "450 4.7.1 Session encryption is required");
        let v = check_full(&p, "192.0.2.7", None, None, true, None, "suporte@fiap.edu.br");
        assert_eq!(accepted(v), ["suporte@fiap.edu.br"]);
    }

    #[test]
    fn helo_restrictions() {
        let (_d, p) = policy(
            "smtpd_helo_restrictions = \"reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\"\n",
        );
        let to = "suporte@fiap.edu.br";
        let h = |helo: &str| check_full(&p, "192.0.2.7", Some(helo), None, false, None, to);
        assert_eq!(
            rejected(h("localhost")),
            "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"
        );
        assert_eq!(
            rejected(h("bad_host!")),
            "501 5.5.2 <bad_host!>: Helo command rejected: Invalid name"
        );
        assert_eq!(accepted(h("mail.example.com")), [to]);
        assert_eq!(accepted(h("[192.0.2.7]")), [to]);
        // No HELO at all: nothing to check (smtpd_helo_required is the
        // protocol machine's).
        assert_eq!(accepted(check_full(&p, "192.0.2.7", None, None, false, None, to)), [to]);
    }

    #[test]
    fn sender_restrictions() {
        let (_d, p) = policy(
            "smtpd_sender_restrictions = \"reject_non_fqdn_sender, reject_unlisted_sender\"\n",
        );
        let to = "suporte@fiap.edu.br";
        let s = |from: Option<&str>| {
            check_full(&p, "192.0.2.7", Some("c.example"), None, false, from, to)
        };
        assert_eq!(
            rejected(s(Some("joe"))),
            "504 5.5.2 <joe>: Sender address rejected: need fully-qualified address"
        );
        assert_eq!(
            rejected(s(Some("ghost@fiap.edu.br"))),
            "550 5.1.0 <ghost@fiap.edu.br>: Sender address rejected: User unknown in local recipient table"
        );
        assert_eq!(accepted(s(Some("suporte@fiap.edu.br"))), [to]);
        assert_eq!(accepted(s(Some("anyone@remote.example"))), [to]);
        assert_eq!(accepted(s(None)), [to]);
        // The implicit check of smtpd_reject_unlisted_sender.
        let (_d, p) = policy("smtpd_reject_unlisted_sender = true\n");
        let v = check_full(&p, "192.0.2.7", None, None, false, Some("ghost@fiap.edu.br"), to);
        assert!(rejected(v).starts_with("550 5.1.0 <ghost@fiap.edu.br>"));
    }

    #[test]
    fn recipient_restrictions() {
        let (_d, p) = policy(
            "smtpd_relay_restrictions = []\n\
             smtpd_recipient_restrictions = \"reject_non_fqdn_recipient, permit_mynetworks, reject_unlisted_recipient, reject_unauth_destination\"\n\
             append_at_myorigin = false\n",
        );
        assert_eq!(
            rejected(check(&p, &addr("suporte"), OUTSIDE)),
            "504 5.5.2 <suporte>: Recipient address rejected: need fully-qualified address"
        );
        assert_eq!(
            rejected(check(&p, &addr("x@example.org"), OUTSIDE)),
            "554 5.7.1 <x@example.org>: Relay access denied"
        );
        assert_eq!(accepted(check(&p, &addr("x@example.org"), LOOPBACK)), ["x@example.org"]);
        let (_d, p) =
            policy("smtpd_relay_restrictions = \"permit_mynetworks, defer_unauth_destination\"\n");
        assert_eq!(
            rejected(check(&p, &addr("x@example.org"), OUTSIDE)),
            "450 4.7.1 <x@example.org>: Relay access denied"
        );
        let (_d, p) = policy("smtpd_relay_restrictions = \"permit_auth_destination, reject\"\n");
        assert_eq!(
            accepted(check(&p, &addr("suporte@fiap.edu.br"), OUTSIDE)),
            ["suporte@fiap.edu.br"]
        );
        assert_eq!(
            rejected(check(&p, &addr("x@example.org"), LOOPBACK)),
            "554 5.7.1 <x@example.org>: Recipient address rejected: Access denied"
        );
    }

    #[test]
    fn configuration_errors_name_the_parameter() {
        let err = |extra: &str| {
            let d = tempfile::tempdir().unwrap();
            let main = Main::from_str(&d.path().join("main.toml"), extra).unwrap();
            Policy::from_config(&main).unwrap_err()
        };
        assert_eq!(
            err("smtpd_recipient_restrictions = \"permit_everything\"\n"),
            "parameter \"smtpd_recipient_restrictions\": unknown smtpd restriction: \"permit_everything\""
        );
        assert!(
            err("smtpd_sender_restrictions = \"reject_unknown_sender_domain\"\n")
                .contains("not supported")
        );
        assert!(
            err("smtpd_relay_restrictions = \"permit_mynetworks\"\n")
                .contains("reject_unauth_destination")
        );
        assert!(
            err("smtpd_client_restrictions = \"check_client_access cidr:/x\"\n")
                .contains("\"cidr:\"")
        );
    }

    #[test]
    fn access_tables_and_reload() {
        let (d, _) = policy("");
        let access = d.path().join("access");
        std::fs::write(
            &access,
            "192.0.2.66 REJECT go away\nbad.example REJECT\nspam@remote.example 550 5.7.0 no spam\n\
             blocked@fiap.edu.br DEFER try later\n.example.net OK\n",
        )
        .unwrap();
        let extra = format!(
            "smtpd_client_restrictions = \"check_client_access hash:{a}\"\n\
             smtpd_helo_restrictions = \"check_helo_access texthash:{a}\"\n\
             smtpd_sender_restrictions = \"check_sender_access lmdb:{a}\"\n\
             smtpd_recipient_restrictions = \"check_recipient_access {a}\"\n",
            a = access.display()
        );
        let (_d2, p) = policy(&extra);
        let to = "suporte@fiap.edu.br";
        let v = check_full(&p, "192.0.2.66", None, None, false, None, to);
        assert_eq!(rejected(v), "554 5.7.1 <unknown[192.0.2.66]>: Client host rejected: go away");
        let v = check_full(&p, "192.0.2.7", Some("bad.example"), None, false, None, to);
        assert_eq!(rejected(v), "554 5.7.1 <bad.example>: Helo command rejected: Access denied");
        let v = check_full(
            &p,
            "192.0.2.7",
            Some("ok.example"),
            None,
            false,
            Some("spam@remote.example"),
            to,
        );
        assert_eq!(
            rejected(v),
            "550 5.7.0 <spam@remote.example>: Sender address rejected: no spam"
        );
        let v = check_full(&p, "192.0.2.7", None, None, false, None, "blocked@fiap.edu.br");
        assert_eq!(
            rejected(v),
            "450 4.7.1 <blocked@fiap.edu.br>: Recipient address rejected: try later"
        );
        // OK in the recipient list ends that list only: the implicit
        // unlisted-recipient check still applies.
        let v = check_full(&p, "192.0.2.7", None, None, false, None, "x@sub.example.net");
        assert_eq!(rejected(v), "554 5.7.1 <x@sub.example.net>: Relay access denied");
        assert_eq!(accepted(check_full(&p, "192.0.2.7", None, None, false, None, to)), [to]);
        // A changed table takes effect at the next lookup.
        std::fs::write(&access, "suporte@fiap.edu.br REJECT changed\n").unwrap();
        let f = std::fs::File::options().write(true).open(&access).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
        let v = check_full(&p, "192.0.2.66", None, None, false, None, to);
        assert_eq!(
            rejected(v),
            "554 5.7.1 <suporte@fiap.edu.br>: Recipient address rejected: changed"
        );
        // A table that disappears is a temporary failure, not an open door.
        std::fs::remove_file(&access).unwrap();
        let v = check_full(&p, "192.0.2.66", None, None, false, None, to);
        assert_eq!(rejected(v), "451 4.3.0 <suporte@fiap.edu.br>: Temporary lookup failure");
    }

    #[test]
    fn sender_login_mismatch() {
        let (d, _) = policy("");
        let logins = d.path().join("logins");
        std::fs::write(&logins, "suporte@fiap.edu.br suporte\nshared@fiap.edu.br ana, suporte\n")
            .unwrap();
        let extra = |list: &str| {
            format!(
                "smtpd_sender_login_maps = [\"hash:{}\"]\nsmtpd_sender_restrictions = \"{list}\"\n",
                logins.display()
            )
        };
        let (_d2, p) = policy(&extra("reject_sender_login_mismatch"));
        let to = "suporte@fiap.edu.br";
        let s = |sasl: Option<&str>, from: &str| {
            check_full(&p, "192.0.2.7", None, sasl, true, Some(from), to)
        };
        assert_eq!(accepted(s(Some("suporte"), "suporte@fiap.edu.br")), [to]);
        assert_eq!(accepted(s(Some("suporte"), "shared@fiap.edu.br")), [to]);
        assert_eq!(
            rejected(s(Some("ana"), "suporte@fiap.edu.br")),
            "553 5.7.1 <suporte@fiap.edu.br>: Sender address rejected: not owned by user ana"
        );
        assert_eq!(
            rejected(s(Some("suporte"), "other@remote.example")),
            "553 5.7.1 <other@remote.example>: Sender address rejected: not owned by user suporte"
        );
        assert_eq!(
            rejected(s(None, "suporte@fiap.edu.br")),
            "553 5.7.1 <suporte@fiap.edu.br>: Sender address rejected: not logged in"
        );
        assert_eq!(accepted(s(None, "other@remote.example")), [to]);
        let (_d3, p) = policy(&extra("reject_authenticated_sender_login_mismatch"));
        let v = check_full(&p, "192.0.2.7", None, None, true, Some("suporte@fiap.edu.br"), to);
        assert_eq!(accepted(v), [to]);
        let (_d4, p) = policy(&extra("reject_unauthenticated_sender_login_mismatch"));
        let v =
            check_full(&p, "192.0.2.7", None, Some("ana"), true, Some("suporte@fiap.edu.br"), to);
        assert_eq!(accepted(v), [to]);
    }

    #[test]
    fn virtual_aliases_and_canonical_at_rcpt() {
        let (d, _) = policy("");
        let virt = d.path().join("virtual");
        let canon = d.path().join("canonical");
        std::fs::write(
            &virt,
            "vdomain.test anything\ninfo@vdomain.test suporte, root\nequipe@fiap.edu.br suporte@fiap.edu.br, ana@remote.example\n",
        )
        .unwrap();
        std::fs::write(
            &canon,
            "root@fiap.edu.br admin@fiap.edu.br\nvelho@fiap.edu.br suporte@fiap.edu.br\n",
        )
        .unwrap();
        let extra = format!(
            "virtual_alias_maps = [\"hash:{}\"]\ncanonical_maps = [\"hash:{}\"]\n",
            virt.display(),
            canon.display()
        );
        let (_d2, p) = policy(&extra);
        assert_eq!(
            accepted(check(&p, &addr("info@vdomain.test"), OUTSIDE)),
            ["suporte@fiap.edu.br", "root@fiap.edu.br"]
        );
        assert_eq!(
            rejected(check(&p, &addr("nobody@vdomain.test"), OUTSIDE)),
            "550 5.1.1 <nobody@vdomain.test>: Recipient address rejected: User unknown in virtual alias table"
        );
        // No local user "equipe": the virtual alias lists it, so it is
        // accepted, and its expansion may leave this host.
        assert_eq!(
            accepted(check(&p, &addr("equipe@fiap.edu.br"), OUTSIDE)),
            ["suporte@fiap.edu.br", "ana@remote.example"]
        );
        // Canonical: "velho" is no user, but the table lists it.
        assert_eq!(
            accepted(check(&p, &addr("velho@fiap.edu.br"), OUTSIDE)),
            ["suporte@fiap.edu.br"]
        );
        assert_eq!(p.envelope_sender(Some(&addr("root"))).unwrap().unwrap(), "admin@fiap.edu.br");
        assert_eq!(p.envelope_sender(None).unwrap(), None);
    }
}
