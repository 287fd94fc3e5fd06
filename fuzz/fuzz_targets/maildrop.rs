//! Fuzz target: arbitrary bytes as a maildrop file written by a local user.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mail_queue::maildrop::decode(std::path::Path::new("fuzz"), data);
});
