//! Credentials through the engine: reads from the store as it stands
//! (never the cache: an admin reads what is stored), and writes to the
//! store, then the cache entry dropped (found or not-found), so the next
//! assertion sees the change at once. Handlers never reach the store
//! themselves.

use super::Engine;
use assertd_store::{Replaced, StoreError, StoredCredential};

impl Engine {
    /// One credential, as stored.
    pub async fn credential(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        self.cache.store().get(rp_id, credential_id).await
    }

    /// Every credential of a user at a relying party, oldest first.
    pub async fn credentials_of(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<StoredCredential>, StoreError> {
        self.cache.store().list_by_user(rp_id, user_handle).await
    }

    /// The display name of an authenticator with this AAGUID (see
    /// `assertd_verify::metadata::display_name`).
    pub fn authenticator_name(&self, aaguid: &[u8], vouched: bool) -> Option<(std::sync::Arc<str>, assertd_verify::metadata::NameSource)> {
        let aaguid: [u8; 16] = aaguid.try_into().ok()?;
        let policy = self.policy.load();
        let metadata = policy.metadata.as_ref().map(|m| &m.metadata);
        assertd_verify::metadata::display_name(metadata, &policy.aaguid_names, &aaguid, vouched)
    }

    /// Whether the store answers a ping.
    pub async fn store_answers(&self) -> bool {
        self.cache.store().ping().await.is_ok()
    }

    /// Whether the store's change feed is connected (`None`: it has none).
    pub fn change_feed_up(&self) -> Option<bool> {
        self.cache.store().change_feed_up()
    }

    /// Raises the FIDO metadata serial in force to `number` when that is
    /// higher; the serial in force after the call.
    pub async fn raise_metadata_serial(&self, number: u64) -> Result<u64, StoreError> {
        self.cache.store().raise_metadata_serial(number, super::clock::now_ms()).await
    }

    /// One relying party's unrevoked credentials counted per `group`;
    /// active means used at or after `active_since_ms`.
    pub async fn credential_stats(
        &self,
        rp_id: &str,
        group: assertd_store::StatsGroup,
        active_since_ms: i64,
    ) -> Result<Vec<assertd_store::StatsRow>, StoreError> {
        self.cache.store().credential_stats(rp_id, group, active_since_ms).await
    }

    /// Up to `limit` credentials after `after` in (RP, user, credential)
    /// order, for the policy preview.
    pub async fn credentials_by_user(&self, after: assertd_store::UserCursor, limit: usize) -> Result<Vec<StoredCredential>, StoreError> {
        self.cache.store().page_by_user(after, limit).await
    }

    /// The right to run a policy preview: one at a time per replica (each
    /// reads the whole store); `None` while one runs.
    pub fn preview_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.previews.clone().try_acquire_owned().ok()
    }

    /// Creates a credential; `None` when the id exists (nothing written).
    pub async fn create(&self, record: StoredCredential) -> Result<Option<StoredCredential>, StoreError> {
        let (rp, id) = (record.rp_id.clone(), record.credential_id.clone());
        let created = self.cache.store().create(record).await;
        // Drop even on error: the write may have landed (and a not-found
        // entry for the id may be cached).
        self.cache.invalidate(&rp, &id).await;
        created
    }

    /// Replaces an existing credential of the same user (see
    /// `Credentials::replace`).
    pub async fn replace(&self, record: StoredCredential) -> Result<Replaced, StoreError> {
        let (rp, id) = (record.rp_id.clone(), record.credential_id.clone());
        let replaced = self.cache.store().replace(record).await;
        self.cache.invalidate(&rp, &id).await;
        replaced
    }

    /// Stores credentials in bulk (tests and benches; the CLI's import goes
    /// to the store directly) and drops them from the cache.
    pub async fn put(&self, record: StoredCredential) -> Result<StoredCredential, StoreError> {
        let (rp, id) = (record.rp_id.clone(), record.credential_id.clone());
        let stored = self.cache.store().put_many(vec![record]).await;
        self.cache.invalidate(&rp, &id).await;
        stored.map(|mut v| v.remove(0))
    }

    /// Revokes a credential and drops it from the cache.
    pub async fn revoke(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let r = self.cache.store().revoke(rp_id, credential_id).await;
        self.cache.invalidate(rp_id, credential_id).await;
        r
    }

    /// Deletes a credential and drops it from the cache.
    pub async fn delete(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let r = self.cache.store().delete(rp_id, credential_id).await;
        self.cache.invalidate(rp_id, credential_id).await;
        r
    }
}
