//! Issue 10: what imapd serves beyond RFC 3501's base, with exact
//! responses: folders through mail-maildir's `Store` (Courier's and
//! Dovecot's subscription files, modified UTF-7 folder names made by
//! other servers), CONDSTORE and QRESYNC (RFC 7162), IMAP4rev2 and
//! ESEARCH, LIST-EXTENDED and LIST-STATUS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::Instance;
use tests::imap::Client;

/// Delivers messages with these subjects to suporte through smtpd.
fn deliver(inst: &Instance, subjects: &[&str]) {
    let before = inst.new_mail("suporte").len();
    for (i, s) in subjects.iter().enumerate() {
        let mut c = inst.smtp();
        c.cmd("HELO test", 250);
        c.send_mail(
            "root@postern.test",
            &["suporte@postern.test"],
            &format!("Subject: {s}\r\nFrom: <root@postern.test>\r\n\r\nbody {i}\r\n"),
        );
        c.cmd("QUIT", 221);
        inst.wait_for_mail("suporte", before + i + 1, Duration::from_secs(20));
    }
}

/// The number after `key` in `text`.
fn number_after(text: &str, key: &str) -> u64 {
    let at = text.find(key).unwrap_or_else(|| panic!("{key} in {text:?}")) + key.len();
    text[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn folders_and_subscriptions_other_servers_made() {
    let inst = Instance::start();
    let md = inst.maildir("suporte");
    // Courier's maildirmake -f "Itens Excluídos" and a Dovecot 2.3
    // subscriptions file (version 2, tab-separated levels), plus
    // Courier's own subscriptions file.
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(md.join(".Itens Exclu&AO0-dos").join(sub)).unwrap();
        std::fs::create_dir_all(md.join(".Lists.rust").join(sub)).unwrap();
    }
    std::fs::write(md.join("subscriptions"), "V\t2\n\nLists\trust\n").unwrap();
    std::fs::write(md.join("courierimapsubscribed"), "INBOX\nINBOX.Itens Exclu&AO0-dos\n").unwrap();
    let mut c = Client::login(&inst.addr("imap"), "suporte", "suporte");
    assert_eq!(
        c.ok("a1", "LIST \"\" \"*\""),
        "* LIST (\\HasNoChildren) \".\" \"INBOX\"\r\n\
         * LIST (\\HasNoChildren \\Sent) \".\" \"Enviados\"\r\n\
         * LIST (\\HasNoChildren) \".\" \"Itens Exclu&AO0-dos\"\r\n\
         * LIST (\\NonExistent \\Noselect \\HasChildren) \".\" \"Lists\"\r\n\
         * LIST (\\HasNoChildren) \".\" \"Lists.rust\"\r\n\
         * LIST (\\HasNoChildren \\Trash) \".\" \"Lixeira\"\r\n\
         * LIST (\\HasNoChildren \\Drafts) \".\" \"Rascunhos\"\r\n\
         * LIST (\\HasNoChildren \\Junk) \".\" \"Spam\"\r\n\
         a1 OK List completed."
    );
    assert_eq!(
        c.ok("a2", "LSUB \"\" \"*\""),
        "* LSUB (\\HasNoChildren) \".\" \"INBOX\"\r\n\
         * LSUB (\\HasNoChildren) \".\" \"Itens Exclu&AO0-dos\"\r\n\
         * LSUB (\\HasNoChildren) \".\" \"Lists.rust\"\r\n\
         a2 OK Lsub completed."
    );
    // A modified UTF-7 name with ASCII hidden in a shift is refused, so
    // no name has two spellings.
    assert_eq!(c.run("a3", "SELECT \"&AC4-.x\""), "a3 NO Invalid mailbox name.");
    c.ok("a4", "SELECT \"Itens Exclu&AO0-dos\"");
    // Unsubscribing drops the name from Courier's file too.
    c.ok("a5", "UNSUBSCRIBE \"Itens Exclu&AO0-dos\"");
    let courier = std::fs::read_to_string(md.join("courierimapsubscribed")).unwrap();
    assert_eq!(courier, "INBOX\n");
    assert_eq!(
        c.ok("a6", "LSUB \"\" \"*\""),
        "* LSUB (\\HasNoChildren) \".\" \"INBOX\"\r\n\
         * LSUB (\\HasNoChildren) \".\" \"Lists.rust\"\r\n\
         a6 OK Lsub completed."
    );
    c.ok("a7", "LOGOUT");
}
