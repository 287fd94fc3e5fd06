//! A user's `.forward` (Postfix local(8) `forward_path`): copies to
//! another user and to the user's own mailbox (`\user`), and a `|command`
//! run as the user, which the default `allow_mail_to_commands`
//! (`alias, forward`) permits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, Options, header};

const WAIT: Duration = Duration::from_secs(30);

fn maria() -> Options {
    Options { users: vec!["maria:m".into()], ..Options::default() }
}

/// Writes `~maria/.forward` (mode 0644, owned by us: the user's ids in a
/// development instance).
fn write_forward(inst: &Instance, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = inst.dir.join("home/maria/.forward");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn queue_empty(inst: &Instance) -> bool {
    ["incoming", "active", "deferred"].iter().all(|s| inst.queue_files(s).is_empty())
}

#[test]
fn forward_to_another_user_and_keep_a_copy() {
    let inst = Instance::start_with(maria());
    write_forward(&inst, "# maria's forwarding\nsuporte, \\maria\n");
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["maria@postern.test"],
        "Subject: for maria\r\n\r\nkeep and share\r\n",
    );
    c.cmd("QUIT", 221);
    let own = inst.wait_for_mail("maria", 1, WAIT);
    let copy = inst.wait_for_mail("suporte", 1, WAIT);
    let own = std::fs::read_to_string(&own[0]).unwrap();
    let copy = std::fs::read_to_string(&copy[0]).unwrap();
    assert!(own.contains("keep and share") && copy.contains("keep and share"));
    let to = header(&own, "Delivered-To");
    assert!(to.len() == 1 && to[0].starts_with("maria@"), "{own}");
    let to = header(&copy, "Delivered-To");
    assert!(to.len() == 1 && to[0].starts_with("suporte@"), "{copy}");
    assert!(tests::wait_until(WAIT, || queue_empty(&inst).then_some(())).is_some());
    // Exactly one copy each.
    assert_eq!(inst.new_mail("maria").len(), 1);
    assert_eq!(inst.new_mail("suporte").len(), 1);
}

#[test]
fn forward_to_a_command_runs_it_as_the_user() {
    let inst = Instance::start_with(maria());
    let out = inst.dir.join("piped.txt");
    let command = format!("\"|/bin/sh -c 'echo user=$USER > {0}; cat >> {0}'\"\n", out.display());
    write_forward(&inst, &command);
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["maria@postern.test"],
        "Subject: to a program\r\n\r\npiped body\r\n",
    );
    c.cmd("QUIT", 221);
    let text = tests::wait_until(WAIT, || {
        std::fs::read_to_string(&out).ok().filter(|t| t.contains("piped body"))
    })
    .unwrap_or_else(|| panic!("{} not written; queue: {}", out.display(), inst.mailq()));
    assert!(text.starts_with("user=maria\n"), "$USER is the .forward's user: {text}");
    assert!(text.contains("Subject: to a program"), "{text}");
    let message = text.split_once('\n').map_or("", |(_, m)| m);
    let to = header(message, "Delivered-To");
    assert!(to.len() == 1 && to[0].starts_with("maria@"), "{text}");
    assert!(tests::wait_until(WAIT, || queue_empty(&inst).then_some(())).is_some());
    // The .forward replaced the mailbox.
    assert!(inst.new_mail("maria").is_empty());
}
