//! Fuzz target: arbitrary bytes as a mailbox index (`postern-uidlist`) read
//! from a Maildir, and as a foreign UID list (`dovecot-uidlist`,
//! `courierimapuiddb`) read for an import. An index that parses must
//! render back to bytes that parse to the same index.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_maildir::uidlist;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = uidlist::parse_index(data) {
        let again = uidlist::parse_index(&uidlist::render_index(&index));
        assert_eq!(again.as_ref(), Ok(&index));
    }
    if let Some(imported) = uidlist::parse_foreign_uidlist(data) {
        assert!(imported.uids.iter().all(|&(_, uid)| uid != 0 && uid < imported.uid_next));
        assert!(imported.uids.windows(2).all(|w| w[0].1 < w[1].1));
    }
});
