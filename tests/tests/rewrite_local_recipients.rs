//! Issue 7, `local_recipient_maps`: smtpd's RCPT TO answers for local
//! domains follow the parameter. The default (the user database and
//! `$alias_maps`) refuses unknown names with 550 5.1.1; an extra key-value
//! table admits the names it lists, and the mail for such a name is
//! accepted and queued; the empty value accepts every local name, as
//! Postfix's "local_recipient_maps =" does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;

use tests::{Instance, Options};

fn write_extra(dir: &Path) {
    std::fs::write(dir.join("extra"), "# recipients without an account\nlista@postern.test  ok\n")
        .unwrap();
}

fn rcpt(c: &mut tests::smtp::Client, to: &str, want: &str) {
    c.send(&format!("RCPT TO:<{to}>"));
    c.expect(want);
}

#[test]
fn local_recipient_maps_decides_rcpt_to() {
    let inst =
        Instance::start_with(Options { before_start: Some(write_extra), ..Options::default() });
    // The default: users (the dev passwd-file) and the aliases file.
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    rcpt(&mut c, "suporte@postern.test", "250 2.1.5 Ok");
    rcpt(&mut c, "postmaster@postern.test", "250 2.1.5 Ok");
    rcpt(
        &mut c,
        "ninguem@postern.test",
        "550 5.1.1 <ninguem@postern.test>: Recipient address rejected: User unknown in local recipient table",
    );
    rcpt(
        &mut c,
        "lista@postern.test",
        "550 5.1.1 <lista@postern.test>: Recipient address rejected: User unknown in local recipient table",
    );
    c.cmd("QUIT", 221);

    // An extra table admits what it lists; the others stay refused.
    inst.set_and_reload(&[
        "local_recipient_maps = proxy:unix:passwd.byname $alias_maps hash:extra",
    ]);
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    rcpt(&mut c, "lista@postern.test", "250 2.1.5 Ok");
    rcpt(&mut c, "suporte@postern.test", "250 2.1.5 Ok");
    rcpt(
        &mut c,
        "ninguem@postern.test",
        "550 5.1.1 <ninguem@postern.test>: Recipient address rejected: User unknown in local recipient table",
    );
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: para a lista\r\n\r\nola\r\n.\r\n");
    let queued = c.expect_code(250);
    assert!(queued.contains("queued as"), "{queued}");
    c.cmd("QUIT", 221);

    // Empty: every local name is accepted (remote ones are still relay
    // decisions, untouched by this parameter).
    inst.set_and_reload(&["local_recipient_maps ="]);
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    rcpt(&mut c, "ninguem@postern.test", "250 2.1.5 Ok");
    rcpt(&mut c, "qualquer.um@localhost", "250 2.1.5 Ok");
    c.cmd("QUIT", 221);
}

#[test]
fn a_bad_table_stops_the_configuration_with_the_parameter_named() {
    let inst = Instance::start();
    let out = inst
        .command("postconf")
        .args(["-e", "local_recipient_maps = proxy:unix:passwd.byname nis:mail.aliases"])
        .output()
        .unwrap();
    let check = inst.try_postern(&["check"]);
    let text = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!out.status.success() || !check.status.success(), "accepted: {text}");
    assert!(
        text.contains("parameter \"local_recipient_maps\"") && text.contains("\"nis:\""),
        "{text}"
    );
}
