//! Every metric assertd exports, as data: name, type, labels and help
//! text. [`super::install`] describes them from here, the recorders use the
//! names, and a test holds `docs/operations.md`'s metric table to the same
//! list (names, types, labels), so the docs cannot drift.

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only rises.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

impl Kind {
    /// The type as the exposition format spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The exported name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its labels, in the order the recorder sets them (values are bounded:
    /// never ids or addresses).
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind, labels, help }
}

use Kind::{Counter, Gauge, Histogram};

/// Assertions answered, by decision.
pub const ASSERTIONS: Metric =
    metric("assertd_assertions_total", Counter, &["decision"], "Assertions answered, by decision (allow, step_up, deny).");
/// Reasons reported in verdicts, by code.
pub const REASONS: Metric = metric(
    "assertd_verdict_reasons_total",
    Counter,
    &["code", "decision"],
    "Reasons reported in sign-in verdicts, by reason code and the verdict's decision (allow, step_up, deny: an allow carries risk signals such as SYNCED_PASSKEY too).",
);
/// Verdicts of report-only profiles, against the enforced one.
pub const REPORT_ONLY: Metric = metric(
    "assertd_report_only_verdicts_total",
    Counter,
    &["rp", "profile", "decision", "changed"],
    "Assertions judged under a relying party's report-only profile (never enforced), by RP, profile, the decision it would have made, and whether that differs from the enforced decision (changed=\"true\").",
);
/// Sign-ins with a known credential, by RP, profile, kind and decision.
pub const SIGN_INS_BY_KIND: Metric = metric(
    "assertd_sign_ins_total",
    Counter,
    &["rp", "profile", "kind", "decision"],
    "Assertions whose signature verified with a credential the relying party holds, by RP, the profile they were judged under, the credential's passkey kind (device_bound, synced: BE at registration) and the decision.",
);
/// Unrevoked credentials per RP, kind and attestation (refreshed).
pub const CREDENTIALS: Metric = metric(
    "assertd_credentials",
    Gauge,
    &["rp", "kind", "attested"],
    "Unrevoked credentials by relying party, kind (device_bound, synced) and attested (true, false), as the store counted them at the last refresh ([adoption] gauges_interval_seconds).",
);
/// Users per RP by their strongest credential (refreshed).
pub const USERS_BY_STRONGEST: Metric = metric(
    "assertd_users_by_strongest_credential",
    Gauge,
    &["rp", "class"],
    "Users by relying party and their strongest unrevoked credential: device_bound_attested, device_bound, synced (at the last refresh).",
);
/// Assertions per request message.
pub const BATCH_SIZE: Metric = metric("assertd_batch_size", Histogram, &[], "Assertions per request message.");
/// RPC latency, by rpc and gRPC status code (refusals left out).
pub const RPC_DURATION: Metric = metric(
    "assertd_rpc_duration_seconds",
    Histogram,
    &["rpc", "code"],
    "RPC latency, by rpc and gRPC status code; calls refused (RESOURCE_EXHAUSTED, UNAUTHENTICATED, PERMISSION_DENIED) are left out.",
);
/// RPCs finished, by rpc and gRPC status code (refusals included).
pub const RPCS: Metric = metric(
    "assertd_rpcs_total",
    Counter,
    &["rpc", "code"],
    "RPCs finished, by rpc and gRPC status code (as the gRPC spec spells it), refusals included.",
);
/// Always 1, labelled with the version and commit.
pub const BUILD_INFO: Metric =
    metric("assertd_build_info", Gauge, &["version", "commit"], "Always 1; labels: version and the git commit it was built from.");
/// The admission's estimated wait for the pool now (the line included), seconds.
pub const QUEUE_WAIT: Metric = metric(
    "assertd_admission_queue_wait_seconds",
    Gauge,
    &[],
    "Estimated wait for the verification pool for a call arriving now (assertions queued and in line x measured cost / threads), seconds.",
);
/// The admission's wait target (`limits.max_queue_wait_ms`), seconds.
pub const QUEUE_WAIT_TARGET: Metric = metric(
    "assertd_admission_queue_wait_target_seconds",
    Gauge,
    &[],
    "The wait above which unary batches are refused (limits.max_queue_wait_ms), seconds.",
);
/// Request bytes held against `limits.max_request_bytes_in_flight`.
pub const REQUEST_BYTES_IN_FLIGHT: Metric = metric(
    "assertd_request_bytes_in_flight",
    Gauge,
    &[],
    "Request bytes held by unary calls in progress and stream messages not yet arrived whole, against limits.max_request_bytes_in_flight.",
);
/// 1 while the store's change feed is connected (PostgreSQL only).
pub const CHANGE_FEED_UP: Metric = metric(
    "assertd_change_feed_up",
    Gauge,
    &[],
    "1 while the store's change feed (PostgreSQL LISTEN) is connected, else 0; absent for SQLite.",
);
/// When the config last loaded or reloaded successfully, Unix seconds.
pub const CONFIG_LAST_RELOAD: Metric = metric(
    "assertd_config_last_reload_success_timestamp_seconds",
    Gauge,
    &[],
    "When the config last loaded or reloaded successfully, Unix seconds.",
);
/// Per-assertion verification time on the pool, by algorithm.
pub const VERIFY_DURATION: Metric = metric(
    "assertd_verify_duration_seconds",
    Histogram,
    &["algorithm"],
    "Verification time of one assertion on the CPU pool, by algorithm.",
);
/// Key cache lookups, by result.
pub const CACHE_LOOKUPS: Metric = metric("assertd_cache_lookups_total", Counter, &["result"], "Key cache lookups, by result (hit, miss).");
/// Entries in the key cache.
pub const CACHE_ENTRIES: Metric =
    metric("assertd_cache_entries", Gauge, &[], "Credentials in the key cache (found and not-found entries).");
/// Entries evicted from the key cache to respect max_entries.
pub const CACHE_EVICTIONS: Metric =
    metric("assertd_cache_evictions_total", Counter, &[], "Key cache entries evicted to stay within max_entries.");
/// Credential reads that reached the store.
pub const STORE_READS: Metric = metric(
    "assertd_store_credential_reads_total",
    Counter,
    &[],
    "Credential reads that reached the store: cache misses, concurrent misses of one key sharing a read.",
);
/// Batches waiting for or running on the verification pool.
pub const POOL_QUEUE: Metric = metric("assertd_pool_queue_depth", Gauge, &[], "Batches waiting for or running on the verification pool.");
/// Store call latency, by operation.
pub const STORE_DURATION: Metric =
    metric("assertd_store_duration_seconds", Histogram, &["operation"], "Credential store call latency, by operation.");
/// Failed store calls, by operation.
pub const STORE_ERRORS: Metric =
    metric("assertd_store_errors_total", Counter, &["operation"], "Failed credential store calls, by operation.");
/// RPCs in progress.
pub const IN_FLIGHT: Metric = metric("assertd_rpcs_in_flight", Gauge, &[], "RPCs in progress.");
/// 1 while the store answers pings.
pub const STORE_UP: Metric = metric("assertd_store_up", Gauge, &[], "1 while the credential store answers pings, else 0.");
/// Counter updates queued during a store outage.
pub const DEFERRED_QUEUE: Metric =
    metric("assertd_deferred_counters", Gauge, &[], "Counter updates queued during a store outage, waiting for the store.");
/// Queued counter updates sent to the store once it answered.
pub const DEFERRED_FLUSHED: Metric =
    metric("assertd_deferred_counters_flushed_total", Counter, &[], "Queued counter updates sent to the store once it answered again.");
/// Queued counter updates the store refused.
pub const DEFERRED_CONFLICTS: Metric = metric(
    "assertd_deferred_counter_conflicts_total",
    Counter,
    &[],
    "Queued counter updates the store refused: the count was accepted elsewhere during the outage.",
);
/// RPCs refused before any work, by reason.
pub const REJECTED: Metric = metric(
    "assertd_rpcs_rejected_total",
    Counter,
    &["reason"],
    "RPCs refused before any work, by reason (overloaded, request_bytes, registration_share, batch_too_large, message_too_large, unauthenticated, permission_denied).",
);
/// Config reloads, by result.
pub const CONFIG_RELOADS: Metric = metric(
    "assertd_config_reloads_total",
    Counter,
    &["result"],
    "Config reloads, by result (ok, failed); a failed reload keeps the running policy.",
);
/// TLS material reloads, by result.
pub const TLS_RELOADS: Metric = metric(
    "assertd_tls_reloads_total",
    Counter,
    &["result"],
    "TLS certificate/key/CA reloads, by result (ok, failed); a failed reload keeps the running material.",
);
/// When the serving certificate expires.
pub const TLS_EXPIRY: Metric =
    metric("assertd_tls_certificate_expiry_timestamp_seconds", Gauge, &[], "When the serving certificate expires, in Unix seconds.");
/// TLS handshakes that failed, by reason.
pub const TLS_HANDSHAKE_FAILURES: Metric = metric(
    "assertd_tls_handshake_failures_total",
    Counter,
    &["reason"],
    "TLS handshakes that failed, by reason (error: e.g. no or untrusted client certificate; timeout).",
);
/// Connections a probe listener closed at accept.
pub const LISTENER_REFUSED: Metric = metric(
    "assertd_listener_connections_refused_total",
    Counter,
    &["listener"],
    "Connections the metrics or health listener closed as they were accepted, because limits.max_probe_connections were open.",
);
/// Failed `accept` calls, by listener.
pub const ACCEPT_FAILURES: Metric = metric(
    "assertd_accept_failures_total",
    Counter,
    &["listener"],
    "Failed accept calls, by listener (grpc, metrics, health): e.g. no file descriptor left (EMFILE).",
);
/// Challenges issued by `IssueChallenge`.
pub const CHALLENGES_ISSUED: Metric = metric(
    "assertd_challenges_issued_total",
    Counter,
    &[],
    "Challenges issued by IssueChallenge (their uses show as verdicts; replays as reason CHALLENGE_REPLAYED).",
);
/// Temporary access pass events.
pub const ACCESS_PASSES: Metric = metric(
    "assertd_access_passes_total",
    Counter,
    &["event"],
    "Temporary access pass events, by event: issued, revoked, redeemed (an allowed RedeemTemporaryAccessPass), registered (a registration redeemed one), refused (a RedeemTemporaryAccessPass not allowed; the reasons are in the audit log).",
);
/// Security Event Tokens pushed to Shared Signals receivers, by outcome.
pub const SSF_DELIVERIES: Metric = metric(
    "assertd_ssf_deliveries_total",
    Counter,
    &["receiver", "outcome"],
    "Security Event Tokens pushed to a [shared_signals] receiver, by receiver (its configured name) and outcome: delivered (2xx), rejected (400: the receiver refused it; not sent again), retried (a failed attempt; sent again after a backoff), abandoned (still failing after give_up_after_seconds), skipped (events pruned from the log before they were sent).",
);
/// Events not yet delivered to a receiver, as the replica delivering sees it.
pub const SSF_BACKLOG: Metric = metric(
    "assertd_ssf_backlog_events",
    Gauge,
    &["receiver"],
    "Events in the log after a [shared_signals] receiver's cursor, on the replica holding its delivery lease (0 on the others).",
);
/// Whether this replica holds a receiver's delivery lease.
pub const SSF_LEASE: Metric = metric(
    "assertd_ssf_delivering",
    Gauge,
    &["receiver"],
    "1 on the replica that holds a [shared_signals] receiver's delivery lease (exactly one replica should), else 0.",
);
/// Users' risk flags cleared by a passkey sign-in.
pub const USER_RISK_REMEDIATIONS: Metric = metric(
    "assertd_user_risk_remediations_total",
    Counter,
    &[],
    "Users' risk flags cleared by a passkey sign-in that met the profile's remediation bar (USER_RISK_REMEDIATED).",
);
/// Credential record updates of allowed sign-ins.
pub const STATE_UPDATES: Metric = metric(
    "assertd_credential_state_updates_total",
    Counter,
    &["change"],
    "Credential record updates of allowed sign-ins (WebAuthn L3 §7.2 step 24 (update record)), by change: backed_up and not_backed_up (the BS flag differs from the record's), uv_initialized (the first UV sign-in, authorized by another factor).",
);
/// Registrations by decision, statement format and attestation trust.
pub const REGISTRATIONS: Metric = metric(
    "assertd_registrations_total",
    Counter,
    &["decision", "format", "attestation", "kind"],
    "RegisterCredential verdicts, by decision (allow: stored), format (the statement format, or other), attestation (trusted, untrusted, none, invalid) and passkey kind (device_bound, synced: the BE flag; unknown when the authenticator data did not parse).",
);
/// Reasons in registration verdicts, by code.
pub const REGISTRATION_REASONS: Metric =
    metric("assertd_registration_reasons_total", Counter, &["code"], "Reasons in RegisterCredential verdicts, by code.");
/// The loaded FIDO metadata BLOB's serial number.
pub const METADATA_NUMBER: Metric =
    metric("assertd_metadata_number", Gauge, &[], "The loaded FIDO MDS3 BLOB's serial number (no); absent without [metadata].");
/// The loaded metadata's nextUpdate, Unix seconds.
pub const METADATA_NEXT_UPDATE: Metric = metric(
    "assertd_metadata_next_update_timestamp_seconds",
    Gauge,
    &[],
    "The loaded FIDO metadata's nextUpdate (Unix seconds): past it, a newer BLOB should have replaced it.",
);
/// Authenticator models in the loaded metadata.
pub const METADATA_MODELS: Metric =
    metric("assertd_metadata_models", Gauge, &[], "Authenticator models (AAGUIDs) in the loaded FIDO metadata.");
/// 1 when the loaded metadata is a day past its nextUpdate.
pub const METADATA_STALE: Metric =
    metric("assertd_metadata_stale", Gauge, &[], "1 when the loaded FIDO metadata is more than a day past its nextUpdate, else 0.");
/// Metadata files refused because their serial is below the one in force.
pub const METADATA_REFUSED: Metric = metric(
    "assertd_metadata_refused_total",
    Counter,
    &["reason"],
    "FIDO metadata files refused at reload, by reason (older_serial: below the one in force; a rollback would lift revocations); the metadata in force stays.",
);
/// Spans sent to the OTLP collector.
pub const TRACE_SPANS_EXPORTED: Metric =
    metric("assertd_trace_spans_exported_total", Counter, &[], "Spans sent to the OTLP collector ([tracing] otlp_endpoint) and accepted.");
/// Spans dropped, by reason.
pub const TRACE_SPANS_DROPPED: Metric = metric(
    "assertd_trace_spans_dropped_total",
    Counter,
    &["reason"],
    "Spans dropped, by reason (queue_full: the export queue was full; export_failed: the collector did not accept them).",
);
/// CPU time of the process (a gauge: the counter type holds whole numbers
/// only).
pub const PROCESS_CPU: Metric =
    metric("process_cpu_seconds_total", Gauge, &[], "CPU time of the process (user + system), seconds; rises only (rate() it).");
/// Resident memory.
pub const PROCESS_RSS: Metric = metric("process_resident_memory_bytes", Gauge, &[], "Resident memory of the process, bytes.");
/// Open file descriptors.
pub const PROCESS_OPEN_FDS: Metric = metric("process_open_fds", Gauge, &[], "Open file descriptors.");
/// The descriptor limit.
pub const PROCESS_MAX_FDS: Metric = metric("process_max_fds", Gauge, &[], "The open file descriptor limit.");
/// When the process started.
pub const PROCESS_START: Metric = metric("process_start_time_seconds", Gauge, &[], "When the process started, Unix seconds.");

/// Every metric, in the order docs/operations.md lists them.
pub const CATALOGUE: &[Metric] = &[
    ASSERTIONS,
    REASONS,
    REPORT_ONLY,
    SIGN_INS_BY_KIND,
    CREDENTIALS,
    USERS_BY_STRONGEST,
    BATCH_SIZE,
    RPC_DURATION,
    RPCS,
    QUEUE_WAIT,
    QUEUE_WAIT_TARGET,
    REQUEST_BYTES_IN_FLIGHT,
    CHANGE_FEED_UP,
    CONFIG_LAST_RELOAD,
    PROCESS_CPU,
    PROCESS_RSS,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_START,
    BUILD_INFO,
    VERIFY_DURATION,
    CACHE_LOOKUPS,
    CACHE_ENTRIES,
    CACHE_EVICTIONS,
    STORE_READS,
    POOL_QUEUE,
    STORE_DURATION,
    STORE_ERRORS,
    IN_FLIGHT,
    CONFIG_RELOADS,
    REJECTED,
    TLS_RELOADS,
    CHALLENGES_ISSUED,
    ACCESS_PASSES,
    USER_RISK_REMEDIATIONS,
    SSF_DELIVERIES,
    SSF_BACKLOG,
    SSF_LEASE,
    STATE_UPDATES,
    REGISTRATIONS,
    REGISTRATION_REASONS,
    METADATA_NUMBER,
    METADATA_NEXT_UPDATE,
    METADATA_MODELS,
    METADATA_STALE,
    METADATA_REFUSED,
    TLS_EXPIRY,
    TLS_HANDSHAKE_FAILURES,
    LISTENER_REFUSED,
    ACCEPT_FAILURES,
    STORE_UP,
    DEFERRED_QUEUE,
    DEFERRED_FLUSHED,
    DEFERRED_CONFLICTS,
    TRACE_SPANS_EXPORTED,
    TRACE_SPANS_DROPPED,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/operations.md's metric table: each row's metric, type and
    /// labels (the backticked names in the labels column).
    fn documented() -> Vec<(String, String, Vec<String>)> {
        let doc = include_str!("../../../../docs/operations.md");
        let table = doc.split("\n## Metrics\n").nth(1).expect("docs/operations.md has a Metrics section");
        let mut rows = Vec::new();
        for line in table.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).skip(2) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, name, kind, labels, ..] = cells[..] else { panic!("a row with too few cells: {line}") };
            let labels = labels.split(", ").filter(|l| !l.is_empty()).map(|l| l.trim_matches('`').to_owned()).collect();
            rows.push((name.trim_matches('`').to_owned(), kind.to_owned(), labels));
        }
        rows
    }

    #[test]
    fn the_docs_list_every_metric_with_its_type_and_labels() {
        let want: Vec<(String, String, Vec<String>)> = CATALOGUE
            .iter()
            .map(|m| (m.name.to_owned(), m.kind.as_str().to_owned(), m.labels.iter().map(|l| (*l).to_owned()).collect()))
            .collect();
        let got = documented();
        for w in &want {
            assert!(got.contains(w), "docs/operations.md's metric table must have the row {w:?} (as the catalogue has it)");
        }
        for g in &got {
            assert!(want.contains(g), "docs/operations.md lists {g:?}, which the catalogue does not have");
        }
    }

    #[test]
    fn names_are_unique_and_prometheus_shaped() {
        for (i, m) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[..i].iter().all(|o| o.name != m.name), "{} twice", m.name);
            assert!(m.name.starts_with("assertd_") || m.name.starts_with("process_"), "{}", m.name);
            // process_cpu_seconds_total is a gauge by necessity (the
            // exporter's counters hold whole numbers), named as Prometheus
            // clients name it.
            let counter = m.kind == Kind::Counter || m.name == PROCESS_CPU.name;
            assert_eq!(counter, m.name.ends_with("_total"), "{}: counters, and only counters, end in _total", m.name);
        }
    }
}
