//! What master reports: the `--ready-json` line once every worker is
//! ready, and the status report for `postern status`.

use super::{Master, epoch};
use mail_config::{ServiceKind, Spawn};
use mail_ipc::control::{ServiceStatus, StatusReport, WorkerStatus};

impl Master {
    pub(super) fn maybe_announce(&mut self) {
        if self.announced {
            return;
        }
        // An on-demand service has no worker until a client comes.
        let all_ready = self.services.iter().all(|s| {
            s.def.spawn == Spawn::OnDemand
                || self.workers.values().filter(|w| w.service == s.def.id && w.ready).count()
                    >= s.def.maxproc as usize
        });
        if !all_ready {
            return;
        }
        self.announced = true;
        crate::notify::ready("every service is ready");
        if self.ready_json {
            use std::io::Write;
            let line = serde_json::to_string(&self.report()).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    pub(super) fn report(&self) -> StatusReport {
        StatusReport {
            master_pid: std::process::id(),
            started: epoch(self.started),
            config_dir: self.dir.display().to_string(),
            queue_dir: self.queue.root().display().to_string(),
            services: self
                .services
                .iter()
                .map(|s| {
                    let mut workers: Vec<WorkerStatus> = self
                        .workers
                        .iter()
                        .filter(|(_, w)| w.service == s.def.id)
                        .map(|(pid, w)| WorkerStatus {
                            pid: *pid,
                            started: epoch(w.started),
                            generation: w.generation,
                            ready: w.ready,
                            draining: w.draining || w.generation != s.generation,
                        })
                        .collect();
                    workers.sort_by_key(|w| w.pid);
                    ServiceStatus {
                        name: s.def.name.clone(),
                        kind: match s.def.kind {
                            ServiceKind::Inet => "inet".into(),
                            ServiceKind::Unix => "unix".into(),
                        },
                        listen: s.listeners.iter().map(|b| b.display.clone()).collect(),
                        maxproc: s.def.maxproc,
                        workers,
                        restarts: s.restarts,
                        throttled_until: s.throttled_until.map(epoch),
                    }
                })
                .collect(),
        }
    }
}
