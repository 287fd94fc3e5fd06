//! Issue 10: two IMAP sessions on one mailbox see each other's changes
//! at command boundaries (EXISTS, FETCH FLAGS, EXPUNGE), a FETCH of a
//! message another session expunged is a NO without ending the session,
//! and IDLE is woken by a delivery through smtpd (and by the other
//! session's changes) without the client asking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};
use tests::Instance;
use tests::imap::Client;

fn deliver(inst: &Instance, subject: &str) {
    let before = inst.new_mail("suporte").len();
    let mut c = inst.smtp();
    c.cmd("HELO test", 250);
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        &format!("Subject: {subject}\r\n\r\nbody\r\n"),
    );
    c.cmd("QUIT", 221);
    inst.wait_for_mail("suporte", before + 1, Duration::from_secs(20));
}

#[test]
fn idle_is_woken_by_a_delivery_and_sessions_see_each_other() {
    let inst = Instance::start();
    deliver(&inst, "one");
    let addr = inst.addr("imap");
    let mut a = Client::login(&addr, "suporte", "suporte");
    a.ok("a1", "SELECT INBOX");
    a.send("a2 IDLE");
    assert_eq!(a.line(), "+ idling");
    // Nothing happens: IDLE says nothing.
    assert_eq!(a.line_within(Duration::from_millis(500)), None);
    let sent = Instant::now();
    deliver(&inst, "two");
    assert_eq!(a.line_within(Duration::from_secs(10)).as_deref(), Some("* 2 EXISTS"));
    assert_eq!(a.line(), "* 2 RECENT");
    assert!(sent.elapsed() < Duration::from_secs(10));
    a.send("DONE");
    assert_eq!(a.until("a2"), "a2 OK Idle completed.");

    // B changes flags; A hears of it at its next command.
    let mut b = Client::login(&addr, "suporte", "suporte");
    b.ok("b1", "SELECT INBOX");
    b.ok("b2", "STORE 1 +FLAGS.SILENT (\\Seen)");
    assert_eq!(a.ok("a3", "NOOP"), "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\na3 OK NOOP completed.");
    // B expunges message 2 while A idles: A is told at once.
    a.send("a4 IDLE");
    assert_eq!(a.line(), "+ idling");
    b.ok("b3", "STORE 2 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(
        a.line_within(Duration::from_secs(10)).as_deref(),
        Some("* 2 FETCH (FLAGS (\\Deleted \\Recent))")
    );
    assert_eq!(b.ok("b4", "EXPUNGE"), "* 2 EXPUNGE\r\nb4 OK Expunge completed.");
    assert_eq!(a.line_within(Duration::from_secs(10)).as_deref(), Some("* 2 EXPUNGE"));
    a.send("DONE");
    assert_eq!(a.until("a4"), "a4 OK Idle completed.");

    // B expunges message 1; A, not told yet (FETCH may not report
    // expunges), fetches it: NO, and the session goes on.
    b.ok("b5", "STORE 1 +FLAGS.SILENT (\\Deleted)");
    b.ok("b6", "EXPUNGE");
    assert_eq!(
        a.run("a5", "FETCH 1 BODY[]"),
        "a5 NO [EXPUNGEISSUED] Some of the requested messages no longer exist."
    );
    assert_eq!(a.ok("a6", "NOOP"), "* 1 EXPUNGE\r\na6 OK NOOP completed.");
    assert_eq!(a.run("a7", "FETCH 1 FLAGS"), "a7 BAD Error in IMAP command: Invalid messageset.");
    // A new message for both.
    deliver(&inst, "three");
    assert_eq!(b.ok("b7", "NOOP"), "* 1 EXISTS\r\n* 1 RECENT\r\nb7 OK NOOP completed.");
    assert_eq!(a.ok("a8", "CHECK"), "* 1 EXISTS\r\n* 1 RECENT\r\na8 OK Check completed.");
    assert_eq!(a.ok("a9", "UID FETCH * UID"), "* 1 FETCH (UID 3)\r\na9 OK Fetch completed.");
    a.ok("a10", "LOGOUT");
    b.ok("b8", "LOGOUT");
}
