//! SQLite's counter step of a sign-in group: every counted assertion's
//! outcome in batch order (`crate::counters`' rule), written in the
//! writer's group transaction.

use super::unavailable;
use crate::counters;
use crate::types::{CounterResult, CounterUpdate, StoreError};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use rusqlite::{Connection, OptionalExtension, params};

/// Settles `updates` in the open transaction of `c`.
pub(super) fn advance(c: &Connection, updates: &[CounterUpdate], now_ms: i64) -> Result<Vec<CounterResult>, StoreError> {
    let distinct = counters::distinct_max(updates);
    // The common case, a credential counted once in the group with a
    // count above its stored one, is one statement: the update that
    // only applies when the count advances (sign_count_advances for a
    // received count above 0) on a live credential. Anything else
    // (not found, revoked, not advancing, counted twice in the
    // group) is read and planned.
    let mut fast: HashSet<counters::Key<'_>> = HashSet::with_capacity(distinct.len());
    {
        let mut advance = c
            .prepare_cached(
                "UPDATE credentials SET sign_count = ?3, last_used_at_ms = ?4
                 WHERE rp_id = ?1 AND credential_id = ?2 AND revoked = 0 AND sign_count < ?3",
            )
            .map_err(unavailable)?;
        for d in &distinct {
            let (rp, id) = d.key;
            if d.max > 0 && d.times == 1 && advance.execute(params![rp, id, i64::from(d.max), now_ms]).map_err(unavailable)? == 1 {
                fast.insert(d.key);
            }
        }
    }
    // Point reads by primary key with one cached statement: an
    // `IN (VALUES ...)` per batch size would be parsed again for
    // every size the statement cache does not hold.
    let mut rows: HashMap<counters::Key<'_>, counters::RowState> = HashMap::with_capacity(distinct.len());
    let mut read =
        c.prepare_cached("SELECT sign_count, revoked FROM credentials WHERE rp_id = ?1 AND credential_id = ?2").map_err(unavailable)?;
    for d in &distinct {
        let (rp, id) = d.key;
        if fast.contains(&d.key) {
            // Written above: it held a lower count (any below `max`
            // plans the same, and nothing is left to write).
            rows.insert(d.key, Some((d.max - 1, false)));
            continue;
        }
        let row = read.query_row(params![rp, id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))).optional().map_err(unavailable)?;
        let state = match row {
            Some((n, revoked)) => {
                Some((u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("credentials.sign_count: {n} is out of range")))?, revoked))
            }
            None => None,
        };
        rows.insert(d.key, state);
    }
    let plan = counters::plan(updates, &rows);
    {
        let mut write = c
            .prepare_cached(
                "UPDATE credentials SET sign_count = ?3, last_used_at_ms = ?4 WHERE rp_id = ?1 AND credential_id = ?2 AND sign_count = ?5",
            )
            .map_err(unavailable)?;
        for ((rp_id, id), before, after) in plan.writes.iter().filter(|(k, _, _)| !fast.contains(k)) {
            write.execute(params![rp_id, id, i64::from(*after), now_ms, i64::from(*before)]).map_err(unavailable)?;
        }
    }
    Ok(plan.results)
}
