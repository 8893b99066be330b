//! Adoption numbers on PostgreSQL.

use super::{PostgresStore, corrupt, failed};
use crate::record::StoredCredential;
use crate::row::{self, COLUMNS};
use crate::stats::{Dialect, StatsGroup, StatsRow, query};
use crate::store::{CredentialStats, UserCursor};
use crate::types::StoreError;
use async_trait::async_trait;

const POSTGRES: Dialect = Dialect {
    rp: "$1",
    since: "$2",
    truth: |column| column.to_owned(),
    hex_aaguid: "encode(aaguid, 'hex')",
    week: "to_char(date_trunc('week', to_timestamp(created_at_ms / 1000.0) AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
    has_transport: |t| format!("'{t}' = ANY(transports)"),
    no_transport: "cardinality(transports) = 0",
};

#[async_trait]
impl CredentialStats for PostgresStore {
    async fn credential_stats(&self, rp_id: &str, group: StatsGroup, active_since_ms: i64) -> Result<Vec<StatsRow>, StoreError> {
        self.with(async |c| {
            let rows = c.query(&query(group, &POSTGRES), &[&rp_id, &active_since_ms]).await.map_err(failed)?;
            rows.iter()
                .map(|r| {
                    let n = |i: usize| r.try_get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0)).map_err(corrupt);
                    Ok(StatsRow { key: r.try_get(0).map_err(corrupt)?, credentials: n(1)?, users: n(2)?, active: n(3)? })
                })
                .collect()
        })
        .await
    }

    async fn page_by_user(&self, after: UserCursor, limit: usize) -> Result<Vec<StoredCredential>, StoreError> {
        let (rp, user, id) = after;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(async |c| {
            let s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials WHERE (rp_id, user_handle, credential_id) > ($1, $2, $3) \
                     ORDER BY rp_id, user_handle, credential_id LIMIT $4"
                ))
                .await
                .map_err(failed)?;
            c.query(&s, &[&rp, &user, &id, &limit]).await.map_err(failed)?.iter().map(row::credential).collect()
        })
        .await
    }
}
