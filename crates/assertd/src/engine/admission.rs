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
//! once the work ahead has drained to where the call would fit). An optional hard cap on queued
//! assertions (`limits.max_queued_assertions`) still applies.
//!
//! Fair under saturation: stream messages and retried unary calls
//! (`grpc-previous-rpc-attempts`, sent by gRPC clients with a retry policy)
//! wait for room in one line, in arrival order, and a first attempt counts
//! the line as ahead of it. So a call is refused at most once, not again
//! and again while callers whose answers just arrived take the room.

mod bytes;
mod refusal;

pub use bytes::{ByteBudget, BytesHeld};
pub use refusal::{Refusal, Shed};

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

/// Pool time per assertion assumed before anything was measured: a
/// pessimistic ES256 verification on a slow core.
const INITIAL_COST: Duration = Duration::from_micros(100);

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
    /// Assertions in line for room: stream messages and retried unary
    /// calls waiting their turn. A first attempt counts them as ahead of
    /// it.
    waiting: AtomicU64,
    /// Woken when assertions leave the queue (whoever is in line).
    room: Notify,
    /// The line: stream messages and retries wait for room one at a time,
    /// in arrival order (tokio's mutex is fair): a woken crowd racing for
    /// room would let an unlucky one wait for seconds.
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

/// What a unary call's headers say about its admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Call {
    /// The time it has left (`grpc-timeout`).
    pub deadline: Option<Duration>,
    /// A retry: `grpc-previous-rpc-attempts` of 1 or more.
    pub retry: bool,
}

/// The header gRPC clients send on a retry (gRFC A6): how many attempts
/// came before.
pub const PREVIOUS_ATTEMPTS: &str = "grpc-previous-rpc-attempts";

/// Whether a `grpc-previous-rpc-attempts` value names a retry: decimal
/// digits, 1 or more (anything else is a first attempt).
pub fn is_retry(value: Option<&[u8]>) -> bool {
    value.and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok()).is_some_and(|n| n >= 1)
}

/// Assertions in line, taken out of it when dropped (admitted, or the
/// call gave up waiting).
struct InLine {
    queue: Arc<Queue>,
    n: u64,
}

impl InLine {
    fn join(queue: &Arc<Queue>, n: u64) -> Self {
        queue.waiting.fetch_add(n, Ordering::AcqRel);
        Self { queue: queue.clone(), n }
    }
}

impl Drop for InLine {
    fn drop(&mut self) {
        self.queue.waiting.fetch_sub(self.n, Ordering::AcqRel);
    }
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
            waiting: AtomicU64::new(0),
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

    /// The estimated wait for a call arriving now: what is in front of the
    /// pool and what is in line for it.
    pub fn queue_wait(&self) -> Duration {
        self.time_for(self.ahead())
    }

    /// Assertions ahead of a first attempt arriving now: admitted and not
    /// yet verified, and in line.
    fn ahead(&self) -> u64 {
        self.queue.assertions.load(Ordering::Acquire).saturating_add(self.queue.waiting.load(Ordering::Acquire))
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
        // Retry when the work ahead has drained to where this call would
        // fit. A retry waits its turn in line from then on, so callers
        // refused at the same moment do not come back to fight over the
        // same room; and the line keeps the pool busy meanwhile (a longer
        // pushback, the whole drain time, left it idle while refused
        // callers slept: 0.82 of ring at 8 batches of 64 in flight
        // against 0.93, BENCHMARKS.md §19).
        let retry_after = finish.saturating_sub(bound).max(Duration::from_millis(1));
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
            // Whoever is in line goes first.
            let waiting = self.queue.waiting.load(Ordering::Acquire);
            self.fits(queued.saturating_add(waiting), n, deadline)?;
            match q.compare_exchange_weak(queued, queued + n, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Admitted { n, queue: Some(self.queue.clone()) }),
                Err(now) => queued = now,
            }
        }
    }

    /// Admits a retried unary call (`grpc-previous-rpc-attempts` of 1 or
    /// more: refused before, and back after the pushback). It waits its turn
    /// in line, in arrival order with stream messages, instead of being
    /// refused again: a refusal sends a first attempt away fast, and the
    /// caller that chose to come back is not refused over and over while
    /// callers whose answers just arrived take the room it was told to
    /// expect. Refused only when the wait would pass the call's `deadline`.
    /// The line's memory is bounded by the budgets the call already holds
    /// (its RPC slot and request bytes).
    pub async fn admit_retry(&self, assertions: usize, deadline: Option<Duration>) -> Result<Admitted, Refused> {
        let n = assertions.max(1) as u64;
        self.offered(n);
        if let Some(d) = deadline {
            let ahead = self.ahead();
            let finish = self.time_for(ahead.saturating_add(n));
            if ahead != 0 && finish > d {
                return Err(Refused { retry_after: finish.saturating_sub(d).max(Duration::from_millis(1)) });
            }
        }
        Ok(self.wait_in_line(n).await)
    }

    /// Admits one stream message, waiting for room: a stream is flow
    /// controlled (the caller's sends block) instead of failed.
    pub async fn admit_stream(&self, assertions: usize) -> Admitted {
        self.offered(assertions.max(1) as u64);
        self.wait_in_line(assertions.max(1) as u64).await
    }

    /// Waits in line for room for `n` assertions: in arrival order (the
    /// turnstile), counted as ahead of first attempts while waiting, and out
    /// of the line again if the wait is given up (the call ended).
    async fn wait_in_line(&self, n: u64) -> Admitted {
        let in_line = InLine::join(&self.queue, n);
        let _turn = self.queue.turnstile.lock().await;
        let q = &self.queue.assertions;
        loop {
            // Registered before the check, so a wake-up between the check
            // and the wait is not lost.
            let room = self.queue.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            // At the head of the line: only what the pool holds is ahead.
            let queued = q.load(Ordering::Acquire);
            if self.fits(queued, n, None).is_ok() {
                if q.compare_exchange(queued, queued + n, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    drop(in_line);
                    return Admitted { n, queue: Some(self.queue.clone()) };
                }
                // Taken meanwhile (a first attempt that fit): look again.
                continue;
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
        let n = self.smallest_recent();
        self.fits(self.ahead(), n, None).err()
    }
}

#[cfg(test)]
mod tests;
