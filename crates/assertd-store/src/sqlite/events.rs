//! The event log on SQLite: one writer, so ids are in commit order.

use super::{SqliteStore, unavailable};
use crate::events::{self, EVENT_COLUMNS, Event, NewEvent};
use crate::store::{Deliveries, Events};
use crate::types::StoreError;
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl Events for SqliteStore {
    async fn append_events(&self, list: Vec<NewEvent>) -> Result<Vec<i64>, StoreError> {
        self.write(move |c| {
            let mut s = c
                .prepare_cached(
                    "INSERT INTO events (at_ms, rp_id, kind, user_handle, credential_id, actor, detail, facts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                )
                .map_err(unavailable)?;
            list.iter()
                .map(|e| {
                    s.query_row(params![e.at_ms, e.rp_id, e.kind, e.user_handle, e.credential_id, e.actor, e.detail, e.facts], |r| r.get(0))
                        .map_err(unavailable)
                })
                .collect()
        })
        .await
    }

    async fn events_after(&self, after: i64, rp_ids: Option<Vec<String>>, limit: usize) -> Result<Vec<Event>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            // Filtered here, not in SQL: the list is short (a grant's RPs).
            let mut s =
                c.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")).map_err(unavailable)?;
            let mut out = Vec::new();
            let mut cursor = after;
            loop {
                let rows: Vec<Event> = s
                    .query_map(params![cursor, limit], |r| Ok(events::event(r)))
                    .map_err(unavailable)?
                    .map(|r| r.map_err(unavailable).and_then(|r| r))
                    .collect::<Result<_, _>>()?;
                let full = rows.len() as i64 == limit;
                let Some(last) = rows.last().map(|e| e.id) else { break };
                cursor = last;
                out.extend(rows.into_iter().filter(|e| rp_ids.as_ref().is_none_or(|rps| rps.contains(&e.event.rp_id))));
                if !full || out.len() as i64 >= limit {
                    break;
                }
            }
            out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok(out)
        })
        .await
    }

    async fn event_bounds(&self) -> Result<(Option<i64>, i64), StoreError> {
        self.read(move |c| {
            let first: Option<i64> = c.query_row("SELECT min(id) FROM events", [], |r| r.get(0)).map_err(unavailable)?;
            // AUTOINCREMENT keeps the highest id ever given, even once pruned.
            let last: Option<i64> =
                c.query_row("SELECT max(seq) FROM sqlite_sequence WHERE name = 'events'", [], |r| r.get(0)).map_err(unavailable)?;
            Ok((first, last.unwrap_or(0)))
        })
        .await
    }

    async fn prune_events(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM events WHERE at_ms < ?1")
                .and_then(|mut s| s.execute([before_ms]))
                .map(|n| n as u64)
                .map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl Deliveries for SqliteStore {
    async fn claim_delivery(
        &self,
        receiver: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
        start: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (receiver, holder) = (receiver.to_owned(), holder.to_owned());
        self.write(move |c| {
            c.prepare_cached("INSERT INTO deliveries (receiver, cursor, holder, lease_until_ms) VALUES (?1, ?2, '', 0) ON CONFLICT DO NOTHING")
                .and_then(|mut s| s.execute(params![receiver, start]))
                .map_err(unavailable)?;
            c.prepare_cached(
                "UPDATE deliveries SET holder = ?2, lease_until_ms = ?4 WHERE receiver = ?1 AND (holder IN (?2, '') OR lease_until_ms < ?3) RETURNING cursor",
            )
            .and_then(|mut s| s.query_row(params![receiver, holder, now_ms, until_ms], |r| r.get(0)).optional())
            .map_err(unavailable)
        })
        .await
    }

    async fn advance_delivery(&self, receiver: &str, holder: &str, cursor: i64, until_ms: i64) -> Result<bool, StoreError> {
        let (receiver, holder) = (receiver.to_owned(), holder.to_owned());
        self.write(move |c| {
            c.prepare_cached("UPDATE deliveries SET cursor = max(cursor, ?3), lease_until_ms = ?4 WHERE receiver = ?1 AND holder = ?2")
                .and_then(|mut s| s.execute(params![receiver, holder, cursor, until_ms]))
                .map(|n| n == 1)
                .map_err(unavailable)
        })
        .await
    }

    async fn release_delivery(&self, receiver: &str, holder: &str) -> Result<(), StoreError> {
        let (receiver, holder) = (receiver.to_owned(), holder.to_owned());
        self.write(move |c| {
            c.prepare_cached("UPDATE deliveries SET holder = '', lease_until_ms = 0 WHERE receiver = ?1 AND holder = ?2")
                .and_then(|mut s| s.execute(params![receiver, holder]))
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }
}
