//! Temporary access passes through the real binary on the embedded store:
//! issued by a helpdesk client holding only `credentials.recover`, redeemed
//! by a registration (once), refused used, expired, revoked, replaced, by
//! another user or under a profile that forbids it; a sign-in with a pass,
//! judged with the user's risk; every call audited, the pass never logged;
//! all across a restart; and two replicas sharing PostgreSQL redeeming one
//! pass at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, Attestation, SoftAuthenticator};
use common::ceremony::{reasons, register, request};
use common::*;
use pb::{Decision, ReasonCode};
use std::path::Path;
use tonic::Code;

/// UP and UV; UP, UV, BE and BS.
const UV: u8 = 0x04;
const SYNCED: u8 = 0x1c;

fn config(dir: &Path, extra: &str) -> String {
    std::fs::write(dir.join("tap.key"), [7u8; 32]).unwrap();
    format!(
        r#"
[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]
allowed_profiles = ["keys-only", "no-pass"]

[profiles.keys-only]
temporary_access_pass = "device_bound_only"

[profiles.no-pass]
temporary_access_pass = "never"

[temporary_access_pass]
keys = [{{ id = "tap-1", secret_file = "{key}" }}]

[[clients]]
name = "helpdesk"
token_sha256 = ["{helpdesk}"]
relying_parties = ["{RP}"]
rpcs = ["credentials.recover"]

[[clients]]
name = "gateway"
token_sha256 = ["{gateway}"]
relying_parties = ["{RP}"]
rpcs = ["verify", "credentials.register", "credentials.read"]
{extra}
"#,
        key = dir.join("tap.key").display(),
        helpdesk = sha256_hex("helpdesk-token"),
        gateway = sha256_hex("gateway-token"),
    )
}

async fn issue(server: &Server, user: &[u8], one_time: bool) -> pb::IssueTemporaryAccessPassResponse {
    let r = pb::IssueTemporaryAccessPassRequest {
        rp_id: RP.into(),
        user_handle: user.to_vec(),
        one_time: Some(one_time),
        note: "ticket 4711: identity checked in person".into(),
        ..Default::default()
    };
    server.credentials().await.issue_temporary_access_pass(with_bearer("helpdesk-token", r)).await.unwrap().into_inner()
}

async fn list(server: &Server, user: &[u8]) -> Vec<pb::TemporaryAccessPass> {
    let r = pb::ListTemporaryAccessPassesRequest { rp_id: RP.into(), user_handle: user.to_vec() };
    server.credentials().await.list_temporary_access_passes(with_bearer("helpdesk-token", r)).await.unwrap().into_inner().passes
}

/// A registration of `key` for `user` with `pass`, as the gateway.
async fn register_with(
    server: &Server,
    key: &SoftAuthenticator,
    user: &[u8],
    pass: &str,
    flags: u8,
    profile: &str,
) -> pb::RegisterCredentialResponse {
    let challenge = b"a registration challenge";
    let r = pb::RegisterCredentialRequest {
        temporary_access_pass: pass.into(),
        ..request(user, challenge, key.register(RP, ORIGIN, challenge, flags, [0; 16], Attestation::None), profile)
    };
    server.credentials().await.register_credential(with_bearer("gateway-token", r)).await.unwrap().into_inner()
}

/// The stored record of `key`, read as the gateway.
async fn stored(server: &Server, key: &SoftAuthenticator) -> Option<pb::CredentialRecord> {
    let r = pb::GetCredentialRequest { rp_id: RP.into(), credential_id: key.credential_id.clone() };
    match server.credentials().await.get_credential(with_bearer("gateway-token", r)).await {
        Ok(r) => r.into_inner().credential,
        Err(s) if s.code() == Code::NotFound => None,
        Err(s) => panic!("{s:?}"),
    }
}

/// One sign-in of `key`, as the gateway.
async fn sign_in(server: &Server, key: &SoftAuthenticator, count: u32) -> pb::Verdict {
    let item = assertion("s", RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", 0x05, count));
    let r = pb::VerifyAssertionsRequest { assertions: vec![item], ..Default::default() };
    server.verifier().await.verify_assertions(with_bearer("gateway-token", r)).await.unwrap().into_inner().verdicts.remove(0)
}

async fn redeem(server: &Server, user: &[u8], pass: &str) -> pb::Verdict {
    let r = pb::RedeemTemporaryAccessPassRequest { rp_id: RP.into(), user_handle: user.to_vec(), pass: pass.into(), ..Default::default() };
    server.verifier().await.redeem_temporary_access_pass(with_bearer("gateway-token", r)).await.unwrap().into_inner().verdict.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_registers_once_and_is_refused_after() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let env = [("ASSERTD_AUDIT_LOG", audit.to_str().unwrap())];
    let mut server = Server::start_with_env(dir.path(), &config(dir.path(), ""), &env);

    let issued = issue(&server, b"alice", true).await;
    assert_eq!(issued.pass.len(), 34, "28 symbols in 7 groups of 4: {}", issued.pass);
    assert!(issued.pass.bytes().all(|b| b == b'-' || b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    let lifetime =
        issued.expires_at.unwrap().seconds - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((3590..=3600).contains(&lifetime), "Entra's default lifetime, 1 hour: {lifetime}");
    let listed = list(&server, b"alice").await;
    assert_eq!((listed.len(), listed[0].usable, listed[0].used, listed[0].one_time), (1, true, false, true));
    assert_eq!((listed[0].pass_id.as_str(), listed[0].issued_by.as_str()), (issued.pass_id.as_str(), "helpdesk"));

    // A wrong pass (well formed), another user's, a synced key under a
    // device-bound-only profile, a profile that forbids passes: denied, the
    // pass untouched.
    let key = SoftAuthenticator::new(Alg::Es256);
    let wrong = "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG";
    let denied = [
        (register_with(&server, &key, b"alice", wrong, UV, "").await, ReasonCode::TemporaryAccessPassInvalid),
        (register_with(&server, &key, b"bob", &issued.pass, UV, "").await, ReasonCode::TemporaryAccessPassInvalid),
        (register_with(&server, &key, b"alice", &issued.pass, SYNCED, "keys-only").await, ReasonCode::TemporaryAccessPassNotAllowed),
        (register_with(&server, &key, b"alice", &issued.pass, UV, "no-pass").await, ReasonCode::TemporaryAccessPassNotAllowed),
    ];
    for (r, code) in denied {
        assert_eq!(reasons(&r), (Decision::Deny, vec![code]));
        assert!(r.credential.is_none());
    }
    assert!(stored(&server, &key).await.is_none());
    assert_eq!(list(&server, b"alice").await[0].uses, 0, "denied registrations leave the pass as it was");

    // Typed back in lower case with spaces: registers, under the
    // device-bound-only profile, with the pass's id on the record.
    let typed = issued.pass.to_lowercase().replace('-', " ");
    let r = register_with(&server, &key, b"alice", &typed, UV, "keys-only").await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![ReasonCode::TemporaryAccessPass]));
    assert!(r.verdict.as_ref().unwrap().reasons[0].message.contains(&issued.pass_id));
    assert_eq!(r.credential.unwrap().temporary_access_pass_id, issued.pass_id);
    assert_eq!(stored(&server, &key).await.unwrap().temporary_access_pass_id, issued.pass_id);
    assert_eq!(sign_in(&server, &key, 1).await.decision(), Decision::Allow, "the new passkey signs in");

    // Used: a second registration and a sign-in are refused.
    let other = SoftAuthenticator::new(Alg::Es256);
    assert_eq!(
        reasons(&register_with(&server, &other, b"alice", &issued.pass, UV, "").await),
        (Decision::Deny, vec![ReasonCode::TemporaryAccessPassUsed])
    );
    assert_eq!(codes(&redeem(&server, b"alice", &issued.pass).await), vec![ReasonCode::TemporaryAccessPassUsed]);
    let listed = list(&server, b"alice").await;
    assert_eq!((listed[0].used, listed[0].usable, listed[0].uses), (true, false, 1));

    // Survives a restart.
    server.terminate();
    let mut server = Server::start_with_env(dir.path(), &config(dir.path(), ""), &env);
    assert_eq!(
        reasons(&register_with(&server, &other, b"alice", &issued.pass, UV, "").await),
        (Decision::Deny, vec![ReasonCode::TemporaryAccessPassUsed])
    );

    // A reusable pass: replaced by a newer one (revoked), the newer one
    // revoked by the helpdesk.
    let first = issue(&server, b"carol", false).await;
    let second = issue(&server, b"carol", false).await;
    assert_eq!(second.replaced_pass_ids, vec![first.pass_id.clone()]);
    assert_eq!(codes(&redeem(&server, b"carol", &first.pass).await), vec![ReasonCode::TemporaryAccessPassRevoked]);
    let revoke = pb::RevokeTemporaryAccessPassRequest { rp_id: RP.into(), pass_id: second.pass_id.clone() };
    let revoked =
        server.credentials().await.revoke_temporary_access_pass(with_bearer("helpdesk-token", revoke)).await.unwrap().into_inner();
    assert!(revoked.pass.unwrap().revoked_at.is_some());
    assert_eq!(
        reasons(&register_with(&server, &other, b"carol", &second.pass, UV, "").await),
        (Decision::Deny, vec![ReasonCode::TemporaryAccessPassRevoked])
    );

    // Expired: moved a minute into the past in the store (well inside the
    // retention, so not pruned), then refused.
    let third = issue(&server, b"dave", false).await;
    server.terminate();
    let db = rusqlite::Connection::open(dir.path().join("data/credentials.db")).unwrap();
    assert_eq!(
        db.execute("UPDATE access_passes SET expires_at_ms = unixepoch() * 1000 - 60000 WHERE pass_id = ?1", [&third.pass_id]).unwrap(),
        1
    );
    drop(db);
    let server = Server::start_with_env(dir.path(), &config(dir.path(), ""), &env);
    assert_eq!(
        reasons(&register_with(&server, &other, b"dave", &third.pass, UV, "").await),
        (Decision::Deny, vec![ReasonCode::TemporaryAccessPassExpired])
    );
    assert_eq!(codes(&redeem(&server, b"dave", &third.pass).await), vec![ReasonCode::TemporaryAccessPassExpired]);

    // Audited by id; the pass itself is in no log.
    let log = std::fs::read_to_string(&audit).unwrap();
    for p in [&issued, &first, &second, &third] {
        assert!(log.contains(&p.pass_id));
        assert!(!log.contains(&p.pass) && !log.contains(&p.pass.replace('-', "")), "a pass in the audit log");
        assert!(!log.to_lowercase().contains(&p.pass.to_lowercase().replace('-', " ")));
    }
    let actions: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["fields"]["action"].as_str().unwrap().to_owned())
        .collect();
    for a in ["issue_access_pass", "list_access_passes", "revoke_access_pass", "redeem_access_pass", "register"] {
        assert!(actions.iter().any(|x| x == a), "{a} not audited: {actions:?}");
    }
    assert!(server.scrape().contains("assertd_access_passes_total{event=\"refused\"} 1"), "the expired pass's sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_with_a_pass_is_judged_like_any_and_redeems_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &config(dir.path(), ""));
    let once = issue(&server, b"erin", true).await;

    // Flagged high: denied, the pass kept for after the flag is handled.
    let risk =
        pb::SetUserRiskRequest { rp_id: RP.into(), user_handle: b"erin".to_vec(), level: pb::RiskLevel::High as i32, ..Default::default() };
    let admin_less = server.credentials().await.set_user_risk(with_bearer("helpdesk-token", risk.clone())).await.unwrap_err();
    assert_eq!(admin_less.code(), Code::PermissionDenied, "credentials.recover cannot write credentials or flags");
    // The risk flag needs an admin: a config with one.
    drop(server);
    let server = Server::start_in(
        dir.path(),
        &config(
            dir.path(),
            &format!(
                "\n[[clients]]\nname = \"admin\"\ntoken_sha256 = [\"{}\"]\nrelying_parties = [\"*\"]\nrpcs = [\"*\"]\n",
                sha256_hex("admin-token")
            ),
        ),
    );
    server.credentials().await.set_user_risk(with_bearer("admin-token", risk)).await.unwrap();
    let v = redeem(&server, b"erin", &once.pass).await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::UserRiskHigh, ReasonCode::TemporaryAccessPass]));
    assert_eq!(list(&server, b"erin").await[0].uses, 0);

    server
        .credentials()
        .await
        .clear_user_risk(with_bearer("admin-token", pb::ClearUserRiskRequest { rp_id: RP.into(), user_handle: b"erin".to_vec() }))
        .await
        .unwrap();
    let v = redeem(&server, b"erin", &once.pass).await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Allow, vec![ReasonCode::TemporaryAccessPass]));
    assert!(v.reasons[0].message.contains(&once.pass_id));
    assert_eq!(codes(&redeem(&server, b"erin", &once.pass).await), vec![ReasonCode::TemporaryAccessPassUsed]);

    // A reusable pass: a sign-in and then a registration.
    let reusable = issue(&server, b"erin", false).await;
    assert_eq!(redeem(&server, b"erin", &reusable.pass).await.decision(), Decision::Allow);
    assert_eq!(redeem(&server, b"erin", &reusable.pass).await.decision(), Decision::Allow);
    let key = SoftAuthenticator::new(Alg::Es256);
    assert_eq!(reasons(&register_with(&server, &key, b"erin", &reusable.pass, UV, "").await).0, Decision::Allow);
    assert_eq!(list(&server, b"erin").await[0].uses, 3);

    // Request-level problems: statuses, not verdicts.
    let mut v = server.verifier().await;
    for (pass, user) in [("too short", &b"erin"[..]), ("0000-0000-0000-0000-0000-0000-0000", b"erin"), (&reusable.pass, b"")] {
        let r =
            pb::RedeemTemporaryAccessPassRequest { rp_id: RP.into(), user_handle: user.to_vec(), pass: pass.into(), ..Default::default() };
        assert_eq!(
            v.redeem_temporary_access_pass(with_bearer("gateway-token", r)).await.unwrap_err().code(),
            Code::InvalidArgument,
            "{pass}"
        );
    }
    let mut c = server.credentials().await;
    let bad_lifetime = pb::IssueTemporaryAccessPassRequest {
        rp_id: RP.into(),
        user_handle: b"erin".to_vec(),
        lifetime_seconds: 600,
        ..Default::default()
    };
    let e = c.issue_temporary_access_pass(with_bearer("helpdesk-token", bad_lifetime)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("min_lifetime_seconds 3600"), "{}", e.message());
    let unknown_rp =
        pb::IssueTemporaryAccessPassRequest { rp_id: "other.example".into(), user_handle: b"erin".to_vec(), ..Default::default() };
    assert_eq!(c.issue_temporary_access_pass(with_bearer("admin-token", unknown_rp)).await.unwrap_err().code(), Code::InvalidArgument);
    let gateway_issues = pb::IssueTemporaryAccessPassRequest { rp_id: RP.into(), user_handle: b"erin".to_vec(), ..Default::default() };
    assert_eq!(
        c.issue_temporary_access_pass(with_bearer("gateway-token", gateway_issues)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // Unset `one_time`: a one-time pass (the safe default).
    let unset = pb::IssueTemporaryAccessPassRequest { rp_id: RP.into(), user_handle: b"frank".to_vec(), ..Default::default() };
    assert!(c.issue_temporary_access_pass(with_bearer("helpdesk-token", unset)).await.unwrap().into_inner().one_time);
    let missing = pb::RevokeTemporaryAccessPassRequest { rp_id: RP.into(), pass_id: "tap_nope".into() };
    assert_eq!(c.revoke_temporary_access_pass(with_bearer("helpdesk-token", missing)).await.unwrap_err().code(), Code::NotFound);
    let bad_reg = pb::RegisterCredentialRequest {
        temporary_access_pass: "nope".into(),
        ..request(b"erin", b"c", key.register(RP, ORIGIN, b"c", UV, [0; 16], Attestation::None), "")
    };
    assert_eq!(c.register_credential(with_bearer("gateway-token", bad_reg)).await.unwrap_err().code(), Code::InvalidArgument);
}

/// Without `[temporary_access_pass]` keys: issuing is FAILED_PRECONDITION,
/// a pass is refused as invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_passes_are_off() {
    let server = Server::start(&default_config());
    let r = pb::IssueTemporaryAccessPassRequest { rp_id: RP.into(), user_handle: b"u".to_vec(), ..Default::default() };
    assert_eq!(server.credentials().await.issue_temporary_access_pass(r).await.unwrap_err().code(), Code::FailedPrecondition);
    let key = SoftAuthenticator::new(Alg::Es256);
    let challenge = b"a registration challenge";
    let r = pb::RegisterCredentialRequest {
        temporary_access_pass: "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG".into(),
        ..request(b"u", challenge, key.register(RP, ORIGIN, challenge, UV, [0; 16], Attestation::None), "")
    };
    assert_eq!(reasons(&register(&server, r).await), (Decision::Deny, vec![ReasonCode::TemporaryAccessPassInvalid]));
}

/// IssueTemporaryAccessPass with authorization off.
async fn issue_open(s: &Server, user: &[u8], one_time: bool) -> pb::IssueTemporaryAccessPassResponse {
    let r = pb::IssueTemporaryAccessPassRequest {
        rp_id: RP.into(),
        user_handle: user.to_vec(),
        one_time: Some(one_time),
        ..Default::default()
    };
    s.credentials().await.issue_temporary_access_pass(r).await.unwrap().into_inner()
}

/// A registration of `key` for user "v" with `pass`, authorization off.
async fn reg_open(s: &Server, key: &SoftAuthenticator, pass: &str) -> pb::RegisterCredentialResponse {
    let challenge = b"a registration challenge";
    let r = pb::RegisterCredentialRequest {
        temporary_access_pass: pass.into(),
        ..request(b"v", challenge, key.register(RP, ORIGIN, challenge, UV, [0; 16], Attestation::None), "")
    };
    register(s, r).await
}

/// Two replicas sharing one PostgreSQL, authorization off: a pass issued
/// on one redeems on the other, once; many concurrent redemptions (sign-ins
/// and registrations, over both replicas) of one one-time pass: exactly one
/// wins, every round; revoked and expired passes are refused on the other
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_redeem_a_one_time_pass_exactly_once() {
    let pg = assertd_testkit::pg::PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tap.key"), [7u8; 32]).unwrap();
    let config = format!(
        "{}\n[temporary_access_pass]\nkeys = [{{ id = \"tap-1\", secret_file = \"{}\" }}]\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\n",
        default_config(),
        dir.path().join("tap.key").display(),
        pg.url()
    );
    let a = Server::start(&config);
    let b = Server::start(&config);
    let challenge = b"a registration challenge";
    let mut round_ms = Vec::new();
    for round in 0..10 {
        let pass = issue_open(if round % 2 == 0 { &a } else { &b }, b"u", true).await;
        let started = std::time::Instant::now();
        let mut calls = Vec::new();
        for i in 0..32 {
            let server = if i % 2 == 0 { &a } else { &b };
            let (mut v, mut c) = (server.verifier().await, server.credentials().await);
            let pass = pass.pass.clone();
            let key = SoftAuthenticator::new(Alg::Es256);
            calls.push(tokio::spawn(async move {
                if i % 4 < 2 {
                    let r =
                        pb::RedeemTemporaryAccessPassRequest { rp_id: RP.into(), user_handle: b"u".to_vec(), pass, ..Default::default() };
                    v.redeem_temporary_access_pass(r).await.unwrap().into_inner().verdict.unwrap()
                } else {
                    let r = pb::RegisterCredentialRequest {
                        temporary_access_pass: pass,
                        ..request(b"u", challenge, key.register(RP, ORIGIN, challenge, UV, [0; 16], Attestation::None), "")
                    };
                    c.register_credential(r).await.unwrap().into_inner().verdict.unwrap()
                }
            }));
        }
        let mut allowed = 0;
        for call in calls {
            let v = call.await.unwrap();
            match v.decision() {
                Decision::Allow => allowed += 1,
                _ => assert_eq!(codes(&v), vec![ReasonCode::TemporaryAccessPassUsed]),
            }
        }
        round_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(allowed, 1, "round {round}: 32 concurrent redemptions over two replicas");
    }
    round_ms.sort_by(f64::total_cmp);
    eprintln!(
        "32 concurrent redemptions over two replicas, 10 rounds: exactly one each; round median {:.1} ms, max {:.1} ms",
        round_ms[5], round_ms[9]
    );

    // Issued on A, registers on B, refused again on A.
    let pass = issue_open(&a, b"v", true).await;
    let key = SoftAuthenticator::new(Alg::Es256);
    assert_eq!(reasons(&reg_open(&b, &key, &pass.pass).await), (Decision::Allow, vec![ReasonCode::TemporaryAccessPass]));
    let again = SoftAuthenticator::new(Alg::Es256);
    assert_eq!(reasons(&reg_open(&a, &again, &pass.pass).await), (Decision::Deny, vec![ReasonCode::TemporaryAccessPassUsed]));
    // Revoked on B, refused on A.
    let pass = issue_open(&a, b"v", false).await;
    let revoke = pb::RevokeTemporaryAccessPassRequest { rp_id: RP.into(), pass_id: pass.pass_id.clone() };
    b.credentials().await.revoke_temporary_access_pass(revoke).await.unwrap();
    assert_eq!(reasons(&reg_open(&a, &again, &pass.pass).await), (Decision::Deny, vec![ReasonCode::TemporaryAccessPassRevoked]));
    // Expired (moved into the past in the database), refused on both.
    let pass = issue_open(&b, b"v", false).await;
    pg.psql(&format!(
        "UPDATE access_passes SET expires_at_ms = (extract(epoch FROM now()) * 1000)::bigint - 60000 WHERE pass_id = '{}'",
        pass.pass_id
    ));
    for s in [&a, &b] {
        assert_eq!(reasons(&reg_open(s, &again, &pass.pass).await), (Decision::Deny, vec![ReasonCode::TemporaryAccessPassExpired]));
    }
}
