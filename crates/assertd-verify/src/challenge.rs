//! Server-issued challenges: self-authenticating, so any replica holding the
//! keys can check one without shared state (single use is the engine's
//! job, by the challenge's [`Opened::id`]).
//!
//! Layout (version 1), every field fixed or length-prefixed:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `1` |
//! | 1 | key id length `L` (1–32) |
//! | `L` | key id (ASCII) |
//! | 8 | expiry, Unix seconds, big-endian |
//! | 1 | flags: bit 0 set when bound to a user handle; bit 1 set for a registration (else a sign-in) |
//! | 16 | random (ring's `SystemRandom`, drawn by the caller) |
//! | 32 | HMAC-SHA-256 tag |
//!
//! The tag covers a domain label, every byte before it, the relying party
//! ID and, when bound, the user handle (each length-prefixed), so a
//! challenge issued for one RP or user opens for no other; the flags byte
//! is covered too, so a sign-in challenge never opens for a registration
//! or the other way round. The RP ID and
//! user handle are not in the challenge: the verifier supplies them from
//! the assertion and the stored credential.
//!
//! Pure: no clock, no randomness, no I/O; the caller passes both in.

use crate::reason::ReasonCode;
use ring::{digest, hmac};

/// Smallest secret accepted for a key, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 32;
/// Random bytes per challenge.
pub const NONCE_LEN: usize = 16;

const VERSION: u8 = 1;
const TAG_LEN: usize = 32;
const BOUND_TO_USER: u8 = 1;
const REGISTRATION: u8 = 2;
const KNOWN_FLAGS: u8 = BOUND_TO_USER | REGISTRATION;
const DOMAIN: &[u8] = b"assertd issued challenge v1\0";

/// The ceremony a challenge is issued for: it opens for that one only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ceremony {
    /// An assertion (`navigator.credentials.get`, §7.2).
    #[default]
    SignIn,
    /// A registration (`navigator.credentials.create`, §7.1).
    Registration,
}

impl Ceremony {
    /// The `clientDataJSON.type` of the ceremony (§5.8.1).
    pub const fn client_data_type(self) -> &'static str {
        match self {
            Self::SignIn => "webauthn.get",
            Self::Registration => "webauthn.create",
        }
    }

    const fn flag(self) -> u8 {
        match self {
            Self::SignIn => 0,
            Self::Registration => REGISTRATION,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::SignIn => "a sign-in",
            Self::Registration => "a registration",
        }
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The id is empty, too long, or not printable ASCII.
    #[error("a key id is 1 to {MAX_KEY_ID_LEN} printable ASCII characters")]
    BadId,
    /// The secret is under [`MIN_SECRET_LEN`] bytes.
    #[error("the secret is {0} bytes; at least {MIN_SECRET_LEN} are required")]
    ShortSecret(usize),
    /// Two keys share an id.
    #[error("key id {0:?} is used twice")]
    DuplicateId(String),
    /// No key at all.
    #[error("at least one key is required")]
    NoKeys,
}

/// HMAC-SHA256 keys from `(id, secret)` pairs, checked: at least one,
/// ids printable and distinct, secrets of [`MIN_SECRET_LEN`] bytes or more.
pub(crate) fn keyed(keys: Vec<(String, Vec<u8>)>) -> Result<Vec<(String, hmac::Key)>, KeyProblem> {
    if keys.is_empty() {
        return Err(KeyProblem::NoKeys);
    }
    let mut out: Vec<(String, hmac::Key)> = Vec::with_capacity(keys.len());
    for (id, secret) in keys {
        if id.is_empty() || id.len() > MAX_KEY_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyProblem::BadId);
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyProblem::ShortSecret(secret.len()));
        }
        if out.iter().any(|(k, _)| *k == id) {
            return Err(KeyProblem::DuplicateId(id));
        }
        out.push((id, hmac::Key::new(hmac::HMAC_SHA256, &secret)));
    }
    Ok(out)
}

/// The challenge keys: the first signs, every one verifies (rotation: put
/// the new key first, keep the old one until its challenges expired).
#[derive(Clone)]
pub struct ChallengeKeys {
    keys: Vec<(String, hmac::Key)>,
}

impl std::fmt::Debug for ChallengeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_list().entries(self.keys.iter().map(|(id, _)| id)).finish()
    }
}

/// A challenge that opened: authentic, bound to this RP (and user), not
/// expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// SHA-256 of the challenge: what single use is recorded under.
    pub id: [u8; 32],
    /// When it expires, Unix seconds.
    pub expires_at: u64,
}

/// Why a challenge did not open: the reason code and a message for the
/// verdict.
pub type Refusal = (ReasonCode, String);

impl ChallengeKeys {
    /// Keys from `(id, secret)` pairs, the signing key first.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Result<Self, KeyProblem> {
        Ok(Self { keys: keyed(keys)? })
    }

    /// The signing key's id.
    pub fn signing_key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// A challenge for `ceremony` at `rp_id` (and `user_handle` when
    /// non-empty) expiring at `expires_at` (Unix seconds), signed with the
    /// first key.
    pub fn issue(&self, rp_id: &str, user_handle: &[u8], ceremony: Ceremony, expires_at: u64, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let (id, key) = &self.keys[0];
        let mut c = Vec::with_capacity(2 + id.len() + 8 + 1 + NONCE_LEN + TAG_LEN);
        c.push(VERSION);
        // Checked in `new`: at most 32.
        c.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        c.extend_from_slice(id.as_bytes());
        c.extend_from_slice(&expires_at.to_be_bytes());
        c.push(if user_handle.is_empty() { 0 } else { BOUND_TO_USER } | ceremony.flag());
        c.extend_from_slice(&nonce);
        let tag = tag(key, &c, rp_id, user_handle);
        c.extend_from_slice(tag.as_ref());
        c
    }

    /// Opens `challenge` (the raw bytes from clientDataJSON) for `ceremony`
    /// at `rp_id` with a credential of `user_handle`, at `now` (Unix
    /// seconds), allowing `skew` seconds past the expiry. The tag is checked
    /// first, in constant time; nothing else in the challenge is trusted
    /// before it.
    pub fn open(
        &self,
        challenge: &[u8],
        rp_id: &str,
        user_handle: &[u8],
        ceremony: Ceremony,
        now: u64,
        skew: u64,
    ) -> Result<Opened, Refusal> {
        let invalid = |why: &str| (ReasonCode::ChallengeInvalid, format!("the issued challenge {why}"));
        let [version, id_len, rest @ ..] = challenge else { return Err(invalid("is malformed (too short)")) };
        if *version != VERSION {
            return Err(invalid("is malformed (unknown version)"));
        }
        let id_len = usize::from(*id_len);
        if id_len == 0 || id_len > MAX_KEY_ID_LEN || rest.len() != id_len + 8 + 1 + NONCE_LEN + TAG_LEN {
            return Err(invalid("is malformed (wrong length)"));
        }
        let (id, rest) = rest.split_at(id_len);
        let Some((_, key)) = self.keys.iter().find(|(k, _)| k.as_bytes() == id) else {
            return Err(invalid("names a key this server does not hold (replicas must share [challenges] keys)"));
        };
        let (signed, given) = challenge.split_at(challenge.len() - TAG_LEN);
        let flags = rest[8];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(invalid("is malformed (unknown flags)"));
        }
        let bound_user: &[u8] = if flags & BOUND_TO_USER != 0 { user_handle } else { &[] };
        if flags & BOUND_TO_USER != 0 && user_handle.is_empty() {
            return Err(invalid("is bound to a user, and the credential has no user handle"));
        }
        if hmac::verify(key, &message(signed, rp_id, bound_user), given).is_err() {
            let what = if bound_user.is_empty() { "relying party" } else { "relying party or user" };
            return Err(invalid(&format!("does not verify: tampered, or issued for another {what}")));
        }
        // Authentic from here on: the ceremony it was issued for.
        let issued_for = if flags & REGISTRATION != 0 { Ceremony::Registration } else { Ceremony::SignIn };
        if issued_for != ceremony {
            return Err(invalid(&format!("was issued for {}, not {}", issued_for.name(), ceremony.name())));
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&rest[..8]);
        let expires_at = u64::from_be_bytes(expiry);
        if now > expires_at.saturating_add(skew) {
            return Err((ReasonCode::ChallengeExpired, format!("the issued challenge expired {} s ago", now - expires_at)));
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(digest::digest(&digest::SHA256, challenge).as_ref());
        Ok(Opened { id, expires_at })
    }
}

/// What the tag covers.
fn message(signed: &[u8], rp_id: &str, user_handle: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + signed.len() + 4 + rp_id.len() + user_handle.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(signed);
    // Length-prefixed, so no (rp, user) pair reads as another.
    m.extend_from_slice(&u16::try_from(rp_id.len()).unwrap_or(u16::MAX).to_be_bytes());
    m.extend_from_slice(rp_id.as_bytes());
    m.extend_from_slice(&u16::try_from(user_handle.len()).unwrap_or(u16::MAX).to_be_bytes());
    m.extend_from_slice(user_handle);
    m
}

fn tag(key: &hmac::Key, signed: &[u8], rp_id: &str, user_handle: &[u8]) -> hmac::Tag {
    hmac::sign(key, &message(signed, rp_id, user_handle))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const S: Ceremony = Ceremony::SignIn;

    fn keys(ids: &[&str]) -> ChallengeKeys {
        ChallengeKeys::new(ids.iter().map(|id| (id.to_string(), vec![id.as_bytes()[0]; 32])).collect()).unwrap()
    }

    #[test]
    fn opens_only_for_its_rp_user_and_time() {
        let k = keys(&["k1"]);
        let c = k.issue("rp", b"alice", S, 1000, [7; NONCE_LEN]);
        let ok = k.open(&c, "rp", b"alice", S, 1000, 0).unwrap();
        assert_eq!(ok.expires_at, 1000);
        let code = |r: Result<Opened, Refusal>| r.unwrap_err().0;
        assert_eq!(code(k.open(&c, "rp2", b"alice", S, 1000, 0)), ReasonCode::ChallengeInvalid);
        assert_eq!(code(k.open(&c, "rp", b"bob", S, 1000, 0)), ReasonCode::ChallengeInvalid);
        assert_eq!(code(k.open(&c, "rp", b"", S, 1000, 0)), ReasonCode::ChallengeInvalid);
        assert_eq!(code(k.open(&c, "rp", b"alice", S, 1001, 0)), ReasonCode::ChallengeExpired);
        assert!(k.open(&c, "rp", b"alice", S, 1030, 30).is_ok(), "within the skew");
        // Unbound: any user of the RP.
        let c = k.issue("rp", b"", S, 1000, [7; NONCE_LEN]);
        assert!(k.open(&c, "rp", b"bob", S, 1000, 0).is_ok());
    }

    #[test]
    fn opens_only_for_its_ceremony() {
        let k = keys(&["k1"]);
        let sign_in = k.issue("rp", b"alice", Ceremony::SignIn, 1000, [7; NONCE_LEN]);
        let registration = k.issue("rp", b"alice", Ceremony::Registration, 1000, [7; NONCE_LEN]);
        assert!(k.open(&sign_in, "rp", b"alice", Ceremony::SignIn, 1000, 0).is_ok());
        assert!(k.open(&registration, "rp", b"alice", Ceremony::Registration, 1000, 0).is_ok());
        let (code, why) = k.open(&sign_in, "rp", b"alice", Ceremony::Registration, 1000, 0).unwrap_err();
        assert_eq!(code, ReasonCode::ChallengeInvalid);
        assert!(why.contains("issued for a sign-in, not a registration"), "{why}");
        let (code, why) = k.open(&registration, "rp", b"alice", Ceremony::SignIn, 1000, 0).unwrap_err();
        assert_eq!(code, ReasonCode::ChallengeInvalid);
        assert!(why.contains("issued for a registration, not a sign-in"), "{why}");
        // The ceremony bit is authenticated: flipping it breaks the tag.
        let mut flipped = sign_in.clone();
        flipped[2 + 2 + 8] ^= REGISTRATION;
        let (_, why) = k.open(&flipped, "rp", b"alice", Ceremony::Registration, 1000, 0).unwrap_err();
        assert!(why.contains("does not verify"), "{why}");
    }

    #[test]
    fn every_byte_is_authenticated() {
        let k = keys(&["k1"]);
        let c = k.issue("rp", b"alice", S, 1000, [7; NONCE_LEN]);
        for i in 0..c.len() {
            for bit in [1u8, 0x80] {
                let mut t = c.clone();
                t[i] ^= bit;
                let r = k.open(&t, "rp", b"alice", S, 0, 0);
                assert_eq!(r.unwrap_err().0, ReasonCode::ChallengeInvalid, "byte {i} bit {bit:#x}");
            }
        }
        for n in 0..c.len() {
            assert!(k.open(&c[..n], "rp", b"alice", S, 0, 0).is_err());
        }
        let mut longer = c.clone();
        longer.push(0);
        assert!(k.open(&longer, "rp", b"alice", S, 0, 0).is_err());
    }

    #[test]
    fn rotation_the_first_signs_all_verify() {
        let old = keys(&["old"]);
        let c = old.issue("rp", b"", S, 1000, [1; NONCE_LEN]);
        let both = keys(&["new", "old"]);
        assert!(both.open(&c, "rp", b"", S, 0, 0).is_ok());
        let fresh = both.issue("rp", b"", S, 1000, [1; NONCE_LEN]);
        assert_eq!(&fresh[2..5], b"new");
        assert_eq!(old.open(&fresh, "rp", b"", S, 0, 0).unwrap_err().0, ReasonCode::ChallengeInvalid, "unknown key id");
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(ChallengeKeys::new(vec![]).unwrap_err(), KeyProblem::NoKeys);
        assert_eq!(ChallengeKeys::new(vec![("k".into(), vec![0; 31])]).unwrap_err(), KeyProblem::ShortSecret(31));
        assert_eq!(ChallengeKeys::new(vec![("".into(), vec![0; 32])]).unwrap_err(), KeyProblem::BadId);
        assert_eq!(ChallengeKeys::new(vec![("a b".into(), vec![0; 32])]).unwrap_err(), KeyProblem::BadId);
        assert_eq!(
            ChallengeKeys::new(vec![("k".into(), vec![0; 32]), ("k".into(), vec![1; 32])]).unwrap_err(),
            KeyProblem::DuplicateId("k".into())
        );
        let shown = format!("{:?}", keys(&["k1"]));
        assert!(shown.contains("k1") && !shown.contains("107"), "ids only, never secrets: {shown}");
    }
}
