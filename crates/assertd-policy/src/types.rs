//! What policy takes in and gives out: the credential's and the sign-in's
//! facts, the counter check, the decision and the verdict.

use assertd_verify::{Finding, ReasonCode};

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
    /// When the credential was registered (Unix ms): a credential
    /// registered after the user's flag was set never remediates it.
    pub created_at_ms: i64,
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
    /// When that flag was set (Unix ms; 0 when there is none).
    pub user_risk_set_at_ms: i64,
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

impl Verdict {
    /// The hard failures among the reasons.
    pub fn failure_codes(&self) -> impl Iterator<Item = ReasonCode> + '_ {
        self.reasons[..self.failures].iter().map(|f| f.code)
    }
}
