//! The duplicate-window bookkeeping, without I/O: which recipients of a
//! message are final, what an agent's answer means for each recipient
//! qmgr asked about, which results may be recorded before the round ends,
//! and what expiry turns deferrals into. `schedule.rs` writes what these
//! decide to the status log.

use mail_ipc::delivery::RecipientResult;
use mail_queue::StatusRecord;
use mail_types::{DeliveryStatus, EnhancedStatus};
use std::collections::HashSet;
use std::time::Duration;

/// Recipients with a final result among `records`.
pub(crate) fn finals<'a>(records: impl IntoIterator<Item = &'a StatusRecord>) -> HashSet<u32> {
    records.into_iter().filter(|r| r.outcome.is_final()).map(|r| r.recipient).collect()
}

/// An agent's results for the recipients in `asked`, as records at time
/// `t`: answers about recipients not asked for, and repeated answers,
/// are ignored; recipients without an answer are returned separately
/// (qmgr defers them with a reason and logs that itself).
pub(crate) fn answers(
    asked: &[u32],
    results: Vec<RecipientResult>,
    t: u64,
) -> (Vec<StatusRecord>, Vec<u32>) {
    let wanted: HashSet<u32> = asked.iter().copied().collect();
    let mut answered = HashSet::new();
    let mut records = Vec::new();
    for res in results {
        if wanted.contains(&res.index) && answered.insert(res.index) {
            records.push(StatusRecord { recipient: res.index, outcome: res.status, time: t });
        }
    }
    let missing = asked.iter().copied().filter(|i| !answered.contains(i)).collect();
    (records, missing)
}

/// Splits a round's results while other requests are still out: bounces
/// wait for the end of the round (the report must be queued before they
/// are recorded as final), everything else may be recorded now, so a
/// crash meanwhile re-delivers nothing already done. Returns (wait,
/// record now).
pub(crate) fn recordable_now(round: Vec<StatusRecord>) -> (Vec<StatusRecord>, Vec<StatusRecord>) {
    round.into_iter().partition(|r| matches!(r.outcome, DeliveryStatus::Bounced { .. }))
}

/// Whether every one of `total` recipients is final, counting what the
/// log had and this round's results.
pub(crate) fn all_final(total: u32, done_before: &HashSet<u32>, round: &[StatusRecord]) -> bool {
    let now = finals(round);
    (0..total).all(|i| done_before.contains(&i) || now.contains(&i))
}

/// Turns this round's deferrals into bounces for a message that outlived
/// its lifetime (`age` old), in Postfix's words. Returns the recipients
/// changed, for logging.
pub(crate) fn expire(round: &mut [StatusRecord], age: Duration) -> Vec<u32> {
    let mut changed = Vec::new();
    for r in round {
        if let DeliveryStatus::Deferred { text, .. } = &r.outcome {
            let text = format!(
                "message expired after {} days in the queue; last error: {text}",
                age.as_secs() / 86400
            );
            r.outcome = DeliveryStatus::bounce(EnhancedStatus(4, 4, 7), text);
            changed.push(r.recipient);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(index: u32, status: DeliveryStatus) -> RecipientResult {
        RecipientResult { index, status }
    }
    fn sent() -> DeliveryStatus {
        DeliveryStatus::sent("t")
    }

    #[test]
    fn answers_ignore_strangers_and_repeats() {
        let (records, missing) = answers(
            &[1, 2, 3],
            vec![
                res(1, sent()),
                res(9, sent()),
                res(1, DeliveryStatus::bounce(EnhancedStatus(5, 0, 0), "t")),
            ],
            7,
        );
        assert_eq!(records.len(), 1);
        assert!(matches!(records[0].outcome, DeliveryStatus::Sent { .. }));
        assert_eq!(missing, vec![2, 3]);
    }

    #[test]
    fn bounces_wait_for_the_end_of_the_round() {
        let rec = |recipient, outcome| StatusRecord { recipient, outcome, time: 0 };
        let round = vec![
            rec(0, DeliveryStatus::sent("")),
            rec(1, DeliveryStatus::bounce(EnhancedStatus(5, 1, 1), "")),
            rec(2, DeliveryStatus::defer(EnhancedStatus(4, 0, 0), "")),
        ];
        let (wait, now) = recordable_now(round.clone());
        assert_eq!(wait.iter().map(|r| r.recipient).collect::<Vec<_>>(), vec![1]);
        assert_eq!(now.iter().map(|r| r.recipient).collect::<Vec<_>>(), vec![0, 2]);
        assert!(!all_final(3, &HashSet::new(), &round));
        assert!(all_final(3, &HashSet::from([2]), &round));
        let mut round = round;
        assert_eq!(expire(&mut round, Duration::from_secs(6 * 86400)), vec![2]);
        assert!(all_final(3, &HashSet::new(), &round));
        assert_eq!(finals(&round), HashSet::from([0, 1, 2]));
    }
}
