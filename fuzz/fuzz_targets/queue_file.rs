//! Fuzz target: arbitrary bytes as a queue file (`mail_queue::format::decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mail_queue::format::decode(std::path::Path::new("fuzz"), data);
});
