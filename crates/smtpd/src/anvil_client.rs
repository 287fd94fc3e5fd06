//! Client connection limits across every smtpd process: who may connect
//! (`smtpd_client_connection_count_limit`,
//! `smtpd_client_connection_rate_limit`), asked of anvil (Postfix
//! anvil(8), `private/anvil`) before a session starts, through the
//! process's one link to it (`mail_session::anvil`, which pop3d and imapd
//! use too).
//!
//! When anvil cannot be reached or does not answer in time, smtpd fails
//! open, as Postfix does: a warning (from the link), the session goes
//! ahead, and only this process's own count limit applies. Severities:
//! warnings only.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mail_ipc::anvil::{ConnectReply, Subject};
use mail_session::anvil::{AnvilLink, AnvilSlot};

use crate::policy::{ConnectionCounts, ConnectionSlot};
use crate::session::Client;

/// The service name anvil counts and the warnings name, as Postfix's
/// master.cf calls it.
const SERVICE: &str = "smtp";

/// The limits and the way to anvil, one per process.
#[derive(Debug)]
pub(crate) struct Anvil {
    link: AnvilLink,
    /// `smtpd_client_connection_rate_limit`; 0 means no limit.
    rate_limit: u32,
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
    /// Ends the connection in every count and waits (briefly) until anvil
    /// has been told, so that a client that sees its connection close
    /// finds its slot free when it connects again.
    pub(crate) async fn release(mut self) {
        if let Some(slot) = self.anvil.take() {
            slot.release().await;
        }
    }
}

impl Anvil {
    /// Reads smtpd_client_connection_rate_limit; anvil listens at `path`.
    pub(crate) fn from_config(c: &mail_config::Main, path: PathBuf) -> Anvil {
        Anvil {
            link: AnvilLink::new(path, SERVICE),
            rate_limit: mail_config::settings::Smtpd::new(c).smtpd_client_connection_rate_limit,
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
        self.link.connect(Subject::Client(client)).await
    }
}

fn concurrency_exceeded(count: u32, client: &Client) {
    tracing::warn!(
        "Connection concurrency limit exceeded: {count} from {client} for service {SERVICE}"
    );
}
