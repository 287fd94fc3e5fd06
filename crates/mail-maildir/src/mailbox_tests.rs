//! Tests of [`super::Mailbox`] on Maildirs made by hand in temporary
//! directories: what pop3d and imapd rely on, rule by rule.

use super::*;
use std::io::Read as _;

fn deliver(md: &Path, body: &str) -> String {
    crate::deliver(md, b"", body.as_bytes(), "host").unwrap().name
}

fn read(mb: &Mailbox, uid: u32) -> Vec<u8> {
    let mut v = Vec::new();
    mb.open_message(uid).unwrap().read_to_end(&mut v).unwrap();
    v
}

fn uids(mb: &Mailbox) -> Vec<u32> {
    mb.messages().iter().map(|m| m.uid).collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    v.sort();
    v
}

#[test]
fn missing_maildir_is_created_and_empty() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("home/u/Maildir");
    let mb = Mailbox::open(&md).unwrap();
    assert!(mb.messages().is_empty());
    assert_eq!(mb.uid_next(), 1);
    assert_ne!(mb.uid_validity(), 0);
    for sub in ["tmp", "new", "cur"] {
        assert!(md.join(sub).is_dir());
    }
    let index = fs::read_to_string(md.join("postern-uidlist")).unwrap();
    assert_eq!(index, format!("postern-uidlist 1 V{} N1 M1 X1\n", mb.uid_validity()));
}

#[test]
fn uids_sizes_and_order_persist() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let a = deliver(&md, "Subject: a\n\none\n");
    let b = deliver(&md, "Subject: b\r\n\r\ntwo\n");
    let c = deliver(&md, "no newline at end");
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&mb), [1, 2, 3]);
    let keys: Vec<&str> = mb.messages().iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, [a.as_str(), b.as_str(), c.as_str()]);
    let sizes: Vec<u64> = mb.messages().iter().map(|m| m.size).collect();
    // Bare LFs count twice, an existing CRLF once.
    assert_eq!(sizes, [16 + 3, 18 + 1, 17]);
    assert!(mb.messages().iter().all(|m| m.in_new && m.flags.is_empty()));
    assert_eq!(mb.uid_next(), 4);
    assert_eq!(read(&mb, 2), b"Subject: b\r\n\r\ntwo\n");

    let again = Mailbox::open(&md).unwrap();
    assert_eq!(again.uid_validity(), mb.uid_validity());
    assert_eq!(again.messages(), mb.messages());
    assert!(again.rebuilt().is_none());
}

#[test]
fn set_flags_moves_to_cur_and_keeps_the_uid() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let a = deliver(&md, "x\n");
    deliver(&md, "y\n");
    let mut mb = Mailbox::open(&md).unwrap();
    mb.set_flags(1, Flags::SEEN).unwrap();
    assert_eq!(files(&md.join("cur")), [format!("{a}:2,S")]);
    assert_eq!(files(&md.join("new")).len(), 1);
    let m = mb.message(1).unwrap();
    assert!(!m.in_new && m.flags == Flags::SEEN);
    // The same flags again: nothing to do.
    mb.set_flags(1, Flags::SEEN).unwrap();
    assert_eq!(read(&mb, 1), b"x\n");

    let mut again = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&again), [1, 2]);
    assert_eq!(again.message(1).unwrap().flags, Flags::SEEN);
    again.set_flags(1, Flags::SEEN | Flags::ANSWERED).unwrap();
    assert_eq!(files(&md.join("cur")), [format!("{a}:2,RS")]);
    assert!(matches!(again.set_flags(9, Flags::SEEN), Err(Error::NotFound { uid: 9, .. })));
}

#[test]
fn expunge_removes_files_and_uids_are_not_reused() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    for i in 0..3 {
        deliver(&md, &format!("{i}\n"));
    }
    let mut mb = Mailbox::open(&md).unwrap();
    mb.set_flags(3, Flags::SEEN).unwrap();
    assert_eq!(mb.expunge(&[3, 1, 1, 42]).unwrap(), [3, 1]);
    assert_eq!(uids(&mb), [2]);
    assert_eq!(files(&md.join("new")).len(), 1);
    assert!(files(&md.join("cur")).is_empty());
    deliver(&md, "new\n");
    let again = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&again), [2, 4]);
    assert_eq!(again.uid_next(), 5);
}

#[test]
fn refresh_reports_what_others_did() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    for i in 0..3 {
        deliver(&md, &format!("{i}\n"));
    }
    let mut mine = Mailbox::open(&md).unwrap();
    let mut other = Mailbox::open(&md).unwrap();
    other.set_flags(1, Flags::FLAGGED).unwrap();
    other.expunge(&[2]).unwrap();
    deliver(&md, "late\n");
    // The snapshot stays until refreshed.
    assert_eq!(uids(&mine), [1, 2, 3]);
    let changes = mine.refresh().unwrap();
    assert_eq!(
        changes,
        Changes {
            added: vec![4],
            vanished: vec![2],
            flags_changed: vec![1],
            uid_validity_changed: false,
            keywords_changed: false,
        }
    );
    assert_eq!(uids(&mine), [1, 3, 4]);
    assert_eq!(mine.refresh().unwrap(), Changes::default());
}

#[test]
fn open_message_follows_renames_and_reports_removal() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let a = deliver(&md, "body\n");
    let mut mb = Mailbox::open(&md).unwrap();
    // Another process marks it seen.
    fs::rename(md.join("new").join(&a), md.join("cur").join(format!("{a}:2,S"))).unwrap();
    assert_eq!(read(&mb, 1), b"body\n");
    // set_flags finds it too and keeps other letters it is given.
    mb.set_flags(1, Flags::SEEN | Flags::letter(b'a')).unwrap();
    assert_eq!(files(&md.join("cur")), [format!("{a}:2,Sa")]);
    fs::remove_file(md.join("cur").join(format!("{a}:2,Sa"))).unwrap();
    assert!(matches!(mb.open_message(1), Err(Error::NotFound { uid: 1, .. })));
    assert!(matches!(mb.open_message(7), Err(Error::NotFound { uid: 7, .. })));
    assert!(matches!(mb.set_flags(1, Flags::SEEN), Err(Error::NotFound { .. })));
    assert_eq!(mb.expunge(&[1]).unwrap(), Vec::<u32>::new());
}

#[test]
fn exclusive_lock_is_held_until_dropped() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let one = Mailbox::open(&md).unwrap();
    let two = Mailbox::open(&md).unwrap();
    let lock = one.lock_exclusive("pop3").unwrap().expect("free");
    assert_eq!(lock.path(), md.join("postern-pop3.lock"));
    assert!(two.lock_exclusive("pop3").unwrap().is_none());
    assert!(one.lock_exclusive("pop3").unwrap().is_none(), "not re-entrant");
    // Another purpose is another lock.
    assert!(two.lock_exclusive("imap-x").unwrap().is_some());
    drop(lock);
    assert!(two.lock_exclusive("pop3").unwrap().is_some());
    for bad in ["", "../x", "POP3", "a b", &"x".repeat(33)] {
        assert!(matches!(one.lock_exclusive(bad), Err(Error::Lock { .. })), "{bad:?}");
    }
}

fn index_text(md: &Path) -> String {
    fs::read_to_string(md.join("postern-uidlist")).unwrap()
}

fn reasons(mb: &Mailbox) -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = mb
        .skipped()
        .iter()
        .map(|s| (s.path.file_name().unwrap().to_string_lossy().into_owned(), s.reason))
        .collect();
    v.sort();
    v
}

#[test]
fn stray_entries_and_symlinks_are_skipped_never_followed() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let real = deliver(&md, "real\n");
    let outside = t.path().join("secret");
    fs::write(&outside, "not mail\n").unwrap();
    std::os::unix::fs::symlink(&outside, md.join("new/1.M1P1.evil")).unwrap();
    std::os::unix::fs::symlink(&outside, md.join("cur/1.M2P1.evil:2,S")).unwrap();
    fs::write(md.join("new/.hidden"), "x").unwrap();
    fs::write(md.join("cur/.1.M3P1.tmp"), "x").unwrap();
    fs::create_dir(md.join("cur/subdir")).unwrap();
    fs::write(md.join("new/line\nbreak"), "x").unwrap();
    fs::write(md.join("cur/:2,S"), "x").unwrap();
    fs::write(md.join("new").join(std::ffi::OsStr::from_bytes(b"bad\xff")), "x").unwrap();
    nix::unistd::mkfifo(&md.join("new/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();

    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.messages().len(), 1);
    assert_eq!(mb.messages()[0].key, real);
    assert_eq!(
        reasons(&mb),
        [
            ("1.M1P1.evil".to_owned(), "symbolic link (not followed)"),
            ("1.M2P1.evil:2,S".to_owned(), "symbolic link (not followed)"),
            (":2,S".to_owned(), "not a Maildir message name"),
            ("bad\u{fffd}".to_owned(), "file name is not UTF-8"),
            ("fifo".to_owned(), "not a regular file"),
            ("line\nbreak".to_owned(), "not a Maildir message name"),
        ]
    );
    // Everything is still there, untouched.
    assert_eq!(fs::read(&outside).unwrap(), b"not mail\n");
    assert_eq!(files(&md.join("new")).len(), 6);

    // A message replaced by a symlink after the open is refused, not read.
    fs::remove_file(md.join("new").join(&real)).unwrap();
    std::os::unix::fs::symlink(&outside, md.join("new").join(&real)).unwrap();
    assert!(matches!(mb.open_message(1), Err(Error::Symlink { .. })));
}

#[test]
fn symlinked_maildir_or_subdirectory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let real = t.path().join("real");
    crate::make(&real).unwrap();
    let link = t.path().join("Maildir");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(Mailbox::open(&link), Err(Error::Symlink { .. })));
    assert!(matches!(
        Mailbox::open(Path::new(&format!("{}/", link.display()))),
        Err(Error::Symlink { .. })
    ));
    let md = t.path().join("md");
    crate::make(&md).unwrap();
    fs::remove_dir(md.join("cur")).unwrap();
    std::os::unix::fs::symlink(real.join("cur"), md.join("cur")).unwrap();
    match Mailbox::open(&md) {
        Err(Error::Symlink { path }) => assert_eq!(path, md.join("cur")),
        other => panic!("{other:?}"),
    }
    // The index file itself as a symlink is replaced, its target untouched.
    let md2 = t.path().join("md2");
    crate::make(&md2).unwrap();
    let target = t.path().join("target");
    fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, md2.join("postern-uidlist")).unwrap();
    let mb = Mailbox::open(&md2).unwrap();
    assert!(mb.rebuilt().unwrap().contains("symbolic link"), "{:?}", mb.rebuilt());
    assert_eq!(fs::read(&target).unwrap(), b"keep");
    assert!(!fs::symlink_metadata(md2.join("postern-uidlist")).unwrap().file_type().is_symlink());
}

#[test]
fn missing_cur_and_tmp_are_created_or_done_without() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    deliver(&md, "a\n");
    fs::remove_dir(md.join("cur")).unwrap();
    fs::remove_dir(md.join("tmp")).unwrap();
    let mut mb = Mailbox::open(&md).unwrap();
    assert!(md.join("cur").is_dir() && md.join("tmp").is_dir());
    assert_eq!(uids(&mb), [1]);
    mb.set_flags(1, Flags::SEEN).unwrap();

    // cur/ that cannot be made (a file is in the way): new/ still reads.
    let md = t.path().join("Other");
    deliver(&md, "b\n");
    fs::remove_dir(md.join("cur")).unwrap();
    fs::write(md.join("cur"), "").unwrap();
    let mut mb = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&mb), [1]);
    assert_eq!(read(&mb, 1), b"b\n");
    let err = mb.set_flags(1, Flags::SEEN).unwrap_err();
    assert!(matches!(err, Error::Link { .. }), "{err:?}");
    assert!(mb.message(1).unwrap().in_new);
}

#[test]
fn damaged_index_is_rebuilt_with_a_higher_uidvalidity() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    for i in 0..3 {
        deliver(&md, &format!("{i}\n"));
    }
    let first = Mailbox::open(&md).unwrap();
    let v = first.uid_validity();
    let good = index_text(&md);
    let far = v + 1000;
    for (damage, why) in [
        (format!("postern-uidlist 1 V{far} N4\n1 W1 T1 :new/x\n9 junk"), "final newline"),
        (format!("postern-uidlist 1 V{far} N2\n1 W4 T1 :new/a\n1 W4 T1 :new/b\n"), "order"),
        (format!("postern-uidlist 7 V{far} N4\n"), "version 7"),
        ("\0\0\0\0\n".to_owned(), "not a postern-uidlist"),
    ] {
        fs::write(md.join("postern-uidlist"), &damage).unwrap();
        let mb = Mailbox::open(&md).unwrap();
        assert!(mb.rebuilt().unwrap().contains(why), "{why}: {:?}", mb.rebuilt());
        assert!(mb.uid_validity() > v, "{why}");
        if damage.contains(&format!("V{far}")) {
            assert!(mb.uid_validity() > far, "{why}: above the damaged file's");
        }
        assert_eq!(uids(&mb), [1, 2, 3], "{why}");
        let keys: Vec<_> = mb.messages().iter().map(|m| &m.key).collect();
        let old: Vec<_> = first.messages().iter().map(|m| &m.key).collect();
        assert_eq!(keys, old, "{why}: same order");
        // Rebuilt once, then read as it is.
        assert!(Mailbox::open(&md).unwrap().rebuilt().is_none());
    }
    // Larger than any index we read (a sparse file costs nothing).
    let f = File::create(md.join("postern-uidlist")).unwrap();
    f.set_len(MAX_INDEX_BYTES + 1).unwrap();
    drop(f);
    let mb = Mailbox::open(&md).unwrap();
    assert!(mb.rebuilt().unwrap().contains("too large"), "{:?}", mb.rebuilt());
    assert!(index_text(&md).len() < good.len() * 2);
    // Deleted: a fresh one, same messages, a new UIDVALIDITY, and no
    // import of an older foreign uidlist.
    let before = mb.uid_validity();
    fs::remove_file(md.join("postern-uidlist")).unwrap();
    fs::write(
        md.join("dovecot-uidlist"),
        "3 V5 N9
",
    )
    .unwrap();
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.rebuilt(), Some("index missing"));
    assert!(mb.uid_validity() > before);
    assert_eq!(uids(&mb), [1, 2, 3]);
}

#[test]
fn refresh_notices_a_rebuilt_index() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    deliver(&md, "a\n");
    deliver(&md, "b\n");
    let mut mb = Mailbox::open(&md).unwrap();
    let v = mb.uid_validity();
    fs::write(
        md.join("postern-uidlist"),
        format!("postern-uidlist 1 V{v} N1\n1 W1 T1 :new/gone\n"),
    )
    .unwrap();
    let changes = mb.refresh().unwrap();
    assert!(changes.uid_validity_changed);
    assert_eq!(changes.vanished, [1, 2]);
    assert_eq!(changes.added, [1, 2]);
    assert!(mb.uid_validity() > v);
}

#[test]
fn dovecot_uidlist_uids_are_kept() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    crate::make(&md).unwrap();
    // What Dovecot leaves: names with ,S= and ,W=, flags in cur/.
    let seen = "1276528487.M364837P9451.kurkku,S=11,W=13";
    let flagged = "1276533073.M242911P3632.kurkku,S=5,W=6";
    let unknown = "1276540000.M1P1.kurkku,S=2,W=3";
    let fresh = "1276550000.M1P1.kurkku";
    fs::write(md.join("cur").join(format!("{seen}:2,S")), "Subject: x\n").unwrap();
    fs::write(md.join("cur").join(format!("{flagged}:2,FS")), "body\n").unwrap();
    fs::write(md.join("new").join(unknown), "u\n").unwrap();
    fs::write(md.join("new").join(fresh), "f\n").unwrap();
    fs::write(
        md.join("dovecot-uidlist"),
        format!(
            "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n\
             25006 :{seen}\n25017 W6 :{flagged}:2,FS\n25018 :long-gone-message\n"
        ),
    )
    .unwrap();
    fs::write(md.join("dovecot-keywords"), "0 $Forwarded\n").unwrap();
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.uid_validity(), 1_275_660_208);
    let got: Vec<(u32, &str, u64, String)> = mb
        .messages()
        .iter()
        .map(|m| (m.uid, m.key.as_str(), m.size, m.flags.to_maildir()))
        .collect();
    assert_eq!(
        got,
        [
            (25006, seen, 13, "S".to_owned()),
            (25017, flagged, 6, "FS".to_owned()),
            (25022, unknown, 3, String::new()),
            (25023, fresh, 3, String::new()),
        ]
    );
    assert_eq!(mb.uid_next(), 25024);
    // From now on our index is the truth; the imported file is left alone.
    fs::write(md.join("dovecot-uidlist"), "3 V1 N2\n1 :x\n").unwrap();
    let again = Mailbox::open(&md).unwrap();
    assert_eq!(again.uid_validity(), 1_275_660_208);
    assert_eq!(again.messages(), mb.messages());
}

#[test]
fn courier_maildirmake_layout_opens_with_its_uids() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    // The tutorial: maildirmake Maildir; maildirmake -f Enviados Maildir; ...
    crate::make(&md).unwrap();
    for f in ["Enviados", "Rascunhos", "Lixeira", "Spam"] {
        crate::make_folder(&md, f).unwrap();
    }
    // What Courier's imapd/pop3d add over time.
    fs::create_dir(md.join("courierimapkeywords")).unwrap();
    fs::write(md.join("courierimapsubscribed"), "INBOX.Enviados\n").unwrap();
    fs::write(md.join("courierpop3dsizelist"), "junk\n").unwrap();
    fs::write(md.join("cur/1600000001.M1P1.mail:2,S"), "one\n").unwrap();
    fs::write(md.join("cur/1600000002.M1P1.mail:2,"), "two\n").unwrap();
    fs::write(
        md.join("courierimapuiddb"),
        "1 1600000000 8\n3 1600000001.M1P1.mail\n7 1600000002.M1P1.mail\n",
    )
    .unwrap();
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.uid_validity(), 1_600_000_000);
    assert_eq!(uids(&mb), [3, 7]);
    assert_eq!(mb.message(3).unwrap().flags, Flags::SEEN);
    assert_eq!(mb.message(7).unwrap().size, 5);
    assert!(mb.skipped().is_empty(), "{:?}", mb.skipped());
    // Its folders open as mailboxes of their own.
    let sent = Mailbox::open(&md.join(".Enviados")).unwrap();
    assert!(sent.messages().is_empty());
    assert!(md.join(".Enviados/postern-uidlist").is_file());
}

#[test]
fn sizes_from_w_fields_are_trusted_others_are_counted_once() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    crate::make(&md).unwrap();
    fs::write(md.join("new/100.M1P1.h,S=5,W=999"), "a\nb\nc").unwrap();
    fs::write(md.join("new/101.M1P1.h,S=5"), "a\nb\nc").unwrap();
    fs::write(md.join("new/102.M1P1.h,W=bogus"), "a\r\nb\n").unwrap();
    let mb = Mailbox::open(&md).unwrap();
    let sizes: Vec<u64> = mb.messages().iter().map(|m| m.size).collect();
    assert_eq!(sizes, [999, 7, 6]);
    // Cached: the index answers even when the file changes behind us.
    fs::write(md.join("new/101.M1P1.h,S=5"), "").unwrap();
    assert_eq!(Mailbox::open(&md).unwrap().messages()[1].size, 7);
    // Our own deliveries carry ,W=.
    let name = deliver(&md, "x\ny\n");
    assert!(name.ends_with(",S=4,W=6"), "{name}");
}

#[test]
fn new_arrivals_are_numbered_by_arrival_time() {
    use nix::sys::time::TimeVal;
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    crate::make(&md).unwrap();
    for (name, secs) in [("a", 2_000_000_000), ("b", 1_000_000_000), ("c", 1_500_000_000)] {
        let p = md.join("new").join(name);
        fs::write(&p, name).unwrap();
        let tv = TimeVal::new(secs, 0);
        nix::sys::stat::utimes(&p, &tv, &tv).unwrap();
    }
    let mb = Mailbox::open(&md).unwrap();
    let got: Vec<(u32, &str, i64)> =
        mb.messages().iter().map(|m| (m.uid, m.key.as_str(), m.internal_date)).collect();
    assert_eq!(got, [(1, "b", 1_000_000_000), (2, "c", 1_500_000_000), (3, "a", 2_000_000_000)]);
}

#[test]
fn duplicate_unique_names_show_once() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    crate::make(&md).unwrap();
    fs::write(md.join("new/dup.x"), "1").unwrap();
    fs::write(md.join("cur/dup.x:2,S"), "2").unwrap();
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.messages().len(), 1);
    assert_eq!(mb.skipped().len(), 1);
    assert_eq!(mb.skipped()[0].reason, "same unique name as another message");
    // Both files are kept.
    assert_eq!(files(&md.join("new")).len() + files(&md.join("cur")).len(), 2);
}

#[test]
fn too_many_messages_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    for i in 0..4 {
        deliver(&md, &i.to_string());
    }
    let small = MailboxOptions { max_messages: 3, ..MailboxOptions::default() };
    let err = Mailbox::open_with(&md, small).unwrap_err();
    assert!(matches!(err, Error::TooMany { limit: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("more than 3 messages"), "{err}");
    let fits = MailboxOptions { max_messages: 4, ..MailboxOptions::default() };
    assert_eq!(Mailbox::open_with(&md, fits).unwrap().messages().len(), 4);
}

#[test]
fn index_updates_wait_for_the_lock_but_not_forever() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    deliver(&md, "a\n");
    Mailbox::open(&md).unwrap();
    let held = Flock::lock(open_lock_file(&md.join(INDEX_LOCK)).unwrap(), FlockArg::LockExclusive)
        .unwrap();
    let quick = MailboxOptions { lock_wait: Duration::from_millis(100), ..Default::default() };
    // Nothing to update: no lock needed.
    assert_eq!(Mailbox::open_with(&md, quick.clone()).unwrap().messages().len(), 1);
    deliver(&md, "b\n");
    let started = Instant::now();
    let err = Mailbox::open_with(&md, quick.clone()).unwrap_err();
    assert!(matches!(err, Error::Lock { .. }) && err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(held);
    assert_eq!(Mailbox::open_with(&md, quick).unwrap().messages().len(), 2);
}

#[test]
fn running_out_of_uids_renumbers_under_a_new_uidvalidity() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let a = deliver(&md, "a\n");
    let max = u32::MAX;
    fs::write(
        md.join("postern-uidlist"),
        format!("postern-uidlist 1 V77 N{}\n{} W3 T1 :new/{a}\n", max - 1, max - 2),
    )
    .unwrap();
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&mb), [max - 2]);
    deliver(&md, "b\n");
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.rebuilt(), Some("UIDs exhausted"));
    assert_eq!(uids(&mb), [1, 2]);
    assert!(mb.uid_validity() > 77);
}

#[test]
fn concurrent_sessions_and_deliveries_agree_on_uids() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    crate::make(&md).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (md, stop) = (md.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let mut seen: HashMap<String, u32> = HashMap::new();
            let mut mb = Mailbox::open(&md).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                mb.refresh().unwrap();
                for m in mb.messages() {
                    if let Some(uid) = seen.insert(m.key.clone(), m.uid) {
                        assert_eq!(uid, m.uid, "{} changed UID", m.key);
                    }
                    // Flag changes race with the other readers' renames.
                    let _ = mb.open_message(m.uid).map(drop);
                }
                if let Some(uid) = mb.messages().last().map(|m| m.uid) {
                    // Renames by several sessions at once.
                    let _ = mb.set_flags(uid, Flags::SEEN);
                }
            }
            (mb.uid_validity(), seen)
        }));
    }
    for i in 0..60 {
        deliver(&md, &format!("message {i}\n"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let final_view = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&final_view), (1..=60).collect::<Vec<u32>>());
    for r in readers {
        let (validity, seen) = r.join().unwrap();
        assert_eq!(validity, final_view.uid_validity());
        for (key, uid) in seen {
            assert_eq!(final_view.messages()[uid as usize - 1].key, key);
        }
    }
}

#[test]
fn cur_removed_during_a_session_is_an_error_not_a_missing_message() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let a = deliver(&md, "a\n");
    let mut mb = Mailbox::open(&md).unwrap();
    fs::remove_dir(md.join("cur")).unwrap();
    let err = mb.set_flags(1, Flags::SEEN).unwrap_err();
    assert!(matches!(err, Error::Link { .. }) && err.is_transient(), "{err:?}");
    assert_eq!(files(&md.join("new")), [a]);
    assert_eq!(read(&mb, 1), b"a\n");
}

#[test]
fn arrivals_in_one_second_keep_delivery_order() {
    assert_eq!(name_time("1796153420.M65634P10689Q91.host,S=16"), Some((1_796_153_420, 65634)));
    assert_eq!(name_time("1796153420.M105400P1Q2.host"), Some((1_796_153_420, 105_400)));
    assert_eq!(name_time("plain"), None);
    assert_eq!(name_time("1.Mx"), None);
    assert_eq!(name_time("x1.M5P1"), None);
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    crate::make(&md).unwrap();
    // Same mtime second: the microseconds in the names decide, not a
    // string sort of the names.
    let late = md.join("new/1700000000.M105400P1Q2.host");
    let early = md.join("new/1700000000.M65634P1Q1.host");
    for p in [&late, &early] {
        fs::write(p, "x").unwrap();
        let tv = nix::sys::time::TimeVal::new(1_700_000_000, 0);
        nix::sys::stat::utimes(p.as_path(), &tv, &tv).unwrap();
    }
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.messages()[0].key, "1700000000.M65634P1Q1.host");
    assert_eq!(mb.messages()[1].key, "1700000000.M105400P1Q2.host");
}

#[test]
fn a_name_from_the_second_before_its_mtime_keeps_delivery_order() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    crate::make(&md).unwrap();
    // The first message was named at .999999 of second 0 and written in
    // second 1; the second was named and written in second 1. Mixing the
    // mtime's second with the name's microseconds put them the wrong way.
    let first = md.join("new/1700000000.M999999P1Q1.host");
    let second = md.join("new/1700000001.M200P1Q2.host");
    for p in [&second, &first] {
        fs::write(p, "x").unwrap();
        let tv = nix::sys::time::TimeVal::new(1_700_000_001, 500_000);
        nix::sys::stat::utimes(p.as_path(), &tv, &tv).unwrap();
    }
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.messages()[0].key, "1700000000.M999999P1Q1.host");
    assert_eq!(mb.messages()[1].key, "1700000001.M200P1Q2.host");
}

fn mtime(dir: &Path) -> SystemTime {
    fs::metadata(dir).unwrap().modified().unwrap()
}

fn set_mtime(dir: &Path, t: SystemTime) {
    File::open(dir).unwrap().set_modified(t).unwrap();
}

/// Both directories' mtimes a minute ago: settled.
fn settle(md: &Path) {
    let old = SystemTime::now() - Duration::from_secs(60);
    set_mtime(&md.join("new"), old);
    set_mtime(&md.join("cur"), old);
}

#[test]
fn settled_directories_spare_the_listing_and_every_change_still_shows() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    deliver(&md, "Subject: a\n\none\n");
    deliver(&md, "Subject: b\n\ntwo\n");
    settle(&md);
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&mb), [1, 2]);
    let new_mtime = mtime(&md.join("new"));
    assert!(index_text(&md).lines().next().unwrap().contains(" S"), "{}", index_text(&md));

    // The listing is skipped: a file slipped in without moving new/'s
    // mtime (what only a change within the recorded tick could do) is
    // not seen until the mtime moves.
    fs::write(md.join("new/1.M1P1.sneaked"), b"Subject: c\n\nthree\n").unwrap();
    set_mtime(&md.join("new"), new_mtime);
    assert_eq!(uids(&Mailbox::open(&md).unwrap()), [1, 2]);
    set_mtime(&md.join("new"), SystemTime::now());
    assert_eq!(uids(&Mailbox::open(&md).unwrap()), [1, 2, 3]);

    // A delivery moves new/'s mtime.
    settle(&md);
    assert_eq!(uids(&Mailbox::open(&md).unwrap()), [1, 2, 3]);
    deliver(&md, "Subject: d\n\nfour\n");
    assert_eq!(uids(&Mailbox::open(&md).unwrap()), [1, 2, 3, 4]);

    // A flag change by another process (imapd's STORE, pop3d's RETR):
    // the rename moves the mtimes, and the next open shows the flag.
    settle(&md);
    let mut other = Mailbox::open(&md).unwrap();
    other.set_flags(2, Flags::SEEN).unwrap();
    let again = Mailbox::open(&md).unwrap();
    assert_eq!(again.message(2).unwrap().flags, Flags::SEEN);
    assert!(!again.message(2).unwrap().in_new);

    // A removal by another process.
    settle(&md);
    let _ = Mailbox::open(&md).unwrap();
    other.expunge(&[1]).unwrap();
    assert_eq!(uids(&Mailbox::open(&md).unwrap()), [2, 3, 4]);

    // A lost index: the listing is the truth again.
    settle(&md);
    let _ = Mailbox::open(&md).unwrap();
    fs::remove_file(md.join("postern-uidlist")).unwrap();
    assert_eq!(Mailbox::open(&md).unwrap().messages().len(), 3);
}

#[test]
fn a_delivery_in_the_same_second_as_the_last_open_shows() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    deliver(&md, "Subject: a\n\none\n");
    set_mtime(&md.join("cur"), SystemTime::now() - Duration::from_secs(60));
    let new_mtime = mtime(&md.join("new"));
    assert_eq!(uids(&Mailbox::open(&md).unwrap()), [1]);
    // new/ changed less than a second before it was read: nothing that
    // happens in the same tick can be ruled out, so nothing is recorded.
    assert!(!index_text(&md).lines().next().unwrap().contains(" S"), "{}", index_text(&md));
    // A delivery in the same clock tick leaves the mtime as it was.
    deliver(&md, "Subject: b\n\ntwo\n");
    set_mtime(&md.join("new"), new_mtime);
    assert_eq!(uids(&Mailbox::open(&md).unwrap()), [1, 2]);
}
