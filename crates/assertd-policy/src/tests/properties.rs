//! Property tests of the policy engine over whole profile and context spaces.

use super::*;
use proptest::prelude::*;

fn weights() -> impl Strategy<Value = Weights> {
    proptest::array::uniform12(0u32..=100).prop_map(|w| {
        let mut weights = Weights::with(Signal::ALL.into_iter().zip(w));
        // Config validation keeps high >= medium.
        weights[Signal::UpstreamRiskHigh] = weights[Signal::UpstreamRiskHigh].max(weights[Signal::UpstreamRiskMedium]);
        weights
    })
}

fn profile() -> impl Strategy<Value = Profile> {
    // Thresholds over the whole range config accepts (101: never), the
    // edges drawn often.
    let threshold = || prop_oneof![Just(0u32), Just(100), Just(101), 0u32..=101];
    (threshold(), threshold(), weights(), any::<[bool; 5]>()).prop_map(|(a, b, weights, f)| Profile {
        step_up_at: a.min(b),
        deny_at: a.max(b),
        sign_count_regression: if f[0] { RegressionAction::StepUp } else { RegressionAction::Deny },
        user_verification: if f[1] { UserVerification::Preferred } else { UserVerification::Discouraged },
        passkey_types: PasskeyTypes { device_bound: true, synced: true },
        backup_eligibility_change: if f[2] { BackupEligibilityChange::AllowUpgrade } else { BackupEligibilityChange::Deny },
        allow_cross_origin: f[3],
        allow_legacy_algorithms: f[4],
        weights,
        ..Profile::default()
    })
}

fn context() -> impl Strategy<Value = SignInContext> {
    (any::<Option<bool>>(), any::<Option<bool>>(), 0..4, 0..4).prop_map(|(t, c, r, u)| {
        let level = |i: i32| [RiskLevel::Unspecified, RiskLevel::Low, RiskLevel::Medium, RiskLevel::High][i as usize];
        SignInContext { trusted_network: t, device_compliant: c, upstream_risk: level(r), user_risk: level(u), user_risk_set_at_ms: 0 }
    })
}

fn rank(d: Decision) -> u8 {
    match d {
        Decision::Allow => 0,
        Decision::StepUp => 1,
        Decision::Deny => 2,
    }
}

const HARD: [ReasonCode; 16] = [
    ReasonCode::SignatureInvalid,
    ReasonCode::MalformedSignature,
    ReasonCode::ChallengeMismatch,
    ReasonCode::OriginNotAllowed,
    ReasonCode::RpIdMismatch,
    ReasonCode::WrongCeremonyType,
    ReasonCode::UserNotPresent,
    ReasonCode::UserHandleMismatch,
    ReasonCode::MalformedClientData,
    ReasonCode::MalformedAuthenticatorData,
    ReasonCode::BackupStateInvalid,
    ReasonCode::CredentialRevoked,
    ReasonCode::CredentialNotFound,
    ReasonCode::RpUnknown,
    ReasonCode::UnsupportedAlgorithm,
    ReasonCode::InvalidRequest,
];

proptest! {
    #[test]
    fn verifier_failures_always_deny(p in profile(), c in context(), flags in any::<u8>(), be in any::<bool>(), att in any::<bool>(), code in 0usize..HARD.len()) {
        let mut v = verification(flags);
        v.failures.push(Finding::new(HARD[code], "x"));
        let cred = CredentialFacts { backup_eligible: be, attested: att, aaguid: [0; 16], aaguid_vouched: false, model_blocked: None, created_at_ms: 0 };
        let r = evaluate(&p, &v, &cred, CounterCheck::NotChecked, &c);
        prop_assert_eq!(r.decision, Decision::Deny);
        prop_assert_eq!(r.risk_score, 100);
        prop_assert!(r.failure_codes().any(|c| c == HARD[code]));
    }

    #[test]
    fn profile_hard_rules_always_deny(p in profile(), c in context(), rule in 0..4) {
        // A device-bound, attested key with UV: only the chosen rule fails.
        let mut p = p;
        let mut cred = key();
        let mut flags = UP | UV;
        let want = match rule {
            0 => { p.passkey_types.device_bound = false; ReasonCode::PasskeyTypeNotAllowed }
            1 => { p.attestation_enforcement = AttestationEnforcement::RegistrationOnly; cred.attested = false; ReasonCode::AttestationRequired }
            2 => { p.key_restrictions = Some(KeyRestrictions { enforcement_type: EnforcementType::Allow, aaguids: vec![OTHER] }); ReasonCode::AaguidNotAllowed }
            _ => { cred.backup_eligible = true; flags = UP | UV; ReasonCode::BackupEligibilityChanged }
        };
        let r = evaluate(&p, &verification(flags), &cred, CounterCheck::Ok, &c);
        prop_assert_eq!(r.decision, Decision::Deny);
        prop_assert_eq!(r.failure_codes().collect::<Vec<_>>(), vec![want]);
    }

    #[test]
    fn more_signals_never_lower_score_or_soften_decision(p in profile(), flags in any::<u8>(), c in context(), extra in 0..5) {
        let cred = key();
        let flags = (flags | UP) & !(BE | BS);
        let base = evaluate(&p, &verification(flags), &cred, CounterCheck::Ok, &c);
        // Add one more risk signal.
        let mut c2 = c;
        let mut v2 = verification(flags);
        let mut cred2 = cred;
        match extra {
            0 => c2.trusted_network = Some(false),
            1 => c2.device_compliant = Some(false),
            // Higher upstream risk (replaces a lower level).
            2 => c2.upstream_risk = RiskLevel::High,
            3 => cred2.attested = false,
            _ => v2.cross_origin = Some(None),
        }
        let more = evaluate(&p, &v2, &cred2, CounterCheck::Ok, &c2);
        prop_assert!(more.risk_score >= base.risk_score);
        prop_assert!(rank(more.decision) >= rank(base.decision));
    }

    #[test]
    fn a_regressed_count_never_allows(p in profile(), c in context(), flags in any::<u8>(), stored in 1u32.., back in 0u32..) {
        let flags = (flags | UP) & !(BE | BS);
        let received = stored.saturating_sub(back % (stored + 1));
        let r = evaluate(&p, &verification(flags), &key(), CounterCheck::Regressed { stored, received }, &c);
        prop_assert_ne!(r.decision, Decision::Allow, "{:?} under step_up_at {} deny_at {}", r, p.step_up_at, p.deny_at);
        prop_assert!(r.reasons.iter().any(|f| f.code == ReasonCode::SignCountRegression));
    }

    #[test]
    fn score_is_the_capped_sum_of_signal_weights(p in profile(), c in context(), flags in any::<u8>()) {
        let flags = (flags | UP) & !(BE | BS);
        let r = evaluate(&p, &verification(flags), &key(), CounterCheck::Ok, &c);
        prop_assume!(r.failures == 0);
        let sum: u32 = r.reasons.iter().map(|f| {
            let w = f.message.rsplit("(risk +").next().unwrap().trim_end_matches(')');
            w.parse::<u32>().unwrap()
        }).sum();
        prop_assert_eq!(r.risk_score, sum.min(100));
    }
}
