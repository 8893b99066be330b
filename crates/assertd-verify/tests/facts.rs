//! The facts the verifier reports for policy are the client's, whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assertd_testkit::{Alg, SoftAuthenticator};
use assertd_verify::{AssertionInput, CredentialInput, PublicKey, RelyingParty, verify};

/// Issue 13 item 8: the top origin reaches policy in full (it was cut to 128
/// bytes, so a long allowed origin matched any origin it was a prefix of).
#[test]
fn top_origin_is_reported_in_full() {
    let a = SoftAuthenticator::new(Alg::Es256);
    let key = PublicKey::from_cose(&a.public_key_cose).unwrap();
    let top = format!("https://{}.example.evil.test", "a".repeat(200));
    let cdj = format!(
        r#"{{"type":"webauthn.get","challenge":"AAAA","origin":"https://login.example.com","crossOrigin":true,"topOrigin":"{top}"}}"#
    );
    let rp = RelyingParty::new("login.example.com", vec!["https://login.example.com".into()], false, None);
    let input = AssertionInput {
        client_data_json: cdj.as_bytes(),
        authenticator_data: &[0; 37],
        signature: &[],
        user_handle: &[],
        expected_user_handle: &[],
        challenge: assertd_verify::Challenge::Expected(&[0, 0, 0]),
        appid_used: false,
    };
    let v = verify(&rp, CredentialInput { key: &key, user_handle: b"u" }, &input);
    assert_eq!(v.cross_origin, Some(Some(top)));
}
