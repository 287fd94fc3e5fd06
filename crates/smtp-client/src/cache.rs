//! Idle sessions kept for the next message to the same server
//! (Postfix's scache): at most `smtp_connection_cache_time_limit` idle,
//! at most `smtp_connection_reuse_count_limit` messages each. A session
//! taken from the cache is checked with RSET before it carries mail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::conn::Conn;

/// The most idle sessions kept, all servers together.
const MAX_IDLE: usize = 256;

/// The cache.
#[derive(Debug, Default)]
pub struct Cache {
    idle: Mutex<HashMap<SocketAddr, Vec<(Conn, Instant)>>>,
}

impl Cache {
    /// An idle session to `peer` that has not outlived `limit`.
    pub fn take(&self, peer: SocketAddr, limit: Duration) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&peer)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < limit {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse; gives it back when the cache is full.
    pub fn put(&self, conn: Conn) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.values().map(Vec::len).sum::<usize>() >= MAX_IDLE {
            return Some(conn);
        }
        idle.entry(conn.peer).or_default().push((conn, Instant::now()));
        None
    }

    /// The sessions idle for `limit` or longer, taken out to be closed.
    pub fn expired(&self, limit: Duration) -> Vec<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for list in idle.values_mut() {
            let (old, keep): (Vec<_>, Vec<_>) =
                std::mem::take(list).into_iter().partition(|(_, since)| since.elapsed() >= limit);
            *list = keep;
            out.extend(old.into_iter().map(|(c, _)| c));
        }
        idle.retain(|_, l| !l.is_empty());
        out
    }

    /// Every idle session, to be closed at shutdown.
    pub fn drain(&self) -> Vec<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.drain().flat_map(|(_, l)| l.into_iter().map(|(c, _)| c)).collect()
    }
}
