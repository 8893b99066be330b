//! Adoption numbers: a population with a known answer gives it on SQLite
//! and on PostgreSQL, group by group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_store::{CredentialStore, SqliteStore, StatsGroup, StatsRow, StoredCredential};
use assertd_testkit::pg::PgCluster;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::pg_store;

const DAY: i64 = 86_400_000;
/// Monday 2026-11-30 00:00 UTC.
const MONDAY: i64 = 1_795_996_800_000;

#[allow(clippy::too_many_arguments)]
fn cred(
    id: u8,
    user: &[u8],
    synced: bool,
    attested: bool,
    aaguid: u8,
    vouched: bool,
    transports: &[&str],
    created: i64,
    used: Option<i64>,
) -> StoredCredential {
    StoredCredential {
        rp_id: "rp".into(),
        credential_id: vec![id],
        user_handle: user.to_vec(),
        public_key_cose: SoftAuthenticator::new(Alg::Es256).public_key_cose,
        sign_count: 0,
        backup_eligible: synced,
        backup_state: synced,
        aaguid: vec![aaguid; 16],
        attested,
        transports: transports.iter().map(|t| (*t).to_owned()).collect(),
        revoked: false,
        created_at_ms: created,
        last_used_at_ms: used,
        aaguid_vouched: vouched,
        trust_anchor: String::new(),
        discoverable: None,
        attachment: None,
        uv_initialized: false,
        access_pass_id: String::new(),
    }
}

fn row(key: &str, credentials: u64, users: u64, active: u64) -> StatsRow {
    StatsRow { key: key.into(), credentials, users, active }
}

async fn population(s: &dyn CredentialStore) {
    let now = MONDAY + 10 * DAY;
    for c in [
        // alice: a security key and a synced passkey; bob: two security keys.
        cred(1, b"alice", false, true, 0xaa, true, &["usb", "nfc"], MONDAY, Some(now - DAY)),
        cred(2, b"alice", true, false, 0xbb, false, &["internal", "hybrid"], MONDAY + 6 * DAY, None),
        cred(3, b"bob", false, true, 0xaa, true, &["usb"], MONDAY + 7 * DAY, Some(now - 40 * DAY)),
        cred(4, b"bob", false, false, 0xaa, false, &[], MONDAY - DAY, Some(now)),
        // carol's is revoked: counted nowhere.
        StoredCredential { revoked: true, ..cred(5, b"carol", true, false, 0xbb, false, &["internal"], MONDAY, Some(now)) },
        // Another relying party's.
        StoredCredential { rp_id: "other".into(), ..cred(6, b"dave", true, false, 0xbb, false, &["internal"], MONDAY, Some(now)) },
    ] {
        s.create(c).await.unwrap().unwrap();
    }
    // erin has a synced passkey only, never used.
    s.create(StoredCredential { rp_id: "rp2".into(), ..cred(7, b"erin", true, false, 0xbb, false, &[], MONDAY, None) })
        .await
        .unwrap()
        .unwrap();
    let since = now - 30 * DAY;
    let stats = |g| async move { s.credential_stats("rp", g, since).await.unwrap() };
    assert_eq!(stats(StatsGroup::Kind).await, [row("device_bound", 3, 2, 2), row("synced", 1, 1, 0)]);
    assert_eq!(stats(StatsGroup::Attested).await, [row("attested", 2, 2, 1), row("unattested", 2, 2, 1)]);
    let aa = "aa".repeat(16);
    let bb = "bb".repeat(16);
    assert_eq!(stats(StatsGroup::Model).await, [row(&aa, 1, 1, 1), row(&format!("{aa}:vouched"), 2, 2, 1), row(&bb, 1, 1, 0)]);
    assert_eq!(
        stats(StatsGroup::Transport).await,
        [row("hybrid", 1, 1, 0), row("internal", 1, 1, 0), row("nfc", 1, 1, 1), row("none", 1, 1, 1), row("usb", 2, 2, 1)]
    );
    assert_eq!(
        stats(StatsGroup::RegistrationWeek).await,
        [row("2026-11-23", 1, 1, 1), row("2026-11-30", 2, 1, 1), row("2026-12-07", 1, 1, 0)]
    );
    assert_eq!(stats(StatsGroup::Active).await, [row("active", 2, 2, 2), row("inactive", 2, 2, 0)]);
    assert_eq!(
        stats(StatsGroup::KindAttested).await,
        [row("device_bound/attested", 2, 2, 1), row("device_bound/unattested", 1, 1, 1), row("synced/unattested", 1, 1, 0)]
    );
    // alice and bob both hold an attested security key; bob's last use
    // (now) makes him active, alice's (a day ago) too.
    assert_eq!(stats(StatsGroup::StrongestPerUser).await, [row("device_bound_attested", 2, 2, 2)]);
    assert!(s.credential_stats("nobody", StatsGroup::Kind, since).await.unwrap().is_empty());
    assert_eq!(s.credential_stats("rp2", StatsGroup::StrongestPerUser, since).await.unwrap(), [row("synced", 1, 1, 0)]);

    // Paged by user, two at a time: every credential once (revoked ones
    // too), each user's adjacent, in (RP, user, credential) order.
    let mut seen = Vec::new();
    let mut after = Default::default();
    loop {
        let page = s.page_by_user(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = (last.rp_id.clone(), last.user_handle.clone(), last.credential_id.clone());
        seen.extend(page.iter().map(|c| (c.rp_id.clone(), c.user_handle.clone(), c.credential_id[0])));
    }
    let expected: Vec<(String, Vec<u8>, u8)> = [
        ("other", "dave", 6),
        ("rp", "alice", 1),
        ("rp", "alice", 2),
        ("rp", "bob", 3),
        ("rp", "bob", 4),
        ("rp", "carol", 5),
        ("rp2", "erin", 7),
    ]
    .into_iter()
    .map(|(rp, user, id)| (rp.to_owned(), user.as_bytes().to_vec(), id))
    .collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    population(&SqliteStore::open(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_on_postgres() {
    let pg = PgCluster::start();
    population(&pg_store(&pg).await).await;
}
