//! On-demand services (`spawn = "on-demand"` in master.toml; pop3d's mail
//! service): master starts no worker up front. A task watches the
//! service's listener with poll (one thread per service); when a connection waits and every worker
//! of the service is busy (has reported `Draining`, i.e. took its one
//! connection), master starts one more, up to `maxproc`. The watch is
//! re-armed when a worker takes its connection or exits, so each waiting
//! connection gets one process and an idle one is never doubled.
//!
//! Severities: warnings only (a listener that cannot be watched, every
//! process busy); a worker that cannot start throttles the service as
//! any other would.

use super::{Event, Master};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a watching thread checks whether its service went away.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// The watching thread of one on-demand service; dropped with the
/// service (reload, removal), which ends the thread.
pub(super) struct Watcher {
    arm: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits up to `limit` for a connection in `fd`'s backlog. poll(2) is
/// level-triggered, so a connection that waited before the call counts.
fn pending(fd: &OwnedFd, limit: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(limit).unwrap_or(PollTimeout::ZERO);
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}

impl Watcher {
    /// A thread rather than a task on master's loop: tokio's readiness
    /// API for a raw descriptor is unsafe, and the listener must stay
    /// blocking for the workers that share it (O_NONBLOCK is shared by
    /// every descriptor of the socket).
    fn start(fd: OwnedFd, service: String, tx: mpsc::UnboundedSender<Event>) -> Option<Watcher> {
        let (arm, armed) = std::sync::mpsc::channel::<()>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let spawned =
            std::thread::Builder::new().name(format!("watch {service}")).spawn(move || {
                while armed.recv().is_ok() {
                    while armed.try_recv().is_ok() {}
                    loop {
                        if stopped.load(Ordering::SeqCst) {
                            return;
                        }
                        if pending(&fd, STOP_CHECK) {
                            break;
                        }
                    }
                    if tx.send(Event::Waiting { service: service.clone() }).is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Watcher { arm, stop }),
            Err(e) => {
                tracing::warn!("cannot start the thread watching a listener: {e}");
                None
            }
        }
    }
}

impl Master {
    /// Watches an on-demand service's listener for the next connection.
    pub(super) fn arm(&mut self, name: &str) {
        if self.stopping {
            return;
        }
        let tx = self.events.clone();
        let Some(svc) = self.service_mut(name) else { return };
        if svc.def.spawn != mail_config::Spawn::OnDemand || svc.throttled_until.is_some() {
            return;
        }
        if svc.watcher.is_none() {
            let Some(bound) = svc.listeners.first() else { return };
            match bound.fd.try_clone() {
                Ok(fd) => svc.watcher = Watcher::start(fd, name.to_owned(), tx),
                Err(e) => tracing::warn!("service {name}: cannot watch the listener: {e}"),
            }
        }
        if let Some(w) = &svc.watcher {
            let _ = w.arm.send(());
        }
    }

    /// A connection waits: start a worker unless one is idle or all
    /// `maxproc` are busy (then the next exit re-arms the watch).
    pub(super) fn on_waiting(&mut self, name: &str) {
        if self.stopping {
            return;
        }
        let Some(svc) = self.service(name) else { return };
        if svc.throttled_until.is_some() {
            return;
        }
        let (generation, maxproc) = (svc.generation, svc.def.maxproc as usize);
        let mine: Vec<_> = self.workers.values().filter(|w| w.service == name).collect();
        if mine.iter().any(|w| w.generation == generation && !w.draining) {
            return;
        }
        if mine.len() >= maxproc {
            tracing::warn!(
                "service {name}: all {maxproc} processes are busy: connections wait; \
                 raise maxproc in master.toml"
            );
            return;
        }
        if let Err(e) = self.spawn(name) {
            tracing::warn!("service {name}: {e:#}");
            self.throttle(name);
        }
    }
}
