//! The process level of smtpd: the shared per-process state, the accept
//! loops over the sockets master handed us, the per-process and
//! per-client connection limits, and the two ways of stopping (drain on SIGUSR1, exit on SIGTERM).
//!
//! Each connection runs as its own task, so a panic in one session is
//! caught by tokio, logged here, and costs only that connection.
//! Severities: fatal only for start-up problems (no usable listener);
//! accept errors are warnings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mail_daemon::{Daemon, Listener, Stop};
use mail_queue::Queue;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};

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
}

impl Context {
    /// The state for a process configured by `config`.
    pub(crate) fn from_config(config: &mail_config::Main) -> Context {
        let queue_dir = config.path("queue_directory");
        Context {
            settings: Settings::from_config(config),
            policy: Policy::from_config(config),
            wakeup: Arc::new(QmgrWakeup::new(&queue_dir)),
            queue: Queue::new(queue_dir),
            counts: Arc::new(ConnectionCounts::default()),
            anvil: Anvil::from_config(config),
        }
    }
}

/// Serves until stopped. Returns an error only when start-up fails.
pub(crate) async fn run(mut daemon: Daemon) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&daemon.config));
    let mut listeners = Vec::new();
    for listener in std::mem::take(&mut daemon.listeners) {
        match listener {
            Listener::Tcp(l) => {
                l.set_nonblocking(true).context("cannot make the listener non-blocking")?;
                listeners.push(TcpListener::from_std(l).context("cannot adopt the listener")?);
            }
            Listener::Unix(_) => {
                anyhow::bail!("smtpd serves TCP only (type = \"inet\" in master.toml)")
            }
        }
    }
    if listeners.is_empty() {
        anyhow::bail!("smtpd was given no listening socket (start it through master)");
    }

    // One task owns the signal streams and forwards every stop request.
    let (stop_tx, mut stop_rx) = watch::channel(None::<Stop>);
    tokio::spawn(async move {
        loop {
            let how = mail_daemon::stop_signal().await;
            if stop_tx.send(Some(how)).is_err() {
                return;
            }
        }
    });

    let (conn_tx, mut conn_rx) = mpsc::channel::<(TcpStream, SocketAddr)>(64);
    let mut acceptors = JoinSet::new();
    for listener in listeners {
        acceptors.spawn(accept_loop(listener, conn_tx.clone()));
    }
    drop(conn_tx);
    daemon.ready();

    let mut sessions = JoinSet::new();
    let mut labels: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut draining = false;
    let mut signals_alive = true;
    loop {
        tokio::select! {
            changed = stop_rx.changed(), if signals_alive => {
                if changed.is_err() {
                    // The signal task is gone (it never ends on its own);
                    // keep serving, the default signal actions still apply.
                    signals_alive = false;
                    continue;
                }
                let how = *stop_rx.borrow_and_update();
                match how {
                    Some(Stop::Now) => return Ok(()),
                    Some(Stop::Drain) if !draining => {
                        draining = true;
                        daemon.draining();
                        // Closing our copies of the listeners: new
                        // connections go to the next generation.
                        acceptors.abort_all();
                        conn_rx.close();
                        tracing::info!("draining: {} session(s) open", sessions.len());
                    }
                    _ => {}
                }
            }
            Some((stream, peer)) = conn_rx.recv(), if !draining => {
                let client = Client::new(peer.ip());
                if sessions.len() >= ctx.settings.process_connection_limit {
                    refuse(&stream, &client, &ctx, sessions.len());
                } else {
                    let label = client.to_string();
                    let handle = sessions.spawn(connection(stream, client, Arc::clone(&ctx)));
                    labels.insert(handle.id(), label);
                }
            }
            Some(done) = sessions.join_next_with_id(), if !sessions.is_empty() => {
                match done {
                    Ok((id, ())) => {
                        labels.remove(&id);
                    }
                    Err(e) => {
                        let label = labels.remove(&e.id()).unwrap_or_default();
                        log_join_error(&label, e);
                    }
                }
            }
        }
        if draining && sessions.is_empty() {
            return Ok(());
        }
    }
}

/// Accepts connections and hands them to the main loop.
async fn accept_loop(listener: TcpListener, tx: mpsc::Sender<(TcpStream, SocketAddr)>) {
    loop {
        match listener.accept().await {
            Ok(conn) => {
                if tx.send(conn).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // EMFILE, ENOBUFS, ECONNABORTED...: wait a little rather
                // than spin; the connection stays queued in the kernel.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
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

fn log_join_error(client: &str, e: JoinError) {
    if e.is_panic() {
        let panic = e.into_panic();
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        tracing::error!("panic: session with {client} aborted: {what}");
    } else {
        tracing::warn!("session with {client} cancelled");
    }
}
