//! End-to-end test harness: starts a real Postern instance (`postern init
//! --dev` + `postern start-fg`) on loopback with every port chosen by the
//! kernel, and gives tests clients that speak the real protocols.
//!
//! The binaries are the workspace's own, found next to the test
//! executable (`target/debug`); build them first with
//! `cargo build --workspace --bins` (the README's test command does).
//! Each test gets its own instance in a temporary directory, so tests run
//! in parallel. Dropping an [`Instance`] stops master with SIGTERM and
//! requires every process to be gone within 5 seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod smtp;

use mail_ipc::control::StatusReport;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the workspace's binaries are.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug
    let dir = exe.parent().and_then(Path::parent).expect("target directory").to_owned();
    assert!(
        dir.join("postern").exists() && dir.join("smtpd").exists(),
        "Postern binaries are missing in {}: run `cargo build --workspace --bins` before the tests",
        dir.display()
    );
    dir
}

/// A path to one of the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A running instance.
#[derive(Debug)]
pub struct Instance {
    /// The instance directory (config, queue, homes).
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    master: Child,
    /// What master reported when it became ready.
    pub report: StatusReport,
}

/// Options for [`Instance::start_with`].
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Extra `--user NAME:PASSWORD` entries (suporte:suporte is the default when empty).
    pub users: Vec<String>,
    /// `postconf -e` settings applied before start.
    pub postconf: Vec<String>,
}

impl Instance {
    /// Starts an instance with the defaults of `postern init --dev`.
    pub fn start() -> Instance {
        Instance::start_with(Options::default())
    }

    /// Starts an instance with options.
    pub fn start_with(opts: Options) -> Instance {
        let tmp = tempfile::Builder::new().prefix("postern-test-").tempdir().expect("tempdir");
        let dir = tmp.path().join("inst");
        let mut init = Command::new(bin("postern"));
        init.args(["init", "--dev"]).arg(&dir).arg("--any-port");
        for u in &opts.users {
            init.args(["--user", u]);
        }
        let out = init.output().expect("run postern init");
        assert!(
            out.status.success(),
            "postern init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for setting in &opts.postconf {
            let out = Command::new(bin("postconf"))
                .arg("-c")
                .arg(&dir)
                .arg("-e")
                .arg(setting)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "postconf -e {setting:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (master, report) = start_master(&dir);
        Instance { dir, _tmp: tmp, master, report }
    }

    /// The listening address of an inet service (`smtpd`).
    pub fn addr(&self, service: &str) -> String {
        self.report
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| s.listen.first().cloned())
            .unwrap_or_else(|| panic!("no service {service} in {:?}", self.report))
    }

    /// A user's Maildir.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.join("home").join(user).join("Maildir")
    }

    /// The queue directory.
    pub fn queue(&self) -> PathBuf {
        self.dir.join("queue")
    }

    /// Runs one of our commands with `-c DIR` semantics via POSTERN_CONFIG_DIR.
    pub fn command(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.env("POSTERN_CONFIG_DIR", &self.dir);
        c
    }

    /// `postern -c DIR ARGS...`, asserting success; returns stdout.
    pub fn postern(&self, args: &[&str]) -> String {
        let out =
            Command::new(bin("postern")).arg("-c").arg(&self.dir).args(args).output().unwrap();
        assert!(out.status.success(), "postern {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The current status report.
    pub fn status(&self) -> StatusReport {
        serde_json::from_str(&self.postern(&["status", "--json"])).expect("status json")
    }

    /// Files in a user's `Maildir/new`.
    pub fn new_mail(&self, user: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.maildir(user).join("new"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Waits until `user` has at least `n` messages in `Maildir/new`.
    pub fn wait_for_mail(&self, user: &str, n: usize, timeout: Duration) -> Vec<PathBuf> {
        wait_until(timeout, || {
            let v = self.new_mail(user);
            (v.len() >= n).then_some(v)
        })
        .unwrap_or_else(|| {
            panic!(
                "{user} did not get {n} message(s) within {timeout:?}; has {}",
                self.new_mail(user).len()
            )
        })
    }

    /// Pid of master.
    pub fn master_pid(&self) -> u32 {
        self.master.id()
    }
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
/// (Waiting for a file to appear has no event to block on.)
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_master(dir: &Path) -> (Child, StatusReport) {
    let mut child = Command::new(bin("postern"))
        .arg("-c")
        .arg(dir)
        .args(["start-fg", "--ready-json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start postern start-fg");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    // Stream the daemons' log lines into the test output.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => {
            let report = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
            (child, report)
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("master did not report ready within 30 s (see the log lines above)");
        }
    }
}

/// Pids of every process whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // Field 4 (ppid) follows the ")" that closes the command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/PID; treat it as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

impl Drop for Instance {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = self.master.id();
        let children = children_of(pid);
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut clean = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.master.try_wait()
                && children.iter().all(|c| !alive(*c))
            {
                clean = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !clean {
            for c in &children {
                let _ = kill(Pid::from_raw(*c as i32), Signal::SIGKILL);
            }
            let _ = self.master.kill();
            let _ = self.master.wait();
            if !std::thread::panicking() {
                panic!("master or a child did not exit within 5 s of SIGTERM");
            }
        }
    }
}
