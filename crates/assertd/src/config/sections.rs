//! The config file's sections that are plain settings (no policy): TLS,
//! store, key cache, limits, CPU pool. Each changes only on restart.

use assertd_store::{CacheConfig, PostgresTls, RootCert};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[tls]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain of the server, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the server (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificate(s); when set, every client must present a
    /// certificate chaining to one of them (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Seconds between checks of the three files for changes (0: only
    /// SIGHUP reloads them). New connections use the new material; open
    /// connections keep theirs.
    #[serde(default = "default_tls_reload")]
    pub reload_interval_seconds: u64,
    /// Longest a TLS handshake may take before the connection is dropped.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_ms: u64,
}

fn default_tls_reload() -> u64 {
    30
}
fn default_handshake_timeout() -> u64 {
    10_000
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Embedded SQLite under `data_dir`.
    #[default]
    Sqlite,
    /// PostgreSQL at `url`.
    Postgres,
}

/// `[store] counter_outage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CounterOutage {
    /// Check counters of credentials this replica has seen against its
    /// memory and queue the updates (`SIGN_COUNT_DEFERRED`).
    #[default]
    Defer,
    /// Every assertion gets STORE_UNAVAILABLE.
    Deny,
}

pub(super) fn store_table_or_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StoreSection, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Name(Backend),
        Table(StoreSection),
    }
    // Untagged enums lose the inner error; say what is accepted.
    match Either::deserialize(d) {
        Ok(Either::Name(backend)) => Ok(StoreSection { backend, ..StoreSection::default() }),
        Ok(Either::Table(t)) => Ok(t),
        Err(_) => Err(serde::de::Error::custom(
            "store must be \"sqlite\", \"postgres\", or a [store] table of known keys (backend, url, pool_size, timeout_ms, ...)",
        )),
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite` (default) or `postgres`.
    pub backend: Backend,
    /// PostgreSQL connection URL; `ASSERTD_DATABASE_URL` overrides it.
    pub url: Option<String>,
    /// Most PostgreSQL connections per replica.
    pub pool_size: usize,
    /// Longest a store call may take (SQLite: the wait for the database
    /// lock; PostgreSQL: statement and lock timeout, connection wait) before
    /// the assertion gets STORE_UNAVAILABLE.
    pub timeout_ms: u64,
    /// With `readiness_follows_store`: readiness turns NOT_SERVING once the
    /// store has been unreachable this long.
    pub readiness_grace_seconds: u64,
    /// Readiness follows the store (NOT_SERVING past
    /// `readiness_grace_seconds` of outage). Off by default: a store every
    /// replica shares is down for all of them, and a pod that leaves the
    /// Service stops answering what it still can (cached credentials,
    /// counter-less sign-ins, deferred counts).
    pub readiness_follows_store: bool,
    /// `last_used_at` is written at most once per credential per interval
    /// (per cache entry: a credential reloaded into the cache may be
    /// written once more).
    pub last_used_interval_seconds: u64,
    /// What counters do while the store is unreachable.
    pub counter_outage: CounterOutage,
    /// Most counter updates queued during an outage.
    pub max_deferred_counters: usize,
    /// TLS to PostgreSQL, libpq's `sslmode`: `disable`, `prefer`,
    /// `require`, `verify-ca`, `verify-full`. Unset: `verify-full` for any
    /// host beyond loopback, `prefer` on loopback. The URL's `sslmode`
    /// parameter is read too (the two must agree).
    pub sslmode: Option<String>,
    /// CA certificates (PEM) that the PostgreSQL server's certificate must
    /// chain to, or `"system"` for the operating system's roots (the
    /// default for `verify-*`). URL parameter: `sslrootcert`.
    pub ssl_root_cert: Option<String>,
    /// Client certificate (PEM chain) for PostgreSQL servers that
    /// authenticate by certificate; with `ssl_key`. URL parameter: `sslcert`.
    pub ssl_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM). URL parameter: `sslkey`.
    pub ssl_key: Option<PathBuf>,
    /// Connect to a PostgreSQL server beyond loopback without checking its
    /// certificate (`sslmode` `disable`, `prefer`, or `require` without a
    /// root): anyone on the path could read or rewrite credentials.
    pub insecure_allow_unverified_postgres: bool,
    /// PostgreSQL: migrate the schema at start (true), or only check that
    /// it is current and leave DDL to `assertd migrate` (false: serving
    /// needs no DDL rights).
    pub migrate: bool,
}

impl StoreSection {
    /// The TLS settings for the PostgreSQL store.
    pub fn postgres_tls(&self) -> Result<PostgresTls, String> {
        Ok(PostgresTls {
            mode: self.sslmode.as_deref().map(str::parse).transpose()?,
            root_cert: self.ssl_root_cert.as_deref().map(|r| if r == "system" { RootCert::System } else { RootCert::File(r.into()) }),
            client_cert: self.ssl_cert.clone(),
            client_key: self.ssl_key.clone(),
            insecure_allow_unverified: self.insecure_allow_unverified_postgres,
        })
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            url: None,
            pool_size: 16,
            timeout_ms: 2000,
            readiness_grace_seconds: 10,
            readiness_follows_store: false,
            last_used_interval_seconds: 60,
            counter_outage: CounterOutage::Defer,
            max_deferred_counters: 100_000,
            sslmode: None,
            ssl_root_cert: None,
            ssl_cert: None,
            ssl_key: None,
            insecure_allow_unverified_postgres: false,
            migrate: true,
        }
    }
}

/// `[cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Most credentials cached.
    pub max_entries: u64,
    /// Seconds a found credential stays cached.
    pub ttl_seconds: u64,
    /// Seconds an unknown credential ID stays cached as unknown.
    pub negative_ttl_seconds: u64,
}

impl Default for CacheSection {
    fn default() -> Self {
        let d = CacheConfig::default();
        Self { max_entries: d.max_entries, ttl_seconds: d.ttl.as_secs(), negative_ttl_seconds: d.negative_ttl.as_secs() }
    }
}

impl From<CacheSection> for CacheConfig {
    fn from(c: CacheSection) -> Self {
        Self {
            max_entries: c.max_entries,
            ttl: Duration::from_secs(c.ttl_seconds),
            negative_ttl: Duration::from_secs(c.negative_ttl_seconds),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most assertions in one request (INVALID_ARGUMENT beyond).
    pub max_batch_size: usize,
    /// Largest gRPC message accepted (RESOURCE_EXHAUSTED beyond).
    pub max_message_bytes: usize,
    /// Largest clientDataJSON (INVALID_REQUEST beyond).
    pub max_client_data_json_bytes: usize,
    /// Largest authenticatorData (INVALID_REQUEST beyond).
    pub max_authenticator_data_bytes: usize,
    /// Largest signature (INVALID_REQUEST beyond).
    pub max_signature_bytes: usize,
    /// Largest expected_challenge (INVALID_REQUEST beyond).
    pub max_challenge_bytes: usize,
    /// Unary assertd RPCs (verification and credential calls) in progress
    /// at once; beyond, RESOURCE_EXHAUSTED from the headers instead of an
    /// unbounded queue. 0: 256 per verification thread. (Memory is bounded
    /// by `max_request_bytes_in_flight`, time by `max_queue_wait_ms`.)
    pub max_concurrent_rpcs: usize,
    /// Request bytes that unary calls in progress (their bodies, as they
    /// arrive) and stream messages not yet arrived whole may hold at once;
    /// a call or stream whose bytes would go beyond gets
    /// RESOURCE_EXHAUSTED. At least `max_message_bytes`.
    pub max_request_bytes_in_flight: usize,
    /// The longest an admitted batch should wait for the verification
    /// pool, estimated from the assertions queued and the measured pool
    /// time per assertion. A unary RPC that would wait longer (or past its
    /// own deadline) gets RESOURCE_EXHAUSTED at once, with
    /// `grpc-retry-pushback-ms`; a stream message waits.
    pub max_queue_wait_ms: u64,
    /// Optional hard cap on assertions admitted and not yet verified, on
    /// top of the wait target. 0: none.
    pub max_queued_assertions: usize,
    /// HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Seconds after which a connection is asked to go away (GOAWAY), so
    /// long-lived gRPC clients rebalance across replicas; 0: never.
    pub max_connection_age_seconds: u64,
    /// Connections the metrics listener and the health listener each hold
    /// open at once; more are closed as they are accepted.
    pub max_probe_connections: usize,
    /// The longest a metrics or health connection lives, idle or not (a
    /// scrape or a probe takes milliseconds).
    pub probe_connection_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batch_size: 1024,
            max_message_bytes: 16 * 1024 * 1024,
            max_client_data_json_bytes: 16 * 1024,
            max_authenticator_data_bytes: 16 * 1024,
            max_signature_bytes: 2048,
            max_challenge_bytes: 1024,
            max_concurrent_rpcs: 0,
            max_request_bytes_in_flight: 64 * 1024 * 1024,
            max_queue_wait_ms: 20,
            max_queued_assertions: 0,
            max_concurrent_streams: 128,
            max_connection_age_seconds: 300,
            max_probe_connections: 64,
            probe_connection_seconds: 30,
        }
    }
}

/// `[pool]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSection {
    /// Verification threads; 0 means one per CPU core.
    pub threads: usize,
}

/// `[adoption]`: what admins see of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdoptionSection {
    /// Seconds between refreshes of the adoption gauges
    /// (`assertd_credentials`, `assertd_users_by_strongest_credential`):
    /// two grouped queries per relying party each time; 0: off.
    pub gauges_interval_seconds: u64,
    /// Log lines a second (at most) showing an assertion a report-only
    /// profile would have judged differently; 0: none.
    pub report_only_log_per_second: u32,
}

impl Default for AdoptionSection {
    fn default() -> Self {
        Self { gauges_interval_seconds: 300, report_only_log_per_second: 1 }
    }
}
