//! Issue 9's login/mail split, on an instance started by root with
//! `mail_owner = nobody`: the pop3 login process runs as nobody, the
//! pop3-mail process that serves a session runs as the mailbox owner
//! (every uid and gid, supplementary groups included), the files it
//! creates in the Maildir belong to that user, and a user whose uid is 0
//! is refused rather than served as root. master starts mail processes
//! only when a login needs one. As another user the test cannot change
//! uids: it says `skipped: ...` and checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use tests::pop3::Client;
use tests::{Instance, Options};

const UID: u32 = 4242;

fn ids(pid: u32, key: &str) -> Vec<u32> {
    let v = tests::proc_ids(pid, key);
    assert!(!v.is_empty(), "no {key} line for process {pid}");
    v
}

fn all_pids(inst: &Instance, service: &str) -> Vec<u32> {
    tests::all_worker_pids(&inst.status(), service)
}

fn prepare(dir: &Path) {
    let perm =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    perm(dir.parent().unwrap(), 0o755);
    perm(dir, 0o755);
    perm(&dir.join("home"), 0o755);
    // suporte becomes uid/gid 4242 (a passwd-file user needs no system
    // account), and owns its home.
    let passwd = std::fs::read_to_string(dir.join("passwd")).unwrap();
    let passwd: String = passwd
        .lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("suporte:") {
                // hash:uid:gid:gecos:home:shell:extra
                let id = UID.to_string();
                let mut f: Vec<&str> = rest.split(':').collect();
                f[1] = &id;
                f[2] = &id;
                format!("suporte:{}\n", f.join(":"))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.join("passwd"), passwd).unwrap();
    let out = std::process::Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}")])
        .arg(dir.join("home/suporte"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_mail_process_runs_as_the_mailbox_owner() {
    if !tests::is_root() {
        tests::skip("needs root to change uids (the test runner runs it as root)");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("a nobody account");
    let inst = Instance::start_with(Options {
        postconf: vec!["mail_owner = nobody".into()],
        users: vec!["outro:outro".into()],
        before_start: Some(prepare),
        ..Options::default()
    });
    assert!(all_pids(&inst, "pop3-mail").is_empty());
    inst.sendmail(&["suporte@postern.test"], "Subject: split\n\nas the user\n");
    inst.wait_for_mail("suporte", 1, Duration::from_secs(30));

    let mut c = Client::logged_in(&inst.addr("pop3"), "suporte", "suporte");
    c.ok("RETR 1");
    assert!(String::from_utf8_lossy(&c.body()).contains("as the user"));
    // The session is open: its mail process exists and is the user.
    let report = inst.status();
    for pid in tests::service_pids(&report, "pop3") {
        assert_eq!(ids(pid, "Uid:"), [nobody.uid.as_raw(); 4], "login process {pid}");
    }
    let mail = all_pids(&inst, "pop3-mail");
    let serving: Vec<u32> = mail.iter().copied().filter(|p| ids(*p, "Uid:")[0] == UID).collect();
    assert_eq!(serving.len(), 1, "mail processes {mail:?}");
    let pid = serving[0];
    assert_eq!(ids(pid, "Uid:"), [UID; 4]);
    assert_eq!(ids(pid, "Gid:"), [UID; 4]);
    assert_eq!(ids(pid, "Groups:"), [UID]);
    c.ok("QUIT");
    // What the mail process wrote in the Maildir is the user's.
    let md = inst.maildir("suporte");
    for f in ["postern-uidlist", "postern-pop3.lock"] {
        assert_eq!(std::fs::metadata(md.join(f)).unwrap().uid(), UID, "{f}");
    }
    let cur: Vec<_> = std::fs::read_dir(md.join("cur")).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(cur.len(), 1);
    assert!(cur[0].file_name().to_string_lossy().ends_with(":2,S"));
    assert!(
        tests::wait_until(Duration::from_secs(10), || (!tests::alive(pid)).then_some(())).is_some(),
        "the mail process outlived its session"
    );

    // outro has uid 0 here (init --dev gives users the invoking uid):
    // never served as root outside a root-owned development instance.
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    c.ok("USER outro");
    c.send("PASS outro");
    assert_eq!(c.line(), "-ERR [SYS/TEMP] Cannot open the mailbox, try again later.");
}
