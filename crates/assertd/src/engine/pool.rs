//! Stage 3: the signature math, off the async runtime. The batch's items go
//! to the rayon pool as they are; each `Resolved` item comes back
//! `Verified`, the others untouched. The async side awaits a oneshot.
//!
//! One exception, [`Placement::Stream`]: a stream message whose only
//! signature is one short one (not ES384; a counter-less credential) is
//! checked on the runtime thread that holds it. The hand-off to the pool and
//! back cost more than the signature there (BENCHMARKS.md §23).

use super::assess;
use super::error::EngineError;
use super::item::{Item, Stage, deny};
use crate::config::IssuedChallenges;
use crate::telemetry;
use assertd_policy::{ReasonCode, Verdict};
use assertd_verify::Algorithm;
use rayon::prelude::*;
use std::sync::Arc;

/// Where a batch's signatures may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the pool (a unary call: measured no faster on the runtime).
    Pool,
    /// A stream message: on the runtime thread when its only signature is
    /// one short one for a counter-less credential, else on the pool.
    Stream,
}

/// Whether the batch's only signature is one the runtime thread may check
/// itself: one `Resolved` item, its credential counter-less, its algorithm
/// not ES384. ES384 takes ~0.9 ms in ring here, too long to hold a runtime
/// thread (ES256 ~65 µs, RS256 ~25 µs). A counting credential goes to the
/// store's writer next, and with its signature checked on the runtime that
/// writer committed smaller groups: counting streams were slower
/// (BENCHMARKS.md §23).
fn short_and_alone(items: &[Item]) -> bool {
    let mut resolved = items.iter().filter_map(|i| match &i.stage {
        Stage::Resolved(r) => Some(r),
        _ => None,
    });
    match (resolved.next(), resolved.next()) {
        (Some(r), None) => r.credential.is_counterless() && r.credential.key.as_ref().is_ok_and(|k| k.algorithm() != Algorithm::Es384),
        _ => false,
    }
}

/// Verifies every resolved item of `items` on `pool`. If the caller goes
/// away (deadline passed, RPC cancelled) the pool drops the work rather
/// than do it for nobody.
/// Also returns the pool thread time the batch took and how many items it
/// verified (admission's cost estimate).
/// A server-issued challenge is opened with `issued` (the policy the batch
/// was targeted under) at `now` (Unix seconds). `placement` says whether
/// the calling thread may check it itself.
pub async fn check_signatures(
    pool: &rayon::ThreadPool,
    mut items: Vec<Item>,
    issued: Option<Arc<IssuedChallenges>>,
    now: u64,
    placement: Placement,
) -> Result<(Vec<Item>, usize, std::time::Duration), EngineError> {
    let n = items.iter().filter(|i| matches!(i.stage, Stage::Resolved(_))).count();
    if n == 0 {
        return Ok((items, 0, std::time::Duration::ZERO));
    }
    if placement == Placement::Stream && short_and_alone(&items) {
        let spent = items.iter_mut().map(|item| verify_one(item, issued.as_deref(), now)).sum();
        // The stream's task gives the runtime its turn as any task does
        // after work (tokio's cooperative budget).
        tokio::task::coop::consume_budget().await;
        return Ok((items, n, spent));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    telemetry::pool_queue(1.0);
    pool.spawn(move || {
        let spent: std::time::Duration = items
            .par_iter_mut()
            .map(|item| {
                if tx.is_closed() {
                    return std::time::Duration::ZERO;
                }
                verify_one(item, issued.as_deref(), now)
            })
            .sum();
        telemetry::pool_queue(-1.0);
        let _ = tx.send((items, n, spent));
    });
    rx.await.map_err(|_| EngineError::PoolFailed)
}

/// Verifies one item; the time its signature math took (zero for an item
/// that was not `Resolved`), measured once for the metric and admission.
fn verify_one(item: &mut Item, issued: Option<&IssuedChallenges>, now: u64) -> std::time::Duration {
    let request = &item.request;
    let mut took = std::time::Duration::ZERO;
    let mut advance = |stage| match stage {
        Stage::Resolved(resolved) => {
            let started = std::time::Instant::now();
            match assess::check_assertion(&resolved.rp, &resolved.credential, request, issued, now) {
                Some(v) => {
                    took = started.elapsed();
                    telemetry::verify_duration(v.algorithm.name(), took);
                    Stage::Verified(resolved, v)
                }
                // Unreachable: the lookup stage rejected unusable keys. Fail closed.
                None => Stage::Rejected(deny(ReasonCode::InvalidRequest, "internal: item was not verified")),
            }
        }
        other => other,
    };
    // A placeholder that allocates nothing while the stage is taken out
    // (`Item::advance` would borrow the whole item, and `advance` reads its
    // request).
    let stage = std::mem::replace(&mut item.stage, Stage::Rejected(Verdict::deny(Vec::new())));
    item.stage = advance(stage);
    took
}

/// Runs one piece of CPU work (a registration's attestation check) on
/// `pool`, off the async runtime.
pub async fn run<T: Send + 'static>(pool: &rayon::ThreadPool, work: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        if !tx.is_closed() {
            let _ = tx.send(work());
        }
    });
    rx.await.map_err(|_| EngineError::PoolFailed)
}
