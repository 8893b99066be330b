//! Passkey profiles in the config file (`[profiles.NAME]`), in the vocabulary
//! of Microsoft Entra ID passkey profiles. The values are the policy crate's
//! own enums (with serde), so a setting has one definition; every omitted
//! key takes its documented default when the profile is resolved.

use super::invalid::Invalid;
use assertd_policy::{
    Attachment, AttestationEnforcement, BackupEligibilityChange, Ceremonies, CertificationLevel, EnforcementType, Hint, KeyRestrictions,
    PassRegistration, PasskeyType, PasskeyTypes, Profile, RegressionAction, RemediationMode, ResidentKey, RiskRemediation, Signal,
    UserVerification, Weights,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `key_restrictions = { enforced, enforcement_type, aaguids }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRestrictionsConfig {
    /// Whether the list applies.
    #[serde(default)]
    pub enforced: bool,
    /// `allow` or `block`.
    pub enforcement_type: EnforcementType,
    /// AAGUIDs as UUID strings.
    #[serde(default)]
    pub aaguids: Vec<String>,
}

/// `user_risk_remediation`: one mode for both levels, or one per level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RemediationConfig {
    /// `"deny"`, `"step_up"` or `"passkey"` for medium and high.
    Both(RemediationMode),
    /// `{ medium = "...", high = "..." }` (an omitted level: `"passkey"`).
    PerLevel(RemediationLevels),
}

/// `user_risk_remediation = { medium, high }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationLevels {
    /// For users flagged medium.
    pub medium: Option<RemediationMode>,
    /// For users flagged high.
    pub high: Option<RemediationMode>,
}

/// `[profiles.NAME.risk]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    /// Score at or above which the decision is step-up.
    pub step_up_at: Option<u32>,
    /// Score at or above which the decision is deny.
    pub deny_at: Option<u32>,
    /// Signal weights by `Signal` key; an unknown key is an error.
    #[serde(default)]
    pub weights: BTreeMap<Signal, u32>,
}

/// `[profiles.NAME]`: every key optional, defaults documented in docs/configuration.md.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Allowed passkey types (default both).
    pub passkey_types: Option<Vec<PasskeyType>>,
    /// Attestation enforcement (default `disabled`).
    pub attestation_enforcement: Option<AttestationEnforcement>,
    /// AAGUID restrictions (default none).
    pub key_restrictions: Option<KeyRestrictionsConfig>,
    /// UV requirement (default `preferred`).
    pub user_verification: Option<UserVerification>,
    /// Accept RS1 (default false).
    pub allow_legacy_algorithms: Option<bool>,
    /// Accept cross-origin ceremonies (default false).
    pub allow_cross_origin: Option<bool>,
    /// Accepted top origins (default none).
    pub allowed_top_origins: Option<Vec<String>>,
    /// Counter regression (default `deny`).
    pub sign_count_regression: Option<RegressionAction>,
    /// BE change (default `deny`).
    pub backup_eligibility_change: Option<BackupEligibilityChange>,
    /// Registration: the lowest FIDO certification level of the model
    /// (`l1` ... `l3plus`; needs `[metadata]`); default none.
    pub minimum_certification: Option<CertificationLevel>,
    /// Risk thresholds and weights.
    pub risk: Option<RiskConfig>,
    /// Options: `residentKey` asked at registration (`discouraged`,
    /// `preferred`, `required`; default `preferred`).
    pub resident_key: Option<ResidentKey>,
    /// Options: `authenticatorAttachment` asked at registration
    /// (`platform`, `cross-platform`); default none (any).
    pub authenticator_attachment: Option<Attachment>,
    /// Options: `hints` (`security-key`, `client-device`, `hybrid`), in
    /// order; default: `["security-key"]` for a device-bound-only profile,
    /// else none.
    pub hints: Option<Vec<Hint>>,
    /// Options: ask for `enterprise` attestation (managed authenticators
    /// that list the relying party); default false.
    pub enterprise_attestation: Option<bool>,
    /// What a temporary access pass may register (`any`,
    /// `device_bound_only`, `never`; default `any`: what the profile
    /// registers anyway).
    pub temporary_access_pass: Option<PassRegistration>,
    /// What a user's risk flag does to their sign-ins (`deny`, `step_up`,
    /// `passkey`; or per level `{ medium, high }`); default `passkey` for
    /// both.
    pub user_risk_remediation: Option<RemediationConfig>,
    /// The remediation bar: UV (default true).
    pub remediation_requires_uv: Option<bool>,
    /// The remediation bar: passkey types (default the profile's own).
    pub remediation_passkey_types: Option<Vec<PasskeyType>>,
    /// The remediation bar: attestation verified at registration (default
    /// false).
    pub remediation_requires_attestation: Option<bool>,
}

/// Parses "cb69481e-8ff7-4039-93ec-0a2729a154a8".
pub use assertd_verify::metadata::parse_aaguid as parse_uuid;

pub use assertd_policy::format_uuid;

impl ProfileConfig {
    /// Resolves the profile, filling defaults; errors name the key (relative
    /// to the profile).
    pub fn resolve(&self) -> Result<Profile, Invalid> {
        let d = Profile::default();
        let passkey_types = match &self.passkey_types {
            None => d.passkey_types,
            Some(t) if t.is_empty() => return Err(Invalid::new("passkey_types", "must list device_bound, synced or both")),
            Some(t) => PasskeyTypes::from_list(t),
        };
        let key_restrictions = match &self.key_restrictions {
            Some(k) if k.enforced => {
                let mut aaguids = Vec::with_capacity(k.aaguids.len());
                for (i, a) in k.aaguids.iter().enumerate() {
                    aaguids.push(
                        parse_uuid(a)
                            .ok_or_else(|| Invalid::new(format!("key_restrictions.aaguids[{i}]"), format!("{a:?} is not a UUID")))?,
                    );
                }
                if aaguids.is_empty() && k.enforcement_type == EnforcementType::Allow {
                    return Err(Invalid::new(
                        "key_restrictions.aaguids",
                        "an enforced allow list cannot be empty: it would refuse every credential",
                    ));
                }
                Some(KeyRestrictions { enforcement_type: k.enforcement_type, aaguids })
            }
            _ => None,
        };
        let allow_cross_origin = self.allow_cross_origin.unwrap_or(d.allow_cross_origin);
        let allowed_top_origins = self.allowed_top_origins.clone().unwrap_or_default();
        if !allowed_top_origins.is_empty() && !allow_cross_origin {
            return Err(Invalid::new("allowed_top_origins", "needs allow_cross_origin = true"));
        }
        let risk = self.risk.clone().unwrap_or_default();
        let weights = Weights::with(risk.weights.iter().map(|(s, w)| (*s, *w)));
        if let Some((s, w)) = weights.iter().find(|(_, w)| *w > 100) {
            return Err(Invalid::new(format!("risk.weights.{}", s.key()), format!("{w} is above 100")));
        }
        if weights[Signal::UpstreamRiskHigh] < weights[Signal::UpstreamRiskMedium] {
            return Err(Invalid::new("risk.weights.upstream_risk_high", "must be at least upstream_risk_medium"));
        }
        if weights[Signal::UserRiskHigh] < weights[Signal::UserRiskMedium] {
            return Err(Invalid::new("risk.weights.user_risk_high", "must be at least user_risk_medium"));
        }
        let step_up_at = risk.step_up_at.unwrap_or(d.step_up_at);
        let deny_at = risk.deny_at.unwrap_or(d.deny_at);
        if step_up_at > deny_at {
            return Err(Invalid::new("risk.step_up_at", format!("{step_up_at} is above deny_at {deny_at}")));
        }
        if deny_at > 101 {
            return Err(Invalid::new("risk.deny_at", "must be at most 101 (101: the score never denies)"));
        }
        Ok(Profile {
            passkey_types,
            attestation_enforcement: self.attestation_enforcement.unwrap_or(d.attestation_enforcement),
            key_restrictions,
            user_verification: self.user_verification.unwrap_or(d.user_verification),
            allow_legacy_algorithms: self.allow_legacy_algorithms.unwrap_or(d.allow_legacy_algorithms),
            allow_cross_origin,
            allowed_top_origins,
            sign_count_regression: self.sign_count_regression.unwrap_or(d.sign_count_regression),
            backup_eligibility_change: self.backup_eligibility_change.unwrap_or(d.backup_eligibility_change),
            minimum_certification: self.minimum_certification,
            ceremonies: Ceremonies {
                resident_key: self.resident_key.unwrap_or_default(),
                attachment: self.authenticator_attachment,
                hints: self.hints.clone(),
                enterprise_attestation: self.enterprise_attestation.unwrap_or(false),
            },
            step_up_at,
            deny_at,
            weights,
            temporary_access_pass: self.temporary_access_pass.unwrap_or(d.temporary_access_pass),
            user_risk_remediation: self.remediation(passkey_types)?,
        })
    }

    /// The flagged-user rules, the bar's passkey types defaulting to the
    /// profile's own.
    fn remediation(&self, own_types: PasskeyTypes) -> Result<RiskRemediation, Invalid> {
        let d = RiskRemediation::default();
        let (medium, high) = match self.user_risk_remediation {
            None => (d.medium, d.high),
            Some(RemediationConfig::Both(m)) => (m, m),
            Some(RemediationConfig::PerLevel(l)) => (l.medium.unwrap_or(d.medium), l.high.unwrap_or(d.high)),
        };
        let passkey_types = match &self.remediation_passkey_types {
            None => own_types,
            Some(t) if t.is_empty() => {
                return Err(Invalid::new(
                    "remediation_passkey_types",
                    "must list device_bound, synced or both (omit it: the profile's own)",
                ));
            }
            Some(t) => PasskeyTypes::from_list(t),
        };
        Ok(RiskRemediation {
            medium,
            high,
            requires_uv: self.remediation_requires_uv.unwrap_or(d.requires_uv),
            passkey_types,
            requires_attestation: self.remediation_requires_attestation.unwrap_or(d.requires_attestation),
        })
    }

    /// The fully spelled-out config of a resolved profile (for
    /// `assertd config check`).
    pub fn effective(p: &Profile) -> Self {
        Self {
            passkey_types: Some(p.passkey_types.list()),
            attestation_enforcement: Some(p.attestation_enforcement),
            key_restrictions: Some(match &p.key_restrictions {
                None => KeyRestrictionsConfig { enforced: false, enforcement_type: EnforcementType::Allow, aaguids: vec![] },
                Some(k) => KeyRestrictionsConfig {
                    enforced: true,
                    enforcement_type: k.enforcement_type,
                    aaguids: k.aaguids.iter().map(format_uuid).collect(),
                },
            }),
            user_verification: Some(p.user_verification),
            allow_legacy_algorithms: Some(p.allow_legacy_algorithms),
            allow_cross_origin: Some(p.allow_cross_origin),
            allowed_top_origins: Some(p.allowed_top_origins.clone()),
            sign_count_regression: Some(p.sign_count_regression),
            backup_eligibility_change: Some(p.backup_eligibility_change),
            minimum_certification: p.minimum_certification,
            risk: Some(RiskConfig { step_up_at: Some(p.step_up_at), deny_at: Some(p.deny_at), weights: p.weights.iter().collect() }),
            resident_key: Some(p.ceremonies.resident_key),
            authenticator_attachment: p.ceremonies.attachment,
            hints: p.ceremonies.hints.clone(),
            enterprise_attestation: Some(p.ceremonies.enterprise_attestation),
            temporary_access_pass: Some(p.temporary_access_pass),
            user_risk_remediation: Some(RemediationConfig::PerLevel(RemediationLevels {
                medium: Some(p.user_risk_remediation.medium),
                high: Some(p.user_risk_remediation.high),
            })),
            remediation_requires_uv: Some(p.user_risk_remediation.requires_uv),
            remediation_passkey_types: Some(p.user_risk_remediation.passkey_types.list()),
            remediation_requires_attestation: Some(p.user_risk_remediation.requires_attestation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_keys_take_the_defaults() {
        assert_eq!(ProfileConfig::default().resolve().unwrap(), Profile::default());
    }

    #[test]
    fn effective_round_trips() {
        let p: ProfileConfig = toml::from_str(
            r#"
passkey_types = ["device_bound"]
attestation_enforcement = "registration_only"
key_restrictions = { enforced = true, enforcement_type = "allow", aaguids = ["cb69481e-8ff7-4039-93ec-0a2729a154a8"] }
user_verification = "required"
backup_eligibility_change = "allow_upgrade"
temporary_access_pass = "device_bound_only"
user_risk_remediation = { high = "deny" }
remediation_requires_attestation = true
[risk]
step_up_at = 30
[risk.weights]
untrusted_network = 25
"#,
        )
        .unwrap();
        let resolved = p.resolve().unwrap();
        assert_eq!(resolved.weights[Signal::UntrustedNetwork], 25);
        assert_eq!(resolved.step_up_at, 30);
        assert_eq!(resolved.temporary_access_pass, PassRegistration::DeviceBoundOnly);
        let r = resolved.user_risk_remediation;
        assert_eq!(
            (r.medium, r.high, r.requires_uv, r.requires_attestation),
            (RemediationMode::Passkey, RemediationMode::Deny, true, true)
        );
        assert_eq!(r.passkey_types, resolved.passkey_types, "the bar's types default to the profile's own");
        let both: ProfileConfig = toml::from_str("user_risk_remediation = \"step_up\"").unwrap();
        let r = both.resolve().unwrap().user_risk_remediation;
        assert_eq!((r.medium, r.high), (RemediationMode::StepUp, RemediationMode::StepUp));
        assert!(toml::from_str::<ProfileConfig>("user_risk_remediation = \"heal\"").is_err());
        assert!(toml::from_str::<ProfileConfig>("user_risk_remediation = { low = \"deny\" }").is_err());
        let text = toml::to_string(&ProfileConfig::effective(&resolved)).unwrap();
        let again: ProfileConfig = toml::from_str(&text).unwrap();
        assert_eq!(again.resolve().unwrap(), resolved);
    }

    #[test]
    fn every_signal_is_a_weight_key() {
        for s in Signal::ALL {
            let w = s.default_weight() + 1;
            let p: ProfileConfig = toml::from_str(&format!("[risk.weights]\n{} = {w}\n", s.key())).unwrap();
            assert_eq!(p.resolve().unwrap().weights[s], w, "{s:?}");
        }
        let e = toml::from_str::<ProfileConfig>("[risk.weights]\nsynced = 7\n").unwrap_err().to_string();
        assert!(e.contains("synced") && e.contains("synced_passkey"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = [
            ("passkey_types = []", "passkey_types"),
            ("key_restrictions = { enforced = true, enforcement_type = \"allow\", aaguids = [\"nope\"] }", "key_restrictions.aaguids[0]"),
            ("key_restrictions = { enforced = true, enforcement_type = \"allow\" }", "key_restrictions.aaguids"),
            ("allowed_top_origins = [\"https://a\"]", "allowed_top_origins"),
            ("[risk]\nstep_up_at = 60\ndeny_at = 50", "risk.step_up_at"),
            ("[risk.weights]\nsynced_passkey = 101", "risk.weights.synced_passkey"),
            ("[risk.weights]\nupstream_risk_medium = 70", "risk.weights.upstream_risk_high"),
            ("remediation_passkey_types = []", "remediation_passkey_types"),
        ];
        for (text, key) in bad {
            let p: ProfileConfig = toml::from_str(text).unwrap();
            assert_eq!(p.resolve().unwrap_err().key, key, "{text}");
        }
    }

    #[test]
    fn uuids() {
        let a = parse_uuid("cb69481e-8ff7-4039-93ec-0a2729a154a8").unwrap();
        assert_eq!(format_uuid(&a), "cb69481e-8ff7-4039-93ec-0a2729a154a8");
        assert_eq!(parse_uuid("cb69481e8ff7403993ec0a2729a154a8"), None);
        assert_eq!(parse_uuid("zb69481e-8ff7-4039-93ec-0a2729a154a8"), None);
    }
}
