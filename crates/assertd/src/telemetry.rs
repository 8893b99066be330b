//! Metrics (Prometheus, through the `metrics` crate) and logging setup.
//!
//! Every metric is described here and documented in docs/operations.md. Label values
//! are low-cardinality: decisions, reason codes, algorithms, RPC names,
//! operations. Never ids or addresses.

use assertd_policy::Verdict;
use bytes::Bytes;
use http_body_util::Full;
use metrics::{Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// Assertions answered, by decision.
pub const ASSERTIONS: &str = "assertd_assertions_total";
/// Reasons reported in verdicts, by code.
pub const REASONS: &str = "assertd_verdict_reasons_total";
/// Assertions per request.
pub const BATCH_SIZE: &str = "assertd_batch_size";
/// RPC latency, by rpc and gRPC status code (refusals left out).
pub const RPC_DURATION: &str = "assertd_rpc_duration_seconds";
/// RPCs finished, by rpc and gRPC status code (refusals included).
pub const RPCS: &str = "assertd_rpcs_total";
/// Always 1, labelled with the version and commit.
pub const BUILD_INFO: &str = "assertd_build_info";
/// The admission's estimated wait for the pool now, seconds.
pub const QUEUE_WAIT: &str = "assertd_admission_queue_wait_seconds";
/// The admission's wait target (`limits.max_queue_wait_ms`), seconds.
pub const QUEUE_WAIT_TARGET: &str = "assertd_admission_queue_wait_target_seconds";
/// 1 while the store's change feed is connected (PostgreSQL only).
pub const CHANGE_FEED_UP: &str = "assertd_change_feed_up";
/// When the config last loaded or reloaded successfully, Unix seconds.
pub const CONFIG_LAST_RELOAD: &str = "assertd_config_last_reload_success_timestamp_seconds";
/// Per-assertion verification time on the pool, by algorithm.
pub const VERIFY_DURATION: &str = "assertd_verify_duration_seconds";
/// Key cache lookups, by result (hit / miss).
pub const CACHE_LOOKUPS: &str = "assertd_cache_lookups_total";
/// Entries in the key cache.
pub const CACHE_ENTRIES: &str = "assertd_cache_entries";
/// Entries evicted from the key cache to respect max_entries.
pub const CACHE_EVICTIONS: &str = "assertd_cache_evictions_total";
/// Credential reads that reached the store (cache misses, coalesced per key).
pub const STORE_READS: &str = "assertd_store_credential_reads_total";
/// Batches waiting for or running on the verification pool.
pub const POOL_QUEUE: &str = "assertd_pool_queue_depth";
/// Store call latency, by operation.
pub const STORE_DURATION: &str = "assertd_store_duration_seconds";
/// Failed store calls, by operation.
pub const STORE_ERRORS: &str = "assertd_store_errors_total";
/// RPCs in progress.
pub const IN_FLIGHT: &str = "assertd_rpcs_in_flight";
/// 1 while the store answers pings, 0 while it does not.
pub const STORE_UP: &str = "assertd_store_up";
/// Counter updates queued during a store outage.
pub const DEFERRED_QUEUE: &str = "assertd_deferred_counters";
/// Queued counter updates sent to the store once it answered.
pub const DEFERRED_FLUSHED: &str = "assertd_deferred_counters_flushed_total";
/// Queued counter updates the store refused (accepted elsewhere meanwhile).
pub const DEFERRED_CONFLICTS: &str = "assertd_deferred_counter_conflicts_total";
/// RPCs refused before any work, by reason.
pub const REJECTED: &str = "assertd_rpcs_rejected_total";
/// Config reloads, by result (ok / failed).
pub const CONFIG_RELOADS: &str = "assertd_config_reloads_total";
/// TLS material reloads, by result (ok / failed).
pub const TLS_RELOADS: &str = "assertd_tls_reloads_total";
/// When the serving certificate expires (Unix seconds).
pub const TLS_EXPIRY: &str = "assertd_tls_certificate_expiry_timestamp_seconds";
/// TLS handshakes that failed, by reason (error / timeout).
pub const TLS_HANDSHAKE_FAILURES: &str = "assertd_tls_handshake_failures_total";
/// Connections a probe listener closed at accept (its cap was reached).
pub const LISTENER_REFUSED: &str = "assertd_listener_connections_refused_total";
/// Failed `accept` calls, by listener (EMFILE and the like).
pub const ACCEPT_FAILURES: &str = "assertd_accept_failures_total";

/// Handles of one metric's series by the value of its one label (`""` for
/// a metric without labels). The per-assertion path registers each series
/// once: a `counter!` call hashes and copies its key on every call, which
/// profiling showed as an allocation per assertion. [`install`] clears
/// them, so no handle outlives the recorder it came from.
struct Series<M, K = &'static str> {
    handles: parking_lot::RwLock<Vec<(K, M)>>,
}

impl<M: Clone, K: Copy + PartialEq> Series<M, K> {
    const fn new() -> Self {
        Self { handles: parking_lot::const_rwlock(Vec::new()) }
    }

    /// Runs `f` on the series for `value`, registering it on first use.
    fn with(&self, value: K, register: impl FnOnce() -> M, f: impl FnOnce(&M)) {
        if let Some((_, m)) = self.handles.read().iter().find(|(v, _)| *v == value) {
            return f(m);
        }
        let mut handles = self.handles.write();
        if let Some((_, m)) = handles.iter().find(|(v, _)| *v == value) {
            return f(m);
        }
        let m = register();
        f(&m);
        handles.push((value, m));
    }

    fn clear(&self) {
        self.handles.write().clear();
    }
}

static ASSERTIONS_BY_DECISION: Series<Counter> = Series::new();
static REASONS_BY_CODE: Series<Counter> = Series::new();
static CACHE_LOOKUPS_BY_RESULT: Series<Counter> = Series::new();
static VERIFY_DURATION_BY_ALG: Series<Histogram> = Series::new();
static BATCH_SIZES: Series<Histogram> = Series::new();
static POOL_QUEUE_DEPTH: Series<Gauge> = Series::new();
static STORE_DURATION_BY_OP: Series<Histogram> = Series::new();
static RPCS_BY_CALL: Series<Counter, (&'static str, tonic::Code)> = Series::new();
static RPC_DURATION_BY_CALL: Series<Histogram, (&'static str, tonic::Code)> = Series::new();

/// Challenges issued by `IssueChallenge`.
pub const CHALLENGES_ISSUED: &str = "assertd_challenges_issued_total";
/// Request bytes held by unary calls in progress.
const REQUEST_BYTES_IN_FLIGHT: &str = "assertd_request_bytes_in_flight";
/// The loaded FIDO metadata BLOB's serial number.
const METADATA_NUMBER: &str = "assertd_metadata_number";
/// The loaded metadata's nextUpdate, Unix seconds.
const METADATA_NEXT_UPDATE: &str = "assertd_metadata_next_update_timestamp_seconds";
/// Authenticator models (AAGUIDs) in the loaded metadata.
const METADATA_MODELS: &str = "assertd_metadata_models";
/// Metadata files refused because their serial is below the one in force.
pub const METADATA_REFUSED: &str = "assertd_metadata_refused_total";
/// 1 when the loaded metadata is a day past its nextUpdate.
const METADATA_STALE: &str = "assertd_metadata_stale";
/// Spans sent to the OTLP collector.
const TRACE_SPANS_EXPORTED: &str = "assertd_trace_spans_exported_total";
/// Spans dropped, by reason.
const TRACE_SPANS_DROPPED: &str = "assertd_trace_spans_dropped_total";
/// Registrations by decision, statement format and attestation trust.
const REGISTRATIONS: &str = "assertd_registrations_total";
/// Reasons in registration verdicts, by code.
const REGISTRATION_REASONS: &str = "assertd_registration_reasons_total";

/// Installs the Prometheus recorder and describes every metric.
pub fn install() -> Result<PrometheusHandle, String> {
    let seconds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0])
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    ASSERTIONS_BY_DECISION.clear();
    REASONS_BY_CODE.clear();
    CACHE_LOOKUPS_BY_RESULT.clear();
    VERIFY_DURATION_BY_ALG.clear();
    BATCH_SIZES.clear();
    POOL_QUEUE_DEPTH.clear();
    STORE_DURATION_BY_OP.clear();
    RPCS_BY_CALL.clear();
    RPC_DURATION_BY_CALL.clear();
    describe_counter!(ASSERTIONS, "Assertions answered, by decision (allow, step_up, deny).");
    describe_counter!(REASONS, "Reasons reported in verdicts, by reason code.");
    describe_histogram!(BATCH_SIZE, "Assertions per request message.");
    describe_histogram!(
        RPC_DURATION,
        Unit::Seconds,
        "RPC latency, by rpc and gRPC status code; calls refused (RESOURCE_EXHAUSTED, UNAUTHENTICATED, PERMISSION_DENIED) are left out."
    );
    describe_counter!(RPCS, "RPCs finished, by rpc and gRPC status code (as the gRPC spec spells it), refusals included.");
    describe_gauge!(BUILD_INFO, "Always 1; labels: version and the git commit it was built from.");
    describe_gauge!(QUEUE_WAIT, "Estimated wait for the verification pool now (queued assertions x measured cost / threads), seconds.");
    describe_gauge!(QUEUE_WAIT_TARGET, "The wait above which unary batches are refused (limits.max_queue_wait_ms), seconds.");
    describe_gauge!(CHANGE_FEED_UP, "1 while the store's change feed (PostgreSQL LISTEN) is connected, else 0; absent for SQLite.");
    describe_gauge!(CONFIG_LAST_RELOAD, "When the config last loaded or reloaded successfully, Unix seconds.");
    describe_gauge!("process_cpu_seconds_total", "CPU time of the process (user + system), seconds; rises only (rate() it).");
    describe_gauge!("process_resident_memory_bytes", "Resident memory of the process, bytes.");
    describe_gauge!("process_open_fds", "Open file descriptors.");
    describe_gauge!("process_max_fds", "The open file descriptor limit.");
    describe_gauge!("process_start_time_seconds", "When the process started, Unix seconds.");
    gauge!("process_start_time_seconds")
        .set(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
    config_reloaded();
    build_info();
    describe_histogram!(VERIFY_DURATION, Unit::Seconds, "Verification time of one assertion on the CPU pool, by algorithm.");
    describe_counter!(CACHE_LOOKUPS, "Key cache lookups, by result (hit, miss).");
    describe_gauge!(CACHE_ENTRIES, "Credentials in the key cache (found and not-found entries).");
    describe_counter!(CACHE_EVICTIONS, "Key cache entries evicted to stay within max_entries.");
    describe_counter!(STORE_READS, "Credential reads that reached the store: cache misses, concurrent misses of one key sharing a read.");
    describe_gauge!(POOL_QUEUE, "Batches waiting for or running on the verification pool.");
    describe_histogram!(STORE_DURATION, Unit::Seconds, "Credential store call latency, by operation.");
    describe_counter!(STORE_ERRORS, "Failed credential store calls, by operation.");
    describe_gauge!(IN_FLIGHT, "RPCs in progress.");
    describe_gauge!(STORE_UP, "1 while the credential store answers pings, else 0.");
    describe_gauge!(DEFERRED_QUEUE, "Counter updates queued during a store outage, waiting for the store.");
    describe_counter!(DEFERRED_FLUSHED, "Queued counter updates sent to the store once it answered again.");
    describe_counter!(DEFERRED_CONFLICTS, "Queued counter updates the store refused: the count was accepted elsewhere during the outage.");
    describe_counter!(
        REJECTED,
        "RPCs refused before any work, by reason (overloaded, batch_too_large, message_too_large, unauthenticated, permission_denied)."
    );
    describe_counter!(TLS_RELOADS, "TLS certificate/key/CA reloads, by result (ok, failed); a failed reload keeps the running material.");
    describe_gauge!(TLS_EXPIRY, "When the serving certificate expires, in Unix seconds.");
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes that failed, by reason (error: e.g. no or untrusted client certificate; timeout)."
    );
    describe_counter!(
        LISTENER_REFUSED,
        "Connections the metrics or health listener closed as they were accepted, because limits.max_probe_connections were open."
    );
    describe_counter!(ACCEPT_FAILURES, "Failed accept calls, by listener (grpc, metrics, health): e.g. no file descriptor left (EMFILE).");
    describe_counter!(TRACE_SPANS_EXPORTED, "Spans sent to the OTLP collector ([tracing] otlp_endpoint) and accepted.");
    describe_counter!(
        TRACE_SPANS_DROPPED,
        "Spans dropped, by reason (queue_full: the export queue was full; export_failed: the collector did not accept them)."
    );
    describe_counter!(
        CHALLENGES_ISSUED,
        "Challenges issued by IssueChallenge (their uses show as verdicts; replays as reason CHALLENGE_REPLAYED)."
    );
    describe_counter!(
        REGISTRATIONS,
        "RegisterCredential verdicts, by decision (allow: stored), format (none, packed, fido-u2f, apple, android-key, tpm, other) and attestation (trusted, untrusted, none, invalid)."
    );
    describe_gauge!(
        REQUEST_BYTES_IN_FLIGHT,
        "Request bytes held by unary calls in progress and stream messages not yet arrived whole, against limits.max_request_bytes_in_flight."
    );
    describe_gauge!(METADATA_NUMBER, "The loaded FIDO MDS3 BLOB's serial number (no); absent without [metadata].");
    describe_gauge!(
        METADATA_NEXT_UPDATE,
        "The loaded FIDO metadata's nextUpdate (Unix seconds): past it, a newer BLOB should have replaced it."
    );
    describe_gauge!(METADATA_MODELS, "Authenticator models (AAGUIDs) in the loaded FIDO metadata.");
    describe_gauge!(METADATA_STALE, "1 when the loaded FIDO metadata is more than a day past its nextUpdate, else 0.");
    describe_counter!(REGISTRATION_REASONS, "Reasons in RegisterCredential verdicts, by code.");
    describe_counter!(
        METADATA_REFUSED,
        "FIDO metadata files refused at reload because their serial (no) is below the one in force (a rollback would lift revocations); the metadata in force stays."
    );
    describe_counter!(CONFIG_RELOADS, "Config reloads, by result (ok, failed); a failed reload keeps the running policy.");
    Ok(handle)
}

/// Counts one verdict.
pub fn verdict(v: &Verdict) {
    let decision = v.decision.as_str();
    ASSERTIONS_BY_DECISION.with(decision, || counter!(ASSERTIONS, "decision" => decision), |c| c.increment(1));
    for r in &v.reasons {
        let code = r.code.as_str();
        REASONS_BY_CODE.with(code, || counter!(REASONS, "code" => code), |c| c.increment(1));
    }
}

/// Counts one registration verdict.
pub fn registration(v: &Verdict, attestation: Option<&assertd_verify::AttestationReport>) {
    let format =
        attestation.and_then(|a| assertd_verify::attestation::FORMATS.iter().find(|f| **f == a.format)).copied().unwrap_or("other");
    let trust = match attestation {
        Some(a) if a.trusted => "trusted",
        Some(a) if a.kind == Some(assertd_verify::attestation::AttestationType::None) => "none",
        Some(a) if a.kind.is_some() => "untrusted",
        _ => "invalid",
    };
    counter!(REGISTRATIONS, "decision" => v.decision.as_str(), "format" => format, "attestation" => trust).increment(1);
    for r in &v.reasons {
        counter!(REGISTRATION_REASONS, "code" => r.code.as_str()).increment(1);
    }
}

/// Counts an issued challenge.
pub fn challenge_issued() {
    counter!(CHALLENGES_ISSUED).increment(1);
}

/// Records a batch's size.
pub fn batch_size(n: usize) {
    BATCH_SIZES.with("", || histogram!(BATCH_SIZE), |h| h.record(n as f64));
}

/// Counts a cache lookup.
pub fn cache_lookup(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    CACHE_LOOKUPS_BY_RESULT.with(result, || counter!(CACHE_LOOKUPS, "result" => result), |c| c.increment(1));
}

/// Sets the cache gauges from the cache.
pub fn cache_state(cache: &assertd_store::KeyCache) {
    gauge!(CACHE_ENTRIES).set(cache.entry_count() as f64);
    counter!(CACHE_EVICTIONS).absolute(cache.evictions());
    counter!(STORE_READS).absolute(cache.store_reads());
}

/// Moves the pool queue gauge.
pub fn pool_queue(delta: f64) {
    POOL_QUEUE_DEPTH.with("", || gauge!(POOL_QUEUE), |g| g.increment(delta));
}

/// Records one verification.
pub fn verify_duration(alg: &'static str, d: Duration) {
    VERIFY_DURATION_BY_ALG.with(alg, || histogram!(VERIFY_DURATION, "algorithm" => alg), |h| h.record(d.as_secs_f64()));
}

/// Records a store call (and adds it to the RPC's store clock, when the
/// RPC is traced).
pub fn store_duration(op: &'static str, d: Duration) {
    STORE_DURATION_BY_OP.with(op, || histogram!(STORE_DURATION, "operation" => op), |h| h.record(d.as_secs_f64()));
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
    counter!(TRACE_SPANS_EXPORTED).increment(n as u64);
}

/// Counts dropped spans: `queue_full` or `export_failed`.
pub fn trace_spans_dropped(reason: &'static str, n: usize) {
    counter!(TRACE_SPANS_DROPPED, "reason" => reason).increment(n as u64);
}

/// Counts a failed store call.
pub fn store_error(op: &'static str) {
    counter!(STORE_ERRORS, "operation" => op).increment(1);
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
    RPCS_BY_CALL.with((rpc, code), || counter!(RPCS, "rpc" => rpc, "code" => code_name(code)), |c| c.increment(1));
    if !is_refusal(code) {
        RPC_DURATION_BY_CALL.with(
            (rpc, code),
            || histogram!(RPC_DURATION, "rpc" => rpc, "code" => code_name(code)),
            |h| {
                h.record(d.as_secs_f64());
            },
        );
    }
}

/// Sets `assertd_build_info` (always 1) with the version and commit.
pub fn build_info() {
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("ASSERTD_COMMIT")).set(1.0);
}

/// Counts a TLS reload.
pub fn tls_reload(ok: bool) {
    counter!(TLS_RELOADS, "result" => if ok { "ok" } else { "failed" }).increment(1);
}

/// Sets the certificate expiry gauge.
pub fn tls_certificate_expiry(unix_seconds: i64) {
    gauge!(TLS_EXPIRY).set(unix_seconds as f64);
}

/// Counts a failed TLS handshake.
pub fn tls_handshake_failed(reason: &'static str) {
    counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1);
}

/// Sets the store-up gauge.
pub fn store_up(up: bool) {
    gauge!(STORE_UP).set(if up { 1.0 } else { 0.0 });
}

/// Sets the deferred-queue gauge.
pub fn deferred_queue(n: usize) {
    gauge!(DEFERRED_QUEUE).set(n as f64);
}

/// Counts queued updates flushed, and those refused.
pub fn deferred_flushed(n: usize, conflicts: usize) {
    counter!(DEFERRED_FLUSHED).increment(n as u64);
    counter!(DEFERRED_CONFLICTS).increment(conflicts as u64);
}

/// Counts a refused RPC.
pub fn rejected(reason: &'static str) {
    counter!(REJECTED, "reason" => reason).increment(1);
}

/// Counts a config reload.
pub fn config_reload(ok: bool) {
    counter!(CONFIG_RELOADS, "result" => if ok { "ok" } else { "failed" }).increment(1);
    if ok {
        config_reloaded();
    }
}

/// Counts a metadata file refused for an older serial.
pub fn metadata_refused() {
    counter!(METADATA_REFUSED, "reason" => "older_serial").increment(1);
}

/// Stamps the last successful config load.
fn config_reloaded() {
    gauge!(CONFIG_LAST_RELOAD).set(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
}

/// The scrape-time gauges: the admission's wait and target, the change
/// feed, and the process (from /proc; absent elsewhere).
pub fn scrape_state(engine: &crate::engine::Engine) {
    let admission = engine.admission();
    gauge!(QUEUE_WAIT).set(admission.queue_wait().as_secs_f64());
    gauge!(QUEUE_WAIT_TARGET).set(admission.target().as_secs_f64());
    gauge!(REQUEST_BYTES_IN_FLIGHT).set(admission.request_bytes() as f64);
    if let Some(m) = &engine.policy().metadata {
        gauge!(METADATA_NUMBER).set(m.metadata.number as f64);
        gauge!(METADATA_NEXT_UPDATE).set(m.metadata.next_update_unix as f64);
        gauge!(METADATA_MODELS).set(m.metadata.models.len() as f64);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        gauge!(METADATA_STALE).set(if m.metadata.stale(now) { 1.0 } else { 0.0 });
    }
    if let Some(up) = engine.cache().store().change_feed_up() {
        gauge!(CHANGE_FEED_UP).set(if up { 1.0 } else { 0.0 });
    }
    process_state();
}

/// CPU, memory and descriptors of this process, from /proc.
fn process_state() {
    // utime and stime, fields 14 and 15, in clock ticks: USER_HZ, which the
    // Linux ABI fixes at 100.
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, after_comm)) = stat.rsplit_once(')')
    {
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Field 14 is the 12th after the command's closing parenthesis. A
        // gauge: the counter type holds whole numbers only.
        gauge!("process_cpu_seconds_total").set((ticks(11) + ticks(12)) / 100.0);
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(kb) =
            status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        gauge!("process_resident_memory_bytes").set(kb * 1024.0);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge!("process_open_fds").set(fds.count() as f64);
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits")
        && let Some(max) = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok())
    {
        gauge!("process_max_fds").set(max);
    }
}

/// Tracks one RPC in flight while alive.
pub struct InFlight;

impl InFlight {
    /// Marks an RPC started.
    pub fn start() -> Self {
        gauge!(IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT).decrement(1.0);
    }
}

/// How long a metrics request's headers may take to arrive.
pub const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts a connection a listener closed at accept (`listener`: `metrics`
/// or `health`), because `limits.max_probe_connections` were open.
pub fn listener_refused(listener: &'static str) {
    counter!(LISTENER_REFUSED, "listener" => listener).increment(1);
}

/// Waits before the next `accept` after one failed (EMFILE: no file
/// descriptor left; spinning on it would take a core and starve the rest).
pub async fn accept_failed(listener: &'static str, e: &std::io::Error) {
    tracing::warn!(listener, error = %e, "accept failed; backing off");
    counter!(ACCEPT_FAILURES, "listener" => listener).increment(1);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serves `GET /metrics` (and `/`) on an already bound listener until the
/// process ends: at most `limits.max_probe_connections` connections at
/// once (more are closed at accept), each living at most
/// `limits.probe_connection_seconds`, one request per connection, whose
/// headers (at most 16 KiB) must arrive within [`PROBE_HEADER_TIMEOUT`].
pub async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle, engine: std::sync::Arc<crate::engine::Engine>) {
    let limits = *engine.limits();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_probe_connections));
    let lifetime = Duration::from_secs(limits.probe_connection_seconds);
    // Histogram samples pile up in the recorder until drained into their
    // buckets; without a scrape that would be unbounded memory.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed("metrics", &e).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            listener_refused("metrics");
            drop(stream);
            continue;
        };
        let handle = handle.clone();
        let engine = engine.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (handle, engine) = (handle.clone(), engine.clone());
                async move {
                    match req.uri().path() {
                        "/metrics" | "/" => {
                            let cache = engine.cache();
                            cache.sync().await;
                            cache_state(cache);
                            scrape_state(&engine);
                            hyper::Response::builder()
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(handle.render())))
                        }
                        _ => hyper::Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found\n"))),
                    }
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(PROBE_HEADER_TIMEOUT)
                .max_buf_size(16 * 1024)
                .keep_alive(false);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(lifetime, conn).await;
        });
    }
}

/// Binds the metrics listener.
pub async fn bind_metrics(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Sets up logging to stderr: `ASSERTD_LOG` (or `RUST_LOG`) filters,
/// `ASSERTD_LOG_FORMAT=json` switches to JSON lines. With
/// `ASSERTD_AUDIT_LOG=PATH`, the audit events (target `assertd::audit`:
/// credential writes and registrations, revocations, risk flags) go to that
/// file instead, as JSON lines appended one write per event, whatever the
/// log filter: a stream of its own for the audit trail.
pub fn init_logging() -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASSERTD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let audit = match std::env::var_os("ASSERTD_AUDIT_LOG").filter(|p| !p.is_empty()) {
        None => None,
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            Some(options.open(&path).map_err(|e| format!("ASSERTD_AUDIT_LOG {}: {e}", std::path::Path::new(&path).display()))?)
        }
    };
    let json = std::env::var("ASSERTD_LOG_FORMAT").is_ok_and(|f| f == "json");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing::subscriber::set_global_default(log_subscriber(filter, audit, json, ansi)).map_err(|e| e.to_string())
}

/// The log subscriber: the main log on stderr under `filter`, and the
/// audit events in `audit` (then not in the main log) when given.
///
/// One filter per layer, never one filter nested in another: nested
/// per-layer filters left every callsite's interest undecided, so the
/// registry built and dropped the disabled spans of every call (h2's,
/// tonic's, the handlers' debug spans), measured at ~14% of the server's
/// CPU with single-assertion calls.
fn log_subscriber(
    filter: tracing_subscriber::EnvFilter,
    audit: Option<std::fs::File>,
    json: bool,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::prelude::*;
    let main = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let main = if json { main.json().boxed() } else { main.boxed() };
    match audit {
        None => Box::new(tracing_subscriber::registry().with(main.with_filter(filter))),
        Some(file) => {
            let audit = tracing_subscriber::fmt::layer()
                .json()
                .with_ansi(false)
                .with_writer(std::sync::Arc::new(file))
                .with_filter(filter_fn(|m| m.target() == AUDIT_TARGET));
            let not_audit = filter_fn(|m| m.target() != AUDIT_TARGET);
            Box::new(tracing_subscriber::registry().with(main.with_filter(filter.and(not_audit))).with(audit))
        }
    }
}

/// The tracing target of audit events.
pub const AUDIT_TARGET: &str = "assertd::audit";

#[cfg(test)]
mod log_tests {
    use super::*;

    /// Disabled spans are not built: with `warn`, a debug span on the hot
    /// path is disabled, with and without the audit file (nested per-layer
    /// filters used to build every one of them).
    #[test]
    fn disabled_spans_are_not_built() {
        for audit in [None, Some(tempfile::tempfile().unwrap())] {
            let with_audit = audit.is_some();
            let sub = log_subscriber(tracing_subscriber::EnvFilter::new("warn"), audit, false, false);
            tracing::subscriber::with_default(sub, || {
                let span = tracing::debug_span!("hot_path", batch = 64);
                assert!(span.is_disabled(), "a debug span was built under warn (audit file: {with_audit})");
                assert!(tracing::info_span!("also_off").is_disabled());
                assert!(tracing::enabled!(tracing::Level::WARN));
            });
        }
    }
}
