//! Credential storage for assertd: the [`CredentialStore`] trait, the
//! embedded SQLite backend, and the [`KeyCache`] that keeps hot credentials
//! parsed in memory.
//!
//! What this crate does **not** do: it verifies no assertion and makes no
//! policy decision. It stores records, runs the batched signature-counter
//! compare-and-set, and caches prepared keys.

mod cache;
mod counters;
mod postgres;
mod record;
mod sqlite;

pub use cache::{CacheConfig, CachedCredential, KeyCache, Lookup};
pub use postgres::{PostgresConfig, PostgresStore, PostgresTls, ResolvedTls, RootCert, SslMode, resolve_tls};
pub use record::{
    InvalidCredential, MAX_CREDENTIAL_ID_LEN, MAX_PUBLIC_KEY_LEN, MAX_TRUST_ANCHOR_LEN, MAX_USER_HANDLE_LEN, StoredCredential,
};
pub use sqlite::SqliteStore;

/// A change to a stored credential that another writer made, for caches to
/// drop what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This credential changed (revoked, replaced, created, deleted).
    Credential {
        /// The relying party.
        rp_id: String,
        /// The credential.
        credential_id: Vec<u8>,
    },
    /// This credential's stored sign count left 0 (it is no longer
    /// counter-less): mark the cached entry, do not drop it.
    Counted {
        /// The relying party.
        rp_id: String,
        /// The credential.
        credential_id: Vec<u8>,
    },
    /// This user's risk flag was set or cleared: read it again.
    UserRisk {
        /// The relying party.
        rp_id: String,
        /// The user.
        user_handle: Vec<u8>,
    },
    /// Changes may have been missed (the change feed reconnected): drop
    /// everything.
    All,
}

/// How risky an administrator (or an identity-protection system) flagged a
/// user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserRiskLevel {
    /// Medium: by default, sign-ins step up.
    Medium,
    /// High: by default, sign-ins are denied.
    High,
}

impl UserRiskLevel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            other => Err(StoreError::Corrupt(format!("user risk level {other:?}"))),
        }
    }
}

/// A user flagged at risk, until it expires or is cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRisk {
    /// The relying party.
    pub rp_id: String,
    /// The user.
    pub user_handle: Vec<u8>,
    /// The level.
    pub level: UserRiskLevel,
    /// When the flag lapses, Unix milliseconds; `None`: until cleared.
    pub expires_at_ms: Option<i64>,
    /// Why (free text from the caller, for people).
    pub note: String,
    /// When it was set, Unix milliseconds.
    pub set_at_ms: i64,
}

use async_trait::async_trait;

impl StoreError {
    /// Whether this is a connectivity failure (see [`StoreError::Unreachable`]).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached, dropped the connection, or did not
    /// answer in time: a connectivity failure. Only this one lets the
    /// outage journal check counters from the replica's memory.
    #[error("credential store unreachable: {0}")]
    Unreachable(String),
    /// The store answered with an error (a lock or statement timeout, a
    /// serialization failure, a busy SQLite database); retrying later may
    /// succeed, but nothing may be answered from memory instead.
    #[error("credential store unavailable: {0}")]
    Unavailable(String),
    /// The store's settings are wrong (an invalid URL, conflicting or
    /// unsafe TLS settings, an unreadable certificate file): fix the config.
    #[error("credential store settings: {0}")]
    Config(String),
    /// The store answered with data it should never hold (e.g. a negative
    /// sign count); an operator must look.
    #[error("credential store data is corrupt: {0}")]
    Corrupt(String),
}

/// One assertion's signature counter, to compare and set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterUpdate {
    /// The relying party.
    pub rp_id: String,
    /// The credential.
    pub credential_id: Vec<u8>,
    /// The count the authenticator reported.
    pub received: u32,
}

/// What [`CredentialStore::replace`] did.
// An admin write's answer, built once per call: not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// Replaced; the record as stored now.
    Replaced(StoredCredential),
    /// No credential with this id at the relying party.
    NotFound,
    /// The credential belongs to another user: nothing was written.
    OtherUser,
}

/// The result of one [`CounterUpdate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterResult {
    /// Accepted: the count grew (and was stored) or both counts are zero.
    Advanced,
    /// Refused: the stored or received count is non-zero and the received
    /// one is not greater. Nothing was written.
    Regressed {
        /// The stored count at the time of this update.
        stored: u32,
    },
    /// The credential was revoked since it was looked up.
    Revoked,
    /// The credential no longer exists.
    NotFound,
}

/// The refusal of a schema newer than this binary (a rollback past a
/// migration), with the way out.
pub(crate) fn newer_schema(found: usize, known: usize) -> StoreError {
    StoreError::Corrupt(format!(
        "database schema version {found} is newer than this assertd ({known}): it was upgraded by a later release. \
         Roll forward to that release, or undo migrations {from} to {found} as docs/upgrades.md shows (they only add tables) and start this one again",
        from = known + 1
    ))
}

/// One use of a server-issued challenge, recorded so that it is the only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeUse {
    /// SHA-256 of the challenge.
    pub id: [u8; 32],
    /// Until when the record must be kept (the challenge's expiry plus the
    /// allowed clock skew), Unix milliseconds: after that the challenge
    /// itself is refused as expired.
    pub keep_until_ms: i64,
}

/// What [`CredentialStore::create_with_challenge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Stored, and the challenge's use recorded.
    Created(Box<StoredCredential>),
    /// The id exists: nothing stored; the challenge's use recorded.
    AlreadyRegistered,
    /// The challenge was used before: nothing written.
    ChallengeReplayed,
}

/// Where credentials live. Every backend behaves the same: the conformance
/// tests run against each.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// Fetches one credential.
    async fn get(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError>;

    /// Inserts or updates credentials in bulk (the admin's import; validate
    /// them first). On update the stored sign count never goes backwards,
    /// `created_at` is kept, and a revoked credential stays revoked.
    /// Returns the records as stored.
    async fn put_many(&self, records: Vec<StoredCredential>) -> Result<Vec<StoredCredential>, StoreError>;

    /// Stores a new credential (validate it first). `None` when the
    /// credential id already exists at the relying party: nothing is written,
    /// an existing credential is never overwritten by a create.
    async fn create(&self, record: StoredCredential) -> Result<Option<StoredCredential>, StoreError>;

    /// Creates credentials in bulk, in one transaction (validate them
    /// first): true for each one stored, false for an id that already
    /// exists at its relying party (nothing written for it; never
    /// overwritten).
    async fn create_many(&self, records: Vec<StoredCredential>) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(self.create(r).await?.is_some());
        }
        Ok(out)
    }

    /// Replaces the key and registration facts of an existing credential of
    /// the same user (`record.user_handle`): ownership never moves, revoked
    /// stays as stored, the sign count never goes back, `created_at` is kept.
    async fn replace(&self, record: StoredCredential) -> Result<Replaced, StoreError>;

    /// Deletes a credential (an erasure request); the record as it was,
    /// `None` when it does not exist.
    async fn delete(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError>;

    /// Marks a credential revoked; `None` when it does not exist.
    async fn revoke(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError>;

    /// Every credential of one user at one RP, oldest first.
    async fn list_by_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<StoredCredential>, StoreError>;

    /// Compares and sets signature counters for a whole batch in one round
    /// trip, in batch order: the result is as if the updates ran one after
    /// another, so the same count twice passes once. `now_ms` stamps
    /// `last_used_at` on credentials whose count is written. It never
    /// changes BE: an accepted upgrade is recorded after policy, by
    /// [`CredentialStore::set_backup_eligible`].
    async fn advance_sign_counts(&self, updates: std::sync::Arc<[CounterUpdate]>, now_ms: i64) -> Result<Vec<CounterResult>, StoreError> {
        Ok(self.settle_sign_ins(updates, Vec::new().into(), now_ms).await?.0)
    }

    /// One batch of sign-ins, in one transaction: the sign counts as
    /// [`CredentialStore::advance_sign_counts`] and the challenge uses as
    /// [`CredentialStore::consume_challenges`], both or neither. An error
    /// means nothing was written, so a retryable verdict has changed
    /// nothing (no count a retry would find "regressed", no challenge it
    /// would find "replayed").
    async fn settle_sign_ins(
        &self,
        updates: std::sync::Arc<[CounterUpdate]>,
        uses: std::sync::Arc<[ChallengeUse]>,
        now_ms: i64,
    ) -> Result<(Vec<CounterResult>, Vec<bool>), StoreError>;

    /// Records BE = true on these credentials (an upgrade a profile accepted
    /// and a verdict allowed; revoked credentials are left alone).
    async fn set_backup_eligible(&self, keys: Vec<(String, Vec<u8>)>) -> Result<(), StoreError>;

    /// Sets `last_used_at` on these credentials (batched by the caller, at
    /// most once per credential per interval).
    async fn touch(&self, keys: Vec<(String, Vec<u8>)>, now_ms: i64) -> Result<(), StoreError>;

    /// Up to `limit` credentials after `after` (by rp_id, credential_id), in
    /// that order: export in pages, with bounded memory.
    async fn page(&self, after: Option<(String, Vec<u8>)>, limit: usize) -> Result<Vec<StoredCredential>, StoreError>;

    /// Records the uses of server-issued challenges in one atomic round
    /// trip: `true` for a use that is the first of its id (it is recorded),
    /// `false` for a replay (recorded before, by any replica, or earlier in
    /// `uses`). Durable when it answers.
    async fn consume_challenges(&self, uses: std::sync::Arc<[ChallengeUse]>) -> Result<Vec<bool>, StoreError> {
        Ok(self.settle_sign_ins(Vec::new().into(), uses, 0).await?.1)
    }

    /// Stores the credential of a registration that carried a server-issued
    /// challenge and records the challenge's use, in one transaction: a
    /// replayed challenge writes nothing ([`Registered::ChallengeReplayed`]);
    /// an id already registered keeps the use recorded (the ceremony
    /// reached a final verdict) and writes no credential
    /// ([`Registered::AlreadyRegistered`]); an error wrote nothing.
    async fn create_with_challenge(&self, record: StoredCredential, challenge: ChallengeUse) -> Result<Registered, StoreError>;

    /// The FIDO metadata serial (`no`) in force, kept across restarts and
    /// shared by every replica: raised to `number` when that is higher;
    /// returns the serial in force after the call (higher than `number`
    /// when an older BLOB was loaded).
    async fn raise_metadata_serial(&self, number: u64, now_ms: i64) -> Result<u64, StoreError>;

    /// Sets the metadata serial in force to `number`, lower or not: the
    /// operator's deliberate rollback (`assertd metadata accept`).
    async fn set_metadata_serial(&self, number: u64, now_ms: i64) -> Result<(), StoreError>;

    /// Forgets challenge uses kept until more than `margin_ms` before now:
    /// before `now_ms` (the caller's clock) and, where the store has a
    /// clock of its own (PostgreSQL), before that clock too, so one
    /// replica's clock running ahead cannot cut the records short. How
    /// many it forgot.
    async fn prune_challenges(&self, now_ms: i64, margin_ms: i64) -> Result<u64, StoreError>;

    /// Flags a user at risk (replacing an earlier flag of the same user).
    async fn set_user_risk(&self, risk: UserRisk) -> Result<(), StoreError>;

    /// Clears a user's flag; whether there was one.
    async fn clear_user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<bool, StoreError>;

    /// One user's flag, expired or not.
    async fn user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<Option<UserRisk>, StoreError>;

    /// Every flag not expired at `now_ms`.
    async fn user_risks(&self, now_ms: i64) -> Result<Vec<UserRisk>, StoreError>;

    /// Revokes every credential of a user; the ids it revoked (those
    /// already revoked are left out).
    async fn revoke_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether the change feed is connected; `None` for a backend without
    /// one.
    fn change_feed_up(&self) -> Option<bool> {
        None
    }

    /// Changes made by other writers (other replicas, other systems), where
    /// the backend can see them. `None`: this process is the only writer.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}
