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

pub mod dns;
pub mod imap;
mod line_stream;
pub mod pop3;
pub mod smtp;

use mail_ipc::control::StatusReport;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
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

/// Reports that the calling test checks nothing here, and why, as a
/// `skipped: TEST: REASON` line on stderr. libtest hides what a passing
/// test prints with `eprintln!`; this writes to the stderr descriptor
/// directly so the line shows in `cargo test`'s output, and a skip is
/// never mistaken for a pass.
pub fn skip(reason: &str) {
    use std::io::Write;
    let me = std::thread::current().name().unwrap_or("test").to_string();
    let _ = writeln!(std::io::stderr(), "skipped: {me}: {reason}");
}

/// True when `tool` is an executable file in one of `$PATH`'s directories.
pub fn have_tool(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// True when the tests run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
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
    /// The queue directory is a tmpfs this instance mounted.
    tmpfs: bool,
    /// The network namespace master runs in, if not this one.
    netns: Option<String>,
}

/// Options for [`Instance::start_with`].
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Called with the instance directory after init and postconf,
    /// before master starts.
    pub before_start: Option<fn(&Path)>,
    /// Extra `--user NAME:PASSWORD` entries, added to the tutorial's suporte:suporte.
    pub users: Vec<String>,
    /// `postconf -e` settings applied before start.
    pub postconf: Vec<String>,
    /// Mount a tmpfs of this many bytes as the queue directory (root
    /// only), so a test can fill the queue's file system.
    pub queue_tmpfs: Option<u64>,
    /// Run master (and so every daemon) in this network namespace
    /// (`ip netns exec NAME`; root only), so an instance can listen on
    /// port 25 of an address of the test's own making.
    pub netns: Option<String>,
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
        if let Some(f) = opts.before_start {
            f(&dir);
        }
        if let Some(size) = opts.queue_tmpfs {
            let queue = dir.join("queue");
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
                .arg(&queue)
                .output()
                .expect("run mount");
            assert!(
                out.status.success(),
                "mount tmpfs on {}: {}",
                queue.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (master, report) = start_master(&dir, opts.netns.as_deref());
        Instance {
            dir,
            _tmp: tmp,
            master,
            report,
            tmpfs: opts.queue_tmpfs.is_some(),
            netns: opts.netns.clone(),
        }
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

    /// Reaps the current master (which a test has stopped or killed) and
    /// starts a new one on the same instance directory.
    pub fn restart_master(&mut self) {
        let _ = self.master.wait();
        let (master, report) = start_master(&self.dir, self.netns.as_deref());
        self.master = master;
        self.report = report;
    }

    /// Runs our `sendmail ARGS` with `stdin` as the message, asserting it
    /// exits 0 (the message is durably in maildrop/).
    pub fn sendmail(&self, args: &[&str], stdin: &str) {
        use std::io::Write;
        let mut child = self
            .command("sendmail")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin("sendmail").display()));
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "sendmail {args:?}: {out:?}");
    }

    /// `postern -c DIR ARGS...` without asserting anything.
    pub fn try_postern(&self, args: &[&str]) -> Output {
        Command::new(bin("postern")).arg("-c").arg(&self.dir).args(args).output().unwrap()
    }

    /// `postconf -c DIR ARGS...`, asserting success; returns stdout.
    pub fn postconf(&self, args: &[&str]) -> String {
        let out =
            Command::new(bin("postconf")).arg("-c").arg(&self.dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "postconf {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `postconf -e SETTING` for each setting, then `postern reload`.
    pub fn set_and_reload(&self, settings: &[&str]) {
        for s in settings {
            self.postconf(&["-e", s]);
        }
        self.reload();
    }

    /// `postern reload`, then waits until every worker that was running
    /// before has been replaced by one of a newer generation that reported
    /// ready (so the next connection is served with the new config).
    pub fn reload(&self) {
        let before = self.status();
        self.postern(&["reload"]);
        self.wait_workers_replaced(&before, &["smtp", "qmgr", "local", "pickup"]);
    }

    /// Waits (bounded, 20 s) until each named service has at least one
    /// ready worker started after `before` and every worker of `before`
    /// is gone or draining (a draining worker still serves the sessions
    /// it had; it takes no new connections).
    pub fn wait_workers_replaced(&self, before: &StatusReport, services: &[&str]) {
        let old: Vec<u32> = before
            .services
            .iter()
            .filter(|s| services.contains(&s.name.as_str()))
            .flat_map(|s| s.workers.iter().map(|w| w.pid))
            .collect();
        let done = wait_until(Duration::from_secs(20), || {
            let now = self.status();
            let ok = now.services.iter().filter(|s| services.contains(&s.name.as_str())).all(|s| {
                s.workers.iter().any(|w| w.ready && !w.draining && !old.contains(&w.pid))
                    && s.workers.iter().all(|w| !old.contains(&w.pid) || w.draining)
            });
            ok.then_some(())
        });
        assert!(
            done.is_some(),
            "workers of {services:?} were not all replaced by ready ones within 20 s: before {:?}, now {:?}",
            before,
            self.status()
        );
    }

    /// The ready, non-draining worker pids of one service.
    pub fn worker_pids(&self, service: &str) -> Vec<u32> {
        service_pids(&self.status(), service)
    }

    /// Waits (bounded, 20 s) until `service` has at least one ready worker
    /// and none of the pids in `gone`.
    pub fn wait_service_ready(&self, service: &str, gone: &[u32]) -> Vec<u32> {
        wait_until(Duration::from_secs(20), || {
            // One report for both questions: with two, a worker reaped
            // between them would be in the first answer and not the second.
            let report = self.status();
            let pids = service_pids(&report, service);
            let all = report
                .services
                .iter()
                .find(|s| s.name == service)
                .map(|s| s.workers.iter().map(|w| w.pid).collect::<Vec<_>>())
                .unwrap_or_default();
            (!pids.is_empty() && !all.iter().any(|p| gone.contains(p))).then_some(pids)
        })
        .unwrap_or_else(|| {
            panic!("{service} has no new ready worker within 20 s: {:?}", self.status())
        })
    }

    /// A connected SMTP client with the greeting read and `EHLO` done.
    pub fn smtp(&self) -> smtp::Client {
        let mut c = smtp::Client::connect(&self.addr("smtp"));
        c.expect_code(220);
        c.ehlo("client.postern.test");
        c
    }

    /// Like [`Instance::smtp`], connecting from the local address `source`.
    pub fn smtp_from(&self, source: std::net::IpAddr, helo: &str) -> smtp::Client {
        let mut c = smtp::Client::connect_from(&self.addr("smtp"), source);
        c.expect_code(220);
        c.ehlo(helo);
        c
    }

    /// Every file name in a queue state directory (`incoming`, `active`,
    /// `deferred`, `corrupt`, `tmp`, `maildrop`, ...).
    pub fn queue_files(&self, state: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.queue().join(state))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The contents of every message in `user`'s `Maildir/new`.
    pub fn new_mail_texts(&self, user: &str) -> Vec<String> {
        self.new_mail(user)
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    /// Waits (bounded) for exactly one new message for `user` and returns
    /// its text.
    pub fn one_mail(&self, user: &str) -> String {
        let files = self.wait_for_mail(user, 1, Duration::from_secs(20));
        assert_eq!(files.len(), 1, "expected one message for {user}: {files:?}");
        String::from_utf8_lossy(&std::fs::read(&files[0]).unwrap()).into_owned()
    }

    /// The instance log lines so far are streamed to stderr; this returns
    /// `postqueue -p` output (asserting success).
    pub fn mailq(&self) -> String {
        let out = self.command("postqueue").arg("-p").output().unwrap();
        assert!(out.status.success(), "postqueue -p: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Ready, non-draining worker pids of `service` in a report.
pub fn service_pids(r: &StatusReport, service: &str) -> Vec<u32> {
    r.services
        .iter()
        .find(|s| s.name == service)
        .map(|s| s.workers.iter().filter(|w| w.ready && !w.draining).map(|w| w.pid).collect())
        .unwrap_or_default()
}

/// Every worker of `service`, busy ones too: unlike [`service_pids`], a
/// draining worker counts (an on-demand mail process reports draining
/// once it has its session).
pub fn all_worker_pids(r: &StatusReport, service: &str) -> Vec<u32> {
    r.services
        .iter()
        .filter(|s| s.name == service)
        .flat_map(|s| s.workers.iter().map(|w| w.pid))
        .collect()
}

/// The numbers of a `/proc/PID/status` line such as `Uid:` (real,
/// effective, saved, fs) or `Groups:`; empty once the process is gone.
pub fn proc_ids(pid: u32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

/// How many deliveries a `kill -9` of one local-delivery worker may
/// duplicate: docs/ARCHITECTURE.md's "Duplicate window". local-delivery
/// serves requests in batches behind one fsync of new/ and answers after
/// it, so the whole batch in hand may be delivered without its results
/// reaching qmgr, which retries them: at most `BATCH_MAX` (32, in
/// crates/local-delivery/src/main.rs) requests.
pub const DUPLICATES_PER_LOCAL_KILL: usize = 32;

/// `kill -9 PID`.
pub fn kill9(pid: u32) {
    use nix::sys::signal::{Signal, kill};
    let _ = kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// The tutorial's message, exactly as typed into telnet (including the
/// blank line after `From:` that makes `To:` and `Subject:` body text).
pub fn tutorial_message() -> &'static str {
    "From: Nome do Remetente <root@fiap.edu.br>\r\n\
     \r\n\
     To: Nome do Destinatario <ubuntu@fiap.edu.br>\r\n\
     Subject: Teste de Comandos SMTP\r\n\
     E-mail teste - Comandos SMTP\r\n"
}

/// True for a queue id as shown to clients: `[0-9A-Z]{10,32}`.
pub fn is_queue_id(s: &str) -> bool {
    (10..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// The header section of a message, unfolded: (name, value) pairs in order.
pub fn headers(msg: &str) -> Vec<(String, String)> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    let head = head.split("\n\n").next().unwrap_or("");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.to_string(), v.trim().to_string()));
        } else if !line.starts_with("From ") {
            break;
        }
    }
    out
}

/// Values of header `name` (case-insensitive) in `msg`.
pub fn header(msg: &str, name: &str) -> Vec<String> {
    headers(msg).into_iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v).collect()
}

/// A child process killed (SIGKILL) and reaped when dropped, even on panic.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `strace -f -qq -e trace=CALLS -o LOG -p PID...` attached to running
/// workers: with `--seccomp-bpf` where this strace has it (the worker then
/// stops only at the traced calls and runs at speed), without it
/// otherwise. `None`, with a printed skip reason, when strace cannot run
/// or attach here. [`Strace::finish`] detaches and returns the log.
#[derive(Debug)]
pub struct Strace {
    child: ChildGuard,
    log: PathBuf,
}

impl Strace {
    pub fn attach(pids: &[u32], calls: &str, log: &Path) -> Option<Strace> {
        let spawn = |seccomp: bool| {
            let mut cmd = Command::new("strace");
            cmd.args(["-f", "-qq"]);
            if seccomp {
                cmd.arg("--seccomp-bpf");
            }
            cmd.args(["-e", &format!("trace={calls}"), "-o"]).arg(log);
            for pid in pids {
                cmd.args(["-p", &pid.to_string()]);
            }
            cmd.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn()
        };
        let mut last = None;
        for seccomp in [true, false] {
            let mut child = match spawn(seccomp) {
                Ok(child) => ChildGuard(child),
                Err(e) => {
                    skip(&format!("cannot run strace: {e}"));
                    return None;
                }
            };
            std::thread::sleep(Duration::from_secs(2));
            match child.0.try_wait() {
                Ok(Some(status)) => last = Some(status),
                _ => return Some(Strace { child, log: log.to_owned() }),
            }
        }
        let status = last.map(|s| s.to_string()).unwrap_or_default();
        skip(&format!("strace cannot attach here ({status})"));
        None
    }

    /// Detaches (SIGINT, so strace flushes its log) and returns the log.
    pub fn finish(mut self) -> String {
        let _ = Command::new("kill").args(["-INT", &self.child.0.id().to_string()]).status();
        let _ = self.child.0.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
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

fn start_master(dir: &Path, netns: Option<&str>) -> (Child, StatusReport) {
    // `ip netns exec` execs the command, so the child is master itself.
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin("postern"));
            c
        }
        None => Command::new(bin("postern")),
    };
    let mut child = command
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

/// True while `pid` runs (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
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
        }
        if self.tmpfs {
            let _ = Command::new("umount").arg(self.dir.join("queue")).status();
        }
        if !clean && !std::thread::panicking() {
            panic!("master or a child did not exit within 5 s of SIGTERM");
        }
    }
}

/// A message with a unique Message-ID, for counting deliveries.
pub fn numbered_message(msgid: &str, to: &str) -> String {
    format!(
        "From: load@postern.test\r\nTo: {to}\r\nSubject: load {msgid}\r\n\
         Message-ID: <{msgid}>\r\n\r\nmessage {msgid}\r\n"
    )
}

/// What a [`Stream`] achieved.
#[derive(Debug, Default)]
pub struct StreamResult {
    /// Message-IDs (without <>) that got 250 after DATA.
    pub accepted: Vec<String>,
    /// The same messages with the queue id each 250 named, in the order
    /// the replies arrived.
    pub queued: Vec<(String, String)>,
    /// Transactions that failed (each was retried with a new Message-ID).
    pub failures: Vec<String>,
    /// Failed attempts the server cannot have queued: the end of data
    /// never went out, or the server refused it.
    pub refused: Vec<FailedAttempt>,
    /// Failed attempts whose end of data went out and got no reply: the
    /// server may have queued them without telling.
    pub unanswered: Vec<FailedAttempt>,
    /// Messages given up on after too many failed attempts.
    pub abandoned: usize,
}

/// One failed transaction of a [`Stream`].
#[derive(Debug, Clone)]
pub struct FailedAttempt {
    /// Its Message-ID, without <>.
    pub msgid: String,
    /// When the client saw it fail.
    pub at: Instant,
    /// What went wrong.
    pub error: String,
}

/// How a [`Stream`] sends, for [`Stream::start_with`].
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Parallel SMTP sessions.
    pub sessions: usize,
    /// How many of those sessions open a new connection for every message
    /// (the others keep theirs until it fails).
    pub one_per_connection: usize,
    /// Builds the message text of one attempt from its Message-ID
    /// (without <>) and the recipient.
    pub message: fn(&str, &str) -> String,
}

impl StreamOptions {
    /// `sessions` keep-alive sessions sending [`numbered_message`]s.
    pub fn keep_alive(sessions: usize) -> StreamOptions {
        StreamOptions { sessions, one_per_connection: 0, message: numbered_message }
    }
}

/// A stream of `total` messages to `rcpt` over parallel SMTP sessions;
/// a session reconnects after a failure, and those told to in
/// [`StreamOptions`] for every message. Every attempt carries its own
/// Message-ID (`N.ATTEMPT.TAG@postern.test`) so an attempt that was
/// queued but not acknowledged shows up as an extra, not as a duplicate.
#[derive(Debug)]
pub struct Stream {
    /// Messages acknowledged so far.
    pub done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    result: Arc<Mutex<StreamResult>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Stream {
    /// Starts `sessions` keep-alive sender threads.
    pub fn start(addr: &str, rcpt: &str, total: usize, sessions: usize, tag: &str) -> Stream {
        Stream::start_with(addr, rcpt, total, tag, StreamOptions::keep_alive(sessions))
    }

    /// Starts the sender threads as `opts` says.
    pub fn start_with(
        addr: &str,
        rcpt: &str,
        total: usize,
        tag: &str,
        opts: StreamOptions,
    ) -> Stream {
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let result = Arc::new(Mutex::new(StreamResult::default()));
        let next = Arc::new(AtomicUsize::new(0));
        let threads = (0..opts.sessions)
            .map(|session| {
                let (addr, rcpt, tag) = (addr.to_string(), rcpt.to_string(), tag.to_string());
                let (done, stop, result, next) =
                    (done.clone(), stop.clone(), result.clone(), next.clone());
                let reconnect = session < opts.one_per_connection;
                let message = opts.message;
                std::thread::spawn(move || {
                    let mut conn: Option<smtp::Conn> = None;
                    loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        if n >= total || stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let mut ok = false;
                        for attempt in 0..20 {
                            let msgid = format!("{n}.{attempt}.{tag}@postern.test");
                            let body = message(&msgid, &rcpt);
                            let mut c = match conn.take() {
                                Some(c) => c,
                                None => match smtp::Conn::open(&addr) {
                                    Ok(c) => c,
                                    Err(e) => {
                                        let error = format!("connect: {e}");
                                        let mut r = result.lock().unwrap();
                                        r.failures.push(format!("{msgid}: {error}"));
                                        r.refused.push(FailedAttempt {
                                            msgid,
                                            at: Instant::now(),
                                            error,
                                        });
                                        continue;
                                    }
                                },
                            };
                            match c.transaction_outcome("load@postern.test", &[&rcpt], &body) {
                                Ok(id) => {
                                    if reconnect {
                                        // The message is ours once 250 arrived.
                                        let _ = c.quit();
                                    } else {
                                        conn = Some(c);
                                    }
                                    let mut r = result.lock().unwrap();
                                    r.accepted.push(msgid.clone());
                                    r.queued.push((msgid, id));
                                    done.fetch_add(1, Ordering::SeqCst);
                                    ok = true;
                                    break;
                                }
                                Err(e) => {
                                    let error = e.to_string();
                                    let mut r = result.lock().unwrap();
                                    r.failures.push(format!("{msgid}: {error}"));
                                    let f = FailedAttempt { msgid, at: Instant::now(), error };
                                    match e {
                                        smtp::TxFailure::Unanswered(_) => r.unanswered.push(f),
                                        _ => r.refused.push(f),
                                    }
                                }
                            }
                        }
                        if !ok {
                            result.lock().unwrap().abandoned += 1;
                        }
                    }
                    if let Some(c) = conn {
                        let _ = c.quit();
                    }
                })
            })
            .collect();
        Stream { done, stop, result, threads }
    }

    /// Acknowledged messages so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` messages were acknowledged.
    pub fn wait_done(&self, n: usize, timeout: Duration) {
        let ok = wait_until(timeout, || (self.done() >= n).then_some(()));
        assert!(
            ok.is_some(),
            "stream stalled: {} of {n} acknowledged after {timeout:?}",
            self.done()
        );
    }

    /// Tells the senders to stop after their current message.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the threads and returns the result.
    pub fn finish(mut self) -> StreamResult {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        std::mem::take(&mut *self.result.lock().unwrap())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // On a panic in the test, let the senders stop at their next message.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Message-IDs (without <>) of every message in `user`'s Maildir
/// (new/ and cur/), with how often each occurs.
pub fn delivered_ids(inst: &Instance, user: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(inst.maildir(user).join(sub)).into_iter().flatten().flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                let text = String::from_utf8_lossy(&b);
                for v in header(&text, "Message-ID") {
                    *out.entry(v.trim_matches(['<', '>']).to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    out
}

/// Waits (bounded) until every id in `ids` was delivered to `user`;
/// returns the delivery counts. Panics listing the missing ones.
pub fn wait_delivered(
    inst: &Instance,
    user: &str,
    ids: &[String],
    timeout: Duration,
) -> HashMap<String, usize> {
    let mut last = HashMap::new();
    let ok = wait_until(timeout, || {
        if inst.new_mail(user).len() < ids.len() {
            return None;
        }
        last = delivered_ids(inst, user);
        ids.iter().all(|i| last.contains_key(i)).then_some(())
    });
    if ok.is_none() {
        last = delivered_ids(inst, user);
        let missing: Vec<&String> = ids.iter().filter(|i| !last.contains_key(*i)).collect();
        panic!(
            "{} of {} acknowledged messages not delivered to {user} within {timeout:?}: {:?}; queue: incoming {:?} active {:?} deferred {:?}",
            missing.len(),
            ids.len(),
            missing.iter().take(20).collect::<Vec<_>>(),
            inst.queue_files("incoming").len(),
            inst.queue_files("active").len(),
            inst.queue_files("deferred").len(),
        );
    }
    last
}

/// Runs `postern init --dev DIR --any-port` (plus `args`) in a new
/// temporary directory without starting anything; returns the guard of
/// the temporary directory and DIR.
pub fn init_dir(args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new().prefix("postern-test-").tempdir().expect("tempdir");
    let dir = tmp.path().join("inst");
    let out = Command::new(bin("postern"))
        .args(["init", "--dev"])
        .arg(&dir)
        .arg("--any-port")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "postern init: {}", String::from_utf8_lossy(&out.stderr));
    (tmp, dir)
}

/// A queue id that [`QueueId`](mail_types) would accept, for files a test
/// drops into the queue by hand: 13 hex digits of microseconds, then
/// 4 of "pid" and 2 of counter.
pub fn fake_queue_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{micros:013X}FFFF01")
}

/// Points the instance in `dir` at a log file of its own, `dir/maillog`
/// (for `Options::before_start`, when a test reads the daemons' log).
pub fn log_to_file(dir: &Path) {
    let out = Command::new(bin("postconf"))
        .arg("-c")
        .arg(dir)
        .arg("-e")
        .arg(format!("maillog_file = {}", dir.join("maillog").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A TLS client handshake on (a clone of) `tcp`, trusting exactly
/// `cert_pem` and checking that it names `name`: what the SMTP and POP3
/// test clients do after STARTTLS/STLS or on an implicit-TLS port.
pub fn tls_handshake(
    tcp: &std::net::TcpStream,
    cert_pem: &str,
    name: &str,
) -> Result<
    mail_tls::rustls::StreamOwned<mail_tls::rustls::ClientConnection, std::net::TcpStream>,
    String,
> {
    let config =
        mail_tls::client_config_trusting(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    let server_name = mail_tls::rustls::pki_types::ServerName::try_from(name.to_owned())
        .map_err(|e| format!("{name}: {e}"))?;
    let conn =
        mail_tls::rustls::ClientConnection::new(config, server_name).map_err(|e| e.to_string())?;
    let sock = tcp.try_clone().map_err(|e| e.to_string())?;
    let mut tls = mail_tls::rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(tls)
}

/// `before_start` hook: the instance logs to a file and has no SMTP client
/// (the `smtp` unix service is taken out of master.toml), so remote mail
/// fails as an agent that is down, for tests of what qmgr does with a
/// dead destination.
pub fn log_to_file_without_smtp_client(dir: &Path) {
    log_to_file(dir);
    let path = dir.join("master.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let block = "[[service]]\nname = \"smtp\"\ntype = \"unix\"\n";
    let start = text.find(block).expect("master.toml has the smtp unix service");
    let end = text[start + block.len()..]
        .find("[[service]]")
        .map_or(text.len(), |i| start + block.len() + i);
    std::fs::write(&path, format!("{}{}", &text[..start], &text[end..])).unwrap();
}

/// A queue file in format version 1 (no checksums), the way a file from
/// before the checksums, damaged or forged, looks. Its envelope has the
/// fields of versions 1 and 2 (none of version 3's ESMTP facts), in
/// their order: the codec is positional, so a tuple encodes as they did.
pub fn v1_queue_file(envelope: &mail_queue::Envelope, content: &[u8]) -> Vec<u8> {
    let e = envelope;
    let old = (
        e.sender.as_ref().map(ToString::to_string).unwrap_or_default(),
        e.recipients
            .iter()
            .map(|r| (r.address.to_string(), r.original.clone()))
            .collect::<Vec<_>>(),
        e.arrival,
        &e.client,
        &e.origin,
        &e.attrs,
    );
    let env = stdx::codec::encode(&old).unwrap();
    let mut out = b"POSTERNQ\x00\x01".to_vec();
    out.extend_from_slice(&(env.len() as u32).to_be_bytes());
    out.extend_from_slice(&env);
    out.extend_from_slice(&(content.len() as u64).to_be_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(b"END\n");
    out
}
