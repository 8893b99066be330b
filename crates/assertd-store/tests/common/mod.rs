//! What the store's test files share: a store on a test PostgreSQL, and
//! the macro that runs one test function on both backends.

#![allow(dead_code, clippy::unwrap_used)]

use assertd_store::{PostgresConfig, PostgresStore};
use assertd_testkit::pg::PgCluster;
use std::time::Duration;

/// A store on `pg` (8 connections, 5 s bound, migrated).
pub async fn pg_store(pg: &PgCluster) -> PostgresStore {
    let c = PostgresConfig { url: pg.url(), tls: Default::default(), pool_size: 8, timeout: Duration::from_secs(5), migrate: true };
    PostgresStore::connect(&c).await.unwrap()
}

/// `both!(name_, f)`: module `name_` with `f` run on SQLite and on
/// PostgreSQL.
#[macro_export]
macro_rules! both {
    ($name:ident, $f:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                $f(&assertd_store::SqliteStore::open(dir.path()).unwrap()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let pg = assertd_testkit::pg::PgCluster::start();
                $f(&common::pg_store(&pg).await).await;
            }
        }
    };
}
