//! One SMTP session: the tokio driver around `smtp_proto::Server`.
//!
//! The loop is: write what is pending, read (bounded by the time limits
//! below), hand the bytes to the machine, answer its decisions (MAIL,
//! RCPT, VRFY, the message), and collect every reply produced so that a
//! pipelined batch (RFC 2920 §3.1) is answered with one write. The
//! machine decides where commands and the DATA stream begin and end
//! (CRLF.CRLF only, against SMTP smuggling), and tags each reply with the
//! command it answers, for the counters and the log lines.
//!
//! Bounds: the machine holds at most one read plus a partial command
//! line; message content is taken from it as it arrives and streamed to
//! the queue file (`enqueue::Incoming`, on `mail_submit::Stream`), so only the header block
//! (`header_size_limit`) and one write's worth of body are in memory.
//! Time: `smtpd_timeout` per read or write, `smtpd_data_deadline` for one
//! DATA stream, `smtpd_session_deadline` for the whole connection; past
//! any of them the client gets `421 4.4.2 ... Error: timeout exceeded`.
//!
//! Log lines follow Postfix: `connect from`, `NOQUEUE: reject: ...`,
//! `lost connection after CMD from`, `timeout after CMD from` (with
//! `DATA (N bytes)` in DATA), `too many errors after CMD from`, and
//! `disconnect from NAME[ADDR]` with the command counters. Severities:
//! every failure ends or answers this session only; nothing here is fatal
//! to the process.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use mail_auth::sasl::{ErrorKind as SaslError, Mechanism, Sasl, Step};
use mail_ipc::auth;
use mail_types::{Address, EnhancedStatus};
use smtp_proto::{Answered, Event, MailParams, RcptParams, Reply, Server, Verb};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::counters::Counters;
use crate::enqueue::{self, Incoming};
use crate::policy::{self, Verdict};
use crate::restrictions::CheckContext;
use crate::serve::Context;
use crate::settings::{ERROR_SLEEP, TlsLevel};
use mail_submit::{Origin, Submission};
use mail_tls::ServerConn as Conn;

/// Bytes asked for per read once the client sends in bulk (DATA).
const READ_CHUNK: usize = 16 * 1024;

/// The read buffer of a session that sends only commands: an idle
/// connection costs this, not [`READ_CHUNK`] (5,000 idle sessions in
/// one process are 10 MB of buffers instead of 80 MB).
const READ_START: usize = 1024;

/// The client as logs name it: `localhost[127.0.0.1]`.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// The confirmed DNS name, or without lookups `localhost` or
    /// `unknown`; a valid host name or `unknown`, safe in logs and headers.
    pub(crate) name: String,
    /// The address, IPv4-mapped addresses unmapped.
    pub(crate) addr: IpAddr,
    /// What the lookup found (the unconfirmed reverse name and the
    /// statuses, for restrictions); `None` without a lookup.
    #[allow(dead_code)] // for the restrictions that will read it
    pub(crate) names: Option<mail_dns::ClientName>,
}

impl Client {
    /// The client at `addr`, named without a DNS lookup.
    pub(crate) fn new(addr: IpAddr) -> Client {
        let addr = policy::canonical(addr);
        Client { name: policy::client_name(addr).to_owned(), addr, names: None }
    }

    /// The client at `addr` as the DNS lookup named it.
    pub(crate) fn named(addr: IpAddr, names: mail_dns::ClientName) -> Client {
        Client { name: names.name.clone(), addr: policy::canonical(addr), names: Some(names) }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.name, self.addr)
    }
}

/// The open mail transaction as the client gave it.
#[derive(Debug, Default)]
struct Transaction {
    /// The MAIL FROM address as given; `None` for `<>`.
    sender: Option<Address>,
    /// The sender as the queue file gets it: qualified and rewritten
    /// (`Policy::envelope_sender`).
    envelope_sender: Option<Address>,
    /// Accepted recipients: (qualified and rewritten, as given, NOTIFY/ORCPT).
    recipients: Vec<(Address, Address, RcptParams)>,
    /// MAIL FROM's body type, SMTPUTF8, RET and ENVID.
    esmtp: mail_types::esmtp::EnvelopeParams,
}

/// Serves one connection until QUIT, an error, a timeout or a 421.
/// Returns the command counters for the disconnect line.
pub(crate) async fn run<S>(stream: &mut Conn<S>, client: Client, ctx: Arc<Context>) -> Counters
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut server = Server::new(ctx.settings.server.clone());
    server.set_junk_command_limit(ctx.settings.junk_command_limit);
    if stream.tls().is_some() {
        // smtps: the handshake came before the greeting.
        server.tls_started();
    }
    let session_deadline = deadline(ctx.settings.session_deadline);
    let mut s = Session {
        server,
        ctx,
        client,
        counters: Counters::default(),
        txn: Transaction::default(),
        incoming: None,
        sasl: Sasl::new(),
        sasl_method: None,
        sasl_user: None,
        authd: None,
        tls_comment: stream.tls().and_then(tls_comment),
        session_deadline,
        data_deadline: None,
        out: Vec::new(),
    };
    s.offer_auth();
    s.out.extend(s.server.greeting().to_bytes());
    s.serve(stream).await;
    s.counters
}

/// Postfix's line for a completed handshake.
pub(crate) fn log_tls<S>(client: &Client, t: &mail_tls::ServerStream<S>, loglevel: u32) {
    if loglevel == 0 {
        return;
    }
    if let Some(summary) = mail_tls::summary(t.get_ref().1) {
        tracing::info!("Anonymous TLS connection established from {client}: {summary}");
    }
}

/// Postfix's `Received:` comment lines for a TLS session.
fn tls_comment<S>(t: &mail_tls::ServerStream<S>) -> Option<Vec<String>> {
    let mut lines = mail_tls::summary(t.get_ref().1)?.received_comment();
    lines.push("(No client certificate requested)".to_owned());
    Some(lines)
}

/// `now + d`, or `None` for a zero (disabled) or absurd limit.
fn deadline(d: std::time::Duration) -> Option<Instant> {
    if d.is_zero() { None } else { Instant::now().checked_add(d) }
}

struct Session {
    ctx: Arc<Context>,
    client: Client,
    server: Server,
    counters: Counters,
    txn: Transaction,
    /// The message being received, from the 354 to its final reply.
    incoming: Option<Incoming>,
    /// The SASL exchange of an AUTH command.
    sasl: Sasl,
    /// Its mechanism, for the log.
    sasl_method: Option<Mechanism>,
    /// The user AUTH proved (as authd spells the name).
    sasl_user: Option<String>,
    /// The connection to authd, opened by the first AUTH.
    authd: Option<auth::Client>,
    /// The `Received:` comment of the TLS session, once there is one.
    tls_comment: Option<Vec<String>>,
    /// `smtpd_session_deadline` from the connection's start.
    session_deadline: Option<Instant>,
    /// `smtpd_data_deadline` from the 354, while in DATA.
    data_deadline: Option<Instant>,
    /// Replies not yet written.
    out: Vec<u8>,
}

impl Session {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: &mut Conn<S>) {
        let mut buf = vec![0u8; READ_START];
        loop {
            self.drain_events().await;
            self.stream_data().await;
            if !self.flush(stream).await {
                tracing::info!("lost connection after {} from {}", self.state(), self.client);
                return;
            }
            if self.server.is_closed() {
                let hard = self.ctx.settings.server.hard_error_limit;
                if hard > 0 && self.server.error_count() >= hard {
                    tracing::info!("too many errors after {} from {}", self.state(), self.client);
                }
                return;
            }
            if self.server.awaiting_tls() {
                // The 220 is out; whatever the client sent after STARTTLS
                // is dropped by `tls_started`, never run inside TLS.
                if !self.start_tls(stream).await {
                    return;
                }
                continue;
            }
            let read = tokio::time::timeout_at(self.read_deadline(), stream.read(&mut buf)).await;
            match read {
                Err(_) => {
                    tracing::info!("timeout after {} from {}", self.state(), self.client);
                    let reply = self.server.timeout_reply().to_bytes();
                    let _ =
                        tokio::time::timeout(self.ctx.settings.timeout, stream.write_all(&reply))
                            .await;
                    return;
                }
                Ok(Ok(0)) | Ok(Err(_)) => {
                    tracing::info!("lost connection after {} from {}", self.state(), self.client);
                    return;
                }
                Ok(Ok(n)) => {
                    self.server.feed(&buf[..n]);
                    // A full buffer means more is waiting: read bigger.
                    if n == buf.len() && buf.len() < READ_CHUNK {
                        buf = vec![0u8; READ_CHUNK];
                    }
                }
            }
        }
    }

    /// The STARTTLS handshake, bounded by `smtpd_starttls_timeout` (and
    /// the session deadline). False when the session is over.
    async fn start_tls<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: &mut Conn<S>) -> bool {
        let (Some(tls), Some(plain)) = (self.ctx.tls.as_ref(), stream.take_plain()) else {
            return false;
        };
        let mut limit = self.ctx.settings.starttls_timeout;
        if let Some(d) = self.session_deadline {
            limit = limit.min(d.saturating_duration_since(Instant::now()));
        }
        match tls.accept(plain, limit).await {
            Ok(t) => {
                log_tls(&self.client, &t, self.ctx.settings.tls_loglevel);
                self.tls_comment = tls_comment(&t);
                *stream = Conn::Tls(Box::new(t));
                self.server.tls_started();
                self.offer_auth();
                true
            }
            Err(e) => {
                tracing::warn!("SSL_accept error from {}: {e}", self.client);
                tracing::info!("lost connection after STARTTLS from {}", self.client);
                false
            }
        }
    }

    /// The earliest of the per-read timeout and the deadlines.
    fn read_deadline(&self) -> Instant {
        let now = Instant::now();
        // A configured timeout too large for the clock means "very long".
        let per_read = now
            .checked_add(self.ctx.settings.timeout)
            .unwrap_or_else(|| now + std::time::Duration::from_secs(365 * 86_400));
        [self.session_deadline, self.data_deadline]
            .into_iter()
            .flatten()
            .fold(per_read, Instant::min)
    }

    /// `DATA (N bytes)` while in DATA, else the last command, as Postfix
    /// names the state in `lost connection after` and `timeout after`.
    fn state(&self) -> String {
        match self.server.data_size() {
            Some(n) => format!("DATA ({n} bytes)"),
            None => self.server.last_command().to_owned(),
        }
    }

    async fn drain_events(&mut self) {
        while let Some(event) = self.server.next_event() {
            match event {
                Event::Reply(reply) => self.push_reply(&reply),
                Event::Close => {}
                Event::Mail { from, params } => self.cmd_mail(from, &params),
                Event::Rcpt { to, params } => self.cmd_rcpt(to, params).await,
                Event::Vrfy { address } => self.cmd_vrfy(address).await,
                Event::Message { content } => self.cmd_data(content).await,
                // The machine asks only when STARTTLS is offered.
                Event::StartTls if self.ctx.tls.is_some() => self.server.accept(),
                Event::StartTls => self.server.reject(Reply::with_status(
                    454,
                    EnhancedStatus(4, 7, 0),
                    "TLS not available due to local problem",
                )),
                Event::Auth { mechanism, initial } => {
                    let step = self.sasl.start(&mechanism, initial.as_deref());
                    self.sasl_method = Mechanism::parse(&mechanism);
                    self.auth_step(step).await;
                }
                Event::AuthResponse { response } => {
                    let step = self.sasl.step(&response);
                    self.auth_step(step).await;
                }
            }
        }
    }

    /// What AUTH is offered from now on: the mechanisms when
    /// `smtpd_sasl_auth_enable` is on, authd is configured, and the
    /// session is encrypted or `smtpd_tls_auth_only` is off (RFC 4954
    /// §4: no plain-text passwords over an open channel by default).
    fn offer_auth(&mut self) {
        let s = &self.ctx.settings;
        let on = s.sasl_enabled
            && self.ctx.authd.is_some()
            && (self.server.is_tls() || !s.tls_auth_only);
        let mechanisms = if on {
            mail_auth::sasl::MECHANISMS.iter().map(|m| m.name().to_owned()).collect()
        } else {
            Vec::new()
        };
        self.server.set_auth_mechanisms(mechanisms);
    }

    /// One step of a SASL exchange: a challenge for the client, a
    /// protocol error, or credentials for authd to check.
    async fn auth_step(&mut self, step: Step) {
        let method = self.sasl_method.map_or("?", Mechanism::name);
        let e = |code, st: (u8, u16, u16), text: &str| {
            Reply::with_status(code, EnhancedStatus(st.0, st.1, st.2), text)
        };
        let creds = match step {
            Step::Challenge(c) => return self.server.auth_challenge(&c),
            Step::Done(creds) => creds,
            Step::Error(kind) => {
                let reply = match kind {
                    SaslError::InvalidBase64 | SaslError::Malformed => {
                        e(501, (5, 5, 2), "Cannot decode response")
                    }
                    SaslError::UnsupportedMechanism => {
                        e(504, (5, 5, 4), "Unrecognized authentication type")
                    }
                    SaslError::TooLong => {
                        e(500, (5, 5, 6), "Authentication exchange line is too long")
                    }
                    SaslError::AuthzidMismatch | SaslError::NotInProgress => {
                        self.auth_failed(method);
                        e(535, (5, 7, 8), "Error: authentication failed: authentication failure")
                    }
                };
                return self.server.reject(reply);
            }
        };
        let Some(path) = self.ctx.authd.clone() else {
            return self.server.reject(e(454, (4, 7, 0), "Temporary authentication failure"));
        };
        let authd = self.authd.get_or_insert_with(|| auth::Client::new(path));
        let request = auth::AuthRequest {
            service: auth::Service::Smtp,
            user: creds.user,
            password: creds.password,
            client: self.client.addr,
            tls: self.server.is_tls(),
        };
        match authd.authenticate(&request).await {
            Ok(auth::AuthReply::Ok(user)) => {
                self.sasl_user = Some(user.user);
                // The machine refuses a second AUTH (RFC 4954 §4).
                self.server.accept();
            }
            Ok(auth::AuthReply::Fail) => {
                self.auth_failed(method);
                self.server.reject(e(
                    535,
                    (5, 7, 8),
                    "Error: authentication failed: authentication failure",
                ));
            }
            Ok(auth::AuthReply::TempFail(why)) => {
                tracing::warn!("{}: SASL {method} authentication aborted: {why}", self.client);
                self.server.reject(e(454, (4, 7, 0), "Temporary authentication failure"));
            }
            Err(err) => {
                tracing::error!("{}: SASL {method} authentication not checked: {err}", self.client);
                self.server.reject(e(454, (4, 7, 0), "Temporary authentication failure"));
            }
        }
    }

    /// Postfix's line, which fail2ban's postfix-sasl filter matches (the
    /// text after "failed:" must stay letters and spaces).
    fn auth_failed(&self, method: &str) {
        tracing::warn!(
            "{}: SASL {method} authentication failed: authentication failure",
            self.client
        );
    }

    fn push_reply(&mut self, reply: &Reply) {
        let ok = reply.code < 400;
        match self.server.answered() {
            // DATA counts once the message is in: at the final reply.
            Some(Answered::Command(Verb::Data)) if reply.code == 354 => {
                self.data_deadline = deadline(self.ctx.settings.data_deadline);
            }
            Some(Answered::Command(verb)) => self.counters.record(verb, ok),
            Some(Answered::Message) => {
                self.counters.record(Verb::Data, ok);
                // The end of this DATA, however it ended (a message over
                // message_size_limit gets its 552 without Event::Message):
                // an unfinished queue file goes with it.
                self.incoming = None;
                self.data_deadline = None;
            }
            None => {}
        }
        self.out.extend(reply.to_bytes());
    }

    /// In DATA: starts the queue file, and moves the content that has
    /// arrived from the machine to it.
    async fn stream_data(&mut self) {
        if !self.server.in_data() {
            // No message under way (one ended without Event::Message, a
            // BDAT one by RSET): its unfinished file goes.
            self.incoming = None;
            return;
        }
        if self.incoming.is_none() {
            // In place: creating the file (unnamed, so no directory
            // entry) and writing its envelope touch only the page cache;
            // what waits on the disk, the fsyncs, runs off this thread.
            self.incoming = Some(Incoming::start(&self.ctx.queue, &self.submission()));
        }
        let content = self.server.take_data();
        let Some(mut incoming) = self.incoming.take() else { return };
        incoming.push(&content);
        if incoming.should_write() {
            match tokio::task::spawn_blocking(move || {
                incoming.write();
                incoming
            })
            .await
            {
                Ok(incoming) => self.incoming = Some(incoming),
                Err(e) => {
                    tracing::error!("queue file write for {} failed: {e}", self.client);
                    self.server.reject(self.abort_reply());
                }
            }
        } else {
            self.incoming = Some(incoming);
        }
    }

    /// The reply when the message being received is lost to a failed
    /// task (a bug): nothing can answer it at the end of DATA any more,
    /// so the session ends; the client keeps the message and retries.
    fn abort_reply(&self) -> Reply {
        let host = &self.ctx.settings.server.hostname;
        Reply::with_status(
            421,
            EnhancedStatus(4, 3, 0),
            format!("{host} Error: queue file write error"),
        )
    }

    /// Writes the pending replies in one write. Past the soft error limit
    /// every batch is delayed, to slow down probing clients. False when
    /// the client is gone.
    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let soft = self.ctx.settings.soft_error_limit;
        if soft > 0 && self.server.error_count() > soft && !self.server.is_closed() {
            tokio::time::sleep(ERROR_SLEEP).await;
        }
        // The flush pushes TLS records out; on a plain socket it is free.
        let write = async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        };
        let written = tokio::time::timeout(self.ctx.settings.timeout, write).await;
        self.out.clear();
        matches!(written, Ok(Ok(())))
    }

    /// `from=<s> [to=<r> ]proto=P helo=<h>`, the tail of a reject line.
    fn reject_tail(&self, to: Option<&Address>) -> String {
        let sender = self.txn.sender.as_ref().map(ToString::to_string).unwrap_or_default();
        let to = to.map(|t| format!("to=<{t}> ")).unwrap_or_default();
        format!(
            "from=<{sender}> {to}proto={} helo=<{}>",
            self.server.protocol(),
            self.server.helo_name().unwrap_or("")
        )
    }

    /// Refuses MAIL FROM with `reply`, logged as Postfix logs it.
    fn reject_mail(&mut self, from: Option<&Address>, reply: Reply) {
        let sender = from.map(ToString::to_string).unwrap_or_default();
        tracing::info!(
            "NOQUEUE: reject: MAIL from {}: {reply}; from=<{sender}> proto={} helo=<{}>",
            self.client,
            self.server.protocol(),
            self.server.helo_name().unwrap_or("")
        );
        self.server.reject(reply);
    }

    /// MAIL FROM: refused before STARTTLS at level encrypt, when the queue
    /// has no room for the message (Postfix's `queue_minfree` check, with
    /// RFC 1870 SIZE), or when a rewriting table fails; the sender's own
    /// restrictions wait for RCPT (`smtpd_delay_reject`).
    fn cmd_mail(&mut self, from: Option<Address>, params: &MailParams) {
        if self.ctx.settings.tls_level == TlsLevel::Encrypt && !self.server.is_tls() {
            // Postfix's smtpd_tls_security_level = encrypt (submission).
            return self.server.reject(Reply::with_status(
                530,
                EnhancedStatus(5, 7, 0),
                "Must issue a STARTTLS command first",
            ));
        }
        let minfree = self.ctx.settings.minfree;
        if let Some(free) = policy::queue_free_space(self.ctx.queue.root())
            && !policy::enough_space(free, minfree, params.size)
        {
            tracing::warn!(
                "not enough free space in mail queue: {free} bytes < {minfree} + message size"
            );
            return self.reject_mail(from.as_ref(), enqueue::disk_full_reply());
        }
        let envelope_sender = match self.ctx.policy.envelope_sender(from.as_ref()) {
            Ok(s) => s,
            Err(reply) => return self.reject_mail(from.as_ref(), reply),
        };
        self.txn = Transaction {
            sender: from,
            envelope_sender,
            recipients: Vec::new(),
            esmtp: params.envelope_params(),
        };
        // A BDAT message given up (RSET) may have left its unfinished
        // file; the new transaction must never write into it.
        self.incoming = None;
        self.server.accept();
    }

    /// The recipient policy. Off the runtime thread when it may wait on
    /// the system user database (NSS); in place when every table is a
    /// cached file, which saves a thread handoff per recipient.
    async fn check_recipient(&self, to: &Address) -> Verdict {
        let check = CheckContext {
            client_addr: self.client.addr,
            client_name: self.client.name.to_owned(),
            helo: self.server.helo_name().map(str::to_owned),
            sasl_username: self.sasl_user.clone(),
            tls: self.server.is_tls(),
            sender: self.txn.sender.clone(),
            recipient: to.clone(),
        };
        if !self.ctx.policy.rcpt_check_may_block() {
            return self.ctx.policy.check_rcpt(&check);
        }
        let ctx = Arc::clone(&self.ctx);
        match tokio::task::spawn_blocking(move || ctx.policy.check_rcpt(&check)).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("recipient check for <{to}> failed: {e}");
                Verdict::Reject(Reply::with_status(
                    451,
                    EnhancedStatus(4, 3, 0),
                    format!("<{to}>: Temporary lookup failure"),
                ))
            }
        }
    }

    /// VRFY answers as RCPT would decide: 252 for an address we would
    /// accept, the RCPT rejection (550 5.1.1 for an unknown local user)
    /// otherwise, as Postfix does.
    async fn cmd_vrfy(&mut self, address: Address) {
        match self.check_recipient(&address).await {
            Verdict::Accept(_) => self.server.accept(),
            Verdict::Reject(reply) => {
                tracing::info!(
                    "NOQUEUE: reject: VRFY from {}: {reply}; to=<{address}>",
                    self.client
                );
                self.server.reject(reply);
            }
        }
    }

    async fn cmd_rcpt(&mut self, to: Address, params: RcptParams) {
        let verdict = self.check_recipient(&to).await;
        match verdict {
            Verdict::Accept(recipients) => {
                for r in recipients {
                    self.txn.recipients.push((r, to.clone(), params.clone()));
                }
                self.server.accept();
            }
            Verdict::Reject(reply) => {
                tracing::info!(
                    "NOQUEUE: reject: RCPT from {}: {reply}; {}",
                    self.client,
                    self.reject_tail(Some(&to))
                );
                self.server.reject(reply);
            }
        }
    }

    /// What the queue file needs to know about the open transaction.
    fn submission(&self) -> Submission {
        Submission {
            sender: self.txn.envelope_sender.clone(),
            recipients: self
                .txn
                .recipients
                .iter()
                .map(|(address, original, esmtp)| mail_queue::Recipient {
                    address: address.clone(),
                    original: original.to_string(),
                    esmtp: esmtp.clone(),
                })
                .collect(),
            esmtp: self.txn.esmtp.clone(),
            origin: Origin::Smtp {
                helo: self.server.helo_name().map(str::to_owned),
                client_name: self.client.name.clone(),
                client_addr: self.client.addr,
                protocol: self.server.protocol(),
                tls: self.tls_comment.clone(),
                sasl: self
                    .sasl_user
                    .as_ref()
                    .map(|u| (self.sasl_method.map_or("?", Mechanism::name), u.clone())),
                cleanup: self.ctx.settings.cleanup.clone(),
            },
        }
    }

    /// The end of DATA: the rest of the content, the commit (fsync,
    /// rename), then 250 with the queue id.
    async fn cmd_data(&mut self, content: Vec<u8>) {
        let incoming = self.incoming.take();
        let sub = incoming.is_none().then(|| self.submission());
        self.txn = Transaction::default();
        let ctx = Arc::clone(&self.ctx);
        let result = tokio::task::spawn_blocking(move || {
            // The whole message came in one read: nothing was started.
            let incoming = match (incoming, sub) {
                (Some(incoming), _) => incoming,
                (None, Some(sub)) => Incoming::start(&ctx.queue, &sub),
                (None, None) => return Err(enqueue::write_error_reply()),
            };
            incoming.commit(&content)
        })
        .await;
        match result {
            Ok(Ok(id)) => {
                self.server.message_queued(id.as_str());
                // A spawned task: the 250 is not held up by it.
                self.ctx.wakeup.wake(id);
            }
            Ok(Err(reply)) => self.server.reject(reply),
            Err(e) => {
                tracing::error!("queue file write for {} failed: {e}", self.client);
                self.server.reject(enqueue::write_error_reply());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_queue::State;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A queue, passwd-file and aliases in a temporary directory, and the
    /// tutorial's main.toml settings.
    fn context(extra: &str) -> (tempfile::TempDir, Arc<Context>) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("passwd"), "suporte:{PLAIN}suporte:1000:1000::/home/suporte::\n")
            .unwrap();
        std::fs::write(d.join("aliases"), "postmaster: root\nroot: suporte\n").unwrap();
        let text = format!(
            "myhostname = \"mail.fiap.edu.br\"\nmydomain = \"fiap.edu.br\"\nmyorigin = \"$mydomain\"\n\
             mydestination = [\"$myhostname\", \"localhost\", \"$mydomain\"]\n\
             smtpd_banner = \"Bem Vindo - fiap.edu.br\"\n\
             queue_directory = \"{q}\"\npasswd_file = \"{p}\"\nalias_maps = [\"hash:{a}\"]\n\
             queue_minfree = 1\n{extra}",
            q = d.join("queue").display(),
            p = d.join("passwd").display(),
            a = d.join("aliases").display(),
        );
        let main = mail_config::Main::from_str(&d.join("main.toml"), &text).unwrap();
        let ctx = Context::from_config(
            &main,
            d.join("queue/public/qmgr"),
            d.join("queue/private/anvil"),
            None,
        )
        .unwrap();
        ctx.queue.create_layout().unwrap();
        (dir, Arc::new(ctx))
    }

    /// Runs a session from `addr`, writes `input` in one go, and returns
    /// everything the server wrote plus the disconnect counters.
    async fn talk(ctx: &Arc<Context>, addr: &str, input: &str) -> (String, String) {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let ctx = Arc::clone(ctx);
        let peer = Client::new(addr.parse().unwrap());
        let task =
            tokio::spawn(
                async move { run(&mut Conn::Plain(&mut server), peer, ctx).await.to_string() },
            );
        client.write_all(input.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        (String::from_utf8(out).unwrap(), task.await.unwrap())
    }

    fn queued(dir: &Path, out: &str) -> mail_queue::QueueFile {
        let id = out.split("queued as ").nth(1).unwrap().split('\r').next().unwrap();
        let q = mail_queue::Queue::new(dir.join("queue"));
        let id = mail_types::QueueId::parse(id).unwrap();
        q.read(State::Incoming, &id).unwrap()
    }

    #[tokio::test]
    async fn tutorial_dialog_queues_the_message() {
        let (dir, ctx) = context("");
        let (out, counters) = talk(
            &ctx,
            "127.0.0.1",
            "HELO mail.fiap.edu.br\r\nMAIL FROM: <root@fiap.edu.br>\r\nRCPT TO: <suporte@fiap.edu.br>\r\n\
             DATA\r\nFrom: Nome do Remetente <root@fiap.edu.br>\r\n\r\n\
             To: Nome do Destinatario <ubuntu@fiap.edu.br>\r\nSubject: Teste de Comandos SMTP\r\n\
             E-mail teste - Comandos SMTP\r\n.\r\nQUIT\r\n",
        )
        .await;
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(
            lines[..5],
            [
                "220 Bem Vindo - fiap.edu.br",
                "250 mail.fiap.edu.br",
                "250 2.1.0 Ok",
                "250 2.1.5 Ok",
                "354 End data with <CR><LF>.<CR><LF>",
            ]
        );
        assert!(lines[5].starts_with("250 2.0.0 Ok: queued as "), "{out}");
        assert_eq!(lines[6..], ["221 2.0.0 Bye", ""]);
        assert_eq!(counters, "helo=1 mail=1 rcpt=1 data=1 quit=1 commands=5");
        let f = queued(dir.path(), &out);
        assert_eq!(f.envelope.sender.unwrap(), "root@fiap.edu.br");
        assert_eq!(f.envelope.recipients[0].address, "suporte@fiap.edu.br");
        assert_eq!(f.envelope.client, "localhost[127.0.0.1]");
        let text = String::from_utf8(f.content).unwrap();
        assert!(text.starts_with("Received: from mail.fiap.edu.br (localhost [127.0.0.1])"));
        assert!(text.contains("\nE-mail teste - Comandos SMTP\n"), "{text}");
    }

    #[tokio::test]
    async fn pipelined_batch_with_relay_denied_and_unknown_user() {
        let (dir, ctx) = context("");
        let (out, counters) = talk(
            &ctx,
            "192.0.2.9",
            "EHLO c.example\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<a@example.net>\r\n\
             RCPT TO:<ninguem@fiap.edu.br>\r\nRCPT TO:<postmaster>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
        )
        .await;
        assert!(out.contains(
            "\r\n554 5.7.1 <a@example.net>: Relay access denied\r\n\
             550 5.1.1 <ninguem@fiap.edu.br>: Recipient address rejected: User unknown in local recipient table\r\n\
             250 2.1.5 Ok\r\n354 "
        ), "{out}");
        assert_eq!(counters, "ehlo=1 mail=1 rcpt=1/3 data=1 quit=1 commands=5/7");
        let f = queued(dir.path(), &out);
        assert_eq!(f.envelope.recipients.len(), 1);
        assert_eq!(f.envelope.recipients[0].address, "postmaster@fiap.edu.br");
        assert_eq!(f.envelope.recipients[0].original, "postmaster");
        assert_eq!(f.envelope.attrs[0], ("helo".to_owned(), "c.example".to_owned()));
        assert_eq!(f.envelope.attrs[1], ("protocol".to_owned(), "ESMTP".to_owned()));
    }

    /// A context whose smtpd offers STARTTLS with a fresh self-signed
    /// certificate; also returns the certificate, for the client.
    fn tls_context(level: &str) -> (tempfile::TempDir, Arc<Context>, String) {
        let cert = mail_tls::self_signed(&["mail.fiap.edu.br"]).unwrap();
        let certs = tempfile::tempdir().unwrap();
        std::fs::write(certs.path().join("cert.pem"), &cert.cert_pem).unwrap();
        std::fs::write(certs.path().join("key.pem"), &cert.key_pem).unwrap();
        let (dir, ctx) = context(&format!(
            "smtpd_tls_security_level = \"{level}\"\nsmtpd_tls_cert_file = \"{}\"\n\
             smtpd_tls_key_file = \"{}\"\n",
            certs.path().join("cert.pem").display(),
            certs.path().join("key.pem").display(),
        ));
        std::fs::rename(certs.path(), dir.path().join("certs")).ok();
        (dir, ctx, cert.cert_pem)
    }

    /// Reads from `r` until a line that starts with `prefix` has arrived.
    async fn read_until<R: AsyncReadExt + Unpin>(r: &mut R, prefix: &str) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if text.split("\r\n").any(|l| l.starts_with(prefix)) {
                return text;
            }
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before {prefix:?}: {text}");
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn starttls_discards_pipelined_commands_and_resets_the_session() {
        let (_dir, ctx, cert) = tls_context("may");
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let peer = Client::new("192.0.2.1".parse().unwrap());
        let task =
            tokio::spawn(
                async move { run(&mut Conn::Plain(&mut server), peer, ctx).await.to_string() },
            );
        let hello = read_until(&mut client, "220 ").await;
        assert!(hello.starts_with("220 Bem Vindo"), "{hello}");
        client.write_all(b"EHLO c.example\r\n").await.unwrap();
        let ehlo = read_until(&mut client, "250 ").await;
        assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
        // RFC 3207 §6 / CVE-2011-0411: what follows STARTTLS in the same
        // write must never run inside the TLS session.
        client.write_all(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n").await.unwrap();
        let ready = read_until(&mut client, "220 ").await;
        assert_eq!(ready, "220 2.0.0 Ready to start TLS\r\n");
        let config = mail_tls::client_config_trusting(cert.as_bytes()).unwrap();
        let name = mail_tls::rustls::pki_types::ServerName::try_from("mail.fiap.edu.br").unwrap();
        let mut tls = mail_tls::TlsConnector::from(config).connect(name, client).await.unwrap();
        // The session starts over: MAIL needs no "nested MAIL" error, and
        // EHLO no longer lists STARTTLS.
        tls.write_all(b"EHLO c.example\r\n").await.unwrap();
        let ehlo = read_until(&mut tls, "250 ").await;
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        tls.write_all(b"MAIL FROM:<a@example.org>\r\nQUIT\r\n").await.unwrap();
        let rest = read_until(&mut tls, "221 ").await;
        assert_eq!(rest, "250 2.1.0 Ok\r\n221 2.0.0 Bye\r\n");
        drop(tls);
        assert_eq!(task.await.unwrap(), "ehlo=2 starttls=1 mail=1 quit=1 commands=5");
    }

    #[tokio::test]
    async fn encrypt_level_refuses_mail_before_starttls() {
        let (_dir, ctx, _) = tls_context("encrypt");
        let (out, _) =
            talk(&ctx, "192.0.2.1", "EHLO c\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n").await;
        assert!(out.contains("\r\n530 5.7.0 Must issue a STARTTLS command first\r\n"), "{out}");
    }

    #[tokio::test]
    async fn tls_and_auth_are_not_offered() {
        let (_dir, ctx) = context("");
        let (out, counters) =
            talk(&ctx, "::1", "EHLO c\r\nSTARTTLS\r\nAUTH PLAIN AAAA\r\nQUIT\r\n").await;
        assert!(!out.contains("STARTTLS\r\n250"), "{out}");
        assert!(!out.contains("250-AUTH"), "{out}");
        assert!(out.contains("\r\n502 5.5.1 Error: command not implemented\r\n"), "{out}");
        assert_eq!(counters, "ehlo=1 starttls=0/1 auth=0/1 quit=1 commands=2/4");
    }

    #[tokio::test]
    async fn lost_connection_and_partial_lines() {
        let (_dir, ctx) = context("");
        // A command split across writes is still one command.
        let (mut client, mut server) = tokio::io::duplex(4096);
        let peer = Client::new("127.0.0.1".parse().unwrap());
        let c = Arc::clone(&ctx);
        let task =
            tokio::spawn(
                async move { run(&mut Conn::Plain(&mut server), peer, c).await.to_string() },
            );
        let mut buf = [0u8; 512];
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"220 "));
        client.write_all(b"NO").await.unwrap();
        client.write_all(b"OP\r\n").await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"250 2.0.0 Ok\r\n");
        drop(client);
        assert_eq!(task.await.unwrap(), "noop=1 commands=1");
    }

    #[tokio::test]
    async fn timeout_says_421() {
        let (_dir, ctx) = context("smtpd_timeout = \"1s\"\n");
        let (mut client, mut server) = tokio::io::duplex(4096);
        let peer = Client::new("127.0.0.1".parse().unwrap());
        let task =
            tokio::spawn(
                async move { run(&mut Conn::Plain(&mut server), peer, ctx).await.to_string() },
            );
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "220 Bem Vindo - fiap.edu.br\r\n421 4.4.2 mail.fiap.edu.br Error: timeout exceeded\r\n"
        );
        assert_eq!(task.await.unwrap(), "commands=0");
    }

    #[tokio::test]
    async fn oversized_header_is_552_and_not_queued() {
        let (dir, ctx) = context("header_size_limit = 100\n");
        let input = format!(
            "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<suporte>\r\nDATA\r\nSubject: {}\r\n\r\nx\r\n.\r\nQUIT\r\n",
            "y".repeat(200)
        );
        let (out, counters) = talk(&ctx, "127.0.0.1", &input).await;
        assert!(out.contains("\r\n552 5.3.4 Message header size exceeds limit\r\n221 "), "{out}");
        assert_eq!(counters, "helo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5");
        let q = mail_queue::Queue::new(dir.path().join("queue"));
        assert!(q.scan(State::Incoming).unwrap().is_empty());
    }
}
