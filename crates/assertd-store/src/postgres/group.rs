//! Group commit of counters (and the batch's challenge uses, in the same
//! statement) across batches: counter calls that arrive while
//! this replica's counter statement is in flight wait, and go together in
//! the next statement (one statement, one transaction, one WAL flush for
//! all of them). A call that finds nothing in flight runs at once, so an
//! idle replica adds no wait; under load the groups grow with the
//! statement's latency.
//!
//! Results are as if the calls ran one after another in arrival order: the
//! group's updates are concatenated in that order and planned together
//! (`counters::plan`), then split back per call. A statement that fails
//! fails every call of its group with the same error (PostgreSQL's errors
//! here are of the connection, a timeout or the schema, not of one batch).

use crate::types::{ChallengeUse, CounterResult, CounterUpdate, StoreError};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Most updates (counts and challenge uses) in one statement; a longer
/// queue takes several.
const MAX_UPDATES: usize = 4096;

/// Per call: one result per update, one freshness per challenge use.
pub(super) type Answer = Result<(Vec<CounterResult>, Vec<bool>), StoreError>;

/// One waiting call.
struct Waiting {
    updates: Arc<[CounterUpdate]>,
    uses: Arc<[ChallengeUse]>,
    now_ms: i64,
    reply: oneshot::Sender<Answer>,
}

/// The calls waiting for a statement, and the turn to run one.
#[derive(Default)]
pub(super) struct Groups {
    waiting: parking_lot::Mutex<Vec<Waiting>>,
    /// Held while statements run: at most one counter statement of this
    /// replica is in flight.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Groups {
    /// Queues `updates` and answers once a statement holding them is done:
    /// run by this call when no statement is in flight, else by the one that
    /// holds the turn.
    ///
    /// The statements run on a task of their own, so a caller that goes away
    /// (its RPC cancelled) cannot cancel the answers of the others in its
    /// group. A caller that goes away while it waits leaves its updates
    /// queued; they run in their place, as a slow statement would.
    pub(super) async fn advance<F, Fut>(
        self: &Arc<Self>,
        updates: Arc<[CounterUpdate]>,
        uses: Arc<[ChallengeUse]>,
        now_ms: i64,
        run: F,
    ) -> Answer
    where
        F: Fn(Arc<[CounterUpdate]>, Arc<[ChallengeUse]>, i64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send,
    {
        let (reply, mut answer) = oneshot::channel();
        self.waiting.lock().push(Waiting { updates, uses, now_ms, reply });
        let turn = tokio::select! {
            biased;
            done = &mut answer => return received(done),
            turn = Arc::clone(&self.turn).lock_owned() => turn,
        };
        let groups = Arc::clone(self);
        // Detached: it answers every call it takes, then gives the turn back.
        drop(tokio::spawn(async move {
            loop {
                let group = groups.take();
                if group.is_empty() {
                    break;
                }
                run_group(group, &run).await;
            }
            drop(turn);
        }));
        received(answer.await)
    }

    /// The oldest waiting calls, up to [`MAX_UPDATES`] updates (at least one
    /// call).
    fn take(&self) -> Vec<Waiting> {
        let mut waiting = self.waiting.lock();
        let (mut calls, mut updates) = (0, 0);
        for w in waiting.iter() {
            let size = w.updates.len() + w.uses.len();
            if calls > 0 && updates + size > MAX_UPDATES {
                break;
            }
            calls += 1;
            updates += size;
        }
        waiting.drain(..calls).collect()
    }
}

/// A dropped reply means the statement's task panicked.
fn received(r: Result<Answer, oneshot::error::RecvError>) -> Answer {
    r.unwrap_or_else(|_| Err(StoreError::Unavailable("the counter statement's task failed".into())))
}

/// One statement for the group; each call gets its share of the results.
async fn run_group<F, Fut>(group: Vec<Waiting>, run: &F)
where
    F: Fn(Arc<[CounterUpdate]>, Arc<[ChallengeUse]>, i64) -> Fut,
    Fut: Future<Output = Answer>,
{
    let now_ms = group.iter().map(|w| w.now_ms).max().unwrap_or_default();
    let (all, uses): (Arc<[CounterUpdate]>, Arc<[ChallengeUse]>) = match group.as_slice() {
        [one] => (Arc::clone(&one.updates), Arc::clone(&one.uses)),
        _ => (group.iter().flat_map(|w| w.updates.iter().cloned()).collect(), group.iter().flat_map(|w| w.uses.iter().copied()).collect()),
    };
    match run(all, uses, now_ms).await {
        Ok((results, fresh)) => {
            // One result per update (checked again by the engine): a short
            // answer leaves the last calls short, never another's result.
            // Uses in arrival order: of two calls with one challenge, the
            // earlier is the first use.
            let (mut results, mut fresh) = (results.into_iter(), fresh.into_iter());
            for w in group {
                let mine: Vec<CounterResult> = results.by_ref().take(w.updates.len()).collect();
                let used: Vec<bool> = fresh.by_ref().take(w.uses.len()).collect();
                let _ = w.reply.send(Ok((mine, used)));
            }
        }
        Err(e) => {
            for w in group {
                let _ = w.reply.send(Err(e.clone()));
            }
        }
    }
}
