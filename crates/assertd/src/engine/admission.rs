//! Admission: how much the engine takes on at once, decided by time and
//! memory. Three budgets: unary RPCs in progress
//! (`limits.max_concurrent_rpcs`), the request bytes they hold
//! (`limits.max_request_bytes_in_flight`, taken as bodies arrive), and the
//! wait in front of the verification pool (`limits.max_queue_wait_ms`).
//!
//! The wait is estimated, not counted: the assertions admitted and not yet
//! verified, times the measured pool time per assertion (a moving average of
//! what the pool took), divided by the pool's threads. A batch is admitted
//! when its wait plus its own verification fits the target and the call's
//! own deadline; so the same target admits a few batches of 64 ES256
//! assertions or hundreds of single ones, and fewer RSA-4096 ones, for the
//! same latency. A refusal says when to retry (`grpc-retry-pushback-ms`:
//! once what is queued has drained). An optional hard cap on queued
//! assertions (`limits.max_queued_assertions`) still applies.

use crate::config::Limits;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How long a registration waits for its share of the pool before it is
/// refused (RESOURCE_EXHAUSTED, with this as pushback).
pub const SHARE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Registrations verified at once on a pool of `threads`: half the threads,
/// at least one. Sign-in batches queue behind at most that many
/// registrations, however many arrive (an attestation chain with RSA roots
/// costs milliseconds; a sign-in, tens of microseconds).
pub fn registration_share(threads: usize) -> usize {
    (threads / 2).max(1)
}

/// A request refused before any work, as a whole (a rejected assertion is
/// a verdict instead): over a size limit, or a budget full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// More assertions than `limits.max_batch_size` (INVALID_ARGUMENT).
    #[error("batch of {n} assertions exceeds max_batch_size {max}")]
    BatchTooLarge {
        /// Assertions sent.
        n: usize,
        /// The limit.
        max: usize,
    },
    /// A budget is full (RESOURCE_EXHAUSTED); room is expected after about
    /// `retry_after` (`grpc-retry-pushback-ms`).
    #[error("{}", .shed.message())]
    Overloaded {
        /// Which budget.
        shed: Shed,
        /// When to try again.
        retry_after: Option<Duration>,
    },
}

impl Refusal {
    /// The `assertd_rpcs_rejected_total` reason.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Refusal::BatchTooLarge { .. } => "batch_too_large",
            Refusal::Overloaded { shed, .. } => shed.reason(),
        }
    }
}

/// Which budget shed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The pool's queue wait (`limits.max_queue_wait_ms`).
    QueueWait,
    /// `limits.max_request_bytes_in_flight`.
    RequestBytes,
    /// The registrations' share of the pool.
    RegistrationShare,
}

impl Shed {
    /// The `assertd_rpcs_rejected_total` reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Shed::QueueWait => "overloaded",
            Shed::RequestBytes => "request_bytes",
            Shed::RegistrationShare => "registration_share",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Shed::QueueWait => "assertd is at capacity; retry with backoff",
            Shed::RequestBytes => "the server holds as many request bytes as limits.max_request_bytes_in_flight allows: retry shortly",
            Shed::RegistrationShare => "registrations are using their share of the verification pool; retry with backoff",
        }
    }
}

/// Pool time per assertion assumed before anything was measured: a
/// pessimistic ES256 verification on a slow core.
const INITIAL_COST: Duration = Duration::from_micros(100);

/// Request bytes held by unary calls in progress.
#[derive(Debug)]
pub struct ByteBudget {
    held: AtomicU64,
    cap: u64,
}

/// The bytes one call holds, given back when it is dropped (the call has
/// answered, or was abandoned).
#[derive(Debug)]
pub struct BytesHeld {
    budget: Arc<ByteBudget>,
    n: AtomicU64,
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

/// The engine's admission budgets.
#[derive(Debug)]
pub struct Admission {
    rpcs: Arc<Semaphore>,
    bytes: Arc<ByteBudget>,
    queue: Arc<Queue>,
    target: Duration,
    cap: u64,
    threads: u64,
}

#[derive(Debug)]
struct Queue {
    /// Assertions admitted and not yet verified.
    assertions: AtomicU64,
    /// Moving average of pool thread time per assertion, in nanoseconds.
    cost_ns: AtomicU64,
    /// Woken when assertions leave the queue (waiting stream messages).
    room: Notify,
    /// Stream messages wait for room one at a time, in arrival order
    /// (tokio's mutex is fair): a woken crowd racing for room would let an
    /// unlucky stream wait for seconds.
    turnstile: tokio::sync::Mutex<()>,
    /// The smallest batch offered in the current second (low 32 bits) and
    /// which second (high 32 bits), and the previous second's smallest:
    /// the cheap refusal from the headers assumes a call is at least that
    /// big.
    smallest: AtomicU64,
    smallest_before: AtomicU64,
}

/// Seconds since the process's first use of admission (for the window of
/// the smallest batch).
fn second_now() -> u32 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u32::try_from(ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_secs()).unwrap_or(u32::MAX)
}

/// Room taken in front of the pool, given back once verified (or on drop).
#[derive(Debug)]
pub struct Admitted {
    n: u64,
    queue: Option<Arc<Queue>>,
}

/// A refusal, and about when room is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When a retry is expected to be admitted.
    pub retry_after: Duration,
}

/// One of the `max_concurrent_rpcs` slots, given back on drop.
#[derive(Debug)]
pub struct RpcSlot {
    _permit: OwnedSemaphorePermit,
}

impl Admitted {
    /// Gives the room back once the signature math is done: the budget
    /// bounds the wait in front of the pool, and a batch in its
    /// counter/encode phase no longer adds to it.
    pub fn verified(&mut self) {
        if let Some(q) = self.queue.take() {
            q.assertions.fetch_sub(self.n, Ordering::AcqRel);
            q.room.notify_waiters();
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.verified();
    }
}

impl Admission {
    /// Budgets from `limits`, for a pool of `threads` (0 in
    /// `max_concurrent_rpcs`: 256 per thread; 0 in `max_queued_assertions`:
    /// no cap beyond the wait target).
    pub fn new(limits: &Limits, threads: usize) -> Self {
        let threads = threads.max(1);
        let rpcs = match limits.max_concurrent_rpcs {
            0 => 256 * threads,
            n => n,
        };
        let queue = Queue {
            assertions: AtomicU64::new(0),
            cost_ns: AtomicU64::new(INITIAL_COST.as_nanos() as u64),
            room: Notify::new(),
            turnstile: tokio::sync::Mutex::new(()),
            smallest: AtomicU64::new(u64::from(u32::MAX)),
            smallest_before: AtomicU64::new(u64::from(u32::MAX)),
        };
        Self {
            rpcs: Arc::new(Semaphore::new(rpcs)),
            bytes: Arc::new(ByteBudget { held: AtomicU64::new(0), cap: limits.max_request_bytes_in_flight as u64 }),
            queue: Arc::new(queue),
            target: Duration::from_millis(limits.max_queue_wait_ms),
            cap: limits.max_queued_assertions as u64,
            threads: threads as u64,
        }
    }

    /// A slot for one unary RPC, or `None`: `max_concurrent_rpcs` are in
    /// progress.
    pub fn rpc_slot(&self) -> Option<RpcSlot> {
        self.rpcs.clone().try_acquire_owned().ok().map(|p| RpcSlot { _permit: p })
    }

    /// An empty hold on the request-bytes budget, for one call.
    pub fn bytes_held(&self) -> BytesHeld {
        BytesHeld { budget: self.bytes.clone(), n: AtomicU64::new(0) }
    }

    /// Request bytes held by unary calls in progress and by stream messages
    /// that have not arrived whole.
    pub fn request_bytes(&self) -> u64 {
        self.bytes.held.load(Ordering::Relaxed)
    }

    /// The pool time `assertions` take, spread over the pool's threads.
    fn time_for(&self, assertions: u64) -> Duration {
        let ns = assertions.saturating_mul(self.queue.cost_ns.load(Ordering::Relaxed)) / self.threads;
        Duration::from_nanos(ns)
    }

    /// The wait target (`limits.max_queue_wait_ms`).
    pub fn target(&self) -> Duration {
        self.target
    }

    /// The estimated wait in front of the pool now.
    pub fn queue_wait(&self) -> Duration {
        self.time_for(self.queue.assertions.load(Ordering::Acquire))
    }

    /// Records what the pool took for a batch: `thread_time` summed over its
    /// `assertions`.
    pub fn record_cost(&self, assertions: usize, thread_time: Duration) {
        if assertions == 0 {
            return;
        }
        let sample = (thread_time.as_nanos() / assertions as u128).min(u128::from(u64::MAX)) as u64;
        // Moving average, weight 1/8 per batch: follows a change of key mix
        // within tens of batches, shrugs off one slow batch. The time is
        // wall-clock: a verification preempted on a shared core can read
        // 100x its cost, so a sample counts for at most 4x the average (a
        // real change of mix still gets there, by x1.375 per batch).
        let old = self.queue.cost_ns.load(Ordering::Relaxed);
        let sample = sample.min(old.saturating_mul(4));
        let new = old - old / 8 + sample / 8;
        self.queue.cost_ns.store(new.max(1), Ordering::Relaxed);
    }

    /// Whether `n` more assertions fit behind `queued`: an idle pool takes
    /// any batch; otherwise the wait plus the batch's own time must fit the
    /// target and the call's deadline, and the cap when there is one.
    fn fits(&self, queued: u64, n: u64, deadline: Option<Duration>) -> Result<(), Refused> {
        if queued == 0 {
            return Ok(());
        }
        let finish = self.time_for(queued + n);
        let bound = deadline.map_or(self.target, |d| d.min(self.target));
        let capped = self.cap != 0 && queued + n > self.cap;
        if finish <= bound && !capped {
            return Ok(());
        }
        // Retry once what is queued now has drained: sooner, every caller
        // refused at this moment would come back together for the same
        // room (a refusal storm that costs the core what it should spend
        // verifying).
        let retry_after = self.time_for(queued).max(finish.saturating_sub(bound)).max(Duration::from_millis(1));
        Err(Refused { retry_after })
    }

    /// Admits a unary RPC's batch of `assertions` items, or refuses it at
    /// once. `deadline`: the time the call has left (`grpc-timeout`).
    pub fn admit(&self, assertions: usize, deadline: Option<Duration>) -> Result<Admitted, Refused> {
        let n = assertions.max(1) as u64;
        self.offered(n);
        let q = &self.queue.assertions;
        let mut queued = q.load(Ordering::Acquire);
        loop {
            self.fits(queued, n, deadline)?;
            match q.compare_exchange_weak(queued, queued + n, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Admitted { n, queue: Some(self.queue.clone()) }),
                Err(now) => queued = now,
            }
        }
    }

    /// Admits one stream message, waiting for room: a stream is flow
    /// controlled (the caller's sends block) instead of failed.
    pub async fn admit_stream(&self, assertions: usize) -> Admitted {
        let _turn = self.queue.turnstile.lock().await;
        loop {
            // Registered before the check, so a wake-up between the check
            // and the wait is not lost.
            let room = self.queue.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Ok(a) = self.admit(assertions, None) {
                return a;
            }
            room.await;
        }
    }

    /// Notes the size of a batch offered to [`Admission::admit`]: the
    /// smallest of this second and of the one before is what the headers'
    /// refusal assumes.
    fn offered(&self, n: u64) {
        let now = second_now();
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let q = &self.queue;
        let mut cur = q.smallest.load(Ordering::Acquire);
        loop {
            let (second, smallest) = ((cur >> 32) as u32, cur as u32);
            let next = if second == now { smallest.min(n) } else { n };
            if second == now && next == smallest {
                return;
            }
            match q.smallest.compare_exchange_weak(cur, (u64::from(now) << 32) | u64::from(next), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if second != now {
                        // A new second: the one that ended is kept (an idle
                        // second in between forgets it).
                        let kept = if second.wrapping_add(1) == now { u64::from(smallest) } else { u64::from(u32::MAX) };
                        q.smallest_before.store(kept, Ordering::Release);
                    }
                    return;
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// The smallest batch offered in the last second or two (1 before any).
    fn smallest_recent(&self) -> u64 {
        let cur = self.queue.smallest.load(Ordering::Acquire);
        let (second, smallest) = ((cur >> 32) as u32, u64::from(cur as u32));
        let now = second_now();
        let current = if second == now { smallest } else { u64::from(u32::MAX) };
        let before = if second == now || second.wrapping_add(1) == now {
            if second == now { self.queue.smallest_before.load(Ordering::Acquire) } else { smallest }
        } else {
            u64::from(u32::MAX)
        };
        match current.min(before) {
            m if m == u64::from(u32::MAX) => 1,
            m => m.max(1),
        }
    }

    /// Whether a batch arriving now would be refused whatever it holds, as
    /// far as the headers can tell: the wait plus the smallest batch callers
    /// have offered lately does not fit the target (the cheap refusal, made
    /// before the body is read or decoded). A call that would fit goes on to
    /// the exact check in the handler.
    pub fn work_exhausted(&self) -> Option<Refused> {
        let queued = self.queue.assertions.load(Ordering::Acquire);
        let n = self.smallest_recent();
        self.fits(queued, n, None).err()
    }
}

#[cfg(test)]
mod tests;
