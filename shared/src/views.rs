//! The API's JSON representation of its resources: what responses serialize, what events carry and what the
//! publisher sends to the bus. Used by the HTTP edge, the events and the publisher; it knows the domain only.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::event::{Event, EventType};
use crate::domain::order::{
    CancelReason, Fulfilment, Order, OrderLine, OrderStatus, Return, ReturnReason,
};
use crate::domain::product::Product;
use crate::domain::stock::{MovementReason, StockMovement};
use crate::domain::{Listed, Page};

/// A product: catalogue data and stock.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    /// Units physically in stock.
    pub on_hand: i64,
    /// Units held by orders that hold stock (pending or partially fulfilled); more than on hand only by
    /// backorders.
    pub reserved: i64,
    /// `on_hand - reserved - damaged - safety_stock`: units that can be ordered from stock; negative by what
    /// backorders owe (never below `-backorder_limit`). An order may take up to `available + backorder_limit`.
    pub available: i64,
    /// Units on hand that cannot be sold (moved in and out with the `marked_damaged` adjustment reason).
    pub damaged: i64,
    #[schema(required = true)]
    pub low_stock_threshold: Option<i64>,
    /// Units that may be ordered beyond what is on hand (0: none).
    pub backorder_limit: i64,
    /// Units kept on hand that no order takes.
    pub safety_stock: i64,
    /// Changes with every change of the product, stock included; the `ETag` is this number in quotes.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        Self {
            available: p.available(),
            id: p.id.into(),
            sku: p.sku,
            name: p.name,
            description: p.description,
            price_minor: p.price_minor,
            currency: p.currency,
            on_hand: p.on_hand,
            reserved: p.reserved,
            low_stock_threshold: p.low_stock_threshold,
            backorder_limit: p.backorder_limit,
            safety_stock: p.safety_stock,
            damaged: p.damaged,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// An order.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    pub status: OrderStatus,
    #[schema(required = true)]
    pub customer_ref: Option<String>,
    /// One line per product, with the product's sku, name and price as they were when the order was placed.
    pub lines: Vec<OrderLineView>,
    pub total_minor: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When the hold of a pending order on its stock ends: soon after (within a minute), an order still
    /// pending is cancelled with `cancel_reason` `expired` and its stock released. Kept as it was once the
    /// order is no longer pending.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Why a cancelled order was cancelled: `requested` (by a client) or `expired` (its hold ended);
    /// `null` unless the status is `cancelled`.
    #[schema(required = true)]
    pub cancel_reason: Option<CancelReason>,
}

/// Units of an order shipped together (`POST /orders/{id}/fulfilments`, or `POST /orders/{id}/fulfill` for
/// everything left).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct FulfilmentView {
    pub id: Uuid,
    /// The order's lines it shipped units of, in the order's line order.
    pub lines: Vec<FulfilmentLineView>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Units of one order line a fulfilment shipped.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct FulfilmentLineView {
    pub product_id: Uuid,
    pub quantity: i64,
}

impl From<Fulfilment> for FulfilmentView {
    fn from(f: Fulfilment) -> Self {
        Self {
            id: f.id.into(),
            lines: f
                .lines
                .into_iter()
                .map(|l| FulfilmentLineView {
                    product_id: l.product_id.into(),
                    quantity: l.quantity,
                })
                .collect(),
            created_at: f.created_at,
        }
    }
}

/// Shipped units of an order that came back together (`POST /orders/{id}/returns`).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ReturnView {
    pub id: Uuid,
    pub reason: ReturnReason,
    /// The order's lines it took units of, in the order's line order.
    pub lines: Vec<ReturnLineView>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Units of one order line that came back.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ReturnLineView {
    pub product_id: Uuid,
    pub quantity: i64,
    /// Whether they went back on hand (ledger `return_restock`); if not, the ledger records
    /// `return_discarded` and stock is unchanged.
    pub restock: bool,
    /// Whether they went back on hand as damaged stock (on hand, not sellable).
    pub damaged: bool,
}

impl From<Return> for ReturnView {
    fn from(r: Return) -> Self {
        Self {
            id: r.id.into(),
            reason: r.reason,
            lines: r
                .lines
                .into_iter()
                .map(|l| ReturnLineView {
                    product_id: l.product_id.into(),
                    quantity: l.quantity,
                    restock: l.restock,
                    damaged: l.damaged,
                })
                .collect(),
            created_at: r.created_at,
        }
    }
}

/// A return just taken, and its order after it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ReturnMadeView {
    #[serde(rename = "return")]
    pub taken: ReturnView,
    pub order: OrderView,
}

/// A fulfilment just made, and its order after it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct FulfilmentMadeView {
    pub fulfilment: FulfilmentView,
    pub order: OrderView,
}

/// A line of an order: a snapshot of the product at ordering time.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct OrderLineView {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    /// Units shipped so far.
    pub fulfilled: i64,
    /// Units shipped that came back.
    pub returned: i64,
    /// Units still held for the order: those not shipped while it is pending or partially fulfilled, 0 once
    /// it is cancelled or fulfilled.
    pub reserved: i64,
}

impl OrderLineView {
    fn of(l: OrderLine, status: OrderStatus) -> Self {
        Self {
            reserved: if status.holds_stock() {
                l.remaining()
            } else {
                0
            },
            product_id: l.product_id.into(),
            sku: l.sku,
            name: l.name,
            quantity: l.quantity,
            unit_price_minor: l.unit_price_minor,
            line_total_minor: l.line_total_minor,
            fulfilled: l.fulfilled,
            returned: l.returned,
        }
    }
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        Self {
            id: o.id.into(),
            status: o.status,
            customer_ref: o.customer_ref,
            lines: o
                .lines
                .into_iter()
                .map(|l| OrderLineView::of(l, o.status))
                .collect(),
            total_minor: o.total_minor,
            currency: o.currency,
            created_at: o.created_at,
            updated_at: o.updated_at,
            expires_at: o.expires_at,
            cancel_reason: o.cancel_reason,
        }
    }
}

/// A row of the stock ledger: one change of a product's on-hand or reserved stock.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct MovementView {
    pub id: Uuid,
    pub product_id: Uuid,
    /// The order that moved the stock, if an order did.
    #[schema(required = true)]
    pub order_id: Option<Uuid>,
    pub reason: MovementReason,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    /// Change of the damaged units (on hand but not sellable).
    pub damaged_delta: i64,
    /// Stock levels right after this change.
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub damaged_after: i64,
    #[schema(required = true)]
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<StockMovement> for MovementView {
    fn from(m: StockMovement) -> Self {
        Self {
            id: m.id.into(),
            product_id: m.product_id.into(),
            order_id: m.order_id.map(Uuid::from),
            reason: m.reason,
            on_hand_delta: m.on_hand_delta,
            reserved_delta: m.reserved_delta,
            damaged_delta: m.damaged_delta,
            on_hand_after: m.on_hand_after,
            reserved_after: m.reserved_after,
            damaged_after: m.damaged_after,
            note: m.note,
            created_at: m.created_at,
        }
    }
}

/// The ledger row a stock adjustment wrote, and the product after it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct AdjustmentView {
    pub movement: MovementView,
    pub product: ProductView,
}

/// A page of a list.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PageView<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> PageView<T> {
    pub fn from_page<U: Into<T> + Listed>(page: Page<U>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }
    }
}

/// An event: something that happened to a product or an order, with the resource as the change left it.
#[derive(Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct EventView {
    /// Unique: a consumer that may get an event twice (the EventBridge bus delivers at least once) drops
    /// repeats by this id.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the change committed its transaction's work (the transaction's time).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time: OffsetDateTime,
    /// The product (`product.*`, `stock.*`) or order (`order.*`) the event is about.
    pub resource_id: Uuid,
    /// The resource after the change: an `Order` for `order.*`; a `Product` for `product.*` and
    /// `stock.low` (for `product.deleted`, as it was when deleted); for `stock.adjusted`, the ledger row
    /// and the product, as `POST /products/{id}/stock-adjustments` answers them.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The event's place in the feed (pass as `after` to read the events that follow it).
    pub cursor: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type,
            time: e.occurred_at,
            resource_id: e.resource_id,
            data: e.data,
            cursor: e.position.encode(),
        }
    }
}

/// A page of the event feed.
#[derive(Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct FeedView {
    /// In feed order: the changes of any one resource in the order they committed. Empty when nothing
    /// new has committed.
    pub items: Vec<EventView>,
    /// Pass as `after` to read on: the last event's cursor, or the `after` given when there is nothing new.
    /// Never null: a reader polls again from it.
    pub next_cursor: String,
}

/// `GET /health`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct HealthView {
    #[schema(example = "ok")]
    pub status: String,
}
