//! The request-bytes budget (`limits.max_request_bytes_in_flight`): bytes
//! taken as request bodies arrive, given back when the call has answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request bytes held by unary calls in progress.
#[derive(Debug)]
pub struct ByteBudget {
    pub(super) held: AtomicU64,
    pub(super) cap: u64,
}

/// The bytes one call holds, given back when it is dropped (the call has
/// answered, or was abandoned).
#[derive(Debug)]
pub struct BytesHeld {
    pub(super) budget: Arc<ByteBudget>,
    pub(super) n: AtomicU64,
}

impl BytesHeld {
    /// Takes `n` more bytes for this call; false (nothing taken) when the
    /// budget has no room for them.
    pub fn take(&self, n: u64) -> bool {
        let b = &self.budget;
        let mut cur = b.held.load(Ordering::Acquire);
        loop {
            let Some(next) = cur.checked_add(n).filter(|v| *v <= b.cap) else { return false };
            match b.held.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.n.fetch_add(n, Ordering::AcqRel);
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }
}

impl BytesHeld {
    /// Gives back `n` of the bytes this call holds (a stream message that
    /// arrived whole and went on to be decoded).
    pub fn give(&self, n: u64) {
        let n = n.min(self.n.load(Ordering::Acquire));
        self.n.fetch_sub(n, Ordering::AcqRel);
        self.budget.held.fetch_sub(n, Ordering::AcqRel);
    }
}

impl Drop for BytesHeld {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(*self.n.get_mut(), Ordering::AcqRel);
    }
}
