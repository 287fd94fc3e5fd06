//! The process level of smtpd: the shared per-process state and the
//! per-process and per-client connection limits. Accepting, stopping
//! (drain on SIGUSR1, exit on SIGTERM) and catching a session's panic
//! are `mail_daemon::run`'s.
//!
//! Severities: fatal only for start-up problems (no usable listener).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mail_daemon::{Connection, Daemon, Listener, Service};
use mail_queue::Queue;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::anvil_client::{Anvil, Refused};
use crate::enqueue::QmgrWakeup;
use crate::policy::{ConnectionCounts, Policy};
use crate::session::{self, Client};
use crate::settings::Settings;

/// What every session of this process shares. Built once; read only,
/// except for the connection counts and the wake-up flag.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) policy: Policy,
    pub(crate) queue: Queue,
    pub(crate) wakeup: Arc<QmgrWakeup>,
    pub(crate) counts: Arc<ConnectionCounts>,
    pub(crate) anvil: Anvil,
    /// Sessions open in this process, for `smtpd_process_connection_limit`.
    open: AtomicUsize,
}

impl Context {
    /// The state for a process configured by `config`, waking qmgr at
    /// `qmgr_socket` and asking anvil at `anvil_socket`. `Err` is a
    /// configuration error of the policy (an unknown restriction, a
    /// table type Postern cannot read), which names the parameter.
    pub(crate) fn from_config(
        config: &mail_config::Main,
        qmgr_socket: PathBuf,
        anvil_socket: PathBuf,
    ) -> Result<Context, String> {
        let queue_dir = mail_config::settings::Common::new(config).queue_directory;
        Ok(Context {
            settings: Settings::from_config(config),
            policy: Policy::from_config(config)?,
            wakeup: Arc::new(QmgrWakeup::new(qmgr_socket)),
            queue: Queue::new(queue_dir),
            counts: Arc::new(ConnectionCounts::default()),
            anvil: Anvil::from_config(config, anvil_socket),
            open: AtomicUsize::new(0),
        })
    }
}

/// smtpd as a `mail_daemon::Service`: the skeleton accepts, stops,
/// drains and catches panics; this decides per connection.
struct Smtpd(Arc<Context>);

impl Service for Smtpd {
    async fn connection(self: Arc<Self>, conn: Connection) {
        let Connection::Tcp { stream, peer } = conn else { return };
        let ctx = &self.0;
        let client = Client::new(peer.ip());
        let open = ctx.open.fetch_add(1, Ordering::AcqRel);
        let _slot = OpenSlot(ctx);
        if open >= ctx.settings.process_connection_limit {
            refuse(&stream, &client, ctx, open);
            return;
        }
        connection(stream, client, Arc::clone(ctx)).await;
    }
}

/// Gives a session's place back however it ends (a panic included).
struct OpenSlot<'a>(&'a Context);

impl Drop for OpenSlot<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves until stopped. Returns an error only when start-up fails.
pub(crate) async fn run(mut daemon: Daemon) -> anyhow::Result<()> {
    if daemon.listeners.iter().any(|l| matches!(l, Listener::Unix(_))) {
        anyhow::bail!("smtpd serves TCP only (type = \"inet\" in master.toml)");
    }
    let qmgr = daemon.socket_path("qmgr")?;
    // Without an anvil service in master.toml smtpd runs on its own
    // per-process limit; the default path then fails, and says so, once a
    // second at most (fail-open, as with an anvil that is down).
    let anvil = daemon.socket_path_or("anvil", mail_ipc::sockets::ANVIL);
    let ctx = Context::from_config(&daemon.config, qmgr, anvil)
        .map_err(|e| anyhow::anyhow!("{}: {e}", daemon.config.file().display()))?;
    let ctx = Arc::new(ctx);
    mail_daemon::run(&mut daemon, Arc::new(Smtpd(ctx))).await?;
    Ok(())
}

/// A connection over `smtpd_process_connection_limit`: one 421 and
/// close, without a session task or its buffers. The reply is written
/// without waiting: on a fresh connection it fits in the socket buffer,
/// and a client that does not read it learns from the close anyway.
fn refuse(stream: &TcpStream, client: &Client, ctx: &Context, open: usize) {
    tracing::info!("connect from {client}");
    tracing::warn!(
        "too many connections: {open} open in this process \
         (smtpd_process_connection_limit = {}); refusing {client}",
        ctx.settings.process_connection_limit
    );
    let reply =
        format!("421 4.7.0 {} Error: too many connections\r\n", ctx.settings.server.hostname);
    let _ = stream.try_write(reply.as_bytes());
    tracing::info!("disconnect from {client} commands=0");
}

/// One connection: the client limits (asked of anvil), the session, the
/// log lines around it.
async fn connection(mut stream: TcpStream, client: Client, ctx: Arc<Context>) {
    tracing::info!("connect from {client}");
    // Replies are written whole, one batch per write; Nagle would only
    // delay them.
    let _ = stream.set_nodelay(true);
    // Postfix exempts mynetworks from client limits
    // (smtpd_client_event_limit_exceptions = $mynetworks).
    let admitted = if ctx.policy.is_trusted(client.addr) {
        None
    } else {
        match ctx.anvil.admit(&client, &ctx.counts, ctx.settings.connection_limit).await {
            Ok(admitted) => Some(admitted),
            Err(Refused) => {
                let reply = format!(
                    "421 4.7.0 {} Error: too many connections from {}\r\n",
                    ctx.settings.server.hostname, client.addr
                );
                let _ =
                    tokio::time::timeout(ctx.settings.timeout, stream.write_all(reply.as_bytes()))
                        .await;
                tracing::info!("disconnect from {client} commands=0");
                return;
            }
        }
    };
    let counters = session::run(&mut stream, client.clone(), ctx).await;
    if let Some(admitted) = admitted {
        admitted.release().await;
    }
    let _ = stream.shutdown().await;
    tracing::info!("disconnect from {client} {counters}");
}
