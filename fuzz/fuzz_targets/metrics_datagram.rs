//! Fuzz target: arbitrary bytes as a datagram on master's
//! `private/metrics` socket, and as log lines the daemons count: decoding
//! never panics, what decodes encodes back to the same bytes, and
//! counting any text never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_daemon::metrics::{Counts, decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Some((sender, counts)) = decode(data) {
        assert_eq!(encode(&sender, &counts).as_bytes(), data);
    }
    let mut c = Counts::default();
    for line in String::from_utf8_lossy(data).lines() {
        c.observe(line);
    }
});
