//! "Bad input" of issue 2 for the queue: a truncated queue file in
//! incoming/ goes to corrupt/ and the rest of the queue still flows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, fake_queue_id, wait_until};

#[test]
fn truncated_queue_file_goes_to_corrupt() {
    let inst = Instance::start();
    let id = fake_queue_id();
    let tmp = inst.queue().join("tmp").join(format!("{id}.test"));
    let mut bytes = b"POSTERNQ\x00\x01".to_vec();
    bytes.extend_from_slice(b"\x00\x00\x10\x00truncated envelope \xff\xfe");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, inst.queue().join("incoming").join(&id)).unwrap();
    // No trigger names the file: qmgr's tick finds it (the directory's
    // mtime moved), while the normal message is announced by id.
    let mut c = inst.smtp();
    c.send_mail("root@postern.test", &["suporte@postern.test"], "Subject: normal\r\n\r\nflui\r\n");
    c.cmd("QUIT", 221);
    assert!(inst.one_mail("suporte").contains("flui"));
    let moved = wait_until(Duration::from_secs(20), || {
        inst.queue().join("corrupt").join(&id).exists().then_some(())
    });
    assert!(
        moved.is_some(),
        "{id} not in corrupt/: incoming {:?} active {:?} deferred {:?}",
        inst.queue_files("incoming"),
        inst.queue_files("active"),
        inst.queue_files("deferred")
    );
    assert!(!inst.queue().join("incoming").join(&id).exists());
    assert!(!inst.queue().join("active").join(&id).exists());
}
