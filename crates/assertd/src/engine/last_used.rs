//! `last_used_at`: written at most once per credential per interval. A use
//! claims the write through the cached entry (an atomic, no map probe per
//! assertion); claimed credentials wait here until a timer flushes them to
//! the store in one call.

use crate::telemetry;
use assertd_store::{CachedCredential, CredentialStore};
use std::collections::HashSet;

/// Credentials per store call: on SQLite each call is a job of the one
/// writer, so counter updates wait for at most one chunk (20 000 credentials
/// in one call held them for ~0.8 s on a 220 000-credential database).
pub const CHUNK: usize = 256;

/// Credentials whose `last_used_at` write is due.
#[derive(Debug)]
pub struct LastUsed {
    pending: parking_lot::Mutex<HashSet<(String, Vec<u8>)>>,
    window_ms: i64,
}

impl LastUsed {
    /// At most one write per credential per `interval`.
    pub fn new(interval: std::time::Duration) -> Self {
        Self { pending: parking_lot::Mutex::default(), window_ms: i64::try_from(interval.as_millis()).unwrap_or(i64::MAX) }
    }

    /// Whether this use of `c` at `now_ms` claims the credential's write.
    pub fn claim(&self, c: &CachedCredential, now_ms: i64) -> bool {
        c.claim_touch(now_ms, self.window_ms)
    }

    /// Queues the claimed credentials of one batch (one lock per batch).
    pub fn queue(&self, claimed: Vec<(String, Vec<u8>)>) {
        if !claimed.is_empty() {
            self.pending.lock().extend(claimed);
        }
    }

    /// Writes every queued credential, [`CHUNK`] per store call; a failed
    /// chunk, and every one after it, is retried at the next flush.
    pub async fn flush(&self, store: &dyn CredentialStore, now_ms: i64) {
        let mut keys: Vec<(String, Vec<u8>)> = self.pending.lock().drain().collect();
        while !keys.is_empty() {
            let rest = keys.split_off(keys.len().min(CHUNK));
            let started = std::time::Instant::now();
            let touched = store.touch(keys.clone(), now_ms).await;
            telemetry::store_duration("touch", started.elapsed());
            if let Err(e) = touched {
                telemetry::store_error("touch");
                tracing::warn!(error = %e, "last_used_at update failed; will retry");
                let mut pending = self.pending.lock();
                pending.extend(keys);
                pending.extend(rest);
                return;
            }
            keys = rest;
        }
    }
}
