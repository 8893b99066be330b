//! Starting ceremonies (`BeginRegistration`, `BeginAuthentication`) through
//! the real binary and a tonic client on loopback: the options follow the
//! profile, carry a challenge issued for the ceremony, and a response to
//! them registers and signs in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, Attestation, SoftAuthenticator, from_b64url};
use common::ceremony::{reasons, register, request};
use common::*;
use pb::{Decision, ReasonCode};
use serde_json::Value;

const UV: u8 = 0x05;

fn config(dir: &std::path::Path, tokens: bool) -> String {
    std::fs::write(dir.join("challenge.key"), [9u8; 32]).unwrap();
    let clients = if tokens {
        format!(
            r#"
[[clients]]
name = "enrol"
token_sha256 = ["{}"]
relying_parties = ["{RP}"]
rpcs = ["credentials.register"]
profiles = ["keys"]

[[clients]]
name = "signin"
token_sha256 = ["{}"]
relying_parties = ["{RP}"]
rpcs = ["verify"]
profiles = []
"#,
            sha256_hex("enrol-token"),
            sha256_hex("signin-token")
        )
    } else {
        String::new()
    };
    format!(
        r#"
[[relying_parties]]
id = "{RP}"
name = "Example Login"
origins = ["{ORIGIN}"]
allowed_profiles = ["keys"]

[profiles.keys]
passkey_types = ["device_bound"]
attestation_enforcement = "registration_only"
user_verification = "required"
resident_key = "required"
hints = ["security-key", "hybrid"]

[challenges]
keys = [{{ id = "k1", secret_file = "{key}" }}]
ttl_seconds = 120
{clients}"#,
        key = dir.join("challenge.key").display()
    )
}

async fn begin_registration(server: &Server, user: &[u8], profile: &str) -> (Value, pb::BeginRegistrationResponse) {
    let r = pb::BeginRegistrationRequest {
        rp_id: RP.into(),
        user_handle: user.to_vec(),
        user_name: "ada@example.com".into(),
        profile: profile.into(),
        ..Default::default()
    };
    let out = server.credentials().await.begin_registration(r).await.unwrap().into_inner();
    (serde_json::from_str(&out.options_json).unwrap(), out)
}

async fn begin_authentication(server: &Server, user: &[u8]) -> (Value, pb::BeginAuthenticationResponse) {
    let r = pb::BeginAuthenticationRequest { rp_id: RP.into(), user_handle: user.to_vec(), ..Default::default() };
    let out = server.verifier().await.begin_authentication(r).await.unwrap().into_inner();
    (serde_json::from_str(&out.options_json).unwrap(), out)
}

/// A registration started with BeginRegistration: the options name the RP
/// and user, carry the issued challenge, exclude the user's credentials, and
/// a response to them registers with `server_issued_challenge`; a sign-in
/// started with BeginAuthentication lists the credential and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceremony_started_by_assertd_registers_and_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &config(dir.path(), false));

    let (o, out) = begin_registration(&server, b"ada", "").await;
    assert_eq!(o["rp"], serde_json::json!({ "id": RP, "name": "Example Login" }));
    assert_eq!(o["user"]["id"], "YWRh");
    assert_eq!(o["user"]["name"], "ada@example.com");
    assert_eq!(o["user"]["displayName"], "ada@example.com", "the display name defaults to the name");
    assert_eq!(from_b64url(o["challenge"].as_str().unwrap()).unwrap(), out.challenge);
    assert_eq!(o["timeout"], 120_000, "the challenge's lifetime");
    assert_eq!(o["excludeCredentials"], serde_json::json!([]));
    assert_eq!(o["attestation"], "none", "the RP's default profile enforces nothing");
    assert!(out.expires_at.is_some());

    // The page's response to those options registers.
    let a = SoftAuthenticator::new(Alg::Es256);
    let parts = a.register(RP, ORIGIN, &out.challenge, UV, [0; 16], Attestation::None);
    let r = pb::RegisterCredentialRequest {
        expected_challenge: Vec::new(),
        server_issued_challenge: true,
        ..request(b"ada", &out.challenge, parts, "")
    };
    assert_eq!(reasons(&register(&server, r).await), (Decision::Allow, vec![]));

    // Next time the user's credential is excluded, with its transports.
    let (o, _) = begin_registration(&server, b"ada", "").await;
    let excluded = o["excludeCredentials"].as_array().unwrap();
    assert_eq!(excluded.len(), 1);
    assert_eq!(from_b64url(excluded[0]["id"].as_str().unwrap()).unwrap(), a.credential_id);
    assert_eq!(excluded[0]["transports"], serde_json::json!(["usb"]));

    // A username-first sign-in lists it; a discoverable one lists nothing.
    let (o, out) = begin_authentication(&server, b"ada").await;
    assert_eq!(o["rpId"], RP);
    let allowed = o["allowCredentials"].as_array().unwrap();
    assert_eq!(from_b64url(allowed[0]["id"].as_str().unwrap()).unwrap(), a.credential_id);
    let (discoverable, _) = begin_authentication(&server, b"").await;
    assert_eq!(discoverable["allowCredentials"], serde_json::json!([]));

    // The sign-in challenge verifies once.
    let item = pb::Assertion {
        server_issued_challenge: true,
        expected_challenge: Vec::new(),
        ..assertion("s", RP, &a.credential_id, &out.challenge, a.assert(RP, ORIGIN, &out.challenge, UV, 0))
    };
    let verify = |item: pb::Assertion| {
        let server = &server;
        async move {
            let r = server
                .verifier()
                .await
                .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item], ..Default::default() })
                .await;
            r.unwrap().into_inner().verdicts.remove(0)
        }
    };
    assert_eq!(verify(item.clone()).await.decision(), Decision::Allow);
    assert!(codes(&verify(item).await).contains(&ReasonCode::ChallengeReplayed));

    // A revoked credential is no longer offered.
    server
        .credentials()
        .await
        .revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() })
        .await
        .unwrap();
    let (o, _) = begin_authentication(&server, b"ada").await;
    assert_eq!(o["allowCredentials"], serde_json::json!([]));
}

/// The options follow the profile named: a device-bound profile that
/// enforces attestation asks for direct attestation, a discoverable
/// credential, user verification and the hints it lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_options_follow_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &config(dir.path(), false));
    let (o, _) = begin_registration(&server, b"bob", "keys").await;
    assert_eq!(o["attestation"], "direct");
    assert_eq!(o["hints"], serde_json::json!(["security-key", "hybrid"]));
    assert_eq!(
        o["authenticatorSelection"],
        serde_json::json!({ "residentKey": "required", "requireResidentKey": true, "userVerification": "required" })
    );
    assert_eq!(o["extensions"], serde_json::json!({ "credProps": true }));
    let algs: Vec<i64> = o["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].as_i64().unwrap()).collect();
    assert!(algs.starts_with(&[-8, -7]) && !algs.contains(&-65535), "{algs:?}");
    let r = pb::BeginAuthenticationRequest { rp_id: RP.into(), profile: "keys".into(), ..Default::default() };
    let out = server.verifier().await.begin_authentication(r).await.unwrap().into_inner();
    let o: Value = serde_json::from_str(&out.options_json).unwrap();
    assert_eq!(o["userVerification"], "required");
}

/// Errors: a server without challenge keys, an unknown RP or profile, a
/// missing user, and callers outside the ceremony's group or the profile's
/// grant each get their status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_refuses_with_a_status_for_each_problem() {
    let server = Server::start(&default_config());
    let r = pb::BeginRegistrationRequest { rp_id: RP.into(), user_handle: b"u".to_vec(), ..Default::default() };
    let e = server.credentials().await.begin_registration(r).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let r = pb::BeginAuthenticationRequest { rp_id: RP.into(), ..Default::default() };
    assert_eq!(server.verifier().await.begin_authentication(r).await.unwrap_err().code(), tonic::Code::FailedPrecondition);

    let reg = |rp: &str, user: &[u8], profile: &str| pb::BeginRegistrationRequest {
        rp_id: rp.into(),
        user_handle: user.to_vec(),
        profile: profile.into(),
        ..Default::default()
    };
    let code = |r: Result<tonic::Response<pb::BeginRegistrationResponse>, tonic::Status>| r.map(|_| ()).unwrap_err().code();
    let open_dir = tempfile::tempdir().unwrap();
    let open = Server::start_in(open_dir.path(), &config(open_dir.path(), false));
    let mut creds = open.credentials().await;
    assert_eq!(code(creds.begin_registration(reg("other.example", b"u", "")).await), tonic::Code::InvalidArgument, "an unknown RP");
    assert_eq!(code(creds.begin_registration(reg(RP, b"", "")).await), tonic::Code::InvalidArgument, "no user");
    assert_eq!(code(creds.begin_registration(reg(RP, &[1; 65], "")).await), tonic::Code::InvalidArgument, "a user over 64 bytes");
    assert_eq!(code(creds.begin_registration(reg(RP, b"u", "nope")).await), tonic::Code::InvalidArgument, "an unknown profile");
    let long = pb::BeginRegistrationRequest { user_name: "x".repeat(257), ..reg(RP, b"u", "") };
    assert_eq!(code(creds.begin_registration(long).await), tonic::Code::InvalidArgument, "a name over 256 bytes");

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &config(dir.path(), true));
    let mut creds = server.credentials().await;
    let mut verifier = server.verifier().await;
    assert_eq!(
        code(creds.begin_registration(with_bearer("enrol-token", reg("other.example", b"u", ""))).await),
        tonic::Code::PermissionDenied
    );
    assert!(creds.begin_registration(with_bearer("enrol-token", reg(RP, b"u", "keys"))).await.is_ok());
    // The sign-in caller may not start registrations; the enrolment caller
    // may not start sign-ins.
    assert_eq!(code(creds.begin_registration(with_bearer("signin-token", reg(RP, b"u", ""))).await), tonic::Code::PermissionDenied);
    let auth = |profile: &str| pb::BeginAuthenticationRequest { rp_id: RP.into(), profile: profile.into(), ..Default::default() };
    let e = verifier.begin_authentication(with_bearer("enrol-token", auth(""))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(verifier.begin_authentication(with_bearer("signin-token", auth(""))).await.is_ok());
    // The sign-in caller's grant names no profiles: it may not pick "keys".
    let e = verifier.begin_authentication(with_bearer("signin-token", auth("keys"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
}
