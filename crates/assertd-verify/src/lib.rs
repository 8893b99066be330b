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

pub mod authenticator_data;
pub mod cbor;
pub mod client_data;
pub mod cose;
pub mod reason;
pub mod relying_party;
pub mod verify;

pub use authenticator_data::{AuthenticatorData, Flags};
pub use client_data::ClientData;
pub use cose::{Algorithm, KeyError, PublicKey};
pub use reason::{Finding, ReasonCode};
pub use relying_party::RelyingParty;
pub use verify::{AssertionInput, AuthenticatorFacts, CredentialInput, Verification, sign_count_advances, truncate, verify};
