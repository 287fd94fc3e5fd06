//! Fuzz target: arbitrary bytes as a Postfix key-value table source file
//! (access, canonical, virtual), and the lookups on what it parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((entries, _warnings)) =
        mail_lookup::maps::parse_map(data, std::path::Path::new("map"))
    {
        for (k, v) in &entries {
            assert_eq!(*k, k.to_lowercase());
            assert!(!v.is_empty() && v.trim() == v);
            assert!(k.len() + v.len() <= mail_lookup::maps::MAX_LINE_LENGTH);
        }
    }
});
