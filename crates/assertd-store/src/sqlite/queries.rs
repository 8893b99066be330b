//! The SQLite queries, one `impl` per store concern; rows through the
//! shared codec (`crate::row`).

use super::{SqliteStore, unavailable};
use crate::record::StoredCredential;
use crate::row::{self, COLUMNS, QMARKS};
use crate::store::{ChallengeLedger, Credentials, Health, MetadataSerial};
use crate::types::{ChallengeUse, CounterResult, CounterUpdate, Registered, Replaced, StateUpdate, StoreError};
use async_trait::async_trait;
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

/// At most one credential row.
fn one(s: &mut CachedStatement<'_>, p: impl rusqlite::Params) -> Result<Option<StoredCredential>, StoreError> {
    s.query_row(p, |r| Ok(row::credential(r))).optional().map_err(unavailable)?.transpose()
}

/// Every credential row.
pub(super) fn all(s: &mut CachedStatement<'_>, p: impl rusqlite::Params) -> Result<Vec<StoredCredential>, StoreError> {
    let rows = s.query_map(p, |r| Ok(row::credential(r))).map_err(unavailable)?;
    rows.map(|r| r.map_err(unavailable).and_then(|r| r)).collect()
}

/// Inserts a credential unless its id exists; the row as stored.
pub(super) fn insert_new(c: &Connection, r: &StoredCredential) -> Result<Option<StoredCredential>, StoreError> {
    c.prepare_cached(&format!(
        "INSERT INTO credentials ({COLUMNS}) VALUES ({QMARKS})
         ON CONFLICT (rp_id, credential_id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .map_err(unavailable)
    .and_then(|mut s| one(&mut s, rusqlite::params_from_iter(row::values(r))))
}

/// Records challenge uses: true for each first use of its id.
pub(super) fn insert_uses(c: &Connection, uses: &[ChallengeUse]) -> Result<Vec<bool>, StoreError> {
    let mut s = c
        .prepare_cached("INSERT INTO consumed_challenges (id, keep_until_ms) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING")
        .map_err(unavailable)?;
    uses.iter().map(|u| s.execute(params![&u.id[..], u.keep_until_ms]).map(|n| n == 1).map_err(unavailable)).collect()
}

fn get_one(conn: &Connection, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM credentials WHERE rp_id = ?1 AND credential_id = ?2"))
        .map_err(unavailable)
        .and_then(|mut s| one(&mut s, params![rp_id, credential_id]))
}

#[async_trait]
impl Credentials for SqliteStore {
    async fn get(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let (rp_id, credential_id) = (rp_id.to_owned(), credential_id.to_vec());
        self.read_merged(move |c| get_one(c, &rp_id, &credential_id)).await
    }

    async fn get_many(&self, keys: &[(&str, &[u8])]) -> Result<Vec<Option<StoredCredential>>, StoreError> {
        let keys: Vec<(String, Vec<u8>)> = keys.iter().map(|(rp, id)| ((*rp).to_owned(), id.to_vec())).collect();
        // One reader job for the whole batch: a point read each, with one
        // cached statement.
        self.read_merged(move |c| keys.iter().map(|(rp, id)| get_one(c, rp, id)).collect()).await
    }

    async fn put_many(&self, records: Vec<StoredCredential>) -> Result<Vec<StoredCredential>, StoreError> {
        self.write_merged(move |c| {
            let mut out = Vec::with_capacity(records.len());
            {
                let mut upsert = c
                    .prepare_cached(&format!(
                        "INSERT INTO credentials ({COLUMNS}) VALUES ({QMARKS})
                         ON CONFLICT (rp_id, credential_id) DO UPDATE SET
                           user_handle = excluded.user_handle, public_key_cose = excluded.public_key_cose,
                           sign_count = max(sign_count, excluded.sign_count),
                           backup_eligible = excluded.backup_eligible, backup_state = excluded.backup_state,
                           aaguid = excluded.aaguid, attested = excluded.attested, transports = excluded.transports,
                           aaguid_vouched = excluded.aaguid_vouched, trust_anchor = excluded.trust_anchor,
                           discoverable = excluded.discoverable, attachment = excluded.attachment,
                           uv_initialized = excluded.uv_initialized,
                           revoked = revoked OR excluded.revoked
                         RETURNING {COLUMNS}"
                    ))
                    .map_err(unavailable)?;
                for r in &records {
                    let stored = one(&mut upsert, rusqlite::params_from_iter(row::values(r)))?;
                    out.push(stored.ok_or_else(|| StoreError::Unavailable("an upsert returned no row".into()))?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn create(&self, r: StoredCredential) -> Result<Option<StoredCredential>, StoreError> {
        self.write(move |c| insert_new(c, &r)).await
    }

    async fn create_many(&self, records: Vec<StoredCredential>) -> Result<Vec<bool>, StoreError> {
        self.write(move |c| records.iter().map(|r| insert_new(c, r).map(|s| s.is_some())).collect()).await
    }

    async fn replace(&self, r: StoredCredential) -> Result<Replaced, StoreError> {
        self.write_merged(move |c| {
            let updated = c
                .prepare_cached(&format!(
                    "UPDATE credentials SET public_key_cose = ?4, sign_count = max(sign_count, ?5), backup_eligible = ?6,
                       backup_state = ?7, aaguid = ?8, attested = ?9, transports = ?10, aaguid_vouched = ?11, trust_anchor = ?12,
                       discoverable = ?13, attachment = ?14, uv_initialized = ?15
                     WHERE rp_id = ?1 AND credential_id = ?2 AND user_handle = ?3 RETURNING {COLUMNS}"
                ))
                .map_err(unavailable)
                .and_then(|mut s| {
                    one(
                        &mut s,
                        params![
                            r.rp_id,
                            r.credential_id,
                            r.user_handle,
                            r.public_key_cose,
                            i64::from(r.sign_count),
                            r.backup_eligible,
                            r.backup_state,
                            r.aaguid,
                            r.attested,
                            r.transports.join(","),
                            r.aaguid_vouched,
                            r.trust_anchor,
                            r.discoverable,
                            r.attachment.map_or("", assertd_verify::Attachment::as_str),
                            r.uv_initialized
                        ],
                    )
                })?;
            let outcome = match updated {
                Some(stored) => Replaced::Replaced(stored),
                None => {
                    let exists = c
                        .prepare_cached("SELECT 1 FROM credentials WHERE rp_id = ?1 AND credential_id = ?2")
                        .and_then(|mut s| s.query_row(params![r.rp_id, r.credential_id], |_| Ok(())).optional())
                        .map_err(unavailable)?;
                    if exists.is_some() { Replaced::OtherUser } else { Replaced::NotFound }
                }
            };
            Ok(outcome)
        })
        .await
    }

    async fn delete(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let (rp_id, credential_id) = (rp_id.to_owned(), credential_id.to_vec());
        self.write_merged(move |c| {
            c.prepare_cached(&format!("DELETE FROM credentials WHERE rp_id = ?1 AND credential_id = ?2 RETURNING {COLUMNS}"))
                .map_err(unavailable)
                .and_then(|mut s| one(&mut s, params![rp_id, credential_id]))
        })
        .await
    }

    async fn revoke(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let (rp_id, credential_id) = (rp_id.to_owned(), credential_id.to_vec());
        self.write_merged(move |c| {
            c.prepare_cached(&format!("UPDATE credentials SET revoked = 1 WHERE rp_id = ?1 AND credential_id = ?2 RETURNING {COLUMNS}"))
                .map_err(unavailable)
                .and_then(|mut s| one(&mut s, params![rp_id, credential_id]))
        })
        .await
    }

    async fn list_by_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<StoredCredential>, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.read_merged(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials WHERE rp_id = ?1 AND user_handle = ?2 ORDER BY created_at_ms, credential_id"
                ))
                .map_err(unavailable)?;
            all(&mut s, params![rp_id, user_handle])
        })
        .await
    }

    async fn count_by_aaguid(&self, aaguids: Vec<[u8; 16]>) -> Result<Vec<(String, [u8; 16], u64)>, StoreError> {
        self.read(move |c| {
            // One pass; the groups are few (relying parties x models).
            let mut s = c
                .prepare_cached(
                    "SELECT rp_id, aaguid, count(*) FROM credentials WHERE revoked = 0 GROUP BY rp_id, aaguid ORDER BY rp_id, aaguid",
                )
                .map_err(unavailable)?;
            let rows =
                s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?))).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (rp, a, n) = row.map_err(unavailable)?;
                if let Some(a) = aaguids.iter().find(|x| x[..] == a[..]) {
                    out.push((rp, *a, u64::try_from(n).unwrap_or(0)));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.write(move |c| {
            let mut s = c
                .prepare_cached(
                    "UPDATE credentials SET revoked = 1 WHERE rp_id = ?1 AND user_handle = ?2 AND revoked = 0 RETURNING credential_id",
                )
                .map_err(unavailable)?;
            let ids = s.query_map(params![rp_id, user_handle], |r| r.get::<_, Vec<u8>>(0)).map_err(unavailable)?;
            ids.map(|r| r.map_err(unavailable)).collect()
        })
        .await
    }

    async fn settle_sign_ins(
        &self,
        updates: std::sync::Arc<[CounterUpdate]>,
        uses: std::sync::Arc<[ChallengeUse]>,
        now_ms: i64,
    ) -> Result<(Vec<CounterResult>, Vec<bool>), StoreError> {
        if updates.is_empty() && uses.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        // The counts only read the tables (they are staged for the journal);
        // challenge uses are written.
        self.write_counting(!uses.is_empty(), move |c, log| {
            // In the writer's group transaction: no other writer can
            // interleave between these reads and the group's commit.
            let results = super::counting::advance(c, log, &updates, now_ms)?;
            // In the same job (one savepoint): the counts and the uses, both
            // or neither.
            Ok((results, insert_uses(c, &uses)?))
        })
        .await
    }

    async fn set_backup_eligible(&self, keys: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            {
                let mut s = c
                    .prepare_cached("UPDATE credentials SET backup_eligible = 1 WHERE rp_id = ?1 AND credential_id = ?2 AND NOT revoked")
                    .map_err(unavailable)?;
                for (rp, id) in &keys {
                    s.execute(params![rp, id]).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn record_states(&self, updates: Vec<StateUpdate>) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            {
                let mut s = c
                    .prepare_cached(
                        "UPDATE credentials SET backup_state = ?3, uv_initialized = uv_initialized OR ?4
                         WHERE rp_id = ?1 AND credential_id = ?2 AND NOT revoked",
                    )
                    .map_err(unavailable)?;
                for u in &updates {
                    s.execute(params![u.rp_id, u.credential_id, u.backup_state, u.uv_initialized]).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn touch(&self, keys: Vec<(String, Vec<u8>)>, now_ms: i64) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            {
                let mut s = c
                    .prepare_cached("UPDATE credentials SET last_used_at_ms = max(coalesce(last_used_at_ms, 0), ?3) WHERE rp_id = ?1 AND credential_id = ?2")
                    .map_err(unavailable)?;
                for (rp, id) in &keys {
                    s.execute(params![rp, id, now_ms]).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn page(&self, after: Option<(String, Vec<u8>)>, limit: usize) -> Result<Vec<StoredCredential>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (rp, id) = after.unwrap_or_default();
        self.read_merged(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials WHERE (rp_id, credential_id) > (?1, ?2) ORDER BY rp_id, credential_id LIMIT ?3"
                ))
                .map_err(unavailable)?;
            all(&mut s, params![rp, id, limit])
        })
        .await
    }

    async fn create_with_challenge(&self, r: StoredCredential, challenge: ChallengeUse) -> Result<Registered, StoreError> {
        // One job: one savepoint, so both writes or neither.
        self.write(move |c| {
            if !insert_uses(c, &[challenge])?[0] {
                return Ok(Registered::ChallengeReplayed);
            }
            Ok(insert_new(c, &r)?.map_or(Registered::AlreadyRegistered, |c| Registered::Created(Box::new(c))))
        })
        .await
    }
}

#[async_trait]
impl ChallengeLedger for SqliteStore {
    async fn prune_challenges(&self, now_ms: i64, margin_ms: i64) -> Result<u64, StoreError> {
        // One host, one clock: the margin is what a skewed caller gets.
        self.write(move |c| {
            c.prepare_cached("DELETE FROM consumed_challenges WHERE keep_until_ms < ?1")
                .and_then(|mut s| s.execute([now_ms.saturating_sub(margin_ms)]))
                .map(|n| n as u64)
                .map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl MetadataSerial for SqliteStore {
    async fn raise_metadata_serial(&self, number: u64, now_ms: i64) -> Result<u64, StoreError> {
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO metadata_serial (id, number, set_at_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET number = excluded.number, set_at_ms = excluded.set_at_ms
                   WHERE excluded.number > metadata_serial.number",
            )
            .and_then(|mut s| s.execute(params![n, now_ms]))
            .map_err(unavailable)?;
            let v: i64 = c.query_row("SELECT number FROM metadata_serial WHERE id = 1", [], |r| r.get(0)).map_err(unavailable)?;
            Ok(u64::try_from(v).unwrap_or(0))
        })
        .await
    }

    async fn report_blocked_models(&self, blocked: Vec<[u8; 16]>, now_ms: i64) -> Result<Vec<[u8; 16]>, StoreError> {
        self.write(move |c| {
            let mut new = Vec::new();
            let mut insert = c
                .prepare_cached("INSERT INTO blocked_models (aaguid, since_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
                .map_err(unavailable)?;
            for a in &blocked {
                if insert.execute(params![a.to_vec(), now_ms]).map_err(unavailable)? == 1 {
                    new.push(*a);
                }
            }
            let listed: Vec<Vec<u8>> = c
                .prepare_cached("SELECT aaguid FROM blocked_models")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(unavailable)?;
            let mut remove = c.prepare_cached("DELETE FROM blocked_models WHERE aaguid = ?1").map_err(unavailable)?;
            for a in listed.iter().filter(|a| !blocked.iter().any(|b| b[..] == a[..])) {
                remove.execute([a]).map_err(unavailable)?;
            }
            Ok(new)
        })
        .await
    }

    async fn set_metadata_serial(&self, number: u64, now_ms: i64) -> Result<(), StoreError> {
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.write(move |c| {
            c.execute(
                "INSERT INTO metadata_serial (id, number, set_at_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET number = excluded.number, set_at_ms = excluded.set_at_ms",
                params![n, now_ms],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(unavailable)).await
    }
}
