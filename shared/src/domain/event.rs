//! Events: what happened, recorded in the same transaction as the change itself (a transactional outbox), for
//! other systems to follow through `GET /events` or an EventBridge bus.

use time::OffsetDateTime;
use uuid::Uuid;

use super::page::{decode_tagged, encode_tagged};

/// What happened.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum EventType {
    #[serde(rename = "order.placed")]
    OrderPlaced,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    #[serde(rename = "order.expired")]
    OrderExpired,
    #[serde(rename = "order.fulfilled")]
    OrderFulfilled,
    #[serde(rename = "order.partially_fulfilled")]
    OrderPartiallyFulfilled,
    #[serde(rename = "order.returned")]
    OrderReturned,
    #[serde(rename = "order.hold_extended")]
    OrderHoldExtended,
    #[serde(rename = "stock.adjusted")]
    StockAdjusted,
    #[serde(rename = "stock.low")]
    StockLow,
    #[serde(rename = "product.created")]
    ProductCreated,
    #[serde(rename = "product.updated")]
    ProductUpdated,
    #[serde(rename = "product.deleted")]
    ProductDeleted,
}

impl EventType {
    pub const ALL: [Self; 12] = [
        Self::OrderPlaced,
        Self::OrderCancelled,
        Self::OrderExpired,
        Self::OrderFulfilled,
        Self::OrderPartiallyFulfilled,
        Self::OrderReturned,
        Self::OrderHoldExtended,
        Self::StockAdjusted,
        Self::StockLow,
        Self::ProductCreated,
        Self::ProductUpdated,
        Self::ProductDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPlaced => "order.placed",
            Self::OrderCancelled => "order.cancelled",
            Self::OrderExpired => "order.expired",
            Self::OrderFulfilled => "order.fulfilled",
            Self::OrderPartiallyFulfilled => "order.partially_fulfilled",
            Self::OrderReturned => "order.returned",
            Self::OrderHoldExtended => "order.hold_extended",
            Self::StockAdjusted => "stock.adjusted",
            Self::StockLow => "stock.low",
            Self::ProductCreated => "product.created",
            Self::ProductUpdated => "product.updated",
            Self::ProductDeleted => "product.deleted",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// An event about to be written, in the transaction of its change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: EventType,
    /// The product or order the event is about.
    pub resource_id: Uuid,
    /// The resource as the change left it, as the API shows it.
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(event_type: EventType, resource_id: Uuid, data: serde_json::Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type,
            resource_id,
            data,
        }
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub event_type: EventType,
    pub resource_id: Uuid,
    pub data: serde_json::Value,
    /// When the change happened (its transaction's time).
    pub occurred_at: OffsetDateTime,
    /// Where it stands in the feed.
    pub position: Position,
}

/// A place in the feed: events are listed in increasing position, which orders the changes of any one
/// resource as they committed (see the events migration for why and how).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The transaction id the event is ordered by (a 64-bit `xid8`).
    pub xid: i64,
    pub seq: i64,
}

/// The tag of a feed cursor, distinct from every list's (see `Id::LIST`).
const FEED: u8 = 0x45;

impl Position {
    /// The feed's cursor: opaque to clients (base64url of a tag and the position).
    pub fn encode(self) -> String {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.xid.to_be_bytes());
        bytes[8..].copy_from_slice(&self.seq.to_be_bytes());
        encode_tagged(FEED, bytes)
    }

    pub fn decode(value: &str) -> Result<Self, String> {
        let bytes = decode_tagged(
            value,
            FEED,
            "cursor belongs to a list, not to the event feed",
        )?;
        let word = |range: std::ops::Range<usize>| {
            i64::from_be_bytes(bytes[range].try_into().expect("8 bytes"))
        };
        let position = Self {
            xid: word(0..8),
            seq: word(8..16),
        };
        if position.xid < 0 || position.seq < 0 {
            return Err("cursor is not one this API issued".to_owned());
        }
        Ok(position)
    }
}

/// Most events one page of the feed holds.
pub const MAX_FEED_LIMIT: u32 = 500;
pub const DEFAULT_FEED_LIMIT: u32 = 100;

/// Most bytes of event data (as JSON) one page of the feed holds: a page ends before the event that would
/// take it over (but always holds one), so that no page can approach Lambda's 6 MB response limit, whatever
/// the events (an order of 100 lines with the longest names is about 100 KB).
pub const MAX_FEED_BYTES: usize = 1024 * 1024;

/// A page of the feed, and where to continue from: the last event's position, or the request's own when
/// nothing new has committed yet (never the end: a reader polls again from there).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    pub items: Vec<Event>,
    pub next: Position,
}

impl FeedPage {
    /// The page of `items` (in feed order) that fits [`MAX_FEED_BYTES`], continuing after `after`.
    pub fn new(mut items: Vec<Event>, after: Position) -> Self {
        let mut bytes = 0;
        let fits = items
            .iter()
            .take_while(|event| {
                bytes += event.data.to_string().len();
                bytes <= MAX_FEED_BYTES
            })
            .count()
            .max(1);
        items.truncate(fits);
        let next = items.last().map_or(after, |event| event.position);
        Self { items, next }
    }
}

/// Whether a change took a product from above its low-stock threshold to at or below it (`stock.low`): of
/// `(available, threshold)` before and after. A product that stays low does not raise it again.
pub fn fell_low(before: (i64, Option<i64>), after: (i64, Option<i64>)) -> bool {
    let low =
        |(available, threshold): (i64, Option<i64>)| threshold.is_some_and(|t| available <= t);
    !low(before) && low(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_serialize_as_they_parse() {
        for t in EventType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn a_cursor_round_trips_and_is_refused_by_lists() {
        let position = Position {
            xid: 7_000_123,
            seq: 42,
        };
        assert_eq!(Position::decode(&position.encode()), Ok(position));
        let list_cursor = crate::domain::Cursor(crate::domain::new_id::<crate::domain::OrderId>());
        assert!(Position::decode(&list_cursor.encode()).is_err());
        assert!(Position::decode("nonsense").is_err());
    }

    #[test]
    fn a_page_ends_before_the_event_that_would_take_it_over_its_size() {
        let event = |seq: i64, bytes: usize| Event {
            id: Uuid::now_v7(),
            event_type: EventType::OrderPlaced,
            resource_id: Uuid::now_v7(),
            data: serde_json::Value::String("x".repeat(bytes)),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            position: Position { xid: 1, seq },
        };
        let quarter = MAX_FEED_BYTES / 4;
        let page = FeedPage::new(
            (1..=6).map(|n| event(n, quarter)).collect(),
            Position::default(),
        );
        assert_eq!(
            page.items.len(),
            3,
            "three quarters and their quotes fit, four do not"
        );
        assert_eq!(page.next, Position { xid: 1, seq: 3 });
        let huge = FeedPage::new(vec![event(1, 2 * MAX_FEED_BYTES)], Position::default());
        assert_eq!(huge.items.len(), 1, "a page always holds one event");
    }

    #[test]
    fn stock_falls_low_once() {
        assert!(fell_low((6, Some(5)), (5, Some(5))));
        assert!(!fell_low((5, Some(5)), (4, Some(5))));
        assert!(!fell_low((9, None), (0, None)));
        assert!(fell_low((9, None), (0, Some(0))));
        assert!(!fell_low((3, Some(5)), (9, Some(5))));
    }
}
