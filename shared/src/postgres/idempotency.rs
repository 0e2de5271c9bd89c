//! Idempotent writes on Postgres: the key is claimed by the first statement of the write's transaction and
//! its response stored by the last, so the key, the change and the response commit together or not at all.

use crate::domain::idempotency::{Claim, KEY_LIFETIME, Once, Replay};
use crate::domain::{Deadline, Error};
use crate::ports::{IdempotentStore, Render, Write, Written};

use super::errors::{LOCK_NOT_AVAILABLE, sqlstate};
use super::{PgStore, Tx, db_error};

/// What claiming a key found.
enum Claimed {
    /// The key is ours until this transaction ends: a new row (not counted yet), or an expired one taken over
    /// (counted already).
    New { counted: bool },
    /// A committed request holds it.
    Taken(Option<Replay>, Vec<u8>),
}

/// Claims the key for this transaction. A key older than its lifetime is taken over as if it were new. A
/// concurrent transaction holding the same (uncommitted) key makes this wait, within the lock timeout, for it
/// to end: then either the key is committed (and its response replayed) or free again (and claimed here).
async fn claim(tx: &mut Tx<'_>, claim: &Claim) -> Result<Claimed, Error> {
    let lifetime_secs = KEY_LIFETIME.as_secs_f64();
    let claimed = sqlx::query_scalar!(
        r#"
        INSERT INTO idempotency_keys AS k (caller, key, fingerprint) VALUES ($4, $1, $2)
        ON CONFLICT (caller, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, status = NULL, headers = NULL, body = NULL,
                created_at = now()
            WHERE k.created_at < now() - make_interval(secs => $3)
        RETURNING NOT (xmax = 0) AS "taken_over!"
        "#,
        claim.key.as_str(),
        &claim.fingerprint.0[..],
        lifetime_secs,
        claim.caller,
    )
    .fetch_optional(tx.conn().await?)
    .await
    .map_err(|error| match sqlstate(&error) {
        // The lock timeout ran out while the first request with this key was still running.
        Some(LOCK_NOT_AVAILABLE) => Error::RequestInProgress,
        _ => db_error("claim the idempotency key")(error),
    })?;
    if let Some(taken_over) = claimed {
        return Ok(Claimed::New {
            counted: taken_over,
        });
    }
    // Taken by a committed request: a new statement sees it.
    let row = sqlx::query!(
        "SELECT fingerprint, status, headers, body FROM idempotency_keys WHERE caller = $2 AND key = $1",
        claim.key.as_str(),
        claim.caller,
    )
    .fetch_optional(tx.conn().await?)
    .await
    .map_err(db_error("read the idempotency key"))?
    // Purged between the two statements (only possible once expired): a retry claims it anew.
    .ok_or(Error::RequestInProgress)?;
    let replay = match (row.status, row.headers, row.body) {
        (Some(status), Some(headers), Some(body)) => Some(Replay {
            status: status as u16,
            headers: headers
                .chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect(),
            body,
        }),
        _ => None,
    };
    Ok(Claimed::Taken(replay, row.fingerprint))
}

/// Deletes the key `claim` took in this transaction, and uncounts it if it was counted.
async fn release(tx: &mut Tx<'_>, claim: &Claim, counted: bool) -> Result<(), Error> {
    sqlx::query!(
        r#"
        WITH released AS (
            DELETE FROM idempotency_keys WHERE caller = $2 AND key = $1
        )
        UPDATE idempotency_key_counts SET keys = greatest(keys - 1, 0) WHERE caller = $2 AND $3
        "#,
        claim.key.as_str(),
        claim.caller,
        counted,
    )
    .execute(tx.conn().await?)
    .await
    .map_err(db_error("release the idempotency key"))?;
    Ok(())
}

/// Stores the response of the request that claimed the key, and counts the key if it is not counted yet:
/// `TooManyKeys`, and nothing stored, when its caller already holds `limit` keys.
async fn store(
    tx: &mut Tx<'_>,
    claim: &Claim,
    counted: bool,
    limit: u32,
    replay: &Replay,
) -> Result<(), Error> {
    let headers: Vec<String> = replay
        .headers
        .iter()
        .flat_map(|(name, value)| [name.clone(), value.clone()])
        .collect();
    // The count's row is locked from here to COMMIT: one round trip, whatever the write before took.
    let stored = sqlx::query!(
        r#"
        WITH counted AS (
            INSERT INTO idempotency_key_counts AS c (caller, keys) SELECT $5, 1 WHERE NOT $6
            ON CONFLICT (caller) DO UPDATE SET keys = c.keys + 1 WHERE c.keys < $7
            RETURNING 1
        )
        UPDATE idempotency_keys SET status = $2, headers = $3, body = $4
        WHERE caller = $5 AND key = $1 AND ($6 OR EXISTS (SELECT FROM counted))
        "#,
        claim.key.as_str(),
        replay.status as i16,
        &headers,
        replay.body,
        claim.caller,
        counted,
        i32::try_from(limit).unwrap_or(i32::MAX),
    )
    .execute(tx.conn().await?)
    .await
    .map_err(db_error("store the response of the idempotency key"))?;
    if stored.rows_affected() == 0 {
        return Err(Error::TooManyKeys { limit });
    }
    Ok(())
}

impl IdempotentStore for PgStore {
    async fn write_once(
        &self,
        key: &Claim,
        write: Write,
        render: &Render,
        deadline: Deadline,
    ) -> Result<(Once, Option<Written>), Error> {
        self.transaction(deadline, async |tx| match claim(tx, key).await? {
            Claimed::New { counted } => {
                let written = write.apply(tx).await?;
                let replay = render(&written);
                if written.changed_nothing() {
                    // A no-op keeps nothing: the key is free again once this commits (one round trip, on
                    // this path only).
                    release(tx, key, counted).await?;
                } else {
                    store(tx, key, counted, self.key_limit, &replay).await?;
                }
                Ok((Once::Fresh(replay), Some(written)))
            }
            Claimed::Taken(_, fingerprint) if fingerprint != key.fingerprint.0 => {
                Err(Error::IdempotencyKeyReused)
            }
            Claimed::Taken(Some(replay), _) => Ok((Once::Replayed(replay), None)),
            Claimed::Taken(None, _) => Err(Error::internal(
                "a committed idempotency key has no response",
            )),
        })
        .await
    }

    async fn purge_expired_keys(&self, batch: u32, deadline: Deadline) -> Result<u64, Error> {
        let lifetime_secs = KEY_LIFETIME.as_secs_f64();
        self.transaction(deadline, async |tx| {
            // Oldest first through the index; rows a running request holds are skipped, not waited for. The
            // callers' counts are locked in one order, so two purges never wait on each other in a circle.
            let deleted = sqlx::query_scalar!(
                r#"
                WITH deleted AS (
                    DELETE FROM idempotency_keys WHERE (caller, key) IN (
                        SELECT caller, key FROM idempotency_keys
                        WHERE created_at < now() - make_interval(secs => $1)
                        ORDER BY created_at
                        LIMIT $2
                        FOR UPDATE SKIP LOCKED
                    )
                    RETURNING caller
                ), per_caller AS (
                    SELECT caller, count(*) AS keys FROM deleted GROUP BY caller
                ), locked AS (
                    SELECT c.caller FROM idempotency_key_counts c JOIN per_caller USING (caller)
                    ORDER BY c.caller
                    FOR UPDATE OF c
                ), uncounted AS (
                    UPDATE idempotency_key_counts c SET keys = greatest(c.keys - per_caller.keys, 0)
                    FROM per_caller JOIN locked USING (caller)
                    WHERE c.caller = per_caller.caller
                )
                SELECT count(*) AS "deleted!" FROM deleted
                "#,
                lifetime_secs,
                i64::from(batch),
            )
            .fetch_one(tx.conn().await?)
            .await
            .map_err(db_error("purge expired idempotency keys"))?;
            Ok(deleted as u64)
        })
        .await
    }
}
