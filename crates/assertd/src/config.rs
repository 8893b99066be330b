//! The TOML configuration: listeners, data directory, relying parties, key
//! cache, limits, CPU pool. Every key is documented in README.md.

use crate::authz::{ClientConfig, ClientTable};
use crate::profiles::{ProfileConfig, RegressionSetting, RpProfileKeys, UserVerificationSetting, profile_from_rp_keys};
use assertd_policy::Profile;
use assertd_store::CacheConfig;
use assertd_verify::RelyingParty;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    pub allow_plaintext: bool,
    /// A plaintext listener serving only `grpc.health.v1` (for probes that
    /// cannot present client certificates, e.g. the kubelet's).
    #[serde(default)]
    pub health_listen: Option<SocketAddr>,
    /// Callers and what they may do; none: authorization off.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
}

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

fn store_table_or_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StoreSection, D::Error> {
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
#[derive(Debug, Clone, Deserialize)]
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
    /// Readiness turns NOT_SERVING once the store has been unreachable this
    /// long.
    pub readiness_grace_seconds: u64,
    /// `last_used_at` is written at most once per credential per interval
    /// (per cache entry: a credential reloaded into the cache may be
    /// written once more).
    pub last_used_interval_seconds: u64,
    /// What counters do while the store is unreachable.
    pub counter_outage: CounterOutage,
    /// Most counter updates queued during an outage.
    pub max_deferred_counters: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            url: None,
            pool_size: 16,
            timeout_ms: 2000,
            readiness_grace_seconds: 10,
            last_used_interval_seconds: 60,
            counter_outage: CounterOutage::Defer,
            max_deferred_counters: 100_000,
        }
    }
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
            allow_plaintext: false,
            health_listen: None,
            clients: Vec::new(),
        }
    }
}

/// One `[[relying_parties]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelyingPartyConfig {
    /// The RP ID (a registrable domain suffix of the origins).
    pub id: String,
    /// Exact origins accepted in clientDataJSON, e.g.
    /// `https://login.example.com` or `android:apk-key-hash:<hash>`.
    pub origins: Vec<String>,
    /// Also accept subdomains of the listed web origins (same scheme/port).
    #[serde(default)]
    pub allow_subdomains: bool,
    /// Legacy FIDO U2F AppID, for credentials registered through U2F.
    #[serde(default)]
    pub appid: Option<String>,
    /// The profile used when an assertion names none. Unset: the built-in
    /// default profile, adjusted by the RP-level keys below.
    #[serde(default)]
    pub default_profile: Option<String>,
    /// RP-level profile key, for RPs without a `default_profile`.
    #[serde(default)]
    pub user_verification: Option<UserVerificationSetting>,
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
    pub sign_count_regression: Option<RegressionSetting>,
}

impl RelyingPartyConfig {
    /// The RP-level shorthand for a profile's keys (kept from before named
    /// profiles existed), refused alongside `default_profile`.
    pub fn profile_keys(&self) -> RpProfileKeys {
        RpProfileKeys {
            user_verification: self.user_verification,
            allow_cross_origin: self.allow_cross_origin,
            allowed_top_origins: self.allowed_top_origins.clone(),
            allow_legacy_algorithms: self.allow_legacy_algorithms,
            sign_count_regression: self.sign_count_regression,
        }
    }
}

/// `[cache]`.
#[derive(Debug, Clone, Copy, Deserialize)]
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
#[derive(Debug, Clone, Copy, Deserialize)]
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
    /// Unary verification RPCs admitted at once; beyond, RESOURCE_EXHAUSTED
    /// at once instead of an unbounded queue. 0: 16 per verification thread.
    pub max_concurrent_rpcs: usize,
    /// Assertions admitted and not yet answered, across unary RPCs and
    /// stream messages; a unary RPC that would exceed it gets
    /// RESOURCE_EXHAUSTED at once, a stream message waits. 0: 192 per
    /// verification thread.
    pub max_queued_assertions: usize,
    /// HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Seconds after which a connection is asked to go away (GOAWAY), so
    /// long-lived gRPC clients rebalance across replicas; 0: never.
    pub max_connection_age_seconds: u64,
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
            max_queued_assertions: 0,
            max_concurrent_streams: 128,
            max_connection_age_seconds: 300,
        }
    }
}

/// `[pool]`.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSection {
    /// Verification threads; 0 means one per CPU core.
    pub threads: usize,
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
    #[error("invalid config {path}: {key}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        config.validate().map_err(|(key, problem)| ConfigError::Invalid { path: path.to_owned(), key, problem })?;
        Ok(config)
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_batch_size", l.max_batch_size),
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.max_client_data_json_bytes", l.max_client_data_json_bytes),
            ("limits.max_authenticator_data_bytes", l.max_authenticator_data_bytes),
            ("limits.max_signature_bytes", l.max_signature_bytes),
            ("limits.max_challenge_bytes", l.max_challenge_bytes),
        ] {
            if v == 0 {
                return Err((key.into(), "must be greater than 0".into()));
            }
        }
        if self.store.timeout_ms == 0 {
            return Err(("store.timeout_ms".into(), "must be greater than 0".into()));
        }
        if self.store.pool_size == 0 {
            return Err(("store.pool_size".into(), "must be greater than 0".into()));
        }
        if self.store.last_used_interval_seconds == 0 {
            return Err(("store.last_used_interval_seconds".into(), "must be greater than 0".into()));
        }
        if self.store.backend == Backend::Postgres && self.database_url().is_none() {
            return Err(("store.url".into(), "backend = \"postgres\" needs a url (or ASSERTD_DATABASE_URL)".into()));
        }
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.allow_plaintext {
            return Err((
                "listen".into(),
                format!(
                    "{} is not a loopback address: configure [tls], or set allow_plaintext = true if a mesh sidecar terminates TLS",
                    self.listen
                ),
            ));
        }
        if let Some(t) = &self.tls
            && t.handshake_timeout_ms == 0
        {
            return Err(("tls.handshake_timeout_ms".into(), "must be greater than 0".into()));
        }
        ClientTable::build(&self.clients)?;
        let mutual = self.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
        if let Some(i) = self.clients.iter().position(|c| !c.certificate_names.is_empty())
            && !mutual
        {
            return Err((format!("clients[{i}].certificate_names"), "certificate identities need [tls] client_ca_file".into()));
        }
        if self.cache.max_entries == 0 {
            return Err(("cache.max_entries".into(), "must be greater than 0".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, rp) in self.relying_parties.iter().enumerate() {
            let key = |k: &str| format!("relying_parties[{i}].{k}");
            if rp.id.is_empty() || rp.id.contains(['/', ':', ' ']) {
                return Err((key("id"), format!("{:?} is not an RP ID (a domain, e.g. \"login.example.com\")", rp.id)));
            }
            if !seen.insert(rp.id.as_str()) {
                return Err((key("id"), format!("{:?} is configured twice", rp.id)));
            }
            if rp.origins.is_empty() {
                return Err((key("origins"), "at least one origin is required".into()));
            }
            for o in &rp.origins {
                let web = o.starts_with("https://") || o.starts_with("http://");
                if !(web || o.starts_with("android:apk-key-hash:")) || o.ends_with('/') {
                    return Err((
                        key("origins"),
                        format!("{o:?} is not an origin (\"https://host[:port]\" without a path, or \"android:apk-key-hash:...\")"),
                    ));
                }
            }
            if let Some(name) = &rp.default_profile {
                if !self.profiles.contains_key(name) {
                    return Err((key("default_profile"), format!("profile {name:?} is not defined under [profiles]")));
                }
                if let Some(k) = rp.profile_keys().first_set() {
                    return Err((key(k), format!("set it in profile {name:?}: RP-level profile keys only apply without default_profile")));
                }
            }
            profile_from_rp_keys(&rp.profile_keys()).map_err(|(k, p)| (key(&k), p))?;
        }
        for (name, p) in &self.profiles {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err((format!("profiles.{name}"), "profile names use letters, digits, '-' and '_'".into()));
            }
            p.resolve().map_err(|(k, problem)| (format!("profiles.{name}.{k}"), problem))?;
        }
        Ok(())
    }

    /// The PostgreSQL URL: `ASSERTD_DATABASE_URL`, else `store.url`.
    pub fn database_url(&self) -> Option<String> {
        std::env::var("ASSERTD_DATABASE_URL").ok().filter(|u| !u.is_empty()).or_else(|| self.store.url.clone())
    }

    /// The policy this config describes: prepared relying parties and
    /// profiles. Call on a validated config.
    pub fn policy(&self) -> Result<Policy, (String, String)> {
        let mut profiles = HashMap::new();
        for (name, p) in &self.profiles {
            profiles.insert(name.clone(), Arc::new(p.resolve().map_err(|(k, e)| (format!("profiles.{name}.{k}"), e))?));
        }
        let mut rps = HashMap::new();
        for (i, c) in self.relying_parties.iter().enumerate() {
            let (name, profile) = match &c.default_profile {
                Some(name) => {
                    let p = profiles
                        .get(name)
                        .cloned()
                        .ok_or_else(|| (format!("relying_parties[{i}].default_profile"), format!("profile {name:?} is not defined")))?;
                    (name.clone(), p)
                }
                None => (
                    "(built-in)".to_owned(),
                    Arc::new(profile_from_rp_keys(&c.profile_keys()).map_err(|(k, e)| (format!("relying_parties[{i}].{k}"), e))?),
                ),
            };
            let rp = RelyingParty::new(c.id.clone(), c.origins.clone(), c.allow_subdomains, c.appid.as_deref());
            rps.insert(c.id.clone(), Arc::new(RpEntry { rp, default_profile: profile, default_profile_name: name }));
        }
        let clients = ClientTable::build(&self.clients)?;
        Ok(Policy { rps, profiles, clients })
    }

    /// Settings that need a restart to change, for comparing on reload.
    pub fn restart_only(&self) -> String {
        format!(
            "{:?}",
            (
                self.listen,
                self.metrics_listen,
                &self.data_dir,
                self.limits_tuple(),
                self.cache_tuple(),
                self.pool.threads,
                format!("{:?}", self.store),
                (&self.tls, self.allow_plaintext, self.health_listen)
            )
        )
    }

    fn limits_tuple(&self) -> String {
        format!("{:?}", self.limits)
    }

    fn cache_tuple(&self) -> [u64; 3] {
        [self.cache.max_entries, self.cache.ttl_seconds, self.cache.negative_ttl_seconds]
    }
}

/// Relying parties and named profiles: everything a reload can change.
#[derive(Debug, Default)]
pub struct Policy {
    /// Relying parties by RP ID.
    pub rps: HashMap<String, Arc<RpEntry>>,
    /// Named profiles.
    pub profiles: HashMap<String, Arc<Profile>>,
    /// Callers and their grants.
    pub clients: ClientTable,
}

/// A relying party ready for verification.
#[derive(Debug)]
pub struct RpEntry {
    /// Verification settings.
    pub rp: RelyingParty,
    /// The profile for assertions that name none.
    pub default_profile: Arc<Profile>,
    /// Its name ("(built-in)" for the RP-level keys).
    pub default_profile_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use assertd_policy::{RegressionAction, UserVerification};

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("assertd.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn full_config_parses() {
        let (_d, p) = write(
            r#"
listen = "127.0.0.1:7000"
data_dir = "/tmp/x"
[[relying_parties]]
id = "login.example.com"
origins = ["https://login.example.com", "android:apk-key-hash:abc"]
allow_cross_origin = true
allowed_top_origins = ["https://portal.example.com"]
user_verification = "required"
sign_count_regression = "step_up"
[cache]
ttl_seconds = 10
[limits]
max_batch_size = 8
"#,
        );
        let c = Config::load(&p).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.limits.max_batch_size, 8);
        assert_eq!(c.limits.max_signature_bytes, Limits::default().max_signature_bytes);
        assert_eq!(c.cache.ttl_seconds, 10);
        let rps = c.policy().unwrap().rps;
        let rp = &rps["login.example.com"];
        assert_eq!(rp.default_profile.user_verification, UserVerification::Required);
        assert_eq!(rp.default_profile.sign_count_regression, RegressionAction::StepUp);
        assert!(rp.rp.origin_allowed("android:apk-key-hash:abc"));
    }

    #[test]
    fn store_shorthand_and_table() {
        let c: Config = toml::from_str("store = \"postgres\"\n").unwrap();
        assert_eq!((c.store.backend, c.store.pool_size), (Backend::Postgres, StoreSection::default().pool_size));
        let c: Config = toml::from_str("[store]\nbackend = \"postgres\"\nurl = \"postgres://a@b/c\"\npool_size = 3\n").unwrap();
        assert_eq!((c.store.backend, c.store.pool_size, c.store.url.as_deref()), (Backend::Postgres, 3, Some("postgres://a@b/c")));
        let e = toml::from_str::<Config>("store = \"mysql\"\n").unwrap_err().to_string();
        assert!(e.contains("store must be"), "{e}");
        let e = toml::from_str::<Config>("[store]\nbackend = \"postgres\"\nurll = 1\n").unwrap_err().to_string();
        assert!(e.contains("store must be"), "{e}");
    }

    #[test]
    fn shipped_example_is_valid() {
        let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/assertd.toml")).unwrap();
        assert_eq!(c.relying_parties.len(), 3);
        let rps = c.policy().unwrap().rps;
        assert!(rps["example.org"].rp.appid_hash().is_some());
        assert_eq!(rps["admin.example.com"].default_profile.user_verification, UserVerification::Required);
    }

    #[test]
    fn errors_name_file_and_key() {
        let (_d, p) = write("listen = \"127.0.0.1:7000\"\nlisten_typo = 1\n");
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("assertd.toml") && e.contains("listen_typo") && e.contains("line 2"), "{e}");

        let (_d, p) = write("[[relying_parties]]\nid = \"a.example\"\norigins = [\"https://a.example/\"]\n");
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("relying_parties[0].origins"), "{e}");

        let (_d, p) =
            write("[[relying_parties]]\nid = \"a.example\"\norigins = [\"https://a.example\"]\nuser_verification = \"sometimes\"\n");
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("sometimes") && e.contains("line 4"), "{e}");

        let (_d, p) = write("[limits]\nmax_batch_size = 0\n");
        assert!(Config::load(&p).unwrap_err().to_string().contains("limits.max_batch_size"));

        let (_d, p) = write(
            "[[relying_parties]]\nid = \"a\"\norigins = [\"https://a\"]\n[[relying_parties]]\nid = \"a\"\norigins = [\"https://a\"]\n",
        );
        assert!(Config::load(&p).unwrap_err().to_string().contains("configured twice"));

        assert!(Config::load(Path::new("/nonexistent/assertd.toml")).unwrap_err().to_string().contains("cannot read"));
    }
}
