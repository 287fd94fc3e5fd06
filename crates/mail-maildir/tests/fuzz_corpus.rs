//! Replays the committed `maildir_name` fuzz corpus on stable Rust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn maildir_name_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/maildir_name");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let text = String::from_utf8(std::fs::read(e.path()).unwrap()).unwrap();
        let parsed = mail_maildir::parse_file_name(&text);
        if e.file_name() == "dovecot" {
            assert_eq!(parsed.size, Some(490));
            assert_eq!(parsed.flags, "RS");
        }
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn mailbox_index_corpus() {
    use mail_maildir::uidlist::{parse_foreign_uidlist, parse_index, render_index};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mailbox_index");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        let index = parse_index(&bytes);
        if let Ok(index) = &index {
            assert_eq!(parse_index(&render_index(index)).as_ref(), Ok(index));
        }
        let foreign = parse_foreign_uidlist(&bytes);
        match e.file_name().to_str().unwrap() {
            "directory_stamps" => {
                let index = index.unwrap();
                let d = index.dirs.expect("the S field");
                assert_eq!((d.new, d.cur), ((1699999000, 123456789), (1699999010, 5)));
                assert_eq!(render_index(&index), bytes, "renders byte for byte");
            }
            "postern" => {
                let index = index.unwrap();
                assert_eq!(
                    (index.uid_validity, index.uid_next, index.records.len()),
                    (1700000000, 43, 2)
                );
                assert_eq!(render_index(&index), bytes, "our own format renders byte for byte");
                assert_eq!((index.highest_modseq, index.expunge_floor), (57, 50));
                assert_eq!(index.expunged[0].uids, [(3, 5), (9, 9)]);
                assert_eq!(index.records[1].modseq, 57);
            }
            "before_modseqs" => {
                let index = index.unwrap();
                assert_eq!(
                    (index.uid_next, index.highest_modseq, index.records[0].modseq),
                    (43, 1, 1)
                );
            }
            "extension_fields" => {
                assert_eq!(index.unwrap().records[0].file_name, "name with blanks")
            }
            "truncated" => assert!(index.unwrap_err().contains("final newline")),
            "dovecot_v3" => {
                let imported = foreign.unwrap();
                assert_eq!(imported.uid_validity, 1275660208);
                assert_eq!(imported.uids[1], ("1276533073.M242911P3632.kurkku".to_owned(), 25017));
            }
            "courier_v1" => assert_eq!(foreign.unwrap().uids.len(), 2),
            "courier_v2" => assert_eq!(foreign.unwrap().uids[0].1, 3),
            _ => {}
        }
        n += 1;
    }
    assert!(n >= 7);
}

#[test]
fn maildir_names_corpus() {
    use mail_maildir::{FolderName, Keywords, SpecialUseMap, mutf7};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/maildir_names");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let decoded = mutf7::decode(&text);
        let name = FolderName::from_imap(&text, false);
        let _ = SpecialUseMap::parse(&text);
        let keywords = Keywords::parse(&bytes);
        assert_eq!(Keywords::parse(keywords.render().as_bytes()), keywords);
        match e.file_name().to_str().unwrap() {
            "rfc3501" => assert_eq!(decoded.unwrap(), "~peter/mail/台北/日本語"),
            "excluidos" => assert_eq!(name.unwrap().as_str(), "Itens Excluídos"),
            "dotdot" => assert!(name.is_err()),
            "hidden_slash" => assert!(name.is_err()),
            "special_use" => assert!(SpecialUseMap::parse(&text).is_ok()),
            "keywords" => assert_eq!(keywords.all().count(), 2),
            _ => {}
        }
        n += 1;
    }
    assert!(n >= 6);
}
