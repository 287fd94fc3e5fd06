//! The daemon loop: trigger socket, 60-second timer, stop signal.
//!
//! Scans run on a blocking thread (they fsync); triggers that arrive
//! meanwhile are coalesced into one more scan. A stop request sets a flag
//! the scan checks between files, so the file in hand is finished (its
//! queue file committed and its maildrop file removed) before exit.
//! Severities: fatal only at start-up (no listener); afterwards problems
//! are per-file warnings.

use crate::pickup::{Scanner, Settings};
use mail_daemon::{Daemon, Listener, Stop};
use mail_ipc::trigger::Trigger;
use mail_queue::Queue;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often maildrop/ is scanned without a trigger (Postfix pickup's
/// 60-second wakeup).
const POLL: Duration = Duration::from_secs(60);
/// How long a trigger connection may stay open.
const TRIGGER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest trigger frame accepted.
const MAX_TRIGGER: u32 = 64;

enum Ev {
    Wakeup,
    Stop(Stop),
}

pub(crate) async fn run(daemon: Daemon) -> anyhow::Result<()> {
    let queue = Queue::new(daemon.queue());
    let Some(Listener::Unix(listener)) = daemon.listeners.first() else {
        anyhow::bail!("pickup needs one unix listener (type = \"unix\" in master.toml)");
    };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener.try_clone()?)?;
    let settings = Arc::new(Settings::from_config(&daemon.config));
    let stop = Arc::new(AtomicBool::new(false));

    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(accept_triggers(listener, tx.clone()));
    let stop_flag = stop.clone();
    tokio::spawn(async move {
        let how = mail_daemon::stop_signal().await;
        stop_flag.store(true, Ordering::Relaxed);
        let _ = tx.send(Ev::Stop(how));
    });
    daemon.ready();

    let mut scanner = Scanner::default();
    // The first tick fires at once: scan at start-up.
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Ev::Wakeup) => {}
                Some(Ev::Stop(how)) => return stopped(&daemon, how),
                None => return Ok(()),
            },
            _ = tick.tick() => {}
        }
        // Many triggers, one scan.
        while let Ok(ev) = rx.try_recv() {
            if let Ev::Stop(how) = ev {
                return stopped(&daemon, how);
            }
        }
        let (q, s, st) = (queue.clone(), settings.clone(), stop.clone());
        let (back, queued) = tokio::task::spawn_blocking(move || {
            let n = scanner.scan(&q, &s, &st);
            (scanner, n)
        })
        .await?;
        scanner = back;
        if queued > 0 {
            wake_qmgr(&queue).await;
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}

fn stopped(daemon: &Daemon, how: Stop) -> anyhow::Result<()> {
    if how == Stop::Drain {
        daemon.draining();
    }
    Ok(())
}

/// Tells qmgr new mail is in incoming/. A failure only delays the mail:
/// qmgr also scans on its own timer.
async fn wake_qmgr(queue: &Queue) {
    let path = queue.root().join(mail_ipc::sockets::QMGR);
    let sent = tokio::time::timeout(TRIGGER_TIMEOUT, async {
        let mut s = tokio::net::UnixStream::connect(&path).await?;
        mail_ipc::write_frame_async(&mut s, &Trigger::Wakeup).await.map_err(std::io::Error::other)
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        tracing::debug!("cannot trigger qmgr at {}", path.display());
    }
}

async fn accept_triggers(listener: tokio::net::UnixListener, tx: mpsc::UnboundedSender<Ev>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // EMFILE and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            // Wakeup and Flush both mean "look at maildrop/".
            while let Ok(Ok(Some(_))) = tokio::time::timeout(
                TRIGGER_TIMEOUT,
                mail_ipc::read_frame_async::<Trigger>(&mut stream, MAX_TRIGGER),
            )
            .await
            {
                if tx.send(Ev::Wakeup).is_err() {
                    return;
                }
            }
        });
    }
}
