//! The store's threads: one writer committing groups of writes (one
//! transaction a group, and one journal frame for its counts), folding
//! counts into their rows between groups; and the readers.

use super::pending::{CounterLog, FOLD_CHUNK, IDLE};
use super::unavailable;
use crate::types::StoreError;
use parking_lot::Mutex;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most writes committed together.
const MAX_GROUP: usize = 1024;

/// A read, run on a reader thread; it answers its caller itself.
pub(super) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A write, run by the writer thread inside a group's transaction.
pub(super) trait WriteJob: Send {
    /// Runs under the job's savepoint (its counts staged in `log`);
    /// whether to keep what it did.
    fn run(&mut self, conn: &Connection, log: &mut CounterLog) -> bool;
    /// Whether the job may write to the tables, and so runs under a
    /// savepoint of its own in a group (a job that only reads them and
    /// stages counts is undone by dropping what it staged).
    fn writes_tables(&self) -> bool;
    /// Answers the caller once the group's commit is known.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

pub(super) struct Job<T, F> {
    pub(super) work: Option<F>,
    pub(super) writes_tables: bool,
    pub(super) result: Option<Result<T, StoreError>>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send, F: FnOnce(&Connection, &mut CounterLog) -> Result<T, StoreError> + Send> WriteJob for Job<T, F> {
    fn run(&mut self, conn: &Connection, log: &mut CounterLog) -> bool {
        let Some(work) = self.work.take() else { return false };
        let r = work(conn, log);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn writes_tables(&self) -> bool {
        self.writes_tables
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

/// The writer thread: group after group until every sender is gone, a
/// fold step between groups while one is under way, then everything folded.
pub(super) fn writer(mut conn: Connection, jobs: mpsc::Receiver<Box<dyn WriteJob>>, mut log: CounterLog) {
    let mut fold_after = std::time::Instant::now();
    loop {
        let next = if log.folding() && std::time::Instant::now() >= fold_after {
            jobs.try_recv().map_err(|e| matches!(e, mpsc::TryRecvError::Disconnected))
        } else {
            jobs.recv_timeout(IDLE).map_err(|e| matches!(e, mpsc::RecvTimeoutError::Disconnected))
        };
        let idle = next.is_err();
        match next {
            Ok(first) => {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match jobs.try_recv() {
                        Ok(j) => group.push(j),
                        Err(_) => break,
                    }
                }
                let committed = commit_group(&conn, &mut group, &mut log);
                for j in group {
                    j.finish(committed.clone());
                }
            }
            Err(true) => break,
            Err(false) => {}
        }
        if log.should_rotate(idle)
            && let Err(e) = log.rotate()
        {
            tracing::warn!(error = %e, "cannot close the counter journal's generation; counts stay in it");
        }
        if log.folding()
            && std::time::Instant::now() >= fold_after
            && let Err(e) = log.fold(&mut conn, FOLD_CHUNK)
        {
            tracing::warn!(error = %e, "cannot fold counts into the database; they stay in the counter journal, retried in 1 s");
            fold_after = std::time::Instant::now() + IDLE;
        }
    }
    match log.fold_all(&mut conn) {
        Ok(true) => super::schema::mark_folded(&conn),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "counts left in the counter journal at stop; the next start writes them in"),
    }
}

/// One transaction for the group, a savepoint per job. A group of one job
/// needs no savepoint: if the job fails, the transaction is rolled back
/// (savepoints copy every page they touch to a subjournal; on one core most
/// groups hold a single batch). The group's counts are appended to the
/// journal and synced before the transaction commits: a count is durable
/// before anything of its group is answered, and a count durable but not
/// answered (the commit failed) is one the authenticator did produce.
fn commit_group(conn: &Connection, group: &mut [Box<dyn WriteJob>], log: &mut CounterLog) -> Result<(), StoreError> {
    // IMMEDIATE takes the write lock up front (waiting up to busy_timeout):
    // no other process can write between a job's reads and its writes.
    // BEGIN, COMMIT and ROLLBACK are cached statements: rusqlite's
    // `Transaction` prepared them anew for every group (BENCHMARKS.md §23).
    run_cached(conn, "BEGIN IMMEDIATE")?;
    let kept = match run_jobs(conn, group, log) {
        Ok(true) => log.commit().and_then(|()| run_cached(conn, "COMMIT")),
        // A lone job that failed answers with its own error; nothing of it
        // is kept.
        Ok(false) => {
            log.discard();
            return run_cached(conn, "ROLLBACK");
        }
        Err(e) => {
            log.discard();
            Err(e)
        }
    };
    if kept.is_err() && !conn.is_autocommit() {
        drop(run_cached(conn, "ROLLBACK"));
    }
    kept
}

/// Runs one cached statement that returns no rows.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop).map_err(unavailable)
}

/// Runs the group's jobs in the open transaction; false when its only job
/// failed. In a group of several, a job that writes the tables runs under a
/// savepoint of its own (cached statements, as BEGIN and COMMIT), so it
/// fails alone; a job that only reads them and stages counts needs none
/// (dropping what it staged undoes it, and a savepoint copies every page a
/// job touches to a subjournal).
fn run_jobs(conn: &Connection, group: &mut [Box<dyn WriteJob>], log: &mut CounterLog) -> Result<bool, StoreError> {
    if let [job] = group {
        return Ok(job.run(conn, log));
    }
    for job in group.iter_mut() {
        let mark = log.mark();
        let savepoint = job.writes_tables();
        if savepoint {
            run_cached(conn, "SAVEPOINT job")?;
        }
        if job.run(conn, log) {
            if savepoint {
                run_cached(conn, "RELEASE job")?;
            }
        } else {
            log.rollback(mark);
            if savepoint {
                run_cached(conn, "ROLLBACK TO job")?;
                run_cached(conn, "RELEASE job")?;
            }
        }
    }
    Ok(true)
}

/// A reader thread: reads until every sender is gone.
pub(super) fn reader(conn: Connection, jobs: Arc<Mutex<mpsc::Receiver<ReadJob>>>) {
    loop {
        let job = jobs.lock().recv();
        match job {
            Ok(job) => job(&conn),
            Err(_) => return,
        }
    }
}
