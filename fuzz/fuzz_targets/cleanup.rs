//! Fuzz target: arbitrary message bytes through `mail_cleanup::cleanup`
//! (without and with header address rewriting), `extract_recipients` and
//! `header_values`. None may panic, and rewriting never grows the header
//! block past `header_size_limit`.
#![no_main]

use std::sync::Arc;

use chrono::{Local, TimeZone};
use libfuzzer_sys::fuzz_target;
use mail_cleanup::{CleanupParams, HeaderClass, HeaderRewrite, HeaderRewriter, Trace};
use mail_types::{Address, QueueId};

/// A canonical table that renames every address (so every sender and
/// recipient header is rewritten and grows).
struct RenameAll;

impl HeaderRewrite for RenameAll {
    fn rewrites(&self, _: HeaderClass) -> bool {
        true
    }

    fn rewrite(&self, addr: &Address, _: HeaderClass) -> Result<Option<Address>, String> {
        Ok(Address::new(&format!("{}.renamed", addr.local()), Some("rewritten.example")).ok())
    }
}

fuzz_target!(|data: &[u8]| {
    let p = CleanupParams {
        myhostname: "mail.example.org".into(),
        myorigin: "example.org".into(),
        append_at_myorigin: true,
        header_size_limit: 1000,
        mail_name: "Postern".into(),
        header_rewrite: None,
    };
    let (Some(time), Ok(queue_id), Ok(sender)) =
        (Local.timestamp_opt(1_795_870_954, 0).single(), QueueId::parse("FUZZ000000"), Address::parse("root"))
    else {
        return;
    };
    let trace = Trace {
        tls: None,
        helo: Some("client.example".into()),
        client_name: "localhost".into(),
        client_addr: "127.0.0.1".into(),
        protocol: "ESMTP".into(),
        local_uid: None,
        queue_id,
        single_recipient: None,
        time,
    };
    let plain = mail_cleanup::cleanup(&p, &trace, Some(&sender), data);
    let p = CleanupParams { header_rewrite: Some(HeaderRewriter(Arc::new(RenameAll))), ..p };
    let rewritten = mail_cleanup::cleanup(&p, &trace, Some(&sender), data);
    // Rewriting changes addresses, never whether a message is accepted.
    assert_eq!(plain.is_ok(), rewritten.is_ok());
    if let (Ok(plain), Ok(rewritten)) = (plain, rewritten) {
        // The body and the added headers are the same in both; the
        // rewritten fields grow the header block by at most its limit.
        assert!(rewritten.len() <= plain.len() + 1000);
    }
    let _ = mail_cleanup::extract_recipients(data);
    let _ = mail_cleanup::header_values(data, "Delivered-To");
});
