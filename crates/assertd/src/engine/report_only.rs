//! Report-only profiles: every assertion for a relying party that lists
//! `report_only_profiles` is also judged under each of them, with the facts
//! its enforced verdict had (the one verification, the counter outcome, the
//! user's flag, the metadata), and the outcome is counted, sampled into the
//! log when it differs, and returned when asked for. Nothing here acts:
//! no remediation, no state or counter write, no change of the enforced
//! verdict.

use super::Engine;
use super::assess;
use super::item::{AssertionRequest, ReportOnlyOutcome, ReportOnlyProfileRef, Stage};
use crate::config::Reloadable;
use crate::telemetry;
use assertd_policy::{SignInContext, Verdict};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// The report-only profiles' verdicts on one item, before the enforced
/// verdict consumes its stage. A verified item is judged under each; an
/// item rejected before policy (a bad signature, an unknown credential) is
/// rejected alike under every profile: its enforced verdict stands for
/// theirs (filled in by [`Engine::report_only`]).
pub(super) fn judge(
    stage: &Stage,
    request: &AssertionRequest,
    ctx: &SignInContext,
    policy: &Reloadable,
) -> Option<(Vec<ReportOnlyProfileRef>, Vec<Option<Verdict>>)> {
    let metadata = policy.metadata.as_ref().map(|m| &m.metadata);
    match stage {
        Stage::Counted(r, v, counter) if !r.rp.report_only.is_empty() => {
            let verdicts =
                r.rp.report_only
                    .iter()
                    .map(|p| Some(assess::judge(&p.profile, &r.credential, v, counter.clone(), ctx, metadata)))
                    .collect();
            Some((r.rp.report_only.iter().map(ReportOnlyProfileRef::of).collect(), verdicts))
        }
        Stage::Counted(..) => None,
        _ => {
            let rp = policy.rps.get(&request.rp_id)?;
            if rp.report_only.is_empty() {
                return None;
            }
            Some((rp.report_only.iter().map(ReportOnlyProfileRef::of).collect(), vec![None; rp.report_only.len()]))
        }
    }
}

/// At most `limit` log lines a second, across the process.
#[derive(Debug, Default)]
pub struct LogBudget {
    second: AtomicI64,
    used: AtomicU32,
}

impl LogBudget {
    /// Whether one more line fits in second `now_s`.
    fn take(&self, now_s: i64, limit: u32) -> bool {
        if limit == 0 {
            return false;
        }
        if self.second.swap(now_s, Ordering::Relaxed) != now_s {
            self.used.store(0, Ordering::Relaxed);
        }
        self.used.fetch_add(1, Ordering::Relaxed) < limit
    }
}

impl Engine {
    /// Counts the report-only verdicts against the enforced one, logs a
    /// sample of those that differ, and returns them if the request asked.
    pub(super) fn report_only(
        &self,
        judged: (Vec<ReportOnlyProfileRef>, Vec<Option<Verdict>>),
        enforced: &Verdict,
        request: &AssertionRequest,
        log_per_second: u32,
        now_ms: i64,
    ) -> Vec<ReportOnlyOutcome> {
        let (profiles, verdicts) = judged;
        let mut out = Vec::new();
        for (p, verdict) in profiles.into_iter().zip(verdicts) {
            let changed = verdict.as_ref().is_some_and(|v| v.decision != enforced.decision);
            let decision = verdict.as_ref().map_or(enforced.decision, |v| v.decision);
            telemetry::report_only(&p.rp_id, &p.name, decision.as_str(), changed);
            if changed
                && let Some(v) = &verdict
                && self.report_only_log.take(now_ms.div_euclid(1000), log_per_second)
            {
                let reasons: Vec<&str> = v.reasons.iter().map(|f| f.code.as_str()).collect();
                tracing::info!(
                    target: "assertd::report_only",
                    rp_id = %p.rp_id,
                    profile = %p.name,
                    request_id = %assertd_verify::truncate(&request.request_id),
                    enforced = enforced.decision.as_str(),
                    would_be = v.decision.as_str(),
                    reasons = ?reasons,
                    "a report-only profile would have decided otherwise"
                );
            }
            if request.include_report_only {
                out.push(ReportOnlyOutcome { profile: p.name, verdict: verdict.unwrap_or_else(|| enforced.clone()) });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_budget_allows_so_many_lines_a_second() {
        let b = LogBudget::default();
        assert_eq!((0..5).filter(|_| b.take(100, 2)).count(), 2);
        assert!(b.take(101, 2), "a new second");
        assert!(!LogBudget::default().take(100, 0), "0: no lines");
    }
}
