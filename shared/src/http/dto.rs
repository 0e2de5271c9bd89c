//! The JSON of the API: request bodies (turned into domain commands, every field error collected) and the
//! views that responses serialize.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::order::{NewOrder, Order, OrderLine, RequestedLine};
use crate::domain::product::{NewProduct, Product, ProductPatch};
use crate::domain::stock::{MovementReason, StockAdjustment, StockMovement};
use crate::domain::{
    Currency, CustomerRef, Description, Error, Note, Page, PriceMinor, ProductName, Quantity, Sku,
    StockLevel, Validator,
};

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /products`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProductBody {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub on_hand: Option<i64>,
    pub low_stock_threshold: Option<i64>,
}

impl TryFrom<CreateProductBody> for NewProduct {
    type Error = Error;

    fn try_from(body: CreateProductBody) -> Result<Self, Error> {
        let mut v = Validator::new();
        let sku = v.required("/sku", body.sku, Sku::parse);
        let name = v.required("/name", body.name, ProductName::parse);
        let description = body
            .description
            .map(|d| v.check("/description", Description::parse(d)));
        let price = v.required("/price_minor", body.price_minor, PriceMinor::parse);
        let currency = v.required("/currency", body.currency, |c| Currency::parse(&c));
        let on_hand = v.check("/on_hand", StockLevel::parse(body.on_hand.unwrap_or(0)));
        let low_stock_threshold = body
            .low_stock_threshold
            .map(|t| v.check("/low_stock_threshold", StockLevel::parse(t)));
        let product = (|| {
            Some(NewProduct {
                sku: sku?,
                name: name?,
                description: match description {
                    None => None,
                    Some(d) => Some(d?),
                },
                price: price?,
                currency: currency?,
                on_hand: on_hand?,
                low_stock_threshold: match low_stock_threshold {
                    None => None,
                    Some(t) => Some(t?),
                },
            })
        })();
        v.finish(product)
    }
}

/// `PATCH /products/{id}`: absent fields stay as they are; `null` clears the nullable ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductBody {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub price_minor: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub low_stock_threshold: Option<Option<i64>>,
}

/// A field that may be absent but not `null`.
fn not_null<T, U>(
    v: &mut Validator,
    pointer: &str,
    value: Option<Option<T>>,
    parse: impl FnOnce(T) -> Result<U, String>,
) -> Option<Option<U>> {
    value.map(|value| v.required(pointer, value, parse))
}

/// A field that may be absent or `null`.
fn maybe_null<T, U>(
    v: &mut Validator,
    pointer: &str,
    value: Option<Option<T>>,
    parse: impl FnOnce(T) -> Result<U, String>,
) -> Option<Option<Option<U>>> {
    value.map(|value| match value {
        None => Some(None),
        Some(value) => v.check(pointer, parse(value)).map(Some),
    })
}

impl TryFrom<UpdateProductBody> for ProductPatch {
    type Error = Error;

    fn try_from(body: UpdateProductBody) -> Result<Self, Error> {
        let mut v = Validator::new();
        let name = not_null(&mut v, "/name", body.name, ProductName::parse);
        let price = not_null(&mut v, "/price_minor", body.price_minor, PriceMinor::parse);
        let description = maybe_null(&mut v, "/description", body.description, Description::parse);
        let threshold = maybe_null(
            &mut v,
            "/low_stock_threshold",
            body.low_stock_threshold,
            StockLevel::parse,
        );
        // Each field is `None` (absent), `Some(None)` (failed), or `Some(Some(value))`.
        let patch = (|| {
            Some(ProductPatch {
                name: name.map(|n| n.ok_or(())).transpose().ok()?,
                description: description.map(|d| d.ok_or(())).transpose().ok()?,
                price: price.map(|p| p.ok_or(())).transpose().ok()?,
                low_stock_threshold: threshold.map(|t| t.ok_or(())).transpose().ok()?,
            })
        })();
        v.finish(patch)
    }
}

/// `POST /products/{id}/stock-adjustments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustmentBody {
    pub delta: Option<i64>,
    pub reason: Option<String>,
    pub note: Option<String>,
}

impl TryFrom<StockAdjustmentBody> for StockAdjustment {
    type Error = Error;

    fn try_from(body: StockAdjustmentBody) -> Result<Self, Error> {
        let mut v = Validator::new();
        let delta = v.required("/delta", body.delta, StockAdjustment::parse_delta);
        let reason = v.required("/reason", body.reason, |r| {
            MovementReason::parse_adjustment(&r)
        });
        let note = body.note.map(|n| v.check("/note", Note::parse(n)));
        let adjustment = (|| {
            Some(StockAdjustment {
                delta: delta?,
                reason: reason?,
                note: match note {
                    None => None,
                    Some(n) => Some(n?),
                },
            })
        })();
        v.finish(adjustment)
    }
}

/// `POST /orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderBody {
    pub lines: Option<Vec<OrderLineBody>>,
    pub customer_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderLineBody {
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
}

impl TryFrom<CreateOrderBody> for NewOrder {
    type Error = Error;

    fn try_from(body: CreateOrderBody) -> Result<Self, Error> {
        let mut v = Validator::new();
        let lines = v.required("/lines", body.lines, Ok::<_, String>);
        let customer_ref = body
            .customer_ref
            .map(|c| v.check("/customer_ref", CustomerRef::parse(c)));
        let lines: Option<Vec<RequestedLine>> = lines.and_then(|lines| {
            // Parse every line before giving up, so that all bad lines are reported together.
            let parsed: Vec<Option<RequestedLine>> = lines
                .into_iter()
                .enumerate()
                .map(|(i, line)| {
                    let product_id =
                        v.required(&format!("/lines/{i}/product_id"), line.product_id, |id| {
                            Uuid::try_parse(&id).map_err(|_| "product_id must be a UUID".to_owned())
                        });
                    let quantity = v.required(
                        &format!("/lines/{i}/quantity"),
                        line.quantity,
                        Quantity::parse,
                    );
                    Some(RequestedLine {
                        product_id: product_id?,
                        quantity: quantity?,
                    })
                })
                .collect();
            parsed.into_iter().collect()
        });
        let customer_ref = match customer_ref {
            None => Some(None),
            Some(c) => c.map(Some),
        };
        let (lines, customer_ref) = v.finish(lines.zip(customer_ref))?;
        NewOrder::new(lines, customer_ref)
    }
}

/// A product in responses.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProductView {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub low_stock_threshold: Option<i64>,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        Self {
            available: p.available(),
            id: p.id,
            sku: p.sku,
            name: p.name,
            description: p.description,
            price_minor: p.price_minor,
            currency: p.currency,
            on_hand: p.on_hand,
            reserved: p.reserved,
            low_stock_threshold: p.low_stock_threshold,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// An order in responses.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderView {
    pub id: Uuid,
    pub status: String,
    pub customer_ref: Option<String>,
    pub lines: Vec<OrderLineView>,
    pub total_minor: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderLineView {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
}

impl From<OrderLine> for OrderLineView {
    fn from(l: OrderLine) -> Self {
        Self {
            product_id: l.product_id,
            sku: l.sku,
            name: l.name,
            quantity: l.quantity,
            unit_price_minor: l.unit_price_minor,
            line_total_minor: l.line_total_minor,
        }
    }
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        Self {
            id: o.id,
            status: o.status.as_str().to_owned(),
            customer_ref: o.customer_ref,
            lines: o.lines.into_iter().map(Into::into).collect(),
            total_minor: o.total_minor,
            currency: o.currency,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// A ledger row in responses.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MovementView {
    pub id: Uuid,
    pub product_id: Uuid,
    pub order_id: Option<Uuid>,
    pub reason: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<StockMovement> for MovementView {
    fn from(m: StockMovement) -> Self {
        Self {
            id: m.id,
            product_id: m.product_id,
            order_id: m.order_id,
            reason: m.reason.as_str().to_owned(),
            on_hand_delta: m.on_hand_delta,
            reserved_delta: m.reserved_delta,
            on_hand_after: m.on_hand_after,
            reserved_after: m.reserved_after,
            note: m.note,
            created_at: m.created_at,
        }
    }
}

/// `201` of a stock adjustment: the ledger row and the product after it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AdjustmentView {
    pub movement: MovementView,
    pub product: ProductView,
}

/// A page of any list.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PageView<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> PageView<T> {
    pub fn from_page<U: Into<T>>(page: Page<U>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }
    }
}

/// `GET /health`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthView {
    pub status: String,
}
