//! qmgr takes new mail by the queue ids its writers announce, not by
//! reading `incoming/` for every trigger (issue 6: its work per message
//! must not grow with the directory), and mail whose trigger is lost
//! still arrives through its one-second tick.
//!
//! The first test attaches `strace -e trace=openat,getdents64` to the
//! running qmgr and counts the directory reads of `incoming/` while 200
//! messages pass; it prints a skip reason where strace cannot attach.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use mail_queue::{Envelope, Recipient};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tests::{Instance, Stream, fake_queue_id, v1_queue_file, wait_delivered};

const MESSAGES: usize = 200;

/// How many `getdents64` calls of an strace log (`-f`, so each line
/// starts with a thread id) read the directory `dir`: each fd is resolved
/// through the last `openat` that returned it (fds are shared by the
/// process's threads, so the thread id is left out).
fn reads_of(text: &str, dir: &Path) -> usize {
    let dir = dir.to_string_lossy();
    let mut fds: HashMap<String, String> = HashMap::new();
    let mut reads = 0;
    for line in text.lines() {
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
        let Some((call, result)) = rest.rsplit_once(" = ") else { continue };
        let result = result.split_whitespace().next().unwrap_or("");
        if call.starts_with("openat(") && !result.starts_with('-') {
            if let Some(path) = call.split('"').nth(1) {
                fds.insert(result.to_owned(), path.to_owned());
            }
        } else if let Some(args) = call.strip_prefix("getdents64(") {
            let fd = args.split(',').next().unwrap_or("");
            // strace -y would print the path; without it, the open tells.
            if fds.get(fd).is_some_and(|p| p.trim_end_matches('/') == dir) {
                reads += 1;
            }
        }
    }
    reads
}

#[test]
fn announced_mail_is_delivered_without_reading_incoming_per_message() {
    let inst = Instance::start();
    let qmgr = inst.worker_pids("qmgr");
    let [qmgr] = qmgr.as_slice() else { panic!("one qmgr expected: {qmgr:?}") };
    let log = inst.dir.join("strace.log");
    let Some(strace) = tests::Strace::attach(&[*qmgr], "openat,getdents64", &log) else {
        return;
    };
    let started = Instant::now();
    let stream = Stream::start(&inst.addr("smtp"), "suporte@postern.test", MESSAGES, 10, "ids");
    stream.wait_done(MESSAGES, Duration::from_secs(120));
    let result = stream.finish();
    assert_eq!(result.accepted.len(), MESSAGES, "{:?}", result.failures);
    wait_delivered(&inst, "suporte", &result.accepted, Duration::from_secs(120));
    let took = started.elapsed();
    let text = strace.finish();
    // qmgr opens every message in active/: the trace is complete enough.
    let active = format!("\"{}/", inst.queue().join("active").display());
    let opened = text.lines().filter(|l| l.contains("openat(") && l.contains(&active)).count();
    assert!(opened >= MESSAGES, "strace saw qmgr open {opened} files in active/:\n{text}");
    let reads = reads_of(&text, &inst.queue().join("incoming"));
    eprintln!(
        "qmgr read incoming/ {reads} times (getdents64) for {MESSAGES} messages in {:.1} s",
        took.as_secs_f64()
    );
    // A scan per trigger costs 2 reads per message or so; what is left is
    // the one-second tick (at most one scan per second while mail flows).
    assert!(
        reads * 2 < MESSAGES,
        "qmgr read incoming/ {reads} times for {MESSAGES} messages (in {took:?}): it scans per message"
    );
}

/// A complete queue file dropped into incoming/ the way a writer commits
/// one (through tmp/, renamed), with no trigger at all.
fn drop_untriggered(inst: &Instance, text: &str) {
    let id = fake_queue_id();
    let envelope = Envelope {
        sender: Some("root@postern.test".parse().unwrap()),
        recipients: vec![Recipient {
            address: "suporte@postern.test".parse().unwrap(),
            original: "suporte@postern.test".into(),
            esmtp: Default::default(),
        }],
        arrival: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        client: "local".into(),
        origin: "pickup".into(),
        attrs: vec![],
        esmtp: Default::default(),
    };
    let content = format!("Subject: {text}\n\n{text}\n");
    let bytes = v1_queue_file(&envelope, content.as_bytes());
    let tmp = inst.queue().join("tmp").join(format!("{id}.test"));
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, inst.queue().join("incoming").join(&id)).unwrap();
}

#[test]
fn mail_whose_trigger_was_lost_is_delivered_by_the_tick() {
    let inst = Instance::start();
    // Let qmgr find incoming/ empty once, so its tick goes by the
    // directory's mtime from then on.
    std::thread::sleep(Duration::from_secs(2));
    for (n, text) in ["lost trigger one", "lost trigger two"].into_iter().enumerate() {
        let dropped = Instant::now();
        drop_untriggered(&inst, text);
        // Well inside the 10 s of the forced scan: the mtime moved.
        let got = inst.wait_for_mail("suporte", n + 1, Duration::from_secs(30));
        let waited = dropped.elapsed();
        assert!(
            got.iter().any(|p| std::fs::read_to_string(p).unwrap().contains(text)),
            "{text} not delivered"
        );
        assert!(waited < Duration::from_secs(6), "{text} took {waited:?}: the tick missed it");
        // Past the moment the tick could have seen the last move.
        std::thread::sleep(Duration::from_millis(1500));
    }
}

#[test]
fn announced_mail_waits_for_room_in_a_small_active_queue() {
    // Two messages active at once, so most announcements find active/
    // full: they wait in qmgr's list (eight long, so it also overflows
    // into a scan), and every message still arrives exactly once.
    let inst = Instance::start_with(tests::Options {
        postconf: vec!["qmgr_message_active_limit = 2".into()],
        ..tests::Options::default()
    });
    let n = 80;
    let stream = Stream::start(&inst.addr("smtp"), "suporte@postern.test", n, 10, "room");
    stream.wait_done(n, Duration::from_secs(120));
    let result = stream.finish();
    assert_eq!(result.accepted.len(), n, "{:?}", result.failures);
    let counts = wait_delivered(&inst, "suporte", &result.accepted, Duration::from_secs(120));
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(inst.new_mail("suporte").len(), n);
}
