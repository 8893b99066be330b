//! The recorders: one function per event, each naming its metric from the
//! catalogue. Nothing here knows the server's types.

use super::catalogue::*;
use assertd_policy::Verdict;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::series::Series;

static ASSERTIONS_BY_DECISION: Series<Counter> = Series::new();
/// A reason series: code, and the decision of the verdict that gave it.
static REASONS_BY_CODE: Series<Counter, (&'static str, &'static str)> = Series::new();
static CACHE_LOOKUPS_BY_RESULT: Series<Counter> = Series::new();
static VERIFY_DURATION_BY_ALG: Series<Histogram> = Series::new();
static BATCH_SIZES: Series<Histogram> = Series::new();
static POOL_QUEUE_DEPTH: Series<Gauge> = Series::new();
static STORE_DURATION_BY_OP: Series<Histogram> = Series::new();
static RPCS_BY_CALL: Series<Counter, (&'static str, tonic::Code)> = Series::new();
static RPC_DURATION_BY_CALL: Series<Histogram, (&'static str, tonic::Code)> = Series::new();
/// A report-only series: RP, profile, decision, changed.
type ReportOnlyKey = (Arc<str>, Arc<str>, &'static str, bool);
static REPORT_ONLY_BY_PROFILE: Series<Counter, ReportOnlyKey> = Series::new();
/// A sign-in series: RP, profile, kind, decision.
type SignInKey = (Box<str>, Box<str>, &'static str, &'static str);
static SIGN_INS: Series<Counter, SignInKey> = Series::new();

/// Forgets every series handle: [`super::install`] calls it, so no handle
/// outlives the recorder it came from.
pub(super) fn clear_series() {
    ASSERTIONS_BY_DECISION.clear();
    REASONS_BY_CODE.clear();
    CACHE_LOOKUPS_BY_RESULT.clear();
    VERIFY_DURATION_BY_ALG.clear();
    BATCH_SIZES.clear();
    POOL_QUEUE_DEPTH.clear();
    STORE_DURATION_BY_OP.clear();
    RPCS_BY_CALL.clear();
    RPC_DURATION_BY_CALL.clear();
    REPORT_ONLY_BY_PROFILE.clear();
    SIGN_INS.clear();
}

/// Counts one verdict.
pub fn verdict(v: &Verdict) {
    let decision = v.decision.as_str();
    ASSERTIONS_BY_DECISION.with(decision, || counter!(ASSERTIONS.name, "decision" => decision), |c| c.increment(1));
    for r in &v.reasons {
        let code = r.code.as_str();
        REASONS_BY_CODE.with((code, decision), || counter!(REASONS.name, "code" => code, "decision" => decision), |c| c.increment(1));
    }
}

/// Counts one sign-in with a known credential (labels from the config:
/// bounded).
pub fn sign_in(rp: &str, profile: &str, kind: &'static str, decision: &'static str) {
    SIGN_INS.with_matching(
        |k| k.2 == kind && k.3 == decision && &*k.0 == rp && &*k.1 == profile,
        || (rp.into(), profile.into(), kind, decision),
        || counter!(SIGN_INS_BY_KIND.name, "rp" => rp.to_owned(), "profile" => profile.to_owned(), "kind" => kind, "decision" => decision),
        |c| c.increment(1),
    );
}

/// Counts one report-only verdict (labels from the config: bounded).
pub fn report_only(rp: &Arc<str>, profile: &Arc<str>, decision: &'static str, changed: bool) {
    let key = (rp.clone(), profile.clone(), decision, changed);
    let register = || {
        let changed = if changed { "true" } else { "false" };
        counter!(REPORT_ONLY.name, "rp" => rp.to_string(), "profile" => profile.to_string(), "decision" => decision, "changed" => changed)
    };
    REPORT_ONLY_BY_PROFILE.with(key, register, |c| c.increment(1));
}

/// The adoption gauges of one relying party: credentials per
/// (kind, attested), users per strongest class; combinations absent from
/// the counts are set to 0.
pub fn adoption(rp: &str, credentials: &[((&'static str, &'static str), u64)], users: &[(&'static str, u64)]) {
    for ((kind, attested), n) in credentials {
        gauge!(CREDENTIALS.name, "rp" => rp.to_owned(), "kind" => *kind, "attested" => *attested).set(*n as f64);
    }
    for (class, n) in users {
        gauge!(USERS_BY_STRONGEST.name, "rp" => rp.to_owned(), "class" => *class).set(*n as f64);
    }
}

/// Counts one registration verdict.
pub fn registration(v: &Verdict, attestation: Option<&assertd_verify::AttestationReport>, kind: &'static str) {
    let format = attestation.and_then(|a| assertd_verify::attestation::Format::parse(&a.format)).map_or("other", |f| f.name());
    let trust = match attestation {
        Some(a) if a.trusted => "trusted",
        Some(a) if a.kind == Some(assertd_verify::attestation::AttestationType::None) => "none",
        Some(a) if a.kind.is_some() => "untrusted",
        _ => "invalid",
    };
    counter!(REGISTRATIONS.name, "decision" => v.decision.as_str(), "format" => format, "attestation" => trust, "kind" => kind)
        .increment(1);
    for r in &v.reasons {
        counter!(REGISTRATION_REASONS.name, "code" => r.code.as_str()).increment(1);
    }
}

/// Counts one credential record update of an allowed sign-in
/// (`backed_up`, `not_backed_up`, `uv_initialized`).
pub fn state_update(change: &'static str) {
    counter!(STATE_UPDATES.name, "change" => change).increment(1);
}

/// Counts a temporary access pass event (`issued`, `revoked`, `redeemed`,
/// `registered`, `refused`).
pub fn access_pass(event: &'static str) {
    counter!(ACCESS_PASSES.name, "event" => event).increment(1);
}

/// Counts SETs pushed to a Shared Signals receiver, by outcome.
pub fn ssf_delivery(receiver: &str, outcome: &'static str, n: u64) {
    counter!(SSF_DELIVERIES.name, "receiver" => receiver.to_owned(), "outcome" => outcome).increment(n);
}

/// A receiver's series, at 0 from the start (an alert's `increase` then
/// sees the first SET lost).
pub fn ssf_receiver(receiver: &str) {
    for outcome in ["delivered", "rejected", "retried", "abandoned", "skipped"] {
        ssf_delivery(receiver, outcome, 0);
    }
    ssf_state(receiver, false, 0);
}

/// A receiver's backlog and whether this replica delivers to it.
pub fn ssf_state(receiver: &str, delivering: bool, backlog: i64) {
    gauge!(SSF_LEASE.name, "receiver" => receiver.to_owned()).set(if delivering { 1.0 } else { 0.0 });
    gauge!(SSF_BACKLOG.name, "receiver" => receiver.to_owned()).set(backlog.max(0) as f64);
}

/// Counts a user's flag cleared by a passkey sign-in.
pub fn user_risk_remediated() {
    counter!(USER_RISK_REMEDIATIONS.name).increment(1);
}

/// Counts an issued challenge.
pub fn challenge_issued() {
    counter!(CHALLENGES_ISSUED.name).increment(1);
}

/// Records a batch's size.
pub fn batch_size(n: usize) {
    BATCH_SIZES.with("", || histogram!(BATCH_SIZE.name), |h| h.record(n as f64));
}

/// Counts a cache lookup.
pub fn cache_lookup(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    CACHE_LOOKUPS_BY_RESULT.with(result, || counter!(CACHE_LOOKUPS.name, "result" => result), |c| c.increment(1));
}

/// Sets the cache gauges from the cache.
pub fn cache_state(cache: &assertd_store::KeyCache) {
    gauge!(CACHE_ENTRIES.name).set(cache.entry_count() as f64);
    counter!(CACHE_EVICTIONS.name).absolute(cache.evictions());
    counter!(STORE_READS.name).absolute(cache.store_reads());
}

/// Moves the pool queue gauge.
pub fn pool_queue(delta: f64) {
    POOL_QUEUE_DEPTH.with("", || gauge!(POOL_QUEUE.name), |g| g.increment(delta));
}

/// Records one verification.
pub fn verify_duration(alg: &'static str, d: Duration) {
    VERIFY_DURATION_BY_ALG.with(alg, || histogram!(VERIFY_DURATION.name, "algorithm" => alg), |h| h.record(d.as_secs_f64()));
}

/// Records a store call (and adds it to the RPC's store clock, when the
/// RPC is traced).
pub fn store_duration(op: &'static str, d: Duration) {
    STORE_DURATION_BY_OP.with(op, || histogram!(STORE_DURATION.name, "operation" => op), |h| h.record(d.as_secs_f64()));
    let _ = STORE_CLOCK.try_with(|c| c.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed));
}

tokio::task_local! {
    /// Nanoseconds spent in store calls by the RPC this task serves: set
    /// only for traced RPCs (see [`with_store_clock`]).
    static STORE_CLOCK: Arc<AtomicU64>;
}

/// Runs `fut` adding the time of every store call it makes to `clock`; with
/// `None`, just runs it (untraced RPCs pay nothing).
pub async fn with_store_clock<F: std::future::Future>(clock: Option<Arc<AtomicU64>>, fut: F) -> F::Output {
    match clock {
        Some(c) => STORE_CLOCK.scope(c, fut).await,
        None => fut.await,
    }
}

/// Counts spans the collector accepted.
pub fn trace_spans_exported(n: usize) {
    counter!(TRACE_SPANS_EXPORTED.name).increment(n as u64);
}

/// Counts dropped spans: `queue_full` or `export_failed`.
pub fn trace_spans_dropped(reason: &'static str, n: usize) {
    counter!(TRACE_SPANS_DROPPED.name, "reason" => reason).increment(n as u64);
}

/// Counts a failed store call.
pub fn store_error(op: &'static str) {
    counter!(STORE_ERRORS.name, "operation" => op).increment(1);
}

/// A gRPC status code as the gRPC spec spells it (`OK`, `CANCELLED`, ...).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether a call answered with `code` was refused rather than served
/// (shed, unauthenticated, not permitted): counted, but kept out of the
/// latency histogram, where its near-zero time would pull the quantiles
/// of served calls down exactly when the server is overloaded.
pub fn is_refusal(code: tonic::Code) -> bool {
    matches!(code, tonic::Code::ResourceExhausted | tonic::Code::Unauthenticated | tonic::Code::PermissionDenied)
}

/// Records a finished RPC: counted by its status; its latency observed
/// unless it was refused.
pub fn rpc(rpc: &'static str, code: tonic::Code, d: Duration) {
    RPCS_BY_CALL.with((rpc, code), || counter!(RPCS.name, "rpc" => rpc, "code" => code_name(code)), |c| c.increment(1));
    if !is_refusal(code) {
        RPC_DURATION_BY_CALL.with(
            (rpc, code),
            || histogram!(RPC_DURATION.name, "rpc" => rpc, "code" => code_name(code)),
            |h| {
                h.record(d.as_secs_f64());
            },
        );
    }
}

/// Sets `assertd_build_info` (always 1) with the version and commit.
pub fn build_info() {
    gauge!(BUILD_INFO.name, "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("ASSERTD_COMMIT")).set(1.0);
}

/// Counts a TLS reload.
pub fn tls_reload(ok: bool) {
    counter!(TLS_RELOADS.name, "result" => if ok { "ok" } else { "failed" }).increment(1);
}

/// Sets the certificate expiry gauge.
pub fn tls_certificate_expiry(unix_seconds: i64) {
    gauge!(TLS_EXPIRY.name).set(unix_seconds as f64);
}

/// Counts a failed TLS handshake.
pub fn tls_handshake_failed(reason: &'static str) {
    counter!(TLS_HANDSHAKE_FAILURES.name, "reason" => reason).increment(1);
}

/// Sets the store-up gauge.
pub fn store_up(up: bool) {
    gauge!(STORE_UP.name).set(if up { 1.0 } else { 0.0 });
}

/// Sets the deferred-queue gauge.
pub fn deferred_queue(n: usize) {
    gauge!(DEFERRED_QUEUE.name).set(n as f64);
}

/// Counts queued updates flushed, and those refused.
pub fn deferred_flushed(n: usize, conflicts: usize) {
    counter!(DEFERRED_FLUSHED.name).increment(n as u64);
    counter!(DEFERRED_CONFLICTS.name).increment(conflicts as u64);
}

/// Creates, at 0, the counter series alerts take `increase()` or `rate()`
/// of: a series first exported at its first event would read an increase
/// of 0, and the alert would miss that event (a failed reload, a conflict,
/// the first refusals or denies).
pub fn series_at_zero() {
    for result in ["ok", "failed"] {
        counter!(CONFIG_RELOADS.name, "result" => result).increment(0);
    }
    counter!(DEFERRED_CONFLICTS.name).increment(0);
    gauge!(DEFERRED_QUEUE.name).set(0.0);
    for reason in [
        "overloaded",
        "request_bytes",
        "registration_share",
        "batch_too_large",
        "message_too_large",
        "unauthenticated",
        "permission_denied",
    ] {
        counter!(REJECTED.name, "reason" => reason).increment(0);
    }
    for decision in ["allow", "step_up", "deny"] {
        counter!(ASSERTIONS.name, "decision" => decision).increment(0);
    }
    // The verification objective's calls and failures (the burn-rate alerts).
    for rpc in ["VerifyAssertions", "VerifyAssertionsStream"] {
        for code in ["OK", "INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS"] {
            counter!(RPCS.name, "rpc" => rpc, "code" => code).increment(0);
        }
    }
}

/// Counts a refused RPC.
pub fn rejected(reason: &'static str) {
    counter!(REJECTED.name, "reason" => reason).increment(1);
}

/// Counts a config reload.
pub fn config_reload(ok: bool) {
    counter!(CONFIG_RELOADS.name, "result" => if ok { "ok" } else { "failed" }).increment(1);
    if ok {
        config_reloaded();
    }
}

/// Counts a metadata file refused for an older serial.
pub fn metadata_refused() {
    counter!(METADATA_REFUSED.name, "reason" => "older_serial").increment(1);
}

/// Stamps the last successful config load.
pub(super) fn config_reloaded() {
    gauge!(CONFIG_LAST_RELOAD.name)
        .set(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
}

/// Tracks one RPC in flight while alive.
pub struct InFlight;

impl InFlight {
    /// Marks an RPC started.
    pub fn start() -> Self {
        gauge!(IN_FLIGHT.name).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT.name).decrement(1.0);
    }
}

/// Counts a connection a listener closed at accept (`listener`: `metrics`
/// or `health`), because `limits.max_probe_connections` were open.
pub fn listener_refused(listener: &'static str) {
    counter!(LISTENER_REFUSED.name, "listener" => listener).increment(1);
}

/// Counts a failed `accept` (`listener`: `grpc`, `metrics` or `health`);
/// the caller backs off.
pub fn accept_failed(listener: &'static str, e: &std::io::Error) {
    tracing::warn!(listener, error = %e, "accept failed; backing off");
    counter!(ACCEPT_FAILURES.name, "listener" => listener).increment(1);
}

/// The admission's state at scrape time.
pub fn admission_state(queue_wait: Duration, target: Duration, request_bytes: u64) {
    gauge!(QUEUE_WAIT.name).set(queue_wait.as_secs_f64());
    gauge!(QUEUE_WAIT_TARGET.name).set(target.as_secs_f64());
    gauge!(REQUEST_BYTES_IN_FLIGHT.name).set(request_bytes as f64);
}

/// The loaded FIDO metadata at scrape time.
pub fn metadata_state(number: u64, next_update_unix: u64, models: usize, stale: bool) {
    gauge!(METADATA_NUMBER.name).set(number as f64);
    gauge!(METADATA_NEXT_UPDATE.name).set(next_update_unix as f64);
    gauge!(METADATA_MODELS.name).set(models as f64);
    gauge!(METADATA_STALE.name).set(if stale { 1.0 } else { 0.0 });
}

/// Whether the store's change feed is connected.
pub fn change_feed_up(up: bool) {
    gauge!(CHANGE_FEED_UP.name).set(if up { 1.0 } else { 0.0 });
}

/// The process, as sampled at scrape time (each figure when known).
#[derive(Debug, Default, Clone, Copy)]
pub struct Process {
    /// User and system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, bytes.
    pub resident_bytes: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<usize>,
    /// The descriptor limit.
    pub max_fds: Option<f64>,
}

/// Sets the process gauges from a sample.
pub fn process_state(p: Process) {
    if let Some(v) = p.cpu_seconds {
        gauge!(PROCESS_CPU.name).set(v);
    }
    if let Some(v) = p.resident_bytes {
        gauge!(PROCESS_RSS.name).set(v);
    }
    if let Some(v) = p.open_fds {
        gauge!(PROCESS_OPEN_FDS.name).set(v as f64);
    }
    if let Some(v) = p.max_fds {
        gauge!(PROCESS_MAX_FDS.name).set(v);
    }
}
