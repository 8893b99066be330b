//! Admission: how much the engine takes on at once. Two budgets: unary RPCs
//! in progress (`limits.max_concurrent_rpcs`) and assertions admitted and
//! not yet verified (`limits.max_queued_assertions`). The second bounds the
//! queue in front of the pool by work, not by request count, so an admitted
//! request's wait is bounded whatever its neighbours' batch sizes.

use super::EngineError;
use crate::config::Limits;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The engine's admission budgets.
#[derive(Debug)]
pub struct Admission {
    rpcs: Arc<Semaphore>,
    work: Arc<Semaphore>,
    work_total: u32,
}

/// Room taken in the assertion budget, given back on drop.
#[derive(Debug)]
pub struct Admitted {
    work: Option<OwnedSemaphorePermit>,
}

/// One of the `max_concurrent_rpcs` slots, given back on drop.
#[derive(Debug)]
pub struct RpcSlot {
    _permit: OwnedSemaphorePermit,
}

impl Admitted {
    /// Gives the work budget back once the signature math is done: the
    /// budget bounds the queue in front of the pool, and a batch in its
    /// counter/encode phase no longer adds to it.
    pub fn verified(&mut self) {
        self.work = None;
    }
}

impl Admission {
    /// Budgets from `limits`, for a pool of `threads` (0 in a limit: 16 RPCs
    /// and 192 assertions per thread).
    pub fn new(limits: &Limits, threads: usize) -> Self {
        let threads = threads.max(1);
        let rpcs = match limits.max_concurrent_rpcs {
            0 => 16 * threads,
            n => n,
        };
        let work_total = match limits.max_queued_assertions {
            0 => 192 * threads,
            n => n,
        };
        // Permits are taken as u32 (acquire_many); u32::MAX is far below the
        // semaphore's own limit.
        let work_total = u32::try_from(work_total).unwrap_or(u32::MAX);
        Self { rpcs: Arc::new(Semaphore::new(rpcs)), work: Arc::new(Semaphore::new(work_total as usize)), work_total }
    }

    /// A slot for one unary RPC, or `None`: `max_concurrent_rpcs` are in
    /// progress.
    pub fn rpc_slot(&self) -> Option<RpcSlot> {
        self.rpcs.clone().try_acquire_owned().ok().map(|p| RpcSlot { _permit: p })
    }

    /// Admits a unary RPC's batch of `assertions` items, or `None`: too much
    /// work is queued. A batch larger than the whole budget is admitted when
    /// the pool is idle.
    pub fn admit(&self, assertions: usize) -> Option<Admitted> {
        let work = self.work.clone().try_acquire_many_owned(self.units(assertions)).ok()?;
        Some(Admitted { work: Some(work) })
    }

    /// Admits one stream message, waiting for room: a stream is flow
    /// controlled (the caller's sends block) instead of failed.
    pub async fn admit_stream(&self, assertions: usize) -> Result<Admitted, EngineError> {
        // The semaphore is never closed; an error would be a bug.
        let work = self.work.clone().acquire_many_owned(self.units(assertions)).await.map_err(|_| EngineError::AdmissionClosed)?;
        Ok(Admitted { work: Some(work) })
    }

    /// Whether the assertion budget is used up: a batch arriving now would
    /// be refused whatever its size.
    pub fn work_exhausted(&self) -> bool {
        self.work.available_permits() == 0
    }

    fn units(&self, assertions: usize) -> u32 {
        u32::try_from(assertions).unwrap_or(u32::MAX).clamp(1, self.work_total)
    }
}
