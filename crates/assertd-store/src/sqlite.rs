//! The embedded SQLite store: one file under the data directory, created on
//! first start, WAL journal with `synchronous=FULL` so an acknowledged write
//! survives a crash or power loss.
//!
//! Threads: one writer (`sqlite-writer`) and [`READERS`] readers
//! (`sqlite-reader-N`), whatever the load; no call
//! blocks a tokio thread or takes a blocking-pool thread.
//!
//! * **Group commit.** Every write (counter compare-and-sets, creates,
//!   revokes, touches, ...) is a job for the writer thread. The writer takes
//!   every job waiting at that moment and runs them in one transaction, each
//!   under its own savepoint (a failing job is rolled back alone), in arrival
//!   order, so each sees the ones before it exactly as if they had committed
//!   one by one. One commit, so one fsync, acknowledges the whole group; no
//!   job is answered before that commit.
//! * **Reads** run on read-only connections (`query_only`): WAL lets them
//!   read the last commit while the writer writes.

use crate::counters;
use crate::{
    ChallengeUse, CounterResult, CounterUpdate, CredentialStore, Registered, Replaced, StoreError, StoredCredential, UserRisk,
    UserRiskLevel,
};
use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Reader threads (and read-only connections).
pub const READERS: usize = 2;

/// Most writes committed together.
const MAX_GROUP: usize = 1024;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many ran. Never edit one that has shipped: append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE credentials (
    rp_id           TEXT    NOT NULL,
    credential_id   BLOB    NOT NULL,
    user_handle     BLOB    NOT NULL,
    public_key_cose BLOB    NOT NULL,
    sign_count      INTEGER NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    backup_eligible INTEGER NOT NULL,
    backup_state    INTEGER NOT NULL,
    aaguid          BLOB    NOT NULL,
    attested        INTEGER NOT NULL,
    transports      TEXT    NOT NULL,
    revoked         INTEGER NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    last_used_at_ms INTEGER,
    PRIMARY KEY (rp_id, credential_id)
) WITHOUT ROWID;
CREATE INDEX credentials_by_user ON credentials (rp_id, user_handle);
"#,
    r#"
CREATE TABLE consumed_challenges (
    id            BLOB    NOT NULL PRIMARY KEY,
    keep_until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX consumed_challenges_by_age ON consumed_challenges (keep_until_ms);
"#,
    r#"
CREATE TABLE user_risk (
    rp_id         TEXT    NOT NULL,
    user_handle   BLOB    NOT NULL,
    level         TEXT    NOT NULL CHECK (level IN ('medium', 'high')),
    expires_at_ms INTEGER,
    note          TEXT    NOT NULL,
    set_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (rp_id, user_handle)
) WITHOUT ROWID;
"#,
    // Whether the attestation's root vouched for the AAGUID, and which root.
    // Credentials stored before were vouched under the rule of their time
    // (any root the chain reached): attested ones with a non-zero AAGUID stay vouched
    // (docs/upgrades.md says how to review them).
    r#"
ALTER TABLE credentials ADD COLUMN aaguid_vouched INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN trust_anchor TEXT NOT NULL DEFAULT '';
UPDATE credentials SET aaguid_vouched = 1 WHERE attested AND length(aaguid) = 16 AND aaguid <> zeroblob(16);
"#,
    r#"
-- The FIDO metadata serial (no) in force, so a restart cannot go back to an
-- older BLOB (which would lift revocations reported since).
CREATE TABLE metadata_serial (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    number    INTEGER NOT NULL,
    set_at_ms INTEGER NOT NULL
);
"#,
];

const COLUMNS: &str = "rp_id, credential_id, user_handle, public_key_cose, sign_count, backup_eligible, backup_state, aaguid, attested, transports, revoked, created_at_ms, last_used_at_ms, aaguid_vouched, trust_anchor";

/// The SQLite credential store (see the module docs for its threads).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writes: mpsc::Sender<Box<dyn WriteJob>>,
    reads: mpsc::Sender<ReadJob>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// A read, run on a reader thread; it answers its caller itself.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A write, run by the writer thread inside a group's transaction.
trait WriteJob: Send {
    /// Runs under the job's savepoint; whether to keep what it did.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group's commit is known.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Job<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send, F: FnOnce(&Connection) -> Result<T, StoreError> + Send> WriteJob for Job<T, F> {
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let r = work(conn);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (committed, self.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Unavailable("the write was not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: group after group until every sender is gone.
fn writer(mut conn: Connection, jobs: mpsc::Receiver<Box<dyn WriteJob>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let committed = commit_group(&mut conn, &mut group);
        for j in group {
            j.finish(committed.clone());
        }
    }
}

/// One transaction for the group, a savepoint per job. A group of one job
/// needs no savepoint: if the job fails, the transaction is rolled back
/// (savepoints copy every page they touch to a subjournal; on one core most
/// groups hold a single batch).
fn commit_group(conn: &mut Connection, group: &mut [Box<dyn WriteJob>]) -> Result<(), StoreError> {
    // IMMEDIATE takes the write lock up front (waiting up to busy_timeout):
    // no other process can write between a job's reads and its writes.
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(unavailable)?;
    if let [job] = group {
        if !job.run(&tx) {
            // The job answers with its own error; nothing of it is kept.
            return tx.rollback().map_err(unavailable);
        }
    } else {
        for job in group.iter_mut() {
            let sp = tx.savepoint().map_err(unavailable)?;
            if job.run(&sp) {
                sp.commit().map_err(unavailable)?;
            }
            // Dropped without commit: rolled back, alone.
        }
    }
    tx.commit().map_err(unavailable)
}

/// A reader thread: reads until every sender is gone.
fn reader(conn: Connection, jobs: Arc<Mutex<mpsc::Receiver<ReadJob>>>) {
    loop {
        let job = jobs.lock().recv();
        match job {
            Ok(job) => job(&conn),
            Err(_) => return,
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite store's threads have stopped".into())
}

/// Opens a connection with the store's settings.
fn open_conn(path: &Path, timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(timeout).map_err(unavailable)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(unavailable)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(unavailable)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(unavailable)?;
    Ok(conn)
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A `user_risk` row as read, before its level is checked.
type RiskRow = (String, Vec<u8>, String, Option<i64>, String, i64);

fn risk_row(r: &Row<'_>) -> rusqlite::Result<RiskRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn risk_from((rp_id, user_handle, level, expires_at_ms, note, set_at_ms): RiskRow) -> Result<UserRisk, StoreError> {
    Ok(UserRisk { rp_id, user_handle, level: UserRiskLevel::parse(&level)?, expires_at_ms, note, set_at_ms })
}

/// The values of [`COLUMNS`], in order, for an INSERT of `r`.
fn insert_params(r: &StoredCredential) -> Vec<Box<dyn rusqlite::ToSql + '_>> {
    vec![
        Box::new(&r.rp_id),
        Box::new(&r.credential_id),
        Box::new(&r.user_handle),
        Box::new(&r.public_key_cose),
        Box::new(i64::from(r.sign_count)),
        Box::new(r.backup_eligible),
        Box::new(r.backup_state),
        Box::new(&r.aaguid),
        Box::new(r.attested),
        Box::new(r.transports.join(",")),
        Box::new(r.revoked),
        Box::new(r.created_at_ms),
        Box::new(r.last_used_at_ms),
        Box::new(r.aaguid_vouched),
        Box::new(&r.trust_anchor),
    ]
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredCredential> {
    let count: i64 = row.get(4)?;
    let transports: String = row.get(9)?;
    Ok(StoredCredential {
        rp_id: row.get(0)?,
        credential_id: row.get(1)?,
        user_handle: row.get(2)?,
        public_key_cose: row.get(3)?,
        sign_count: u32::try_from(count).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(4, count))?,
        backup_eligible: row.get(5)?,
        backup_state: row.get(6)?,
        aaguid: row.get(7)?,
        attested: row.get(8)?,
        transports: transports.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        revoked: row.get(10)?,
        created_at_ms: row.get(11)?,
        last_used_at_ms: row.get(12)?,
        aaguid_vouched: row.get(13)?,
        trust_anchor: row.get(14)?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) `credentials.db` in `data_dir`, creating the
    /// directory, and runs pending migrations. A call that cannot get the
    /// database lock within 5 s fails with [`StoreError::Unavailable`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_timeout(data_dir, Duration::from_secs(5))
    }

    /// As [`SqliteStore::open`], with the lock wait bound (`busy_timeout`).
    pub fn open_with_timeout(data_dir: &Path, timeout: Duration) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| unavailable(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let path = data_dir.join("credentials.db");
        let mut conn = open_conn(&path, timeout)?;
        migrate(&mut conn)?;
        let (writes, write_jobs) = mpsc::channel();
        let (reads, read_jobs) = mpsc::channel();
        let read_jobs = Arc::new(Mutex::new(read_jobs));
        for i in 0..READERS {
            let r = open_conn(&path, timeout)?;
            r.pragma_update(None, "query_only", "ON").map_err(unavailable)?;
            let jobs = read_jobs.clone();
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || reader(r, jobs))
                .map_err(|e| unavailable(format!("cannot start a store thread: {e}")))?;
        }
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(conn, write_jobs))
            .map_err(|e| unavailable(format!("cannot start a store thread: {e}")))?;
        Ok(Self { inner: Arc::new(Inner { writes, reads, path }) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a reader thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner.reads.send(Box::new(move |c: &Connection| drop(tx.send(f(c))))).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Runs `f` on the writer thread, in the next group; answers after the
    /// group committed.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner.writes.send(Box::new(Job { work: Some(f), result: None, reply })).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(unavailable)?;
    let version: usize = tx.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)).map_err(unavailable)?.try_into().unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(crate::newer_schema(version, MIGRATIONS.len()));
    }
    for m in &MIGRATIONS[version..] {
        tx.execute_batch(m).map_err(unavailable)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64).map_err(unavailable)?;
    tx.commit().map_err(unavailable)
}

/// Inserts a credential unless its id exists; the row as stored.
fn insert_new(c: &Connection, r: &StoredCredential) -> Result<Option<StoredCredential>, StoreError> {
    c.prepare_cached(&format!(
        "INSERT INTO credentials ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (rp_id, credential_id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .and_then(|mut s| s.query_row(rusqlite::params_from_iter(insert_params(r)), from_row).optional())
    .map_err(unavailable)
}

/// Records challenge uses: true for each first use of its id.
fn insert_uses(c: &Connection, uses: &[ChallengeUse]) -> Result<Vec<bool>, StoreError> {
    let mut s = c
        .prepare_cached("INSERT INTO consumed_challenges (id, keep_until_ms) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING")
        .map_err(unavailable)?;
    uses.iter().map(|u| s.execute(params![&u.id[..], u.keep_until_ms]).map(|n| n == 1).map_err(unavailable)).collect()
}

fn get_one(conn: &Connection, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM credentials WHERE rp_id = ?1 AND credential_id = ?2"))
        .and_then(|mut s| s.query_row(params![rp_id, credential_id], from_row).optional())
        .map_err(unavailable)
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn get(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let (rp_id, credential_id) = (rp_id.to_owned(), credential_id.to_vec());
        self.read(move |c| get_one(c, &rp_id, &credential_id)).await
    }

    async fn put_many(&self, records: Vec<StoredCredential>) -> Result<Vec<StoredCredential>, StoreError> {
        self.write(move |c| {
            let mut out = Vec::with_capacity(records.len());
            {
                let mut upsert = c
                    .prepare_cached(&format!(
                        "INSERT INTO credentials ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                         ON CONFLICT (rp_id, credential_id) DO UPDATE SET
                           user_handle = excluded.user_handle, public_key_cose = excluded.public_key_cose,
                           sign_count = max(sign_count, excluded.sign_count),
                           backup_eligible = excluded.backup_eligible, backup_state = excluded.backup_state,
                           aaguid = excluded.aaguid, attested = excluded.attested, transports = excluded.transports,
                           aaguid_vouched = excluded.aaguid_vouched, trust_anchor = excluded.trust_anchor,
                           revoked = revoked OR excluded.revoked
                         RETURNING {COLUMNS}"
                    ))
                    .map_err(unavailable)?;
                for r in &records {
                    let stored = upsert.query_row(rusqlite::params_from_iter(insert_params(r)), from_row).map_err(unavailable)?;
                    out.push(stored);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn create(&self, r: StoredCredential) -> Result<Option<StoredCredential>, StoreError> {
        self.write(move |c| insert_new(c, &r)).await
    }

    async fn create_many(&self, records: Vec<StoredCredential>) -> Result<Vec<bool>, StoreError> {
        self.write(move |c| records.iter().map(|r| insert_new(c, r).map(|s| s.is_some())).collect()).await
    }

    async fn replace(&self, r: StoredCredential) -> Result<Replaced, StoreError> {
        self.write(move |c| {
            let updated = c
                .prepare_cached(&format!(
                    "UPDATE credentials SET public_key_cose = ?4, sign_count = max(sign_count, ?5), backup_eligible = ?6,
                       backup_state = ?7, aaguid = ?8, attested = ?9, transports = ?10, aaguid_vouched = ?11, trust_anchor = ?12
                     WHERE rp_id = ?1 AND credential_id = ?2 AND user_handle = ?3 RETURNING {COLUMNS}"
                ))
                .and_then(|mut s| {
                    s.query_row(
                        params![
                            r.rp_id,
                            r.credential_id,
                            r.user_handle,
                            r.public_key_cose,
                            i64::from(r.sign_count),
                            r.backup_eligible,
                            r.backup_state,
                            r.aaguid,
                            r.attested,
                            r.transports.join(","),
                            r.aaguid_vouched,
                            r.trust_anchor
                        ],
                        from_row,
                    )
                    .optional()
                })
                .map_err(unavailable)?;
            let outcome = match updated {
                Some(stored) => Replaced::Replaced(stored),
                None => {
                    let exists = c
                        .prepare_cached("SELECT 1 FROM credentials WHERE rp_id = ?1 AND credential_id = ?2")
                        .and_then(|mut s| s.query_row(params![r.rp_id, r.credential_id], |_| Ok(())).optional())
                        .map_err(unavailable)?;
                    if exists.is_some() { Replaced::OtherUser } else { Replaced::NotFound }
                }
            };
            Ok(outcome)
        })
        .await
    }

    async fn delete(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let (rp_id, credential_id) = (rp_id.to_owned(), credential_id.to_vec());
        self.write(move |c| {
            c.prepare_cached(&format!("DELETE FROM credentials WHERE rp_id = ?1 AND credential_id = ?2 RETURNING {COLUMNS}"))
                .and_then(|mut s| s.query_row(params![rp_id, credential_id], from_row).optional())
                .map_err(unavailable)
        })
        .await
    }

    async fn revoke(&self, rp_id: &str, credential_id: &[u8]) -> Result<Option<StoredCredential>, StoreError> {
        let (rp_id, credential_id) = (rp_id.to_owned(), credential_id.to_vec());
        self.write(move |c| {
            c.prepare_cached(&format!("UPDATE credentials SET revoked = 1 WHERE rp_id = ?1 AND credential_id = ?2 RETURNING {COLUMNS}"))
                .and_then(|mut s| s.query_row(params![rp_id, credential_id], from_row).optional())
                .map_err(unavailable)
        })
        .await
    }

    async fn list_by_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<StoredCredential>, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials WHERE rp_id = ?1 AND user_handle = ?2 ORDER BY created_at_ms, credential_id"
                ))
                .map_err(unavailable)?;
            let rows = s.query_map(params![rp_id, user_handle], from_row).map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn set_backup_eligible(&self, keys: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            {
                let mut s = c
                    .prepare_cached("UPDATE credentials SET backup_eligible = 1 WHERE rp_id = ?1 AND credential_id = ?2 AND NOT revoked")
                    .map_err(unavailable)?;
                for (rp, id) in &keys {
                    s.execute(params![rp, id]).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn touch(&self, keys: Vec<(String, Vec<u8>)>, now_ms: i64) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            {
                let mut s = c
                    .prepare_cached("UPDATE credentials SET last_used_at_ms = max(coalesce(last_used_at_ms, 0), ?3) WHERE rp_id = ?1 AND credential_id = ?2")
                    .map_err(unavailable)?;
                for (rp, id) in &keys {
                    s.execute(params![rp, id, now_ms]).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn create_with_challenge(&self, r: StoredCredential, challenge: ChallengeUse) -> Result<Registered, StoreError> {
        // One job: one savepoint, so both writes or neither.
        self.write(move |c| {
            if !insert_uses(c, &[challenge])?[0] {
                return Ok(Registered::ChallengeReplayed);
            }
            Ok(insert_new(c, &r)?.map_or(Registered::AlreadyRegistered, |c| Registered::Created(Box::new(c))))
        })
        .await
    }

    async fn raise_metadata_serial(&self, number: u64, now_ms: i64) -> Result<u64, StoreError> {
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO metadata_serial (id, number, set_at_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET number = excluded.number, set_at_ms = excluded.set_at_ms
                   WHERE excluded.number > metadata_serial.number",
            )
            .and_then(|mut s| s.execute(params![n, now_ms]))
            .map_err(unavailable)?;
            let v: i64 = c.query_row("SELECT number FROM metadata_serial WHERE id = 1", [], |r| r.get(0)).map_err(unavailable)?;
            Ok(u64::try_from(v).unwrap_or(0))
        })
        .await
    }

    async fn set_metadata_serial(&self, number: u64, now_ms: i64) -> Result<(), StoreError> {
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.write(move |c| {
            c.execute(
                "INSERT INTO metadata_serial (id, number, set_at_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET number = excluded.number, set_at_ms = excluded.set_at_ms",
                params![n, now_ms],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn prune_challenges(&self, now_ms: i64, margin_ms: i64) -> Result<u64, StoreError> {
        // One host, one clock: the margin is what a skewed caller gets.
        self.write(move |c| {
            c.prepare_cached("DELETE FROM consumed_challenges WHERE keep_until_ms < ?1")
                .and_then(|mut s| s.execute([now_ms.saturating_sub(margin_ms)]))
                .map(|n| n as u64)
                .map_err(unavailable)
        })
        .await
    }

    async fn set_user_risk(&self, risk: UserRisk) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO user_risk (rp_id, user_handle, level, expires_at_ms, note, set_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (rp_id, user_handle) DO UPDATE SET level = excluded.level, expires_at_ms = excluded.expires_at_ms,
                     note = excluded.note, set_at_ms = excluded.set_at_ms",
            )
            .and_then(|mut s| {
                s.execute(params![risk.rp_id, risk.user_handle, risk.level.as_str(), risk.expires_at_ms, risk.note, risk.set_at_ms])
            })
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn clear_user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<bool, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.write(move |c| {
            c.prepare_cached("DELETE FROM user_risk WHERE rp_id = ?1 AND user_handle = ?2")
                .and_then(|mut s| s.execute(params![rp_id, user_handle]))
                .map(|n| n > 0)
                .map_err(unavailable)
        })
        .await
    }

    async fn user_risk(&self, rp_id: &str, user_handle: &[u8]) -> Result<Option<UserRisk>, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT rp_id, user_handle, level, expires_at_ms, note, set_at_ms FROM user_risk WHERE rp_id = ?1 AND user_handle = ?2",
                )
                .map_err(unavailable)?;
            let row = s.query_row(params![rp_id, user_handle], risk_row).optional().map_err(unavailable)?;
            row.map(risk_from).transpose()
        })
        .await
    }

    async fn user_risks(&self, now_ms: i64) -> Result<Vec<UserRisk>, StoreError> {
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT rp_id, user_handle, level, expires_at_ms, note, set_at_ms FROM user_risk WHERE expires_at_ms IS NULL OR expires_at_ms > ?1",
                )
                .map_err(unavailable)?;
            let rows = s.query_map([now_ms], risk_row).map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable).and_then(risk_from)).collect()
        })
        .await
    }

    async fn revoke_user(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let (rp_id, user_handle) = (rp_id.to_owned(), user_handle.to_vec());
        self.write(move |c| {
            let mut s = c
                .prepare_cached(
                    "UPDATE credentials SET revoked = 1 WHERE rp_id = ?1 AND user_handle = ?2 AND revoked = 0 RETURNING credential_id",
                )
                .map_err(unavailable)?;
            let ids = s.query_map(params![rp_id, user_handle], |r| r.get::<_, Vec<u8>>(0)).map_err(unavailable)?;
            ids.map(|r| r.map_err(unavailable)).collect()
        })
        .await
    }

    async fn page(&self, after: Option<(String, Vec<u8>)>, limit: usize) -> Result<Vec<StoredCredential>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let (rp, id) = after.unwrap_or_default();
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials WHERE (rp_id, credential_id) > (?1, ?2) ORDER BY rp_id, credential_id LIMIT ?3"
                ))
                .map_err(unavailable)?;
            let rows = s.query_map(params![rp, id, limit], from_row).map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(unavailable)).await
    }

    async fn settle_sign_ins(
        &self,
        updates: std::sync::Arc<[CounterUpdate]>,
        uses: std::sync::Arc<[ChallengeUse]>,
        now_ms: i64,
    ) -> Result<(Vec<CounterResult>, Vec<bool>), StoreError> {
        if updates.is_empty() && uses.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        self.write(move |c| {
            // In the writer's group transaction: no other writer can
            // interleave between these reads and writes.
            let distinct = counters::distinct_max(&updates);
            // Point reads by primary key with one cached statement: an
            // `IN (VALUES ...)` per batch size would be parsed again for
            // every size the statement cache does not hold.
            let mut rows: HashMap<counters::Key<'_>, counters::RowState> = HashMap::with_capacity(distinct.len());
            let mut read =
                c.prepare_cached("SELECT sign_count, revoked FROM credentials WHERE rp_id = ?1 AND credential_id = ?2").map_err(unavailable)?;
            for ((rp, id), _) in &distinct {
                let row = read
                    .query_row(params![rp, id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)))
                    .optional()
                    .map_err(unavailable)?;
                let state = match row {
                    Some((n, revoked)) => {
                        Some((u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("sign_count {n} out of range")))?, revoked))
                    }
                    None => None,
                };
                rows.insert((*rp, *id), state);
            }
            let plan = counters::plan(&updates, &rows);
            {
                let mut write = c
                    .prepare_cached(
                        "UPDATE credentials SET sign_count = ?3, last_used_at_ms = ?4 WHERE rp_id = ?1 AND credential_id = ?2 AND sign_count = ?5",
                    )
                    .map_err(unavailable)?;
                for ((rp_id, id), before, after) in &plan.writes {
                    write.execute(params![rp_id, id, i64::from(*after), now_ms, i64::from(*before)]).map_err(unavailable)?;
                }
            }
            // In the same job (one savepoint): the counts and the uses, both
            // or neither.
            Ok((plan.results, insert_uses(c, &uses)?))
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
    }

    fn record(id: u8) -> StoredCredential {
        StoredCredential {
            rp_id: "rp".into(),
            credential_id: vec![id],
            user_handle: b"u".to_vec(),
            public_key_cose: vec![1],
            sign_count: 0,
            backup_eligible: false,
            backup_state: false,
            aaguid: vec![0; 16],
            attested: false,
            transports: vec![],
            revoked: false,
            created_at_ms: 0,
            last_used_at_ms: None,
            aaguid_vouched: false,
            trust_anchor: String::new(),
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
            c.execute(
                &format!("INSERT INTO credentials ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
                rusqlite::params_from_iter(insert_params(&half)),
            )
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
                c.execute(
                    &format!(
                        "INSERT INTO credentials ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                    ),
                    rusqlite::params_from_iter(insert_params(&half)),
                )
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

    /// A rollback past a migration: the older binary refuses the newer
    /// schema, naming the way out.
    #[test]
    fn a_newer_schema_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join("credentials.db")).unwrap();
        c.pragma_update(None, "user_version", (MIGRATIONS.len() + 1) as i64).unwrap();
        drop(c);
        let e = SqliteStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is newer than this assertd") && e.contains("docs/upgrades.md"), "{e}");
    }
}
