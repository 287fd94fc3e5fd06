//! The failure delays, apart from any I/O: how many recent failures a
//! client address and a user name have, and how long a reply waits.
//! Time comes in as an argument, so every rule is unit-tested.
//!
//! The rule (also in the `//!` of main.rs and docs/security.md):
//! - A key is a client address (IPv4, or an IPv6 /64) or a user name
//!   (lower-cased). Its count is the number of failed checks since its
//!   count was last zero; it returns to zero [`WINDOW`] (15 minutes) after
//!   the key's last failure.
//! - A failed check adds one to the address's and the user's count; its
//!   `Fail` reply waits `delay(n) = min(2^(n-1), 15)` seconds, where `n`
//!   is the larger of the two counts after the increment (1 s, 2 s, 4 s,
//!   8 s, then 15 s).
//! - While an address has [`PENALTY_THRESHOLD`] (5) or more failures,
//!   every reply to it, success and temporary failure too, waits
//!   `delay(n)` of that address: a guesser gains nothing from parallel
//!   connections or from learning the answer early.
//! - A success resets the user name's count (the owner proved who they
//!   are), not the address's: a guesser with one valid account cannot
//!   clear its own record by logging in between guesses.
//!
//! Memory: each table holds at most `capacity` keys; when full, the key
//! whose last failure is oldest is forgotten (counted, and logged by the
//! caller). A forgotten key starts again from zero, which only shortens a
//! delay, never refuses anyone. Severities: none.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How long a key's failures are remembered after its last one.
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest delay.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(15);
/// From this many failures of an address on, every reply to it waits.
pub(crate) const PENALTY_THRESHOLD: u32 = 5;

/// `min(2^(n-1), 15)` seconds; nothing for `n = 0`.
pub(crate) fn delay(n: u32) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let secs = 1u64.checked_shl(n - 1).unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(MAX_DELAY)
}

/// The key of a client address: IPv4 as it is, IPv6 as its /64 (an
/// address within one's own /64 costs nothing to change), IPv4-mapped
/// IPv6 as the IPv4 address.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[derive(Debug)]
struct Entry {
    count: u32,
    last: Instant,
    seq: u64,
}

/// One bounded table of failure counts.
#[derive(Debug)]
pub(crate) struct Counts<K> {
    entries: HashMap<K, Entry>,
    /// Keys by last failure, oldest first.
    order: BTreeMap<u64, K>,
    next_seq: u64,
    capacity: usize,
    evicted: u64,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    pub(crate) fn new(capacity: usize) -> Counts<K> {
        Counts {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            capacity: capacity.max(1),
            evicted: 0,
        }
    }

    /// The current count of `key` (zero once its window is over).
    pub(crate) fn get(&self, key: &K, now: Instant) -> u32 {
        match self.entries.get(key) {
            Some(e) if now.saturating_duration_since(e.last) < WINDOW => e.count,
            _ => 0,
        }
    }

    /// Counts one failure of `key` and returns its new count.
    pub(crate) fn fail(&mut self, key: &K, now: Instant) -> u32 {
        let current = self.get(key, now);
        self.remove(key);
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.entries.remove(&oldest);
            self.evicted += 1;
        }
        let count = current.saturating_add(1);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(key.clone(), Entry { count, last: now, seq });
        self.order.insert(seq, key.clone());
        count
    }

    /// Forgets `key`'s failures.
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.seq);
        }
    }

    /// Drops the keys whose window is over, oldest first.
    pub(crate) fn sweep(&mut self, now: Instant) {
        while let Some((&seq, key)) = self.order.first_key_value() {
            let expired = self
                .entries
                .get(key)
                .is_none_or(|e| now.saturating_duration_since(e.last) >= WINDOW);
            if !expired {
                break;
            }
            let key = key.clone();
            self.order.remove(&seq);
            self.entries.remove(&key);
        }
    }

    /// Keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keys forgotten because the table was full, since the last call.
    pub(crate) fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }
}

/// What a check came to, for the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The password was right.
    Success,
    /// Wrong user or password.
    Failure,
    /// No answer could be given.
    TempFail,
}

/// Both tables.
#[derive(Debug)]
pub(crate) struct Penalty {
    addresses: Counts<IpAddr>,
    users: Counts<String>,
}

impl Penalty {
    pub(crate) fn new(capacity: usize) -> Penalty {
        Penalty { addresses: Counts::new(capacity), users: Counts::new(capacity) }
    }

    /// Records a check's outcome and returns how long its reply waits.
    pub(crate) fn record(
        &mut self,
        client: IpAddr,
        user: &str,
        outcome: Outcome,
        now: Instant,
    ) -> Duration {
        let addr = address_key(client);
        let user = user.to_lowercase();
        match outcome {
            Outcome::Failure => {
                let a = self.addresses.fail(&addr, now);
                let u = self.users.fail(&user, now);
                delay(a.max(u))
            }
            Outcome::Success | Outcome::TempFail => {
                if outcome == Outcome::Success {
                    self.users.remove(&user);
                }
                let a = self.addresses.get(&addr, now);
                if a >= PENALTY_THRESHOLD { delay(a) } else { Duration::ZERO }
            }
        }
    }

    /// Drops expired keys.
    pub(crate) fn sweep(&mut self, now: Instant) {
        self.addresses.sweep(now);
        self.users.sweep(now);
    }

    /// Keys forgotten because a table was full, since the last call.
    pub(crate) fn take_evicted(&mut self) -> u64 {
        self.addresses.take_evicted() + self.users.take_evicted()
    }

    /// Keys held in both tables.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.addresses.len() + self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_delay_rule() {
        let secs: Vec<u64> = (0..8).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 15, 15, 15]);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn failures_grow_per_address_and_per_user() {
        let mut p = Penalty::new(100);
        let t = Instant::now();
        let a = ip("192.0.2.1");
        let got: Vec<u64> = (0..6)
            .map(|i| p.record(a, &format!("user{i}"), Outcome::Failure, t).as_secs())
            .collect();
        assert_eq!(got, [1, 2, 4, 8, 15, 15], "one address, many users");
        // Another address guessing one user: the user's count grows too.
        let got: Vec<u64> = (0..3)
            .map(|i| {
                p.record(ip(&format!("198.51.100.{i}")), "maria", Outcome::Failure, t).as_secs()
            })
            .collect();
        assert_eq!(got, [1, 2, 4], "many addresses, one user");
        // A third address, a fresh user: no history.
        assert_eq!(p.record(ip("203.0.113.9"), "ana", Outcome::Failure, t).as_secs(), 1);
        // A success from a clean address is not delayed.
        assert_eq!(p.record(ip("203.0.113.10"), "maria", Outcome::Success, t), Duration::ZERO);
    }

    #[test]
    fn a_penalised_address_waits_on_every_reply() {
        let mut p = Penalty::new(100);
        let t = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..PENALTY_THRESHOLD - 1 {
            p.record(a, "x", Outcome::Failure, t);
        }
        assert_eq!(p.record(a, "ok", Outcome::Success, t), Duration::ZERO, "below the threshold");
        p.record(a, "x", Outcome::Failure, t);
        assert_eq!(p.record(a, "ok", Outcome::Success, t), Duration::from_secs(15));
        assert_eq!(p.record(a, "ok", Outcome::TempFail, t), Duration::from_secs(15));
        // A success does not clear the address.
        assert_eq!(p.record(a, "ok", Outcome::Success, t), Duration::from_secs(15));
    }

    #[test]
    fn success_clears_the_user_and_the_window_ends() {
        let mut p = Penalty::new(100);
        let t = Instant::now();
        for i in 0..3 {
            p.record(ip(&format!("198.51.100.{i}")), "maria", Outcome::Failure, t);
        }
        p.record(ip("203.0.113.1"), "Maria", Outcome::Success, t);
        assert_eq!(p.record(ip("203.0.113.2"), "maria", Outcome::Failure, t).as_secs(), 1);
        // 15 minutes after the last failure: forgotten.
        let a = ip("192.0.2.1");
        for _ in 0..4 {
            p.record(a, "x", Outcome::Failure, t);
        }
        let later = t + WINDOW - Duration::from_secs(1);
        assert_eq!(p.record(a, "y", Outcome::Failure, later).as_secs(), 15, "still counted");
        let much_later = later + WINDOW;
        assert_eq!(p.record(a, "z", Outcome::Failure, much_later).as_secs(), 1, "window over");
        p.sweep(much_later + WINDOW);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let mut p = Penalty::new(100);
        let t = Instant::now();
        assert_eq!(p.record(ip("2001:db8::1"), "a", Outcome::Failure, t).as_secs(), 1);
        assert_eq!(p.record(ip("2001:db8::2"), "b", Outcome::Failure, t).as_secs(), 2);
        assert_eq!(p.record(ip("2001:db8:0:1::1"), "c", Outcome::Failure, t).as_secs(), 1);
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn tables_are_bounded() {
        let mut p = Penalty::new(16);
        let t = Instant::now();
        for i in 0..1000u32 {
            let a = IpAddr::from(i.to_be_bytes());
            p.record(a, &format!("u{i}"), Outcome::Failure, t + Duration::from_millis(i.into()));
        }
        assert_eq!(p.len(), 32);
        assert_eq!(p.take_evicted(), 2 * (1000 - 16));
        // The newest survive.
        assert_eq!(p.addresses.get(&IpAddr::from(999u32.to_be_bytes()), t), 1);
        assert_eq!(p.addresses.get(&IpAddr::from(0u32.to_be_bytes()), t), 0);
    }
}
