//! Fuzz target: arbitrary text as a Maildir file name read from disk.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = mail_maildir::parse_file_name(name);
    }
});
