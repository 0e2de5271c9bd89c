//! Transactions bounded by the request's deadline, on the server as well as in the client:
//!
//! * every statement gets `statement_timeout` = the time left less a slack (a tenth of it, between
//!   [`MIN_SLACK`] and [`MAX_SLACK`]), valid for statements that start within that slack of when it was set;
//!   a statement that starts later first sets it again to what remains,
//!   so no statement can run past the deadline, however long the ones before it took;
//! * lock waits are bounded by [`LOCK_WAIT`], far below a whole request's budget, so a queue on one hot row
//!   fails fast instead of every request in it waiting out its deadline;
//! * a request that gives up (its deadline passed on the client side) discards its connection instead of
//!   queueing a ROLLBACK behind a running statement: the server ends the statement at its own timeout and the
//!   session when it finds the socket closed, so no lock and no open transaction outlive the request;
//! * a failure after COMMIT was sent (connection lost, deadline) is reported as an unknown outcome, not as a
//!   failure: the change may have been committed;
//! * a pooled connection that died while idle (the database restarted) fails its BEGIN before anything
//!   happened; the dead connections are then dropped from the pool and the transaction starts once more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgSeverity;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, Transaction};

use super::errors::StepFailed;
use super::{PgStore, db_error};
use crate::domain::event::NewEvent;
use crate::domain::{Deadline, Error};

/// The least and the most of the slack: how long a statement may start after its timeout was set without
/// setting it again, and so how much is kept back from the time left when setting it. A tenth of the time
/// left in between: a request with seconds to go loses a little of its statements' budget rather than a round
/// trip (taken while holding its locks) whenever a lock queue delays it past a few tens of milliseconds.
const MIN_SLACK: Duration = Duration::from_millis(50);
const MAX_SLACK: Duration = Duration::from_secs(1);

/// The longest wait for one lock, by default ([`PgStore::with_lock_wait`] sets another). A row lock is held for a
/// few milliseconds by a healthy transaction, so a longer wait means a queue or a stuck holder: better a quick 503
/// than a request that waits its whole budget.
pub const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Less time than this left is not worth starting (or continuing) a transaction for.
const MIN_BUDGET: Duration = Duration::from_millis(5);

/// The longest budget a transaction gets: Postgres timeouts are 32-bit milliseconds, and no request lives
/// longer than a Lambda invocation (15 minutes).
const MAX_BUDGET: Duration = Duration::from_secs(15 * 60);

/// Whether a transaction changes anything: an unknown commit outcome only matters for writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// An open transaction whose statements are bounded by the deadline (see the module's description).
pub(crate) struct Tx<'c> {
    tx: Transaction<'c, Postgres>,
    deadline: Deadline,
    /// The store's bound on each lock wait, applied again whenever the timeouts are set again.
    lock_wait: Duration,
    /// Statements that start before this instant end by the deadline under the timeouts in force.
    bounded_until: Instant,
    /// The events of the transaction's changes, written by its last statement before COMMIT.
    events: Vec<NewEvent>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Tx<'_> {
    /// Records the events of a change made in this transaction: it is written with the transaction's last
    /// statement, and commits (or not) with the change.
    pub(crate) fn emit(&mut self, events: Vec<NewEvent>) {
        self.events.extend(events);
    }

    /// The events recorded so far, taken out to be written.
    pub(super) fn take_events(&mut self) -> Vec<NewEvent> {
        std::mem::take(&mut self.events)
    }

    /// The connection, for the next statement: its timeouts are set again first if the ones in force could
    /// let it outlive the deadline.
    pub(crate) async fn conn(&mut self) -> Result<&mut PgConnection, Error> {
        if Instant::now() >= self.bounded_until {
            let timeouts = Timeouts::now(self.deadline, self.lock_wait)?;
            sqlx::query(
                "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true), \
                 set_config('idle_in_transaction_session_timeout', $3, true)",
            )
            .bind(timeouts.statement_ms.to_string())
            .bind(timeouts.lock_ms.to_string())
            .bind(timeouts.idle_ms.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(db_error("set the remaining timeouts"))?;
            self.bounded_until = timeouts.set_at + timeouts.slack;
        }
        Ok(&mut self.tx)
    }
}

/// The timeouts of a transaction's statements from one moment on.
struct Timeouts {
    set_at: Instant,
    slack: Duration,
    statement_ms: u128,
    lock_ms: u128,
    idle_ms: u128,
}

impl Timeouts {
    fn now(deadline: Deadline, lock_wait: Duration) -> Result<Self, Error> {
        let set_at = Instant::now();
        let remaining = deadline.remaining().min(MAX_BUDGET);
        let slack = (remaining / 10).clamp(MIN_SLACK, MAX_SLACK);
        let statement = remaining.saturating_sub(slack);
        if statement < MIN_BUDGET {
            return Err(Error::unavailable("request deadline reached"));
        }
        Ok(Self {
            set_at,
            slack,
            statement_ms: statement.as_millis(),
            lock_ms: statement.min(lock_wait).as_millis(),
            idle_ms: remaining.as_millis(),
        })
    }

    /// The BEGIN that opens a transaction with these timeouts (`SET LOCAL`: transaction-scoped, so a proxy
    /// never pins the session).
    fn begin_sql(&self) -> String {
        format!(
            "BEGIN; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}; \
             SET LOCAL idle_in_transaction_session_timeout = {}",
            self.statement_ms, self.lock_ms, self.idle_ms
        )
    }
}

/// A pooled connection that is closed outright when dropped, unless [`Discard::keep`] was called: a
/// connection whose request gave up may still be running a statement, and must not go back to the pool.
struct Discard(Option<PoolConnection<Postgres>>);

impl Discard {
    fn conn(&mut self) -> &mut PoolConnection<Postgres> {
        self.0
            .as_mut()
            .expect("the connection is held until keep or drop")
    }

    /// Returns the connection to the pool.
    fn keep(mut self) {
        self.0.take();
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Detached from the pool (which may open a replacement) and dropped: the socket closes at once.
            drop(conn.detach());
        }
    }
}

/// Why an attempt at a transaction failed.
enum Failure {
    /// The connection was dead before anything was sent that could change anything: try another.
    Stale(sqlx::Error),
    Failed(Error),
}

impl PgStore {
    /// Runs `work` as one read-only transaction bounded by `deadline`.
    pub(crate) async fn read<T, F>(&self, deadline: Deadline, work: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(&mut Tx<'_>) -> Result<T, Error>,
    {
        self.run(Access::Read, deadline, work).await
    }

    /// Runs `work` as one transaction bounded by `deadline` that commits only if `work` succeeds; an error
    /// after COMMIT was sent is `OutcomeUnknown`.
    pub(crate) async fn transaction<T, F>(&self, deadline: Deadline, work: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(&mut Tx<'_>) -> Result<T, Error>,
    {
        self.run(Access::Write, deadline, work).await
    }

    async fn run<T, F>(&self, access: Access, deadline: Deadline, work: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(&mut Tx<'_>) -> Result<T, Error>,
    {
        let committing = AtomicBool::new(false);
        let run = async {
            if let Some(iam) = &self.iam {
                iam.refresh(&self.pool).await?;
            }
            let mut work = Some(work);
            match self.attempt(access, deadline, &mut work, &committing).await {
                Err(Failure::Stale(error)) => {
                    tracing::info!(%error, "a pooled connection was dead; retrying on a fresh one");
                    self.drop_dead_connections().await;
                    match self.attempt(access, deadline, &mut work, &committing).await {
                        Ok(value) => Ok(value),
                        Err(Failure::Stale(error)) => Err(db_error("begin")(error)),
                        Err(Failure::Failed(error)) => Err(error),
                    }
                }
                Err(Failure::Failed(error)) => Err(error),
                Ok(value) => Ok(value),
            }
        };
        match tokio::time::timeout(deadline.remaining(), run).await {
            Ok(result) => result,
            // The server ends any statement at its own timeout; the dropped attempt discarded its connection.
            Err(_) if access == Access::Write && committing.load(Ordering::SeqCst) => Err(
                Error::outcome_unknown("request deadline reached after COMMIT was sent"),
            ),
            Err(_) => Err(Error::unavailable("request deadline reached")),
        }
    }

    /// One attempt: acquire, BEGIN with the timeouts, `work`, then COMMIT or ROLLBACK. The connection goes
    /// back to the pool only if the transaction ended cleanly.
    async fn attempt<T, F>(
        &self,
        access: Access,
        deadline: Deadline,
        work: &mut Option<F>,
        committing: &AtomicBool,
    ) -> Result<T, Failure>
    where
        F: AsyncFnOnce(&mut Tx<'_>) -> Result<T, Error>,
    {
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| Failure::Failed(db_error("acquire a connection")(e)))?;
        let mut held = Discard(Some(conn));
        // Timed from now, not from before a wait for the connection.
        let timeouts = match Timeouts::now(deadline, self.lock_wait) {
            Ok(timeouts) => timeouts,
            Err(error) => {
                held.keep();
                return Err(Failure::Failed(error));
            }
        };
        let ended = {
            let tx = match held
                .conn()
                .begin_with(AssertSqlSafe(timeouts.begin_sql()))
                .await
            {
                Ok(tx) => tx,
                Err(error) if is_dead_connection(&error) => return Err(Failure::Stale(error)),
                Err(error) => return Err(Failure::Failed(db_error("begin")(error))),
            };
            let mut tx = Tx {
                tx,
                deadline,
                lock_wait: self.lock_wait,
                bounded_until: timeouts.set_at + timeouts.slack,
                events: Vec::new(),
            };
            let work = work.take().expect("work runs at most once");
            let done = match work(&mut tx).await {
                Ok(value) => super::events::write(&mut tx).await.map(|()| value),
                Err(error) => Err(error),
            };
            match done {
                Ok(value) => {
                    committing.store(true, Ordering::SeqCst);
                    tx.tx
                        .commit()
                        .await
                        .map(|()| Ok(value))
                        .map_err(|error| commit_error(access, error))
                }
                // A failed rollback means the connection broke: the server rolls back on its own.
                Err(error) => match tx.tx.rollback().await {
                    Ok(()) => Ok(Err(error)),
                    Err(_) => Err(error),
                },
            }
        };
        match ended {
            // The transaction ended cleanly: the connection can serve another.
            Ok(result) => {
                held.keep();
                result.map_err(Failure::Failed)
            }
            Err(error) => Err(Failure::Failed(error)),
        }
    }

    /// Takes every idle connection out of the pool and closes those that no longer answer: after one was
    /// found dead (a database restart kills them all), the next acquire must get a live or a new one.
    async fn drop_dead_connections(&self) {
        let mut live = Vec::new();
        while let Some(mut conn) = self.pool.try_acquire() {
            match conn.ping().await {
                Ok(()) => live.push(conn),
                Err(_) => drop(conn.detach()),
            }
        }
    }
}

/// An error that says the connection itself is gone (closed by the server, reset, shut down), as opposed
/// to an error of the statement.
fn is_dead_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            let fatal = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic));
            fatal
                || matches!(
                    db.code().as_deref(),
                    Some("57P01" | "57P02" | "57P03" | "08006" | "08003")
                )
        }
        _ => false,
    }
}

/// The error of a COMMIT. The server refusing it (a serialization failure, say) means nothing was committed;
/// a lost connection means the commit may have happened: for a write, the outcome is unknown.
fn commit_error(access: Access, error: sqlx::Error) -> Error {
    if access == Access::Write && is_dead_connection(&error) {
        Error::outcome_unknown(StepFailed {
            step: "commit",
            source: error,
        })
    } else {
        db_error("commit")(error)
    }
}
