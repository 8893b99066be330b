//! Temporary access passes: the same behaviour on SQLite and PostgreSQL,
//! and exactly one winner when many redeem one one-time pass at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_store::{AccessPass, ChallengeUse, CredentialStore, PassRefusal, Registered, SqliteStore, StoredCredential};
use assertd_testkit::pg::PgCluster;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::pg_store;
use std::sync::Arc;

fn pass(id: &str, user: &[u8], one_time: bool, created: i64) -> AccessPass {
    AccessPass {
        rp_id: "rp".into(),
        pass_id: id.into(),
        user_handle: user.to_vec(),
        key_id: "k1".into(),
        hash: vec![id.len() as u8; 32],
        one_time,
        created_at_ms: created,
        expires_at_ms: created + 3_600_000,
        revoked_at_ms: None,
        used_at_ms: None,
        uses: 0,
        issued_by: "helpdesk".into(),
        note: "lost phone".into(),
    }
}

fn record(id: &[u8], user: &[u8], pass_id: &str) -> StoredCredential {
    StoredCredential {
        rp_id: "rp".into(),
        credential_id: id.to_vec(),
        user_handle: user.to_vec(),
        public_key_cose: SoftAuthenticator::new(Alg::Es256).public_key_cose,
        sign_count: 0,
        backup_eligible: false,
        backup_state: false,
        aaguid: vec![0; 16],
        attested: false,
        transports: vec![],
        revoked: false,
        created_at_ms: 1_000,
        last_used_at_ms: None,
        aaguid_vouched: false,
        trust_anchor: String::new(),
        discoverable: None,
        attachment: None,
        uv_initialized: false,
        access_pass_id: pass_id.into(),
    }
}

/// Issue, list, replace, revoke, redeem, expire, prune.
async fn lifecycle(s: &dyn CredentialStore) {
    let t = 1_000_000;
    assert!(s.issue_pass(pass("p1", b"u", true, t)).await.unwrap().is_empty());
    assert!(s.issue_pass(pass("other-user", b"v", false, t)).await.unwrap().is_empty(), "another user's pass is not replaced");
    // A new pass replaces the usable one, as Entra does.
    assert_eq!(s.issue_pass(pass("p2", b"u", false, t + 10)).await.unwrap(), vec!["p1".to_owned()]);
    let listed = s.passes("rp", b"u").await.unwrap();
    assert_eq!(listed.iter().map(|p| p.pass_id.as_str()).collect::<Vec<_>>(), ["p2", "p1"], "newest first");
    assert_eq!(listed[1].revoked_at_ms, Some(t + 10));
    assert_eq!((listed[0].note.as_str(), listed[0].issued_by.as_str(), listed[0].hash.len()), ("lost phone", "helpdesk", 32));
    assert_eq!(s.redeem_pass("rp", "p1", t + 20).await.unwrap(), Err(PassRefusal::Revoked));
    assert_eq!(s.redeem_pass("rp", "nope", t + 20).await.unwrap(), Err(PassRefusal::Invalid));
    assert_eq!(s.redeem_pass("other-rp", "p2", t + 20).await.unwrap(), Err(PassRefusal::Invalid));
    // A reusable pass: used until it expires, first use kept, uses counted.
    let once = s.redeem_pass("rp", "p2", t + 20).await.unwrap().unwrap();
    let twice = s.redeem_pass("rp", "p2", t + 30).await.unwrap().unwrap();
    assert_eq!((once.used_at_ms, once.uses, twice.used_at_ms, twice.uses), (Some(t + 20), 1, Some(t + 20), 2));
    assert_eq!(s.redeem_pass("rp", "p2", t + 10 + 3_600_000).await.unwrap(), Err(PassRefusal::Expired));
    // A one-time pass: once.
    s.issue_pass(pass("p3", b"u", true, t + 40)).await.unwrap();
    assert!(s.redeem_pass("rp", "p3", t + 50).await.unwrap().is_ok());
    assert_eq!(s.redeem_pass("rp", "p3", t + 60).await.unwrap(), Err(PassRefusal::Used));
    // A used one-time pass is not "usable": the next issue replaces nothing.
    assert!(s.issue_pass(pass("p4", b"u", true, t + 70)).await.unwrap().is_empty());
    // Revoke: kept, marked; twice keeps the first time; unknown: None.
    assert_eq!(s.revoke_pass("rp", "p4", t + 80).await.unwrap().unwrap().revoked_at_ms, Some(t + 80));
    assert_eq!(s.revoke_pass("rp", "p4", t + 90).await.unwrap().unwrap().revoked_at_ms, Some(t + 80));
    assert_eq!(s.revoke_pass("rp", "nope", t).await.unwrap(), None);
    assert_eq!(s.redeem_pass("rp", "p4", t + 95).await.unwrap(), Err(PassRefusal::Revoked));
    // Prune by expiry: p1 and p2 expired before p3 and p4.
    assert_eq!(s.prune_passes(t + 35 + 3_600_000).await.unwrap(), 3, "p1, p2 and the other user's");
    assert_eq!(s.passes("rp", b"u").await.unwrap().iter().map(|p| p.pass_id.as_str()).collect::<Vec<_>>(), ["p4", "p3"]);
}

/// A registration with a pass: the credential and the pass's use in one
/// transaction with the challenge's; refusals keep the challenge's use and
/// store nothing else.
async fn registration_redeems(s: &dyn CredentialStore) {
    let t = 2_000_000;
    let use_ = |b: u8| ChallengeUse { id: [b; 32], keep_until_ms: t + 100_000 };
    s.issue_pass(pass("p", b"u", true, t)).await.unwrap();
    // Another user's pass, or a pass id that does not exist: invalid.
    assert_eq!(
        s.create_with_pass(record(b"c0", b"mallory", "p"), None, t + 1).await.unwrap(),
        Registered::PassRefused(PassRefusal::Invalid)
    );
    assert_eq!(
        s.create_with_pass(record(b"c0", b"u", "zz"), Some(use_(1)), t + 1).await.unwrap(),
        Registered::PassRefused(PassRefusal::Invalid)
    );
    assert_eq!(s.get("rp", b"c0").await.unwrap(), None);
    assert_eq!(
        s.create_with_pass(record(b"c1", b"u", "p"), Some(use_(1)), t + 2).await.unwrap(),
        Registered::ChallengeReplayed,
        "the refusal used the challenge up"
    );
    // An id already registered: the pass stays unredeemed.
    s.create(record(b"taken", b"u", "")).await.unwrap().unwrap();
    assert_eq!(s.create_with_pass(record(b"taken", b"u", "p"), Some(use_(2)), t + 3).await.unwrap(), Registered::AlreadyRegistered);
    assert_eq!(s.passes("rp", b"u").await.unwrap()[0].uses, 0);
    // Redeemed: stored with the pass's id, the pass used up.
    let Registered::Created(c) = s.create_with_pass(record(b"c1", b"u", "p"), Some(use_(3)), t + 4).await.unwrap() else { panic!() };
    assert_eq!(c.access_pass_id, "p");
    assert_eq!(s.get("rp", b"c1").await.unwrap().unwrap().access_pass_id, "p");
    let p = s.passes("rp", b"u").await.unwrap().remove(0);
    assert_eq!((p.used_at_ms, p.uses), (Some(t + 4), 1));
    assert_eq!(s.create_with_pass(record(b"c2", b"u", "p"), None, t + 5).await.unwrap(), Registered::PassRefused(PassRefusal::Used));
    assert_eq!(s.get("rp", b"c2").await.unwrap(), None);
    // Expired.
    s.issue_pass(pass("q", b"u", false, t)).await.unwrap();
    let late = t + 3_600_000;
    assert_eq!(s.create_with_pass(record(b"c3", b"u", "q"), None, late).await.unwrap(), Registered::PassRefused(PassRefusal::Expired));
}

/// `n` concurrent redemptions of one one-time pass, half by registration,
/// half by a sign-in with the pass, over the given stores: how many won.
async fn race(stores: &[Arc<dyn CredentialStore>], n: usize) -> usize {
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = stores[i % stores.len()].clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            if i % 2 == 0 {
                s.redeem_pass("rp", "race", 3_000_001).await.unwrap().is_ok()
            } else {
                let id = format!("c{i}");
                matches!(s.create_with_pass(record(id.as_bytes(), b"u", "race"), None, 3_000_001).await.unwrap(), Registered::Created(_))
            }
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    won
}

both!(lifecycle_, lifecycle);
both!(registration_redeems_, registration_redeems);

/// `rounds` races of `n` over `stores`, a fresh pass each round: how many
/// won each round.
async fn rounds(stores: &[Arc<dyn CredentialStore>], rounds: usize, n: usize) -> Vec<usize> {
    let s = &stores[0];
    let mut won = Vec::new();
    for _ in 0..rounds {
        s.issue_pass(pass("race", b"u", true, 3_000_000)).await.unwrap();
        won.push(race(stores, n).await);
        s.prune_passes(i64::MAX).await.unwrap();
        for i in 0..n {
            s.delete("rp", format!("c{i}").as_bytes()).await.unwrap();
        }
    }
    won
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn CredentialStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    assert_eq!(rounds(&[s], 5, 16).await, vec![1; 5]);
}

/// Two stores with their own pools on one PostgreSQL (two replicas): of 32
/// concurrent redemptions, exactly one wins, every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_winner_over_two_pools() {
    let pg = PgCluster::start();
    let a: Arc<dyn CredentialStore> = Arc::new(pg_store(&pg).await);
    let b: Arc<dyn CredentialStore> = Arc::new(pg_store(&pg).await);
    assert_eq!(rounds(&[a, b], 10, 32).await, vec![1; 10]);
}
