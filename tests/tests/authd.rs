//! authd end to end: a real instance's `private/authd`, asked through
//! `mail_ipc::auth::Client` as smtpd, pop3d and imapd ask it.
//!
//! - passwd-file users whose hashes `postern pw` made (yescrypt by
//!   default, SHA512-CRYPT from standard input): the right password
//!   returns uid, gid and home; a wrong one fails; the delay grows with
//!   each failure from one address (1 s, 2 s, 4 s); another address is
//!   not delayed; the failures are logged with service, user and address
//!   and never the password.
//! - As root only: a system user made by the test (`useradd`, `chpasswd
//!   -c YESCRYPT`, removed at the end even on failure) through PAM, with
//!   authd running as root; then `authd_first_valid_uid` above its uid
//!   refuses it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use mail_ipc::auth::{AuthReply, AuthRequest, Client, Service};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tests::{Instance, Options, bin};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn req(user: &str, password: &str, client: &str) -> AuthRequest {
    AuthRequest {
        service: Service::Smtp,
        user: user.into(),
        password: password.into(),
        client: client.parse().unwrap(),
        tls: true,
    }
}

fn socket(inst: &Instance) -> PathBuf {
    inst.queue().join("private/authd")
}

/// `postern pw ARGS` with `stdin`, its one line of output.
fn postern_pw(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(bin("postern"))
        .arg("pw")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "postern pw {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

/// Gives `user`'s passwd-file line the hash `hash`.
fn set_hash(dir: &Path, user: &str, hash: &str) {
    let path = dir.join("passwd");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once(':') {
            Some((name, rest)) if name == user => {
                let rest = rest.split_once(':').unwrap().1;
                out.push_str(&format!("{name}:{hash}:{rest}\n"));
            }
            _ => out.push_str(&format!("{line}\n")),
        }
    }
    std::fs::write(&path, out).unwrap();
}

fn passwd_file_instance(dir: &Path) {
    tests::log_to_file(dir);
    let yescrypt = postern_pw(&["-p", "segredo"], "");
    assert!(yescrypt.starts_with("{YESCRYPT}$y$j9T$"), "{yescrypt}");
    set_hash(dir, "maria", &yescrypt);
    let sha = postern_pw(&["-s", "SHA512-CRYPT"], "outro segredo\n");
    assert!(sha.starts_with("{SHA512-CRYPT}$6$"), "{sha}");
    set_hash(dir, "ana", &sha);
}

#[test]
fn passwd_file_users_and_growing_delays() {
    let inst = Instance::start_with(Options {
        users: vec!["maria:placeholder".into(), "ana:placeholder".into()],
        before_start: Some(passwd_file_instance),
        ..Options::default()
    });
    let me = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    runtime().block_on(async {
        let mut c = Client::new(socket(&inst));
        let AuthReply::Ok(u) = c.authenticate(&req("Maria", "segredo", "192.0.2.1")).await.unwrap()
        else {
            panic!("maria's yescrypt password was refused")
        };
        assert_eq!((u.user.as_str(), u.uid, u.gid), ("maria", me, gid));
        assert_eq!(u.home, inst.dir.join("home/maria"));
        let reply = c.authenticate(&req("ana", "outro segredo", "192.0.2.1")).await.unwrap();
        assert!(matches!(reply, AuthReply::Ok(ref u) if u.user == "ana"), "{reply:?}");

        // Failures from one address: each waits longer (min(2^(n-1), 15) s).
        for (n, user) in [(1u64, "maria"), (2, "ana"), (3, "nobody-at-all")] {
            let t = Instant::now();
            let reply = c.authenticate(&req(user, "wrong", "192.0.2.1")).await.unwrap();
            let took = t.elapsed();
            assert_eq!(reply, AuthReply::Fail, "{user}");
            let rule = Duration::from_secs(1 << (n - 1));
            assert!(took >= rule, "failure {n} answered after {took:?}, before {rule:?}");
            assert!(took < rule + Duration::from_secs(10), "failure {n} took {took:?}");
        }
        // Another address is not held back by the first one's failures.
        let mut other = Client::new(socket(&inst));
        let t = Instant::now();
        let reply = other.authenticate(&req("ana", "outro segredo", "198.51.100.7")).await.unwrap();
        assert!(matches!(reply, AuthReply::Ok(_)), "{reply:?}");
        assert!(t.elapsed() < Duration::from_secs(1), "the other address waited {:?}", t.elapsed());
    });
    let log = std::fs::read_to_string(inst.dir.join("maillog")).unwrap();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("postern/authd[") && l.contains("authentication failed"))
        .collect();
    assert_eq!(failed.len(), 3, "{log}");
    assert!(
        failed[0].contains(
            "warning: smtp authentication failed: user=<maria>, rhost=[192.0.2.1], tls=yes, \
             db=passwd-file, reason=password mismatch, delay=1s"
        ),
        "{}",
        failed[0]
    );
    assert!(failed[2].contains("reason=unknown user, delay=4s"), "{}", failed[2]);
    assert!(
        log.lines().any(|l| l
            .contains("smtp authentication succeeded: user=<ana>, rhost=[198.51.100.7], tls=yes")),
        "{log}"
    );
    assert!(!log.contains("segredo"), "a password reached the log");
}

/// Removes the test's system user when dropped, even after a failure.
struct SystemUser(&'static str);

impl SystemUser {
    fn create(name: &'static str, password: &str) -> Option<SystemUser> {
        let _ = Command::new("userdel").arg(name).output();
        let out = Command::new("useradd")
            .args(["-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name])
            .output()
            .ok()?;
        if !out.status.success() {
            tests::skip(&format!("useradd failed: {}", String::from_utf8_lossy(&out.stderr)));
            return None;
        }
        let user = SystemUser(name);
        use std::io::Write;
        let mut child = Command::new("chpasswd")
            .args(["-c", "YESCRYPT"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{name}:{password}").unwrap();
        assert!(child.wait().unwrap().success(), "chpasswd failed");
        Some(user)
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(self.0).output();
    }
}

#[test]
fn system_user_through_pam() {
    if !tests::is_root() {
        tests::skip("needs root to create a system user and to run authd as root for pam_unix");
        return;
    }
    if !tests::have_tool("useradd") || !tests::have_tool("chpasswd") {
        tests::skip("useradd or chpasswd is not installed");
        return;
    }
    let Some(_user) = SystemUser::create("pstauth1", "Pam-Segredo 1") else { return };
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    let line = shadow.lines().find(|l| l.starts_with("pstauth1:")).unwrap();
    assert!(line.starts_with("pstauth1:$y$"), "not a yescrypt hash: {line}");
    let pw = nix::unistd::User::from_name("pstauth1").unwrap().unwrap();

    let inst = Instance::start_with(Options {
        // Empty passwd_file: system users, checked through PAM.
        postconf: vec!["passwd_file =".into()],
        before_start: Some(tests::log_to_file),
        ..Options::default()
    });
    let authd = inst.worker_pids("authd");
    assert_eq!(authd.len(), 1);
    let status = std::fs::read_to_string(format!("/proc/{}/status", authd[0])).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    );
    let rt = runtime();
    let mut c = Client::new(socket(&inst));
    rt.block_on(async {
        let reply = c.authenticate(&req("pstauth1", "Pam-Segredo 1", "192.0.2.9")).await.unwrap();
        let AuthReply::Ok(u) = reply else { panic!("PAM refused the right password: {reply:?}") };
        assert_eq!((u.user.as_str(), u.uid, u.gid), ("pstauth1", pw.uid.as_raw(), pw.gid.as_raw()));
        assert_eq!(u.home, PathBuf::from("/nonexistent"));
        let reply = c.authenticate(&req("pstauth1", "wrong", "192.0.2.9")).await.unwrap();
        assert_eq!(reply, AuthReply::Fail);
    });
    let before = inst.status();
    inst.postconf(&["-e", "authd_first_valid_uid = 2000000000"]);
    inst.postern(&["reload"]);
    inst.wait_workers_replaced(&before, &["authd"]);
    rt.block_on(async {
        // The old connection was closed by the draining authd; the client
        // reconnects by itself.
        let reply = c.authenticate(&req("pstauth1", "Pam-Segredo 1", "192.0.2.10")).await.unwrap();
        assert_eq!(reply, AuthReply::Fail, "a uid below authd_first_valid_uid logged in");
    });
    let log = std::fs::read_to_string(inst.dir.join("maillog")).unwrap();
    assert!(
        log.lines().any(|l| l
            .contains("smtp authentication succeeded: user=<pstauth1>, rhost=[192.0.2.9]")
            && l.contains("db=pam")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l
            .contains("warning: smtp authentication failed: user=<pstauth1>, rhost=[192.0.2.9]")
            && l.contains("reason=pam_authenticate: Authentication failure")),
        "{log}"
    );
    assert!(log.contains("is below authd_first_valid_uid 2000000000"), "{log}");
    assert!(!log.contains("Pam-Segredo"), "a password reached the log");
}
