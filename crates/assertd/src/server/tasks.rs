//! The server's background tasks: the store's change feed, the periodic
//! reloads, pruning and flushing, and the readiness watch.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Applies what other writers changed: drops their credentials from the
/// cache, reads their users' risk flags again.
pub(super) async fn follow_changes(mut changes: tokio::sync::broadcast::Receiver<Change>, engine: std::sync::Weak<Engine>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let change = changes.recv().await;
        let Some(engine) = engine.upgrade() else { return };
        let cache = engine.cache();
        match change {
            Ok(Change::Credential { rp_id, credential_id }) => cache.invalidate(&rp_id, &credential_id).await,
            Ok(Change::Counted { rp_id, credential_id }) => cache.mark_counted(&rp_id, &credential_id).await,
            Ok(Change::UserRisk { rp_id, user_handle }) => engine.refresh_user_risk(&rp_id, &user_handle).await,
            Ok(Change::Events) => engine.events_appended(),
            Ok(Change::All) | Err(RecvError::Lagged(_)) => {
                cache.invalidate_all();
                engine.events_appended();
                if let Err(e) = engine.reload_user_risks().await {
                    tracing::warn!(error = %e, "reading the users flagged at risk failed; retrying within 30 s");
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Reads every user's risk flag again, every `flags::RELOAD_EVERY`.
pub(super) async fn reload_user_risks(engine: std::sync::Weak<Engine>) {
    loop {
        tokio::time::sleep(crate::engine::flags::RELOAD_EVERY).await;
        let Some(engine) = engine.upgrade() else { return };
        if let Err(e) = engine.reload_user_risks().await {
            tracing::warn!(error = %e, "reading the users flagged at risk failed");
        }
    }
}

/// Forgets the recorded uses of expired challenges and the temporary
/// access passes past their retention, once a minute.
pub(super) async fn prune_challenges(engine: std::sync::Weak<Engine>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(engine) = engine.upgrade() else { return };
        engine.prune_challenges().await;
    }
}

/// Writes `last_used_at` in batches, at most once per credential per interval.
pub(super) async fn flush_last_used(engine: std::sync::Weak<Engine>, interval: Duration) {
    let tick = interval.min(Duration::from_secs(5));
    loop {
        tokio::time::sleep(tick).await;
        let Some(engine) = engine.upgrade() else { return };
        engine.flush_last_used().await;
    }
}

/// Watches the store (`assertd_store_up`, deferred counts flushed when it
/// answers again) and readiness: NOT_SERVING from the start until the
/// users flagged at risk have been read once (fail closed: a replica that
/// cannot know a user's flag takes no traffic), then SERVING through store
/// outages; with `grace` (`readiness_follows_store`), NOT_SERVING once the
/// store has been unreachable that long, and SERVING again when it answers.
pub(super) async fn watch_store(engine: Arc<Engine>, health: tonic_health::server::HealthReporter, grace: Option<Duration>) {
    let mut down_since: Option<std::time::Instant> = None;
    let mut serving = engine.user_risks_loaded();
    loop {
        let ok = engine.store_answers().await;
        telemetry::store_up(ok);
        engine.set_store_up(ok);
        if ok {
            engine.flush_deferred().await;
            if !engine.user_risks_loaded() {
                match engine.reload_user_risks().await {
                    Ok(()) => tracing::info!("the users flagged at risk are loaded"),
                    Err(e) => tracing::warn!(error = %e, "reading the users flagged at risk failed: not ready"),
                }
            }
        }
        match (ok, down_since) {
            (true, _) => down_since = None,
            (false, None) => {
                tracing::warn!("credential store unreachable");
                down_since = Some(std::time::Instant::now());
            }
            (false, Some(_)) => {}
        }
        // Ready once the users flagged at risk are loaded (before, a flagged
        // user could be allowed); then through store outages, unless
        // readiness follows the store.
        let store_ok = match grace {
            Some(grace) => down_since.is_none_or(|t| t.elapsed() < grace),
            None => true,
        };
        let want = store_ok && engine.user_risks_loaded();
        if want != serving {
            serving = want;
            let status = if want { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
            if want {
                tracing::info!("credential store reachable and user risk flags loaded: ready");
            } else {
                if engine.user_risks_loaded() {
                    tracing::warn!(
                        grace_seconds = grace.map(|g| g.as_secs()),
                        "credential store unreachable past the grace period: not ready"
                    );
                } else {
                    tracing::warn!("the users flagged at risk are not loaded: not ready");
                }
            }
            health.set_service_status("", status).await;
            health.set_service_status(READINESS_SERVICE, status).await;
            health.set_service_status("assertd.v1.VerificationService", status).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Refreshes the adoption gauges every `interval` (the first right away):
/// per relying party, credentials by kind and attestation and users by
/// their strongest credential, as the store counts them. A failure is
/// logged; the gauges keep their last values.
pub(super) async fn refresh_adoption(engine: std::sync::Weak<Engine>, interval: Duration) {
    use assertd_store::StatsGroup;
    const COMBOS: [(&str, &str, &str); 4] = [
        ("device_bound/attested", "device_bound", "true"),
        ("device_bound/unattested", "device_bound", "false"),
        ("synced/attested", "synced", "true"),
        ("synced/unattested", "synced", "false"),
    ];
    const CLASSES: [&str; 3] = ["device_bound_attested", "device_bound", "synced"];
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(engine) = engine.upgrade() else { return };
        let mut rps: Vec<String> = engine.reloadable().rps.keys().cloned().collect();
        rps.sort();
        let since = crate::engine::now_ms().saturating_sub(30 * 86_400_000);
        for rp in rps {
            let counted = async {
                let kinds = engine.credential_stats(&rp, StatsGroup::KindAttested, since).await?;
                let users = engine.credential_stats(&rp, StatsGroup::StrongestPerUser, since).await?;
                Ok::<_, assertd_store::StoreError>((kinds, users))
            };
            match counted.await {
                Ok((kinds, users)) => {
                    let n = |rows: &[assertd_store::StatsRow], key: &str| rows.iter().find(|r| r.key == key).map_or(0, |r| r.credentials);
                    let credentials: Vec<_> = COMBOS.iter().map(|(key, kind, attested)| ((*kind, *attested), n(&kinds, key))).collect();
                    let classes: Vec<_> = CLASSES.iter().map(|c| (*c, n(&users, c))).collect();
                    telemetry::adoption(&rp, &credentials, &classes);
                }
                Err(e) => {
                    telemetry::store_error("credential_stats");
                    tracing::warn!(rp_id = %rp, error = %e, "refreshing the adoption gauges failed");
                }
            }
        }
    }
}
