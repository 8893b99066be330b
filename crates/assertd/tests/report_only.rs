//! Report-only profiles through the real binary: each assertion for the
//! relying party is also judged under them, counted, and returned when
//! asked for; the enforced verdict never changes, including while the
//! config (and with it the report-only profiles) is reloaded under load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};
use std::time::{Duration, Instant};

/// BE and BS: a synced passkey, user present, not verified.
const SYNCED: u8 = 0x08 | 0x10;

/// The default config with RP's report-only profiles.
fn config(report_only: &str, profiles: &str) -> String {
    let rp = format!("id = \"{RP}\"\norigins = [\"{ORIGIN}\"]\n");
    let with = default_config().replacen(&rp, &format!("{rp}report_only_profiles = [{report_only}]\n"), 1);
    format!("config_watch_interval_seconds = 1\n{with}\n{profiles}")
}

const PROFILES: &str = "[profiles.device-bound]\npasskey_types = [\"device_bound\"]\n\n[profiles.uv]\nuser_verification = \"required\"\n";

async fn sign_in(server: &Server, key: &SoftAuthenticator, per_item: bool, per_request: bool, tamper: bool) -> pb::Verdict {
    let challenge = b"a sign-in challenge";
    let mut parts = key.assert(RP, ORIGIN, challenge, SYNCED, 0);
    if tamper {
        parts.signature[8] ^= 1;
    }
    let item = pb::Assertion { include_report_only: per_item, ..assertion("s", RP, &key.credential_id, challenge, parts) };
    let req = pb::VerifyAssertionsRequest { assertions: vec![item], include_report_only: per_request };
    server.verifier().await.verify_assertions(req).await.unwrap().into_inner().verdicts.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_profiles_are_reported_and_never_enforced() {
    let server = Server::start(&config("\"device-bound\", \"uv\"", PROFILES));
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &key, b"alice", true)).await;

    let plain = sign_in(&server, &key, false, false, false).await;
    assert_eq!(plain.decision(), Decision::Allow, "{plain:?}");
    assert!(plain.report_only.is_empty(), "not asked for");
    for (per_item, per_request) in [(true, false), (false, true)] {
        let v = sign_in(&server, &key, per_item, per_request, false).await;
        assert_eq!((v.decision(), &v.reasons), (Decision::Allow, &plain.reasons), "the enforced verdict is the same");
        let got: Vec<(&str, Decision, Vec<ReasonCode>)> =
            v.report_only.iter().map(|r| (r.profile.as_str(), r.decision(), r.reasons.iter().map(|x| x.code()).collect())).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].0, got[0].1), ("device-bound", Decision::Deny));
        assert!(got[0].2.contains(&ReasonCode::PasskeyTypeNotAllowed), "{got:?}");
        assert_eq!(got[1].0, "uv");
        assert_ne!(got[1].1, Decision::Allow);
        assert!(got[1].2.contains(&ReasonCode::UserNotVerified), "{got:?}");
    }
    // A bad signature: denied under every profile, so not a change.
    let bad = sign_in(&server, &key, true, false, true).await;
    assert_eq!(bad.decision(), Decision::Deny);
    assert!(
        bad.report_only.iter().all(|r| r.decision() == Decision::Deny && r.reasons[0].code() == ReasonCode::SignatureInvalid),
        "{bad:?}"
    );
    // An unknown credential is rejected before any profile: the same.
    let stranger = SoftAuthenticator::new(Alg::Es256);
    let unknown = sign_in(&server, &stranger, true, false, false).await;
    assert_eq!(
        unknown.report_only.iter().map(|r| (r.decision(), r.reasons.clone())).collect::<Vec<_>>(),
        vec![(Decision::Deny, unknown.reasons.clone()), (Decision::Deny, unknown.reasons.clone())]
    );

    let line = |profile: &str, decision: &str, changed: &str| {
        format!("assertd_report_only_verdicts_total{{rp=\"{RP}\",profile=\"{profile}\",decision=\"{decision}\",changed=\"{changed}\"}}")
    };
    assert_eq!(server.metric(&line("device-bound", "deny", "true")), 3.0, "counted whether asked for or not");
    assert_eq!(server.metric(&line("device-bound", "deny", "false")), 2.0);
    // Another relying party's assertions are not judged under them.
    assert!(!server.scrape().contains(&format!("assertd_report_only_verdicts_total{{rp=\"{RP_UV}\"")));
}

/// Sign-ins run while the config flips every 300 ms between report-only
/// profiles that would deny them, none, and an invalid list (refused): the
/// enforced verdict is the same every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_of_report_only_profiles_never_change_an_enforced_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &config("", PROFILES));
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &key, b"bob", true)).await;
    let baseline = sign_in(&server, &key, false, false, false).await;
    assert_eq!(baseline.decision(), Decision::Allow);
    let cfg = dir.path().join("assertd.toml");
    let variants =
        [config("\"device-bound\", \"uv\"", PROFILES), config("\"uv\"", PROFILES), config("", PROFILES), config("\"undefined\"", PROFILES)];
    let stop = Instant::now() + Duration::from_secs(5);
    let flipper = {
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < stop {
                let next = cfg.with_extension("new");
                std::fs::write(&next, &variants[i % variants.len()]).unwrap();
                std::fs::rename(&next, &cfg).unwrap();
                i += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let (mut n, mut reported) = (0, 0);
    while Instant::now() < stop {
        let v = sign_in(&server, &key, true, false, false).await;
        assert_eq!((v.decision(), &v.reasons, v.risk_score), (Decision::Allow, &baseline.reasons, baseline.risk_score), "sign-in {n}");
        reported += usize::from(!v.report_only.is_empty());
        n += 1;
    }
    flipper.await.unwrap();
    assert!(n > 50 && reported > 0, "{n} sign-ins, {reported} with report-only verdicts");
    assert!(server.scrape().contains("assertd_config_reloads_total{result=\"failed\"}"), "the undefined profile was refused");
}
