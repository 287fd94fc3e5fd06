//! qmgr's decisions, without I/O: how recipients are split into
//! requests, when a message is retried, when it has expired, whether its
//! delay warning is due, which sites a flush names, and which times read
//! from a queue file make sense. Routing is `resolve.rs`, destinations
//! `dest.rs`; the scheduling loop (`schedule.rs`) does the I/O around
//! these.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far in the future an arrival time may lie before the file is
/// treated as corrupt. A clock stepped back by less than this keeps its
/// mail; a nonsensical time (a damaged or forged file) does not stop the
/// message from ever expiring.
pub(crate) const FUTURE_SLACK: Duration = Duration::from_secs(86_400);

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

/// Whether a message's one delay warning was sent already: the warning
/// goes out at the end of the first round after `arrival + after`, so a
/// status record from such a round (`last_record`, the newest record
/// before this round) means it went. `after` zero: warnings are off.
pub(crate) fn delay_warned(arrival: u64, after: Duration, last_record: Option<u64>) -> bool {
    if after.is_zero() {
        return true;
    }
    let due = arrival.saturating_add(after.as_secs());
    last_record.is_some_and(|t| t >= due)
}

/// A site as `postqueue -s` names it and the index keeps it: lower case,
/// no trailing dot.
pub(crate) fn site_key(site: &str) -> String {
    site.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The sites a recipient's mail is for: its domain, and each host of its
/// next hop (`[host]:port`, `host:port`, `host`, lists of them).
pub(crate) fn site_keys(domain: Option<&str>, nexthop: &str) -> Vec<String> {
    let mut out: Vec<String> = domain.map(site_key).into_iter().collect();
    for hop in nexthop.split([',', ' ', '\t']).map(str::trim).filter(|h| !h.is_empty()) {
        let host = match hop.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => hop.rsplit_once(':').map_or(hop, |(h, _)| h),
        };
        let key = site_key(host);
        if !key.is_empty() && !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_warning_once() {
        let h = Duration::from_secs(3600);
        assert!(delay_warned(1000, Duration::ZERO, None), "off: as if sent");
        assert!(!delay_warned(1000, h, None));
        assert!(!delay_warned(1000, h, Some(1000 + 3599)), "an earlier round was before the time");
        assert!(delay_warned(1000, h, Some(1000 + 3600)));
        assert!(!delay_warned(u64::MAX, h, Some(5)));
    }

    #[test]
    fn sites_of_next_hops() {
        assert_eq!(site_keys(Some("Example.ORG."), ""), ["example.org"]);
        assert_eq!(
            site_keys(Some("example.org"), "[relay.example]:587, backup.example:25,[::1]"),
            ["example.org", "relay.example", "backup.example", "::1"]
        );
        assert_eq!(site_keys(Some("example.org"), "example.org"), ["example.org"]);
        assert_eq!(site_keys(None, ""), Vec::<String>::new());
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
