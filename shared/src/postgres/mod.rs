//! The Postgres adapter: the only place that knows SQL. Every operation is one transaction whose
//! statements are bounded by the request's deadline with `SET LOCAL` (never a session setting: RDS Proxy
//! would pin the session), and whose errors are mapped by SQLSTATE and constraint name into domain errors.

mod errors;
mod events;
pub mod iam;
mod idempotency;
mod orders;
mod products;
pub mod schema;
mod tx;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::domain::idempotency::KEYS_PER_CALLER;
use crate::domain::{Deadline, Error};
use crate::ports::HealthProbe;
pub use errors::db_error;
use iam::IamAuth;
pub use tx::LOCK_WAIT;
use tx::Tx;

/// The migrations of `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How the pool connects.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// A connection idle for longer than this is pinged before use; a warm one is trusted, which saves a round
/// trip per request (a connection that did die anyway fails its BEGIN, and the transaction starts again on a
/// live one: see `tx.rs`).
const PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// A pool that opens its first connection on first use, so a cold start never waits on the network.
pub fn connect_lazy(options: PgConnectOptions, config: &PoolConfig) -> PgPool {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options.application_name("inventory"))
}

/// The Postgres implementation of every port.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Signs the password of each new connection, when the database takes IAM authentication.
    iam: Option<Arc<IamAuth>>,
    /// The longest wait for one lock ([`LOCK_WAIT`] unless set otherwise).
    lock_wait: Duration,
    /// The most idempotency keys one caller may hold ([`KEYS_PER_CALLER`] unless set otherwise).
    key_limit: u32,
}

impl PgStore {
    /// A store on a pool whose connection options are complete (a password, or none, in them).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            iam: None,
            lock_wait: LOCK_WAIT,
            key_limit: KEYS_PER_CALLER,
        }
    }

    /// A store whose connections authenticate with IAM auth tokens (RDS Proxy on AWS).
    pub fn with_iam(pool: PgPool, iam: Arc<IamAuth>) -> Self {
        Self {
            pool,
            iam: Some(iam),
            lock_wait: LOCK_WAIT,
            key_limit: KEYS_PER_CALLER,
        }
    }

    /// The same store with another bound on each lock wait (still never past a request's deadline). A
    /// longer wait trades the quick 503 of a long lock queue for requests that wait in it.
    pub fn with_lock_wait(mut self, lock_wait: Duration) -> Self {
        self.lock_wait = lock_wait;
        self
    }

    /// The same store with another limit on the idempotency keys one caller may hold.
    pub fn with_key_limit(mut self, key_limit: u32) -> Self {
        self.key_limit = key_limit;
        self
    }

    /// The pool behind the store (to close it on shutdown).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Checks the rows of a statement that reads a page of a list under one `parent` resource (an order's
/// fulfilments, a product's ledger) beside the resource itself, one row of NULLs for an empty page: no row at all
/// is `NotFound` (no such resource), and a page whose cursor is not in this resource's list (`cursor_here`, the
/// same in every row) is `CursorElsewhere`.
fn page_beside<Row>(
    parent: &'static str,
    rows: &[Row],
    cursor_here: impl Fn(&Row) -> bool,
) -> Result<(), Error> {
    match rows.first() {
        None => Err(Error::NotFound(parent)),
        Some(row) if !cursor_here(row) => Err(Error::CursorElsewhere(parent)),
        Some(_) => Ok(()),
    }
}

impl HealthProbe for PgStore {
    /// A round trip that also checks the database can take writes: a server in recovery (a replica, or one
    /// still starting) or read-only (after a failover) is as good as down for this API.
    async fn ping(&self, deadline: Deadline) -> Result<(), Error> {
        self.read(deadline, async |tx| {
            let writable = sqlx::query_scalar!(
                r#"SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'
                   AS "writable!""#
            )
            .fetch_one(tx.conn().await?)
            .await
            .map_err(db_error("check that the database is writable"))?;
            if writable {
                Ok(())
            } else {
                Err(Error::unavailable("the database is read-only or in recovery"))
            }
        })
        .await
    }
}
