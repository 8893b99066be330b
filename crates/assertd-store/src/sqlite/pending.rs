//! Counts in the journal not yet folded into `credentials`: what readers
//! merge into the rows they return, and the writer's side of the journal
//! (staging a group's counts, appending them, folding them in).
//!
//! Folding: the journal is cut into generations. When one grows past
//! [`ROTATE_BYTES`] or [`ROTATE_KEYS`] credentials, or the writer has been
//! idle for [`IDLE`], it is closed and its credentials are written into
//! `credentials` [`FOLD_CHUNK`] at a time between groups, in key order (so
//! a chunk's rows share pages), each credential once however often it was
//! counted. A closed generation's file is removed once all of it is in.

use super::journal::{self, Journal, Record};
use super::unavailable;
use crate::record::StoredCredential;
use crate::types::StoreError;
use foldhash::HashMapExt;
use parking_lot::Mutex;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A generation is closed past this many bytes…
const ROTATE_BYTES: u64 = 8 << 20;
/// …or this many credentials counted in it. A generation holds each of
/// its credentials in memory until folded (key, count and the fold list:
/// ~200 bytes), and folding rewrites their rows, so a population counted
/// round and round (20 000 credentials at 6 400 sign-ins/s) should fit in
/// one generation: folded once per 8 MiB rather than every few seconds
/// (BENCHMARKS.md §24).
const ROTATE_KEYS: usize = 65_536;
/// Credentials folded in one transaction, between two groups.
pub(super) const FOLD_CHUNK: usize = 256;
/// Idle this long, the writer folds everything.
pub(super) const IDLE: Duration = Duration::from_secs(1);

/// A count not yet in its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    count: u32,
    at_ms: i64,
    created_ms: i64,
}

/// The counts readers merge (shared with the writer).
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// By [`key`]. SipHash: the keys come from callers and live long.
    map: Mutex<HashMap<Box<[u8]>, Entry>>,
    /// Bumped after a fold commits, before its entries leave `map`.
    folds: AtomicU64,
}

/// A credential's key in the maps: the relying party's length, the
/// relying party, the credential id.
fn key(rp_id: &str, id: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&u32::try_from(rp_id.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(rp_id.as_bytes());
    out.extend_from_slice(id);
}

/// (relying party, credential id) of a [`key`].
fn split(key: &[u8]) -> (&str, &[u8]) {
    let n = key.get(..4).and_then(|b| b.try_into().ok()).map_or(0, |b| u32::from_le_bytes(b) as usize);
    let rp = key.get(4..4 + n).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("");
    (rp, key.get(4 + n..).unwrap_or(&[]))
}

/// What a read returns, with pending counts merged in.
pub(super) trait Merge {
    fn merge(&mut self, map: &HashMap<Box<[u8]>, Entry>, buf: &mut Vec<u8>);
}

impl Merge for StoredCredential {
    fn merge(&mut self, map: &HashMap<Box<[u8]>, Entry>, buf: &mut Vec<u8>) {
        key(&self.rp_id, &self.credential_id, buf);
        if let Some(e) = map.get(buf.as_slice()).filter(|e| e.created_ms == self.created_at_ms) {
            self.sign_count = self.sign_count.max(e.count);
            self.last_used_at_ms = Some(self.last_used_at_ms.map_or(e.at_ms, |t| t.max(e.at_ms)));
        }
    }
}

impl<T: Merge> Merge for Option<T> {
    fn merge(&mut self, map: &HashMap<Box<[u8]>, Entry>, buf: &mut Vec<u8>) {
        if let Some(v) = self {
            v.merge(map, buf);
        }
    }
}

impl<T: Merge> Merge for Vec<T> {
    fn merge(&mut self, map: &HashMap<Box<[u8]>, Entry>, buf: &mut Vec<u8>) {
        for v in self {
            v.merge(map, buf);
        }
    }
}

impl Merge for crate::types::Replaced {
    fn merge(&mut self, map: &HashMap<Box<[u8]>, Entry>, buf: &mut Vec<u8>) {
        if let Self::Replaced(r) = self {
            r.merge(map, buf);
        }
    }
}

impl Pending {
    /// Runs `read` and merges pending counts into what it returns; again
    /// if a fold moved counts from the map to the rows meanwhile (the read
    /// may have seen the rows before, and the map after).
    pub(super) fn merged<T: Merge>(&self, mut read: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut buf = Vec::new();
        loop {
            let folds = self.folds.load(Ordering::SeqCst);
            let mut v = read()?;
            {
                let map = self.map.lock();
                if !map.is_empty() {
                    v.merge(&map, &mut buf);
                }
            }
            if self.folds.load(Ordering::SeqCst) == folds {
                return Ok(v);
            }
        }
    }

    /// A snapshot of the counts in `records` (a store that does not hold
    /// the journal reads what was in it at its open).
    pub(super) fn load(&self, records: &[Record]) {
        let mut map = self.map.lock();
        let mut buf = Vec::new();
        for r in records {
            key(&r.rp_id, &r.credential_id, &mut buf);
            let e = Entry { count: r.count, at_ms: r.at_ms, created_ms: r.created_ms };
            match map.get_mut(buf.as_slice()) {
                Some(old) if old.created_ms == e.created_ms => {
                    old.count = old.count.max(e.count);
                    old.at_ms = old.at_ms.max(e.at_ms);
                }
                Some(old) => *old = e,
                None => {
                    map.insert(buf.as_slice().into(), e);
                }
            }
        }
    }

    /// Merges pending counts into `v`, read on the writer thread (the only
    /// one folding, so nothing moves between the read and the merge).
    pub(super) fn merge_into<T: Merge>(&self, v: &mut T) {
        let map = self.map.lock();
        if !map.is_empty() {
            v.merge(&map, &mut Vec::new());
        }
    }

    /// Credentials with a pending count.
    pub(super) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// The writer's side: the journal, the group being staged, what is left
/// to fold.
pub(super) struct CounterLog {
    /// `None` in a store opened beside the server that holds the journal
    /// (a command-line tool): it reads, and never counts.
    journal: Option<Journal>,
    pending: std::sync::Arc<Pending>,
    /// The group's counts, in the order staged.
    staged: Vec<Record>,
    /// Where each credential's latest staged count is.
    staged_at: foldhash::HashMap<Box<[u8]>, usize>,
    /// Credentials that became pending in the open generation.
    dirty: Vec<Box<[u8]>>,
    /// Closed generations' credentials still to fold, last first.
    folding: Vec<Box<[u8]>>,
    /// Closed generations' files, removed once `folding` is empty.
    retired: Vec<PathBuf>,
    frame: Vec<u8>,
    key: Vec<u8>,
}

impl CounterLog {
    pub(super) fn new(journal: Option<Journal>, pending: std::sync::Arc<Pending>) -> Self {
        Self {
            journal,
            pending,
            staged: Vec::new(),
            staged_at: foldhash::HashMap::new(),
            dirty: Vec::new(),
            folding: Vec::new(),
            retired: Vec::new(),
            frame: Vec::new(),
            key: Vec::new(),
        }
    }

    /// The count a group has so far for the row created at `created_ms`
    /// beyond the row's own (staged earlier in the group, or pending).
    pub(super) fn count(&mut self, rp_id: &str, id: &[u8], created_ms: i64) -> Option<u32> {
        key(rp_id, id, &mut self.key);
        if let Some(&i) = self.staged_at.get(self.key.as_slice()) {
            let r = &self.staged[i];
            if r.created_ms == created_ms {
                return Some(r.count);
            }
        }
        let map = self.pending.map.lock();
        map.get(self.key.as_slice()).filter(|e| e.created_ms == created_ms).map(|e| e.count)
    }

    /// Stages a count for the group's frame.
    pub(super) fn stage(&mut self, record: Record) {
        key(&record.rp_id, &record.credential_id, &mut self.key);
        let i = self.staged.len();
        self.staged.push(record);
        if let Some(at) = self.staged_at.get_mut(self.key.as_slice()) {
            *at = i;
        } else {
            self.staged_at.insert(self.key.as_slice().into(), i);
        }
    }

    /// Where a job's staging starts.
    pub(super) fn mark(&self) -> usize {
        self.staged.len()
    }

    /// Forgets what was staged since `mark` (a job rolled back).
    pub(super) fn rollback(&mut self, mark: usize) {
        if mark == self.staged.len() {
            return;
        }
        self.staged.truncate(mark);
        self.staged_at.clear();
        for (i, r) in self.staged.iter().enumerate() {
            key(&r.rp_id, &r.credential_id, &mut self.key);
            self.staged_at.insert(self.key.as_slice().into(), i);
        }
    }

    /// Appends the group's counts as one synced frame and makes them
    /// pending; on failure nothing of them is kept.
    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        journal::encode(&self.staged, &mut self.frame);
        self.staged_at.clear();
        let Some(j) = self.journal.as_mut() else {
            self.staged.clear();
            return Err(StoreError::Unavailable("sign-ins are counted by the assertd that holds the data directory, not here".into()));
        };
        if let Err(e) = j.append(&self.frame) {
            self.staged.clear();
            return Err(StoreError::Unavailable(format!("cannot append to the counter journal: {e}")));
        }
        let mut map = self.pending.map.lock();
        for r in self.staged.drain(..) {
            key(&r.rp_id, &r.credential_id, &mut self.key);
            let entry = Entry { count: r.count, at_ms: r.at_ms, created_ms: r.created_ms };
            if let Some(e) = map.get_mut(self.key.as_slice()) {
                *e = entry;
            } else {
                let k: Box<[u8]> = self.key.as_slice().into();
                map.insert(k.clone(), entry);
                self.dirty.push(k);
            }
        }
        Ok(())
    }

    /// Forgets the group's staged counts (its transaction failed).
    pub(super) fn discard(&mut self) {
        self.staged.clear();
        self.staged_at.clear();
    }

    /// Whether a fold is under way.
    pub(super) fn folding(&self) -> bool {
        !self.folding.is_empty() || !self.retired.is_empty()
    }

    /// Whether the open generation should be closed now (`idle`: nothing
    /// waits for the writer).
    pub(super) fn should_rotate(&self, idle: bool) -> bool {
        let Some(j) = &self.journal else { return false };
        !self.folding() && (j.len() >= ROTATE_BYTES || self.dirty.len() >= ROTATE_KEYS || (idle && !self.dirty.is_empty()))
    }

    /// Closes the open generation: its credentials are folded from now on.
    pub(super) fn rotate(&mut self) -> Result<(), StoreError> {
        let Some(j) = self.journal.as_mut() else { return Ok(()) };
        let old = j.rotate().map_err(|e| StoreError::Unavailable(format!("cannot start a counter journal: {e}")))?;
        self.retired.push(old);
        self.folding.append(&mut self.dirty);
        // Last first, so that popping goes up the primary key.
        self.folding.sort_unstable_by(|a, b| split(b).cmp(&split(a)));
        Ok(())
    }

    /// Folds up to `n` credentials into their rows in one transaction; once
    /// nothing is left to fold, removes the closed generations' files.
    pub(super) fn fold(&mut self, conn: &mut Connection, n: usize) -> Result<(), StoreError> {
        let keys = self.folding.split_off(self.folding.len().saturating_sub(n));
        let entries: Vec<(Box<[u8]>, Entry)> = {
            let map = self.pending.map.lock();
            keys.iter().filter_map(|k| map.get(k).map(|e| (k.clone(), *e))).collect()
        };
        if let Err(e) = write_rows(conn, entries.iter().map(|(k, e)| (split(k), *e))) {
            // Back in place: `keys` kept `folding`'s order (last first).
            self.folding.extend(keys);
            return Err(e);
        }
        self.pending.folds.fetch_add(1, Ordering::SeqCst);
        {
            let mut map = self.pending.map.lock();
            for (k, e) in &entries {
                if map.get(k) == Some(e) {
                    map.remove(k);
                }
            }
        }
        if self.folding.is_empty() {
            journal::remove(&self.retired);
            self.retired.clear();
        }
        Ok(())
    }

    /// Folds everything and removes the journal (at a clean stop); true
    /// when nothing is left outside the tables.
    pub(super) fn fold_all(&mut self, conn: &mut Connection) -> Result<bool, StoreError> {
        let Some(len) = self.journal.as_ref().map(Journal::len) else { return Ok(false) };
        if len > journal::HEADER {
            self.rotate()?;
        }
        while self.folding() {
            self.fold(conn, FOLD_CHUNK * 16)?;
        }
        if self.pending.len() > 0 {
            return Ok(false);
        }
        if let Some(j) = &self.journal {
            journal::remove(&[j.path().to_path_buf()]);
        }
        Ok(true)
    }
}

/// Writes counts into their rows, in one transaction: each only raises a
/// count, and only in the row it was counted in.
fn write_rows<'a>(conn: &mut Connection, counts: impl Iterator<Item = ((&'a str, &'a [u8]), Entry)>) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(unavailable)?;
    {
        let mut s = tx
            .prepare_cached(
                "UPDATE credentials SET sign_count = max(sign_count, ?3), last_used_at_ms = max(coalesce(last_used_at_ms, 0), ?4)
                 WHERE rp_id = ?1 AND credential_id = ?2 AND created_at_ms = ?5",
            )
            .map_err(unavailable)?;
        for ((rp, id), e) in counts {
            s.execute(params![rp, id, i64::from(e.count), e.at_ms, e.created_ms]).map_err(unavailable)?;
        }
    }
    tx.commit().map_err(unavailable)
}

/// At open: writes the records a crash left in `dir`'s journal files into
/// their rows, then removes the files; the next generation's number.
pub(super) fn replay(conn: &mut Connection, dir: &std::path::Path) -> Result<u64, StoreError> {
    let files = journal::files(dir).map_err(|e| StoreError::Unavailable(format!("cannot list {}: {e}", dir.display())))?;
    let records = journal::read_all(dir)?;
    if !records.is_empty() {
        apply_journal(conn, &records)?;
        tracing::info!(records = records.len(), files = files.len(), "counted sign-ins from the counter journal written into the database");
    }
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    journal::remove(&paths);
    Ok(files.last().map_or(0, |(g, _)| *g))
}

/// Writes journal records into their rows (at a start after a crash, and
/// into a backup's copy).
pub(super) fn apply_journal(conn: &mut Connection, records: &[Record]) -> Result<(), StoreError> {
    write_rows(
        conn,
        records
            .iter()
            .map(|r| ((r.rp_id.as_str(), r.credential_id.as_slice()), Entry { count: r.count, at_ms: r.at_ms, created_ms: r.created_ms })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_the_primary_key() {
        let mut buf = Vec::new();
        let mut keys: Vec<Box<[u8]>> = [("b.example", &b"\x01"[..]), ("a.example", b"\xff"), ("a.example", b"\x01\x02"), ("a", b"z")]
            .iter()
            .map(|(rp, id)| {
                key(rp, id, &mut buf);
                buf.as_slice().into()
            })
            .collect();
        keys.sort_by(|a, b| split(a).cmp(&split(b)));
        let order: Vec<_> = keys.iter().map(|k| split(k)).collect();
        assert_eq!(order, [("a", &b"z"[..]), ("a.example", b"\x01\x02"), ("a.example", b"\xff"), ("b.example", b"\x01")]);
    }
}
