//! Issue 5, defects 6 and 7: files in the queue that are not what they
//! claim to be. A FIFO or a symbolic link where a queue file should be
//! must not stop qmgr (it used to block its single thread in `open`), a
//! queue file with a nonsensical arrival time must not make qmgr panic
//! halfway through a delivery round, and `mailq` (run as root) must
//! neither follow links in maildrop/ nor wait on a FIFO there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use mail_queue::{Envelope, Recipient};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tests::{Instance, fake_queue_id, init_dir, v1_queue_file, wait_until};

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn wait_in_corrupt(inst: &Instance, id: &str) {
    let moved = wait_until(Duration::from_secs(20), || {
        inst.queue().join("corrupt").join(id).exists().then_some(())
    });
    assert!(
        moved.is_some(),
        "{id} not in corrupt/: incoming {:?} active {:?} deferred {:?} corrupt {:?}",
        inst.queue_files("incoming"),
        inst.queue_files("active"),
        inst.queue_files("deferred"),
        inst.queue_files("corrupt"),
    );
}

#[test]
fn fifo_and_symlink_in_the_queue_do_not_block_qmgr() {
    let inst = Instance::start();
    let qmgr = inst.worker_pids("qmgr");
    let fifo_in = fake_queue_id();
    mkfifo(&inst.queue().join("incoming").join(&fifo_in));
    let fifo_def = fake_queue_id().replace("FFFF01", "FFFF02");
    mkfifo(&inst.queue().join("deferred").join(&fifo_def));
    let link = fake_queue_id().replace("FFFF01", "FFFF03");
    std::os::unix::fs::symlink("/etc/passwd", inst.queue().join("incoming").join(&link)).unwrap();

    // New mail wakes qmgr; it must still be delivered.
    let mut c = inst.smtp();
    c.send_mail("root@postern.test", &["suporte@postern.test"], "Subject: normal\r\n\r\nflui\r\n");
    c.cmd("QUIT", 221);
    assert!(inst.one_mail("suporte").contains("flui"));
    wait_in_corrupt(&inst, &fifo_in);
    wait_in_corrupt(&inst, &link);
    // deferred/ is scanned at start-up and every queue_run_delay; a flush
    // brings it in now.
    let out = inst.command("postqueue").arg("-f").output().unwrap();
    assert!(out.status.success(), "postqueue -f: {out:?}");
    wait_in_corrupt(&inst, &fifo_def);
    assert!(
        std::fs::symlink_metadata(inst.queue().join("corrupt").join(&link))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link itself is quarantined, not what it points to"
    );
    assert_eq!(inst.worker_pids("qmgr"), qmgr, "qmgr was restarted");
}

#[test]
fn absurd_arrival_time_is_corrupt_not_a_panic() {
    let inst = Instance::start();
    let qmgr = inst.worker_pids("qmgr");
    let id = fake_queue_id();
    let envelope = Envelope {
        sender: Some("root@postern.test".parse().unwrap()),
        // One local recipient, delivered first, and one for the smtp
        // agent, which this instance does not run: its failure made qmgr
        // compute the arrival as a time and panic.
        recipients: vec![
            Recipient {
                address: "suporte@postern.test".parse().unwrap(),
                original: "suporte@postern.test".into(),
                esmtp: Default::default(),
            },
            Recipient {
                address: "x@remote.example".parse().unwrap(),
                original: "x@remote.example".into(),
                esmtp: Default::default(),
            },
        ],
        arrival: 1 << 63,
        client: "local".into(),
        origin: "pickup".into(),
        attrs: vec![],
        esmtp: Default::default(),
    };
    let bytes = v1_queue_file(&envelope, b"Subject: forged\n\nforged arrival\n");
    let tmp = inst.queue().join("tmp").join(format!("{id}.test"));
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, inst.queue().join("incoming").join(&id)).unwrap();

    let mut c = inst.smtp();
    c.send_mail("root@postern.test", &["suporte@postern.test"], "Subject: normal\r\n\r\nflui\r\n");
    c.cmd("QUIT", 221);
    wait_in_corrupt(&inst, &id);
    // Exactly one message: the normal one, never the corrupt one.
    assert!(inst.one_mail("suporte").contains("flui"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inst.new_mail("suporte").len(), 1, "the corrupt message was delivered");
    assert_eq!(inst.worker_pids("qmgr"), qmgr, "qmgr was restarted (did it panic?)");
}

#[test]
fn mailq_as_root_neither_follows_links_nor_waits_on_fifos() {
    let (_tmp, dir) = init_dir(&[]);
    let maildrop = dir.join("queue").join("maildrop");
    mkfifo(&maildrop.join(fake_queue_id()));
    // A link to a file the invoking user (root) can read and the
    // submitter could not: the listing must not reveal it.
    let secret = dir.join("secret-maildrop");
    std::fs::write(&secret, b"POSTERND\x00\x01whatever").unwrap();
    std::os::unix::fs::symlink(&secret, maildrop.join(fake_queue_id().replace("FFFF01", "FFFF02")))
        .unwrap();
    let mut child = std::process::Command::new(tests::bin("postqueue"))
        .arg("-c")
        .arg(&dir)
        .arg("-p")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = wait_until(Duration::from_secs(20), || child.try_wait().unwrap());
    if done.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("postqueue -p blocked on a FIFO in maildrop/");
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Mail queue is empty\n");
}
