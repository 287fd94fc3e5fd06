//! `postern`: the operator's command for the whole mail system
//! (Postfix's `postfix` command): `init --dev`, `dev`, `start`,
//! `start-fg`, `stop`, `reload`, `status [--json]`, `restart SERVICE`,
//! `check`, `pw`, `qshape` (parsed with clap; `postern --help` and `postern COMMAND
//! --help` list the options).
//!
//! It talks to master over `pid/master.ctl` under the queue directory;
//! `start-fg` replaces itself with master.

use crate::{control, fatal};
use mail_config::{Main, settings};
use mail_ipc::control::{ControlReply, ControlRequest, StatusReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `postern [-c DIR] COMMAND`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "postern",
    about = "Start, stop, reload and inspect the Postern mail system; make development instances",
    arg_required_else_help = true,
    disable_version_flag = true
)]
struct Cli {
    /// The configuration directory (default: $POSTERN_CONFIG_DIR, else /etc/postern).
    #[arg(short = 'c', value_name = "DIR", global = true)]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a complete unprivileged instance under DIR.
    Init {
        /// The instance directory (only unprivileged instances are made by init).
        #[arg(long, value_name = "DIR", required = true)]
        dev: PathBuf,
        #[command(flatten)]
        opts: crate::init::InitOptions,
    },
    /// Init DIR if it has no main.toml, then start-fg.
    Dev {
        /// The instance directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        opts: crate::init::InitOptions,
    },
    /// Start the mail system in the background.
    Start,
    /// Run master in the foreground (logs on stderr).
    StartFg {
        /// Print one JSON status line on stdout once every worker is ready.
        #[arg(long)]
        ready_json: bool,
    },
    /// Stop the mail system.
    Stop,
    /// Re-read main.toml and master.toml.
    Reload,
    /// Restart one service's workers.
    Restart {
        /// The service name in master.toml, as in: postern restart smtpd.
        #[arg(value_name = "SERVICE")]
        service: String,
    },
    /// Services, listening addresses, workers, restarts.
    Status {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate main.toml and master.toml.
    Check,
    /// The queue's domain and age distribution (Postfix qshape).
    Qshape {
        #[command(flatten)]
        opts: crate::qshape::QshapeOptions,
    },
    /// Convert a Postfix configuration (main.cf, master.cf, its tables)
    /// into this instance's main.toml and master.toml.
    ImportPostfix {
        #[command(flatten)]
        opts: crate::import_postfix::ImportOptions,
    },
    /// Print the configuration reference (every main.toml parameter with
    /// its type, default and meaning) as Markdown: docs/parameters.md.
    Reference,
    /// Print a password hash for the passwd-file (doveadm pw).
    Pw {
        #[command(flatten)]
        opts: crate::pw::PwOptions,
    },
}

/// Entry point of the `postern` binary.
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    use clap::Parser;
    let cli = match Cli::try_parse_from(std::iter::once("postern".to_owned()).chain(args)) {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("{}", e.render());
            return ExitCode::from(2);
        }
        Err(e) => {
            return crate::clap_error(
                e,
                |help| {
                    print!("{help}");
                    ExitCode::SUCCESS
                },
                |m| {
                    eprint!("postern: fatal: {m}");
                    ExitCode::FAILURE
                },
            );
        }
    };
    let dir = mail_config::config_dir_from(cli.config_dir.as_deref());
    let result = match cli.command {
        Command::Init { dev, opts } => crate::init::init(&dev, &opts).map(|_| ()),
        Command::Dev { dir, opts } => self::dev(&dir, &opts),
        Command::Start => start(&dir),
        Command::StartFg { ready_json } => start_fg(&dir, ready_json),
        Command::Stop => stop(&dir),
        Command::Reload => simple(&dir, ControlRequest::Reload),
        Command::Restart { service } => simple(&dir, ControlRequest::Restart { service }),
        Command::Status { json } => status(&dir, json),
        Command::Check => check(&dir),
        Command::Pw { opts } => crate::pw::pw(&opts),
        Command::ImportPostfix { opts } => crate::import_postfix::import(&dir, &opts),
        Command::Reference => {
            print!("{}", mail_config::reference::markdown());
            Ok(())
        }
        Command::Qshape { opts } => crate::qshape::qshape(&dir, &opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fatal("postern", &e),
    }
}

fn load(dir: &Path) -> Result<Main, String> {
    Main::load(dir).map_err(|e| format!("{e}"))
}

fn dev(dir: &Path, opts: &crate::init::InitOptions) -> Result<(), String> {
    let dir = crate::init::absolute(dir)?;
    if !dir.join("main.toml").exists() {
        crate::init::init(&dir, opts)?;
    } else {
        println!("postern: using the existing instance in {}", dir.display());
    }
    start_fg(&dir, false)
}

fn master_program(main: &Main) -> PathBuf {
    settings::Common::new(main).daemon_directory.join("master")
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
    let main = load(dir)?;
    if control(&main, &ControlRequest::Status).is_ok() {
        return Err("the Postern mail system is already running".into());
    }
    let common = settings::Common::new(&main);
    let log = common.maillog_file.unwrap_or_else(|| common.queue_directory.join("maillog"));
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
        .arg("--detach")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    // An on-demand service (pop3-mail) has no worker until a client needs one.
    let on_demand: Vec<String> = mail_config::MasterFile::load(dir)
        .map(|m| {
            m.services
                .into_iter()
                .filter(|s| s.spawn == mail_config::Spawn::OnDemand)
                .map(|s| s.name)
                .collect()
        })
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("master exited ({st}) during start-up; see {}", log.display()));
        }
        if let Ok(ControlReply::Status(r)) = control(&main, &ControlRequest::Status)
            && r.services.iter().all(|s| {
                on_demand.contains(&s.name)
                    || s.workers.iter().filter(|w| w.ready).count() >= s.maxproc as usize
            })
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
    let pid_file = settings::Common::new(&main).queue_directory.join(mail_ipc::sockets::MASTER_PID);
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
    for warning in check_warnings(dir)? {
        eprintln!("postern: warning: {warning}");
    }
    println!("postern: configuration in {} is valid", dir.display());
    Ok(())
}

/// Checks both files; `Ok` carries the warnings: parameters set that
/// have no effect yet.
fn check_warnings(dir: &Path) -> Result<Vec<String>, String> {
    mail_config::check(dir).map_err(|e| format!("{e}"))?;
    Ok(mail_config::settings::unimplemented_warnings(&load(dir)?)
        .into_iter()
        .map(|(_, message)| message)
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("postern").chain(args.iter().copied()))
    }

    #[test]
    fn every_command_and_flag_parses() {
        let c = parse(&["-c", "/etc/x", "start-fg", "--ready-json"]).unwrap();
        assert_eq!(c.config_dir, Some(PathBuf::from("/etc/x")));
        assert!(matches!(c.command, Command::StartFg { ready_json: true }));
        // -c after the command works too.
        let c = parse(&["status", "--json", "-c", "/etc/y"]).unwrap();
        assert_eq!(c.config_dir, Some(PathBuf::from("/etc/y")));
        assert!(matches!(c.command, Command::Status { json: true }));
        assert!(matches!(
            parse(&["restart", "smtpd"]).unwrap().command,
            Command::Restart { service } if service == "smtpd"
        ));
        for (cmd, ok) in [("start", true), ("stop", true), ("reload", true), ("check", true)] {
            assert_eq!(parse(&[cmd]).is_ok(), ok, "{cmd}");
        }
        let Command::Pw { opts } =
            parse(&["pw", "-s", "SHA512-CRYPT", "-p", "x y", "-u", "ana"]).unwrap().command
        else {
            panic!("not pw")
        };
        assert_eq!(opts.scheme.as_deref(), Some("SHA512-CRYPT"));
        assert_eq!((opts.password.as_deref(), opts.user.as_deref()), (Some("x y"), Some("ana")));
        assert!(matches!(parse(&["pw"]).unwrap().command, Command::Pw { .. }));
        let Command::Init { dev, opts } = parse(&[
            "init",
            "--dev",
            "/tmp/i",
            "--user",
            "maria:pw",
            "--user",
            "joao:x:y",
            "--hostname",
            "mx.example.org",
            "--port-base",
            "20000",
        ])
        .unwrap()
        .command
        else {
            panic!("not init")
        };
        assert_eq!(dev, PathBuf::from("/tmp/i"));
        assert_eq!(
            opts.users,
            [("maria".to_owned(), "pw".to_owned()), ("joao".to_owned(), "x:y".to_owned())]
        );
        assert_eq!(opts.hostname, "mx.example.org");
        assert_eq!((opts.port_base, opts.any_port), (Some(20000), false));
        // The last of --port-base and --any-port wins, as before.
        let Command::Dev { dir, opts } =
            parse(&["dev", "/tmp/d", "--port-base", "20000", "--any-port"]).unwrap().command
        else {
            panic!("not dev")
        };
        assert_eq!(dir, PathBuf::from("/tmp/d"));
        assert_eq!((opts.port_base, opts.any_port), (None, true));
        assert_eq!(opts.hostname, "mail.postern.test");
    }

    #[test]
    fn check_warns_about_parameters_without_effect() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("i");
        let opts = crate::init::InitOptions {
            users: Vec::new(),
            hostname: "mail.example.org".into(),
            port_base: None,
            any_port: true,
        };
        crate::init::init(&dir, &opts).unwrap();
        assert_eq!(check_warnings(&dir).unwrap(), Vec::<String>::new());
        let main = dir.join("main.toml");
        let text = std::fs::read_to_string(&main).unwrap() + "append_dot_mydomain = true\n";
        std::fs::write(&main, &text).unwrap();
        let warnings = check_warnings(&dir).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].ends_with(
                "parameter \"append_dot_mydomain\": not yet implemented; the setting has no effect"
            ),
            "{warnings:?}"
        );
        std::fs::write(&main, text + "nosuch = 1\n").unwrap();
        assert!(check_warnings(&dir).unwrap_err().contains("unknown parameter \"nosuch\""));
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let msg = |args: &[&str]| parse(args).unwrap_err().render().to_string();
        assert!(msg(&["bogus"]).contains("unrecognized subcommand 'bogus'"));
        assert!(msg(&["status", "--jsn"]).contains("unexpected argument '--jsn'"));
        assert!(msg(&["restart"]).contains("<SERVICE>"));
        assert!(msg(&["init"]).contains("--dev <DIR>"));
        assert!(
            msg(&["init", "--dev", "/x", "--port-base", "many"]).contains("'--port-base <BASE>'")
        );
        assert!(
            msg(&["init", "--dev", "/x", "--user", "nopass"]).contains("expected NAME:PASSWORD")
        );
        assert_eq!(
            parse(&[]).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(parse(&["--help"]).unwrap_err().kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
