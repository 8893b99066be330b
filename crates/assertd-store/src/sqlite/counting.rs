//! SQLite's counter step of a sign-in group: every counted assertion's
//! outcome in batch order (`crate::counters`' rule). The counts that grew
//! are staged for the group's journal frame (`journal`), not written into
//! their rows: a counted credential costs a few dozen journal bytes, not a
//! 4 KiB page (BENCHMARKS.md §22).

use super::journal::Record;
use super::pending::CounterLog;
use super::unavailable;
use crate::counters;
use crate::types::{CounterResult, CounterUpdate, StoreError};
use foldhash::{HashMap, HashMapExt};
use rusqlite::{Connection, OptionalExtension, params};

/// Settles `updates` in the open transaction of `c` (which sees every
/// revocation and deletion before it), with the counts the journal holds
/// for each row beyond the row's own.
pub(super) fn advance(
    c: &Connection,
    log: &mut CounterLog,
    updates: &[CounterUpdate],
    now_ms: i64,
) -> Result<Vec<CounterResult>, StoreError> {
    let distinct = counters::distinct_max(updates);
    // Point reads by primary key with one cached statement: an
    // `IN (VALUES ...)` per batch size would be parsed again for
    // every size the statement cache does not hold.
    let mut rows: HashMap<counters::Key<'_>, counters::RowState> = HashMap::with_capacity(distinct.len());
    let mut created: HashMap<counters::Key<'_>, i64> = HashMap::with_capacity(distinct.len());
    let mut read = c
        .prepare_cached("SELECT sign_count, revoked, created_at_ms FROM credentials WHERE rp_id = ?1 AND credential_id = ?2")
        .map_err(unavailable)?;
    for d in &distinct {
        let (rp, id) = d.key;
        let row = read
            .query_row(params![rp, id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?, r.get::<_, i64>(2)?)))
            .optional()
            .map_err(unavailable)?;
        let state = match row {
            Some((n, revoked, at)) => {
                let n = u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("credentials.sign_count: {n} is out of range")))?;
                created.insert(d.key, at);
                Some((n.max(log.count(rp, id, at).unwrap_or(0)), revoked))
            }
            None => None,
        };
        rows.insert(d.key, state);
    }
    let plan = counters::plan(updates, &rows);
    for ((rp_id, id), _, after) in &plan.writes {
        let created_ms = created.get(&(*rp_id, *id)).copied().unwrap_or_default();
        log.stage(Record { rp_id: (*rp_id).to_owned(), credential_id: id.to_vec(), count: *after, at_ms: now_ms, created_ms });
    }
    Ok(plan.results)
}
