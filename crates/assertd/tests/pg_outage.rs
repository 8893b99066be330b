//! Two replicas on one PostgreSQL through a 30-second database outage under
//! load: both stay ready and keep accepting new connections; each answers
//! what it can from its own state (a counting credential it has counted,
//! checked against its memory and deferred; a cached counter-less passkey)
//! and refuses as retryable what it cannot (an uncached credential); the
//! store's health is its own metric. When PostgreSQL returns, the deferred
//! counts reach it and nothing conflicts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::pg::PgCluster;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;

const UV: u8 = 0x04;
const BE_BS: u8 = 0x18;
const OUTAGE: Duration = Duration::from_secs(30);

async fn readiness(server: &Server) -> ServingStatus {
    let mut h = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    h.check(tonic_health::pb::HealthCheckRequest { service: "readiness".into() }).await.unwrap().into_inner().status()
}

/// One batch over a new connection: the replica's counting credential at
/// `n`, the shared synced passkey (no counter), and, when given, a
/// credential no replica has cached.
async fn batch(
    server: &Server,
    counting: &SoftAuthenticator,
    n: u32,
    synced: &SoftAuthenticator,
    cold: Option<&SoftAuthenticator>,
) -> Vec<pb::Verdict> {
    let mut items = vec![
        assertion("count", RP, &counting.credential_id, b"c", counting.assert(RP, ORIGIN, b"c", UV, n)),
        assertion("synced", RP, &synced.credential_id, b"c", synced.assert(RP, ORIGIN, b"c", UV | BE_BS, 0)),
    ];
    if let Some(cold) = cold {
        items.push(assertion("cold", RP, &cold.credential_id, b"c", cold.assert(RP, ORIGIN, b"c", UV, n)));
    }
    server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .verdicts
}

async fn stored_count(server: &Server, a: &SoftAuthenticator) -> u32 {
    let r = pb::GetCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() };
    server.credentials().await.get_credential(r).await.unwrap().into_inner().credential.unwrap().sign_count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_keep_serving_through_a_database_outage() {
    let pg = PgCluster::start();
    let config =
        format!("{}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\ntimeout_ms = 500\n", default_config(), pg.url());
    // A counting credential per replica (a gateway's connection sticks to
    // one), a synced passkey both use, and one neither uses before the
    // outage. Stored through another replica before these start: the change
    // feed's notices of the writes cannot reach them late and drop what
    // they cached.
    let counting = [SoftAuthenticator::new(Alg::Es256), SoftAuthenticator::new(Alg::Es256)];
    let synced = SoftAuthenticator::new(Alg::Es256);
    let cold = SoftAuthenticator::new(Alg::Es256);
    {
        let seed = Server::start(&config);
        for (user, a, be) in
            [(&b"ann"[..], &counting[0], false), (b"bob", &counting[1], false), (b"cat", &synced, true), (b"dan", &cold, false)]
        {
            // Stored as it signs in (backed up when eligible): a sign-in
            // that changes the record writes it, and the write's own
            // notice drops the cached copy.
            put(&seed, pb::CredentialRecord { backup_state: be, ..record(RP, a, user, be) }).await;
        }
    }
    let replicas = [Server::start(&config), Server::start(&config)];
    // Before: allowed on both (this caches what each replica uses).
    let mut n = 1;
    for (server, c) in replicas.iter().zip(&counting) {
        let v = batch(server, c, n, &synced, None).await;
        assert_eq!(v.iter().map(|v| v.decision()).collect::<Vec<_>>(), [Decision::Allow; 2], "{v:?}");
        assert_eq!(readiness(server).await, ServingStatus::Serving);
    }

    pg.stop_server();
    let down = Instant::now();
    let mut last = [0u32; 2];
    let mut batches = 0;
    while down.elapsed() < OUTAGE {
        n += 1;
        for (i, (server, c)) in replicas.iter().zip(&counting).enumerate() {
            let started = Instant::now();
            let v = batch(server, c, n, &synced, Some(&cold)).await;
            assert!(started.elapsed() < Duration::from_secs(3), "a batch took {:?}", started.elapsed());
            assert_eq!((v[0].decision(), codes(&v[0])), (Decision::Allow, vec![ReasonCode::SignCountDeferred]), "{v:?}");
            assert_eq!(v[1].decision(), Decision::Allow, "a cached counter-less passkey needs no store: {v:?}");
            assert_eq!((v[2].decision(), codes(&v[2]), v[2].retryable), (Decision::Deny, vec![ReasonCode::StoreUnavailable], true));
            // Ready all along: a shared database is down for every replica,
            // and leaving the Service would stop these answers too.
            assert_eq!(readiness(server).await, ServingStatus::Serving, "replica {i} after {:?}", down.elapsed());
            last[i] = n;
            batches += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for server in &replicas {
        let scrape = server.scrape();
        assert!(scrape.lines().any(|l| l == "assertd_store_up 0"), "{scrape}");
        assert!(server.metric("assertd_deferred_counters ") >= 1.0, "{scrape}");
    }
    eprintln!("{batches} batches answered by two replicas through {OUTAGE:?} without the database");

    pg.start_server();
    let back = Instant::now();
    for server in &replicas {
        while server.metric("assertd_deferred_counters ") > 0.0 {
            let scrape = server.scrape();
            let store: Vec<&str> = scrape.lines().filter(|l| l.starts_with("assertd_store") || l.starts_with("assertd_deferred")).collect();
            assert!(back.elapsed() < Duration::from_secs(20), "the deferred counts did not reach the database: {store:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for (i, (server, c)) in replicas.iter().zip(&counting).enumerate() {
        assert_eq!(stored_count(server, c).await, last[i], "replica {i}'s last accepted count is stored");
        assert_eq!(server.metric("assertd_deferred_counter_conflicts_total"), 0.0);
        assert!(server.metric("assertd_deferred_counters_flushed_total") >= 1.0);
        assert_eq!(server.metric("assertd_store_up"), 1.0);
        n += 1;
        let v = batch(server, c, n, &synced, Some(&cold)).await;
        assert_eq!(v.iter().map(|v| v.decision()).collect::<Vec<_>>(), [Decision::Allow; 3], "after recovery: {v:?}");
        assert_eq!(readiness(server).await, ServingStatus::Serving);
    }
}
