//! Starting workers: topping a service up to `maxproc` (on-demand
//! services: see `demand`), the fork and exec
//! with the status pipe and listeners in place, throttling a service
//! that fails at start-up, and what a worker's exit means.

use super::{Event, MAX_BACKOFF, Master, Worker};
use crate::sys;
use anyhow::Context as _;
use mail_config::settings;
use mail_ipc::status::ChildStatus;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

impl Master {
    /// Starts workers until the service has `maxproc` current ones.
    pub(super) fn top_up(&mut self, name: &str) {
        if self.stopping {
            return;
        }
        let Some(svc) = self.service(name) else { return };
        if svc.throttled_until.is_some() {
            return;
        }
        if svc.def.spawn == mail_config::Spawn::OnDemand {
            self.arm(name);
            return;
        }
        let (generation, maxproc, singleton) =
            (svc.generation, svc.def.maxproc as usize, Self::is_singleton(&svc.def));
        let all = self.workers.values().filter(|w| w.service == name);
        let running = if singleton {
            all.count()
        } else {
            all.filter(|w| w.generation == generation && !w.draining).count()
        };
        for _ in running..maxproc {
            if let Err(e) = self.spawn(name) {
                tracing::warn!("service {name}: {e:#}");
                self.throttle(name);
                return;
            }
        }
    }

    pub(super) fn throttle(&mut self, name: &str) {
        let tx = self.events.clone();
        let Some(svc) = self.service_mut(name) else { return };
        if svc.throttled_until.is_some() {
            // Several workers failing together are one failure.
            return;
        }
        svc.backoff = (svc.backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
        svc.throttled_until = Some(SystemTime::now() + svc.backoff);
        let (delay, service) = (svc.backoff, name.to_owned());
        tracing::warn!("service {service}: throttling: next start in {}s", delay.as_secs());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Event::Respawn { service });
        });
    }

    pub(super) fn spawn(&mut self, name: &str) -> anyhow::Result<()> {
        let svc = self.service(name).context("no such service")?;
        let program = settings::Common::new(&self.main).daemon_directory.join(&svc.def.command);
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let args = mail_daemon::Args {
            config_dir: self.dir.clone(),
            service: svc.def.name.clone(),
            generation: svc.generation,
            listen_fds: svc.listeners.len(),
            unpriv: svc.def.unpriv,
            overrides: svc.def.options.clone(),
            extra: svc.def.args.clone(),
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(args.to_argv())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(self.queue.root())
            .stdin(Stdio::null())
            .kill_on_drop(false);
        for var in ["RUST_BACKTRACE", "TZ", "LANG"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        let listeners: Vec<&OwnedFd> = svc.listeners.iter().map(|b| &b.fd).collect();
        sys::place_fds(&mut cmd, &w, &listeners);
        let mut child =
            cmd.spawn().with_context(|| format!("cannot start {}", program.display()))?;
        drop(w);
        let pid = child.id().context("child has no pid")?;
        let generation = svc.generation;
        let tx = self.events.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = tx.send(Event::Exited { pid, status });
        });
        let tx = self.events.clone();
        let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(r).context("status pipe")?;
        tokio::spawn(async move {
            while let Ok(Some(status)) =
                mail_ipc::read_frame_async::<ChildStatus>(&mut rx, 4096).await
            {
                if tx.send(Event::Status { pid, status }).is_err() {
                    return;
                }
            }
        });
        self.workers.insert(
            pid,
            Worker {
                service: name.to_owned(),
                generation,
                started: SystemTime::now(),
                ready: false,
                draining: false,
            },
        );
        Ok(())
    }
}
