use sqlx::error::ErrorKind;

use crate::domain::Error;
use crate::domain::stock::{above_ceiling, below_reserved, damaged_refused};

/// `lock_not_available`: a lock wait ran out (`lock_timeout`).
pub(crate) const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The SQLSTATE of an error the server sent.
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .map(|e| e.code()),
        _ => None,
    }
}

/// A statement that failed, named by its step ("lock the order's products"): the cause of an `Unavailable`,
/// `OutcomeUnknown` or `Internal` error, so that the log line of the request says which step failed. Never
/// shown to a client.
#[derive(Debug, thiserror::Error)]
#[error("{step} failed")]
pub struct StepFailed {
    pub step: &'static str,
    #[source]
    pub source: sqlx::Error,
}

/// Maps the database errors of one step into the domain: constraint violations the API can explain become
/// client errors, anything that says "try again later" becomes `Unavailable`, and the rest is `Internal`,
/// its cause (the step, then the database's error) kept for the logs only. Used as
/// `.map_err(db_error("lock the order's products"))?`.
pub fn db_error(step: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |error| {
        classify(StepFailed {
            step,
            source: error,
        })
    }
}

fn classify(failed: StepFailed) -> Error {
    let error = &failed.source;
    match error {
        sqlx::Error::Database(db) => {
            match (db.kind(), db.constraint()) {
                (ErrorKind::UniqueViolation, Some("products_sku_key")) => return Error::SkuTaken,
                (
                    ErrorKind::CheckViolation,
                    Some(
                        "products_on_hand_not_negative"
                        | "products_reserved_within_on_hand"
                        | "products_reserved_not_negative"
                        | "products_available_within_backorder_limit",
                    ),
                ) => return below_reserved(),
                (ErrorKind::CheckViolation, Some("products_damaged_within_on_hand")) => {
                    return damaged_refused();
                }
                (ErrorKind::CheckViolation, Some("products_on_hand_within_ceiling")) => {
                    return above_ceiling();
                }
                _ => {}
            }
            match db.code().as_deref() {
                // Transient: query_canceled (statement_timeout), lock_not_available (lock_timeout),
                // deadlock_detected, serialization_failure, too_many_connections, admin/crash shutdown,
                // cannot_connect_now (starting up or in recovery), read_only_sql_transaction (a read-only
                // server, as after a failover), idle_in_transaction_session_timeout, out of memory or disk
                // (53xxx: insufficient resources).
                Some(
                    "57014" | "55P03" | "40P01" | "40001" | "57P01" | "57P02" | "57P03" | "25006"
                    | "25P03",
                ) => Error::unavailable(failed),
                Some(code) if code.starts_with("53") => Error::unavailable(failed),
                // connection exceptions, and a server that refuses us (bad credentials, no such database):
                // the database is unreachable as far as a client can tell.
                Some(code)
                    if code.starts_with("08") || code.starts_with("28") || code == "3D000" =>
                {
                    Error::unavailable(failed)
                }
                _ => Error::internal(failed),
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Error::unavailable(failed),
        _ => Error::internal(failed),
    }
}
