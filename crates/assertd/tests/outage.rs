//! A real SQLite database locked by another connection: nothing hangs past
//! the store timeout, no counted assertion is allowed, and the verdict says
//! retry. Counter-less credentials need no counter call and keep verifying
//! under `counter_outage = "defer"`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd::config::{Config, CounterOutage};
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
    assertd::convert::record_from_pb(r, 0)
}

async fn setup(mode: CounterOutage) -> (tempfile::TempDir, std::sync::Arc<assertd::engine::Engine>, SoftAuthenticator, SoftAuthenticator) {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    c.store.counter_outage = mode;
    let engine = assertd::server::engine(&c).await.unwrap();
    let hot = SoftAuthenticator::new(Alg::Es256);
    let cold = SoftAuthenticator::new(Alg::Es256);
    engine.put(from_pb(record(RP, &hot, b"u", false))).await.unwrap();
    engine.put(from_pb(record(RP, &cold, b"u", false))).await.unwrap();
    // `hot` has been counted on this replica; `cold` has not.
    let v = verify(&engine, vec![item(&hot, 1)]).await;
    assert_eq!(v[0].decision(), Decision::Allow);
    (tmp, engine, hot, cold)
}

/// The engine's verdicts, as the API would answer them.
async fn verify(engine: &assertd::engine::Engine, batch: Vec<pb::Assertion>) -> Vec<pb::Verdict> {
    assertd::convert::verdicts(engine.verify_batch(assertd::convert::assertions(batch, false)).await.unwrap())
}

fn item(a: &SoftAuthenticator, n: u32) -> pb::Assertion {
    assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x04, n))
}

/// Another process holds the write lock (readers go on, in WAL mode).
fn lock(tmp: &tempfile::TempDir) -> rusqlite::Connection {
    let locker = rusqlite::Connection::open(tmp.path().join("data/credentials.db")).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE; UPDATE credentials SET attested = attested;").unwrap();
    locker
}

/// A locked database answered (with SQLITE_BUSY): it is not an outage, and
/// it may hold a count this replica has not seen (another process holds
/// the write lock), so even a credential counted here is denied as
/// retryable, never checked against the replica's memory. The outage journal
/// is for an unreachable store (tests/postgres.rs stops PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_store_denies_counted_assertions_as_retryable() {
    let (tmp, engine, hot, cold) = setup(CounterOutage::Defer).await;
    let locker = lock(&tmp);
    let started = Instant::now();
    let v = verify(&engine, vec![item(&hot, 2), item(&cold, 1)]).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "bounded by the store timeout, took {took:?}");
    for verdict in &v {
        assert_eq!((verdict.decision(), codes(verdict), verdict.retryable), (Decision::Deny, vec![ReasonCode::StoreUnavailable], true));
    }
    // Nothing was queued: the store's count is the only truth.
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    let v = verify(&engine, vec![item(&hot, 2), item(&cold, 1)]).await;
    assert!(v.iter().all(|v| v.decision() == Decision::Allow && codes(v).is_empty()), "{v:?}");
    assert_eq!(engine.cache().store().get(RP, &hot.credential_id).await.unwrap().unwrap().sign_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_store_with_counter_outage_deny_fails_closed() {
    let (tmp, engine, hot, cold) = setup(CounterOutage::Deny).await;
    let locker = lock(&tmp);
    let started = Instant::now();
    let v = verify(&engine, vec![item(&hot, 2), item(&cold, 1)]).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    for verdict in &v {
        assert_eq!((verdict.decision(), codes(verdict), verdict.retryable), (Decision::Deny, vec![ReasonCode::StoreUnavailable], true));
    }
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    let v = verify(&engine, vec![item(&hot, 2), item(&cold, 1)]).await;
    assert!(v.iter().all(|v| v.decision() == Decision::Allow), "{v:?}");
}

/// Counter-less credentials (stored 0, received 0) need no counter call: they
/// keep verifying through an outage under "defer", and fail closed with the
/// rest under "deny".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counterless_credentials_through_an_outage_follow_counter_outage() {
    for mode in [CounterOutage::Defer, CounterOutage::Deny] {
        let (tmp, engine, _, cold) = setup(mode).await;
        // Cached, and counter-less so far.
        let v = verify(&engine, vec![item(&cold, 0)]).await;
        assert_eq!(v[0].decision(), Decision::Allow);
        let locker = lock(&tmp);
        engine.set_store_up(false); // what the health watcher's ping would say
        let v = verify(&engine, vec![item(&cold, 0)]).await;
        let got = (v[0].decision(), codes(&v[0]));
        match mode {
            CounterOutage::Defer => assert_eq!(got, (Decision::Allow, vec![])),
            CounterOutage::Deny => assert_eq!(got, (Decision::Deny, vec![ReasonCode::StoreUnavailable])),
        }
        drop(locker);
    }
}

/// A database that refuses one of a batch's writes (here a trigger, as a
/// full disk or a constraint would): the verdict is retryable and nothing
/// was written, so the documented retry succeeds. Red before: the sign
/// count was stored before the challenge's use failed, and the retry was
/// SIGN_COUNT_REGRESSION; a registration's challenge was used before its
/// record failed, and the retry was CHALLENGE_REPLAYED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_verdict_has_changed_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("challenge.key"), [9u8; 32]).unwrap();
    let toml = format!(
        "{}\n[challenges]\nkeys = [{{ id = \"k1\", secret_file = \"{}\" }}]\n",
        default_config(),
        tmp.path().join("challenge.key").display()
    );
    let mut c: Config = toml::from_str(&toml).unwrap();
    c.data_dir = tmp.path().join("data");
    let engine = assertd::server::engine(&c).await.unwrap();
    let key = SoftAuthenticator::new(Alg::Es256);
    engine.put(from_pb(record(RP, &key, b"u", false))).await.unwrap();
    let issue = |ceremony| {
        let policy = engine.reloadable();
        let keys = &policy.challenges.as_ref().unwrap().keys;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        keys.issue(RP, b"u", ceremony, now + 60, [1; 16])
    };
    let db = rusqlite::Connection::open(tmp.path().join("data/credentials.db")).unwrap();
    let refuse = |table: &str| {
        db.execute_batch(&format!("CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'refused'); END;")).unwrap()
    };

    // Sign-in: a counting credential over an issued challenge.
    let challenge = issue(assertd_verify::Ceremony::SignIn);
    let a = pb::Assertion {
        server_issued_challenge: true,
        ..assertion("r", RP, &key.credential_id, b"", key.assert(RP, ORIGIN, &challenge, 0x05, 7))
    };
    refuse("consumed_challenges");
    let v = verify(&engine, vec![a.clone()]).await;
    assert_eq!((v[0].decision(), codes(&v[0]), v[0].retryable), (Decision::Deny, vec![ReasonCode::StoreUnavailable], true));
    assert_eq!(engine.cache().store().get(RP, &key.credential_id).await.unwrap().unwrap().sign_count, 0, "no count was stored");
    db.execute_batch("DROP TRIGGER refuse").unwrap();
    let v = verify(&engine, vec![a.clone()]).await;
    assert_eq!((v[0].decision(), codes(&v[0])), (Decision::Allow, vec![]), "the retry succeeds");
    let v = verify(&engine, vec![a]).await;
    assert_eq!(codes(&v[0]), vec![ReasonCode::ChallengeReplayed, ReasonCode::SignCountRegression]);

    // Registration over an issued challenge.
    let challenge = issue(assertd_verify::Ceremony::Registration);
    let new = SoftAuthenticator::new(Alg::Es256);
    let r = assertd::engine::RegistrationRequest {
        rp_id: RP.into(),
        user_handle: b"u".to_vec(),
        client_data_json: Vec::new(),
        attestation_object: Vec::new(),
        server_issued_challenge: true,
        ..Default::default()
    };
    let att = new.register(RP, ORIGIN, &challenge, 0x05, [0; 16], assertd_testkit::Attestation::None);
    let r =
        assertd::engine::RegistrationRequest { client_data_json: att.client_data_json, attestation_object: att.attestation_object, ..r };
    let grant = assertd::authz::Grant::open();
    refuse("credentials");
    let out = engine.register(r.clone(), &grant).await.unwrap();
    assert!(out.verdict.retryable, "{:?}", out.verdict);
    db.execute_batch("DROP TRIGGER refuse").unwrap();
    let out = engine.register(r.clone(), &grant).await.unwrap();
    assert_eq!(out.verdict.decision, assertd_policy::Decision::Allow, "the retry succeeds: {:?}", out.verdict);
    let out = engine.register(r, &grant).await.unwrap();
    assert!(out.verdict.reasons.iter().any(|f| f.code == assertd_policy::ReasonCode::ChallengeReplayed), "{:?}", out.verdict);
}
