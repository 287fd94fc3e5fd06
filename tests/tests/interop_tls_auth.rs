//! Issue 7: clients that are not ours send through submission and smtps
//! with TLS and AUTH: the `lettre` SMTP library (STARTTLS on 587,
//! implicit TLS on 465, AUTH PLAIN and LOGIN, the instance's certificate
//! verified), and Debian's `swaks` and `curl` (skipped with a reason when
//! missing; the test runner installs both as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::process::Command;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use tests::{Instance, have_tool, skip};

fn port(inst: &Instance, service: &str) -> u16 {
    inst.addr(service).rsplit(':').next().unwrap().parse().unwrap()
}

fn tls_params(inst: &Instance) -> TlsParameters {
    let pem = std::fs::read(inst.dir.join("tls/cert.pem")).unwrap();
    TlsParameters::builder("localhost".to_owned())
        .add_root_certificate(Certificate::from_pem(&pem).unwrap())
        .build_rustls()
        .unwrap()
}

fn message(subject: &str) -> Message {
    Message::builder()
        .from("Suporte <suporte@postern.test>".parse::<Mailbox>().unwrap())
        .to("suporte@postern.test".parse::<Mailbox>().unwrap())
        .subject(subject)
        .body(format!("corpo de {subject}\r\n"))
        .unwrap()
}

#[test]
fn lettre_sends_over_submission_and_smtps() {
    let inst = Instance::start();
    let creds = Credentials::new("suporte".into(), "suporte".into());
    let starttls = SmtpTransport::builder_dangerous("localhost")
        .port(port(&inst, "submission"))
        .tls(Tls::Required(tls_params(&inst)))
        .credentials(creds.clone())
        .authentication(vec![Mechanism::Plain])
        .build();
    let r = starttls.send(&message("via 587")).expect("lettre over submission");
    assert!(r.code().to_string().starts_with('2'), "{r:?}");
    let implicit = SmtpTransport::builder_dangerous("localhost")
        .port(port(&inst, "smtps"))
        .tls(Tls::Wrapper(tls_params(&inst)))
        .credentials(creds)
        .authentication(vec![Mechanism::Login])
        .build();
    implicit.send(&message("via 465")).expect("lettre over smtps");
    let texts = {
        inst.wait_for_mail("suporte", 2, Duration::from_secs(30));
        inst.new_mail_texts("suporte")
    };
    for s in ["via 587", "via 465"] {
        assert!(
            texts.iter().any(|t| t.contains(&format!("Subject: {s}")) && t.contains("ESMTPSA")),
            "{s}: {texts:?}"
        );
    }
    // A wrong password is refused, and nothing is sent.
    let wrong = SmtpTransport::builder_dangerous("localhost")
        .port(port(&inst, "submission"))
        .tls(Tls::Required(tls_params(&inst)))
        .credentials(Credentials::new("suporte".into(), "errada".into()))
        .build();
    let err = wrong.send(&message("never")).unwrap_err();
    assert!(err.to_string().contains("535"), "{err}");
}

#[test]
fn swaks_starttls_and_auth_on_submission() {
    if !have_tool("swaks") {
        skip("swaks not installed (apt-get install swaks)");
        return;
    }
    let perl_has = |m: &str| {
        Command::new("perl").args([&format!("-M{m}"), "-e1"]).status().is_ok_and(|s| s.success())
    };
    if !perl_has("Net::SSLeay") || !perl_has("Authen::SASL") {
        skip(
            "swaks cannot do --tls/--auth (apt-get install libnet-ssleay-perl libauthen-sasl-perl)",
        );
        return;
    }
    let inst = Instance::start();
    let out = Command::new("swaks")
        .args(["--server", &inst.addr("submission"), "--tls"])
        .args(["--auth", "LOGIN", "--auth-user", "suporte", "--auth-password", "suporte"])
        .args(["--from", "suporte@postern.test", "--to", "alguem@example.net"])
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    eprintln!("{transcript}");
    assert!(out.status.success(), "swaks exited {:?}", out.status);
    for want in ["<-  220 2.0.0 Ready to start TLS", "<~  235 2.7.0 Authentication successful"] {
        assert!(transcript.lines().any(|l| l == want), "swaks transcript lacks {want:?}");
    }
    assert!(transcript.lines().any(|l| l.starts_with("<~  250 2.0.0 Ok: queued as ")));
}

#[test]
fn curl_smtps_with_auth_verifies_the_certificate() {
    if !have_tool("curl") {
        skip("curl not installed (apt-get install curl)");
        return;
    }
    let inst = Instance::start();
    let file = inst.dir.join("msg.eml");
    std::fs::write(&file, "Subject: curl smtps\r\n\r\nola\r\n").unwrap();
    let url = format!("smtps://localhost:{}/client.example", port(&inst, "smtps"));
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--verbose", &url])
        .arg("--cacert")
        .arg(inst.dir.join("tls/cert.pem"))
        .args(["--user", "suporte:suporte", "--mail-from", "suporte@postern.test"])
        .args(["--mail-rcpt", "suporte@postern.test", "--upload-file"])
        .arg(&file)
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stderr);
    eprintln!("{transcript}");
    assert!(out.status.success(), "curl exited {:?}", out.status);
    assert!(transcript.lines().any(|l| l == "< 235 2.7.0 Authentication successful"));
    let mail = inst.wait_for_mail("suporte", 1, Duration::from_secs(30));
    assert!(std::fs::read_to_string(&mail[0]).unwrap().contains("Subject: curl smtps"));
}
