//! Issue 9: STLS (RFC 2595) on the pop3 service and implicit TLS on
//! pop3s, with the certificate `postern init --dev` wrote; what a client
//! pipelines before the handshake is never run inside TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::Instance;
use tests::pop3::Client;

fn cert(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("tls/cert.pem")).expect("init --dev writes tls/cert.pem")
}

fn deliver(inst: &Instance) {
    inst.sendmail(&["suporte@postern.test"], "Subject: over TLS\n\nsecret body\n");
    inst.wait_for_mail("suporte", 1, Duration::from_secs(20));
}

#[test]
fn stls_then_login() {
    let inst = Instance::start();
    deliver(&inst);
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    c.stls(&cert(&inst), "localhost").unwrap();
    // RFC 2595: CAPA again; STLS is no longer offered.
    c.ok("CAPA");
    let capa = c.lines();
    assert!(capa.contains(&"USER".to_string()) && !capa.contains(&"STLS".to_string()), "{capa:?}");
    assert_eq!(c.err("STLS"), "-ERR TLS is already active.");
    c.login("suporte", "suporte");
    c.ok("RETR 1");
    let body = String::from_utf8(c.body()).unwrap();
    assert!(body.contains("secret body"), "{body}");
    c.ok("QUIT");
    assert!(c.closed());
}

#[test]
fn pop3s_handshake_before_the_greeting() {
    let inst = Instance::start();
    deliver(&inst);
    let mut c = Client::connect_tls(&inst.addr("pop3s"), &cert(&inst), "localhost").unwrap();
    c.greeting();
    c.ok("CAPA");
    let capa = c.lines();
    assert!(!capa.contains(&"STLS".to_string()), "{capa:?}");
    c.login("suporte", "suporte");
    assert!(c.ok("STAT").starts_with("+OK 1 "));
    c.ok("QUIT");
    // A client that does not trust the certificate's name fails the handshake.
    assert!(Client::connect_tls(&inst.addr("pop3s"), &cert(&inst), "other.example").is_err());
    // One that speaks plain POP3 to pop3s gets no greeting, and the
    // connection is closed.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(inst.addr("pop3s")).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    plain.write_all(b"CAPA\r\n").unwrap();
    let mut got = Vec::new();
    plain.read_to_end(&mut got).unwrap();
    assert!(!String::from_utf8_lossy(&got).contains("+OK"), "{got:?}");
}
