//! The store's threads: one writer committing groups of writes, one
//! transaction and one fsync a group, and the readers.

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
    /// Runs under the job's savepoint; whether to keep what it did.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group's commit is known.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

pub(super) struct Job<T, F> {
    pub(super) work: Option<F>,
    pub(super) result: Option<Result<T, StoreError>>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
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
pub(super) fn writer(mut conn: Connection, jobs: mpsc::Receiver<Box<dyn WriteJob>>) {
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
pub(super) fn reader(conn: Connection, jobs: Arc<Mutex<mpsc::Receiver<ReadJob>>>) {
    loop {
        let job = jobs.lock().recv();
        match job {
            Ok(job) => job(&conn),
            Err(_) => return,
        }
    }
}
