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
