//! Counter checks through a store outage.
//!
//! While the store answers, every batch's counters are compared-and-set in
//! the store, and the journal learns each credential's count (its high-water
//! mark on this replica). When the store does not answer, a credential this
//! replica has seen is checked against that mark instead: a count above it
//! is accepted (`SIGN_COUNT_DEFERRED`, a risk signal) and queued; a count at
//! or below it is a regression; a credential never seen gets
//! `STORE_UNAVAILABLE`. Queued updates go to the store ahead of the next
//! batch (same round trip), or from a timer when idle; a queued count that
//! the store then refuses (another replica accepted it meanwhile) is counted
//! in `assertd_deferred_counter_conflicts_total`.

use assertd_store::{CounterResult, CounterUpdate};
use assertd_verify::sign_count_advances;
use std::collections::HashMap;

/// What the journal says of an update it checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    /// Above the mark: accepted and queued.
    Accepted,
    /// At or below the mark.
    Regressed {
        /// The mark.
        stored: u32,
    },
    /// Never seen on this replica, or the queue is full.
    Unknown,
}

type Key = (String, Vec<u8>);

/// High-water marks and the queue of updates the store has not taken yet.
#[derive(Debug)]
pub struct Journal {
    marks: HashMap<Key, u32>,
    queue: Vec<CounterUpdate>,
    max_marks: usize,
    max_queue: usize,
}

impl Journal {
    /// A journal remembering at most `max_marks` credentials and queueing at
    /// most `max_queue` updates.
    pub fn new(max_marks: usize, max_queue: usize) -> Self {
        Self { marks: HashMap::new(), queue: Vec::new(), max_marks, max_queue }
    }

    /// Learns from the store's answer to `updates`.
    pub fn learn(&mut self, updates: &[CounterUpdate], results: &[CounterResult]) {
        if self.marks.len() > self.max_marks {
            // Crude but bounded: forget everything rather than grow.
            self.marks.clear();
        }
        for (u, r) in updates.iter().zip(results) {
            let key = (u.rp_id.clone(), u.credential_id.clone());
            let seen = match r {
                CounterResult::Advanced => u.received,
                CounterResult::Regressed { stored } => *stored,
                CounterResult::Revoked | CounterResult::NotFound => {
                    self.marks.remove(&key);
                    continue;
                }
            };
            let m = self.marks.entry(key).or_insert(seen);
            *m = (*m).max(seen);
        }
    }

    /// Checks `updates` in order against the marks; accepted ones are queued.
    pub fn defer(&mut self, updates: &[CounterUpdate]) -> Vec<Deferred> {
        updates
            .iter()
            .map(|u| {
                let key = (u.rp_id.clone(), u.credential_id.clone());
                let Some(mark) = self.marks.get_mut(&key) else { return Deferred::Unknown };
                if !sign_count_advances(*mark, u.received) {
                    return Deferred::Regressed { stored: *mark };
                }
                if self.queue.len() >= self.max_queue {
                    return Deferred::Unknown;
                }
                *mark = u.received;
                self.queue.push(u.clone());
                Deferred::Accepted
            })
            .collect()
    }

    /// Takes the queued updates (to send ahead of a batch).
    pub fn take_queue(&mut self) -> Vec<CounterUpdate> {
        std::mem::take(&mut self.queue)
    }

    /// Puts updates back at the front of the queue (the store still does
    /// not answer).
    pub fn requeue(&mut self, mut updates: Vec<CounterUpdate>) {
        updates.append(&mut self.queue);
        self.queue = updates;
    }

    /// Updates waiting for the store.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(id: u8, n: u32) -> CounterUpdate {
        CounterUpdate { rp_id: "rp".into(), credential_id: vec![id], received: n }
    }

    #[test]
    fn checks_against_marks_and_queues() {
        let mut j = Journal::new(100, 3);
        j.learn(&[u(1, 5), u(2, 9)], &[CounterResult::Advanced, CounterResult::Regressed { stored: 12 }]);
        let got = j.defer(&[u(1, 6), u(1, 6), u(2, 12), u(2, 13), u(3, 1), u(1, 7), u(1, 8)]);
        assert_eq!(
            got,
            vec![
                Deferred::Accepted,
                Deferred::Regressed { stored: 6 },
                Deferred::Regressed { stored: 12 },
                Deferred::Accepted,
                Deferred::Unknown,
                Deferred::Accepted,
                // Queue full (3): not accepted.
                Deferred::Unknown,
            ]
        );
        assert_eq!(j.queued(), 3);
        let q = j.take_queue();
        assert_eq!(q.iter().map(|x| x.received).collect::<Vec<_>>(), vec![6, 13, 7]);
        j.requeue(q);
        assert_eq!(j.queued(), 3);
    }

    #[test]
    fn revoked_credentials_are_forgotten() {
        let mut j = Journal::new(100, 10);
        j.learn(&[u(1, 5)], &[CounterResult::Advanced]);
        j.learn(&[u(1, 6)], &[CounterResult::Revoked]);
        assert_eq!(j.defer(&[u(1, 7)]), vec![Deferred::Unknown]);
    }
}
