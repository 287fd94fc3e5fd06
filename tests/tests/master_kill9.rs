//! `kill -9` of master itself: its workers exit with it (they would
//! otherwise keep the listening sockets and a qmgr running), a new master
//! starts on the same instance, and mail queued before flows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, alive, kill9, wait_until};

#[test]
fn workers_die_with_master_and_a_new_master_starts() {
    let mut inst = Instance::start();
    let workers: Vec<u32> =
        inst.status().services.iter().flat_map(|s| s.workers.iter().map(|w| w.pid)).collect();
    assert!(workers.len() >= 4, "{workers:?}");
    kill9(inst.master_pid());
    let gone =
        wait_until(Duration::from_secs(5), || workers.iter().all(|p| !alive(*p)).then_some(()));
    assert!(
        gone.is_some(),
        "workers outlived master: {:?}",
        workers.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );

    // Mail submitted while nothing runs waits in maildrop/ ...
    inst.sendmail(&["suporte@postern.test"], "Subject: while down\n\nqueued while down\n");

    // ... and is delivered once a new master runs.
    inst.restart_master();
    let msgs = inst.wait_for_mail("suporte", 1, Duration::from_secs(90));
    assert!(std::fs::read_to_string(&msgs[0]).unwrap().contains("queued while down"));
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        "Subject: after\r\n\r\nafter restart\r\n",
    );
    c.cmd("QUIT", 221);
    inst.wait_for_mail("suporte", 2, Duration::from_secs(30));
}
