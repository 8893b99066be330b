//! Users flagged at risk on SQLite.

use super::{SqliteStore, unavailable};
use crate::row::{self, RISK_COLUMNS};
use crate::store::UserRisks;
use crate::types::{StoreError, UserRisk};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl UserRisks for SqliteStore {
    async fn set_user_risk(&self, risk: UserRisk) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO user_risk (rp_id, user_handle, level, expires_at_ms, note, set_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (rp_id, user_handle) DO UPDATE SET level = excluded.level, expires_at_ms = excluded.expires_at_ms,
                     note = excluded.note, set_at_ms = excluded.set_at_ms",
            )
            .and_then(|mut s| {
                s.execute(params![risk.rp_id, risk.user_handle, risk.level.as_str(), risk.expires_at_ms, risk.note, risk.set_at_ms])
            })
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn delete_user_risk(&self, rp_id: &str, user_handle: &[u8], set_at_ms: Option<i64>) -> Result<bool, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.write(move |c| {
            c.prepare_cached("DELETE FROM user_risk WHERE rp_id = ?1 AND user_handle = ?2 AND (?3 IS NULL OR set_at_ms = ?3)")
                .and_then(|mut s| s.execute(params![rp_id, user_handle, set_at_ms]))
                .map(|n| n > 0)
                .map_err(unavailable)
        })
        .await
    }

    async fn user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<Option<UserRisk>, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!("SELECT {RISK_COLUMNS} FROM user_risk WHERE rp_id = ?1 AND user_handle = ?2"))
                .map_err(unavailable)?;
            s.query_row(params![rp_id, user_handle], |r| Ok(row::user_risk(r))).optional().map_err(unavailable)?.transpose()
        })
        .await
    }

    async fn prune_user_risks(&self, now_ms: i64) -> Result<Vec<UserRisk>, StoreError> {
        // One host, one clock.
        self.write(move |c| {
            let mut s = c
                .prepare_cached(&format!("DELETE FROM user_risk WHERE expires_at_ms <= ?1 RETURNING {RISK_COLUMNS}"))
                .map_err(unavailable)?;
            let rows = s.query_map([now_ms], |r| Ok(row::user_risk(r))).map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable).and_then(|r| r)).collect()
        })
        .await
    }

    async fn user_risks(&self, now_ms: i64) -> Result<Vec<UserRisk>, StoreError> {
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!("SELECT {RISK_COLUMNS} FROM user_risk WHERE expires_at_ms IS NULL OR expires_at_ms > ?1"))
                .map_err(unavailable)?;
            let rows = s.query_map([now_ms], |r| Ok(row::user_risk(r))).map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable).and_then(|r| r)).collect()
        })
        .await
    }
}
