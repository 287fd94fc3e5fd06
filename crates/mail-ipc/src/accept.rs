//! Back-off for accept loops. An accept that fails (EMFILE when the
//! process is out of file descriptors, ENFILE, ENOBUFS, ECONNABORTED) fails
//! again at once if retried at once, and a loop that retries at once
//! burns a CPU and floods the log while the connections that would free
//! descriptors starve. Every accept loop in Postern (the daemon skeleton,
//! the trigger listeners, master's control socket) waits as this says.

use std::time::{Duration, Instant};

/// First wait after a failed accept.
pub const MIN_DELAY: Duration = Duration::from_millis(10);
/// Longest wait between accept attempts while they keep failing.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// At most one warning per this interval; the others are counted.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The state of one accept loop.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    /// A new loop, with no failure yet.
    pub fn new() -> AcceptBackoff {
        AcceptBackoff::default()
    }

    /// An accept succeeded: the next failure starts again at the
    /// shortest wait.
    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// An accept on `what` (a socket name for the log) failed with `e`:
    /// logs a warning (at most one per 10 s, with the count of the
    /// others) and returns how long to wait before the next attempt,
    /// doubling from 10 ms to 1 s while failures go on.
    pub fn failed(&mut self, what: &str, e: &std::io::Error) -> Duration {
        self.delay = (self.delay * 2).clamp(MIN_DELAY, MAX_DELAY);
        let now = Instant::now();
        if self.last_log.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            if self.suppressed > 0 {
                tracing::warn!(
                    "accept on {what}: {e} ({} more failure(s) since the last warning)",
                    self.suppressed
                );
            } else {
                tracing::warn!("accept on {what}: {e}");
            }
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = AcceptBackoff::new();
        let e = std::io::Error::from_raw_os_error(24);
        let waits: Vec<Duration> = (0..10).map(|_| b.failed("public/qmgr", &e)).collect();
        assert_eq!(waits[0], MIN_DELAY);
        assert_eq!(waits[1], MIN_DELAY * 2);
        assert_eq!(*waits.last().unwrap(), MAX_DELAY);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        // In one second of failures there are at most a handful of tries.
        let mut b = AcceptBackoff::new();
        let (mut spent, mut tries) = (Duration::ZERO, 0);
        while spent < Duration::from_secs(1) {
            spent += b.failed("x", &e);
            tries += 1;
        }
        assert!(tries <= 8, "{tries} accept attempts in one second of EMFILE");
        b.succeeded();
        assert_eq!(b.failed("x", &e), MIN_DELAY);
    }
}
