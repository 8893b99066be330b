//! Temporary access passes: the text a person types, and the keyed hash
//! the store keeps instead of it.
//!
//! A pass is [`SYMBOLS`] symbols of the RFC 4648 base32 alphabet (A–Z,
//! 2–7: no 0/O or 1/I/L to confuse), 5 bits each from the system RNG (the
//! caller supplies the bytes): 140 bits. It is shown in groups of four,
//! `ABCD-EFGH-JKMN-PQRS-TUVW-XYZ2-3456`; typed back, case, spaces and
//! hyphens do not matter. Only `HMAC-SHA256(key, context)` of the
//! normalized pass is stored, bound to its relying party and user, so a copy
//! of the store lets no one redeem a pass, nor move one to another user.

use crate::challenge::KeyProblem;
use ring::hmac;

/// Symbols in a pass.
pub const SYMBOLS: usize = 28;
/// Symbols per group when shown.
pub const GROUP: usize = 4;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A pass, normalized: [`SYMBOLS`] upper-case alphabet symbols.
#[derive(Clone, PartialEq, Eq)]
pub struct Pass([u8; SYMBOLS]);

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in a log.
        f.write_str("Pass(..)")
    }
}

/// Why a typed pass is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassFormatError {
    /// Another number of symbols.
    #[error("a temporary access pass has {SYMBOLS} letters and digits 2–7 (groups and case do not matter), got {0}")]
    Length(usize),
    /// A character outside the alphabet (0, 1, 8, 9, punctuation).
    #[error("a temporary access pass uses the letters A–Z and the digits 2–7 only")]
    Symbol,
}

impl Pass {
    /// The pass made of `random` (one byte per symbol; the low five bits
    /// are used, so 32 divides 256 and every symbol is equally likely).
    pub fn from_random(random: &[u8; SYMBOLS]) -> Self {
        let mut p = [0u8; SYMBOLS];
        for (s, r) in p.iter_mut().zip(random) {
            *s = ALPHABET[usize::from(r & 31)];
        }
        Self(p)
    }

    /// Reads a typed pass: ASCII letters in either case and the digits 2–7,
    /// with any spaces and hyphens.
    pub fn parse(typed: &str) -> Result<Self, PassFormatError> {
        let mut p = [0u8; SYMBOLS];
        let mut n = 0;
        for b in typed.bytes().filter(|b| !matches!(b, b' ' | b'-')) {
            let b = b.to_ascii_uppercase();
            if !ALPHABET.contains(&b) {
                return Err(PassFormatError::Symbol);
            }
            if n < SYMBOLS {
                p[n] = b;
            }
            n += 1;
        }
        if n != SYMBOLS {
            return Err(PassFormatError::Length(n));
        }
        Ok(Self(p))
    }

    /// The pass as shown once to whoever issued it: groups of [`GROUP`].
    pub fn display(&self) -> String {
        self.0.chunks(GROUP).map(|g| String::from_utf8_lossy(g).into_owned()).collect::<Vec<_>>().join("-")
    }

    /// What the store keeps: HMAC-SHA256 under `key` of the pass, bound to
    /// its relying party and user.
    pub fn hash(&self, key: &hmac::Key, rp_id: &str, user_handle: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(key, &self.message(rp_id, user_handle)).as_ref());
        out
    }

    /// What is hashed: a label, then the relying party and the user
    /// (length-prefixed), then the pass.
    fn message(&self, rp_id: &str, user_handle: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(64 + rp_id.len() + user_handle.len());
        m.extend_from_slice(b"assertd temporary access pass v1\0");
        m.extend_from_slice(&(rp_id.len() as u64).to_be_bytes());
        m.extend_from_slice(rp_id.as_bytes());
        m.extend_from_slice(&(user_handle.len() as u64).to_be_bytes());
        m.extend_from_slice(user_handle);
        m.extend_from_slice(&self.0);
        m
    }
}

/// The keys passes are hashed with: the first hashes new passes, every one
/// checks the passes it hashed (rotation: put the new key first, keep the
/// old one until the passes it hashed expired).
#[derive(Clone)]
pub struct PassKeys {
    keys: Vec<(String, hmac::Key)>,
}

impl std::fmt::Debug for PassKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_list().entries(self.keys.iter().map(|(id, _)| id)).finish()
    }
}

impl PassKeys {
    /// Keys from `(id, secret)` pairs, the hashing key first (the rules of
    /// challenge keys: printable ids, secrets of 32 bytes or more).
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Result<Self, KeyProblem> {
        Ok(Self { keys: crate::challenge::keyed(keys)? })
    }

    /// The id of the key new passes are hashed with, and their hash.
    pub fn hash_new(&self, pass: &Pass, rp_id: &str, user_handle: &[u8]) -> (&str, [u8; 32]) {
        let (id, key) = &self.keys[0];
        (id, pass.hash(key, rp_id, user_handle))
    }

    /// Whether `pass` is the one hashed to `stored` under key `key_id`, in
    /// constant time; false for a key no longer configured.
    pub fn matches(&self, pass: &Pass, rp_id: &str, user_handle: &[u8], key_id: &str, stored: &[u8]) -> bool {
        let Some((_, key)) = self.keys.iter().find(|(id, _)| id == key_id) else { return false };
        // ring's verification compares in constant time.
        hmac::verify(key, &pass.message(rp_id, user_handle), stored).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_in_groups_read_back_in_any_form() {
        let random: [u8; SYMBOLS] = std::array::from_fn(|i| (i * 37) as u8);
        let p = Pass::from_random(&random);
        let shown = p.display();
        assert_eq!(shown.len(), SYMBOLS + SYMBOLS / GROUP - 1);
        assert_eq!(shown.split('-').count(), SYMBOLS / GROUP);
        assert_eq!(Pass::parse(&shown).unwrap(), p);
        assert_eq!(Pass::parse(&shown.to_lowercase().replace('-', " ")).unwrap(), p);
        assert_eq!(Pass::parse(&shown[..shown.len() - 1]), Err(PassFormatError::Length(SYMBOLS - 1)));
        assert_eq!(Pass::parse(&format!("{shown}A")), Err(PassFormatError::Length(SYMBOLS + 1)));
        assert_eq!(Pass::parse(&shown.replacen(|c: char| c.is_ascii_alphabetic(), "0", 1)), Err(PassFormatError::Symbol));
        assert_eq!(format!("{p:?}"), "Pass(..)", "never printed");
    }

    #[test]
    fn every_symbol_is_reachable_and_the_hash_binds_rp_and_user() {
        let all: [u8; SYMBOLS] = std::array::from_fn(|i| i as u8);
        let p = Pass::from_random(&all);
        assert!(p.display().starts_with("ABCD-EFGH"));
        let high = Pass::from_random(&std::array::from_fn(|i| (i as u8) | 0xe0));
        assert_eq!(high, p, "only the low five bits count");
        let keys = PassKeys::new(vec![("new".into(), vec![1; 32]), ("old".into(), vec![2; 32])]).unwrap();
        let (id, h) = keys.hash_new(&p, "rp", b"ada");
        assert_eq!(id, "new");
        assert!(keys.matches(&p, "rp", b"ada", "new", &h));
        assert!(!keys.matches(&p, "rp", b"bob", "new", &h), "bound to the user");
        assert!(!keys.matches(&p, "rp2", b"ada", "new", &h), "bound to the relying party");
        assert!(!keys.matches(&p, "rp", b"ada", "old", &h), "bound to the key");
        assert!(!keys.matches(&p, "rp", b"ada", "gone", &h), "a key no longer configured matches nothing");
        let other = Pass::from_random(&[3; SYMBOLS]);
        assert!(!keys.matches(&other, "rp", b"ada", "new", &h));
        // Length-prefixed: ("rpa", "") is not ("rp", "a").
        assert_ne!(keys.hash_new(&p, "rpa", b"").1, keys.hash_new(&p, "rp", b"a").1);
        assert!(PassKeys::new(vec![("k".into(), vec![1; 31])]).is_err(), "short secrets are refused");
        assert_eq!(format!("{keys:?}"), r#"["new", "old"]"#);
    }
}
