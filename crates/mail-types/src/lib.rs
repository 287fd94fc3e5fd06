//! Shared vocabulary of Postern: queue ids, mail addresses, enhanced status
//! codes and delivery outcomes.
//!
//! Pure data: no I/O, no tokio, no serde. The wire and disk encodings of these
//! types live in `mail-queue` and `mail-ipc`, which convert at their edges.
//! Every crate may depend on this one.
#![forbid(unsafe_code)]

mod address;
mod queue_id;
mod status;

pub use address::{Address, AddressError};
pub use queue_id::{QueueId, QueueIdError};
pub use status::{Class, DeliveryStatus, EnhancedStatus};
