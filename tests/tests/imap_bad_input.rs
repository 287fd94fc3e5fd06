//! Issue 10's bad input list: malformed commands, unbalanced parentheses
//! and quotes, a literal longer than announced or never sent, sequence
//! sets `1:*`, `*:1`, `4294967296`, `0` and an empty mailbox, binary
//! garbage, a client that vanishes during APPEND (nothing half-written
//! stays), a 100 MB literal before login (refused from its announcement,
//! unread) and after it (over message_size_limit), over-long lines, too
//! many bad commands. Every answer is a tagged BAD/NO (or a BYE where
//! the framing cannot be trusted), the server stays up and the mailbox
//! is intact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};
use tests::Instance;
use tests::imap::Client;

fn files(dir: &std::path::Path) -> usize {
    ["new", "cur", "tmp"]
        .iter()
        .map(|s| std::fs::read_dir(dir.join(s)).map(|r| r.count()).unwrap_or(0))
        .sum()
}

#[test]
fn bad_input_gets_bad_or_no_and_the_mailbox_stays_intact() {
    let inst = Instance::start();
    inst.sendmail(&["suporte@postern.test"], "Subject: keep me\n\nintact\n");
    inst.wait_for_mail("suporte", 1, Duration::from_secs(20));
    let addr = inst.addr("imap");
    let md = inst.maildir("suporte");

    // Before login: a 100 MB synchronizing literal is refused at once
    // (the client never sends it), a non-synchronizing one ends the
    // connection before any of it is read.
    let mut c = Client::connect(&addr);
    c.line();
    let t = Instant::now();
    assert_eq!(c.run("a1", "LOGIN {104857600}"), "a1 NO [TOOBIG] Literal too large before login.");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(c.run("a2", "NOOP"), "a2 OK NOOP completed.");
    c.send("a3 LOGIN {104857600+}");
    assert_eq!(c.line(), "* BYE Literal too large before login.");
    assert!(c.closed());
    // A line over the pre-login bound.
    let mut c = Client::connect(&addr);
    c.line();
    c.send_raw(&[b'x'; 9000]);
    assert_eq!(c.line(), "* BYE Too long command line.");
    assert!(c.closed());
    // Binary garbage, then unbalanced quotes; ten bad commands close.
    let mut c = Client::connect(&addr);
    c.line();
    c.send_raw(b"\x00\xff\xfe garbage \x01\r\n");
    assert_eq!(c.line(), "* BAD Error in IMAP command.");
    assert_eq!(c.run("b1", "LOGIN \"suporte suporte"), "b1 BAD Error in IMAP command.");
    for i in 2..9 {
        assert_eq!(c.run(&format!("b{i}"), "FOO"), format!("b{i} BAD Error in IMAP command."));
    }
    c.send("b9 BAR");
    assert_eq!(c.line(), "b9 BAD Error in IMAP command.");
    assert_eq!(c.line(), "* BYE Too many invalid IMAP commands.");
    assert!(c.closed());

    // After login.
    let mut c = Client::login(&addr, "suporte", "suporte");
    let bad = "BAD Error in IMAP command received by server.";
    assert_eq!(c.run("c1", "FETCH ("), format!("c1 {bad}"));
    c.ok("c2", "SELECT INBOX");
    assert_eq!(c.run("c3", "FETCH 1 (FLAGS"), format!("c3 {bad}"));
    assert_eq!(c.run("c4", "SELECT \"INBOX"), format!("c4 {bad}"));
    // A failed SELECT leaves nothing selected; select again.
    c.ok("c5", "SELECT INBOX");
    assert_eq!(c.run("c6", "FETCH 4294967296 FLAGS"), format!("c6 {bad}"));
    assert_eq!(c.run("c7", "FETCH 0 FLAGS"), format!("c7 {bad}"));
    assert_eq!(c.run("c8", "FETCH 0:1 FLAGS"), format!("c8 {bad}"));
    assert_eq!(c.ok("c9", "FETCH *:1 UID"), "* 1 FETCH (UID 1)\r\nc9 OK Fetch completed.");
    assert_eq!(c.ok("c10", "FETCH 1:* UID"), "* 1 FETCH (UID 1)\r\nc10 OK Fetch completed.");
    assert_eq!(c.run("c11", "FETCH 2 UID"), "c11 BAD Error in IMAP command: Invalid messageset.");
    c.send_raw(b"c12 FETCH 1 \x00\xff\r\n");
    assert_eq!(c.until("c12"), format!("c12 {bad}"));
    // A literal longer than announced: the rest is the command line's.
    c.send("c13 SEARCH SUBJECT {3}");
    assert_eq!(c.line(), "+ OK");
    c.send_raw(b"keep me\r\n");
    assert_eq!(c.until("c13"), format!("c13 {bad}"));
    // An empty mailbox: message numbers do not exist, UIDs match none.
    c.ok("c14", "SELECT Spam");
    assert_eq!(
        c.run("c15", "FETCH 1:* FLAGS"),
        "c15 BAD Error in IMAP command: Invalid messageset."
    );
    assert_eq!(
        c.run("c16", "FETCH *:1 FLAGS"),
        "c16 BAD Error in IMAP command: Invalid messageset."
    );
    assert_eq!(c.ok("c17", "UID FETCH 1:* FLAGS"), "c17 OK Fetch completed.");
    assert_eq!(c.ok("c18", "SEARCH ALL"), "* SEARCH\r\nc18 OK Search completed.");
    assert_eq!(c.ok("c19", "EXPUNGE"), "c19 OK Expunge completed.");
    // An APPEND over message_size_limit is refused from the announcement.
    assert_eq!(
        c.run("c20", "APPEND Spam {104857600}"),
        "c20 NO [TOOBIG] Literal of 104857600 octets is over the limit of 10240000."
    );
    // Names that would leave the Maildir.
    for (i, name) in ["../x", "a/b", ".hidden", "a..b", "\"\""].iter().enumerate() {
        assert_eq!(
            c.run(&format!("n{i}"), &format!("CREATE {name}")),
            format!("n{i} NO Invalid mailbox name.")
        );
    }
    assert_eq!(c.ok("c21", "NOOP"), "c21 OK NOOP completed.");
    // The client vanishes in the middle of an APPEND's literal.
    c.send("c22 APPEND Spam {100}");
    assert_eq!(c.line(), "+ OK");
    c.send_raw(b"Subject: half\r\n\r\nonly part of it");
    drop(c);
    // A literal never sent: the server waits, the client leaves.
    let mut c = Client::login(&addr, "suporte", "suporte");
    c.send("d1 APPEND Spam {10}");
    assert_eq!(c.line(), "+ OK");
    drop(c);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(files(&md.join(".Spam")), 0, "nothing half-written");

    // The server is up and INBOX is as it was.
    let mut c = Client::login(&addr, "suporte", "suporte");
    c.ok("e1", "SELECT INBOX");
    let body = c.ok("e2", "FETCH 1 BODY.PEEK[TEXT]");
    assert!(body.contains("intact"), "{body}");
    c.ok("e3", "LOGOUT");
    assert_eq!(files(&md), 1);
}
