//! Passkey profiles and the risk engine through the real server, with the
//! shipped example configuration; and config reloads under load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode, RiskLevel};
use std::time::{Duration, Instant};

const UV: u8 = 0x04;
const BE_BS: u8 = 0x18;
const TIER0_KEY: [u8; 16] = [0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8];

/// The shipped example config, with test-friendly reload settings.
fn example(watch_seconds: u64) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/assertd.toml")).unwrap();
    text.replace("config_watch_interval_seconds = 5", &format!("config_watch_interval_seconds = {watch_seconds}"))
}

fn ctx(trusted: Option<bool>, compliant: Option<bool>, risk: RiskLevel) -> Option<pb::SignInContext> {
    let mut c = pb::SignInContext { trusted_network: trusted, device_compliant: compliant, ..Default::default() };
    c.set_upstream_risk(risk);
    Some(c)
}

struct Case {
    name: &'static str,
    profile: &'static str,
    context: Option<pb::SignInContext>,
    decision: Decision,
    score: u32,
    codes: Vec<ReasonCode>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_credential_different_profiles_and_contexts() {
    let server = Server::start(&example(0));
    // A synced passkey, attested at registration.
    let synced = SoftAuthenticator::new(Alg::Es256);
    let mut rec = record(RP, &synced, b"user", true);
    rec.attested = true;
    put(&server, rec).await;
    // An approved hardware key (the admin's record says its root vouched
    // for the model), and an unapproved one.
    let key = SoftAuthenticator::new(Alg::EdDsa);
    let mut rec = record(RP, &key, b"user", false);
    rec.aaguid = TIER0_KEY.to_vec();
    rec.aaguid_vouched = true;
    put(&server, rec).await;
    let other = SoftAuthenticator::new(Alg::Es384);
    put(&server, record(RP, &other, b"user", false)).await;

    use ReasonCode as R;
    let cases = vec![
        Case {
            name: "workforce, no context",
            profile: "",
            context: None,
            decision: Decision::Allow,
            score: 10,
            codes: vec![R::SyncedPasskey],
        },
        Case {
            name: "workforce, untrusted network",
            profile: "workforce",
            context: ctx(Some(false), None, RiskLevel::Unspecified),
            decision: Decision::Allow,
            score: 30,
            codes: vec![R::UntrustedNetwork, R::SyncedPasskey],
        },
        Case {
            name: "workforce, untrusted + noncompliant",
            profile: "",
            context: ctx(Some(false), Some(false), RiskLevel::Low),
            decision: Decision::StepUp,
            score: 60,
            codes: vec![R::NoncompliantDevice, R::UntrustedNetwork, R::SyncedPasskey],
        },
        Case {
            name: "workforce, untrusted + high upstream risk",
            profile: "",
            context: ctx(Some(false), Some(true), RiskLevel::High),
            decision: Decision::Deny,
            score: 90,
            codes: vec![R::UpstreamRiskHigh, R::UntrustedNetwork, R::SyncedPasskey],
        },
        Case {
            name: "tier1 refuses synced",
            profile: "tier1",
            context: None,
            decision: Decision::Deny,
            score: 100,
            codes: vec![R::PasskeyTypeNotAllowed],
        },
        Case {
            name: "unknown profile",
            profile: "tier9",
            context: None,
            decision: Decision::Deny,
            score: 100,
            codes: vec![R::ProfileUnknown],
        },
    ];
    let mut n = 0;
    let mut batch = Vec::new();
    for c in &cases {
        n += 1;
        let mut a = assertion(c.name, RP, &synced.credential_id, b"ch", synced.assert(RP, ORIGIN, b"ch", UV | BE_BS, n));
        a.profile = c.profile.into();
        a.context = c.context.clone();
        batch.push(a);
    }
    let resp = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    for (c, v) in cases.iter().zip(&resp.verdicts) {
        assert_eq!((v.decision(), v.risk_score, codes(v)), (c.decision, c.score, c.codes.clone()), "{}: {:?}", c.name, v.reasons);
    }

    // tier0: the approved key passes, with or without UV the rule holds.
    let mut items = Vec::new();
    let mut push = |name: &str, a: &SoftAuthenticator, flags, count| {
        let mut x = assertion(name, RP, &a.credential_id, b"ch", a.assert(RP, ORIGIN, b"ch", flags, count));
        x.profile = "tier0".into();
        items.push(x);
    };
    push("tier0 approved key", &key, UV, 1);
    push("tier0 no UV", &key, 0, 2);
    push("tier0 other model", &other, UV, 1);
    let resp = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<_> = resp.verdicts.iter().map(|v| (v.decision(), codes(v))).collect();
    assert_eq!(
        got,
        vec![
            (Decision::Allow, vec![]),
            (Decision::Deny, vec![R::UserNotVerified]),
            // The record helper marks it attested; its AAGUID is not listed.
            (Decision::Deny, vec![R::AaguidNotAllowed]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_eligibility_upgrade_is_recorded_once() {
    let server = Server::start(&example(0));
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"user", false)).await;
    let item = |n| assertion("x", RP, &a.credential_id, b"ch", a.assert(RP, ORIGIN, b"ch", UV | BE_BS, n));
    let mut v = server.verifier().await;
    // tier1 keeps the spec's rule.
    let mut strict = item(1);
    strict.profile = "tier1".into();
    let r = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![strict], ..Default::default() }).await.unwrap().into_inner();
    assert!(codes(&r.verdicts[0]).contains(&ReasonCode::BackupEligibilityChanged));
    assert_eq!(r.verdicts[0].decision(), Decision::Deny);
    // workforce accepts the upgrade and records it.
    let r =
        v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(2)], ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(
        (r.verdicts[0].decision(), codes(&r.verdicts[0])),
        (Decision::Allow, vec![ReasonCode::BackupEligibilityChanged, ReasonCode::SyncedPasskey])
    );
    let got = server
        .credentials()
        .await
        .get_credential(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(got.credential.unwrap().backup_eligible);
    // From now on the credential is synced: no change to report.
    let r =
        v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(3)], ..Default::default() }).await.unwrap().into_inner();
    assert_eq!((r.verdicts[0].decision(), codes(&r.verdicts[0])), (Decision::Allow, vec![ReasonCode::SyncedPasskey]));
    // A downgrade is never accepted.
    let down = assertion("down", RP, &a.credential_id, b"ch", a.assert(RP, ORIGIN, b"ch", UV, 4));
    let r = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![down], ..Default::default() }).await.unwrap().into_inner();
    assert_eq!((r.verdicts[0].decision(), codes(&r.verdicts[0])), (Decision::Deny, vec![ReasonCode::BackupEligibilityChanged]));
}

/// Issue 13 item 9: a BE upgrade is recorded only when the sign-in is
/// allowed (it was written with the counter, before policy decided).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_sign_in_records_no_backup_eligibility_upgrade() {
    let server = Server::start(&example(0));
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"user", false)).await;
    let mut v = server.verifier().await;
    // workforce accepts the upgrade (+10) and the synced passkey (+10); high
    // upstream risk (+60) brings the score to its deny threshold (80).
    let mut risky = assertion("risky", RP, &a.credential_id, b"ch", a.assert(RP, ORIGIN, b"ch", UV | BE_BS, 1));
    risky.context = Some(pb::SignInContext { upstream_risk: pb::RiskLevel::High as i32, ..Default::default() });
    let r = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![risky], ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(r.verdicts[0].decision(), Decision::Deny, "{:?}", r.verdicts[0]);
    let stored = async || {
        let got = server
            .credentials()
            .await
            .get_credential(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() })
            .await;
        got.unwrap().into_inner().credential.unwrap().backup_eligible
    };
    assert!(!stored().await, "a denied sign-in recorded the BE upgrade");
    // The same upgrade on a clean sign-in is allowed and recorded.
    let clean = assertion("clean", RP, &a.credential_id, b"ch", a.assert(RP, ORIGIN, b"ch", UV | BE_BS, 2));
    let r = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![clean], ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(r.verdicts[0].decision(), Decision::Allow, "{:?}", r.verdicts[0]);
    assert!(stored().await);
}

fn hup(server: &Server) {
    std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
}

fn metric(server: &Server, line_start: &str) -> Option<String> {
    server.scrape().lines().find(|l| l.starts_with(line_start)).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_decisions_without_dropping_requests() {
    let server = Server::start(&example(0));
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"user", true)).await;

    // Load: streams of single-assertion batches with rising counts, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for t in 0..2u32 {
        let mut v = server.verifier().await;
        let stop = stop.clone();
        let parts: Vec<_> = (0..4000u32).map(|i| a.assert(RP, ORIGIN, b"ch", UV | BE_BS, 1 + t * 100_000 + i)).collect();
        let cred = a.credential_id.clone();
        load.push(tokio::spawn(async move {
            let mut decisions = Vec::new();
            for p in parts {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let r = v
                    .verify_assertions(pb::VerifyAssertionsRequest {
                        assertions: vec![assertion("l", RP, &cred, b"ch", p)],
                        ..Default::default()
                    })
                    .await;
                decisions.push(r.expect("no request fails during a reload").into_inner().verdicts[0].decision());
            }
            decisions
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Synced passkeys are no longer allowed for the workforce.
    let cfg = server.dir.join("assertd.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[profiles.workforce]\npasskey_types = [\"device_bound\", \"synced\"]",
        "[profiles.workforce]\npasskey_types = [\"device_bound\"]",
    );
    assert!(text.contains("[profiles.workforce]\npasskey_types = [\"device_bound\"]"));
    std::fs::write(&cfg, &text).unwrap();
    hup(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, "assertd_config_reloads_total{result=\"ok\"}").is_none() {
        assert!(Instant::now() < deadline, "reload not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in load {
        let d = l.await.unwrap();
        assert!(d.len() > 2, "load ran");
        // Allows, then denies: a clean switch, never back.
        let first_deny = d.iter().position(|x| *x == Decision::Deny).expect("the new policy took effect");
        assert!(first_deny > 0, "the old policy served first");
        assert!(d[..first_deny].iter().all(|x| *x == Decision::Allow));
        assert!(d[first_deny..].iter().all(|x| *x == Decision::Deny), "{d:?}");
    }

    // A broken config is rejected; the reloaded policy stays active.
    std::fs::write(&cfg, text.replace("passkey_types = [\"device_bound\"]", "passkey_types = [\"floppy_disk\"]")).unwrap();
    hup(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, "assertd_config_reloads_total{result=\"failed\"}").is_none() {
        assert!(Instant::now() < deadline, "failed reload not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest {
            assertions: vec![assertion("after", RP, &a.credential_id, b"ch", a.assert(RP, ORIGIN, b"ch", UV | BE_BS, 900_000))],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r.verdicts[0]), vec![ReasonCode::PasskeyTypeNotAllowed]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_watch_reloads_without_a_signal() {
    let server = Server::start(&example(1));
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"user", false)).await;
    let mut v = server.verifier().await;
    let mut n = 0;
    let mut ask = async |profile: &str| {
        n += 1;
        let mut x = assertion("w", RP, &a.credential_id, b"ch", a.assert(RP, ORIGIN, b"ch", UV, n));
        x.profile = profile.into();
        v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![x], ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .verdicts
            .remove(0)
    };
    assert_eq!(codes(&ask("tier2").await), vec![ReasonCode::ProfileUnknown]);
    let cfg = server.dir.join("assertd.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("allowed_profiles = [\"tier0\", \"tier1\"]", "allowed_profiles = [\"tier0\", \"tier1\", \"tier2\"]")
        + "\n[profiles.tier2]\nuser_verification = \"required\"\n";
    assert!(text.contains("\"tier2\"]"), "the example lists its allowed profiles");
    std::fs::write(&cfg, text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let verdict = ask("tier2").await;
        if verdict.decision() == Decision::Allow {
            break;
        }
        assert!(Instant::now() < deadline, "file change not picked up: {verdict:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn config_check_prints_effective_profiles_or_fails() {
    let exe = env!("CARGO_BIN_EXE_assertd");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/assertd.toml");
    let out = std::process::Command::new(exe).args(["config", "check", example]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[profiles.tier0]") && text.contains("[profiles.workforce.risk.weights]"), "{text}");
    assert!(text.contains("relying party \"login.example.com\": default profile workforce"));
    // Every key is spelled out, defaults included.
    assert!(text.contains("legacy_algorithm = 20"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[relying_parties]]\nid = \"a.example\"\norigins = [\"https://a.example\"]\ndefault_profile = \"missing\"\n")
        .unwrap();
    let out = std::process::Command::new(exe).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.toml") && err.contains("relying_parties[0].default_profile") && err.contains("missing"), "{err}");

    // The server refuses to start on it, and says why.
    let out = std::process::Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("default_profile"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "never started listening");
}
