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
//!    (`convert::assertion`) and calls [`Engine::verify_assertions`], the
//!    RPC's one entry point: the batch's size, its admission
//!    ([`Admission::admit`]), then [`Engine::check`] and [`Engine::decide`].
//!    (A stream message goes through [`Engine::check_stream_message`], then
//!    [`Engine::decide`].)
//! 2. [`Engine::check`] → [`fields::target`]: sizes, the caller's grant,
//!    relying party and profile → [`Stage::Targeted`] (or `Rejected`).
//! 3. → [`Engine::resolve`]: one coalesced `KeyCache::get` per distinct
//!    credential, read by [`assess::found`] → [`Stage::Resolved`].
//! 4. → [`pool::check_signatures`] on the rayon pool (a stream message's
//!    lone short signature on the runtime thread: [`pool::Placement`]):
//!    [`assess::check_assertion`] →
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

pub mod access_pass;
pub mod admission;
pub mod assess;
pub mod begin;
mod challenges;
mod clock;
pub mod counters;
mod credentials;
mod decide;
mod error;
pub mod events;
pub mod fields;
pub mod flags;
pub mod item;
pub mod journal;
pub mod last_used;
pub mod pool;
pub mod register;
mod report_only;
pub mod unpack;
pub mod user_risk;

pub use admission::{Admission, Admitted, Call, PREVIOUS_ATTEMPTS, Refusal, RpcSlot, Shed, is_retry};
pub use clock::now_ms;
pub use counters::Counters;
pub use error::EngineError;
pub use item::{AssertionRequest, Item, Outcome, RegistrationOutcome, RegistrationRequest, ReportOnlyOutcome, Resolved, Stage};

use crate::authz::Grant;
use crate::config::{IssuedChallenges, Limits, Reloadable};
use crate::telemetry;
use arc_swap::ArcSwap;
use assertd_store::KeyCache;
use journal::Journal;
use last_used::LastUsed;
use std::sync::Arc;

/// The verification engine shared by the gRPC services.
pub struct Engine {
    policy: ArcSwap<Reloadable>,
    admission: Admission,
    /// Registrations on the pool at once: their share (see
    /// [`admission::registration_share`]), so a flood of them cannot starve sign-ins.
    registrations: Arc<tokio::sync::Semaphore>,
    counters: Counters,
    last_used: LastUsed,
    cache: KeyCache,
    pool: Arc<rayon::ThreadPool>,
    limits: Limits,
    user_risks: flags::UserRisks,
    /// Bumped when events may have been appended (watchers wait on it).
    events: tokio::sync::watch::Sender<u64>,
    /// Set when the server starts draining: watch streams end.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Watch streams open at once (each reads the log when woken).
    watchers: Arc<tokio::sync::Semaphore>,
    /// The report-only log lines' budget.
    report_only_log: report_only::LogBudget,
    /// Policy previews running (at most one).
    previews: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("relying_parties", &self.policy.load().rps.len())
            .field("threads", &self.pool.current_num_threads())
            .finish_non_exhaustive()
    }
}

/// A batch after [`Engine::check`]: every item verified or rejected.
#[derive(Debug)]
pub struct Checked {
    items: Vec<Item>,
    /// The issued-challenge settings the batch was verified under.
    issued: Option<Arc<IssuedChallenges>>,
}

/// How long a challenge use is kept past the moment its challenge stops
/// opening: a replica whose clock runs behind by less than this still finds
/// the use recorded (and one whose clock runs ahead cannot prune early on
/// PostgreSQL, which prunes by the earlier of both clocks).
pub const PRUNE_MARGIN_MS: i64 = 10 * 60 * 1000;

impl Engine {
    /// An engine over the given policy, cache and pool. With `journal`,
    /// counters of credentials this replica has seen are checked against its
    /// memory while the store is unreachable (see [`journal`]).
    pub fn new(policy: Reloadable, cache: KeyCache, pool: Arc<rayon::ThreadPool>, limits: Limits, journal: Option<Journal>) -> Self {
        Self {
            policy: ArcSwap::from_pointee(policy),
            admission: Admission::new(&limits, pool.current_num_threads()),
            registrations: Arc::new(tokio::sync::Semaphore::new(admission::registration_share(pool.current_num_threads()))),
            counters: Counters::new(journal),
            last_used: LastUsed::new(std::time::Duration::from_secs(60)),
            cache,
            pool,
            limits,
            user_risks: flags::UserRisks::default(),
            events: tokio::sync::watch::Sender::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
            watchers: Arc::new(tokio::sync::Semaphore::new(events::MAX_WATCHERS)),
            report_only_log: report_only::LogBudget::default(),
            previews: Arc::new(tokio::sync::Semaphore::new(1)),
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

    /// The verification pool (tests hold it busy to see what waits for it).
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
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

    /// `VerifyAssertions` for a caller allowed every relying party (tests,
    /// benches), without a deadline.
    pub async fn verify_batch(&self, requests: Vec<AssertionRequest>) -> Result<Vec<Outcome>, EngineError> {
        self.verify_assertions(requests, &Grant::shared_open(), Call::default()).await
    }

    /// `VerifyAssertions`, the unary RPC, end to end: the batch's size, its
    /// admission (a first attempt is refused at once when the wait for the
    /// pool would pass `limits.max_queue_wait_ms` or the call's deadline; a
    /// retry waits its turn in line, refused only past its deadline), then
    /// [`Engine::check`] and [`Engine::decide`]. One outcome per assertion,
    /// in request order.
    pub async fn verify_assertions(&self, requests: Vec<AssertionRequest>, grant: &Grant, call: Call) -> Result<Vec<Outcome>, EngineError> {
        self.check_size(requests.len())?;
        let admitted = if call.retry {
            self.admission.admit_retry(requests.len(), call.deadline).await
        } else {
            self.admission.admit(requests.len(), call.deadline)
        };
        let mut admitted = admitted.map_err(|r| Refusal::Overloaded { shed: Shed::QueueWait, retry_after: Some(r.retry_after) })?;
        let checked = self.check(requests, grant, pool::Placement::Pool).await?;
        admitted.verified();
        Ok(self.decide(checked).await)
    }

    /// One message of `VerifyAssertionsStream`, phase one: its size, its
    /// admission (waiting for room: a stream is flow controlled, not
    /// failed), then [`Engine::check`]. The stream hands the result to
    /// [`Engine::decide`], one message at a time, in order.
    pub async fn check_stream_message(&self, requests: Vec<AssertionRequest>, grant: &Grant) -> Result<Checked, EngineError> {
        self.check_size(requests.len())?;
        let mut admitted = self.admission.admit_stream(requests.len()).await;
        let checked = self.check(requests, grant, pool::Placement::Stream).await?;
        admitted.verified();
        Ok(checked)
    }

    /// INVALID_ARGUMENT beyond `limits.max_batch_size`.
    fn check_size(&self, n: usize) -> Result<(), EngineError> {
        let max = self.limits.max_batch_size;
        if n > max {
            return Err(Refusal::BatchTooLarge { n, max }.into());
        }
        Ok(())
    }

    /// Phase one (any number of batches at once): field checks, credential
    /// lookups, signatures on the pool. Assertions for relying parties
    /// outside the caller's `grant` get `RP_NOT_AUTHORIZED`, for profiles
    /// outside it `PROFILE_NOT_AUTHORIZED`. `placement`: where the
    /// signatures may be checked ([`pool::Placement`]).
    pub async fn check(&self, requests: Vec<AssertionRequest>, grant: &Grant, placement: pool::Placement) -> Result<Checked, EngineError> {
        telemetry::batch_size(requests.len());
        let policy = self.policy.load();
        let mut items: Vec<Item> = requests
            .into_iter()
            .map(|mut request| {
                let stage = match fields::target(&policy, grant, &self.limits, &mut request) {
                    Ok((rp, profile)) => Stage::Targeted(rp, profile),
                    Err(v) => Stage::Rejected(v),
                };
                Item { request, stage }
            })
            .collect();
        self.resolve(&mut items).await;
        let issued = policy.challenges.clone();
        let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
        let (items, verified, spent) = pool::check_signatures(&self.pool, items, issued.clone(), now, placement).await?;
        self.admission.record_cost(verified, spent);
        Ok(Checked { items, issued })
    }

    /// Stage 2: one lookup per distinct (rp, credential) among the targeted
    /// items; the batch's misses are one store read.
    pub async fn resolve(&self, items: &mut [Item]) {
        // One batch's keys (bounded by the batch size): foldhash, as the
        // store's per-batch maps.
        let mut index: foldhash::HashMap<(&str, &[u8]), usize> =
            foldhash::HashMap::with_capacity_and_hasher(items.len(), Default::default());
        let mut keys: Vec<(&str, &[u8])> = Vec::with_capacity(items.len());
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
        let lookups = self.cache.get_many(&keys).await;
        if lookups.iter().any(|(_, hit)| !hit) {
            // The batch's misses, read together: one observation.
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

    /// Forgets recorded challenge uses whose challenges expired more than
    /// [`PRUNE_MARGIN_MS`] ago (by this replica's clock and, on PostgreSQL,
    /// the database's), and temporary access passes past their retention.
    pub async fn prune_challenges(&self) {
        if let Err(e) = self.cache.store().prune_challenges(now_ms(), PRUNE_MARGIN_MS).await {
            telemetry::store_error("prune_challenges");
            tracing::warn!(error = %e, "pruning used challenges failed");
        }
        self.prune_events().await;
        self.prune_user_risks().await;
        // Temporary access passes, `retention_days` after they expired
        // (the default retention when passes are off: none are issued, but
        // earlier ones still age out).
        let retention = self.access_passes().map_or(30 * 86_400_000, |p| p.retention_ms);
        if let Err(e) = self.cache.store().prune_passes(now_ms().saturating_sub(retention)).await {
            telemetry::store_error("prune_passes");
            tracing::warn!(error = %e, "pruning expired temporary access passes failed");
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
