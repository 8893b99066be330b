//! The two sides a preview compares: a policy as each relying party
//! applies it (the profiles an assertion may be judged under, and the
//! metadata), built from a compiled config, or from the one in force with a
//! candidate's profiles and selections laid over it.

use crate::config::{Invalid, LoadedMetadata, ProfileConfig, Reloadable, RpEntry};
use assertd_policy::Profile;
use assertd_verify::metadata::Metadata;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Why an assertion may be judged under a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The relying party's default.
    Default,
    /// On its `allowed_profiles`: a gateway may name it.
    Allowed,
    /// On its `report_only_profiles`: judged, never enforced.
    ReportOnly,
}

impl Role {
    /// The spelling in answers and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Allowed => "allowed",
            Self::ReportOnly => "report_only",
        }
    }
}

/// A profile an assertion for a relying party may be judged under.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Its name (`(built-in)`: the RP-level keys).
    pub name: String,
    /// Why.
    pub role: Role,
    /// The profile.
    pub profile: Arc<Profile>,
}

/// The metadata a side judges blocked models by.
#[derive(Debug, Clone)]
enum Source {
    InForce(Arc<LoadedMetadata>),
    Candidate(Arc<Metadata>),
}

/// One side of a preview: per relying party, its profiles (default, then
/// allowed, then report-only, as configured), and the metadata.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The relying parties' profiles, by RP ID.
    pub rps: BTreeMap<String, Vec<Slot>>,
    metadata: Option<Source>,
}

/// A candidate laid over the policy in force: `[profiles.NAME]` tables and
/// `[[relying_parties]]` profile selections, in the config file's spelling.
/// Nothing else: no files are named, so a caller cannot make the server read
/// one (whole configs are previewed offline, `assertd policy preview`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Profiles that replace those of the same name in force, or are added.
    #[serde(default)]
    profiles: BTreeMap<String, ProfileConfig>,
    /// Profile selections of configured relying parties.
    #[serde(default)]
    relying_parties: Vec<RpSelection>,
}

/// One relying party's profile selection in an [`Overlay`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RpSelection {
    id: String,
    #[serde(default)]
    default_profile: Option<String>,
    #[serde(default)]
    allowed_profiles: Option<Vec<String>>,
    #[serde(default)]
    report_only_profiles: Option<Vec<String>>,
}

impl Overlay {
    /// Parses a candidate; the error is toml's, with line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The policy in force with this candidate laid over it. Errors name the
    /// candidate's key.
    pub fn apply(&self, in_force: &Reloadable) -> Result<Policy, Invalid> {
        let mut profiles = in_force.profiles.clone();
        for (name, p) in &self.profiles {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(Invalid::new(format!("profiles.{name}"), "profile names use letters, digits, '-' and '_'"));
            }
            let resolved = p.resolve().map_err(|e| e.under(&format!("profiles.{name}")))?;
            if resolved.minimum_certification.is_some() && in_force.metadata.is_none() {
                return Err(Invalid::new(
                    format!("profiles.{name}.minimum_certification"),
                    "needs [metadata] in force (the certification levels come from it)",
                ));
            }
            profiles.insert(name.clone(), Arc::new(resolved));
        }
        let mut selections: HashMap<&str, (usize, &RpSelection)> = HashMap::new();
        for (i, s) in self.relying_parties.iter().enumerate() {
            if !in_force.rps.contains_key(&s.id) {
                return Err(Invalid::new(format!("relying_parties[{i}].id"), format!("{:?} is not a configured relying party", s.id)));
            }
            if selections.insert(&s.id, (i, s)).is_some() {
                return Err(Invalid::new(format!("relying_parties[{i}].id"), format!("{:?} is listed twice", s.id)));
            }
        }
        let mut rps = BTreeMap::new();
        for (id, rp) in &in_force.rps {
            let slots = match selections.get(id.as_str()) {
                None => slots(rp, &profiles, &Names::of(rp)),
                Some((i, s)) => {
                    let now = Names::of(rp);
                    let names = Names {
                        default: s.default_profile.clone().unwrap_or(now.default),
                        allowed: s.allowed_profiles.clone().unwrap_or(now.allowed),
                        report_only: s.report_only_profiles.clone().unwrap_or(now.report_only),
                    };
                    slots(rp, &profiles, &names).map_err(|e| e.under(&format!("relying_parties[{i}]")))
                }
            }?;
            rps.insert(id.clone(), slots);
        }
        Ok(Policy { rps, metadata: in_force.metadata.clone().map(Source::InForce) })
    }
}

/// The profile names a relying party selects.
struct Names {
    default: String,
    allowed: Vec<String>,
    report_only: Vec<String>,
}

impl Names {
    fn of(rp: &RpEntry) -> Self {
        let mut allowed: Vec<String> = rp.allowed_profiles.iter().flatten().cloned().collect();
        allowed.sort();
        Self { default: rp.default_profile_name.clone(), allowed, report_only: rp.report_only.iter().map(|p| p.name.to_string()).collect() }
    }
}

/// The slots `names` selects, each profile looked up in `profiles` (the
/// built-in one is the relying party's own).
fn slots(rp: &RpEntry, profiles: &HashMap<String, Arc<Profile>>, names: &Names) -> Result<Vec<Slot>, Invalid> {
    let find = |key: &str, name: &str| -> Result<Arc<Profile>, Invalid> {
        if name == rp.default_profile_name && !profiles.contains_key(name) {
            return Ok(rp.default_profile.clone());
        }
        profiles.get(name).cloned().ok_or_else(|| Invalid::new(key, format!("profile {name:?} is not defined under [profiles]")))
    };
    let mut out = vec![Slot { name: names.default.clone(), role: Role::Default, profile: find("default_profile", &names.default)? }];
    for (key, role, list) in
        [("allowed_profiles", Role::Allowed, &names.allowed), ("report_only_profiles", Role::ReportOnly, &names.report_only)]
    {
        for name in list {
            if out.iter().any(|s| s.name == *name && s.role == role) {
                return Err(Invalid::new(key, format!("profile {name:?} is listed twice")));
            }
            out.push(Slot { name: name.clone(), role, profile: find(key, name)? });
        }
    }
    Ok(out)
}

impl Policy {
    /// The policy a compiled config applies (the compile checked every
    /// name it selects).
    pub fn of(compiled: &Reloadable) -> Result<Self, Invalid> {
        Overlay::default().apply(compiled)
    }

    /// This policy with `metadata` instead of its own.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(Source::Candidate(Arc::new(metadata)));
        self
    }

    /// The metadata blocked models are judged by.
    pub fn metadata(&self) -> Option<&Metadata> {
        match self.metadata.as_ref()? {
            Source::InForce(m) => Some(&m.metadata),
            Source::Candidate(m) => Some(m),
        }
    }

    /// The profile this policy judges `rp_id`'s users under where the other
    /// side uses profile `name`: the profile of that name among the relying
    /// party's, else its default (whom a new profile would replace). `None`:
    /// the relying party is not configured here.
    pub fn counterpart(&self, rp_id: &str, name: &str) -> Option<&Arc<Profile>> {
        let slots = self.rps.get(rp_id)?;
        slots.iter().find(|s| s.name == name).or_else(|| slots.first()).map(|s| &s.profile)
    }
}
