//! `postern`: the operator's command for the whole mail system
//! (Postfix's `postfix` command): `init --dev`, `dev`, `start`,
//! `start-fg`, `stop`, `reload`, `status [--json]`, `restart SERVICE`,
//! `check`.
//!
//! It talks to master over `pid/master.ctl` under the queue directory;
//! `start-fg` replaces itself with master.

use crate::{control, fatal};
use mail_config::Main;
use mail_ipc::control::{ControlReply, ControlRequest, StatusReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: postern [-c DIR] COMMAND
commands:
  init --dev DIR [--user NAME:PASSWORD]... [--hostname FQDN] [--port-base N | --any-port]
                      write a complete unprivileged instance under DIR
  dev DIR [--user NAME:PASSWORD]...
                      init DIR if it has no main.toml, then start-fg
  start               start the mail system in the background
  start-fg [--ready-json]
                      run master in the foreground (logs on stderr)
  stop                stop the mail system
  reload              re-read main.toml and master.toml
  restart SERVICE     restart one service's workers
  status [--json]     services, listening addresses, workers, restarts
  check               validate main.toml and master.toml";

/// Entry point of the `postern` binary.
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let mut config_dir: Option<PathBuf> = None;
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "-c" && rest.is_empty() {
            config_dir = it.next().map(PathBuf::from);
        } else {
            rest.push(a);
        }
    }
    let Some(cmd) = rest.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let dir = mail_config::config_dir_from(config_dir.as_deref());
    let opts = &rest[1..];
    let result = match cmd.as_str() {
        "init" => crate::init::init(opts).map(|_| ()),
        "dev" => dev(opts),
        "start" => start(&dir),
        "start-fg" => start_fg(&dir, opts.iter().any(|o| o == "--ready-json")),
        "stop" => stop(&dir),
        "reload" => simple(&dir, ControlRequest::Reload),
        "restart" => match opts.first() {
            Some(s) => simple(&dir, ControlRequest::Restart { service: s.clone() }),
            None => Err("restart needs a service name, as in: postern restart smtpd".into()),
        },
        "status" => status(&dir, opts.iter().any(|o| o == "--json")),
        "check" => check(&dir),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fatal("postern", &e),
    }
}

fn load(dir: &Path) -> Result<Main, String> {
    Main::load(dir).map_err(|e| format!("{e}"))
}

fn dev(opts: &[String]) -> Result<(), String> {
    let Some(dir) = opts.first() else {
        return Err("dev needs a directory, as in: postern dev /tmp/postern-demo".into());
    };
    let dir = crate::init::absolute(Path::new(dir))?;
    if !dir.join("main.toml").exists() {
        let mut init_args = vec!["--dev".to_string(), dir.display().to_string()];
        init_args.extend(opts[1..].iter().cloned());
        crate::init::init(&init_args)?;
    } else {
        println!("postern: using the existing instance in {}", dir.display());
    }
    start_fg(&dir, false)
}

fn master_program(main: &Main) -> PathBuf {
    main.path("daemon_directory").join("master")
}

fn start_fg(dir: &Path, ready_json: bool) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let main = load(dir)?;
    let program = master_program(&main);
    let mut cmd = std::process::Command::new(&program);
    cmd.arg("-c").arg(dir);
    if ready_json {
        cmd.arg("--ready-json");
    }
    let e = cmd.exec();
    Err(format!(
        "cannot run {}: {e}; is daemon_directory right in {}/main.toml?",
        program.display(),
        dir.display()
    ))
}

fn start(dir: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let main = load(dir)?;
    if control(&main, &ControlRequest::Status).is_ok() {
        return Err("the Postern mail system is already running".into());
    }
    let log = match main.str("maillog_file") {
        f if !f.is_empty() => PathBuf::from(f),
        _ => main.path("queue_directory").join("maillog"),
    };
    let open = || std::fs::OpenOptions::new().append(true).create(true).open(&log);
    let (out, err) = match (open(), open()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Err(format!("cannot open log file {}: {e}", log.display()));
        }
    };
    let program = master_program(&main);
    let mut child = std::process::Command::new(&program)
        .arg("-c")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("master exited ({st}) during start-up; see {}", log.display()));
        }
        if let Ok(ControlReply::Status(r)) = control(&main, &ControlRequest::Status)
            && r.services
                .iter()
                .all(|s| s.workers.iter().filter(|w| w.ready).count() >= s.maxproc as usize)
        {
            println!(
                "postern: the Postern mail system is running (master pid {}); log: {}",
                r.master_pid,
                log.display()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("master did not report ready within 30s; see {}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(dir: &Path) -> Result<(), String> {
    let main = load(dir)?;
    let pid_file = main.path("queue_directory").join(mail_ipc::sockets::MASTER_PID);
    match control(&main, &ControlRequest::Stop)? {
        ControlReply::Ok(_) => {}
        ControlReply::Error(e) => return Err(e),
        ControlReply::Status(_) => return Err("unexpected reply from master".into()),
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while pid_file.exists() {
        if Instant::now() > deadline {
            return Err("master did not stop within 20s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("postern: the Postern mail system is stopped");
    Ok(())
}

fn simple(dir: &Path, req: ControlRequest) -> Result<(), String> {
    let main = load(dir)?;
    match control(&main, &req)? {
        ControlReply::Ok(text) => {
            println!("postern: {text}");
            Ok(())
        }
        ControlReply::Error(text) => Err(text),
        ControlReply::Status(_) => Err("unexpected reply from master".into()),
    }
}

fn check(dir: &Path) -> Result<(), String> {
    mail_config::check(dir).map_err(|e| format!("{e}"))?;
    println!("postern: configuration in {} is valid", dir.display());
    Ok(())
}

fn status(dir: &Path, json: bool) -> Result<(), String> {
    let main = load(dir)?;
    let report = match control(&main, &ControlRequest::Status)? {
        ControlReply::Status(r) => r,
        ControlReply::Error(e) => return Err(e),
        ControlReply::Ok(_) => return Err("unexpected reply from master".into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", format_status(&report, now()));
    }
    Ok(())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn uptime(since: u64, now: u64) -> String {
    let s = now.saturating_sub(since);
    if s >= 86400 {
        format!("{}d{:02}h", s / 86400, s % 86400 / 3600)
    } else {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }
}

/// The table `postern status` prints.
pub fn format_status(r: &StatusReport, now: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "master pid {}, up {}, config {}, queue {}",
        r.master_pid,
        uptime(r.started, now),
        r.config_dir,
        r.queue_dir
    );
    let listen: Vec<String> = r.services.iter().map(|s| s.listen.join(" ")).collect();
    let name_w = r.services.iter().map(|s| s.name.len()).chain([7]).max().unwrap_or(7);
    let listen_w = listen.iter().map(String::len).chain([6]).max().unwrap_or(6);
    let _ = writeln!(
        out,
        "{:<name_w$} {:<5} {:<listen_w$} {:>5} {:>8}  workers (pid uptime)",
        "service", "type", "listen", "procs", "restarts"
    );
    for (s, listen) in r.services.iter().zip(&listen) {
        let workers: Vec<String> = s
            .workers
            .iter()
            .map(|w| {
                let state = if w.draining {
                    " draining"
                } else if !w.ready {
                    " starting"
                } else {
                    ""
                };
                format!("{} {}{state}", w.pid, uptime(w.started, now))
            })
            .collect();
        let procs = format!(
            "{}/{}",
            s.workers.iter().filter(|w| w.ready && !w.draining).count(),
            s.maxproc
        );
        let throttled = s
            .throttled_until
            .map(|t| format!("  throttled for {}s", t.saturating_sub(now)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<name_w$} {:<5} {:<listen_w$} {:>5} {:>8}  {}{throttled}",
            s.name,
            s.kind,
            listen,
            procs,
            s.restarts,
            workers.join(", ")
        );
    }
    out
}
