//! A new Maildir or Maildir++ folder must survive a crash right after it
//! is made: `maildirmake` (the same creation code as `postern init`) and
//! the first delivery into a user's new Maildir fsync every directory
//! they create and the directory that holds its entry. Observed from
//! outside with `strace -e trace=mkdir,openat,fsync` (on the command, and
//! attached to the running local-delivery workers): this proves the
//! system calls are made, in that order, not that the file system
//! honours them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One system call of interest, in the order strace saw them.
#[derive(Debug)]
enum Call {
    Mkdir(PathBuf),
    Fsync(PathBuf),
}

/// Runs `maildirmake ARGS` under strace; returns its mkdir and fsync
/// calls, or `None` when strace cannot run here.
fn traced(args: &[&Path], flag: Option<&str>, log: &Path) -> Option<Vec<Call>> {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=mkdir,mkdirat,open,openat,fsync,fdatasync", "-o"])
        .arg(log)
        .arg(tests::bin("maildirmake"));
    if let Some(f) = flag {
        cmd.args(["-f", f]);
    }
    cmd.args(args);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: cannot run strace: {e}");
            return None;
        }
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if !out.status.success() && text.is_empty() {
        eprintln!("skipped: strace does not work here: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    assert!(out.status.success(), "maildirmake failed: {out:?}\n{text}");
    Some(parse(&text))
}

/// The mkdir and fsync calls of an strace log (`-f`: lines start with the
/// pid), each fsync resolved to the path its fd was opened on.
fn parse(text: &str) -> Vec<Call> {
    let mut fds: HashMap<(String, String), PathBuf> = HashMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        let Some((call, result)) = rest.rsplit_once(" = ") else { continue };
        let result = result.split_whitespace().next().unwrap_or("");
        let quoted = || call.split('"').nth(1).map(PathBuf::from);
        if call.starts_with("mkdir") && result == "0" {
            calls.push(Call::Mkdir(quoted().unwrap()));
        } else if call.starts_with("open") && !result.starts_with('-') {
            if let Some(p) = quoted() {
                fds.insert((pid.to_owned(), result.to_owned()), p);
            }
        } else if (call.starts_with("fsync(") || call.starts_with("fdatasync(")) && result == "0" {
            let fd = call.split(['(', ')']).nth(1).unwrap_or("");
            if let Some(p) = fds.get(&(pid.to_owned(), fd.to_owned())) {
                calls.push(Call::Fsync(p.clone()));
            }
        }
    }
    calls
}

/// Every directory made is fsynced after it was made, and so is its
/// parent; returns the directories made.
fn check(calls: &[Call]) -> Vec<PathBuf> {
    let mut made = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let Call::Mkdir(dir) = c else { continue };
        made.push(dir.clone());
        let synced_later =
            |p: &Path| calls[i + 1..].iter().any(|c| matches!(c, Call::Fsync(s) if s == p));
        assert!(synced_later(dir), "{} is never fsynced after its mkdir: {calls:?}", dir.display());
        let parent = dir.parent().unwrap();
        assert!(
            synced_later(parent),
            "the parent {} of the new {} is never fsynced after the mkdir: {calls:?}",
            parent.display(),
            dir.display()
        );
    }
    made
}

#[test]
fn maildirmake_fsyncs_new_directories_and_their_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("Maildir");
    let Some(calls) = traced(&[&md], None, &tmp.path().join("make.log")) else { return };
    let made = check(&calls);
    assert_eq!(made, [md.clone(), md.join("tmp"), md.join("new"), md.join("cur")], "{calls:?}");

    let Some(calls) = traced(&[&md], Some("Enviados"), &tmp.path().join("folder.log")) else {
        return;
    };
    let made = check(&calls);
    let folder = md.join(".Enviados");
    assert_eq!(made, [folder.clone(), folder.join("tmp"), folder.join("new"), folder.join("cur")]);
    // The folder's `maildirfolder` marker is in before its last fsync.
    assert!(folder.join("maildirfolder").is_file());
}

/// A user whose home does not exist yet: the first delivery makes
/// `home/nova/Maildir/{tmp,new,cur}`.
fn add_new_user(dir: &Path) {
    let path = dir.join("passwd");
    let mut passwd = std::fs::read_to_string(&path).unwrap();
    let suporte = passwd.lines().find(|l| l.starts_with("suporte:")).unwrap().to_owned();
    let f: Vec<&str> = suporte.split(':').collect();
    let home = dir.join("home/nova");
    passwd.push_str(&format!("nova:{{PLAIN}}x:{}:{}::{}::\n", f[2], f[3], home.display()));
    std::fs::write(&path, passwd).unwrap();
}

#[test]
fn first_delivery_fsyncs_the_new_maildir_and_its_parents() {
    let inst = tests::Instance::start_with(tests::Options {
        before_start: Some(add_new_user),
        ..tests::Options::default()
    });
    let workers = inst.wait_service_ready("local", &[]);
    let log = inst.dir.join("strace.log");
    let calls = "mkdir,mkdirat,open,openat,fsync,fdatasync";
    let Some(strace) = tests::Strace::attach(&workers, calls, &log) else { return };
    let mut c = inst.smtp();
    c.send_mail("suporte@postern.test", &["nova@postern.test"], "Subject: hi\r\n\r\nnew\r\n");
    c.cmd("QUIT", 221);
    inst.wait_for_mail("nova", 1, std::time::Duration::from_secs(60));
    let text = strace.finish();
    let calls = parse(&text);
    let made = check(&calls);
    let md = inst.dir.join("home/nova/Maildir");
    for dir in
        [inst.dir.join("home/nova"), md.clone(), md.join("tmp"), md.join("new"), md.join("cur")]
    {
        assert!(made.contains(&dir), "{} was not made by the delivery: {calls:?}", dir.display());
    }
}

/// Lets a stopped worker go on even when the test fails, so that the
/// instance can shut down.
struct Continue(String);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

/// One local-delivery worker, so that qmgr's parallel requests wait in
/// its backlog and come to it as batches.
fn one_local_worker(dir: &Path) {
    let path = dir.join("master.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("command = \"local-delivery\"").expect("local service in master.toml");
    let start = text[..at].rfind("[[service]]").unwrap();
    let block: String = text[start..at]
        .lines()
        .map(|l| if l.starts_with("maxproc") { "maxproc = 1" } else { l })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(block.contains("maxproc = 1\n"), "{block}");
    std::fs::write(&path, format!("{}{block}{}", &text[..start], &text[at..])).unwrap();
}

/// A burst of N messages to one user is made durable with fewer than N
/// fsyncs of its `new/`: the deliveries of one batch share one (group
/// commit), and every message still arrives. (One fsync per message, as
/// before batches, fails this.)
#[test]
fn a_burst_to_one_maildir_shares_new_fsyncs() {
    const N: usize = 30;
    let inst = tests::Instance::start_with(tests::Options {
        before_start: Some(one_local_worker),
        ..tests::Options::default()
    });
    let workers = inst.wait_service_ready("local", &[]);
    assert_eq!(workers.len(), 1, "{workers:?}");
    let log = inst.dir.join("strace.log");
    let Some(strace) =
        tests::Strace::attach(&workers[..1], "open,openat,fsync,fdatasync,setresuid", &log)
    else {
        return;
    };
    // The worker is held while the messages arrive, so that qmgr's
    // parallel requests for them wait in its backlog and come as batches
    // whatever the machine's speed.
    let worker = workers[0].to_string();
    assert!(Command::new("kill").args(["-STOP", &worker]).status().unwrap().success());
    let _cont = Continue(worker.clone());
    let senders: Vec<_> = (0..3)
        .map(|s| {
            let mut c = inst.smtp();
            std::thread::spawn(move || {
                for i in 0..N / 3 {
                    let id = format!("burst-{s}-{i}@postern.test");
                    let text = tests::numbered_message(&id, "suporte@postern.test");
                    c.send_mail("load@postern.test", &["suporte@postern.test"], &text);
                }
                c.cmd("QUIT", 221);
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(Command::new("kill").args(["-CONT", &worker]).status().unwrap().success());
    inst.wait_for_mail("suporte", N, std::time::Duration::from_secs(120));
    let text = strace.finish();
    let new = inst.maildir("suporte").join("new");
    let fsyncs = parse(&text).iter().filter(|c| matches!(c, Call::Fsync(p) if *p == new)).count();
    assert!(fsyncs >= 1, "new/ never fsynced:\n{text}");
    assert!(fsyncs < N, "{fsyncs} fsyncs of {} for {N} messages", new.display());
    // A user without a .forward keeps one identity from its .forward
    // lookup to its Maildir write: one switch and one return per message
    // (there were two of each).
    let switches = text.lines().filter(|l| l.contains("setresuid(")).count();
    assert!(switches <= 2 * N, "{switches} setresuid calls for {N} messages");
    eprintln!("{fsyncs} fsyncs of new/ and {switches} setresuid calls for {N} messages");
}

/// qmgr's status logs are group-committed too: deferrals that come in
/// together share one fsync of `status/` for their new logs, and every
/// message is still deferred with its log. Remote mail waits here (no
/// smtp service), so each message gets a new status log; qmgr is held
/// while the messages arrive so that their results come as one burst
/// whatever the machine's speed. (One fsync of `status/` per new log, as
/// before, fails this.)
#[test]
fn deferrals_in_one_burst_share_status_fsyncs() {
    const N: usize = 30;
    let inst = tests::Instance::start();
    let qmgr = inst.wait_service_ready("qmgr", &[]);
    let log = inst.dir.join("strace-qmgr.log");
    let Some(strace) = tests::Strace::attach(&qmgr[..1], "open,openat,fsync,fdatasync", &log)
    else {
        return;
    };
    let pid = qmgr[0].to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let cont = Continue(pid.clone());
    let mut c = inst.smtp();
    for i in 0..N {
        let id = format!("far-{i}@postern.test");
        let text = tests::numbered_message(&id, "far@remote.example");
        c.send_mail("load@postern.test", &["far@remote.example"], &text);
    }
    c.cmd("QUIT", 221);
    drop(cont);
    let status = inst.queue().join("status");
    let deferred = inst.queue().join("deferred");
    let count = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    let t0 = std::time::Instant::now();
    while (count(&status) < N || count(&deferred) < N) && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!((count(&status), count(&deferred)), (N, N), "every message deferred with its log");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = strace.finish();
    let fsyncs =
        parse(&text).iter().filter(|c| matches!(c, Call::Fsync(p) if *p == status)).count();
    assert!(fsyncs >= 1, "status/ never fsynced:\n{text}");
    assert!(fsyncs < N, "{fsyncs} fsyncs of {} for {N} new status logs", status.display());
    eprintln!("{fsyncs} fsyncs of status/ for {N} new status logs");
}
