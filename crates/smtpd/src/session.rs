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

use mail_types::{Address, EnhancedStatus};
use smtp_proto::{Answered, Event, MailParams, RcptParams, Reply, Server, Verb};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::counters::Counters;
use crate::enqueue::{self, Incoming};
use crate::policy::{self, Verdict};
use crate::serve::Context;
use crate::settings::ERROR_SLEEP;
use mail_submit::{Origin, Submission};

/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;

/// The client as logs name it: `localhost[127.0.0.1]`.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// `localhost` or `unknown` (no DNS lookups).
    pub(crate) name: &'static str,
    /// The address, IPv4-mapped addresses unmapped.
    pub(crate) addr: IpAddr,
}

impl Client {
    /// The client at `addr`.
    pub(crate) fn new(addr: IpAddr) -> Client {
        let addr = policy::canonical(addr);
        Client { name: policy::client_name(addr), addr }
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
    /// Accepted recipients: (qualified, as given, NOTIFY/ORCPT).
    recipients: Vec<(Address, Address, RcptParams)>,
    /// MAIL FROM's body type, SMTPUTF8, RET and ENVID.
    esmtp: mail_types::esmtp::EnvelopeParams,
}

/// Serves one connection until QUIT, an error, a timeout or a 421.
/// Returns the command counters for the disconnect line.
pub(crate) async fn run<S>(stream: &mut S, client: Client, ctx: Arc<Context>) -> Counters
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut server = Server::new(ctx.settings.server.clone());
    server.set_junk_command_limit(ctx.settings.junk_command_limit);
    let session_deadline = deadline(ctx.settings.session_deadline);
    let mut s = Session {
        server,
        ctx,
        client,
        counters: Counters::default(),
        txn: Transaction::default(),
        incoming: None,
        session_deadline,
        data_deadline: None,
        out: Vec::new(),
    };
    s.out.extend(s.server.greeting().to_bytes());
    s.serve(stream).await;
    s.counters
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
    /// `smtpd_session_deadline` from the connection's start.
    session_deadline: Option<Instant>,
    /// `smtpd_data_deadline` from the 354, while in DATA.
    data_deadline: Option<Instant>,
    /// Replies not yet written.
    out: Vec<u8>,
}

impl Session {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: &mut S) {
        let mut buf = vec![0u8; READ_CHUNK];
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
                Ok(Ok(n)) => self.server.feed(&buf[..n]),
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
                // Not advertised; a client that tries anyway is told so.
                Event::StartTls | Event::Auth { .. } | Event::AuthResponse { .. } => {
                    self.server.reject(Reply::with_status(
                        502,
                        EnhancedStatus(5, 5, 1),
                        "Error: command not implemented",
                    ))
                }
            }
        }
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
        let written =
            tokio::time::timeout(self.ctx.settings.timeout, stream.write_all(&self.out)).await;
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

    /// MAIL FROM: any sender is accepted if the queue has room for the
    /// message (Postfix's `queue_minfree` check, with RFC 1870 SIZE).
    fn cmd_mail(&mut self, from: Option<Address>, params: &MailParams) {
        let minfree = self.ctx.settings.minfree;
        if let Some(free) = policy::queue_free_space(self.ctx.queue.root())
            && !policy::enough_space(free, minfree, params.size)
        {
            tracing::warn!(
                "not enough free space in mail queue: {free} bytes < {minfree} + message size"
            );
            let reply = enqueue::disk_full_reply();
            let sender = from.as_ref().map(ToString::to_string).unwrap_or_default();
            tracing::info!(
                "NOQUEUE: reject: MAIL from {}: {reply}; from=<{sender}> proto={} helo=<{}>",
                self.client,
                self.server.protocol(),
                self.server.helo_name().unwrap_or("")
            );
            self.server.reject(reply);
            return;
        }
        self.txn =
            Transaction { sender: from, recipients: Vec::new(), esmtp: params.envelope_params() };
        // A BDAT message given up (RSET) may have left its unfinished
        // file; the new transaction must never write into it.
        self.incoming = None;
        self.server.accept();
    }

    /// The recipient policy. Off the runtime thread when it may wait on
    /// the system user database (NSS); in place when every table is a
    /// cached file, which saves a thread handoff per recipient.
    async fn check_recipient(&self, to: &Address) -> Verdict {
        if !self.ctx.policy.rcpt_check_may_block() {
            return self.ctx.policy.check_rcpt(to, self.client.addr);
        }
        let ctx = Arc::clone(&self.ctx);
        let (addr, ip) = (to.clone(), self.client.addr);
        match tokio::task::spawn_blocking(move || ctx.policy.check_rcpt(&addr, ip)).await {
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
            Verdict::Accept(qualified) => {
                self.txn.recipients.push((qualified, to, params));
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
            sender: self.txn.sender.clone().map(|s| self.ctx.policy.qualify(s)),
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
                client_name: self.client.name.to_owned(),
                client_addr: self.client.addr,
                protocol: self.server.protocol(),
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
        let ctx =
            Context::from_config(&main, d.join("queue/public/qmgr"), d.join("queue/private/anvil"));
        ctx.queue.create_layout().unwrap();
        (dir, Arc::new(ctx))
    }

    /// Runs a session from `addr`, writes `input` in one go, and returns
    /// everything the server wrote plus the disconnect counters.
    async fn talk(ctx: &Arc<Context>, addr: &str, input: &str) -> (String, String) {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let ctx = Arc::clone(ctx);
        let peer = Client::new(addr.parse().unwrap());
        let task = tokio::spawn(async move { run(&mut server, peer, ctx).await.to_string() });
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
        let task = tokio::spawn(async move { run(&mut server, peer, c).await.to_string() });
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
        let task = tokio::spawn(async move { run(&mut server, peer, ctx).await.to_string() });
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
