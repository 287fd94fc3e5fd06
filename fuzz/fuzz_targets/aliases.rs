//! Fuzz target: arbitrary bytes as an aliases file and as an :include: file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mail_lookup::aliases::parse_aliases(data, std::path::Path::new("aliases"));
    let _ = mail_lookup::aliases::parse_include(data, std::path::Path::new("include"));
});
