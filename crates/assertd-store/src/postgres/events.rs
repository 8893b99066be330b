//! The event log on PostgreSQL: appends serialize on an advisory lock, so
//! ids commit in order on every replica; the insert trigger tells every
//! replica's watchers.

use super::schema::EVENTS_LOCK;
use super::{PostgresStore, failed};
use crate::events::{self, EVENT_COLUMNS, Event, NewEvent};
use crate::store::{Deliveries, Events};
use crate::types::StoreError;
use async_trait::async_trait;

#[async_trait]
impl Events for PostgresStore {
    async fn append_events(&self, list: Vec<NewEvent>) -> Result<Vec<i64>, StoreError> {
        self.in_transaction(async |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK]).await.map_err(failed)?;
            let s = tx
                .prepare_cached(
                    "INSERT INTO events (at_ms, rp_id, kind, user_handle, credential_id, actor, detail, facts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .await
                .map_err(failed)?;
            let mut ids = Vec::with_capacity(list.len());
            for e in &list {
                let row = tx
                    .query_one(&s, &[&e.at_ms, &e.rp_id, &e.kind, &e.user_handle, &e.credential_id, &e.actor, &e.detail, &e.facts])
                    .await
                    .map_err(failed)?;
                ids.push(row.get::<_, i64>(0));
            }
            Ok(ids)
        })
        .await
    }

    async fn events_after(&self, after: i64, rp_ids: Option<Vec<String>>, limit: usize) -> Result<Vec<Event>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(async |c| {
            let rows = match &rp_ids {
                None => c.query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"), &[&after, &limit]).await,
                Some(rps) => {
                    c.query(
                        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 AND rp_id = ANY($3) ORDER BY id LIMIT $2"),
                        &[&after, &limit, rps],
                    )
                    .await
                }
            }
            .map_err(failed)?;
            rows.iter().map(events::event).collect()
        })
        .await
    }

    async fn event_bounds(&self) -> Result<(Option<i64>, i64), StoreError> {
        self.with(async |c| {
            let first: Option<i64> = c.query_one("SELECT min(id) FROM events", &[]).await.map_err(failed)?.get(0);
            // The sequence keeps the highest id ever given, even once pruned.
            let last: i64 =
                c.query_one("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_id_seq", &[]).await.map_err(failed)?.get(0);
            Ok((first, last))
        })
        .await
    }

    async fn prune_events(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.with(async |c| c.execute("DELETE FROM events WHERE at_ms < $1", &[&before_ms]).await.map_err(failed)).await
    }
}

#[async_trait]
impl Deliveries for PostgresStore {
    async fn claim_delivery(
        &self,
        receiver: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
        start: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.with(async |c| {
            c.execute(
                "INSERT INTO deliveries (receiver, cursor, holder, lease_until_ms) VALUES ($1, $2, '', 0) ON CONFLICT DO NOTHING",
                &[&receiver, &start],
            )
            .await
            .map_err(failed)?;
            // The row lock serializes two replicas' claims; the second
            // re-reads the row and finds the first's live lease.
            let row = c
                .query_opt(
                    "UPDATE deliveries SET holder = $2, lease_until_ms = $4 WHERE receiver = $1 AND (holder IN ($2, '') OR lease_until_ms < $3) RETURNING cursor",
                    &[&receiver, &holder, &now_ms, &until_ms],
                )
                .await
                .map_err(failed)?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    async fn advance_delivery(&self, receiver: &str, holder: &str, cursor: i64, until_ms: i64) -> Result<bool, StoreError> {
        self.with(async |c| {
            c.execute(
                "UPDATE deliveries SET cursor = GREATEST(cursor, $3), lease_until_ms = $4 WHERE receiver = $1 AND holder = $2",
                &[&receiver, &holder, &cursor, &until_ms],
            )
            .await
            .map(|n| n == 1)
            .map_err(failed)
        })
        .await
    }

    async fn release_delivery(&self, receiver: &str, holder: &str) -> Result<(), StoreError> {
        self.with(async |c| {
            c.execute("UPDATE deliveries SET holder = '', lease_until_ms = 0 WHERE receiver = $1 AND holder = $2", &[&receiver, &holder])
                .await
                .map(|_| ())
                .map_err(failed)
        })
        .await
    }
}
