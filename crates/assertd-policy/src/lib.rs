//! The policy and risk engine: turns the verifier's facts, the stored
//! credential's facts and the signature-counter check into a decision
//! (allow / step up / deny) with a risk score and every reason behind it.
//!
//! What this crate does **not** do: it parses nothing, verifies no signature,
//! touches no store and reads no clock or environment. It is a pure function
//! of its inputs.

mod ceremonies;
pub mod options;
mod profile;
mod registration;
mod rules;
mod signal;
mod types;

pub use assertd_verify::{Finding, ReasonCode};
pub use ceremonies::{Attachment, Ceremonies, Hint, ResidentKey};
pub use profile::{
    AttestationEnforcement, BackupEligibilityChange, CertificationLevel, DEFAULT_DENY_AT, DEFAULT_STEP_UP_AT, EnforcementType,
    KeyRestrictions, PassRegistration, PasskeyType, PasskeyTypes, Profile, RegressionAction, RemediationMode, RiskRemediation,
    UserVerification,
};
pub use registration::{evaluate_registration, pass_registration};
pub use signal::{Signal, Weights};
pub use types::{CounterCheck, CredentialFacts, Decision, RiskLevel, SignInContext, Verdict};

use assertd_verify::Verification;
use rules::{cross_origin, key_restriction};

pub use assertd_verify::metadata::format_uuid;

/// Evaluates one verified assertion under a profile: hard failures (the
/// verifier's and the profile's rules) always deny; otherwise the risk
/// signals' weights add up to a score that the thresholds turn into allow,
/// step-up or deny.
pub fn evaluate(profile: &Profile, v: &Verification, credential: &CredentialFacts, counter: CounterCheck, ctx: &SignInContext) -> Verdict {
    let w = &profile.weights;
    // Hard failures: everything the verifier found, plus the rules below.
    let mut hard: Vec<Finding> = v.failures.clone();
    let mut signals: Vec<(u32, Finding)> = Vec::new();
    let mut signal = |s: Signal, what: String| {
        // A regression under step_up must never allow: at least step up.
        let weight = if s == Signal::SignCountRegression { w[s].max(profile.step_up_at) } else { w[s] };
        signals.push((weight, Finding::new(s.reason(), format!("{what} (risk +{weight})"))));
    };

    // assertd rule (DESIGN.md, step 4): legacy algorithms only where the
    // profile allows them.
    if v.algorithm.is_legacy() {
        if profile.allow_legacy_algorithms {
            signal(Signal::LegacyAlgorithm, format!("legacy algorithm {}", v.algorithm.name()));
        } else {
            hard.push(Finding::new(
                ReasonCode::UnsupportedAlgorithm,
                format!("legacy algorithm {} is not allowed by the profile", v.algorithm.name()),
            ));
        }
    }

    // §7.2 steps 13–14 (crossOrigin, topOrigin): crossOrigin / topOrigin are acceptable only where
    // the RP expects to be embedded.
    if let Some(top) = &v.cross_origin {
        match cross_origin(profile, top) {
            Ok(what) => signal(Signal::CrossOrigin, what),
            Err(f) => hard.push(f),
        }
    }

    // The credential's type: what the authenticator reports now, or what was
    // registered when the authenticator data did not parse.
    let synced = v.authenticator.map_or(credential.backup_eligible, |a| a.flags.backup_eligible());
    if let Some(a) = v.authenticator {
        // §7.2 step 17 (UV): "Determine whether user verification is required ... If so,
        // verify that the UV bit of the flags in authData is set."
        if !a.flags.user_verified() {
            match profile.user_verification {
                UserVerification::Required => {
                    hard.push(Finding::new(ReasonCode::UserNotVerified, "user verification is required but the UV flag is not set"))
                }
                UserVerification::Preferred => signal(Signal::UserNotVerified, "the user was not verified".into()),
                UserVerification::Discouraged => {}
            }
        }
        // §7.2 step 19 (backup state) with §6.1.3: BE is fixed at credential creation; a change means another
        // credential or a misbehaving authenticator. Some stores lost BE on
        // migration: `allow_upgrade` accepts false -> true once.
        let reported = a.flags.backup_eligible();
        if reported != credential.backup_eligible {
            if profile.accepts_backup_eligibility_upgrade(credential.backup_eligible, reported) {
                signal(
                    Signal::BackupEligibilityUpgrade,
                    "BE changed from false to true since registration; accepted and recorded (allow_upgrade)".into(),
                );
            } else {
                hard.push(Finding::new(
                    ReasonCode::BackupEligibilityChanged,
                    format!("BE is {reported} but was {} at registration", credential.backup_eligible),
                ));
            }
        }
    }

    // assertd rule (Entra passkeyTypes): device-bound (BE = 0) and/or
    // synced (BE = 1).
    let type_allowed = if synced { profile.passkey_types.synced } else { profile.passkey_types.device_bound };
    if !type_allowed {
        let t = if synced { "synced" } else { "device-bound" };
        hard.push(Finding::new(ReasonCode::PasskeyTypeNotAllowed, format!("{t} passkeys are not allowed by the profile")));
    } else if synced {
        signal(Signal::SyncedPasskey, "synced (multi-device) passkey".into());
    }

    // assertd rule (Entra attestationEnforcement), from facts the
    // registration (§7.1) established.
    if !credential.attested {
        match profile.attestation_enforcement {
            AttestationEnforcement::RegistrationOnly => hard.push(Finding::new(
                ReasonCode::AttestationRequired,
                "the profile requires attestation, and it was not verified at registration",
            )),
            AttestationEnforcement::Disabled => signal(Signal::UnattestedCredential, "attestation was not verified at registration".into()),
        }
    }

    // assertd rule (Entra keyRestrictions): the AAGUID (§6.5.2) on an allow
    // or block list; only a vouched AAGUID satisfies an allow list.
    if let Some(f) = key_restriction(profile, &credential.aaguid, credential.aaguid_vouched) {
        hard.push(f);
    }

    // assertd rule (FIDO MDS3): a model revoked or compromised since
    // registration no longer signs in.
    if let Some(status) = credential.model_blocked {
        hard.push(Finding::new(
            ReasonCode::AuthenticatorStatusRevoked,
            format!("the FIDO metadata now reports {status} for this authenticator model ({})", format_uuid(&credential.aaguid)),
        ));
    }

    // §7.2 step 22 (signCount): a regression "is a signal that the authenticator may be
    // cloned"; the profile decides what it costs.
    if let CounterCheck::Regressed { stored, received } = counter {
        let what = format!("sign count {received} is not above the stored {stored}");
        match profile.sign_count_regression {
            RegressionAction::Deny => hard.push(Finding::new(ReasonCode::SignCountRegression, what)),
            RegressionAction::StepUp => signal(Signal::SignCountRegression, what),
        }
    }

    if counter == CounterCheck::Deferred {
        signal(Signal::SignCountDeferred, "the counter was checked against this replica's memory; the store was unreachable".into());
    }

    context_signals(ctx, &mut signal);
    // Judged only for a flagged user: nothing to do on the common path.
    let remediates = ctx.user_risk_set_at_ms != 0
        && counter == CounterCheck::Ok
        && meets_remediation_bar(profile, v.authenticator.is_some_and(|a| a.flags.user_verified()), synced, credential, ctx);
    user_risk(profile, ctx, remediates, hard, signals, counter)
}

/// assertd rule (Entra's risk remediation): whether this sign-in may clear
/// its user's flag: UV where the profile's bar asks for it, a passkey type
/// and attestation the bar accepts, and a credential registered before the
/// flag was set (one added since, perhaps by whoever caused the flag,
/// never clears it).
fn meets_remediation_bar(profile: &Profile, uv: bool, synced: bool, credential: &CredentialFacts, ctx: &SignInContext) -> bool {
    let bar = &profile.user_risk_remediation;
    let type_ok = if synced { bar.passkey_types.synced } else { bar.passkey_types.device_bound };
    (uv || !bar.requires_uv)
        && type_ok
        && (credential.attested || !bar.requires_attestation)
        && credential.created_at_ms < ctx.user_risk_set_at_ms
}

/// assertd rule: the user's flag under the profile's
/// `user_risk_remediation`, then the decision. `remediates`: the sign-in
/// meets the remediation bar.
fn user_risk(
    profile: &Profile,
    ctx: &SignInContext,
    remediates: bool,
    mut hard: Vec<Finding>,
    mut signals: Vec<(u32, Finding)>,
    counter: CounterCheck,
) -> Verdict {
    let (s, level, mode) = match ctx.user_risk {
        RiskLevel::Medium => (Signal::UserRiskMedium, "medium", profile.user_risk_remediation.medium),
        RiskLevel::High => (Signal::UserRiskHigh, "high", profile.user_risk_remediation.high),
        RiskLevel::Low | RiskLevel::Unspecified => return decide(profile, hard, signals, counter),
    };
    let w = profile.weights[s];
    match mode {
        RemediationMode::Deny => {
            hard.push(Finding::new(s.reason(), format!("the user is flagged at {level} risk (user_risk_remediation: deny)")));
            decide(profile, hard, signals, counter)
        }
        RemediationMode::StepUp => {
            // Alone, the flag steps up and never denies.
            let w = w.max(profile.step_up_at).min(profile.deny_at.saturating_sub(1)).min(100);
            signals.push((
                w,
                Finding::new(s.reason(), format!("the user is flagged at {level} risk (user_risk_remediation: step_up; risk +{w})")),
            ));
            let mut v = decide(profile, hard, signals, counter);
            if v.decision == Decision::Allow {
                v.decision = Decision::StepUp;
            }
            v
        }
        RemediationMode::Passkey => {
            if remediates {
                let mut v = decide(profile, hard.clone(), signals.clone(), counter);
                if v.decision == Decision::Allow {
                    v.reasons.push(Finding::new(
                        ReasonCode::UserRiskRemediated,
                        format!("the user was flagged at {level} risk; this passkey sign-in meets the remediation bar and clears the flag"),
                    ));
                    return v;
                }
            }
            signals.push((w, Finding::new(s.reason(), format!("the user is flagged at {level} risk (risk +{w})"))));
            decide(profile, hard, signals, counter)
        }
    }
}

/// assertd rule: the gateway's context as risk signals.
fn context_signals(ctx: &SignInContext, signal: &mut impl FnMut(Signal, String)) {
    if ctx.trusted_network == Some(false) {
        signal(Signal::UntrustedNetwork, "sign-in from an untrusted network".into());
    }
    if ctx.device_compliant == Some(false) {
        signal(Signal::NoncompliantDevice, "the device is not compliant".into());
    }
    match ctx.upstream_risk {
        RiskLevel::Medium => signal(Signal::UpstreamRiskMedium, "upstream risk is medium".into()),
        RiskLevel::High => signal(Signal::UpstreamRiskHigh, "upstream risk is high".into()),
        RiskLevel::Low | RiskLevel::Unspecified => {}
    }
}

/// A sign-in with a temporary access pass that the store redeemed (the
/// engine checked the pass): no authenticator facts, so only the context
/// and the user's flag are judged, with the profile's weights and
/// thresholds. The verdict names the pass (`TEMPORARY_ACCESS_PASS`).
pub fn evaluate_access_pass(profile: &Profile, pass_id: &str, ctx: &SignInContext) -> Verdict {
    let w = &profile.weights;
    let mut signals: Vec<(u32, Finding)> = Vec::new();
    context_signals(ctx, &mut |s: Signal, what: String| {
        signals.push((w[s], Finding::new(s.reason(), format!("{what} (risk +{})", w[s]))));
    });
    // A pass is no passkey: it never remediates a flag.
    let mut v = user_risk(profile, ctx, false, Vec::new(), signals, CounterCheck::Ok);
    v.reasons.push(Finding::new(ReasonCode::TemporaryAccessPass, format!("temporary access pass {pass_id} redeemed")));
    v
}

/// The decision from hard failures and weighted signals.
fn decide(profile: &Profile, mut hard: Vec<Finding>, mut signals: Vec<(u32, Finding)>, counter: CounterCheck) -> Verdict {
    let score = signals.iter().map(|(w, _)| *w).sum::<u32>().min(100);
    signals.sort_by(|(wa, a), (wb, b)| wb.cmp(wa).then(a.code.severity().cmp(&b.code.severity())));
    if !hard.is_empty() {
        hard.sort_by_key(|f| f.code.severity());
        let failures = hard.len();
        hard.extend(signals.into_iter().map(|(_, f)| f));
        return Verdict { decision: Decision::Deny, risk_score: 100, reasons: hard, failures, retryable: false };
    }
    let mut decision = if score >= profile.deny_at {
        Decision::Deny
    } else if score >= profile.step_up_at {
        Decision::StepUp
    } else {
        Decision::Allow
    };
    // §7.2 step 22 (signCount) under `step_up`: a regressed count is a possible clone and
    // never allows, whatever the thresholds (the score caps at 100, and
    // `step_up_at` may be 101).
    if decision == Decision::Allow && matches!(counter, CounterCheck::Regressed { .. }) {
        decision = Decision::StepUp;
    }
    Verdict { decision, risk_score: score, reasons: signals.into_iter().map(|(_, f)| f).collect(), failures: 0, retryable: false }
}

#[cfg(test)]
mod tests;
