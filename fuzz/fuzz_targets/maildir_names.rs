//! Fuzz target: arbitrary bytes as an IMAP mailbox name (modified UTF-7
//! and UTF-8), as a Maildir++ directory name, as an `imap_special_use`
//! value and as a `dovecot-keywords` file. A name that is accepted must
//! map to one directory entry inside the Maildir, and every encoding must
//! round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_maildir::{FolderName, Keywords, SpecialUseMap, mutf7};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(decoded) = mutf7::decode(&text) {
        assert_eq!(mutf7::encode(&decoded), text, "one spelling per name");
    }
    let encoded = mutf7::encode(&text);
    assert_eq!(mutf7::decode(&encoded).as_deref(), Some(&*text));
    for utf8 in [false, true] {
        if let Ok(name) = FolderName::from_imap(&text, utf8) {
            if let Some(dir) = name.dir_name() {
                assert!(dir.starts_with('.') && dir.len() <= 255);
                assert!(!dir.contains('/') && !dir.contains('\0'));
                assert!(dir != "." && dir != ".." && !dir.starts_with(".."));
            }
            assert_eq!(FolderName::from_imap(&name.to_imap(utf8), utf8).ok(), Some(name));
        }
    }
    if let Ok(map) = SpecialUseMap::parse(&text) {
        let _ = map.get(&FolderName::inbox());
    }
    let keywords = Keywords::parse(data);
    assert_eq!(Keywords::parse(keywords.render().as_bytes()), keywords);
});
