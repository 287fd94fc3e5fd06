//! Issue 10: the IMAP commands imapd serves, with their exact responses,
//! on mail delivered through smtpd: the Not Authenticated state (login
//! service), then the Authenticated and Selected states (mail service):
//! SELECT/EXAMINE, FETCH, STORE, SEARCH, COPY/MOVE with COPYUID, APPEND
//! with APPENDUID, EXPUNGE, the folder commands on the tutorial's
//! Maildir++ folders with SPECIAL-USE; and UIDs equal to pop3d's UIDL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::Instance;
use tests::imap::Client;

const CAPS_BEFORE: &str = "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN";
const CAPS_AFTER: &str = "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+ NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE BINARY SORT THREAD=REFERENCES THREAD=ORDEREDSUBJECT CONDSTORE QRESYNC ESEARCH SEARCHRES UTF8=ACCEPT LIST-EXTENDED LIST-STATUS MULTIAPPEND";

/// Delivers numbered messages to suporte through smtpd, in order.
fn deliver(inst: &Instance, bodies: &[&str]) {
    let before = inst.new_mail("suporte").len();
    for (i, body) in bodies.iter().enumerate() {
        let mut c = inst.smtp();
        c.cmd("HELO test", 250);
        c.send_mail(
            "root@postern.test",
            &["suporte@postern.test"],
            &format!("Subject: message {}\r\nFrom: <root@postern.test>\r\n\r\n{body}", i + 1),
        );
        c.cmd("QUIT", 221);
        inst.wait_for_mail("suporte", before + i + 1, Duration::from_secs(20));
    }
}

/// The value after `key` in `text` (`UIDVALIDITY 123]` -> 123).
fn number_after(text: &str, key: &str) -> u32 {
    let at = text.find(key).unwrap_or_else(|| panic!("{key} in {text:?}")) + key.len();
    text[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn not_authenticated_state() {
    let inst = Instance::start();
    // `postern status --json` lists the services; imap-mail has no
    // process until a login needs one.
    let status = inst.status();
    for name in ["imap", "imaps", "imap-mail"] {
        let s = status.services.iter().find(|s| s.name == name);
        assert!(s.is_some(), "{name} in {status:?}");
    }
    let mail = status.services.iter().find(|s| s.name == "imap-mail").unwrap();
    assert!(mail.workers.is_empty(), "{mail:?}");
    let mut c = Client::connect(&inst.addr("imap"));
    assert_eq!(c.line(), format!("* OK [CAPABILITY {CAPS_BEFORE}] Postern ready."));
    assert_eq!(
        c.run("a1", "CAPABILITY"),
        format!(
            "* CAPABILITY {CAPS_BEFORE}\r\na1 OK Pre-login capabilities listed, post-login capabilities have more."
        )
    );
    assert_eq!(c.run("a2", "NOOP"), "a2 OK NOOP completed.");
    assert_eq!(
        c.run("a3", "ID (\"name\" \"test\")"),
        "* ID (\"name\" \"Postern\")\r\na3 OK ID completed."
    );
    assert_eq!(c.run("a4", "SELECT INBOX"), "a4 BAD Command not allowed before login.");
    assert_eq!(c.run("a5", "ENABLE CONDSTORE"), "a5 BAD Command not allowed before login.");
    assert_eq!(
        c.run("a6", "LOGIN suporte wrong"),
        "a6 NO [AUTHENTICATIONFAILED] Authentication failed."
    );
    assert_eq!(c.run("a7", "AUTHENTICATE CRAM-MD5"), "a7 NO Unsupported authentication mechanism.");
    // AUTHENTICATE PLAIN without an initial response: "+ ", then the
    // response line; `*` cancels.
    c.send("a8 AUTHENTICATE PLAIN");
    assert_eq!(c.line(), "+ ");
    c.send("*");
    assert_eq!(c.until("a8"), "a8 BAD Authentication aborted by client.");
    // SASL-IR, with a command pipelined after it: the mail process
    // answers it, after the login's OK.
    let ir = "AHN1cG9ydGUAc3Vwb3J0ZQ=="; // \0suporte\0suporte
    c.send_raw(format!("a9 AUTHENTICATE PLAIN {ir}\r\na10 NOOP\r\n").as_bytes());
    assert_eq!(c.until("a9"), format!("a9 OK [CAPABILITY {CAPS_AFTER}] Logged in"));
    assert_eq!(c.until("a10"), "a10 OK NOOP completed.");
    assert_eq!(
        c.run("a11", "CAPABILITY"),
        format!("* CAPABILITY {CAPS_AFTER}\r\na11 OK Capability completed.")
    );
    assert_eq!(c.run("a12", "LOGIN suporte suporte"), "a12 BAD Already logged in.");
    assert_eq!(c.run("a13", "ENABLE CONDSTORE"), "* ENABLED CONDSTORE\r\na13 OK Enabled.");
    assert_eq!(
        c.run("a14", "NAMESPACE"),
        "* NAMESPACE ((\"\" \".\")) NIL NIL\r\na14 OK Namespace completed."
    );
    assert_eq!(c.run("a15", "FETCH 1 FLAGS"), "a15 BAD No mailbox selected.");
    assert_eq!(c.run("a16", "LOGOUT"), "* BYE Logging out\r\na16 OK Logout completed.");
    assert!(c.closed());

    // LOGIN with literals (synchronizing: "+ OK" first; LITERAL+: none).
    let mut c = Client::connect(&inst.addr("imap"));
    c.line();
    c.send("b1 LOGIN {7}");
    assert_eq!(c.line(), "+ OK");
    c.send_raw(b"suporte {7+}\r\nsuporte\r\n");
    assert!(c.until("b1").starts_with("b1 OK [CAPABILITY "));
    c.ok("b2", "LOGOUT");
}

#[test]
fn selected_state_on_delivered_mail() {
    let inst = Instance::start();
    deliver(&inst, &["first\r\n", "second line\r\n", "third\r\n"]);
    let mut c = Client::login(&inst.addr("imap"), "suporte", "suporte");
    let list = c.ok("l1", "LIST \"\" \"*\"");
    assert_eq!(
        list,
        "* LIST (\\HasNoChildren) \".\" \"INBOX\"\r\n\
         * LIST (\\HasNoChildren \\Sent) \".\" \"Enviados\"\r\n\
         * LIST (\\HasNoChildren \\Trash) \".\" \"Lixeira\"\r\n\
         * LIST (\\HasNoChildren \\Drafts) \".\" \"Rascunhos\"\r\n\
         * LIST (\\HasNoChildren \\Junk) \".\" \"Spam\"\r\n\
         l1 OK List completed."
    );
    assert_eq!(
        c.ok("l2", "LIST \"\" \"\""),
        "* LIST (\\Noselect) \".\" \"\"\r\nl2 OK List completed."
    );
    assert_eq!(
        c.ok("l3", "LIST \"\" \"R%\""),
        "* LIST (\\HasNoChildren \\Drafts) \".\" \"Rascunhos\"\r\nl3 OK List completed."
    );

    let sel = c.ok("s1", "SELECT INBOX");
    let validity = number_after(&sel, "[UIDVALIDITY");
    assert_eq!(
        sel,
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n\
             * 3 EXISTS\r\n\
             * 3 RECENT\r\n\
             * OK [UNSEEN 1] First unseen.\r\n\
             * OK [UIDVALIDITY {validity}] UIDs valid\r\n\
             * OK [UIDNEXT 4] Predicted next UID\r\n\
             s1 OK [READ-WRITE] Select completed."
        )
    );
    let files = inst.new_mail("suporte");
    let mut sizes = Vec::new();
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        let crlf = String::from_utf8(raw).unwrap().replace("\r\n", "\n").replace('\n', "\r\n");
        sizes.push(crlf.len());
    }
    sizes.sort();
    let fetch = c.ok("f1", "FETCH 1:* (UID FLAGS RFC822.SIZE)");
    let lines: Vec<&str> = fetch.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{fetch}");
    for (i, l) in lines[..3].iter().enumerate() {
        assert!(
            l.starts_with(&format!(
                "* {} FETCH (UID {} FLAGS (\\Recent) RFC822.SIZE ",
                i + 1,
                i + 1
            )),
            "{l}"
        );
    }
    // The bytes of BODY[] are the file's, in CRLF form, and PEEK leaves
    // the flags alone.
    let body = c.ok("f2", "FETCH 2 BODY.PEEK[TEXT]");
    assert_eq!(body, "* 2 FETCH (BODY[TEXT] {13}\r\nsecond line\r\n)\r\nf2 OK Fetch completed.");
    assert_eq!(
        c.ok("f3", "FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]"),
        "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {22}\r\nSubject: message 2\r\n\r\n)\r\nf3 OK Fetch completed."
    );
    assert_eq!(
        c.ok("f4", "FETCH 2 BODY[TEXT]<0.6>"),
        "* 2 FETCH (BODY[TEXT]<0> {6}\r\nsecond FLAGS (\\Seen \\Recent))\r\nf4 OK Fetch completed."
    );
    assert_eq!(
        c.ok("f5", "UID FETCH 2 FLAGS"),
        "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))\r\nf5 OK Fetch completed."
    );
    assert_eq!(
        c.ok("f6", "UID FETCH 9:* FLAGS"),
        "* 3 FETCH (UID 3 FLAGS (\\Recent))\r\nf6 OK Fetch completed."
    );
    assert_eq!(c.ok("f7", "UID FETCH 10:20 FLAGS"), "f7 OK Fetch completed.");
    assert_eq!(c.run("f8", "FETCH 4 FLAGS"), "f8 BAD Error in IMAP command: Invalid messageset.");
    let whole = c.ok("f9", "FETCH 1 RFC822");
    assert!(
        whole.contains("Subject: message 1\r\n")
            && whole.contains("\r\n\r\nfirst\r\n FLAGS (\\Seen \\Recent))"),
        "{whole}"
    );

    assert_eq!(
        c.ok("t1", "STORE 1 +FLAGS (\\Flagged \\Deleted)"),
        "* 1 FETCH (FLAGS (\\Flagged \\Deleted \\Seen \\Recent))\r\nt1 OK Store completed."
    );
    assert_eq!(c.ok("t2", "STORE 1 -FLAGS.SILENT (\\Flagged)"), "t2 OK Store completed.");
    assert_eq!(
        c.ok("t3", "UID STORE 3 FLAGS (\\Answered)"),
        "* 3 FETCH (UID 3 FLAGS (\\Answered \\Recent))\r\nt3 OK Store completed."
    );
    // A keyword: the folder's FLAGS grow, and it is kept (Dovecot's
    // dovecot-keywords letters).
    assert_eq!(
        c.ok("t4", "STORE 3 +FLAGS ($Work)"),
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n\
         * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted.\r\n\
         * 3 FETCH (FLAGS (\\Answered \\Recent $Work))\r\nt4 OK Store completed."
    );
    assert_eq!(c.ok("t5", "SEARCH KEYWORD $work"), "* SEARCH 3\r\nt5 OK Search completed.");
    assert_eq!(
        c.ok("t6", "STORE 3 -FLAGS ($Work)"),
        "* 3 FETCH (FLAGS (\\Answered \\Recent))\r\nt6 OK Store completed."
    );
    assert_eq!(c.ok("q1", "SEARCH DELETED"), "* SEARCH 1\r\nq1 OK Search completed.");
    assert_eq!(c.ok("q2", "SEARCH UNSEEN NOT ANSWERED"), "* SEARCH\r\nq2 OK Search completed.");
    assert_eq!(
        c.ok("q3", "UID SEARCH SUBJECT \"MESSAGE 3\""),
        "* SEARCH 3\r\nq3 OK Search completed."
    );
    assert_eq!(c.ok("q4", "SEARCH BODY line"), "* SEARCH 2\r\nq4 OK Search completed.");
    assert_eq!(
        c.ok("q5", "SEARCH OR 1 3 HEADER From root"),
        "* SEARCH 1 3\r\nq5 OK Search completed."
    );
    assert_eq!(
        c.run("q6", "SEARCH CHARSET KOI8-R ALL"),
        "q6 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset."
    );

    // Flags are in the file names, as Dovecot keeps them.
    let cur: Vec<String> = std::fs::read_dir(inst.maildir("suporte").join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(cur.iter().any(|n| n.ends_with(":2,ST")), "{cur:?}");
    assert!(cur.iter().any(|n| n.ends_with(":2,R")), "{cur:?}");

    let copy = c.ok("c1", "COPY 2:3 Enviados");
    let dest_validity = number_after(&copy, "[COPYUID");
    assert_eq!(copy, format!("c1 OK [COPYUID {dest_validity} 2:3 1:2] Copy completed."));
    assert_eq!(c.run("c2", "COPY 1 Nowhere"), "c2 NO [TRYCREATE] Mailbox doesn't exist: Nowhere");
    assert_eq!(
        c.ok("c3", "STATUS Enviados (MESSAGES UIDNEXT UNSEEN)"),
        "* STATUS \"Enviados\" (MESSAGES 2 UIDNEXT 3 UNSEEN 1)\r\nc3 OK Status completed."
    );
    assert_eq!(
        c.ok("m1", "MOVE 3 Lixeira"),
        format!(
            "* OK [COPYUID {} 3 1] Moved UIDs.\r\n* 3 EXPUNGE\r\nm1 OK Move completed.",
            number_after(&c.ok("m0", "STATUS Lixeira (UIDVALIDITY)"), "UIDVALIDITY")
        )
    );
    assert_eq!(c.ok("e1", "EXPUNGE"), "* 1 EXPUNGE\r\ne1 OK Expunge completed.");
    assert_eq!(c.ok("e2", "FETCH 1:* UID"), "* 1 FETCH (UID 2)\r\ne2 OK Fetch completed.");

    // APPEND with flags and a date; the message arrives whole.
    c.send("p1 APPEND Rascunhos (\\Draft \\Seen) \"14-Nov-2023 22:13:20 +0000\" {22}");
    assert_eq!(c.line(), "+ OK");
    c.send_raw(b"Subject: draft\r\n\r\nhi\r\n\r\n");
    let app = c.until("p1");
    let v = number_after(&app, "[APPENDUID");
    assert_eq!(app, format!("p1 OK [APPENDUID {v} 1] Append completed."));
    c.ok("p2", "EXAMINE Rascunhos");
    assert_eq!(
        c.ok("p3", "FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE BODY[])"),
        "* 1 FETCH (FLAGS (\\Seen \\Draft) INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE 22 BODY[] {22}\r\nSubject: draft\r\n\r\nhi\r\n)\r\np3 OK Fetch completed."
    );
    assert_eq!(
        c.run("p4", "STORE 1 +FLAGS (\\Deleted)"),
        "p4 NO [READ-ONLY] Mailbox is read-only."
    );
    assert_eq!(c.ok("p5", "UNSELECT"), "p5 OK Unselect completed.");

    // Folders: create (with a missing parent shown), rename (children
    // too), delete; INBOX cannot be deleted, no rename onto a name.
    assert_eq!(c.ok("d1", "CREATE Listas.rust"), "d1 OK Create completed.");
    assert_eq!(c.run("d2", "CREATE Listas.rust"), "d2 NO [ALREADYEXISTS] Mailbox already exists");
    assert_eq!(
        c.ok("d3", "LIST \"\" Listas*"),
        "* LIST (\\NonExistent \\Noselect \\HasChildren) \".\" \"Listas\"\r\n\
         * LIST (\\HasNoChildren) \".\" \"Listas.rust\"\r\n\
         d3 OK List completed."
    );
    assert_eq!(
        c.run("d4", "RENAME Listas.rust Spam"),
        "d4 NO [ALREADYEXISTS] Mailbox already exists"
    );
    assert_eq!(c.ok("d5", "RENAME Listas.rust Projetos.rust"), "d5 OK Rename completed.");
    assert_eq!(c.run("d6", "DELETE INBOX"), "d6 NO [CANNOT] INBOX can't be deleted.");
    assert_eq!(c.ok("d7", "DELETE Projetos.rust"), "d7 OK Delete completed.");
    assert_eq!(
        c.run("d8", "DELETE Projetos.rust"),
        "d8 NO [NONEXISTENT] Mailbox doesn't exist: Projetos.rust"
    );
    assert_eq!(c.run("d9", "CREATE ../../etc"), "d9 NO Invalid mailbox name.");
    assert_eq!(c.run("d10", "SELECT Nada"), "d10 NO [NONEXISTENT] Mailbox doesn't exist: Nada");
    assert_eq!(c.ok("d11", "SUBSCRIBE Enviados"), "d11 OK Subscribe completed.");
    assert_eq!(
        c.ok("d12", "LSUB \"\" *"),
        "* LSUB (\\HasNoChildren \\Sent) \".\" \"Enviados\"\r\nd12 OK Lsub completed."
    );
    let maildir = inst.maildir("suporte");
    assert!(!maildir.join(".Projetos.rust").exists() && !maildir.join(".Listas.rust").exists());
    c.ok("z", "LOGOUT");
}

#[test]
fn uids_are_pop3d_uidls_and_stay_across_sessions() {
    let inst = Instance::start();
    deliver(&inst, &["one\r\n", "two\r\n"]);
    let mut c = Client::login(&inst.addr("imap"), "suporte", "suporte");
    let sel = c.ok("a", "EXAMINE INBOX");
    let validity = number_after(&sel, "[UIDVALIDITY");
    assert_eq!(
        c.ok("b", "FETCH 1:* UID"),
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\nb OK Fetch completed."
    );
    c.ok("c", "LOGOUT");
    let mut p = tests::pop3::Client::logged_in(&inst.addr("pop3"), "suporte", "suporte");
    p.ok("UIDL");
    assert_eq!(
        p.lines(),
        [format!("1 00000001{validity:08X}"), format!("2 00000002{validity:08X}")]
    );
    p.ok("QUIT");
    // Again, after pop3d and a new delivery: the same UIDs and validity.
    deliver(&inst, &["three\r\n"]);
    let mut c = Client::login(&inst.addr("imap"), "suporte", "suporte");
    let sel = c.ok("a", "SELECT INBOX");
    assert_eq!(number_after(&sel, "[UIDVALIDITY"), validity);
    assert_eq!(
        c.ok("b", "FETCH 1:* UID"),
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\nb OK Fetch completed."
    );
}

#[test]
fn message_structure_sort_and_thread() {
    let inst = Instance::start();
    let multipart = "Subject: =?UTF-8?Q?Ol=C3=A1?= mundo\r\n\
        From: Maria <maria@postern.test>\r\n\
        To: suporte@postern.test\r\n\
        Message-ID: <a@postern.test>\r\n\
        Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b\"\r\n\
        \r\n\
        --b\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        \r\n\
        parte um\r\n\
        --b\r\n\
        Content-Type: application/octet-stream\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        AAEC\r\n\
        --b--\r\n";
    let reply = "Subject: Re: Olá mundo\r\n\
        From: suporte@postern.test\r\n\
        Message-ID: <b@postern.test>\r\n\
        In-Reply-To: <a@postern.test>\r\n\
        Date: Tue, 1 Dec 2026 09:00:00 +0000\r\n\
        \r\n\
        resposta\r\n";
    for m in [multipart, reply] {
        let before = inst.new_mail("suporte").len();
        let mut c = inst.smtp();
        c.cmd("HELO test", 250);
        c.send_mail("root@postern.test", &["suporte@postern.test"], m);
        c.cmd("QUIT", 221);
        inst.wait_for_mail("suporte", before + 1, Duration::from_secs(20));
    }
    let mut c = Client::login(&inst.addr("imap"), "suporte", "suporte");
    c.ok("a", "SELECT INBOX");
    assert_eq!(
        c.ok("b", "FETCH 1 (ENVELOPE)"),
        "* 1 FETCH (ENVELOPE (\"Tue, 1 Dec 2026 10:00:00 +0000\" \"=?UTF-8?Q?Ol=C3=A1?= mundo\" \
         ((\"Maria\" NIL \"maria\" \"postern.test\")) ((\"Maria\" NIL \"maria\" \"postern.test\")) \
         ((\"Maria\" NIL \"maria\" \"postern.test\")) ((NIL NIL \"suporte\" \"postern.test\")) \
         NIL NIL NIL \"<a@postern.test>\"))\r\nb OK Fetch completed."
    );
    assert_eq!(
        c.ok("c", "FETCH 1 BODY"),
        "* 1 FETCH (BODY ((\"TEXT\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 8 0)\
         (\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 4) \"mixed\"))\r\nc OK Fetch completed."
    );
    assert_eq!(
        c.ok("d", "FETCH 1 (BODY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2])"),
        "* 1 FETCH (BODY[1] {8}\r\nparte um BINARY[2] ~{3}\r\n\x00\x01\x02 BINARY.SIZE[2] 3)\r\nd OK Fetch completed."
    );
    assert_eq!(
        c.ok("e", "FETCH 1 BODY.PEEK[2.MIME]"),
        "* 1 FETCH (BODY[2.MIME] {77}\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n)\r\ne OK Fetch completed."
    );
    assert_eq!(
        c.ok("f", "SEARCH CHARSET UTF-8 SUBJECT \"olá\""),
        "* SEARCH 1 2\r\nf OK Search completed."
    );
    assert_eq!(c.ok("g", "SORT (DATE) UTF-8 ALL"), "* SORT 2 1\r\ng OK Sort completed.");
    assert_eq!(
        c.ok("h", "UID SORT (REVERSE DATE) UTF-8 ALL"),
        "* SORT 1 2\r\nh OK Sort completed."
    );
    assert_eq!(
        c.ok("i", "THREAD REFERENCES UTF-8 ALL"),
        "* THREAD (1 2)\r\ni OK Thread completed."
    );
    assert_eq!(
        c.ok("j", "THREAD ORDEREDSUBJECT UTF-8 ALL"),
        "* THREAD (2 1)\r\nj OK Thread completed."
    );
    c.ok("z", "LOGOUT");
}
