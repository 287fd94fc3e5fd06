//! Issue 9: real POP3 clients from Debian against a real instance: curl
//! (pop3://, STLS with --ssl-reqd, pop3s://), Python's poplib (USER/PASS,
//! STLS, POP3_SSL, UIDL, TOP, DELE) and fetchmail downloading with and
//! without TLS. Without the tool a test says `skipped: ...` (tests/run.sh
//! installs curl and fetchmail as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
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

fn messages_left(inst: &Instance) -> usize {
    let md = inst.maildir("suporte");
    std::fs::read_dir(md.join("new")).unwrap().count()
        + std::fs::read_dir(md.join("cur")).unwrap().count()
}

#[test]
fn curl_pop3_stls_and_pop3s() {
    if !have_tool("curl") {
        skip("curl is not installed");
        return;
    }
    let inst = Instance::start();
    deliver(&inst, 2);
    let cert = inst.dir.join("tls/cert.pem");
    let pop3 = inst.addr("pop3");
    let (out, list) = run(Command::new("curl")
        .args(["-sS", "-u", "suporte:suporte"])
        .arg(format!("pop3://{pop3}/")));
    assert!(out.status.success());
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("1 ") && lines[1].starts_with("2 "), "{list}");
    let (out, m1) = run(Command::new("curl")
        .args(["-sS", "-u", "suporte:suporte"])
        .arg(format!("pop3://{pop3}/1")));
    assert!(
        out.status.success() && m1.contains("Mensagem 1") && m1.contains("Subject: m1"),
        "{m1}"
    );
    // The size LIST gave is the size curl received.
    assert_eq!(lines[0], format!("1 {}", m1.len()));
    // STLS, with the certificate checked for localhost.
    let p = port(&pop3);
    let (out, m2) = run(Command::new("curl")
        .args(["-sS", "--ssl-reqd", "--cacert"])
        .arg(&cert)
        .args(["--resolve", &format!("localhost:{p}:127.0.0.1"), "-u", "suporte:suporte"])
        .arg(format!("pop3://localhost:{p}/2")));
    assert!(out.status.success() && m2.contains("Mensagem 2"), "{m2}");
    let pop3s = inst.addr("pop3s");
    let p = port(&pop3s);
    let (out, m1s) = run(Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .args(["--resolve", &format!("localhost:{p}:127.0.0.1"), "-u", "suporte:suporte"])
        .arg(format!("pop3s://localhost:{p}/1")));
    assert!(out.status.success());
    assert_eq!(m1s, m1);
    // A wrong password: curl fails with its login-denied code (67).
    let (out, _) = run(Command::new("curl")
        .args(["-sS", "-u", "suporte:wrong"])
        .arg(format!("pop3://{pop3}/1")));
    assert_eq!(out.status.code(), Some(67));
    assert_eq!(messages_left(&inst), 2);
}

const POPLIB: &str = r#"
import poplib, ssl, sys
host, port, sport, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
p = poplib.POP3(host, port, timeout=20)
assert p.getwelcome() == b"+OK Postern ready.", p.getwelcome()
caps = p.capa()
assert "STLS" in caps and "UIDL" in caps and "TOP" in caps, caps
p.stls(context=ctx)
assert "STLS" not in p.capa()
p.user("suporte"); p.pass_("suporte")
count, size = p.stat()
assert count == 2, count
resp, listing, _ = p.list()
sizes = [int(l.split()[1]) for l in listing]
assert sum(sizes) == size, (sizes, size)
resp, lines, octets = p.retr(1)
assert b"Mensagem 1" in lines, lines
resp, uidls, _ = p.uidl()
resp, top, _ = p.top(2, 0)
assert top[-1] == b"" and any(l.startswith(b"Subject: m2") for l in top), top
p.dele(1)
p.quit()
s = poplib.POP3_SSL("localhost", sport, context=ctx, timeout=20)
s.user("suporte"); s.pass_("suporte")
assert s.stat()[0] == 1
ids = lambda listing: [l.split()[1] for l in listing]
assert ids(s.uidl()[1]) == ids(uidls)[1:], (s.uidl(), uidls)
try:
    s.retr(5)
    raise SystemExit("RETR 5 succeeded")
except poplib.error_proto as e:
    assert e.args[0].startswith(b"-ERR"), e
s.quit()
print("poplib ok")
"#;

#[test]
fn python_poplib() {
    if !have_tool("python3") {
        skip("python3 is not installed");
        return;
    }
    let inst = Instance::start();
    deliver(&inst, 2);
    let pop3 = inst.addr("pop3");
    let p = port(&pop3);
    // The certificate names localhost, so both connections go there; it
    // must be 127.0.0.1 here (where the instance listens).
    let sport = port(&inst.addr("pop3s")).to_owned();
    let (out, stdout) = run(Command::new("python3")
        .arg("-c")
        .arg(POPLIB)
        .args(["localhost", p, &sport])
        .arg(inst.dir.join("tls/cert.pem")));
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Connection refused")
    {
        skip("localhost does not resolve to 127.0.0.1 first here");
        return;
    }
    assert!(out.status.success() && stdout.contains("poplib ok"));
    assert_eq!(messages_left(&inst), 1);
}

fn fetchmail(home: &Path, rc: &str) -> (Output, String) {
    let rcfile = home.join("fetchmailrc");
    std::fs::write(&rcfile, rc).unwrap();
    std::fs::set_permissions(&rcfile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    run(Command::new("timeout")
        .args(["60", "fetchmail", "-v", "-f"])
        .arg(&rcfile)
        .arg("-i")
        .arg(home.join("fetchids"))
        .env("HOME", home))
}

#[test]
fn fetchmail_with_and_without_tls() {
    if !have_tool("fetchmail") {
        skip("fetchmail is not installed (apt-get install fetchmail)");
        return;
    }
    let inst = Instance::start();
    deliver(&inst, 2);
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    let cert = inst.dir.join("tls/cert.pem");
    // Plain POP3, keeping the messages.
    let rc = format!(
        "set no syslog\npoll localhost via 127.0.0.1 service {} protocol POP3 uidl\n  \
         user suporte there with password suporte is root here\n  sslproto '' keep\n  \
         mda \"cat >> {}\"\n",
        port(&inst.addr("pop3")),
        out.display()
    );
    let (o, _) = fetchmail(home.path(), &rc);
    assert!(o.status.success(), "fetchmail (plain) failed");
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(got.contains("Mensagem 1") && got.contains("Mensagem 2"), "{got}");
    assert_eq!(messages_left(&inst), 2);
    // pop3s with the certificate checked, fetching and deleting.
    std::fs::remove_file(&out).unwrap();
    let _ = std::fs::remove_file(home.path().join("fetchids"));
    let rc = format!(
        "set no syslog\npoll localhost via 127.0.0.1 service {} protocol POP3 uidl\n  \
         user suporte there with password suporte is root here\n  \
         ssl sslcommonname localhost sslcertck sslcertfile {}\n  mda \"cat >> {}\"\n",
        port(&inst.addr("pop3s")),
        cert.display(),
        out.display()
    );
    let (o, log) = fetchmail(home.path(), &rc);
    assert!(o.status.success(), "fetchmail (pop3s) failed");
    assert!(log.contains("using protocol TLSv1."), "{log}");
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(got.contains("Mensagem 1") && got.contains("Mensagem 2"), "{got}");
    assert_eq!(messages_left(&inst), 0);
    // STLS on the pop3 port: the new message comes over TLS too.
    deliver(&inst, 1);
    std::fs::remove_file(&out).unwrap();
    let rc = format!(
        "set no syslog\npoll localhost via 127.0.0.1 service {} protocol POP3 uidl\n  \
         user suporte there with password suporte is root here\n  \
         sslproto TLS1.2+ sslcommonname localhost sslcertck sslcertfile {}\n  mda \"cat >> {}\"\n",
        port(&inst.addr("pop3")),
        cert.display(),
        out.display()
    );
    let (o, log) = fetchmail(home.path(), &rc);
    assert!(o.status.success(), "fetchmail (STLS) failed");
    assert!(log.contains("POP3> STLS") && log.contains("using protocol TLSv1."), "{log}");
    assert!(std::fs::read_to_string(&out).unwrap().contains("Mensagem 1"));
}
