//! Temporary access passes on PostgreSQL, shared by every replica. A
//! redemption locks the pass's row (`SELECT ... FOR UPDATE`) before it
//! checks and records the use, so replicas redeeming one one-time pass
//! serialize and exactly one wins; an issue takes a transaction-scoped
//! advisory lock on the user, so two issues cannot both leave a usable
//! pass.

use super::{PostgresStore, bind, failed};
use crate::passes::{self, AccessPass, PASS_COLUMNS};
use crate::record::StoredCredential;
use crate::row::{self, COLUMNS, DOLLARS};
use crate::store::AccessPasses;
use crate::types::{ChallengeUse, PassRefusal, Registered, StoreError};
use async_trait::async_trait;
use deadpool_postgres::Transaction;

/// The pass, its row locked until the transaction ends.
async fn locked(tx: &Transaction<'_>, rp_id: &str, pass_id: &str) -> Result<Option<AccessPass>, StoreError> {
    let s = tx
        .prepare_cached(&format!("SELECT {PASS_COLUMNS} FROM access_passes WHERE rp_id = $1 AND pass_id = $2 FOR UPDATE"))
        .await
        .map_err(failed)?;
    tx.query_opt(&s, &[&rp_id, &pass_id]).await.map_err(failed)?.as_ref().map(passes::pass).transpose()
}

/// Records a use of a pass checked under its row lock; the pass after.
async fn record_use(tx: &Transaction<'_>, rp_id: &str, pass_id: &str, now_ms: i64) -> Result<AccessPass, StoreError> {
    let s = tx
        .prepare_cached(&format!(
            "UPDATE access_passes SET used_at_ms = coalesce(used_at_ms, $3), uses = uses + 1
             WHERE rp_id = $1 AND pass_id = $2 RETURNING {PASS_COLUMNS}"
        ))
        .await
        .map_err(failed)?;
    passes::pass(&tx.query_one(&s, &[&rp_id, &pass_id, &now_ms]).await.map_err(failed)?)
}

#[async_trait]
impl AccessPasses for PostgresStore {
    async fn issue_pass(&self, p: AccessPass) -> Result<Vec<String>, StoreError> {
        let uses = i64::try_from(p.uses).unwrap_or(i64::MAX);
        self.in_transaction(async |tx| {
            // Issues for one user queue here: each sees the one before.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('assertd access pass ' || $1 || ' ' || encode($2, 'hex'), 0))",
                &[&p.rp_id, &p.user_handle],
            )
            .await
            .map_err(failed)?;
            let rows = tx
                .query(
                    &format!("SELECT {PASS_COLUMNS} FROM access_passes WHERE rp_id = $1 AND user_handle = $2 FOR UPDATE"),
                    &[&p.rp_id, &p.user_handle],
                )
                .await
                .map_err(failed)?;
            let mut replaced = Vec::new();
            for r in &rows {
                let old = passes::pass(r)?;
                if old.usable(p.created_at_ms) {
                    replaced.push(old.pass_id);
                }
            }
            tx.execute(
                "UPDATE access_passes SET revoked_at_ms = $3 WHERE rp_id = $1 AND pass_id = ANY($2)",
                &[&p.rp_id, &replaced, &p.created_at_ms],
            )
            .await
            .map_err(failed)?;
            tx.execute(
                &format!("INSERT INTO access_passes ({PASS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"),
                &[
                    &p.rp_id,
                    &p.pass_id,
                    &p.user_handle,
                    &p.key_id,
                    &p.hash,
                    &p.one_time,
                    &p.created_at_ms,
                    &p.expires_at_ms,
                    &p.revoked_at_ms,
                    &p.used_at_ms,
                    &uses,
                    &p.issued_by,
                    &p.note,
                ],
            )
            .await
            .map_err(failed)?;
            Ok(replaced)
        })
        .await
    }

    async fn revoke_pass(&self, rp_id: &str, pass_id: &str, now_ms: i64) -> Result<Option<AccessPass>, StoreError> {
        self.with(async |c| {
            c.query_opt(
                &format!(
                    "UPDATE access_passes SET revoked_at_ms = coalesce(revoked_at_ms, $3) WHERE rp_id = $1 AND pass_id = $2
                     RETURNING {PASS_COLUMNS}"
                ),
                &[&rp_id, &pass_id, &now_ms],
            )
            .await
            .map_err(failed)?
            .as_ref()
            .map(passes::pass)
            .transpose()
        })
        .await
    }

    async fn passes(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<AccessPass>, StoreError> {
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!(
                    "SELECT {PASS_COLUMNS} FROM access_passes WHERE rp_id = $1 AND user_handle = $2 ORDER BY created_at_ms DESC, pass_id"
                ))
                .await
                .map_err(failed)?;
            c.query(&s, &[&rp_id, &user_handle]).await.map_err(failed)?.iter().map(passes::pass).collect()
        })
        .await
    }

    async fn redeem_pass(&self, rp_id: &str, pass_id: &str, now_ms: i64) -> Result<Result<AccessPass, PassRefusal>, StoreError> {
        self.in_transaction(async |tx| {
            let Some(p) = locked(tx, rp_id, pass_id).await? else { return Ok(Err(PassRefusal::Invalid)) };
            if let Some(r) = p.refusal(now_ms) {
                return Ok(Err(r));
            }
            record_use(tx, rp_id, pass_id, now_ms).await.map(Ok)
        })
        .await
    }

    async fn create_with_pass(&self, r: StoredCredential, challenge: Option<ChallengeUse>, now_ms: i64) -> Result<Registered, StoreError> {
        let values = row::values(&r);
        self.in_transaction(async |tx| {
            if let Some(u) = challenge {
                let fresh = tx
                    .execute(
                        "INSERT INTO consumed_challenges (id, keep_until_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                        &[&&u.id[..], &u.keep_until_ms],
                    )
                    .await
                    .map_err(failed)?;
                if fresh == 0 {
                    return Ok(Registered::ChallengeReplayed);
                }
            }
            // The challenge's use stays recorded from here on: every answer
            // below is a final verdict.
            let Some(p) = locked(tx, &r.rp_id, &r.access_pass_id).await? else {
                return Ok(Registered::PassRefused(PassRefusal::Invalid));
            };
            if p.user_handle != r.user_handle {
                return Ok(Registered::PassRefused(PassRefusal::Invalid));
            }
            if let Some(refusal) = p.refusal(now_ms) {
                return Ok(Registered::PassRefused(refusal));
            }
            let s = tx
                .prepare_cached(&format!(
                    "INSERT INTO credentials ({COLUMNS}) VALUES ({DOLLARS})
                     ON CONFLICT (rp_id, credential_id) DO NOTHING RETURNING {COLUMNS}"
                ))
                .await
                .map_err(failed)?;
            let Some(created) = tx.query_opt(&s, &bind(&values)).await.map_err(failed)? else {
                return Ok(Registered::AlreadyRegistered);
            };
            let created = row::credential(&created)?;
            record_use(tx, &r.rp_id, &r.access_pass_id, now_ms).await?;
            Ok(Registered::Created(Box::new(created)))
        })
        .await
    }

    async fn prune_passes(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.with(async |c| c.execute("DELETE FROM access_passes WHERE expires_at_ms < $1", &[&before_ms]).await.map_err(failed)).await
    }
}
