//! child → master status records, and the file descriptors master hands
//! to every child (Postfix `master_proto.h`).
//!
//! A child is exec'ed with: fd 3 = the write end of its status pipe,
//! fds 4.. = its listening sockets, in the order of the service's `listen`
//! entries (one fd for a unix service). argv carries `--listen-fds N`.

use serde::{Deserialize, Serialize};

/// The status pipe's fd in every child.
pub const STATUS_FD: i32 = 3;
/// The first listening socket's fd in every child.
pub const LISTEN_FD_START: i32 = 4;

/// What a child tells master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStatus {
    /// The child's pid.
    pub pid: u32,
    /// The generation master gave it on its command line.
    pub generation: u64,
    /// Its state.
    pub state: ChildState,
}

/// Child states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildState {
    /// Set up (config loaded, privileges dropped) and accepting.
    Ready,
    /// Stopped accepting and draining its connections before exit.
    Draining,
}
