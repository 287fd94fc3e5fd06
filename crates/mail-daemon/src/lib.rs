//! The daemon skeleton every Postern child shares (Postfix's
//! `single_server.c`/`multi_server.c`): the argv contract with master,
//! adoption of the inherited status pipe and listening sockets, config
//! loading with `-o` overrides, the privilege drop, logging in Postfix's
//! line format, and the graceful-shutdown signal.
//!
//! A daemon's `main` calls [`init`], which returns a [`Daemon`] only after
//! privileges are dropped; then it hands a [`Service`] to [`run`] (async:
//! accept loops, a task per connection, panics caught, drain and stop) or
//! a handler to [`run_blocking`] (single-threaded agents, one connection
//! at a time) or [`run_blocking_batch`] (the same, with every waiting
//! connection at once). Both report `Ready`/`Draining` to master. Daemons that
//! only receive triggers beside their own loop (qmgr) use
//! `mail_ipc::trigger::serve` with [`stop_signal`] and [`Daemon::ready`].
//! master is the only caller of these processes; nothing here listens or
//! connects on its own. Unsafe code is confined to `sys.rs`.
#![deny(unsafe_code)]

mod args;
mod blocking;
pub mod limits;
pub mod log;
pub mod metrics;
mod serve;
mod sys;

pub use args::Args;
pub use blocking::{BlockingConnection, run_blocking, run_blocking_batch};
pub use serve::{Connection, Service, StopWatch, run};
pub use sys::default_sigpipe;

use anyhow::Context as _;
use mail_config::{Main, MasterFile};
use mail_ipc::status::{ChildState, ChildStatus};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

/// A started daemon: its arguments, its configuration and what master
/// handed it.
#[derive(Debug)]
pub struct Daemon {
    /// The parsed command line.
    pub args: Args,
    /// main.toml with this service's `-o` overrides applied.
    pub config: Main,
    /// master.toml, for the socket paths of the services this one talks
    /// to ([`Daemon::socket_path`]).
    pub master: MasterFile,
    /// Listening sockets, in the order of the service's `listen` list.
    pub listeners: Vec<Listener>,
    status: Mutex<Option<File>>,
}

/// An inherited listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener (inet service).
    Tcp(std::net::TcpListener),
    /// A Unix-domain listener (unix service).
    Unix(std::os::unix::net::UnixListener),
}

/// Starts a daemon: parses argv, adopts fds, loads config, sets up
/// logging and drops privileges when running as root and the service is
/// unprivileged. `program` is the log name (`smtpd`, `qmgr`, ...).
pub fn init(program: &str) -> anyhow::Result<Daemon> {
    let args = Args::parse(std::env::args().skip(1))?;
    let (status, listen_fds) = sys::adopt_fds(args.listen_fds)?;
    // Exit with master rather than linger as orphans holding sockets.
    sys::die_with_parent();
    let config = Main::load_with_overrides(&args.config_dir, &args.overrides)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot load configuration from {}", args.config_dir.display()))?;
    log::init_service(&config, program, &args.service);
    // A smtpd serves thousands of clients in one process; the soft limit a
    // shell or service manager hands down (often 1024) would refuse them.
    match limits::raise_nofile_limit() {
        Ok(limit) => {
            if let Some(w) = limits::shortfall(&limit, limits::descriptors_needed(program, &config))
            {
                tracing::warn!("{w}");
            }
        }
        Err(e) => tracing::warn!("cannot raise the descriptor limit (RLIMIT_NOFILE): {e}"),
    }
    let master = MasterFile::load(&args.config_dir)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot load master.toml from {}", args.config_dir.display()))?;
    let listeners = listen_fds.into_iter().map(classify).collect::<anyhow::Result<Vec<_>>>()?;
    if args.unpriv && nix::unistd::geteuid().is_root() {
        sys::drop_privileges(&mail_config::settings::Common::new(&config).mail_owner)?;
        // The kernel clears the parent-death signal when the uid changes.
        sys::die_with_parent();
    }
    Ok(Daemon { args, config, master, listeners, status: Mutex::new(status) })
}

fn classify(fd: OwnedFd) -> anyhow::Result<Listener> {
    use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};
    use std::os::fd::AsRawFd;
    let addr: SockaddrStorage =
        getsockname(fd.as_raw_fd()).context("inherited fd is not a socket")?;
    Ok(match addr.family() {
        Some(AddressFamily::Unix) => Listener::Unix(fd.into()),
        _ => Listener::Tcp(fd.into()),
    })
}

impl Daemon {
    /// Tells master this worker is serving. Errors are ignored: a worker
    /// started by hand, without master, has no status pipe.
    pub fn ready(&self) {
        self.report(ChildState::Ready);
    }

    /// Tells master this worker stopped accepting and is draining.
    pub fn draining(&self) {
        self.report(ChildState::Draining);
    }

    fn report(&self, state: ChildState) {
        let Ok(mut guard) = self.status.lock() else { return };
        if let Some(f) = guard.as_mut() {
            let msg =
                ChildStatus { pid: std::process::id(), generation: self.args.generation, state };
            if mail_ipc::write_frame(f, &msg).is_err() {
                *guard = None;
            }
        }
    }

    /// The queue directory.
    pub fn queue(&self) -> std::path::PathBuf {
        mail_config::settings::Common::new(&self.config).queue_directory
    }

    /// The socket of the unix service `name` (`qmgr`, `pickup`, `local`),
    /// as master.toml places it ([`MasterFile::socket_path`]).
    pub fn socket_path(&self, name: &str) -> anyhow::Result<std::path::PathBuf> {
        self.master.socket_path(&self.queue(), name).map_err(anyhow::Error::msg)
    }

    /// Like [`Daemon::socket_path`] for a service an instance may lack
    /// (anvil, the SMTP client): without it in master.toml, `default`
    /// under the queue directory, where a client then finds nobody and
    /// does what it does when that service is down.
    pub fn socket_path_or(&self, name: &str, default: &str) -> std::path::PathBuf {
        self.socket_path(name).unwrap_or_else(|_| self.queue().join(default))
    }
}

/// Asks again for SIGTERM when master exits. A process that changes its
/// (effective) uid loses that request, so local-delivery calls this after
/// each switch back from a recipient's uid.
pub fn die_with_parent() {
    sys::die_with_parent();
}

/// How master (or an operator) asked a daemon to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT (`postern stop`): exit promptly. Work not yet
    /// acknowledged is abandoned; nothing acknowledged is lost.
    Now,
    /// SIGUSR1 (`postern reload`, `postern restart SERVICE`): stop
    /// accepting, finish the connections and deliveries in progress, exit.
    Drain,
}

/// Resolves when the process is asked to stop, saying how.
pub async fn stop_signal() -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        // Without handlers the default actions (exit) still apply.
        return std::future::pending::<Stop>().await;
    };
    tokio::select! {
        _ = term.recv() => Stop::Now,
        _ = int.recv() => Stop::Now,
        _ = usr1.recv() => Stop::Drain,
    }
}

/// Runs a daemon's `main` body and turns a fatal error into one log line
/// and a non-zero exit, as Postfix's `msg_fatal` does.
pub fn exit_on_fatal(program: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if log::is_initialized() {
                tracing::error!("fatal: {e:#}");
            } else {
                eprintln!("postern/{program}[{}]: fatal: {e:#}", std::process::id());
            }
            std::process::ExitCode::FAILURE
        }
    }
}
