//! Pure WebAuthn assertion verification (W3C WebAuthn Level 3 §7.2).
//!
//! Parses `clientDataJSON`, `authenticatorData` and COSE keys into typed
//! values, checks them against a relying party and a stored credential, and
//! verifies signatures with `ring`. The result lists every failed check with a
//! stable [`ReasonCode`].
//!
//! What this crate does **not** do: it performs no I/O, keeps no state, reads
//! no clock, and makes no decisions about risk. It does not look up
//! credentials, compare signature counters against stored ones (that needs
//! the store), or decide whether UV, synced passkeys, cross-origin use or
//! legacy algorithms are acceptable: those are `assertd-policy`'s.
//!
//! # The spec trail
//!
//! W3C WebAuthn Level 3 §7.2 "Verifying an Authentication Assertion", step
//! numbers as in the editor's draft at w3c/webauthn commit `146d0db0` (the
//! commit `shared/vectors` cite). Every check in the code carries its step;
//! checks that go beyond the spec say "assertd rule". Steps 1–4 happen in the
//! browser and the gateway.
//!
//! | step | what | where | reason code | decided by |
//! |---|---|---|---|---|
//! | 5 | `credential.id` in `allowCredentials` (`Assertion.allowed_credential_ids`) | `assertd::engine` field checks, `fields::target` | `CREDENTIAL_NOT_ALLOWED` | engine |
//! | 6 | credential record found, not revoked | `assertd::engine` resolve stage, `assess::found` | `CREDENTIAL_NOT_FOUND`, `CREDENTIAL_REVOKED`, `STORE_UNAVAILABLE` | store |
//! | 6 | the record belongs to the identified user (`expected_user_handle`); `userHandle` equals the record's | [`verify()`] | `USER_HANDLE_MISMATCH` | verifier |
//! | 7–9 | UTF-8 decode and parse `clientDataJSON` | [`ClientData::parse`] | `MALFORMED_CLIENT_DATA` | verifier |
//! | 10 | `C.type` is `webauthn.get` | [`verify()`] | `WRONG_CEREMONY_TYPE` | verifier |
//! | 11 | `C.challenge` is the expected challenge | [`verify()`] | `CHALLENGE_MISMATCH` | verifier |
//! | 12 | `C.origin` expected by the RP | [`verify()`], [`RelyingParty::origin_allowed`] | `ORIGIN_NOT_ALLOWED` | verifier |
//! | 13–14 | `crossOrigin`, `topOrigin` expected | `assertd_policy::evaluate` | `CROSS_ORIGIN` | policy |
//! | 15 | `rpIdHash` (or the AppID's, §10.1.1) | [`verify()`] | `RP_ID_MISMATCH` | verifier |
//! | 16 | UP set | [`verify()`] | `USER_NOT_PRESENT` | verifier |
//! | 17 | UV set where required | `assertd_policy::evaluate` | `USER_NOT_VERIFIED` | policy |
//! | 18 | BS not set without BE | [`verify()`] | `BACKUP_STATE_INVALID` | verifier |
//! | 19 | BE against the record | `assertd_policy::evaluate` | `BACKUP_ELIGIBILITY_CHANGED` | policy |
//! | 20 | extensions well-formed, no trailing bytes | [`AuthenticatorData::parse`] | `MALFORMED_AUTHENTICATOR_DATA` | verifier |
//! | 21–22 | signature over `authData ‖ SHA-256(cData)` | [`verify()`], [`PublicKey::verify`] | `SIGNATURE_INVALID`, `MALFORMED_SIGNATURE` | verifier |
//! | 23 | sign count advances | store compare-and-set, [`sign_count_advances`]; `assertd_policy::evaluate` | `SIGN_COUNT_REGRESSION`, `SIGN_COUNT_DEFERRED` | store, policy |
//! | 24 | attestation in assertions | not supported (ignored) | | |
//! | 25 | update the record (count, BE upgrade) | store compare-and-set | | store |
//!
//! assertd rules beyond the spec: field sizes capped before parsing
//! (`INVALID_REQUEST`); the caller's grant (`RP_NOT_AUTHORIZED`); unpadded
//! base64url challenges only; `topOrigin` only with `crossOrigin: true`;
//! duplicate JSON members refused; DER-only ECDSA; a stored key that cannot be
//! used (`UNSUPPORTED_ALGORITHM`); legacy algorithms only where a profile
//! allows them; the profile's passkey types, attestation and AAGUID rules.

pub mod attestation;
pub mod authenticator_data;
pub mod cbor;
pub mod challenge;
pub mod client_data;
pub mod cose;
pub mod metadata;
pub mod reason;
pub mod registration;
pub mod relying_party;
pub mod verify;

pub use authenticator_data::{AuthenticatorData, Flags};
pub use challenge::{Ceremony, ChallengeKeys, Opened};
pub use client_data::ClientData;
pub use cose::{Algorithm, KeyError, PublicKey};
pub use reason::{Finding, ReasonCode};
pub use registration::{AttestationReport, NewCredential, Registration, RegistrationInput, TrustInput, verify_registration};
pub use relying_party::{RelyingParty, parse_web_origin};
pub use verify::{
    AssertionInput, AuthenticatorFacts, Challenge, CredentialInput, Verification, sign_count_advances, truncate, truncate_to, verify,
};
