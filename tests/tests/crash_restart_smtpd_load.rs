//! The restart test: `postern restart smtpd` three times under a
//! steady SMTP load with no failed transaction — connections opened after
//! a restart are served and transactions in flight complete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, Stream, wait_delivered};

#[test]
fn restart_smtpd_three_times_under_load_fails_nothing() {
    // The load runs until 30 messages after the last restart (bounded by
    // a cap), so every restart happens under it.
    const CAP: usize = 5000;
    let inst = Instance::start();
    let stream = Stream::start(&inst.addr("smtp"), "suporte@postern.test", CAP, 4, "rs");
    for _ in 0..3 {
        let at = stream.done() + 30;
        stream.wait_done(at, Duration::from_secs(60));
        let before = inst.status();
        inst.postern(&["restart", "smtp"]);
        inst.wait_workers_replaced(&before, &["smtp"]);
        eprintln!("restarted smtpd after {} messages", stream.done());
    }
    let at = stream.done() + 30;
    stream.wait_done(at, Duration::from_secs(60));
    stream.stop();
    let result = stream.finish();
    eprintln!("{} messages accepted across 3 restarts", result.accepted.len());
    assert!(
        result.failures.is_empty(),
        "failed transactions across restarts: {:?}",
        result.failures
    );
    assert_eq!(result.abandoned, 0);
    let counts = wait_delivered(&inst, "suporte", &result.accepted, Duration::from_secs(90));
    assert!(counts.values().all(|n| *n == 1), "duplicates without any crash");
}
