//! Fuzz target: arbitrary bytes as queue ids, the way `postsuper -d -`
//! and `postcat -q` take them from an operator: whatever parses is 10 to
//! 32 characters of 0-9 and A-Z (so it can only name a file inside a
//! queue directory: no `/`, no `.`), and parses again to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_types::QueueId;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Ok(id) = QueueId::parse(line) {
            let s = id.as_str();
            assert!((10..=32).contains(&s.len()), "{s:?}");
            assert!(s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()), "{s:?}");
            assert_eq!(QueueId::parse(s).as_ref(), Ok(&id));
        }
    }
});
