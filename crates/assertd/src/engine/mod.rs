//! The batch engine: field checks, credential lookups through the key cache,
//! verification on the rayon pool, one counter compare-and-set round trip
//! per batch, then policy. It speaks domain types ([`AssertionRequest`] in,
//! [`Outcome`] out) and its own error type; protobuf and gRPC statuses stay
//! at the edge (`convert`, `status`).
//!
//! # One assertion, top-down
//!
//! 1. `service::VerificationSvc::verify_assertions`, behind the tower stack
//!    (`stack`: request id, metrics, deadline, shedding, authentication),
//!    moves each `pb::Assertion` into an [`AssertionRequest`]
//!    (`convert::assertion`), admits the batch ([`Admission::admit`]) and
//!    calls [`Engine::verify`], then [`Engine::decide`].
//! 2. [`Engine::verify`] → [`fields::target`]: sizes, the caller's grant,
//!    relying party and profile → [`Stage::Targeted`] (or `Rejected`).
//! 3. → [`Engine::resolve`]: one coalesced `KeyCache::get` per distinct
//!    credential, read by [`assess::found`] → [`Stage::Resolved`].
//! 4. → [`pool::verify`] on the rayon pool: [`assess::verify`] →
//!    `assertd_verify::verify` (§7.2 steps 6–21 (credential record …
//!    signature); the signature with ring) → [`Stage::Verified`].
//! 5. [`Engine::decide`] → [`Counters::settle`]: one `settle_sign_ins`
//!    round trip for the batch, one transaction: the sign counts (§7.2 step
//!    22 (signCount)), read by [`assess::counter`], and the single use of every
//!    server-issued challenge whose assertion's signature verified
//!    (`challenges::uses`) → [`Stage::Counted`].
//! 6. → [`Engine::judge`]: [`assess::judge`] → `assertd_policy::evaluate`
//!    (profile, risk); then `challenges::apply`: a replayed challenge
//!    becomes `CHALLENGE_REPLAYED`, an unrecorded use a retryable verdict →
//!    [`Outcome`]; the `last_used_at` write is claimed, unless the item's
//!    stored count wrote it.
//! 7. Back in the service, `convert::verdict` turns each [`Outcome`] into a
//!    `pb::Verdict`, in request order.
//!
//! A stream runs stages 2–4 for up to four messages at once and stages 5–6
//! one message at a time, in order.

pub mod admission;
pub mod assess;
mod challenges;
pub mod counters;
mod credentials;
pub mod fields;
pub mod item;
pub mod journal;
pub mod last_used;
pub mod pool;
pub mod register;
pub mod user_risk;

pub use admission::{Admission, Admitted, RpcSlot};
pub use counters::Counters;
pub use item::{AssertionRequest, Item, Outcome, Resolved, Stage};
pub use register::{RegistrationOutcome, RegistrationRequest};

use crate::authz::Grant;
use crate::config::{IssuedChallenges, Limits, Reloadable};
use crate::telemetry;
use arc_swap::ArcSwap;
use assertd_policy::{CounterCheck, Decision, ReasonCode, SignInContext, Verdict};
use assertd_store::{CachedCredential, KeyCache};
use assertd_verify::AuthenticatorFacts;
use futures_util::future::join_all;
use journal::Journal;
use last_used::LastUsed;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why the engine could not evaluate a batch at all (a rejected assertion
/// is a verdict, not an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The verification pool dropped the batch (a task panicked).
    #[error("verification worker failed")]
    PoolFailed,
    /// The admission budget was closed (a bug: it never is).
    #[error("admission closed")]
    AdmissionClosed,
    /// Registrations hold their whole share of the pool, and none freed in
    /// time (RESOURCE_EXHAUSTED, with pushback).
    #[error("registrations hold their share of the verification pool: retry shortly")]
    RegistrationsBusy,
}

/// The verification engine shared by the gRPC services.
pub struct Engine {
    policy: ArcSwap<Reloadable>,
    admission: Admission,
    /// Registrations on the pool at once: their share (see
    /// [`register::share`]), so a flood of them cannot starve sign-ins.
    registrations: Arc<tokio::sync::Semaphore>,
    counters: Counters,
    last_used: LastUsed,
    cache: KeyCache,
    pool: Arc<rayon::ThreadPool>,
    limits: Limits,
    user_risks: user_risk::UserRisks,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("relying_parties", &self.policy.load().rps.len())
            .field("threads", &self.pool.current_num_threads())
            .finish_non_exhaustive()
    }
}

/// A batch after [`Engine::verify`]: every item verified or rejected.
#[derive(Debug)]
pub struct Checked {
    items: Vec<Item>,
    /// The issued-challenge settings the batch was verified under.
    issued: Option<Arc<IssuedChallenges>>,
}

/// One item after policy, before its outcome: what `decide` still needs.
pub(super) struct Judged {
    pub(super) request: AssertionRequest,
    pub(super) verdict: Verdict,
    pub(super) authenticator: Option<AuthenticatorFacts>,
    pub(super) credential: Option<Arc<CachedCredential>>,
    /// The profile accepts the BE upgrade the item reports.
    pub(super) upgrade: bool,
    /// Its counter write stored the use's `last_used_at` already.
    pub(super) use_recorded: bool,
}

/// How long a challenge use is kept past the moment its challenge stops
/// opening: a replica whose clock runs behind by less than this still finds
/// the use recorded (and one whose clock runs ahead cannot prune early on
/// PostgreSQL, which prunes by the earlier of both clocks).
pub const PRUNE_MARGIN_MS: i64 = 10 * 60 * 1000;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Engine {
    /// An engine over the given policy, cache and pool. With `journal`,
    /// counters of credentials this replica has seen are checked against its
    /// memory while the store is unreachable (see [`journal`]).
    pub fn new(policy: Reloadable, cache: KeyCache, pool: Arc<rayon::ThreadPool>, limits: Limits, journal: Option<Journal>) -> Self {
        Self {
            policy: ArcSwap::from_pointee(policy),
            admission: Admission::new(&limits, pool.current_num_threads()),
            registrations: Arc::new(tokio::sync::Semaphore::new(register::share(pool.current_num_threads()))),
            counters: Counters::new(journal),
            last_used: LastUsed::new(std::time::Duration::from_secs(60)),
            cache,
            pool,
            limits,
            user_risks: user_risk::UserRisks::default(),
        }
    }

    /// Writes `last_used_at` at most once per credential per `interval`
    /// (default 60 s).
    #[must_use]
    pub fn with_last_used_interval(mut self, interval: std::time::Duration) -> Self {
        self.last_used = LastUsed::new(interval);
        self
    }

    /// Swaps in a new reloadable configuration (relying parties, profiles,
    /// callers, challenge keys, trust) atomically. Batches already running
    /// finish under the configuration they started with.
    pub fn set_reloadable(&self, policy: Reloadable) {
        self.policy.store(Arc::new(policy));
    }

    /// The reloadable configuration in force.
    pub fn reloadable(&self) -> arc_swap::Guard<Arc<Reloadable>> {
        self.policy.load()
    }

    /// The key cache.
    pub fn cache(&self) -> &KeyCache {
        &self.cache
    }

    /// The admission budgets.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Request-level limit on batch size.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `limits.max_batch_size`.
    pub fn max_batch_size(&self) -> usize {
        self.limits.max_batch_size
    }

    /// Records whether the store answers (from the health watcher's pings).
    pub fn set_store_up(&self, up: bool) {
        self.counters.set_store_up(up);
    }

    /// Both phases, for a caller allowed every relying party.
    pub async fn verify_batch(&self, requests: Vec<AssertionRequest>) -> Result<Vec<Outcome>, EngineError> {
        self.verify_batch_for(requests, &Grant::open()).await
    }

    /// Both phases, for a caller with `grant`.
    pub async fn verify_batch_for(&self, requests: Vec<AssertionRequest>, grant: &Grant) -> Result<Vec<Outcome>, EngineError> {
        let checked = self.verify(requests, grant).await?;
        Ok(self.decide(checked).await)
    }

    /// Phase one (any number of batches at once): field checks, credential
    /// lookups, verification on the pool. Assertions for relying parties
    /// outside the caller's `grant` get `RP_NOT_AUTHORIZED`, for profiles
    /// outside it `PROFILE_NOT_AUTHORIZED`.
    pub async fn verify(&self, requests: Vec<AssertionRequest>, grant: &Grant) -> Result<Checked, EngineError> {
        telemetry::batch_size(requests.len());
        let policy = self.policy.load();
        let mut items: Vec<Item> = requests
            .into_iter()
            .map(|request| {
                let stage = match fields::target(&policy, grant, &self.limits, &request) {
                    Ok((rp, profile)) => Stage::Targeted(rp, profile),
                    Err(v) => Stage::Rejected(v),
                };
                Item { request, stage }
            })
            .collect();
        self.resolve(&mut items).await;
        let issued = policy.challenges.clone();
        let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
        let (items, verified, spent) = pool::verify(&self.pool, items, issued.clone(), now).await?;
        self.admission.record_cost(verified, spent);
        Ok(Checked { items, issued })
    }

    /// Stage 2: one lookup per distinct (rp, credential) among the targeted
    /// items (concurrent misses of one key share a store read in the cache).
    pub async fn resolve(&self, items: &mut [Item]) {
        let mut index: HashMap<(&str, &[u8]), usize> = HashMap::new();
        let mut keys: Vec<(&str, &[u8])> = Vec::new();
        let mut slots: Vec<Option<usize>> = Vec::with_capacity(items.len());
        for item in items.iter() {
            slots.push(matches!(item.stage, Stage::Targeted(..)).then(|| {
                let key = item.request.credential_key();
                *index.entry(key).or_insert_with(|| {
                    keys.push(key);
                    keys.len() - 1
                })
            }));
        }
        let started = std::time::Instant::now();
        let lookups = join_all(keys.iter().map(|(rp, id)| self.cache.get(rp, id))).await;
        if lookups.iter().any(|(_, hit)| !hit) {
            // The batch's misses, read concurrently: one observation.
            telemetry::store_duration("get", started.elapsed());
        }
        for (lookup, hit) in &lookups {
            telemetry::cache_lookup(*hit);
            if let assertd_store::Lookup::Unavailable(e) = lookup {
                telemetry::store_error("get");
                tracing::warn!(error = %e, "credential lookup failed");
            }
        }
        for (item, slot) in items.iter_mut().zip(slots) {
            let Some(slot) = slot else { continue };
            item.advance(|stage| match stage {
                Stage::Targeted(rp, profile) => match assess::found(&lookups[slot].0) {
                    Ok(credential) => Stage::Resolved(Resolved { rp, profile, credential }),
                    Err(verdict) => Stage::Rejected(verdict),
                },
                other => other,
            });
        }
    }

    /// Phase two (one batch at a time, in order): the counter round trip
    /// (with the single use of server-issued challenges), then policy. One
    /// outcome per assertion, in request order.
    pub async fn decide(&self, checked: Checked) -> Vec<Outcome> {
        let Checked { mut items, issued } = checked;
        if !self.user_risks.loaded() {
            // Fail closed before anything is written: a verdict that cannot
            // know its user's flag is retryable, and has changed nothing.
            for item in &mut items {
                item.advance(|stage| match stage {
                    Stage::Verified(..) => Stage::Rejected(item::deny(
                        ReasonCode::StoreUnavailable,
                        "the users flagged at risk could not be read from the store yet; retry",
                    )),
                    other => other,
                });
            }
        }
        let uses = issued.as_deref().map(|i| challenges::uses(i, &items)).unwrap_or_default();
        let fresh = self.counters.settle(&self.cache, &mut items, &uses).await;
        let now = now_ms();
        let policy = self.policy.load();
        let metadata = policy.metadata.as_ref().map(|m| &m.metadata);
        let mut judged: Vec<Judged> = items
            .into_iter()
            .map(|Item { request, stage }| {
                let upgrade = Self::asks_backup_eligibility_upgrade(&stage);
                // A count stored (received > 0, accepted) wrote the row's
                // `last_used_at` with it: no separate write for this use.
                let use_recorded =
                    matches!(&stage, Stage::Counted(_, v, Ok(CounterCheck::Ok)) if v.authenticator.is_some_and(|f| f.sign_count > 0));
                let mut context = request.context;
                if let Stage::Counted(r, _, _) = &stage {
                    // The flag of the credential's user, as this replica
                    // knows it now.
                    context.user_risk = self.user_risks.level(&request.rp_id, &r.credential.user_handle, now);
                }
                let (verdict, authenticator, credential) = Self::judge(stage, &context, metadata);
                Judged { request, verdict, authenticator, credential, upgrade, use_recorded }
            })
            .collect();
        challenges::apply(&mut judged, &uses, fresh);
        let mut claimed = Vec::new();
        let mut upgrades = Vec::new();
        let outcomes = judged
            .into_iter()
            .map(|Judged { request, verdict, authenticator, credential, upgrade, use_recorded, .. }| {
                telemetry::verdict(&verdict);
                // Only an allowed sign-in records a BE upgrade.
                if upgrade && verdict.decision == Decision::Allow {
                    upgrades.push((request.rp_id.clone(), request.credential_id.clone()));
                }
                if let Some(c) = &credential
                    && verdict.decision != Decision::Deny
                    && !use_recorded
                    && self.last_used.claim(c, now)
                {
                    claimed.push((request.rp_id, request.credential_id));
                }
                Outcome { request_id: request.request_id, verdict, authenticator, credential }
            })
            .collect();
        self.last_used.queue(claimed);
        if !upgrades.is_empty() {
            self.record_upgrades(upgrades).await;
        }
        outcomes
    }

    /// Forgets recorded challenge uses whose challenges expired more than
    /// [`PRUNE_MARGIN_MS`] ago (by this replica's clock and, on PostgreSQL,
    /// the database's).
    pub async fn prune_challenges(&self) {
        if let Err(e) = self.cache.store().prune_challenges(now_ms(), PRUNE_MARGIN_MS).await {
            telemetry::store_error("prune_challenges");
            tracing::warn!(error = %e, "pruning used challenges failed");
        }
    }

    /// Whether a counted item's profile accepts the BE change it reports
    /// (false to true under `allow_upgrade`).
    fn asks_backup_eligibility_upgrade(stage: &Stage) -> bool {
        match stage {
            Stage::Counted(r, v, Ok(_)) if v.is_valid() => v
                .authenticator
                .is_some_and(|f| r.profile.accepts_backup_eligibility_upgrade(r.credential.backup_eligible, f.flags.backup_eligible())),
            _ => false,
        }
    }

    /// Records accepted BE upgrades of allowed sign-ins, and drops the
    /// cached facts they change. A failed write is logged; the next sign-in
    /// asks again.
    async fn record_upgrades(&self, keys: Vec<(String, Vec<u8>)>) {
        if let Err(e) = self.cache.store().set_backup_eligible(keys.clone()).await {
            telemetry::store_error("set_backup_eligible");
            tracing::warn!(error = %e, "recording a BE upgrade failed; the next sign-in records it");
        }
        for (rp, id) in &keys {
            self.cache.invalidate(rp, id).await;
        }
    }

    /// Stage 5: the verdict on one item. The credential comes back only when
    /// the signature verified with its key.
    pub fn judge(
        stage: Stage,
        ctx: &SignInContext,
        metadata: Option<&assertd_verify::metadata::Metadata>,
    ) -> (Verdict, Option<AuthenticatorFacts>, Option<Arc<CachedCredential>>) {
        match stage {
            Stage::Rejected(verdict) => (verdict, None, None),
            Stage::Counted(r, v, counter) => {
                let verdict = assess::judge(&r.profile, &r.credential, &v, counter, ctx, metadata);
                (verdict, v.authenticator, v.signature_verified().then_some(r.credential))
            }
            // Unreachable: every stage ran. Fail closed anyway.
            Stage::Targeted(..) | Stage::Resolved(_) | Stage::Verified(..) => {
                (item::deny(ReasonCode::InvalidRequest, "internal: the item did not go through every stage"), None, None)
            }
        }
    }

    /// Sends counter updates queued during a store outage, when no batch
    /// came to carry them.
    pub async fn flush_deferred(&self) {
        self.counters.flush_deferred(&self.cache).await;
    }

    /// Writes `last_used_at` for the credentials claimed since the last
    /// flush, [`last_used::CHUNK`] per store call.
    pub async fn flush_last_used(&self) {
        self.last_used.flush(self.cache.store().as_ref(), now_ms()).await;
    }
}
