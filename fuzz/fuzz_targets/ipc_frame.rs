//! Fuzz target: arbitrary bytes as IPC frames of every conversation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_ipc::frame::decode_frame;

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame::<mail_ipc::delivery::DeliveryRequest>(data, 1 << 20);
    let _ = decode_frame::<mail_ipc::delivery::DeliveryReply>(data, 1 << 20);
    let _ = decode_frame::<mail_ipc::control::ControlRequest>(data, 1 << 20);
    let _ = decode_frame::<mail_ipc::control::ControlReply>(data, 1 << 20);
    let _ = decode_frame::<mail_ipc::status::ChildStatus>(data, 1 << 20);
    let _ = decode_frame::<mail_ipc::trigger::Trigger>(data, mail_ipc::trigger::MAX_FRAME);
    let _ = decode_frame::<mail_ipc::trigger::Trigger>(data, 1 << 20);
    let _ = decode_frame::<mail_ipc::anvil::AnvilRequest>(data, mail_ipc::anvil::MAX_FRAME);
    let _ = decode_frame::<mail_ipc::anvil::ConnectReply>(data, mail_ipc::anvil::MAX_FRAME);
});
