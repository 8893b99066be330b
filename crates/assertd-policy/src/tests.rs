use super::*;
use assertd_verify::{Algorithm, AuthenticatorFacts, Flags};

fn verification(flags: u8) -> Verification {
    Verification {
        failures: vec![],
        authenticator: Some(AuthenticatorFacts { flags: Flags(flags), sign_count: 1 }),
        cross_origin: None,
        algorithm: Algorithm::Es256,
    }
}

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;

fn codes(v: &Verdict) -> Vec<ReasonCode> {
    v.reasons.iter().map(|r| r.code).collect()
}

#[test]
fn clean_assertion_allows_with_no_reasons() {
    let v = evaluate(&Profile::default(), &verification(UP | UV), &CredentialFacts { backup_eligible: false }, CounterCheck::Ok);
    assert_eq!(v, Verdict { decision: Decision::Allow, risk_score: 0, reasons: vec![], failures: 0, retryable: false });
}

#[test]
fn synced_passkey_is_annotated_not_denied() {
    let v = evaluate(&Profile::default(), &verification(UP | UV | BE | BS), &CredentialFacts { backup_eligible: true }, CounterCheck::Ok);
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(codes(&v), vec![ReasonCode::SyncedPasskey]);
}

#[test]
fn user_verification_required_preferred_discouraged() {
    let cred = CredentialFacts { backup_eligible: false };
    let mut p = Profile { user_verification: UserVerification::Required, ..Profile::default() };
    let v = evaluate(&p, &verification(UP), &cred, CounterCheck::Ok);
    assert_eq!((v.decision, codes(&v)), (Decision::Deny, vec![ReasonCode::UserNotVerified]));

    p.user_verification = UserVerification::Preferred;
    let v = evaluate(&p, &verification(UP), &cred, CounterCheck::Ok);
    assert_eq!((v.decision, v.risk_score, codes(&v)), (Decision::Allow, 20, vec![ReasonCode::UserNotVerified]));
    assert!(v.reasons[0].message.contains("+20"));

    p.user_verification = UserVerification::Discouraged;
    let v = evaluate(&p, &verification(UP), &cred, CounterCheck::Ok);
    assert_eq!((v.decision, codes(&v)), (Decision::Allow, vec![]));
}

#[test]
fn backup_eligibility_change_denies() {
    let v = evaluate(&Profile::default(), &verification(UP | UV | BE), &CredentialFacts { backup_eligible: false }, CounterCheck::Ok);
    assert_eq!((v.decision, codes(&v)), (Decision::Deny, vec![ReasonCode::BackupEligibilityChanged]));
    let v = evaluate(&Profile::default(), &verification(UP | UV), &CredentialFacts { backup_eligible: true }, CounterCheck::Ok);
    assert_eq!((v.decision, codes(&v)), (Decision::Deny, vec![ReasonCode::BackupEligibilityChanged]));
}

#[test]
fn counter_regression_denies_or_steps_up() {
    let cred = CredentialFacts { backup_eligible: false };
    let reg = CounterCheck::Regressed { stored: 5, received: 5 };
    let v = evaluate(&Profile::default(), &verification(UP | UV), &cred, reg);
    assert_eq!((v.decision, codes(&v)), (Decision::Deny, vec![ReasonCode::SignCountRegression]));
    let p = Profile { sign_count_regression: RegressionAction::StepUp, ..Profile::default() };
    let v = evaluate(&p, &verification(UP | UV), &cred, reg);
    assert_eq!((v.decision, codes(&v)), (Decision::StepUp, vec![ReasonCode::SignCountRegression]));
    // Even with a zero weight, a regression never allows.
    let p = Profile {
        sign_count_regression: RegressionAction::StepUp,
        weights: Weights { sign_count_regression: 0, ..Weights::default() },
        ..Profile::default()
    };
    assert_eq!(evaluate(&p, &verification(UP | UV), &cred, reg).decision, Decision::StepUp);
}

#[test]
fn cross_origin_rules() {
    let cred = CredentialFacts { backup_eligible: false };
    let mut v = verification(UP | UV);
    v.cross_origin = Some(None);
    let r = evaluate(&Profile::default(), &v, &cred, CounterCheck::Ok);
    assert_eq!((r.decision, codes(&r)), (Decision::Deny, vec![ReasonCode::CrossOrigin]));
    let p = Profile { allow_cross_origin: true, allowed_top_origins: vec!["https://top.example".into()], ..Profile::default() };
    let r = evaluate(&p, &v, &cred, CounterCheck::Ok);
    assert_eq!((r.decision, r.risk_score, codes(&r)), (Decision::Allow, 20, vec![ReasonCode::CrossOrigin]));
    v.cross_origin = Some(Some("https://top.example".into()));
    assert_eq!(evaluate(&p, &v, &cred, CounterCheck::Ok).decision, Decision::Allow);
    v.cross_origin = Some(Some("https://evil.example".into()));
    let r = evaluate(&p, &v, &cred, CounterCheck::Ok);
    assert_eq!((r.decision, codes(&r)), (Decision::Deny, vec![ReasonCode::CrossOrigin]));
}

#[test]
fn legacy_algorithm_needs_the_profile() {
    let cred = CredentialFacts { backup_eligible: false };
    let mut v = verification(UP | UV);
    v.algorithm = Algorithm::Rs1;
    let r = evaluate(&Profile::default(), &v, &cred, CounterCheck::Ok);
    assert_eq!((r.decision, codes(&r)), (Decision::Deny, vec![ReasonCode::UnsupportedAlgorithm]));
    let p = Profile { allow_legacy_algorithms: true, ..Profile::default() };
    assert_eq!(evaluate(&p, &v, &cred, CounterCheck::Ok).decision, Decision::Allow);
}

#[test]
fn thresholds_step_up_and_deny() {
    let cred = CredentialFacts { backup_eligible: true };
    let p = Profile {
        step_up_at: 30,
        deny_at: 40,
        weights: Weights { synced_passkey: 15, user_not_verified: 20, ..Weights::default() },
        ..Profile::default()
    };
    let r = evaluate(&p, &verification(UP | UV | BE), &cred, CounterCheck::Ok);
    assert_eq!((r.decision, r.risk_score), (Decision::Allow, 15));
    let r = evaluate(&p, &verification(UP | BE), &cred, CounterCheck::Ok);
    assert_eq!((r.decision, r.risk_score), (Decision::StepUp, 35));
    assert_eq!(codes(&r), vec![ReasonCode::UserNotVerified, ReasonCode::SyncedPasskey], "heaviest signal first");
    let p = Profile { deny_at: 35, ..p };
    assert_eq!(evaluate(&p, &verification(UP | BE), &cred, CounterCheck::Ok).decision, Decision::Deny);
}

#[test]
fn hard_failures_deny_and_come_first() {
    let mut v = verification(UP | BE | BS);
    v.failures = vec![Finding::new(ReasonCode::ChallengeMismatch, "c"), Finding::new(ReasonCode::SignatureInvalid, "s")];
    let r = evaluate(&Profile::default(), &v, &CredentialFacts { backup_eligible: true }, CounterCheck::NotChecked);
    assert_eq!(r.decision, Decision::Deny);
    assert_eq!(
        codes(&r),
        vec![ReasonCode::SignatureInvalid, ReasonCode::ChallengeMismatch, ReasonCode::UserNotVerified, ReasonCode::SyncedPasskey]
    );
    assert_eq!(r.failure_codes().collect::<Vec<_>>(), vec![ReasonCode::SignatureInvalid, ReasonCode::ChallengeMismatch]);
    assert!(!r.retryable);
}

#[test]
fn store_unavailable_is_retryable_deny() {
    let r = Verdict::deny(vec![Finding::new(ReasonCode::StoreUnavailable, "down")]);
    assert!(r.retryable && r.decision == Decision::Deny);
    assert!(!Verdict::deny(vec![Finding::new(ReasonCode::CredentialNotFound, "x")]).retryable);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn profile() -> impl Strategy<Value = Profile> {
        (0u32..=100, 0u32..=100, any::<[u8; 4]>(), any::<bool>(), any::<bool>()).prop_map(|(a, b, w, reg, uv)| Profile {
            step_up_at: a.min(b),
            deny_at: a.max(b),
            sign_count_regression: if reg { RegressionAction::StepUp } else { RegressionAction::Deny },
            user_verification: if uv { UserVerification::Preferred } else { UserVerification::Discouraged },
            allow_cross_origin: true,
            weights: Weights {
                synced_passkey: w[0].into(),
                user_not_verified: w[1].into(),
                cross_origin: w[2].into(),
                sign_count_regression: w[3].into(),
            },
            ..Profile::default()
        })
    }

    proptest! {
        #[test]
        fn hard_failures_always_deny(p in profile(), flags in any::<u8>(), be in any::<bool>(), code in 0usize..ReasonCode::ALL.len()) {
            let mut v = verification(flags);
            v.failures.push(Finding::new(ReasonCode::ALL[code], "x"));
            let r = evaluate(&p, &v, &CredentialFacts { backup_eligible: be }, CounterCheck::NotChecked);
            prop_assert_eq!(r.decision, Decision::Deny);
            prop_assert_eq!(r.reasons[0].code.severity() <= ReasonCode::ALL[code].severity(), true);
        }

        #[test]
        fn score_is_monotone_in_signals(p in profile(), flags in any::<u8>()) {
            // Adding the BE/BS and cross-origin signals never lowers the score
            // nor softens the decision.
            let cred = CredentialFacts { backup_eligible: false };
            let base = evaluate(&p, &verification((flags | UP) & !(BE | BS)), &cred, CounterCheck::Ok);
            let mut more = verification((flags | UP) & !(BE | BS));
            more.cross_origin = Some(None);
            let r = evaluate(&p, &more, &cred, CounterCheck::Ok);
            prop_assert!(r.risk_score >= base.risk_score);
            let rank = |d: Decision| match d { Decision::Allow => 0, Decision::StepUp => 1, Decision::Deny => 2 };
            prop_assert!(rank(r.decision) >= rank(base.decision));
        }
    }
}
