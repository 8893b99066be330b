//! The store conformance suite: every backend must pass it. (SQLite here;
//! later backends run the same functions.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_store::{
    CacheConfig, ChallengeLedger, Change, CounterResult, CounterUpdate, CredentialStore, Credentials, Health, KeyCache, Lookup,
    PostgresConfig, PostgresStore, Registered, Replaced, SqliteStore, StoredCredential,
};
use assertd_testkit::pg::PgCluster;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::pg_store;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn record(rp: &str, id: &[u8], user: &[u8], count: u32) -> StoredCredential {
    StoredCredential {
        rp_id: rp.into(),
        credential_id: id.to_vec(),
        user_handle: user.to_vec(),
        public_key_cose: SoftAuthenticator::new(Alg::Es256).public_key_cose,
        sign_count: count,
        backup_eligible: false,
        backup_state: false,
        aaguid: vec![7; 16],
        attested: true,
        transports: vec!["usb".into(), "nfc".into()],
        revoked: false,
        created_at_ms: 1_700_000_000_000,
        last_used_at_ms: None,
        aaguid_vouched: false,
        trust_anchor: String::new(),
        discoverable: None,
        attachment: None,
        uv_initialized: false,
        access_pass_id: String::new(),
    }
}

fn upd(rp: &str, id: &[u8], received: u32) -> CounterUpdate {
    CounterUpdate { rp_id: rp.into(), credential_id: id.to_vec(), received }
}

/// Issue 13 item 5: a credential is created, never overwritten by a create;
/// a replace keeps its owner, its revocation and its count; a delete erases.
async fn create_replace_delete(s: &dyn CredentialStore) {
    let owner = record("rp", b"c", b"owner", 7);
    let created = s.create(owner.clone()).await.unwrap().unwrap();
    assert_eq!(created.user_handle, b"owner".to_vec());
    // Another user's key under the same id: refused, nothing written.
    let attacker = record("rp", b"c", b"attacker", 0);
    assert_eq!(s.create(attacker.clone()).await.unwrap(), None);
    assert_eq!(s.get("rp", b"c").await.unwrap().unwrap().public_key_cose, owner.public_key_cose);
    assert_eq!(s.replace(attacker).await.unwrap(), Replaced::OtherUser);
    assert_eq!(s.get("rp", b"c").await.unwrap().unwrap().public_key_cose, owner.public_key_cose);
    assert_eq!(s.replace(record("rp", b"nope", b"owner", 0)).await.unwrap(), Replaced::NotFound);
    // The owner replaces its key: the count stays, revoked stays revoked.
    s.revoke("rp", b"c").await.unwrap();
    let mut new_key = record("rp", b"c", b"owner", 0);
    new_key.revoked = false;
    let Replaced::Replaced(r) = s.replace(new_key.clone()).await.unwrap() else { panic!("not replaced") };
    assert_eq!(
        (r.public_key_cose, r.sign_count, r.revoked, r.created_at_ms),
        (new_key.public_key_cose.clone(), 7, true, owner.created_at_ms)
    );
    // The bulk path keeps a revocation too.
    s.put_many(vec![new_key]).await.unwrap();
    assert!(s.get("rp", b"c").await.unwrap().unwrap().revoked);
    // Delete erases; twice is None.
    assert_eq!(s.delete("rp", b"c").await.unwrap().map(|r| r.user_handle), Some(b"owner".to_vec()));
    assert_eq!(s.get("rp", b"c").await.unwrap(), None);
    assert_eq!(s.delete("rp", b"c").await.unwrap(), None);
}

async fn put_get_list_revoke(s: &dyn CredentialStore) {
    assert_eq!(s.get("rp", b"a").await.unwrap(), None);
    let a = record("rp", b"a", b"u1", 5);
    let stored = s
        .put_many(vec![a.clone(), record("rp", b"b", b"u1", 0), record("rp", b"c", b"u2", 0), record("other", b"a", b"u1", 0)])
        .await
        .unwrap();
    assert_eq!(stored[0], a);
    assert_eq!(s.get("rp", b"a").await.unwrap(), Some(a.clone()));
    let ids: Vec<_> = s.list_by_user("rp", b"u1").await.unwrap().into_iter().map(|r| r.credential_id).collect();
    assert_eq!(ids, vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(s.list_by_user("rp", b"nobody").await.unwrap().is_empty());

    // A replace keeps created_at and never lowers the count.
    let mut older = record("rp", b"a", b"u1", 2);
    older.created_at_ms = 42;
    older.transports = vec![];
    let again = s.put_many(vec![older]).await.unwrap().remove(0);
    assert_eq!((again.sign_count, again.created_at_ms, again.transports.len()), (5, a.created_at_ms, 0));

    let revoked = s.revoke("rp", b"a").await.unwrap().unwrap();
    assert!(revoked.revoked);
    assert!(s.get("rp", b"a").await.unwrap().unwrap().revoked);
    assert_eq!(s.revoke("rp", b"zzz").await.unwrap(), None);
}

/// A batch's misses in one read: one answer per key, in the order asked
/// (a key asked twice answered twice), unknown keys `None`, and a count not
/// yet folded into its row (SQLite's journal) merged as `get` merges it.
async fn get_many_answers_in_order(s: &dyn CredentialStore) {
    assert!(s.get_many(&[]).await.unwrap().is_empty());
    s.put_many(vec![record("rp", b"a", b"u1", 0), record("rp", b"b", b"u1", 3), record("other", b"a", b"u2", 0)]).await.unwrap();
    s.advance_sign_counts(vec![upd("rp", b"b", 9)].into(), 1).await.unwrap();
    let keys: [(&str, &[u8]); 6] = [("rp", b"b"), ("rp", b"zzz"), ("other", b"a"), ("rp", b"a"), ("nope", b"a"), ("rp", b"b")];
    let got = s.get_many(&keys).await.unwrap();
    let seen: Vec<Option<(String, Vec<u8>, u32)>> =
        got.iter().map(|r| r.as_ref().map(|r| (r.rp_id.clone(), r.credential_id.clone(), r.sign_count))).collect();
    let want = |rp: &str, id: &[u8], n| Some((rp.to_owned(), id.to_vec(), n));
    assert_eq!(seen, vec![want("rp", b"b", 9), None, want("other", b"a", 0), want("rp", b"a", 0), None, want("rp", b"b", 9)]);
    for ((rp, id), r) in keys.iter().zip(&got) {
        assert_eq!(r, &s.get(rp, id).await.unwrap(), "get_many and get agree on {rp} {id:?}");
    }
}

/// What the client reported at registration (credProps.rk, the
/// attachment) and uvInitialized are kept as written, "not reported"
/// included, by create, put and replace.
async fn registration_facts_round_trip(s: &dyn CredentialStore) {
    let mut a = record("rp", b"a", b"u", 0);
    a.discoverable = Some(false);
    a.attachment = Some(assertd_verify::Attachment::CrossPlatform);
    a.uv_initialized = true;
    assert_eq!(s.create(a.clone()).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get("rp", b"a").await.unwrap(), Some(a.clone()));
    let mut b = record("rp", b"b", b"u", 0);
    b.discoverable = Some(true);
    b.attachment = Some(assertd_verify::Attachment::Platform);
    let c = record("rp", b"c", b"u", 0);
    assert_eq!(s.put_many(vec![b.clone(), c.clone()]).await.unwrap(), vec![b.clone(), c.clone()]);
    assert_eq!(s.get("rp", b"c").await.unwrap().map(|r| (r.discoverable, r.attachment, r.uv_initialized)), Some((None, None, false)));
    let Replaced::Replaced(r) = s.replace(c.clone()).await.unwrap() else { panic!("not replaced") };
    assert_eq!(r, c);
    let Replaced::Replaced(r) = s.replace(b.clone()).await.unwrap() else { panic!("not replaced") };
    assert_eq!(r, b);
}

/// An allowed sign-in's state (§7.2 step 24 (update record)): BS as
/// reported, either way; uvInitialized set and never cleared; a revoked
/// credential left alone.
async fn sign_in_states_are_recorded(s: &dyn CredentialStore) {
    use assertd_store::StateUpdate;
    let state = |id: &[u8], bs, uv| StateUpdate { rp_id: "rp".into(), credential_id: id.to_vec(), backup_state: bs, uv_initialized: uv };
    s.put_many(vec![record("rp", b"a", b"u", 0), record("rp", b"r", b"u", 0)]).await.unwrap();
    s.revoke("rp", b"r").await.unwrap();
    let facts = |r: Option<StoredCredential>| r.map(|r| (r.backup_state, r.uv_initialized));
    s.record_states(vec![state(b"a", true, true), state(b"r", true, true), state(b"nope", true, true)]).await.unwrap();
    assert_eq!(facts(s.get("rp", b"a").await.unwrap()), Some((true, true)));
    assert_eq!(facts(s.get("rp", b"r").await.unwrap()), Some((false, false)), "revoked: untouched");
    s.record_states(vec![state(b"a", false, false)]).await.unwrap();
    assert_eq!(facts(s.get("rp", b"a").await.unwrap()), Some((false, true)), "BS follows, uvInitialized stays");
    s.record_states(vec![]).await.unwrap();
}

async fn counters_in_batch_order(s: &dyn CredentialStore) {
    s.put_many(vec![record("rp", b"k", b"u", 10), record("rp", b"z", b"u", 0)]).await.unwrap();
    let r = s
        .advance_sign_counts(
            vec![
                upd("rp", b"k", 11),
                upd("rp", b"k", 11),
                upd("rp", b"k", 12),
                upd("rp", b"z", 0),
                upd("rp", b"z", 0),
                upd("rp", b"nope", 1),
            ]
            .into(),
            99,
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        vec![
            CounterResult::Advanced,
            CounterResult::Regressed { stored: 11 },
            CounterResult::Advanced,
            CounterResult::Advanced,
            CounterResult::Advanced,
            CounterResult::NotFound
        ]
    );
    let k = s.get("rp", b"k").await.unwrap().unwrap();
    assert_eq!((k.sign_count, k.last_used_at_ms), (12, Some(99)));
    // A zero-counter credential is not written.
    assert_eq!(s.get("rp", b"z").await.unwrap().unwrap().last_used_at_ms, None);
    // Lower and equal counts regress; zero after non-zero regresses.
    let r = s.advance_sign_counts(vec![upd("rp", b"k", 3), upd("rp", b"k", 12), upd("rp", b"k", 0)].into(), 100).await.unwrap();
    assert_eq!(r, vec![CounterResult::Regressed { stored: 12 }; 3]);
    assert_eq!(s.get("rp", b"k").await.unwrap().unwrap().sign_count, 12);
    // One update per credential (the common batch of security keys): an
    // equal count, a higher one and an unknown credential side by side.
    s.put_many(vec![record("rp", b"p", b"u", 5)]).await.unwrap();
    let r = s.advance_sign_counts(vec![upd("rp", b"k", 12), upd("rp", b"p", 6), upd("rp", b"none", 2)].into(), 101).await.unwrap();
    assert_eq!(r, vec![CounterResult::Regressed { stored: 12 }, CounterResult::Advanced, CounterResult::NotFound]);
    let p = s.get("rp", b"p").await.unwrap().unwrap();
    assert_eq!((p.sign_count, p.last_used_at_ms), (6, Some(101)));
    assert_eq!(s.get("rp", b"k").await.unwrap().unwrap().last_used_at_ms, Some(99), "a regression writes nothing");
    s.revoke("rp", b"k").await.unwrap();
    assert_eq!(s.advance_sign_counts(vec![upd("rp", b"k", 50)].into(), 1).await.unwrap(), vec![CounterResult::Revoked]);
    assert_eq!(s.advance_sign_counts(vec![].into(), 1).await.unwrap(), vec![]);
}

async fn backup_eligibility_upgrade_is_recorded_only_when_accepted(s: &dyn CredentialStore) {
    // Recorded on its own (after the verdict allowed), never on a revoked one;
    // a counter update never touches BE.
    s.put_many(vec![record("rp", b"m", b"u", 3)]).await.unwrap();
    assert_eq!(s.advance_sign_counts(vec![upd("rp", b"m", 4)].into(), 1).await.unwrap(), vec![CounterResult::Advanced]);
    assert!(!s.get("rp", b"m").await.unwrap().unwrap().backup_eligible);
    s.put_many(vec![record("rp", b"n", b"u", 0), record("rp", b"r", b"u", 0)]).await.unwrap();
    s.revoke("rp", b"r").await.unwrap();
    s.set_backup_eligible(vec![("rp".into(), b"n".to_vec()), ("rp".into(), b"r".to_vec()), ("rp".into(), b"gone".to_vec())]).await.unwrap();
    assert!(s.get("rp", b"n").await.unwrap().unwrap().backup_eligible);
    assert!(!s.get("rp", b"r").await.unwrap().unwrap().backup_eligible);
}

async fn touch_page_and_ping(s: &dyn CredentialStore) {
    s.ping().await.unwrap();
    let mut all: Vec<_> = (0..25u8).map(|i| record(if i % 2 == 0 { "a.example" } else { "b.example" }, &[i, 1], b"u", 0)).collect();
    s.put_many(all.clone()).await.unwrap();
    s.touch(vec![("a.example".into(), vec![0, 1]), ("b.example".into(), vec![99])], 1234).await.unwrap();
    assert_eq!(s.get("a.example", &[0, 1]).await.unwrap().unwrap().last_used_at_ms, Some(1234));
    // Pages of 7 walk everything once, in key order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.page(after.clone(), 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().map(|r| (r.rp_id.clone(), r.credential_id.clone()));
        seen.extend(page.into_iter().map(|r| (r.rp_id, r.credential_id)));
    }
    all.sort_by(|a, b| (&a.rp_id, &a.credential_id).cmp(&(&b.rp_id, &b.credential_id)));
    assert_eq!(seen, all.into_iter().map(|r| (r.rp_id, r.credential_id)).collect::<Vec<_>>());
}

async fn concurrent_batches_accept_a_count_once(s: std::sync::Arc<dyn CredentialStore>) {
    s.put_many(vec![record("rp", b"race", b"u", 0)]).await.unwrap();
    // 8 writers each send counts 1..=50; each count must be accepted once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for n in 1..=50u32 {
                if s.advance_sign_counts(vec![upd("rp", b"race", n)].into(), 1).await.unwrap() == vec![CounterResult::Advanced] {
                    accepted.push(n);
                }
            }
            accepted
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a count was accepted twice");
    assert_eq!(s.get("rp", b"race").await.unwrap().unwrap().sign_count, 50);
}

/// Runs one conformance function against SQLite and PostgreSQL.
async fn challenges_are_used_once(s: &dyn CredentialStore) {
    let use_ = |b: u8, keep| assertd_store::ChallengeUse { id: [b; 32], keep_until_ms: keep };
    // A replay inside one batch: the first use wins.
    let r = s.consume_challenges(vec![use_(1, 1000), use_(2, 2000), use_(1, 1000)].into()).await.unwrap();
    assert_eq!(r, vec![true, true, false]);
    let r = s.consume_challenges(vec![use_(2, 2000), use_(3, 3000)].into()).await.unwrap();
    assert_eq!(r, vec![false, true]);
    assert!(s.consume_challenges(Vec::new().into()).await.unwrap().is_empty());
    // Pruning forgets only what is past its keep time, by more than the
    // margin.
    assert_eq!(s.prune_challenges(3500, 1000).await.unwrap(), 2);
    let r = s.consume_challenges(vec![use_(1, 1000), use_(3, 3000)].into()).await.unwrap();
    assert_eq!(r, vec![true, false]);

    // Counts and uses in one call, one transaction.
    s.put_many(vec![record("rp", b"k", "u".as_bytes(), 0)]).await.unwrap();
    let r = s.settle_sign_ins(vec![upd("rp", b"k", 5)].into(), vec![use_(9, 9000), use_(9, 9000)].into(), 1).await.unwrap();
    assert_eq!(r, (vec![CounterResult::Advanced], vec![true, false]));
    let r = s.settle_sign_ins(vec![upd("rp", b"k", 5)].into(), vec![use_(9, 9000)].into(), 1).await.unwrap();
    assert_eq!(r, (vec![CounterResult::Regressed { stored: 5 }], vec![false]));
    assert_eq!(s.settle_sign_ins(Vec::new().into(), Vec::new().into(), 1).await.unwrap(), (vec![], vec![]));

    // A registration with its challenge: stored and used; the same challenge
    // again writes nothing; an id already registered still uses its
    // challenge up.
    let created = s.create_with_challenge(record("rp", b"new", b"u", 0), use_(20, 9000)).await.unwrap();
    assert!(matches!(created, Registered::Created(ref r) if r.credential_id == b"new"), "{created:?}");
    let again = s.create_with_challenge(record("rp", b"other", b"u", 0), use_(20, 9000)).await.unwrap();
    assert_eq!(again, Registered::ChallengeReplayed);
    assert!(s.get("rp", b"other").await.unwrap().is_none());
    let mut taken = record("rp", b"new", b"mallory", 0);
    taken.sign_count = 9;
    assert_eq!(s.create_with_challenge(taken, use_(21, 9000)).await.unwrap(), Registered::AlreadyRegistered);
    assert_eq!(s.get("rp", b"new").await.unwrap().unwrap().user_handle, b"u");
    assert_eq!(s.consume_challenges(vec![use_(21, 9000)].into()).await.unwrap(), vec![false]);
}

/// Issue 26 §3: the metadata serial only goes up, unless set on purpose.
async fn metadata_serial_only_rises(s: &dyn CredentialStore) {
    assert_eq!(s.raise_metadata_serial(43, 1).await.unwrap(), 43);
    assert_eq!(s.raise_metadata_serial(41, 2).await.unwrap(), 43, "an older BLOB does not lower it");
    assert_eq!(s.raise_metadata_serial(44, 3).await.unwrap(), 44);
    s.set_metadata_serial(41, 4).await.unwrap();
    assert_eq!(s.raise_metadata_serial(41, 5).await.unwrap(), 41, "a deliberate rollback");
}

async fn user_risk_and_revoking_a_user(s: &dyn CredentialStore) {
    use assertd_store::{UserRisk, UserRiskLevel};
    let risk = |user: &[u8], level, expires_at_ms| UserRisk {
        rp_id: "rp".into(),
        user_handle: user.to_vec(),
        level,
        expires_at_ms,
        note: "flagged by idp".into(),
        set_at_ms: 1,
    };
    s.set_user_risk(risk(b"u1", UserRiskLevel::Medium, None)).await.unwrap();
    s.set_user_risk(risk(b"u1", UserRiskLevel::High, Some(5_000))).await.unwrap();
    s.set_user_risk(risk(b"u2", UserRiskLevel::Medium, Some(1_000))).await.unwrap();
    assert_eq!(
        s.user_risk("rp", b"u1").await.unwrap(),
        Some(risk(b"u1", UserRiskLevel::High, Some(5_000))),
        "the second flag replaced the first"
    );
    assert_eq!(s.user_risk("other", b"u1").await.unwrap(), None);
    let live: Vec<Vec<u8>> = s.user_risks(2_000).await.unwrap().into_iter().map(|r| r.user_handle).collect();
    assert_eq!(live, vec![b"u1".to_vec()], "expired flags are left out");
    assert!(s.clear_user_risk("rp", b"u1").await.unwrap());
    assert!(!s.clear_user_risk("rp", b"u1").await.unwrap());
    assert!(s.user_risks(0).await.unwrap().iter().all(|r| r.user_handle != b"u1"));
    // Expired flags are pruned once, returned to report them; lasting and
    // later ones stay.
    s.set_user_risk(risk(b"u4", UserRiskLevel::High, None)).await.unwrap();
    let pruned = s.prune_user_risks(2_000).await.unwrap();
    assert_eq!(pruned.iter().map(|r| r.user_handle.as_slice()).collect::<Vec<_>>(), [&b"u2"[..]]);
    assert!(s.prune_user_risks(2_000).await.unwrap().is_empty());
    assert!(s.user_risk("rp", b"u4").await.unwrap().is_some());
    s.clear_user_risk("rp", b"u4").await.unwrap();
    // A remediation clears only the flag it judged: one set again since
    // stays.
    s.set_user_risk(UserRisk { set_at_ms: 7, ..risk(b"u3", UserRiskLevel::High, None) }).await.unwrap();
    assert!(!s.remediate_user_risk("rp", b"u3", 6).await.unwrap(), "a flag set after the sign-in was judged stays");
    assert!(s.user_risk("rp", b"u3").await.unwrap().is_some());
    assert!(s.remediate_user_risk("rp", b"u3", 7).await.unwrap());
    assert_eq!(s.user_risk("rp", b"u3").await.unwrap(), None);

    for (id, user) in [(&b"a"[..], &b"u1"[..]), (b"b", b"u1"), (b"c", b"u2")] {
        s.create(record("rp", id, user, 0)).await.unwrap().unwrap();
    }
    s.revoke("rp", b"b").await.unwrap();
    let mut revoked = s.revoke_user("rp", b"u1").await.unwrap();
    revoked.sort();
    assert_eq!(revoked, vec![b"a".to_vec()], "already revoked credentials are left out");
    assert!(s.get("rp", b"a").await.unwrap().unwrap().revoked);
    assert!(!s.get("rp", b"c").await.unwrap().unwrap().revoked, "another user's credential is untouched");
    assert!(s.revoke_user("rp", b"nobody").await.unwrap().is_empty());
}

both!(put_get_list_revoke_, put_get_list_revoke);
both!(get_many_answers_in_order_, get_many_answers_in_order);
both!(create_replace_delete_, create_replace_delete);
both!(counters_in_batch_order_, counters_in_batch_order);
both!(backup_eligibility_upgrade_, backup_eligibility_upgrade_is_recorded_only_when_accepted);
both!(touch_page_and_ping_, touch_page_and_ping);
both!(challenges_are_used_once_, challenges_are_used_once);
both!(user_risk_and_revoking_a_user_, user_risk_and_revoking_a_user);
both!(metadata_serial_only_rises_, metadata_serial_only_rises);
both!(registration_facts_round_trip_, registration_facts_round_trip);
both!(sign_in_states_are_recorded_, sign_in_states_are_recorded);

/// Issue 27 §4: both backends decode rows with one codec and one error
/// taxonomy: a row that does not decode is `Corrupt` (an operator must
/// look), on SQLite as on PostgreSQL (SQLite said `Unavailable` before).
/// `corrupt` writes, past the schema's checks, a sign count beyond u32 and
/// a risk level that does not exist.
async fn undecodable_rows_are_corrupt(s: &dyn CredentialStore, corrupt: impl Fn()) {
    s.put_many(vec![record("rp", b"a", b"u", 1)]).await.unwrap();
    s.set_user_risk(assertd_store::UserRisk {
        rp_id: "rp".into(),
        user_handle: b"u".to_vec(),
        level: assertd_store::UserRiskLevel::High,
        expires_at_ms: None,
        note: String::new(),
        set_at_ms: 1,
    })
    .await
    .unwrap();
    corrupt();
    let is_corrupt = |e: assertd_store::StoreError| matches!(e, assertd_store::StoreError::Corrupt(_));
    assert!(is_corrupt(s.get("rp", b"a").await.unwrap_err()));
    assert!(is_corrupt(s.list_by_user("rp", b"u").await.unwrap_err()));
    assert!(is_corrupt(s.page(None, 10).await.unwrap_err()));
    assert!(is_corrupt(s.user_risk("rp", b"u").await.unwrap_err()));
    assert!(is_corrupt(s.user_risks(0).await.unwrap_err()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_rows_are_corrupt_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let raw = rusqlite::Connection::open(store.path()).unwrap();
    undecodable_rows_are_corrupt(&store, || {
        raw.execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             UPDATE credentials SET sign_count = 5000000000; UPDATE user_risk SET level = 'bogus';",
        )
        .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_rows_are_corrupt_on_postgres() {
    let pg = PgCluster::start();
    let store = pg_store(&pg).await;
    undecodable_rows_are_corrupt(&store, || {
        pg.psql(
            "ALTER TABLE credentials DROP CONSTRAINT credentials_sign_count_check;
             ALTER TABLE user_risk DROP CONSTRAINT user_risk_level_check;
             UPDATE credentials SET sign_count = 5000000000; UPDATE user_risk SET level = 'bogus';",
        );
    })
    .await;
}

/// Issue 26 §5: PostgreSQL prunes challenge uses by the earlier of the
/// caller's clock and its own, so a replica whose clock runs a day ahead
/// cannot cut them short (red before: pruned by the caller's clock). And
/// the counts and uses of a batch, or a registration and its use, commit
/// together or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prunes_by_its_own_clock_and_writes_all_or_nothing() {
    let pg = PgCluster::start();
    let s = pg_store(&pg).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let use_ = |b: u8, keep| assertd_store::ChallengeUse { id: [b; 32], keep_until_ms: keep };
    s.consume_challenges(vec![use_(1, now + 60_000), use_(2, now - 3_600_000)].into()).await.unwrap();
    assert_eq!(s.prune_challenges(now + 86_400_000, 0).await.unwrap(), 1, "only the one past by the database's clock");
    assert_eq!(s.consume_challenges(vec![use_(1, 0)].into()).await.unwrap(), vec![false]);

    // A failure in the challenge insert rolls the count back, and a failure
    // in the credential insert rolls the use back.
    s.put_many(vec![record("rp", b"k", b"u", 0)]).await.unwrap();
    pg.psql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
         CREATE TRIGGER refuse_uses BEFORE INSERT ON consumed_challenges FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    assert!(s.settle_sign_ins(vec![upd("rp", b"k", 5)].into(), vec![use_(3, now)].into(), 1).await.is_err());
    assert_eq!(s.get("rp", b"k").await.unwrap().unwrap().sign_count, 0);
    pg.psql(
        "DROP TRIGGER refuse_uses ON consumed_challenges;
         CREATE TRIGGER refuse_credentials BEFORE INSERT ON credentials FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    assert!(s.create_with_challenge(record("rp", b"n", b"u", 0), use_(4, now)).await.is_err());
    pg.psql("DROP TRIGGER refuse_credentials ON credentials;");
    assert_eq!(s.consume_challenges(vec![use_(3, now), use_(4, now)].into()).await.unwrap(), vec![true, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_batches() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_batches_accept_a_count_once(std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_batches_from_two_pools() {
    // Two stores = two replicas' pools racing on one row.
    let pg = PgCluster::start();
    let a = pg_store(&pg).await;
    let b = pg_store(&pg).await;
    a.put_many(vec![record("rp", b"race", b"u", 0)]).await.unwrap();
    let mut tasks = Vec::new();
    for (i, s) in [a.clone(), b.clone(), a, b].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for n in 1..=60u32 {
                if s.advance_sign_counts(vec![upd("rp", b"race", n), upd("rp", b"race", n)].into(), i as i64).await.unwrap()[0]
                    == CounterResult::Advanced
                {
                    accepted.push(n);
                }
            }
            accepted
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(n, all.len(), "a count was accepted by two replicas");
}

/// A fresh cluster and store holding credentials 0..n (ids big-endian
/// u32) of one user, each at sign count `count`.
async fn pg_with_credentials(n: u32, count: u32) -> (PgCluster, PostgresStore) {
    let pg = PgCluster::start();
    let s = pg_store(&pg).await;
    s.put_many((0..n).map(|i| record("rp", &i.to_be_bytes(), b"u", count)).collect()).await.unwrap();
    (pg, s)
}

/// Transactions that wrote, so far (the next transaction id; reading it
/// assigns none).
fn pg_next_xid(pg: &PgCluster) -> u64 {
    pg.psql("SELECT pg_snapshot_xmax(pg_current_snapshot())").trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_counter_calls_share_statements() {
    // Calls that arrive while a counter statement is in flight go together
    // in the next one (group commit), each answered with its own results.
    const CALLS: u32 = 32;
    let (pg, s) = pg_with_credentials(CALLS, 5).await;
    let before = pg_next_xid(&pg);
    let start = Arc::new(tokio::sync::Barrier::new(CALLS as usize));
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let (s, start) = (s.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                // A regression, an advance, a replay of it: in call order.
                s.advance_sign_counts(
                    vec![upd("rp", &i.to_be_bytes(), 4), upd("rp", &i.to_be_bytes(), 6 + i), upd("rp", &i.to_be_bytes(), 6 + i)].into(),
                    1,
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for (i, t) in (0..CALLS).zip(tasks) {
        assert_eq!(
            t.await.unwrap(),
            vec![CounterResult::Regressed { stored: 5 }, CounterResult::Advanced, CounterResult::Regressed { stored: 6 + i }]
        );
    }
    let statements = pg_next_xid(&pg) - before;
    assert!(statements < u64::from(CALLS) / 2, "{CALLS} concurrent calls took {statements} writing transactions");
    for i in 0..CALLS {
        assert_eq!(s.get("rp", &i.to_be_bytes()).await.unwrap().unwrap().sign_count, 6 + i);
    }
}

/// A session of the test's own, beside the store's pool.
async fn pg_session(pg: &PgCluster) -> Arc<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    Arc::new(client)
}

/// Waits until `sql` (a count) reaches `n`.
async fn until(watch: &tokio_postgres::Client, sql: &str, n: i64) {
    for _ in 0..500 {
        if watch.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {sql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cancelled_counter_call_does_not_cancel_its_group() {
    // The caller whose statement is in flight runs the next group too (the
    // calls that queued meanwhile). If it goes away while that group's
    // statement runs (its RPC cancelled), the group must still be answered.
    const CALLS: u32 = 16;
    // Credentials 0..CALLS for the queued calls, CALLS for the lead.
    let (pg, s) = pg_with_credentials(CALLS + 1, 0).await;
    let (first, second, watch) = (pg_session(&pg).await, pg_session(&pg).await, pg_session(&pg).await);
    const WAITING: &str = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'assertd' AND wait_event_type = 'Lock'";
    // Other sessions hold two rows: the lead call's, and one of the
    // group's that queues behind it.
    first.batch_execute("BEGIN; SELECT 1 FROM credentials WHERE credential_id = '\\x00000010' FOR UPDATE").await.unwrap();
    second.batch_execute("BEGIN; SELECT 1 FROM credentials WHERE credential_id = '\\x00000000' FOR UPDATE").await.unwrap();
    let lead = {
        let s = s.clone();
        tokio::spawn(async move { s.advance_sign_counts(vec![upd("rp", &CALLS.to_be_bytes(), 1)].into(), 1).await })
    };
    until(&watch, WAITING, 1).await;
    // These queue behind it, in memory.
    let queued: Vec<_> = (0..CALLS)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.advance_sign_counts(vec![upd("rp", &i.to_be_bytes(), 1)].into(), 1).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.batch_execute("COMMIT").await.unwrap();
    // The lead statement is done (its count is in); the group's statement
    // now waits for the second row.
    until(&watch, "SELECT count(*) FROM credentials WHERE credential_id = '\\x00000010' AND sign_count = 1", 1).await;
    until(&watch, WAITING, 1).await;
    // The lead caller goes away while the group it runs waits.
    lead.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    second.batch_execute("COMMIT").await.unwrap();
    for (i, t) in queued.into_iter().enumerate() {
        let r = tokio::time::timeout(Duration::from_secs(10), t).await.expect("a call of the group was left unanswered");
        assert_eq!(r.unwrap().unwrap(), vec![CounterResult::Advanced], "call {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_multi_row_writes_do_not_deadlock_with_counters() {
    // Counter statements lock their rows in key order; the other writes of
    // many rows (last use, backup eligibility, imports) must too, or two
    // statements over the same rows in opposite orders deadlock and one
    // fails.
    const N: u32 = 64;
    let (_pg, s) = pg_with_credentials(N, 0).await;
    // Keys in reverse order, as a batch may list them.
    let keys: Vec<(String, Vec<u8>)> = (0..N).rev().map(|i| ("rp".to_owned(), i.to_be_bytes().to_vec())).collect();
    let counting = {
        let s = s.clone();
        tokio::spawn(async move {
            for round in 1..=150u32 {
                let updates: Vec<_> = (0..N).map(|i| upd("rp", &i.to_be_bytes(), round)).collect();
                s.advance_sign_counts(updates.into(), i64::from(round)).await.unwrap();
            }
        })
    };
    let others: Vec<_> = (0..2)
        .map(|_| {
            let (s, keys) = (s.clone(), keys.clone());
            tokio::spawn(async move {
                for round in 0..150 {
                    s.touch(keys.clone(), round).await.unwrap();
                    s.set_backup_eligible(keys.clone()).await.unwrap();
                    if round % 5 == 0 {
                        // An import of the same credentials, listed backwards.
                        s.put_many((0..N).rev().map(|i| record("rp", &i.to_be_bytes(), b"u", 0)).collect()).await.unwrap();
                    }
                }
            })
        })
        .collect();
    counting.await.unwrap();
    for o in others {
        o.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_are_idempotent_and_concurrent() {
    let pg = PgCluster::start();
    let url = pg.url();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                PostgresStore::connect(&PostgresConfig {
                    url,
                    tls: Default::default(),
                    pool_size: 2,
                    timeout: Duration::from_secs(10),
                    migrate: true,
                })
                .await
                .map(|_| ())
            })
        })
        .collect();
    for s in starts {
        s.await.unwrap().unwrap();
    }
    // One row per migration, however many replicas started at once.
    assert_eq!(pg.psql("SELECT count(*) FROM assertd_schema_migrations").trim(), "11");
    pg_store(&pg).await;
    assert_eq!(pg.psql("SELECT count(*) FROM assertd_schema_migrations").trim(), "11");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_change_feed_sees_other_writers_and_reconnects() {
    let pg = PgCluster::start();
    let s = pg_store(&pg).await;
    let mut changes = s.changes().unwrap();
    let next = async |c: &mut tokio::sync::broadcast::Receiver<Change>| {
        tokio::time::timeout(Duration::from_secs(10), c.recv()).await.unwrap().unwrap()
    };
    // The first "drop everything" went out while connect() waited for the
    // subscription, before anything could be cached.
    s.put_many(vec![record("rp.example", &[0xab, 0x01], b"u", 0)]).await.unwrap();
    assert_eq!(next(&mut changes).await, Change::Credential { rp_id: "rp.example".into(), credential_id: vec![0xab, 0x01] });
    // A count leaving 0 is announced once ("counted"); later counter moves
    // are not; a revocation by another system is.
    s.advance_sign_counts(vec![upd("rp.example", &[0xab, 0x01], 5)].into(), 1).await.unwrap();
    assert_eq!(next(&mut changes).await, Change::Counted { rp_id: "rp.example".into(), credential_id: vec![0xab, 0x01] });
    s.advance_sign_counts(vec![upd("rp.example", &[0xab, 0x01], 6)].into(), 1).await.unwrap();
    pg.psql("UPDATE credentials SET revoked = true WHERE rp_id = 'rp.example'");
    assert_eq!(next(&mut changes).await, Change::Credential { rp_id: "rp.example".into(), credential_id: vec![0xab, 0x01] });
    // The server goes away and comes back: the feed says "drop everything".
    pg.stop_server();
    pg.start_server();
    let mut saw_all = false;
    for _ in 0..3 {
        if next(&mut changes).await == Change::All {
            saw_all = true;
            break;
        }
    }
    assert!(saw_all);
}

/// A store wrapper that counts reads and can be switched off.
struct Counting {
    inner: SqliteStore,
    reads: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
    /// When set, the next read tells `read` once it has read, then waits
    /// for `go` before it answers.
    gate: Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>)>,
    armed: std::sync::atomic::AtomicBool,
}

/// A SQLite store whose next read, once `armed`, tells `read` it has read
/// and waits for `go` before it answers.
fn gated_store(dir: &std::path::Path, armed: bool) -> (Arc<Counting>, Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>) {
    let (read, go) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
    let store = Arc::new(Counting {
        inner: SqliteStore::open(dir).unwrap(),
        reads: AtomicUsize::new(0),
        down: false.into(),
        gate: Some((read.clone(), go.clone())),
        armed: armed.into(),
    });
    (store, read, go)
}

impl Counting {
    /// Counts a read; refused while the store is switched off.
    fn count_read(&self) -> Result<(), assertd_store::StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(assertd_store::StoreError::Unavailable("switched off".into()));
        }
        Ok(())
    }

    /// Holds a read's answer at the gate when armed.
    async fn gated<T>(&self, r: T) -> T {
        if let Some((read, go)) = &self.gate
            && self.armed.swap(false, Ordering::SeqCst)
        {
            read.notify_one();
            go.notified().await;
        }
        r
    }
}

#[async_trait::async_trait]
impl assertd_store::Credentials for Counting {
    async fn get(&self, rp: &str, id: &[u8]) -> Result<Option<StoredCredential>, assertd_store::StoreError> {
        self.count_read()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = self.inner.get(rp, id).await;
        self.gated(r).await
    }
    async fn get_many(&self, keys: &[(&str, &[u8])]) -> Result<Vec<Option<StoredCredential>>, assertd_store::StoreError> {
        self.count_read()?;
        let r = self.inner.get_many(keys).await;
        self.gated(r).await
    }
    async fn put_many(&self, r: Vec<StoredCredential>) -> Result<Vec<StoredCredential>, assertd_store::StoreError> {
        self.inner.put_many(r).await
    }
    async fn create(&self, r: StoredCredential) -> Result<Option<StoredCredential>, assertd_store::StoreError> {
        self.inner.create(r).await
    }
    async fn replace(&self, r: StoredCredential) -> Result<Replaced, assertd_store::StoreError> {
        self.inner.replace(r).await
    }
    async fn delete(&self, rp: &str, id: &[u8]) -> Result<Option<StoredCredential>, assertd_store::StoreError> {
        self.inner.delete(rp, id).await
    }
    async fn revoke(&self, rp: &str, id: &[u8]) -> Result<Option<StoredCredential>, assertd_store::StoreError> {
        self.inner.revoke(rp, id).await
    }
    async fn list_by_user(&self, rp: &str, u: &[u8]) -> Result<Vec<StoredCredential>, assertd_store::StoreError> {
        self.inner.list_by_user(rp, u).await
    }
    async fn count_by_aaguid(&self, a: Vec<[u8; 16]>) -> Result<Vec<(String, [u8; 16], u64)>, assertd_store::StoreError> {
        self.inner.count_by_aaguid(a).await
    }
    async fn revoke_user(&self, rp: &str, u: &[u8]) -> Result<Vec<Vec<u8>>, assertd_store::StoreError> {
        self.inner.revoke_user(rp, u).await
    }
    async fn settle_sign_ins(
        &self,
        u: std::sync::Arc<[CounterUpdate]>,
        c: std::sync::Arc<[assertd_store::ChallengeUse]>,
        now: i64,
    ) -> Result<(Vec<CounterResult>, Vec<bool>), assertd_store::StoreError> {
        self.inner.settle_sign_ins(u, c, now).await
    }
    async fn set_backup_eligible(&self, keys: Vec<(String, Vec<u8>)>) -> Result<(), assertd_store::StoreError> {
        self.inner.set_backup_eligible(keys).await
    }
    async fn record_states(&self, u: Vec<assertd_store::StateUpdate>) -> Result<(), assertd_store::StoreError> {
        self.inner.record_states(u).await
    }
    async fn touch(&self, k: Vec<(String, Vec<u8>)>, now: i64) -> Result<(), assertd_store::StoreError> {
        self.inner.touch(k, now).await
    }
    async fn page(&self, after: Option<(String, Vec<u8>)>, limit: usize) -> Result<Vec<StoredCredential>, assertd_store::StoreError> {
        self.inner.page(after, limit).await
    }
    async fn create_with_challenge(
        &self,
        r: StoredCredential,
        c: assertd_store::ChallengeUse,
    ) -> Result<Registered, assertd_store::StoreError> {
        self.inner.create_with_challenge(r, c).await
    }
}

#[async_trait::async_trait]
impl assertd_store::ChallengeLedger for Counting {
    async fn prune_challenges(&self, now: i64, margin: i64) -> Result<u64, assertd_store::StoreError> {
        self.inner.prune_challenges(now, margin).await
    }
}

#[async_trait::async_trait]
impl assertd_store::UserRisks for Counting {
    async fn set_user_risk(&self, r: assertd_store::UserRisk) -> Result<(), assertd_store::StoreError> {
        self.inner.set_user_risk(r).await
    }
    async fn delete_user_risk(&self, rp: &str, u: &[u8], at: Option<i64>) -> Result<bool, assertd_store::StoreError> {
        self.inner.delete_user_risk(rp, u, at).await
    }
    async fn user_risk(&self, rp: &str, u: &[u8]) -> Result<Option<assertd_store::UserRisk>, assertd_store::StoreError> {
        self.inner.user_risk(rp, u).await
    }
    async fn user_risks(&self, now: i64) -> Result<Vec<assertd_store::UserRisk>, assertd_store::StoreError> {
        self.inner.user_risks(now).await
    }
    async fn prune_user_risks(&self, now: i64) -> Result<Vec<assertd_store::UserRisk>, assertd_store::StoreError> {
        self.inner.prune_user_risks(now).await
    }
}

#[async_trait::async_trait]
impl assertd_store::AccessPasses for Counting {
    async fn issue_pass(&self, p: assertd_store::AccessPass) -> Result<Vec<String>, assertd_store::StoreError> {
        self.inner.issue_pass(p).await
    }
    async fn revoke_pass(&self, rp: &str, id: &str, now: i64) -> Result<Option<assertd_store::AccessPass>, assertd_store::StoreError> {
        self.inner.revoke_pass(rp, id, now).await
    }
    async fn passes(&self, rp: &str, u: &[u8]) -> Result<Vec<assertd_store::AccessPass>, assertd_store::StoreError> {
        self.inner.passes(rp, u).await
    }
    async fn redeem_pass(
        &self,
        rp: &str,
        id: &str,
        now: i64,
    ) -> Result<Result<assertd_store::AccessPass, assertd_store::PassRefusal>, assertd_store::StoreError> {
        self.inner.redeem_pass(rp, id, now).await
    }
    async fn create_with_pass(
        &self,
        r: StoredCredential,
        c: Option<assertd_store::ChallengeUse>,
        now: i64,
    ) -> Result<Registered, assertd_store::StoreError> {
        self.inner.create_with_pass(r, c, now).await
    }
    async fn prune_passes(&self, before: i64) -> Result<u64, assertd_store::StoreError> {
        self.inner.prune_passes(before).await
    }
}

#[async_trait::async_trait]
impl assertd_store::Events for Counting {
    async fn append_events(&self, e: Vec<assertd_store::NewEvent>) -> Result<Vec<i64>, assertd_store::StoreError> {
        self.inner.append_events(e).await
    }
    async fn events_after(
        &self,
        after: i64,
        rps: Option<Vec<String>>,
        limit: usize,
    ) -> Result<Vec<assertd_store::Event>, assertd_store::StoreError> {
        self.inner.events_after(after, rps, limit).await
    }
    async fn event_bounds(&self) -> Result<(Option<i64>, i64), assertd_store::StoreError> {
        self.inner.event_bounds().await
    }
    async fn prune_events(&self, before: i64) -> Result<u64, assertd_store::StoreError> {
        self.inner.prune_events(before).await
    }
}

#[async_trait::async_trait]
impl assertd_store::CredentialStats for Counting {
    async fn credential_stats(
        &self,
        rp: &str,
        g: assertd_store::StatsGroup,
        since: i64,
    ) -> Result<Vec<assertd_store::StatsRow>, assertd_store::StoreError> {
        self.inner.credential_stats(rp, g, since).await
    }
    async fn page_by_user(
        &self,
        after: assertd_store::UserCursor,
        limit: usize,
    ) -> Result<Vec<assertd_store::StoredCredential>, assertd_store::StoreError> {
        self.inner.page_by_user(after, limit).await
    }
}

#[async_trait::async_trait]
impl assertd_store::Deliveries for Counting {
    async fn claim_delivery(&self, r: &str, h: &str, now: i64, until: i64, start: i64) -> Result<Option<i64>, assertd_store::StoreError> {
        self.inner.claim_delivery(r, h, now, until, start).await
    }
    async fn advance_delivery(&self, r: &str, h: &str, cursor: i64, until: i64) -> Result<bool, assertd_store::StoreError> {
        self.inner.advance_delivery(r, h, cursor, until).await
    }
    async fn release_delivery(&self, r: &str, h: &str) -> Result<(), assertd_store::StoreError> {
        self.inner.release_delivery(r, h).await
    }
}

#[async_trait::async_trait]
impl assertd_store::MetadataSerial for Counting {
    async fn raise_metadata_serial(&self, n: u64, now: i64) -> Result<u64, assertd_store::StoreError> {
        self.inner.raise_metadata_serial(n, now).await
    }
    async fn set_metadata_serial(&self, n: u64, now: i64) -> Result<(), assertd_store::StoreError> {
        self.inner.set_metadata_serial(n, now).await
    }
    async fn report_blocked_models(&self, b: Vec<[u8; 16]>, now: i64) -> Result<Vec<[u8; 16]>, assertd_store::StoreError> {
        self.inner.report_blocked_models(b, now).await
    }
}

#[async_trait::async_trait]
impl assertd_store::Health for Counting {
    async fn ping(&self) -> Result<(), assertd_store::StoreError> {
        self.inner.ping().await
    }
}

/// Issue 13 item 3: a revocation that lands while a miss is loading the
/// credential is not lost for the cache TTL. The load reads "not revoked",
/// the revocation commits and invalidates, then the load inserts: the next
/// lookup must see the revocation (moka inserts a loaded value even when
/// `invalidate` ran during the load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_racing_a_load_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (store, read, go) = gated_store(dir.path(), true);
    store.put_many(vec![record("rp", b"a", b"u", 0)]).await.unwrap();
    let cache =
        KeyCache::new(store.clone(), CacheConfig { max_entries: 100, ttl: Duration::from_secs(300), negative_ttl: Duration::from_secs(5) });
    let loading = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get("rp", b"a").await }
    });
    // The load has read the record (not revoked); now revoke, as
    // RevokeCredential does: the store, then the cache.
    read.notified().await;
    store.revoke("rp", b"a").await.unwrap();
    cache.invalidate("rp", b"a").await;
    go.notify_one();
    let (Lookup::Found(raced), _) = loading.await.unwrap() else { panic!("not found") };
    assert!(!raced.revoked, "the racing request saw the record as it read it");
    let (Lookup::Found(after), hit) = cache.get("rp", b"a").await else { panic!("not found") };
    assert!(after.revoked && !hit, "the revocation was lost in the cache (hit = {hit})");

    // The same for a count leaving 0 on another replica (the change feed's
    // mark) while this replica loads the counter-less record.
    store.put_many(vec![record("rp", b"z", b"u", 0)]).await.unwrap();
    store.armed.store(true, Ordering::SeqCst);
    let loading = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get("rp", b"z").await }
    });
    read.notified().await;
    store.advance_sign_counts(vec![upd("rp", b"z", 3)].into(), 1).await.unwrap();
    cache.mark_counted("rp", b"z").await;
    go.notify_one();
    loading.await.unwrap();
    let (Lookup::Found(after), _) = cache.get("rp", b"z").await else { panic!("not found") };
    assert!(!after.is_counterless(), "a cached 0 outlived the count leaving 0");
}

/// A change to one credential while another is loading keeps what the
/// other load read: a replica whose neighbour's count left 0 (the change
/// feed's mark) while it loaded its own credentials still holds them, and
/// keeps verifying them through a store outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_another_credential_keeps_a_load() {
    let dir = tempfile::tempdir().unwrap();
    let (store, read, go) = gated_store(dir.path(), true);
    store.put_many(vec![record("rp", b"mine", b"u", 0), record("rp", b"other", b"v", 0)]).await.unwrap();
    let cache =
        KeyCache::new(store.clone(), CacheConfig { max_entries: 100, ttl: Duration::from_secs(300), negative_ttl: Duration::from_secs(5) });
    let loading = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get("rp", b"mine").await }
    });
    read.notified().await;
    cache.mark_counted("rp", b"other").await;
    cache.invalidate("rp", b"other").await;
    go.notify_one();
    assert!(matches!(loading.await.unwrap(), (Lookup::Found(_), false)));
    let reads = store.reads.load(Ordering::SeqCst);
    store.down.store(true, Ordering::SeqCst);
    let (Lookup::Found(mine), hit) = cache.get("rp", b"mine").await else { panic!("not found") };
    assert!(hit && mine.is_counterless(), "the load was dropped for another credential's change (hit = {hit})");
    assert_eq!(store.reads.load(Ordering::SeqCst), reads);

    // Dropping everything (the change feed re-subscribed) still drops a
    // load in flight.
    store.down.store(false, Ordering::SeqCst);
    store.armed.store(true, Ordering::SeqCst);
    cache.invalidate("rp", b"mine").await;
    let loading = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get("rp", b"mine").await }
    });
    read.notified().await;
    cache.invalidate_all();
    go.notify_one();
    loading.await.unwrap();
    assert!(!cache.get("rp", b"mine").await.1, "a load that raced a drop of everything was kept");
}

/// A batch's misses are one store read; its hits none. What it found and
/// did not find is cached; a change to one of its credentials during the
/// read drops that one only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_misses_is_one_read() {
    let dir = tempfile::tempdir().unwrap();
    let (store, read, go) = gated_store(dir.path(), false);
    store.put_many(vec![record("rp", b"a", b"u", 0), record("rp", b"b", b"u", 0), record("rp", b"c", b"u", 0)]).await.unwrap();
    let cache =
        KeyCache::new(store.clone(), CacheConfig { max_entries: 100, ttl: Duration::from_secs(300), negative_ttl: Duration::from_secs(5) });
    assert!(matches!(cache.get("rp", b"a").await, (Lookup::Found(_), false)));
    assert_eq!(store.reads.load(Ordering::SeqCst), 1);

    store.armed.store(true, Ordering::SeqCst);
    let loading = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_many(&[("rp", b"a"), ("rp", b"b"), ("rp", b"unknown"), ("rp", b"c")]).await }
    });
    read.notified().await;
    store.revoke("rp", b"c").await.unwrap();
    cache.invalidate("rp", b"c").await;
    go.notify_one();
    let got = loading.await.unwrap();
    assert_eq!(store.reads.load(Ordering::SeqCst), 2, "three misses, one read");
    let found = |l: &(Lookup, bool)| match l {
        (Lookup::Found(c), hit) => Some((c.revoked, *hit)),
        _ => None,
    };
    assert_eq!(found(&got[0]), Some((false, true)));
    assert_eq!(found(&got[1]), Some((false, false)));
    assert!(matches!(got[2], (Lookup::NotFound, false)));
    assert_eq!(found(&got[3]), Some((false, false)), "the racing request saw the record as it read it");

    // b and the unknown id are cached; c, changed during the read, is not.
    let again = cache.get_many(&[("rp", b"b"), ("rp", b"unknown"), ("rp", b"c")]).await;
    assert!(matches!(again[0], (Lookup::Found(_), true)));
    assert!(matches!(again[1], (Lookup::NotFound, true)));
    assert_eq!(found(&again[2]), Some((true, false)), "the revocation was lost in the cache");
    assert_eq!(store.reads.load(Ordering::SeqCst), 3, "a lone miss is one read");

    // An unreachable store answers every miss of the batch as unavailable.
    store.down.store(true, Ordering::SeqCst);
    let down = cache.get_many(&[("rp", b"b"), ("rp", b"x"), ("rp", b"y")]).await;
    assert!(matches!(down[0], (Lookup::Found(_), true)));
    assert!(matches!(down[1], (Lookup::Unavailable(_), false)) && matches!(down[2], (Lookup::Unavailable(_), false)));
}

#[tokio::test]
async fn cache_coalesces_caches_negatives_and_invalidates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Counting {
        inner: SqliteStore::open(dir.path()).unwrap(),
        reads: AtomicUsize::new(0),
        down: false.into(),
        gate: None,
        armed: false.into(),
    });
    store.put_many(vec![record("rp", b"a", b"u", 0)]).await.unwrap();
    let cache = KeyCache::new(
        store.clone(),
        CacheConfig { max_entries: 100, ttl: Duration::from_secs(60), negative_ttl: Duration::from_millis(300) },
    );

    // 50 concurrent misses for one key: one store read.
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { c.get("rp", b"a").await })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert!(results.iter().all(|(l, _)| matches!(l, Lookup::Found(c) if c.key.is_ok() && !c.revoked)));
    assert_eq!(store.reads.load(Ordering::SeqCst), 1);
    assert!(cache.get("rp", b"a").await.1, "second lookup is a hit");

    // Unknown ids are cached negatively, then expire.
    for _ in 0..10 {
        assert!(matches!(cache.get("rp", b"unknown").await.0, Lookup::NotFound));
    }
    assert_eq!(store.reads.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(cache.get("rp", b"unknown").await.0, Lookup::NotFound));
    assert_eq!(store.reads.load(Ordering::SeqCst), 3);

    // A put of a negatively cached id is visible at once after invalidate.
    store.put_many(vec![record("rp", b"unknown", b"u", 0)]).await.unwrap();
    cache.invalidate("rp", b"unknown").await;
    assert!(matches!(cache.get("rp", b"unknown").await.0, Lookup::Found(_)));

    // Revocation is visible at once after invalidate.
    store.revoke("rp", b"a").await.unwrap();
    cache.invalidate("rp", b"a").await;
    assert!(matches!(cache.get("rp", b"a").await.0, Lookup::Found(c) if c.revoked));

    // Store errors are reported and not cached; cached keys keep answering.
    store.down.store(true, Ordering::SeqCst);
    assert!(matches!(cache.get("rp", b"other").await.0, Lookup::Unavailable(_)));
    assert!(matches!(cache.get("rp", b"other").await.0, Lookup::Unavailable(_)));
    assert!(matches!(cache.get("rp", b"a").await.0, Lookup::Found(_)));
    store.down.store(false, Ordering::SeqCst);
    assert!(matches!(cache.get("rp", b"other").await.0, Lookup::NotFound));
}

#[tokio::test]
async fn cache_keys_separate_rp_and_id_and_entries_claim_touches_once_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    // Same bytes end to end, split differently between RP and ID; and an ID
    // too long for the key's inline buffer.
    let long = vec![7u8; 1000];
    store.put_many(vec![record("rp", b"ab", b"u1", 0), record("rpa", b"b", b"u2", 0), record("rp", &long, b"u3", 0)]).await.unwrap();
    let cache = KeyCache::new(store.clone(), CacheConfig::default());
    for _ in 0..2 {
        for (rp, id, user) in [("rp", &b"ab"[..], &b"u1"[..]), ("rpa", b"b", b"u2"), ("rp", &long, b"u3")] {
            assert!(matches!(cache.get(rp, id).await.0, Lookup::Found(c) if c.user_handle.as_slice() == user), "{rp}");
        }
        assert!(matches!(cache.get("rp", b"a").await.0, Lookup::NotFound));
        assert!(matches!(cache.get("rpab", b"\xff").await.0, Lookup::NotFound));
    }
    assert!(cache.get("rp", &long).await.1, "the long key is a hit too");

    let Lookup::Found(c) = cache.get("rp", b"ab").await.0 else { panic!("cached") };
    // 8 threads race for the first claim: exactly one wins.
    let wins = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| c.claim_touch(1_000_000, 60_000))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).filter(|won| *won).count()
    });
    assert_eq!(wins, 1);
    assert!(!c.claim_touch(1_059_999, 60_000), "within the window");
    assert!(c.claim_touch(1_060_000, 60_000), "the window has passed");
    assert!(!c.claim_touch(1_060_001, 60_000));
}

#[tokio::test]
async fn a_flood_of_unknown_ids_does_not_evict_found_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let ids: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_be_bytes().to_vec()).collect();
    store.put_many(ids.iter().map(|id| record("rp", id, b"u", 0)).collect()).await.unwrap();
    // Room for 70 found credentials and 10 unknown ids.
    let cache = KeyCache::new(store.clone(), CacheConfig { max_entries: 80, ..CacheConfig::default() });
    for id in &ids {
        assert!(matches!(cache.get("rp", id).await.0, Lookup::Found(_)));
    }
    for i in 0..2000u32 {
        assert!(matches!(cache.get("rp", format!("guess-{i}").as_bytes()).await.0, Lookup::NotFound));
    }
    cache.sync().await;
    assert!(cache.entry_count() <= 80, "{}", cache.entry_count());
    let reads = cache.store_reads();
    assert_eq!(reads, 2050);
    for id in &ids {
        assert!(cache.get("rp", id).await.1, "still cached");
    }
    assert_eq!(cache.store_reads(), reads);
}

#[test]
fn validation_names_the_problem() {
    let mut r = record("rp", b"a", b"u", 0);
    assert!(r.validate().is_ok());
    r.public_key_cose = vec![0xa3, 0x01, 0x02, 0x03, 0x38, 0x23, 0x20, 0x03];
    assert!(r.validate().unwrap_err().to_string().contains("ES512"));
    r.public_key_cose = vec![0xff];
    assert!(r.validate().unwrap_err().to_string().starts_with("public_key_cose"));
    let mut r = record("rp", &[0; 1024], b"u", 0);
    assert!(r.validate().unwrap_err().to_string().starts_with("credential_id"));
    r = record("rp", b"a", &[0; 65], 0);
    assert!(r.validate().unwrap_err().to_string().starts_with("user_handle"));
    r = record("rp", b"a", b"u", 0);
    r.aaguid = vec![1; 3];
    assert!(r.validate().unwrap_err().to_string().starts_with("aaguid"));
    r = record("rp", b"a", b"u", 0);
    r.backup_state = true;
    assert!(r.validate().unwrap_err().to_string().starts_with("backup_state"));
    r = record("", b"a", b"u", 0);
    assert!(r.validate().unwrap_err().to_string().starts_with("rp_id"));
    // An ES256 key whose point is off the curve (y changed).
    let mut off = record("rp", b"a", b"u", 0);
    let n = off.public_key_cose.len() - 1;
    off.public_key_cose[n] ^= 1;
    let e = off.validate().unwrap_err().to_string();
    assert!(e.contains("not a valid point on P-256"), "{e}");
    // ES384 too.
    let mut off = record("rp", b"a", b"u", 0);
    off.public_key_cose = SoftAuthenticator::new(Alg::Es384).public_key_cose;
    assert!(off.validate().is_ok());
    let n = off.public_key_cose.len() - 1;
    off.public_key_cose[n] ^= 1;
    assert!(off.validate().unwrap_err().to_string().contains("P-384"));
}

/// docs/upgrades.md's undo SQL, block `i` (0: SQLite, 1: PostgreSQL).
fn undo_sql(i: usize) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/upgrades.md")).unwrap();
    doc.split("```sql\n").nth(i + 1).unwrap().split("```").next().unwrap().to_owned()
}

/// The documented way back from a newer schema works: after the undo, the
/// schema is the older release's (which starts on it), and this release
/// migrates it forward again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_rollback_undoes_the_newer_migrations() {
    let pg = PgCluster::start();
    drop(pg_store(&pg).await);
    pg.psql(&undo_sql(1));
    assert_eq!(pg.psql("SELECT max(version) FROM assertd_schema_migrations").trim(), "2");
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE tablename IN ('user_risk', 'consumed_challenges', 'access_passes')").trim(),
        "0"
    );
    let s = pg_store(&pg).await;
    assert_eq!(pg.psql("SELECT max(version) FROM assertd_schema_migrations").trim(), "11");
    assert!(s.consume_challenges(vec![assertd_store::ChallengeUse { id: [1; 32], keep_until_ms: 1 }].into()).await.unwrap()[0]);

    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let c = rusqlite::Connection::open(dir.path().join("credentials.db")).unwrap();
    c.execute_batch(&undo_sql(0)).unwrap();
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 1);
    // Attested records from before vouched AAGUIDs: the one with a model
    // stays vouched, the one with a zero AAGUID (fido-u2f) cannot be.
    for (id, aaguid) in [(&b"m"[..], [7u8; 16]), (b"z", [0; 16])] {
        c.execute(
            "INSERT INTO credentials (rp_id, credential_id, user_handle, public_key_cose, sign_count, backup_eligible, backup_state,
               aaguid, attested, transports, revoked, created_at_ms) VALUES ('rp', ?1, X'75', X'01', 0, 0, 0, ?2, 1, '', 0, 0)",
            rusqlite::params![id, aaguid.to_vec()],
        )
        .unwrap();
    }
    drop(c);
    let s = SqliteStore::open(dir.path()).unwrap();
    let vouched = |r: Option<assertd_store::StoredCredential>| r.map(|r| (r.aaguid_vouched, r.trust_anchor));
    assert_eq!(vouched(s.get("rp", b"m").await.unwrap()), Some((true, String::new())));
    assert_eq!(vouched(s.get("rp", b"z").await.unwrap()), Some((false, String::new())));
    assert!(s.consume_challenges(vec![assertd_store::ChallengeUse { id: [1; 32], keep_until_ms: 1 }].into()).await.unwrap()[0]);
}

/// Expand / contract: a later release whose migrations only added (a table,
/// a column with a default) keeps the schema readable by this one
/// (`schema_compat.readable_from`), so this release runs on it after a
/// rollback, writes, reads and counts; once a later release raises the
/// floor (it contracted), this one refuses with the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_release_that_only_added_is_run_on() {
    let later_adds = |version: usize| {
        format!(
            "ALTER TABLE credentials ADD COLUMN later_field INTEGER NOT NULL DEFAULT 0; CREATE TABLE later_things (x INTEGER); PRAGMA user_version = {version};"
        )
    };
    // SQLite.
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let c = rusqlite::Connection::open(dir.path().join("credentials.db")).unwrap();
    let ours: usize = c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)).unwrap().try_into().unwrap();
    c.execute_batch(&later_adds(ours + 1)).unwrap();
    drop(c);
    let s = SqliteStore::open(dir.path()).expect("an additive later schema is run on");
    exercise(&s).await;
    drop(s);
    let c = rusqlite::Connection::open(dir.path().join("credentials.db")).unwrap();
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version as usize, ours + 1, "the later release's version is left alone");
    c.execute_batch(&format!("UPDATE schema_compat SET readable_from = {}", ours + 1)).unwrap();
    drop(c);
    let Err(e) = SqliteStore::open(dir.path()) else { panic!("a raised floor is refused") };
    let e = e.to_string();
    assert!(e.contains("is newer than this assertd") && e.contains("docs/upgrades.md"), "{e}");

    // PostgreSQL: at start (migrate = true) and by serving replicas that
    // only check the schema (migrate = false).
    let pg = PgCluster::start();
    drop(pg_store(&pg).await);
    let ours: usize = pg.psql("SELECT max(version) FROM assertd_schema_migrations").trim().parse().unwrap();
    pg.psql(&format!(
        "ALTER TABLE credentials ADD COLUMN later_field integer NOT NULL DEFAULT 0; CREATE TABLE later_things (x integer); INSERT INTO assertd_schema_migrations (version) VALUES ({});",
        ours + 1
    ));
    let s = pg_store(&pg).await;
    exercise(&s).await;
    drop(s);
    let checking = PostgresStore::connect(&PostgresConfig {
        url: pg.url(),
        tls: Default::default(),
        pool_size: 2,
        timeout: Duration::from_secs(10),
        migrate: false,
    })
    .await;
    assert!(checking.is_ok(), "{:?}", checking.err());
    assert_eq!(pg.psql("SELECT max(version) FROM assertd_schema_migrations").trim(), (ours + 1).to_string());
    pg.psql(&format!("UPDATE schema_compat SET readable_from = {}", ours + 1));
    let later = PostgresConfig { url: pg.url(), tls: Default::default(), pool_size: 2, timeout: Duration::from_secs(10), migrate: true };
    let Err(e) = PostgresStore::connect(&later).await else { panic!("a raised floor is refused") };
    let e = e.to_string();
    assert!(e.contains("is newer than this assertd"), "{e}");
}

/// Writes, reads and counts one credential.
async fn exercise(s: &dyn CredentialStore) {
    s.create(record("rp.example", b"later-release", b"u", 1)).await.unwrap().unwrap();
    let got = s.get("rp.example", b"later-release").await.unwrap().unwrap();
    assert_eq!(got.user_handle, b"u");
    let r = s
        .advance_sign_counts(
            vec![CounterUpdate { rp_id: "rp.example".into(), credential_id: b"later-release".to_vec(), received: 5 }].into(),
            1,
        )
        .await
        .unwrap();
    assert_eq!(r, vec![CounterResult::Advanced]);
}
