//! POP3 client input: the command parser, the line splitter and both
//! session state machines (pop3-proto), with RETR/TOP streamed through
//! the dot-stuffer. Run: `cargo +nightly fuzz run pop3_command`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pop3_proto::fuzz_one(data);
});
