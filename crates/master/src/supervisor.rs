//! master's state and event loop. Everything that changes state happens
//! in the one loop task, fed by small tasks that watch children, the
//! control socket, signals and timers. The jobs live in submodules:
//! `lock` (the instance lock), `control` (pid/master.ctl), `spawn`
//! (starting workers, throttling), `reload` (reload, restart, wake-up
//! timers), `status` (what `postern status` and `--ready-json` show) and
//! `demand` (on-demand services: a worker started when a connection
//! waits and none is idle).

mod control;
mod demand;
mod lock;
mod reload;
mod spawn;
mod status;

use crate::listen::{self, Bound};
use anyhow::Context as _;
use mail_config::{Main, MasterFile, ServiceDef, ServiceKind, Spawn, settings};
use mail_ipc::control::{ControlReply, ControlRequest};
use mail_ipc::sockets;
use mail_ipc::status::{ChildState, ChildStatus};
use mail_queue::Queue;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long `stop` waits for workers before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// A worker that dies sooner than this after its start is restarted with
/// a delay, even if it had reported ready.
const MIN_HEALTHY_LIFE: Duration = Duration::from_secs(1);
/// Longest delay before retrying a service that fails at start-up.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

enum Event {
    Exited {
        pid: u32,
        status: std::io::Result<ExitStatus>,
    },
    Status {
        pid: u32,
        status: ChildStatus,
    },
    Respawn {
        service: String,
    },
    /// A connection waits on an on-demand service's listener.
    Waiting {
        service: String,
    },
    Control {
        req: ControlRequest,
        reply: oneshot::Sender<ControlReply>,
    },
    Reload,
    Stop,
    KillRemaining,
}

struct Service {
    def: ServiceDef,
    listeners: Vec<Bound>,
    generation: u64,
    restarts: u64,
    backoff: Duration,
    throttled_until: Option<SystemTime>,
    wakeup: Option<JoinHandle<()>>,
    /// On-demand services: the task watching the listener.
    watcher: Option<demand::Watcher>,
}

struct Worker {
    service: String,
    generation: u64,
    started: SystemTime,
    ready: bool,
    draining: bool,
}

struct Master {
    dir: PathBuf,
    main: Main,
    queue: Queue,
    services: Vec<Service>,
    workers: HashMap<u32, Worker>,
    next_generation: u64,
    started: SystemTime,
    events: mpsc::UnboundedSender<Event>,
    stopping: bool,
    ready_json: bool,
    announced: bool,
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Loads both files. A table without a service other processes reach by
/// name (qmgr, pickup, local) is refused: renamed, it would leave its
/// clients knocking on a socket nobody serves.
fn load(dir: &Path) -> anyhow::Result<(Main, MasterFile)> {
    let main = Main::load(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mf = MasterFile::load(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let missing = mf.check_connected(&dir.join(mail_config::MASTER_FILE));
    if !missing.is_empty() {
        anyhow::bail!("{}", mail_config::Errors(missing));
    }
    Ok((main, mf))
}

pub(crate) async fn run(dir: PathBuf, ready_json: bool) -> anyhow::Result<()> {
    let (main, mf) = load(&dir)?;
    mail_daemon::log::init(&main, "master");
    let queue = Queue::new(settings::Common::new(&main).queue_directory);
    queue
        .create_layout()
        .with_context(|| format!("create queue directory {}", queue.root().display()))?;
    if let Some(owner) = listen::mail_owner_ids(&main) {
        queue.chown_layout(owner).context("give the queue directories to mail_owner")?;
        // pickup reads maildrop/ files through the group, so it needs
        // mail_owner in it. Without that (no package set it up) maildrop/
        // stays 1733, so local users can still submit without postdrop.
        let common = settings::Common::new(&main);
        let group = common.setgid_group;
        match nix::unistd::Group::from_name(&group) {
            Ok(Some(g)) if g.gid.as_raw() == owner.1 || g.mem.contains(&common.mail_owner) => {
                queue
                    .secure_maildrop(owner.0, g.gid.as_raw())
                    .context("give maildrop/ to setgid_group")?;
            }
            _ => tracing::warn!(
                "setgid_group {group:?} does not exist or mail_owner {:?} is not in it: maildrop/ stays writable by every local user (mode 1733)",
                common.mail_owner
            ),
        }
    }
    let _lock = lock::lock_instance(&queue)?;
    let metrics_listen = settings::Logging::new(&main).metrics_listen;
    crate::metrics::start(metrics_listen, &queue, listen::mail_owner_ids(&main)).await?;
    let ctl_path = queue.root().join(sockets::MASTER_CONTROL);
    let ctl = listen::bind_control(&ctl_path)?;
    ctl.set_nonblocking(true)?;
    let ctl = tokio::net::UnixListener::from_std(ctl)?;
    let pid_path = queue.root().join(sockets::MASTER_PID);
    stdx::fs::atomic_write(&pid_path, format!("{:>10}\n", std::process::id()).as_bytes(), 0o644)
        .with_context(|| format!("write {}", pid_path.display()))?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut m = Master {
        dir,
        main,
        queue,
        services: Vec::new(),
        workers: HashMap::new(),
        next_generation: 1,
        started: SystemTime::now(),
        events: tx.clone(),
        stopping: false,
        ready_json,
        announced: false,
    };
    for def in mf.services {
        let listeners = listen::bind(&m.main, &def)?;
        let generation = m.bump();
        m.services.push(Service {
            def,
            listeners,
            generation,
            restarts: 0,
            backoff: Duration::ZERO,
            throttled_until: None,
            wakeup: None,
            watcher: None,
        });
    }
    tokio::spawn(control::accept_control(ctl, tx.clone()));
    tokio::spawn(watch_signals(tx.clone()));
    tracing::info!(
        "daemon started -- version {}, configuration {}",
        env!("CARGO_PKG_VERSION"),
        m.dir.display()
    );
    let names: Vec<String> = m.services.iter().map(|s| s.def.id.clone()).collect();
    for name in &names {
        m.start_wakeup(name);
        m.top_up(name);
    }
    m.maybe_announce();

    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Exited { pid, status } => m.on_exit(pid, status),
            Event::Status { pid, status } => m.on_status(pid, status),
            Event::Respawn { service } => {
                if let Some(s) = m.service_mut(&service) {
                    s.throttled_until = None;
                }
                m.top_up(&service);
            }
            Event::Waiting { service } => m.on_waiting(&service),
            Event::Control { req, reply } => {
                let answer = m.on_control(req);
                let _ = reply.send(answer);
            }
            Event::Reload => match m.reload() {
                Ok(text) => tracing::info!("{text}"),
                Err(text) => tracing::warn!("{text}"),
            },
            Event::Stop => m.begin_stop(),
            Event::KillRemaining => {
                for pid in m.workers.keys() {
                    tracing::warn!(
                        "pid {pid} did not stop in {}s: killing it",
                        STOP_GRACE.as_secs()
                    );
                    let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
                }
            }
        }
        if m.stopping && m.workers.is_empty() {
            break;
        }
    }
    let _ = std::fs::remove_file(&ctl_path);
    let _ = std::fs::remove_file(&pid_path);
    tracing::info!("terminating on signal");
    Ok(())
}

async fn watch_signals(tx: mpsc::UnboundedSender<Event>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; use postern reload/stop");
        return;
    };
    loop {
        let ev = tokio::select! {
            _ = hup.recv() => Event::Reload,
            _ = term.recv() => Event::Stop,
            _ = int.recv() => Event::Stop,
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

impl Master {
    fn bump(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    fn service_mut(&mut self, name: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.def.id == name)
    }

    fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.def.id == name)
    }

    /// A unix service with one process (qmgr) must never run twice.
    fn is_singleton(def: &ServiceDef) -> bool {
        def.kind == ServiceKind::Unix && def.maxproc == 1 && def.spawn == Spawn::Always
    }

    fn on_status(&mut self, pid: u32, status: ChildStatus) {
        let Some(w) = self.workers.get_mut(&pid) else { return };
        match status.state {
            ChildState::Ready => {
                w.ready = true;
                let name = w.service.clone();
                if let Some(s) = self.service_mut(&name) {
                    s.backoff = Duration::ZERO;
                }
                self.maybe_announce();
            }
            ChildState::Draining => {
                w.draining = true;
                // An on-demand worker took its connection: watch for the next.
                let name = w.service.clone();
                self.arm(&name);
            }
        }
    }

    fn on_exit(&mut self, pid: u32, status: std::io::Result<ExitStatus>) {
        let Some(w) = self.workers.remove(&pid) else { return };
        let Some(svc) = self.service(&w.service) else { return };
        let program = svc.def.command.clone();
        let expected = self.stopping || w.draining || w.generation != svc.generation;
        if expected {
            if svc.def.spawn == Spawn::OnDemand {
                let name = w.service.clone();
                self.arm(&name);
            } else if Self::is_singleton(&svc.def) {
                let name = w.service.clone();
                self.top_up(&name);
            }
            return;
        }
        let how = match &status {
            Ok(st) => match (st.code(), std::os::unix::process::ExitStatusExt::signal(st)) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => "exited".into(),
            },
            Err(e) => format!("wait failed: {e}"),
        };
        tracing::warn!("process {program} pid {pid} {how}");
        let name = w.service.clone();
        if let Some(s) = self.service_mut(&name) {
            s.restarts += 1;
        }
        let lived = w.started.elapsed().unwrap_or_default();
        if w.ready && lived >= MIN_HEALTHY_LIFE {
            self.top_up(&name);
        } else {
            // It died before it was ready, or right after: a configuration
            // or environment problem that an immediate restart would only
            // repeat.
            self.throttle(&name);
        }
    }

    fn begin_stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        crate::notify::stopping();
        for s in &mut self.services {
            if let Some(h) = s.wakeup.take() {
                h.abort();
            }
        }
        for pid in self.workers.keys() {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
        let tx = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(STOP_GRACE).await;
            let _ = tx.send(Event::KillRemaining);
        });
        // Wake the loop even when there are no workers.
        let _ = self.events.send(Event::Respawn { service: String::new() });
    }
}
