//! Shared vocabulary of Postern: queue ids, mail addresses, enhanced status
//! codes and delivery outcomes.
//!
//! Pure data: no I/O, no tokio. Serde derives and hand-written impls only,
//! no codec: the types say how they look as text and refuse to decode
//! from text their parsers refuse, while the binary encoding stays in
//! `stdx::codec`. That way the envelope, the IPC messages and the status
//! logs carry these types directly and a damaged or forged value fails at
//! decode, instead of each edge converting strings and each forgetting a
//! check. Every crate may depend on this one.
#![forbid(unsafe_code)]

mod address;
pub mod esmtp;
pub mod logline;
mod queue_id;
mod serde_text;
mod status;

pub use address::{Address, AddressError};
pub use queue_id::{QueueId, QueueIdError};
pub use serde_text::reverse_path;
pub use status::{Class, DeliveryStatus, EnhancedStatus};
