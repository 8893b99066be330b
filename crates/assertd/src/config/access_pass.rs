//! `[temporary_access_pass]`: the keys passes are hashed with and the
//! bounds of their lifetimes (`CredentialService.IssueTemporaryAccessPass`).
//!
//! ```toml
//! [temporary_access_pass]
//! keys = [{ id = "2026-12", secret_file = "/etc/assertd/tap-2026-12" }]
//! default_lifetime_seconds = 3600     # Entra's defaults
//! min_lifetime_seconds = 3600
//! max_lifetime_seconds = 28800
//! require_one_time = false
//! retention_days = 30
//! ```
//!
//! The lifetime defaults and bounds are Microsoft Entra's Temporary Access
//! Pass policy defaults (minimum 1 hour, maximum 8 hours, default 1 hour,
//! one-time use not required; each settable from 10 minutes to 30 days),
//! as listed in Entra's "Configure a Temporary Access Pass" documentation.
//! A pass is 28 symbols (140 bits) where Entra's default is 8 characters:
//! the pass is a bearer secret that registers a passkey, so it gets the
//! strength of a key. Without keys, passes are off: issuing answers
//! FAILED_PRECONDITION and a pass is refused `TEMPORARY_ACCESS_PASS_INVALID`.

use super::challenges::{ChallengeKeyConfig, read_secrets};
use super::invalid::Invalid;
use assertd_verify::access_pass::PassKeys;
use serde::Deserialize;

/// Shortest lifetime any setting may have (Entra's floor: 10 minutes).
const FLOOR_SECONDS: u64 = 600;
/// Longest lifetime any setting may have (Entra's ceiling: 30 days).
const CEILING_SECONDS: u64 = 30 * 86_400;

/// `[temporary_access_pass]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessPassSection {
    /// The keys, the hashing key first; none: passes are off.
    #[serde(default)]
    pub keys: Vec<ChallengeKeyConfig>,
    /// Lifetime of a pass whose request names none.
    #[serde(default = "default_lifetime")]
    pub default_lifetime_seconds: u64,
    /// Shortest lifetime a request may ask for.
    #[serde(default = "default_lifetime")]
    pub min_lifetime_seconds: u64,
    /// Longest lifetime a request may ask for.
    #[serde(default = "default_max")]
    pub max_lifetime_seconds: u64,
    /// Every pass is one-time, whatever the request asks (Entra's
    /// `isUsableOnce`).
    #[serde(default)]
    pub require_one_time: bool,
    /// Days a pass is kept after it expired (listed, and its refusals name
    /// it as expired rather than unknown), then forgotten.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
}

impl Default for AccessPassSection {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            default_lifetime_seconds: default_lifetime(),
            min_lifetime_seconds: default_lifetime(),
            max_lifetime_seconds: default_max(),
            require_one_time: false,
            retention_days: default_retention(),
        }
    }
}

fn default_lifetime() -> u64 {
    3600
}
fn default_max() -> u64 {
    8 * 3600
}
fn default_retention() -> u32 {
    30
}

/// Temporary access passes, ready to use.
#[derive(Debug)]
pub struct AccessPassPolicy {
    /// The keys: the first hashes new passes, all check.
    pub keys: PassKeys,
    /// Lifetime when a request names none.
    pub default_lifetime_seconds: u64,
    /// Shortest lifetime a request may ask for.
    pub min_lifetime_seconds: u64,
    /// Longest lifetime a request may ask for.
    pub max_lifetime_seconds: u64,
    /// Every pass is one-time.
    pub require_one_time: bool,
    /// Kept after expiry, milliseconds.
    pub retention_ms: i64,
}

impl AccessPassPolicy {
    /// The lifetime for a request asking for `asked` seconds (0: the
    /// default); an error names the bounds.
    pub fn lifetime(&self, asked: u32) -> Result<u64, String> {
        if asked == 0 {
            return Ok(self.default_lifetime_seconds);
        }
        let asked = u64::from(asked);
        if asked < self.min_lifetime_seconds || asked > self.max_lifetime_seconds {
            return Err(format!(
                "lifetime_seconds {asked} is outside [temporary_access_pass] min_lifetime_seconds {} .. max_lifetime_seconds {}",
                self.min_lifetime_seconds, self.max_lifetime_seconds
            ));
        }
        Ok(asked)
    }
}

impl AccessPassSection {
    /// The keys read and the bounds checked; `None` when no keys are
    /// configured.
    pub fn compile(&self) -> Result<Option<AccessPassPolicy>, Invalid> {
        let key = |k: &str| format!("temporary_access_pass.{k}");
        for (name, v) in [
            ("min_lifetime_seconds", self.min_lifetime_seconds),
            ("max_lifetime_seconds", self.max_lifetime_seconds),
            ("default_lifetime_seconds", self.default_lifetime_seconds),
        ] {
            if !(FLOOR_SECONDS..=CEILING_SECONDS).contains(&v) {
                return Err(Invalid::new(key(name), format!("{v} is outside 600 (10 minutes) .. 2592000 (30 days)")));
            }
        }
        if self.min_lifetime_seconds > self.max_lifetime_seconds {
            return Err(Invalid::new(key("min_lifetime_seconds"), "is above max_lifetime_seconds"));
        }
        if !(self.min_lifetime_seconds..=self.max_lifetime_seconds).contains(&self.default_lifetime_seconds) {
            return Err(Invalid::new(key("default_lifetime_seconds"), "is outside min_lifetime_seconds .. max_lifetime_seconds"));
        }
        if self.retention_days == 0 || self.retention_days > 3650 {
            return Err(Invalid::new(key("retention_days"), "is 1 to 3650"));
        }
        if self.keys.is_empty() {
            return Ok(None);
        }
        let keys =
            PassKeys::new(read_secrets("temporary_access_pass", &self.keys)?).map_err(|e| Invalid::new(key("keys"), e.to_string()))?;
        Ok(Some(AccessPassPolicy {
            keys,
            default_lifetime_seconds: self.default_lifetime_seconds,
            min_lifetime_seconds: self.min_lifetime_seconds,
            max_lifetime_seconds: self.max_lifetime_seconds,
            require_one_time: self.require_one_time,
            retention_ms: i64::from(self.retention_days) * 86_400_000,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> AccessPassSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn entra_defaults_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, [b'k'; 32].iter().chain(b"\n").copied().collect::<Vec<u8>>()).unwrap();
        let keys = format!("keys = [{{ id = \"a\", secret_file = {:?} }}]\n", f.display().to_string());
        assert!(section("").compile().unwrap().is_none(), "no keys: off");
        let p = section(&keys).compile().unwrap().unwrap();
        assert_eq!(
            (p.default_lifetime_seconds, p.min_lifetime_seconds, p.max_lifetime_seconds, p.require_one_time),
            (3600, 3600, 28800, false)
        );
        assert_eq!(p.lifetime(0), Ok(3600));
        assert_eq!(p.lifetime(7200), Ok(7200));
        assert!(p.lifetime(600).unwrap_err().contains("min_lifetime_seconds 3600"));
        assert!(p.lifetime(28801).is_err());
        for (text, k) in [
            ("min_lifetime_seconds = 599", "temporary_access_pass.min_lifetime_seconds"),
            ("max_lifetime_seconds = 2592001", "temporary_access_pass.max_lifetime_seconds"),
            ("min_lifetime_seconds = 7200\ndefault_lifetime_seconds = 3600", "temporary_access_pass.default_lifetime_seconds"),
            ("min_lifetime_seconds = 30000", "temporary_access_pass.min_lifetime_seconds"),
            ("retention_days = 0", "temporary_access_pass.retention_days"),
        ] {
            assert_eq!(section(&format!("{keys}{text}")).compile().unwrap_err().key, k, "{text}");
        }
        let short = dir.path().join("short");
        std::fs::write(&short, b"short").unwrap();
        let e = section(&format!("keys = [{{ id = \"a\", secret_file = {:?} }}]", short.display().to_string())).compile().unwrap_err();
        assert_eq!(e.key, "temporary_access_pass.keys");
    }
}
