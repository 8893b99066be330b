//! Passkey profiles in the config file (`[profiles.NAME]`), in the vocabulary
//! of Microsoft Entra ID passkey profiles, and their resolution into
//! `assertd_policy::Profile` with every omitted key at its documented
//! default.

use assertd_policy::{
    AttestationEnforcement, BackupEligibilityChange, EnforcementType, KeyRestrictions, PasskeyTypes, Profile, RegressionAction,
    UserVerification, Weights,
};
use serde::{Deserialize, Serialize};

/// A passkey type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyTypeSetting {
    /// BE = 0.
    DeviceBound,
    /// BE = 1.
    Synced,
}

/// `attestation_enforcement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationSetting {
    /// Not enforced.
    Disabled,
    /// Required at registration.
    RegistrationOnly,
}

/// `key_restrictions.enforcement_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforcementSetting {
    /// Allow list.
    Allow,
    /// Block list.
    Block,
}

/// `user_verification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerificationSetting {
    /// Deny without UV.
    Required,
    /// UV missing is a risk signal.
    Preferred,
    /// UV is ignored.
    Discouraged,
}

/// `sign_count_regression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionSetting {
    /// Deny.
    Deny,
    /// Step up.
    StepUp,
}

/// `backup_eligibility_change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupEligibilitySetting {
    /// Deny any change.
    Deny,
    /// Accept false -> true once.
    AllowUpgrade,
}

/// `key_restrictions = { enforced, enforcement_type, aaguids }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRestrictionsConfig {
    /// Whether the list applies.
    #[serde(default)]
    pub enforced: bool,
    /// `allow` or `block`.
    pub enforcement_type: EnforcementSetting,
    /// AAGUIDs as UUID strings.
    #[serde(default)]
    pub aaguids: Vec<String>,
}

/// `[profiles.NAME.risk.weights]`: every key optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct WeightsConfig {
    pub synced_passkey: Option<u32>,
    pub unattested_credential: Option<u32>,
    pub user_not_verified: Option<u32>,
    pub sign_count_regression: Option<u32>,
    pub cross_origin: Option<u32>,
    pub untrusted_network: Option<u32>,
    pub noncompliant_device: Option<u32>,
    pub upstream_risk_medium: Option<u32>,
    pub upstream_risk_high: Option<u32>,
    pub legacy_algorithm: Option<u32>,
    pub backup_eligibility_upgrade: Option<u32>,
    pub sign_count_deferred: Option<u32>,
}

/// `[profiles.NAME.risk]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    /// Score at or above which the decision is step-up.
    pub step_up_at: Option<u32>,
    /// Score at or above which the decision is deny.
    pub deny_at: Option<u32>,
    /// Signal weights.
    #[serde(default)]
    pub weights: WeightsConfig,
}

/// `[profiles.NAME]`: every key optional, defaults documented in README.md.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Allowed passkey types (default both).
    pub passkey_types: Option<Vec<PasskeyTypeSetting>>,
    /// Attestation enforcement (default `disabled`).
    pub attestation_enforcement: Option<AttestationSetting>,
    /// AAGUID restrictions (default none).
    pub key_restrictions: Option<KeyRestrictionsConfig>,
    /// UV requirement (default `preferred`).
    pub user_verification: Option<UserVerificationSetting>,
    /// Accept RS1 (default false).
    pub allow_legacy_algorithms: Option<bool>,
    /// Accept cross-origin ceremonies (default false).
    pub allow_cross_origin: Option<bool>,
    /// Accepted top origins (default none).
    pub allowed_top_origins: Option<Vec<String>>,
    /// Counter regression (default `deny`).
    pub sign_count_regression: Option<RegressionSetting>,
    /// BE change (default `deny`).
    pub backup_eligibility_change: Option<BackupEligibilitySetting>,
    /// Risk thresholds and weights.
    pub risk: Option<RiskConfig>,
}

/// The profile keys a relying party may set directly when it names no
/// `default_profile` (kept from before profiles existed).
#[derive(Debug, Clone, Default)]
pub struct RpProfileKeys {
    /// `user_verification`.
    pub user_verification: Option<UserVerificationSetting>,
    /// `allow_cross_origin`.
    pub allow_cross_origin: Option<bool>,
    /// `allowed_top_origins`.
    pub allowed_top_origins: Option<Vec<String>>,
    /// `allow_legacy_algorithms`.
    pub allow_legacy_algorithms: Option<bool>,
    /// `sign_count_regression`.
    pub sign_count_regression: Option<RegressionSetting>,
}

impl RpProfileKeys {
    /// The first key that is set, if any.
    pub fn first_set(&self) -> Option<&'static str> {
        [
            (self.user_verification.is_some(), "user_verification"),
            (self.allow_cross_origin.is_some(), "allow_cross_origin"),
            (self.allowed_top_origins.is_some(), "allowed_top_origins"),
            (self.allow_legacy_algorithms.is_some(), "allow_legacy_algorithms"),
            (self.sign_count_regression.is_some(), "sign_count_regression"),
        ]
        .into_iter()
        .find_map(|(set, k)| set.then_some(k))
    }
}

/// The built-in profile adjusted by an RP's own keys.
pub fn profile_from_rp_keys(k: &RpProfileKeys) -> Result<Profile, (String, String)> {
    ProfileConfig {
        user_verification: k.user_verification,
        allow_cross_origin: k.allow_cross_origin,
        allowed_top_origins: k.allowed_top_origins.clone(),
        allow_legacy_algorithms: k.allow_legacy_algorithms,
        sign_count_regression: k.sign_count_regression,
        ..ProfileConfig::default()
    }
    .resolve()
}

/// Parses "cb69481e-8ff7-4039-93ec-0a2729a154a8".
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    let dashes_ok = s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
    if !dashes_ok || hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

pub use assertd_policy::format_uuid;

fn err(key: &str, problem: impl Into<String>) -> (String, String) {
    (key.to_owned(), problem.into())
}

impl ProfileConfig {
    /// Resolves the profile, filling defaults; errors name the key.
    pub fn resolve(&self) -> Result<Profile, (String, String)> {
        let d = Profile::default();
        let passkey_types = match &self.passkey_types {
            None => d.passkey_types,
            Some(t) if t.is_empty() => return Err(err("passkey_types", "must list device_bound, synced or both")),
            Some(t) => {
                PasskeyTypes { device_bound: t.contains(&PasskeyTypeSetting::DeviceBound), synced: t.contains(&PasskeyTypeSetting::Synced) }
            }
        };
        let key_restrictions = match &self.key_restrictions {
            Some(k) if k.enforced => {
                let mut aaguids = Vec::with_capacity(k.aaguids.len());
                for (i, a) in k.aaguids.iter().enumerate() {
                    aaguids
                        .push(parse_uuid(a).ok_or_else(|| err(&format!("key_restrictions.aaguids[{i}]"), format!("{a:?} is not a UUID")))?);
                }
                if aaguids.is_empty() && k.enforcement_type == EnforcementSetting::Allow {
                    return Err(err(
                        "key_restrictions.aaguids",
                        "an enforced allow list cannot be empty: it would refuse every credential",
                    ));
                }
                Some(KeyRestrictions {
                    enforcement_type: match k.enforcement_type {
                        EnforcementSetting::Allow => EnforcementType::Allow,
                        EnforcementSetting::Block => EnforcementType::Block,
                    },
                    aaguids,
                })
            }
            _ => None,
        };
        let allow_cross_origin = self.allow_cross_origin.unwrap_or(d.allow_cross_origin);
        let allowed_top_origins = self.allowed_top_origins.clone().unwrap_or_default();
        if !allowed_top_origins.is_empty() && !allow_cross_origin {
            return Err(err("allowed_top_origins", "needs allow_cross_origin = true"));
        }
        let risk = self.risk.clone().unwrap_or_default();
        let w = &risk.weights;
        let dw = d.weights;
        let weights = Weights {
            synced_passkey: w.synced_passkey.unwrap_or(dw.synced_passkey),
            unattested_credential: w.unattested_credential.unwrap_or(dw.unattested_credential),
            user_not_verified: w.user_not_verified.unwrap_or(dw.user_not_verified),
            sign_count_regression: w.sign_count_regression.unwrap_or(dw.sign_count_regression),
            cross_origin: w.cross_origin.unwrap_or(dw.cross_origin),
            untrusted_network: w.untrusted_network.unwrap_or(dw.untrusted_network),
            noncompliant_device: w.noncompliant_device.unwrap_or(dw.noncompliant_device),
            upstream_risk_medium: w.upstream_risk_medium.unwrap_or(dw.upstream_risk_medium),
            upstream_risk_high: w.upstream_risk_high.unwrap_or(dw.upstream_risk_high),
            legacy_algorithm: w.legacy_algorithm.unwrap_or(dw.legacy_algorithm),
            backup_eligibility_upgrade: w.backup_eligibility_upgrade.unwrap_or(dw.backup_eligibility_upgrade),
            sign_count_deferred: w.sign_count_deferred.unwrap_or(dw.sign_count_deferred),
        };
        for (k, v) in weight_list(&weights) {
            if v > 100 {
                return Err(err(&format!("risk.weights.{k}"), format!("{v} is above 100")));
            }
        }
        if weights.upstream_risk_high < weights.upstream_risk_medium {
            return Err(err("risk.weights.upstream_risk_high", "must be at least upstream_risk_medium"));
        }
        let step_up_at = risk.step_up_at.unwrap_or(d.step_up_at);
        let deny_at = risk.deny_at.unwrap_or(d.deny_at);
        if step_up_at > deny_at {
            return Err(err("risk.step_up_at", format!("{step_up_at} is above deny_at {deny_at}")));
        }
        if deny_at > 101 {
            return Err(err("risk.deny_at", "must be at most 101 (101: the score never denies)"));
        }
        Ok(Profile {
            passkey_types,
            attestation_enforcement: match self.attestation_enforcement {
                Some(AttestationSetting::RegistrationOnly) => AttestationEnforcement::RegistrationOnly,
                Some(AttestationSetting::Disabled) => AttestationEnforcement::Disabled,
                None => d.attestation_enforcement,
            },
            key_restrictions,
            user_verification: match self.user_verification {
                Some(UserVerificationSetting::Required) => UserVerification::Required,
                Some(UserVerificationSetting::Preferred) => UserVerification::Preferred,
                Some(UserVerificationSetting::Discouraged) => UserVerification::Discouraged,
                None => d.user_verification,
            },
            allow_legacy_algorithms: self.allow_legacy_algorithms.unwrap_or(d.allow_legacy_algorithms),
            allow_cross_origin,
            allowed_top_origins,
            sign_count_regression: match self.sign_count_regression {
                Some(RegressionSetting::StepUp) => RegressionAction::StepUp,
                Some(RegressionSetting::Deny) => RegressionAction::Deny,
                None => d.sign_count_regression,
            },
            backup_eligibility_change: match self.backup_eligibility_change {
                Some(BackupEligibilitySetting::AllowUpgrade) => BackupEligibilityChange::AllowUpgrade,
                Some(BackupEligibilitySetting::Deny) => BackupEligibilityChange::Deny,
                None => d.backup_eligibility_change,
            },
            step_up_at,
            deny_at,
            weights,
        })
    }

    /// The fully spelled-out config of a resolved profile (for
    /// `assertd config check`).
    pub fn effective(p: &Profile) -> Self {
        let mut types = Vec::new();
        if p.passkey_types.device_bound {
            types.push(PasskeyTypeSetting::DeviceBound);
        }
        if p.passkey_types.synced {
            types.push(PasskeyTypeSetting::Synced);
        }
        let w = p.weights;
        Self {
            passkey_types: Some(types),
            attestation_enforcement: Some(match p.attestation_enforcement {
                AttestationEnforcement::Disabled => AttestationSetting::Disabled,
                AttestationEnforcement::RegistrationOnly => AttestationSetting::RegistrationOnly,
            }),
            key_restrictions: Some(match &p.key_restrictions {
                None => KeyRestrictionsConfig { enforced: false, enforcement_type: EnforcementSetting::Allow, aaguids: vec![] },
                Some(k) => KeyRestrictionsConfig {
                    enforced: true,
                    enforcement_type: match k.enforcement_type {
                        EnforcementType::Allow => EnforcementSetting::Allow,
                        EnforcementType::Block => EnforcementSetting::Block,
                    },
                    aaguids: k.aaguids.iter().map(format_uuid).collect(),
                },
            }),
            user_verification: Some(match p.user_verification {
                UserVerification::Required => UserVerificationSetting::Required,
                UserVerification::Preferred => UserVerificationSetting::Preferred,
                UserVerification::Discouraged => UserVerificationSetting::Discouraged,
            }),
            allow_legacy_algorithms: Some(p.allow_legacy_algorithms),
            allow_cross_origin: Some(p.allow_cross_origin),
            allowed_top_origins: Some(p.allowed_top_origins.clone()),
            sign_count_regression: Some(match p.sign_count_regression {
                RegressionAction::Deny => RegressionSetting::Deny,
                RegressionAction::StepUp => RegressionSetting::StepUp,
            }),
            backup_eligibility_change: Some(match p.backup_eligibility_change {
                BackupEligibilityChange::Deny => BackupEligibilitySetting::Deny,
                BackupEligibilityChange::AllowUpgrade => BackupEligibilitySetting::AllowUpgrade,
            }),
            risk: Some(RiskConfig {
                step_up_at: Some(p.step_up_at),
                deny_at: Some(p.deny_at),
                weights: WeightsConfig {
                    synced_passkey: Some(w.synced_passkey),
                    unattested_credential: Some(w.unattested_credential),
                    user_not_verified: Some(w.user_not_verified),
                    sign_count_regression: Some(w.sign_count_regression),
                    cross_origin: Some(w.cross_origin),
                    untrusted_network: Some(w.untrusted_network),
                    noncompliant_device: Some(w.noncompliant_device),
                    upstream_risk_medium: Some(w.upstream_risk_medium),
                    upstream_risk_high: Some(w.upstream_risk_high),
                    legacy_algorithm: Some(w.legacy_algorithm),
                    backup_eligibility_upgrade: Some(w.backup_eligibility_upgrade),
                    sign_count_deferred: Some(w.sign_count_deferred),
                },
            }),
        }
    }
}

/// The effective policy of a validated config, for people: each relying
/// party with its default profile, then every profile with all keys spelled
/// out (defaults included), as TOML.
pub fn describe(c: &crate::config::Config) -> Result<String, String> {
    use std::fmt::Write;
    let policy = c.policy().map_err(|(k, e)| format!("{k}: {e}"))?;
    let mut out = String::new();
    let _ = writeln!(out, "# config OK: {} relying parties, {} profiles", c.relying_parties.len(), c.profiles.len());
    for rp in &c.relying_parties {
        let name = rp.default_profile.as_deref().unwrap_or("(built-in, with the RP's own keys)");
        let _ = writeln!(out, "# relying party {:?}: default profile {name}", rp.id);
    }
    let mut effective = std::collections::BTreeMap::new();
    for (name, p) in &policy.profiles {
        effective.insert(name.clone(), ProfileConfig::effective(p));
    }
    if c.profiles.is_empty() {
        effective.insert("(built-in)".to_owned(), ProfileConfig::effective(&Profile::default()));
    }
    #[derive(Serialize)]
    struct Out {
        profiles: std::collections::BTreeMap<String, ProfileConfig>,
    }
    out.push_str(&toml::to_string(&Out { profiles: effective }).map_err(|e| e.to_string())?);
    Ok(out)
}

fn weight_list(w: &Weights) -> [(&'static str, u32); 12] {
    [
        ("synced_passkey", w.synced_passkey),
        ("unattested_credential", w.unattested_credential),
        ("user_not_verified", w.user_not_verified),
        ("sign_count_regression", w.sign_count_regression),
        ("cross_origin", w.cross_origin),
        ("untrusted_network", w.untrusted_network),
        ("noncompliant_device", w.noncompliant_device),
        ("upstream_risk_medium", w.upstream_risk_medium),
        ("upstream_risk_high", w.upstream_risk_high),
        ("legacy_algorithm", w.legacy_algorithm),
        ("backup_eligibility_upgrade", w.backup_eligibility_upgrade),
        ("sign_count_deferred", w.sign_count_deferred),
    ]
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
[risk]
step_up_at = 30
[risk.weights]
untrusted_network = 25
"#,
        )
        .unwrap();
        let resolved = p.resolve().unwrap();
        assert_eq!(resolved.weights.untrusted_network, 25);
        assert_eq!(resolved.step_up_at, 30);
        let text = toml::to_string(&ProfileConfig::effective(&resolved)).unwrap();
        let again: ProfileConfig = toml::from_str(&text).unwrap();
        assert_eq!(again.resolve().unwrap(), resolved);
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
        ];
        for (text, key) in bad {
            let p: ProfileConfig = toml::from_str(text).unwrap();
            assert_eq!(p.resolve().unwrap_err().0, key, "{text}");
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
