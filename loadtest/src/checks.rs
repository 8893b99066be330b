//! Correctness and latency bookkeeping: every verdict compared with what
//! its assertion must get, errors and reasons counted, latency recorded.

use crate::generator::Prepared;
use assertd_api::v1 as pb;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Mutex;

/// Counters shared by all callers.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) rpcs: AtomicU64,
    pub(crate) assertions: AtomicU64,
    pub(crate) mismatches: AtomicU64,
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    pub(crate) reasons: Mutex<BTreeMap<String, u64>>,
    pub(crate) latency: Mutex<Option<Histogram<u64>>>,
    pub(crate) interval: Mutex<Option<Histogram<u64>>>,
    /// Latency of RESOURCE_EXHAUSTED answers: what one rejection costs the caller.
    pub(crate) rejected: Mutex<Option<Histogram<u64>>>,
    /// Closed-loop unary batches by the attempts their answer took
    /// ("gave_up": refused `MAX_ATTEMPTS` times).
    pub(crate) attempts: Mutex<BTreeMap<String, u64>>,
    pub(crate) measuring: AtomicBool,
    /// A --counting lane ran out of prepared assertions.
    pub(crate) exhausted: AtomicBool,
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs to 100 s, 3 significant digits.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Records one answered request.
pub(crate) async fn record(stats: &Stats, p: &Prepared, verdicts: &[pb::Verdict], latency: Duration) {
    if !stats.measuring.load(Ordering::Relaxed) {
        return;
    }
    stats.rpcs.fetch_add(1, Ordering::Relaxed);
    stats.assertions.fetch_add(verdicts.len() as u64, Ordering::Relaxed);
    let mut wrong = u64::from(verdicts.len() != p.expect.len());
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for (v, e) in verdicts.iter().zip(&p.expect) {
        let code = v.reasons.first().map(|r| r.code());
        if v.decision() != e.decision || (e.code.is_some() && code != e.code) {
            wrong += 1;
        }
        let key = format!("{}:{}", v.decision().as_str_name(), code.map_or("NONE", |c| c.as_str_name()));
        *reasons.entry(key).or_default() += 1;
    }
    stats.mismatches.fetch_add(wrong, Ordering::Relaxed);
    {
        let mut r = stats.reasons.lock().await;
        for (k, n) in reasons {
            *r.entry(k).or_default() += n;
        }
    }
    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
    if let Some(h) = stats.latency.lock().await.as_mut() {
        let _ = h.record(us);
    }
    if let Some(h) = stats.interval.lock().await.as_mut() {
        let _ = h.record(us);
    }
}

/// Attempts a gRPC client with a retry policy makes at most for one call
/// (gRFC A6 caps `maxAttempts` at 5).
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// Records how many attempts one closed-loop unary batch took (more than
/// `MAX_ATTEMPTS`: it gave up).
pub(crate) async fn attempts(stats: &Stats, n: u32) {
    if stats.measuring.load(Ordering::Relaxed) {
        let key = if n > MAX_ATTEMPTS { "gave_up".to_string() } else { n.to_string() };
        *stats.attempts.lock().await.entry(key).or_default() += 1;
    }
}

pub(crate) async fn error(stats: &Stats, e: &tonic::Status, latency: Duration) {
    if stats.measuring.load(Ordering::Relaxed) {
        *stats.errors.lock().await.entry(format!("{:?}", e.code())).or_default() += 1;
        if e.code() == tonic::Code::ResourceExhausted
            && let Some(h) = stats.rejected.lock().await.as_mut()
        {
            let _ = h.record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Expect;

    fn verdict(decision: pb::Decision, code: Option<pb::ReasonCode>) -> pb::Verdict {
        let mut v = pb::Verdict {
            reasons: code.map(|c| vec![pb::Reason { code: c as i32, message: String::new() }]).unwrap_or_default(),
            ..Default::default()
        };
        v.set_decision(decision);
        v
    }

    fn prepared(expect: Vec<Expect>) -> Prepared {
        Prepared { assertions: Vec::new(), expect }
    }

    #[tokio::test]
    async fn a_wrong_verdict_is_a_mismatch_and_only_when_measuring() {
        let stats = Stats { latency: Mutex::new(Some(histogram())), ..Stats::default() };
        let allow = Expect { decision: pb::Decision::Allow, code: None };
        let bad_sig = Expect { decision: pb::Decision::Deny, code: Some(pb::ReasonCode::SignatureInvalid) };
        let p = prepared(vec![allow, bad_sig]);
        let right = [verdict(pb::Decision::Allow, None), verdict(pb::Decision::Deny, Some(pb::ReasonCode::SignatureInvalid))];
        // Not measuring yet (warm-up): nothing counts.
        record(&stats, &p, &right, Duration::from_millis(1)).await;
        assert_eq!(stats.rpcs.load(Ordering::Relaxed), 0);
        stats.measuring.store(true, Ordering::Relaxed);
        record(&stats, &p, &right, Duration::from_millis(1)).await;
        assert_eq!(stats.mismatches.load(Ordering::Relaxed), 0);
        // Right decision, wrong reason; and a missing verdict.
        let wrong_reason = [verdict(pb::Decision::Allow, None), verdict(pb::Decision::Deny, Some(pb::ReasonCode::ChallengeMismatch))];
        record(&stats, &p, &wrong_reason, Duration::from_millis(1)).await;
        record(&stats, &p, &right[..1], Duration::from_millis(1)).await;
        assert_eq!(stats.mismatches.load(Ordering::Relaxed), 2);
        assert_eq!(stats.rpcs.load(Ordering::Relaxed), 3);
        assert_eq!(stats.latency.lock().await.as_ref().unwrap().len(), 3);
        let reasons = stats.reasons.lock().await;
        assert_eq!(reasons["DECISION_DENY:REASON_CODE_SIGNATURE_INVALID"], 1);
    }

    #[tokio::test]
    async fn refusals_are_timed_apart() {
        let stats = Stats { rejected: Mutex::new(Some(histogram())), measuring: AtomicBool::new(true), ..Stats::default() };
        error(&stats, &tonic::Status::resource_exhausted("busy"), Duration::from_micros(300)).await;
        error(&stats, &tonic::Status::unavailable("down"), Duration::from_micros(300)).await;
        assert_eq!(stats.rejected.lock().await.as_ref().unwrap().len(), 1);
        let errors = stats.errors.lock().await;
        assert_eq!((errors["ResourceExhausted"], errors["Unavailable"]), (1, 1));
    }
}
