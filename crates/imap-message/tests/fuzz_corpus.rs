//! Replays the committed `imap_message` fuzz corpus on stable Rust, and
//! encodes every answer with imap-codec as the fuzz target does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{Data, Response};

#[test]
fn imap_message_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/imap_message");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        let items = imap_message::fuzz_one(&bytes);
        let mut envelopes = 0;
        for item in items {
            if matches!(item, MessageDataItem::Envelope(_)) {
                envelopes += 1;
            }
            let resp = Response::Data(Data::Fetch {
                seq: std::num::NonZeroU32::MIN,
                items: Vec1::from(item),
            });
            assert!(!ResponseCodec::default().encode(&resp).dump().is_empty());
        }
        if e.file_name() == "thread-of-eight" {
            assert_eq!(envelopes, 8, "one message per \\0\\0-separated piece");
        }
        n += 1;
    }
    assert!(n >= 15);
}
