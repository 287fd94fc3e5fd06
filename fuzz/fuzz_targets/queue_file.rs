//! Fuzz target: arbitrary bytes as a queue file (`mail_queue::format::decode`).
//! Whatever decodes must pass the writer's own field checks and survive
//! a round trip through the current format unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_queue::format;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz");
    if let Ok(qf) = format::decode(path, data) {
        assert!(format::validate(&qf.envelope).is_ok());
        let again = format::encode(&qf.envelope, &qf.content).expect("a decoded file re-encodes");
        let back = format::decode(path, &again).expect("a re-encoded file decodes");
        assert_eq!(back, qf);
    }
});
