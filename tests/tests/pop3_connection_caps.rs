//! Issue 9's caps per client address and per user
//! (`pop3_client_connection_limit`, `pop3_user_connection_limit`, and
//! imapd's same two), counted by anvil across processes: the `pop3` and
//! `pop3s` services are two login processes, and a logged-in session is
//! held by its mail process (a plain one is passed there whole), so only
//! a count across all of them refuses what these tests expect. The
//! replies are Dovecot's kind, and the log line says which cap and what
//! count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, Options, imap, pop3};

fn cert(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("tls/cert.pem")).expect("init --dev writes tls/cert.pem")
}

fn log(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

fn wait_log(inst: &Instance, needle: &str) -> String {
    tests::wait_until(Duration::from_secs(10), || {
        let l = log(inst);
        l.lines().find(|l| l.contains(needle)).map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no log line with {needle:?} in:\n{}", log(inst)))
}

/// Logs in over pop3s (TLS, the other login process) and returns the
/// answer to PASS.
fn pass_over_pop3s(inst: &Instance) -> (pop3::Client, String) {
    let mut c = pop3::Client::connect_tls(&inst.addr("pop3s"), &cert(inst), "localhost").unwrap();
    c.greeting();
    c.ok("USER suporte");
    c.send("PASS suporte");
    let answer = c.line();
    (c, answer)
}

#[test]
fn pop3_caps_hold_across_login_and_mail_processes() {
    let inst = Instance::start_with(Options {
        postconf: vec![
            "pop3_user_connection_limit = 1".into(),
            "pop3_client_connection_limit = 3".into(),
        ],
        before_start: Some(tests::log_to_file),
        ..Options::default()
    });
    // A plain session, passed whole to its mail process.
    let mut a = pop3::Client::logged_in(&inst.addr("pop3"), "suporte", "suporte");
    a.ok("STAT");

    // The same user through the other login process.
    let (_b, answer) = pass_over_pop3s(&inst);
    assert_eq!(answer, "-ERR [IN-USE] Too many sessions for this user.");
    let line = wait_log(&inst, "too many sessions");
    assert!(line.contains("user=<suporte>: too many sessions: 2"), "{line}");
    assert!(line.contains("(pop3_user_connection_limit = 1)"), "{line}");

    // From one address: a's session (held by the mail process), one
    // unauthenticated connection on each login service, then one too many.
    let mut c = pop3::Client::connect_tls(&inst.addr("pop3s"), &cert(&inst), "localhost").unwrap();
    c.greeting();
    let mut d = pop3::Client::connect(&inst.addr("pop3"));
    d.greeting();
    let mut e = pop3::Client::connect(&inst.addr("pop3"));
    assert_eq!(e.line(), "-ERR [SYS/TEMP] Too many connections from your address.");
    assert!(e.closed());
    let line = wait_log(&inst, "too many connections");
    assert!(line.contains("[127.0.0.1]: too many connections: 4"), "{line}");
    assert!(line.contains("(pop3_client_connection_limit = 3)"), "{line}");

    // Sessions that end give their places back, however they were held.
    a.ok("QUIT");
    assert!(a.closed());
    drop(c);
    drop(d);
    let b = tests::wait_until(Duration::from_secs(10), || {
        let (b, answer) = pass_over_pop3s(&inst);
        answer.starts_with("+OK").then_some(b)
    });
    let mut b = b.expect("a new session once the first one ended");
    b.ok("STAT");
    b.ok("QUIT");
}

#[test]
fn imap_user_cap_holds_across_login_processes() {
    let inst = Instance::start_with(Options {
        postconf: vec!["imap_user_connection_limit = 1".into()],
        before_start: Some(tests::log_to_file),
        ..Options::default()
    });
    let mut a = imap::Client::login(&inst.addr("imap"), "suporte", "suporte");
    a.ok("a1", "NOOP");
    let mut b = imap::Client::connect_tls(&inst.addr("imaps"), &cert(&inst), "localhost").unwrap();
    let _greeting = b.line();
    b.send("b1 LOGIN suporte suporte");
    assert_eq!(
        b.line(),
        "* BYE [LIMIT] Maximum number of connections from user exceeded \
         (imap_user_connection_limit=1)."
    );
    let line = wait_log(&inst, "too many sessions");
    assert!(line.contains("user=<suporte>: too many sessions: 2"), "{line}");
    assert!(line.contains("(imap_user_connection_limit = 1)"), "{line}");
    a.ok("a2", "LOGOUT");
    let ok = tests::wait_until(Duration::from_secs(10), || {
        let mut b =
            imap::Client::connect_tls(&inst.addr("imaps"), &cert(&inst), "localhost").unwrap();
        let _greeting = b.line();
        b.send("b2 LOGIN suporte suporte");
        b.line().starts_with("b2 OK").then_some(())
    });
    assert!(ok.is_some(), "a new IMAP session once the first one ended");
}
