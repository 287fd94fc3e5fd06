//! A destination whose connections all fail is dead (issue 8): after one
//! cohort of failed attempts qmgr defers the rest of its mail at once,
//! with Postfix's "delivery temporarily suspended" reason, and local mail
//! keeps flowing. `postqueue -s SITE` (FlushSite) retries only the mail
//! for that site and revives it; `postqueue -i ID` (FlushId) one message.
//!
//! The instance has no SMTP client service (taken out of master.toml), so every remote delivery
//! fails as a connection to `private/smtp` that nobody answers: a
//! destination that is down, as qmgr sees it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use mail_ipc::trigger::Trigger;
use mail_types::QueueId;
use std::time::{Duration, Instant};
use tests::{Instance, Options, wait_until};

const REMOTE: usize = 40;

fn maillog(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

fn trigger(inst: &Instance, t: Trigger) {
    mail_ipc::trigger::send(&inst.queue().join("public/qmgr"), t).expect("trigger qmgr");
}

/// Waits until `f(log)` holds; panics with the log otherwise.
fn wait_log(inst: &Instance, what: &str, f: impl Fn(&str) -> bool) -> String {
    wait_until(Duration::from_secs(20), || {
        let log = maillog(inst);
        f(&log).then_some(log)
    })
    .unwrap_or_else(|| panic!("{what}; log:\n{}", maillog(inst)))
}

#[test]
fn a_dead_destination_defers_at_once_and_never_delays_local_mail() {
    let inst = Instance::start_with(Options {
        before_start: Some(tests::log_to_file_without_smtp_client),
        // Nothing is retried by the clock during the test.
        postconf: vec!["minimal_backoff_time = 1h".into(), "maximal_backoff_time = 2h".into()],
        ..Default::default()
    });
    let mut c = inst.smtp();
    c.ehlo("client.example");
    let mut ids = Vec::new();
    for i in 0..REMOTE {
        ids.push(c.send_mail(
            "suporte@postern.test",
            &["u@remote.example"],
            &format!("Subject: remote {i}\n\nfor a dead site\n"),
        ));
    }
    let started = Instant::now();
    c.send_mail("suporte@postern.test", &["suporte@postern.test"], "Subject: local\n\nhere\n");
    inst.wait_for_mail("suporte", 1, Duration::from_secs(10));
    let local_took = started.elapsed();
    eprintln!("local mail behind {REMOTE} messages to a dead site took {local_took:?}");
    assert!(local_took < Duration::from_secs(5), "local mail waited {local_took:?}");

    let deferred = "to=<u@remote.example>, relay=none";
    let reason =
        "status=deferred (delivery temporarily suspended: connect to transport private/smtp";
    let log = wait_log(&inst, "every remote message deferred with the reason", |log| {
        log.lines().filter(|l| l.contains(deferred) && l.contains(reason)).count() == REMOTE
    });
    assert_eq!(
        count(&log, "smtp/remote.example: destination dead for 3600s"),
        1,
        "one death, then no attempts until the backoff time:\n{log}"
    );
    wait_until(Duration::from_secs(10), || {
        (inst.queue_files("deferred").len() == REMOTE).then_some(())
    })
    .unwrap_or_else(|| panic!("deferred/: {:?}", inst.queue_files("deferred")));

    // A flush of another site touches none of them.
    let activations = |log: &str| count(log, "(queue active)");
    let before = activations(&maillog(&inst));
    trigger(&inst, Trigger::FlushSite("other.example".into()));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(activations(&maillog(&inst)), before, "FlushSite(other.example) moved mail");

    // FlushSite(remote.example): all of them again, the site given a new
    // chance (it dies a second time, having no agent).
    trigger(&inst, Trigger::FlushSite("REMOTE.example".into()));
    let log = wait_log(&inst, "every remote message retried", |log| {
        activations(log) == before + REMOTE
            && count(log, "destination dead") == 2
            && log.lines().filter(|l| l.contains(deferred)).count() == 2 * REMOTE
    });
    for id in &ids {
        assert_eq!(count(&log, &format!("{id}: from=<suporte@postern.test>")), 2, "{id}:\n{log}");
    }

    // FlushId: that one message only.
    wait_until(Duration::from_secs(10), || {
        (inst.queue_files("deferred").len() == REMOTE).then_some(())
    })
    .unwrap();
    let before = activations(&maillog(&inst));
    trigger(&inst, Trigger::FlushId(QueueId::parse(&ids[7]).unwrap()));
    let log = wait_log(&inst, "the flushed message retried", |log| {
        activations(log) == before + 1
            && log.lines().filter(|l| l.contains(deferred)).count() == 2 * REMOTE + 1
    });
    assert_eq!(count(&log, &format!("{}: from=<suporte@postern.test>", ids[7])), 3);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(activations(&maillog(&inst)), before + 1, "FlushId moved more than one");
    // No mail lost on the way.
    wait_until(Duration::from_secs(10), || {
        (inst.queue_files("deferred").len() == REMOTE).then_some(())
    })
    .unwrap();
    c.cmd("QUIT", 221);
}
