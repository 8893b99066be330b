//! A whole registration (W3C WebAuthn L3 §7.1): the input is split into
//! clientDataJSON and an attestation object. Whatever the bytes, the
//! verifier returns a report (no panic, no hang, bounded memory), and a
//! fuzzed attestation is never trusted (no anchors are configured).
#![no_main]

use assertd_verify::attestation::TrustAnchors;
use assertd_verify::{Challenge, RegistrationInput, RelyingParty, TrustInput, verify_registration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (client_data_json, attestation_object) = rest.split_at(usize::from(n).min(rest.len()));
    let rp = RelyingParty::new("example.org", vec!["https://example.org".into()], false, None);
    let anchors = TrustAnchors::default();
    let input = RegistrationInput { client_data_json, attestation_object, user_handle: b"u", challenge: Challenge::Expected(b"c") };
    let r = verify_registration(
        &rp,
        &input,
        &TrustInput { anchors: &anchors, metadata: None, now: 1_800_000_000, skew: 300, insecure_allow_sha1: false },
    );
    assert!(!r.attestation.is_some_and(|a| a.trusted));
});
