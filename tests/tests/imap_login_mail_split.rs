//! Issue 10's login/mail split for IMAP, on an instance started by root
//! with `mail_owner = nobody`: the imap login process runs as nobody,
//! the imap-mail process serving a session runs as the mailbox owner
//! (uids, gids, supplementary groups), what it writes in the Maildir
//! (index, flag renames, APPENDed and CREATEd folders) belongs to that
//! user, it is started only on demand and exits with its session, and a
//! user whose uid is 0 is refused. As another user the test cannot
//! change uids: it says `skipped: ...` and checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use tests::imap::Client;
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
    assert!(all_pids(&inst, "imap-mail").is_empty());
    inst.sendmail(&["suporte@postern.test"], "Subject: split\n\nas the user\n");
    inst.wait_for_mail("suporte", 1, Duration::from_secs(30));

    let mut c = Client::login(&inst.addr("imap"), "suporte", "suporte");
    c.ok("a", "SELECT INBOX");
    let body = c.ok("b", "FETCH 1 BODY[TEXT]");
    assert!(body.contains("as the user"), "{body}");
    c.ok("c", "CREATE Projetos");
    c.send("d APPEND Projetos {10}");
    assert_eq!(c.line(), "+ OK");
    c.send_raw(b"appended\r\n\r\n");
    assert!(c.until("d").starts_with("d OK [APPENDUID "));
    let report = inst.status();
    for pid in tests::service_pids(&report, "imap") {
        assert_eq!(ids(pid, "Uid:"), [nobody.uid.as_raw(); 4], "login process {pid}");
    }
    let mail = all_pids(&inst, "imap-mail");
    let serving: Vec<u32> = mail.iter().copied().filter(|p| ids(*p, "Uid:")[0] == UID).collect();
    assert_eq!(serving.len(), 1, "mail processes {mail:?}");
    let pid = serving[0];
    assert_eq!(ids(pid, "Uid:"), [UID; 4]);
    assert_eq!(ids(pid, "Gid:"), [UID; 4]);
    assert_eq!(ids(pid, "Groups:"), [UID]);
    c.ok("e", "LOGOUT");
    let md = inst.maildir("suporte");
    assert_eq!(std::fs::metadata(md.join("postern-uidlist")).unwrap().uid(), UID);
    let cur: Vec<_> = std::fs::read_dir(md.join("cur")).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(cur.len(), 1);
    assert!(cur[0].file_name().to_string_lossy().ends_with(":2,S"));
    assert_eq!(cur[0].metadata().unwrap().uid(), UID);
    let folder = md.join(".Projetos");
    assert_eq!(std::fs::metadata(&folder).unwrap().uid(), UID);
    for e in std::fs::read_dir(folder.join("cur")).unwrap() {
        assert_eq!(e.unwrap().metadata().unwrap().uid(), UID);
    }
    assert!(
        tests::wait_until(Duration::from_secs(10), || (!tests::alive(pid)).then_some(())).is_some(),
        "the mail process outlived its session"
    );

    // outro has uid 0 here (init --dev gives users the invoking uid):
    // never served as root outside a root-owned development instance.
    let mut c = Client::connect(&inst.addr("imap"));
    c.line();
    let r = c.run("a", "LOGIN outro outro");
    assert!(r.starts_with("a OK [CAPABILITY "), "{r}");
    assert_eq!(
        c.line(),
        "* BYE Internal error occurred. Refer to server log for more information."
    );
    assert!(c.closed());
}
