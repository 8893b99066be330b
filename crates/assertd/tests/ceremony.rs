//! Binding an assertion to its ceremony and its user, through the real
//! binary and a tonic client on loopback: the expected user (WebAuthn L3
//! §7.2 step 6) and the credentials the gateway offered (step 5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};

/// UP and UV set.
const UP: u8 = 0x05;

async fn verify_one(server: &Server, a: pb::Assertion) -> pb::Verdict {
    let r = server.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a] }).await.unwrap().into_inner();
    r.verdicts.into_iter().next().unwrap()
}

/// Alice and Mallory each have a passkey for the RP. The gateway starts a
/// username-first sign-in for Alice; Mallory answers Alice's challenge with
/// his own passkey and no user handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expected_user_stops_a_signature_by_another_users_credential() {
    let server = Server::start(&default_config());
    let alice = SoftAuthenticator::new(Alg::Es256);
    let mallory = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &alice, b"alice", false)).await;
    put(&server, record(RP, &mallory, b"mallory", false)).await;
    let challenge = b"alice's challenge";

    // Without the expected user, the signature is Mallory's and valid: the
    // verdict allows and names Mallory, whom the gateway must not sign in
    // as Alice.
    let forged = assertion("m", RP, &mallory.credential_id, challenge, mallory.assert(RP, ORIGIN, challenge, UP, 0));
    let v = verify_one(&server, forged.clone()).await;
    assert_eq!(v.decision(), Decision::Allow);
    assert_eq!(v.authenticator.unwrap().user_handle, b"mallory");

    // With it: denied.
    let v = verify_one(&server, pb::Assertion { expected_user_handle: b"alice".to_vec(), ..forged }).await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::UserHandleMismatch]));

    // Alice's own passkey, with and without her user handle in the response.
    let mine = assertion("a", RP, &alice.credential_id, challenge, alice.assert(RP, ORIGIN, challenge, UP, 0));
    let v = verify_one(&server, pb::Assertion { expected_user_handle: b"alice".to_vec(), ..mine.clone() }).await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);
    let v = verify_one(&server, pb::Assertion { expected_user_handle: b"alice".to_vec(), user_handle: b"alice".to_vec(), ..mine.clone() })
        .await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);

    // The gateway expected Bob: Alice's passkey does not sign Bob in, with
    // or without a user handle in the response.
    let v = verify_one(&server, pb::Assertion { expected_user_handle: b"bob".to_vec(), ..mine.clone() }).await;
    assert_eq!(codes(&v), vec![ReasonCode::UserHandleMismatch]);
    let v =
        verify_one(&server, pb::Assertion { expected_user_handle: b"bob".to_vec(), user_handle: b"alice".to_vec(), ..mine.clone() }).await;
    assert_eq!(codes(&v), vec![ReasonCode::UserHandleMismatch]);

    // An expected user handle over 64 bytes is a bad request.
    let v = verify_one(&server, pb::Assertion { expected_user_handle: vec![7; 65], ..mine }).await;
    assert_eq!(codes(&v), vec![ReasonCode::InvalidRequest]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_offered_credential_is_accepted() {
    let server = Server::start(&default_config());
    let offered = SoftAuthenticator::new(Alg::Es256);
    let other = SoftAuthenticator::new(Alg::EdDsa);
    put(&server, record(RP, &offered, b"u", false)).await;
    put(&server, record(RP, &other, b"u", false)).await;
    let challenge = b"a challenge";
    let with = |a: &SoftAuthenticator, allowed: Vec<Vec<u8>>| pb::Assertion {
        allowed_credential_ids: allowed,
        ..assertion("x", RP, &a.credential_id, challenge, a.assert(RP, ORIGIN, challenge, UP, 0))
    };

    let v = verify_one(&server, with(&other, vec![offered.credential_id.clone()])).await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::CredentialNotAllowed]));
    // Decided before the lookup: even an unknown credential gets it.
    let mut unknown = with(&other, vec![offered.credential_id.clone()]);
    unknown.credential_id = b"nobody has this".to_vec();
    assert_eq!(codes(&verify_one(&server, unknown).await), vec![ReasonCode::CredentialNotAllowed]);

    let v = verify_one(&server, with(&offered, vec![other.credential_id.clone(), offered.credential_id.clone()])).await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);
    let v = verify_one(&server, with(&other, Vec::new())).await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);

    // Bounded: 256 ids at most, none empty.
    let mut many: Vec<Vec<u8>> = (0..256u16).map(|i| i.to_be_bytes().to_vec()).collect();
    many.push(offered.credential_id.clone());
    assert_eq!(codes(&verify_one(&server, with(&offered, many)).await), vec![ReasonCode::InvalidRequest]);
    let v = verify_one(&server, with(&offered, vec![Vec::new(), offered.credential_id.clone()])).await;
    assert_eq!(codes(&v), vec![ReasonCode::InvalidRequest]);
}
