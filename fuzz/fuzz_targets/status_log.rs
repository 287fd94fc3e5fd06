//! Fuzz target: arbitrary bytes as a per-message status log, and the
//! compaction of what was read: every recipient with a final result keeps
//! one, and there is one record per recipient.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_queue::status::{compact, parse_log};

fuzz_target!(|data: &[u8]| {
    let records = parse_log(data);
    let finals: std::collections::BTreeSet<u32> =
        records.iter().filter(|r| r.outcome.is_final()).map(|r| r.recipient).collect();
    let all: std::collections::BTreeSet<u32> = records.iter().map(|r| r.recipient).collect();
    let out = compact(records);
    assert_eq!(out.len(), all.len());
    for r in &out {
        assert_eq!(r.outcome.is_final(), finals.contains(&r.recipient));
    }
});
