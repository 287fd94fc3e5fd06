//! Issue 7: one smtpd serves more clients than the soft descriptor limit
//! it was started with. A shell or service manager commonly hands down a
//! soft RLIMIT_NOFILE of 1024 (here 256) with a much higher hard limit;
//! smtpd raises its soft limit to the hard one at start-up, so every
//! client up to `smtpd_process_connection_limit` gets its greeting instead
//! of waiting in the listen backlog while accept fails with EMFILE.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;
use tests::{Instance, Options};

/// The soft limit the instance is started with.
const STARTED_WITH: u64 = 256;
/// Clients held open at once: well above STARTED_WITH.
const CLIENTS: usize = 600;

fn one_smtpd(dir: &Path) {
    let path = dir.join("master.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for (i, block) in text.split("[[service]]").enumerate() {
        if i > 0 {
            out.push_str("[[service]]");
        }
        if block.contains("name = \"smtp\"") {
            let b: Vec<&str> = block
                .lines()
                .map(|l| if l.starts_with("maxproc") { "maxproc = 1" } else { l })
                .collect();
            out.push_str(&(b.join("\n") + "\n"));
        } else {
            out.push_str(block);
        }
    }
    std::fs::write(&path, out).unwrap();
}

#[test]
fn one_smtpd_serves_more_clients_than_its_inherited_soft_descriptor_limit() {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard < (CLIENTS as u64) * 2 + 200 {
        eprintln!(
            "skipped: hard RLIMIT_NOFILE {hard} is below what {CLIENTS} clients and their server need"
        );
        return;
    }
    // The instance (master, and through it smtpd) inherits the low soft
    // limit; this process takes its own back right after the start.
    setrlimit(Resource::RLIMIT_NOFILE, STARTED_WITH, hard).unwrap();
    let inst = Instance::start_with(Options {
        postconf: vec![
            format!("smtpd_process_connection_limit = {}", CLIENTS + 100),
            "smtpd_client_connection_count_limit = 0".into(),
        ],
        before_start: Some(one_smtpd),
        ..Options::default()
    });
    setrlimit(Resource::RLIMIT_NOFILE, soft.max(hard), hard).unwrap();
    let smtpds = inst.worker_pids("smtp");
    assert_eq!(smtpds.len(), 1, "{:?}", inst.status());
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", smtpds[0])).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();

    let addr = inst.addr("smtp");
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut greeting = String::new();
        let _ = r.read_line(&mut greeting);
        assert!(
            greeting.starts_with("220 "),
            "client {i} of {CLIENTS}: greeting {greeting:?} (smtpd {open_files})"
        );
        clients.push((s, r));
    }
    // All still served: each answers NOOP.
    for (i, (s, r)) in clients.iter_mut().enumerate() {
        s.write_all(b"NOOP\r\n").unwrap();
        let mut reply = String::new();
        let _ = r.read_line(&mut reply);
        assert!(reply.starts_with("250"), "client {i}: NOOP {reply:?}");
    }
    assert!(
        open_files.contains(&hard.to_string()),
        "smtpd runs with {open_files:?}, hard limit {hard}"
    );
}
