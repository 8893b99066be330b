//! The store's vocabulary, shared by every concern and backend: errors,
//! changes, counter updates and results, challenge uses, user risk. Below
//! everything but the record it names.

use crate::record::StoredCredential;

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
    /// Events were appended (by any replica): watchers read the log
    /// again.
    Events,
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

/// The state an allowed sign-in leaves on its credential record (WebAuthn
/// L3 §7.2 step 24 (update record)): the backup state it reported, and
/// whether it initialises `uvInitialized`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUpdate {
    /// The relying party.
    pub rp_id: String,
    /// The credential.
    pub credential_id: Vec<u8>,
    /// BS as the sign-in reported it.
    pub backup_state: bool,
    /// Set `uvInitialized` (never cleared).
    pub uv_initialized: bool,
}

/// What [`Credentials::replace`](crate::Credentials::replace) did.
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
/// Whether this binary (it knows `known` migrations) may run on a schema
/// at version `found` > `known` whose `schema_compat.readable_from` is
/// `floor` (none: a release from before the table, or no row): only when
/// the later release's migrations since `known` only added. Logs the
/// rollback it allows.
pub(crate) fn may_run_on_newer(found: usize, known: usize, floor: Option<usize>) -> Result<(), StoreError> {
    match floor {
        Some(floor) if floor <= known => {
            tracing::warn!(
                schema = found,
                this_release = known,
                readable_from = floor,
                "the database schema is a later release's, which keeps it readable by this one: running on it (a rollback); the later release's additions are left alone"
            );
            Ok(())
        }
        _ => Err(newer_schema(found, known)),
    }
}

pub(crate) fn newer_schema(found: usize, known: usize) -> StoreError {
    StoreError::Corrupt(format!(
        "database schema version {found} is newer than this assertd ({known}): it was upgraded by a later release. \
         and it does not keep the schema readable by this one. Roll forward to that release, or undo migrations {from} to {found} as docs/upgrades.md shows and start this one again",
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

/// What [`Credentials::create_with_challenge`](crate::Credentials::create_with_challenge) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Stored, and the challenge's use recorded.
    Created(Box<StoredCredential>),
    /// The id exists: nothing stored; the challenge's use recorded.
    AlreadyRegistered,
    /// The challenge was used before: nothing written.
    ChallengeReplayed,
    /// The temporary access pass cannot be redeemed: no credential stored,
    /// the challenge's use recorded.
    PassRefused(PassRefusal),
}

/// Why a pass that was found cannot be redeemed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassRefusal {
    /// No such pass (never issued to this user, or pruned).
    Invalid,
    /// Past its expiry.
    Expired,
    /// Revoked, or replaced by a newer pass of the same user.
    Revoked,
    /// A one-time pass already redeemed.
    Used,
}
