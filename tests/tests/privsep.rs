//! Privilege separation on a running system (issue 11): an instance
//! started by root with a real mail_owner account and two real local
//! users, all made for this test (and removed after it, also when it
//! fails). master is the only root process besides local-delivery and
//! authd (and pop3d's/imapd's mail processes before their login);
//! smtpd, qmgr, pickup, smtp, anvil and the login services run as
//! mail_owner (every uid of /proc/PID/status); a pop3d and an imapd
//! mail process run as the user who logged in; queue files are 0600
//! mail_owner; one user cannot read the other's queued mail or Maildir
//! (tried as that user); and the daemons' counts still reach master's
//! metrics endpoint after the uid changes. As another user this test says `skipped: ...`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use tests::{Instance, Options};

/// The accounts' names: unique per run, so parallel runs do not meet.
fn names() -> &'static (String, String, String) {
    static NAMES: OnceLock<(String, String, String)> = OnceLock::new();
    NAMES.get_or_init(|| {
        let n = std::process::id() % 100_000;
        (format!("pstown{n}"), format!("pstua{n}"), format!("pstub{n}"))
    })
}

/// Removes the accounts when the test ends, however it ends.
struct Accounts(Vec<String>);

impl Drop for Accounts {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("userdel").arg(name).output();
            let _ = Command::new("groupdel").arg(name).output();
        }
    }
}

fn useradd(name: &str, system: bool) {
    let mut c = Command::new("useradd");
    c.args(["-M", "-U", "-s", "/usr/sbin/nologin", "-d", "/nonexistent"]);
    if system {
        c.arg("-r");
    }
    let out = c.arg(name).output().expect("run useradd");
    assert!(out.status.success(), "useradd {name}: {}", String::from_utf8_lossy(&out.stderr));
}

fn ids(name: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(name).unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

fn uids(pid: u32) -> Vec<u32> {
    tests::proc_ids(pid, "Uid:")
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

/// Gives the passwd-file users the accounts' uids and their homes to them.
fn prepare(dir: &Path) {
    let (_, a, b) = names();
    let perm =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    perm(dir.parent().unwrap(), 0o755);
    perm(dir, 0o755);
    perm(&dir.join("home"), 0o755);
    perm(&dir.join("passwd"), 0o644);
    let text = std::fs::read_to_string(dir.join("passwd")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut f: Vec<String> = line.split(':').map(str::to_owned).collect();
        if f.len() > 3 && (f[0] == *a || f[0] == *b) {
            let (uid, gid) = ids(&f[0]);
            f[2] = uid.to_string();
            f[3] = gid.to_string();
            let home = dir.join("home").join(&f[0]);
            let out = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&home)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            perm(&home, 0o700);
        }
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    std::fs::write(dir.join("passwd"), out).unwrap();
}

/// Runs `cat PATH` as `user`; its stderr, or `None` when it could read.
fn cat_as(user: &str, path: &Path) -> Option<String> {
    let (uid, gid) = ids(user);
    let out = Command::new("setpriv")
        .args(["--reuid", &uid.to_string(), "--regid", &gid.to_string(), "--clear-groups", "cat"])
        .arg(path)
        .output()
        .unwrap();
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn privileges_on_a_running_system() {
    if !tests::is_root() {
        tests::skip(
            "needs root to make accounts and change uids (the test runner runs it as root)",
        );
        return;
    }
    let (owner, a, b) = names();
    let _accounts = Accounts(vec![owner.clone(), a.clone(), b.clone()]);
    for n in [owner, a, b] {
        let _ = Command::new("userdel").arg(n).output();
        let _ = Command::new("groupdel").arg(n).output();
    }
    useradd(owner, true);
    useradd(a, false);
    useradd(b, false);
    let (owner_uid, _) = ids(owner);
    let (a_uid, _) = ids(a);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let inst = Instance::start_with(Options {
        users: vec![format!("{a}:pw-{a}"), format!("{b}:pw-{b}")],
        postconf: vec![format!("mail_owner = {owner}"), format!("metrics_listen = {metrics}")],
        before_start: Some(prepare),
        ..Options::default()
    });

    // Every process of the instance, by service.
    let master = inst.master_pid();
    assert_eq!(uids(master), [0, 0, 0, 0], "master");
    let report = inst.status();
    let mut seen = 0;
    for s in &report.services {
        for w in &s.workers {
            let want = match s.name.as_str() {
                "local" | "authd" => 0,
                _ => owner_uid,
            };
            assert_eq!(
                uids(w.pid),
                [want; 4],
                "service {} pid {} ({})",
                s.name,
                w.pid,
                comm(w.pid)
            );
            seen += 1;
        }
    }
    assert!(seen >= 8, "{report:?}");
    // No other child of master runs as root.
    for pid in tests::children_of(master) {
        let service = report.services.iter().find(|s| s.workers.iter().any(|w| w.pid == pid));
        let name = service.map_or("?", |s| s.name.as_str());
        if uids(pid).contains(&0) {
            assert!(
                matches!(name, "local" | "authd"),
                "root child {pid} ({}) of service {name}",
                comm(pid)
            );
        }
    }

    // Mail for both users, and one for elsewhere that stays queued.
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &[&format!("{a}@postern.test")],
        "Subject: for a\r\n\r\nsecret of a\r\n",
    );
    c.send_mail(
        "root@postern.test",
        &[&format!("{b}@postern.test")],
        "Subject: for b\r\n\r\nsecret of b\r\n",
    );
    let queued = c.send_mail(
        "root@postern.test",
        &["far@example.org"],
        "Subject: away\r\n\r\nqueued secret\r\n",
    );
    c.cmd("QUIT", 221);
    let id = queued.split_whitespace().last().unwrap().to_owned();
    let a_mail = inst.wait_for_mail(a, 1, Duration::from_secs(30));
    inst.wait_for_mail(b, 1, Duration::from_secs(30));
    let file = tests::wait_until(Duration::from_secs(20), || {
        inst.queue_files("deferred").into_iter().find(|p| p.to_string_lossy().contains(&id))
    })
    .expect("the message for elsewhere is deferred");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (owner_uid, 0o600), "{}", file.display());
    for state in ["incoming", "active", "deferred", "hold", "corrupt"] {
        for f in inst.queue_files(state) {
            let m = std::fs::metadata(&f).unwrap();
            assert_eq!((m.uid(), m.mode() & 0o077), (owner_uid, 0), "{}", f.display());
        }
    }
    // Delivered as the recipient, readable by the recipient only.
    let m = std::fs::metadata(&a_mail[0]).unwrap();
    assert_eq!(m.uid(), a_uid, "{}", a_mail[0].display());
    assert!(cat_as(a, &a_mail[0]).is_none(), "{a} reads its own mail");
    let denied = cat_as(b, &a_mail[0]).expect("another user reads the Maildir");
    assert!(denied.contains("Permission denied"), "{denied}");
    let denied = cat_as(b, &file).expect("a local user reads the queue");
    assert!(denied.contains("Permission denied"), "{denied}");
    let denied = cat_as(a, &file).expect("a local user reads the queue");
    assert!(denied.contains("Permission denied"), "{denied}");

    // The daemons still report their counts after changing uids.
    let counted = tests::wait_until(Duration::from_secs(10), || {
        let out = Command::new("curl")
            .args(["-s", &format!("http://{metrics}/metrics")])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let want = [
            "postern_messages_received_total{service=\"smtp\",program=\"smtpd\"} 3",
            "postern_messages_delivered_total{service=\"local\",program=\"local\"} 2",
            "postern_messages_deferred_total{service=\"smtp\",program=\"smtp\"} 1",
        ];
        want.iter().all(|w| text.lines().any(|l| l == *w)).then_some(())
    });
    assert!(counted.is_some(), "metrics of a privileged instance");

    // maildrop/ takes any user's mail but shows nobody the names in it.
    let (b_uid, b_gid) = ids(b);
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            &b_uid.to_string(),
            "--regid",
            &b_gid.to_string(),
            "--clear-groups",
            "ls",
        ])
        .arg(inst.queue().join("maildrop"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{b} lists maildrop/: {out:?}");

    // A POP3 and an IMAP session: the mail process becomes the user, the
    // login process stays mail_owner.
    let mut p = tests::pop3::Client::connect(&inst.addr("pop3"));
    p.line();
    p.send(&format!("USER {a}"));
    p.line();
    p.send(&format!("PASS pw-{a}"));
    let ok = p.line();
    assert!(ok.starts_with("+OK"), "{ok}");
    let pop_mail = tests::wait_until(Duration::from_secs(10), || {
        let w = tests::all_worker_pids(&inst.status(), "pop3-mail");
        w.into_iter().find(|pid| uids(*pid) == [a_uid; 4])
    });
    assert!(pop_mail.is_some(), "no pop3-mail process runs as {a}: {:?}", inst.status());
    for pid in tests::all_worker_pids(&inst.status(), "pop3") {
        assert_eq!(uids(pid), [owner_uid; 4], "pop3 login process {pid}");
    }
    p.send("STAT");
    assert!(p.line().starts_with("+OK 1 "), "the user's one message");
    p.send("QUIT");
    p.line();

    let mut i = tests::imap::Client::login(&inst.addr("imap"), a, &format!("pw-{a}"));
    let imap_mail = tests::wait_until(Duration::from_secs(10), || {
        let w = tests::all_worker_pids(&inst.status(), "imap-mail");
        w.into_iter().find(|pid| uids(*pid) == [a_uid; 4])
    });
    assert!(imap_mail.is_some(), "no imap-mail process runs as {a}: {:?}", inst.status());
    for pid in tests::all_worker_pids(&inst.status(), "imap") {
        assert_eq!(uids(pid), [owner_uid; 4], "imap login process {pid}");
    }
    i.send("Z LOGOUT");
    drop(i);
    drop(inst);
}
