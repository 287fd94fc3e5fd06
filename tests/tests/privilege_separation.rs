//! A system-install layout of privileges, on a test instance started by
//! root with `mail_owner = nobody`: smtpd, pickup and qmgr run as nobody,
//! local-delivery stays root (it switches to each recipient), so does
//! authd (pam_unix reads /etc/shadow only for root), master gives
//! the queue directories and service sockets to mail_owner, and mail from
//! SMTP and from sendmail is delivered. As another user this test cannot
//! change uids: it says `skipped: ...` and checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;
use tests::{Instance, Options};

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    // Real, effective, saved, filesystem: all must have dropped.
    let ids: Vec<u32> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "pid {pid}: mixed uids {ids:?}");
    ids[0]
}

#[test]
fn workers_run_as_mail_owner_and_mail_flows() {
    if !tests::is_root() {
        tests::skip("needs root to change uids (the test runner runs it as root)");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("a nobody account");
    let inst = Instance::start_with(Options {
        postconf: vec!["mail_owner = nobody".into()],
        before_start: Some(|dir: &std::path::Path| {
            // nobody must reach the instance and read its users; in a
            // system install these are /etc/postern and the passwd database.
            let perm = |p: &std::path::Path, m: u32| {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
            };
            perm(dir.parent().unwrap(), 0o755);
            perm(dir, 0o755);
            perm(&dir.join("passwd"), 0o644);
        }),
        ..Options::default()
    });
    let report = inst.status();
    for s in &report.services {
        for w in &s.workers {
            // local-delivery switches to each recipient; authd stays root
            // for pam_unix, which reads /etc/shadow only for root.
            let want = if s.name == "local" || s.name == "authd" { 0 } else { nobody.uid.as_raw() };
            assert_eq!(uid_of(w.pid), want, "service {} pid {}", s.name, w.pid);
        }
    }
    for dir in ["incoming", "active", "deferred", "tmp", "status", "private", "public", "maildrop"]
    {
        let meta = std::fs::metadata(inst.queue().join(dir)).unwrap();
        assert_eq!(meta.uid(), nobody.uid.as_raw(), "queue/{dir} owner");
    }
    assert_eq!(
        std::fs::metadata(inst.queue().join("private/local")).unwrap().uid(),
        nobody.uid.as_raw()
    );

    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        "Subject: as nobody\r\n\r\nvia smtpd\r\n",
    );
    c.cmd("QUIT", 221);
    inst.sendmail(&["suporte@postern.test"], "Subject: sendmail\n\nvia pickup\n");
    let texts = {
        inst.wait_for_mail("suporte", 2, Duration::from_secs(30));
        inst.new_mail_texts("suporte")
    };
    assert!(
        texts.iter().any(|t| t.contains("via smtpd"))
            && texts.iter().any(|t| t.contains("via pickup")),
        "{texts:?}"
    );
}
