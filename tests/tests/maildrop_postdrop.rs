//! A system install's `maildrop/` (mail_owner:setgid_group 1730) and the
//! setgid `postdrop`: a local user's `sendmail` queues through postdrop,
//! the file is the user's, group setgid_group, mode 0640, and a second
//! local user can neither list maildrop/ nor read the submission by its
//! name, while a process of that group (pickup's) can. Before postdrop,
//! the file was 0644 in a 1733 directory and anyone could read it by name.
//!
//! Root only (it makes files of other users and a setgid program). The
//! group is Debian's `mail` group, which neither `nobody` nor `daemon` is
//! in, standing in for `postdrop`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const SUBMITTER: u32 = 65534; // nobody
const OTHER: u32 = 1; // daemon

fn run_as(uid: u32, gid: u32, cmd: &mut Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn second_user_cannot_read_a_submission() {
    if !tests::is_root() {
        tests::skip("needs root: makes a setgid postdrop and runs commands as other users");
        return;
    }
    let Some(group) = nix::unistd::Group::from_name("mail").unwrap() else {
        tests::skip("no group named mail to stand in for postdrop");
        return;
    };
    let gid = group.gid.as_raw();
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);
    let dir = tmp.path().join("instance");
    let out =
        Command::new(tests::bin("postern")).args(["init", "--dev"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    chmod(&bin, 0o755);
    let postdrop = bin.join("postdrop");
    std::fs::copy(tests::bin("postdrop"), &postdrop).unwrap();
    std::os::unix::fs::chown(&postdrop, Some(0), Some(gid)).unwrap();
    chmod(&postdrop, 0o2755);
    let edit = Command::new(tests::bin("postconf"))
        .arg("-c")
        .arg(&dir)
        .arg("-e")
        .arg(format!("command_directory = {}", bin.display()))
        .output()
        .unwrap();
    assert!(edit.status.success(), "{}", String::from_utf8_lossy(&edit.stderr));

    // The queue as master makes it when run as root with setgid_group.
    let queue_dir = dir.join("queue");
    let queue = mail_queue::Queue::new(&queue_dir);
    queue.create_layout().unwrap();
    chmod(&dir, 0o755);
    chmod(&queue_dir, 0o755);
    for f in ["main.toml", "master.toml"] {
        chmod(&dir.join(f), 0o644);
    }
    queue.secure_maildrop(0, gid).unwrap();
    let maildrop = queue_dir.join("maildrop");

    let sendmail = || {
        let mut c = Command::new(tests::bin("sendmail"));
        c.arg("-C").arg(&dir).arg("suporte");
        c
    };
    let message = b"Subject: segredo\n\nonly for suporte\n";
    let out = run_as(SUBMITTER, SUBMITTER, &mut sendmail(), message);
    assert!(out.status.success(), "sendmail as nobody: {}", String::from_utf8_lossy(&out.stderr));

    let files: Vec<_> = std::fs::read_dir(&maildrop)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let meta = std::fs::metadata(&files[0]).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (SUBMITTER, gid, 0o640),
        "owner, group and mode of the maildrop file"
    );
    let (m, owner) = queue
        .read_maildrop(
            &mail_types::QueueId::parse(&files[0].file_name().unwrap().to_string_lossy()).unwrap(),
            1 << 20,
        )
        .unwrap();
    assert_eq!(
        (owner, m.user.as_str(), m.recipients.clone()),
        (SUBMITTER, "nobody", vec!["suporte".to_owned()])
    );

    // A second user: no listing, no reading by name, no writing.
    let cat = |uid: u32, gid: u32| run_as(uid, gid, Command::new("cat").arg(&files[0]), b"");
    let other = cat(OTHER, OTHER);
    assert!(!other.status.success(), "a second user read the submission");
    assert!(other.stdout.is_empty());
    assert!(String::from_utf8_lossy(&other.stderr).contains("Permission denied"));
    let ls = run_as(OTHER, OTHER, Command::new("ls").arg(&maildrop), b"");
    assert!(!ls.status.success(), "a second user listed maildrop/");
    // pickup's view: mail_owner with the group among its groups.
    let pickup = cat(OTHER, gid);
    assert!(pickup.status.success(), "{}", String::from_utf8_lossy(&pickup.stderr));
    assert!(String::from_utf8_lossy(&pickup.stdout).contains("only for suporte"));

    // Without postdrop, an ordinary user cannot drop anything.
    std::fs::remove_file(&postdrop).unwrap();
    let out = run_as(OTHER, OTHER, &mut sendmail(), message);
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("postdrop"));
}
