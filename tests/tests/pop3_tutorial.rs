//! Issue 9, the tutorial's last step on a real instance: a message sent
//! through smtpd, then `telnet mail 110`, `user suporte`, `pass
//! suporte`, `retr 1`, `quit`, compared byte for byte with what a telnet
//! user sees; the message then sits in `cur/` with the Seen flag.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{Read, Write};
use std::time::Duration;
use tests::{Instance, tutorial_message};

/// The file's bytes as POP3 sends them: CRLF line ends, dots stuffed.
fn as_sent(file: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(file).replace("\r\n", "\n");
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        let line = line.strip_suffix('\n').unwrap_or(line);
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn tutorial_session_byte_for_byte() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.cmd("HELO mail.fiap.edu.br", 250);
    c.send_mail("root@postern.test", &["suporte@postern.test"], tutorial_message());
    c.cmd("QUIT", 221);
    let files = inst.wait_for_mail("suporte", 1, Duration::from_secs(20));
    let file = std::fs::read(&files[0]).unwrap();
    let body = as_sent(&file);
    let octets = body.len()
        - body.iter().zip(body.iter().skip(1)).filter(|&(a, b)| *a == b'\n' && *b == b'.').count();

    let mut s = std::net::TcpStream::connect(inst.addr("pop3")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Typed one line at a time, as in telnet: each answer before the next line.
    let mut got = Vec::new();
    let read_until = |s: &mut std::net::TcpStream, got: &mut Vec<u8>, end: &[u8]| {
        let mut buf = [0u8; 4096];
        while !got.ends_with(end) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early; got {:?}", String::from_utf8_lossy(got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    read_until(&mut s, &mut got, b"\r\n");
    for (line, end) in [
        ("user suporte", &b"+OK\r\n"[..]),
        ("pass suporte", b"+OK Logged in.\r\n"),
        ("retr 1", b"\r\n.\r\n"),
        ("quit", b"+OK Logging out.\r\n"),
    ] {
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        read_until(&mut s, &mut got, end);
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "bytes after QUIT's reply: {rest:?}");

    let mut want = b"+OK Postern ready.\r\n+OK\r\n+OK Logged in.\r\n".to_vec();
    want.extend_from_slice(format!("+OK {octets} octets\r\n").as_bytes());
    want.extend_from_slice(&body);
    want.extend_from_slice(b".\r\n+OK Logging out.\r\n");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("\r\nE-mail teste - Comandos SMTP\r\n"), "{text}");

    // Retrieved: moved to cur/ with the Seen flag, and nothing deleted.
    assert!(inst.new_mail("suporte").is_empty());
    let cur: Vec<String> = std::fs::read_dir(inst.maildir("suporte").join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cur.len(), 1, "{cur:?}");
    assert!(cur[0].ends_with(":2,S"), "{cur:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(cur[0], format!("{name}:2,S"));
}

#[test]
fn status_lists_the_pop3_services() {
    let inst = Instance::start();
    let report = inst.status();
    let names: Vec<&str> = report.services.iter().map(|s| s.name.as_str()).collect();
    for want in ["pop3", "pop3s", "pop3-mail"] {
        assert!(names.contains(&want), "{names:?}");
    }
    let pop3 = report.services.iter().find(|s| s.name == "pop3").unwrap();
    assert_eq!(pop3.kind, "inet");
    assert!(pop3.listen[0].starts_with("127.0.0.1:"), "{:?}", pop3.listen);
    let mail = report.services.iter().find(|s| s.name == "pop3-mail").unwrap();
    assert_eq!(mail.kind, "unix");
    // On demand: no mail process before the first login.
    assert!(mail.workers.is_empty(), "{:?}", mail.workers);
}
