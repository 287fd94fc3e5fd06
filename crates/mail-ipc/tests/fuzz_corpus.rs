//! Replays the committed `ipc_frame` fuzz corpus on stable Rust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mail_ipc::anvil::{self, AnvilRequest, Subject};
use mail_ipc::delivery::{DeliveryReply, DeliveryRequest};
use mail_ipc::frame::{Error, decode_frame};
use mail_ipc::trigger::{self, Trigger};
use mail_types::DeliveryStatus;
use mail_types::QueueId;
use std::path::PathBuf;

#[test]
fn ipc_frame_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ipc_frame");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        let r = decode_frame::<DeliveryRequest>(&bytes, 1 << 20);
        let a = decode_frame::<AnvilRequest>(&bytes, anvil::MAX_FRAME);
        match e.file_name().to_str().unwrap() {
            "anvil_connect" => assert_eq!(
                a.unwrap().unwrap(),
                AnvilRequest::Connect {
                    service: "smtp".into(),
                    subject: Subject::Client("127.0.0.1".parse().unwrap())
                }
            ),
            "anvil_connect_user" => assert_eq!(
                a.unwrap().unwrap(),
                AnvilRequest::Connect {
                    service: "pop3".into(),
                    subject: Subject::User("suporte".into())
                }
            ),
            "anvil_disconnect_v6" => assert_eq!(
                a.unwrap().unwrap(),
                AnvilRequest::Disconnect {
                    service: "smtp".into(),
                    subject: Subject::Client("2001:db8:1:2::1".parse().unwrap())
                }
            ),
            "delivery_request" => {
                assert_eq!(r.unwrap().unwrap().recipients[0].address.to_string(), "suporte@x")
            }
            "huge_length" => {
                assert!(matches!(r, Err(Error::TooLarge(_))));
                assert!(matches!(a, Err(Error::TooLarge(_))));
            }
            "delivery_reply" => {
                let reply = decode_frame::<DeliveryReply>(&bytes, 1 << 20).unwrap().unwrap();
                assert_eq!(reply.results[0].status, DeliveryStatus::sent("delivered to maildir"));
                assert_eq!(reply.results[1].status.log_word(), "bounced");
                assert_eq!(reply.results[1].status.dsn().to_string(), "5.1.1");
            }
            "delivery_reply_bad_dsn" => {
                assert!(matches!(
                    decode_frame::<DeliveryReply>(&bytes, 1 << 20),
                    Err(Error::Decode(_))
                ))
            }
            "trigger_queued" => assert_eq!(
                decode_frame::<Trigger>(&bytes, trigger::MAX_FRAME).unwrap().unwrap(),
                Trigger::Queued(vec![
                    QueueId::parse("66191D810290C05ZM2V").unwrap(),
                    QueueId::parse("66191D80FCECC05ZM2W").unwrap(),
                ])
            ),
            // 513 ids: over MAX_QUEUED_IDS, refused even with a roomy frame limit.
            "trigger_queued_too_many" => {
                assert!(matches!(decode_frame::<Trigger>(&bytes, 1 << 20), Err(Error::Decode(_))))
            }
            "trigger_queued_bad_id" => assert!(matches!(
                decode_frame::<Trigger>(&bytes, trigger::MAX_FRAME),
                Err(Error::Decode(_))
            )),
            "wrong_version" => assert!(matches!(r, Err(Error::Version(7)))),
            _ => {}
        }
        n += 1;
    }
    assert!(n > 0);
}
