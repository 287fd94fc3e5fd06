//! Reload and restart: a new generation per service, old workers drained
//! with SIGUSR1, listeners kept when their definition did not change, and
//! the wake-up timers (Postfix master's `wakeup` column).

use super::{Master, Service, load};
use crate::listen::{self, Bound};
use mail_config::{ServiceKind, settings};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::time::Duration;

impl Master {
    /// New generation for a service: drain its old workers, start new ones.
    pub(super) fn restart(&mut self, name: &str) {
        let generation = self.bump();
        if let Some(s) = self.service_mut(name) {
            s.generation = generation;
            s.throttled_until = None;
            s.backoff = Duration::ZERO;
        }
        for (pid, w) in self.workers.iter_mut() {
            if w.service == name && w.generation != generation && !w.draining {
                w.draining = true;
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGUSR1);
            }
        }
        self.top_up(name);
    }

    /// Reloads main.toml and master.toml, telling systemd (RELOADING=1,
    /// then READY=1 whether or not the new configuration was taken: the
    /// old one keeps running after a failed reload).
    pub(super) fn reload(&mut self) -> Result<String, String> {
        crate::notify::reloading();
        let result = self.apply_reload();
        crate::notify::ready(match &result {
            Ok(_) => "configuration reloaded",
            Err(_) => "reload failed, running the previous configuration",
        });
        result
    }

    fn apply_reload(&mut self) -> Result<String, String> {
        let fail = |e: String| format!("reload failed, keeping the running configuration: {e}");
        let (main, mf) = load(&self.dir).map_err(|e| fail(format!("{e:#}")))?;
        let same_interfaces = settings::Master::new(&main).inet_interfaces
            == settings::Master::new(&self.main).inet_interfaces;
        // Bind what is new before touching anything, so a failure leaves
        // the running system as it was.
        let mut fresh: HashMap<String, Vec<Bound>> = HashMap::new();
        for def in &mf.services {
            let reusable = self.service(&def.id).is_some_and(|old| {
                old.def.kind == def.kind
                    && old.def.listen == def.listen
                    && old.def.private == def.private
                    && (same_interfaces || def.kind == ServiceKind::Unix)
            });
            if !reusable {
                let bound = listen::bind(&main, def).map_err(|e| fail(format!("{e:#}")))?;
                fresh.insert(def.id.clone(), bound);
            }
        }
        self.main = main;
        let mut old: Vec<Service> = std::mem::take(&mut self.services);
        for def in mf.services {
            let generation = self.bump();
            let (listeners, restarts) = match old.iter().position(|s| s.def.id == def.id) {
                Some(i) => {
                    let mut s = old.swap_remove(i);
                    if let Some(h) = s.wakeup.take() {
                        h.abort();
                    }
                    let listeners =
                        fresh.remove(&def.id).unwrap_or(std::mem::take(&mut s.listeners));
                    (listeners, s.restarts)
                }
                None => (fresh.remove(&def.id).unwrap_or_default(), 0),
            };
            self.services.push(Service {
                def,
                listeners,
                generation,
                restarts,
                backoff: Duration::ZERO,
                throttled_until: None,
                wakeup: None,
                watcher: None,
            });
        }
        // Services no longer in master.toml: their workers drain and exit.
        for s in old {
            if let Some(h) = s.wakeup {
                h.abort();
            }
            for (pid, w) in self.workers.iter_mut() {
                if w.service == s.def.id {
                    w.draining = true;
                    let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGUSR1);
                }
            }
        }
        let names: Vec<String> = self.services.iter().map(|s| s.def.id.clone()).collect();
        for name in &names {
            for (pid, w) in self.workers.iter_mut() {
                if &w.service == name && !w.draining {
                    w.draining = true;
                    let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGUSR1);
                }
            }
            self.start_wakeup(name);
            self.top_up(name);
        }
        Ok(format!(
            "reload -- version {}, configuration {}",
            env!("CARGO_PKG_VERSION"),
            self.dir.display()
        ))
    }

    /// Sends a wake-up trigger every `wakeup` seconds (Postfix master's
    /// wakeup column): pickup and qmgr rescan even if a trigger was lost.
    pub(super) fn start_wakeup(&mut self, name: &str) {
        let queue_dir = self.queue.root().to_path_buf();
        let Some(svc) = self.service_mut(name) else { return };
        let (Some(period), ServiceKind::Unix) = (svc.def.wakeup, svc.def.kind) else { return };
        // The path master bound, from the one function clients use too.
        let socket = queue_dir.join(svc.def.unix_socket());
        svc.wakeup = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) =
                    mail_ipc::trigger::send_async(&socket, mail_ipc::trigger::Trigger::Wakeup).await
                {
                    tracing::debug!("wakeup: {e}");
                }
            }
        }));
    }
}
