//! The `tpm` attestation statement format (W3C WebAuthn L3 §8): arbitrary
//! statements never panic; see attestation_common.rs.
#![no_main]

#[path = "attestation_common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::run("tpm", data));
