//! Phase two of a sign-in batch, one batch at a time, in order: the
//! counter round trip with the batch's challenge uses (stage 5), then
//! policy (stage 6), the outcome counted, `last_used_at` claimed and
//! accepted BE upgrades recorded.

use super::clock::now_ms;
use super::item::{Item, Judged, Outcome, Stage, StateChange};
use super::{Checked, Engine, assess, challenges, item, report_only};
use crate::telemetry;
use assertd_policy::{CounterCheck, Decision, ReasonCode, RiskLevel, SignInContext, Verdict};
use assertd_store::{CachedCredential, StateUpdate};
use assertd_verify::AuthenticatorFacts;
use assertd_verify::metadata::display_name;
use std::sync::Arc;

/// A sign-in that remediated its user's flag: the RP, the user, the
/// credential, when the judged flag was set, and whether the user was
/// verified.
type Remediated = (String, Vec<u8>, Vec<u8>, i64, bool);

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
                let state = Self::state_change(&stage, request.additional_factor_verified);
                // A count stored (received > 0, accepted) wrote the row's
                // `last_used_at` with it: no separate write for this use.
                let use_recorded =
                    matches!(&stage, Stage::Counted(_, v, Ok(CounterCheck::Ok)) if v.authenticator.is_some_and(|f| f.sign_count > 0));
                let mut context = request.context;
                if let Stage::Counted(r, _, _) = &stage {
                    // The flag of the credential's user, as this replica
                    // knows it now.
                    (context.user_risk, context.user_risk_set_at_ms) = self.user_risks.flag(&request.rp_id, &r.credential.user_handle, now);
                }
                let report_only = report_only::judge(&stage, &request, &context, &policy);
                let rp = if let Stage::Counted(r, _, _) = &stage { Some(r.rp.clone()) } else { None };
                let (verdict, authenticator, credential) = Self::judge(stage, &context, metadata);
                let risk_set_at_ms = context.user_risk_set_at_ms;
                Judged { request, verdict, authenticator, credential, rp, upgrade, use_recorded, state, risk_set_at_ms, report_only }
            })
            .collect();
        challenges::apply(&mut judged, &uses, fresh);
        let mut claimed = Vec::new();
        let mut remediated = Vec::new();
        let mut upgrades = Vec::new();
        let mut states = Vec::new();
        let outcomes = judged
            .into_iter()
            .map(|Judged { request, verdict, authenticator, credential, rp, upgrade, use_recorded, state, risk_set_at_ms, report_only }| {
                telemetry::verdict(&verdict);
                // A sign-in with a credential the relying party has (its
                // signature verified): by RP, profile and passkey kind,
                // every label from the config.
                if let (Some(rp), Some(c)) = (&rp, &credential) {
                    let profile = if request.profile.is_empty() { rp.default_profile_name.as_str() } else { request.profile.as_str() };
                    let kind = if c.backup_eligible { "synced" } else { "device_bound" };
                    telemetry::sign_in(rp.rp.id(), profile, kind, verdict.decision.as_str());
                }
                let report_only = report_only
                    .map(|r| self.report_only(r, &verdict, &request, policy.report_only_log_per_second, now))
                    .unwrap_or_default();
                // Only an allowed sign-in records a BE upgrade, or a new
                // state.
                if upgrade && verdict.decision == Decision::Allow {
                    upgrades.push((request.rp_id.clone(), request.credential_id.clone()));
                }
                if let (Some(s), Some(c), Decision::Allow) = (state, &credential, verdict.decision) {
                    let update = StateUpdate {
                        rp_id: request.rp_id.clone(),
                        credential_id: request.credential_id.clone(),
                        backup_state: s.backup_state.unwrap_or(c.backup_state),
                        uv_initialized: s.uv_initialized,
                    };
                    states.push((update, s));
                }
                if let (Some(c), Decision::Allow) = (&credential, verdict.decision)
                    && verdict.reasons.iter().any(|f| f.code == ReasonCode::UserRiskRemediated)
                {
                    let uv = authenticator.is_some_and(|a| a.flags.user_verified());
                    remediated.push((request.rp_id.clone(), c.user_handle.to_vec(), request.credential_id.clone(), risk_set_at_ms, uv));
                }
                let backup_state_changed = credential.is_some() && state.is_some_and(|s| s.backup_state.is_some());
                // §5.1.10.2: the page tells the authenticator to stop offering
                // a credential the relying party does not have.
                let signal_unknown_credential = verdict
                    .reasons
                    .iter()
                    .any(|f| f.code == ReasonCode::CredentialNotFound)
                    .then(|| assertd_policy::options::unknown_credential(&request.rp_id, &request.credential_id).to_string());
                if let Some(c) = &credential
                    && verdict.decision != Decision::Deny
                    && !use_recorded
                    && self.last_used.claim(c, now)
                {
                    claimed.push((request.rp_id, request.credential_id));
                }
                let authenticator_name =
                    credential.as_ref().and_then(|c| display_name(metadata, &policy.aaguid_names, &c.aaguid, c.aaguid_vouched));
                Outcome {
                    request_id: request.request_id,
                    verdict,
                    authenticator,
                    credential,
                    backup_state_changed,
                    signal_unknown_credential,
                    authenticator_name,
                    report_only,
                }
            })
            .collect();
        self.last_used.queue(claimed);
        if !upgrades.is_empty() {
            self.record_upgrades(upgrades).await;
        }
        if !states.is_empty() {
            self.record_states(states).await;
        }
        if !remediated.is_empty() {
            self.remediate(remediated).await;
        }
        outcomes
    }

    /// Clears the flags of users whose allowed sign-ins remediated them
    /// (`USER_RISK_REMEDIATED`): only the flag that was judged (set at the
    /// time the verdict saw; one set again since stays), in the store (every
    /// replica learns it from the change feed) and on this replica at once;
    /// audited with the sign-in as the actor. A failed write is logged: the
    /// flag stays, and the user's next qualifying sign-in clears it.
    async fn remediate(&self, users: Vec<Remediated>) {
        for (rp_id, user_handle, credential_id, set_at, uv) in users {
            let level = match self.user_risks.level(&rp_id, &user_handle, now_ms()) {
                RiskLevel::High => Some("high".to_owned()),
                RiskLevel::Medium => Some("medium".to_owned()),
                _ => None,
            };
            match self.cache.store().remediate_user_risk(&rp_id, &user_handle, set_at).await {
                Ok(cleared) => {
                    if cleared {
                        // Read back rather than assumed gone: the store is
                        // the truth if a flag was set again meanwhile.
                        self.refresh_user_risk(&rp_id, &user_handle).await;
                        telemetry::user_risk_remediated();
                        let happened = super::events::Happened {
                            kind: super::events::Kind::UserRiskRemediated,
                            rp_id: &rp_id,
                            user_handle: &user_handle,
                            credential_id: &credential_id,
                            actor: "sign-in",
                            detail: format!("flag set at {set_at} cleared by a passkey sign-in"),
                            facts: super::events::Facts { level, user_verified: Some(uv), ..super::events::Facts::by("user") },
                        };
                        self.record(vec![happened]).await;
                    }
                    tracing::info!(
                        target: "assertd::audit",
                        action = "remediate_user_risk",
                        client = "sign-in",
                        rp_id = %assertd_verify::truncate(&rp_id),
                        user_handle = %assertd_policy::options::b64url(&user_handle),
                        credential_id = %assertd_policy::options::b64url(&credential_id),
                        what = if cleared { format!("flag set at {set_at} cleared by a passkey sign-in") } else { "the flag changed since the sign-in was judged: kept".to_owned() },
                        "user risk remediated"
                    );
                }
                Err(e) => {
                    telemetry::store_error("remediate_user_risk");
                    tracing::warn!(error = %e, "clearing a remediated user's flag failed; the next qualifying sign-in clears it");
                }
            }
        }
    }

    /// What a counted item with a valid verification would change on its
    /// record (§7.2 step 24 (update record)): the BS flag when it differs from the
    /// record's; `uvInitialized` when UV is set, the record's is false, and
    /// the gateway says another factor authorized it. `None`: nothing.
    fn state_change(stage: &Stage, additional_factor_verified: bool) -> Option<StateChange> {
        let Stage::Counted(r, v, Ok(_)) = stage else { return None };
        let f = v.authenticator.filter(|_| v.is_valid())?;
        let bs = f.flags.backup_state();
        let change = StateChange {
            backup_state: (bs != r.credential.backup_state).then_some(bs),
            uv_initialized: !r.credential.uv_initialized && f.flags.user_verified() && additional_factor_verified,
        };
        (change.backup_state.is_some() || change.uv_initialized).then_some(change)
    }

    /// Records the new states of allowed sign-ins, counts them, and drops
    /// the cached facts they change. A failed write is logged; the next
    /// sign-in records it.
    async fn record_states(&self, states: Vec<(StateUpdate, StateChange)>) {
        let keys: Vec<(String, Vec<u8>)> = states.iter().map(|(u, _)| (u.rp_id.clone(), u.credential_id.clone())).collect();
        let (updates, changes): (Vec<StateUpdate>, Vec<StateChange>) = states.into_iter().unzip();
        match self.cache.store().record_states(updates).await {
            Ok(()) => {
                for c in changes {
                    if let Some(bs) = c.backup_state {
                        telemetry::state_update(if bs { "backed_up" } else { "not_backed_up" });
                    }
                    if c.uv_initialized {
                        telemetry::state_update("uv_initialized");
                    }
                }
            }
            Err(e) => {
                telemetry::store_error("record_states");
                tracing::warn!(error = %e, "recording sign-in state failed; the next sign-in records it");
            }
        }
        for (rp, id) in &keys {
            self.cache.invalidate(rp, id).await;
        }
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
