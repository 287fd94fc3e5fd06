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

#[test]
fn condstore_and_qresync() {
    let inst = Instance::start();
    deliver(&inst, &["m1", "m2", "m3", "m4"]);
    let addr = inst.addr("imap");
    let mut a = Client::login(&addr, "suporte", "suporte");
    assert_eq!(a.ok("a1", "ENABLE CONDSTORE"), "* ENABLED CONDSTORE\r\na1 OK Enabled.");
    assert_eq!(a.ok("a2", "ENABLE QRESYNC"), "* ENABLED QRESYNC\r\na2 OK Enabled.");
    let sel = a.ok("a3", "SELECT INBOX");
    let validity = number_after(&sel, "[UIDVALIDITY");
    let h = number_after(&sel, "[HIGHESTMODSEQ");
    assert!(sel.ends_with(&format!(
        "* OK [UIDNEXT 5] Predicted next UID\r\n\
         * OK [HIGHESTMODSEQ {h}] Highest\r\n\
         a3 OK [READ-WRITE] Select completed."
    )));
    // STORE reports UID (QRESYNC) and MODSEQ, even when .SILENT.
    assert_eq!(
        a.ok("a4", "STORE 1 +FLAGS (\\Seen)"),
        format!(
            "* 1 FETCH (UID 1 MODSEQ ({}) FLAGS (\\Seen \\Recent))\r\na4 OK Store completed.",
            h + 1
        )
    );
    assert_eq!(
        a.ok("a5", "FETCH 1:2 (FLAGS)"),
        "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n* 2 FETCH (FLAGS (\\Recent))\r\na5 OK Fetch completed."
    );
    assert_eq!(
        a.ok("a6", "UID STORE 2 +FLAGS.SILENT (\\Flagged)"),
        format!("* 2 FETCH (UID 2 MODSEQ ({}))\r\na6 OK Store completed.", h + 2)
    );
    assert_eq!(
        a.ok("a7", &format!("STORE 1:3 (UNCHANGEDSINCE {h}) +FLAGS (\\Answered)")),
        format!(
            "* 3 FETCH (UID 3 MODSEQ ({}) FLAGS (\\Answered \\Recent))\r\n\
             a7 OK [MODIFIED 1:2] Conditional store failed.",
            h + 3
        )
    );
    assert_eq!(
        a.ok("a8", &format!("FETCH 1:* (UID) (CHANGEDSINCE {})", h + 1)),
        format!(
            "* 2 FETCH (UID 2 MODSEQ ({}))\r\n* 3 FETCH (UID 3 MODSEQ ({}))\r\na8 OK Fetch completed.",
            h + 2,
            h + 3
        )
    );
    assert_eq!(
        a.ok("a9", "FETCH 4 (MODSEQ)"),
        format!("* 4 FETCH (MODSEQ ({h}))\r\na9 OK Fetch completed.")
    );
    assert_eq!(
        a.ok("a10", &format!("SEARCH MODSEQ {}", h + 2)),
        format!("* SEARCH 2 3 (MODSEQ {})\r\na10 OK Search completed.", h + 3)
    );
    assert_eq!(a.ok("a11", "SEARCH MODSEQ 99999"), "* SEARCH\r\na11 OK Search completed.");
    assert_eq!(
        a.ok("a12", "STATUS INBOX (MESSAGES HIGHESTMODSEQ)"),
        format!(
            "* STATUS \"INBOX\" (MESSAGES 4 HIGHESTMODSEQ {})\r\na12 OK Status completed.",
            h + 3
        )
    );

    // Another session, without CONDSTORE, expunges message 3 and
    // changes message 1: A hears VANISHED and FETCH with UID and MODSEQ.
    let mut b = Client::login(&addr, "suporte", "suporte");
    assert_eq!(
        b.run("b1", &format!("SELECT INBOX (QRESYNC ({validity} {h}))")),
        "b1 BAD QRESYNC isn't enabled."
    );
    b.ok("b2", "SELECT INBOX");
    b.ok("b3", "STORE 3 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(b.ok("b4", "EXPUNGE"), "* 3 EXPUNGE\r\nb4 OK Expunge completed.");
    assert_eq!(
        b.run("b5", &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h} VANISHED)")),
        "b5 BAD VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC."
    );
    assert_eq!(a.ok("a13", "NOOP"), "* VANISHED 3\r\na13 OK NOOP completed.");
    b.ok("b6", "STORE 1 -FLAGS.SILENT (\\Seen)");
    assert_eq!(
        a.ok("a14", "NOOP"),
        format!("* 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ ({}))\r\na14 OK NOOP completed.", h + 6)
    );
    b.ok("b7", "LOGOUT");
    assert_eq!(
        a.ok("a15", &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h} VANISHED)")),
        format!(
            "* VANISHED (EARLIER) 3\r\n\
             * 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ ({}))\r\n\
             * 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ ({}))\r\n\
             a15 OK Fetch completed.",
            h + 6,
            h + 2
        )
    );
    // EXPUNGE and CLOSE under QRESYNC: VANISHED, and the modseq reached.
    a.ok("a16", "STORE 2 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(
        a.ok("a17", "EXPUNGE"),
        format!("* VANISHED 2\r\na17 OK [HIGHESTMODSEQ {}] Expunge completed.", h + 8)
    );
    a.ok("a18", "STORE 1 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(a.ok("a19", "CLOSE"), format!("a19 OK [HIGHESTMODSEQ {}] Close completed.", h + 10));
    // Resynchronising from the first modseq: three UIDs gone, message 4
    // unchanged; from below it, message 4's arrival too.
    let sel = a.ok("a20", &format!("EXAMINE INBOX (QRESYNC ({validity} {h} 1:4))"));
    assert!(
        sel.ends_with(&format!(
            "* OK [HIGHESTMODSEQ {}] Highest\r\n\
             * VANISHED (EARLIER) 1:3\r\n\
             a20 OK [READ-ONLY] Examine completed.",
            h + 10
        )),
        "{sel}"
    );
    let sel = a.ok("a21", &format!("EXAMINE INBOX (QRESYNC ({validity} {} 2:4))", h - 1));
    assert!(
        sel.ends_with(&format!(
            "* VANISHED (EARLIER) 2:3\r\n\
             * 1 FETCH (UID 4 FLAGS (\\Recent) MODSEQ ({h}))\r\n\
             a21 OK [READ-ONLY] Examine completed."
        )),
        "{sel}"
    );
    // Another UIDVALIDITY: no resynchronisation, a plain SELECT.
    let sel = a.ok("a22", &format!("SELECT INBOX (QRESYNC ({} {h}))", validity + 1));
    assert!(sel.ends_with("Highest\r\na22 OK [READ-WRITE] Select completed."), "{sel}");
    a.ok("a23", "LOGOUT");
}

#[test]
fn imap4rev2_esearch_searchres_and_utf8_names() {
    let inst = Instance::start();
    deliver(&inst, &["m1", "m2", "m3", "m4"]);
    let addr = inst.addr("imap");
    let mut c = Client::login(&addr, "suporte", "suporte");
    assert_eq!(c.ok("a1", "ENABLE IMAP4rev2"), "* ENABLED IMAP4rev2\r\na1 OK Enabled.");
    // No RECENT, no UNSEEN, no \Recent (RFC 9051).
    let sel = c.ok("a2", "SELECT INBOX");
    let validity = number_after(&sel, "[UIDVALIDITY");
    assert_eq!(
        sel,
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n\
             * 4 EXISTS\r\n\
             * OK [UIDVALIDITY {validity}] UIDs valid\r\n\
             * OK [UIDNEXT 5] Predicted next UID\r\n\
             a2 OK [READ-WRITE] Select completed."
        )
    );
    assert_eq!(c.ok("a3", "FETCH 1 FLAGS"), "* 1 FETCH (FLAGS ())\r\na3 OK Fetch completed.");
    // SEARCH answers ESEARCH.
    assert_eq!(
        c.ok("a4", "SEARCH ALL"),
        "* ESEARCH (TAG \"a4\") ALL 1:4\r\na4 OK Search completed."
    );
    assert_eq!(
        c.ok("a5", "UID SEARCH SUBJECT nothing"),
        "* ESEARCH (TAG \"a5\") UID\r\na5 OK Search completed."
    );
    assert_eq!(
        c.ok("a6", "SEARCH RETURN (MIN MAX COUNT ALL) 2:4"),
        "* ESEARCH (TAG \"a6\") MIN 2 MAX 4 ALL 2:4 COUNT 3\r\na6 OK Search completed."
    );
    assert_eq!(
        c.ok("a7", "SEARCH RETURN (MIN MAX ALL COUNT) SUBJECT nothing"),
        "* ESEARCH (TAG \"a7\") COUNT 0\r\na7 OK Search completed."
    );
    // SAVE (RFC 5182): nothing said, `$` remembered.
    assert_eq!(c.ok("a8", "SEARCH RETURN (SAVE) 2:3"), "a8 OK Search completed.");
    assert_eq!(
        c.ok("a9", "FETCH $ (UID)"),
        "* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\na9 OK Fetch completed."
    );
    assert_eq!(
        c.ok("a10", "SEARCH $ SUBJECT m3"),
        "* ESEARCH (TAG \"a10\") ALL 3\r\na10 OK Search completed."
    );
    assert_eq!(
        c.ok("a11", "SEARCH RETURN (SAVE MIN) 2:3"),
        "* ESEARCH (TAG \"a11\") MIN 2\r\na11 OK Search completed."
    );
    assert_eq!(c.ok("a12", "UID FETCH $ (UID)"), "* 2 FETCH (UID 2)\r\na12 OK Fetch completed.");
    assert_eq!(c.ok("a13", "SEARCH RETURN (SAVE) SUBJECT nothing"), "a13 OK Search completed.");
    assert_eq!(c.ok("a14", "STORE $ +FLAGS (\\Seen)"), "a14 OK Store completed.");
    assert_eq!(
        c.run("a15", "SEARCH RETURN (BOGUS) ALL"),
        "a15 BAD Error in IMAP command SEARCH: Unknown SEARCH return option"
    );
    // SEARCH MODSEQ turns CONDSTORE on: HIGHESTMODSEQ first.
    let r = c.ok("a16", "SEARCH RETURN (ALL) MODSEQ 1");
    let h = number_after(&r, "[HIGHESTMODSEQ");
    assert_eq!(
        r,
        format!(
            "* OK [HIGHESTMODSEQ {h}] Highest\r\n\
             * ESEARCH (TAG \"a16\") ALL 1:4 MODSEQ {h}\r\na16 OK Search completed."
        )
    );
    // UTF-8 names on the wire, modified UTF-7 on disk.
    c.ok("a17", "CREATE \"Itens Excluídos\"");
    assert!(inst.maildir("suporte").join(".Itens Exclu&AO0-dos/cur").is_dir());
    assert_eq!(
        c.ok("a18", "LIST \"\" \"Itens*\""),
        "* LIST (\\HasNoChildren) \".\" \"Itens Excluídos\"\r\na18 OK List completed."
    );
    let sel = c.ok("a19", "SELECT \"Itens Excluídos\"");
    assert!(sel.starts_with("* OK [CLOSED] Previous mailbox closed.\r\n"), "{sel}");
    c.ok("a20", "LOGOUT");

    // IMAP4rev1 with UTF8=ACCEPT: UTF-8 names, plain SEARCH responses.
    let mut d = Client::login(&addr, "suporte", "suporte");
    assert_eq!(
        d.ok("b1", "STATUS \"Itens Exclu&AO0-dos\" (MESSAGES)"),
        "* STATUS \"Itens Exclu&AO0-dos\" (MESSAGES 0)\r\nb1 OK Status completed."
    );
    assert_eq!(d.ok("b2", "ENABLE UTF8=ACCEPT"), "* ENABLED UTF8=ACCEPT\r\nb2 OK Enabled.");
    assert_eq!(
        d.ok("b3", "STATUS \"Itens Excluídos\" (MESSAGES)"),
        "* STATUS \"Itens Excluídos\" (MESSAGES 0)\r\nb3 OK Status completed."
    );
    d.ok("b4", "SELECT INBOX");
    assert_eq!(d.ok("b5", "SEARCH 1:2"), "* SEARCH 1 2\r\nb5 OK Search completed.");
    assert_eq!(
        d.ok("b6", "SEARCH RETURN (COUNT) ALL"),
        "* ESEARCH (TAG \"b6\") COUNT 4\r\nb6 OK Search completed."
    );
    d.ok("b7", "LOGOUT");
}

#[test]
fn list_extended_and_list_status() {
    let inst = Instance::start();
    deliver(&inst, &["m1", "m2"]);
    let md = inst.maildir("suporte");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(md.join(".a.b").join(sub)).unwrap();
    }
    let mut c = Client::login(&inst.addr("imap"), "suporte", "suporte");
    c.ok("a1", "SUBSCRIBE INBOX");
    c.ok("a2", "SUBSCRIBE a.b");
    c.ok("a3", "SUBSCRIBE Enviados");
    // A subscription whose folder went away.
    c.ok("a4", "CREATE gone");
    c.ok("a5", "SUBSCRIBE gone");
    std::fs::remove_dir_all(md.join(".gone")).unwrap();
    assert_eq!(
        c.ok("b1", "LIST (SUBSCRIBED) \"\" \"*\""),
        "* LIST (\\Subscribed) \".\" \"INBOX\"\r\n\
         * LIST (\\Subscribed) \".\" \"Enviados\"\r\n\
         * LIST (\\Subscribed) \".\" \"a.b\"\r\n\
         * LIST (\\NonExistent \\Subscribed) \".\" \"gone\"\r\n\
         b1 OK List completed."
    );
    assert_eq!(
        c.ok("b2", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\""),
        "* LIST (\\Subscribed) \".\" \"INBOX\"\r\n\
         * LIST (\\Subscribed) \".\" \"Enviados\"\r\n\
         * LIST (\\NonExistent) \".\" \"a\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n\
         * LIST (\\NonExistent \\Subscribed) \".\" \"gone\"\r\n\
         b2 OK List completed."
    );
    assert_eq!(
        c.run("b3", "LIST (RECURSIVEMATCH) \"\" \"%\""),
        "b3 BAD Error in IMAP command LIST: RECURSIVEMATCH must not be the only selection"
    );
    assert_eq!(
        c.ok("b4", "LIST \"\" (\"a*\" \"INBOX\") RETURN (SUBSCRIBED CHILDREN)"),
        "* LIST (\\Subscribed \\HasNoChildren) \".\" \"INBOX\"\r\n\
         * LIST (\\NonExistent \\HasChildren) \".\" \"a\"\r\n\
         * LIST (\\Subscribed \\HasNoChildren) \".\" \"a.b\"\r\n\
         b4 OK List completed."
    );
    assert_eq!(
        c.ok("b5", "LIST (SPECIAL-USE) \"\" \"*\""),
        "* LIST (\\Sent) \".\" \"Enviados\"\r\n\
         * LIST (\\Trash) \".\" \"Lixeira\"\r\n\
         * LIST (\\Drafts) \".\" \"Rascunhos\"\r\n\
         * LIST (\\Junk) \".\" \"Spam\"\r\n\
         b5 OK List completed."
    );
    assert_eq!(
        c.ok("b6", "LIST (REMOTE) \"\" {1+}\r\nS RETURN (SPECIAL-USE STATUS (MESSAGES UIDNEXT))"),
        "b6 OK List completed."
    );
    assert_eq!(
        c.ok(
            "b7",
            "LIST \"\" (\"INBOX\" \"a*\" \"Sp%\") RETURN (STATUS (MESSAGES UIDNEXT UNSEEN))"
        ),
        "* LIST () \".\" \"INBOX\"\r\n\
         * STATUS \"INBOX\" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n\
         * LIST () \".\" \"Spam\"\r\n\
         * STATUS \"Spam\" (MESSAGES 0 UIDNEXT 1 UNSEEN 0)\r\n\
         * LIST (\\NonExistent) \".\" \"a\"\r\n\
         * LIST () \".\" \"a.b\"\r\n\
         * STATUS \"a.b\" (MESSAGES 0 UIDNEXT 1 UNSEEN 0)\r\n\
         b7 OK List completed."
    );
    assert_eq!(
        c.run("b8", "LIST (BOGUS) \"\" \"*\""),
        "b8 BAD Error in IMAP command LIST: Unknown select options"
    );
    assert_eq!(
        c.run("b9", "LIST \"\" \"*\" RETURN (BOGUS)"),
        "b9 BAD Error in IMAP command LIST: Unknown return options"
    );
    // The plain form is unchanged.
    assert_eq!(
        c.ok("b10", "LIST \"\" \"a*\""),
        "* LIST (\\NonExistent \\Noselect \\HasChildren) \".\" \"a\"\r\n\
         * LIST (\\HasNoChildren) \".\" \"a.b\"\r\n\
         b10 OK List completed."
    );
    c.ok("b11", "LOGOUT");
}

#[test]
fn multiappend() {
    let inst = Instance::start();
    let mut c = Client::login(&inst.addr("imap"), "suporte", "suporte");
    let validity = number_after(&c.ok("a1", "STATUS Enviados (UIDVALIDITY)"), "UIDVALIDITY");
    c.send("a2 APPEND Enviados (\\Seen) \"05-Mar-2024 10:00:00 +0000\" {12}");
    assert_eq!(c.line(), "+ OK");
    c.send_raw(b"Subject: 1\r\n {12+}\r\nSubject: 2\r\n ~{12+}\r\nSubject: 3\r\n\r\n");
    assert_eq!(c.until("a2"), format!("a2 OK [APPENDUID {validity} 1:3] Append completed."));
    c.ok("a3", "SELECT Enviados");
    assert_eq!(
        c.ok("a4", "FETCH 1:3 (FLAGS RFC822.SIZE)"),
        "* 1 FETCH (FLAGS (\\Seen) RFC822.SIZE 12)\r\n\
         * 2 FETCH (FLAGS () RFC822.SIZE 12)\r\n\
         * 3 FETCH (FLAGS () RFC822.SIZE 12)\r\n\
         a4 OK Fetch completed."
    );
    assert_eq!(
        c.ok("a8", "FETCH 1 INTERNALDATE"),
        "* 1 FETCH (INTERNALDATE \"05-Mar-2024 10:00:00 +0000\")\r\na8 OK Fetch completed."
    );
    // All or nothing: the second message's flag is refused, the first is
    // taken back.
    assert_eq!(
        c.run("a5", "APPEND Enviados {9+}\r\nSubject:x (\\Bogus) {9+}\r\nSubject:y"),
        "a5 BAD Unknown system flag."
    );
    assert_eq!(
        c.ok("a6", "STATUS Enviados (MESSAGES UIDNEXT)"),
        "* STATUS \"Enviados\" (MESSAGES 3 UIDNEXT 5)\r\na6 OK Status completed."
    );
    c.ok("a7", "LOGOUT");
}
