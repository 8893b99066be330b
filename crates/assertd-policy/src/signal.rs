//! Risk signals: the one list that the weights, the config keys
//! (`risk.weights.<key>`), the reason codes and the signal table of docs/configuration.md
//! all derive from. Adding a signal means adding a variant here (and its
//! rule in `evaluate`); everything else follows or fails a test.

use assertd_verify::ReasonCode;
use serde::{Deserialize, Serialize};

/// A risk signal: a fact about a sign-in that adds its weight to the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A synced (backup-eligible) passkey.
    SyncedPasskey,
    /// A credential whose attestation was not verified at registration.
    UnattestedCredential,
    /// UV missing where the profile prefers it.
    UserNotVerified,
    /// A counter regression under `sign_count_regression = "step_up"` (at
    /// least the step-up threshold is charged).
    SignCountRegression,
    /// A cross-origin ceremony the profile allows.
    CrossOrigin,
    /// The gateway says the network is not trusted.
    UntrustedNetwork,
    /// The gateway says the device is not compliant.
    NoncompliantDevice,
    /// Upstream risk medium.
    UpstreamRiskMedium,
    /// Upstream risk high.
    UpstreamRiskHigh,
    /// A legacy algorithm (RS1) the profile allows.
    LegacyAlgorithm,
    /// A BE false-to-true change accepted under `allow_upgrade`.
    BackupEligibilityUpgrade,
    /// A counter checked against this replica's memory during a store
    /// outage.
    SignCountDeferred,
    /// The user is flagged at medium risk (`SetUserRisk`).
    UserRiskMedium,
    /// The user is flagged at high risk (`SetUserRisk`).
    UserRiskHigh,
}

impl Signal {
    /// Every signal, in the order of docs/configuration.md's table.
    pub const ALL: [Self; 14] = [
        Self::SyncedPasskey,
        Self::UnattestedCredential,
        Self::UserNotVerified,
        Self::SignCountRegression,
        Self::CrossOrigin,
        Self::UntrustedNetwork,
        Self::NoncompliantDevice,
        Self::UpstreamRiskMedium,
        Self::UpstreamRiskHigh,
        Self::LegacyAlgorithm,
        Self::BackupEligibilityUpgrade,
        Self::SignCountDeferred,
        Self::UserRiskMedium,
        Self::UserRiskHigh,
    ];

    /// Its key under `risk.weights` (the serde name).
    pub const fn key(self) -> &'static str {
        match self {
            Self::SyncedPasskey => "synced_passkey",
            Self::UnattestedCredential => "unattested_credential",
            Self::UserNotVerified => "user_not_verified",
            Self::SignCountRegression => "sign_count_regression",
            Self::CrossOrigin => "cross_origin",
            Self::UntrustedNetwork => "untrusted_network",
            Self::NoncompliantDevice => "noncompliant_device",
            Self::UpstreamRiskMedium => "upstream_risk_medium",
            Self::UpstreamRiskHigh => "upstream_risk_high",
            Self::LegacyAlgorithm => "legacy_algorithm",
            Self::BackupEligibilityUpgrade => "backup_eligibility_upgrade",
            Self::SignCountDeferred => "sign_count_deferred",
            Self::UserRiskMedium => "user_risk_medium",
            Self::UserRiskHigh => "user_risk_high",
        }
    }

    /// The reason code a verdict reports it with.
    pub const fn reason(self) -> ReasonCode {
        match self {
            Self::SyncedPasskey => ReasonCode::SyncedPasskey,
            Self::UnattestedCredential => ReasonCode::UnattestedCredential,
            Self::UserNotVerified => ReasonCode::UserNotVerified,
            Self::SignCountRegression => ReasonCode::SignCountRegression,
            Self::CrossOrigin => ReasonCode::CrossOrigin,
            Self::UntrustedNetwork => ReasonCode::UntrustedNetwork,
            Self::NoncompliantDevice => ReasonCode::NoncompliantDevice,
            Self::UpstreamRiskMedium => ReasonCode::UpstreamRiskMedium,
            Self::UpstreamRiskHigh => ReasonCode::UpstreamRiskHigh,
            Self::LegacyAlgorithm => ReasonCode::LegacyAlgorithm,
            Self::BackupEligibilityUpgrade => ReasonCode::BackupEligibilityChanged,
            Self::SignCountDeferred => ReasonCode::SignCountDeferred,
            Self::UserRiskMedium => ReasonCode::UserRiskMedium,
            Self::UserRiskHigh => ReasonCode::UserRiskHigh,
        }
    }

    /// Its weight in the built-in profile.
    pub const fn default_weight(self) -> u32 {
        match self {
            Self::SyncedPasskey | Self::UnattestedCredential | Self::BackupEligibilityUpgrade | Self::SignCountDeferred => 10,
            Self::UserNotVerified | Self::CrossOrigin | Self::UntrustedNetwork | Self::LegacyAlgorithm => 20,
            Self::NoncompliantDevice | Self::UpstreamRiskMedium => 30,
            Self::SignCountRegression => 50,
            Self::UpstreamRiskHigh => 60,
            // An administrator's flag: by default medium steps up (the
            // built-in step_up_at) and high denies (the built-in deny_at).
            Self::UserRiskMedium => 50,
            Self::UserRiskHigh => 90,
        }
    }
}

/// Each signal's weight (0–100), added to the score (capped at 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights([u32; Signal::ALL.len()]);

impl Default for Weights {
    fn default() -> Self {
        Self(Signal::ALL.map(Signal::default_weight))
    }
}

impl std::ops::Index<Signal> for Weights {
    type Output = u32;
    fn index(&self, s: Signal) -> &u32 {
        &self.0[s as usize]
    }
}

impl std::ops::IndexMut<Signal> for Weights {
    fn index_mut(&mut self, s: Signal) -> &mut u32 {
        &mut self.0[s as usize]
    }
}

impl Weights {
    /// The defaults, with `overrides` applied.
    pub fn with(overrides: impl IntoIterator<Item = (Signal, u32)>) -> Self {
        let mut w = Self::default();
        for (s, v) in overrides {
            w[s] = v;
        }
        w
    }

    /// Every signal with its weight, in [`Signal::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Signal, u32)> + '_ {
        Signal::ALL.iter().map(|s| (*s, self[*s]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_variant_at_its_index_and_keys_are_serde_names() {
        for (i, s) in Signal::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            let toml_key = serde_json::to_value(s).map(|v| v.as_str().map(str::to_owned));
            assert_eq!(toml_key.ok().flatten().as_deref(), Some(s.key()));
        }
    }
}
