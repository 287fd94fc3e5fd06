//! Putting a new message into the queue: cleanup, reserve, commit, wake.
//!
//! Every program that creates mail goes through here: smtpd (a message
//! streamed in during DATA, [`Stream`]), pickup (a maildrop file), the
//! local delivery agent (a forwarded copy) and qmgr (a non-delivery
//! notification), all with [`submit`] or [`submit_built`]. A
//! [`Submission`] says who sent the message to whom and where it came
//! from; the [`Origin`] decides the rest, so each kind of message gets
//! the same envelope wherever it is written:
//!
//! - what the envelope's `client`, `origin` and `attrs` fields say;
//! - whether cleanup(8)'s header work runs ([`Origin::cleanup`]):
//!   mail from outside (SMTP, maildrop) is cleaned on the way in, with a
//!   `Received:` header naming the queue id; forwarded copies were
//!   cleaned when they first arrived, and bounces are built clean here, so
//!   they are stored as they are.
//!
//! The queue file is written with `mail_queue`'s guarantees: the id is
//! reserved by an exclusive create in `tmp/`, the file reaches
//! `incoming/` only complete (fsync, rename, fsync of the directory), and
//! a failure on the way leaves nothing in `tmp/` or `incoming/`. Only
//! after [`submit`] returns may the sender be told the message is taken.
//!
//! Waking qmgr is fire and forget and bounded ([`wake_queued`],
//! [`QmgrWakeup`], which name the new queue ids so qmgr need not read
//! `incoming/`; [`wake`] for callers without ids): qmgr also scans
//! `incoming/` on its own timer, so a lost wake-up delays mail and never
//! loses it. The socket path is the caller's (from
//! `master.toml`, `mail_daemon::Daemon::socket_path("qmgr")`); qmgr's own
//! bounces need none.
//!
//! Not here: parsing addresses and deciding who may send (the callers'
//! policy), the maildrop format (`mail_queue::maildrop`), and the text of
//! the notifications (qmgr's `bounce`).

mod cleaner;
mod stream;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use mail_cleanup::{CleanupParams, Trace};
use mail_ipc::trigger::Trigger;
use mail_queue::{Envelope, Queue, Recipient};
use mail_types::esmtp::EnvelopeParams;
use mail_types::{Address, QueueId};

pub use cleaner::HEADER_CAP;
pub use stream::{Stream, WRITE_CHUNK};

/// Where a message comes from: what its envelope records and whether it
/// is cleaned on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An SMTP client (smtpd). Cleaned.
    Smtp {
        /// The HELO/EHLO argument.
        helo: Option<String>,
        /// `localhost` or `unknown` (smtpd's `policy::client_name`).
        client_name: String,
        /// The client's address.
        client_addr: IpAddr,
        /// `SMTP` or `ESMTP` (RFC 3848), for `Received:`.
        protocol: &'static str,
        /// The TLS session's `(using ...)` comment lines for `Received:`
        /// (`mail_tls::TlsSummary::received_comment`); `None` in plain text.
        tls: Option<Vec<String>>,
        /// The SASL mechanism and user name after AUTH, for the log.
        sasl: Option<(&'static str, String)>,
        /// How to clean the message.
        cleanup: CleanupParams,
    },
    /// A local user through `sendmail` and maildrop/ (pickup). Cleaned.
    Pickup {
        /// The maildrop file owner's uid, the only trusted identity.
        uid: u32,
        /// How to clean the message.
        cleanup: CleanupParams,
    },
    /// A copy forwarded by the local delivery agent (`.forward`, an
    /// alias to a remote address). Already clean: it was cleaned when it
    /// first arrived, and only `Delivered-To:` was added since.
    Forward,
    /// A non-delivery notification built by qmgr. Clean as built.
    Bounce,
}

impl Origin {
    /// How cleanup(8)'s header work is done on the content; `None` for
    /// the origins whose content is already clean.
    pub fn cleanup(&self) -> Option<&CleanupParams> {
        match self {
            Origin::Smtp { cleanup, .. } | Origin::Pickup { cleanup, .. } => Some(cleanup),
            Origin::Forward | Origin::Bounce => None,
        }
    }

    /// The envelope's `origin` field.
    pub fn name(&self) -> &'static str {
        match self {
            Origin::Smtp { .. } => "smtpd",
            Origin::Pickup { .. } => "pickup",
            Origin::Forward => "local",
            Origin::Bounce => "bounce",
        }
    }

    /// The envelope's `client` field: `name[addr]` for SMTP, as logs
    /// show it; `local` otherwise.
    pub fn client(&self) -> String {
        match self {
            Origin::Smtp { client_name, client_addr, .. } => {
                format!("{client_name}[{client_addr}]")
            }
            _ => "local".to_owned(),
        }
    }

    /// What follows `QUEUEID: client=NAME[ADDR]` in Postfix's log line:
    /// `, sasl_method=PLAIN, sasl_username=USER` after AUTH.
    pub fn client_log_suffix(&self) -> String {
        match self {
            Origin::Smtp { sasl: Some((method, user)), .. } => {
                format!(", sasl_method={method}, sasl_username={user}")
            }
            _ => String::new(),
        }
    }

    fn attrs(&self) -> Vec<(String, String)> {
        match self {
            Origin::Smtp { helo, protocol, .. } => {
                let mut attrs = Vec::with_capacity(2);
                if let Some(helo) = helo {
                    attrs.push(("helo".to_owned(), helo.clone()));
                }
                attrs.push(("protocol".to_owned(), (*protocol).to_owned()));
                attrs
            }
            Origin::Pickup { uid, .. } => vec![("uid".to_owned(), uid.to_string())],
            Origin::Forward | Origin::Bounce => Vec::new(),
        }
    }
}

/// One message to queue, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The envelope sender, qualified; `None` for the null sender `<>`.
    pub sender: Option<Address>,
    /// Each recipient as qualified and as originally given (with its
    /// DSN NOTIFY and ORCPT, from SMTP); at least one.
    pub recipients: Vec<Recipient>,
    /// Where the message comes from.
    pub origin: Origin,
    /// What SMTP's MAIL FROM declared (body type, SMTPUTF8, DSN RET and
    /// ENVID); empty for the other origins.
    pub esmtp: EnvelopeParams,
}

impl Submission {
    /// The envelope as it goes into the queue file, arriving now.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            sender: self.sender.clone(),
            recipients: self.recipients.clone(),
            arrival: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            client: self.origin.client(),
            origin: self.origin.name().to_owned(),
            attrs: self.origin.attrs(),
            esmtp: self.esmtp.clone(),
        }
    }

    /// What cleanup needs for `Received:` and `Message-Id:`, for the
    /// origins that are cleaned; `None` for the others.
    pub fn trace(&self, queue_id: &QueueId) -> Option<Trace> {
        let tls = match &self.origin {
            Origin::Smtp { tls, .. } => tls.clone(),
            _ => None,
        };
        let (helo, client_name, client_addr, protocol, local_uid) = match &self.origin {
            Origin::Smtp { helo, client_name, client_addr, protocol, .. } => {
                // Postfix writes IPv6 clients as [IPv6:addr] in Received:
                // (RFC 5321 §4.1.3).
                let addr = match client_addr {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("IPv6:{a}"),
                };
                (helo.clone(), client_name.clone(), addr, (*protocol).to_owned(), None)
            }
            Origin::Pickup { uid, .. } => {
                (None, "localhost".into(), "127.0.0.1".into(), "local".into(), Some(*uid))
            }
            Origin::Forward | Origin::Bounce => return None,
        };
        Some(Trace {
            tls,
            helo,
            client_name,
            client_addr,
            protocol,
            local_uid,
            queue_id: queue_id.clone(),
            single_recipient: match self.recipients.as_slice() {
                [one] => Some(one.address.to_string()),
                _ => None,
            },
            time: chrono::Local::now(),
        })
    }
}

/// Why a message was not queued. Nothing of it is left in the queue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The queue file could not be written (see
    /// [`Error::is_disk_full`]); worth retrying.
    #[error(transparent)]
    Queue(#[from] mail_queue::Error),
    /// Cleanup refused the whole message: its header block is too large,
    /// or (temporarily) a canonical table for its header addresses could
    /// not be read.
    #[error(transparent)]
    Cleanup(#[from] mail_cleanup::Error),
    /// A streamed message's header block passed `header_size_limit`
    /// (the stream stops looking before the whole header is read).
    #[error("message header block exceeds header_size_limit = {limit}")]
    HeaderTooLarge {
        /// The configured limit.
        limit: usize,
    },
}

impl Error {
    /// Whether the queue's file system is full (ENOSPC/EDQUOT): smtpd
    /// answers 452 4.3.1 rather than 451 4.3.0.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Queue(e) if e.is_disk_full())
    }

    /// Whether the message itself was refused (retrying the same content
    /// fails the same way), as opposed to the queue or a lookup table
    /// failing.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Queue(_) => false,
            Error::Cleanup(e) => !e.is_temporary(),
            Error::HeaderTooLarge { .. } => true,
        }
    }
}

/// A message now on stable storage in `incoming/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its queue id.
    pub id: QueueId,
    /// The `Message-Id:` of a cleaned message, for the log.
    pub message_id: Option<String>,
}

/// Queues `content` (LF line endings) for `sub`: cleanup where the origin
/// needs it, then reserve and commit (blocking: it fsyncs). Does not wake
/// qmgr; see [`submit_and_wake`].
pub fn submit(queue: &Queue, sub: &Submission, content: &[u8]) -> Result<Queued, Error> {
    submit_built(queue, sub, |_| content.to_vec())
}

/// [`submit`] for content that names its own queue id (a bounce's
/// `Message-Id:` and MIME boundary): `build` gets the id once it is
/// reserved.
pub fn submit_built(
    queue: &Queue,
    sub: &Submission,
    build: impl FnOnce(&QueueId) -> Vec<u8>,
) -> Result<Queued, Error> {
    let pending = queue.reserve()?;
    let id = pending.id().clone();
    let content = build(&id);
    let (content, message_id) = match (sub.origin.cleanup(), sub.trace(&id)) {
        (Some(params), Some(trace)) => {
            // Dropping `pending` on the error removes its temporary file.
            let cleaned = mail_cleanup::cleanup(params, &trace, sub.sender.as_ref(), &content)?;
            let mid = mail_cleanup::header_value(&cleaned, "Message-ID");
            (cleaned, mid)
        }
        _ => (content, None),
    };
    let id = pending.commit(&sub.envelope(), &content)?;
    Ok(Queued { id, message_id })
}

/// Queues a message again under a new id (`postsuper -r`): `envelope`
/// is the old message's, with its arrival time, client and ESMTP facts,
/// and the recipients still to deliver as the caller rewrote them; the
/// content was cleaned when the message first arrived and is stored as
/// it is. The caller removes the old file only after this returns.
pub fn requeue(queue: &Queue, envelope: &Envelope, content: &[u8]) -> Result<Queued, Error> {
    let id = queue.reserve()?.commit(envelope, content)?;
    Ok(Queued { id, message_id: None })
}

/// [`submit`], then [`wake_queued`] qmgr at `qmgr` with the new id
/// (blocking, bounded).
pub fn submit_and_wake(
    queue: &Queue,
    sub: &Submission,
    content: &[u8],
    qmgr: &Path,
) -> Result<Queued, Error> {
    let queued = submit(queue, sub, content)?;
    wake_queued(qmgr, std::slice::from_ref(&queued.id));
    Ok(queued)
}

/// Wakes qmgr from a blocking caller: one `Trigger::Wakeup` to the socket
/// at `qmgr`, given up after `mail_ipc::trigger::SEND_TIMEOUT`. A failure
/// is a warning: qmgr also scans `incoming/` on its own timer. For callers
/// that do not know what they queued; qmgr answers it with a scan.
pub fn wake(qmgr: &Path) {
    send_blocking(qmgr, Trigger::Wakeup);
}

/// [`wake`], naming the messages just committed to `incoming/`, so qmgr
/// takes them without reading the directory. More than
/// `mail_ipc::trigger::MAX_QUEUED_IDS` (or none) becomes a plain wake-up.
pub fn wake_queued(qmgr: &Path, ids: &[QueueId]) {
    send_blocking(qmgr, Trigger::queued(ids.to_vec()));
}

fn send_blocking(qmgr: &Path, trigger: Trigger) {
    if let Err(e) = mail_ipc::trigger::send(qmgr, trigger) {
        tracing::warn!("cannot trigger qmgr at {}: {e}", qmgr.display());
    }
}

/// [`wake`] for async callers, awaiting the (bounded) send. A failure is
/// logged at debug level: for a daemon that queues often it is routine
/// while qmgr restarts.
pub async fn wake_async(qmgr: &Path) {
    send_async(qmgr, Trigger::Wakeup).await;
}

/// [`wake_queued`] for async callers.
pub async fn wake_queued_async(qmgr: &Path, ids: &[QueueId]) {
    send_async(qmgr, Trigger::queued(ids.to_vec())).await;
}

async fn send_async(qmgr: &Path, trigger: Trigger) {
    if let Err(e) = mail_ipc::trigger::send_async(qmgr, trigger).await {
        tracing::debug!("cannot trigger qmgr at {}: {e}", qmgr.display());
    }
}

/// Wakes qmgr after a commit without holding up the caller: the trigger,
/// naming the new messages, goes from a new task. Ids committed while one
/// trigger is on its way are sent together by the next (a busy smtpd
/// sends one frame per round trip to qmgr, not one per message).
#[derive(Debug)]
pub struct QmgrWakeup {
    socket: PathBuf,
    pending: Mutex<Pending>,
}

/// What the next trigger says, and whether a task is sending.
#[derive(Debug, Default)]
struct Pending {
    ids: Vec<QueueId>,
    /// More than `MAX_QUEUED_IDS` piled up: the next trigger is a plain
    /// `Wakeup` and qmgr scans for all of them.
    overflow: bool,
    /// A task owns the sending; `wake` only adds to the list.
    in_flight: bool,
}

impl QmgrWakeup {
    /// A waker for the qmgr listening at `socket` (the path master.toml
    /// gives the `qmgr` service).
    pub fn new(socket: PathBuf) -> QmgrWakeup {
        QmgrWakeup { socket, pending: Mutex::new(Pending::default()) }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A list and two flags, each change a single step: a panic
        // elsewhere cannot leave them half-made.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Announces `id`, just committed to `incoming/`, from a task on the
    /// current tokio runtime; returns at once.
    ///
    /// Nothing is lost: `wake` adds the id under the lock and, if no task
    /// is sending, marks one as sending and spawns it. The task takes the
    /// whole list under the same lock, sends it, and looks again; it gives
    /// up `in_flight` only under the lock and only when it found the list
    /// empty. So an id added while a send is on its way is either taken by
    /// that task's next look or, if the task already let go, starts a new
    /// task: every id committed is in some trigger sent after its commit.
    /// (A trigger that does not arrive only delays the mail: qmgr's own
    /// scans find the file.) Past `MAX_QUEUED_IDS` waiting ids the list is
    /// dropped for one plain `Wakeup`, so memory stays bounded while qmgr
    /// does not answer, and nothing is logged per message.
    pub fn wake(self: &Arc<Self>, id: QueueId) {
        {
            let mut p = self.pending();
            if !p.overflow {
                if p.ids.len() < mail_ipc::trigger::MAX_QUEUED_IDS {
                    p.ids.push(id);
                } else {
                    p.ids = Vec::new();
                    p.overflow = true;
                }
            }
            if p.in_flight {
                return;
            }
            p.in_flight = true;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let trigger = {
                    let mut p = me.pending();
                    if p.overflow {
                        p.overflow = false;
                        p.ids.clear();
                        Trigger::Wakeup
                    } else if p.ids.is_empty() {
                        p.in_flight = false;
                        return;
                    } else {
                        Trigger::Queued(std::mem::take(&mut p.ids))
                    }
                };
                send_async(&me.socket, trigger).await;
            }
        });
    }
}

#[cfg(test)]
mod tests;
