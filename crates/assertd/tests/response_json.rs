//! The browser's JSON as it comes (`Assertion.response_json`,
//! `RegisterCredentialRequest.response_json`) through the real binary and a
//! tonic client on loopback: a relayed `toJSON()` registers and signs in,
//! what it carries is stored, and a request that doubles, contradicts or
//! garbles it is refused with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, Attestation, SoftAuthenticator, json};
use common::ceremony::{reasons, register, stored};
use common::*;
use pb::{Decision, ReasonCode};

const UV: u8 = 0x05;
const CHALLENGE: &[u8] = b"a challenge of the gateway's own";

fn registration(a: &SoftAuthenticator, user: &[u8]) -> pb::RegisterCredentialRequest {
    let parts = a.register(RP, ORIGIN, CHALLENGE, UV, [0; 16], Attestation::None);
    pb::RegisterCredentialRequest {
        rp_id: RP.into(),
        user_handle: user.to_vec(),
        expected_challenge: CHALLENGE.to_vec(),
        response_json: json::registration(&a.credential_id, &parts, &["hybrid", "internal"], true, "platform").to_string(),
        ..Default::default()
    }
}

fn sign_in_json(a: &SoftAuthenticator, user: Option<&[u8]>) -> pb::Assertion {
    let parts = a.assert(RP, ORIGIN, CHALLENGE, UV, 0);
    pb::Assertion {
        request_id: "j".into(),
        rp_id: RP.into(),
        expected_challenge: CHALLENGE.to_vec(),
        response_json: json::authentication(&a.credential_id, &parts, user).to_string(),
        ..Default::default()
    }
}

async fn verify(server: &Server, items: Vec<pb::Assertion>) -> Vec<pb::Verdict> {
    let r = server.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() }).await;
    r.unwrap().into_inner().verdicts
}

/// `credential.toJSON()` relayed unchanged: the registration stores what
/// the JSON carries (transports, credProps.rk, the attachment) and UV as
/// uvInitialized; the sign-in verifies and names the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_to_json_registers_and_signs_in() {
    let server = Server::start(&default_config());
    let a = SoftAuthenticator::new(Alg::Es256);
    let out = register(&server, registration(&a, b"ada")).await;
    assert_eq!(reasons(&out), (Decision::Allow, vec![]));
    let record = stored(&server, &a).await.unwrap();
    assert_eq!(record.transports, ["hybrid", "internal"]);
    assert_eq!(record.discoverable, Some(true));
    assert_eq!(record.authenticator_attachment(), pb::AuthenticatorAttachment::Platform);
    assert!(record.uv_initialized);
    assert_eq!(out.credential.unwrap(), record);

    let v = verify(&server, vec![sign_in_json(&a, Some(b"ada")), sign_in_json(&a, None)]).await;
    for v in &v {
        assert_eq!(v.decision(), Decision::Allow, "{v:?}");
        assert_eq!(v.authenticator.as_ref().unwrap().user_handle, b"ada");
    }
    // The same sign-in in separate fields still verifies, and a
    // credential_id that agrees with rawId is fine.
    let parts = a.assert(RP, ORIGIN, CHALLENGE, UV, 0);
    let raw = assertion("r", RP, &a.credential_id, CHALLENGE, parts);
    let agreeing = pb::Assertion { credential_id: a.credential_id.clone(), ..sign_in_json(&a, None) };
    let v = verify(&server, vec![raw, agreeing]).await;
    assert!(v.iter().all(|v| v.decision() == Decision::Allow), "{v:?}");

    // A registration without the JSON stores nothing it did not say.
    let b = SoftAuthenticator::new(Alg::Es256);
    let parts = b.register(RP, ORIGIN, CHALLENGE, 0x01, [0; 16], Attestation::None);
    let r = common::ceremony::request(b"bob", CHALLENGE, parts, "");
    assert_eq!(reasons(&register(&server, r).await), (Decision::Allow, vec![]));
    let record = stored(&server, &b).await.unwrap();
    assert_eq!(
        (record.discoverable, record.authenticator_attachment(), record.uv_initialized),
        (None, pb::AuthenticatorAttachment::Unspecified, false)
    );
}

/// Each way a sign-in's JSON can be wrong gets INVALID_REQUEST with a
/// message that says which, and nothing is looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubled_contradicting_or_garbled_sign_in_is_an_invalid_request() {
    let server = Server::start(&default_config());
    let a = SoftAuthenticator::new(Alg::Es256);
    assert_eq!(reasons(&register(&server, registration(&a, b"ada")).await).0, Decision::Allow);
    let good = sign_in_json(&a, None);
    let mut oversized: serde_json::Value = serde_json::from_str(&good.response_json).unwrap();
    oversized["padding"] = "x".repeat(200 * 1024).into();
    let mut padded: serde_json::Value = serde_json::from_str(&good.response_json).unwrap();
    padded["response"]["signature"] = format!("{}=", padded["response"]["signature"].as_str().unwrap()).into();
    let cases = [
        ("both forms", pb::Assertion { signature: vec![1], ..good.clone() }, "both set"),
        ("another credential_id", pb::Assertion { credential_id: vec![7; 16], ..good.clone() }, "differs from response_json's rawId"),
        ("appid_used without appid", pb::Assertion { appid_used: true, ..good.clone() }, "clientExtensionResults.appid"),
        ("not JSON", pb::Assertion { response_json: "{\"id\":".into(), ..good.clone() }, "AuthenticationResponseJSON"),
        ("padded base64", pb::Assertion { response_json: padded.to_string(), ..good.clone() }, "base64url"),
        ("over the cap", pb::Assertion { response_json: oversized.to_string(), ..good.clone() }, "over the limit"),
    ];
    let v = verify(&server, cases.iter().map(|(_, a, _)| a.clone()).collect()).await;
    for ((name, _, says), v) in cases.iter().zip(&v) {
        assert_eq!(v.decision(), Decision::Deny, "{name}");
        assert_eq!(codes(v), [ReasonCode::InvalidRequest], "{name}: {v:?}");
        assert!(v.reasons[0].message.contains(says), "{name}: {}", v.reasons[0].message);
        assert!(v.authenticator.is_none(), "{name}");
    }
}

/// A registration's JSON: doubled, contradicting or garbled is
/// INVALID_ARGUMENT; a rawId other than the attested credential ID is a
/// deny (INVALID_REQUEST), and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubled_contradicting_or_garbled_registration_is_refused() {
    let server = Server::start(&default_config());
    let a = SoftAuthenticator::new(Alg::Es256);
    let good = registration(&a, b"ada");
    let cases = [
        ("both forms", pb::RegisterCredentialRequest { attestation_object: vec![0xa0], ..good.clone() }, "both set"),
        ("other transports", pb::RegisterCredentialRequest { transports: vec!["usb".into()], ..good.clone() }, "transports differ"),
        ("not JSON", pb::RegisterCredentialRequest { response_json: "[]".into(), ..good.clone() }, "RegistrationResponseJSON"),
    ];
    for (name, r, says) in cases {
        let e = server.credentials().await.register_credential(r).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{name}");
        assert!(e.message().contains(says), "{name}: {}", e.message());
    }
    let other = SoftAuthenticator::new(Alg::Es256);
    let mut mixed: serde_json::Value = serde_json::from_str(&good.response_json).unwrap();
    mixed["id"] = assertd_testkit::b64url(&other.credential_id).into();
    mixed["rawId"] = mixed["id"].clone();
    let out = register(&server, pb::RegisterCredentialRequest { response_json: mixed.to_string(), ..good.clone() }).await;
    assert_eq!(reasons(&out), (Decision::Deny, vec![ReasonCode::InvalidRequest]));
    assert!(stored(&server, &a).await.is_none() && stored(&server, &other).await.is_none());
    assert_eq!(reasons(&register(&server, good).await), (Decision::Allow, vec![]));
}
