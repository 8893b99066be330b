//! The profile's rules at registration (W3C WebAuthn L3 §7.1), before
//! anything is stored.

use crate::profile::{AttestationEnforcement, Profile, UserVerification};
use crate::rules::{cross_origin, key_restriction};
use crate::types::{Decision, Verdict};
use assertd_verify::Registration;
use assertd_verify::attestation::AttestationType;
use assertd_verify::{Finding, ReasonCode};

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

/// assertd rule (profile key `temporary_access_pass`): whether a
/// registration that redeems a temporary access pass may register this
/// credential; `None`: it may. BE at registration says whether the new key
/// is synced.
pub fn pass_registration(profile: &Profile, r: &Registration) -> Option<Finding> {
    use crate::profile::PassRegistration;
    let synced = r.authenticator.is_some_and(|a| a.flags.backup_eligible());
    match profile.temporary_access_pass {
        PassRegistration::Any => None,
        PassRegistration::DeviceBoundOnly if !synced => None,
        PassRegistration::DeviceBoundOnly => Some(Finding::new(
            ReasonCode::TemporaryAccessPassNotAllowed,
            "the profile lets a temporary access pass register device-bound passkeys only, and this one is synced (BE = 1)",
        )),
        PassRegistration::Never => {
            Some(Finding::new(ReasonCode::TemporaryAccessPassNotAllowed, "the profile lets no temporary access pass register a credential"))
        }
    }
}
