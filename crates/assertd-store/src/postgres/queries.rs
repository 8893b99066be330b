//! The PostgreSQL queries, one `impl` per store concern; rows through the
//! shared codec (`crate::row`).

use super::{LOCKED_IN_KEY_ORDER, PostgresStore, bind, corrupt, failed};
use crate::record::StoredCredential;
use crate::row::{self, COLUMNS, DOLLARS};
use crate::store::{ChallengeLedger, Credentials, Health, MetadataSerial};
use crate::types::{ChallengeUse, Change, CounterResult, CounterUpdate, Registered, Replaced, StateUpdate, StoreError};
use async_trait::async_trait;
use tokio::sync::broadcast;

#[async_trait]
impl Credentials for PostgresStore {
    async fn get(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!("SELECT {COLUMNS} FROM credentials WHERE rp_id = $1 AND credential_id = $2"))
                .await
                .map_err(failed)?;
            c.query_opt(&s, &[&rp_id, &credential_id]).await.map_err(failed)?.as_ref().map(row::credential).transpose()
        })
        .await
    }

    async fn get_many(&self, keys: &[(&str, &[u8])]) -> Result<Vec<Option<StoredCredential>>, StoreError> {
        let rps: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let ids: Vec<&[u8]> = keys.iter().map(|k| k.1).collect();
        self.with(async |c| {
            // One round trip for the batch; each row answers the keys at
            // its position (a key may be asked twice).
            let s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS}, k.i FROM credentials
                     JOIN unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS k(rp_id, credential_id, i) USING (rp_id, credential_id)"
                ))
                .await
                .map_err(failed)?;
            let mut out: Vec<Option<StoredCredential>> = vec![None; keys.len()];
            for r in c.query(&s, &[&rps, &ids]).await.map_err(failed)? {
                let i: i64 = r.try_get(row::WIDTH).map_err(corrupt)?;
                let slot = usize::try_from(i - 1)
                    .ok()
                    .and_then(|i| out.get_mut(i))
                    .ok_or_else(|| StoreError::Corrupt(format!("get_many: position {i} of {}", keys.len())))?;
                *slot = Some(row::credential(&r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_many(&self, records: Vec<StoredCredential>) -> Result<Vec<StoredCredential>, StoreError> {
        let sql = format!(
            "INSERT INTO credentials ({COLUMNS}) VALUES ({DOLLARS})
             ON CONFLICT (rp_id, credential_id) DO UPDATE SET
               user_handle = excluded.user_handle, public_key_cose = excluded.public_key_cose,
               sign_count = greatest(credentials.sign_count, excluded.sign_count),
               backup_eligible = excluded.backup_eligible, backup_state = excluded.backup_state,
               aaguid = excluded.aaguid, attested = excluded.attested, transports = excluded.transports,
               aaguid_vouched = excluded.aaguid_vouched, trust_anchor = excluded.trust_anchor,
                           discoverable = excluded.discoverable, attachment = excluded.attachment,
                           uv_initialized = excluded.uv_initialized,
               revoked = credentials.revoked OR excluded.revoked
             RETURNING {COLUMNS}"
        );
        Ok(self.write_many(&sql, &records).await?.into_iter().flatten().collect())
    }

    async fn create(&self, r: StoredCredential) -> Result<Option<StoredCredential>, StoreError> {
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!(
                    "INSERT INTO credentials ({COLUMNS}) VALUES ({DOLLARS})
                     ON CONFLICT (rp_id, credential_id) DO NOTHING RETURNING {COLUMNS}"
                ))
                .await
                .map_err(failed)?;
            let values = row::values(&r);
            c.query_opt(&s, &bind(&values)).await.map_err(failed)?.as_ref().map(row::credential).transpose()
        })
        .await
    }

    async fn create_many(&self, records: Vec<StoredCredential>) -> Result<Vec<bool>, StoreError> {
        let sql = format!(
            "INSERT INTO credentials ({COLUMNS}) VALUES ({DOLLARS})
             ON CONFLICT (rp_id, credential_id) DO NOTHING RETURNING {COLUMNS}"
        );
        Ok(self.write_many(&sql, &records).await?.iter().map(Option::is_some).collect())
    }

    async fn replace(&self, r: StoredCredential) -> Result<Replaced, StoreError> {
        self.with(async |c| {
            // One statement: the update, and whether the id exists at all.
            let s = c
                .prepare_cached(&format!(
                    "WITH updated AS (
                       UPDATE credentials SET public_key_cose = $4, sign_count = greatest(sign_count, $5), backup_eligible = $6,
                         backup_state = $7, aaguid = $8, attested = $9, transports = $10, aaguid_vouched = $11,
                         trust_anchor = $12, discoverable = $13, attachment = $14, uv_initialized = $15
                       WHERE rp_id = $1 AND credential_id = $2 AND user_handle = $3 RETURNING {COLUMNS}
                     )
                     SELECT {COLUMNS}, true AS replaced FROM updated
                     UNION ALL
                     SELECT {COLUMNS}, false FROM credentials
                       WHERE rp_id = $1 AND credential_id = $2 AND NOT EXISTS (SELECT 1 FROM updated)"
                ))
                .await
                .map_err(failed)?;
            let count = i64::from(r.sign_count);
            let attachment = r.attachment.map_or("", assertd_verify::Attachment::as_str);
            let row = c
                .query_opt(
                    &s,
                    &[
                        &r.rp_id,
                        &r.credential_id,
                        &r.user_handle,
                        &r.public_key_cose,
                        &count,
                        &r.backup_eligible,
                        &r.backup_state,
                        &r.aaguid,
                        &r.attested,
                        &r.transports,
                        &r.aaguid_vouched,
                        &r.trust_anchor,
                        &r.discoverable,
                        &attachment,
                        &r.uv_initialized,
                    ],
                )
                .await
                .map_err(failed)?;
            Ok(match row {
                None => Replaced::NotFound,
                Some(row) if row.get::<_, bool>("replaced") => Replaced::Replaced(row::credential(&row)?),
                Some(_) => Replaced::OtherUser,
            })
        })
        .await
    }

    async fn delete(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!("DELETE FROM credentials WHERE rp_id = $1 AND credential_id = $2 RETURNING {COLUMNS}"))
                .await
                .map_err(failed)?;
            c.query_opt(&s, &[&rp_id, &credential_id]).await.map_err(failed)?.as_ref().map(row::credential).transpose()
        })
        .await
    }

    async fn revoke(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!(
                    "UPDATE credentials SET revoked = true WHERE rp_id = $1 AND credential_id = $2 RETURNING {COLUMNS}"
                ))
                .await
                .map_err(failed)?;
            c.query_opt(&s, &[&rp_id, &credential_id]).await.map_err(failed)?.as_ref().map(row::credential).transpose()
        })
        .await
    }

    async fn list_by_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<StoredCredential>, StoreError> {
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials WHERE rp_id = $1 AND user_handle = $2 ORDER BY created_at_ms, credential_id"
                ))
                .await
                .map_err(failed)?;
            c.query(&s, &[&rp_id, &user_handle]).await.map_err(failed)?.iter().map(row::credential).collect()
        })
        .await
    }

    async fn count_by_aaguid(&self, aaguids: Vec<[u8; 16]>) -> Result<Vec<(String, [u8; 16], u64)>, StoreError> {
        let list: Vec<Vec<u8>> = aaguids.iter().map(|a| a.to_vec()).collect();
        self.with(async |c| {
            let rows = c
                .query(
                    "SELECT rp_id, aaguid, count(*) FROM credentials WHERE aaguid = ANY($1) AND NOT revoked GROUP BY rp_id, aaguid ORDER BY rp_id, aaguid",
                    &[&list],
                )
                .await
                .map_err(failed)?;
            rows.iter()
                .map(|r| {
                    let a: Vec<u8> = r.try_get(1).map_err(corrupt)?;
                    let a: [u8; 16] = a.try_into().map_err(|_| StoreError::Corrupt("credentials.aaguid: not 16 bytes".into()))?;
                    Ok((r.try_get(0).map_err(corrupt)?, a, u64::try_from(r.try_get::<_, i64>(2).map_err(corrupt)?).unwrap_or(0)))
                })
                .collect()
        })
        .await
    }

    async fn revoke_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(async |c| {
            let rows = c
                .query(
                    "UPDATE credentials c SET revoked = true
                     FROM (SELECT rp_id, credential_id FROM credentials WHERE rp_id = $1 AND user_handle = $2 AND NOT revoked
                           ORDER BY rp_id, credential_id FOR UPDATE) AS k
                     WHERE c.rp_id = k.rp_id AND c.credential_id = k.credential_id AND NOT c.revoked
                     RETURNING c.credential_id",
                    &[&rp_id, &user_handle],
                )
                .await
                .map_err(failed)?;
            Ok(rows.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect())
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
        let store = self.clone();
        self.counter_groups
            .advance(updates, uses, now_ms, move |all, uses, now_ms| {
                let store = store.clone();
                async move { store.settle_once(&all, &uses, now_ms).await }
            })
            .await
    }

    async fn set_backup_eligible(&self, keys: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let rps: Vec<&str> = keys.iter().map(|(rp, _)| rp.as_str()).collect();
        let ids: Vec<&[u8]> = keys.iter().map(|(_, id)| id.as_slice()).collect();
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!(
                    "UPDATE credentials c SET backup_eligible = true FROM {LOCKED_IN_KEY_ORDER} AS k
                     WHERE c.rp_id = k.rp_id AND c.credential_id = k.credential_id AND NOT c.revoked"
                ))
                .await
                .map_err(failed)?;
            c.execute(&s, &[&rps, &ids]).await.map_err(failed).map(|_| ())
        })
        .await
    }

    async fn record_states(&self, updates: Vec<StateUpdate>) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let rps: Vec<&str> = updates.iter().map(|u| u.rp_id.as_str()).collect();
        let ids: Vec<&[u8]> = updates.iter().map(|u| u.credential_id.as_slice()).collect();
        let bs: Vec<bool> = updates.iter().map(|u| u.backup_state).collect();
        let uv: Vec<bool> = updates.iter().map(|u| u.uv_initialized).collect();
        self.with(async |c| {
            // Rows locked in key order, as every multi-row write here.
            let s = c
                .prepare_cached(
                    "UPDATE credentials c SET backup_state = k.bs, uv_initialized = c.uv_initialized OR k.uv
                     FROM (SELECT l.rp_id, l.credential_id, k.bs, k.uv FROM credentials l
                           JOIN unnest($1::text[], $2::bytea[], $3::bool[], $4::bool[]) AS k(rp_id, credential_id, bs, uv)
                             USING (rp_id, credential_id)
                           ORDER BY l.rp_id, l.credential_id FOR UPDATE OF l) AS k
                     WHERE c.rp_id = k.rp_id AND c.credential_id = k.credential_id AND NOT c.revoked",
                )
                .await
                .map_err(failed)?;
            c.execute(&s, &[&rps, &ids, &bs, &uv]).await.map_err(failed).map(|_| ())
        })
        .await
    }

    async fn touch(&self, keys: Vec<(String, Vec<u8>)>, now_ms: i64) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let rps: Vec<&str> = keys.iter().map(|(r, _)| r.as_str()).collect();
        let ids: Vec<&[u8]> = keys.iter().map(|(_, i)| i.as_slice()).collect();
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!(
                    "UPDATE credentials c SET last_used_at_ms = greatest(coalesce(c.last_used_at_ms, 0), $3)
                     FROM {LOCKED_IN_KEY_ORDER} AS u
                     WHERE c.rp_id = u.rp_id AND c.credential_id = u.credential_id"
                ))
                .await
                .map_err(failed)?;
            c.execute(&s, &[&rps, &ids, &now_ms]).await.map(|_| ()).map_err(failed)
        })
        .await
    }

    async fn page(&self, after: Option<(String, Vec<u8>)>, limit: usize) -> Result<Vec<StoredCredential>, StoreError> {
        let (rp, id) = after.unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials WHERE (rp_id, credential_id) > ($1, $2) ORDER BY rp_id, credential_id LIMIT $3"
                ))
                .await
                .map_err(failed)?;
            c.query(&s, &[&rp, &id, &limit]).await.map_err(failed)?.iter().map(row::credential).collect()
        })
        .await
    }

    async fn create_with_challenge(&self, r: StoredCredential, challenge: ChallengeUse) -> Result<Registered, StoreError> {
        // One statement, so one transaction: the use, and the credential
        // only when the use was the first.
        let sql = format!(
            "WITH used AS (
               INSERT INTO consumed_challenges (id, keep_until_ms) VALUES (${use_id}, ${keep}) ON CONFLICT (id) DO NOTHING RETURNING id
             ), created AS (
               INSERT INTO credentials ({COLUMNS})
               SELECT {DOLLARS} WHERE EXISTS (SELECT 1 FROM used)
               ON CONFLICT (rp_id, credential_id) DO NOTHING RETURNING {COLUMNS}
             )
             SELECT {COLUMNS}, true FROM created
             UNION ALL SELECT {NULLS}, EXISTS (SELECT 1 FROM used) WHERE NOT EXISTS (SELECT 1 FROM created)",
            NULLS = vec!["NULL"; row::WIDTH].join(", "),
            use_id = row::WIDTH + 1,
            keep = row::WIDTH + 2,
        );
        let values = row::values(&r);
        let (id, keep) = (&challenge.id[..], challenge.keep_until_ms);
        let row = self
            .with(async |c| {
                let s = c.prepare_cached(&sql).await.map_err(failed)?;
                let mut params = bind(&values);
                params.push(&id);
                params.push(&keep);
                c.query_one(&s, &params).await.map_err(failed)
            })
            .await?;
        let fresh: bool = row.try_get(row::WIDTH).map_err(corrupt)?;
        match (fresh, row.try_get::<_, Option<String>>(0).map_err(corrupt)?) {
            (false, _) => Ok(Registered::ChallengeReplayed),
            (true, None) => Ok(Registered::AlreadyRegistered),
            (true, Some(_)) => Ok(Registered::Created(Box::new(row::credential(&row)?))),
        }
    }
}

#[async_trait]
impl ChallengeLedger for PostgresStore {
    async fn prune_challenges(&self, now_ms: i64, margin_ms: i64) -> Result<u64, StoreError> {
        // The earlier of this replica's clock and the database's: a replica
        // whose clock runs ahead cannot cut the records short.
        self.with(async |c| {
            c.execute(
                "DELETE FROM consumed_challenges
                 WHERE keep_until_ms < least($1, (extract(epoch FROM clock_timestamp()) * 1000)::int8) - $2",
                &[&now_ms, &margin_ms],
            )
            .await
            .map_err(failed)
        })
        .await
    }
}

#[async_trait]
impl MetadataSerial for PostgresStore {
    async fn raise_metadata_serial(&self, number: u64, now_ms: i64) -> Result<u64, StoreError> {
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.with(async |c| {
            // One statement: the serial after it, raised only when higher.
            let row = c
                .query_one(
                    "WITH raised AS (
                       INSERT INTO metadata_serial (id, number, set_at_ms) VALUES (1, $1, $2)
                       ON CONFLICT (id) DO UPDATE SET number = excluded.number, set_at_ms = excluded.set_at_ms
                         WHERE excluded.number > metadata_serial.number
                       RETURNING number
                     )
                     SELECT number FROM raised UNION ALL SELECT number FROM metadata_serial WHERE NOT EXISTS (SELECT 1 FROM raised)",
                    &[&n, &now_ms],
                )
                .await
                .map_err(failed)?;
            Ok(u64::try_from(row.try_get::<_, i64>(0).map_err(corrupt)?).unwrap_or(0))
        })
        .await
    }

    async fn report_blocked_models(&self, blocked: Vec<[u8; 16]>, now_ms: i64) -> Result<Vec<[u8; 16]>, StoreError> {
        let list: Vec<Vec<u8>> = blocked.iter().map(|a| a.to_vec()).collect();
        self.with(async |c| {
            // Only the rows this statement inserted come back: of replicas
            // loading the same list at once, one reports each model.
            let rows = c
                .query(
                    "INSERT INTO blocked_models (aaguid, since_ms) SELECT a, $2 FROM unnest($1::bytea[]) AS a ON CONFLICT DO NOTHING RETURNING aaguid",
                    &[&list, &now_ms],
                )
                .await
                .map_err(failed)?;
            c.execute("DELETE FROM blocked_models WHERE NOT (aaguid = ANY($1))", &[&list]).await.map_err(failed)?;
            rows.iter()
                .map(|r| {
                    let a: Vec<u8> = r.try_get(0).map_err(corrupt)?;
                    a.try_into().map_err(|_| StoreError::Corrupt("blocked_models.aaguid: not 16 bytes".into()))
                })
                .collect()
        })
        .await
    }

    async fn set_metadata_serial(&self, number: u64, now_ms: i64) -> Result<(), StoreError> {
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.with(async |c| {
            c.execute(
                "INSERT INTO metadata_serial (id, number, set_at_ms) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET number = excluded.number, set_at_ms = excluded.set_at_ms",
                &[&n, &now_ms],
            )
            .await
            .map(|_| ())
            .map_err(failed)
        })
        .await
    }
}

#[async_trait]
impl Health for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.with(async |c| c.simple_query("SELECT 1").await.map(|_| ()).map_err(failed)).await
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    fn change_feed_up(&self) -> Option<bool> {
        Some(self.feed_up.load(std::sync::atomic::Ordering::Relaxed))
    }
}
