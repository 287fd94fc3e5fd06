//! Tests of the IMAP side of [`super::Mailbox`]: modseqs, the expunge
//! log, keywords, STORE, APPEND, COPY, MOVE and `\Recent`, with several
//! handles (and threads) on one folder as imapd sessions, pop3d and local
//! delivery have them.

use super::*;
use crate::{Changes, FolderName, Store};
use std::os::unix::fs::MetadataExt;

fn deliver(md: &Path, body: &str) -> String {
    crate::deliver(md, b"", body.as_bytes(), "host").unwrap().name
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    v.sort();
    v
}

fn modseqs(mb: &Mailbox) -> Vec<(u32, u64)> {
    mb.messages().iter().map(|m| (m.uid, m.modseq)).collect()
}

fn maildir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    crate::make(&md).unwrap();
    (t, md)
}

#[test]
fn modseqs_persist_and_grow_with_every_change() {
    let (_t, md) = maildir();
    deliver(&md, "a\n");
    deliver(&md, "b\n");
    let mut mine = Mailbox::open(&md).unwrap();
    assert_eq!(modseqs(&mine), [(1, 2), (2, 3)]);
    assert_eq!(mine.highest_modseq(), 3);
    let mut other = Mailbox::open(&md).unwrap();
    assert_eq!(other.highest_modseq(), 3, "read from the index, not made up");

    // STORE records at once.
    let stored = mine.store(&[1], FlagOp::Add, Flags::SEEN, None).unwrap();
    assert_eq!(
        stored.updated,
        [StoredFlags { uid: 1, flags: Flags::SEEN, modseq: 4, changed: true }]
    );
    let changes = other.refresh().unwrap();
    assert_eq!(changes.flags_changed, [1]);
    assert_eq!(other.message(1).unwrap().modseq, 4);
    assert_eq!(other.highest_modseq(), 4);

    // A rename by pop3d (or Dovecot) gets its modseq at the next load.
    other.set_flags(2, Flags::SEEN).unwrap();
    assert_eq!(mine.refresh().unwrap().flags_changed, [2]);
    assert_eq!(modseqs(&mine), [(1, 4), (2, 5)]);

    // Expunges are logged with theirs.
    assert_eq!(mine.expunge(&[1]).unwrap(), [1]);
    other.refresh().unwrap();
    assert_eq!(other.highest_modseq(), 6);
    assert_eq!(other.vanished_since(5), [(1, 1)]);
    assert_eq!(other.vanished_since(6), []);
    // Removed behind our back (rm, another server): logged at the next load.
    let name = &other.names[0];
    fs::remove_file(md.join("cur").join(name)).unwrap();
    let c = other.refresh().unwrap();
    assert_eq!(c.vanished, [2]);
    assert_eq!(other.highest_modseq(), 7);
    assert_eq!(other.vanished_since(5), [(1, 2)]);
    assert_eq!(other.vanished_since(6), [(2, 2)]);
    // A new arrival: a new modseq.
    deliver(&md, "c\n");
    other.refresh().unwrap();
    assert_eq!(modseqs(&other), [(3, 8)]);
    let reopened = Mailbox::open(&md).unwrap();
    assert_eq!((reopened.highest_modseq(), modseqs(&reopened)), (8, vec![(3, 8)]));
    assert_eq!(reopened.vanished_since(1), [(1, 2)]);
}

#[test]
fn vanished_before_the_log_floor_names_every_missing_uid() {
    let (_t, md) = maildir();
    for i in 0..6 {
        deliver(&md, &format!("{i}\n"));
    }
    let mut mb = Mailbox::open(&md).unwrap();
    mb.expunge(&[2, 3, 5]).unwrap();
    mb.refresh().unwrap();
    // Pretend the log was truncated: the floor is above what the client has.
    mb.expunge_floor = mb.highest_modseq();
    mb.expunged.clear();
    assert_eq!(mb.vanished_since(1), [(2, 3), (5, 5)]);
    assert_eq!(mb.vanished_since(mb.highest_modseq()), []);
    // UIDs beyond the last message but below UIDNEXT count too.
    mb.expunge(&[6]).unwrap();
    mb.refresh().unwrap();
    mb.expunge_floor = mb.highest_modseq();
    assert_eq!(mb.vanished_since(0), [(2, 3), (5, 6)]);
}

#[test]
fn store_ops_keep_what_imap_cannot_see() {
    let (_t, md) = maildir();
    let key = deliver(&md, "x\n");
    // A flag letter IMAP has no name for (P: passed), and an unnamed
    // keyword letter, set by another program.
    fs::rename(md.join("new").join(&key), md.join("cur").join(format!("{key}:2,PSq"))).unwrap();
    let mut mb = Mailbox::open(&md).unwrap();
    let junk = mb.keyword_flags(&["$Junk"]).unwrap();
    assert_eq!(junk, Flags::letter(b'a'));
    let s = mb.store(&[1], FlagOp::Add, Flags::FLAGGED | junk, None).unwrap();
    assert_eq!(s.updated[0].flags.to_maildir(), "FPSaq");
    assert_eq!(files(&md.join("cur")), [format!("{key}:2,FPSaq")]);
    let s = mb.store(&[1], FlagOp::Remove, Flags::SEEN, None).unwrap();
    assert_eq!(s.updated[0].flags.to_maildir(), "FPaq");
    let s = mb.store(&[1], FlagOp::Replace, Flags::DRAFT, None).unwrap();
    assert_eq!(s.updated[0].flags.to_maildir(), "DPq", "P and q stay");
    // The same again: nothing changes, no new modseq.
    let before = mb.highest_modseq();
    let s = mb.store(&[1], FlagOp::Add, Flags::DRAFT, None).unwrap();
    assert!(!s.updated[0].changed);
    assert_eq!(s.updated[0].modseq, before);
    assert_eq!(Mailbox::open(&md).unwrap().highest_modseq(), before);
    // Gone and unknown UIDs.
    let s = mb.store(&[9], FlagOp::Add, Flags::SEEN, None).unwrap();
    assert_eq!(s.gone, [9]);
    fs::remove_file(md.join("cur").join(format!("{key}:2,DPq"))).unwrap();
    let s = mb.store(&[1], FlagOp::Add, Flags::SEEN, None).unwrap();
    assert_eq!((s.gone, s.updated), (vec![1], vec![]));
}

#[test]
fn unchanged_since_refuses_messages_changed_later() {
    let (_t, md) = maildir();
    deliver(&md, "1\n");
    deliver(&md, "2\n");
    deliver(&md, "3\n");
    let mut a = Mailbox::open(&md).unwrap();
    let mut b = Mailbox::open(&md).unwrap();
    let seen_at = a.highest_modseq();
    b.store(&[2], FlagOp::Add, Flags::FLAGGED, None).unwrap();
    // pop3d marks 3 seen without recording a modseq.
    b.set_flags(3, Flags::SEEN).unwrap();
    let s = a.store(&[1, 2, 3], FlagOp::Add, Flags::DELETED, Some(seen_at)).unwrap();
    assert_eq!(s.modified, [2, 3]);
    assert_eq!(s.updated.iter().map(|u| u.uid).collect::<Vec<_>>(), [1]);
    assert!(a.message(1).unwrap().flags.contains(Flags::DELETED));
    assert!(!Mailbox::open(&md).unwrap().message(2).unwrap().flags.contains(Flags::DELETED));
}

#[test]
fn keywords_are_dovecots_and_bounded() {
    let (_t, md) = maildir();
    // Dovecot left its table.
    fs::write(md.join("dovecot-keywords"), "0 $Forwarded\n1 NonJunk\n").unwrap();
    let key = deliver(&md, "x\n");
    fs::rename(md.join("new").join(&key), md.join("cur").join(format!("{key}:2,Sb"))).unwrap();
    let mut mb = Mailbox::open(&md).unwrap();
    let flags = mb.message(1).unwrap().flags;
    assert_eq!(mb.keywords().names(flags).collect::<Vec<_>>(), ["NonJunk"]);
    let mut other = Mailbox::open(&md).unwrap();
    assert_eq!(mb.keyword_flags(&["nonjunk", "$forwarded"]).unwrap(), Flags::from_maildir("ab"));
    assert_eq!(mb.keyword_flags(&["Work"]).unwrap(), Flags::letter(b'c'));
    assert_eq!(
        fs::read_to_string(md.join("dovecot-keywords")).unwrap(),
        "0 $Forwarded\n1 NonJunk\n2 Work\n"
    );
    let c = other.refresh().unwrap();
    assert_eq!(c, Changes { keywords_changed: true, ..Changes::default() });
    assert_eq!(other.keywords().flag("WORK"), Some(Flags::letter(b'c')));
    for bad in ["a b", "\\Seen", "", "(x"] {
        assert!(matches!(mb.keyword_flags(&[bad]), Err(Error::Keyword { .. })), "{bad:?}");
    }
    for i in 3..26 {
        mb.keyword_flags(&[&format!("k{i}")]).unwrap();
    }
    assert!(matches!(mb.keyword_flags(&["one-more"]), Err(Error::Keyword { .. })));
}

#[test]
fn append_writes_a_durable_named_file_and_records_its_uid() {
    let (_t, md) = maildir();
    deliver(&md, "first\n");
    let mut mb = Mailbox::open(&md).unwrap();
    let mut other = Mailbox::open(&md).unwrap();
    let body = b"Subject: hi\r\n\r\nbody\nbare lf\n";
    let uid = mb.append(body, Flags::SEEN | Flags::DRAFT, Some(1_600_000_000)).unwrap();
    assert_eq!(uid, 2);
    assert!(mb.message(2).is_none(), "shows at the next refresh");
    let cur = files(&md.join("cur"));
    assert_eq!(cur.len(), 1);
    let name = &cur[0];
    assert!(name.ends_with(&format!(",S={},W={}:2,DS", body.len(), body.len() + 2)), "{name}");
    let meta = fs::metadata(md.join("cur").join(name)).unwrap();
    assert_eq!(meta.mtime(), 1_600_000_000);
    assert!(files(&md.join("tmp")).is_empty());
    let c = other.refresh().unwrap();
    assert_eq!(c.added, [2]);
    let m = other.message(2).unwrap();
    assert_eq!(
        (m.size, m.internal_date, m.flags),
        (body.len() as u64 + 2, 1_600_000_000, Flags::SEEN | Flags::DRAFT)
    );
    assert!(m.modseq > other.message(1).unwrap().modseq);
    let mut text = Vec::new();
    other.open_message(2).unwrap().read_to_end(&mut text).unwrap();
    assert_eq!(text, body);
    assert_eq!(mb.refresh().unwrap().added, [2]);
    // The next delivery gets the next UID.
    deliver(&md, "later\n");
    assert_eq!(mb.refresh().unwrap().added, [3]);
}

/// A client that sends part of its literal and vanishes.
struct Vanishing(usize);

impl io::Read for Vanishing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "client gone"));
        }
        let n = buf.len().min(self.0).min(1000);
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn an_append_cut_short_leaves_nothing() {
    let (_t, md) = maildir();
    let mut mb = Mailbox::open(&md).unwrap();
    let err = mb.append_from(&mut Vanishing(200_000), Flags::EMPTY, None).unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err:?}");
    for sub in ["tmp", "new", "cur"] {
        assert!(files(&md.join(sub)).is_empty(), "{sub}");
    }
    assert!(mb.refresh().unwrap().added.is_empty());
    assert_eq!(mb.uid_next(), 1, "no UID spent");
}

#[test]
fn copy_and_move_keep_flags_keywords_and_dates() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::new(&t.path().join("Maildir"));
    store.create(&FolderName::new("Archive").unwrap()).unwrap();
    let root = store.root().to_owned();
    deliver(&root, "one\n");
    deliver(&root, "two\n");
    deliver(&root, "three\n");
    let mut inbox = store.open(&FolderName::inbox()).unwrap();
    // The destination already has keywords, on other letters.
    let mut archive = store.open(&FolderName::new("Archive").unwrap()).unwrap();
    archive.keyword_flags(&["Old", "Work"]).unwrap();
    let work = inbox.keyword_flags(&["Work"]).unwrap();
    inbox.store(&[1], FlagOp::Add, Flags::SEEN | work, None).unwrap();
    let pairs = inbox.copy(&[1, 3, 77], &mut archive).unwrap();
    assert_eq!(pairs, [(1, 1), (3, 2)]);
    archive.refresh().unwrap();
    let a1 = archive.message(1).unwrap().clone();
    assert_eq!(a1.flags, Flags::SEEN | Flags::letter(b'b'), "Work is b there");
    assert_eq!(archive.keywords().names(a1.flags).collect::<Vec<_>>(), ["Work"]);
    assert_eq!(a1.internal_date, inbox.message(1).unwrap().internal_date);
    assert_eq!(a1.size, inbox.message(1).unwrap().size);
    // A hard link: one inode, two names.
    let src = inbox.open_message(1).unwrap().metadata().unwrap();
    let dst = archive.open_message(1).unwrap().metadata().unwrap();
    assert_eq!((src.ino(), src.nlink()), (dst.ino(), 2));
    // Flags of the copy are its own.
    archive.store(&[1], FlagOp::Add, Flags::DELETED, None).unwrap();
    inbox.refresh().unwrap();
    assert!(!inbox.message(1).unwrap().flags.contains(Flags::DELETED));

    let moved = inbox.move_to(&[2], &mut archive).unwrap();
    assert_eq!(moved, [(2, 3)]);
    assert!(inbox.message(2).is_none());
    assert_eq!(inbox.messages().len(), 2);
    let c = archive.refresh().unwrap();
    assert_eq!(c.added, [3]);
    let mut text = String::new();
    archive.open_message(3).unwrap().read_to_string(&mut text).unwrap();
    assert_eq!(text, "two\n");
    let reopened = store.open(&FolderName::inbox()).unwrap();
    assert_eq!(reopened.messages().iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(reopened.vanished_since(reopened.highest_modseq() - 1), [(2, 2)]);

    // A copy into another handle on the same folder.
    let mut again = store.open(&FolderName::inbox()).unwrap();
    assert_eq!(inbox.copy(&[3], &mut again).unwrap(), [(3, 4)]);
}

#[test]
fn recent_goes_to_one_session_only() {
    let (_t, md) = maildir();
    deliver(&md, "1\n");
    deliver(&md, "2\n");
    let mut a = Mailbox::open(&md).unwrap();
    let mut b = Mailbox::open(&md).unwrap();
    assert_eq!(a.take_recent().unwrap(), [1, 2]);
    assert_eq!(b.take_recent().unwrap(), Vec::<u32>::new());
    assert!(files(&md.join("new")).is_empty());
    assert!(files(&md.join("cur")).iter().all(|n| n.ends_with(":2,")));
    // Moving to cur/ is no flag change.
    assert_eq!(b.refresh().unwrap(), Changes::default());
    assert!(a.messages().iter().all(|m| !m.in_new));
    deliver(&md, "3\n");
    b.refresh().unwrap();
    assert_eq!(b.take_recent().unwrap(), [3]);
}

#[test]
fn concurrent_sessions_delivery_and_pop3_stay_consistent() {
    let (_t, md) = maildir();
    for i in 0..20 {
        deliver(&md, &format!("{i}\n"));
    }
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let md = md.clone();
            std::thread::spawn(move || {
                let mut mb = Mailbox::open(&md).unwrap();
                for round in 0..10 {
                    match w {
                        // Two IMAP sessions: one flags odd messages, the
                        // other appends and flags even ones.
                        0 => {
                            let uids: Vec<u32> = (1..=20).filter(|u| u % 2 == 1).collect();
                            mb.store(&uids, FlagOp::Add, Flags::FLAGGED, None).unwrap();
                        }
                        1 => {
                            mb.append(format!("append {round}\n").as_bytes(), Flags::SEEN, None)
                                .unwrap();
                            let uids: Vec<u32> = (1..=20).filter(|u| u % 2 == 0).collect();
                            mb.store(&uids, FlagOp::Add, Flags::ANSWERED, None).unwrap();
                        }
                        // Local delivery and a reader that refreshes.
                        _ => {
                            deliver(&md, &format!("late {round}\n"));
                            mb.refresh().unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(mb.messages().len(), 40);
    let uids: Vec<u32> = mb.messages().iter().map(|m| m.uid).collect();
    assert_eq!(uids, (1..=40).collect::<Vec<u32>>(), "every message one UID");
    for m in &mb.messages()[..20] {
        let want = if m.uid % 2 == 1 { Flags::FLAGGED } else { Flags::ANSWERED };
        assert_eq!(m.flags, want, "uid {}", m.uid);
    }
    let mut seqs: Vec<u64> = mb.messages().iter().map(|m| m.modseq).collect();
    assert!(seqs.iter().all(|&s| s <= mb.highest_modseq()));
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 40, "no two changes share a modseq");
}

#[test]
fn folders_keep_dovecot_and_courier_uids() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::new(&t.path().join("Maildir"));
    crate::make(store.root()).unwrap();
    // Dovecot: .Sent with its uidlist and keywords.
    let sent = crate::make_folder(store.root(), "Sent").unwrap();
    fs::write(sent.join("cur/1276528487.M1P1.kurkku,S=3:2,Sa"), b"ab\n").unwrap();
    fs::write(sent.join("cur/1276528488.M2P1.kurkku,S=3:2,"), b"cd\n").unwrap();
    fs::write(
        sent.join("dovecot-uidlist"),
        b"3 V1275660208 N30\n25 :1276528487.M1P1.kurkku,S=3\n27 :1276528488.M2P1.kurkku,S=3\n",
    )
    .unwrap();
    fs::write(sent.join("dovecot-keywords"), b"0 $Forwarded\n").unwrap();
    // Courier: .Lixeira made by maildirmake, with courierimapuiddb.
    let trash = crate::make_folder(store.root(), "Lixeira").unwrap();
    fs::write(trash.join("cur/1600000000.1.host:2,T"), b"x\n").unwrap();
    fs::write(trash.join("courierimapuiddb"), b"1 1600000000 8\n7 1600000000.1.host\n").unwrap();
    let mb = store.open(&FolderName::new("Sent").unwrap()).unwrap();
    assert_eq!(mb.uid_validity(), 1_275_660_208);
    assert_eq!(mb.messages().iter().map(|m| m.uid).collect::<Vec<_>>(), [25, 27]);
    assert_eq!(mb.uid_next(), 30);
    // Dovecot's modseqs are not readable here; ours start above any it
    // can have reached, so HIGHESTMODSEQ never goes down for a client.
    assert!(mb.highest_modseq() > 1_700_000_000, "{}", mb.highest_modseq());
    let f = mb.message(25).unwrap().flags;
    assert_eq!(mb.keywords().names(f).collect::<Vec<_>>(), ["$Forwarded"]);
    let mb = store.open(&FolderName::new("Lixeira").unwrap()).unwrap();
    assert_eq!((mb.uid_validity(), mb.messages()[0].uid), (1_600_000_000, 7));
    assert!(mb.messages()[0].flags.contains(Flags::DELETED));
}
