//! The users flagged at risk (`SetUserRisk`), in memory, so a verdict
//! looks its user up without a store read. The store holds the truth; this
//! replica learns of changes from its own writes, from the store's change
//! feed (other replicas), and from a full reload every [`RELOAD_EVERY`] and
//! whenever the feed may have missed something.

use assertd_policy::RiskLevel;
use assertd_store::{UserRisk, UserRiskLevel};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// How often the whole set is read again (a safety net under the change
/// feed).
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// One flag: its level, when it lapses and when it was set (Unix ms).
type Flag = (UserRiskLevel, Option<i64>, i64);

/// The flagged users, by relying party and user handle.
#[derive(Debug, Default)]
pub struct UserRisks {
    flags: parking_lot::RwLock<HashMap<String, HashMap<Vec<u8>, Flag>>>,
    /// Whether any flag is held: the common case (none) takes no lock.
    any: AtomicBool,
    /// Whether the whole set has been read from the store once: until then
    /// a verdict cannot know its user's flag, and the engine fails closed.
    loaded: AtomicBool,
}

impl UserRisks {
    /// The user's level at `now_ms` (`Unspecified` when not flagged or
    /// lapsed).
    pub fn level(&self, rp_id: &str, user_handle: &[u8], now_ms: i64) -> RiskLevel {
        self.flag(rp_id, user_handle, now_ms).0
    }

    /// The user's level at `now_ms` and when the flag was set (`(Unspecified,
    /// 0)` when not flagged or lapsed).
    pub fn flag(&self, rp_id: &str, user_handle: &[u8], now_ms: i64) -> (RiskLevel, i64) {
        if !self.any.load(Ordering::Acquire) {
            return (RiskLevel::Unspecified, 0);
        }
        match self.flags.read().get(rp_id).and_then(|users| users.get(user_handle)) {
            Some((level, expires, set_at)) if expires.is_none_or(|e| e > now_ms) => match level {
                UserRiskLevel::Medium => (RiskLevel::Medium, *set_at),
                UserRiskLevel::High => (RiskLevel::High, *set_at),
            },
            _ => (RiskLevel::Unspecified, 0),
        }
    }

    /// Records one user's flag as the store has it (`None`: cleared).
    pub fn apply(&self, rp_id: &str, user_handle: &[u8], risk: Option<&UserRisk>) {
        let mut flags = self.flags.write();
        match risk {
            Some(r) => {
                flags.entry(rp_id.to_owned()).or_default().insert(user_handle.to_vec(), (r.level, r.expires_at_ms, r.set_at_ms));
            }
            None => {
                if let Some(users) = flags.get_mut(rp_id) {
                    users.remove(user_handle);
                    if users.is_empty() {
                        flags.remove(rp_id);
                    }
                }
            }
        }
        self.any.store(!flags.is_empty(), Ordering::Release);
    }

    /// Replaces every flag with the store's.
    pub fn replace_all(&self, risks: Vec<UserRisk>) {
        let mut fresh: HashMap<String, HashMap<Vec<u8>, Flag>> = HashMap::new();
        for r in risks {
            fresh.entry(r.rp_id).or_default().insert(r.user_handle, (r.level, r.expires_at_ms, r.set_at_ms));
        }
        let mut flags = self.flags.write();
        *flags = fresh;
        self.any.store(!flags.is_empty(), Ordering::Release);
        self.loaded.store(true, Ordering::Release);
    }

    /// Whether the flags have been read from the store at least once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risk(level: UserRiskLevel, expires_at_ms: Option<i64>) -> UserRisk {
        UserRisk { rp_id: "rp".into(), user_handle: b"u".to_vec(), level, expires_at_ms, note: String::new(), set_at_ms: 0 }
    }

    #[test]
    fn flags_lapse_and_clear() {
        let r = UserRisks::default();
        assert!(!r.loaded());
        assert_eq!(r.level("rp", b"u", 0), RiskLevel::Unspecified);
        r.apply("rp", b"u", Some(&risk(UserRiskLevel::High, Some(100))));
        assert_eq!(r.level("rp", b"u", 99), RiskLevel::High);
        assert_eq!(r.level("rp", b"u", 100), RiskLevel::Unspecified, "lapsed");
        assert_eq!(r.level("other", b"u", 0), RiskLevel::Unspecified);
        r.apply("rp", b"u", Some(&risk(UserRiskLevel::Medium, None)));
        assert_eq!(r.level("rp", b"u", i64::MAX), RiskLevel::Medium);
        r.apply("rp", b"u", None);
        assert_eq!(r.level("rp", b"u", 0), RiskLevel::Unspecified);
        assert!(!r.loaded(), "one user's flag is not the whole set");
        r.replace_all(vec![risk(UserRiskLevel::High, None)]);
        assert!(r.loaded());
        assert_eq!(r.level("rp", b"u", 0), RiskLevel::High);
        r.replace_all(Vec::new());
        assert_eq!(r.level("rp", b"u", 0), RiskLevel::Unspecified);
    }
}
