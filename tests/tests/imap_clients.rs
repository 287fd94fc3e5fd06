//! Issue 10: real IMAP clients against a real instance: curl (imap://
//! listing and fetching, STARTTLS with --ssl-reqd, imaps://) and Python's
//! imaplib (LOGIN, STARTTLS, IMAP4_SSL, LIST, SELECT, SEARCH, FETCH,
//! STORE, APPEND, COPY, EXPUNGE). Without the tool a test says
//! `skipped: ...`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::process::{Command, Output};
use std::time::Duration;
use tests::{Instance, have_tool, skip};

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "{cmd:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (out, stdout)
}

fn deliver(inst: &Instance, n: usize) {
    for i in 1..=n {
        inst.sendmail(&["suporte@postern.test"], &format!("Subject: m{i}\n\nMensagem {i}\n"));
    }
    inst.wait_for_mail("suporte", n, Duration::from_secs(30));
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

#[test]
fn curl_imap_starttls_and_imaps() {
    if !have_tool("curl") {
        skip("curl is not installed");
        return;
    }
    let inst = Instance::start();
    deliver(&inst, 2);
    let cert = inst.dir.join("tls/cert.pem");
    let imap = inst.addr("imap");
    let (out, list) = run(Command::new("curl")
        .args(["-sS", "-u", "suporte:suporte"])
        .arg(format!("imap://{imap}/")));
    assert!(out.status.success());
    assert!(list.contains("* LIST (\\HasNoChildren) \".\" \"INBOX\""), "{list}");
    assert!(list.contains("\\Sent) \".\" \"Enviados\""), "{list}");
    let (out, m1) = run(Command::new("curl")
        .args(["-sS", "-u", "suporte:suporte"])
        .arg(format!("imap://{imap}/INBOX;UID=1")));
    assert!(
        out.status.success() && m1.contains("Subject: m1") && m1.contains("Mensagem 1"),
        "{m1}"
    );
    let (out, found) = run(Command::new("curl")
        .args(["-sS", "-u", "suporte:suporte"])
        .arg(format!("imap://{imap}/INBOX?SUBJECT%20m2")));
    assert!(out.status.success() && found.trim() == "* SEARCH 2", "{found}");
    // STARTTLS, the certificate checked for localhost.
    let p = port(&imap);
    let (out, m2) = run(Command::new("curl")
        .args(["-sS", "--ssl-reqd", "--cacert"])
        .arg(&cert)
        .args(["--resolve", &format!("localhost:{p}:127.0.0.1"), "-u", "suporte:suporte"])
        .arg(format!("imap://localhost:{p}/INBOX;UID=2")));
    assert!(out.status.success() && m2.contains("Mensagem 2"), "{m2}");
    let imaps = inst.addr("imaps");
    let p = port(&imaps);
    let (out, m1s) = run(Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .args(["--resolve", &format!("localhost:{p}:127.0.0.1"), "-u", "suporte:suporte"])
        .arg(format!("imaps://localhost:{p}/INBOX;UID=1")));
    assert!(out.status.success());
    assert_eq!(m1s, m1);
    // A wrong password: curl's login-denied code (67).
    let (out, _) = run(Command::new("curl")
        .args(["-sS", "-u", "suporte:wrong"])
        .arg(format!("imap://{imap}/")));
    assert_eq!(out.status.code(), Some(67));
}

const IMAPLIB: &str = r#"
import imaplib, ssl, sys
host, port, sport, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
m = imaplib.IMAP4(host, port)
assert 'STARTTLS' in m.capabilities, m.capabilities
m.starttls(ssl_context=ctx)
typ, _ = m.login('suporte', 'suporte'); assert typ == 'OK'
typ, boxes = m.list(); assert typ == 'OK'
assert any(b'"Lixeira"' in b and b'\\Trash' in b for b in boxes), boxes
typ, data = m.select('INBOX'); assert typ == 'OK' and data == [b'2'], data
typ, data = m.search(None, 'SUBJECT', 'm1'); assert data == [b'1'], data
typ, data = m.fetch('1', '(RFC822)'); assert b'Mensagem 1' in data[0][1], data
typ, data = m.fetch('1', '(FLAGS)'); assert b'\\Seen' in data[0], data
typ, data = m.uid('FETCH', '2', '(ENVELOPE)'); assert b'"m2"' in data[0], data
typ, data = m.append('Rascunhos', '(\\Draft)', None, b'Subject: rascunho\r\n\r\noi\r\n'); assert typ == 'OK', data
assert b'APPENDUID' in data[0], data
typ, data = m.copy('1:2', 'Enviados'); assert typ == 'OK' and b'COPYUID' in data[0], data
typ, data = m.store('2', '+FLAGS', '(\\Deleted)'); assert typ == 'OK', data
typ, data = m.expunge(); assert data == [b'2'], data
typ, data = m.status('Enviados', '(MESSAGES)'); assert b'MESSAGES 2' in data[0], data
m.logout()
s = imaplib.IMAP4_SSL(host, sport, ssl_context=ctx)
s.login('suporte', 'suporte')
typ, data = s.select('Rascunhos', readonly=True); assert data == [b'1'], data
typ, data = s.fetch('1', '(FLAGS BODY.PEEK[TEXT])'); assert data[0][1] == b'oi\r\n', data
s.logout()
print('imaplib ok')
"#;

#[test]
fn python_imaplib() {
    if !have_tool("python3") {
        skip("python3 is not installed");
        return;
    }
    let inst = Instance::start();
    deliver(&inst, 2);
    let p = port(&inst.addr("imap")).to_owned();
    let sport = port(&inst.addr("imaps")).to_owned();
    let (out, stdout) = run(Command::new("python3")
        .arg("-c")
        .arg(IMAPLIB)
        .args(["localhost", &p, &sport])
        .arg(inst.dir.join("tls/cert.pem")));
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Connection refused")
    {
        skip("localhost does not resolve to 127.0.0.1 first here");
        return;
    }
    assert!(out.status.success() && stdout.contains("imaplib ok"));
}
