//! Users flagged at risk on PostgreSQL; every change is told to every
//! replica by the table's trigger.

use super::{PostgresStore, failed};
use crate::row::{self, RISK_COLUMNS};
use crate::store::UserRisks;
use crate::types::{StoreError, UserRisk};
use async_trait::async_trait;

#[async_trait]
impl UserRisks for PostgresStore {
    async fn set_user_risk(&self, risk: UserRisk) -> Result<(), StoreError> {
        self.with(async |c| {
            c.execute(
                "INSERT INTO user_risk (rp_id, user_handle, level, expires_at_ms, note, set_at_ms) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (rp_id, user_handle) DO UPDATE SET level = excluded.level, expires_at_ms = excluded.expires_at_ms,
                     note = excluded.note, set_at_ms = excluded.set_at_ms",
                &[&risk.rp_id, &risk.user_handle, &risk.level.as_str(), &risk.expires_at_ms, &risk.note, &risk.set_at_ms],
            )
            .await
            .map(|_| ())
            .map_err(failed)
        })
        .await
    }

    async fn delete_user_risk(&self, rp_id: &str, user_handle: &[u8], set_at_ms: Option<i64>) -> Result<bool, StoreError> {
        self.with(async |c| {
            c.execute(
                "DELETE FROM user_risk WHERE rp_id = $1 AND user_handle = $2 AND ($3::int8 IS NULL OR set_at_ms = $3)",
                &[&rp_id, &user_handle, &set_at_ms],
            )
            .await
            .map(|n| n > 0)
            .map_err(failed)
        })
        .await
    }

    async fn user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<Option<UserRisk>, StoreError> {
        self.with(async |c| {
            c.query_opt(&format!("SELECT {RISK_COLUMNS} FROM user_risk WHERE rp_id = $1 AND user_handle = $2"), &[&rp_id, &user_handle])
                .await
                .map_err(failed)?
                .as_ref()
                .map(row::user_risk)
                .transpose()
        })
        .await
    }

    async fn prune_user_risks(&self, now_ms: i64) -> Result<Vec<UserRisk>, StoreError> {
        // The earlier of this replica's clock and the database's: a replica
        // whose clock runs ahead cannot lift a flag early.
        self.with(async |c| {
            c.query(
                &format!(
                    "DELETE FROM user_risk
                     WHERE expires_at_ms <= least($1, (extract(epoch FROM clock_timestamp()) * 1000)::int8)
                     RETURNING {RISK_COLUMNS}"
                ),
                &[&now_ms],
            )
            .await
            .map_err(failed)?
            .iter()
            .map(row::user_risk)
            .collect()
        })
        .await
    }

    async fn user_risks(&self, now_ms: i64) -> Result<Vec<UserRisk>, StoreError> {
        self.with(async |c| {
            c.query(&format!("SELECT {RISK_COLUMNS} FROM user_risk WHERE expires_at_ms IS NULL OR expires_at_ms > $1"), &[&now_ms])
                .await
                .map_err(failed)?
                .iter()
                .map(row::user_risk)
                .collect()
        })
        .await
    }
}
