//! Fuzz target: arbitrary bytes as a per-message status log.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mail_queue::status::parse_log(data);
});
