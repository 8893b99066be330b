//! The event log: the same on SQLite and PostgreSQL, and on PostgreSQL a
//! reader following the cursor while two replicas append at once misses
//! nothing (ids commit in order).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_store::{CredentialStore, NewEvent, SqliteStore};
use assertd_testkit::pg::PgCluster;
use common::pg_store;
use std::sync::Arc;
use std::time::Duration;

fn ev(rp: &str, kind: &str, at_ms: i64) -> NewEvent {
    NewEvent {
        at_ms,
        rp_id: rp.into(),
        kind: kind.into(),
        user_handle: b"u".to_vec(),
        credential_id: vec![],
        actor: "admin".into(),
        detail: String::new(),
        facts: format!("{{\"at\":{at_ms}}}"),
    }
}

async fn log(s: &dyn CredentialStore) {
    assert_eq!(s.event_bounds().await.unwrap(), (None, 0));
    let ids = s.append_events(vec![ev("a", "credential_revoked", 10), ev("b", "user_risk_set", 20)]).await.unwrap();
    assert!(ids[0] < ids[1]);
    let more = s.append_events(vec![ev("a", "credential_deleted", 30)]).await.unwrap();
    assert!(more[0] > ids[1]);
    let all = s.events_after(0, None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.event.kind.as_str()).collect::<Vec<_>>(),
        ["credential_revoked", "user_risk_set", "credential_deleted"]
    );
    assert_eq!(all[1].event, ev("b", "user_risk_set", 20));
    let only_a = s.events_after(0, Some(vec!["a".into()]), 100).await.unwrap();
    assert_eq!(only_a.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[0], more[0]]);
    assert_eq!(s.events_after(ids[0], None, 1).await.unwrap()[0].id, ids[1], "after the cursor, limited");
    assert_eq!(s.events_after(0, Some(vec!["a".into()]), 1).await.unwrap().len(), 1);
    assert_eq!(s.event_bounds().await.unwrap(), (Some(ids[0]), more[0]));
    // Pruned by age; the newest id is remembered, and never given again.
    assert_eq!(s.prune_events(25).await.unwrap(), 2);
    assert_eq!(s.event_bounds().await.unwrap(), (Some(more[0]), more[0]));
    s.prune_events(i64::MAX).await.unwrap();
    assert_eq!(s.event_bounds().await.unwrap(), (None, more[0]));
    assert!(s.append_events(vec![ev("a", "x", 40)]).await.unwrap()[0] > more[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    log(&SqliteStore::open(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_on_postgres() {
    let pg = PgCluster::start();
    log(&pg_store(&pg).await).await;
}

/// Two stores (replicas) append 400 events at once while a reader follows
/// the cursor: it sees every event exactly once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_the_cursor_misses_nothing_on_postgres() {
    let pg = PgCluster::start();
    let (a, b): (Arc<dyn CredentialStore>, Arc<dyn CredentialStore>) = (Arc::new(pg_store(&pg).await), Arc::new(pg_store(&pg).await));
    let mut writers = Vec::new();
    for (w, s) in [a.clone(), b.clone()].into_iter().enumerate() {
        writers.push(tokio::spawn(async move {
            for i in 0..200 {
                s.append_events(vec![ev("rp", &format!("w{w}-{i}"), i)]).await.unwrap();
            }
        }));
    }
    let mut seen = Vec::new();
    let mut cursor = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 400 {
        assert!(std::time::Instant::now() < deadline, "read {} of 400", seen.len());
        for e in a.events_after(cursor, None, 7).await.unwrap() {
            assert!(e.id > cursor);
            cursor = e.id;
            seen.push(e.event.kind);
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(a.events_after(cursor, None, 10).await.unwrap().is_empty());
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 400, "every event once");
}

/// A receiver's lease: one holder at a time, taken over once it lapses or
/// is released; the cursor starts where the first claim says and only
/// moves forward, and only for the holder.
async fn deliveries(a: &dyn CredentialStore, b: &dyn CredentialStore) {
    assert_eq!(a.claim_delivery("siem", "A", 1_000, 31_000, 7).await.unwrap(), Some(7), "created at the start cursor");
    assert_eq!(b.claim_delivery("siem", "B", 2_000, 32_000, 0).await.unwrap(), None, "A's lease is live");
    assert!(a.advance_delivery("siem", "A", 9, 40_000).await.unwrap());
    assert!(a.advance_delivery("siem", "A", 8, 40_000).await.unwrap());
    assert!(!b.advance_delivery("siem", "B", 20, 50_000).await.unwrap(), "not B's");
    assert_eq!(a.claim_delivery("siem", "A", 3_000, 43_000, 0).await.unwrap(), Some(9), "renewed; the cursor never went back");
    assert_eq!(b.claim_delivery("siem", "B", 42_000, 72_000, 0).await.unwrap(), None, "renewed until 43 000");
    assert_eq!(b.claim_delivery("siem", "B", 43_001, 73_000, 0).await.unwrap(), Some(9), "lapsed: B takes over");
    assert!(!a.advance_delivery("siem", "A", 10, 80_000).await.unwrap(), "A lost it");
    b.release_delivery("siem", "A").await.unwrap();
    assert_eq!(a.claim_delivery("siem", "A", 44_000, 74_000, 0).await.unwrap(), None, "only the holder releases");
    b.release_delivery("siem", "B").await.unwrap();
    assert_eq!(a.claim_delivery("siem", "A", 44_000, 74_000, 0).await.unwrap(), Some(9), "released: taken at once");
    assert_eq!(b.claim_delivery("other", "B", 44_000, 74_000, 3).await.unwrap(), Some(3), "receivers are independent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_leases_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    deliveries(&s, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_leases_on_postgres() {
    let pg = PgCluster::start();
    deliveries(&pg_store(&pg).await, &pg_store(&pg).await).await;
}

/// Two replicas claim one receiver at once, 50 times: never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_when_two_replicas_claim_at_once_on_postgres() {
    let pg = PgCluster::start();
    let (a, b): (Arc<dyn CredentialStore>, Arc<dyn CredentialStore>) = (Arc::new(pg_store(&pg).await), Arc::new(pg_store(&pg).await));
    for round in 0..50i64 {
        let now = round * 100_000;
        let (ra, rb) =
            tokio::join!(a.claim_delivery("siem", "A", now, now + 50_000, 0), b.claim_delivery("siem", "B", now, now + 50_000, 0));
        let held = [ra.unwrap(), rb.unwrap()].iter().filter(|c| c.is_some()).count();
        assert_eq!(held, 1, "round {round}");
    }
}

/// The models blocked by the metadata in force: each newly blocked one is
/// returned once; one no longer blocked leaves the list. And the count of
/// unrevoked credentials per relying party and model.
async fn blocked_models(s: &dyn CredentialStore) {
    let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
    assert_eq!(s.report_blocked_models(vec![a, b], 1).await.unwrap(), [a, b]);
    assert_eq!(s.report_blocked_models(vec![a, b], 2).await.unwrap(), Vec::<[u8; 16]>::new(), "reported once");
    assert_eq!(s.report_blocked_models(vec![b, c], 3).await.unwrap(), [c]);
    assert_eq!(s.report_blocked_models(vec![a, b, c], 4).await.unwrap(), [a], "unblocked, then blocked again");

    let key = assertd_testkit::SoftAuthenticator::new(assertd_testkit::Alg::Es256);
    let cred = |rp: &str, id: &[u8], aaguid: [u8; 16]| assertd_store::StoredCredential {
        rp_id: rp.into(),
        credential_id: id.to_vec(),
        user_handle: b"u".to_vec(),
        public_key_cose: key.public_key_cose.clone(),
        sign_count: 0,
        backup_eligible: false,
        backup_state: false,
        aaguid: aaguid.to_vec(),
        attested: true,
        transports: vec![],
        revoked: false,
        created_at_ms: 1,
        last_used_at_ms: None,
        aaguid_vouched: true,
        trust_anchor: String::new(),
        discoverable: None,
        attachment: None,
        uv_initialized: false,
        access_pass_id: String::new(),
    };
    for (rp, id, aaguid) in [("x", &b"1"[..], a), ("x", b"2", a), ("y", b"3", a), ("x", b"4", b), ("x", b"5", c)] {
        s.create(cred(rp, id, aaguid)).await.unwrap().unwrap();
    }
    s.revoke("x", b"4").await.unwrap();
    let mut counts = s.count_by_aaguid(vec![a, b]).await.unwrap();
    counts.sort();
    assert_eq!(counts, [("x".to_owned(), a, 2), ("y".to_owned(), a, 1)], "revoked ones and other models left out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_models_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    blocked_models(&SqliteStore::open(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_models_on_postgres() {
    let pg = PgCluster::start();
    blocked_models(&pg_store(&pg).await).await;
}

/// Two replicas load the same blocked list at once, 20 times: each model is
/// reported by exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_blocked_model_is_reported_by_one_replica_on_postgres() {
    let pg = PgCluster::start();
    let (x, y): (Arc<dyn CredentialStore>, Arc<dyn CredentialStore>) = (Arc::new(pg_store(&pg).await), Arc::new(pg_store(&pg).await));
    for round in 0..20u8 {
        let list: Vec<[u8; 16]> = (0..5u8).map(|i| [round, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).collect();
        let (rx, ry) = tokio::join!(x.report_blocked_models(list.clone(), 1), y.report_blocked_models(list.clone(), 1));
        let mut all = [rx.unwrap(), ry.unwrap()].concat();
        all.sort();
        assert_eq!(all, list, "round {round}");
    }
}
