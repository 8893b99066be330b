//! One deliverer per receiver on every replica; the store's lease lets
//! exactly one of them push at a time. The holder reads the event log
//! after the receiver's cursor, a page at a time (the queue is the log:
//! bounded in memory by a page, on disk by `[events] retention_days`),
//! pushes each event's SETs in order, and moves the cursor past the event
//! once they are delivered (or refused, or given up). A replica that dies
//! mid-push leaves its lease to lapse; the next holder starts at the
//! cursor, so a SET may arrive twice (same `jti`) but never not at all
//! within the retention.

use super::caep;
use super::push::{Pushed, Pusher};
use crate::config::{Receiver, SharedSignals};
use crate::engine::{Engine, now_ms};
use crate::telemetry;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long a claim holds a receiver; renewed at every push and cursor move.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often a replica looks again with nothing new (and one that does not
/// hold the lease tries to take it).
const IDLE: Duration = Duration::from_secs(5);
/// Events read at a time.
const PAGE: usize = 64;
/// The first retry's backoff; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Delivers to `receiver` until the server stops (then gives the lease up);
/// a receiver new to the store starts after event `start`.
pub async fn run(engine: Weak<Engine>, signals: Arc<SharedSignals>, receiver: Arc<Receiver>, holder: String, start: i64) {
    telemetry::ssf_receiver(&receiver.name);
    let Some(e) = engine.upgrade() else { return };
    let (mut appended, mut stopping) = (e.event_signal(), e.stopping());
    drop(e);
    let mut pusher = Pusher::new(receiver.clone());
    let mut d = Deliverer { signals, receiver, holder, start, rng: ring::rand::SystemRandom::new() };
    loop {
        if *stopping.borrow() {
            break;
        }
        let Some(engine) = engine.upgrade() else { return };
        if let Err(e) = d.round(&engine, &mut pusher, &stopping).await {
            tracing::warn!(receiver = %d.receiver.name, error = %e, "shared signals: delivery paused; trying again");
        }
        drop(engine);
        tokio::select! {
            _ = appended.changed() => {}
            _ = stopping.changed() => {}
            () = tokio::time::sleep(IDLE) => {}
        }
    }
    if let Some(engine) = engine.upgrade() {
        let _ = engine.release_delivery(&d.receiver.name, &d.holder).await;
    }
    telemetry::ssf_state(&d.receiver.name, false, 0);
}

struct Deliverer {
    signals: Arc<SharedSignals>,
    receiver: Arc<Receiver>,
    holder: String,
    start: i64,
    rng: ring::rand::SystemRandom,
}

/// Whether to carry on with the next event.
enum Next {
    Carry,
    /// The lease went to another replica, or the server is stopping.
    Stop,
}

impl Deliverer {
    fn until(&self) -> (i64, i64) {
        let now = now_ms();
        (now, now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX))
    }

    /// Takes (or renews) the lease, and pushes everything after the cursor.
    async fn round(&mut self, engine: &Engine, pusher: &mut Pusher, stopping: &tokio::sync::watch::Receiver<bool>) -> Result<(), String> {
        let name = self.receiver.name.clone();
        let (oldest, newest) = engine.event_bounds().await.map_err(|e| e.to_string())?;
        let (now, until) = self.until();
        // A receiver seen for the first time starts where the server did
        // (or at the newest event if the log could not be read then).
        let start = self.start.min(newest);
        let Some(mut cursor) = engine.claim_delivery(&name, &self.holder, now, until, start).await.map_err(|e| e.to_string())? else {
            telemetry::ssf_state(&name, false, 0);
            return Ok(());
        };
        if let Some(oldest) = oldest
            && oldest > cursor + 1
        {
            // Pruned before they were sent (the receiver was down past the
            // retention): say so, and go on from what is left.
            let lost = u64::try_from(oldest - cursor - 1).unwrap_or(0);
            telemetry::ssf_delivery(&name, "skipped", lost);
            tracing::error!(receiver = %name, lost, "shared signals: events pruned from the log before they were delivered");
        }
        loop {
            telemetry::ssf_state(&name, true, newest - cursor);
            let page = engine.events_after(cursor, None, PAGE).await.map_err(|e| e.to_string())?;
            let Some(last) = page.last().map(|e| e.id) else { return Ok(()) };
            let mut moved = cursor;
            for event in &page {
                let sets = caep::sets(&self.signals.issuer, &self.receiver, event, now_ms().div_euclid(1000));
                let sent = !sets.is_empty();
                for set in sets {
                    if let Next::Stop = self.send(engine, pusher, moved, &set, stopping).await {
                        return Ok(());
                    }
                }
                // Past each event that sent something at once; past those
                // that sent nothing with the next move.
                if sent {
                    if let Next::Stop = self.advance(engine, event.id).await? {
                        return Ok(());
                    }
                    moved = event.id;
                }
            }
            if moved != last && matches!(self.advance(engine, last).await?, Next::Stop) {
                return Ok(());
            }
            cursor = last;
        }
    }

    /// Moves the cursor (renewing the lease).
    async fn advance(&self, engine: &Engine, cursor: i64) -> Result<Next, String> {
        let (_, until) = self.until();
        let held = engine.advance_delivery(&self.receiver.name, &self.holder, cursor, until).await.map_err(|e| e.to_string())?;
        Ok(if held { Next::Carry } else { Next::Stop })
    }

    /// Signs and pushes one SET until it is delivered, refused or given up.
    async fn send(
        &self,
        engine: &Engine,
        pusher: &mut Pusher,
        cursor: i64,
        set: &caep::Set,
        stopping: &tokio::sync::watch::Receiver<bool>,
    ) -> Next {
        let name = &self.receiver.name;
        let started = tokio::time::Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let outcome = match self.signals.signer.sign(&set.claims, &self.rng) {
                Ok(token) => pusher.push(&token).await,
                Err(e) => Pushed::Failed(e.to_string()),
            };
            let jti = set.claims["jti"].as_str().unwrap_or_default();
            match outcome {
                Pushed::Delivered => {
                    telemetry::ssf_delivery(name, "delivered", 1);
                    return Next::Carry;
                }
                Pushed::Rejected(err) => {
                    telemetry::ssf_delivery(name, "rejected", 1);
                    tracing::error!(receiver = %name, jti, event_type = set.event_type, err, "shared signals: the receiver refused a SET (400); not sending it again");
                    return Next::Carry;
                }
                Pushed::Failed(why) if started.elapsed() >= self.receiver.give_up_after => {
                    telemetry::ssf_delivery(name, "abandoned", 1);
                    tracing::error!(receiver = %name, jti, event_type = set.event_type, why, "shared signals: giving up a SET after give_up_after_seconds");
                    return Next::Carry;
                }
                Pushed::Failed(why) => {
                    telemetry::ssf_delivery(name, "retried", 1);
                    tracing::warn!(receiver = %name, jti, why, retry_in_ms = backoff.as_millis() as u64, "shared signals: push failed; retrying");
                }
            }
            let mut stopping = stopping.clone();
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stopping.changed() => return Next::Stop,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            // Still ours? (Renews the lease while the receiver is down.)
            if !matches!(self.advance(engine, cursor).await, Ok(Next::Carry)) {
                return Next::Stop;
            }
        }
    }
}
