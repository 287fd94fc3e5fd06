//! A full queue file system: the client gets `452 4.3.1`, nothing
//! half-written stays in the queue, the server stays up, and mail flows
//! again once there is room. The queue is a small tmpfs, so this test
//! needs root (CI runs as root); as another user it says `skipped: ...`
//! and checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, Options};

#[test]
fn full_queue_disk_gets_452_and_leaves_nothing_behind() {
    if !tests::is_root() {
        tests::skip("needs root to mount a tmpfs as the queue (the test runner runs it as root)");
        return;
    }
    let inst = Instance::start_with(Options {
        // Let the free-space pre-check pass so the write itself fails.
        postconf: vec!["message_size_limit = 400000".into(), "queue_minfree = 1".into()],
        queue_tmpfs: Some(1 << 20),
        ..Options::default()
    });
    let queue = inst.queue();
    // Leave about 64 KiB free.
    let st = nix::sys::statvfs::statvfs(&queue).unwrap();
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    let filler = queue.join("filler");
    std::fs::write(&filler, vec![0u8; (free - (64 << 10)) as usize]).unwrap();

    // About 156 KB: more than the room left, less than message_size_limit.
    let body = format!("Subject: big\r\n\r\n{}\r\n", vec!["x".repeat(76); 2000].join("\r\n"));
    let mut c = inst.smtp();
    c.cmd("EHLO client.example", 250);
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw(body.as_bytes());
    c.send_raw(b".\r\n");
    assert_eq!(c.reply(), vec!["452 4.3.1 Insufficient system storage".to_string()]);
    for state in ["tmp", "incoming", "active", "deferred"] {
        assert!(inst.queue_files(state).is_empty(), "{state}/ is not empty after a failed write");
    }

    // Room again: the same session and a new one both work.
    std::fs::remove_file(&filler).unwrap();
    c.cmd("RSET", 250);
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        "Subject: after\r\n\r\nroom again\r\n",
    );
    c.cmd("QUIT", 221);
    inst.wait_for_mail("suporte", 1, Duration::from_secs(30));
}
