//! Real-time remediation through the real binary: users flagged at risk
//! (`SetUserRisk`, `ClearUserRisk`) and all of a user's credentials revoked
//! at once (`RevokeUserCredentials`), on the embedded store (one replica,
//! across a restart). The cross-replica figures are in `postgres.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// UP and UV.
const UV: u8 = 0x05;

async fn verify_one(server: &Server, a: pb::Assertion) -> pb::Verdict {
    let r = server.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a] }).await.unwrap().into_inner();
    r.verdicts.into_iter().next().unwrap()
}

fn flag(user: &[u8], level: pb::RiskLevel, expires_at: Option<prost_types::Timestamp>) -> pb::SetUserRiskRequest {
    pb::SetUserRiskRequest {
        rp_id: RP.into(),
        user_handle: user.to_vec(),
        level: level.into(),
        expires_at,
        note: "idp: leaked password".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_user_is_stepped_up_or_stopped_at_once_and_cleared() {
    let data = tempfile::tempdir().unwrap();
    let alice = SoftAuthenticator::new(Alg::Es256);
    let bob = SoftAuthenticator::new(Alg::Es256);
    let item = |a: &SoftAuthenticator| assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 0));
    {
        let server = Server::start_in(data.path(), &default_config());
        put(&server, record(RP, &alice, b"alice", false)).await;
        put(&server, record(RP, &bob, b"bob", false)).await;
        assert_eq!(verify_one(&server, item(&alice)).await.decision(), Decision::Allow);
        let mut admin = server.credentials().await;

        admin.set_user_risk(flag(b"alice", pb::RiskLevel::High, None)).await.unwrap();
        let v = verify_one(&server, item(&alice)).await;
        assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::UserRiskHigh]));
        assert_eq!(verify_one(&server, item(&bob)).await.decision(), Decision::Allow, "only Alice is flagged");

        admin.set_user_risk(flag(b"alice", pb::RiskLevel::Medium, None)).await.unwrap();
        let v = verify_one(&server, item(&alice)).await;
        assert_eq!((v.decision(), codes(&v)), (Decision::StepUp, vec![ReasonCode::UserRiskMedium]));

        assert!(
            admin
                .clear_user_risk(pb::ClearUserRiskRequest { rp_id: RP.into(), user_handle: b"alice".to_vec() })
                .await
                .unwrap()
                .into_inner()
                .cleared
        );
        assert_eq!(verify_one(&server, item(&alice)).await.decision(), Decision::Allow);

        // A flag that lapses by itself.
        let soon = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_millis(1500);
        let at = prost_types::Timestamp { seconds: soon.as_secs() as i64, nanos: soon.subsec_nanos() as i32 };
        admin.set_user_risk(flag(b"bob", pb::RiskLevel::High, Some(at))).await.unwrap();
        assert_eq!(codes(&verify_one(&server, item(&bob)).await), vec![ReasonCode::UserRiskHigh]);
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(verify_one(&server, item(&bob)).await.decision(), Decision::Allow, "the flag lapsed");

        // Bad requests.
        for bad in [
            flag(b"alice", pb::RiskLevel::Low, None),
            flag(b"alice", pb::RiskLevel::Unspecified, None),
            flag(b"", pb::RiskLevel::High, None),
            flag(b"alice", pb::RiskLevel::High, Some(prost_types::Timestamp { seconds: 1, nanos: 0 })),
            pb::SetUserRiskRequest { note: "x".repeat(1025), ..flag(b"alice", pb::RiskLevel::High, None) },
        ] {
            assert_eq!(admin.set_user_risk(bad).await.unwrap_err().code(), tonic::Code::InvalidArgument);
        }

        admin.set_user_risk(flag(b"alice", pb::RiskLevel::High, None)).await.unwrap();
    }
    // Stored: a restart keeps the flag.
    let server = Server::start_in(data.path(), &default_config());
    assert_eq!(codes(&verify_one(&server, item(&alice)).await), vec![ReasonCode::UserRiskHigh]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_credential_of_a_user_is_revoked_at_once() {
    let server = Server::start(&default_config());
    let phone = SoftAuthenticator::new(Alg::Es256);
    let key = SoftAuthenticator::new(Alg::EdDsa);
    let other = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &phone, b"alice", true)).await;
    put(&server, record(RP, &key, b"alice", false)).await;
    put(&server, record(RP, &other, b"bob", false)).await;
    let item = |a: &SoftAuthenticator, n| {
        assertion(
            "x",
            RP,
            &a.credential_id,
            b"c",
            a.assert(RP, ORIGIN, b"c", UV | if a.credential_id == phone.credential_id { 0x18 } else { 0 }, n),
        )
    };
    // Cached before the revocation.
    assert_eq!(verify_one(&server, item(&phone, 0)).await.decision(), Decision::Allow);
    assert_eq!(verify_one(&server, item(&key, 1)).await.decision(), Decision::Allow);

    let mut admin = server.credentials().await;
    let req = pb::RevokeUserCredentialsRequest { rp_id: RP.into(), user_handle: b"alice".to_vec() };
    assert_eq!(admin.revoke_user_credentials(req.clone()).await.unwrap().into_inner().revoked, 2);
    assert_eq!(codes(&verify_one(&server, item(&phone, 0)).await), vec![ReasonCode::CredentialRevoked]);
    assert_eq!(codes(&verify_one(&server, item(&key, 2)).await), vec![ReasonCode::CredentialRevoked]);
    assert_eq!(verify_one(&server, item(&other, 1)).await.decision(), Decision::Allow, "Bob keeps his");
    assert_eq!(admin.revoke_user_credentials(req).await.unwrap().into_inner().revoked, 0, "nothing left to revoke");
}
