//! What a store does, one trait per concern: [`Credentials`], the
//! [`ChallengeLedger`] of issued challenges' single use, [`UserRisks`], the
//! [`AccessPasses`] of recovery, the [`Events`] gateways watch and their
//! push [`Deliveries`], the [`MetadataSerial`] in force, and [`Health`]. A
//! new concern is a new trait; [`CredentialStore`] is every one of them, the bound the server
//! holds a backend by. Every backend behaves the same: the conformance
//! tests run against each.

use crate::events::{Event, NewEvent};
use crate::passes::AccessPass;
use crate::record::StoredCredential;
use crate::stats::{StatsGroup, StatsRow};
use crate::types::{
    ChallengeUse, Change, CounterResult, CounterUpdate, PassRefusal, Registered, Replaced, StateUpdate, StoreError, UserRisk,
};
use async_trait::async_trait;

/// Credential records: reads, writes, and the sign-in and registration
/// transactions that carry a challenge's use with them.
#[async_trait]
pub trait Credentials: Send + Sync + 'static {
    /// Fetches one credential.
    async fn get(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError>;

    /// Fetches several credentials (a batch's cache misses) in one read:
    /// one answer per key, in order. The default asks one at a time.
    async fn get_many(&self, keys: &[(&str, &[u8])]) -> Result<Vec<Option<StoredCredential>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for (rp_id, credential_id) in keys {
            out.push(self.get(rp_id, credential_id).await?);
        }
        Ok(out)
    }

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

    /// How many unrevoked credentials each of these authenticator models
    /// (AAGUIDs) has, per relying party: `(rp_id, aaguid, count)`, counts
    /// above zero only. One pass over the credentials.
    async fn count_by_aaguid(&self, aaguids: Vec<[u8; 16]>) -> Result<Vec<(String, [u8; 16], u64)>, StoreError>;

    /// Revokes every credential of a user; the ids it revoked (those
    /// already revoked are left out).
    async fn revoke_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Compares and sets signature counters for a whole batch in one round
    /// trip, in batch order: the result is as if the updates ran one after
    /// another, so the same count twice passes once. `now_ms` stamps
    /// `last_used_at` on credentials whose count is written. It never
    /// changes BE: an accepted upgrade is recorded after policy, by
    /// [`Credentials::set_backup_eligible`].
    async fn advance_sign_counts(&self, updates: std::sync::Arc<[CounterUpdate]>, now_ms: i64) -> Result<Vec<CounterResult>, StoreError> {
        Ok(self.settle_sign_ins(updates, Vec::new().into(), now_ms).await?.0)
    }

    /// One batch of sign-ins, in one transaction: the sign counts as
    /// [`Credentials::advance_sign_counts`] and the challenge uses as
    /// [`ChallengeLedger::consume_challenges`], both or neither. An error
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

    /// Records what allowed sign-ins reported: `backup_state` as given,
    /// `uv_initialized` set (never cleared); revoked credentials are left
    /// alone.
    async fn record_states(&self, updates: Vec<StateUpdate>) -> Result<(), StoreError>;

    /// Sets `last_used_at` on these credentials (batched by the caller, at
    /// most once per credential per interval).
    async fn touch(&self, keys: Vec<(String, Vec<u8>)>, now_ms: i64) -> Result<(), StoreError>;

    /// Up to `limit` credentials after `after` (by rp_id, credential_id), in
    /// that order: export in pages, with bounded memory.
    async fn page(&self, after: Option<(String, Vec<u8>)>, limit: usize) -> Result<Vec<StoredCredential>, StoreError>;

    /// Stores the credential of a registration that carried a server-issued
    /// challenge and records the challenge's use, in one transaction: a
    /// replayed challenge writes nothing ([`Registered::ChallengeReplayed`]);
    /// an id already registered keeps the use recorded (the ceremony
    /// reached a final verdict) and writes no credential
    /// ([`Registered::AlreadyRegistered`]); an error wrote nothing.
    async fn create_with_challenge(&self, record: StoredCredential, challenge: ChallengeUse) -> Result<Registered, StoreError>;
}

/// The single use of server-issued challenges, shared by every replica.
#[async_trait]
pub trait ChallengeLedger: Credentials {
    /// Records the uses of server-issued challenges in one atomic round
    /// trip: `true` for a use that is the first of its id (it is recorded),
    /// `false` for a replay (recorded before, by any replica, or earlier in
    /// `uses`). Durable when it answers.
    async fn consume_challenges(&self, uses: std::sync::Arc<[ChallengeUse]>) -> Result<Vec<bool>, StoreError> {
        Ok(self.settle_sign_ins(Vec::new().into(), uses, 0).await?.1)
    }

    /// Forgets challenge uses kept until more than `margin_ms` before now:
    /// before `now_ms` (the caller's clock) and, where the store has a
    /// clock of its own (PostgreSQL), before that clock too, so one
    /// replica's clock running ahead cannot cut the records short. How
    /// many it forgot.
    async fn prune_challenges(&self, now_ms: i64, margin_ms: i64) -> Result<u64, StoreError>;
}

/// Users flagged at risk.
#[async_trait]
pub trait UserRisks: Send + Sync + 'static {
    /// Flags a user at risk (replacing an earlier flag of the same user).
    async fn set_user_risk(&self, risk: UserRisk) -> Result<(), StoreError>;

    /// Deletes a user's flag, only if it was set at `set_at_ms` when that
    /// is given; whether it deleted one.
    async fn delete_user_risk(&self, rp_id: &str, user_handle: &[u8], set_at_ms: Option<i64>) -> Result<bool, StoreError>;

    /// Clears a user's flag; whether there was one.
    async fn clear_user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<bool, StoreError> {
        self.delete_user_risk(rp_id, user_handle, None).await
    }

    /// Clears a user's flag only if it is still the one set at `set_at_ms`
    /// (a sign-in remediated it; a flag set again since stays); whether it
    /// cleared one.
    async fn remediate_user_risk(&self, rp_id: &str, user_handle: &[u8], set_at_ms: i64) -> Result<bool, StoreError> {
        self.delete_user_risk(rp_id, user_handle, Some(set_at_ms)).await
    }

    /// One user's flag, expired or not.
    async fn user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<Option<UserRisk>, StoreError>;

    /// Deletes the flags expired at `now_ms` (on PostgreSQL, by the earlier
    /// of `now_ms` and the database's clock), returning them: each expiry
    /// is reported once, by whichever replica pruned it.
    async fn prune_user_risks(&self, now_ms: i64) -> Result<Vec<UserRisk>, StoreError>;

    /// Every flag not expired at `now_ms`.
    async fn user_risks(&self, now_ms: i64) -> Result<Vec<UserRisk>, StoreError>;
}

/// Temporary access passes: issued, listed, revoked, redeemed once across
/// every replica.
#[async_trait]
pub trait AccessPasses: Credentials {
    /// Stores `pass` and revokes, at `pass.created_at_ms`, every pass of
    /// the same user still usable then, in one transaction that excludes
    /// any other issue for that user: at most one usable pass per user. The
    /// ids it revoked.
    async fn issue_pass(&self, pass: AccessPass) -> Result<Vec<String>, StoreError>;

    /// Revokes a pass at `now_ms` (one revoked before stays as it was); the
    /// pass as stored after, `None` when there is no such pass.
    async fn revoke_pass(&self, rp_id: &str, pass_id: &str, now_ms: i64) -> Result<Option<AccessPass>, StoreError>;

    /// Every pass of a user not pruned yet, usable or not, newest first.
    async fn passes(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<AccessPass>, StoreError>;

    /// Redeems a pass at `now_ms`, atomically across replicas: its row is
    /// locked, checked ([`AccessPass::refusal`]) and its use recorded, so a
    /// one-time pass is redeemed once. The pass as stored after, or why not.
    async fn redeem_pass(&self, rp_id: &str, pass_id: &str, now_ms: i64) -> Result<Result<AccessPass, PassRefusal>, StoreError>;

    /// Stores the credential of a registration that redeems pass
    /// `record.access_pass_id`, in one transaction with the challenge's use
    /// (when it carried an issued challenge) and the pass's: a replayed
    /// challenge writes nothing; a pass that cannot be redeemed
    /// ([`Registered::PassRefused`]) or an id already registered keeps the
    /// challenge's use (a final verdict) but leaves the pass unredeemed and
    /// stores no credential; an error wrote nothing.
    async fn create_with_pass(
        &self,
        record: StoredCredential,
        challenge: Option<ChallengeUse>,
        now_ms: i64,
    ) -> Result<Registered, StoreError>;

    /// Forgets passes that expired before `before_ms`; how many.
    async fn prune_passes(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// The event log gateways watch.
#[async_trait]
pub trait Events: Send + Sync + 'static {
    /// Appends events, in order; their ids (cursors). Durable when it
    /// answers; ids grow in commit order across every replica.
    async fn append_events(&self, events: Vec<NewEvent>) -> Result<Vec<i64>, StoreError>;

    /// Up to `limit` events after cursor `after`, oldest first, of these
    /// relying parties (`None`: every one).
    async fn events_after(&self, after: i64, rp_ids: Option<Vec<String>>, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// The oldest retained event's id (`None`: the log is empty) and the
    /// newest id ever given (0: none yet).
    async fn event_bounds(&self) -> Result<(Option<i64>, i64), StoreError>;

    /// Forgets events older than `before_ms`; how many.
    async fn prune_events(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// Where each push receiver of the event log stands (its cursor), and
/// which replica delivers to it: a lease, so one replica at a time pushes a
/// receiver's events, in order. The clock is the caller's.
#[async_trait]
pub trait Deliveries: Send + Sync + 'static {
    /// Takes or renews `receiver`'s lease for `holder` until `until_ms` when
    /// it is free, lapsed (before `now_ms`) or already `holder`'s; the first
    /// claim creates the receiver at cursor `start`. The receiver's cursor
    /// when `holder` now holds the lease; `None` while another's is live.
    async fn claim_delivery(&self, receiver: &str, holder: &str, now_ms: i64, until_ms: i64, start: i64)
    -> Result<Option<i64>, StoreError>;

    /// Moves `receiver`'s cursor forward to `cursor` (never back) and renews
    /// the lease until `until_ms`, if `holder` still holds it; `false` (and
    /// nothing written) when another replica took it over.
    async fn advance_delivery(&self, receiver: &str, holder: &str, cursor: i64, until_ms: i64) -> Result<bool, StoreError>;

    /// Gives the lease up (a draining replica): another takes over at once.
    async fn release_delivery(&self, receiver: &str, holder: &str) -> Result<(), StoreError>;
}

/// Adoption numbers: one relying party's unrevoked credentials per group.
#[async_trait]
pub trait CredentialStats: Send + Sync + 'static {
    /// The rows for `group`, ordered by key; "active" means used at or
    /// after `active_since_ms`.
    async fn credential_stats(&self, rp_id: &str, group: StatsGroup, active_since_ms: i64) -> Result<Vec<StatsRow>, StoreError>;

    /// Up to `limit` credentials (revoked ones included) after `after`, in
    /// (RP, user handle, credential ID) order: a user's credentials are
    /// adjacent, so a reader that pages through (the policy preview) holds
    /// one user at a time. Served by the `credentials_by_user` index.
    async fn page_by_user(&self, after: UserCursor, limit: usize) -> Result<Vec<StoredCredential>, StoreError>;
}

/// Where [`CredentialStats::page_by_user`] resumes: the last (RP, user
/// handle, credential ID) read; all empty to start.
pub type UserCursor = (String, Vec<u8>, Vec<u8>);

/// The FIDO metadata serial in force.
#[async_trait]
pub trait MetadataSerial: Send + Sync + 'static {
    /// The FIDO metadata serial (`no`) in force, kept across restarts and
    /// shared by every replica: raised to `number` when that is higher;
    /// returns the serial in force after the call (higher than `number`
    /// when an older BLOB was loaded).
    async fn raise_metadata_serial(&self, number: u64, now_ms: i64) -> Result<u64, StoreError>;

    /// Sets the metadata serial in force to `number`, lower or not: the
    /// operator's deliberate rollback (`assertd metadata accept`).
    async fn set_metadata_serial(&self, number: u64, now_ms: i64) -> Result<(), StoreError>;

    /// The models (AAGUIDs) the metadata in force blocks: records `blocked`
    /// as the list and returns those not on it before. Atomic: of replicas
    /// loading the same metadata at once, one gets each model, so each is
    /// reported once. A model no longer blocked leaves the list (reported
    /// again if blocked again).
    async fn report_blocked_models(&self, blocked: Vec<[u8; 16]>, now_ms: i64) -> Result<Vec<[u8; 16]>, StoreError>;
}

/// Whether the store answers, and what other writers changed.
#[async_trait]
pub trait Health: Send + Sync + 'static {
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

/// A whole backend: every concern. The server holds a store as
/// `Arc<dyn CredentialStore>`; a backend implements the traits above.
pub trait CredentialStore:
    Credentials + CredentialStats + ChallengeLedger + UserRisks + AccessPasses + Events + Deliveries + MetadataSerial + Health
{
}

impl<T: Credentials + CredentialStats + ChallengeLedger + UserRisks + AccessPasses + Events + Deliveries + MetadataSerial + Health>
    CredentialStore for T
{
}
