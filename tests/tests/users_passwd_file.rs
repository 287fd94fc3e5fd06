//! Item 7 of issue 2: users of a dev instance come from its passwd-file;
//! a second user added with `--user` gets mail in DIR/home/NAME/Maildir.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, Options, header};

#[test]
fn second_user_from_passwd_file_gets_mail() {
    let inst = Instance::start_with(Options {
        users: vec!["suporte:suporte".into(), "maria:segredo".into()],
        ..Options::default()
    });
    let passwd = std::fs::read_to_string(inst.dir.join("passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("maria:{")), "{passwd}");
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["maria@postern.test"],
        "Subject: para maria\r\n\r\nola maria\r\n",
    );
    c.cmd("QUIT", 221);
    let files = inst.wait_for_mail("maria", 1, Duration::from_secs(20));
    assert!(files[0].starts_with(inst.dir.join("home/maria/Maildir/new")));
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(header(&text, "Delivered-To"), vec!["maria@postern.test".to_string()]);
    assert!(text.contains("ola maria"));
    assert!(inst.new_mail("suporte").is_empty(), "suporte got maria's mail");
}
