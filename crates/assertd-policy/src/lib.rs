//! The policy and risk engine: turns the verifier's facts, the stored
//! credential's facts and the signature-counter check into a decision
//! (allow / step up / deny) with a risk score and every reason behind it.
//!
//! What this crate does **not** do: it parses nothing, verifies no signature,
//! touches no store and reads no clock or environment. It is a pure function
//! of its inputs.

mod profile;
mod signal;

pub use assertd_verify::{Finding, ReasonCode};
pub use profile::{
    AttestationEnforcement, BackupEligibilityChange, CertificationLevel, DEFAULT_DENY_AT, DEFAULT_STEP_UP_AT, EnforcementType,
    KeyRestrictions, PasskeyType, PasskeyTypes, Profile, RegressionAction, UserVerification,
};
pub use signal::{Signal, Weights};

use assertd_verify::attestation::AttestationType;
use assertd_verify::{Registration, Verification, truncate};

/// What the gateway should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Sign the user in.
    Allow,
    /// Ask for a further factor.
    StepUp,
    /// Reject.
    Deny,
}

impl Decision {
    /// Stable lower-case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::StepUp => "step_up",
            Self::Deny => "deny",
        }
    }
}

/// The registration facts of a credential that policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CredentialFacts {
    /// The BE flag at registration.
    pub backup_eligible: bool,
    /// Attestation was verified at registration.
    pub attested: bool,
    /// The authenticator model's AAGUID (all zero when unknown).
    pub aaguid: [u8; 16],
    /// The attestation's root vouched for the AAGUID (the model) at
    /// registration: only then does it satisfy an AAGUID allow list.
    pub aaguid_vouched: bool,
    /// For an attested credential: the blocking status the FIDO metadata
    /// now reports for its model (`REVOKED`, a compromise, a UV bypass).
    pub model_blocked: Option<&'static str>,
}

/// An upstream risk assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RiskLevel {
    /// None given.
    #[default]
    Unspecified,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// What the gateway knows about the sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignInContext {
    /// Device compliance; `None` when unknown.
    pub device_compliant: Option<bool>,
    /// Trusted network; `None` when unknown.
    pub trusted_network: Option<bool>,
    /// Upstream risk.
    pub upstream_risk: RiskLevel,
    /// The user's flag (`SetUserRisk`), as this replica knows it.
    pub user_risk: RiskLevel,
}

/// The outcome of the signature-counter compare-and-set (WebAuthn L3 §7.2
/// step 22 (signCount)), done by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterCheck {
    /// Not checked (the assertion failed verification first).
    NotChecked,
    /// The count increased and was stored, or both counts are zero.
    Ok,
    /// The store could not be reached; the count advanced over what this
    /// replica last saw, and its update is queued.
    Deferred,
    /// The stored or received count is non-zero and the received count is
    /// not greater than the stored one.
    Regressed {
        /// The count stored before this assertion.
        stored: u32,
        /// The count the authenticator reported.
        received: u32,
    },
}

/// A decision with its score and reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The decision.
    pub decision: Decision,
    /// Risk score, 0-100.
    pub risk_score: u32,
    /// Every reason, hardest first: the first [`Verdict::failures`] are hard
    /// failures, the rest risk signals.
    pub reasons: Vec<Finding>,
    /// How many of `reasons` are hard failures (each alone denies).
    pub failures: usize,
    /// True when the failure is transient; never true for an allow.
    pub retryable: bool,
}

impl Verdict {
    /// A deny for failures found before verification could run (unknown RP,
    /// credential not found, store unavailable, invalid request).
    pub fn deny(mut reasons: Vec<Finding>) -> Self {
        reasons.sort_by_key(|f| f.code.severity());
        let retryable = reasons.iter().any(|f| f.code == ReasonCode::StoreUnavailable);
        Self { decision: Decision::Deny, risk_score: 100, failures: reasons.len(), reasons, retryable }
    }
}

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

    // assertd rule: the gateway's context as risk signals.
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
    // assertd rule: real-time remediation, the user's flag.
    match ctx.user_risk {
        RiskLevel::Medium => signal(Signal::UserRiskMedium, "the user is flagged at medium risk".into()),
        RiskLevel::High => signal(Signal::UserRiskHigh, "the user is flagged at high risk".into()),
        RiskLevel::Low | RiskLevel::Unspecified => {}
    }

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

/// §7.2 steps 13–14 / §7.1 steps 10–11 (crossOrigin, topOrigin): a cross-origin ceremony (with its top
/// origin, if any) is acceptable only where the profile expects to be
/// embedded. A profile that lists top origins accepts only those: a
/// cross-origin ceremony that names none is refused too. Top origins are
/// compared in full, and quoted truncated. `Ok` is the risk signal's text.
fn cross_origin(profile: &Profile, top: &Option<String>) -> Result<String, Finding> {
    let listed = |t: &str| profile.allowed_top_origins.iter().any(|a| a == t);
    let allowed = profile.allow_cross_origin
        && match top {
            Some(t) => listed(t),
            None => profile.allowed_top_origins.is_empty(),
        };
    match (allowed, top) {
        (true, Some(t)) => Ok(format!("cross-origin ceremony under top origin {:?}", truncate(t))),
        (true, None) => Ok("cross-origin ceremony".into()),
        (false, Some(t)) => Err(Finding::new(ReasonCode::CrossOrigin, format!("top origin {:?} is not allowed", truncate(t)))),
        (false, None) if profile.allow_cross_origin => {
            Err(Finding::new(ReasonCode::CrossOrigin, "the profile lists allowed top origins, and this cross-origin ceremony names none"))
        }
        (false, None) => Err(Finding::new(ReasonCode::CrossOrigin, "cross-origin ceremonies are not allowed")),
    }
}

/// Entra keyRestrictions: the AAGUID on the profile's allow list (and
/// vouched: an AAGUID no root vouched for never satisfies an allow list),
/// or not on its block list.
fn key_restriction(profile: &Profile, aaguid: &[u8; 16], vouched: bool) -> Option<Finding> {
    let k = profile.key_restrictions.as_ref()?;
    let uuid = format_uuid(aaguid);
    match k.enforcement_type {
        EnforcementType::Allow if k.permits(aaguid) && !vouched => Some(Finding::new(
            ReasonCode::AaguidNotAllowed,
            format!("AAGUID {uuid} is on the profile's allow list, but no attestation root vouched for this model"),
        )),
        _ if k.permits(aaguid) => None,
        EnforcementType::Allow => {
            Some(Finding::new(ReasonCode::AaguidNotAllowed, format!("AAGUID {uuid} is not on the profile's allow list")))
        }
        EnforcementType::Block => Some(Finding::new(ReasonCode::AaguidNotAllowed, format!("AAGUID {uuid} is on the profile's block list"))),
    }
}

/// Evaluates a verified registration (W3C WebAuthn L3 §7.1) under a
/// profile, before anything is stored: the verifier's failures, then the
/// profile's rules with the same reasons as at sign-in (user verification,
/// passkey type, legacy algorithms, cross-origin, AAGUID restrictions) and
/// attestation enforcement (`ATTESTATION_REQUIRED` for none,
/// `ATTESTATION_UNTRUSTED` for an attestation that verified but reached no
/// trust anchor). Allows with no reasons, or denies.
///
/// With FIDO metadata, the verifier's report carries what the metadata says
/// of the credential's AAGUID: a blocked model is refused
/// (`AUTHENTICATOR_STATUS_REVOKED`: refusing on a claim is always safe),
/// and a profile's `minimum_certification` needs an attestation whose root
/// vouched for a model certified at that level
/// (`AUTHENTICATOR_NOT_CERTIFIED`).
pub fn evaluate_registration(profile: &Profile, r: &Registration) -> Verdict {
    let mut hard: Vec<Finding> = r.failures.clone();
    if let Some(top) = &r.cross_origin
        && let Err(f) = cross_origin(profile, top)
    {
        hard.push(f);
    }
    if let Some(a) = r.authenticator {
        // §7.1 step 16 (UV): UV where the profile requires it.
        if profile.user_verification == UserVerification::Required && !a.flags.user_verified() {
            hard.push(Finding::new(ReasonCode::UserNotVerified, "user verification is required but the UV flag is not set"));
        }
        // §7.1 steps 18–19 (BE, BS), as Entra's passkeyTypes: BE says which type.
        let synced = a.flags.backup_eligible();
        if !(if synced { profile.passkey_types.synced } else { profile.passkey_types.device_bound }) {
            let t = if synced { "synced" } else { "device-bound" };
            hard.push(Finding::new(ReasonCode::PasskeyTypeNotAllowed, format!("{t} passkeys are not allowed by the profile")));
        }
    }
    if let Some(c) = &r.credential {
        // §7.1 step 20 (alg): the algorithm; legacy ones only where allowed.
        let alg = c.key.algorithm();
        if alg.is_legacy() && !profile.allow_legacy_algorithms {
            hard.push(Finding::new(
                ReasonCode::UnsupportedAlgorithm,
                format!("legacy algorithm {} is not allowed by the profile", alg.name()),
            ));
        }
    }
    // §7.1 step 24 (assess trust), as Entra's attestationEnforcement: only a statement
    // that verified is judged here; one that did not is already a failure.
    let vouched = r.attestation.as_ref().is_some_and(|a| a.aaguid_vouched);
    if let Some(a) = &r.attestation
        && let Some(kind) = a.kind
        && !a.trusted
        && profile.attestation_enforcement == AttestationEnforcement::RegistrationOnly
    {
        hard.push(match kind {
            AttestationType::None => {
                Finding::new(ReasonCode::AttestationRequired, "the profile requires attestation, and the authenticator gave none")
            }
            _ => Finding::new(
                ReasonCode::AttestationUntrusted,
                format!("the profile requires a trusted attestation: {}", a.untrusted_because.as_deref().unwrap_or("untrusted")),
            ),
        });
    }
    if let Some(c) = &r.credential
        && let Some(f) = key_restriction(profile, &c.aaguid, vouched)
    {
        hard.push(f);
    }
    // FIDO MDS3 status reports and certification.
    let report = r.attestation.as_ref();
    if let Some(status) = report.and_then(|a| a.metadata_blocked.as_deref()) {
        hard.push(Finding::new(
            ReasonCode::AuthenticatorStatusRevoked,
            format!("the FIDO metadata reports {status} for this authenticator model"),
        ));
    }
    if let Some(min) = profile.minimum_certification {
        // The verifier reports the certification of a vouched model only.
        let certification = report.and_then(|a| a.certification_status.as_deref()).filter(|_| vouched);
        let level = certification.and_then(assertd_verify::metadata::certification_rank);
        if level.is_none_or(|l| l < min.rank()) {
            let what = match (vouched, certification) {
                (false, _) => "no attestation root vouched for the model".to_owned(),
                (true, None) => "the metadata lists no FIDO certification for the model".to_owned(),
                (true, Some(c)) => format!("the model is {c}"),
            };
            hard.push(Finding::new(
                ReasonCode::AuthenticatorNotCertified,
                format!("the profile needs FIDO certification {min:?} or higher: {what}"),
            ));
        }
    }
    if hard.is_empty() {
        return Verdict { decision: Decision::Allow, risk_score: 0, reasons: Vec::new(), failures: 0, retryable: false };
    }
    Verdict::deny(hard)
}

impl Verdict {
    /// The hard failures among the reasons.
    pub fn failure_codes(&self) -> impl Iterator<Item = ReasonCode> + '_ {
        self.reasons[..self.failures].iter().map(|f| f.code)
    }
}

#[cfg(test)]
mod tests;
