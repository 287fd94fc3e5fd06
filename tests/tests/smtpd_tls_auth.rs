//! Issue 7: STARTTLS, implicit TLS and AUTH end to end, through a dev
//! instance's three services (`smtp`, `submission`, `smtps`), its
//! self-signed certificate and its authd.
//!
//! Every TLS session here verifies the server against the certificate
//! `postern init --dev` wrote (`DIR/tls/cert.pem`), for `localhost`.
//! Clients that must not count as trusted connect from 127.0.0.2, with
//! `mynetworks` narrowed to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use tests::smtp::Client;
use tests::{Instance, Options, wait_until};

const PLAIN_SUPORTE: &str = "AHN1cG9ydGUAc3Vwb3J0ZQ=="; // \0suporte\0suporte
const PLAIN_WRONG: &str = "AHN1cG9ydGUAZXJyYWRh"; // \0suporte\0errada

fn start() -> Instance {
    Instance::start_with(Options {
        before_start: Some(tests::log_to_file),
        postconf: vec!["mynetworks = 127.0.0.1/32".into(), "smtpd_starttls_timeout = 3s".into()],
        ..Options::default()
    })
}

fn cert(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("tls/cert.pem")).expect("init --dev writes tls/cert.pem")
}

fn log(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

/// A client of `service` from the untrusted 127.0.0.2.
fn untrusted(inst: &Instance, service: &str) -> Client {
    Client::connect_from(&inst.addr(service), [127, 0, 0, 2].into())
}

#[test]
fn submission_requires_tls_then_auth_and_then_relays() {
    let inst = start();
    let cert = cert(&inst);
    let mut c = untrusted(&inst, "submission");
    c.expect_code(220);
    let ehlo = c.ehlo("client.example");
    assert!(ehlo.contains(&"250-STARTTLS".to_owned()), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "AUTH offered before TLS: {ehlo:?}");
    // No password over an open channel, and no mail before TLS.
    c.send(&format!("AUTH PLAIN {PLAIN_SUPORTE}"));
    c.expect("503 5.5.1 Error: authentication not enabled");
    c.send("MAIL FROM:<suporte@postern.test>");
    c.expect("530 5.7.0 Must issue a STARTTLS command first");
    c.starttls(&cert, "localhost").unwrap();
    assert!(c.tls().unwrap().starts_with("TLSv1."), "{:?}", c.tls());
    let ehlo = c.ehlo("client.example");
    assert!(ehlo.contains(&"250-AUTH PLAIN LOGIN".to_owned()), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    // Unauthenticated: the client restriction refuses at RCPT (Postfix's
    // smtpd_delay_reject).
    c.cmd("MAIL FROM:<suporte@postern.test>", 250);
    let refused = c.cmd("RCPT TO:<suporte@postern.test>", 554);
    assert!(refused.contains("Access denied"), "{refused}");
    c.cmd("RSET", 250);
    c.send(&format!("AUTH PLAIN {PLAIN_WRONG}"));
    c.expect("535 5.7.8 Error: authentication failed: authentication failure");
    c.send(&format!("AUTH PLAIN {PLAIN_SUPORTE}"));
    c.expect("235 2.7.0 Authentication successful");
    // Authenticated: not as someone else (smtpd_sender_login_maps) ...
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.send("RCPT TO:<suporte@postern.test>");
    c.expect("553 5.7.1 <root@postern.test>: Sender address rejected: not owned by user suporte");
    c.cmd("RSET", 250);
    // ... but as oneself, relaying to another domain is allowed.
    c.cmd("MAIL FROM:<suporte@postern.test>", 250);
    c.cmd("RCPT TO:<alguem@example.net>", 250);
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: via submission\r\n\r\nola\r\n.\r\n");
    let queued = c.expect_code(250);
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    c.cmd("QUIT", 221);
    let mail = inst.wait_for_mail("suporte", 1, Duration::from_secs(30));
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("with ESMTPSA id "), "{text}");
    assert!(text.contains("(using TLSv1."), "{text}");
    let log = log(&inst);
    assert!(
        log.contains("postern/submission/smtpd[")
            && log.contains(
                "warning: localhost[127.0.0.2]: SASL PLAIN authentication failed: authentication failure\n"
            ),
        "{log}"
    );
    assert!(log.contains("sasl_method=PLAIN, sasl_username=suporte"), "{log}");
}

#[test]
fn smtps_speaks_tls_first_and_auth_login_works() {
    let inst = start();
    let cert = cert(&inst);
    let mut c = Client::connect_tls(&inst.addr("smtps"), &cert, "localhost").unwrap();
    c.expect_code(220);
    let ehlo = c.ehlo("client.example");
    assert!(ehlo.contains(&"250-AUTH PLAIN LOGIN".to_owned()), "{ehlo:?}");
    c.send("AUTH LOGIN");
    c.expect("334 VXNlcm5hbWU6");
    c.send("c3Vwb3J0ZQ==");
    c.expect("334 UGFzc3dvcmQ6");
    c.send("c3Vwb3J0ZQ==");
    c.expect("235 2.7.0 Authentication successful");
    c.send("AUTH LOGIN");
    c.expect("503 5.5.1 Error: already authenticated");
    c.cmd("QUIT", 221);
    // A certificate for another name is refused by the client: the
    // check above was real.
    assert!(Client::connect_tls(&inst.addr("smtps"), &cert, "other.example").is_err());
}

#[test]
fn port_25_offers_starttls_and_never_relays_without_auth() {
    let inst = start();
    let cert = cert(&inst);
    let mut c = untrusted(&inst, "smtp");
    c.expect_code(220);
    let ehlo = c.ehlo("client.example");
    assert!(ehlo.contains(&"250-STARTTLS".to_owned()), "{ehlo:?}");
    // Port 25 has no AUTH (smtpd_sasl_auth_enable = no).
    c.starttls(&cert, "localhost").unwrap();
    let ehlo = c.ehlo("client.example");
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "{ehlo:?}");
    c.cmd("MAIL FROM:<x@example.org>", 250);
    c.send("RCPT TO:<alguem@example.net>");
    c.expect("554 5.7.1 <alguem@example.net>: Relay access denied");
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("QUIT", 221);
}

#[test]
fn aborted_and_garbled_auth_get_protocol_errors() {
    let inst = start();
    let mut c = Client::connect_tls(&inst.addr("smtps"), &cert(&inst), "localhost").unwrap();
    c.expect_code(220);
    c.ehlo("client.example");
    c.send("AUTH PLAIN");
    c.expect("334 ");
    c.send("*");
    c.expect("501 5.7.0 Authentication aborted");
    c.send("AUTH PLAIN !!!notbase64");
    c.expect("501 5.5.2 Cannot decode response");
    c.send("AUTH CRAM-MD5");
    c.expect("504 5.5.4 Unrecognized authentication type");
    // The session is still usable.
    c.send(&format!("AUTH PLAIN {PLAIN_SUPORTE}"));
    c.expect("235 2.7.0 Authentication successful");
    c.cmd("QUIT", 221);
}

#[test]
fn a_handshake_that_never_completes_is_cut_off() {
    let inst = start();
    // smtps: connect and say nothing.
    let mut idle = Client::connect(&inst.addr("smtps"));
    idle.set_timeout(Duration::from_secs(20));
    let t = Instant::now();
    assert!(idle.closed(), "the server kept a silent TLS client");
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(15), "{took:?}");
    wait_until(Duration::from_secs(10), || {
        log(&inst).contains("SSL_accept error from localhost[127.0.0.1]: timeout").then_some(())
    });
    // The service still works.
    let mut c = Client::connect_tls(&inst.addr("smtps"), &cert(&inst), "localhost").unwrap();
    c.expect_code(220);
    c.cmd("QUIT", 221);
}

#[test]
fn reload_takes_a_new_certificate_without_dropping_sessions() {
    let inst = start();
    let old = cert(&inst);
    let mut open = Client::connect_tls(&inst.addr("smtps"), &old, "localhost").unwrap();
    open.expect_code(220);
    open.ehlo("client.example");
    let new = mail_tls::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    std::fs::write(inst.dir.join("tls/key.pem"), &new.key_pem).unwrap();
    std::fs::write(inst.dir.join("tls/cert.pem"), &new.cert_pem).unwrap();
    inst.reload();
    // The session from before the reload goes on, inside its TLS.
    open.cmd("NOOP", 250);
    // New sessions get the new certificate: a client that trusts only the
    // old one refuses the server now.
    wait_until(Duration::from_secs(20), || {
        Client::connect_tls(&inst.addr("smtps"), &old, "localhost").is_err().then_some(())
    });
    let mut c = Client::connect_tls(&inst.addr("smtps"), &new.cert_pem, "localhost").unwrap();
    c.expect_code(220);
    c.cmd("QUIT", 221);
    open.cmd("QUIT", 221);
}
