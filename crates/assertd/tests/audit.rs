//! The audit stream (`ASSERTD_AUDIT_LOG`): credential writes, registrations,
//! revocations and risk flags as JSON lines in a file of their own,
//! appended across restarts, whatever the log filter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, Attestation, SoftAuthenticator};
use common::*;

fn actions(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_go_to_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let env = [("ASSERTD_AUDIT_LOG", audit.to_str().unwrap())];
    let mut server = Server::start_with_env(dir.path(), &default_config(), &env);
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"alice", false)).await;
    let mut c = server.credentials().await;
    c.revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() }).await.unwrap();
    let risk = pb::SetUserRiskRequest {
        rp_id: RP.into(),
        user_handle: b"alice".to_vec(),
        level: pb::RiskLevel::High as i32,
        note: "phished".into(),
        ..Default::default()
    };
    c.set_user_risk(risk).await.unwrap();
    c.clear_user_risk(pb::ClearUserRiskRequest { rp_id: RP.into(), user_handle: b"alice".to_vec() }).await.unwrap();
    c.revoke_user_credentials(pb::RevokeUserCredentialsRequest { rp_id: RP.into(), user_handle: b"alice".to_vec() }).await.unwrap();
    let b = SoftAuthenticator::new(Alg::Es256);
    let parts = b.register(RP, ORIGIN, b"a registration challenge", 0x04, [0; 16], Attestation::None);
    let reg = pb::RegisterCredentialRequest {
        rp_id: RP.into(),
        user_handle: b"bob".to_vec(),
        client_data_json: parts.client_data_json,
        attestation_object: parts.attestation_object,
        expected_challenge: b"a registration challenge".to_vec(),
        ..Default::default()
    };
    assert_eq!(c.register_credential(reg).await.unwrap().into_inner().verdict.unwrap().decision(), pb::Decision::Allow);

    let lines = actions(&audit);
    let got: Vec<&str> = lines.iter().map(|l| l["fields"]["action"].as_str().unwrap()).collect();
    assert_eq!(got, ["create", "revoke", "set_user_risk", "clear_user_risk", "revoke_user", "register"], "{lines:#?}");
    assert!(lines.iter().all(|l| l["target"] == "assertd::audit" && l["fields"]["client"] == "-"));
    assert!(lines[2]["fields"]["what"].as_str().unwrap().contains("phished"));

    // Appended across a restart, not truncated.
    server.terminate();
    let server = Server::start_with_env(dir.path(), &default_config(), &env);
    put(&server, record(RP, &SoftAuthenticator::new(Alg::EdDsa), b"carol", false)).await;
    assert_eq!(actions(&audit).len(), 7);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&audit).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
