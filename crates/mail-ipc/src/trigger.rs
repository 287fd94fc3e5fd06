//! Wake-up triggers to qmgr and pickup (Postfix's one-letter fifo
//! triggers). Fire and forget: the receiver rescans on its own timer too,
//! so a lost trigger delays mail, never loses it.

use serde::{Deserialize, Serialize};

/// A wake-up request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// New mail may be waiting (incoming/ for qmgr, maildrop/ for pickup).
    Wakeup,
    /// Retry deferred mail now (`postqueue -f`).
    Flush,
}
