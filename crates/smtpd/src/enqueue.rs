//! The cleanup half of smtpd: turning a DATA stream into a durable queue
//! file while it arrives, and waking qmgr afterwards.
//!
//! [`Incoming::start`] runs when DATA begins: it creates the queue file
//! (`mail_queue::Spool`: tmp/ file, envelope first) so the queue id is
//! known for `Received:`. The content then goes through [`Cleaner`]
//! (cleanup's header work, only the header block held in memory) and is
//! written in pieces of [`WRITE_CHUNK`]. [`Incoming::commit`] at the end of
//! DATA fsyncs the file, renames it into `incoming/` and fsyncs the
//! directory; only then may the client get 250 (RFC 5321 §6.1: once 250
//! is sent the server is responsible for the message). A message that
//! fails on the way (header too large, over the size limit, disk full, a
//! client gone) is dropped with its temporary file, so nothing
//! half-written stays behind. The blocking parts run under
//! `spawn_blocking`.
//!
//! Severities: write errors are warnings (logged with queue id and path)
//! answered with a 4xx; nothing here is fatal.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_cleanup::{CleanupParams, Trace};
use mail_ipc::trigger::Trigger;
use mail_queue::spool::Spool;
use mail_queue::{Envelope, Queue, Recipient};
use mail_types::{Address, EnhancedStatus, QueueId};
use smtp_proto::Reply;

use crate::cleaner::{Cleaner, HeaderTooLarge};

/// Cleaned content is written once this much is ready, so a session
/// holds at most about this much of the body.
pub(crate) const WRITE_CHUNK: usize = 64 * 1024;

/// How long a queue file may go without a write before it is touched:
/// well inside qmgr's `clean_tmp` age (600 s), which would otherwise take
/// a slow client's file for an abandoned one.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// One message about to arrive and what is known about its origin.
#[derive(Debug)]
pub(crate) struct Submission {
    /// The envelope sender, qualified; `None` for the null sender `<>`.
    pub(crate) sender: Option<Address>,
    /// Each recipient as qualified and as the client gave it.
    pub(crate) recipients: Vec<(Address, Address)>,
    /// The HELO/EHLO argument.
    pub(crate) helo: Option<String>,
    /// `localhost` or `unknown` (see `policy::client_name`).
    pub(crate) client_name: String,
    /// The client's address.
    pub(crate) client_addr: IpAddr,
    /// `SMTP` or `ESMTP` (RFC 3848), for `Received:`.
    pub(crate) protocol: &'static str,
}

impl Submission {
    /// `name[addr]`, as logs and the envelope's client field show it.
    fn client(&self) -> String {
        format!("{}[{}]", self.client_name, self.client_addr)
    }
}

fn reply(code: u16, status: (u8, u16, u16), text: &str) -> Reply {
    Reply::with_status(code, EnhancedStatus(status.0, status.1, status.2), text)
}

/// The reply when the queue file system is full (RFC 3463 §3.4: 4.3.1
/// mail system full).
pub(crate) fn disk_full_reply() -> Reply {
    reply(452, (4, 3, 1), "Insufficient system storage")
}

pub(crate) fn write_error_reply() -> Reply {
    reply(451, (4, 3, 0), "Error: queue file write error")
}

fn queue_error_reply(e: &mail_queue::Error) -> Reply {
    if e.is_disk_full() { disk_full_reply() } else { write_error_reply() }
}

/// A message being received into its queue file.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// `None` once the message has failed (see `failed`).
    spool: Option<Spool>,
    cleaner: Cleaner,
    /// Cleaned content not yet written.
    out: Vec<u8>,
    /// Why the message will be refused at the end of DATA; the content
    /// after the failure is read and discarded.
    failed: Option<Reply>,
    /// The header block was too large (logged at the end of DATA).
    header_too_large: bool,
    client: String,
    header_limit: usize,
    /// The last write to (or touch of) the queue file.
    last_write: std::time::Instant,
}

impl Incoming {
    /// Creates the queue file for `sub` (blocking). A failure is kept and
    /// answered at the end of DATA, as the 354 has already gone out.
    pub(crate) fn start(queue: &Queue, params: &CleanupParams, sub: Submission) -> Incoming {
        let client = sub.client();
        let arrival = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut attrs = Vec::with_capacity(2);
        if let Some(helo) = &sub.helo {
            attrs.push(("helo".to_owned(), helo.clone()));
        }
        attrs.push(("protocol".to_owned(), sub.protocol.to_owned()));
        let envelope = Envelope {
            sender: sub.sender.clone(),
            recipients: sub
                .recipients
                .iter()
                .map(|(address, original)| Recipient {
                    address: address.clone(),
                    original: original.to_string(),
                })
                .collect(),
            arrival,
            client: client.clone(),
            origin: "smtpd".to_owned(),
            attrs,
        };
        let (spool, failed) = match queue.spool(&envelope) {
            Ok(spool) => (Some(spool), None),
            Err(e) => {
                tracing::warn!("queue file write error: {e}");
                (None, Some(queue_error_reply(&e)))
            }
        };
        // The id only matters for Received: when there is a file.
        let queue_id = spool.as_ref().map_or_else(QueueId::generate, |s| s.id().clone());
        if spool.is_some() {
            tracing::info!("{queue_id}: client={client}");
        }
        let single_recipient = match sub.recipients.as_slice() {
            [(one, _)] => Some(one.to_string()),
            _ => None,
        };
        // Postfix writes IPv6 clients as [IPv6:addr] in Received: (RFC 5321 §4.1.3).
        let client_addr = match sub.client_addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("IPv6:{a}"),
        };
        let trace = Trace {
            helo: sub.helo,
            client_name: sub.client_name,
            client_addr,
            protocol: sub.protocol.to_owned(),
            local_uid: None,
            queue_id,
            single_recipient,
            time: chrono::Local::now(),
        };
        let cleaner = Cleaner::new(params.clone(), trace, sub.sender);
        Incoming {
            spool,
            cleaner,
            out: Vec::new(),
            failed,
            header_too_large: false,
            client,
            header_limit: params.header_size_limit,
            last_write: std::time::Instant::now(),
        }
    }

    /// Takes message content (no I/O).
    pub(crate) fn push(&mut self, content: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(HeaderTooLarge) = self.cleaner.push(content, &mut self.out) {
            self.header_failed();
        }
    }

    /// Whether enough is ready for [`Incoming::write`], or the file is
    /// due for a sign of life.
    pub(crate) fn should_write(&self) -> bool {
        self.out.len() >= WRITE_CHUNK
            || (self.spool.is_some() && self.last_write.elapsed() >= KEEP_ALIVE)
    }

    fn header_failed(&mut self) {
        self.header_too_large = true;
        self.failed = Some(reply(552, (5, 3, 4), "Message header size exceeds limit"));
        self.discard();
    }

    /// Drops the file and what is buffered: the message will be refused.
    fn discard(&mut self) {
        self.spool = None;
        self.out = Vec::new();
    }

    /// Writes what is ready (blocking).
    pub(crate) fn write(&mut self) {
        let Some(spool) = self.spool.as_mut() else {
            self.out.clear();
            return;
        };
        self.last_write = std::time::Instant::now();
        let written = if self.out.is_empty() { spool.touch() } else { spool.write(&self.out) };
        if let Err(e) = written {
            tracing::warn!("{}: queue file write error: {e}", spool.id());
            self.failed = Some(queue_error_reply(&e));
            self.discard();
        }
        self.out.clear();
    }

    /// The end of DATA with the last `content` (blocking): the rest is
    /// written and the file committed. Returns the queue id once the file
    /// is on stable storage, or the reply to give the client.
    pub(crate) fn commit(mut self, content: &[u8]) -> Result<QueueId, Reply> {
        self.push(content);
        if self.failed.is_none()
            && let Err(HeaderTooLarge) = self.cleaner.finish(&mut self.out)
        {
            self.header_failed();
        }
        self.write();
        if let Some(reply) = self.failed.take() {
            if self.header_too_large {
                let id = &self.cleaner_id();
                tracing::info!(
                    "{id}: reject: END-OF-MESSAGE from {}: message header block exceeds header_size_limit = {}",
                    self.client,
                    self.header_limit
                );
            }
            return Err(reply);
        }
        let Some(spool) = self.spool.take() else { return Err(write_error_reply()) };
        let id = spool.id().clone();
        if let Some(message_id) = self.cleaner.message_id() {
            tracing::info!("{id}: message-id={message_id}");
        }
        spool.commit().map_err(|e| {
            tracing::warn!("{id}: queue file write error: {e}");
            queue_error_reply(&e)
        })
    }

    fn cleaner_id(&self) -> String {
        self.cleaner.queue_id().to_string()
    }
}

/// Wakes qmgr after a commit by writing one `Trigger::Wakeup` frame to
/// `public/qmgr`. Fire and forget: qmgr also polls `incoming/`, so a lost
/// trigger delays mail and never loses it. Wake-ups that come while one is
/// still on its way are folded into it.
#[derive(Debug)]
pub(crate) struct QmgrWakeup {
    socket: PathBuf,
    in_flight: AtomicBool,
}

impl QmgrWakeup {
    /// A waker for the qmgr listening at `socket` (the path master.toml
    /// gives the `qmgr` service).
    pub(crate) fn new(socket: PathBuf) -> QmgrWakeup {
        QmgrWakeup { socket, in_flight: AtomicBool::new(false) }
    }

    /// Sends a wake-up from a new task; returns at once.
    pub(crate) fn wake(self: &Arc<Self>) {
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            // Cleared before the trigger is written: a commit that sees the
            // flag set happened before this point, so qmgr's scan after
            // reading the trigger will find its file.
            me.in_flight.store(false, Ordering::Release);
            // send_async bounds itself (a couple of seconds).
            if let Err(e) = mail_ipc::trigger::send_async(&me.socket, Trigger::Wakeup).await {
                tracing::debug!("cannot wake qmgr at {}: {e}", me.socket.display());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_queue::State;

    fn params() -> CleanupParams {
        CleanupParams {
            myhostname: "mail.fiap.edu.br".into(),
            myorigin: "fiap.edu.br".into(),
            append_at_myorigin: true,
            header_size_limit: 1000,
            mail_name: "Postern".into(),
        }
    }

    /// Streams `content` in small pieces, writing as a session does.
    fn enqueue(
        q: &Queue,
        p: &CleanupParams,
        (sub, content): (Submission, Vec<u8>),
    ) -> Result<QueueId, Reply> {
        let mut inc = Incoming::start(q, p, sub);
        for piece in content.chunks(5) {
            inc.push(piece);
            inc.write();
        }
        inc.commit(b"")
    }

    fn submission(content: &[u8]) -> (Submission, Vec<u8>) {
        let a = |s: &str| Address::parse(s).unwrap();
        let sub = Submission {
            sender: Some(a("root@fiap.edu.br")),
            recipients: vec![(a("suporte@fiap.edu.br"), a("suporte"))],
            helo: Some("client.example".into()),
            client_name: "localhost".into(),
            client_addr: "127.0.0.1".parse().unwrap(),
            protocol: "ESMTP",
        };
        (sub, content.to_vec())
    }

    #[test]
    fn enqueued_file_has_envelope_and_cleaned_content() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = enqueue(&q, &params(), submission(b"Subject: oi\n\nbody\n")).unwrap();
        let f = q.read(State::Incoming, &id).unwrap();
        assert_eq!(f.envelope.sender.unwrap(), "root@fiap.edu.br");
        assert_eq!(
            f.envelope.recipients,
            vec![Recipient {
                address: "suporte@fiap.edu.br".parse().unwrap(),
                original: "suporte".into()
            }]
        );
        assert_eq!(f.envelope.client, "localhost[127.0.0.1]");
        assert_eq!(f.envelope.origin, "smtpd");
        assert_eq!(
            f.envelope.attrs,
            vec![
                ("helo".to_owned(), "client.example".to_owned()),
                ("protocol".to_owned(), "ESMTP".to_owned())
            ]
        );
        let text = String::from_utf8(f.content).unwrap();
        assert!(
            text.starts_with(&format!(
                "Received: from client.example (localhost [127.0.0.1])\n\tby mail.fiap.edu.br (Postern) with ESMTP id {id}\n\tfor <suporte@fiap.edu.br>;"
            )),
            "{text}"
        );
        assert!(text.contains("\nSubject: oi\n"), "{text}");
        assert!(text.contains("\nMessage-Id: <"), "{text}");
        assert!(text.contains("\nFrom: root@fiap.edu.br\n"), "{text}");
        assert!(text.ends_with("\n\nbody\n"), "{text}");
        assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn null_sender_and_ipv6_client() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let mut sub = submission(b"x\n");
        sub.0.sender = None;
        sub.0.client_addr = "::1".parse().unwrap();
        let a = Address::parse("b@x.org").unwrap();
        sub.0.recipients.push((a.clone(), a));
        let id = enqueue(&q, &params(), sub).unwrap();
        let f = q.read(State::Incoming, &id).unwrap();
        assert_eq!(f.envelope.sender, None);
        assert_eq!(f.envelope.client, "localhost[::1]");
        let text = String::from_utf8(f.content).unwrap();
        assert!(text.contains("(localhost [IPv6:::1])"), "{text}");
        // Two recipients: no FOR clause.
        assert!(!text.contains("\tfor <"), "{text}");
        assert!(text.contains("\nFrom: MAILER-DAEMON\n"), "{text}");
    }

    #[test]
    fn oversized_header_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let big = format!("Subject: {}\n\nbody\n", "x".repeat(2000));
        let r = enqueue(&q, &params(), submission(big.as_bytes())).unwrap_err();
        assert_eq!(r.to_string(), "552 5.3.4 Message header size exceeds limit");
        assert!(q.scan(State::Incoming).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn missing_queue_is_a_451() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path().join("nowhere"));
        let r = enqueue(&q, &params(), submission(b"x\n")).unwrap_err();
        assert_eq!(r.to_string(), "451 4.3.0 Error: queue file write error");
        assert_eq!(disk_full_reply().to_string(), "452 4.3.1 Insufficient system storage");
    }

    #[tokio::test]
    async fn wakeup_reaches_a_listener() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("public")).unwrap();
        let listener = tokio::net::UnixListener::bind(d.path().join("public/qmgr")).unwrap();
        let w = Arc::new(QmgrWakeup::new(d.path().join("public/qmgr")));
        w.wake();
        let (mut s, _) = listener.accept().await.unwrap();
        let t: Option<Trigger> = mail_ipc::read_frame_async(&mut s, 64).await.unwrap();
        assert_eq!(t, Some(Trigger::Wakeup));
        // Without a listener, waking is harmless.
        let w = Arc::new(QmgrWakeup::new(d.path().join("none")));
        w.wake();
        tokio::task::yield_now().await;
    }
}
