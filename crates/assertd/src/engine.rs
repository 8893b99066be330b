//! The batch pipeline: check each assertion's fields, resolve credentials
//! through the key cache, verify on the rayon pool, compare-and-set the
//! signature counters in one store round trip, then apply policy.
//!
//! A batch is split in two phases so a stream can overlap them: [`Engine::verify`]
//! (lookups and signature math, any number concurrently) and
//! [`Engine::decide`] (counters and policy, run in request order).

use crate::authz::RpScope;
use crate::config::{Limits, Policy, RpEntry};
use crate::journal::{Deferred, Journal};
use crate::telemetry;
use arc_swap::ArcSwap;
use assertd_api::v1 as pb;
use assertd_policy::{CounterCheck, CredentialFacts, Decision, Finding, Profile, ReasonCode, RiskLevel, SignInContext, Verdict, evaluate};
use assertd_store::{CachedCredential, CounterResult, CounterUpdate, KeyCache, Lookup, StoredCredential};
use assertd_verify::{AssertionInput, AuthenticatorFacts, CredentialInput, KeyError, Verification, truncate, verify};
use futures_util::future::join_all;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The verification engine shared by the gRPC services.
pub struct Engine {
    policy: ArcSwap<Policy>,
    /// Unary RPCs admitted at once (`limits.max_concurrent_rpcs`).
    admission: Arc<tokio::sync::Semaphore>,
    /// Assertions admitted and not yet answered
    /// (`limits.max_queued_assertions`): bounds the queue in front of the
    /// pool by work, not by request count, so an admitted request's wait
    /// is bounded whatever its neighbours' batch sizes.
    work: Arc<tokio::sync::Semaphore>,
    work_total: u32,
    /// Credentials whose `last_used_at` write is due (claimed through the
    /// cache entry, so at most once per `last_used_window_ms` each).
    last_used: parking_lot::Mutex<std::collections::HashSet<(String, Vec<u8>)>>,
    last_used_window_ms: i64,
    /// Counter marks and queued updates for store outages; `None` when
    /// outages fail closed.
    journal: Option<parking_lot::Mutex<Journal>>,
    cache: KeyCache,
    pool: Arc<rayon::ThreadPool>,
    limits: Limits,
    /// Whether the store answered its last ping or counter call.
    store_up: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("relying_parties", &self.policy.load().rps.len())
            .field("threads", &self.pool.current_num_threads())
            .finish_non_exhaustive()
    }
}

/// An item after phase one.
enum Item {
    /// Decided already (bad field, unknown RP or credential, store down).
    Done(Verdict, Option<Arc<CachedCredential>>),
    /// Verified; counters and policy to go.
    Verified(Arc<Profile>, Arc<CachedCredential>, Verification),
}

/// Where an item's counter outcome came from.
enum Counted {
    /// The store's compare-and-set.
    Store(CounterResult),
    /// This replica's journal, during a store outage.
    Journal(Deferred),
}

/// The relying party and profile an assertion is checked under.
type Target = (Arc<RpEntry>, Arc<Profile>);

/// What the pool verifies: the target and the credential.
type Job = (Arc<RpEntry>, Arc<Profile>, Arc<CachedCredential>);

/// A batch after phase one.
pub struct Checked {
    assertions: Vec<pb::Assertion>,
    items: Vec<Item>,
}

/// Room taken in the engine's admission limits, given back on drop.
#[derive(Debug)]
pub struct Admitted {
    _rpc: Option<tokio::sync::OwnedSemaphorePermit>,
    work: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Admitted {
    /// Gives the work budget back once the signature math is done: the
    /// budget bounds the queue in front of the pool, and a batch in its
    /// counter/encode phase no longer adds to it.
    pub fn verified(&mut self) {
        self.work = None;
    }
}

/// Which verified items need no counter round trip: the credential's
/// cached count is 0, and every assertion of it in this batch carries 0 and
/// asks for no BE upgrade (counter-less authenticators, e.g. synced
/// passkeys). 0 after 0 is neither an advance nor a regression, so the
/// store has nothing to compare or write; the cached 0 is trustworthy
/// because this replica marks the entry when it sees a count leave 0, and
/// the store's change feed drops it on the others.
fn counterless(assertions: &[pb::Assertion], items: &[Item]) -> Vec<bool> {
    let received = |item: &Item| match item {
        Item::Verified(profile, c, v) if v.is_valid() => v.authenticator.map(|f| {
            let upgrade = profile.accepts_backup_eligibility_upgrade(c.backup_eligible, f.flags.backup_eligible());
            (c.is_counterless(), f.sign_count, upgrade)
        }),
        _ => None,
    };
    let mut counting: std::collections::HashSet<(&str, &[u8])> = std::collections::HashSet::new();
    for (a, item) in assertions.iter().zip(items) {
        if let Some((counterless, got, upgrade)) = received(item)
            && (!counterless || got != 0 || upgrade)
        {
            counting.insert((a.rp_id.as_str(), a.credential_id.as_slice()));
        }
    }
    assertions
        .iter()
        .zip(items)
        .map(|(a, item)| received(item).is_some() && !counting.contains(&(a.rp_id.as_str(), a.credential_id.as_slice())))
        .collect()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn deny(code: ReasonCode, message: impl Into<String>) -> Verdict {
    Verdict::deny(vec![Finding::new(code, message)])
}

impl Engine {
    /// An engine over the given policy, cache and pool. With `journal`,
    /// counters of credentials this replica has seen are checked against its
    /// memory while the store is unreachable (see `journal`).
    pub fn new(policy: Policy, cache: KeyCache, pool: Arc<rayon::ThreadPool>, limits: Limits, journal: Option<Journal>) -> Self {
        let threads = pool.current_num_threads().max(1);
        let admitted = match limits.max_concurrent_rpcs {
            0 => 16 * threads,
            n => n,
        };
        let work_total = match limits.max_queued_assertions {
            0 => 192 * threads,
            n => n,
        };
        // Permits are taken as u32 (acquire_many); u32::MAX is far below the
        // semaphore's own limit.
        let work_total = u32::try_from(work_total).unwrap_or(u32::MAX);
        Self {
            policy: ArcSwap::from_pointee(policy),
            admission: Arc::new(tokio::sync::Semaphore::new(admitted)),
            work: Arc::new(tokio::sync::Semaphore::new(work_total as usize)),
            work_total,
            last_used: parking_lot::Mutex::default(),
            last_used_window_ms: 60_000,
            journal: journal.map(parking_lot::Mutex::new),
            cache,
            pool,
            limits,
            store_up: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Writes `last_used_at` at most once per credential per `interval`
    /// (default 60 s).
    #[must_use]
    pub fn with_last_used_interval(mut self, interval: std::time::Duration) -> Self {
        self.last_used_window_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Records whether the store answers (from the health watcher's pings).
    pub fn set_store_up(&self, up: bool) {
        self.store_up.store(up, std::sync::atomic::Ordering::Relaxed);
    }

    /// Swaps in a new policy (relying parties and profiles) atomically.
    /// Batches already running finish under the policy they started with.
    pub fn set_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// The policy in force.
    pub fn policy(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.policy.load()
    }

    /// The key cache.
    pub fn cache(&self) -> &KeyCache {
        &self.cache
    }

    /// Admits one unary RPC of `assertions` items, or says the server is
    /// at capacity (too many RPCs, or too much work queued). A batch larger
    /// than the whole work budget is admitted when the pool is idle.
    pub fn admit(&self, assertions: usize) -> Option<Admitted> {
        let rpc = self.admission.clone().try_acquire_owned().ok()?;
        let work = self.work.clone().try_acquire_many_owned(self.work_units(assertions)).ok()?;
        Some(Admitted { _rpc: Some(rpc), work: Some(work) })
    }

    /// Admits one stream message, waiting for room: a stream is flow
    /// controlled (the caller's sends block) instead of failed.
    pub async fn admit_stream(&self, assertions: usize) -> Result<Admitted, tonic::Status> {
        // The semaphore is never closed; an error would be a bug.
        let work = self
            .work
            .clone()
            .acquire_many_owned(self.work_units(assertions))
            .await
            .map_err(|_| tonic::Status::internal("admission semaphore closed"))?;
        Ok(Admitted { _rpc: None, work: Some(work) })
    }

    /// Whether the admission limits are full: a unary RPC arriving now
    /// would be refused whatever its size.
    pub fn saturated(&self) -> bool {
        self.work.available_permits() == 0 || self.admission.available_permits() == 0
    }

    fn work_units(&self, assertions: usize) -> u32 {
        u32::try_from(assertions).unwrap_or(u32::MAX).clamp(1, self.work_total)
    }

    /// Request-level limit on batch size.
    pub fn max_batch_size(&self) -> usize {
        self.limits.max_batch_size
    }

    /// Field checks done before any lookup. Sizes are capped before
    /// anything parses them.
    fn precheck(&self, policy: &Policy, scope: &RpScope, a: &pb::Assertion) -> Result<Target, Verdict> {
        let l = &self.limits;
        let too_big = |name: &str, len: usize, max: usize| {
            deny(ReasonCode::InvalidRequest, format!("{name} is {len} bytes, over the limit of {max}"))
        };
        if a.rp_id.is_empty() {
            return Err(deny(ReasonCode::InvalidRequest, "rp_id is empty"));
        }
        // Before anything else about the RP: a caller learns nothing about
        // relying parties (configured or not) outside its grant.
        if !scope.allows(&a.rp_id) {
            return Err(deny(
                ReasonCode::RpNotAuthorized,
                format!("this caller may not verify for relying party {:?}", truncate(&a.rp_id)),
            ));
        }
        if a.credential_id.is_empty() {
            return Err(deny(ReasonCode::InvalidRequest, "credential_id is empty"));
        }
        if a.credential_id.len() > assertd_store::MAX_CREDENTIAL_ID_LEN {
            return Err(too_big("credential_id", a.credential_id.len(), assertd_store::MAX_CREDENTIAL_ID_LEN));
        }
        if a.expected_challenge.is_empty() {
            return Err(deny(ReasonCode::InvalidRequest, "expected_challenge is empty"));
        }
        if a.expected_challenge.len() > l.max_challenge_bytes {
            return Err(too_big("expected_challenge", a.expected_challenge.len(), l.max_challenge_bytes));
        }
        if a.client_data_json.len() > l.max_client_data_json_bytes {
            return Err(too_big("client_data_json", a.client_data_json.len(), l.max_client_data_json_bytes));
        }
        if a.authenticator_data.len() > l.max_authenticator_data_bytes {
            return Err(too_big("authenticator_data", a.authenticator_data.len(), l.max_authenticator_data_bytes));
        }
        if a.signature.len() > l.max_signature_bytes {
            return Err(too_big("signature", a.signature.len(), l.max_signature_bytes));
        }
        if a.user_handle.len() > assertd_store::MAX_USER_HANDLE_LEN {
            return Err(too_big("user_handle", a.user_handle.len(), assertd_store::MAX_USER_HANDLE_LEN));
        }
        let rp = policy
            .rps
            .get(&a.rp_id)
            .ok_or_else(|| deny(ReasonCode::RpUnknown, format!("relying party {:?} is not configured", truncate(&a.rp_id))))?;
        let profile = if a.profile.is_empty() {
            rp.default_profile.clone()
        } else {
            policy
                .profiles
                .get(&a.profile)
                .cloned()
                .ok_or_else(|| deny(ReasonCode::ProfileUnknown, format!("profile {:?} is not configured", truncate(&a.profile))))?
        };
        Ok((rp.clone(), profile))
    }

    /// Phase one: field checks, credential lookups (coalesced, one per
    /// distinct credential), and verification on the pool.
    /// Assertions for relying parties outside `scope` get RP_NOT_AUTHORIZED.
    pub async fn verify(&self, assertions: Vec<pb::Assertion>, scope: &RpScope) -> Result<Checked, tonic::Status> {
        telemetry::batch_size(assertions.len());
        let policy = self.policy.load();
        let prechecked: Vec<Result<Target, Verdict>> = assertions.iter().map(|a| self.precheck(&policy, scope, a)).collect();

        // One lookup per distinct (rp, credential) in the batch.
        let mut distinct: HashMap<(&str, &[u8]), usize> = HashMap::new();
        for (a, p) in assertions.iter().zip(&prechecked) {
            if p.is_ok() {
                let n = distinct.len();
                distinct.entry((a.rp_id.as_str(), a.credential_id.as_slice())).or_insert(n);
            }
        }
        let mut keys: Vec<_> = distinct.iter().map(|(k, i)| (*i, *k)).collect();
        keys.sort_unstable_by_key(|(i, _)| *i);
        let lookups = join_all(keys.iter().map(|(_, (rp, id))| self.cache.get(rp, id))).await;
        for (lookup, hit) in &lookups {
            telemetry::cache_lookup(*hit);
            if let Lookup::Unavailable(e) = lookup {
                telemetry::store_error("get");
                tracing::warn!(error = %e, "credential lookup failed");
            }
        }

        // Decide what can be decided now; collect the rest for the pool.
        let mut jobs: Vec<Option<Job>> = Vec::with_capacity(assertions.len());
        let mut items: Vec<Option<Item>> = Vec::with_capacity(assertions.len());
        for (a, p) in assertions.iter().zip(prechecked) {
            let rp = match p {
                Err(v) => {
                    jobs.push(None);
                    items.push(Some(Item::Done(v, None)));
                    continue;
                }
                Ok(found) => found,
            };
            let idx = distinct[&(a.rp_id.as_str(), a.credential_id.as_slice())];
            let (done, job) = match &lookups[idx].0 {
                Lookup::NotFound => {
                    (Some(Item::Done(deny(ReasonCode::CredentialNotFound, "no such credential for this relying party"), None)), None)
                }
                Lookup::Unavailable(_) => {
                    (Some(Item::Done(deny(ReasonCode::StoreUnavailable, "the credential store is unavailable; retry"), None)), None)
                }
                Lookup::Found(c) if c.revoked => {
                    (Some(Item::Done(deny(ReasonCode::CredentialRevoked, "the credential is revoked"), Some(c.clone()))), None)
                }
                Lookup::Found(c) => match &c.key {
                    Err(e) => {
                        let msg = match e {
                            KeyError::Unsupported { .. } => e.to_string(),
                            _ => format!("the stored key cannot be used: {e}"),
                        };
                        (Some(Item::Done(deny(ReasonCode::UnsupportedAlgorithm, msg), Some(c.clone()))), None)
                    }
                    Ok(_) => (None, Some((rp.0, rp.1, c.clone()))),
                },
            };
            items.push(done);
            jobs.push(job);
        }

        // The signature math, off the async runtime.
        let (tx, rx) = tokio::sync::oneshot::channel();
        telemetry::pool_queue(1.0);
        self.pool.spawn(move || {
            let verifications: Vec<Option<Verification>> = assertions
                .par_iter()
                .zip(jobs.par_iter())
                .map(|(a, job)| {
                    // The caller is gone (deadline passed, RPC cancelled):
                    // drop the work rather than do it for nobody.
                    if tx.is_closed() {
                        return None;
                    }
                    let (rp, _, c) = job.as_ref()?;
                    let key = c.key.as_ref().ok()?;
                    let started = std::time::Instant::now();
                    let v = verify(
                        &rp.rp,
                        CredentialInput { key, user_handle: &c.user_handle },
                        &AssertionInput {
                            client_data_json: &a.client_data_json,
                            authenticator_data: &a.authenticator_data,
                            signature: &a.signature,
                            user_handle: &a.user_handle,
                            expected_challenge: &a.expected_challenge,
                            appid_used: a.appid_used,
                        },
                    );
                    telemetry::verify_duration(v.algorithm.name(), started.elapsed());
                    Some(v)
                })
                .collect();
            telemetry::pool_queue(-1.0);
            let _ = tx.send((assertions, jobs, verifications));
        });
        let (assertions, jobs, verifications) = rx.await.map_err(|_| tonic::Status::internal("verification worker failed"))?;

        let items = items
            .into_iter()
            .zip(jobs)
            .zip(verifications)
            .map(|((done, job), v)| match (done, job, v) {
                (Some(item), _, _) => item,
                (None, Some((_, profile, c)), Some(v)) => Item::Verified(profile, c, v),
                // Unreachable by construction: every item without a verdict
                // had a job. Fail closed anyway.
                _ => Item::Done(deny(ReasonCode::InvalidRequest, "internal: item was not verified"), None),
            })
            .collect();
        Ok(Checked { assertions, items })
    }

    /// Phase two: one compare-and-set round trip for every verified item's
    /// counter, in batch order, then policy.
    pub async fn decide(&self, checked: Checked) -> Vec<pb::Verdict> {
        let Checked { assertions, items } = checked;
        // With counter_outage = "deny", an outage fails every assertion
        // closed, counter-less ones included.
        let fail_closed = self.journal.is_none() && !self.store_up.load(std::sync::atomic::Ordering::Relaxed);
        let counterless = if fail_closed { vec![false; items.len()] } else { counterless(&assertions, &items) };
        let updates: Vec<CounterUpdate> = items
            .iter()
            .zip(&assertions)
            .zip(&counterless)
            .filter_map(|((item, a), skip)| match item {
                Item::Verified(profile, c, v) if v.is_valid() && !skip => v.authenticator.map(|f| CounterUpdate {
                    rp_id: a.rp_id.clone(),
                    credential_id: a.credential_id.clone(),
                    received: f.sign_count,
                    upgrade_backup_eligible: profile.accepts_backup_eligibility_upgrade(c.backup_eligible, f.flags.backup_eligible()),
                }),
                _ => None,
            })
            .collect();
        let upgraded: Vec<(String, Vec<u8>)> =
            updates.iter().filter(|u| u.upgrade_backup_eligible).map(|u| (u.rp_id.clone(), u.credential_id.clone())).collect();
        let counters = self.check_counters(updates).await;
        // A recorded BE upgrade changes a cached fact: drop those entries.
        if counters.is_ok() {
            for (rp, id) in &upgraded {
                self.cache.invalidate(rp, id).await;
            }
        }
        let mut counters = counters.map(Vec::into_iter);

        let mut out = Vec::with_capacity(assertions.len());
        let mut used: Vec<(String, Vec<u8>)> = Vec::new();
        let now = now_ms();
        for ((a, item), skip) in assertions.into_iter().zip(items).zip(counterless) {
            let (verdict, facts, cred) = match item {
                Item::Done(v, c) => (v, None, c),
                Item::Verified(profile, c, v) => {
                    let counter = if !v.is_valid() {
                        Ok(CounterCheck::NotChecked)
                    } else if skip {
                        // Stored 0, received 0: nothing to compare or write.
                        Ok(CounterCheck::Ok)
                    } else {
                        let received = v.authenticator.map_or(0, |f| f.sign_count);
                        match counters.as_mut().map(|it| it.next()) {
                            Ok(Some(Counted::Store(CounterResult::Advanced))) => {
                                if received != 0 {
                                    c.mark_counted();
                                }
                                Ok(CounterCheck::Ok)
                            }
                            Ok(Some(Counted::Store(CounterResult::Regressed { stored }))) => {
                                Ok(CounterCheck::Regressed { stored, received })
                            }
                            Ok(Some(Counted::Store(CounterResult::Revoked))) => {
                                Err(deny(ReasonCode::CredentialRevoked, "the credential was revoked"))
                            }
                            Ok(Some(Counted::Store(CounterResult::NotFound))) => {
                                Err(deny(ReasonCode::CredentialNotFound, "the credential was deleted"))
                            }
                            Ok(Some(Counted::Journal(Deferred::Accepted))) => {
                                if received != 0 {
                                    c.mark_counted();
                                }
                                Ok(CounterCheck::Deferred)
                            }
                            Ok(Some(Counted::Journal(Deferred::Regressed { stored }))) => Ok(CounterCheck::Regressed { stored, received }),
                            Ok(Some(Counted::Journal(Deferred::Unknown))) | Ok(None) | Err(_) => {
                                Err(deny(ReasonCode::StoreUnavailable, "the signature counter could not be checked; retry"))
                            }
                        }
                    };
                    let verdict = match counter {
                        Ok(counter) => {
                            let facts = CredentialFacts { backup_eligible: c.backup_eligible, attested: c.attested, aaguid: c.aaguid };
                            evaluate(&profile, &v, &facts, counter, &context(a.context.as_ref()))
                        }
                        Err(v) => v,
                    };
                    (verdict, v.authenticator, Some(c))
                }
            };
            telemetry::verdict(&verdict);
            if let Some(c) = &cred
                && verdict.decision != Decision::Deny
                && c.claim_touch(now, self.last_used_window_ms)
            {
                used.push((a.rp_id, a.credential_id));
            }
            out.push(to_pb(a.request_id, verdict, facts, cred.as_deref()));
        }
        if !used.is_empty() {
            self.last_used.lock().extend(used);
        }
        out
    }

    /// Both phases, for a caller allowed every relying party.
    pub async fn verify_batch(&self, assertions: Vec<pb::Assertion>) -> Result<Vec<pb::Verdict>, tonic::Status> {
        self.verify_batch_for(assertions, &RpScope::All).await
    }

    /// Both phases, for a caller allowed the relying parties in `scope`.
    pub async fn verify_batch_for(&self, assertions: Vec<pb::Assertion>, scope: &RpScope) -> Result<Vec<pb::Verdict>, tonic::Status> {
        let checked = self.verify(assertions, scope).await?;
        Ok(self.decide(checked).await)
    }

    /// One store round trip for the batch's counters, behind any updates
    /// queued during an outage. If the store does not answer, the journal
    /// (when enabled) checks what it can.
    async fn check_counters(&self, updates: Vec<CounterUpdate>) -> Result<Vec<Counted>, assertd_store::StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let queued = self.journal.as_ref().map(|j| j.lock().take_queue()).unwrap_or_default();
        let n_queued = queued.len();
        let mut all = queued;
        all.extend(updates.iter().cloned());
        let started = std::time::Instant::now();
        let r = self.cache.store().advance_sign_counts(all.clone(), now_ms()).await;
        self.set_store_up(!matches!(r, Err(assertd_store::StoreError::Unavailable(_))));
        telemetry::store_duration("advance_sign_counts", started.elapsed());
        match r {
            Ok(results) => {
                if let Some(j) = &self.journal {
                    j.lock().learn(&all, &results);
                }
                self.report_flushed(&results[..n_queued]);
                Ok(results[n_queued..].iter().map(|r| Counted::Store(*r)).collect())
            }
            Err(e) => {
                telemetry::store_error("advance_sign_counts");
                tracing::warn!(error = %e, "sign count update failed");
                let Some(j) = &self.journal else { return Err(e) };
                let mut j = j.lock();
                j.requeue(all[..n_queued].to_vec());
                let checked = j.defer(&updates);
                telemetry::deferred_queue(j.queued());
                Ok(checked.into_iter().map(Counted::Journal).collect())
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
    pub async fn flush_deferred(&self) {
        let Some(j) = &self.journal else { return };
        let queued = j.lock().take_queue();
        if queued.is_empty() {
            return;
        }
        match self.cache.store().advance_sign_counts(queued.clone(), now_ms()).await {
            Ok(results) => {
                j.lock().learn(&queued, &results);
                self.report_flushed(&results);
            }
            Err(_) => j.lock().requeue(queued),
        }
    }

    /// Writes `last_used_at` for the credentials claimed since the last
    /// flush: one store call for all of them. A failed write is retried at
    /// the next flush.
    pub async fn flush_last_used(&self) {
        let keys: Vec<(String, Vec<u8>)> = self.last_used.lock().drain().collect();
        if keys.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let touched = self.cache.store().touch(keys.clone(), now_ms()).await;
        telemetry::store_duration("touch", started.elapsed());
        if let Err(e) = touched {
            telemetry::store_error("touch");
            tracing::warn!(error = %e, "last_used_at update failed; will retry");
            self.last_used.lock().extend(keys);
        }
    }

    /// Stores a credential and drops it from the cache.
    pub async fn put(&self, record: StoredCredential) -> Result<StoredCredential, assertd_store::StoreError> {
        let (rp, id) = (record.rp_id.clone(), record.credential_id.clone());
        let stored = self.cache.store().put_many(vec![record]).await;
        // Drop even on error: the write may have landed.
        self.cache.invalidate(&rp, &id).await;
        stored.map(|mut v| v.remove(0))
    }

    /// Revokes a credential and drops it from the cache.
    pub async fn revoke(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, assertd_store::StoreError> {
        let r = self.cache.store().revoke(rp_id, credential_id).await;
        self.cache.invalidate(rp_id, credential_id).await;
        r
    }
}

/// The gateway's sign-in context, as policy reads it.
fn context(c: Option<&pb::SignInContext>) -> SignInContext {
    let Some(c) = c else { return SignInContext::default() };
    SignInContext {
        device_compliant: c.device_compliant,
        trusted_network: c.trusted_network,
        upstream_risk: match c.upstream_risk() {
            pb::RiskLevel::Unspecified => RiskLevel::Unspecified,
            pb::RiskLevel::Low => RiskLevel::Low,
            pb::RiskLevel::Medium => RiskLevel::Medium,
            pb::RiskLevel::High => RiskLevel::High,
        },
    }
}

fn to_pb(request_id: String, v: Verdict, facts: Option<AuthenticatorFacts>, cred: Option<&CachedCredential>) -> pb::Verdict {
    let authenticator = (facts.is_some() || cred.is_some()).then(|| {
        let mut info = pb::AuthenticatorInfo::default();
        if let Some(f) = facts {
            info.sign_count = f.sign_count;
            info.user_present = f.flags.user_present();
            info.user_verified = f.flags.user_verified();
            info.backup_eligible = f.flags.backup_eligible();
            info.backup_state = f.flags.backup_state();
            info.set_kind(if f.flags.backup_eligible() { pb::CredentialKind::Synced } else { pb::CredentialKind::DeviceBound });
        }
        if let Some(c) = cred {
            info.aaguid = c.aaguid.to_vec();
            info.user_handle = c.user_handle.to_vec();
        }
        info
    });
    let mut out = pb::Verdict {
        request_id,
        risk_score: v.risk_score,
        reasons: v.reasons.into_iter().map(|f| pb::Reason { code: f.code.as_i32(), message: f.message }).collect(),
        retryable: v.retryable,
        authenticator,
        ..Default::default()
    };
    out.set_decision(match v.decision {
        Decision::Allow => pb::Decision::Allow,
        Decision::StepUp => pb::Decision::StepUp,
        Decision::Deny => pb::Decision::Deny,
    });
    out
}
