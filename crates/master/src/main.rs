//! SUMMARY
//!   master - the Postern process supervisor
//!
//! DESCRIPTION
//!   master reads master.toml, binds every service's listening sockets,
//!   and starts `maxproc` worker processes per service, handing each the
//!   sockets on fixed file descriptors (see `mail_ipc::status`). It
//!   restarts a worker that dies (at once if it had reported ready,
//!   with growing delays if it fails during start-up), sends wake-up
//!   triggers to services with a `wakeup` time, and answers the control
//!   socket `pid/master.ctl` for `postern status|reload|restart|stop`.
//!   Under systemd (`Type=notify`) it reports READY=1 once every
//!   service's workers are ready, RELOADING=1/READY=1 around a reload and
//!   STOPPING=1 (see `notify`). `--detach` (what `postern start` passes)
//!   makes it a session leader of its own; `pid/master.pid` holds its pid.
//!
//!   Because master owns the listening sockets, restarting a worker or
//!   reloading never closes them: a client that connects meanwhile waits
//!   in the backlog and is served by the next worker. Reload and restart
//!   drain old workers (SIGUSR1): they finish their connections and exit.
//!   Unix services with maxproc 1 (qmgr) get their new worker only after
//!   the old one has exited, so there is never more than one.
//!
//! SECURITY
//!   master runs as root in a system install (to bind ports below 1024
//!   and start local-delivery as root); it parses no network input.
//!   Workers of `unpriv` services drop to mail_owner themselves.
//!
//! CONFIGURATION
//!   master.toml (every field), main.toml: queue_directory,
//!   daemon_directory, inet_interfaces, mail_owner, syslog_name,
//!   maillog_file, maillog_destination, metrics_listen.
//!
//! DIAGNOSTICS
//!   Fatal at start-up: bad configuration, a socket that cannot be bound,
//!   another master running. After start-up, problems are warnings: a bad
//!   reload keeps the old configuration, a failing service is throttled.

mod listen;
mod metrics;
mod notify;
mod supervisor;
mod sys;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config_dir = None;
    let mut ready_json = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config-dir" => config_dir = it.next().map(std::path::PathBuf::from),
            "--ready-json" => ready_json = true,
            // `postern start`: leave the caller's session, so the
            // terminal's hangup and job control never reach master.
            "--detach" => {
                if let Err(e) = nix::unistd::setsid() {
                    eprintln!("postern/master: fatal: cannot start a new session: {e}");
                    return ExitCode::FAILURE;
                }
            }
            other => {
                eprintln!(
                    "master: unknown argument {other:?}; usage: master [-c DIR] [--ready-json] [--detach]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let dir = mail_config::config_dir_from(config_dir.as_deref());
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("postern/master: fatal: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    mail_daemon::exit_on_fatal("master", rt.block_on(supervisor::run(dir, ready_json)))
}
