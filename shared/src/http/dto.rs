//! The request bodies of the API, turned into domain commands with every field error collected. (What responses
//! serialize is the API's representation, in `crate::views`.)

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::order::{
    NewFulfilment, NewOrder, NewReturn, RequestedLine, ReturnLine, ReturnReason, parse_hold,
};
use crate::domain::product::{NewProduct, ProductPatch, StockPolicy};
use crate::domain::stock::{MovementReason, StockAdjustment};
use crate::domain::{
    Currency, CustomerRef, Description, Error, Note, PriceMinor, ProductId, ProductName, Quantity,
    Sku, StockLevel, Validator,
};

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /products`. (Fields are optional in the type so that a missing one is reported with the others.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "MUG-BLUE-01", "name": "Blue mug", "price_minor": 1250, "currency": "EUR", "on_hand": 40, "low_stock_threshold": 5}))]
pub struct CreateProductBody {
    /// Stock keeping unit, unique across products. Case-sensitive.
    #[schema(value_type = String, required = true, pattern = r"^[A-Za-z0-9._/-]{1,64}$", example = "MUG-BLUE-01")]
    pub sku: Option<String>,
    /// Trimmed; 1 to 200 characters, not all blank.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"\S", example = "Blue mug")]
    pub name: Option<String>,
    /// Trimmed; 1 to 2000 characters.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// Price in minor units of the currency (cents for EUR).
    #[schema(value_type = i64, required = true, minimum = 0, example = 1250)]
    pub price_minor: Option<i64>,
    /// ISO 4217 code of a current currency, upper case (the document lists every accepted code).
    #[schema(value_type = String, required = true, pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: Option<String>,
    /// Initial stock, recorded in the ledger as `received`. Default 0.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, default = 0)]
    pub on_hand: Option<i64>,
    /// Available stock at or below which the product counts as low on stock.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub low_stock_threshold: Option<i64>,
    /// Units that may be ordered beyond what is on hand (backorders, pre-orders): available stock may go as
    /// low as minus this. Default 0: never.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, default = 0)]
    pub backorder_limit: Option<i64>,
    /// Units kept on hand that no order takes (not counted in available). Default 0. Must leave available
    /// stock at or above minus the backorder limit (409 otherwise).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, default = 0)]
    pub safety_stock: Option<i64>,
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
        let backorder_limit = v.check(
            "/backorder_limit",
            StockLevel::parse(body.backorder_limit.unwrap_or(0)),
        );
        let safety_stock = v.check(
            "/safety_stock",
            StockLevel::parse(body.safety_stock.unwrap_or(0)),
        );
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
                policy: StockPolicy {
                    backorder_limit: backorder_limit?.get(),
                    safety_stock: safety_stock?.get(),
                },
            })
        })();
        v.finish(product)
    }
}

/// `PATCH /products/{id}`: absent fields stay as they are; `null` clears the nullable ones. At least one
/// field must be given. Stock is changed with stock adjustments, never here.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price_minor": 1390, "description": null}))]
pub struct UpdateProductBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, minimum = 0)]
    pub price_minor: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub low_stock_threshold: Option<Option<i64>>,
    /// See `CreateProductBody`; lowering it below what backorders owe is 409.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub backorder_limit: Option<Option<i64>>,
    /// See `CreateProductBody`; more than on hand can keep back is 409.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub safety_stock: Option<Option<i64>>,
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
        let backorder_limit = not_null(
            &mut v,
            "/backorder_limit",
            body.backorder_limit,
            StockLevel::parse,
        );
        let safety_stock = not_null(
            &mut v,
            "/safety_stock",
            body.safety_stock,
            StockLevel::parse,
        );
        // Each field is `None` (absent), `Some(None)` (failed), or `Some(Some(value))`.
        let patch = (|| {
            Some(ProductPatch {
                name: name.map(|n| n.ok_or(())).transpose().ok()?,
                description: description.map(|d| d.ok_or(())).transpose().ok()?,
                price: price.map(|p| p.ok_or(())).transpose().ok()?,
                low_stock_threshold: threshold.map(|t| t.ok_or(())).transpose().ok()?,
                backorder_limit: backorder_limit.map(|l| l.ok_or(())).transpose().ok()?,
                safety_stock: safety_stock.map(|s| s.ok_or(())).transpose().ok()?,
            })
        })();
        v.finish(patch)
    }
}

/// `POST /products/{id}/stock-adjustments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"delta": 24, "reason": "received", "note": "PO-2026-118"}))]
pub struct StockAdjustmentBody {
    /// Change of on-hand stock: positive adds, negative removes; never zero. With `marked_damaged`, the change
    /// of the damaged units instead (positive: units on hand become damaged; negative: sellable again), on
    /// hand unchanged; a negative `damaged` write-off disposes of damaged units first.
    #[schema(value_type = i64, required = true, minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64, example = 24)]
    pub delta: Option<i64>,
    #[schema(value_type = AdjustmentReason, required = true)]
    pub reason: Option<String>,
    /// Trimmed; 1 to 500 characters.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// Why stock is adjusted by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentReason {
    Received,
    Correction,
    Damaged,
    Shrinkage,
    CycleCount,
    ReturnRestock,
    MarkedDamaged,
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": [{"product_id": "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f", "quantity": 2}], "customer_ref": "cart-8812"}))]
pub struct CreateOrderBody {
    /// 1 to 100 lines; lines for the same product are summed.
    #[schema(value_type = Vec<OrderLineBody>, required = true, min_items = 1, max_items = 100)]
    pub lines: Option<Vec<OrderLineBody>>,
    /// The client's own reference (customer, cart). Trimmed; 1 to 255 characters.
    #[schema(max_length = 255)]
    pub customer_ref: Option<String>,
    /// How long the order holds its stock, in seconds (1 minute to 24 hours); the service's configured
    /// default (30 minutes unless its operator chose another) when absent. A pending order still pending
    /// then expires: it is cancelled with the reason `expired` and its stock released.
    #[schema(minimum = 60, maximum = 86_400, example = 900)]
    pub hold_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineBody {
    #[schema(value_type = uuid::Uuid, required = true)]
    pub product_id: Option<String>,
    /// 1 to 1,000,000 (also for all lines of one product together).
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 1_000_000)]
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
        let hold = body
            .hold_seconds
            .map(|h| v.check("/hold_seconds", parse_hold(h)));
        let lines = lines.and_then(|lines| parse_lines(&mut v, lines));
        let customer_ref = match customer_ref {
            None => Some(None),
            Some(c) => c.map(Some),
        };
        let hold = match hold {
            None => Some(None),
            Some(h) => h.map(Some),
        };
        let ((lines, customer_ref), hold) = v.finish(lines.zip(customer_ref).zip(hold))?;
        let mut order = NewOrder::new(lines, customer_ref)?;
        order.hold = hold;
        Ok(order)
    }
}

/// The product and the quantity of line `i` of a request body, each checked (and reported) on its own.
fn line_fields(
    v: &mut Validator,
    i: usize,
    product_id: Option<String>,
    quantity: Option<i64>,
) -> (Option<ProductId>, Option<Quantity>) {
    let product_id = v.required(&format!("/lines/{i}/product_id"), product_id, |id| {
        Uuid::try_parse(&id)
            .map(ProductId::from)
            .map_err(|_| "product_id must be a UUID".to_owned())
    });
    let quantity = v.required(&format!("/lines/{i}/quantity"), quantity, Quantity::parse);
    (product_id, quantity)
}

/// Parses every line before giving up, so that all bad lines are reported together.
fn parse_lines(v: &mut Validator, lines: Vec<OrderLineBody>) -> Option<Vec<RequestedLine>> {
    let parsed: Vec<Option<RequestedLine>> = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let (product_id, quantity) = line_fields(v, i, line.product_id, line.quantity);
            Some(RequestedLine {
                product_id: product_id?,
                quantity: quantity?,
            })
        })
        .collect();
    parsed.into_iter().collect()
}

/// `POST /orders/{id}/fulfilments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": [{"product_id": "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f", "quantity": 1}]}))]
pub struct CreateFulfilmentBody {
    /// 1 to 100 lines, each a product of the order and the units of it to ship now (at most what its line has
    /// left); lines for the same product are summed.
    #[schema(value_type = Vec<OrderLineBody>, required = true, min_items = 1, max_items = 100)]
    pub lines: Option<Vec<OrderLineBody>>,
}

impl TryFrom<CreateFulfilmentBody> for NewFulfilment {
    type Error = Error;

    fn try_from(body: CreateFulfilmentBody) -> Result<Self, Error> {
        let mut v = Validator::new();
        let lines = v.required("/lines", body.lines, Ok::<_, String>);
        let lines = lines.and_then(|lines| parse_lines(&mut v, lines));
        NewFulfilment::new(v.finish(lines)?)
    }
}

/// `POST /orders/{id}/returns`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": [{"product_id": "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f", "quantity": 1, "restock": true}], "reason": "unwanted"}))]
pub struct CreateReturnBody {
    /// 1 to 100 lines, one per product of the order, each at most what its line shipped and has not had back.
    #[schema(value_type = Vec<ReturnLineBody>, required = true, min_items = 1, max_items = 100)]
    pub lines: Option<Vec<ReturnLineBody>>,
    #[schema(value_type = ReturnReason, required = true)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineBody {
    #[schema(value_type = uuid::Uuid, required = true)]
    pub product_id: Option<String>,
    /// 1 to 1,000,000.
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 1_000_000)]
    pub quantity: Option<i64>,
    /// `true`: the units go back on hand, to be sold again; `false`: they do not (the ledger records them).
    #[schema(value_type = bool, required = true)]
    pub restock: Option<bool>,
    /// With `restock`: the units go back on hand as damaged stock, not sellable. Default `false`.
    #[serde(default)]
    pub damaged: bool,
}

impl TryFrom<CreateReturnBody> for NewReturn {
    type Error = Error;

    fn try_from(body: CreateReturnBody) -> Result<Self, Error> {
        let mut v = Validator::new();
        let lines = v.required("/lines", body.lines, Ok::<_, String>);
        let reason = v.required("/reason", body.reason, |r| ReturnReason::parse(&r));
        let lines: Option<Vec<ReturnLine>> = lines.and_then(|lines| {
            let parsed: Vec<Option<ReturnLine>> = lines
                .into_iter()
                .enumerate()
                .map(|(i, line)| {
                    let (product_id, quantity) =
                        line_fields(&mut v, i, line.product_id, line.quantity);
                    let restock = v.required(
                        &format!("/lines/{i}/restock"),
                        line.restock,
                        Ok::<_, String>,
                    );
                    Some(ReturnLine {
                        product_id: product_id?,
                        quantity: quantity?.get(),
                        restock: restock?,
                        damaged: line.damaged,
                    })
                })
                .collect();
            parsed.into_iter().collect()
        });
        let (lines, reason) = v.finish(lines.zip(reason))?;
        NewReturn::new(lines, reason)
    }
}

/// `POST /orders/{id}/hold`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hold_seconds": 3600}))]
pub struct ExtendHoldBody {
    /// Hold the order's stock until this many seconds from now (60 to 86400), unless it is held longer already.
    #[schema(value_type = i64, required = true, minimum = 60, maximum = 86400, example = 3600)]
    pub hold_seconds: Option<i64>,
}

impl TryFrom<ExtendHoldBody> for std::time::Duration {
    type Error = Error;

    fn try_from(body: ExtendHoldBody) -> Result<Self, Error> {
        let seconds = body
            .hold_seconds
            .ok_or_else(|| Error::validation("/hold_seconds", "hold_seconds is required"))?;
        parse_hold(seconds).map_err(|detail| Error::validation("/hold_seconds", detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_adjustment_reasons_are_the_accepted_ones() {
        let documented = [
            AdjustmentReason::Received,
            AdjustmentReason::Correction,
            AdjustmentReason::Damaged,
            AdjustmentReason::Shrinkage,
            AdjustmentReason::CycleCount,
            AdjustmentReason::ReturnRestock,
            AdjustmentReason::MarkedDamaged,
        ];
        let names: Vec<serde_json::Value> = documented
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        let accepted: Vec<serde_json::Value> = MovementReason::ADJUSTMENTS
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        assert_eq!(names, accepted);
    }
}
