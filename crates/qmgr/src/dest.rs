//! One destination's scheduling state, without I/O: Postfix qmgr's
//! concurrency window with slow start, its negative feedback, and the
//! "dead destination" it declares after a cohort of failures.
//!
//! A destination is a (transport, nexthop) pair. It starts with a window
//! of `initial_destination_concurrency` parallel deliveries; each success
//! widens it by 1/window (one more per window of successes, so it grows
//! by about one per round trip), up to the concurrency limit; each
//! failure narrows it by 1/window (never below 1) and adds 1/window to
//! the failed cohorts. When those reach
//! `default_destination_concurrency_failed_cohort_limit`, the destination
//! is dead: for the backoff time nothing is sent to it, and its waiting
//! mail is deferred without an attempt. Any success clears the count.
//! The local transport keeps a fixed window and never dies: its failures
//! are those of one agent process, not of a remote site.

use mail_ipc::delivery::DeliveryReply;
use mail_types::{DeliveryStatus, EnhancedStatus};
use std::time::{Duration, Instant};

/// How the destinations of one transport behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) initial: usize,
    pub(crate) limit: usize,
    pub(crate) failed_cohorts: usize,
    /// How long a dead destination stays dead.
    pub(crate) dead_for: Duration,
    /// No slow start, no feedback, never dead (local delivery).
    pub(crate) fixed: bool,
}

/// What one finished delivery request says about the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Feedback {
    /// The destination answered (delivered, bounced, or a per-recipient
    /// refusal such as greylisting).
    Answered,
    /// No usable session: the agent was unreachable, or it reports a
    /// connection-level failure (4.4.x) for every recipient.
    Failed { dsn: EnhancedStatus, text: String },
}

/// Why a destination takes nothing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suspended {
    pub(crate) dsn: EnhancedStatus,
    pub(crate) text: String,
}

/// What to do with the next request for a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admit {
    Start,
    Wait,
    Suspend(Suspended),
}

#[derive(Debug, Clone)]
pub(crate) struct DestState {
    limits: Limits,
    window: f64,
    fail_cohorts: f64,
    active: usize,
    dead: Option<(Instant, Suspended)>,
    /// The destination answered since it was created or revived.
    proven: bool,
}

/// The text other mail is deferred with while a destination is dead:
/// Postfix's `delivery temporarily suspended: ` and the failure's own.
fn suspended_text(text: &str) -> String {
    const PREFIX: &str = "delivery temporarily suspended: ";
    if text.starts_with(PREFIX) { text.to_owned() } else { format!("{PREFIX}{text}") }
}

impl DestState {
    pub(crate) fn new(limits: Limits) -> DestState {
        let limit = limits.limit.max(1);
        let initial = if limits.fixed { limit } else { limits.initial.clamp(1, limit) };
        DestState {
            limits,
            window: initial as f64,
            fail_cohorts: 0.0,
            active: 0,
            dead: None,
            proven: limits.fixed,
        }
    }

    /// Parallel deliveries allowed now.
    pub(crate) fn window(&self) -> usize {
        (self.window.floor() as usize).max(1)
    }

    /// Whether a new request may start, must wait for a slot, or is to
    /// be deferred at once. A dead destination whose time is up comes
    /// back to life here with the initial window.
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        if let Some((until, why)) = &self.dead {
            if now < *until {
                return Admit::Suspend(why.clone());
            }
            self.revive();
        }
        if self.active < self.window() { Admit::Start } else { Admit::Wait }
    }

    /// Whether the destination has answered since it was created or last
    /// revived: until then qmgr reads no more of its deferred mail than a
    /// window or two, so that a site that is still dead costs little.
    pub(crate) fn proven(&self) -> bool {
        self.proven
    }

    pub(crate) fn started(&mut self) {
        self.active += 1;
    }

    /// Whether the destination is dead at `now`.
    pub(crate) fn is_dead(&self, now: Instant) -> bool {
        self.dead.as_ref().is_some_and(|(until, _)| now < *until)
    }

    /// Whether the state can be forgotten: nothing in progress, not
    /// dead, and no failures counted (a site that fails one message at a
    /// time must still add up to a dead one).
    pub(crate) fn idle(&self, now: Instant) -> bool {
        self.active == 0 && !self.is_dead(now) && self.fail_cohorts == 0.0
    }

    /// A flush (or the end of the dead time): try again, slowly.
    pub(crate) fn revive(&mut self) {
        if self.dead.take().is_some() {
            self.window = if self.limits.fixed {
                self.limits.limit.max(1) as f64
            } else {
                self.limits.initial.clamp(1, self.limits.limit.max(1)) as f64
            };
            self.fail_cohorts = 0.0;
            self.proven = self.limits.fixed;
        }
    }

    /// A request finished. Returns true when this made the destination
    /// dead (the caller then defers what waits for it).
    pub(crate) fn finished(&mut self, feedback: Feedback, now: Instant) -> bool {
        self.active = self.active.saturating_sub(1);
        if self.limits.fixed {
            return false;
        }
        let limit = self.limits.limit.max(1) as f64;
        match feedback {
            Feedback::Answered => {
                self.fail_cohorts = 0.0;
                self.proven = true;
                self.window = (self.window + 1.0 / self.window).min(limit);
                false
            }
            Feedback::Failed { dsn, text } => {
                self.fail_cohorts += 1.0 / self.window;
                self.window = (self.window - 1.0 / self.window).max(1.0);
                if self.dead.is_some() {
                    // Requests started before it died still end; they
                    // change nothing.
                    return false;
                }
                // A little slack: the sums of 1/window are not exact.
                if self.fail_cohorts + 1e-9 >= self.limits.failed_cohorts.max(1) as f64 {
                    let why = Suspended { dsn, text: suspended_text(&text) };
                    self.dead = Some((now + self.limits.dead_for, why));
                    return true;
                }
                false
            }
        }
    }
}

/// The feedback of one request's outcome: `Err` (4.3.0) is an agent that could
/// not be reached or did not answer; an answer in which every recipient
/// asked about is deferred with a 4.4.x code (the network and routing
/// class of RFC 3463: no answer, bad connection, DNS failure) is a
/// destination that could not be reached. Anything else means the
/// destination spoke.
pub(crate) fn feedback(asked: &[u32], reply: &Result<DeliveryReply, String>) -> Feedback {
    let r = match reply {
        Err(text) => return Feedback::Failed { dsn: EnhancedStatus(4, 3, 0), text: text.clone() },
        Ok(r) => r,
    };
    let mut first = None;
    for i in asked {
        match r.results.iter().find(|x| x.index == *i).map(|x| &x.status) {
            Some(DeliveryStatus::Deferred { dsn, text }) if dsn.0 == 4 && dsn.1 == 4 => {
                first.get_or_insert((*dsn, text.clone()));
            }
            _ => return Feedback::Answered,
        }
    }
    match first {
        Some((dsn, text)) => Feedback::Failed { dsn, text },
        None => Feedback::Answered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_ipc::delivery::RecipientResult;

    fn limits() -> Limits {
        Limits {
            initial: 5,
            limit: 20,
            failed_cohorts: 1,
            dead_for: Duration::from_secs(300),
            fixed: false,
        }
    }

    fn fail() -> Feedback {
        Feedback::Failed { dsn: EnhancedStatus(4, 4, 1), text: "connect to x: refused".into() }
    }

    #[test]
    fn slow_start_grows_one_per_window_of_successes_up_to_the_limit() {
        let now = Instant::now();
        let mut d = DestState::new(limits());
        for _ in 0..5 {
            assert_eq!(d.admit(now), Admit::Start);
            d.started();
        }
        assert_eq!(d.admit(now), Admit::Wait, "initial window is 5");
        for _ in 0..5 {
            assert!(!d.finished(Feedback::Answered, now));
        }
        assert_eq!(d.window(), 5, "five successes at window 5 add just under one");
        d.started();
        d.finished(Feedback::Answered, now);
        assert_eq!(d.window(), 6);
        for _ in 0..1000 {
            d.started();
            d.finished(Feedback::Answered, now);
        }
        assert_eq!(d.window(), 20, "never past the destination's limit");
    }

    #[test]
    fn a_cohort_of_failures_makes_the_destination_dead_until_backoff() {
        let now = Instant::now();
        let mut d = DestState::new(limits());
        for _ in 0..5 {
            d.started();
        }
        // One failure is not a cohort: the window narrows.
        assert!(!d.finished(fail(), now));
        assert_eq!(d.window(), 4);
        let mut died = false;
        for _ in 0..4 {
            died |= d.finished(fail(), now);
        }
        assert!(died, "five failures at window ~5 are one failed cohort");
        match d.admit(now) {
            Admit::Suspend(s) => {
                assert_eq!(s.text, "delivery temporarily suspended: connect to x: refused");
                assert_eq!(s.dsn, EnhancedStatus(4, 4, 1));
            }
            other => panic!("{other:?}"),
        }
        assert!(d.is_dead(now) && !d.idle(now));
        let later = now + Duration::from_secs(301);
        assert!(!d.is_dead(later));
        // After the dead time: back to the initial window.
        let later = now + Duration::from_secs(301);
        assert_eq!(d.admit(later), Admit::Start);
        assert_eq!(d.window(), 5);
    }

    #[test]
    fn failures_one_at_a_time_add_up() {
        let now = Instant::now();
        let mut d = DestState::new(limits());
        let mut died = false;
        for _ in 0..5 {
            assert!(!died);
            assert_eq!(d.admit(now), Admit::Start);
            d.started();
            died = d.finished(fail(), now);
            if !died {
                assert!(!d.idle(now), "a counted failure is remembered");
            }
        }
        assert!(died, "five single failures make a cohort at window ~5");
    }

    #[test]
    fn a_destination_is_proven_by_an_answer_and_unproven_again_when_revived() {
        let now = Instant::now();
        let mut d = DestState::new(Limits { initial: 1, ..limits() });
        assert!(!d.proven());
        d.started();
        d.finished(fail(), now);
        assert!(!d.proven() && d.is_dead(now));
        d.revive();
        d.started();
        d.finished(Feedback::Answered, now);
        assert!(d.proven());
        assert!(DestState::new(Limits { fixed: true, ..limits() }).proven());
    }

    #[test]
    fn a_success_clears_the_failure_count() {
        let now = Instant::now();
        let mut d = DestState::new(limits());
        for _ in 0..10 {
            d.started();
            assert!(!d.finished(fail(), now));
            d.started();
            assert!(!d.finished(Feedback::Answered, now));
        }
        assert!(!d.is_dead(now));
        assert!(d.idle(now), "nothing left to remember");
    }

    #[test]
    fn a_flush_revives_and_the_local_transport_never_dies() {
        let now = Instant::now();
        let mut d = DestState::new(Limits { failed_cohorts: 1, initial: 1, ..limits() });
        d.started();
        assert!(d.finished(fail(), now));
        assert!(d.is_dead(now));
        d.revive();
        assert_eq!(d.admit(now), Admit::Start);

        let mut local = DestState::new(Limits { fixed: true, ..limits() });
        assert_eq!(local.window(), 20, "local keeps its full concurrency from the start");
        for _ in 0..100 {
            local.started();
            assert!(!local.finished(fail(), now));
        }
        assert_eq!(local.window(), 20);
        assert_eq!(local.admit(now), Admit::Start);
    }

    #[test]
    fn feedback_tells_a_dead_site_from_a_speaking_one() {
        let r = |v: Vec<(u32, DeliveryStatus)>| {
            Ok(DeliveryReply {
                results: v
                    .into_iter()
                    .map(|(index, status)| RecipientResult { index, status })
                    .collect(),
            })
        };
        let conn = DeliveryStatus::defer(EnhancedStatus(4, 4, 1), "connect refused");
        let grey = DeliveryStatus::defer(EnhancedStatus(4, 7, 1), "greylisted");
        assert!(matches!(feedback(&[0], &Err("agent down".into())), Feedback::Failed { .. }));
        assert_eq!(
            feedback(&[0, 1], &r(vec![(0, conn.clone()), (1, conn.clone())])),
            Feedback::Failed { dsn: EnhancedStatus(4, 4, 1), text: "connect refused".into() }
        );
        assert_eq!(feedback(&[0, 1], &r(vec![(0, conn.clone()), (1, grey)])), Feedback::Answered);
        assert_eq!(
            feedback(&[0, 1], &r(vec![(0, conn), (1, DeliveryStatus::sent("ok"))])),
            Feedback::Answered
        );
        // An answer that leaves a recipient out is a confused agent, not a dead site.
        assert_eq!(feedback(&[0], &r(vec![])), Feedback::Answered);
    }
}
