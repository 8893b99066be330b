//! Wiring: store, cache, pool, engine, gRPC services (with health and
//! reflection), the metrics listener, and graceful shutdown.

use crate::config::{Backend, Config, CounterOutage, Reloadable};
use crate::engine::Engine;
use crate::engine::journal::Journal;
use crate::service::{CredentialSvc, VerificationSvc};
use crate::telemetry;
use crate::tls::TlsState;
use assertd_api::v1::credential_service_server::CredentialServiceServer;
use assertd_api::v1::verification_service_server::VerificationServiceServer;
use assertd_store::{Change, CredentialStore, KeyCache, PostgresConfig, PostgresStore, SqliteStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

mod metrics;
mod tasks;
use tasks::{flush_last_used, follow_changes, prune_challenges, refresh_adoption, reload_user_risks, watch_store};

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] assertd_store::StoreError),
    /// Anything else at start-up.
    #[error("{0}")]
    Startup(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Builds the CPU pool for verification.
fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, ServeError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("assertd-verify-{i}"))
        .panic_handler(|_| tracing::error!("a verification task panicked; its batch fails with INTERNAL"))
        .build()
        .map(Arc::new)
        .map_err(|e| ServeError::Startup(format!("cannot start the verification pool: {e}")))
}

/// Opens the configured credential store (running PostgreSQL migrations)
/// for the server: SQLite's directory is held (one server per directory).
pub async fn open_store(config: &Config) -> Result<Arc<dyn CredentialStore>, assertd_store::StoreError> {
    open(config, false).await
}

/// Opens the configured credential store for a command-line tool, which
/// may run beside the server on the same SQLite directory
/// ([`SqliteStore::open_shared`]).
pub async fn open_tool_store(config: &Config) -> Result<Arc<dyn CredentialStore>, assertd_store::StoreError> {
    open(config, true).await
}

async fn open(config: &Config, shared: bool) -> Result<Arc<dyn CredentialStore>, assertd_store::StoreError> {
    let timeout = Duration::from_millis(config.store.timeout_ms);
    Ok(match config.store.backend {
        Backend::Sqlite if shared => Arc::new(SqliteStore::open_shared(&config.data_dir, timeout)?),
        Backend::Sqlite => Arc::new(SqliteStore::open_with_timeout(&config.data_dir, timeout)?),
        Backend::Postgres => {
            let url = config.database_url().ok_or_else(|| assertd_store::StoreError::Unavailable("no database URL".into()))?;
            let tls = config.store.postgres_tls().map_err(assertd_store::StoreError::Config)?;
            let migrate = config.store.migrate;
            Arc::new(PostgresStore::connect(&PostgresConfig { url, tls, pool_size: config.store.pool_size, timeout, migrate }).await?)
        }
    })
}

/// Builds the engine (store, cache, pool) for a config, and starts what
/// keeps the cache honest: the store's change feed, if it has one.
pub async fn engine(config: &Config) -> Result<Arc<Engine>, ServeError> {
    let policy = config.compile().map_err(|e| ServeError::Startup(e.to_string()))?;
    engine_with(config, policy).await
}

/// [`engine`] with the config already compiled.
pub async fn engine_with(config: &Config, policy: Reloadable) -> Result<Arc<Engine>, ServeError> {
    let store = open_store(config).await?;
    // The metadata serial in force survives restarts and is shared by the
    // replicas: an older BLOB would lift revocations reported since.
    if let Some(m) = &policy.metadata {
        let number = m.metadata.number;
        let in_force = store
            .raise_metadata_serial(number, crate::engine::now_ms())
            .await
            .map_err(|e| ServeError::Startup(format!("reading the metadata serial in force: {e}")))?;
        if in_force > number {
            telemetry::metadata_refused();
            return Err(ServeError::Startup(format!(
                "metadata file {} has serial (no) {number}, older than the one in force ({in_force}, kept in the store): an older BLOB \
                 would lift the revocations reported since. Install a BLOB with no >= {in_force}, or roll back on purpose with \
                 `assertd metadata accept --config FILE`",
                m.path.display()
            )));
        }
    }
    let changes = store.changes();
    let cache = KeyCache::new(store, config.cache.into());
    let last_used = Duration::from_secs(config.store.last_used_interval_seconds);
    let journal = (config.store.counter_outage == CounterOutage::Defer)
        .then(|| Journal::new(usize::try_from(config.cache.max_entries).unwrap_or(usize::MAX), config.store.max_deferred_counters));
    let engine =
        Arc::new(Engine::new(policy, cache, pool(config.pool.threads)?, config.limits, journal).with_last_used_interval(last_used));
    if let Some(m) = engine.reloadable().metadata.clone() {
        engine.report_blocked_models(&m.metadata).await;
    }
    tokio::spawn(flush_last_used(Arc::downgrade(&engine), last_used));
    tokio::spawn(prune_challenges(Arc::downgrade(&engine)));
    if config.adoption.gauges_interval_seconds > 0 {
        tokio::spawn(refresh_adoption(Arc::downgrade(&engine), Duration::from_secs(config.adoption.gauges_interval_seconds)));
    }
    if let Err(e) = engine.reload_user_risks().await {
        tracing::warn!(error = %e, "cannot read the users flagged at risk yet: not ready, sign-ins retryable; retrying every second");
    }
    tokio::spawn(reload_user_risks(Arc::downgrade(&engine)));
    if let Some(changes) = changes {
        tokio::spawn(follow_changes(changes, Arc::downgrade(&engine)));
    }
    Ok(engine)
}

/// Health service name that reports readiness (also reported as "").
pub const READINESS_SERVICE: &str = "readiness";
/// Health service name that reports liveness: SERVING while the process
/// runs, whatever the store does (a restart would not fix the store).
pub const LIVENESS_SERVICE: &str = "liveness";

/// Reloads the policy (relying parties and profiles) from `path`: a valid
/// file swaps in atomically; an invalid one is logged and counted, and the
/// running policy stays. Returns whether the new policy is active.
pub async fn reload(engine: &Engine, path: &Path, running: &Config) -> bool {
    match Config::load_compiled(path) {
        Err(e) => {
            telemetry::config_reload(false);
            tracing::error!(error = %e, "config reload rejected; the running policy stays active");
            false
        }
        Ok((new, policy)) => {
            for w in new.warnings() {
                tracing::warn!("{w}");
            }
            if new.restart_differs(running) {
                tracing::warn!("config reload: listeners, data_dir, cache, limits, pool and store settings change only on restart");
            }
            let mut policy = policy;
            // An older BLOB (a lower `no`) would lift revocations and
            // compromises reported since: the metadata in force stays. In
            // force: this replica's, and the store's (every replica's, and
            // across restarts; `assertd metadata accept` lowers it).
            let old_md = engine.reloadable().metadata.clone();
            if let Some(new_md) = policy.metadata.clone() {
                let number = new_md.metadata.number;
                let store = engine.raise_metadata_serial(number).await;
                // The store's serial decides (a deliberate rollback lowered
                // it); when it cannot be read, this replica's does.
                let in_force = match (&store, &old_md) {
                    (Ok(n), _) => *n,
                    (Err(e), old) => {
                        tracing::warn!(error = %e, "reading the metadata serial in force failed; this replica's decides");
                        old.as_ref().map_or(number, |o| o.metadata.number)
                    }
                };
                if number < in_force {
                    telemetry::metadata_refused();
                    tracing::error!(
                        loaded = number,
                        in_force,
                        "metadata file refused: its serial (no) is below the one in force; the metadata in force stays"
                    );
                    policy.metadata = old_md.clone();
                }
            }
            let (rps, profiles) = (policy.rps.len(), policy.profiles.len());
            let loaded = policy.metadata.clone().filter(|new| !old_md.as_ref().is_some_and(|old| Arc::ptr_eq(old, new)));
            engine.set_reloadable(policy);
            if let Some(m) = loaded {
                engine.report_blocked_models(&m.metadata).await;
            }
            telemetry::config_reload(true);
            tracing::info!(relying_parties = rps, profiles, "config reloaded");
            true
        }
    }
}

/// Reloads on SIGHUP and, every `interval` (if not zero), when the file's
/// content changed. SIGHUP also reloads the TLS material.
async fn watch_config(engine: Arc<Engine>, path: PathBuf, running: Config, interval: Duration, tls: Option<Arc<TlsState>>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut last = std::fs::read(&path).ok();
    // The metadata file is watched by size and time (it is megabytes).
    let metadata_stamp = |engine: &Engine| engine.reloadable().metadata.as_ref().and_then(|m| crate::config::metadata_stamp(&m.path));
    let mut last_metadata = metadata_stamp(&engine);
    loop {
        let forced = tokio::select! {
            () = async {
                #[cfg(unix)]
                if let Some(h) = hup.as_mut() {
                    h.recv().await;
                    return;
                }
                std::future::pending::<()>().await
            } => true,
            () = async {
                if interval.is_zero() { std::future::pending::<()>().await } else { tokio::time::sleep(interval).await }
            } => false,
        };
        if forced && let Some(tls) = &tls {
            let tls = tls.clone();
            let _ = tokio::task::spawn_blocking(move || tls.reload(true)).await;
        }
        let now = std::fs::read(&path).ok();
        let now_metadata = metadata_stamp(&engine);
        if !forced && now == last && now_metadata == last_metadata {
            continue;
        }
        last = now;
        reload(&engine, &path, &running).await;
        last_metadata = metadata_stamp(&engine);
    }
}

/// Runs the service until `shutdown` resolves, then drains. With
/// `config_path`, the policy reloads on SIGHUP and on file change.
pub async fn serve(
    config: Config,
    policy: Reloadable,
    config_path: Option<PathBuf>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = telemetry::install().map_err(ServeError::Startup)?;
    crate::trace::install(&config.tracing);
    let engine = engine_with(&config, policy).await?;

    let tls = match &config.tls {
        Some(t) => Some(Arc::new(TlsState::load(t).map_err(|e| ServeError::Startup(format!("tls: {e}")))?)),
        None => None,
    };
    if let Some(t) = &tls {
        tokio::spawn(t.clone().watch());
    }
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let grpc = TcpListener::bind(config.listen).await.map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    let metrics_listener =
        TcpListener::bind(config.metrics_listen).await.map_err(|source| ServeError::Bind { addr: config.metrics_listen, source })?;
    let grpc_addr = grpc.local_addr().map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    let metrics_addr = metrics_listener.local_addr().map_err(|source| ServeError::Bind { addr: config.metrics_listen, source })?;
    // [shared_signals] as it was at start (a reload that changes it asks
    // for a restart): the key the deliverers sign with is the one published.
    let signals = engine.reloadable().signals.clone();
    tokio::spawn(metrics::serve_metrics(metrics_listener, metrics, engine.clone(), signals.clone()));
    let deliverers = match &signals {
        Some(signals) => crate::signals::start(&engine, signals).await,
        None => Vec::new(),
    };
    if let Some(path) = config_path {
        let interval = Duration::from_secs(config.config_watch_interval_seconds);
        // Compare reloads with the file as it was, not with flag overrides.
        let baseline = Config::load(&path).unwrap_or_else(|_| config.clone());
        tokio::spawn(watch_config(engine.clone(), path, baseline, interval, tls.clone()));
    }

    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<VerificationServiceServer<VerificationSvc>>().await;
    health.set_serving::<CredentialServiceServer<CredentialSvc>>().await;
    let ready = if engine.user_risks_loaded() { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
    health.set_service_status(READINESS_SERVICE, ready).await;
    if !engine.user_risks_loaded() {
        health.set_service_status("", ready).await;
        health.set_service_status("assertd.v1.VerificationService", ready).await;
    }
    health.set_service_status(LIVENESS_SERVICE, tonic_health::ServingStatus::Serving).await;
    // The store answered at open: the gauge exists from the start (its
    // watcher updates it every second).
    telemetry::store_up(true);
    let grace = config.store.readiness_follows_store.then(|| Duration::from_secs(config.store.readiness_grace_seconds));
    tokio::spawn(watch_store(engine.clone(), health.clone(), grace));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(assertd_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Startup(format!("reflection: {e}")))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(assertd_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Startup(format!("reflection: {e}")))?;

    // Every service behind one stack (request id, metrics, deadline,
    // shedding, authentication: see `stack`). Reflection is for people with
    // grpcurl: any authenticated caller.
    let max = config.limits.max_message_bytes;
    let verification =
        VerificationServiceServer::new(VerificationSvc::new(engine.clone())).max_decoding_message_size(max).max_encoding_message_size(max);
    let credentials =
        CredentialServiceServer::new(CredentialSvc::new(engine.clone())).max_decoding_message_size(max).max_encoding_message_size(max);

    // Probes that cannot present client certificates get their own
    // plaintext listener, serving nothing but grpc.health.v1.
    let (health_stop_tx, health_stop) = tokio::sync::watch::channel(false);
    let health_addr = match config.health_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
            let bound = l.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
            let mut stop = health_stop.clone();
            // Bounded like the metrics listener: a probe is one short call.
            let cap = crate::tls::Cap { name: "health", slots: Arc::new(tokio::sync::Semaphore::new(config.limits.max_probe_connections)) };
            let only_health = tonic::transport::Server::builder()
                .max_connection_age(Duration::from_secs(config.limits.probe_connection_seconds))
                .max_connection_age_grace(Duration::from_secs(1))
                .http2_max_header_list_size(16 * 1024)
                .timeout(metrics::PROBE_HEADER_TIMEOUT)
                .add_service(health_svc.clone());
            tokio::spawn(only_health.serve_with_incoming_shutdown(crate::tls::incoming(l, None, Some(cap)), async move {
                let _ = stop.wait_for(|s| *s).await;
            }));
            Some(bound)
        }
        None => None,
    };

    // The one line tests and scripts read: where we listen.
    let scheme = match &tls {
        None => "plaintext",
        Some(t) if t.mutual() => "mtls",
        Some(_) => "tls",
    };
    let health_note = health_addr.map(|a| format!(" health={a}")).unwrap_or_default();
    println!("assertd listening grpc={grpc_addr} metrics={metrics_addr}{health_note} transport={scheme}");
    tracing::info!(
        %grpc_addr, %metrics_addr, transport = scheme, data_dir = %config.data_dir.display(),
        relying_parties = config.relying_parties.len(), clients = config.clients.len(),
        signatures = assertd_verify::cose::SIGNATURE_BACKEND, "assertd started"
    );

    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let health_for_shutdown = health.clone();
    let engine_for_shutdown = engine.clone();
    let signal = async move {
        shutdown.await;
        engine_for_shutdown.stop_watchers();
        tracing::info!(grace_seconds = grace.as_secs(), "shutting down: refusing new connections, draining in-flight requests");
        health_for_shutdown.set_not_serving::<VerificationServiceServer<VerificationSvc>>().await;
        health_for_shutdown.set_not_serving::<CredentialServiceServer<CredentialSvc>>().await;
        health_for_shutdown.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        health_for_shutdown.set_service_status(READINESS_SERVICE, tonic_health::ServingStatus::NotServing).await;
        let _ = drain_tx.send(());
        let _ = health_stop_tx.send(true);
    };
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(config.limits.max_concurrent_streams);
    if config.limits.max_connection_age_seconds > 0 {
        // Clients reconnect (and rebalance) after GOAWAY; in-flight calls
        // get the drain grace to finish.
        builder = builder.max_connection_age(Duration::from_secs(config.limits.max_connection_age_seconds)).max_connection_age_grace(grace);
    }
    let server = builder
        .layer(crate::stack::layer(engine.clone()))
        .add_service(health_svc)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(verification)
        .add_service(credentials)
        .serve_with_incoming_shutdown(crate::tls::incoming(grpc, tls, None), signal);
    tokio::pin!(server);
    // Drain for at most `grace` after the signal.
    tokio::select! {
        r = &mut server => r?,
        () = async { let _ = drain_rx.await; tokio::time::sleep(grace).await } => {
            tracing::warn!("drain grace period over; exiting with requests still in flight");
        }
    }
    // Shared Signals deliverers give their leases up, so another replica
    // takes over at once rather than when the lease lapses.
    let _ = tokio::time::timeout(Duration::from_secs(2), futures_util::future::join_all(deliverers)).await;
    // The spans of the last calls (at most one export interval's worth).
    crate::trace::flush(Duration::from_secs(2)).await;
    tracing::info!("assertd stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
