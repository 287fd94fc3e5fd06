//! Issue 7, rewriting of forwarded copies: a copy that local delivery
//! sends on (an alias to a remote address, a `.forward`) goes through
//! cleanup's envelope rewriting as a new message would, so a
//! `virtual_alias_maps` entry that maps the remote address to a local
//! user delivers the copy into that user's Maildir, and `canonical_maps`
//! rewrites its sender.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::time::Duration;

use tests::{Instance, Options, header};

const WAIT: Duration = Duration::from_secs(20);

fn write_tables(dir: &Path) {
    let aliases = dir.join("aliases");
    let mut a = std::fs::read_to_string(&aliases).unwrap();
    a.push_str("vendas: contato@parceiro.example\n");
    std::fs::write(&aliases, a).unwrap();
    std::fs::write(
        dir.join("virtual"),
        "contato@parceiro.example   ana@postern.test\n\
         maria@fora.example         suporte@postern.test\n",
    )
    .unwrap();
    std::fs::write(dir.join("canonical"), "root@postern.test   Administrador@postern.test\n")
        .unwrap();
}

#[test]
fn forwarded_copies_follow_virtual_aliases_to_local_users() {
    let inst = Instance::start_with(Options {
        before_start: Some(write_tables),
        users: vec!["ana:ana".into(), "maria:m".into()],
        postconf: vec![
            "virtual_alias_maps = hash:virtual".into(),
            "canonical_maps = hash:canonical".into(),
        ],
        ..Options::default()
    });
    // An alias to a remote address that the virtual table maps back here.
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["vendas@postern.test"],
        "Subject: pedido\r\n\r\num pedido\r\n",
    );
    let text = inst.one_mail("ana");
    assert!(text.starts_with("Return-Path: <Administrador@postern.test>"), "{text}");
    assert!(text.contains("um pedido"), "{text}");
    // The alias's Delivered-To, then ana's.
    let to = header(&text, "Delivered-To");
    assert_eq!(to, ["ana@postern.test", "vendas@postern.test"], "{text}");

    // A .forward to such an address: the same rewriting.
    let forward = inst.dir.join("home/maria/.forward");
    std::fs::write(&forward, "maria@fora.example\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&forward, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    c.send_mail("root@postern.test", &["maria@postern.test"], "Subject: para maria\r\n\r\nola\r\n");
    c.cmd("QUIT", 221);
    let files = inst.wait_for_mail("suporte", 1, WAIT);
    assert_eq!(files.len(), 1, "{files:?}; queue: {}", inst.mailq());
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Subject: para maria"), "{text}");
    let to = header(&text, "Delivered-To");
    assert!(
        to.len() == 2 && to[0] == "suporte@postern.test" && to[1].starts_with("maria@"),
        "{text}"
    );
    assert!(inst.new_mail("maria").is_empty(), "the .forward replaced maria's mailbox");
}
