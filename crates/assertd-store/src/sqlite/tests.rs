//! The SQLite store's threads and schema.

#![allow(clippy::unwrap_used)]

use super::schema::MIGRATIONS;
use super::*;
use crate::record::StoredCredential;
use crate::row::{self, COLUMNS, QMARKS};
use crate::store::Credentials;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

fn record(id: u8) -> StoredCredential {
    credential(&[id], 0)
}

/// A credential of user `u` at relying party `rp`.
pub(super) fn credential(id: &[u8], created_at_ms: i64) -> StoredCredential {
    StoredCredential {
        rp_id: "rp".into(),
        credential_id: id.to_vec(),
        user_handle: b"u".to_vec(),
        public_key_cose: vec![1],
        sign_count: 0,
        backup_eligible: false,
        backup_state: false,
        aaguid: vec![0; 16],
        attested: false,
        transports: vec![],
        revoked: false,
        created_at_ms,
        last_used_at_ms: None,
        aaguid_vouched: false,
        trust_anchor: String::new(),
        discoverable: None,
        attachment: None,
        uv_initialized: false,
        access_pass_id: String::new(),
    }
}

/// Many concurrent writes share commits and need no thread each; a
/// failing write in a group is rolled back alone.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_writes_are_grouped_on_bounded_threads_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let before = threads();
    let mut calls = Vec::new();
    for id in 0..200u8 {
        let s = store.clone();
        calls.push(tokio::spawn(async move { s.create(record(id)).await }));
    }
    // One bad write among them: its savepoint is rolled back, nothing
    // else is.
    // It writes a row, then fails: the row must go with it.
    let bad = store.write(|c| {
        let mut half = record(0);
        half.credential_id = b"half a write".to_vec();
        c.execute(&format!("INSERT INTO credentials ({COLUMNS}) VALUES ({QMARKS})"), rusqlite::params_from_iter(row::values(&half)))
            .map_err(unavailable)?;
        c.execute("INSERT INTO credentials (rp_id) VALUES ('not a row')", []).map_err(unavailable)?;
        Ok(())
    });
    let (bad, during) = (bad.await, threads());
    for c in calls {
        assert!(c.await.unwrap().unwrap().is_some());
    }
    assert!(bad.is_err());
    assert!(during <= before, "{before} threads before, {during} while 200 writes were queued");
    let rows = store.page(None, 1000).await.unwrap();
    assert_eq!(rows.len(), 200);
    assert!(store.get("rp", b"half a write").await.unwrap().is_none(), "the failed write was rolled back");
}

/// A write alone in its group runs without a savepoint: when it fails,
/// the transaction is rolled back, and the writer goes on.
#[tokio::test(flavor = "current_thread")]
async fn a_lone_failing_write_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let bad = store
        .write(|c| {
            let mut half = record(1);
            half.credential_id = b"half a write".to_vec();
            c.execute(&format!("INSERT INTO credentials ({COLUMNS}) VALUES ({QMARKS})"), rusqlite::params_from_iter(row::values(&half)))
                .map_err(unavailable)?;
            c.execute("INSERT INTO credentials (rp_id) VALUES ('not a row')", []).map_err(unavailable)?;
            Ok(())
        })
        .await;
    assert!(bad.is_err());
    assert!(store.get("rp", b"half a write").await.unwrap().is_none(), "the failed write was rolled back");
    assert!(store.create(record(2)).await.unwrap().is_some(), "the writer goes on");
    assert_eq!(store.page(None, 10).await.unwrap().len(), 1);
}

/// A group whose COMMIT fails (here a deferred foreign key left broken) is
/// rolled back, answered with the error, and the writer's next group
/// starts clean.
#[tokio::test]
async fn a_failed_commit_is_rolled_back_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let bad = store
        .write(|c| {
            c.execute_batch(
                "CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TEMP TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
                 INSERT INTO child VALUES (7);",
            )
            .map_err(unavailable)
        })
        .await;
    assert!(bad.is_err(), "the COMMIT failed");
    assert!(store.create(record(2)).await.unwrap().is_some(), "the writer goes on");
    assert_eq!(store.page(None, 10).await.unwrap().len(), 1);
}

/// A rollback past a contracting migration: the older binary refuses the
/// newer schema, naming the way out.
#[test]
fn a_newer_schema_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let c = Connection::open(dir.path().join("credentials.db")).unwrap();
    c.pragma_update(None, "user_version", (MIGRATIONS.len() + 1) as i64).unwrap();
    c.execute("UPDATE schema_compat SET readable_from = ?1", [(MIGRATIONS.len() + 1) as i64]).unwrap();
    drop(c);
    let e = SqliteStore::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("is newer than this assertd") && e.contains("docs/upgrades.md"), "{e}");
}
