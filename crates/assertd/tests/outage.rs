//! Store outages, with a real SQLite database locked by another connection:
//! cached credentials keep verifying as far as they can, nothing hangs past
//! the store timeout, nothing is allowed, and the verdict says retry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd::config::Config;
use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path) -> Config {
    let mut c: Config = toml::from_str(&default_config()).unwrap();
    c.data_dir = dir.join("data");
    c.store.timeout_ms = 200;
    c
}

fn from_pb(r: pb::CredentialRecord) -> assertd_store::StoredCredential {
    assertd::service::from_pb(r, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_store_gives_retryable_store_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = assertd::server::engine(&config(tmp.path())).await.unwrap();
    let hot = SoftAuthenticator::new(Alg::Es256);
    let cold = SoftAuthenticator::new(Alg::Es256);
    engine.put(from_pb(record(RP, &hot, b"u", false))).await.unwrap();
    engine.put(from_pb(record(RP, &cold, b"u", false))).await.unwrap();
    let item = |a: &SoftAuthenticator, n| assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x04, n));
    // Warm the cache for `hot`.
    let v = engine.verify_batch(vec![item(&hot, 1)]).await.unwrap();
    assert_eq!(v[0].decision(), Decision::Allow);

    // Another process holds the write lock (readers go on, in WAL mode).
    let locker = rusqlite::Connection::open(tmp.path().join("data/credentials.db")).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE; UPDATE credentials SET attested = attested;").unwrap();

    let started = Instant::now();
    let v = engine.verify_batch(vec![item(&hot, 2), item(&cold, 1), item(&hot, 2)]).await.unwrap();
    let took = started.elapsed();
    for verdict in &v {
        assert_eq!(verdict.decision(), Decision::Deny, "{verdict:?}");
        assert_eq!(codes(verdict), vec![ReasonCode::StoreUnavailable], "{verdict:?}");
        assert!(verdict.retryable);
    }
    assert!(took < Duration::from_secs(3), "bounded by the store timeout, took {took:?}");

    // The lock goes away: everything recovers without a restart, and the
    // counter that could not be written was not advanced.
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    let v = engine.verify_batch(vec![item(&hot, 2), item(&cold, 1)]).await.unwrap();
    assert_eq!(v.iter().map(|v| v.decision()).collect::<Vec<_>>(), vec![Decision::Allow, Decision::Allow], "{v:?}");
}
