//! WebAuthn L3 record updates and signals through the real binary and a
//! tonic client on loopback: an allowed sign-in records the backup state it
//! reports (visibly) and initialises uvInitialized only when another factor
//! authorized it; a sign-in that names a credential the relying party does
//! not have carries the signalUnknownCredential options.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, Attestation, SoftAuthenticator, b64url};
use common::ceremony::{reasons, register, request, stored};
use common::*;
use pb::{Decision, ReasonCode};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const CHALLENGE: &[u8] = b"a challenge of the gateway's own";

async fn enrol(server: &Server, a: &SoftAuthenticator, flags: u8) {
    let parts = a.register(RP, ORIGIN, CHALLENGE, flags, [0; 16], Attestation::None);
    assert_eq!(reasons(&register(server, request(b"ada", CHALLENGE, parts, "")).await), (Decision::Allow, vec![]));
}

fn item(a: &SoftAuthenticator, flags: u8, context: Option<pb::SignInContext>) -> pb::Assertion {
    pb::Assertion { context, ..assertion("s", RP, &a.credential_id, CHALLENGE, a.assert(RP, ORIGIN, CHALLENGE, flags, 0)) }
}

async fn verify(server: &Server, item: pb::Assertion) -> pb::Verdict {
    let r = server.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item], ..Default::default() }).await;
    r.unwrap().into_inner().verdicts.remove(0)
}

fn changed(v: &pb::Verdict) -> bool {
    v.authenticator.as_ref().unwrap().backup_state_changed
}

/// §7.2 step 24 (update record): BS follows each allowed sign-in, either
/// way, visibly (the verdict says it changed, the metric counts it); a
/// sign-in that is not allowed records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_sign_in_records_the_backup_state_it_reports() {
    let server = Server::start(&default_config());
    let a = SoftAuthenticator::new(Alg::Es256);
    enrol(&server, &a, UP | UV | BE).await;
    assert!(!stored(&server, &a).await.unwrap().backup_state);

    // Not allowed (a high upstream risk steps up): nothing recorded, but
    // the change is reported.
    let risky = pb::SignInContext { upstream_risk: pb::RiskLevel::High as i32, ..Default::default() };
    let v = verify(&server, item(&a, UP | UV | BE | BS, Some(risky))).await;
    assert_ne!(v.decision(), Decision::Allow);
    assert!(changed(&v));
    assert!(!stored(&server, &a).await.unwrap().backup_state);

    let v = verify(&server, item(&a, UP | UV | BE | BS, None)).await;
    assert_eq!(v.decision(), Decision::Allow, "{v:?}");
    assert!(changed(&v));
    assert!(stored(&server, &a).await.unwrap().backup_state);
    server.wait_for_metric("assertd_credential_state_updates_total{change=\"backed_up\"} 1").await;

    // The same state again: no change. Back to not backed up: a change.
    assert!(!changed(&verify(&server, item(&a, UP | UV | BE | BS, None)).await));
    let v = verify(&server, item(&a, UP | UV | BE, None)).await;
    assert!(v.decision() == Decision::Allow && changed(&v), "{v:?}");
    assert!(!stored(&server, &a).await.unwrap().backup_state);
    server.wait_for_metric("assertd_credential_state_updates_total{change=\"not_backed_up\"} 1").await;
}

/// uvInitialized: set by a UV registration; at sign-in only when the
/// gateway says another factor authorized it, never cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uv_initialized_needs_another_factor_at_sign_in() {
    let server = Server::start(&default_config());
    let with_uv = SoftAuthenticator::new(Alg::Es256);
    enrol(&server, &with_uv, UP | UV).await;
    assert!(stored(&server, &with_uv).await.unwrap().uv_initialized);

    let a = SoftAuthenticator::new(Alg::Es256);
    enrol(&server, &a, UP).await;
    assert!(!stored(&server, &a).await.unwrap().uv_initialized);
    assert_eq!(verify(&server, item(&a, UP | UV, None)).await.decision(), Decision::Allow);
    assert!(!stored(&server, &a).await.unwrap().uv_initialized, "UV alone does not initialise it");
    let second = pb::SignInContext { additional_factor_verified: Some(true), ..Default::default() };
    assert_eq!(verify(&server, item(&a, UP, Some(second.clone()))).await.decision(), Decision::Allow);
    assert!(!stored(&server, &a).await.unwrap().uv_initialized, "another factor without UV does not either");
    assert_eq!(verify(&server, item(&a, UP | UV, Some(second))).await.decision(), Decision::Allow);
    assert!(stored(&server, &a).await.unwrap().uv_initialized);
    server.wait_for_metric("assertd_credential_state_updates_total{change=\"uv_initialized\"} 1").await;
    assert_eq!(verify(&server, item(&a, UP, None)).await.decision(), Decision::Allow);
    assert!(stored(&server, &a).await.unwrap().uv_initialized, "never cleared");
}

/// §5.1.10.2: a credential the relying party does not have (never
/// registered, or deleted) comes back with the options for
/// signalUnknownCredential; a known one, even revoked, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_credential_is_signalled() {
    let server = Server::start(&default_config());
    let stranger = SoftAuthenticator::new(Alg::Es256);
    let v = verify(&server, item(&stranger, UP, None)).await;
    assert_eq!(codes(&v), [ReasonCode::CredentialNotFound]);
    let signal: serde_json::Value = serde_json::from_str(&v.signal_unknown_credential_json).unwrap();
    assert_eq!(signal, serde_json::json!({ "rpId": RP, "credentialId": b64url(&stranger.credential_id) }));

    let a = SoftAuthenticator::new(Alg::Es256);
    enrol(&server, &a, UP).await;
    let v = verify(&server, item(&a, UP, None)).await;
    assert!(v.decision() == Decision::Allow && v.signal_unknown_credential_json.is_empty());
    let creds = || async { server.credentials().await };
    creds()
        .await
        .revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() })
        .await
        .unwrap();
    let v = verify(&server, item(&a, UP, None)).await;
    assert_eq!(codes(&v), [ReasonCode::CredentialRevoked]);
    assert!(v.signal_unknown_credential_json.is_empty(), "revoked is known");
    creds()
        .await
        .delete_credential(pb::DeleteCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() })
        .await
        .unwrap();
    let v = verify(&server, item(&a, UP, None)).await;
    assert_eq!(codes(&v), [ReasonCode::CredentialNotFound]);
    assert!(v.signal_unknown_credential_json.contains(&b64url(&a.credential_id)));
}

/// §5.1.10.3–4: the signals for a signed-in user list every credential
/// that is not revoked, and the user's current names when given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_signals_list_the_accepted_credentials() {
    let server = Server::start(&default_config());
    let (a, b) = (SoftAuthenticator::new(Alg::Es256), SoftAuthenticator::new(Alg::Es256));
    enrol(&server, &a, UP).await;
    enrol(&server, &b, UP).await;
    server
        .credentials()
        .await
        .revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: b.credential_id.clone() })
        .await
        .unwrap();
    let ask = |user: &[u8], name: &str, rp: &str| pb::GetUserSignalsRequest {
        rp_id: rp.into(),
        user_handle: user.to_vec(),
        user_name: name.into(),
        ..Default::default()
    };
    let s = server.verifier().await.get_user_signals(ask(b"ada", "ada@example.com", RP)).await.unwrap().into_inner();
    let all: serde_json::Value = serde_json::from_str(&s.all_accepted_credentials_json).unwrap();
    assert_eq!(all, serde_json::json!({ "rpId": RP, "userId": b64url(b"ada"), "allAcceptedCredentialIds": [b64url(&a.credential_id)] }));
    let details: serde_json::Value = serde_json::from_str(&s.current_user_details_json).unwrap();
    assert_eq!(
        details,
        serde_json::json!({ "rpId": RP, "userId": b64url(b"ada"), "name": "ada@example.com", "displayName": "ada@example.com" })
    );
    let s = server.verifier().await.get_user_signals(ask(b"nobody", "", RP)).await.unwrap().into_inner();
    assert!(s.all_accepted_credentials_json.contains("\"allAcceptedCredentialIds\":[]") && s.current_user_details_json.is_empty());
    for bad in [ask(b"", "", RP), ask(b"ada", "", "other.example"), ask(b"ada", &"x".repeat(257), RP)] {
        let e = server.verifier().await.get_user_signals(bad).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    }
}

/// `assertd config well-known --rp ID` prints the related-origins document
/// from the RP's origins, and refuses an RP that needs none.
#[test]
fn the_well_known_document_comes_from_the_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("assertd.toml");
    std::fs::write(
        &config,
        r#"
[[relying_parties]]
id = "example.com"
origins = ["https://example.com", "https://example.co.uk", "https://shop.examplecars.com"]

[[relying_parties]]
id = "solo.example"
origins = ["https://solo.example"]
"#,
    )
    .unwrap();
    let run = |rp: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_assertd"))
            .args(["config", "well-known", "--rp", rp, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = run("example.com");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc, serde_json::json!({ "origins": ["https://example.co.uk", "https://shop.examplecars.com"] }));
    assert!(String::from_utf8_lossy(&out.stderr).contains("left out https://example.com"));
    let out = run("solo.example");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs no /.well-known/webauthn"));
    assert!(!run("nope.example").status.success());
}
