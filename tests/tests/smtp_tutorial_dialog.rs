//! Item 2 of issue 2: the tutorial's telnet dialog, byte for byte, the
//! EHLO keywords, and the banner after the tutorial's `postconf -e
//! "smtpd_banner = Bem Vindo - \$myhostname"` + reload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use tests::{Instance, is_queue_id, smtp::Client, tutorial_message};

#[test]
fn tutorial_dialog_byte_for_byte() {
    let inst = Instance::start();
    let mut c = Client::connect(&inst.addr("smtp"));
    c.expect("220 mail.postern.test ESMTP Postern");
    c.send("HELO mail.fiap.edu.br");
    c.expect("250 mail.postern.test");
    c.send("MAIL FROM: <root@postern.test>");
    c.expect("250 2.1.0 Ok");
    c.send("RCPT TO: <suporte@postern.test>");
    c.expect("250 2.1.5 Ok");
    c.send("DATA");
    c.expect("354 End data with <CR><LF>.<CR><LF>");
    c.send_raw(tutorial_message().as_bytes());
    c.send(".");
    let r = c.reply();
    assert_eq!(r.len(), 1, "{r:?}");
    let id = r[0]
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("unexpected reply to end of data: {r:?}"));
    assert!(is_queue_id(id), "queue id {id:?} is not [0-9A-Z]{{10,32}}");
    c.send("QUIT");
    c.expect("221 2.0.0 Bye");
    assert!(c.closed(), "server did not close after 221");
}

#[test]
fn ehlo_lists_extensions() {
    let inst = Instance::start();
    let mut c = Client::connect(&inst.addr("smtp"));
    c.expect_code(220);
    let lines = c.ehlo("mail.fiap.edu.br");
    assert_eq!(lines[0], "250-mail.postern.test", "{lines:?}");
    let kw: Vec<&str> = lines.iter().map(|l| &l[4..]).collect();
    for want in ["PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"] {
        assert!(kw.contains(&want), "EHLO lacks {want}: {lines:?}");
    }
    assert!(lines.last().unwrap().starts_with("250 "), "{lines:?}");
    c.cmd("QUIT", 221);
}

#[test]
fn banner_follows_postconf_and_reload() {
    let inst = Instance::start();
    let mut before = Client::connect(&inst.addr("smtp"));
    before.expect("220 mail.postern.test ESMTP Postern");
    // The shell turns the tutorial's \$myhostname into $myhostname.
    inst.set_and_reload(&["smtpd_banner = Bem Vindo - $myhostname"]);
    let mut c = Client::connect(&inst.addr("smtp"));
    c.expect("220 Bem Vindo - mail.postern.test");
    c.cmd("QUIT", 221);
    // The connection opened before the reload is still served.
    before.cmd("HELO mail.fiap.edu.br", 250);
    before.cmd("QUIT", 221);
}
