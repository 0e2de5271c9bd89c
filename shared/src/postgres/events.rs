//! The outbox on Postgres: each transaction's events are written by its last statement before COMMIT (an
//! order's by the order's own statement: see `orders::place_order`), and the feed reads them in position order
//! up to the oldest transaction still running (see the events migration for why that never skips an event).

use std::time::Duration;

use crate::domain::event::{Event, EventType, FeedPage, MAX_FEED_BYTES, NewEvent, Position};
use crate::domain::{Deadline, Error};
use crate::ports::EventStore;

use super::{PgStore, Tx, db_error};

/// Writes the events `tx` recorded, if any, in one statement: each gets the position that orders it after
/// every earlier event of its resources, and the resources remember it (the `write_events` function).
pub(super) async fn write(tx: &mut Tx<'_>) -> Result<(), Error> {
    let events = tx.take_events();
    if events.is_empty() {
        return Ok(());
    }
    let columns = EventColumns::of(&events);
    sqlx::query_scalar!(
        r#"SELECT write_events($1, $2, $3, $4) AS "written!""#,
        &columns.ids,
        &columns.resource_ids,
        &columns.types,
        &columns.data,
    )
    .fetch_one(tx.conn().await?)
    .await
    .map_err(db_error("write the events"))?;
    Ok(())
}

/// Events as the arguments of the `write_events` function: one array per column.
pub(super) struct EventColumns {
    pub ids: Vec<uuid::Uuid>,
    pub resource_ids: Vec<uuid::Uuid>,
    pub types: Vec<String>,
    pub data: Vec<String>,
}

impl EventColumns {
    pub fn of(events: &[NewEvent]) -> Self {
        Self {
            ids: events.iter().map(|e| e.id).collect(),
            resource_ids: events.iter().map(|e| e.resource_id).collect(),
            types: events
                .iter()
                .map(|e| e.event_type.as_str().to_owned())
                .collect(),
            data: events.iter().map(|e| e.data.to_string()).collect(),
        }
    }
}

/// An event as the feed query returns it.
struct EventRow {
    id: uuid::Uuid,
    xid: i64,
    seq: i64,
    event_type: String,
    resource_id: uuid::Uuid,
    data: String,
    created_at: time::OffsetDateTime,
}

impl TryFrom<EventRow> for Event {
    type Error = Error;

    fn try_from(row: EventRow) -> Result<Self, Error> {
        Ok(Event {
            id: row.id,
            event_type: EventType::parse(&row.event_type)
                .ok_or_else(|| Error::internal("unknown event type"))?,
            resource_id: row.resource_id,
            data: serde_json::from_str(&row.data).map_err(Error::internal)?,
            occurred_at: row.created_at,
            position: Position {
                xid: row.xid,
                seq: row.seq,
            },
        })
    }
}

/// Up to `limit` events after `after` that no running transaction can still precede.
pub(super) async fn read_feed(
    tx: &mut Tx<'_>,
    after: Position,
    limit: u32,
) -> Result<Vec<Event>, Error> {
    // pg_current_snapshot() is the statement's own snapshot: every transaction below its xmin has ended, and
    // its events (if it committed) are visible to this very statement.
    // Only the events that start within the page's size budget leave the server.
    let rows = sqlx::query_as!(
        EventRow,
        r#"
        SELECT id AS "id!", xid AS "xid!", seq AS "seq!", event_type AS "event_type!",
               resource_id AS "resource_id!", data AS "data!", created_at AS "created_at!"
        FROM (
            SELECT id, commit_xid::text::bigint AS xid, seq, type AS event_type, resource_id,
                   data::text AS data, created_at,
                   sum(octet_length(data::text)) OVER (ORDER BY commit_xid, seq) AS bytes
            FROM events
            WHERE (commit_xid, seq) > ($1::text::xid8, $2)
              AND commit_xid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY commit_xid, seq
            LIMIT $3
        ) page
        WHERE bytes - octet_length(data) < $4
        ORDER BY xid, seq
        "#,
        after.xid.to_string(),
        after.seq,
        i64::from(limit),
        MAX_FEED_BYTES as i64,
    )
    .fetch_all(tx.conn().await?)
    .await
    .map_err(db_error("read the events"))?;
    rows.into_iter().map(Event::try_from).collect()
}

impl EventStore for PgStore {
    async fn list_events(
        &self,
        after: Position,
        limit: u32,
        deadline: Deadline,
    ) -> Result<FeedPage, Error> {
        let items = self
            .read(deadline, async |tx| read_feed(tx, after, limit).await)
            .await?;
        Ok(FeedPage::new(items, after))
    }

    async fn undelivered_events(
        &self,
        batch: u32,
        deadline: Deadline,
    ) -> Result<(Position, Vec<Event>), Error> {
        self.read(deadline, async |tx| {
            let after = sqlx::query!(
                r#"SELECT after_xid::text::bigint AS "xid!", after_seq FROM event_deliveries"#
            )
            .fetch_one(tx.conn().await?)
            .await
            .map_err(db_error("read the delivered position"))?;
            let after = Position {
                xid: after.xid,
                seq: after.after_seq,
            };
            Ok((after, read_feed(tx, after, batch).await?))
        })
        .await
    }

    async fn mark_delivered(
        &self,
        from: Position,
        to: Position,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        self.transaction(deadline, async |tx| {
            let moved = sqlx::query!(
                r#"
                    UPDATE event_deliveries
                    SET after_xid = $3::text::xid8, after_seq = $4, delivered_at = now()
                    WHERE after_xid = $1::text::xid8 AND after_seq = $2
                    "#,
                from.xid.to_string(),
                from.seq,
                to.xid.to_string(),
                to.seq,
            )
            .execute(tx.conn().await?)
            .await
            .map_err(db_error("move the delivered position"))?;
            Ok(moved.rows_affected() == 1)
        })
        .await
    }

    async fn purge_delivered_events(
        &self,
        retention: Duration,
        batch: u32,
        deadline: Deadline,
    ) -> Result<u64, Error> {
        self.transaction(deadline, async |tx| {
            // Oldest first through the index, and only what the publisher has passed.
            let deleted = sqlx::query!(
                r#"
                DELETE FROM events WHERE id IN (
                    SELECT e.id FROM events e, event_deliveries d
                    WHERE e.created_at < now() - make_interval(secs => $1)
                      AND (e.commit_xid, e.seq) <= (d.after_xid, d.after_seq)
                    ORDER BY e.created_at
                    LIMIT $2
                )
                "#,
                retention.as_secs_f64(),
                i64::from(batch),
            )
            .execute(tx.conn().await?)
            .await
            .map_err(db_error("purge delivered events"))?;
            Ok(deleted.rows_affected())
        })
        .await
    }
}
