//! Temporary access passes on SQLite. Every write is a job of the one
//! writer thread, so a redemption's read, check and update see no other
//! write in between: a one-time pass is redeemed once.

use super::queries::{insert_new, insert_uses};
use super::{SqliteStore, unavailable};
use crate::passes::{self, AccessPass, PASS_COLUMNS};
use crate::record::StoredCredential;
use crate::store::AccessPasses;
use crate::types::{ChallengeUse, PassRefusal, Registered, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

fn get_pass(c: &Connection, rp_id: &str, pass_id: &str) -> Result<Option<AccessPass>, StoreError> {
    c.prepare_cached(&format!("SELECT {PASS_COLUMNS} FROM access_passes WHERE rp_id = ?1 AND pass_id = ?2"))
        .and_then(|mut s| s.query_row(params![rp_id, pass_id], |r| Ok(passes::pass(r))).optional())
        .map_err(unavailable)?
        .transpose()
}

/// Checks a pass and records its use at `now_ms`, on the writer thread.
fn redeem(c: &Connection, rp_id: &str, pass_id: &str, now_ms: i64) -> Result<Result<AccessPass, PassRefusal>, StoreError> {
    let Some(p) = get_pass(c, rp_id, pass_id)? else { return Ok(Err(PassRefusal::Invalid)) };
    if let Some(r) = p.refusal(now_ms) {
        return Ok(Err(r));
    }
    c.prepare_cached("UPDATE access_passes SET used_at_ms = coalesce(used_at_ms, ?3), uses = uses + 1 WHERE rp_id = ?1 AND pass_id = ?2")
        .and_then(|mut s| s.execute(params![rp_id, pass_id, now_ms]))
        .map_err(unavailable)?;
    Ok(get_pass(c, rp_id, pass_id)?.ok_or(PassRefusal::Invalid))
}

#[async_trait]
impl AccessPasses for SqliteStore {
    async fn issue_pass(&self, p: AccessPass) -> Result<Vec<String>, StoreError> {
        self.write(move |c| {
            let now = p.created_at_ms;
            let replaced: Vec<String> = {
                let mut s = c
                    .prepare_cached(&format!("SELECT {PASS_COLUMNS} FROM access_passes WHERE rp_id = ?1 AND user_handle = ?2"))
                    .map_err(unavailable)?;
                let rows = s.query_map(params![p.rp_id, p.user_handle], |r| Ok(passes::pass(r))).map_err(unavailable)?;
                let mut ids = Vec::new();
                for r in rows {
                    let old = r.map_err(unavailable)??;
                    if old.usable(now) {
                        ids.push(old.pass_id);
                    }
                }
                ids
            };
            {
                let mut s = c
                    .prepare_cached("UPDATE access_passes SET revoked_at_ms = ?3 WHERE rp_id = ?1 AND pass_id = ?2")
                    .map_err(unavailable)?;
                for id in &replaced {
                    s.execute(params![p.rp_id, id, now]).map_err(unavailable)?;
                }
            }
            c.prepare_cached(&format!(
                "INSERT INTO access_passes ({PASS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    p.rp_id,
                    p.pass_id,
                    p.user_handle,
                    p.key_id,
                    p.hash,
                    p.one_time,
                    p.created_at_ms,
                    p.expires_at_ms,
                    p.revoked_at_ms,
                    p.used_at_ms,
                    i64::try_from(p.uses).unwrap_or(i64::MAX),
                    p.issued_by,
                    p.note
                ])
            })
            .map_err(unavailable)?;
            Ok(replaced)
        })
        .await
    }

    async fn revoke_pass(&self, rp_id: &str, pass_id: &str, now_ms: i64) -> Result<Option<AccessPass>, StoreError> {
        let (rp_id, pass_id) = (rp_id.to_owned(), pass_id.to_owned());
        self.write(move |c| {
            c.prepare_cached("UPDATE access_passes SET revoked_at_ms = coalesce(revoked_at_ms, ?3) WHERE rp_id = ?1 AND pass_id = ?2")
                .and_then(|mut s| s.execute(params![rp_id, pass_id, now_ms]))
                .map_err(unavailable)?;
            get_pass(c, &rp_id, &pass_id)
        })
        .await
    }

    async fn passes(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<AccessPass>, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {PASS_COLUMNS} FROM access_passes WHERE rp_id = ?1 AND user_handle = ?2 ORDER BY created_at_ms DESC, pass_id"
                ))
                .map_err(unavailable)?;
            let rows = s.query_map(params![rp_id, user_handle], |r| Ok(passes::pass(r))).map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable).and_then(|r| r)).collect()
        })
        .await
    }

    async fn redeem_pass(&self, rp_id: &str, pass_id: &str, now_ms: i64) -> Result<Result<AccessPass, PassRefusal>, StoreError> {
        let (rp_id, pass_id) = (rp_id.to_owned(), pass_id.to_owned());
        self.write(move |c| redeem(c, &rp_id, &pass_id, now_ms)).await
    }

    async fn create_with_pass(&self, r: StoredCredential, challenge: Option<ChallengeUse>, now_ms: i64) -> Result<Registered, StoreError> {
        // One job: one savepoint. A refusal keeps the challenge's use, so
        // the job answers Ok and the savepoint is released.
        self.write(move |c| {
            if let Some(u) = challenge
                && !insert_uses(c, &[u])?[0]
            {
                return Ok(Registered::ChallengeReplayed);
            }
            let Some(p) = get_pass(c, &r.rp_id, &r.access_pass_id)? else { return Ok(Registered::PassRefused(PassRefusal::Invalid)) };
            if p.user_handle != r.user_handle {
                return Ok(Registered::PassRefused(PassRefusal::Invalid));
            }
            if let Some(refusal) = p.refusal(now_ms) {
                return Ok(Registered::PassRefused(refusal));
            }
            let Some(created) = insert_new(c, &r)? else { return Ok(Registered::AlreadyRegistered) };
            if let Err(refusal) = redeem(c, &r.rp_id, &r.access_pass_id, now_ms)? {
                // Checked above on this thread: cannot happen.
                return Err(StoreError::Corrupt(format!("access pass refused after its check: {refusal:?}")));
            }
            Ok(Registered::Created(Box::new(created)))
        })
        .await
    }

    async fn prune_passes(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM access_passes WHERE expires_at_ms < ?1")
                .and_then(|mut s| s.execute([before_ms]))
                .map(|n| n as u64)
                .map_err(unavailable)
        })
        .await
    }
}
