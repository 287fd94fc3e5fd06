//! Item 1 of issue 2: `postern init --dev` writes a complete instance
//! (main.toml, master.toml, passwd, aliases, the tutorial's Maildir with
//! `.Enviados .Rascunhos .Lixeira .Spam`), `--user` adds users, and the
//! README's demo path (init, start, send, status, stop) works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tests::{alive, bin, init_dir, smtp, tutorial_message, wait_until};

fn assert_maildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        assert!(dir.join(sub).is_dir(), "{} has no {sub}/", dir.display());
    }
}

#[test]
fn init_writes_config_users_aliases_and_tutorial_maildir() {
    let (_tmp, dir) = init_dir(&["--user", "maria:segredo"]);
    for f in ["main.toml", "master.toml", "passwd", "aliases"] {
        assert!(dir.join(f).is_file(), "init did not write {f}");
    }
    let aliases = std::fs::read_to_string(dir.join("aliases")).unwrap();
    assert!(aliases.lines().any(|l| l.trim() == "root: suporte"), "aliases: {aliases}");
    let passwd = std::fs::read_to_string(dir.join("passwd")).unwrap();
    // The tutorial's user stays; --user adds more (issue 2, item 1).
    for user in ["suporte", "maria"] {
        let line = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap_or_else(|| panic!("no {user} in passwd:\n{passwd}"));
        // Dovecot passwd-file: user:{SCHEME}hash:uid:gid:gecos:home:shell:extra
        let fields: Vec<&str> = line.split(':').collect();
        assert!(fields.len() >= 6, "{line}");
        assert!(fields[1].starts_with('{'), "password field has no {{SCHEME}}: {line}");
        assert!(fields[2].parse::<u32>().is_ok() && fields[3].parse::<u32>().is_ok(), "{line}");
        let home = dir.join("home").join(user);
        assert_eq!(Path::new(fields[5]), home, "{line}");
        let md = home.join("Maildir");
        assert_maildir(&md);
        for folder in [".Enviados", ".Rascunhos", ".Lixeira", ".Spam"] {
            assert_maildir(&md.join(folder));
            assert!(md.join(folder).join("maildirfolder").is_file(), "{folder}/maildirfolder");
        }
    }
}

#[test]
fn maildirmake_makes_tutorial_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("Maildir");
    for p in [md.clone(), md.join(".Enviados")] {
        let out = Command::new(bin("maildirmake")).arg(&p).output().unwrap();
        assert!(out.status.success(), "maildirmake {}: {:?}", p.display(), out);
    }
    assert_maildir(&md);
    assert_maildir(&md.join(".Enviados"));
    assert!(md.join(".Enviados/maildirfolder").is_file());
}

/// Stops a daemonised instance even if the test panics.
struct Stopper(std::path::PathBuf);

impl Drop for Stopper {
    fn drop(&mut self) {
        let pid_file = self.0.join("queue/pid/master.pid");
        let pid =
            std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok());
        let _ = Command::new(bin("postern")).arg("-c").arg(&self.0).arg("stop").output();
        if let Some(pid) = pid
            && alive(pid)
        {
            for c in tests::children_of(pid) {
                tests::kill9(c);
            }
            tests::kill9(pid);
        }
    }
}

#[test]
fn readme_demo_start_send_status_stop() {
    let (_tmp, dir) = init_dir(&[]);
    let _stop = Stopper(dir.clone());
    let out = Command::new(bin("postern")).arg("-c").arg(&dir).arg("start").output().unwrap();
    assert!(out.status.success(), "postern start: {out:?}");
    let status = |json: bool| {
        let mut c = Command::new(bin("postern"));
        c.arg("-c").arg(&dir).arg("status");
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let report: mail_ipc::control::StatusReport =
        serde_json::from_slice(&status(true).stdout).expect("status --json");
    let addr = report
        .services
        .iter()
        .find(|s| s.name == "smtp")
        .and_then(|s| s.listen.first().cloned())
        .expect("smtpd listens");
    let master = report.master_pid;
    // Daemonised: a session of its own (no terminal's hangup reaches it),
    // and its pid in the pid file.
    assert_eq!(
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(master as i32))).unwrap().as_raw(),
        master as i32,
        "master is not a session leader"
    );
    let pid_file = std::fs::read_to_string(dir.join("queue/pid/master.pid")).unwrap();
    assert_eq!(pid_file.trim(), master.to_string());
    let mut c = smtp::Client::connect(&addr);
    c.expect("220 mail.postern.test ESMTP Postern");
    c.cmd("HELO mail.fiap.edu.br", 250);
    c.send_mail("root@postern.test", &["suporte@postern.test"], tutorial_message());
    c.cmd("QUIT", 221);
    let new = dir.join("home/suporte/Maildir/new");
    let got = wait_until(Duration::from_secs(20), || {
        (std::fs::read_dir(&new).map(|d| d.count()).unwrap_or(0) == 1).then_some(())
    });
    assert!(got.is_some(), "the demo message did not reach {}", new.display());
    let children = tests::children_of(master);
    let out = Command::new(bin("postern")).arg("-c").arg(&dir).arg("stop").output().unwrap();
    assert!(out.status.success(), "postern stop: {out:?}");
    let gone = wait_until(Duration::from_secs(10), || {
        (!alive(master) && children.iter().all(|p| !alive(*p))).then_some(())
    });
    assert!(gone.is_some(), "master {master} or workers {children:?} still running after stop");
    assert!(!status(false).status.success(), "status succeeds after stop");
}

/// Item 6 of issue 5: the "port 0 means any free port" note is printed
/// for `--any-port` (SMTP on port 0) and not for a fixed port.
#[test]
fn port_zero_note_only_for_port_zero() {
    let init = |args: &[&str]| {
        let tmp = tempfile::Builder::new().prefix("postern-test-").tempdir().unwrap();
        let dir = tmp.path().join("inst");
        let out = Command::new(bin("postern"))
            .args(["init", "--dev"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postern init {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let note = "port 0 means";
    let any = init(&["--any-port"]);
    let line = any
        .lines()
        .find(|l| l.trim_start().starts_with("SMTP:"))
        .unwrap_or_else(|| panic!("{any}"));
    assert!(line.contains("127.0.0.1:0") && line.contains(note), "{line}");
    // A fixed base the test never binds: init only writes it down.
    let fixed = init(&["--port-base", "41000"]);
    let line = fixed
        .lines()
        .find(|l| l.trim_start().starts_with("SMTP:"))
        .unwrap_or_else(|| panic!("{fixed}"));
    assert!(line.contains("127.0.0.1:41025"), "{line}");
    assert!(!fixed.contains(note), "note printed for a fixed port:\n{fixed}");
}
