//! Passkey profiles, in the vocabulary of Microsoft Entra ID passkey profiles
//! (Graph `passkeyProfile`): which passkey types are allowed, attestation
//! enforcement, AAGUID key restrictions, user verification, plus what each
//! risk signal costs and where the thresholds are.

use crate::signal::Weights;
use serde::{Deserialize, Serialize};

/// Whether user verification is required (WebAuthn
/// `UserVerificationRequirement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerification {
    /// UV missing denies (`USER_NOT_VERIFIED`).
    Required,
    /// UV missing is a risk signal.
    #[default]
    Preferred,
    /// UV is not looked at.
    Discouraged,
}

/// What a signature-counter regression does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionAction {
    /// Deny (`SIGN_COUNT_REGRESSION`), the default.
    #[default]
    Deny,
    /// Step up: the regression is a risk signal weighing at least the
    /// step-up threshold.
    StepUp,
}

/// What a change of the BE flag since registration does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupEligibilityChange {
    /// Deny any change (the spec's rule), the default.
    #[default]
    Deny,
    /// Accept a one-way false-to-true change once and record it, for
    /// credentials migrated from stores that did not keep BE. True-to-false
    /// still denies.
    AllowUpgrade,
}

/// A passkey type (Entra `passkeyTypes` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyType {
    /// BE = 0: a single-device credential, e.g. a security key.
    DeviceBound,
    /// BE = 1: a multi-device credential, e.g. a synced platform passkey.
    Synced,
}

/// Which passkey types a profile accepts (Entra `passkeyTypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasskeyTypes {
    /// Single-device credentials (BE = 0), e.g. security keys.
    pub device_bound: bool,
    /// Multi-device credentials (BE = 1), e.g. synced platform passkeys.
    pub synced: bool,
}

impl PasskeyTypes {
    /// The types in a list.
    pub fn from_list(types: &[PasskeyType]) -> Self {
        Self { device_bound: types.contains(&PasskeyType::DeviceBound), synced: types.contains(&PasskeyType::Synced) }
    }

    /// The accepted types as a list.
    pub fn list(self) -> Vec<PasskeyType> {
        [(self.device_bound, PasskeyType::DeviceBound), (self.synced, PasskeyType::Synced)]
            .into_iter()
            .filter_map(|(on, t)| on.then_some(t))
            .collect()
    }
}

impl Default for PasskeyTypes {
    fn default() -> Self {
        Self { device_bound: true, synced: true }
    }
}

/// Attestation enforcement (Entra `attestationEnforcement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationEnforcement {
    /// Unattested credentials are accepted (a risk signal).
    #[default]
    Disabled,
    /// Credentials whose attestation was not verified at registration are
    /// denied (`ATTESTATION_REQUIRED`).
    RegistrationOnly,
}

/// What a user's risk flag (`SetUserRisk`) does to their sign-ins, per
/// level (profile key `user_risk_remediation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationMode {
    /// Denied while flagged (the flag is a hard failure).
    Deny,
    /// Stepped up while flagged: never allowed; the flag alone never denies.
    StepUp,
    /// A sign-in with a passkey that meets the remediation bar is allowed
    /// and clears the flag (`USER_RISK_REMEDIATED`); any other sign-in
    /// carries the flag as a weighted signal (by default medium steps up,
    /// high denies). Entra's "require risk remediation" for passwordless
    /// users.
    #[default]
    Passkey,
}

/// The profile's rules for flagged users: a mode per level, and the bar a
/// credential must meet to remediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskRemediation {
    /// For users flagged medium.
    pub medium: RemediationMode,
    /// For users flagged high.
    pub high: RemediationMode,
    /// The sign-in must have UV.
    pub requires_uv: bool,
    /// The credential's type must be one of these.
    pub passkey_types: PasskeyTypes,
    /// The credential's attestation must have been verified at
    /// registration.
    pub requires_attestation: bool,
}

impl Default for RiskRemediation {
    fn default() -> Self {
        Self {
            medium: RemediationMode::Passkey,
            high: RemediationMode::Passkey,
            requires_uv: true,
            passkey_types: PasskeyTypes::default(),
            requires_attestation: false,
        }
    }
}

/// What a temporary access pass may register (Entra: a pass lets a vetted
/// user onboard a passwordless method; the profile's own rules apply on
/// top).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassRegistration {
    /// Any credential the profile would register anyway.
    #[default]
    Any,
    /// Device-bound credentials only (BE = 0): the pass cannot put the new
    /// key in a cloud keychain.
    DeviceBoundOnly,
    /// None: registrations with a pass are refused.
    Never,
}

/// Whether the AAGUID list allows or blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforcementType {
    /// Only listed AAGUIDs are accepted.
    Allow,
    /// Listed AAGUIDs are refused.
    Block,
}

/// A FIDO certification level (FIDO MDS3 `FIDO_CERTIFIED_*` statuses),
/// lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificationLevel {
    /// `FIDO_CERTIFIED_L1` (or plain `FIDO_CERTIFIED`).
    L1,
    /// `FIDO_CERTIFIED_L1plus`.
    L1plus,
    /// `FIDO_CERTIFIED_L2`.
    L2,
    /// `FIDO_CERTIFIED_L2plus`.
    L2plus,
    /// `FIDO_CERTIFIED_L3`.
    L3,
    /// `FIDO_CERTIFIED_L3plus`.
    L3plus,
}

impl CertificationLevel {
    /// Its rank, as `assertd_verify::metadata::certification_rank` counts.
    pub fn rank(self) -> usize {
        self as usize
    }
}

/// AAGUID key restrictions (Entra `keyRestrictions`), when enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRestrictions {
    /// Allow list or block list.
    pub enforcement_type: EnforcementType,
    /// The AAGUIDs.
    pub aaguids: Vec<[u8; 16]>,
}

impl KeyRestrictions {
    /// True when `aaguid` passes the restriction.
    pub fn permits(&self, aaguid: &[u8; 16]) -> bool {
        let listed = self.aaguids.contains(aaguid);
        match self.enforcement_type {
            EnforcementType::Allow => listed,
            EnforcementType::Block => !listed,
        }
    }
}

/// A passkey profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Allowed passkey types.
    pub passkey_types: PasskeyTypes,
    /// Attestation enforcement.
    pub attestation_enforcement: AttestationEnforcement,
    /// AAGUID restrictions; `None` when not enforced.
    pub key_restrictions: Option<KeyRestrictions>,
    /// UV requirement.
    pub user_verification: UserVerification,
    /// Accept RS1 (as a risk signal).
    pub allow_legacy_algorithms: bool,
    /// Accept `crossOrigin: true` (as a risk signal).
    pub allow_cross_origin: bool,
    /// Top origins accepted in `topOrigin` when cross-origin is allowed.
    pub allowed_top_origins: Vec<String>,
    /// What a counter regression does.
    pub sign_count_regression: RegressionAction,
    /// What a BE change does.
    pub backup_eligibility_change: BackupEligibilityChange,
    /// Registration: the lowest FIDO certification level of the
    /// authenticator model (from the metadata) a new credential may have;
    /// `None`: not checked.
    pub minimum_certification: Option<CertificationLevel>,
    /// Score at or above which the decision is step-up.
    pub step_up_at: u32,
    /// Score at or above which the decision is deny.
    pub deny_at: u32,
    /// Signal weights.
    pub weights: Weights,
    /// How its ceremonies are asked for (the options `BeginRegistration`
    /// and `BeginAuthentication` build).
    pub ceremonies: crate::ceremonies::Ceremonies,
    /// What a temporary access pass may register.
    pub temporary_access_pass: PassRegistration,
    /// What a user's risk flag does, and how a passkey clears it.
    pub user_risk_remediation: RiskRemediation,
}

/// Default step-up threshold.
pub const DEFAULT_STEP_UP_AT: u32 = 50;
/// Default deny threshold.
pub const DEFAULT_DENY_AT: u32 = 90;

impl Default for Profile {
    /// The built-in profile: both passkey types, attestation not enforced,
    /// no AAGUID restrictions, UV preferred, counter regression and BE
    /// changes deny, no cross-origin, no legacy algorithms.
    fn default() -> Self {
        Self {
            passkey_types: PasskeyTypes::default(),
            attestation_enforcement: AttestationEnforcement::default(),
            key_restrictions: None,
            user_verification: UserVerification::default(),
            allow_legacy_algorithms: false,
            allow_cross_origin: false,
            allowed_top_origins: Vec::new(),
            sign_count_regression: RegressionAction::default(),
            backup_eligibility_change: BackupEligibilityChange::default(),
            minimum_certification: None,
            step_up_at: DEFAULT_STEP_UP_AT,
            deny_at: DEFAULT_DENY_AT,
            weights: Weights::default(),
            ceremonies: crate::ceremonies::Ceremonies::default(),
            temporary_access_pass: PassRegistration::default(),
            user_risk_remediation: RiskRemediation::default(),
        }
    }
}

impl Profile {
    /// True when this profile accepts recording a BE change from
    /// `registered` to `reported`: only false to true, under `allow_upgrade`.
    pub fn accepts_backup_eligibility_upgrade(&self, registered: bool, reported: bool) -> bool {
        self.backup_eligibility_change == BackupEligibilityChange::AllowUpgrade && !registered && reported
    }
}
