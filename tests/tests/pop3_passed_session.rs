//! A plain POP3 session after its login is the client's own connection,
//! passed to the mail process (the login process is out of its path, as
//! in Dovecot): it goes on when the login process is killed, while a TLS
//! session, which the login process relays, ends with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, Options, pop3};

#[test]
fn a_plain_session_outlives_its_login_process() {
    let inst =
        Instance::start_with(Options { users: vec!["outro:outro".into()], ..Options::default() });
    inst.sendmail(&["suporte"], tests::tutorial_message());
    inst.wait_for_mail("suporte", 1, Duration::from_secs(20));
    let mut plain = pop3::Client::logged_in(&inst.addr("pop3"), "suporte", "suporte");
    let cert = std::fs::read_to_string(inst.dir.join("tls/cert.pem")).unwrap();
    let mut tls = pop3::Client::connect(&inst.addr("pop3"));
    tls.greeting();
    tls.stls(&cert, "localhost").unwrap();
    tls.ok("USER outro");
    tls.ok("PASS outro");
    let login = inst.worker_pids("pop3");
    assert_eq!(login.len(), 1, "{login:?}");
    tests::kill9(login[0]);
    let stat = plain.ok("STAT");
    assert!(stat.starts_with("+OK 1 "), "{stat}");
    plain.send("RETR 1");
    assert!(plain.line().starts_with("+OK"));
    let body = String::from_utf8(plain.body()).unwrap();
    assert!(body.contains("Subject:"), "{body}");
    plain.ok("QUIT");
    assert!(tls.closed(), "the relayed TLS session ends with its login process");
}
