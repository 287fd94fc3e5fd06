//! Helpers with no mail knowledge that could live in std: durable file
//! writes, files named only once complete, directory fsyncs shared by
//! threads (group commit), file-version stamps for caches, and the one
//! serialization codec.
//!
//! Used by the queue, the IPC layer, the config editor and the maildir
//! writer. Nothing here knows what a message is.
#![forbid(unsafe_code)]

pub mod codec;
pub mod fs;
pub mod stamp;
