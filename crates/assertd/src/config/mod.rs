//! The TOML configuration: listeners, data directory, relying parties,
//! profiles, clients, and the plain settings in `sections`. Every key is
//! documented in docs/configuration.md.
//!
//! A file is parsed ([`Config::load`]) and then compiled once
//! ([`Config::compile`]) into the runtime [`Reloadable`]: every value serde
//! cannot check is checked there, and every error names its key.

mod access_pass;
mod attestation;
mod challenges;
mod clients;
mod compile;
mod invalid;
mod locate;
mod metadata;
mod profile;
mod sections;
mod signals;
mod tracing;
pub mod well_known;

pub use access_pass::{AccessPassPolicy, AccessPassSection};
pub use attestation::{AttestationRootConfig, AttestationTrust, RegistrationSection};
pub use challenges::{ChallengeKeyConfig, ChallengesSection, IssuedChallenges};
pub use clients::ClientConfig;
pub use invalid::Invalid;
pub use metadata::{LoadedMetadata, MetadataFormat, MetadataSection, WhenStale, stamp as metadata_stamp};
pub use profile::{KeyRestrictionsConfig, ProfileConfig, RiskConfig, format_uuid, parse_uuid};
pub use sections::{AdoptionSection, Backend, CacheSection, CounterOutage, Limits, PoolSection, StoreSection, TlsSection};
pub use signals::{EVENT_TYPES as SSF_EVENT_TYPES, EventsSection, Receiver, ReceiverConfig, SharedSignals, SharedSignalsSection};
pub use tracing::TracingSection;

use assertd_policy::{Profile, RegressionAction, UserVerification};
use assertd_verify::RelyingParty;
use sections::store_table_or_name;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The whole configuration file. Unknown keys are errors, so a typo cannot
/// silently leave a safety setting at its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: SocketAddr,
    /// Directory of the embedded SQLite store.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[serde(default = "default_drain")]
    pub shutdown_grace_seconds: u64,
    /// Seconds between checks of the config file for changes (0: only
    /// SIGHUP reloads).
    #[serde(default = "default_watch")]
    pub config_watch_interval_seconds: u64,
    /// Relying parties; an assertion for any other RP gets RP_UNKNOWN.
    #[serde(default)]
    pub relying_parties: Vec<RelyingPartyConfig>,
    /// Named passkey profiles.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// Key cache.
    #[serde(default)]
    pub cache: CacheSection,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// CPU pool.
    #[serde(default)]
    pub pool: PoolSection,
    /// Credential store: a `[store]` table, or the shorthand
    /// `store = "sqlite" | "postgres"` (every other store key at its default;
    /// the URL from `ASSERTD_DATABASE_URL`).
    #[serde(default, deserialize_with = "store_table_or_name")]
    pub store: StoreSection,
    /// TLS for the gRPC listener (mutual when `client_ca_file` is set).
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Serve plaintext gRPC on a non-loopback `listen` address (behind a
    /// mesh sidecar that terminates mTLS). Without `[tls]`, a non-loopback
    /// listener is refused unless this is true.
    #[serde(default)]
    pub insecure_allow_plaintext: bool,
    /// The old name of `insecure_allow_plaintext`, still read (with a
    /// deprecation warning at every load).
    #[serde(default, rename = "allow_plaintext")]
    pub deprecated_allow_plaintext: Option<bool>,
    /// Serve a non-loopback `listen` address without `[[clients]]`: any
    /// caller that reaches the port may verify and write credentials. Refused
    /// unless this is true; logged at every start.
    #[serde(default)]
    pub insecure_allow_unauthenticated: bool,
    /// A plaintext listener serving only `grpc.health.v1` (for probes that
    /// cannot present client certificates, e.g. the kubelet's).
    #[serde(default)]
    pub health_listen: Option<SocketAddr>,
    /// Callers and what they may do; none: authorization off.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Server-issued challenges (off without keys).
    #[serde(default)]
    pub challenges: ChallengesSection,
    /// Temporary access passes (off without keys).
    #[serde(default)]
    pub temporary_access_pass: AccessPassSection,
    /// The event log `WatchEvents` streams.
    #[serde(default)]
    pub events: EventsSection,
    /// Adoption gauges and the report-only log.
    #[serde(default)]
    pub adoption: AdoptionSection,
    /// The events as OpenID Shared Signals, pushed (off without receivers).
    #[serde(default)]
    pub shared_signals: SharedSignalsSection,
    /// Root certificates that anchor attestation statements, by format.
    #[serde(default)]
    pub attestation_roots: Vec<AttestationRootConfig>,
    /// Registration settings.
    #[serde(default)]
    pub registration: RegistrationSection,
    /// FIDO MDS3 metadata (off when absent).
    #[serde(default)]
    pub metadata: Option<MetadataSection>,
    /// OpenTelemetry traces (off without an endpoint).
    #[serde(default)]
    pub tracing: TracingSection,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_drain() -> u64 {
    25
}
fn default_watch() -> u64 {
    5
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            metrics_listen: default_metrics_listen(),
            data_dir: default_data_dir(),
            shutdown_grace_seconds: default_drain(),
            config_watch_interval_seconds: default_watch(),
            relying_parties: Vec::new(),
            profiles: BTreeMap::new(),
            cache: CacheSection::default(),
            limits: Limits::default(),
            pool: PoolSection::default(),
            store: StoreSection::default(),
            tls: None,
            insecure_allow_plaintext: false,
            deprecated_allow_plaintext: None,
            insecure_allow_unauthenticated: false,
            health_listen: None,
            clients: Vec::new(),
            challenges: ChallengesSection::default(),
            temporary_access_pass: AccessPassSection::default(),
            events: EventsSection::default(),
            adoption: AdoptionSection::default(),
            shared_signals: SharedSignalsSection::default(),
            attestation_roots: Vec::new(),
            registration: RegistrationSection::default(),
            metadata: None,
            tracing: TracingSection::default(),
        }
    }
}

/// One `[[relying_parties]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelyingPartyConfig {
    /// The RP ID (a registrable domain suffix of the origins).
    pub id: String,
    /// The name shown to users in the registration options (`rp.name`);
    /// default: the RP ID.
    #[serde(default)]
    pub name: Option<String>,
    /// Exact origins accepted in clientDataJSON, e.g.
    /// `https://login.example.com` or `android:apk-key-hash:<hash>`.
    pub origins: Vec<String>,
    /// Also accept subdomains of the listed web origins (same scheme/port).
    #[serde(default)]
    pub allow_subdomains: bool,
    /// Accept `http://` origins on hosts other than localhost (plaintext: a
    /// network attacker can run the ceremony). Off by default.
    #[serde(default)]
    pub insecure_allow_http_origins: bool,
    /// Legacy FIDO U2F AppID, for credentials registered through U2F.
    #[serde(default)]
    pub appid: Option<String>,
    /// The profile used when an assertion names none. Unset: the built-in
    /// default profile, adjusted by the RP-level keys below.
    #[serde(default)]
    pub default_profile: Option<String>,
    /// The profiles an assertion for this RP may name besides its default;
    /// unset: none (an assertion that names another profile is denied
    /// `PROFILE_NOT_AUTHORIZED`), so no caller can pick a laxer profile
    /// than the RP's own unless the admin listed it.
    #[serde(default)]
    pub allowed_profiles: Option<Vec<String>>,
    /// Profiles every assertion for this RP is also judged under, reported
    /// (counted, and in the verdict when asked for), never enforced.
    #[serde(default)]
    pub report_only_profiles: Vec<String>,
    /// RP-level profile key, for RPs without a `default_profile`.
    #[serde(default)]
    pub user_verification: Option<UserVerification>,
    /// RP-level profile key, for RPs without a `default_profile`.
    #[serde(default)]
    pub allow_cross_origin: Option<bool>,
    /// RP-level profile key, for RPs without a `default_profile`.
    #[serde(default)]
    pub allowed_top_origins: Option<Vec<String>>,
    /// RP-level profile key, for RPs without a `default_profile`.
    #[serde(default)]
    pub allow_legacy_algorithms: Option<bool>,
    /// RP-level profile key, for RPs without a `default_profile`.
    #[serde(default)]
    pub sign_count_regression: Option<RegressionAction>,
}

impl RelyingPartyConfig {
    /// The RP-level shorthand for a profile's keys (kept from before named
    /// profiles existed), refused alongside `default_profile`.
    fn profile_keys(&self) -> ProfileConfig {
        ProfileConfig {
            user_verification: self.user_verification,
            allow_cross_origin: self.allow_cross_origin,
            allowed_top_origins: self.allowed_top_origins.clone(),
            allow_legacy_algorithms: self.allow_legacy_algorithms,
            sign_count_regression: self.sign_count_regression,
            ..ProfileConfig::default()
        }
    }

    /// The first RP-level profile key that is set, if any.
    fn first_profile_key(&self) -> Option<&'static str> {
        [
            (self.user_verification.is_some(), "user_verification"),
            (self.allow_cross_origin.is_some(), "allow_cross_origin"),
            (self.allowed_top_origins.is_some(), "allowed_top_origins"),
            (self.allow_legacy_algorithms.is_some(), "allow_legacy_algorithms"),
            (self.sign_count_regression.is_some(), "sign_count_regression"),
        ]
        .into_iter()
        .find_map(|(set, k)| set.then_some(k))
    }
}

/// A configuration problem, naming where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config {path}: {key}{}: {problem}", .line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// Where it is set (or its nearest enclosing key), when found.
        line: Option<usize>,
        /// What is wrong.
        problem: String,
    },
}

impl ConfigError {
    /// A compile problem of the file at `path`, with the line its key is
    /// set on when the file says (read again: the problem may come from a
    /// config that flags changed after loading).
    pub fn invalid(path: &Path, e: Invalid) -> Self {
        let line = std::fs::read_to_string(path).ok().and_then(|text| locate::line_of(&text, &e.key));
        Self::Invalid { path: path.to_owned(), line, key: e.key, problem: e.problem }
    }
}

impl Config {
    /// Reads and parses a config file (serde's checks: shapes, types,
    /// unknown keys, with line and column). [`Config::compile`] checks the
    /// rest.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
    }

    /// Reads, parses and compiles a config file; a problem found in
    /// compiling names its key and line.
    pub fn load_compiled(path: &Path) -> Result<(Self, Reloadable), ConfigError> {
        let config = Self::load(path)?;
        let policy = config.compile().map_err(|e| ConfigError::invalid(path, e))?;
        Ok((config, policy))
    }

    /// Whether plaintext beyond loopback was accepted, under the new or the
    /// deprecated name.
    pub fn plaintext_allowed(&self) -> bool {
        self.insecure_allow_plaintext || self.deprecated_allow_plaintext == Some(true)
    }

    /// What a person should hear about this config at every load: deprecated
    /// keys in use, and insecure settings in force.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.deprecated_allow_plaintext.is_some() {
            out.push("allow_plaintext is deprecated: rename it insecure_allow_plaintext".to_owned());
        }
        let beyond_loopback = !self.listen.ip().is_loopback();
        if beyond_loopback && self.tls.is_none() && self.plaintext_allowed() {
            out.push(format!("insecure_allow_plaintext: serving plaintext gRPC on {}", self.listen));
        }
        if self.registration.insecure_allow_sha1_attestation {
            out.push("registration.insecure_allow_sha1_attestation: attestations signed with SHA-1 are trusted".to_owned());
        }
        if beyond_loopback && self.clients.is_empty() && self.insecure_allow_unauthenticated {
            out.push(format!(
                "insecure_allow_unauthenticated: no [[clients]]; every caller that reaches {} may verify and write credentials",
                self.listen
            ));
        }
        out
    }

    /// The PostgreSQL URL: `ASSERTD_DATABASE_URL`, else `store.url`.
    pub fn database_url(&self) -> Option<String> {
        std::env::var("ASSERTD_DATABASE_URL").ok().filter(|u| !u.is_empty()).or_else(|| self.store.url.clone())
    }

    /// Whether `other` differs from this config in a setting that changes
    /// only on restart (listeners, data_dir, cache, limits, pool, store,
    /// TLS).
    pub fn restart_differs(&self, other: &Self) -> bool {
        let key = |c: &Self| {
            (
                c.listen,
                c.metrics_listen,
                c.data_dir.clone(),
                c.limits,
                c.cache,
                c.pool,
                c.store.clone(),
                c.tls.clone(),
                (c.plaintext_allowed(), c.insecure_allow_unauthenticated),
                c.health_listen,
                c.tracing.clone(),
                c.shared_signals.clone(),
            )
        };
        key(self) != key(other)
    }
}

/// Everything a reload can change: relying parties, named profiles,
/// callers, challenge keys, attestation trust and metadata. (Named for
/// what it is, not `Policy`: verdict policy is the `assertd-policy`
/// crate's.)
#[derive(Debug, Default)]
pub struct Reloadable {
    /// Relying parties by RP ID.
    pub rps: HashMap<String, Arc<RpEntry>>,
    /// Named profiles.
    pub profiles: HashMap<String, Arc<Profile>>,
    /// Callers and their grants.
    pub clients: crate::authz::ClientTable,
    /// Server-issued challenges; `None` when no keys are configured.
    pub challenges: Option<Arc<IssuedChallenges>>,
    /// Temporary access passes; `None` when no keys are configured.
    pub access_passes: Option<Arc<AccessPassPolicy>>,
    /// How long events are kept, milliseconds.
    pub events_retention_ms: i64,
    /// `[adoption] report_only_log_per_second`.
    pub report_only_log_per_second: u32,
    /// `[shared_signals]` (read at start); `None` without receivers.
    pub signals: Option<Arc<SharedSignals>>,
    /// What registration trusts.
    pub attestation: Arc<AttestationTrust>,
    /// FIDO metadata; `None` when `[metadata]` is not configured.
    pub metadata: Option<Arc<LoadedMetadata>>,
    /// `[metadata] aaguid_names_file` (empty when not configured).
    pub aaguid_names: Arc<assertd_verify::metadata::AaguidNames>,
}

/// A relying party ready for verification.
#[derive(Debug)]
pub struct RpEntry {
    /// Verification settings.
    pub rp: RelyingParty,
    /// `rp.name` in registration options.
    pub name: String,
    /// The profile for assertions that name none.
    pub default_profile: Arc<Profile>,
    /// Its name ("(built-in)" for the RP-level keys).
    pub default_profile_name: String,
    /// The profiles an assertion may name (besides the default); `None`:
    /// any.
    pub allowed_profiles: Option<std::collections::HashSet<String>>,
    /// The report-only profiles, in the order configured.
    pub report_only: Vec<ReportOnlyProfile>,
}

/// A profile an RP's assertions are also judged under, never enforced.
#[derive(Debug)]
pub struct ReportOnlyProfile {
    /// The RP ID (a metric label).
    pub rp_id: Arc<str>,
    /// The profile's name.
    pub name: Arc<str>,
    /// The profile.
    pub profile: Arc<Profile>,
}

#[cfg(test)]
mod tests;
