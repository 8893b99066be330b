//! The challenge ledger step, for both ceremonies: until when a use of a
//! server-issued challenge is kept ([`use_of`]), which items of a sign-in
//! batch use one (recorded with the batch's counts, in the counter stage's
//! store call), and what a replay does to a verdict ([`deny_replayed`]),
//! at sign-in and at registration alike.

use super::item::{self, Item, Judged, Stage};
use crate::config::IssuedChallenges;
use assertd_policy::{Decision, Finding, ReasonCode, Verdict};
use assertd_store::ChallengeUse;
use assertd_verify::{Ceremony, Opened};

/// Until when the use of `opened` is kept: past its expiry and the allowed
/// skew it is refused as expired anyway (the store's pruning adds a margin
/// for replicas whose clocks differ).
pub(super) fn use_of(issued: &IssuedChallenges, opened: Opened) -> ChallengeUse {
    let keep_until = opened.expires_at.saturating_add(issued.clock_skew_seconds).saturating_add(1);
    ChallengeUse { id: opened.id, keep_until_ms: i64::try_from(keep_until.saturating_mul(1000)).unwrap_or(i64::MAX) }
}

/// A verdict whose challenge was used before (here or on another replica):
/// a deny keeps its reasons and gains `CHALLENGE_REPLAYED`; an allow or a
/// step-up is no longer one, and says only that.
pub(super) fn deny_replayed(verdict: Verdict, ceremony: Ceremony) -> Verdict {
    let what = match ceremony {
        Ceremony::SignIn => "assertion",
        Ceremony::Registration => "registration",
    };
    let mut reasons = if verdict.decision == Decision::Deny { verdict.reasons } else { Vec::new() };
    reasons.push(Finding::new(ReasonCode::ChallengeReplayed, format!("the issued challenge was already used: a replayed {what}")));
    reasons.sort_by_key(|f| f.code.severity());
    Verdict::deny(reasons)
}

/// The batch's challenge uses, by item index: every verified item whose
/// issued challenge opened and whose signature verified. Only a signature
/// by the credential uses a challenge up: a forged assertion that carries
/// one must not cancel the genuine sign-in. Every such item reaches a final
/// verdict unless the store call fails, and then nothing is recorded.
pub(super) fn uses(issued: &IssuedChallenges, items: &[Item]) -> Vec<(usize, ChallengeUse)> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match &item.stage {
            Stage::Verified(_, v) if v.signature_verified() => v.issued_challenge.map(|o| (i, use_of(issued, o))),
            _ => None,
        })
        .collect()
}

/// After policy: a use that was not the first of its challenge (here or on
/// another replica) turns the verdict into a deny with
/// `CHALLENGE_REPLAYED`; uses the store could not record (`fresh` is
/// `None`) make their verdicts retryable (`STORE_UNAVAILABLE`).
pub(super) fn apply(judged: &mut [Judged], uses: &[(usize, ChallengeUse)], fresh: Option<Vec<bool>>) {
    let Some(fresh) = fresh else {
        for (i, _) in uses {
            let j = &mut judged[*i];
            j.verdict = item::deny(ReasonCode::StoreUnavailable, "the challenge's single use could not be recorded; retry");
            j.credential = None;
            j.same_under_every_profile();
        }
        return;
    };
    for ((i, _), fresh) in uses.iter().zip(fresh) {
        if fresh {
            continue;
        }
        let j = &mut judged[*i];
        j.verdict = deny_replayed(std::mem::replace(&mut j.verdict, Verdict::deny(Vec::new())), Ceremony::SignIn);
        j.credential = None;
        j.same_under_every_profile();
    }
}
