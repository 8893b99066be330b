//! Credential writes through the engine: the store, then the cache entry
//! dropped, so the next assertion sees the change at once.

use super::Engine;
use assertd_store::{StoreError, StoredCredential};

impl Engine {
    /// Stores a credential and drops it from the cache.
    pub async fn put(&self, record: StoredCredential) -> Result<StoredCredential, StoreError> {
        let (rp, id) = (record.rp_id.clone(), record.credential_id.clone());
        let stored = self.cache.store().put_many(vec![record]).await;
        // Drop even on error: the write may have landed.
        self.cache.invalidate(&rp, &id).await;
        stored.map(|mut v| v.remove(0))
    }

    /// Revokes a credential and drops it from the cache.
    pub async fn revoke(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let r = self.cache.store().revoke(rp_id, credential_id).await;
        self.cache.invalidate(rp_id, credential_id).await;
        r
    }
}
