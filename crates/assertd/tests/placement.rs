//! Where a signature is checked (`engine::pool::Placement`): a stream
//! message whose only signature is a short one for a counter-less
//! credential is checked on the runtime thread, so it completes while the
//! verification pool is held busy; unary calls, counting credentials,
//! ES384 and messages of several signatures wait for the pool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd::authz::Grant;
use assertd::config::Config;
use assertd::engine::Engine;
use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::Decision;
use std::sync::Arc;
use std::time::Duration;

fn item(a: &SoftAuthenticator, n: u32) -> pb::Assertion {
    assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x05, n))
}

fn requests(items: Vec<pb::Assertion>) -> Vec<assertd::engine::item::AssertionRequest> {
    assertd::convert::assertions(items, false)
}

/// A stream message through the engine: check, then decide.
async fn stream_message(engine: Arc<Engine>, items: Vec<pb::Assertion>) -> Vec<Decision> {
    let checked = engine.check_stream_message(requests(items), &Grant::open()).await.unwrap();
    assertd::convert::verdicts(engine.decide(checked).await).iter().map(|v| v.decision()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lone_stream_signature_does_not_wait_for_the_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c: Config = toml::from_str(&default_config()).unwrap();
    c.data_dir = tmp.path().join("data");
    c.pool.threads = 1;
    let engine = assertd::server::engine(&c).await.unwrap();
    let [short, counting, es384] = [Alg::Es256, Alg::Es256, Alg::Es384].map(SoftAuthenticator::new);
    for a in [&short, &counting, &es384] {
        engine.put(assertd::convert::record_from_pb(record(RP, a, b"u", false), 0)).await.unwrap();
    }
    let first = engine.verify_batch(requests(vec![item(&counting, 1)])).await.unwrap();
    assert_eq!(first[0].verdict.decision, assertd_policy::Decision::Allow);

    // The pool's one thread is held until `release`.
    let (release, held) = std::sync::mpsc::channel::<()>();
    engine.pool().spawn(move || {
        let _ = held.recv();
    });

    let alone = tokio::time::timeout(Duration::from_secs(10), stream_message(engine.clone(), vec![item(&short, 0)]))
        .await
        .expect("a short lone signature waited for the pool");
    assert_eq!(alone, [Decision::Allow]);

    let unary = {
        let (engine, item) = (engine.clone(), item(&short, 0));
        tokio::spawn(async move {
            assertd::convert::verdicts(engine.verify_batch(requests(vec![item])).await.unwrap())
                .iter()
                .map(|v| v.decision())
                .collect::<Vec<_>>()
        })
    };
    let waiting = [
        ("a unary call", unary),
        ("a counting credential", tokio::spawn(stream_message(engine.clone(), vec![item(&counting, 2)]))),
        ("ES384", tokio::spawn(stream_message(engine.clone(), vec![item(&es384, 0)]))),
        ("two signatures", tokio::spawn(stream_message(engine.clone(), vec![item(&short, 0), item(&short, 0)]))),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (what, task) in &waiting {
        assert!(!task.is_finished(), "{what} was checked without the pool");
    }
    release.send(()).unwrap();
    for (what, task) in waiting {
        let decisions = tokio::time::timeout(Duration::from_secs(10), task).await.expect(what).unwrap();
        assert!(decisions.iter().all(|d| *d == Decision::Allow), "{what}: {decisions:?}");
    }
}
