//! The assertion verifier: WebAuthn L3 §7.2 steps 6–21 (credential record … signature) for a verifier that
//! already holds the credential record. It reports every failed check and
//! the facts the policy engine needs; it decides nothing about risk. The
//! step table is in the crate documentation.

use crate::authenticator_data::{AuthenticatorData, Flags};
use crate::client_data::ClientData;
use crate::cose::{Algorithm, PublicKey, SignatureError};
use crate::reason::{Finding, ReasonCode};
use crate::relying_party::RelyingParty;
use crate::text::truncate;
use base64::Engine;
use ring::digest;

/// The parts of an assertion response, as the client sent them.
#[derive(Debug, Clone, Copy)]
pub struct AssertionInput<'a> {
    /// `response.clientDataJSON`.
    pub client_data_json: &'a [u8],
    /// `response.authenticatorData`.
    pub authenticator_data: &'a [u8],
    /// `response.signature`.
    pub signature: &'a [u8],
    /// `response.userHandle`; empty when the client sent none.
    pub user_handle: &'a [u8],
    /// The user the RP identified before the ceremony (username-first);
    /// empty when it did not (a discoverable-credential sign-in).
    pub expected_user_handle: &'a [u8],
    /// How the challenge in clientDataJSON is checked.
    pub challenge: Challenge<'a>,
    /// The client reported the AppID extension as used (§10.1.1).
    pub appid_used: bool,
}

/// How §7.2 step 11 (challenge) checks the challenge.
#[derive(Debug, Clone, Copy)]
pub enum Challenge<'a> {
    /// The raw challenge the RP issued and kept: the decoded challenge must
    /// equal it (`CHALLENGE_MISMATCH`).
    Expected(&'a [u8]),
    /// A challenge issued by this service ([`crate::challenge`]): it must
    /// open under `keys` for this RP and the credential's user, at `now`
    /// (Unix seconds) within `skew` seconds (`CHALLENGE_INVALID`,
    /// `CHALLENGE_EXPIRED`). Single use is the caller's to enforce, by
    /// [`Verification::issued_challenge`].
    Issued {
        /// The keys that verify.
        keys: &'a crate::challenge::ChallengeKeys,
        /// Now, Unix seconds.
        now: u64,
        /// Seconds allowed past the expiry.
        skew: u64,
    },
}

/// The stored credential, as far as verification needs it.
#[derive(Debug, Clone, Copy)]
pub struct CredentialInput<'a> {
    /// The prepared public key.
    pub key: &'a PublicKey,
    /// The user handle stored at registration.
    pub user_handle: &'a [u8],
}

/// What the authenticator data said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatorFacts {
    /// The flags byte.
    pub flags: Flags,
    /// The signature counter.
    pub sign_count: u32,
}

/// The verifier's report for one assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Every check that failed. Empty means the assertion is authentic and
    /// bound to this RP, origin and challenge.
    pub failures: Vec<Finding>,
    /// Set whenever authenticatorData parsed.
    pub authenticator: Option<AuthenticatorFacts>,
    /// Set when clientDataJSON parsed and the ceremony ran cross-origin
    /// (`crossOrigin: true` or a `topOrigin`); holds the top origin if given,
    /// in full (quote it through [`truncate`]).
    pub cross_origin: Option<Option<String>>,
    /// The credential key's algorithm.
    pub algorithm: Algorithm,
    /// The server-issued challenge, when it opened (single use is recorded
    /// under its id).
    pub issued_challenge: Option<crate::challenge::Opened>,
}

impl Verification {
    /// True when no check failed.
    pub fn is_valid(&self) -> bool {
        self.failures.is_empty()
    }

    /// True when the signature verified with the credential's key: only then
    /// may a verdict say anything about the stored credential (its user
    /// handle, its AAGUID) to the caller.
    pub fn signature_verified(&self) -> bool {
        !self.failures.iter().any(|f| matches!(f.code, ReasonCode::SignatureInvalid | ReasonCode::MalformedSignature))
    }
}

/// Verifies one assertion against a stored credential and an RP.
///
/// Every check runs even after one fails, so a verdict can list all that is
/// wrong; a part that does not parse skips only the checks that need it.
pub fn verify(rp: &RelyingParty, credential: CredentialInput<'_>, a: &AssertionInput<'_>) -> Verification {
    let mut failures = Vec::new();
    let mut fail = |code: ReasonCode, message: String| failures.push(Finding::new(code, message));

    // §7.2 step 6 (credential record): "If the user was identified before the authentication
    // ceremony was initiated, ... verify that the identified user account
    // contains a credential record whose id equals credential.rawId": the
    // credential must belong to the expected user.
    // assertd rule: reported only once the signature verified (below), so
    // a forged assertion cannot learn whether credential X is user U's.
    let mut user_mismatch = Vec::new();
    if !a.expected_user_handle.is_empty() && a.expected_user_handle != credential.user_handle {
        user_mismatch.push(Finding::new(ReasonCode::UserHandleMismatch, "the credential belongs to another user than the expected one"));
    }
    // §7.2 step 6 (credential record): "If response.userHandle is present, verify that it equals
    // the user handle of the user account." (Finding the credential record
    // is the engine's lookup, before this function; when the user was
    // identified, the account's handle is the expected one, which the
    // check above holds equal to the credential's.)
    if !a.user_handle.is_empty() && a.user_handle != credential.user_handle {
        user_mismatch.push(Finding::new(ReasonCode::UserHandleMismatch, "userHandle differs from the credential's user handle"));
    }

    // §7.2 step 7 (response parts): cData, authData, sig are the three inputs.
    // §7.2 steps 8–9 (UTF-8 decode, parse JSON): JSONtext = UTF-8 decode(cData); C = parse JSON.
    let mut cross_origin = None;
    let mut issued_challenge = None;
    match ClientData::parse(a.client_data_json) {
        Err(e) => fail(ReasonCode::MalformedClientData, e.to_string()),
        Ok(c) => {
            // §7.2 steps 10–12 (type, challenge, origin); §7.2 steps 13–14
            // (crossOrigin, topOrigin) are policy.
            let checked = check_client_data(rp, &c, crate::challenge::Ceremony::SignIn, a.challenge, credential.user_handle, &mut fail);
            cross_origin = checked.0;
            issued_challenge = checked.1;
        }
    }

    let mut authenticator = None;
    match AuthenticatorData::parse(a.authenticator_data) {
        Err(e) => fail(ReasonCode::MalformedAuthenticatorData, e.to_string()),
        Ok(ad) => {
            authenticator = Some(AuthenticatorFacts { flags: ad.flags, sign_count: ad.sign_count });
            // §7.2 step 15 (rpIdHash): "Verify that the rpIdHash in authData is the
            // SHA-256 hash of the RP ID expected by the Relying Party."
            // §10.1.1: when the AppID extension was used, the hash of the
            // AppID instead.
            let expected = if a.appid_used { rp.appid_hash() } else { Some(rp.rp_id_hash()) };
            match expected {
                Some(h) if h == ad.rp_id_hash => {}
                Some(_) if a.appid_used => fail(ReasonCode::RpIdMismatch, "rpIdHash is not SHA-256 of the RP's AppID".into()),
                Some(_) => fail(ReasonCode::RpIdMismatch, format!("rpIdHash is not SHA-256 of {:?}", rp.id())),
                None => fail(ReasonCode::RpIdMismatch, "the AppID extension was used but the RP has no appid configured".into()),
            }
            // §7.2 step 16 (UP): "Verify that the UP bit of the flags in
            // authData is set." (§7.2 step 17 (UV) is the profile's.)
            if !ad.flags.user_present() {
                fail(ReasonCode::UserNotPresent, "the UP flag is not set".into());
            }
            // §7.2 step 18 (BS without BE): "If the BE bit of the flags in
            // authData is not set, verify that the BS bit is not set."
            // (§7.2 step 19 (backup state), BE against the credential
            // record, is the profile's.) §7.2 step 23 (extensions): the
            // parser refuses malformed extensions and trailing bytes; no
            // extension's output changes the verdict.
            if !ad.flags.backup_eligible() && ad.flags.backup_state() {
                fail(ReasonCode::BackupStateInvalid, "BS is set while BE is not".into());
            }
        }
    }

    // §7.2 step 20 (hash): "Let hash be the result of computing a hash over
    // the cData using SHA-256." §7.2 step 21 (signature): verify sig over
    // the binary concatenation of authData and hash with the credential
    // record's public key.
    // Signed bytes are checked even when a parse above failed: a signature
    // over garbage still says whether the bytes are authentic.
    let hash = digest::digest(&digest::SHA256, a.client_data_json);
    let mut message = Vec::with_capacity(a.authenticator_data.len() + 32);
    message.extend_from_slice(a.authenticator_data);
    message.extend_from_slice(hash.as_ref());
    match credential.key.verify(&message, a.signature) {
        Ok(()) => {}
        Err(SignatureError::Malformed) => fail(
            ReasonCode::MalformedSignature,
            format!("signature of {} bytes is not well-formed for {}", a.signature.len(), credential.key.algorithm().name()),
        ),
        Err(_) => fail(ReasonCode::SignatureInvalid, format!("{} signature does not verify", credential.key.algorithm().name())),
    }
    let verified = !failures.iter().any(|f| matches!(f.code, ReasonCode::SignatureInvalid | ReasonCode::MalformedSignature));
    if verified {
        failures.splice(0..0, user_mismatch);
    }

    Verification { failures, authenticator, cross_origin, algorithm: credential.key.algorithm(), issued_challenge }
}

/// The client-data checks that sign-in (§7.2 steps 10–12 (type, challenge,
/// origin)) and registration (§7.1 steps 7–9 (type, challenge, origin))
/// share, and the cross-origin report for the profile. Returns the cross-origin report (the top origin in
/// full, if any) and the opened server-issued challenge.
pub(crate) fn check_client_data(
    rp: &RelyingParty,
    c: &ClientData<'_>,
    ceremony: crate::challenge::Ceremony,
    challenge: Challenge<'_>,
    user_handle: &[u8],
    fail: &mut impl FnMut(ReasonCode, String),
) -> (Option<Option<String>>, Option<crate::challenge::Opened>) {
    let mut issued_challenge = None;
    let expected_type = ceremony.client_data_type();
    // §7.2 step 10 / §7.1 step 7 (type): "Verify that the value of C.type is"
    // webauthn.get / webauthn.create.
    if c.ty != expected_type {
        fail(ReasonCode::WrongCeremonyType, format!("clientDataJSON.type is {:?}, expected {expected_type:?}", truncate(&c.ty)));
    }
    // §7.2 step 11 / §7.1 step 8 (challenge): "Verify that the value of C.challenge
    // equals the base64url encoding of options.challenge." Compared in
    // constant time; padding or non-base64url characters are refused (an
    // assertd rule: the encoding is unpadded base64url, §5.8.1). A
    // server-issued challenge is options.challenge by construction when it
    // opens: authentic, for this RP and user, unexpired.
    match (base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c.challenge.as_bytes()), challenge) {
        (Ok(got), Challenge::Expected(expected)) if ring_eq(&got, expected) => {}
        (Ok(_), Challenge::Expected(_)) => {
            fail(ReasonCode::ChallengeMismatch, "clientDataJSON.challenge is not the expected challenge".into());
        }
        (Ok(got), Challenge::Issued { keys, now, skew }) => match keys.open(&got, rp.id(), user_handle, ceremony, now, skew) {
            Ok(opened) => issued_challenge = Some(opened),
            Err((code, message)) => fail(code, message),
        },
        (Err(_), Challenge::Expected(_)) => {
            fail(ReasonCode::ChallengeMismatch, "clientDataJSON.challenge is not unpadded base64url".into());
        }
        (Err(_), Challenge::Issued { .. }) => {
            fail(ReasonCode::ChallengeInvalid, "clientDataJSON.challenge is not unpadded base64url".into());
        }
    }
    // §7.2 step 12 / §7.1 step 9 (origin): "Verify that the value of C.origin is an
    // origin expected by the Relying Party" (exact match, or the RP's
    // configured subdomain rule).
    if !rp.origin_allowed(&c.origin) {
        fail(ReasonCode::OriginNotAllowed, format!("origin {:?} is not allowed for RP {:?}", truncate(&c.origin), rp.id()));
    }
    // assertd rule, from §5.8.1: topOrigin is set only when crossOrigin is
    // true; one without the other is malformed. §7.2 steps 13–14 / §7.1
    // steps 10–11 (crossOrigin, topOrigin), whether the RP expects them,
    // are policy: the verifier reports, the profile decides.
    if c.top_origin.is_some() && c.cross_origin != Some(true) {
        fail(ReasonCode::MalformedClientData, "topOrigin is present but crossOrigin is not true".into());
    }
    // In full: policy compares it with the allowed top origins (a truncated
    // value could match a prefix).
    let cross_origin = c.is_cross_origin().then(|| c.top_origin.as_deref().map(str::to_owned));
    (cross_origin, issued_challenge)
}

/// Equality that does not leak where two byte strings differ.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The signature-counter rule (§7.2 step 22 (signCount)): true when the received
/// count may be accepted after `stored`. Both zero means the authenticator
/// does not implement a counter; otherwise the count must strictly grow.
pub fn sign_count_advances(stored: u32, received: u32) -> bool {
    (stored == 0 && received == 0) || received > stored
}
