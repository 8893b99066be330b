//! assertd on a real PostgreSQL (Debian's server, started per test on a
//! loopback port): replicas sharing counters and revocations, outages,
//! slow statements, and crashes.

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

fn pg_config(pg: &PgCluster, extra: &str) -> String {
    format!("{}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\n{extra}\n", default_config(), pg.url())
}

async fn verify_one(server: &Server, a: pb::Assertion) -> pb::Verdict {
    server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a], ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .verdicts
        .remove(0)
}

async fn health(server: &Server, service: &str) -> ServingStatus {
    let mut h = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    h.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_counters_and_revocations() {
    let pg = PgCluster::start();
    let a_srv = Server::start(&pg_config(&pg, ""));
    let b_srv = Server::start(&pg_config(&pg, ""));
    let key = SoftAuthenticator::new(Alg::Es256);
    let other = SoftAuthenticator::new(Alg::EdDsa);
    put(&a_srv, record(RP, &key, b"u", false)).await;
    put(&a_srv, record(RP, &other, b"u", false)).await;
    let item = |a: &SoftAuthenticator, n| assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, n));

    // A replay accepted by A is flagged by B.
    let first = item(&key, 5);
    assert_eq!(verify_one(&a_srv, first.clone()).await.decision(), Decision::Allow);
    assert_eq!(codes(&verify_one(&b_srv, first).await), vec![ReasonCode::SignCountRegression]);
    // B has the key cached now.
    assert_eq!(verify_one(&b_srv, item(&key, 6)).await.decision(), Decision::Allow);
    assert_eq!(verify_one(&b_srv, item(&other, 1)).await.decision(), Decision::Allow);

    // A revocation on A denies on B within a second.
    a_srv
        .credentials()
        .await
        .revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: key.credential_id.clone() })
        .await
        .unwrap();
    let revoked_at = Instant::now();
    let mut n = 7;
    loop {
        n += 1;
        let v = verify_one(&b_srv, item(&key, n)).await;
        if codes(&v) == vec![ReasonCode::CredentialRevoked] {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "B still accepts after {:?}: {v:?}", revoked_at.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = revoked_at.elapsed();
    assert!(b_srv.scrape().lines().any(|l| l == "assertd_change_feed_up 1"), "the change feed is connected");

    // So does a revocation made in the database by another system.
    pg.psql(&format!(
        "UPDATE credentials SET revoked = true WHERE credential_id = '\\x{}'",
        other.credential_id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let revoked_at = Instant::now();
    let mut n = 1;
    for srv in [&a_srv, &b_srv] {
        loop {
            n += 1;
            let v = verify_one(srv, item(&other, n)).await;
            if codes(&v) == vec![ReasonCode::CredentialRevoked] {
                break;
            }
            assert!(revoked_at.elapsed() < Duration::from_secs(1), "still accepted after {:?}: {v:?}", revoked_at.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("revocation on A seen by B after {took:?}; database revocation seen by both after {:?}", revoked_at.elapsed());
}

/// Counter-less credentials (count 0, most synced passkeys) never reach the
/// store once cached: revocation must still reach every replica's verdicts
/// within a second, through the change feed alone. Measured both for a
/// revocation over the API on one replica and for one made in the database
/// by another system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_of_counterless_credentials_reaches_every_replica_within_a_second() {
    let pg = PgCluster::start();
    let a_srv = Server::start(&pg_config(&pg, ""));
    let b_srv = Server::start(&pg_config(&pg, ""));
    let by_api = SoftAuthenticator::new(Alg::Es256);
    let by_sql = SoftAuthenticator::new(Alg::EdDsa);
    for key in [&by_api, &by_sql] {
        put(&a_srv, record(RP, key, b"u", false)).await;
    }
    let item = |k: &SoftAuthenticator| assertion("x", RP, &k.credential_id, b"c", k.assert(RP, ORIGIN, b"c", UV, 0));
    // Cached as counter-less on both replicas: from here on no verdict of
    // theirs asks the store.
    for srv in [&a_srv, &b_srv] {
        for key in [&by_api, &by_sql] {
            for _ in 0..2 {
                assert_eq!(verify_one(srv, item(key)).await.decision(), Decision::Allow);
            }
        }
    }
    async fn until_revoked(srv: &Server, a: pb::Assertion, since: Instant) -> Duration {
        loop {
            let v = verify_one(srv, a.clone()).await;
            if codes(&v) == vec![ReasonCode::CredentialRevoked] {
                return since.elapsed();
            }
            assert!(since.elapsed() < Duration::from_secs(1), "still {:?} after {:?}", v.decision(), since.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let revoke = pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: by_api.credential_id.clone() };
    a_srv.credentials().await.revoke_credential(revoke).await.unwrap();
    let since = Instant::now();
    let on_a = until_revoked(&a_srv, item(&by_api), since).await;
    let on_b = until_revoked(&b_srv, item(&by_api), since).await;

    let hex: String = by_sql.credential_id.iter().map(|b| format!("{b:02x}")).collect();
    pg.psql(&format!("UPDATE credentials SET revoked = true WHERE credential_id = '\\x{hex}'"));
    let since = Instant::now();
    let sql_a = until_revoked(&a_srv, item(&by_sql), since).await;
    let sql_b = until_revoked(&b_srv, item(&by_sql), since).await;
    eprintln!(
        "counter-less revocation: over the API on A, denied on A after {on_a:?}, on B after {on_b:?}; \
         in the database, denied on A after {sql_a:?}, on B after {sql_b:?}"
    );
}

/// Counter-less credentials skip the counter round trip on the strength of
/// each replica's cached "still 0": when the count first leaves 0 on one
/// replica, the other must stop trusting its cached 0 (the change feed's
/// "counted" notice), so a 0 after that is a regression everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_leaving_zero_reaches_every_replica() {
    let pg = PgCluster::start();
    let a_srv = Server::start(&pg_config(&pg, ""));
    let b_srv = Server::start(&pg_config(&pg, ""));
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&a_srv, record(RP, &key, b"u", false)).await;
    let item = |n| assertion("x", RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", UV, n));
    // Both replicas cache it as counter-less.
    for srv in [&a_srv, &b_srv] {
        for _ in 0..2 {
            assert_eq!(verify_one(srv, item(0)).await.decision(), Decision::Allow);
        }
    }
    // A sees a count: from now on a 0 is a regression, on A at once and on
    // B as soon as the notice arrives.
    assert_eq!(verify_one(&a_srv, item(3)).await.decision(), Decision::Allow);
    assert_eq!(codes(&verify_one(&a_srv, item(0)).await), vec![ReasonCode::SignCountRegression]);
    let since = Instant::now();
    loop {
        let v = verify_one(&b_srv, item(0)).await;
        if codes(&v) == vec![ReasonCode::SignCountRegression] {
            break;
        }
        assert!(since.elapsed() < Duration::from_secs(1), "B still trusts its cached 0 after {:?}: {v:?}", since.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("count leaving 0 on A reached B within {:?}", since.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_retryable_bounded_and_recovers() {
    let pg = PgCluster::start();
    // The bound leaves room for a loaded test machine before the outage.
    let hot = SoftAuthenticator::new(Alg::Es256);
    let cold = SoftAuthenticator::new(Alg::Es256);
    // Stored through another replica before this one starts: the change
    // feed's notices of these writes cannot reach this replica late and drop
    // what it cached (on a loaded machine they could arrive after the first
    // verification below).
    {
        let seed = Server::start(&pg_config(&pg, ""));
        put(&seed, record(RP, &hot, b"u", false)).await;
        put(&seed, record(RP, &cold, b"u", false)).await;
    }
    let server = Server::start(&pg_config(&pg, "timeout_ms = 1000\nreadiness_grace_seconds = 1\nreadiness_follows_store = true"));
    let item = |a: &SoftAuthenticator, n| assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, n));
    assert_eq!(verify_one(&server, item(&hot, 1)).await.decision(), Decision::Allow);
    assert_eq!(health(&server, "readiness").await, ServingStatus::Serving);

    pg.stop_server();
    let mut n = 1;
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(3) {
        n += 1;
        let started = Instant::now();
        let verdicts = server
            .verifier()
            .await
            .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(&hot, n), item(&cold, n)], ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .verdicts;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "answer took {took:?}");
        // The credential counted before the outage keeps verifying, its
        // counter checked against this replica's memory; the other cannot.
        assert_eq!((verdicts[0].decision(), codes(&verdicts[0])), (Decision::Allow, vec![ReasonCode::SignCountDeferred]), "{verdicts:?}");
        assert_eq!((verdicts[1].decision(), codes(&verdicts[1])), (Decision::Deny, vec![ReasonCode::StoreUnavailable]));
        assert!(verdicts[1].retryable);
    }
    // Past the grace: not ready, but alive.
    assert_eq!(health(&server, "readiness").await, ServingStatus::NotServing);
    assert_eq!(health(&server, "").await, ServingStatus::NotServing);
    assert_eq!(health(&server, "liveness").await, ServingStatus::Serving);
    let metrics = server.scrape();
    assert!(metrics.lines().any(|l| l == "assertd_store_up 0"), "{metrics}");

    // PostgreSQL returns: the service recovers by itself.
    pg.start_server();
    let back = Instant::now();
    loop {
        n += 1;
        let v = verify_one(&server, item(&cold, n)).await;
        if v.decision() == Decision::Allow {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(15), "not recovered: {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The counts accepted during the outage reached the database.
    let stored = server
        .credentials()
        .await
        .get_credential(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: hot.credential_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert!(stored.sign_count > 2, "deferred counts flushed: {}", stored.sign_count);
    let ready = Instant::now();
    while health(&server, "readiness").await != ServingStatus::Serving {
        assert!(ready.elapsed() < Duration::from_secs(5), "readiness did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("recovered {:?} after PostgreSQL restarted", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_database_is_bounded_by_the_statement_timeout() {
    let pg = PgCluster::start();
    let server = Server::start(&pg_config(&pg, "timeout_ms = 700"));
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    // Counted (and cached) on this replica before the lock.
    let hot = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &hot, b"u", false)).await;
    let hot_item = |n| assertion("x", RP, &hot.credential_id, b"c", hot.assert(RP, ORIGIN, b"c", UV, n));
    assert_eq!(verify_one(&server, hot_item(1)).await.decision(), Decision::Allow);
    // Another session holds the table for 4 s.
    let port = pg.port();
    let locker = std::thread::spawn({
        let sql = "BEGIN; LOCK TABLE credentials IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;".to_string();
        let dir = pg.dir().to_owned();
        move || {
            let _ = dir;
            std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres", "-c", &sql])
                .output()
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let v = verify_one(&server, assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 1))).await;
    let took = started.elapsed();
    assert_eq!(codes(&v), vec![ReasonCode::StoreUnavailable]);
    assert!(v.retryable);
    assert!(took < Duration::from_millis(2000), "bounded by the 700 ms timeout (plus margin), took {took:?}");
    // PostgreSQL answered (lock_timeout): not an outage, so the replica's
    // memory does not stand in for the store, even for a credential it
    // counted.
    let v = verify_one(&server, hot_item(2)).await;
    assert_eq!((v.decision(), codes(&v), v.retryable), (Decision::Deny, vec![ReasonCode::StoreUnavailable], true));
    assert!(locker.join().unwrap().status.success());
    assert_eq!(verify_one(&server, hot_item(2)).await.decision(), Decision::Allow, "nothing was queued for the denied count");
    // The lock is gone: same credential verifies.
    let v = verify_one(&server, assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 2))).await;
    assert_eq!(v.decision(), Decision::Allow, "{v:?}");
    eprintln!("a locked table answered STORE_UNAVAILABLE after {took:?}");
}

/// Assertions per credential in the crash test: more than can finish before
/// the kill.
const PER_KEY: u32 = 20_000;

/// Load, kill -9, restart: every count the service acknowledged is still
/// there (a replay of each is refused). `per_call` assertions of one key per
/// call: 4 puts each key several times in a store group (the read-and-plan
/// path); 1 leaves one update per key in a group (SQLite's single-statement
/// path).
async fn crash_keeps_acknowledged_counts(config: &str, dir: &std::path::Path, per_call: usize) {
    let a = SoftAuthenticator::new(Alg::Es256);
    let b = SoftAuthenticator::new(Alg::EdDsa);
    let mut server = Server::start_in(dir, config);
    put(&server, record(RP, &a, b"u", false)).await;
    put(&server, record(RP, &b, b"u", false)).await;
    let mut acked = Vec::new();
    let mut clients = Vec::new();
    for (t, key) in [&a, &b].into_iter().enumerate() {
        let mut v = server.verifier().await;
        let items: Vec<_> = (1..=PER_KEY)
            .map(|n| assertion(&format!("{t}-{n}"), RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", UV, n)))
            .collect();
        clients.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for chunk in items.chunks(per_call) {
                match v.verify_assertions(pb::VerifyAssertionsRequest { assertions: chunk.to_vec(), ..Default::default() }).await {
                    Ok(r) => {
                        for (item, verdict) in chunk.iter().zip(r.into_inner().verdicts) {
                            if verdict.decision() == Decision::Allow {
                                ok.push(item.clone());
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
            ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert!(acked.len() > 10, "the load ran before the kill ({} acknowledged)", acked.len());
    assert!(acked.len() < 2 * PER_KEY as usize, "the kill came in the middle of the load");
    drop(server);

    let server = Server::start_in(dir, config);
    let mut v = server.verifier().await;
    for chunk in acked.chunks(256) {
        let r = v
            .verify_assertions(pb::VerifyAssertionsRequest { assertions: chunk.to_vec(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        for (item, verdict) in chunk.iter().zip(&r.verdicts) {
            assert_eq!(codes(verdict), vec![ReasonCode::SignCountRegression], "{} was acknowledged, then lost", item.request_id);
        }
    }
    eprintln!("{} acknowledged counts (of {} sent) survived kill -9", acked.len(), 2 * PER_KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_count_postgres() {
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    crash_keeps_acknowledged_counts(&pg_config(&pg, ""), dir.path(), 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_count_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_keeps_acknowledged_counts(&default_config(), dir.path(), 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_count_sqlite_one_per_call() {
    let dir = tempfile::tempdir().unwrap();
    crash_keeps_acknowledged_counts(&default_config(), dir.path(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_export_against_postgres() {
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("assertd.toml");
    std::fs::write(&cfg, pg_config(&pg, "")).unwrap();
    let keys: Vec<_> = (0..2500).map(|_| SoftAuthenticator::new(Alg::EdDsa)).collect();
    let b64 = assertd_testkit::b64url;
    let lines: String = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "{{\"rp_id\":\"{RP}\",\"credential_id\":\"{}\",\"user_handle\":\"{}\",\"public_key_cose\":\"{}\",\"sign_count\":{i}}}\n",
                b64(&k.credential_id),
                b64(format!("user{}", i % 10).as_bytes()),
                b64(&k.public_key_cose)
            )
        })
        .collect();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, lines).unwrap();
    let exe = env!("CARGO_BIN_EXE_assertd");
    let out = std::process::Command::new(exe).args(["credentials", "import"]).arg(&file).arg("--config").arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(pg.psql("SELECT count(*) FROM credentials").trim(), "2500");
    let exported = dir.path().join("out.jsonl");
    let out = std::process::Command::new(exe).args(["credentials", "export"]).arg(&exported).arg("--config").arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert_eq!(text.lines().count(), 2500);
    // The export imports back (into SQLite) unchanged.
    let out = import(&exported, &dir.path().join("sqlite"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again =
        std::process::Command::new(exe).args(["credentials", "export", "--data-dir"]).arg(dir.path().join("sqlite")).output().unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
}

/// One assertion over an issued challenge, replayed concurrently on two
/// replicas sharing one PostgreSQL: accepted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_challenge_is_used_once_across_replicas() {
    let pg = PgCluster::start();
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("k1");
    std::fs::write(&file, [9u8; 32]).unwrap();
    let section = format!("[challenges]\nkeys = [{{ id = \"k1\", secret_file = \"{}\" }}]", file.display());
    let a_srv = Server::start(&pg_config(&pg, &section));
    let b_srv = Server::start(&pg_config(&pg, &section));
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&a_srv, record(RP, &key, b"u", false)).await;
    for round in 0..3 {
        // Issued by one replica, used on both.
        let issuer = if round % 2 == 0 { &a_srv } else { &b_srv };
        let challenge = issuer
            .verifier()
            .await
            .issue_challenge(pb::IssueChallengeRequest {
                rp_id: RP.into(),
                user_handle: b"u".to_vec(),
                ttl_seconds: 60,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .challenge;
        let a = pb::Assertion {
            server_issued_challenge: true,
            ..assertion("r", RP, &key.credential_id, b"", key.assert(RP, ORIGIN, &challenge, UV, 0))
        };
        let mut calls = Vec::new();
        for i in 0..32 {
            let server = if i % 2 == 0 { &a_srv } else { &b_srv };
            let mut client = server.verifier().await;
            let a = a.clone();
            calls.push(tokio::spawn(async move {
                client
                    .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a], ..Default::default() })
                    .await
                    .unwrap()
                    .into_inner()
                    .verdicts
                    .remove(0)
            }));
        }
        let mut allowed = 0;
        for c in calls {
            let v = c.await.unwrap();
            match v.decision() {
                Decision::Allow => allowed += 1,
                _ => assert_eq!(codes(&v), vec![ReasonCode::ChallengeReplayed]),
            }
        }
        assert_eq!(allowed, 1, "round {round}: 32 concurrent replays over two replicas");
    }
}

/// A verdict that says "retry" uses no issued challenge: the same assertion
/// verifies once the store is back, and only once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_verdict_does_not_use_the_challenge() {
    let pg = PgCluster::start();
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("k1");
    std::fs::write(&file, [5u8; 40]).unwrap();
    let section = format!("timeout_ms = 1000\n[challenges]\nkeys = [{{ id = \"k1\", secret_file = \"{}\" }}]", file.display());
    let server = Server::start(&pg_config(&pg, &section));
    // Counter-less (a synced passkey): cached, it verifies through an outage.
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &key, b"u", true)).await;
    let issue = || async {
        server
            .verifier()
            .await
            .issue_challenge(pb::IssueChallengeRequest { rp_id: RP.into(), user_handle: Vec::new(), ttl_seconds: 60, ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .challenge
    };
    let item = |challenge: &[u8]| pb::Assertion {
        server_issued_challenge: true,
        ..assertion("r", RP, &key.credential_id, b"", key.assert(RP, ORIGIN, challenge, UV | 0x18, 0))
    };
    let warm = issue().await;
    assert_eq!(verify_one(&server, item(&warm)).await.decision(), Decision::Allow);

    let c = issue().await;
    let a = item(&c);
    pg.stop_server();
    let v = verify_one(&server, a.clone()).await;
    assert_eq!((v.decision(), codes(&v), v.retryable), (Decision::Deny, vec![ReasonCode::StoreUnavailable], true));
    pg.start_server();
    let back = Instant::now();
    loop {
        let v = verify_one(&server, a.clone()).await;
        if v.decision() == Decision::Allow {
            break;
        }
        assert!(v.retryable && back.elapsed() < Duration::from_secs(15), "not recovered: {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(codes(&verify_one(&server, a).await), vec![ReasonCode::ChallengeReplayed]);
}

/// Real-time remediation across two replicas: a flag or a user's revocation
/// set through one replica is in force on the other within a second (the
/// store's notifications; measured and printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_risk_and_user_revocation_reach_every_replica_within_a_second() {
    let pg = PgCluster::start();
    let a_srv = Server::start(&without_remediation(&pg_config(&pg, "")));
    let b_srv = Server::start(&without_remediation(&pg_config(&pg, "")));
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&a_srv, record(RP, &key, b"alice", false)).await;
    let item = || assertion("x", RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", UV, 0));
    for s in [&a_srv, &b_srv] {
        assert_eq!(verify_one(s, item()).await.decision(), Decision::Allow);
    }
    // Until `want` holds on B (A answers at once: it wrote), how long it took.
    async fn until(b: &Server, a: pb::Assertion, want: impl Fn(&pb::Verdict) -> bool) -> Duration {
        let t = Instant::now();
        loop {
            let v = verify_one(b, a.clone()).await;
            if want(&v) {
                return t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(1), "replica B still answers {v:?} after {:?}", t.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut admin = a_srv.credentials().await;
    let flag = |level: pb::RiskLevel| pb::SetUserRiskRequest {
        rp_id: RP.into(),
        user_handle: b"alice".to_vec(),
        level: level.into(),
        expires_at: None,
        note: "risky sign-in detected".into(),
    };

    admin.set_user_risk(flag(pb::RiskLevel::High)).await.unwrap();
    assert_eq!(codes(&verify_one(&a_srv, item()).await), vec![ReasonCode::UserRiskHigh]);
    let high = until(&b_srv, item(), |v| v.decision() == Decision::Deny && codes(v) == vec![ReasonCode::UserRiskHigh]).await;
    admin.set_user_risk(flag(pb::RiskLevel::Medium)).await.unwrap();
    assert_eq!(verify_one(&a_srv, item()).await.decision(), Decision::StepUp);
    let medium = until(&b_srv, item(), |v| v.decision() == Decision::StepUp).await;
    admin.clear_user_risk(pb::ClearUserRiskRequest { rp_id: RP.into(), user_handle: b"alice".to_vec() }).await.unwrap();
    assert_eq!(verify_one(&a_srv, item()).await.decision(), Decision::Allow);
    let cleared = until(&b_srv, item(), |v| v.decision() == Decision::Allow).await;

    // A flag written by another system straight into the database.
    pg.psql(&format!("INSERT INTO user_risk VALUES ('{RP}', '\\x616c696365', 'high', NULL, 'from the IdP', 0)"));
    let external = until(&b_srv, item(), |v| codes(v) == vec![ReasonCode::UserRiskHigh]).await;
    pg.psql("DELETE FROM user_risk");
    until(&b_srv, item(), |v| v.decision() == Decision::Allow).await;

    let n = admin
        .revoke_user_credentials(pb::RevokeUserCredentialsRequest { rp_id: RP.into(), user_handle: b"alice".to_vec() })
        .await
        .unwrap()
        .into_inner()
        .revoked;
    assert_eq!(n, 1);
    let revoked = until(&b_srv, item(), |v| codes(v) == vec![ReasonCode::CredentialRevoked]).await;
    eprintln!("replica B followed: high {high:?}, medium {medium:?}, cleared {cleared:?}, external {external:?}, user revoked {revoked:?}");
}

/// Migrations as their own step: with `store.migrate = false` a replica
/// refuses an old schema (naming `assertd migrate`) and serves, on a role
/// without DDL rights, once `assertd migrate` ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_needs_no_ddl_rights_when_migrations_are_a_separate_step() {
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, url: &str, migrate: bool| {
        let path = dir.path().join(name);
        let config = format!(
            "{}\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nmigrate = {migrate}\n",
            default_config()
        );
        // Top-level keys first: a TOML table ends at the next header.
        let (rps, rest) = config.split_at(config.find("listen =").unwrap());
        std::fs::write(&path, format!("{rest}\n{rps}")).unwrap();
        path
    };
    let bin = env!("CARGO_BIN_EXE_assertd");
    let no_migrate = write("serve.toml", &pg.url(), false);
    // If the refusal broke, serve would run on: bound the wait, then fail.
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--config"])
        .arg(&no_migrate)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(15) {
            child.kill().unwrap();
            panic!("serve started on an unmigrated schema with store.migrate = false");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && err.contains("run `assertd migrate`"), "{err}");

    let out = std::process::Command::new(bin).args(["migrate", "--config"]).arg(write("migrate.toml", &pg.url(), false)).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("schema is current"), "{out:?}");

    // A role that may read and write rows, and nothing else.
    pg.psql(
        "CREATE ROLE app LOGIN; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app; \
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
    );
    let app_url = pg.url().replace("postgres://postgres@", "postgres://app@");
    let server = Server::start(&format!("{}\n[store]\nbackend = \"postgres\"\nurl = \"{app_url}\"\nmigrate = false\n", default_config()));
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &key, b"u", false)).await;
    let v = verify_one(&server, assertion("x", RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", UV, 1))).await;
    assert_eq!(v.decision(), Decision::Allow, "{v:?}");
}

/// Issue 26 §6: a replica that cannot read the users flagged at risk at
/// start takes no traffic (readiness NOT_SERVING) and answers sign-ins as
/// retryable, having written nothing, until it can; then it is ready within
/// a couple of seconds. Red before: it served, and allowed, without the
/// flags (a user flagged high would have signed in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_user_risk_flags_are_loaded() {
    let pg = PgCluster::start();
    drop(Server::start(&pg_config(&pg, ""))); // migrates, as the owner
    pg.psql("CREATE ROLE app LOGIN; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app; REVOKE SELECT ON user_risk FROM app;");
    let app_url = pg.url().replace("postgres://postgres@", "postgres://app@");
    let server = Server::start(&format!("{}\n[store]\nbackend = \"postgres\"\nurl = \"{app_url}\"\nmigrate = false\n", default_config()));
    assert_eq!(health(&server, "readiness").await, ServingStatus::NotServing);
    assert_eq!(health(&server, "").await, ServingStatus::NotServing);
    assert_eq!(health(&server, "liveness").await, ServingStatus::Serving);
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &key, b"u", false)).await;
    let a = assertion("x", RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", UV, 1));
    let v = verify_one(&server, a.clone()).await;
    assert_eq!((v.decision(), codes(&v), v.retryable), (Decision::Deny, vec![ReasonCode::StoreUnavailable], true));
    assert_eq!(pg.psql("SELECT sign_count FROM credentials").trim(), "0", "nothing written");

    pg.psql("GRANT SELECT ON user_risk TO app;");
    let granted = Instant::now();
    while health(&server, "readiness").await != ServingStatus::Serving {
        assert!(granted.elapsed() < Duration::from_secs(5), "readiness did not come");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health(&server, "").await, ServingStatus::Serving);
    let v = verify_one(&server, a).await;
    assert_eq!(v.decision(), Decision::Allow, "{v:?}");
}
