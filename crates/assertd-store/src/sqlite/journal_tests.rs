//! The counter journal through the store: reads see counts not yet folded,
//! a crash's journal is written in at open, folds, backups, re-registered
//! ids, one process per directory.

#![allow(clippy::unwrap_used)]

use super::journal::{self, Record};
use super::*;
use crate::store::Credentials;
use crate::types::{CounterResult, CounterUpdate, StoreError};

use super::tests::credential as record;

async fn count(s: &SqliteStore, id: &[u8], received: u32, now_ms: i64) -> CounterResult {
    let u = CounterUpdate { rp_id: "rp".into(), credential_id: id.to_vec(), received };
    s.settle_sign_ins(vec![u].into(), Vec::new().into(), now_ms).await.unwrap().0[0]
}

/// (sign_count, last_used_at_ms) as the table itself holds them.
fn in_table(dir: &std::path::Path, id: &[u8]) -> (i64, Option<i64>) {
    let c = rusqlite::Connection::open(dir.join("credentials.db")).unwrap();
    c.query_row("SELECT sign_count, last_used_at_ms FROM credentials WHERE rp_id = 'rp' AND credential_id = ?1", [id], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

fn journal_files(dir: &std::path::Path) -> usize {
    journal::files(dir).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_read_before_they_are_folded_and_in_their_rows_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.create(record(b"a", 1)).await.unwrap().unwrap();
    assert_eq!(count(&s, b"a", 5, 100).await, CounterResult::Advanced);
    // In the journal, not the row: every read merges it.
    assert_eq!(in_table(dir.path(), b"a"), (0, None));
    let got = s.get("rp", b"a").await.unwrap().unwrap();
    assert_eq!((got.sign_count, got.last_used_at_ms), (5, Some(100)));
    assert_eq!(s.list_by_user("rp", b"u").await.unwrap()[0].sign_count, 5);
    assert_eq!(s.page(None, 10).await.unwrap()[0].sign_count, 5);
    // And the rows a write returns.
    s.create(record(b"r", 1)).await.unwrap().unwrap();
    assert_eq!(count(&s, b"r", 3, 100).await, CounterResult::Advanced);
    assert_eq!(s.revoke("rp", b"r").await.unwrap().unwrap().sign_count, 3);
    assert_eq!(count(&s, b"a", 5, 101).await, CounterResult::Regressed { stored: 5 });
    // Idle for a second, the writer folds it in and removes the closed
    // generation's file.
    tokio::time::sleep(pending::IDLE * 2).await;
    assert_eq!(in_table(dir.path(), b"a"), (5, Some(100)));
    assert_eq!(journal_files(dir.path()), 1, "only the open generation is left");
    assert_eq!(count(&s, b"a", 6, 102).await, CounterResult::Advanced);
    drop(s);
    // A clean stop folds everything and leaves no journal.
    assert_eq!(in_table(dir.path(), b"a"), (6, Some(102)));
    assert_eq!(journal_files(dir.path()), 0);
    let c = rusqlite::Connection::open(dir.path().join("credentials.db")).unwrap();
    let floor: i64 = c.query_row("SELECT readable_from FROM schema_compat", [], |r| r.get(0)).unwrap();
    assert_eq!(floor, 10, "a clean stop lets the release before the journal run on it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_left_by_a_crash_is_written_in_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.create(record(b"a", 1)).await.unwrap().unwrap();
    s.create(record(b"b", 1)).await.unwrap().unwrap();
    s.create(record(b"again", 9)).await.unwrap().unwrap();
    drop(s);
    // What a crash leaves: two generations, the second torn in its last
    // frame (never acknowledged), and a count for an earlier registration
    // of an id registered again since (created 2, the row now 9).
    let r = |id: &[u8], count: u32, created_ms: i64| Record {
        rp_id: "rp".into(),
        credential_id: id.to_vec(),
        count,
        at_ms: i64::from(count),
        created_ms,
    };
    let mut frame = Vec::new();
    let mut first = b"ASSERTDJ\x01\x00\x00\x00".to_vec();
    journal::encode(&[r(b"a", 7, 1), r(b"again", 40, 2)], &mut frame);
    first.extend_from_slice(&frame);
    journal::encode(&[r(b"b", 3, 1)], &mut frame);
    first.extend_from_slice(&frame);
    let mut second = b"ASSERTDJ\x01\x00\x00\x00".to_vec();
    journal::encode(&[r(b"a", 9, 1)], &mut frame);
    second.extend_from_slice(&frame);
    journal::encode(&[r(b"b", 30, 1)], &mut frame);
    second.extend_from_slice(&frame[..frame.len() - 1]);
    std::fs::write(dir.path().join("counters-0000000000000007.journal"), first).unwrap();
    std::fs::write(dir.path().join("counters-0000000000000008.journal"), second).unwrap();

    let s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(in_table(dir.path(), b"a"), (9, Some(9)));
    assert_eq!(in_table(dir.path(), b"b"), (3, Some(3)), "the torn frame is not applied");
    assert_eq!(in_table(dir.path(), b"again"), (0, None), "a count of an earlier registration is not");
    assert_eq!(journal_files(dir.path()), 1, "the replayed files are gone; a new generation is open");
    assert_eq!(count(&s, b"a", 9, 10).await, CounterResult::Regressed { stored: 9 });
    assert_eq!(count(&s, b"again", 1, 10).await, CounterResult::Advanced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_registered_again_does_not_inherit_a_pending_count() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.create(record(b"a", 1)).await.unwrap().unwrap();
    assert_eq!(count(&s, b"a", 50, 100).await, CounterResult::Advanced);
    s.delete("rp", b"a").await.unwrap().unwrap();
    s.create(record(b"a", 2)).await.unwrap().unwrap();
    assert_eq!(s.get("rp", b"a").await.unwrap().unwrap().sign_count, 0);
    assert_eq!(count(&s, b"a", 1, 101).await, CounterResult::Advanced);
    drop(s);
    assert_eq!(in_table(dir.path(), b"a"), (1, Some(101)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_holds_counts_not_yet_folded() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.create(record(b"a", 1)).await.unwrap().unwrap();
    assert_eq!(count(&s, b"a", 12, 100).await, CounterResult::Advanced);
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("copy.db");
    backup::backup(dir.path(), &to, std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(in_table(dir.path(), b"a"), (0, None), "not folded when the backup ran");
    let c = rusqlite::Connection::open(&to).unwrap();
    let n: i64 = c.query_row("SELECT sign_count FROM credentials", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 12);
    drop(s);
}

/// One server per directory; a tool beside it reads the counts in the
/// server's journal, writes, and leaves the journal and the floor alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_per_directory_and_tools_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    let e = SqliteStore::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("in use by another assertd"), "{e}");
    s.create(record(b"a", 1)).await.unwrap().unwrap();
    assert_eq!(count(&s, b"a", 4, 100).await, CounterResult::Advanced);

    let tool = SqliteStore::open_shared(dir.path(), std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(tool.get("rp", b"a").await.unwrap().unwrap().sign_count, 4, "the server's journal is read");
    tool.create(record(b"b", 1)).await.unwrap().unwrap();
    let u = CounterUpdate { rp_id: "rp".into(), credential_id: b"b".to_vec(), received: 1 };
    let e = tool.settle_sign_ins(vec![u].into(), Vec::new().into(), 1).await.unwrap_err().to_string();
    assert!(e.contains("counted by the assertd that holds"), "{e}");
    drop(tool);
    assert_eq!(journal_files(dir.path()), 1, "the tool left the server's journal alone");
    assert_eq!(count(&s, b"a", 5, 101).await, CounterResult::Advanced);
    assert_eq!(count(&s, b"b", 1, 101).await, CounterResult::Advanced);
    drop(s);
    assert_eq!(in_table(dir.path(), b"a"), (5, Some(101)));
    // With no server, a tool holds the directory itself.
    let tool = SqliteStore::open_shared(dir.path(), std::time::Duration::from_secs(5)).unwrap();
    assert!(SqliteStore::open(dir.path()).is_err());
    drop(tool);
    drop(SqliteStore::open(dir.path()).unwrap());
}

/// More credentials than a generation holds: generations close and fold
/// while counts keep coming, and every count is read back, before and
/// after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_close_and_fold_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    let n = 20_000u32;
    let ids: Vec<Vec<u8>> = (0..n).map(|i| i.to_be_bytes().to_vec()).collect();
    s.put_many(ids.iter().map(|id| record(id, 1)).collect()).await.unwrap();
    for round in 1..=2u32 {
        for chunk in ids.chunks(64) {
            let updates: Vec<_> =
                chunk.iter().map(|id| CounterUpdate { rp_id: "rp".into(), credential_id: id.clone(), received: round }).collect();
            let (results, _) = s.settle_sign_ins(updates.into(), Vec::new().into(), i64::from(round)).await.unwrap();
            assert!(results.iter().all(|r| *r == CounterResult::Advanced));
        }
    }
    let all = s.page(None, 100_000).await.unwrap();
    assert_eq!(all.len(), n as usize);
    assert!(all.iter().all(|r| r.sign_count == 2), "every count is read back");
    drop(s);
    let s = SqliteStore::open(dir.path()).unwrap();
    let all = s.page(None, 100_000).await.unwrap();
    assert!(all.iter().all(|r| r.sign_count == 2 && r.last_used_at_ms == Some(2)));
}

/// A job that staged counts and then failed leaves none of them, whether
/// it ran alone or in a group with others (no savepoint: only its staging
/// is undone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_leaves_no_count_in_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.create(record(b"bad", 1)).await.unwrap().unwrap();
    let ids: Vec<Vec<u8>> = (0..64u8).map(|i| vec![b'g', i]).collect();
    s.put_many(ids.iter().map(|id| record(id, 1)).collect()).await.unwrap();
    for round in 0..8u32 {
        let mut calls = Vec::new();
        for id in &ids {
            let (s, id) = (s.clone(), id.clone());
            calls.push(tokio::spawn(async move { count(&s, &id, round * 100 + 1, 1).await }));
        }
        let s2 = s.clone();
        calls.push(tokio::spawn(async move {
            let failed = s2
                .write_counting(false, |_, log| {
                    log.stage(Record { rp_id: "rp".into(), credential_id: b"bad".to_vec(), count: 99, at_ms: 1, created_ms: 1 });
                    Err::<(), _>(StoreError::Unavailable("fails after staging".into()))
                })
                .await;
            assert!(failed.is_err());
            CounterResult::Advanced
        }));
        for c in calls {
            assert_eq!(c.await.unwrap(), CounterResult::Advanced);
        }
    }
    assert_eq!(s.get("rp", b"bad").await.unwrap().unwrap().sign_count, 0);
    drop(s);
    assert_eq!(in_table(dir.path(), b"bad"), (0, None));
    assert_eq!(in_table(dir.path(), b"g\x05"), (701, Some(1)));
}
