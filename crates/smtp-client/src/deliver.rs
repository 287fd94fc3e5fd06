//! One delivery request: read the message from `active/ID`, find the
//! servers of the next hop, and try them in order until every recipient
//! has a final answer or there is no server left.
//!
//! What counts as what (Postfix's smtp(8)): a 2xx to the final dot is
//! `sent`; a 5xx to MAIL FROM, RCPT TO, DATA or the dot bounces; a 4xx,
//! a refused or lost connection, a timeout or a malformed reply defers
//! and the next server is tried, except once the final dot was sent:
//! then the server may have the message, and trying another would
//! deliver it twice, so the recipients wait for the next queue run. A
//! failed DNS lookup defers unless the answer was final (no such domain,
//! a null MX, an MX that is this host).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mail_config::settings::AddressPreference;
use mail_dns::{Mx, Resolver};
use mail_ipc::delivery::{DeliveryReply, DeliveryRequest, RecipientResult};
use mail_queue::{Envelope, Queue, State};
use mail_tls::ClientLevel;
use mail_types::esmtp::Body;
use mail_types::logline::DeliveryLine;
use mail_types::{DeliveryStatus, EnhancedStatus};
use tokio::time::Instant;

use crate::cache::Cache;
use crate::conn::{Conn, ConnError};
use crate::nexthop::{self, Hop};
use crate::reply::Reply;
use crate::settings::Settings;

/// The agent: settings, resolver and idle sessions, shared by every
/// request the process serves.
#[derive(Debug)]
pub struct Agent {
    /// The configuration.
    pub s: Settings,
    /// MX and address lookups.
    pub resolver: Resolver,
    /// Idle sessions.
    pub cache: Cache,
}

/// One server to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its name (MX host, relay host) or address.
    pub host: String,
    /// Where to connect.
    pub addr: SocketAddr,
}

/// The message as it goes on the wire.
struct Message {
    envelope: Envelope,
    /// CRLF line ends, dot-stuffed, ending with `.` CRLF.
    data: Vec<u8>,
    /// The content's size as SIZE= announces it.
    size: u64,
    /// Some octet has the high bit set.
    eight_bit: bool,
    /// SMTPUTF8 was asked for and an address or header needs it.
    needs_utf8: bool,
}

/// One recipient of the request and what has happened to it so far.
struct Rcpt {
    index: u32,
    address: String,
    original: String,
    /// The last outcome; final when `done`.
    status: Option<DeliveryStatus>,
    done: bool,
    relay: String,
    /// Connection setup and transmission time of the attempt that
    /// decided (delays=c/d).
    setup: f64,
    xfer: f64,
}

/// After one attempt: go on with the next server, or stop here.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Try,
    Stop,
}

fn ds(code: (u8, u16, u16)) -> EnhancedStatus {
    EnhancedStatus(code.0, code.1, code.2)
}

impl Agent {
    /// Delivers `req` and answers one result per recipient; logs each.
    pub async fn deliver(self: &Arc<Self>, req: &DeliveryRequest) -> DeliveryReply {
        let started = Instant::now();
        let mut rcpts: Vec<Rcpt> = req
            .recipients
            .iter()
            .map(|r| Rcpt {
                index: r.index,
                address: r.address.to_string(),
                original: r.original.clone(),
                status: None,
                done: false,
                relay: "none".into(),
                setup: 0.0,
                xfer: 0.0,
            })
            .collect();
        match self.read_message(req).await {
            Ok(msg) => self.route(req, &msg, &mut rcpts).await,
            Err(text) => {
                tracing::warn!("{}: cannot read queue file: {text}", req.queue_id);
                let st =
                    DeliveryStatus::defer(ds((4, 3, 0)), format!("cannot read queue file: {text}"));
                for r in &mut rcpts {
                    r.status = Some(st.clone());
                }
            }
        }
        let queued = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
            - req.arrival as f64
            - started.elapsed().as_secs_f64();
        let mut results = Vec::with_capacity(rcpts.len());
        for r in rcpts {
            let status = r.status.unwrap_or_else(|| {
                DeliveryStatus::defer(ds((4, 4, 1)), "no server of the next hop could be tried")
            });
            let total = queued.max(0.0) + started.elapsed().as_secs_f64();
            let line = DeliveryLine {
                queue_id: &req.queue_id,
                to: &r.address,
                orig_to: &r.original,
                relay: &r.relay,
                delay: total,
                delays: Some([queued.max(0.0), 0.0, r.setup, r.xfer]),
                status: &status,
            };
            tracing::info!("{}", line.format());
            results.push(RecipientResult { index: r.index, status });
        }
        DeliveryReply { results }
    }

    async fn read_message(&self, req: &DeliveryRequest) -> Result<Message, String> {
        let queue = Queue::new(&self.s.queue_directory);
        let id = req.queue_id.clone();
        let file = tokio::task::spawn_blocking(move || queue.read(State::Active, &id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(Message::new(file.envelope, &file.content))
    }

    /// Tries the next hop's servers, then `smtp_fallback_relay`'s.
    async fn route(&self, req: &DeliveryRequest, msg: &Message, rcpts: &mut [Rcpt]) {
        let hops = match nexthop::parse(&req.nexthop) {
            Ok(h) => h,
            Err(e) => {
                set_pending(rcpts, &DeliveryStatus::defer(ds((4, 3, 5)), e), "none");
                return;
            }
        };
        if self.try_hops(&hops, msg, rcpts, false).await == Next::Stop {
            return;
        }
        if pending(rcpts).is_empty() || self.s.p.smtp_fallback_relay.is_empty() {
            return;
        }
        let text = self.s.p.smtp_fallback_relay.join(",");
        match nexthop::parse(&text) {
            Ok(fallback) => {
                self.try_hops(&fallback, msg, rcpts, true).await;
            }
            Err(e) => tracing::warn!("smtp_fallback_relay: {e}"),
        }
    }

    async fn try_hops(
        &self,
        hops: &[Hop],
        msg: &Message,
        rcpts: &mut [Rcpt],
        fallback: bool,
    ) -> Next {
        let mut tried = 0;
        for hop in hops {
            if pending(rcpts).is_empty() {
                return Next::Stop;
            }
            let targets = match self.resolve(hop).await {
                Ok(t) => t,
                Err(status) => {
                    let last = hops.len() == 1 && !fallback;
                    if status.class() == Some(mail_types::Class::Permanent) && last {
                        set_pending(rcpts, &status, "none");
                        finalize_pending(rcpts);
                        return Next::Stop;
                    }
                    // Another hop may do; keep the reason if nothing else comes.
                    let soft = DeliveryStatus::defer(
                        if status.class() == Some(mail_types::Class::Permanent) {
                            ds((4, 4, 4))
                        } else {
                            status.dsn()
                        },
                        status.text(),
                    );
                    set_pending(rcpts, &soft, "none");
                    continue;
                }
            };
            for t in targets {
                if pending(rcpts).is_empty() {
                    return Next::Stop;
                }
                if tried >= self.s.p.smtp_mx_address_limit {
                    return Next::Try;
                }
                tried += 1;
                if self.attempt(&t, hop, msg, rcpts).await == Next::Stop {
                    return Next::Stop;
                }
            }
        }
        Next::Try
    }

    /// The servers of one hop, in the order to try them.
    pub async fn resolve(&self, hop: &Hop) -> Result<Vec<Target>, DeliveryStatus> {
        let port = hop.port.unwrap_or(self.s.p.smtp_tcp_port);
        let mut targets = Vec::new();
        if let Ok(ip) = hop.host.parse::<IpAddr>() {
            targets.push(Target { host: ip.to_string(), addr: SocketAddr::new(ip, port) });
        } else if !hop.mx {
            for ip in self.addresses(&hop.host).await? {
                targets.push(Target { host: hop.host.clone(), addr: SocketAddr::new(ip, port) });
            }
        } else {
            let domain = &hop.host;
            let mx = self.resolver.mx(domain).await.map_err(|e| dns_status(domain, "MX", &e))?;
            let hosts: Vec<String> = match mx {
                Mx::Null => {
                    return Err(DeliveryStatus::bounce(
                        ds((5, 1, 10)),
                        format!("Domain {domain} does not accept mail (nullMX)"),
                    ));
                }
                Mx::Implicit => vec![domain.clone()],
                Mx::Hosts(list) => list.into_iter().map(|m| m.host).collect(),
            };
            // An MX that is this host, and every one after it, would only
            // bring the mail back (Postfix drops MX hosts of our preference
            // or worse); the best one being us is a configuration loop.
            let me = self.s.p.myhostname.to_ascii_lowercase();
            let cut = hosts.iter().position(|h| *h == me).unwrap_or(hosts.len());
            if cut == 0 {
                return Err(loops(domain));
            }
            let mut soft: Option<DeliveryStatus> = None;
            let mut hard: Option<DeliveryStatus> = None;
            for host in &hosts[..cut] {
                match self.addresses(host).await {
                    Ok(ips) => {
                        targets.extend(ips.into_iter().map(|ip| Target {
                            host: host.clone(),
                            addr: SocketAddr::new(ip, port),
                        }))
                    }
                    Err(st) if st.class() == Some(mail_types::Class::Transient) => soft = Some(st),
                    Err(st) => hard = Some(st),
                }
            }
            if targets.is_empty() {
                return Err(soft.or(hard).unwrap_or_else(|| loops(domain)));
            }
        }
        if let Some(i) = targets.iter().position(|t| self.s.own_addresses.contains(&t.addr)) {
            if i == 0 {
                return Err(loops(&hop.host));
            }
            targets.truncate(i);
        }
        Ok(targets)
    }

    /// A host's addresses of the families `inet_protocols` allows, in
    /// `smtp_address_preference` order.
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DeliveryStatus> {
        let p = &self.s.p;
        let ips = if self.resolver.is_enabled() {
            self.resolver.ips(host).await.map_err(|e| dns_status(host, "A", &e))?
        } else {
            // Without DNS a [host] is looked up as libc does (/etc/hosts).
            let found =
                tokio::time::timeout(Duration::from_secs(10), tokio::net::lookup_host((host, 0)))
                    .await;
            match found {
                Ok(Ok(it)) => it.map(|a| a.ip()).take(mail_dns::ADDRESS_LIMIT).collect(),
                _ => return Err(dns_status(host, "A", &mail_dns::Error::Disabled)),
            }
        };
        let mut ips: Vec<IpAddr> = ips
            .into_iter()
            .filter(|ip| if ip.is_ipv4() { p.inet_protocols.ipv4 } else { p.inet_protocols.ipv6 })
            .collect();
        match p.smtp_address_preference {
            AddressPreference::Any => {}
            AddressPreference::Ipv4 => ips.sort_by_key(|ip| !ip.is_ipv4()),
            AddressPreference::Ipv6 => ips.sort_by_key(|ip| !ip.is_ipv6()),
        }
        if ips.is_empty() {
            return Err(DeliveryStatus::bounce(
                ds((5, 4, 4)),
                format!(
                    "Host or domain name not found. Name service error for name={host} type=A: Host found but no data record of the type inet_protocols allows"
                ),
            ));
        }
        Ok(ips)
    }

    /// One server: a cached session or a new one, then the transaction.
    async fn attempt(&self, t: &Target, hop: &Hop, msg: &Message, rcpts: &mut [Rcpt]) -> Next {
        let setup_start = Instant::now();
        let limits = &self.s.p;
        let mut conn = None;
        while let Some(mut c) = self.cache.take(t.addr, limits.smtp_connection_cache_time_limit) {
            match c.command("RSET", limits.smtp_mail_timeout).await {
                Ok(r) if r.is_ok() => {
                    conn = Some(c);
                    break;
                }
                _ => {}
            }
        }
        let mut conn = match conn {
            Some(c) => c,
            None => match self.open(t, hop, true).await {
                Ok(c) => c,
                Err(Fail::Retry) => match self.open(t, hop, false).await {
                    Ok(c) => c,
                    Err(f) => return self.failed(f, t, rcpts),
                },
                Err(f) => return self.failed(f, t, rcpts),
            },
        };
        let setup = setup_start.elapsed().as_secs_f64();
        let xfer_start = Instant::now();
        let (next, healthy) = self.transaction(&mut conn, msg, rcpts, setup, xfer_start).await;
        conn.uses += 1;
        let reuse_ok = limits.smtp_connection_reuse_count_limit == 0
            || conn.uses < limits.smtp_connection_reuse_count_limit;
        if healthy && reuse_ok && !limits.smtp_connection_cache_time_limit.is_zero() {
            if let Some(c) = self.cache.put(conn) {
                c.quit(limits.smtp_quit_timeout).await;
            }
        } else if healthy {
            conn.quit(limits.smtp_quit_timeout).await;
        }
        next
    }

    fn failed(&self, f: Fail, t: &Target, rcpts: &mut [Rcpt]) -> Next {
        let relay = format!("{}[{}]:{}", t.host, t.addr.ip(), t.addr.port());
        match f {
            Fail::Retry => {
                let st = DeliveryStatus::defer(ds((4, 7, 5)), "TLS handshake failed twice");
                set_pending(rcpts, &st, &relay);
                Next::Try
            }
            Fail::Defer(st, relay) => {
                // Postfix logs each server that could not be used, so an
                // operator sees why the mail went to the next one.
                tracing::info!("{}", st.text());
                set_pending(rcpts, &st, &relay);
                Next::Try
            }
            Fail::Bounce(st, relay) => {
                set_pending(rcpts, &st, &relay);
                finalize_pending(rcpts);
                Next::Stop
            }
        }
    }

    /// Connects and greets: banner, EHLO (HELO when refused), STARTTLS
    /// as the level says, AUTH when a password is known. `tls` false:
    /// the plain-text retry after a failed handshake at level `may`.
    async fn open(&self, t: &Target, hop: &Hop, tls: bool) -> Result<Conn, Fail> {
        let p = &self.s.p;
        let plain_relay = format!("{}[{}]:{}", t.host, t.addr.ip(), t.addr.port());
        let mut c = Conn::connect(&t.host, t.addr, p.smtp_connect_timeout)
            .await
            .map_err(|text| Fail::Defer(DeliveryStatus::defer(ds((4, 4, 1)), text), plain_relay))?;
        let relay = c.relay();
        let defer = |st: DeliveryStatus| Fail::Defer(st, relay.clone());
        let greeting = c
            .reply(p.smtp_helo_timeout)
            .await
            .map_err(|e| defer(conn_status(&c, "receiving the initial server greeting", e)))?;
        if !greeting.is_ok() {
            return Err(defer(DeliveryStatus::defer(
                reply_dsn(&greeting, 4),
                format!("host {} refused to talk to me: {}", c.name(), greeting.text()),
            )));
        }
        self.hello(&mut c).await?;
        let level = self.s.level;
        if tls && level != ClientLevel::None && c.ext.starttls {
            let config = self.s.tls.clone();
            let r = c
                .command("STARTTLS", p.smtp_starttls_timeout)
                .await
                .map_err(|e| defer(conn_status(&c, "sending STARTTLS", e)))?;
            match (r.code, config) {
                (220, Some(config)) => {
                    if let Err(why) = c.start_tls(config, &t.host, p.smtp_starttls_timeout).await {
                        tracing::warn!("TLS handshake with {} failed: {why}", c.name());
                        if level == ClientLevel::May {
                            return Err(Fail::Retry);
                        }
                        return Err(defer(DeliveryStatus::defer(
                            ds((4, 7, 5)),
                            format!("Cannot start TLS: handshake failure with {}: {why}", c.name()),
                        )));
                    }
                    if let Some(summary) = &c.tls {
                        // Postfix's words: may and encrypt do not check the
                        // certificate, verify and secure do.
                        let trust = match level {
                            ClientLevel::Verify | ClientLevel::Secure => "Verified",
                            _ => "Untrusted",
                        };
                        tracing::info!(
                            "{trust} TLS connection established to {}: {summary}",
                            c.relay()
                        );
                    }
                    self.hello(&mut c).await?;
                }
                _ if level == ClientLevel::May => {}
                (_, _) => {
                    return Err(defer(DeliveryStatus::defer(
                        ds((4, 7, 4)),
                        format!(
                            "TLS is required, but host {} refused to start TLS: {}",
                            c.name(),
                            r.text()
                        ),
                    )));
                }
            }
        } else if level != ClientLevel::None && level != ClientLevel::May && c.tls.is_none() {
            return Err(defer(DeliveryStatus::defer(
                ds((4, 7, 4)),
                format!("TLS is required, but was not offered by host {}", c.name()),
            )));
        }
        if p.smtp_sasl_auth_enable && !c.ext.auth.is_empty() {
            self.auth(&mut c, hop).await?;
        }
        Ok(c)
    }

    async fn hello(&self, c: &mut Conn) -> Result<(), Fail> {
        let p = &self.s.p;
        let relay = c.relay();
        let r =
            c.command(&format!("EHLO {}", p.smtp_helo_name), p.smtp_helo_timeout).await.map_err(
                |e| Fail::Defer(conn_status(c, "performing the EHLO handshake", e), relay.clone()),
            )?;
        let r = if r.is_ok() {
            c.ext = crate::reply::Extensions::from_ehlo(&r);
            r
        } else {
            let h = c
                .command(&format!("HELO {}", p.smtp_helo_name), p.smtp_helo_timeout)
                .await
                .map_err(|e| {
                    Fail::Defer(conn_status(c, "performing the HELO handshake", e), relay.clone())
                })?;
            if !h.is_ok() {
                return Err(Fail::Defer(
                    DeliveryStatus::defer(reply_dsn(&h, 4), said(c, &h, "HELO")),
                    relay,
                ));
            }
            c.ext = crate::reply::Extensions::default();
            h
        };
        let name = r.lines.first().and_then(|l| l.split(' ').next()).unwrap_or("");
        if name.eq_ignore_ascii_case(&p.myhostname) {
            return Err(Fail::Bounce(
                DeliveryStatus::bounce(
                    ds((5, 4, 6)),
                    format!(
                        "mail for {} loops back to myself (host {} greeted me with my own hostname {name})",
                        c.host,
                        c.name()
                    ),
                ),
                relay,
            ));
        }
        Ok(())
    }

    /// AUTH PLAIN or LOGIN with the password `smtp_sasl_password_maps`
    /// gives this server; only inside TLS, so a password never crosses
    /// the network in clear (Postfix's `noplaintext` default).
    async fn auth(&self, c: &mut Conn, hop: &Hop) -> Result<(), Fail> {
        use base64ct::{Base64, Encoding};
        let Some((user, pass)) = self.password(c, hop) else { return Ok(()) };
        let relay = c.relay();
        if c.tls.is_none() {
            tracing::warn!("{}: not sending a password without TLS", c.name());
            return Ok(());
        }
        let limit = self.s.p.smtp_mail_timeout;
        let fail = |c: &Conn, e| Fail::Defer(conn_status(c, "authenticating", e), relay.clone());
        let r = if c.ext.auth.iter().any(|m| m == "PLAIN") {
            let token = Base64::encode_string(format!("\0{user}\0{pass}").as_bytes());
            c.command(&format!("AUTH PLAIN {token}"), limit).await.map_err(|e| fail(c, e))?
        } else if c.ext.auth.iter().any(|m| m == "LOGIN") {
            let r = c.command("AUTH LOGIN", limit).await.map_err(|e| fail(c, e))?;
            if r.code != 334 {
                r
            } else {
                let u = Base64::encode_string(user.as_bytes());
                let r = c.command(&u, limit).await.map_err(|e| fail(c, e))?;
                if r.code != 334 {
                    r
                } else {
                    let pw = Base64::encode_string(pass.as_bytes());
                    c.command(&pw, limit).await.map_err(|e| fail(c, e))?
                }
            }
        } else {
            return Ok(());
        };
        if r.code == 235 {
            return Ok(());
        }
        Err(Fail::Defer(
            DeliveryStatus::defer(
                ds((4, 7, 0)),
                format!("SASL authentication failed; server {} said: {}", c.name(), r.text()),
            ),
            relay,
        ))
    }

    /// The user and password for this server, looked up as Postfix does:
    /// the next hop as written, `[host]:port`, `[host]`, `host:port`,
    /// `host`, then the next-hop domain.
    fn password(&self, c: &Conn, hop: &Hop) -> Option<(String, String)> {
        if self.s.sasl.is_empty() {
            return None;
        }
        let port = c.peer.port();
        let keys = [
            hop.spelled(),
            format!("[{}]:{port}", c.host),
            format!("[{}]", c.host),
            format!("{}:{port}", c.host),
            c.host.clone(),
            hop.host.clone(),
        ];
        for key in keys {
            match self.s.sasl.get(&key) {
                Ok(Some(v)) => {
                    let (u, p) = v.split_once(':')?;
                    return Some((u.trim().to_owned(), p.to_owned()));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("smtp_sasl_password_maps: {e}");
                    return None;
                }
            }
        }
        None
    }

    /// MAIL, RCPT, DATA, content. Returns what to do next and whether the
    /// session can carry another message.
    async fn transaction(
        &self,
        c: &mut Conn,
        msg: &Message,
        rcpts: &mut [Rcpt],
        setup: f64,
        xfer_start: Instant,
    ) -> (Next, bool) {
        let p = &self.s.p;
        let relay = c.relay();
        let todo: Vec<usize> = (0..rcpts.len()).filter(|&i| !rcpts[i].done).collect();
        let stamp = |rcpts: &mut [Rcpt], i: usize| {
            rcpts[i].relay = relay.clone();
            rcpts[i].setup = setup;
            rcpts[i].xfer = xfer_start.elapsed().as_secs_f64();
        };
        let all = |rcpts: &mut [Rcpt], st: &DeliveryStatus, fin: bool| {
            for &i in &todo {
                rcpts[i].status = Some(st.clone());
                rcpts[i].done = fin;
                stamp(rcpts, i);
            }
        };
        // Refusals known before anything is sent.
        if let Some(limit) = c.ext.size.filter(|s| *s > 0)
            && msg.size > limit
        {
            let st = DeliveryStatus::bounce(
                ds((5, 3, 4)),
                format!(
                    "message size {} exceeds size limit {limit} of server {}",
                    msg.size,
                    c.name()
                ),
            );
            all(rcpts, &st, true);
            return (Next::Stop, true);
        }
        if msg.needs_utf8 && !c.ext.smtputf8 {
            let st = DeliveryStatus::bounce(
                ds((5, 6, 7)),
                format!("SMTPUTF8 is required, but was not offered by host {}", c.name()),
            );
            all(rcpts, &st, true);
            return (Next::Stop, true);
        }
        let mut mail = format!(
            "MAIL FROM:<{}>",
            msg.envelope.sender.as_ref().map(ToString::to_string).unwrap_or_default()
        );
        if c.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", msg.size));
        }
        if c.ext.eight_bit_mime {
            match msg.envelope.esmtp.body {
                Some(Body::EightBitMime) => mail.push_str(" BODY=8BITMIME"),
                Some(Body::SevenBit) => mail.push_str(" BODY=7BIT"),
                None if msg.eight_bit => mail.push_str(" BODY=8BITMIME"),
                None => {}
            }
        }
        if msg.needs_utf8 {
            mail.push_str(" SMTPUTF8");
        }
        if c.ext.dsn {
            match msg.envelope.esmtp.ret {
                Some(mail_types::esmtp::Ret::Full) => mail.push_str(" RET=FULL"),
                Some(mail_types::esmtp::Ret::Hdrs) => mail.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = &msg.envelope.esmtp.envid {
                mail.push_str(&format!(" ENVID={}", xtext(envid)));
            }
        }
        let rcpt_lines: Vec<String> = todo
            .iter()
            .map(|&i| {
                let mut l = format!("RCPT TO:<{}>", rcpts[i].address);
                let params = msg
                    .envelope
                    .recipients
                    .get(rcpts[i].index as usize)
                    .map(|r| r.esmtp.clone())
                    .unwrap_or_default();
                if c.ext.dsn {
                    if let Some(n) = params.notify {
                        l.push_str(&format!(" NOTIFY={n}"));
                    }
                    if let Some(o) = &params.orcpt {
                        l.push_str(&format!(" ORCPT={};{}", o.addr_type, xtext(&o.address)));
                    }
                }
                l
            })
            .collect();

        // The replies, pipelined when the server allows it.
        let lost = |c: &Conn, stage: &str, e: ConnError| conn_status(c, stage, e);
        let mail_reply;
        let mut rcpt_replies = Vec::with_capacity(todo.len());
        let data_reply;
        if c.ext.pipelining {
            let mut batch = format!("{mail}\r\n");
            for l in &rcpt_lines {
                batch.push_str(l);
                batch.push_str("\r\n");
            }
            batch.push_str("DATA\r\n");
            if let Err(e) = c.send(batch.as_bytes(), p.smtp_mail_timeout).await {
                all(rcpts, &lost(c, "sending MAIL FROM", e), false);
                return (Next::Try, false);
            }
            mail_reply = match c.reply(p.smtp_mail_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    all(rcpts, &lost(c, "sending MAIL FROM", e), false);
                    return (Next::Try, false);
                }
            };
            for _ in &todo {
                match c.reply(p.smtp_rcpt_timeout).await {
                    Ok(r) => rcpt_replies.push(r),
                    Err(e) => {
                        all(rcpts, &lost(c, "sending RCPT TO", e), false);
                        return (Next::Try, false);
                    }
                }
            }
            data_reply = match c.reply(p.smtp_data_init_timeout).await {
                Ok(r) => Some(r),
                Err(e) => {
                    all(rcpts, &lost(c, "sending DATA command", e), false);
                    return (Next::Try, false);
                }
            };
        } else {
            mail_reply = match c.command(&mail, p.smtp_mail_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    all(rcpts, &lost(c, "sending MAIL FROM", e), false);
                    return (Next::Try, false);
                }
            };
            if mail_reply.is_ok() {
                for l in &rcpt_lines {
                    match c.command(l, p.smtp_rcpt_timeout).await {
                        Ok(r) => rcpt_replies.push(r),
                        Err(e) => {
                            all(rcpts, &lost(c, "sending RCPT TO", e), false);
                            return (Next::Try, false);
                        }
                    }
                }
            }
            data_reply = None;
        }
        if !mail_reply.is_ok() {
            let st = failure(c, &mail_reply, "MAIL FROM");
            let fin = mail_reply.is_permanent();
            all(rcpts, &st, fin);
            // A pipelined DATA may have been accepted without recipients'
            // mail: RSET clears it, and a cached session starts clean.
            let healthy =
                matches!(c.command("RSET", p.smtp_mail_timeout).await, Ok(r) if r.is_ok());
            return (if fin { Next::Stop } else { Next::Try }, healthy);
        }
        let mut accepted = Vec::new();
        for (&i, r) in todo.iter().zip(&rcpt_replies) {
            if r.is_ok() {
                accepted.push(i);
            } else {
                rcpts[i].status = Some(failure(c, r, "RCPT TO"));
                rcpts[i].done = r.is_permanent();
                stamp(rcpts, i);
            }
        }
        if accepted.is_empty() {
            let healthy =
                matches!(c.command("RSET", p.smtp_mail_timeout).await, Ok(r) if r.is_ok());
            let next = if todo.iter().any(|&i| !rcpts[i].done) { Next::Try } else { Next::Stop };
            return (next, healthy);
        }
        let data_reply = match data_reply {
            Some(r) => r,
            None => match c.command("DATA", p.smtp_data_init_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    let st = lost(c, "sending DATA command", e);
                    for &i in &accepted {
                        rcpts[i].status = Some(st.clone());
                        stamp(rcpts, i);
                    }
                    return (Next::Try, false);
                }
            },
        };
        if data_reply.code != 354 {
            let st = failure(c, &data_reply, "DATA");
            for &i in &accepted {
                rcpts[i].status = Some(st.clone());
                rcpts[i].done = data_reply.is_permanent();
                stamp(rcpts, i);
            }
            let healthy =
                matches!(c.command("RSET", p.smtp_mail_timeout).await, Ok(r) if r.is_ok());
            let next = if todo.iter().any(|&i| !rcpts[i].done) { Next::Try } else { Next::Stop };
            return (next, healthy);
        }
        if let Err(e) = self.send_data(c, &msg.data).await {
            let st = lost(c, "sending message body", e);
            for &i in &accepted {
                rcpts[i].status = Some(st.clone());
                stamp(rcpts, i);
            }
            return (Next::Try, false);
        }
        match c.reply(p.smtp_data_done_timeout).await {
            Ok(r) => {
                let st = if r.is_ok() {
                    DeliveryStatus::Sent {
                        dsn: r.enhanced().unwrap_or(ds((2, 0, 0))),
                        text: r.text(),
                    }
                } else {
                    failure(c, &r, "end of DATA")
                };
                for &i in &accepted {
                    rcpts[i].status = Some(st.clone());
                    rcpts[i].done = !r.is_transient();
                    stamp(rcpts, i);
                }
                let next =
                    if todo.iter().any(|&i| !rcpts[i].done) { Next::Try } else { Next::Stop };
                (next, true)
            }
            Err(e) => {
                // The server may have the message: no other server now.
                let st = lost(c, "sending end of data -- message may be sent more than once", e);
                // Deferred, not final: qmgr retries at the next queue run.
                for &i in &accepted {
                    rcpts[i].status = Some(st.clone());
                    stamp(rcpts, i);
                }
                (Next::Stop, false)
            }
        }
    }

    /// The content in chunks, each within `smtp_data_xfer_timeout`.
    async fn send_data(&self, c: &mut Conn, data: &[u8]) -> Result<(), ConnError> {
        for chunk in data.chunks(64 * 1024) {
            c.send(chunk, self.s.p.smtp_data_xfer_timeout).await?;
        }
        Ok(())
    }
}

/// Why a connection could not be used.
enum Fail {
    /// Retry the same server without TLS (level `may`).
    Retry,
    /// Try the next server; the status and relay if none is left.
    Defer(DeliveryStatus, String),
    /// Final for every pending recipient.
    Bounce(DeliveryStatus, String),
}

fn pending(rcpts: &[Rcpt]) -> Vec<usize> {
    (0..rcpts.len()).filter(|&i| !rcpts[i].done).collect()
}

fn set_pending(rcpts: &mut [Rcpt], st: &DeliveryStatus, relay: &str) {
    for r in rcpts.iter_mut().filter(|r| !r.done) {
        r.status = Some(st.clone());
        r.relay = relay.to_owned();
    }
}

fn finalize_pending(rcpts: &mut [Rcpt]) {
    for r in rcpts.iter_mut() {
        r.done = true;
    }
}

fn loops(domain: &str) -> DeliveryStatus {
    DeliveryStatus::bounce(ds((5, 4, 6)), format!("mail for {domain} loops back to myself"))
}

/// A DNS failure in Postfix's words; only "no such name" is final.
fn dns_status(name: &str, rtype: &str, e: &mail_dns::Error) -> DeliveryStatus {
    match e {
        mail_dns::Error::Disabled => DeliveryStatus::defer(
            ds((4, 4, 3)),
            format!(
                "Host or domain name not found: DNS lookups disabled (disable_dns_lookups = yes); cannot look up name={name} type={rtype}"
            ),
        ),
        mail_dns::Error::Temporary(why) => DeliveryStatus::defer(
            ds((4, 4, 3)),
            format!(
                "Host or domain name not found. Name service error for name={name} type={rtype}: Host not found, try again ({why})"
            ),
        ),
        mail_dns::Error::NotFound | mail_dns::Error::InvalidName => DeliveryStatus::bounce(
            ds((5, 4, 4)),
            format!(
                "Host or domain name not found. Name service error for name={name} type={rtype}: Host not found"
            ),
        ),
    }
}

/// A connection-level failure at `stage`, in Postfix's words.
fn conn_status(c: &Conn, stage: &str, e: ConnError) -> DeliveryStatus {
    let text = match e {
        ConnError::Lost(why) => format!("lost connection with {} while {stage} ({why})", c.name()),
        ConnError::Timeout => format!("conversation with {} timed out while {stage}", c.name()),
        ConnError::Protocol(why) => {
            format!("malformed reply from {} while {stage}: {why}", c.name())
        }
    };
    DeliveryStatus::defer(ds((4, 4, 2)), text)
}

/// `host h[a] said: REPLY (in reply to CMD command)`.
fn said(c: &Conn, r: &Reply, command: &str) -> String {
    format!("host {} said: {} (in reply to {command} command)", c.name(), r.text())
}

/// The reply's enhanced code, or the generic one of its class.
fn reply_dsn(r: &Reply, class: u8) -> EnhancedStatus {
    r.enhanced().unwrap_or(ds((class, 0, 0)))
}

/// A 4xx or 5xx reply as the recipient's status.
fn failure(c: &Conn, r: &Reply, command: &str) -> DeliveryStatus {
    let text = said(c, r, command);
    if r.is_permanent() {
        DeliveryStatus::bounce(reply_dsn(r, 5), text)
    } else {
        DeliveryStatus::defer(reply_dsn(r, 4), text)
    }
}

/// RFC 3461 §4 xtext.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

impl Message {
    fn new(envelope: Envelope, content: &[u8]) -> Message {
        let mut data = Vec::with_capacity(content.len() + content.len() / 40 + 8);
        for line in content.split_inclusive(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(line);
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        let eight_bit = content.iter().any(|b| *b >= 0x80);
        let header_end = content.windows(2).position(|w| w == b"\n\n").unwrap_or(content.len());
        let needs_utf8 = envelope.esmtp.smtputf8
            && (envelope.sender.as_ref().is_some_and(mail_types::Address::is_utf8)
                || envelope.recipients.iter().any(|r| r.address.is_utf8())
                || content[..header_end].iter().any(|b| *b >= 0x80));
        let size = content.len() as u64 + content.iter().filter(|b| **b == b'\n').count() as u64;
        Message { envelope, data, size, eight_bit, needs_utf8 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_escapes() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn content_is_dot_stuffed_with_crlf() {
        let e = Envelope {
            sender: None,
            recipients: Vec::new(),
            arrival: 0,
            client: String::new(),
            origin: String::new(),
            attrs: Vec::new(),
            esmtp: Default::default(),
        };
        let m = Message::new(e, b"Subject: x\n\n.hidden\nend\n");
        assert_eq!(m.data, b"Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n");
        assert!(!m.eight_bit && !m.needs_utf8);
    }
}
