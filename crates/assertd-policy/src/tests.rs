//! Table-driven tests of every profile rule and risk signal, and property
//! tests of the engine's invariants.

use super::*;
use assertd_verify::{Algorithm, AuthenticatorFacts, Flags};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const YUBIKEY: [u8; 16] = [0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8];
const OTHER: [u8; 16] = [0x11; 16];

fn verification(flags: u8) -> Verification {
    Verification {
        failures: vec![],
        authenticator: Some(AuthenticatorFacts { flags: Flags(flags), sign_count: 1 }),
        cross_origin: None,
        algorithm: Algorithm::Es256,
        issued_challenge: None,
    }
}

/// An attested, device-bound security key.
fn key() -> CredentialFacts {
    CredentialFacts { backup_eligible: false, attested: true, aaguid: YUBIKEY, aaguid_vouched: true, model_blocked: None, created_at_ms: 0 }
}

/// A synced, unattested platform passkey.
fn synced() -> CredentialFacts {
    CredentialFacts {
        backup_eligible: true,
        attested: false,
        aaguid: [0; 16],
        aaguid_vouched: false,
        model_blocked: None,
        created_at_ms: 0,
    }
}

fn codes(v: &Verdict) -> Vec<ReasonCode> {
    v.reasons.iter().map(|r| r.code).collect()
}

/// The three example profiles of docs/configuration.md / examples/assertd.toml.
fn tier0() -> Profile {
    Profile {
        passkey_types: PasskeyTypes { device_bound: true, synced: false },
        attestation_enforcement: AttestationEnforcement::RegistrationOnly,
        key_restrictions: Some(KeyRestrictions { enforcement_type: EnforcementType::Allow, aaguids: vec![YUBIKEY] }),
        user_verification: UserVerification::Required,
        ..Profile::default()
    }
}

fn tier1() -> Profile {
    Profile {
        passkey_types: PasskeyTypes { device_bound: true, synced: false },
        user_verification: UserVerification::Required,
        ..Profile::default()
    }
}

/// A synced passkey whose attestation was verified at registration.
fn synced_attested() -> CredentialFacts {
    CredentialFacts { attested: true, ..synced() }
}

fn workforce() -> Profile {
    Profile {
        step_up_at: 40,
        deny_at: 80,
        weights: Weights::with([(Signal::SyncedPasskey, 10), (Signal::UntrustedNetwork, 20), (Signal::UpstreamRiskHigh, 60)]),
        ..Profile::default()
    }
}

fn ctx(trusted: Option<bool>, compliant: Option<bool>, risk: RiskLevel) -> SignInContext {
    SignInContext {
        trusted_network: trusted,
        device_compliant: compliant,
        upstream_risk: risk,
        user_risk: RiskLevel::Unspecified,
        user_risk_set_at_ms: 0,
    }
}

struct Row {
    name: &'static str,
    profile: Profile,
    flags: u8,
    cred: CredentialFacts,
    counter: CounterCheck,
    ctx: SignInContext,
    decision: Decision,
    score: u32,
    codes: Vec<ReasonCode>,
}

fn row(name: &'static str, profile: Profile, flags: u8, cred: CredentialFacts) -> Row {
    Row {
        name,
        profile,
        flags,
        cred,
        counter: CounterCheck::Ok,
        ctx: SignInContext::default(),
        decision: Decision::Allow,
        score: 0,
        codes: vec![],
    }
}

impl Row {
    fn ctx(mut self, c: SignInContext) -> Self {
        self.ctx = c;
        self
    }
    fn counter(mut self, c: CounterCheck) -> Self {
        self.counter = c;
        self
    }
    fn expect(mut self, decision: Decision, score: u32, codes: &[ReasonCode]) -> Self {
        self.decision = decision;
        self.score = score;
        self.codes = codes.to_vec();
        self
    }
}

#[test]
fn decision_table() {
    use Decision::*;
    use ReasonCode as R;
    let regressed = CounterCheck::Regressed { stored: 5, received: 5 };
    let table = vec![
        // The workforce examples.
        row("workforce: synced + untrusted network", workforce(), UP | UV | BE | BS, synced_attested())
            .ctx(ctx(Some(false), None, RiskLevel::Unspecified))
            .expect(Allow, 30, &[R::UntrustedNetwork, R::SyncedPasskey]),
        row("workforce: + high upstream risk", workforce(), UP | UV | BE | BS, synced_attested())
            .ctx(ctx(Some(false), None, RiskLevel::High))
            .expect(Deny, 90, &[R::UpstreamRiskHigh, R::UntrustedNetwork, R::SyncedPasskey]),
        row("workforce: high upstream risk alone steps up", workforce(), UP | UV, key()).ctx(ctx(None, None, RiskLevel::High)).expect(
            StepUp,
            60,
            &[R::UpstreamRiskHigh],
        ),
        row("workforce: trusted, compliant, low risk", workforce(), UP | UV | BE, synced_attested())
            .ctx(ctx(Some(true), Some(true), RiskLevel::Low))
            .expect(Allow, 10, &[R::SyncedPasskey]),
        row("workforce: unattested synced + untrusted network steps up", workforce(), UP | UV | BE | BS, synced())
            .ctx(ctx(Some(false), None, RiskLevel::Unspecified))
            .expect(StepUp, 40, &[R::UntrustedNetwork, R::UnattestedCredential, R::SyncedPasskey]),
        row("tier1: synced is not allowed", tier1(), UP | UV | BE | BS, synced()).expect(
            Deny,
            100,
            &[R::PasskeyTypeNotAllowed, R::UnattestedCredential],
        ),
        row("tier1: device-bound with UV", tier1(), UP | UV, key()).expect(Allow, 0, &[]),
        row("tier1: UV missing", tier1(), UP, key()).expect(Deny, 100, &[R::UserNotVerified]),
        // tier0: hardware keys only.
        row("tier0: attested allowed key", tier0(), UP | UV, key()).expect(Allow, 0, &[]),
        // An allow-listed AAGUID that no trusted attestation vouched for
        // does not satisfy the allow list.
        row("tier0: unattested", tier0(), UP | UV, CredentialFacts { attested: false, aaguid_vouched: false, ..key() }).expect(
            Deny,
            100,
            &[R::AttestationRequired, R::AaguidNotAllowed],
        ),
        row(
            "allow list without attestation enforcement: an unattested listed AAGUID is refused",
            Profile { attestation_enforcement: AttestationEnforcement::Disabled, ..tier0() },
            UP | UV,
            CredentialFacts { attested: false, aaguid_vouched: false, ..key() },
        )
        .expect(Deny, 100, &[R::AaguidNotAllowed, R::UnattestedCredential]),
        // Attested by a root that does not vouch for the model (an Android
        // key claiming a security key's AAGUID): the allow list refuses it.
        row("tier0: attested, model not vouched", tier0(), UP | UV, CredentialFacts { aaguid_vouched: false, ..key() }).expect(
            Deny,
            100,
            &[R::AaguidNotAllowed],
        ),
        row("tier0: other AAGUID", tier0(), UP | UV, CredentialFacts { aaguid: OTHER, ..key() }).expect(Deny, 100, &[R::AaguidNotAllowed]),
        // The FIDO metadata now reports the model compromised.
        row("tier0: model revoked since", tier0(), UP | UV, CredentialFacts { model_blocked: Some("REVOKED"), ..key() }).expect(
            Deny,
            100,
            &[R::AuthenticatorStatusRevoked],
        ),
        row("tier0: synced, unattested, unknown AAGUID, no UV", tier0(), UP | BE | BS, synced()).expect(
            Deny,
            100,
            &[R::PasskeyTypeNotAllowed, R::AttestationRequired, R::AaguidNotAllowed, R::UserNotVerified],
        ),
        // AAGUID block list.
        row(
            "block list refuses listed",
            Profile {
                key_restrictions: Some(KeyRestrictions { enforcement_type: EnforcementType::Block, aaguids: vec![YUBIKEY] }),
                ..Profile::default()
            },
            UP | UV,
            key(),
        )
        .expect(Deny, 100, &[R::AaguidNotAllowed]),
        row(
            "block list passes others",
            Profile {
                key_restrictions: Some(KeyRestrictions { enforcement_type: EnforcementType::Block, aaguids: vec![OTHER] }),
                ..Profile::default()
            },
            UP | UV,
            key(),
        )
        .expect(Allow, 0, &[]),
        // Passkey types.
        row(
            "synced only refuses device-bound",
            Profile { passkey_types: PasskeyTypes { device_bound: false, synced: true }, ..Profile::default() },
            UP | UV,
            key(),
        )
        .expect(Deny, 100, &[R::PasskeyTypeNotAllowed]),
        // Default profile signals and weights.
        row("default: clean key", Profile::default(), UP | UV, key()).expect(Allow, 0, &[]),
        row("default: synced + unattested", Profile::default(), UP | UV | BE | BS, synced()).expect(
            Allow,
            20,
            &[R::UnattestedCredential, R::SyncedPasskey],
        ),
        row("default: UV preferred", Profile::default(), UP, key()).expect(Allow, 20, &[R::UserNotVerified]),
        row("default: UV discouraged", Profile { user_verification: UserVerification::Discouraged, ..Profile::default() }, UP, key())
            .expect(Allow, 0, &[]),
        row("default: noncompliant device", Profile::default(), UP | UV, key()).ctx(ctx(None, Some(false), RiskLevel::Unspecified)).expect(
            Allow,
            30,
            &[R::NoncompliantDevice],
        ),
        row("default: medium upstream risk", Profile::default(), UP | UV, key()).ctx(ctx(None, None, RiskLevel::Medium)).expect(
            Allow,
            30,
            &[R::UpstreamRiskMedium],
        ),
        row("default: untrusted + noncompliant steps up", Profile::default(), UP | UV, key())
            .ctx(ctx(Some(false), Some(false), RiskLevel::Unspecified))
            .expect(StepUp, 50, &[R::NoncompliantDevice, R::UntrustedNetwork]),
        row("default: everything at once is capped and denies", Profile::default(), UP | BE | BS, synced())
            .ctx(ctx(Some(false), Some(false), RiskLevel::High))
            .expect(
                Deny,
                100,
                &[
                    R::UpstreamRiskHigh,
                    R::NoncompliantDevice,
                    R::UserNotVerified,
                    R::UntrustedNetwork,
                    R::UnattestedCredential,
                    R::SyncedPasskey,
                ],
            ),
        // Counter regression.
        row("regression denies by default", Profile::default(), UP | UV, key()).counter(regressed).expect(
            Deny,
            100,
            &[R::SignCountRegression],
        ),
        row(
            "regression steps up under step_up",
            Profile { sign_count_regression: RegressionAction::StepUp, ..Profile::default() },
            UP | UV,
            key(),
        )
        .counter(regressed)
        .expect(StepUp, 50, &[R::SignCountRegression]),
        // BE changes.
        row("BE false -> true denies by default", Profile::default(), UP | UV | BE, key()).expect(
            Deny,
            100,
            &[R::BackupEligibilityChanged, R::SyncedPasskey],
        ),
        row(
            "BE false -> true accepted under allow_upgrade",
            Profile { backup_eligibility_change: BackupEligibilityChange::AllowUpgrade, ..Profile::default() },
            UP | UV | BE,
            key(),
        )
        .expect(Allow, 20, &[R::BackupEligibilityChanged, R::SyncedPasskey]),
        row(
            "BE true -> false denies even under allow_upgrade",
            Profile { backup_eligibility_change: BackupEligibilityChange::AllowUpgrade, ..Profile::default() },
            UP | UV,
            CredentialFacts { backup_eligible: true, ..key() },
        )
        .expect(Deny, 100, &[R::BackupEligibilityChanged]),
    ];
    for r in table {
        let v = evaluate(&r.profile, &verification(r.flags), &r.cred, r.counter, &r.ctx);
        assert_eq!((v.decision, v.risk_score, codes(&v)), (r.decision, r.score, r.codes.clone()), "{}: {:#?}", r.name, v.reasons);
        for reason in &v.reasons[v.failures..] {
            assert!(reason.message.contains("(risk +"), "{}: signal without its weight: {reason:?}", r.name);
        }
    }
}

#[test]
fn cross_origin_rules() {
    let mut v = verification(UP | UV);
    v.cross_origin = Some(None);
    let r = evaluate(&Profile::default(), &v, &key(), CounterCheck::Ok, &SignInContext::default());
    assert_eq!((r.decision, codes(&r)), (Decision::Deny, vec![ReasonCode::CrossOrigin]));
    // Cross-origin allowed, no list: a signal.
    let open = Profile { allow_cross_origin: true, ..Profile::default() };
    let r = evaluate(&open, &v, &key(), CounterCheck::Ok, &SignInContext::default());
    assert_eq!((r.decision, r.risk_score, codes(&r)), (Decision::Allow, 20, vec![ReasonCode::CrossOrigin]));
    // A list of top origins: a ceremony naming none is refused (issue 13
    // item 8: it was allowed).
    let p = Profile { allow_cross_origin: true, allowed_top_origins: vec!["https://top.example".into()], ..Profile::default() };
    let r = evaluate(&p, &v, &key(), CounterCheck::Ok, &SignInContext::default());
    assert_eq!((r.decision, codes(&r)), (Decision::Deny, vec![ReasonCode::CrossOrigin]), "{r:?}");
    v.cross_origin = Some(Some("https://top.example".into()));
    assert_eq!(evaluate(&p, &v, &key(), CounterCheck::Ok, &SignInContext::default()).decision, Decision::Allow);
    v.cross_origin = Some(Some("https://evil.example".into()));
    let r = evaluate(&p, &v, &key(), CounterCheck::Ok, &SignInContext::default());
    assert_eq!((r.decision, codes(&r)), (Decision::Deny, vec![ReasonCode::CrossOrigin]));
}

/// Issue 13 item 8: top origins are compared in full, not after the
/// 128-byte truncation used for messages.
#[test]
fn top_origins_compare_in_full() {
    let allowed = format!("https://{}.example", "a".repeat(130));
    let p = Profile { allow_cross_origin: true, allowed_top_origins: vec![allowed.clone()], ..Profile::default() };
    let mut v = verification(UP | UV);
    v.cross_origin = Some(Some(format!("{allowed}.evil.test")));
    let r = evaluate(&p, &v, &key(), CounterCheck::Ok, &SignInContext::default());
    assert_eq!((r.decision, codes(&r)), (Decision::Deny, vec![ReasonCode::CrossOrigin]), "{r:?}");
    v.cross_origin = Some(Some(allowed));
    assert_eq!(evaluate(&p, &v, &key(), CounterCheck::Ok, &SignInContext::default()).decision, Decision::Allow);
}

#[test]
fn legacy_algorithm_needs_the_profile() {
    let mut v = verification(UP | UV);
    v.algorithm = Algorithm::Rs1;
    let r = evaluate(&Profile::default(), &v, &key(), CounterCheck::Ok, &SignInContext::default());
    assert_eq!((r.decision, codes(&r)), (Decision::Deny, vec![ReasonCode::UnsupportedAlgorithm]));
    let p = Profile { allow_legacy_algorithms: true, ..Profile::default() };
    let r = evaluate(&p, &v, &key(), CounterCheck::Ok, &SignInContext::default());
    assert_eq!((r.decision, r.risk_score, codes(&r)), (Decision::Allow, 20, vec![ReasonCode::LegacyAlgorithm]));
}

#[test]
fn hard_failures_deny_and_come_first() {
    let mut v = verification(UP | BE | BS);
    v.failures = vec![Finding::new(ReasonCode::ChallengeMismatch, "c"), Finding::new(ReasonCode::SignatureInvalid, "s")];
    let r = evaluate(&Profile::default(), &v, &synced(), CounterCheck::NotChecked, &SignInContext::default());
    assert_eq!(r.decision, Decision::Deny);
    assert_eq!(
        codes(&r),
        vec![
            ReasonCode::SignatureInvalid,
            ReasonCode::ChallengeMismatch,
            ReasonCode::UserNotVerified,
            ReasonCode::UnattestedCredential,
            ReasonCode::SyncedPasskey
        ]
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

#[test]
fn upgrade_is_one_way_and_opt_in() {
    let p = Profile { backup_eligibility_change: BackupEligibilityChange::AllowUpgrade, ..Profile::default() };
    assert!(p.accepts_backup_eligibility_upgrade(false, true));
    assert!(!p.accepts_backup_eligibility_upgrade(true, false));
    assert!(!p.accepts_backup_eligibility_upgrade(true, true));
    assert!(!Profile::default().accepts_backup_eligibility_upgrade(false, true));
}

mod properties;
mod recovery;

/// Issue 13 item 4: `step_up_at = deny_at = 101` (the score never steps up
/// or denies) must still not let a regressed count in under `step_up`.
#[test]
fn regression_under_step_up_never_allows_even_at_101() {
    let p = Profile { sign_count_regression: RegressionAction::StepUp, step_up_at: 101, deny_at: 101, ..Profile::default() };
    let r = evaluate(&p, &verification(UP | UV), &key(), CounterCheck::Regressed { stored: 5, received: 5 }, &SignInContext::default());
    assert_eq!(r.decision, Decision::StepUp, "{r:?}");
    assert!(r.reasons.iter().any(|f| f.code == ReasonCode::SignCountRegression));
}
