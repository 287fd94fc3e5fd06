//! Item 5 of issue 2 and the config part of "Bad input": postconf on
//! main.toml (comments kept, NAME, -n, -d), the tutorial's mynetworks and
//! mydestination, reload without dropping an open SMTP connection, and a
//! reload that fails on an unknown parameter keeps the old config.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::process::Command;
use tests::{Instance, bin, init_dir, smtp::Client};

fn postconf(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(bin("postconf")).arg("-c").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "postconf {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn postconf_edits_keep_comments_and_print_like_postfix() {
    let (_tmp, dir) = init_dir(&[]);
    let before = std::fs::read_to_string(dir.join("main.toml")).unwrap();
    let comments: Vec<&str> = before.lines().filter(|l| l.starts_with('#')).collect();
    assert!(!comments.is_empty());
    postconf(&dir, &["-e", "smtpd_banner = Bem Vindo - $myhostname"]);
    postconf(&dir, &["-e", "mydestination = $myhostname, localhost, $mydomain"]);
    postconf(&dir, &["-e", "mynetworks = 127.0.0.1/32 127.0.10.0/24"]);
    let after = std::fs::read_to_string(dir.join("main.toml")).unwrap();
    for c in &comments {
        assert!(after.contains(c), "postconf -e dropped the comment {c:?}:\n{after}");
    }
    assert_eq!(postconf(&dir, &["myhostname"]), "myhostname = mail.postern.test\n");
    assert_eq!(postconf(&dir, &["smtpd_banner"]), "smtpd_banner = Bem Vindo - $myhostname\n");
    let n = postconf(&dir, &["-n"]);
    for want in ["myhostname = mail.postern.test", "smtpd_banner = Bem Vindo - $myhostname"] {
        assert!(n.lines().any(|l| l == want), "postconf -n lacks {want:?}:\n{n}");
    }
    // Lists print as Postfix lists; the separator (", " or " ") is the
    // only freedom, the entries and their order are not.
    for (name, entries) in [
        ("mydestination", vec!["$myhostname", "localhost", "$mydomain"]),
        ("mynetworks", vec!["127.0.0.1/32", "127.0.10.0/24"]),
    ] {
        let line = n
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("postconf -n lacks {name}:\n{n}"));
        let got: Vec<&str> = line.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        assert_eq!(got, entries, "postconf -n: {name} = {line}");
    }
    assert!(!n.contains("smtpd_recipient_limit"), "-n lists an unset parameter:\n{n}");
    let d = postconf(&dir, &["-d"]);
    assert!(d.lines().any(|l| l == "smtpd_recipient_limit = 1000"), "postconf -d:\n{d}");
    assert!(d.lines().any(|l| l == "message_size_limit = 10240000"), "postconf -d:\n{d}");
}

#[test]
fn tutorial_settings_apply_on_reload_without_dropping_connections() {
    let inst = Instance::start();
    let mut open = inst.smtp();
    open.cmd("MAIL FROM:<root@postern.test>", 250);
    inst.set_and_reload(&[
        "mydestination = $myhostname, localhost, $mydomain",
        "mynetworks = 127.0.0.1/32 127.0.10.0/24",
        "smtpd_banner = Bem Vindo - $myhostname",
    ]);
    // The session opened before the reload finishes its transaction.
    open.cmd("RCPT TO:<suporte@postern.test>", 250);
    open.cmd("DATA", 354);
    open.send_raw(b"Subject: antes do reload\r\n\r\naberta\r\n.\r\n");
    open.expect_code(250);
    open.cmd("QUIT", 221);
    // A new session sees the new config; 127.0.0.1/32 may still relay.
    let mut c = Client::connect(&inst.addr("smtp"));
    c.expect("220 Bem Vindo - mail.postern.test");
    c.cmd("EHLO mail.fiap.edu.br", 250);
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.cmd("RCPT TO:<x@remote.example>", 250);
    c.cmd("RCPT TO:<suporte@localhost>", 250);
    c.cmd("RSET", 250);
    c.cmd("QUIT", 221);
    let text = inst.one_mail("suporte");
    assert!(text.contains("aberta"), "{text}");
}

#[test]
fn reload_with_unknown_parameter_fails_and_keeps_old_config() {
    let inst = Instance::start();
    // A valid change that must not take effect, then the bad line.
    inst.postconf(&["-e", "smtpd_banner = changed $myhostname"]);
    let main = inst.dir.join("main.toml");
    let mut text = std::fs::read_to_string(&main).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("no_such_parameter = 1\n");
    let line = text.lines().count();
    std::fs::write(&main, &text).unwrap();
    let out = inst.try_postern(&["reload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "reload of a bad main.toml succeeded: {out:?}");
    assert!(
        err.contains(&format!("main.toml:{line}")),
        "error does not name file:line {line}: {err}"
    );
    assert!(err.contains("no_such_parameter"), "error does not name the parameter: {err}");
    // The running instance keeps its old config and still works.
    let mut c = Client::connect(&inst.addr("smtp"));
    c.expect("220 mail.postern.test ESMTP Postern");
    c.cmd("EHLO mail.fiap.edu.br", 250);
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        "Subject: ainda\r\n\r\nfunciona\r\n",
    );
    c.cmd("QUIT", 221);
    assert!(inst.one_mail("suporte").contains("funciona"));
    let out = inst.try_postern(&["check"]);
    assert!(!out.status.success(), "postern check accepts an unknown parameter");
}
