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
//! * **Counted sign-ins** are appended to the counter journal (`journal`),
//!   one synced frame a group, and folded into `credentials` later, many to
//!   a page (`pending`); reads merge the counts not yet folded. A crash
//!   leaves them in the journal, written into the database at the next
//!   open. `counters.lock` keeps a second process off the directory.
//! * **Reads** run on read-only connections (`query_only`): WAL lets them
//!   read the last commit while the writer writes.
//!
//! The schema is in `schema`, the writer and reader threads in `writer`,
//! the queries in `queries`; rows are read and written through the shared
//! codec (`crate::row`).

use crate::types::StoreError;
use parking_lot::Mutex;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

pub mod backup;
mod counting;
mod events;
mod journal;
#[cfg(test)]
mod journal_tests;
mod passes;
mod pending;
mod queries;
mod risk;
mod schema;
mod stats;
#[cfg(test)]
mod tests;
mod writer;

use pending::{CounterLog, Pending};
use schema::migrate;
use writer::{Job, ReadJob, WriteJob, reader, writer};

/// Reader threads (and read-only connections).
pub const READERS: usize = 2;

/// The SQLite credential store (see the module docs for its threads).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writes: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    reads: mpsc::Sender<ReadJob>,
    path: PathBuf,
    pending: Arc<Pending>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    /// Stops the writer and waits while it folds the journal in, so the
    /// directory's lock is free when this returns.
    fn drop(&mut self) {
        drop(self.writes.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `credentials.db` in `data_dir`, creating the
    /// directory, and runs pending migrations. A call that cannot get the
    /// database lock within 5 s fails with [`StoreError::Unavailable`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_timeout(data_dir, Duration::from_secs(5))
    }

    /// As [`SqliteStore::open`], with the lock wait bound (`busy_timeout`):
    /// the server's store, holding the directory (and its counter journal);
    /// refused while another process holds it.
    pub fn open_with_timeout(data_dir: &Path, timeout: Duration) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| unavailable(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let lock = journal::Journal::lock(data_dir)?;
        Self::start(data_dir, timeout, Some(lock))
    }

    /// A command-line tool's store: as [`SqliteStore::open_with_timeout`]
    /// when no server holds the directory; beside a running server,
    /// one that reads (with the counts in the server's journal when it
    /// opened) and writes, but does not count sign-ins.
    pub fn open_shared(data_dir: &Path, timeout: Duration) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| unavailable(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let lock = journal::Journal::try_lock(data_dir)?;
        Self::start(data_dir, timeout, lock)
    }

    fn start(data_dir: &Path, timeout: Duration, lock: Option<std::fs::File>) -> Result<Self, StoreError> {
        let path = data_dir.join("credentials.db");
        let mut conn = open_conn(&path, timeout)?;
        migrate(&mut conn)?;
        let pending = Arc::new(Pending::default());
        let journal = match lock {
            Some(lock) => {
                let generation = pending::replay(&mut conn, data_dir)?;
                Some(journal::Journal::create(data_dir, generation, lock)?)
            }
            None => {
                pending.load(&journal::read_all(data_dir)?);
                None
            }
        };
        let log = CounterLog::new(journal, pending.clone());
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
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(conn, write_jobs, log))
            .map_err(|e| unavailable(format!("cannot start a store thread: {e}")))?;
        Ok(Self { inner: Arc::new(Inner { writes: Some(writes), reads, path, pending, writer: Some(writer) }) })
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

    /// Runs `f` on a reader thread; counts not yet folded merged into the
    /// credentials it returns.
    async fn read_merged<T: pending::Merge + Send + 'static>(
        &self,
        f: impl Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pending = self.inner.pending.clone();
        self.read(move |c| pending.merged(|| f(c))).await
    }

    /// Runs `f` on the writer thread, in the next group; answers after the
    /// group committed.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_counting(true, move |c, _| f(c)).await
    }

    /// As [`Self::write`], with the group's counter journal; `writes_tables`
    /// false for a job that only reads the tables.
    async fn write_counting<T: Send + 'static>(
        &self,
        writes_tables: bool,
        f: impl FnOnce(&Connection, &mut CounterLog) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let writes = self.inner.writes.as_ref().ok_or_else(stopped)?;
        writes.send(Box::new(Job { work: Some(f), writes_tables, result: None, reply })).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Runs `f` on the writer thread with counts not yet folded merged into
    /// the credentials it returns (the writer is the only one folding).
    async fn write_merged<T: pending::Merge + Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pending = self.inner.pending.clone();
        self.write(move |c| {
            let mut v = f(c)?;
            pending.merge_into(&mut v);
            Ok(v)
        })
        .await
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
    // rusqlite keeps 16 prepared statements by default; the store runs more
    // distinct ones than that (the writer alone: BEGIN, COMMIT and every
    // write), and one evicted is parsed again at its next use.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
