//! The counting table, apart from any I/O: per client, the connections
//! open now (held per link, so a closed link gives back what it held) and
//! the connections in the current rate window; plus the statistics anvil
//! logs. Time comes in as an argument, so every rule is unit-tested.
//!
//! Memory is bounded: at most `capacity` clients. An idle client (no open
//! connection, rate window over) is removed by [`Table::sweep`]; when the
//! table is full, the least recently used client is evicted, whatever it
//! holds, and the eviction is counted for the status log. An evicted
//! client starts again from zero, which can only let more connections in,
//! never refuse one wrongly. Severities: none; nothing here fails.

use mail_ipc::anvil::{ConnectReply, Subject};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime};

/// One link (one smtpd process's connection to anvil).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LinkId(pub(crate) u64);

/// What anvil counts: a service and a client, where an IPv6 client is its
/// /64 (one customer's network usually is one /64, and an address within
/// it costs nothing to change), or a service and a user (pop3d's and
/// imapd's per-user caps).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    service: Box<str>,
    subject: Subject,
}

impl Key {
    /// The key for a connection from `client` to `service`.
    #[cfg(test)]
    pub(crate) fn new(service: &str, client: IpAddr) -> Key {
        Key::of(service, Subject::Client(client))
    }

    /// The key for a connection of `subject` to `service`.
    pub(crate) fn of(service: &str, subject: Subject) -> Key {
        let subject = match subject {
            Subject::Client(client) => Subject::Client(match client.to_canonical() {
                IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & !((1u128 << 64) - 1))),
                v4 => v4,
            }),
            user => user,
        };
        Key { service: service.into(), subject }
    }
}

impl fmt::Display for Key {
    /// Postfix's anvil ident, `smtp:192.0.2.1`; an IPv6 client as its /64,
    /// a user as `pop3:user=<name>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Client(IpAddr::V4(a)) => write!(f, "{}:{a}", self.service),
            Subject::Client(IpAddr::V6(a)) => write!(f, "{}:{a}/64", self.service),
            Subject::User(u) => write!(f, "{}:user=<{u}>", self.service),
        }
    }
}

/// Both clocks at one instant: the monotonic one for windows and ages,
/// the wall clock for the `at ...` of the statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) mono: Instant,
    pub(crate) wall: SystemTime,
}

impl Now {
    /// The current time.
    pub(crate) fn get() -> Now {
        Now { mono: Instant::now(), wall: SystemTime::now() }
    }
}

#[derive(Debug)]
struct Entry {
    /// Open connections per link; a handful of links at most.
    held: Vec<(LinkId, u32)>,
    /// Connections since `window_start`.
    rate: u32,
    window_start: Instant,
    touched: Instant,
    /// Position in [`Table::order`].
    seq: u64,
}

impl Entry {
    fn count(&self) -> u32 {
        self.held.iter().fold(0u32, |n, (_, c)| n.saturating_add(*c))
    }
}

/// A maximum seen since the last status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peak {
    pub(crate) value: u32,
    pub(crate) ident: String,
    pub(crate) at: SystemTime,
}

/// What anvil logs every `anvil_status_update_time`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) max_rate: Option<Peak>,
    pub(crate) max_count: Option<Peak>,
    pub(crate) max_size: Option<(usize, SystemTime)>,
    /// Clients evicted because the table was full.
    pub(crate) evicted: u64,
}

impl Stats {
    /// Postfix anvil's statistics lines (`at` formatted by `time`);
    /// nothing when nothing happened.
    pub(crate) fn lines(&self, unit: Duration, time: impl Fn(SystemTime) -> String) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.max_rate {
            out.push(format!(
                "statistics: max connection rate {}/{}s for ({}) at {}",
                p.value,
                unit.as_secs(),
                p.ident,
                time(p.at)
            ));
        }
        if let Some(p) = &self.max_count {
            out.push(format!(
                "statistics: max connection count {} for ({}) at {}",
                p.value,
                p.ident,
                time(p.at)
            ));
        }
        if let Some((n, at)) = self.max_size {
            out.push(format!("statistics: max cache size {n} at {}", time(at)));
        }
        out
    }
}

/// The table.
#[derive(Debug)]
pub(crate) struct Table {
    entries: HashMap<Key, Entry>,
    /// Keys by last use, oldest first: eviction and sweeping walk it.
    order: BTreeMap<u64, Key>,
    /// What each link holds, to give it back when the link closes.
    links: HashMap<LinkId, HashSet<Key>>,
    next_seq: u64,
    unit: Duration,
    capacity: usize,
    stats: Stats,
}

impl Table {
    /// A table with rate windows of `unit` (`anvil_rate_time_unit`; zero
    /// is taken as one second) for at most `capacity` (≥ 1) clients.
    pub(crate) fn new(unit: Duration, capacity: usize) -> Table {
        Table {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            links: HashMap::new(),
            next_seq: 0,
            unit: unit.max(Duration::from_secs(1)),
            capacity: capacity.max(1),
            stats: Stats::default(),
        }
    }

    /// The rate window.
    pub(crate) fn unit(&self) -> Duration {
        self.unit
    }

    /// Clients in the table.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn touch(&mut self, key: &Key, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(e) = self.entries.get_mut(key) {
            self.order.remove(&e.seq);
            e.seq = seq;
            e.touched = now;
            self.order.insert(seq, key.clone());
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.seq);
            for (link, _) in e.held {
                if let Some(keys) = self.links.get_mut(&link) {
                    keys.remove(key);
                }
            }
        }
    }

    /// Counts a new connection of `key` on `link` and returns the counts
    /// including it.
    pub(crate) fn connect(&mut self, link: LinkId, key: Key, now: Now) -> ConnectReply {
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.capacity {
                let Some((_, oldest)) = self.order.pop_first() else { break };
                self.remove(&oldest);
                self.stats.evicted += 1;
            }
            self.entries.insert(
                key.clone(),
                Entry {
                    held: Vec::new(),
                    rate: 0,
                    window_start: now.mono,
                    touched: now.mono,
                    seq: u64::MAX,
                },
            );
        }
        let unit = self.unit;
        let Some(e) = self.entries.get_mut(&key) else {
            unreachable!("the entry was just inserted")
        };
        // Postfix's fixed window: the first connection after the window
        // ends opens the next one.
        if now.mono.saturating_duration_since(e.window_start) >= unit {
            e.window_start = now.mono;
            e.rate = 0;
        }
        e.rate = e.rate.saturating_add(1);
        match e.held.iter_mut().find(|(l, _)| *l == link) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => e.held.push((link, 1)),
        }
        let reply = ConnectReply { count: e.count(), rate: e.rate };
        self.links.entry(link).or_default().insert(key.clone());
        self.touch(&key, now.mono);
        self.record(&key, reply, now.wall);
        reply
    }

    fn record(&mut self, key: &Key, reply: ConnectReply, at: SystemTime) {
        let peak = |value: u32| Some(Peak { value, ident: key.to_string(), at });
        if self.stats.max_rate.as_ref().is_none_or(|p| reply.rate > p.value) {
            self.stats.max_rate = peak(reply.rate);
        }
        if self.stats.max_count.as_ref().is_none_or(|p| reply.count > p.value) {
            self.stats.max_count = peak(reply.count);
        }
        let size = self.entries.len();
        if self.stats.max_size.is_none_or(|(n, _)| size > n) {
            self.stats.max_size = Some((size, at));
        }
    }

    /// A connection of `key` counted on `link` ended. Unknown keys (evicted,
    /// or never counted on this link) are ignored.
    pub(crate) fn disconnect(&mut self, link: LinkId, key: &Key, now: Now) {
        let Some(e) = self.entries.get_mut(key) else { return };
        let Some(i) = e.held.iter().position(|(l, _)| *l == link) else { return };
        e.held[i].1 -= 1;
        if e.held[i].1 == 0 {
            e.held.swap_remove(i);
            if let Some(keys) = self.links.get_mut(&link) {
                keys.remove(key);
            }
        }
        self.touch(key, now.mono);
    }

    /// `link` closed: every connection it still held ends.
    pub(crate) fn close_link(&mut self, link: LinkId) {
        for key in self.links.remove(&link).unwrap_or_default() {
            if let Some(e) = self.entries.get_mut(&key) {
                e.held.retain(|(l, _)| *l != link);
            }
        }
    }

    /// Removes the clients that have no open connection and whose rate
    /// window is over, walking from the least recently used and stopping
    /// at the first one used within the last window.
    pub(crate) fn sweep(&mut self, now: Instant) {
        let mut idle = Vec::new();
        for key in self.order.values() {
            let Some(e) = self.entries.get(key) else { continue };
            if now.saturating_duration_since(e.touched) < self.unit {
                break;
            }
            if e.held.is_empty() && now.saturating_duration_since(e.window_start) >= self.unit {
                idle.push(key.clone());
            }
        }
        for key in idle {
            self.remove(&key);
        }
    }

    /// The statistics since the last call, and a fresh start.
    pub(crate) fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: Duration = Duration::from_secs(60);

    struct Clock(Now);

    impl Clock {
        fn new() -> Clock {
            Clock(Now::get())
        }
        fn at(&self, secs: u64) -> Now {
            Now {
                mono: self.0.mono + Duration::from_secs(secs),
                wall: self.0.wall + Duration::from_secs(secs),
            }
        }
    }

    fn key(addr: &str) -> Key {
        Key::new("smtp", addr.parse().unwrap())
    }

    fn reply(count: u32, rate: u32) -> ConnectReply {
        ConnectReply { count, rate }
    }

    const A: LinkId = LinkId(1);
    const B: LinkId = LinkId(2);

    #[test]
    fn counts_across_links_and_releases() {
        let c = Clock::new();
        let mut t = Table::new(UNIT, 100);
        assert_eq!(t.connect(A, key("192.0.2.1"), c.at(0)), reply(1, 1));
        assert_eq!(t.connect(B, key("192.0.2.1"), c.at(1)), reply(2, 2));
        assert_eq!(t.connect(A, key("192.0.2.1"), c.at(2)), reply(3, 3));
        // Another client and another service are counted apart.
        assert_eq!(t.connect(A, key("192.0.2.2"), c.at(2)), reply(1, 1));
        assert_eq!(
            t.connect(A, Key::new("submission", "192.0.2.1".parse().unwrap()), c.at(2)),
            reply(1, 1)
        );
        t.disconnect(B, &key("192.0.2.1"), c.at(3));
        // A disconnect on a link that holds nothing for the key is ignored.
        t.disconnect(B, &key("192.0.2.1"), c.at(3));
        t.disconnect(B, &key("198.51.100.9"), c.at(3));
        assert_eq!(t.connect(B, key("192.0.2.1"), c.at(4)), reply(3, 4));
        // Link A goes away (its smtpd died): its two connections end.
        t.close_link(A);
        assert_eq!(t.connect(B, key("192.0.2.1"), c.at(5)), reply(2, 5));
        t.close_link(A);
        t.close_link(LinkId(99));
    }

    #[test]
    fn rate_window_is_fixed_and_restarts() {
        let c = Clock::new();
        let mut t = Table::new(UNIT, 100);
        for i in 1..=4 {
            let r = t.connect(A, key("192.0.2.1"), c.at(u64::from(i)));
            t.disconnect(A, &key("192.0.2.1"), c.at(u64::from(i)));
            assert_eq!(r, reply(1, i));
        }
        // 60 s after the window opened (at 1 s), a new one starts.
        assert_eq!(t.connect(A, key("192.0.2.1"), c.at(60)), reply(1, 5));
        assert_eq!(t.connect(A, key("192.0.2.1"), c.at(61)), reply(2, 1));
        // A zero unit would make every connection its own window.
        assert_eq!(Table::new(Duration::ZERO, 1).unit(), Duration::from_secs(1));
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let c = Clock::new();
        let mut t = Table::new(UNIT, 100);
        t.connect(A, key("2001:db8:1:2::1"), c.at(0));
        assert_eq!(t.connect(A, key("2001:db8:1:2:ffff::9"), c.at(0)), reply(2, 2));
        assert_eq!(t.connect(A, key("2001:db8:1:3::1"), c.at(0)), reply(1, 1));
        assert_eq!(key("2001:db8:1:2:3:4:5:6").to_string(), "smtp:2001:db8:1:2::/64");
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("192.0.2.7").to_string(), "smtp:192.0.2.7");
    }

    #[test]
    fn full_table_evicts_least_recently_used() {
        let c = Clock::new();
        let mut t = Table::new(UNIT, 3);
        t.connect(A, key("192.0.2.1"), c.at(0));
        t.connect(A, key("192.0.2.2"), c.at(1));
        t.connect(A, key("192.0.2.3"), c.at(2));
        // .1 is used again, so .2 is now the oldest.
        t.connect(A, key("192.0.2.1"), c.at(3));
        for i in 4..1000u64 {
            t.connect(B, key(&format!("10.0.{}.{}", i / 256, i % 256)), c.at(3));
            assert!(t.len() <= 3);
        }
        assert_eq!(t.take_stats().evicted, 996);
        // .1 was evicted in the flood too: it starts again from zero, and
        // link A's disconnect for it is ignored rather than underflowing.
        t.disconnect(A, &key("192.0.2.1"), c.at(4));
        assert_eq!(t.connect(A, key("192.0.2.1"), c.at(4)), reply(1, 1));
        t.close_link(A);
        t.close_link(B);
        assert!(t.links.values().all(HashSet::is_empty));
    }

    #[test]
    fn sweep_removes_only_idle_clients() {
        let c = Clock::new();
        let mut t = Table::new(UNIT, 100);
        t.connect(A, key("192.0.2.1"), c.at(0)); // stays open
        t.connect(A, key("192.0.2.2"), c.at(0));
        t.disconnect(A, &key("192.0.2.2"), c.at(1));
        t.connect(A, key("192.0.2.3"), c.at(50));
        t.disconnect(A, &key("192.0.2.3"), c.at(50));
        t.sweep(c.at(30).mono);
        assert_eq!(t.len(), 3);
        t.sweep(c.at(61).mono);
        // .2 is idle; .1 is open; .3's window is not over.
        assert_eq!(t.len(), 2);
        assert_eq!(t.connect(A, key("192.0.2.1"), c.at(62)), reply(2, 1));
        t.sweep(c.at(200).mono);
        assert_eq!(t.len(), 1);
        t.close_link(A);
        t.sweep(c.at(300).mono);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn statistics_are_postfix_lines_and_reset() {
        let c = Clock::new();
        let mut t = Table::new(UNIT, 100);
        assert!(t.take_stats().lines(UNIT, |_| String::new()).is_empty());
        t.connect(A, key("192.0.2.1"), c.at(0));
        t.connect(A, key("192.0.2.1"), c.at(1));
        t.disconnect(A, &key("192.0.2.1"), c.at(2));
        t.connect(A, key("192.0.2.1"), c.at(3));
        t.connect(A, key("192.0.2.2"), c.at(4));
        let at = |w: SystemTime| {
            w.duration_since(c.0.wall).map(|d| format!("+{}", d.as_secs())).unwrap_or_default()
        };
        assert_eq!(
            t.take_stats().lines(UNIT, at),
            [
                "statistics: max connection rate 3/60s for (smtp:192.0.2.1) at +3",
                "statistics: max connection count 2 for (smtp:192.0.2.1) at +1",
                "statistics: max cache size 2 at +4",
            ]
        );
        assert_eq!(t.take_stats(), Stats::default());
    }
}
