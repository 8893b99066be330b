//! Recovery and remediation: sign-ins with a temporary access pass, what a
//! pass may register, and flagged users healed by a passkey.

use super::*;

/// A sign-in with a pass: only the context and the user's flag are judged,
/// with the profile's weights; the pass is named whatever the decision.
#[test]
fn a_pass_sign_in_is_judged_by_its_context() {
    let named = |v: &Verdict| v.reasons.iter().any(|f| f.code == ReasonCode::TemporaryAccessPass && f.message.contains("tap_1"));
    let v = evaluate_access_pass(&workforce(), "tap_1", &ctx(None, None, RiskLevel::Unspecified));
    assert_eq!((v.decision, v.risk_score), (Decision::Allow, 0));
    assert!(named(&v));
    let v = evaluate_access_pass(&workforce(), "tap_1", &ctx(Some(false), None, RiskLevel::High));
    assert_eq!((v.decision, v.risk_score), (Decision::Deny, 80));
    assert!(named(&v));
    let high = SignInContext { user_risk: RiskLevel::High, ..SignInContext::default() };
    let v = evaluate_access_pass(&Profile::default(), "tap_1", &high);
    assert_eq!(v.decision, Decision::Deny, "a user flagged high is denied by default");
    assert_eq!(v.reasons.first().map(|f| f.code), Some(ReasonCode::UserRiskHigh));
}

/// What a pass may register, by the profile's `temporary_access_pass`.
#[test]
fn what_a_pass_may_register() {
    use assertd_verify::Registration;
    let reg = |flags: u8| Registration {
        failures: vec![],
        authenticator: Some(AuthenticatorFacts { flags: Flags(flags), sign_count: 0 }),
        credential: None,
        attestation: None,
        cross_origin: None,
        issued_challenge: None,
    };
    let with = |t: PassRegistration| Profile { temporary_access_pass: t, ..Profile::default() };
    assert_eq!(pass_registration(&Profile::default(), &reg(UP | BE | BS)), None, "any, by default");
    assert_eq!(pass_registration(&with(PassRegistration::DeviceBoundOnly), &reg(UP | UV)), None);
    let code = |f: Option<Finding>| f.map(|f| f.code);
    assert_eq!(
        code(pass_registration(&with(PassRegistration::DeviceBoundOnly), &reg(UP | BE))),
        Some(ReasonCode::TemporaryAccessPassNotAllowed)
    );
    assert_eq!(code(pass_registration(&with(PassRegistration::Never), &reg(UP))), Some(ReasonCode::TemporaryAccessPassNotAllowed));
}

/// A flagged user under each `user_risk_remediation` mode: a qualifying
/// passkey sign-in heals under "passkey" (and only then), anything weaker
/// keeps the flag's weight; "deny" and "step_up" do what they say.
#[test]
fn user_risk_remediation_modes() {
    let flagged = |level| SignInContext { user_risk: level, user_risk_set_at_ms: 1_000, ..SignInContext::default() };
    let old = CredentialFacts { created_at_ms: 500, ..key() };
    let codes = |v: &Verdict| v.reasons.iter().map(|f| f.code).collect::<Vec<_>>();
    let run = |p: &Profile, flags: u8, c: &CredentialFacts, counter: CounterCheck, ctx: &SignInContext| {
        evaluate(p, &verification(flags), c, counter, ctx)
    };
    let d = Profile::default();
    for level in [RiskLevel::Medium, RiskLevel::High] {
        let v = run(&d, UP | UV, &old, CounterCheck::Ok, &flagged(level));
        assert_eq!((v.decision, codes(&v)), (Decision::Allow, vec![ReasonCode::UserRiskRemediated]), "{level:?}");
    }
    // Below the bar: no UV, a credential added after the flag, a counter
    // checked only in memory, another signal that steps up anyway.
    let high = flagged(RiskLevel::High);
    let new = CredentialFacts { created_at_ms: 1_000, ..key() };
    for (what, v) in [
        ("no UV", run(&d, UP, &old, CounterCheck::Ok, &high)),
        ("registered after the flag", run(&d, UP | UV, &new, CounterCheck::Ok, &high)),
        ("counter deferred", run(&d, UP | UV, &old, CounterCheck::Deferred, &high)),
    ] {
        assert_eq!(v.decision, Decision::Deny, "{what}");
        assert!(codes(&v).contains(&ReasonCode::UserRiskHigh) && !codes(&v).contains(&ReasonCode::UserRiskRemediated), "{what}");
    }
    let upstream = SignInContext { upstream_risk: RiskLevel::High, ..flagged(RiskLevel::Medium) };
    let v = run(&workforce(), UP | UV, &old, CounterCheck::Ok, &upstream);
    assert_eq!(v.decision, Decision::Deny, "upstream high 60 steps up on its own: no remediation, and the flag's 50 adds up to deny");
    assert!(!codes(&v).contains(&ReasonCode::UserRiskRemediated));
    let v = run(&d, UP, &old, CounterCheck::Ok, &flagged(RiskLevel::Medium));
    assert_eq!((v.decision, codes(&v).first().copied()), (Decision::StepUp, Some(ReasonCode::UserRiskMedium)));
    // The bar's own keys.
    let bar = |f: fn(&mut RiskRemediation)| {
        let mut p = Profile::default();
        f(&mut p.user_risk_remediation);
        p
    };
    let attested = bar(|r| r.requires_attestation = true);
    assert_eq!(run(&attested, UP | UV, &CredentialFacts { attested: false, ..old }, CounterCheck::Ok, &high).decision, Decision::Deny);
    assert_eq!(run(&attested, UP | UV, &old, CounterCheck::Ok, &high).decision, Decision::Allow);
    let keys_only = bar(|r| r.passkey_types = PasskeyTypes { device_bound: true, synced: false });
    let synced_old = CredentialFacts { created_at_ms: 500, ..synced() };
    assert_eq!(run(&keys_only, UP | UV | BE | BS, &synced_old, CounterCheck::Ok, &high).decision, Decision::Deny);
    let no_uv_needed = bar(|r| r.requires_uv = false);
    assert_eq!(run(&no_uv_needed, UP, &old, CounterCheck::Ok, &high).decision, Decision::Allow);
    // "deny": a hard failure, even for a qualifying passkey, at any weight.
    let deny = bar(|r| r.medium = RemediationMode::Deny);
    let v = run(&deny, UP | UV, &old, CounterCheck::Ok, &flagged(RiskLevel::Medium));
    assert_eq!((v.decision, v.failures, codes(&v)), (Decision::Deny, 1, vec![ReasonCode::UserRiskMedium]));
    // "step_up": never allowed, and the flag alone never denies.
    let step_up = bar(|r| r.high = RemediationMode::StepUp);
    let v = run(&step_up, UP | UV, &old, CounterCheck::Ok, &high);
    assert_eq!((v.decision, codes(&v)), (Decision::StepUp, vec![ReasonCode::UserRiskHigh]));
    // Unflagged: nothing changes.
    assert_eq!(codes(&run(&d, UP | UV, &old, CounterCheck::Ok, &SignInContext::default())), Vec::<ReasonCode>::new());
}
