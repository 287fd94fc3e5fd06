//! The cleanup half of smtpd: turning a DATA stream into a durable queue
//! file while it arrives, and waking qmgr afterwards, through
//! `mail_submit` (its `Stream` creates the queue file when DATA begins so
//! the queue id is known for `Received:`, cleans the header block and
//! writes the body in pieces; its `QmgrWakeup` wakes qmgr).
//!
//! What is smtpd's here: the replies. [`Incoming::commit`] returns the
//! queue id only once the file is on stable storage (RFC 5321 §6.1: once
//! 250 is sent the server is responsible for the message), and otherwise
//! the reply for the client, with the log line for a header block over
//! the limit. The blocking parts run under `spawn_blocking`.
//!
//! Severities: write errors are warnings (logged with queue id and path)
//! answered with a 4xx; nothing here is fatal.

use mail_queue::Queue;
use mail_submit::{Stream, Submission};
use mail_types::{EnhancedStatus, QueueId};
use smtp_proto::Reply;

pub(crate) use mail_submit::QmgrWakeup;

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

/// The reply for a message that was not queued.
fn submit_error_reply(e: &mail_submit::Error) -> Reply {
    match e {
        // Postfix's cleanup answers a table it cannot read this way too.
        mail_submit::Error::Cleanup(c) if c.is_temporary() => write_error_reply(),
        mail_submit::Error::HeaderTooLarge { .. } | mail_submit::Error::Cleanup(_) => {
            reply(552, (5, 3, 4), "Message header size exceeds limit")
        }
        e if e.is_disk_full() => disk_full_reply(),
        mail_submit::Error::Queue(_) => write_error_reply(),
    }
}

/// A message being received into its queue file.
#[derive(Debug)]
pub(crate) struct Incoming {
    stream: Stream,
    /// `name[addr]`, for the log.
    client: String,
}

impl Incoming {
    /// Creates the queue file for `sub` (blocking). A failure is kept and
    /// answered at the end of DATA, as the 354 has already gone out.
    pub(crate) fn start(queue: &Queue, sub: &Submission) -> Incoming {
        Incoming { stream: Stream::start(queue, sub), client: sub.origin.client() }
    }

    /// Takes message content (no I/O).
    pub(crate) fn push(&mut self, content: &[u8]) {
        self.stream.push(content);
    }

    /// Whether enough is ready for [`Incoming::write`], or the file is
    /// due for a sign of life.
    pub(crate) fn should_write(&self) -> bool {
        self.stream.should_write()
    }

    /// Writes what is ready (blocking).
    pub(crate) fn write(&mut self) {
        self.stream.write();
    }

    /// The end of DATA with the last `content` (blocking): the rest is
    /// written and the file committed. Returns the queue id once the file
    /// is on stable storage, or the reply to give the client.
    pub(crate) fn commit(self, content: &[u8]) -> Result<QueueId, Reply> {
        let id = self.stream.queue_id().clone();
        match self.stream.commit(content) {
            Ok(queued) => Ok(queued.id),
            Err(e) => {
                if let mail_submit::Error::HeaderTooLarge { limit } = e {
                    tracing::info!(
                        "{id}: reject: END-OF-MESSAGE from {}: message header block exceeds header_size_limit = {limit}",
                        self.client,
                    );
                }
                Err(submit_error_reply(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_cleanup::CleanupParams;
    use mail_queue::{Recipient, State};
    use mail_submit::Origin;
    use mail_types::Address;

    fn params() -> CleanupParams {
        CleanupParams {
            myhostname: "mail.fiap.edu.br".into(),
            myorigin: "fiap.edu.br".into(),
            append_at_myorigin: true,
            header_size_limit: 1000,
            mail_name: "Postern".into(),
            header_rewrite: None,
        }
    }

    /// Streams `content` in small pieces, writing as a session does.
    fn enqueue(q: &Queue, (sub, content): (Submission, Vec<u8>)) -> Result<QueueId, Reply> {
        let mut inc = Incoming::start(q, &sub);
        for piece in content.chunks(5) {
            inc.push(piece);
            inc.write();
        }
        inc.commit(b"")
    }

    fn submission(content: &[u8]) -> (Submission, Vec<u8>) {
        let a = |s: &str| Address::parse(s).unwrap();
        let sub = Submission {
            esmtp: Default::default(),
            sender: Some(a("root@fiap.edu.br")),
            recipients: vec![Recipient {
                address: "suporte@fiap.edu.br".parse().unwrap(),
                original: "suporte".into(),
                esmtp: Default::default(),
            }],
            origin: Origin::Smtp {
                helo: Some("client.example".into()),
                client_name: "localhost".into(),
                client_addr: "127.0.0.1".parse().unwrap(),
                protocol: "ESMTP",
                tls: None,
                sasl: None,
                cleanup: params(),
            },
        };
        (sub, content.to_vec())
    }

    // The envelope, the cleaned content and the Received: line are
    // mail-submit's, tested there; these are smtpd's replies for them.

    #[test]
    fn oversized_header_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let big = format!("Subject: {}\n\nbody\n", "x".repeat(2000));
        let r = enqueue(&q, submission(big.as_bytes())).unwrap_err();
        assert_eq!(r.to_string(), "552 5.3.4 Message header size exceeds limit");
        assert!(q.scan(State::Incoming).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn missing_queue_is_a_451() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path().join("nowhere"));
        let r = enqueue(&q, submission(b"x\n")).unwrap_err();
        assert_eq!(r.to_string(), "451 4.3.0 Error: queue file write error");
        assert_eq!(disk_full_reply().to_string(), "452 4.3.1 Insufficient system storage");
    }

    #[test]
    fn errors_map_to_the_replies() {
        let io = |errno| {
            mail_submit::Error::Queue(mail_queue::Error::Io {
                path: "/q/tmp/x".into(),
                source: std::io::Error::from_raw_os_error(errno),
            })
        };
        let r = |e: mail_submit::Error| submit_error_reply(&e).to_string();
        assert_eq!(r(io(nix::libc::ENOSPC)), "452 4.3.1 Insufficient system storage");
        assert_eq!(r(io(nix::libc::EDQUOT)), "452 4.3.1 Insufficient system storage");
        assert_eq!(r(io(nix::libc::EIO)), "451 4.3.0 Error: queue file write error");
        let big = mail_submit::Error::HeaderTooLarge { limit: 10 };
        assert_eq!(r(big), "552 5.3.4 Message header size exceeds limit");
    }
}
