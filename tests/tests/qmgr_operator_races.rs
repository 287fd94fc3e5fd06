//! The operator's tools move queue files under qmgr's feet (issue 8):
//! `postsuper -d` deletes a file in active/ and `postsuper -h` moves it
//! to hold/ while qmgr has the message out for delivery. qmgr must then
//! drop it quietly: no crash, no bounce, no status log re-created for a
//! deleted message, and a held file stays in hold/.
//!
//! The window is made with a mailbox_command that takes 3 s and then
//! fails temporarily (EX_TEMPFAIL), so both messages come back deferred
//! after the files were taken; the test takes them the way postsuper
//! does (unlink, rename), since the tools are another crate's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tests::{Instance, Options, log_to_file, wait_until};

fn setup(dir: &Path) {
    log_to_file(dir);
    let script = dir.join("slow-tempfail.sh");
    std::fs::write(&script, "#!/bin/sh\ncat >/dev/null\nsleep 3\nexit 75\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(tests::bin("postconf"))
        .arg("-c")
        .arg(dir)
        .arg("-e")
        .arg(format!("mailbox_command = {}", script.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn maillog(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

/// Every place in the queue where a file named `id` is.
fn places(inst: &Instance, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["incoming", "active", "deferred", "hold", "corrupt", "status"] {
        if inst.queue().join(dir).join(id).exists() {
            out.push(dir.to_owned());
        }
    }
    out
}

#[test]
fn files_deleted_or_held_during_delivery_are_dropped_quietly() {
    let inst = Instance::start_with(Options { before_start: Some(setup), ..Default::default() });
    let qmgr = inst.worker_pids("qmgr");
    let mut c = inst.smtp();
    c.ehlo("client.example");
    let deleted = c.send_mail("root@postern.test", &["suporte@postern.test"], "Subject: d\n\nd\n");
    let held = c.send_mail("root@postern.test", &["suporte@postern.test"], "Subject: h\n\nh\n");
    c.cmd("QUIT", 221);
    let active = inst.queue().join("active");
    wait_until(Duration::from_secs(10), || {
        (active.join(&deleted).exists() && active.join(&held).exists()).then_some(())
    })
    .expect("both messages in active/");
    // The mailbox command has started (it reads the message first).
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::remove_file(active.join(&deleted)).unwrap();
    std::fs::rename(active.join(&held), inst.queue().join("hold").join(&held)).unwrap();

    let log = wait_until(Duration::from_secs(20), || {
        let log = maillog(&inst);
        (log.contains(&format!("{deleted}: removed from the queue during delivery"))
            && log.contains(&format!("{held}: moved to hold/ during delivery")))
        .then_some(log)
    })
    .unwrap_or_else(|| panic!("qmgr did not notice; log:\n{}", maillog(&inst)));
    // Give a wrong move (back to active/ or deferred/) time to happen.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(places(&inst, &deleted), Vec::<String>::new(), "deleted stays deleted:\n{log}");
    assert_eq!(
        places(&inst, &held),
        ["hold", "status"],
        "held stays held, with its deferral recorded:\n{log}"
    );
    assert_eq!(inst.worker_pids("qmgr"), qmgr, "qmgr restarted:\n{log}");
    assert!(!log.contains("panic"), "{log}");
    let log = maillog(&inst);
    assert!(!log.contains("non-delivery notification"), "{log}");
    assert!(inst.new_mail("root").is_empty());
}
