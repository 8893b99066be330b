//! Phase two of a sign-in batch, one batch at a time, in order: the
//! counter round trip with the batch's challenge uses (stage 5), then
//! policy (stage 6), the outcome counted, `last_used_at` claimed and
//! accepted BE upgrades recorded.

use super::clock::now_ms;
use super::item::{Item, Judged, Outcome, Stage};
use super::{Checked, Engine, assess, challenges, item};
use crate::telemetry;
use assertd_policy::{CounterCheck, Decision, ReasonCode, SignInContext, Verdict};
use assertd_store::CachedCredential;
use assertd_verify::AuthenticatorFacts;
use std::sync::Arc;

impl Engine {
    /// Phase two (one batch at a time, in order): the counter round trip
    /// (with the single use of server-issued challenges), then policy. One
    /// outcome per assertion, in request order.
    pub async fn decide(&self, checked: Checked) -> Vec<Outcome> {
        let Checked { mut items, issued } = checked;
        if !self.user_risks.loaded() {
            // Fail closed before anything is written: a verdict that cannot
            // know its user's flag is retryable, and has changed nothing.
            for item in &mut items {
                item.advance(|stage| match stage {
                    Stage::Verified(..) => Stage::Rejected(item::deny(
                        ReasonCode::StoreUnavailable,
                        "the users flagged at risk could not be read from the store yet; retry",
                    )),
                    other => other,
                });
            }
        }
        let uses = issued.as_deref().map(|i| challenges::uses(i, &items)).unwrap_or_default();
        let fresh = self.counters.settle(&self.cache, &mut items, &uses).await;
        let now = now_ms();
        let policy = self.policy.load();
        let metadata = policy.metadata.as_ref().map(|m| &m.metadata);
        let mut judged: Vec<Judged> = items
            .into_iter()
            .map(|Item { request, stage }| {
                let upgrade = Self::asks_backup_eligibility_upgrade(&stage);
                // A count stored (received > 0, accepted) wrote the row's
                // `last_used_at` with it: no separate write for this use.
                let use_recorded =
                    matches!(&stage, Stage::Counted(_, v, Ok(CounterCheck::Ok)) if v.authenticator.is_some_and(|f| f.sign_count > 0));
                let mut context = request.context;
                if let Stage::Counted(r, _, _) = &stage {
                    // The flag of the credential's user, as this replica
                    // knows it now.
                    context.user_risk = self.user_risks.level(&request.rp_id, &r.credential.user_handle, now);
                }
                let (verdict, authenticator, credential) = Self::judge(stage, &context, metadata);
                Judged { request, verdict, authenticator, credential, upgrade, use_recorded }
            })
            .collect();
        challenges::apply(&mut judged, &uses, fresh);
        let mut claimed = Vec::new();
        let mut upgrades = Vec::new();
        let outcomes = judged
            .into_iter()
            .map(|Judged { request, verdict, authenticator, credential, upgrade, use_recorded, .. }| {
                telemetry::verdict(&verdict);
                // Only an allowed sign-in records a BE upgrade.
                if upgrade && verdict.decision == Decision::Allow {
                    upgrades.push((request.rp_id.clone(), request.credential_id.clone()));
                }
                if let Some(c) = &credential
                    && verdict.decision != Decision::Deny
                    && !use_recorded
                    && self.last_used.claim(c, now)
                {
                    claimed.push((request.rp_id, request.credential_id));
                }
                Outcome { request_id: request.request_id, verdict, authenticator, credential }
            })
            .collect();
        self.last_used.queue(claimed);
        if !upgrades.is_empty() {
            self.record_upgrades(upgrades).await;
        }
        outcomes
    }

    /// Whether a counted item's profile accepts the BE change it reports
    /// (false to true under `allow_upgrade`).
    fn asks_backup_eligibility_upgrade(stage: &Stage) -> bool {
        match stage {
            Stage::Counted(r, v, Ok(_)) if v.is_valid() => v
                .authenticator
                .is_some_and(|f| r.profile.accepts_backup_eligibility_upgrade(r.credential.backup_eligible, f.flags.backup_eligible())),
            _ => false,
        }
    }

    /// Records accepted BE upgrades of allowed sign-ins, and drops the
    /// cached facts they change. A failed write is logged; the next sign-in
    /// asks again.
    async fn record_upgrades(&self, keys: Vec<(String, Vec<u8>)>) {
        if let Err(e) = self.cache.store().set_backup_eligible(keys.clone()).await {
            telemetry::store_error("set_backup_eligible");
            tracing::warn!(error = %e, "recording a BE upgrade failed; the next sign-in records it");
        }
        for (rp, id) in &keys {
            self.cache.invalidate(rp, id).await;
        }
    }

    /// Stage 5: the verdict on one item. The credential comes back only when
    /// the signature verified with its key.
    pub fn judge(
        stage: Stage,
        ctx: &SignInContext,
        metadata: Option<&assertd_verify::metadata::Metadata>,
    ) -> (Verdict, Option<AuthenticatorFacts>, Option<Arc<CachedCredential>>) {
        match stage {
            Stage::Rejected(verdict) => (verdict, None, None),
            Stage::Counted(r, v, counter) => {
                let verdict = assess::judge(&r.profile, &r.credential, &v, counter, ctx, metadata);
                (verdict, v.authenticator, v.signature_verified().then_some(r.credential))
            }
            // Unreachable: every stage ran. Fail closed anyway.
            Stage::Targeted(..) | Stage::Resolved(_) | Stage::Verified(..) => {
                (item::deny(ReasonCode::InvalidRequest, "internal: the item did not go through every stage"), None, None)
            }
        }
    }
}
