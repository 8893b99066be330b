//! Credential storage for assertd: the store traits (one per concern,
//! [`CredentialStore`] for all of them), the embedded SQLite and the
//! PostgreSQL backends, and the [`KeyCache`] that keeps hot credentials
//! parsed in memory.
//!
//! What this crate does **not** do: it verifies no assertion and makes no
//! policy decision. It stores records, runs the batched signature-counter
//! compare-and-set, and caches prepared keys.

mod cache;
mod counters;
mod events;
mod passes;
mod postgres;
mod record;
mod row;
mod sqlite;
mod stats;
mod store;
mod types;

pub use cache::{CacheConfig, CachedCredential, KeyCache, Lookup};
pub use events::{Event, NewEvent};
pub use passes::AccessPass;
pub use postgres::{PostgresConfig, PostgresStore, PostgresTls, ResolvedTls, RootCert, SslMode, resolve_tls};
pub use record::{
    InvalidCredential, MAX_CREDENTIAL_ID_LEN, MAX_PUBLIC_KEY_LEN, MAX_TRUST_ANCHOR_LEN, MAX_USER_HANDLE_LEN, StoredCredential,
};
pub use sqlite::SqliteStore;
pub use sqlite::backup::{BackupReport, backup as sqlite_backup};
pub use stats::{StatsGroup, StatsRow, TRANSPORTS};
pub use store::{
    AccessPasses, ChallengeLedger, CredentialStats, CredentialStore, Credentials, Deliveries, Events, Health, MetadataSerial, UserCursor,
    UserRisks,
};
pub use types::{
    ChallengeUse, Change, CounterResult, CounterUpdate, PassRefusal, Registered, Replaced, StateUpdate, StoreError, UserRisk, UserRiskLevel,
};
