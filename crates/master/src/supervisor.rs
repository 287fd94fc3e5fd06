//! master's state and event loop. Everything that changes state happens
//! in the one loop task, fed by small tasks that watch children, the
//! control socket, signals and timers.

use crate::listen::{self, Bound};
use crate::sys;
use anyhow::{Context as _, bail};
use mail_config::{Main, MasterFile, ServiceDef, ServiceKind};
use mail_ipc::control::{ControlReply, ControlRequest, ServiceStatus, StatusReport, WorkerStatus};
use mail_ipc::sockets;
use mail_ipc::status::{ChildState, ChildStatus};
use mail_queue::Queue;
use nix::fcntl::{FcntlArg, FdFlag, Flock, FlockArg, fcntl};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
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
    Exited { pid: u32, status: std::io::Result<ExitStatus> },
    Status { pid: u32, status: ChildStatus },
    Respawn { service: String },
    Control { req: ControlRequest, reply: oneshot::Sender<ControlReply> },
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

fn load(dir: &Path) -> anyhow::Result<(Main, MasterFile)> {
    let main = Main::load(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mf = MasterFile::load(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((main, mf))
}

/// Takes the instance lock, or refuses to start: another master runs, or
/// workers of a master that was killed still do (they inherit the lock and
/// hold the old listeners; a second qmgr on one queue would deliver twice).
fn lock_instance(queue: &Queue) -> anyhow::Result<Flock<File>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = queue.root().join(sockets::MASTER_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => bail!(
            "the Postern mail system is already running, or processes of a master that was killed still \
             hold {}; stop it with `postern stop`, or wait for the old processes to exit",
            path.display()
        ),
        Err((_, e)) => return Err(e).with_context(|| format!("lock {}", path.display())),
    };
    // Workers inherit the lock (mail-daemon keeps it from their children).
    fcntl(lock.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).context("fcntl master.lock")?;
    Ok(lock)
}

pub(crate) async fn run(dir: PathBuf, ready_json: bool) -> anyhow::Result<()> {
    let (main, mf) = load(&dir)?;
    mail_daemon::log::init(&main, "master");
    let queue = Queue::new(main.path("queue_directory"));
    queue
        .create_layout()
        .with_context(|| format!("create queue directory {}", queue.root().display()))?;
    if let Some(owner) = listen::mail_owner_ids(&main) {
        queue.chown_layout(owner).context("give the queue directories to mail_owner")?;
    }
    let _lock = lock_instance(&queue)?;
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
        });
    }
    tokio::spawn(accept_control(ctl, tx.clone()));
    tokio::spawn(watch_signals(tx.clone()));
    tracing::info!(
        "daemon started -- version {}, configuration {}",
        env!("CARGO_PKG_VERSION"),
        m.dir.display()
    );
    let names: Vec<String> = m.services.iter().map(|s| s.def.name.clone()).collect();
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

async fn accept_control(listener: tokio::net::UnixListener, tx: mpsc::UnboundedSender<Event>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            let req = match mail_ipc::read_frame_async::<ControlRequest>(&mut stream, 1 << 16).await
            {
                Ok(Some(req)) => req,
                _ => return,
            };
            let (reply_tx, reply_rx) = oneshot::channel();
            if tx.send(Event::Control { req, reply: reply_tx }).is_err() {
                return;
            }
            if let Ok(reply) = reply_rx.await {
                let _ = mail_ipc::write_frame_async(&mut stream, &reply).await;
            }
        });
    }
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
        self.services.iter_mut().find(|s| s.def.name == name)
    }

    fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.def.name == name)
    }

    /// A unix service with one process (qmgr) must never run twice.
    fn is_singleton(def: &ServiceDef) -> bool {
        def.kind == ServiceKind::Unix && def.maxproc == 1
    }

    /// Starts workers until the service has `maxproc` current ones.
    fn top_up(&mut self, name: &str) {
        if self.stopping {
            return;
        }
        let Some(svc) = self.service(name) else { return };
        if svc.throttled_until.is_some() {
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

    fn throttle(&mut self, name: &str) {
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

    fn spawn(&mut self, name: &str) -> anyhow::Result<()> {
        let svc = self.service(name).context("no such service")?;
        let program = self.main.path("daemon_directory").join(&svc.def.command);
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
            ChildState::Draining => w.draining = true,
        }
    }

    fn on_exit(&mut self, pid: u32, status: std::io::Result<ExitStatus>) {
        let Some(w) = self.workers.remove(&pid) else { return };
        let Some(svc) = self.service(&w.service) else { return };
        let program = svc.def.command.clone();
        let expected = self.stopping || w.draining || w.generation != svc.generation;
        if expected {
            if Self::is_singleton(&svc.def) {
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

    fn maybe_announce(&mut self) {
        if self.announced {
            return;
        }
        let all_ready = self.services.iter().all(|s| {
            self.workers.values().filter(|w| w.service == s.def.name && w.ready).count()
                >= s.def.maxproc as usize
        });
        if !all_ready {
            return;
        }
        self.announced = true;
        if self.ready_json {
            use std::io::Write;
            let line = serde_json::to_string(&self.report()).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    fn report(&self) -> StatusReport {
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
                        .filter(|(_, w)| w.service == s.def.name)
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

    fn on_control(&mut self, req: ControlRequest) -> ControlReply {
        match req {
            ControlRequest::Status => ControlReply::Status(self.report()),
            ControlRequest::Reload => match self.reload() {
                Ok(text) => {
                    tracing::info!("{text}");
                    ControlReply::Ok(text)
                }
                Err(text) => {
                    tracing::warn!("{text}");
                    ControlReply::Error(text)
                }
            },
            ControlRequest::Restart { service } => {
                if self.service(&service).is_none() {
                    let names: Vec<&str> =
                        self.services.iter().map(|s| s.def.name.as_str()).collect();
                    return ControlReply::Error(format!(
                        "no service named {service:?} in master.toml; services are: {}",
                        names.join(", ")
                    ));
                }
                self.restart(&service);
                tracing::info!("service {service}: restarting");
                ControlReply::Ok(format!("service {service} restarting"))
            }
            ControlRequest::Stop => {
                self.begin_stop();
                ControlReply::Ok("stopping".into())
            }
        }
    }

    /// New generation for a service: drain its old workers, start new ones.
    fn restart(&mut self, name: &str) {
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

    fn reload(&mut self) -> Result<String, String> {
        let fail = |e: String| format!("reload failed, keeping the running configuration: {e}");
        let (main, mf) = load(&self.dir).map_err(|e| fail(format!("{e:#}")))?;
        let same_interfaces = main.list("inet_interfaces") == self.main.list("inet_interfaces");
        // Bind what is new before touching anything, so a failure leaves
        // the running system as it was.
        let mut fresh: HashMap<String, Vec<Bound>> = HashMap::new();
        for def in &mf.services {
            let reusable = self.service(&def.name).is_some_and(|old| {
                old.def.kind == def.kind
                    && old.def.listen == def.listen
                    && old.def.private == def.private
                    && (same_interfaces || def.kind == ServiceKind::Unix)
            });
            if !reusable {
                let bound = listen::bind(&main, def).map_err(|e| fail(format!("{e:#}")))?;
                fresh.insert(def.name.clone(), bound);
            }
        }
        self.main = main;
        let mut old: Vec<Service> = std::mem::take(&mut self.services);
        for def in mf.services {
            let generation = self.bump();
            let (listeners, restarts) = match old.iter().position(|s| s.def.name == def.name) {
                Some(i) => {
                    let mut s = old.swap_remove(i);
                    if let Some(h) = s.wakeup.take() {
                        h.abort();
                    }
                    let listeners =
                        fresh.remove(&def.name).unwrap_or(std::mem::take(&mut s.listeners));
                    (listeners, s.restarts)
                }
                None => (fresh.remove(&def.name).unwrap_or_default(), 0),
            };
            self.services.push(Service {
                def,
                listeners,
                generation,
                restarts,
                backoff: Duration::ZERO,
                throttled_until: None,
                wakeup: None,
            });
        }
        // Services no longer in master.toml: their workers drain and exit.
        for s in old {
            if let Some(h) = s.wakeup {
                h.abort();
            }
            for (pid, w) in self.workers.iter_mut() {
                if w.service == s.def.name {
                    w.draining = true;
                    let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGUSR1);
                }
            }
        }
        let names: Vec<String> = self.services.iter().map(|s| s.def.name.clone()).collect();
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

    fn begin_stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
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

    /// Sends a wake-up trigger every `wakeup` seconds (Postfix master's
    /// wakeup column): pickup and qmgr rescan even if a trigger was lost.
    fn start_wakeup(&mut self, name: &str) {
        let path = self.queue.root().to_path_buf();
        let Some(svc) = self.service_mut(name) else { return };
        let (Some(period), ServiceKind::Unix) = (svc.def.wakeup, svc.def.kind) else { return };
        let socket = listen::unix_path(&path, &svc.def);
        svc.wakeup = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Ok(mut s) = tokio::net::UnixStream::connect(&socket).await {
                    let _ =
                        mail_ipc::write_frame_async(&mut s, &mail_ipc::trigger::Trigger::Wakeup)
                            .await;
                }
            }
        }));
    }
}
