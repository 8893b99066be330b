//! The batch counter rule, shared by every backend: given each distinct
//! credential's state when its row was locked, the outcome of every update
//! in batch order, as if they ran one after another.
//!
//! Maps that live for one batch use foldhash (randomly seeded per process
//! and per map) instead of SipHash: they hold at most one batch's keys
//! (bounded by the batch size, so even a colliding batch costs a bounded
//! number of comparisons), and SipHash plus the growth of maps built
//! without capacity was 7 k instructions per counted assertion
//! (BENCHMARKS.md §18).

use crate::types::{CounterResult, CounterUpdate};
use assertd_verify::sign_count_advances;
use foldhash::{HashMap, HashMapExt};

/// A credential as its row read under lock: (stored count, revoked).
pub(crate) type RowState = Option<(u32, bool)>;

/// Key of a credential within a batch.
pub(crate) type Key<'a> = (&'a str, &'a [u8]);

/// What to write after planning.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// One result per update, in order.
    pub results: Vec<CounterResult>,
    /// (credential, count before, count after) where the count grew.
    pub writes: Vec<(Key<'a>, u32, u32)>,
}

/// Plans a batch. `rows` holds every distinct credential of `updates`.
pub(crate) fn plan<'a>(updates: &'a [CounterUpdate], rows: &HashMap<Key<'a>, RowState>) -> Plan<'a> {
    let mut running: HashMap<Key<'a>, u32> = HashMap::with_capacity(rows.len());
    let mut plan = Plan { results: Vec::with_capacity(updates.len()), ..Plan::default() };
    for u in updates {
        let key = (u.rp_id.as_str(), u.credential_id.as_slice());
        plan.results.push(match rows.get(&key).copied().flatten() {
            None => CounterResult::NotFound,
            Some((_, true)) => CounterResult::Revoked,
            Some((stored, false)) => {
                let now = running.entry(key).or_insert(stored);
                if sign_count_advances(*now, u.received) {
                    *now = u.received;
                    CounterResult::Advanced
                } else {
                    CounterResult::Regressed { stored: *now }
                }
            }
        });
    }
    for (key, after) in running {
        if let Some(Some((before, _))) = rows.get(&key)
            && after != *before
        {
            plan.writes.push((key, *before, after));
        }
    }
    plan
}

/// One credential of a batch: the highest count it received (what a
/// backend writes when it grows) and how many of the batch's updates name
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Distinct<'a> {
    pub(crate) key: Key<'a>,
    pub(crate) max: u32,
    pub(crate) times: u32,
}

/// The distinct credentials of a batch, in first-seen order.
pub(crate) fn distinct_max(updates: &[CounterUpdate]) -> Vec<Distinct<'_>> {
    let mut index: HashMap<Key<'_>, usize> = HashMap::with_capacity(updates.len());
    let mut out: Vec<Distinct<'_>> = Vec::with_capacity(updates.len());
    for u in updates {
        let key = (u.rp_id.as_str(), u.credential_id.as_slice());
        match index.get(&key) {
            Some(&i) => {
                out[i].max = out[i].max.max(u.received);
                out[i].times += 1;
            }
            None => {
                index.insert(key, out.len());
                out.push(Distinct { key, max: u.received, times: 1 });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(id: &str, received: u32) -> CounterUpdate {
        CounterUpdate { rp_id: "rp".into(), credential_id: id.as_bytes().to_vec(), received }
    }

    #[test]
    fn final_count_is_the_max_accepted() {
        // Whatever the order, what gets written is max(stored, max received)
        // when anything grew: the single-statement backends rely on it.
        let orders = [vec![5, 3, 9, 9, 7], vec![9, 5, 3], vec![1, 2, 3], vec![2, 2, 2]];
        for received in orders {
            for stored in [0u32, 2, 4, 10] {
                let updates: Vec<_> = received.iter().map(|r| u("a", *r)).collect();
                let rows: HashMap<_, _> = [(("rp", &b"a"[..]), Some((stored, false)))].into_iter().collect();
                let p = plan(&updates, &rows);
                let max = *received.iter().max().unwrap();
                let want = (max > stored).then_some(max);
                assert_eq!(p.writes.first().map(|w| w.2), want, "{received:?} over {stored}");
                let times = u32::try_from(received.len()).unwrap();
                assert_eq!(distinct_max(&updates), vec![Distinct { key: ("rp", &b"a"[..]), max, times }]);
            }
        }
    }
}
