//! The PostgreSQL store, for several replicas sharing one source of truth.
//!
//! * Migrations run at start, versioned, under an advisory lock, so replicas
//!   starting together apply each exactly once.
//! * Sign counts: one statement per batch locks the batch's rows, advances
//!   each counter only when the batch holds a higher count, and returns the
//!   counts it found; the per-item outcomes follow from those (see
//!   `counters`). Two replicas racing on one credential serialize on its row
//!   lock, so a replayed count is accepted at most once. Batches that finish
//!   while this replica's counter statement is in flight share the next one
//!   (`group`). The batch's challenge uses go in the same statement: the
//!   counts and the uses commit together or not at all.
//! * Every statement that writes several credential rows locks them in key
//!   order first ([`LOCKED_IN_KEY_ORDER`]), so such statements wait for each
//!   other instead of deadlocking.
//! * A trigger NOTIFYs `assertd_credentials` when a credential is created,
//!   deleted, revoked or otherwise changed (not when only its counter moves);
//!   every replica LISTENs and drops its cache entries, and after a lost
//!   connection re-subscribes and drops everything it may have missed.
//! * Every call is bounded: `statement_timeout` on the server, and the same
//!   bound (plus a margin) on the client for a server that does not answer.

use crate::counters;
use crate::record::StoredCredential;
use crate::row;
use crate::types::{ChallengeUse, Change, CounterUpdate, StoreError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use foldhash::HashMap;
use std::time::Duration;
use tokio::sync::broadcast;

mod events;
mod group;
mod listen;
mod passes;
mod queries;
mod risk;
mod schema;
mod stats;
mod tls;

pub use tls::{PostgresTls, Resolved as ResolvedTls, RootCert, SslMode, resolve as resolve_tls};

use listen::listen;
use schema::{MIGRATION_LOCK, MIGRATIONS, READABLE_FROM};

/// The NOTIFY channel.
pub const CHANNEL: &str = "assertd_credentials";

/// The rows of the keys `$1` (rp ids) and `$2` (credential ids), locked in
/// key order. Every statement that writes several credential rows locks
/// them this way first (the counter statement does too), so two such
/// statements over the same rows wait for each other instead of
/// deadlocking.
const LOCKED_IN_KEY_ORDER: &str = "(SELECT l.rp_id, l.credential_id FROM credentials l
        JOIN unnest($1::text[], $2::bytea[]) AS k(rp_id, credential_id) USING (rp_id, credential_id)
        ORDER BY l.rp_id, l.credential_id FOR UPDATE OF l)";

/// Connection settings.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://user:pass@host:port/db` or key=value form.
    pub url: String,
    /// TLS (merged with the URL's `sslmode`, `sslrootcert`, ... parameters).
    pub tls: PostgresTls,
    /// Most pooled connections.
    pub pool_size: usize,
    /// Bound on every call (server-side `statement_timeout`, and client-side
    /// with a margin); also the wait for a pooled connection.
    pub timeout: Duration,
    /// Run pending migrations at connect (true), or refuse a schema older
    /// than this binary, naming `assertd migrate` (false: no DDL rights
    /// needed).
    pub migrate: bool,
}

/// The PostgreSQL credential store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    timeout: Duration,
    changes: broadcast::Sender<Change>,
    /// Whether the change feed's LISTEN connection is up.
    feed_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Counter calls grouped into one statement (see `group`).
    counter_groups: std::sync::Arc<group::Groups>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("status", &self.pool.status()).finish_non_exhaustive()
    }
}

/// A TLS failure at start, with what to check.
fn explain_tls(e: StoreError, tls: &ResolvedTls) -> StoreError {
    let StoreError::Unreachable(m) = &e else { return e };
    if !m.contains("TLS handshake") && !m.contains("certificate") {
        return e;
    }
    let roots = match &tls.roots {
        Some(RootCert::File(p)) => format!("store.ssl_root_cert ({})", p.display()),
        Some(RootCert::System) => "the system's roots (set store.ssl_root_cert to the CA file)".to_owned(),
        None => "nothing (the server is not checked)".to_owned(),
    };
    StoreError::Unreachable(format!(
        "{m}. TLS to PostgreSQL failed with sslmode {}: the server's certificate must chain to {roots}{}",
        tls.mode.as_str(),
        if tls.mode == SslMode::VerifyFull { " and name the host in the URL" } else { "" }
    ))
}

/// A row that does not decode: the schema is not what this binary expects.
fn corrupt(e: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A failure, sorted: [`StoreError::Unreachable`] when PostgreSQL could not
/// be reached or dropped the connection (the outage journal may answer for
/// counters), [`StoreError::Unavailable`] when it answered with an error
/// (lock or statement timeout, serialization failure, ...: the journal may
/// not, the item is denied as retryable).
fn failed(e: impl Failure) -> StoreError {
    let text = explain(&e);
    if e.unreachable() { StoreError::Unreachable(text) } else { StoreError::Unavailable(text) }
}

/// An error and its causes, on one line: tokio-postgres and deadpool keep
/// the useful part (the server's message, "invalid peer certificate:
/// UnknownIssuer") in the source chain.
fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = match c.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
            None => c.to_string(),
        };
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    text
}

/// An error that can say whether it is a connectivity failure.
trait Failure: std::error::Error + 'static {
    fn unreachable(&self) -> bool;
}

impl Failure for tokio_postgres::Error {
    fn unreachable(&self) -> bool {
        if let Some(db) = self.as_db_error() {
            // The server answered. Only codes that mean "this connection or
            // server is going away / cannot take connections" count as
            // connectivity: class 08 (connection exception), 57P01-57P03
            // (shutdown, crash, cannot connect now), 53300 (too many
            // connections). Everything else is an answer.
            let code = db.code().code();
            return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
        }
        if self.is_closed() {
            return true;
        }
        // Connect, TLS, I/O and read timeouts carry an I/O source or say so;
        // tokio-postgres keeps its error kinds private, so what is not
        // recognised here is treated as an answer (fail closed).
        let io = std::error::Error::source(self).is_some_and(|s| s.is::<std::io::Error>());
        let text = self.to_string();
        io || ["error connecting", "error performing TLS handshake", "error communicating", "timeout waiting"]
            .iter()
            .any(|p| text.starts_with(p))
    }
}

impl Failure for deadpool_postgres::PoolError {
    fn unreachable(&self) -> bool {
        use deadpool_postgres::{PoolError, TimeoutType};
        match self {
            PoolError::Backend(e) => e.unreachable(),
            // A connection could not be made or checked in time.
            PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => true,
            // Every connection is busy: load, not an outage.
            _ => false,
        }
    }
}

/// The values of `r`'s columns ([`row::COLUMNS`]), bound in order.
fn bind<'a>(values: &'a [row::Value<'a>]) -> Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)).collect()
}

impl PostgresStore {
    /// Connects, runs pending migrations, and starts the change listener.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, StoreError> {
        let (mut pg, resolved) = tls::resolve(&config.url, &config.tls)?;
        let connector = tls::connector(&resolved)?;
        if resolved.remote && !resolved.verifies() {
            tracing::warn!(
                sslmode = resolved.mode.as_str(),
                "PostgreSQL is beyond loopback and its server is not checked (insecure_allow_unverified_postgres = true)"
            );
        }
        pg.connect_timeout(config.timeout);
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(10));
        pg.options(format!("-c statement_timeout={} -c lock_timeout={}", config.timeout.as_millis(), config.timeout.as_millis()));
        pg.application_name("assertd");
        let manager = Manager::from_config(pg.clone(), connector.clone(), ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .recycle_timeout(Some(config.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (changes, _) = broadcast::channel(4096);
        let store = Self { pool, timeout: config.timeout, changes, feed_up: Default::default(), counter_groups: Default::default() };
        store.migrate(config.migrate).await.map_err(|e| explain_tls(e, &resolved))?;
        // Wait (bounded) for the change feed to be subscribed, so nothing is
        // cached before it listens and its first "drop everything" cannot
        // throw away entries cached afterwards.
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        tokio::spawn(listen(pg, connector, store.changes.clone(), store.feed_up.clone(), subscribed_tx));
        if tokio::time::timeout(config.timeout, subscribed).await.is_err() {
            tracing::warn!("change feed not subscribed yet; continuing (caches are dropped when it is)");
        }
        Ok(store)
    }

    /// One counter statement for `updates` and `uses` (a group of calls,
    /// see `group`): one statement, so one transaction.
    async fn settle_once(&self, updates: &[CounterUpdate], uses: &[ChallengeUse], now_ms: i64) -> group::Answer {
        let distinct = counters::distinct_max(updates);
        let rps: Vec<&str> = distinct.iter().map(|d| d.key.0).collect();
        let ids: Vec<&[u8]> = distinct.iter().map(|d| d.key.1).collect();
        let maxes: Vec<i64> = distinct.iter().map(|d| i64::from(d.max)).collect();
        let use_ids: Vec<&[u8]> = uses.iter().map(|u| &u.id[..]).collect();
        let keep: Vec<i64> = uses.iter().map(|u| u.keep_until_ms).collect();
        // One statement: lock the batch's rows in key order (no deadlock
        // between replicas), raise each count to the batch's highest when
        // that is higher, record the challenge uses (a use that conflicts
        // with an earlier one, or an earlier row of this statement, is not
        // inserted and not returned), and return what was stored before.
        const SQL: &str = "
            WITH input AS (
                SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[]) AS i(rp_id, credential_id, max_received)
            ), locked AS (
                SELECT c.rp_id, c.credential_id, c.sign_count AS before, c.revoked
                FROM credentials c JOIN input i USING (rp_id, credential_id)
                ORDER BY c.rp_id, c.credential_id
                FOR UPDATE OF c
            ), advanced AS (
                UPDATE credentials c SET sign_count = i.max_received, last_used_at_ms = $4
                FROM locked l JOIN input i USING (rp_id, credential_id)
                WHERE c.rp_id = l.rp_id AND c.credential_id = l.credential_id
                  AND NOT l.revoked AND i.max_received > l.before AND c.sign_count = l.before
                RETURNING c.rp_id
            ), used AS (
                INSERT INTO consumed_challenges (id, keep_until_ms)
                SELECT * FROM unnest($5::bytea[], $6::int8[])
                ON CONFLICT (id) DO NOTHING RETURNING id
            )
            SELECT rp_id, credential_id, before, revoked, NULL::bytea FROM locked
            UNION ALL SELECT NULL, NULL, NULL, NULL, id FROM used";
        let rows = self
            .with(async |c| {
                let s = c.prepare_cached(SQL).await.map_err(failed)?;
                c.query(&s, &[&rps, &ids, &maxes, &now_ms, &use_ids, &keep]).await.map_err(failed)
            })
            .await?;
        let mut state: HashMap<counters::Key<'_>, counters::RowState> = distinct.iter().map(|d| (d.key, None)).collect();
        // A group holds up to `group::MAX_UPDATES` credentials: no linear
        // search per row.
        let index: HashMap<counters::Key<'_>, usize> = distinct.iter().enumerate().map(|(i, d)| (d.key, i)).collect();
        let mut fresh: foldhash::HashSet<Vec<u8>> = foldhash::HashSet::default();
        for r in &rows {
            if let Some(used) = r.try_get::<_, Option<Vec<u8>>>(4).map_err(corrupt)? {
                fresh.insert(used);
                continue;
            }
            let rp: &str = r.try_get(0).map_err(corrupt)?;
            let id: &[u8] = r.try_get(1).map_err(corrupt)?;
            let before: i64 = r.try_get(2).map_err(corrupt)?;
            let before = u32::try_from(before).map_err(|_| StoreError::Corrupt(format!("sign_count {before} out of range")))?;
            let revoked: bool = r.try_get(3).map_err(corrupt)?;
            if let Some(&i) = index.get(&(rp, id)) {
                state.insert(distinct[i].key, Some((before, revoked)));
            }
        }
        let plan = counters::plan(updates, &state);
        // The first use of an id in the statement is the fresh one.
        Ok((plan.results, uses.iter().map(|u| fresh.remove(&u.id[..])).collect()))
    }

    /// Runs `sql` (an INSERT of [`COLUMNS`] returning them) for each record
    /// in one transaction, rows written in key order; what each returned,
    /// in the caller's order.
    async fn write_many(&self, sql: &str, records: &[StoredCredential]) -> Result<Vec<Option<StoredCredential>>, StoreError> {
        // A big import gets a longer bound: it is one transaction.
        let bound = self.timeout * u32::try_from(records.len() / 100 + 1).unwrap_or(u32::MAX);
        tokio::time::timeout(bound + Duration::from_millis(500), async {
            let mut client = self.pool.get().await.map_err(failed)?;
            let tx = client.transaction().await.map_err(failed)?;
            let s = tx.prepare_cached(sql).await.map_err(failed)?;
            // Rows written in key order, as every multi-row write does (see
            // `LOCKED_IN_KEY_ORDER`); answered in the caller's order.
            let mut order: Vec<usize> = (0..records.len()).collect();
            order.sort_by(|&a, &b| (&records[a].rp_id, &records[a].credential_id).cmp(&(&records[b].rp_id, &records[b].credential_id)));
            let mut out: Vec<Option<StoredCredential>> = vec![None; records.len()];
            for i in order {
                let r = &records[i];
                let values = row::values(r);
                out[i] = tx.query_opt(&s, &bind(&values)).await.map_err(failed)?.as_ref().map(row::credential).transpose()?;
            }
            tx.commit().await.map_err(failed)?;
            Ok(out)
        })
        .await
        .map_err(|_| StoreError::Unreachable("PostgreSQL did not finish the write in time".into()))?
    }

    /// Runs `f` with a pooled client, bounded by the timeout.
    async fn with<T>(&self, f: impl AsyncFnOnce(&deadpool_postgres::Client) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let bound = self.timeout + Duration::from_millis(500);
        tokio::time::timeout(bound, async {
            let client = self.pool.get().await.map_err(failed)?;
            f(&client).await
        })
        .await
        .map_err(|_| StoreError::Unreachable(format!("no answer from PostgreSQL within {bound:?}")))?
    }

    /// Runs `f` in a transaction on a pooled client, bounded by the
    /// timeout: committed when `f` answers Ok, rolled back otherwise.
    async fn in_transaction<T>(
        &self,
        f: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let bound = self.timeout + Duration::from_millis(500);
        tokio::time::timeout(bound, async {
            let mut client = self.pool.get().await.map_err(failed)?;
            let tx = client.transaction().await.map_err(failed)?;
            let out = f(&tx).await?;
            tx.commit().await.map_err(failed)?;
            Ok(out)
        })
        .await
        .map_err(|_| StoreError::Unreachable(format!("no answer from PostgreSQL within {bound:?}")))?
    }

    async fn migrate(&self, apply: bool) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(failed)?;
        if !apply {
            // Read only: the serving role may hold no DDL rights at all.
            let version = client.query_one("SELECT coalesce(max(version), 0) FROM assertd_schema_migrations", &[]).await;
            let done = match version {
                Ok(row) => usize::try_from(row.get::<_, i32>(0)).unwrap_or(0),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
                Err(e) => return Err(failed(e)),
            };
            return match done.cmp(&MIGRATIONS.len()) {
                std::cmp::Ordering::Equal => Ok(()),
                std::cmp::Ordering::Greater => {
                    crate::types::may_run_on_newer(done, MIGRATIONS.len(), compat_floor::<tokio_postgres::Client>(&client).await)
                }
                std::cmp::Ordering::Less => Err(StoreError::Config(format!(
                    "database schema version {done} is older than this assertd ({}) and store.migrate is false: run `assertd migrate` first",
                    MIGRATIONS.len()
                ))),
            };
        }
        let tx = client.transaction().await.map_err(failed)?;
        // Replicas starting together queue here; each migration runs once.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(failed)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS assertd_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(failed)?;
        let row = tx.query_one("SELECT coalesce(max(version), 0) FROM assertd_schema_migrations", &[]).await.map_err(failed)?;
        let done: i32 = row.get(0);
        let done = usize::try_from(done).unwrap_or(0);
        if done > MIGRATIONS.len() {
            // A later release's schema: run on it when that release keeps it
            // readable by this one (a rollback), else refuse.
            return crate::types::may_run_on_newer(done, MIGRATIONS.len(), compat_floor::<tokio_postgres::Transaction<'_>>(&tx).await);
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(done) {
            tx.batch_execute(m).await.map_err(|e| StoreError::Unavailable(format!("migration {}: {}", i + 1, failed(e))))?;
            let v = i32::try_from(i + 1).unwrap_or(i32::MAX);
            tx.execute("INSERT INTO assertd_schema_migrations (version) VALUES ($1)", &[&v]).await.map_err(failed)?;
        }
        let floor = i32::try_from(READABLE_FROM).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO schema_compat (id, readable_from) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET readable_from = excluded.readable_from",
            &[&floor],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)
    }
}

/// `schema_compat.readable_from`, when the table and its row exist.
async fn compat_floor<C: tokio_postgres::GenericClient>(client: &C) -> Option<usize> {
    let row = client.query_opt("SELECT readable_from FROM schema_compat WHERE id = 1", &[]).await.ok()??;
    usize::try_from(row.get::<_, i32>(0)).ok()
}
