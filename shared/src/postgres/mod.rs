//! The Postgres adapter: the only place that knows SQL. Every operation is one transaction whose
//! statements are bounded by the request's deadline with `SET LOCAL` (never a session setting: RDS Proxy
//! would pin the session), and whose errors are mapped by SQLSTATE and constraint name into domain errors.

mod errors;
pub mod iam;
mod orders;
mod products;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgPool, Postgres, Transaction};

use crate::domain::{Deadline, Error};
use crate::ports::HealthProbe;
pub use errors::db_error;
use iam::IamAuth;

/// The migrations of `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Less time than this left is not worth starting a transaction for.
const MIN_BUDGET: Duration = Duration::from_millis(5);

/// How the pool connects.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// A connection idle for longer than this is pinged before use; a warm one is trusted, which saves a round
/// trip per request (a connection that did die anyway fails the request with a retryable 503).
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
}

impl PgStore {
    /// A store on a pool whose connection options are complete (a password, or none, in them).
    pub fn new(pool: PgPool) -> Self {
        Self { pool, iam: None }
    }

    /// A store whose connections authenticate with IAM auth tokens (RDS Proxy on AWS).
    pub fn with_iam(pool: PgPool, iam: Arc<IamAuth>) -> Self {
        Self {
            pool,
            iam: Some(iam),
        }
    }

    /// The pool behind the store (to close it on shutdown).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `work` as one transaction that cannot outlive `deadline`: acquiring a connection, every
    /// statement (`statement_timeout`), every lock wait (`lock_timeout`) and any idle spell inside the
    /// transaction (`idle_in_transaction_session_timeout`, should the client stall or its Lambda
    /// instance be frozen) are bounded by the time left, and the whole is abandoned shortly after the
    /// deadline in case the network itself stalls. `work` returns an error to roll back, which is awaited
    /// so no lock outlives the request; the transaction commits only on success.
    async fn transaction<T, F>(&self, deadline: Deadline, work: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(&mut Transaction<'_, Postgres>) -> Result<T, Error>,
    {
        let run = async {
            if let Some(iam) = &self.iam {
                iam.refresh(&self.pool).await?;
            }
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            let budget = budget_ms(deadline)?;
            let mut tx = conn
                .begin_with(AssertSqlSafe(format!(
                    "BEGIN; SET LOCAL statement_timeout = {budget}; SET LOCAL lock_timeout = {budget}; \
                     SET LOCAL idle_in_transaction_session_timeout = {budget}"
                )))
                .await
                .map_err(db_error)?;
            match work(&mut tx).await {
                Ok(value) => {
                    tx.commit().await.map_err(db_error)?;
                    Ok(value)
                }
                Err(error) => {
                    // Release the locks now rather than whenever the pool gets to it.
                    let _ = tx.rollback().await;
                    Err(error)
                }
            }
        };
        // The server enforces the deadline through the timeouts above; this client-side bound only catches
        // a stalled network or an exhausted pool, so it allows a little slack for the server to answer first.
        let bound = deadline.remaining() + Duration::from_millis(100);
        tokio::time::timeout(bound, run)
            .await
            .unwrap_or_else(|_| Err(Error::unavailable("request deadline reached")))
    }
}

/// The longest budget a transaction gets: Postgres timeouts are 32-bit milliseconds, and no request lives
/// longer than a Lambda invocation (15 minutes).
const MAX_BUDGET: Duration = Duration::from_secs(15 * 60);

/// Milliseconds left for the transaction, or `Unavailable` when there are too few to start one.
fn budget_ms(deadline: Deadline) -> Result<u128, Error> {
    let remaining = deadline.remaining();
    if remaining < MIN_BUDGET {
        return Err(Error::unavailable("request deadline reached"));
    }
    Ok(remaining.min(MAX_BUDGET).as_millis())
}

impl HealthProbe for PgStore {
    async fn ping(&self, deadline: Deadline) -> Result<(), Error> {
        self.transaction(deadline, async |tx| {
            sqlx::query_scalar!("SELECT 1 AS \"one!\"")
                .fetch_one(&mut **tx)
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }
}
