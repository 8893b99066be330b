//! Real-time remediation through the engine: setting, clearing and
//! reloading the users flagged at risk (held in memory by `flags`), and
//! revoking every credential of a user.

use super::clock::now_ms;
use crate::telemetry;
use assertd_store::{StoreError, UserRisk};

impl super::Engine {
    /// Flags a user at risk: stored, then in force on this replica at once
    /// (other replicas learn it from the change feed).
    pub async fn set_user_risk(&self, risk: UserRisk) -> Result<(), StoreError> {
        self.cache.store().set_user_risk(risk.clone()).await?;
        self.user_risks.apply(&risk.rp_id, &risk.user_handle, Some(&risk));
        Ok(())
    }

    /// Clears a user's flag; whether there was one.
    pub async fn clear_user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<bool, StoreError> {
        let cleared = self.cache.store().clear_user_risk(rp_id, user_handle).await?;
        self.user_risks.apply(rp_id, user_handle, None);
        Ok(cleared)
    }

    /// Reads one user's flag again (another replica changed it).
    pub async fn refresh_user_risk(&self, rp_id: &str, user_handle: &[u8]) {
        match self.cache.store().user_risk(rp_id, user_handle).await {
            Ok(risk) => self.user_risks.apply(rp_id, user_handle, risk.as_ref()),
            Err(e) => {
                telemetry::store_error("user_risk");
                tracing::warn!(error = %e, "reading a user's risk flag failed; the next full reload reads it");
            }
        }
    }

    /// Whether the users flagged at risk have been read from the store:
    /// until then readiness reports NOT_SERVING and sign-ins are retryable.
    pub fn user_risks_loaded(&self) -> bool {
        self.user_risks.loaded()
    }

    /// Reads every user's flag from the store, replacing what this replica
    /// holds.
    pub async fn reload_user_risks(&self) -> Result<(), StoreError> {
        let risks = self.cache.store().user_risks(now_ms()).await?;
        self.user_risks.replace_all(risks);
        Ok(())
    }

    /// Deletes the flags that lapsed and reports each once in the event
    /// log (actor `expiry`); other replicas learn of it from the change
    /// feed.
    pub async fn prune_user_risks(&self) {
        match self.cache.store().prune_user_risks(now_ms()).await {
            Ok(expired) => {
                for r in &expired {
                    self.refresh_user_risk(&r.rp_id, &r.user_handle).await;
                }
                let happened: Vec<super::events::Happened<'_>> = expired
                    .iter()
                    .map(|r| super::events::Happened {
                        kind: super::events::Kind::UserRiskExpired,
                        rp_id: &r.rp_id,
                        user_handle: &r.user_handle,
                        credential_id: &[],
                        actor: "expiry",
                        detail: format!("level {}", r.level.as_str()),
                        facts: super::events::Facts { level: Some(r.level.as_str().to_owned()), ..super::events::Facts::by("system") },
                    })
                    .collect();
                if !happened.is_empty() {
                    self.record(happened).await;
                }
            }
            Err(e) => {
                telemetry::store_error("prune_user_risks");
                tracing::warn!(error = %e, "pruning lapsed risk flags failed");
            }
        }
    }

    /// Revokes every credential of a user and drops them from the cache; how
    /// many it revoked.
    pub async fn revoke_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<usize, StoreError> {
        let ids = self.cache.store().revoke_user(rp_id, user_handle).await?;
        for id in &ids {
            self.cache.invalidate(rp_id, id).await;
        }
        Ok(ids.len())
    }
}
