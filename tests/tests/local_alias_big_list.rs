//! A mailing list as an alias, `list: :include:/path/members`, with 1,500
//! local users: every member gets the message (the old expansion cap kept
//! the first 1,000 and reported the list delivered), in reasonable time,
//! and the sender gets no bounce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::time::{Duration, Instant};
use tests::{Instance, Options, wait_until};

const MEMBERS: usize = 1500;

fn member(i: usize) -> String {
    format!("m{i:04}")
}

/// Adds the members to the instance's passwd-file (same uid and gid as
/// the tutorial's user, homes under the instance) and the list to its
/// aliases file.
fn add_list(dir: &Path) {
    let passwd_path = dir.join("passwd");
    let mut passwd = std::fs::read_to_string(&passwd_path).unwrap();
    let suporte = passwd.lines().find(|l| l.starts_with("suporte:")).unwrap().to_owned();
    let fields: Vec<&str> = suporte.split(':').collect();
    let (uid, gid) = (fields[2], fields[3]);
    let mut members = String::new();
    for i in 0..MEMBERS {
        let name = member(i);
        let home = dir.join("home").join(&name);
        passwd.push_str(&format!("{name}:{{PLAIN}}x:{uid}:{gid}::{}::\n", home.display()));
        members.push_str(&format!("{name}\n"));
    }
    std::fs::write(&passwd_path, passwd).unwrap();
    let members_path = dir.join("members");
    std::fs::write(&members_path, members).unwrap();
    let aliases_path = dir.join("aliases");
    let mut aliases = std::fs::read_to_string(&aliases_path).unwrap();
    aliases.push_str(&format!("list: :include:{}\n", members_path.display()));
    std::fs::write(&aliases_path, aliases).unwrap();
}

fn count_new(inst: &Instance, user: &str) -> usize {
    std::fs::read_dir(inst.maildir(user).join("new")).map_or(0, |d| d.count())
}

#[test]
fn every_member_of_a_1500_member_list_gets_the_message() {
    let inst = Instance::start_with(Options { before_start: Some(add_list), ..Options::default() });
    let mut c = inst.smtp();
    let started = Instant::now();
    c.send_mail(
        "suporte@postern.test",
        &["list@postern.test"],
        "Subject: to the list\r\n\r\nhello, all 1500 of you\r\n",
    );
    c.cmd("QUIT", 221);

    // The agent answers qmgr once every member is written; then the queue
    // file goes away (all sent) or stays (deferred).
    // Looked at in the order a file moves (incoming/ → active/ →
    // deferred/), so a file moving meanwhile is seen in its next state and
    // never missed in both.
    let gone = wait_until(Duration::from_secs(600), || {
        (inst.queue_files("incoming").is_empty()
            && inst.queue_files("active").is_empty()
            && inst.queue_files("deferred").is_empty())
        .then_some(())
    });
    let elapsed = started.elapsed();
    let missing: Vec<String> =
        (0..MEMBERS).map(member).filter(|m| count_new(&inst, m) != 1).collect();
    assert!(
        missing.is_empty(),
        "{} of {MEMBERS} members have not exactly one message, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(gone.is_some(), "the message is still queued: {:?}", inst.mailq());
    eprintln!("1500 Maildir deliveries took {elapsed:?}");
    let text = std::fs::read_to_string(&inst.new_mail(&member(MEMBERS - 1))[0]).unwrap();
    assert!(text.contains("hello, all 1500 of you"), "{text}");
    assert!(text.contains(&format!("Delivered-To: {}@postern.test", member(MEMBERS - 1))));
    // No non-delivery report went back to the sender.
    assert_eq!(count_new(&inst, "suporte"), 0, "{:?}", inst.new_mail_texts("suporte"));
}
