//! Adoption numbers on SQLite (transports are stored comma-separated).

use super::{SqliteStore, unavailable};
use crate::record::StoredCredential;
use crate::row::COLUMNS;
use crate::stats::{Dialect, StatsGroup, StatsRow, query};
use crate::store::{CredentialStats, UserCursor};
use crate::types::StoreError;
use async_trait::async_trait;
use rusqlite::params;

const SQLITE: Dialect = Dialect {
    rp: "?1",
    since: "?2",
    truth: |column| format!("({column} <> 0)"),
    hex_aaguid: "lower(hex(aaguid))",
    // Back 6 days, then forward to a Monday: the week's Monday.
    week: "date(created_at_ms / 1000, 'unixepoch', '-6 days', 'weekday 1')",
    has_transport: |t| format!("instr(',' || transports || ',', ',{t},') > 0"),
    no_transport: "transports = ''",
};

#[async_trait]
impl CredentialStats for SqliteStore {
    async fn credential_stats(&self, rp_id: &str, group: StatsGroup, active_since_ms: i64) -> Result<Vec<StatsRow>, StoreError> {
        let rp_id = rp_id.to_owned();
        self.read(move |c| {
            let mut s = c.prepare_cached(&query(group, &SQLITE)).map_err(unavailable)?;
            let rows = s
                .query_map(params![rp_id, active_since_ms], |r| {
                    Ok(StatsRow {
                        key: r.get(0)?,
                        credentials: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                        users: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
                        active: r.get::<_, i64>(3)?.try_into().unwrap_or(0),
                    })
                })
                .map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable)).collect()
        })
        .await
    }

    async fn page_by_user(&self, after: UserCursor, limit: usize) -> Result<Vec<StoredCredential>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (rp, user, id) = after;
        self.read_merged(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials INDEXED BY credentials_by_user \
                     WHERE (rp_id, user_handle, credential_id) > (?1, ?2, ?3) ORDER BY rp_id, user_handle, credential_id LIMIT ?4"
                ))
                .map_err(unavailable)?;
            super::queries::all(&mut s, params![rp, user, id, limit])
        })
        .await
    }
}
