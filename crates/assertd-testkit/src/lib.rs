//! Test support for assertd (dev-only): a software authenticator that mints
//! real assertions with `ring`, a loader for the public WebAuthn vectors, and
//! small helpers.
//!
//! It is not a WebAuthn client: it does no CTAP; its attestation statements
//! (none, packed, fido-u2f) are built as the formats lay them out.

// Test support: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod authenticator;
pub mod cbor;
pub mod pg;
pub mod pki;
pub mod vectors;

pub use authenticator::{Alg, AssertionParts, Attestation, RegistrationParts, SoftAuthenticator};

use base64::Engine;

/// base64url without padding, as WebAuthn uses it.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url with or without padding.
pub fn from_b64url(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('='))
}
