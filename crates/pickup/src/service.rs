//! The daemon: `mail_daemon::run` serves `public/pickup` (each connection
//! one trigger through a `mail_ipc::trigger::Gate`), and [`Pickup::work`]
//! scans `maildrop/` at start, on triggers and every 60 seconds.
//!
//! Scans run on a blocking thread (they fsync); triggers that arrive
//! meanwhile are coalesced into one more scan. A stop request sets a flag
//! the scan checks between files, so the file in hand is finished (its
//! queue file committed and its maildrop file removed) before exit.
//! Severities: fatal only at start-up (no listener, no qmgr in
//! master.toml); afterwards problems are per-file warnings.

use crate::pickup::{Scanner, Settings};
use mail_daemon::{Connection, Daemon, Service, StopWatch};
use mail_ipc::trigger::{Gate, Limits};
use mail_queue::Queue;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often maildrop/ is scanned without a trigger (Postfix pickup's
/// 60-second wakeup).
const POLL: Duration = Duration::from_secs(60);

struct Pickup {
    queue: Queue,
    settings: Arc<Settings>,
    qmgr: PathBuf,
    gate: Arc<Gate>,
    wakeups: mpsc::UnboundedSender<()>,
    inbox: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
}

pub(crate) async fn run(mut daemon: Daemon) -> anyhow::Result<()> {
    if !matches!(daemon.listeners.as_slice(), [mail_daemon::Listener::Unix(_)]) {
        anyhow::bail!("pickup needs one unix listener (type = \"unix\" in master.toml)");
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let pickup = Arc::new(Pickup {
        queue: Queue::new(daemon.queue()),
        settings: Arc::new(
            Settings::from_config(&daemon.config)
                .map_err(|e| anyhow::anyhow!("{}: {e}", daemon.config.file().display()))?,
        ),
        qmgr: daemon.socket_path("qmgr")?,
        gate: Gate::new("public/pickup", Limits::default()),
        wakeups: tx,
        inbox: Mutex::new(Some(rx)),
    });
    mail_daemon::run(&mut daemon, pickup).await?;
    Ok(())
}

impl Service for Pickup {
    async fn connection(self: Arc<Self>, conn: Connection) {
        let Connection::Unix(stream) = conn else { return };
        // Every trigger means "look at maildrop/".
        if self.gate.receive(stream).await.is_some() {
            let _ = self.wakeups.send(());
        }
    }

    async fn work(self: Arc<Self>, mut stop: StopWatch) -> anyhow::Result<()> {
        let Some(mut rx) = self.inbox.lock().ok().and_then(|mut g| g.take()) else {
            anyhow::bail!("pickup's scanner started twice");
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let mut scanner = Scanner::default();
        // The first tick fires at once: scan at start-up.
        let mut tick = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = stop.stopped() => return Ok(()),
                w = rx.recv() => if w.is_none() { return Ok(()) },
                _ = tick.tick() => {}
            }
            // Many triggers, one scan.
            while rx.try_recv().is_ok() {}
            let (q, s, st) =
                (self.queue.clone(), Arc::clone(&self.settings), Arc::clone(&stopping));
            let scan = tokio::task::spawn_blocking(move || {
                let n = scanner.scan(&q, &s, &st);
                (scanner, n)
            });
            tokio::pin!(scan);
            let (back, queued) = tokio::select! {
                done = &mut scan => done?,
                // The scan stops between files; the one in hand is finished.
                _ = stop.stopped() => {
                    stopping.store(true, Ordering::Relaxed);
                    (&mut scan).await?
                }
            };
            scanner = back;
            if !queued.is_empty() {
                // A failure only delays the mail: qmgr also scans on its own timer.
                mail_submit::wake_queued_async(&self.qmgr, &queued).await;
            }
            if stopping.load(Ordering::Relaxed) || stop.requested().is_some() {
                return Ok(());
            }
        }
    }
}
