//! qmgr's decisions, without I/O: which agent gets a recipient, how
//! recipients are split into requests, when a message is retried, when
//! it has expired, and which times read from a queue file make sense.
//! The scheduling loop (`schedule.rs`) does the I/O around these.

use mail_config::LocalDomains;
use mail_types::Address;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far in the future an arrival time may lie before the file is
/// treated as corrupt. A clock stepped back by less than this keeps its
/// mail; a nonsensical time (a damaged or forged file) does not stop the
/// message from ever expiring.
pub(crate) const FUTURE_SLACK: Duration = Duration::from_secs(86_400);

/// Which agent handles a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Transport {
    Local,
    Smtp,
}

impl Transport {
    /// The master.toml service that delivers for this transport.
    pub(crate) fn service(self) -> &'static str {
        match self {
            Transport::Local => "local",
            Transport::Smtp => "smtp",
        }
    }

    /// Where its socket is when master.toml has no such service.
    pub(crate) fn default_socket(self) -> &'static str {
        match self {
            Transport::Local => mail_ipc::sockets::LOCAL,
            Transport::Smtp => mail_ipc::sockets::SMTP,
        }
    }
}

/// `local` for an address without a domain or in `mydestination` (the
/// test smtpd and local delivery use too), `smtp` for the rest.
pub(crate) fn transport_for(address: &Address, local_domains: &LocalDomains) -> Transport {
    match address.domain() {
        None => Transport::Local,
        Some(d) if local_domains.contains(d) => Transport::Local,
        Some(_) => Transport::Smtp,
    }
}

/// Splits one transport's recipients into requests of at most `limit`
/// (Postfix's `*_destination_recipient_limit`), in order. A limit of 0
/// is taken as 1.
pub(crate) fn split<T>(recipients: Vec<T>, limit: usize) -> Vec<Vec<T>> {
    let limit = limit.max(1);
    let mut out = Vec::with_capacity(recipients.len().div_ceil(limit));
    let mut it = recipients.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(limit).collect());
    }
    out
}

/// Seconds since the epoch now.
pub(crate) fn now_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Whether an arrival time read from a queue file is believable at `now`.
pub(crate) fn arrival_is_sane(arrival: u64, now: u64) -> bool {
    arrival <= now.saturating_add(FUTURE_SLACK.as_secs())
}

/// How long a message has been queued (0 for an arrival in the future).
pub(crate) fn age(arrival: u64, now: u64) -> Duration {
    Duration::from_secs(now.saturating_sub(arrival))
}

/// Whether a message of this age has outlived its queue lifetime.
pub(crate) fn expired(age: Duration, lifetime: Duration) -> bool {
    age > lifetime
}

/// How long a deferred message waits: its age, kept between the
/// minimal and maximal backoff times (Postfix's rule).
pub(crate) fn backoff(age: Duration, min: Duration, max: Duration) -> Duration {
    age.clamp(min, max.max(min))
}

/// When the next attempt is due: `now + after`, or the farthest time the
/// system can represent rather than a panic for an absurd `after`.
pub(crate) fn retry_at(now: SystemTime, after: Duration) -> SystemTime {
    now.checked_add(after)
        .or_else(|| UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX as u64 / 2)))
        .unwrap_or(now)
}

/// The moment a message's clock started, for `delay=` in log lines: the
/// queue id's time if it has one, else the envelope's arrival, else the
/// epoch. Never panics, whatever the file said.
pub(crate) fn delay_origin(id_created: Option<SystemTime>, arrival: u64) -> SystemTime {
    id_created
        .or_else(|| UNIX_EPOCH.checked_add(Duration::from_secs(arrival)))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        let local = LocalDomains::new(["postern.test"]);
        assert_eq!(
            transport_for(&"suporte@postern.test".parse().unwrap(), &local),
            Transport::Local
        );
        assert_eq!(
            transport_for(&"suporte@POSTERN.test".parse().unwrap(), &local),
            Transport::Local
        );
        assert_eq!(transport_for(&"suporte".parse().unwrap(), &local), Transport::Local);
        assert_eq!(transport_for(&"a@example.org".parse().unwrap(), &local), Transport::Smtp);
    }

    #[test]
    fn splitting_keeps_order_and_limits() {
        let chunks = split((0..120).collect::<Vec<u32>>(), 50);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![50, 50, 20]);
        assert_eq!(chunks.concat(), (0..120).collect::<Vec<u32>>());
        assert_eq!(split(vec![1, 2], 0), vec![vec![1], vec![2]]);
        assert!(split(Vec::<u32>::new(), 5).is_empty());
    }

    #[test]
    fn times_from_disk_never_panic() {
        let now = SystemTime::now();
        let n = now_secs(now);
        assert!(arrival_is_sane(n, n));
        assert!(arrival_is_sane(n + 3600, n));
        assert!(!arrival_is_sane(1 << 63, n));
        assert!(!arrival_is_sane(u64::MAX, n));
        assert_eq!(age(u64::MAX, n), Duration::ZERO);
        assert_eq!(age(n - 10, n), Duration::from_secs(10));
        let far = retry_at(now, Duration::from_secs(u64::MAX));
        assert!(far > now);
        assert_eq!(delay_origin(None, u64::MAX), UNIX_EPOCH);
        assert_eq!(delay_origin(None, 5), UNIX_EPOCH + Duration::from_secs(5));
    }

    #[test]
    fn backoff_and_expiry() {
        let (min, max) = (Duration::from_secs(300), Duration::from_secs(4000));
        assert_eq!(backoff(Duration::from_secs(10), min, max), min);
        assert_eq!(backoff(Duration::from_secs(1000), min, max), Duration::from_secs(1000));
        assert_eq!(backoff(Duration::from_secs(99_999), min, max), max);
        // A maximum below the minimum is taken as the minimum, not a panic.
        assert_eq!(backoff(Duration::from_secs(1), max, min), max);
        assert!(!expired(Duration::from_secs(5), Duration::from_secs(5)));
        assert!(expired(Duration::from_secs(6), Duration::from_secs(5)));
    }
}
