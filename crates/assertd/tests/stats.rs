//! GetCredentialStats through the real binary: counts per group as the
//! store computes them, models named for people, the grant's relying
//! parties enforced.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::CredentialGrouping;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_stats_by_kind_and_model() {
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.json");
    std::fs::write(&names, r#"{"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa": "Example Passkey Provider"}"#).unwrap();
    let config = format!("{}\n[metadata]\naaguid_names_file = \"{}\"\n", default_config(), names.display());
    let server = Server::start_in(dir.path(), &config);
    for (user, synced) in [(&b"alice"[..], true), (b"alice", false), (b"bob", true)] {
        put(&server, record(RP, &SoftAuthenticator::new(Alg::Es256), user, synced)).await;
    }
    put(&server, record(RP_UV, &SoftAuthenticator::new(Alg::Es256), b"carol", true)).await;
    let mut c = server.credentials().await;
    let stats = |group_by: CredentialGrouping| pb::GetCredentialStatsRequest { rp_id: RP.into(), group_by: group_by.into() };
    let kind = c.get_credential_stats(stats(CredentialGrouping::Kind)).await.unwrap().into_inner().rows;
    let got: Vec<(&str, u64, u64)> = kind.iter().map(|r| (r.key.as_str(), r.credentials, r.users)).collect();
    assert_eq!(got, [("device_bound", 1, 1), ("synced", 2, 2)]);
    let model = c.get_credential_stats(stats(CredentialGrouping::Model)).await.unwrap().into_inner().rows;
    assert_eq!(model.len(), 1, "{model:?}");
    assert_eq!(
        (model[0].key.as_str(), model[0].label.as_str(), model[0].vouched, model[0].credentials, model[0].users),
        ("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", "Example Passkey Provider", false, 3, 2)
    );
    let missing = pb::GetCredentialStatsRequest { rp_id: String::new(), group_by: 0 };
    assert_eq!(c.get_credential_stats(missing).await.unwrap_err().code(), tonic::Code::InvalidArgument);
}

/// The adoption gauges follow the store at each refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_gauges_follow_the_store() {
    let server = Server::start(&format!("{}\n[adoption]\ngauges_interval_seconds = 1\n", default_config()));
    for (user, synced) in [(&b"alice"[..], true), (b"alice", false), (b"bob", true)] {
        put(&server, record(RP, &SoftAuthenticator::new(Alg::Es256), user, synced)).await;
    }
    server.wait_for_metric(&format!("assertd_credentials{{rp=\"{RP}\",kind=\"synced\",attested=\"true\"}} 2")).await;
    server.wait_for_metric(&format!("assertd_credentials{{rp=\"{RP}\",kind=\"device_bound\",attested=\"true\"}} 1")).await;
    server.wait_for_metric(&format!("assertd_credentials{{rp=\"{RP}\",kind=\"synced\",attested=\"false\"}} 0")).await;
    server.wait_for_metric(&format!("assertd_users_by_strongest_credential{{rp=\"{RP}\",class=\"device_bound_attested\"}} 1")).await;
    server.wait_for_metric(&format!("assertd_users_by_strongest_credential{{rp=\"{RP}\",class=\"synced\"}} 1")).await;
    server.wait_for_metric(&format!("assertd_users_by_strongest_credential{{rp=\"{RP_UV}\",class=\"synced\"}} 0")).await;
    // The next refresh sees the next registration.
    put(&server, record(RP, &SoftAuthenticator::new(Alg::Es256), b"carol", true)).await;
    server.wait_for_metric(&format!("assertd_credentials{{rp=\"{RP}\",kind=\"synced\",attested=\"true\"}} 3")).await;
    server.wait_for_metric(&format!("assertd_users_by_strongest_credential{{rp=\"{RP}\",class=\"synced\"}} 2")).await;
}

/// Sign-ins are counted by relying party, profile, passkey kind and
/// decision; an assertion for an unknown credential or with a bad
/// signature is not a sign-in of anyone's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_counted_by_profile_and_kind() {
    let config = default_config().replacen(
        &format!("id = \"{RP}\"\norigins = [\"{ORIGIN}\"]\n"),
        &format!("id = \"{RP}\"\norigins = [\"{ORIGIN}\"]\nallowed_profiles = [\"keys-only\"]\n"),
        1,
    ) + "\n[profiles.keys-only]\npasskey_types = [\"device_bound\"]\n";
    let server = Server::start(&config);
    let (synced, key) = (SoftAuthenticator::new(Alg::Es256), SoftAuthenticator::new(Alg::Es256));
    put(&server, record(RP, &synced, b"alice", true)).await;
    put(&server, record(RP, &key, b"bob", false)).await;
    for (a, flags, profile) in
        [(&synced, 0x1c, ""), (&synced, 0x1c, ""), (&key, 0x04, ""), (&key, 0x04, "keys-only"), (&synced, 0x1c, "keys-only")]
    {
        ceremony::sign_in(&server, a, flags, 0, profile).await;
    }
    // Unknown credential, then a tampered signature: no sign-in.
    ceremony::sign_in(&server, &SoftAuthenticator::new(Alg::Es256), 0x04, 0, "").await;
    let item = pb::Assertion {
        signature: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        ..assertion("t", RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", 0x04, 0))
    };
    server.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item], ..Default::default() }).await.unwrap();
    let m = |profile: &str, kind: &str, decision: &str| {
        server.metric(&format!("assertd_sign_ins_total{{rp=\"{RP}\",profile=\"{profile}\",kind=\"{kind}\",decision=\"{decision}\"}}"))
    };
    assert_eq!(m("(built-in)", "synced", "allow"), 2.0);
    assert_eq!(m("(built-in)", "device_bound", "allow"), 1.0);
    assert_eq!(m("keys-only", "device_bound", "allow"), 1.0);
    assert_eq!(m("keys-only", "synced", "deny"), 1.0);
    let total: usize = server.scrape().lines().filter(|l| l.starts_with("assertd_sign_ins_total{")).count();
    assert_eq!(total, 4, "{}", server.scrape());
}
