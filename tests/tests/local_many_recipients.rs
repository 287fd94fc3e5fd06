//! Issue 5, defect 5: a message with a very large recipient list. qmgr
//! used to send every local recipient in one request; past the IPC frame
//! limit local delivery closed the connection, every round deferred
//! everyone, and once the status log hit its cap qmgr forgot who had
//! their mail and delivered and bounced again every retry. Now requests
//! carry at most `local_destination_recipient_limit` recipients and the
//! status log is compacted, so each recipient gets the message exactly
//! once and nobody gets a bounce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tests::{Instance, Options, header, wait_until};

const RECIPIENTS: usize = 20_000;

#[test]
fn twenty_thousand_local_recipients_each_get_it_once() {
    let inst = Instance::start_with(Options {
        postconf: vec!["recipient_delimiter = +".into()],
        ..Options::default()
    });
    let started = Instant::now();
    let rcpts: Vec<String> =
        (0..RECIPIENTS).map(|i| format!("suporte+r{i}@postern.test")).collect();
    // The sender is local too (root is an alias of suporte), so a bounce
    // or delay notice would land in the same Maildir and be counted.
    let mut child = inst
        .command("sendmail")
        .args(["-f", "root@postern.test", "-i"])
        .args(&rcpts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"From: root@postern.test\nSubject: to many\n\nOne copy each.\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sendmail: {out:?}");

    let files = wait_until(Duration::from_secs(240), || {
        let n = inst.new_mail("suporte").len();
        let queue_empty = ["maildrop", "incoming", "active", "deferred"]
            .iter()
            .all(|s| inst.queue_files(s).is_empty());
        (n >= RECIPIENTS && queue_empty).then_some(n)
    });
    let n = inst.new_mail("suporte").len();
    assert!(
        files.is_some(),
        "{n} of {RECIPIENTS} delivered within 240 s; queue: incoming {} active {} deferred {}",
        inst.queue_files("incoming").len(),
        inst.queue_files("active").len(),
        inst.queue_files("deferred").len(),
    );
    eprintln!("{RECIPIENTS} recipients delivered in {:?}", started.elapsed());
    // A late duplicate or notification would show up now.
    std::thread::sleep(Duration::from_secs(2));
    let mut per_rcpt: HashMap<String, usize> = HashMap::new();
    let mut other = Vec::new();
    for text in inst.new_mail_texts("suporte") {
        let to = header(&text, "Delivered-To");
        match to.first() {
            Some(to) if text.contains("One copy each.") => {
                *per_rcpt.entry(to.clone()).or_default() += 1
            }
            _ => other.push(text.lines().take(8).collect::<Vec<_>>().join(" | ")),
        }
    }
    assert!(
        other.is_empty(),
        "messages other than the test message: {:?}",
        &other[..other.len().min(3)]
    );
    assert_eq!(per_rcpt.len(), RECIPIENTS, "distinct recipients delivered");
    let dups: Vec<_> = per_rcpt.iter().filter(|(_, n)| **n != 1).take(5).collect();
    assert!(dups.is_empty(), "delivered more than once: {dups:?}");
    for r in &rcpts[..10] {
        assert_eq!(per_rcpt.get(r), Some(&1), "{r}");
    }
    assert_eq!(inst.new_mail("suporte").len(), RECIPIENTS);
    assert!(inst.queue_files("corrupt").is_empty());
    assert!(
        inst.queue_files("status").is_empty(),
        "status logs left: {:?}",
        inst.queue_files("status")
    );
}
