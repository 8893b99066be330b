//! Passkey profiles: what an RP accepts and what each risk signal costs.

/// Whether user verification is required (WebAuthn
/// `UserVerificationRequirement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegressionAction {
    /// Deny (`SIGN_COUNT_REGRESSION`), the default.
    #[default]
    Deny,
    /// Step up: the regression is a risk signal weighing at least the
    /// step-up threshold.
    StepUp,
}

/// Risk weight of each signal, added to the score (capped at 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// A synced (backup-eligible) passkey.
    pub synced_passkey: u32,
    /// UV missing where it is preferred.
    pub user_not_verified: u32,
    /// An allowed cross-origin ceremony.
    pub cross_origin: u32,
    /// A counter regression under `RegressionAction::StepUp`.
    pub sign_count_regression: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Self { synced_passkey: 0, user_not_verified: 20, cross_origin: 20, sign_count_regression: 50 }
    }
}

/// A passkey profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// UV requirement.
    pub user_verification: UserVerification,
    /// Accept `crossOrigin: true` (as a risk signal).
    pub allow_cross_origin: bool,
    /// Top origins accepted in `topOrigin` when cross-origin is allowed.
    pub allowed_top_origins: Vec<String>,
    /// Accept RS1.
    pub allow_legacy_algorithms: bool,
    /// What a counter regression does.
    pub sign_count_regression: RegressionAction,
    /// Score at or above which the decision is step-up.
    pub step_up_at: u32,
    /// Score at or above which the decision is deny.
    pub deny_at: u32,
    /// Signal weights.
    pub weights: Weights,
}

impl Default for Profile {
    /// The built-in profile: both passkey types, UV preferred, counter
    /// regression denies, no cross-origin, no legacy algorithms.
    fn default() -> Self {
        Self {
            user_verification: UserVerification::default(),
            allow_cross_origin: false,
            allowed_top_origins: Vec::new(),
            allow_legacy_algorithms: false,
            sign_count_regression: RegressionAction::default(),
            step_up_at: 50,
            deny_at: 90,
            weights: Weights::default(),
        }
    }
}
