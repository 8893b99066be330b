//! `[challenges]`: the keys and lifetimes of server-issued challenges
//! (`VerificationService.IssueChallenge`, `Assertion.server_issued_challenge`).
//!
//! ```toml
//! [challenges]
//! keys = [
//!   { id = "2026-12", secret_file = "/etc/assertd/challenge-2026-12" },  # signs
//!   { id = "2026-11", secret_env = "ASSERTD_CHALLENGE_KEY_2026_11" },    # still verifies
//! ]
//! ttl_seconds = 300
//! max_ttl_seconds = 900
//! clock_skew_seconds = 30
//! ```
//!
//! A secret is at least 32 bytes (a file's trailing newline is not part of
//! it); every replica must hold the same keys. Keys reload with the config:
//! to rotate, put the new key first and keep the old one for
//! `max_ttl_seconds + clock_skew_seconds`.

use super::invalid::Invalid;
use assertd_verify::ChallengeKeys;
use serde::Deserialize;
use std::path::PathBuf;

/// `[challenges]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengesSection {
    /// The keys, the signing key first; none: issued challenges are off.
    #[serde(default)]
    pub keys: Vec<ChallengeKeyConfig>,
    /// Lifetime of a challenge whose request names none.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
    /// Longest lifetime a request may ask for.
    #[serde(default = "default_max_ttl")]
    pub max_ttl_seconds: u64,
    /// Seconds a challenge is still accepted past its expiry (clocks of the
    /// replicas differ).
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
}

impl Default for ChallengesSection {
    fn default() -> Self {
        Self { keys: Vec::new(), ttl_seconds: default_ttl(), max_ttl_seconds: default_max_ttl(), clock_skew_seconds: default_skew() }
    }
}

fn default_ttl() -> u64 {
    300
}
fn default_max_ttl() -> u64 {
    900
}
fn default_skew() -> u64 {
    30
}

/// One `[[challenges.keys]]` entry: an id and a secret from a file or an
/// environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeKeyConfig {
    /// Carried in every challenge it signs (1–32 printable ASCII).
    pub id: String,
    /// A file holding the secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// Issued challenges, ready to use.
#[derive(Debug)]
pub struct IssuedChallenges {
    /// The keys: the first signs, all verify.
    pub keys: ChallengeKeys,
    /// Lifetime when a request names none.
    pub ttl_seconds: u64,
    /// Longest lifetime a request may ask for.
    pub max_ttl_seconds: u64,
    /// Accepted past the expiry.
    pub clock_skew_seconds: u64,
}

impl IssuedChallenges {
    /// The lifetime for a request asking for `ttl` seconds (0: the default),
    /// capped.
    pub fn ttl(&self, asked: u32) -> u64 {
        if asked == 0 { self.ttl_seconds } else { u64::from(asked).min(self.max_ttl_seconds) }
    }
}

impl ChallengesSection {
    /// The keys read and checked; `None` when none are configured.
    pub fn compile(&self) -> Result<Option<IssuedChallenges>, Invalid> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        if self.ttl_seconds == 0 || self.max_ttl_seconds == 0 {
            return Err(Invalid::new("challenges.ttl_seconds", "challenge lifetimes must be at least 1 second"));
        }
        if self.ttl_seconds > self.max_ttl_seconds {
            return Err(Invalid::new(
                "challenges.ttl_seconds",
                format!("{} is over max_ttl_seconds ({})", self.ttl_seconds, self.max_ttl_seconds),
            ));
        }
        if self.max_ttl_seconds > 86_400 {
            return Err(Invalid::new("challenges.max_ttl_seconds", "a challenge lives at most a day (86400 s)"));
        }
        let keys = read_secrets("challenges", &self.keys)?;
        let keys = ChallengeKeys::new(keys).map_err(|e| Invalid::new("challenges.keys", e.to_string()))?;
        Ok(Some(IssuedChallenges {
            keys,
            ttl_seconds: self.ttl_seconds,
            max_ttl_seconds: self.max_ttl_seconds,
            clock_skew_seconds: self.clock_skew_seconds,
        }))
    }
}

/// The `(id, secret)` pairs of `[SECTION] keys`: each secret from its file
/// (without a trailing newline) or environment variable.
pub(super) fn read_secrets(section: &str, configured: &[ChallengeKeyConfig]) -> Result<Vec<(String, Vec<u8>)>, Invalid> {
    let mut keys = Vec::with_capacity(configured.len());
    for (i, k) in configured.iter().enumerate() {
        let key = |field: &str| format!("{section}.keys[{i}].{field}");
        let secret = match (&k.secret_file, &k.secret_env) {
            (Some(file), None) => {
                let mut s =
                    std::fs::read(file).map_err(|e| Invalid::new(key("secret_file"), format!("cannot read {}: {e}", file.display())))?;
                while s.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                    s.pop();
                }
                s
            }
            (None, Some(var)) => std::env::var_os(var)
                .ok_or_else(|| Invalid::new(key("secret_env"), format!("environment variable {var} is not set")))?
                .into_encoded_bytes(),
            _ => return Err(Invalid::new(key("id"), "a key needs exactly one of secret_file and secret_env")),
        };
        keys.push((k.id.clone(), secret));
    }
    Ok(keys)
}
