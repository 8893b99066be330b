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
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
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
        let server = Server::start_in(data.path(), &without_remediation(&default_config()));
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
    let server = Server::start_in(data.path(), &without_remediation(&default_config()));
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

/// Under the default `user_risk_remediation = "passkey"`: a flagged user's
/// sign-in with a passkey registered before the flag and with UV is allowed
/// and clears the flag (audited, counted); a sign-in without UV, or with a
/// passkey added while flagged, is not and does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_user_heals_with_a_qualifying_passkey_only() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = Server::start_with_env(dir.path(), &default_config(), &[("ASSERTD_AUDIT_LOG", audit.to_str().unwrap())]);
    let old = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &old, b"alice", false)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut admin = server.credentials().await;
    admin.set_user_risk(flag(b"alice", pb::RiskLevel::High, None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let added = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &added, b"alice", false)).await;
    let item = |a: &SoftAuthenticator, flags: u8, n: u32| assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", flags, n));

    let weak = verify_one(&server, item(&old, 0x01, 1)).await;
    assert_eq!(weak.decision(), Decision::Deny);
    assert!(codes(&weak).contains(&ReasonCode::UserRiskHigh) && !codes(&weak).contains(&ReasonCode::UserRiskRemediated));
    let newer = verify_one(&server, item(&added, UV, 1)).await;
    assert_eq!((newer.decision(), codes(&newer)), (Decision::Deny, vec![ReasonCode::UserRiskHigh]), "added while flagged: never heals");

    let healed = verify_one(&server, item(&old, UV, 2)).await;
    assert_eq!((healed.decision(), codes(&healed)), (Decision::Allow, vec![ReasonCode::UserRiskRemediated]));
    // Cleared: the weak sign-in and the newer passkey are no longer stopped
    // by the flag.
    let after = verify_one(&server, item(&added, UV, 2)).await;
    assert_eq!((after.decision(), codes(&after)), (Decision::Allow, vec![]));
    assert!(!codes(&verify_one(&server, item(&old, 0x01, 3)).await).contains(&ReasonCode::UserRiskHigh));
    server.wait_for_metric("assertd_user_risk_remediations_total 1").await;
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&audit).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let r = lines.iter().find(|l| l["fields"]["action"] == "remediate_user_risk").expect("audited");
    assert_eq!(r["fields"]["client"], "sign-in");
    assert!(r["fields"]["what"].as_str().unwrap().contains("cleared by a passkey sign-in"), "{r}");
}

/// Two replicas sharing PostgreSQL: a user flagged on A is healed by a
/// qualifying passkey on B, and A stops applying the flag within a second;
/// a weak sign-in on either heals nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remediation_on_one_replica_clears_the_flag_on_every_replica() {
    let pg = assertd_testkit::pg::PgCluster::start();
    let config = format!("{}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\n", default_config(), pg.url());
    let (a, b) = (Server::start(&config), Server::start(&config));
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&a, record(RP, &key, b"alice", false)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    a.credentials().await.set_user_risk(flag(b"alice", pb::RiskLevel::High, None)).await.unwrap();
    let mut n = 0;
    let mut item = |flags: u8| {
        n += 1;
        assertion("x", RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", flags, n))
    };
    // B learns of the flag; weak sign-ins on both replicas are refused and
    // heal nothing.
    let started = std::time::Instant::now();
    loop {
        let v = verify_one(&b, item(0x01)).await;
        if codes(&v).contains(&ReasonCode::UserRiskHigh) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "B does not see the flag: {v:?}");
    }
    assert_eq!(verify_one(&a, item(0x01)).await.decision(), Decision::Deny);
    assert_eq!(verify_one(&b, item(0x01)).await.decision(), Decision::Deny);
    // Healed on B; A stops applying the flag within a second.
    let healed = verify_one(&b, item(UV)).await;
    assert_eq!((healed.decision(), codes(&healed)), (Decision::Allow, vec![ReasonCode::UserRiskRemediated]));
    let t = std::time::Instant::now();
    loop {
        let v = verify_one(&a, item(0x01)).await;
        if !codes(&v).contains(&ReasonCode::UserRiskHigh) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(1), "A still applies the flag after {:?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("remediated on B, cleared on A after {:?}", t.elapsed());
    assert_eq!(pg.psql("SELECT count(*) FROM user_risk").trim(), "0");
}
