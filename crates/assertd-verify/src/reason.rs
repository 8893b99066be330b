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
    /// The gateway listed the credentials it offered
    /// (`allowed_credential_ids`) and this one is not among them.
    CredentialNotAllowed = 36,
    /// A server-issued challenge past its expiry (plus the allowed skew).
    ChallengeExpired = 37,
    /// A server-issued challenge that does not verify: malformed, tampered,
    /// an unknown key id, or issued for another RP or user.
    ChallengeInvalid = 38,
    /// A server-issued challenge already used by a final verdict.
    ChallengeReplayed = 39,
    /// The user is flagged at medium risk (`SetUserRisk`).
    UserRiskMedium = 40,
    /// The user is flagged at high risk (`SetUserRisk`).
    UserRiskHigh = 41,
    /// The attestation statement does not verify: a bad signature, a
    /// malformed statement or certificate, or an attestation certificate
    /// that contradicts the authenticator data (AAGUID, nonce).
    AttestationInvalid = 42,
    /// The attestation verified, but its certificate chain does not reach a
    /// configured trust anchor (or it is self attestation) while the profile
    /// requires a trusted attestation.
    AttestationUntrusted = 43,
    /// The attestation statement format is not one assertd verifies.
    AttestationFormatUnsupported = 44,
    /// A credential with this id is already registered for the RP.
    CredentialAlreadyRegistered = 45,
    /// The authenticator model's metadata status reports a compromise or
    /// revocation.
    AuthenticatorStatusRevoked = 46,
    /// The authenticator model's certification level is below the
    /// profile's minimum.
    AuthenticatorNotCertified = 47,
    /// The FIDO metadata in force is more than a day past its nextUpdate
    /// and `[metadata] when_stale = "refuse_registrations"`: revocations
    /// reported since may be unknown, so nothing registers until fresh
    /// metadata is loaded.
    MetadataStale = 48,
    /// A temporary access pass that is not one of the user's: mistyped, issued
    /// to another user or relying party, pruned, or passes are not configured.
    TemporaryAccessPassInvalid = 49,
    /// A temporary access pass past its expiry.
    TemporaryAccessPassExpired = 50,
    /// A temporary access pass revoked, or replaced by a newer pass of the
    /// same user.
    TemporaryAccessPassRevoked = 51,
    /// A one-time temporary access pass already redeemed.
    TemporaryAccessPassUsed = 52,
    /// The profile does not let a temporary access pass register this
    /// credential (`temporary_access_pass`).
    TemporaryAccessPassNotAllowed = 53,
    /// The verdict rests on a temporary access pass (redeemed by a sign-in or
    /// a registration): the user was vetted by whoever issued it.
    TemporaryAccessPass = 54,
    /// The user was flagged at risk, and this passkey sign-in met the
    /// profile's remediation bar: allowed, and the flag cleared.
    UserRiskRemediated = 55,
}

impl ReasonCode {
    /// Every code, in numeric order.
    pub const ALL: [ReasonCode; 55] = [
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
        Self::CredentialNotAllowed,
        Self::ChallengeExpired,
        Self::ChallengeInvalid,
        Self::ChallengeReplayed,
        Self::UserRiskMedium,
        Self::UserRiskHigh,
        Self::AttestationInvalid,
        Self::AttestationUntrusted,
        Self::AttestationFormatUnsupported,
        Self::CredentialAlreadyRegistered,
        Self::AuthenticatorStatusRevoked,
        Self::AuthenticatorNotCertified,
        Self::MetadataStale,
        Self::TemporaryAccessPassInvalid,
        Self::TemporaryAccessPassExpired,
        Self::TemporaryAccessPassRevoked,
        Self::TemporaryAccessPassUsed,
        Self::TemporaryAccessPassNotAllowed,
        Self::TemporaryAccessPass,
        Self::UserRiskRemediated,
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
            Self::CredentialNotAllowed => "CREDENTIAL_NOT_ALLOWED",
            Self::ChallengeExpired => "CHALLENGE_EXPIRED",
            Self::ChallengeInvalid => "CHALLENGE_INVALID",
            Self::ChallengeReplayed => "CHALLENGE_REPLAYED",
            Self::UserRiskMedium => "USER_RISK_MEDIUM",
            Self::UserRiskHigh => "USER_RISK_HIGH",
            Self::AttestationInvalid => "ATTESTATION_INVALID",
            Self::AttestationUntrusted => "ATTESTATION_UNTRUSTED",
            Self::AttestationFormatUnsupported => "ATTESTATION_FORMAT_UNSUPPORTED",
            Self::CredentialAlreadyRegistered => "CREDENTIAL_ALREADY_REGISTERED",
            Self::AuthenticatorStatusRevoked => "AUTHENTICATOR_STATUS_REVOKED",
            Self::AuthenticatorNotCertified => "AUTHENTICATOR_NOT_CERTIFIED",
            Self::MetadataStale => "METADATA_STALE",
            Self::TemporaryAccessPassInvalid => "TEMPORARY_ACCESS_PASS_INVALID",
            Self::TemporaryAccessPassExpired => "TEMPORARY_ACCESS_PASS_EXPIRED",
            Self::TemporaryAccessPassRevoked => "TEMPORARY_ACCESS_PASS_REVOKED",
            Self::TemporaryAccessPassUsed => "TEMPORARY_ACCESS_PASS_USED",
            Self::TemporaryAccessPassNotAllowed => "TEMPORARY_ACCESS_PASS_NOT_ALLOWED",
            Self::TemporaryAccessPass => "TEMPORARY_ACCESS_PASS",
            Self::UserRiskRemediated => "USER_RISK_REMEDIATED",
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
            Self::CredentialNotAllowed => 5,
            Self::AuthenticatorStatusRevoked => 6,
            Self::MetadataStale => 7,
            Self::StoreUnavailable => 8,
            Self::CredentialNotFound => 9,
            Self::CredentialRevoked => 10,
            Self::CredentialAlreadyRegistered => 11,
            Self::UnsupportedAlgorithm => 12,
            Self::MalformedClientData => 13,
            Self::MalformedAuthenticatorData => 14,
            Self::AttestationFormatUnsupported => 15,
            Self::MalformedSignature => 16,
            Self::SignatureInvalid => 17,
            Self::AttestationInvalid => 18,
            Self::AttestationUntrusted => 19,
            Self::RpIdMismatch => 20,
            Self::OriginNotAllowed => 21,
            Self::ChallengeMismatch => 22,
            Self::ChallengeInvalid => 23,
            Self::ChallengeExpired => 24,
            Self::ChallengeReplayed => 25,
            Self::TemporaryAccessPassInvalid => 26,
            Self::TemporaryAccessPassExpired => 27,
            Self::TemporaryAccessPassRevoked => 28,
            Self::TemporaryAccessPassUsed => 29,
            Self::WrongCeremonyType => 30,
            Self::UserHandleMismatch => 31,
            Self::UserNotPresent => 32,
            Self::BackupStateInvalid => 33,
            Self::BackupEligibilityChanged => 34,
            Self::SignCountRegression => 35,
            Self::PasskeyTypeNotAllowed => 36,
            Self::AttestationRequired => 37,
            Self::AaguidNotAllowed => 38,
            Self::AuthenticatorNotCertified => 39,
            Self::TemporaryAccessPassNotAllowed => 40,
            Self::UserNotVerified => 41,
            Self::CrossOrigin => 42,
            Self::UserRiskHigh => 43,
            Self::UserRiskMedium => 44,
            Self::UpstreamRiskHigh => 45,
            Self::UpstreamRiskMedium => 46,
            Self::NoncompliantDevice => 47,
            Self::UntrustedNetwork => 48,
            Self::LegacyAlgorithm => 49,
            Self::UnattestedCredential => 50,
            Self::SyncedPasskey => 51,
            Self::TemporaryAccessPass => 52,
            Self::SignCountDeferred => 53,
            Self::UserRiskRemediated => 54,
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
        assert_eq!(nums, (1..=i32::try_from(ReasonCode::ALL.len()).unwrap_or(0)).collect::<Vec<_>>());
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
