//! A config value out of range or inconsistent: the one error every
//! section's check returns.

/// A value out of range or inconsistent with another: the key (dotted, as
/// in the file, e.g. `profiles.tier0.risk.deny_at`) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct Invalid {
    /// The offending key.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl Invalid {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { key: key.into(), problem: problem.into() }
    }

    /// The same problem, its key under `prefix`.
    pub fn under(self, prefix: &str) -> Self {
        Self { key: format!("{prefix}.{}", self.key), problem: self.problem }
    }
}
