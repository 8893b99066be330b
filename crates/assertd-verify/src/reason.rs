//! Reason codes: the stable vocabulary of verdicts, shared by the verifier,
//! the policy engine, the API, logs and metric labels.

/// Why an assertion was denied, stepped up, or annotated. The numbers equal
/// the `assertd.v1.ReasonCode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(i32)]
pub enum ReasonCode {
    /// Signature does not verify.
    SignatureInvalid = 1,
    /// Signature is not well-formed for the algorithm.
    MalformedSignature = 2,
    /// clientDataJSON.challenge differs from the expected challenge.
    ChallengeMismatch = 3,
    /// clientDataJSON.origin is not allowed for the RP.
    OriginNotAllowed = 4,
    /// rpIdHash does not match, or the credential belongs to another RP.
    RpIdMismatch = 5,
    /// clientDataJSON.type is not "webauthn.get".
    WrongCeremonyType = 6,
    /// UP flag not set.
    UserNotPresent = 7,
    /// UV flag not set.
    UserNotVerified = 8,
    /// Unknown credential.
    CredentialNotFound = 9,
    /// Revoked credential.
    CredentialRevoked = 10,
    /// userHandle differs from the credential's.
    UserHandleMismatch = 11,
    /// clientDataJSON malformed.
    MalformedClientData = 12,
    /// authenticatorData malformed.
    MalformedAuthenticatorData = 13,
    /// Algorithm not supported or not allowed.
    UnsupportedAlgorithm = 14,
    /// Signature counter did not increase.
    SignCountRegression = 15,
    /// BE flag differs from registration.
    BackupEligibilityChanged = 16,
    /// BS set without BE.
    BackupStateInvalid = 17,
    /// Cross-origin ceremony.
    CrossOrigin = 18,
    /// RP not configured.
    RpUnknown = 19,
    /// Missing or oversized request field.
    InvalidRequest = 20,
    /// Credential store unreachable.
    StoreUnavailable = 21,
    /// Synced (multi-device) passkey.
    SyncedPasskey = 22,
    /// The profile does not allow this passkey type (device-bound / synced).
    PasskeyTypeNotAllowed = 23,
    /// The profile requires attestation verified at registration.
    AttestationRequired = 24,
    /// The profile's AAGUID restrictions refuse the authenticator model.
    AaguidNotAllowed = 25,
    /// The assertion names a profile that is not configured.
    ProfileUnknown = 26,
    /// The credential's attestation was not verified at registration.
    UnattestedCredential = 27,
    /// The gateway reports an untrusted network.
    UntrustedNetwork = 28,
    /// The gateway reports a non-compliant device.
    NoncompliantDevice = 29,
    /// Upstream risk is medium.
    UpstreamRiskMedium = 30,
    /// Upstream risk is high.
    UpstreamRiskHigh = 31,
    /// A legacy algorithm (RS1) the profile allows.
    LegacyAlgorithm = 32,
    /// The store was unreachable: the counter was checked against this
    /// replica's memory and its update queued.
    SignCountDeferred = 33,
    /// The caller's grant does not include the assertion's relying party.
    RpNotAuthorized = 34,
    /// The caller may not choose the profile the assertion names (its
    /// grant's `profiles`, or the RP's `allowed_profiles`).
    ProfileNotAuthorized = 35,
}

impl ReasonCode {
    /// Every code, in numeric order.
    pub const ALL: [ReasonCode; 35] = [
        Self::SignatureInvalid,
        Self::MalformedSignature,
        Self::ChallengeMismatch,
        Self::OriginNotAllowed,
        Self::RpIdMismatch,
        Self::WrongCeremonyType,
        Self::UserNotPresent,
        Self::UserNotVerified,
        Self::CredentialNotFound,
        Self::CredentialRevoked,
        Self::UserHandleMismatch,
        Self::MalformedClientData,
        Self::MalformedAuthenticatorData,
        Self::UnsupportedAlgorithm,
        Self::SignCountRegression,
        Self::BackupEligibilityChanged,
        Self::BackupStateInvalid,
        Self::CrossOrigin,
        Self::RpUnknown,
        Self::InvalidRequest,
        Self::StoreUnavailable,
        Self::SyncedPasskey,
        Self::PasskeyTypeNotAllowed,
        Self::AttestationRequired,
        Self::AaguidNotAllowed,
        Self::ProfileUnknown,
        Self::UnattestedCredential,
        Self::UntrustedNetwork,
        Self::NoncompliantDevice,
        Self::UpstreamRiskMedium,
        Self::UpstreamRiskHigh,
        Self::LegacyAlgorithm,
        Self::SignCountDeferred,
        Self::RpNotAuthorized,
        Self::ProfileNotAuthorized,
    ];

    /// The proto enum value.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The stable upper-snake name, as in the proto without its prefix; used
    /// in logs and as the metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::MalformedSignature => "MALFORMED_SIGNATURE",
            Self::ChallengeMismatch => "CHALLENGE_MISMATCH",
            Self::OriginNotAllowed => "ORIGIN_NOT_ALLOWED",
            Self::RpIdMismatch => "RP_ID_MISMATCH",
            Self::WrongCeremonyType => "WRONG_CEREMONY_TYPE",
            Self::UserNotPresent => "USER_NOT_PRESENT",
            Self::UserNotVerified => "USER_NOT_VERIFIED",
            Self::CredentialNotFound => "CREDENTIAL_NOT_FOUND",
            Self::CredentialRevoked => "CREDENTIAL_REVOKED",
            Self::UserHandleMismatch => "USER_HANDLE_MISMATCH",
            Self::MalformedClientData => "MALFORMED_CLIENT_DATA",
            Self::MalformedAuthenticatorData => "MALFORMED_AUTHENTICATOR_DATA",
            Self::UnsupportedAlgorithm => "UNSUPPORTED_ALGORITHM",
            Self::SignCountRegression => "SIGN_COUNT_REGRESSION",
            Self::BackupEligibilityChanged => "BACKUP_ELIGIBILITY_CHANGED",
            Self::BackupStateInvalid => "BACKUP_STATE_INVALID",
            Self::CrossOrigin => "CROSS_ORIGIN",
            Self::RpUnknown => "RP_UNKNOWN",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::StoreUnavailable => "STORE_UNAVAILABLE",
            Self::SyncedPasskey => "SYNCED_PASSKEY",
            Self::PasskeyTypeNotAllowed => "PASSKEY_TYPE_NOT_ALLOWED",
            Self::AttestationRequired => "ATTESTATION_REQUIRED",
            Self::AaguidNotAllowed => "AAGUID_NOT_ALLOWED",
            Self::ProfileUnknown => "PROFILE_UNKNOWN",
            Self::UnattestedCredential => "UNATTESTED_CREDENTIAL",
            Self::UntrustedNetwork => "UNTRUSTED_NETWORK",
            Self::NoncompliantDevice => "NONCOMPLIANT_DEVICE",
            Self::UpstreamRiskMedium => "UPSTREAM_RISK_MEDIUM",
            Self::UpstreamRiskHigh => "UPSTREAM_RISK_HIGH",
            Self::LegacyAlgorithm => "LEGACY_ALGORITHM",
            Self::SignCountDeferred => "SIGN_COUNT_DEFERRED",
            Self::RpNotAuthorized => "RP_NOT_AUTHORIZED",
            Self::ProfileNotAuthorized => "PROFILE_NOT_AUTHORIZED",
        }
    }

    /// Severity rank for ordering a verdict's reasons, hardest first: lower
    /// is harder. Request and lookup failures (nothing could be verified)
    /// come first, then cryptographic failures, then ceremony binding, then
    /// authenticator state, then risk annotations.
    pub fn severity(self) -> u8 {
        match self {
            Self::InvalidRequest => 0,
            Self::RpNotAuthorized => 1,
            Self::RpUnknown => 2,
            Self::ProfileUnknown => 3,
            Self::ProfileNotAuthorized => 4,
            Self::StoreUnavailable => 5,
            Self::CredentialNotFound => 6,
            Self::CredentialRevoked => 7,
            Self::UnsupportedAlgorithm => 8,
            Self::MalformedClientData => 9,
            Self::MalformedAuthenticatorData => 10,
            Self::MalformedSignature => 11,
            Self::SignatureInvalid => 12,
            Self::RpIdMismatch => 13,
            Self::OriginNotAllowed => 14,
            Self::ChallengeMismatch => 15,
            Self::WrongCeremonyType => 16,
            Self::UserHandleMismatch => 17,
            Self::UserNotPresent => 18,
            Self::BackupStateInvalid => 19,
            Self::BackupEligibilityChanged => 20,
            Self::SignCountRegression => 21,
            Self::PasskeyTypeNotAllowed => 22,
            Self::AttestationRequired => 23,
            Self::AaguidNotAllowed => 24,
            Self::UserNotVerified => 25,
            Self::CrossOrigin => 26,
            Self::UpstreamRiskHigh => 27,
            Self::UpstreamRiskMedium => 28,
            Self::NoncompliantDevice => 29,
            Self::UntrustedNetwork => 30,
            Self::LegacyAlgorithm => 31,
            Self::UnattestedCredential => 32,
            Self::SyncedPasskey => 33,
            Self::SignCountDeferred => 34,
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason with its human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The stable code.
    pub code: ReasonCode,
    /// Detail for people. Never holds signatures or client data.
    pub message: String,
}

impl Finding {
    /// A finding with a message.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_ranks_are_distinct() {
        let mut nums: Vec<i32> = ReasonCode::ALL.iter().map(|c| c.as_i32()).collect();
        nums.dedup();
        assert_eq!(nums, (1..=35).collect::<Vec<_>>());
        let mut names: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ReasonCode::ALL.len());
        let mut ranks: Vec<u8> = ReasonCode::ALL.iter().map(|c| c.severity()).collect();
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), ReasonCode::ALL.len());
    }
}
