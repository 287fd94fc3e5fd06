//! Client connection limits across every smtpd process: who may connect
//! (`smtpd_client_connection_count_limit`,
//! `smtpd_client_connection_rate_limit`), asked of anvil (Postfix
//! anvil(8), `private/anvil`) before a session starts.
//!
//! One task per process owns the one link to anvil; sessions send it
//! their requests over a channel. When anvil cannot be reached or does not
//! answer within [`TIMEOUT`], smtpd fails open, as Postfix does: a warning
//! (at most one per [`RETRY`]), the session goes ahead, and only this
//! process's own count limit applies. A connection ending tells anvil only
//! on the link that counted it; when that link broke, anvil already let
//! its counts go. Severities: warnings only.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mail_ipc::anvil::{AnvilClient, ConnectReply};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::policy::{ConnectionCounts, ConnectionSlot};
use crate::session::Client;

/// The service name anvil counts and the warnings name, as Postfix's
/// master.cf calls it.
const SERVICE: &str = "smtp";
/// How long a session waits for anvil before going ahead without it.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How long smtpd leaves an unreachable anvil alone before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// The limits and the way to anvil, one per process.
#[derive(Debug)]
pub(crate) struct Anvil {
    path: PathBuf,
    /// `smtpd_client_connection_rate_limit`; 0 means no limit.
    rate_limit: u32,
    /// The link task, started by the first connection.
    link: OnceLock<mpsc::UnboundedSender<Request>>,
}

/// What a session holds while it is counted; dropping it (also while a
/// session unwinds from a panic) ends the connection in every count, and
/// [`Admitted::release`] does so before the connection is closed.
#[derive(Debug)]
pub(crate) struct Admitted {
    _local: ConnectionSlot,
    anvil: Option<AnvilSlot>,
}

/// Why a connection is refused: the log line says it, the client gets a 421.
#[derive(Debug)]
pub(crate) struct Refused;

impl Admitted {
    /// Ends the connection in every count and waits (at most [`TIMEOUT`])
    /// until anvil has been told, so that a client that sees its
    /// connection close finds its slot free when it connects again.
    pub(crate) async fn release(mut self) {
        if let Some(slot) = self.anvil.as_mut() {
            let (tx, rx) = oneshot::channel();
            if slot.send(Some(tx)) {
                let _ = tokio::time::timeout(TIMEOUT, rx).await;
            }
        }
    }
}

#[derive(Debug)]
struct AnvilSlot {
    /// `None` once the disconnect was sent.
    link: Option<mpsc::UnboundedSender<Request>>,
    client: IpAddr,
    epoch: u64,
}

impl AnvilSlot {
    fn send(&mut self, done: Option<oneshot::Sender<()>>) -> bool {
        let Some(link) = self.link.take() else { return false };
        link.send(Request::Disconnect { client: self.client, epoch: self.epoch, done }).is_ok()
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
    Connect { client: IpAddr, reply: oneshot::Sender<(ConnectReply, u64)> },
    /// A connection counted on link `epoch` ended; `done` is dropped once
    /// anvil was told (or could not be).
    Disconnect { client: IpAddr, epoch: u64, done: Option<oneshot::Sender<()>> },
}

impl Anvil {
    /// Reads smtpd_client_connection_rate_limit; anvil listens at `path`.
    pub(crate) fn from_config(c: &mail_config::Main, path: PathBuf) -> Anvil {
        Anvil {
            path,
            rate_limit: mail_config::settings::Smtpd::new(c).smtpd_client_connection_rate_limit,
            link: OnceLock::new(),
        }
    }

    /// Counts a connection from `client` in this process and at anvil and
    /// applies `count_limit` (`smtpd_client_connection_count_limit`, 0 for
    /// none) and the rate limit, logging Postfix's warning when one is
    /// exceeded. A refused connection still counts towards the rate, as in
    /// Postfix; its place in the count is given back at once.
    pub(crate) async fn admit(
        &self,
        client: &Client,
        counts: &Arc<ConnectionCounts>,
        count_limit: u32,
    ) -> Result<Admitted, Refused> {
        let anvil = self.ask(client.addr).await;
        if let Some((reply, _)) = &anvil {
            if count_limit > 0 && reply.count > count_limit {
                concurrency_exceeded(reply.count, client);
                return Err(Refused);
            }
            if self.rate_limit > 0 && reply.rate > self.rate_limit {
                tracing::warn!(
                    "Connection rate limit exceeded: {} from {client} for service {SERVICE}",
                    reply.rate
                );
                return Err(Refused);
            }
        }
        // Without anvil this is the only limit; with it, it only matters
        // when anvil restarted and forgot connections that are still open.
        let local = counts.enter(client.addr, count_limit).map_err(|count| {
            concurrency_exceeded(count, client);
            Refused
        })?;
        Ok(Admitted { _local: local, anvil: anvil.map(|(_, slot)| slot) })
    }

    async fn ask(&self, client: IpAddr) -> Option<(ConnectReply, AnvilSlot)> {
        let link = self.link.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(link_task(self.path.clone(), rx));
            tx
        });
        let (tx, rx) = oneshot::channel();
        link.send(Request::Connect { client, reply: tx }).ok()?;
        // The task bounds each exchange by TIMEOUT; this bounds the wait
        // behind other sessions' requests too.
        let (reply, epoch) = tokio::time::timeout(TIMEOUT * 3, rx).await.ok()?.ok()?;
        Some((reply, AnvilSlot { link: Some(link.clone()), client, epoch }))
    }
}

fn concurrency_exceeded(count: u32, client: &Client) {
    tracing::warn!(
        "Connection concurrency limit exceeded: {count} from {client} for service {SERVICE}"
    );
}

/// The link to anvil: opened when first needed, reopened after it broke.
struct Link {
    path: PathBuf,
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
            "{what}; client connection limits are counted in this process only until anvil is back"
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

    async fn connect(&mut self, client: IpAddr) -> Option<ConnectReply> {
        // A link that broke while idle (anvil restarted) shows it only now;
        // a fresh one is tried at once. A slow anvil gets no second try.
        for _ in 0..2 {
            if !self.open().await {
                return None;
            }
            let conn = self.conn.as_mut()?;
            match conn.connect(SERVICE, client, TIMEOUT).await {
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

    async fn disconnect(&mut self, client: IpAddr) {
        if let Some(conn) = self.conn.as_mut()
            && let Err(e) = conn.disconnect(SERVICE, client, TIMEOUT).await
        {
            self.broke(format_args!("anvil: {e}"));
        }
    }
}

async fn link_task(path: PathBuf, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut link = Link { path, conn: None, epoch: 0, retry_at: None };
    while let Some(req) = rx.recv().await {
        match req {
            Request::Connect { client, reply } => {
                let Some(counts) = link.connect(client).await else { continue };
                // The session gave up waiting: it is not counted.
                if reply.send((counts, link.epoch)).is_err() {
                    link.disconnect(client).await;
                }
            }
            Request::Disconnect { client, epoch, done } => {
                if epoch == link.epoch {
                    link.disconnect(client).await;
                }
                drop(done);
            }
        }
    }
}
