//! Pure WebAuthn verification (W3C WebAuthn Level 3): the authentication
//! ceremony (§7.2), the registration ceremony (§7.1) with its attestation
//! statement formats (§8) and trust assessment, FIDO metadata (MDS3),
//! server-issued challenges, temporary access passes, and the Security Event
//! Tokens the server's Shared Signals transmitter signs.
//!
//! Parses `clientDataJSON`, `authenticatorData`, attestation objects and
//! COSE keys into typed values, checks them against a relying party, a
//! stored credential or trust anchors, and verifies signatures with `ring`.
//! The result lists every failed check with a stable [`ReasonCode`].
//!
//! What this crate does **not** do: it performs no I/O, keeps no state, reads
//! no clock, and makes no decisions about risk. It does not look up
//! credentials, compare signature counters against stored ones (that needs
//! the store), or decide whether UV, synced passkeys, cross-origin use,
//! attestation or legacy algorithms are acceptable: those are
//! `assertd-policy`'s.
//!
//! # The spec trail
//!
//! Step numbers are those of `index.bs` at w3c/webauthn commit `146d0db0`
//! (the commit `shared/vectors` cite), kept as data in [`spec`]. Every check
//! in the code carries its step as `§7.2 step 21 (signature)`, and
//! `tests/spec_trail.rs` fails on a number or name that is not in the
//! table; checks that go beyond the spec say "assertd rule". The tables
//! below are rendered from the same data.
//!
//! ## §7.1 Registering a New Credential
//!
//! <!-- §7.1 table -->
//! | step | name | the spec asks | done by | reason codes |
//! |---|---|---|---|---|
//! | 1 | options | build the creation options | the gateway and the browser |  |
//! | 2 | create | call navigator.credentials.create() | the gateway and the browser |  |
//! | 3 | response | the response is an AuthenticatorAttestationResponse | the gateway and the browser |  |
//! | 4 | extension results | read getClientExtensionResults() | the gateway and the browser |  |
//! | 5 | UTF-8 decode | JSONtext is the UTF-8 decode of clientDataJSON | verifier: [`ClientData::parse`] | `MALFORMED_CLIENT_DATA` |
//! | 6 | parse JSON | C is clientDataJSON parsed | verifier: [`ClientData::parse`] | `MALFORMED_CLIENT_DATA` |
//! | 7 | type | `C.type` is `webauthn.create` | verifier: [`verify_registration`] | `WRONG_CEREMONY_TYPE` |
//! | 8 | challenge | `C.challenge` is the options' challenge | verifier: [`verify_registration`], [`ChallengeKeys::open`] | `CHALLENGE_MISMATCH`, `CHALLENGE_INVALID`, `CHALLENGE_EXPIRED` |
//! | 9 | origin | `C.origin` is expected by the RP | verifier: [`RelyingParty::origin_allowed`] | `ORIGIN_NOT_ALLOWED` |
//! | 10 | crossOrigin | `crossOrigin` true only where the RP expects an iframe | policy: the profile's cross-origin rule | `CROSS_ORIGIN` |
//! | 11 | topOrigin | `topOrigin` only where expected, and an expected page | policy: the profile's top origins | `CROSS_ORIGIN` |
//! | 12 | hash | hash is SHA-256 of clientDataJSON | verifier: [`verify_registration`] |  |
//! | 13 | CBOR decode | decode the attestation object into fmt, authData, attStmt | verifier: `AttestationObject::parse`, [`AuthenticatorData::parse`] | `ATTESTATION_INVALID`, `MALFORMED_AUTHENTICATOR_DATA` |
//! | 14 | rpIdHash | `rpIdHash` is SHA-256 of the RP ID | verifier: [`verify_registration`] | `RP_ID_MISMATCH` |
//! | 15 | UP | UP set (unless mediation is conditional) | verifier: [`verify_registration`] | `USER_NOT_PRESENT` |
//! | 16 | UV | UV set where the RP requires it | policy: the profile's `user_verification` | `USER_NOT_VERIFIED` |
//! | 17 | BS without BE | BS not set when BE is not | verifier: [`verify_registration`] | `BACKUP_STATE_INVALID` |
//! | 18 | BE | BE informs policy | policy: the profile's passkey types | `PASSKEY_TYPE_NOT_ALLOWED` |
//! | 19 | BS | BS informs policy | policy: the profile's passkey types | `PASSKEY_TYPE_NOT_ALLOWED` |
//! | 20 | alg | the key's `alg` is one of `pubKeyCredParams` | verifier: [`PublicKey::from_cose`]; legacy algorithms: policy | `UNSUPPORTED_ALGORITHM`, `MALFORMED_AUTHENTICATOR_DATA` |
//! | 21 | fmt | `fmt` is a supported format | verifier: `attestation::verify_statement` | `ATTESTATION_FORMAT_UNSUPPORTED` |
//! | 22 | attestation statement | the statement verifies under its format (§8) | verifier: `attestation::verify_statement` | `ATTESTATION_INVALID` |
//! | 23 | trust anchors | acceptable trust anchors for the format, e.g. from FIDO metadata by AAGUID | verifier: configured roots per format and the metadata's for the AAGUID |  |
//! | 24 | assess trust | none or self attestation acceptable by policy, else the trust path reaches an anchor; fail when not trustworthy | verifier: `attestation::assess`; policy: `attestation_enforcement` | `ATTESTATION_UNTRUSTED`, `ATTESTATION_REQUIRED` |
//! | 25 | credentialId length | `credentialId` at most 1023 bytes | verifier: [`verify_registration`] | `MALFORMED_AUTHENTICATOR_DATA` |
//! | 26 | credentialId unique | `credentialId` not yet registered for any user | store: create-only insert | `CREDENTIAL_ALREADY_REGISTERED` |
//! | 27 | credential record | a new credential record from authData and the response | engine: the stored record |  |
//! | 28 | extensions | process client and authenticator extension outputs as the RP requires | verifier: [`AuthenticatorData::parse`] (well-formed, no trailing bytes); no output changes the verdict | `MALFORMED_AUTHENTICATOR_DATA` |
//! | 29 | store | store the record in the user's account and continue | store: with the challenge's use, one transaction | `STORE_UNAVAILABLE` |
//! <!-- end of §7.1 table -->
//!
//! ## §7.2 Verifying an Authentication Assertion
//!
//! <!-- §7.2 table -->
//! | step | name | the spec asks | done by | reason codes |
//! |---|---|---|---|---|
//! | 1 | options | build the request options | the gateway and the browser |  |
//! | 2 | get | call navigator.credentials.get() | the gateway and the browser |  |
//! | 3 | response | the response is an AuthenticatorAssertionResponse | the gateway and the browser |  |
//! | 4 | extension results | read getClientExtensionResults() | the gateway and the browser |  |
//! | 5 | allowCredentials | `credential.id` is one of `allowCredentials`, when it is not empty | engine: field checks (`Assertion.allowed_credential_ids`) | `CREDENTIAL_NOT_ALLOWED` |
//! | 6 | credential record | the identified user's credential record for `rawId`; `userHandle` equals the user's | engine: the store lookup; verifier: [`verify()`] | `CREDENTIAL_NOT_FOUND`, `CREDENTIAL_REVOKED`, `STORE_UNAVAILABLE`, `USER_HANDLE_MISMATCH` |
//! | 7 | response parts | name the response's three parts | verifier: [`AssertionInput`] |  |
//! | 8 | UTF-8 decode | JSONtext is the UTF-8 decode of cData | verifier: [`ClientData::parse`] | `MALFORMED_CLIENT_DATA` |
//! | 9 | parse JSON | C is cData parsed | verifier: [`ClientData::parse`] | `MALFORMED_CLIENT_DATA` |
//! | 10 | type | `C.type` is `webauthn.get` | verifier: [`verify()`] | `WRONG_CEREMONY_TYPE` |
//! | 11 | challenge | `C.challenge` is the options' challenge | verifier: [`verify()`], [`ChallengeKeys::open`] | `CHALLENGE_MISMATCH`, `CHALLENGE_INVALID`, `CHALLENGE_EXPIRED` |
//! | 12 | origin | `C.origin` is expected by the RP | verifier: [`RelyingParty::origin_allowed`] | `ORIGIN_NOT_ALLOWED` |
//! | 13 | crossOrigin | `crossOrigin` true only where the RP expects an iframe | policy: the profile's cross-origin rule | `CROSS_ORIGIN` |
//! | 14 | topOrigin | `topOrigin` only where expected, and an expected page | policy: the profile's top origins | `CROSS_ORIGIN` |
//! | 15 | rpIdHash | `rpIdHash` is SHA-256 of the RP ID (or the AppID's, §10.1.1) | verifier: [`verify()`] | `RP_ID_MISMATCH` |
//! | 16 | UP | UP set | verifier: [`verify()`] | `USER_NOT_PRESENT` |
//! | 17 | UV | UV set when user verification is required | policy: the profile's `user_verification` | `USER_NOT_VERIFIED` |
//! | 18 | BS without BE | BS not set when BE is not | verifier: [`verify()`] | `BACKUP_STATE_INVALID` |
//! | 19 | backup state | BE equals the record's; RP policy on BE and BS | policy: `assertd_policy::evaluate` | `BACKUP_ELIGIBILITY_CHANGED`, `PASSKEY_TYPE_NOT_ALLOWED` |
//! | 20 | hash | hash is SHA-256 of cData | verifier: [`verify()`] |  |
//! | 21 | signature | `sig` verifies over authData ‖ hash with the record's key | verifier: [`verify()`], [`PublicKey::verify`] | `SIGNATURE_INVALID`, `MALFORMED_SIGNATURE`, `UNSUPPORTED_ALGORITHM` |
//! | 22 | signCount | a nonzero count must exceed the record's; otherwise a signal of a cloned authenticator | store: compare-and-set, [`sign_count_advances`]; policy: deny or step up | `SIGN_COUNT_REGRESSION`, `SIGN_COUNT_DEFERRED` |
//! | 23 | extensions | process client and authenticator extension outputs as the RP requires | verifier: [`AuthenticatorData::parse`] (well-formed, no trailing bytes); no output changes the verdict | `MALFORMED_AUTHENTICATOR_DATA` |
//! | 24 | update record | update signCount, backupState and uvInitialized, after any further checks | store: signCount in the same compare-and-set; a BE upgrade the profile allows, after policy and for an allowed verdict only; backupState and uvInitialized are kept as registered |  |
//! | 25 | continue | continue the ceremony when every step succeeded | engine: the verdict |  |
//! <!-- end of §7.2 table -->
//!
//! assertd rules beyond the spec: field sizes capped before parsing
//! (`INVALID_REQUEST`); the caller's grant (`RP_NOT_AUTHORIZED`); unpadded
//! base64url challenges only; `topOrigin` only with `crossOrigin: true`;
//! duplicate JSON members refused; DER-only ECDSA; a stored key that cannot be
//! used (`UNSUPPORTED_ALGORITHM`); legacy algorithms only where a profile
//! allows them; a create() response without attested credential data (AT)
//! refused (`MALFORMED_AUTHENTICATOR_DATA`); the profile's passkey types,
//! attestation and AAGUID rules.

pub mod access_pass;
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
pub mod response;
pub mod security_event;
pub mod spec;
mod text;
pub mod verify;

pub use authenticator_data::{AuthenticatorData, Flags};
pub use challenge::{Ceremony, ChallengeKeys, Opened};
pub use client_data::ClientData;
pub use cose::{Algorithm, KeyError, PublicKey};
pub use reason::{Finding, ReasonCode};
pub use registration::{AttestationReport, NewCredential, Registration, RegistrationInput, TrustInput, verify_registration};
pub use relying_party::{RelyingParty, parse_web_origin};
pub use response::{Attachment, AuthenticationResponse, RegistrationResponse, ResponseJsonError};
pub use text::{truncate, truncate_to};
pub use verify::{AssertionInput, AuthenticatorFacts, Challenge, CredentialInput, Verification, sign_count_advances, verify};
