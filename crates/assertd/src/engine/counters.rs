//! Stage 4: signature counters (WebAuthn L3 §7.2 step 22 (signCount) and §7.2 step 24 (update record)). Every verified
//! item's count is compared and set in the store, one round trip per batch,
//! in batch order; while the store is unreachable (a connectivity failure,
//! never an error the store answered with) the journal checks what it can.
//!
//! Counter-less credentials skip the round trip: the cached count is 0 and
//! every assertion of the credential in this batch carries 0 (most synced
//! passkeys). A BE upgrade is not written here: `Engine::decide` records it
//! after policy, for an allowed verdict only. 0 after 0 is neither an advance nor a
//! regression, so the store has nothing to compare or write; the cached 0 is
//! trustworthy because this replica marks the entry when it sees a count
//! leave 0, and the store's change feed drops it on the others.
//!
//! Which items need the store is decided in one place (`need`); each
//! update remembers its item, and each result goes back into that item.
//!
//! The batch's challenge uses (single use of server-issued challenges) go
//! in the same store call, one transaction with the counts: a retryable
//! verdict has changed nothing, so its retry finds neither a count
//! "regressed" nor a challenge "replayed". An item whose challenge use
//! cannot be recorded is never checked by the journal alone: its count is
//! not deferred, and its verdict is retryable.

use super::assess::{self, Settled};
use super::clock::now_ms;
use super::item::{Item, Stage, deny};
use super::journal::Journal;
use crate::telemetry;
use assertd_policy::{CounterCheck, ReasonCode, Verdict};
use assertd_store::{ChallengeUse, CounterResult, CounterUpdate, KeyCache, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The counter stage's state: the outage journal and whether the store
/// answered last time.
#[derive(Debug)]
pub struct Counters {
    /// Counter marks and queued updates for store outages; `None` when
    /// outages fail closed.
    journal: Option<parking_lot::Mutex<Journal>>,
    /// Whether the store answered its last ping or counter call.
    store_up: AtomicBool,
}

/// What one item's counter needs.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// Nothing: the item is not (validly) verified.
    Nothing,
    /// Valid, yet no authenticator facts: cannot happen (a valid
    /// verification parsed its authenticator data); fails closed.
    Unknowable,
    /// A count to settle.
    Count {
        /// Stored 0 as far as this replica knows, and received 0.
        counterless: bool,
        /// The received count.
        received: u32,
    },
}

/// The one place that decides what an item's counter needs.
fn need(item: &Item) -> Need {
    let Stage::Verified(r, v) = &item.stage else { return Need::Nothing };
    match v.authenticator {
        Some(f) if v.is_valid() => Need::Count { counterless: r.credential.is_counterless() && f.sign_count == 0, received: f.sign_count },
        None if v.is_valid() => Need::Unknowable,
        _ => Need::Nothing,
    }
}

/// A store answer with one result per update, or an error: a short or
/// long answer would hand one assertion another's result.
fn answered(updates: usize, r: Result<Vec<CounterResult>, StoreError>) -> Result<Vec<CounterResult>, StoreError> {
    match r {
        Ok(results) if results.len() != updates => {
            Err(StoreError::Corrupt(format!("{} counter results for {updates} updates", results.len())))
        }
        other => other,
    }
}

/// Moves a verified item to `Counted`.
fn settle(item: &mut Item, outcome: Result<CounterCheck, Verdict>) {
    item.advance(|stage| match stage {
        Stage::Verified(r, v) => Stage::Counted(r, v, outcome),
        other => other,
    });
}

impl Counters {
    /// With `journal`, counters of credentials this replica has seen are
    /// checked against its memory while the store is unreachable.
    pub fn new(journal: Option<Journal>) -> Self {
        Self { journal: journal.map(parking_lot::Mutex::new), store_up: AtomicBool::new(true) }
    }

    /// Records whether the store answers (from pings and counter calls).
    pub fn set_store_up(&self, up: bool) {
        self.store_up.store(up, Ordering::Relaxed);
    }

    /// Settles the counter of every verified item of the batch and records
    /// `uses` (item index, challenge use) in the same store call: verified
    /// items become `Counted`, in batch order. Whether each use was the
    /// first of its challenge, in the order of `uses`; `None` when the uses
    /// could not be recorded (nothing was).
    pub async fn settle(&self, cache: &KeyCache, items: &mut [Item], uses: &[(usize, ChallengeUse)]) -> Option<Vec<bool>> {
        // With counter_outage = "deny", an outage fails every assertion
        // closed, counter-less ones included.
        let fail_closed = self.journal.is_none() && !self.store_up.load(Ordering::Relaxed);
        let needs: Vec<Need> = items.iter().map(need).collect();
        // Credentials that count somewhere in this batch: none of their
        // assertions may skip the store.
        let counting: foldhash::HashSet<(&str, &[u8])> = items
            .iter()
            .zip(&needs)
            .filter(|(_, n)| matches!(n, Need::Count { counterless: false, .. }))
            .map(|(i, _)| i.request.credential_key())
            .collect();
        let skip: Vec<bool> = items
            .iter()
            .zip(&needs)
            .map(|(i, n)| {
                !fail_closed && matches!(n, Need::Count { counterless: true, .. }) && !counting.contains(&i.request.credential_key())
            })
            .collect();

        let mut slots: Vec<(usize, u32)> = Vec::new();
        let mut updates: Vec<CounterUpdate> = Vec::new();
        let with_use: foldhash::HashSet<usize> = uses.iter().map(|(i, _)| *i).collect();
        let mut journal_may: Vec<bool> = Vec::new();
        for (i, (item, n)) in items.iter_mut().zip(needs).enumerate() {
            match n {
                Need::Nothing => settle(item, Ok(CounterCheck::NotChecked)),
                Need::Unknowable => settle(item, Err(deny(ReasonCode::InvalidRequest, "internal: verified without authenticator data"))),
                // Stored 0, received 0: nothing to compare or write.
                Need::Count { .. } if skip[i] => settle(item, Ok(CounterCheck::Ok)),
                Need::Count { received, .. } => {
                    slots.push((i, received));
                    // A BE upgrade is recorded after policy, and only for an
                    // allowed verdict (`Engine::decide`), not with the count.
                    updates.push(CounterUpdate {
                        rp_id: item.request.rp_id.clone(),
                        credential_id: item.request.credential_id.clone(),
                        received,
                    });
                    journal_may.push(!with_use.contains(&i));
                }
            }
        }
        let uses: Vec<ChallengeUse> = uses.iter().map(|(_, u)| *u).collect();
        let (settled, fresh) = self.check(cache, updates, &journal_may, uses).await;
        for ((i, received), s) in slots.into_iter().zip(settled) {
            let item = &mut items[i];
            let outcome = match &item.stage {
                Stage::Verified(r, _) => assess::counter(s, received, &r.credential),
                _ => continue,
            };
            settle(item, outcome);
        }
        fresh
    }

    /// One store round trip for the batch's counters and challenge uses,
    /// behind any updates queued during an outage; one answer per update,
    /// and the freshness of each use (`None`: not recorded). If the store
    /// does not answer, the journal (when enabled) checks the updates
    /// `journal_may` allows.
    async fn check(
        &self,
        cache: &KeyCache,
        updates: Vec<CounterUpdate>,
        journal_may: &[bool],
        uses: Vec<ChallengeUse>,
    ) -> (Vec<Settled>, Option<Vec<bool>>) {
        if updates.is_empty() && uses.is_empty() {
            return (Vec::new(), Some(Vec::new()));
        }
        let n = updates.len();
        let n_uses = uses.len();
        let mut all = self.journal.as_ref().map(|j| j.lock().take_queue()).unwrap_or_default();
        let n_queued = all.len();
        all.extend(updates);
        let all: Arc<[CounterUpdate]> = all.into();
        let started = std::time::Instant::now();
        let r = match cache.store().settle_sign_ins(all.clone(), uses.into(), now_ms()).await {
            Ok((_, fresh)) if fresh.len() != n_uses => {
                Err(StoreError::Corrupt(format!("{} challenge answers for {n_uses} uses", fresh.len())))
            }
            Ok((results, fresh)) => answered(all.len(), Ok(results)).map(|r| (r, fresh)),
            Err(e) => Err(e),
        };
        self.set_store_up(!matches!(&r, Err(e) if e.is_unreachable()));
        telemetry::store_duration("advance_sign_counts", started.elapsed());
        match r {
            Ok((results, fresh)) => {
                if let Some(j) = &self.journal {
                    j.lock().learn(&all, &results);
                }
                self.report_flushed(&results[..n_queued]);
                (results[n_queued..].iter().map(|r| Settled::Store(*r)).collect(), Some(fresh))
            }
            Err(e) => {
                telemetry::store_error("advance_sign_counts");
                tracing::warn!(error = %e, "sign count update failed");
                let Some(j) = &self.journal else { return (vec![Settled::Unavailable; n], None) };
                let mut j = j.lock();
                j.requeue(all[..n_queued].to_vec());
                // Only an unreachable store may be stood in for: a store that
                // answered with an error (a lock timeout, a serialization
                // failure, a corrupt row) may hold a count this replica has
                // not seen, so the batch's own items are denied as retryable.
                if !e.is_unreachable() {
                    telemetry::deferred_queue(j.queued());
                    return (vec![Settled::Unavailable; n], None);
                }
                // An item whose challenge use was not recorded is retryable:
                // its count is not deferred, so its retry changes nothing.
                let mine = &all[n_queued..];
                let deferrable: Vec<CounterUpdate> =
                    mine.iter().zip(journal_may).filter(|(_, may)| **may).map(|(u, _)| u.clone()).collect();
                let mut checked = j.defer(&deferrable).into_iter();
                telemetry::deferred_queue(j.queued());
                let settled = journal_may
                    .iter()
                    .map(|may| if *may { checked.next().map_or(Settled::Unavailable, Settled::Journal) } else { Settled::Unavailable })
                    .collect();
                (settled, None)
            }
        }
    }

    /// Counts queued updates the store refused once it answered again.
    fn report_flushed(&self, results: &[CounterResult]) {
        if results.is_empty() {
            return;
        }
        let conflicts = results.iter().filter(|r| !matches!(r, CounterResult::Advanced)).count();
        telemetry::deferred_flushed(results.len(), conflicts);
        if conflicts > 0 {
            tracing::warn!(conflicts, "counts accepted during the store outage were refused by the store: possible replay across replicas");
        }
        telemetry::deferred_queue(self.journal.as_ref().map_or(0, |j| j.lock().queued()));
    }

    /// Sends updates queued during an outage, when no batch came to carry
    /// them.
    pub async fn flush_deferred(&self, cache: &KeyCache) {
        let Some(j) = &self.journal else { return };
        let queued = j.lock().take_queue();
        if queued.is_empty() {
            return;
        }
        let queued: Arc<[CounterUpdate]> = queued.into();
        match answered(queued.len(), cache.store().advance_sign_counts(queued.clone(), now_ms()).await) {
            Ok(results) => {
                j.lock().learn(&queued, &results);
                self.report_flushed(&results);
            }
            Err(_) => j.lock().requeue(queued.to_vec()),
        }
    }
}
