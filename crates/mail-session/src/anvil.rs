//! The one link a process keeps to anvil (`private/anvil`), shared by its
//! sessions: smtpd's client connection limits, and pop3d's and imapd's
//! caps per client address and per user, counted across every process of
//! the service.
//!
//! One task per process owns the link; sessions send it their requests
//! over a channel. When anvil cannot be reached or does not answer within
//! [`TIMEOUT`], the caller fails open, as Postfix does: a warning (at most
//! one per [`RETRY`]), the session goes ahead, and only the process's own
//! counts apply. A connection ending tells anvil only on the link that
//! counted it; when that link broke, anvil already let its counts go.
//!
//! [`hold_for_session`] is the mail side of pop3d and imapd: a session
//! handed over from a login process is counted again, on a link of the
//! mail process's own that lasts as long as it does, since the login
//! process may be out of the session's path (a plain connection is passed
//! on whole). Severities: warnings only.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use mail_ipc::anvil::{AnvilClient, ConnectReply, MAX_USER, Subject};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long a session waits for anvil before going ahead without it.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// How long a process leaves an unreachable anvil alone before trying
/// again.
pub const RETRY: Duration = Duration::from_secs(1);

/// A process's way to anvil for one service.
#[derive(Debug)]
pub struct AnvilLink {
    path: PathBuf,
    service: &'static str,
    /// The link task, started by the first request.
    link: OnceLock<mpsc::UnboundedSender<Request>>,
}

/// One connection counted at anvil; dropping it (also while a session
/// unwinds from a panic) ends it there, and [`AnvilSlot::release`] does so
/// and waits until anvil was told.
#[derive(Debug)]
pub struct AnvilSlot {
    /// `None` once the disconnect was sent.
    link: Option<mpsc::UnboundedSender<Request>>,
    subject: Subject,
    epoch: u64,
}

impl AnvilSlot {
    fn send(&mut self, done: Option<oneshot::Sender<()>>) -> bool {
        let Some(link) = self.link.take() else { return false };
        let subject = self.subject.clone();
        link.send(Request::Disconnect { subject, epoch: self.epoch, done }).is_ok()
    }

    /// Ends the connection at anvil and waits (at most [`TIMEOUT`]) until
    /// anvil has been told, so that a client that sees its connection
    /// close finds its slot free when it connects again.
    pub async fn release(mut self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Some(tx)) {
            let _ = tokio::time::timeout(TIMEOUT, rx).await;
        }
    }
}

impl Drop for AnvilSlot {
    fn drop(&mut self) {
        self.send(None);
    }
}

#[derive(Debug)]
enum Request {
    /// Count a connection; the answer comes with the link's epoch, or not
    /// at all when anvil could not be asked.
    Connect { subject: Subject, reply: oneshot::Sender<(ConnectReply, u64)> },
    /// A connection counted on link `epoch` ended; `done` is dropped once
    /// anvil was told (or could not be).
    Disconnect { subject: Subject, epoch: u64, done: Option<oneshot::Sender<()>> },
}

impl AnvilLink {
    /// Counts connections to `service` (as its daemon logs it: `smtp`,
    /// `pop3`, `imap`) at the anvil listening at `path`.
    pub fn new(path: PathBuf, service: &'static str) -> AnvilLink {
        AnvilLink { path, service, link: OnceLock::new() }
    }

    /// The service counted.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Counts one connection of `subject` and returns anvil's counts with
    /// it; `None` when anvil could not be asked (warned about by the link)
    /// or the user name is too long to send, and the caller goes ahead on
    /// its own counts.
    pub async fn connect(&self, subject: Subject) -> Option<(ConnectReply, AnvilSlot)> {
        if matches!(&subject, Subject::User(u) if u.is_empty() || u.len() > MAX_USER) {
            return None;
        }
        let link = self.link.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(link_task(self.path.clone(), self.service, rx));
            tx
        });
        let (tx, rx) = oneshot::channel();
        link.send(Request::Connect { subject: subject.clone(), reply: tx }).ok()?;
        // The task bounds each exchange by TIMEOUT; this bounds the wait
        // behind other sessions' requests too.
        let (reply, epoch) = tokio::time::timeout(TIMEOUT * 3, rx).await.ok()?.ok()?;
        Some((reply, AnvilSlot { link: Some(link.clone()), subject, epoch }))
    }
}

/// The link to anvil: opened when first needed, reopened after it broke.
struct Link {
    path: PathBuf,
    service: &'static str,
    conn: Option<AnvilClient>,
    /// Bumped at each new connection, so that a session counted on an old
    /// one does not end on the new one.
    epoch: u64,
    /// No new attempt before this.
    retry_at: Option<Instant>,
}

impl Link {
    fn broke(&mut self, what: std::fmt::Arguments<'_>) {
        tracing::warn!(
            "{what}; connection limits are counted in this process only until anvil is back"
        );
        self.conn = None;
        self.retry_at = Some(Instant::now() + RETRY);
    }

    async fn open(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        match AnvilClient::open(&self.path, TIMEOUT).await {
            Ok(c) => {
                self.conn = Some(c);
                self.epoch += 1;
                self.retry_at = None;
                true
            }
            Err(e) => {
                let path = self.path.display().to_string();
                self.broke(format_args!("cannot connect to anvil at {path}: {e}"));
                false
            }
        }
    }

    async fn connect(&mut self, subject: &Subject) -> Option<ConnectReply> {
        // A link that broke while idle (anvil restarted) shows it only now;
        // a fresh one is tried at once. A slow anvil gets no second try.
        for _ in 0..2 {
            if !self.open().await {
                return None;
            }
            let conn = self.conn.as_mut()?;
            match conn.connect(self.service, subject, TIMEOUT).await {
                Ok(reply) => return Some(reply),
                Err(e) => {
                    let timed_out = matches!(&e, mail_ipc::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut);
                    self.conn = None;
                    if timed_out {
                        self.broke(format_args!("anvil: {e}"));
                        return None;
                    }
                }
            }
        }
        self.broke(format_args!("anvil: the connection broke twice"));
        None
    }

    async fn disconnect(&mut self, subject: &Subject) {
        if let Some(conn) = self.conn.as_mut()
            && let Err(e) = conn.disconnect(self.service, subject, TIMEOUT).await
        {
            self.broke(format_args!("anvil: {e}"));
        }
    }
}

async fn link_task(path: PathBuf, service: &'static str, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut link = Link { path, service, conn: None, epoch: 0, retry_at: None };
    while let Some(req) = rx.recv().await {
        match req {
            Request::Connect { subject, reply } => {
                let Some(counts) = link.connect(&subject).await else { continue };
                // The session gave up waiting: it is not counted.
                if reply.send((counts, link.epoch)).is_err() {
                    link.disconnect(&subject).await;
                }
            }
            Request::Disconnect { subject, epoch, done } => {
                if epoch == link.epoch {
                    link.disconnect(&subject).await;
                }
                drop(done);
            }
        }
    }
}

/// The mail side's count of its one session: the client address and the
/// user, on a link to the anvil at `path` that the returned stream keeps
/// open (keep it for the session's life). `None`, with a warning, when
/// anvil cannot be reached: the session goes ahead uncounted, as a login
/// process does then. Blocking.
pub fn hold_for_session(
    path: Option<&Path>,
    service: &str,
    handoff: &crate::Handoff,
) -> Option<std::os::unix::net::UnixStream> {
    let path = path?;
    let mut subjects = vec![Subject::Client(handoff.client.ip())];
    let user = &handoff.user.user;
    if !user.is_empty() && user.len() <= MAX_USER {
        subjects.push(Subject::User(user.clone()));
    }
    match mail_ipc::anvil::hold(path, service, &subjects, TIMEOUT) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                "cannot count the session at anvil ({}): {e}; connection limits miss it",
                path.display()
            );
            None
        }
    }
}
