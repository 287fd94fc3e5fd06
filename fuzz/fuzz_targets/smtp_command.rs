//! Fuzz target: one SMTP command line, arbitrary bytes, into
//! `smtp_proto::parse_command`. It must return a command or a reply, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smtp_proto::parse_command(data);
    let _ = smtp_proto::parse_reply_line(data);
});
