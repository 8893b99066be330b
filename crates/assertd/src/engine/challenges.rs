//! Single use of server-issued challenges, per batch (one store round
//! trip): the step after policy, before the outcomes.

use super::{Engine, Judged, item};
use crate::config::IssuedChallenges;
use crate::telemetry;
use assertd_policy::{Decision, ReasonCode, Verdict};
use assertd_store::ChallengeUse;

impl Engine {
    /// Single use of server-issued challenges: every final (not retryable)
    /// verdict on an item whose challenge opened and whose signature
    /// verified records the use, in one
    /// store round trip for the batch. A challenge used before, here or on
    /// another replica, turns the verdict into a deny with
    /// `CHALLENGE_REPLAYED`; if the store cannot record the uses, those
    /// verdicts become retryable (`STORE_UNAVAILABLE`) and nothing is used
    /// up.
    pub(super) async fn use_challenges(&self, issued: &IssuedChallenges, judged: &mut [Judged]) {
        let mut slots = Vec::new();
        let mut uses = Vec::new();
        for (i, j) in judged.iter().enumerate() {
            let Some(opened) = j.issued else { continue };
            if j.verdict.retryable {
                continue;
            }
            let keep_until = opened.expires_at.saturating_add(issued.clock_skew_seconds).saturating_add(1);
            slots.push(i);
            uses.push(ChallengeUse { id: opened.id, keep_until_ms: i64::try_from(keep_until.saturating_mul(1000)).unwrap_or(i64::MAX) });
        }
        if uses.is_empty() {
            return;
        }
        let n = uses.len();
        let started = std::time::Instant::now();
        let answer = self.cache.store().consume_challenges(uses.into()).await;
        telemetry::store_duration("consume_challenges", started.elapsed());
        match answer {
            Ok(fresh) if fresh.len() == n => {
                for (i, fresh) in slots.into_iter().zip(fresh) {
                    if !fresh {
                        let j = &mut judged[i];
                        let mut reasons =
                            if j.verdict.decision == Decision::Deny { std::mem::take(&mut j.verdict.reasons) } else { Vec::new() };
                        reasons.push(assertd_policy::Finding::new(
                            ReasonCode::ChallengeReplayed,
                            "the issued challenge was already used: a replayed assertion",
                        ));
                        reasons.sort_by_key(|f| f.code.severity());
                        j.verdict = Verdict::deny(reasons);
                        j.credential = None;
                    }
                }
            }
            other => {
                if let Err(e) = &other {
                    tracing::warn!(error = %e, "recording the use of issued challenges failed");
                }
                telemetry::store_error("consume_challenges");
                for i in slots {
                    let j = &mut judged[i];
                    j.verdict = item::deny(ReasonCode::StoreUnavailable, "the challenge's single use could not be recorded; retry");
                    j.credential = None;
                }
            }
        }
    }
}
