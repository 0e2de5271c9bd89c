//! Orders: how a request becomes reserved stock, and which status changes are allowed.

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::page::{MAX_PAGE_LINES, Page, PageRequest};
use super::product::Product;
use super::stock::MovementReason;
use super::values::MAX_QUANTITY;
use super::{
    CustomerRef, Error, FieldError, FulfilmentId, OrderId, ProductId, Quantity, Remaining,
    ReturnId, Shortage,
};

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;

/// How long a pending order holds its stock unless its request or the configuration says otherwise.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(30 * 60);
/// The shortest and longest hold a client may ask for.
pub const MIN_HOLD: Duration = Duration::from_secs(60);
pub const MAX_HOLD: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a hold in seconds, within [`MIN_HOLD`] and [`MAX_HOLD`].
pub fn parse_hold(seconds: i64) -> Result<Duration, String> {
    u64::try_from(seconds)
        .ok()
        .map(Duration::from_secs)
        .filter(|hold| (MIN_HOLD..=MAX_HOLD).contains(hold))
        .ok_or_else(|| {
            format!(
                "hold_seconds must be from {} to {}",
                MIN_HOLD.as_secs(),
                MAX_HOLD.as_secs()
            )
        })
}

/// Why a cancelled order was cancelled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Cancelled with `POST /orders/{id}/cancel`.
    Requested,
    /// Its hold ended before it was fulfilled or cancelled.
    Expired,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "requested" => Ok(Self::Requested),
            "expired" => Ok(Self::Expired),
            _ => Err(format!("unknown cancel reason {value}")),
        }
    }
}

/// Where an order is in its life: `pending` holds stock, `partially_fulfilled` shipped some of it and holds the
/// rest, `fulfilled` shipped it all, `cancelled` released what had not shipped.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    PartiallyFulfilled,
    Fulfilled,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::PartiallyFulfilled => "partially_fulfilled",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "pending" => Ok(Self::Pending),
            "partially_fulfilled" => Ok(Self::PartiallyFulfilled),
            "fulfilled" => Ok(Self::Fulfilled),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(
                "status must be one of pending, partially_fulfilled, fulfilled, cancelled"
                    .to_owned(),
            ),
        }
    }

    /// Whether an order in this status holds stock: it can still be fulfilled, cancelled, expired or held longer.
    pub fn holds_stock(self) -> bool {
        matches!(self, Self::Pending | Self::PartiallyFulfilled)
    }

    /// What `action` does to an order in this status: a change, nothing (it was done already), or a conflict.
    pub fn apply(self, action: OrderAction) -> Result<Transition, Error> {
        match (self, action) {
            (status, _) if status.holds_stock() => Ok(Transition::To(action.target())),
            (status, action) if status == action.target() => Ok(Transition::AlreadyDone),
            (status, action) => Err(Error::Conflict(format!(
                "a {} order cannot be {}",
                status.as_str(),
                action.target().as_str()
            ))),
        }
    }
}

/// The ways an order that holds stock ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    /// Releases the stock it holds.
    Cancel,
    /// Ships everything left: on hand and reserved both drop by what each line has left.
    Fulfill,
    /// Its hold ended: cancelled with the reason `expired`, releasing the stock (done by the expire-orders
    /// job, never by a client).
    Expire,
}

impl OrderAction {
    pub fn target(self) -> OrderStatus {
        match self {
            Self::Cancel | Self::Expire => OrderStatus::Cancelled,
            Self::Fulfill => OrderStatus::Fulfilled,
        }
    }

    /// Why the order ends cancelled, for the actions that cancel it.
    pub fn cancel_reason(self) -> Option<CancelReason> {
        match self {
            Self::Cancel => Some(CancelReason::Requested),
            Self::Expire => Some(CancelReason::Expired),
            Self::Fulfill => None,
        }
    }

    /// The ledger reason of the stock movements this action writes.
    pub fn reason(self) -> MovementReason {
        match self {
            Self::Cancel => MovementReason::OrderReleased,
            Self::Expire => MovementReason::OrderExpired,
            Self::Fulfill => MovementReason::OrderFulfilled,
        }
    }

    /// `(on_hand_delta, reserved_delta)` of a line with `quantity` units left.
    pub fn stock_deltas(self, quantity: i64) -> (i64, i64) {
        match self {
            Self::Cancel | Self::Expire => (0, -quantity),
            Self::Fulfill => (-quantity, -quantity),
        }
    }
}

/// What extending a hold to `now + hold` does to an order in `status` whose hold ends at `expires_at`: the new
/// end (`Some`), nothing (`None`: it holds its stock that long already; a hold is never shortened), or a conflict
/// (the order holds no stock any more, or its hold has ended and expiry is due to release its stock).
pub fn extend_hold(
    status: OrderStatus,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
    hold: Duration,
) -> Result<Option<OffsetDateTime>, Error> {
    if !status.holds_stock() {
        return Err(Error::Conflict(format!(
            "a {} order holds no stock: only a pending or partially fulfilled order's hold can be extended",
            status.as_str()
        )));
    }
    if expires_at <= now {
        return Err(Error::Conflict(
            "the order's hold has ended: its stock is being released".to_owned(),
        ));
    }
    let until = now + hold;
    Ok((until > expires_at).then_some(until))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    To(OrderStatus),
    AlreadyDone,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub status: OrderStatus,
    pub customer_ref: Option<String>,
    pub lines: Vec<OrderLine>,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When a pending order's hold on its stock ends (and the order expires).
    pub expires_at: OffsetDateTime,
    /// Why a cancelled order was cancelled; `None` unless it is.
    pub cancel_reason: Option<CancelReason>,
}

impl Order {
    /// Records a fulfilment planned by [`plan_fulfilment`]: each line's shipped units and the new status.
    pub fn record(&mut self, fulfilment: &Fulfilment, status: OrderStatus) {
        for shipped in &fulfilment.lines {
            if let Some(line) = self
                .lines
                .iter_mut()
                .find(|l| l.product_id == shipped.product_id)
            {
                line.fulfilled += shipped.quantity;
            }
        }
        self.status = status;
        self.updated_at = fulfilment.created_at;
    }

    /// Records a return planned by [`plan_return`]: each line's units back.
    pub fn take_back(&mut self, taken: &Return) {
        for back in &taken.lines {
            if let Some(line) = self
                .lines
                .iter_mut()
                .find(|l| l.product_id == back.product_id)
            {
                line.returned += back.quantity;
            }
        }
        self.updated_at = taken.created_at;
    }
}

/// Why shipped units came back.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReturnReason {
    Unwanted,
    Defective,
    WrongItem,
    NotAsDescribed,
    Other,
}

impl ReturnReason {
    pub const ALL: [Self; 5] = [
        Self::Unwanted,
        Self::Defective,
        Self::WrongItem,
        Self::NotAsDescribed,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unwanted => "unwanted",
            Self::Defective => "defective",
            Self::WrongItem => "wrong_item",
            Self::NotAsDescribed => "not_as_described",
            Self::Other => "other",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == value)
            .ok_or_else(|| {
                "reason must be one of unwanted, defective, wrong_item, not_as_described, other"
                    .to_owned()
            })
    }
}

/// Shipped units of an order that came back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    pub id: ReturnId,
    pub reason: ReturnReason,
    /// In the order's line order.
    pub lines: Vec<ReturnLine>,
    pub created_at: OffsetDateTime,
}

/// Units of one order line that came back, and whether they go back on hand (`restock`) or not, and if they
/// do, whether as damaged stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnLine {
    pub product_id: ProductId,
    pub quantity: i64,
    pub restock: bool,
    /// Restocked as damaged: on hand, but not sellable. Only with `restock`.
    pub damaged: bool,
}

/// A valid return request: 1 to [`MAX_LINES`] lines, one per product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReturn {
    pub lines: Vec<ReturnLine>,
    pub reason: ReturnReason,
}

impl NewReturn {
    pub fn new(lines: Vec<ReturnLine>, reason: ReturnReason) -> Result<Self, Error> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(Error::validation(
                "/lines",
                format!("a return must have from 1 to {MAX_LINES} lines"),
            ));
        }
        let not_on_hand: Vec<FieldError> = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.damaged && !line.restock)
            .map(|(i, _)| {
                FieldError::new(
                    format!("/lines/{i}/damaged"),
                    "damaged units come back on hand: restock them as damaged, or do not restock them",
                )
            })
            .collect();
        if !not_on_hand.is_empty() {
            return Err(Error::Validation(not_on_hand));
        }
        let twice: Vec<FieldError> = lines
            .iter()
            .enumerate()
            .filter(|(i, line)| lines[..*i].iter().any(|l| l.product_id == line.product_id))
            .map(|(i, _)| {
                FieldError::new(
                    format!("/lines/{i}/product_id"),
                    "a return has one line per product",
                )
            })
            .collect();
        if !twice.is_empty() {
            return Err(Error::Validation(twice));
        }
        Ok(Self { lines, reason })
    }
}

/// Decides what a return takes back of `order`: its lines in the order's line order.
///
/// Errors, in this order of precedence: products that are not lines of the order (`Validation`); lines asked
/// for beyond what they shipped and have not had back (`BeyondReturnable`, every such line).
pub fn plan_return(order: &Order, request: &NewReturn) -> Result<Vec<ReturnLine>, Error> {
    let unknown: Vec<FieldError> = request
        .lines
        .iter()
        .enumerate()
        .filter(|(_, r)| !order.lines.iter().any(|l| l.product_id == r.product_id))
        .map(|(i, r)| {
            FieldError::new(
                format!("/lines/{i}/product_id"),
                format!("product {} is not a line of this order", r.product_id),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Validation(unknown));
    }
    let asked = |line: &OrderLine| {
        request
            .lines
            .iter()
            .find(|r| r.product_id == line.product_id)
    };
    let beyond: Vec<Remaining> = order
        .lines
        .iter()
        .filter_map(|line| {
            let asked = asked(line)?;
            (asked.quantity > line.returnable()).then_some(Remaining {
                product_id: line.product_id,
                requested: asked.quantity,
                remaining: line.returnable(),
            })
        })
        .collect();
    if !beyond.is_empty() {
        return Err(Error::BeyondReturnable(beyond));
    }
    Ok(order
        .lines
        .iter()
        .filter_map(|l| asked(l).copied())
        .collect())
}

/// A return that would restock a product deleted from the catalogue since it shipped.
pub fn restock_refused(product: ProductId) -> Error {
    Error::Conflict(format!(
        "product {product} is no longer in the catalogue: return it without restocking"
    ))
}

/// Units of an order shipped together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fulfilment {
    pub id: FulfilmentId,
    /// In the order's line order; only lines with units shipped.
    pub lines: Vec<FulfilmentLine>,
    pub created_at: OffsetDateTime,
}

/// Units of one order line a fulfilment shipped (or asks to ship).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FulfilmentLine {
    pub product_id: ProductId,
    pub quantity: i64,
}

impl Page<Order> {
    /// A page of orders from up to `request.fetch()` rows in list order, which also ends before the order
    /// that would take it over [`MAX_PAGE_LINES`] lines (always holding at least one order).
    pub fn of_orders(mut rows: Vec<Order>, request: PageRequest<OrderId>) -> Self {
        let mut lines = 0;
        let fits = rows
            .iter()
            .take_while(|order| {
                lines += order.lines.len();
                lines <= MAX_PAGE_LINES
            })
            .count()
            .max(1);
        if fits < rows.len() && fits < request.limit as usize {
            // Cut short by size: keep one more row so that `from_rows` sees there is a next page.
            rows.truncate(fits + 1);
            return Self::from_rows(
                rows,
                PageRequest {
                    limit: fits as u32,
                    ..request
                },
            );
        }
        Self::from_rows(rows, request)
    }
}

impl super::Listed for Order {
    type Key = OrderId;

    fn key(&self) -> OrderId {
        self.id
    }
}

impl super::Listed for Fulfilment {
    type Key = FulfilmentId;

    fn key(&self) -> FulfilmentId {
        self.id
    }
}

impl super::Listed for Return {
    type Key = ReturnId;

    fn key(&self) -> ReturnId {
        self.id
    }
}

/// A line with the product's sku, name and price as they were when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    /// Units shipped so far (never more than `quantity`).
    pub fulfilled: i64,
    /// Units that came back (never more than `fulfilled`).
    pub returned: i64,
}

impl OrderLine {
    /// Units not shipped: held while the order holds stock.
    pub fn remaining(&self) -> i64 {
        self.quantity - self.fulfilled
    }

    /// Units shipped and not come back: what a return may take.
    pub fn returnable(&self) -> i64 {
        self.fulfilled - self.returned
    }
}

/// One line of a valid order request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// A valid order request: 1 to [`MAX_LINES`] lines, every product's summed quantity within
/// [`MAX_QUANTITY`]. Holds the lines merged per product, in the order each product first appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    lines: Vec<MergedLine>,
    pub customer_ref: Option<CustomerRef>,
    /// How long the order holds its stock; [`DEFAULT_HOLD`] when `None`.
    pub hold: Option<Duration>,
}

/// All of one product's units in an order, and where the product first appears in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedLine {
    pub product_id: ProductId,
    pub quantity: i64,
    /// Index of the product's first line in the request, for error pointers.
    pub index: usize,
}

impl NewOrder {
    pub fn new(
        lines: Vec<RequestedLine>,
        customer_ref: Option<CustomerRef>,
    ) -> Result<Self, Error> {
        Ok(Self {
            lines: merge_lines(lines, "an order")?,
            customer_ref,
            hold: None,
        })
    }

    /// How long the order holds its stock.
    pub fn hold(&self) -> Duration {
        self.hold.unwrap_or(DEFAULT_HOLD)
    }

    /// The lines, one per product.
    pub fn lines(&self) -> &[MergedLine] {
        &self.lines
    }

    /// The distinct product ids, sorted: the one global order in which every writer locks product rows,
    /// so that concurrent multi-line orders cannot deadlock.
    pub fn lock_order(&self) -> Vec<ProductId> {
        let mut ids: Vec<ProductId> = self.lines.iter().map(|line| line.product_id).collect();
        ids.sort_unstable();
        ids
    }
}

/// A valid fulfilment request: 1 to [`MAX_LINES`] lines, merged per product as an order's are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFulfilment {
    lines: Vec<MergedLine>,
}

impl NewFulfilment {
    pub fn new(lines: Vec<RequestedLine>) -> Result<Self, Error> {
        Ok(Self {
            lines: merge_lines(lines, "a fulfilment")?,
        })
    }

    /// The lines, one per product.
    pub fn lines(&self) -> &[MergedLine] {
        &self.lines
    }
}

/// What a fulfilment ships: the units asked for, or everything the order has left (`POST /orders/{id}/fulfill`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shipment {
    Lines(NewFulfilment),
    Rest,
}

/// Decides what a fulfilment of `shipment` ships of `order`, whose products have `on_hand` units (under lock):
/// its lines (in the order's line order, only lines with units) and the order's status after it.
///
/// Errors, in this order of precedence: the order holds no stock (`Conflict`); products that are not lines of
/// the order (`Validation`); lines asked for beyond what they have left (`BeyondRemaining`, every such line);
/// more units than are on hand, as backordered units are until stock arrives (`Conflict`).
pub fn plan_fulfilment(
    order: &Order,
    shipment: &Shipment,
    on_hand: &HashMap<ProductId, i64>,
) -> Result<(Vec<FulfilmentLine>, OrderStatus), Error> {
    if !order.status.holds_stock() {
        return Err(Error::Conflict(format!(
            "a {} order has nothing left to fulfil",
            order.status.as_str()
        )));
    }
    let asked: HashMap<ProductId, i64> = match shipment {
        Shipment::Rest => order
            .lines
            .iter()
            .map(|l| (l.product_id, l.remaining()))
            .collect(),
        Shipment::Lines(request) => {
            let unknown: Vec<FieldError> = request
                .lines
                .iter()
                .filter(|r| !order.lines.iter().any(|l| l.product_id == r.product_id))
                .map(|r| {
                    FieldError::new(
                        format!("/lines/{}/product_id", r.index),
                        format!("product {} is not a line of this order", r.product_id),
                    )
                })
                .collect();
            if !unknown.is_empty() {
                return Err(Error::Validation(unknown));
            }
            let beyond: Vec<Remaining> = order
                .lines
                .iter()
                .filter_map(|line| {
                    let asked = request
                        .lines
                        .iter()
                        .find(|r| r.product_id == line.product_id)?;
                    (asked.quantity > line.remaining()).then_some(Remaining {
                        product_id: line.product_id,
                        requested: asked.quantity,
                        remaining: line.remaining(),
                    })
                })
                .collect();
            if !beyond.is_empty() {
                return Err(Error::BeyondRemaining(beyond));
            }
            request
                .lines
                .iter()
                .map(|r| (r.product_id, r.quantity))
                .collect()
        }
    };
    let lines: Vec<FulfilmentLine> = order
        .lines
        .iter()
        .filter_map(|line| {
            let quantity = *asked.get(&line.product_id)?;
            (quantity > 0).then_some(FulfilmentLine {
                product_id: line.product_id,
                quantity,
            })
        })
        .collect();
    let waiting: Vec<String> = lines
        .iter()
        .filter_map(|line| {
            let has = on_hand.get(&line.product_id).copied().unwrap_or(0);
            (line.quantity > has).then(|| {
                format!(
                    "product {} has {has} on hand for {} to ship",
                    line.product_id, line.quantity
                )
            })
        })
        .collect();
    if !waiting.is_empty() {
        return Err(Error::Conflict(format!(
            "backordered units ship once stock arrives: {}",
            waiting.join("; ")
        )));
    }
    let all_shipped = order
        .lines
        .iter()
        .all(|line| line.remaining() == asked.get(&line.product_id).copied().unwrap_or(0));
    let status = if all_shipped {
        OrderStatus::Fulfilled
    } else {
        OrderStatus::PartiallyFulfilled
    };
    Ok((lines, status))
}

/// Merges `lines` of `what` (an order, a fulfilment) per product, in the order each product first appears:
/// 1 to [`MAX_LINES`] lines, every product's sum within [`MAX_QUANTITY`].
fn merge_lines(lines: Vec<RequestedLine>, what: &str) -> Result<Vec<MergedLine>, Error> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(Error::validation(
            "/lines",
            format!("{what} must have from 1 to {MAX_LINES} lines"),
        ));
    }
    let mut merged: Vec<MergedLine> = Vec::with_capacity(lines.len());
    let mut position: HashMap<ProductId, usize> = HashMap::with_capacity(lines.len());
    let mut errors = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        match position.get(&line.product_id) {
            Some(&at) => {
                merged[at].quantity += line.quantity.get();
                if merged[at].quantity > MAX_QUANTITY {
                    errors.push(FieldError::new(
                        format!("/lines/{index}/quantity"),
                        format!("the lines for this product add up to more than {MAX_QUANTITY}"),
                    ));
                }
            }
            None => {
                position.insert(line.product_id, merged.len());
                merged.push(MergedLine {
                    product_id: line.product_id,
                    quantity: line.quantity.get(),
                    index,
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    Ok(merged)
}

/// What a store read (under lock) of a product an order names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSnapshot {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    /// Units an order may reserve: available stock plus what may be backordered.
    pub orderable: i64,
}

impl From<&Product> for ProductSnapshot {
    fn from(p: &Product) -> Self {
        Self {
            id: p.id,
            sku: p.sku.clone(),
            name: p.name.clone(),
            price_minor: p.price_minor,
            currency: p.currency.clone(),
            orderable: p.orderable(),
        }
    }
}

/// The lines, total and currency of an order that can be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPlan {
    pub lines: Vec<OrderLine>,
    pub total_minor: i64,
    pub currency: String,
}

/// Decides whether an order can be placed from the locked products, and prices it.
///
/// Errors, in this order of precedence: every unknown product (`UnknownProducts`); mixed currencies or a
/// total that does not fit in 64 bits (`Validation`); every line short of available stock
/// (`InsufficientStock`).
pub fn plan_order(order: &NewOrder, products: &[ProductSnapshot]) -> Result<OrderPlan, Error> {
    let by_id: HashMap<ProductId, &ProductSnapshot> = products.iter().map(|p| (p.id, p)).collect();

    let unknown: Vec<FieldError> = order
        .lines
        .iter()
        .filter(|line| !by_id.contains_key(&line.product_id))
        .map(|line| {
            FieldError::new(
                format!("/lines/{}/product_id", line.index),
                format!("product {} does not exist", line.product_id),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(Error::UnknownProducts(unknown));
    }

    let found = |line: &MergedLine| by_id[&line.product_id];
    let currency = found(&order.lines[0]).currency.clone();
    let mut invalid: Vec<FieldError> = order
        .lines
        .iter()
        .filter(|line| found(line).currency != currency)
        .map(|line| {
            FieldError::new(
                format!("/lines/{}/product_id", line.index),
                format!(
                    "product is priced in {}, but the order is in {currency}: one order has one currency",
                    found(line).currency
                ),
            )
        })
        .collect();

    let mut lines = Vec::with_capacity(order.lines.len());
    let mut total: Option<i64> = Some(0);
    for line in &order.lines {
        let product = found(line);
        let line_total = product.price_minor.checked_mul(line.quantity);
        total = total
            .zip(line_total)
            .and_then(|(sum, add)| sum.checked_add(add));
        lines.push(OrderLine {
            product_id: product.id,
            sku: product.sku.clone(),
            name: product.name.clone(),
            quantity: line.quantity,
            unit_price_minor: product.price_minor,
            line_total_minor: line_total.unwrap_or(i64::MAX),
            fulfilled: 0,
            returned: 0,
        });
    }
    if total.is_none() {
        invalid.push(FieldError::new(
            "/lines",
            "the order total is larger than the largest amount this API can represent",
        ));
    }
    if !invalid.is_empty() {
        return Err(Error::Validation(invalid));
    }

    let shortages: Vec<Shortage> = order
        .lines
        .iter()
        .filter_map(|line| {
            let product = found(line);
            (product.orderable < line.quantity).then_some(Shortage {
                product_id: line.product_id,
                requested: line.quantity,
                available: product.orderable.max(0),
            })
        })
        .collect();
    if !shortages.is_empty() {
        return Err(Error::InsufficientStock(shortages));
    }

    Ok(OrderPlan {
        lines,
        total_minor: total.unwrap_or_default(),
        currency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::new_id;

    fn line(product_id: ProductId, quantity: i64) -> RequestedLine {
        RequestedLine {
            product_id,
            quantity: Quantity::parse(quantity).unwrap(),
        }
    }

    fn snapshot(
        id: ProductId,
        price: i64,
        currency: &str,
        on_hand: i64,
        reserved: i64,
    ) -> ProductSnapshot {
        ProductSnapshot {
            id,
            sku: format!("SKU-{price}"),
            name: "Thing".into(),
            price_minor: price,
            currency: currency.into(),
            orderable: on_hand - reserved,
        }
    }

    #[test]
    fn lines_for_the_same_product_are_summed_in_first_appearance_order() {
        let (a, b) = (new_id(), new_id());
        let order = NewOrder::new(vec![line(b, 1), line(a, 2), line(b, 3)], None).unwrap();
        let merged: Vec<(ProductId, i64, usize)> = order
            .lines()
            .iter()
            .map(|l| (l.product_id, l.quantity, l.index))
            .collect();
        assert_eq!(merged, vec![(b, 4, 0), (a, 2, 1)]);
    }

    #[test]
    fn the_lock_order_is_sorted_by_product_id() {
        let ids: Vec<ProductId> = (0..5).map(|_| new_id()).collect();
        let lines = ids.iter().rev().map(|id| line(*id, 1)).collect();
        assert_eq!(NewOrder::new(lines, None).unwrap().lock_order(), ids);
    }

    #[test]
    fn an_order_needs_one_to_a_hundred_lines() {
        assert!(matches!(
            NewOrder::new(vec![], None),
            Err(Error::Validation(_))
        ));
        let many = (0..101).map(|_| line(new_id(), 1)).collect();
        assert!(matches!(
            NewOrder::new(many, None),
            Err(Error::Validation(_))
        ));
        let hundred = (0..100).map(|_| line(new_id(), 1)).collect();
        assert!(NewOrder::new(hundred, None).is_ok());
    }

    #[test]
    fn summed_lines_may_not_exceed_the_largest_quantity() {
        let a = new_id();
        let Err(Error::Validation(errors)) =
            NewOrder::new(vec![line(a, 600_000), line(a, 600_000)], None)
        else {
            panic!("expected a validation error");
        };
        assert_eq!(errors[0].pointer, "/lines/1/quantity");
    }

    #[test]
    fn a_plan_prices_every_line_and_totals_them() {
        let (a, b) = (new_id(), new_id());
        let order = NewOrder::new(vec![line(a, 2), line(b, 1)], None).unwrap();
        let plan = plan_order(
            &order,
            &[
                snapshot(a, 250, "EUR", 5, 0),
                snapshot(b, 1000, "EUR", 1, 0),
            ],
        )
        .unwrap();
        assert_eq!(plan.total_minor, 1500);
        assert_eq!(plan.currency, "EUR");
        assert_eq!(plan.lines[0].line_total_minor, 500);
        assert_eq!(plan.lines[1].unit_price_minor, 1000);
    }

    #[test]
    fn every_unknown_product_is_reported() {
        let (a, b, c) = (new_id(), new_id(), new_id());
        let order = NewOrder::new(vec![line(a, 1), line(b, 1), line(c, 1)], None).unwrap();
        let Err(Error::UnknownProducts(errors)) =
            plan_order(&order, &[snapshot(b, 1, "EUR", 9, 0)])
        else {
            panic!("expected unknown products");
        };
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/lines/0/product_id", "/lines/2/product_id"]);
    }

    #[test]
    fn every_short_line_is_reported_with_what_is_available() {
        let (a, b, c) = (new_id(), new_id(), new_id());
        let order = NewOrder::new(vec![line(a, 3), line(b, 1), line(c, 2)], None).unwrap();
        let products = [
            snapshot(a, 1, "EUR", 5, 3),
            snapshot(b, 1, "EUR", 1, 0),
            snapshot(c, 1, "EUR", 1, 0),
        ];
        let Err(Error::InsufficientStock(shortages)) = plan_order(&order, &products) else {
            panic!("expected a shortage");
        };
        assert_eq!(
            shortages,
            vec![
                Shortage {
                    product_id: a,
                    requested: 3,
                    available: 2
                },
                Shortage {
                    product_id: c,
                    requested: 2,
                    available: 1
                },
            ]
        );
    }

    #[test]
    fn one_order_has_one_currency() {
        let (a, b) = (new_id(), new_id());
        let order = NewOrder::new(vec![line(a, 1), line(b, 1)], None).unwrap();
        let result = plan_order(
            &order,
            &[snapshot(a, 1, "EUR", 9, 0), snapshot(b, 1, "USD", 9, 0)],
        );
        let Err(Error::Validation(errors)) = result else {
            panic!("expected a validation error");
        };
        assert_eq!(errors[0].pointer, "/lines/1/product_id");
    }

    #[test]
    fn a_total_that_overflows_is_a_validation_error() {
        let (a, b) = (new_id(), new_id());
        let order = NewOrder::new(vec![line(a, 1_000_000), line(b, 1)], None).unwrap();
        let result = plan_order(
            &order,
            &[
                snapshot(a, i64::MAX / 2, "EUR", 2_000_000, 0),
                snapshot(b, 1, "EUR", 1, 0),
            ],
        );
        let Err(Error::Validation(errors)) = result else {
            panic!("expected a validation error");
        };
        assert_eq!(errors[0].pointer, "/lines");
    }

    #[test]
    fn statuses_serialize_as_they_parse() {
        for status in [
            OrderStatus::Pending,
            OrderStatus::PartiallyFulfilled,
            OrderStatus::Fulfilled,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
        }
    }

    #[test]
    fn pending_orders_can_be_cancelled_or_fulfilled_once() {
        use OrderAction::*;
        use OrderStatus::*;
        assert_eq!(Pending.apply(Cancel).unwrap(), Transition::To(Cancelled));
        assert_eq!(Pending.apply(Fulfill).unwrap(), Transition::To(Fulfilled));
        assert_eq!(Cancelled.apply(Cancel).unwrap(), Transition::AlreadyDone);
        assert_eq!(Fulfilled.apply(Fulfill).unwrap(), Transition::AlreadyDone);
        assert!(matches!(Fulfilled.apply(Cancel), Err(Error::Conflict(_))));
        assert!(matches!(Cancelled.apply(Fulfill), Err(Error::Conflict(_))));
        assert_eq!(Pending.apply(Expire).unwrap(), Transition::To(Cancelled));
        assert_eq!(Expire.cancel_reason(), Some(CancelReason::Expired));
        assert_eq!(Cancel.cancel_reason(), Some(CancelReason::Requested));
    }

    fn placed(lines: &[(ProductId, i64, i64)], status: OrderStatus) -> Order {
        let now = OffsetDateTime::now_utc();
        Order {
            id: new_id(),
            status,
            customer_ref: None,
            lines: lines
                .iter()
                .map(|&(product_id, quantity, fulfilled)| OrderLine {
                    product_id,
                    sku: "S".into(),
                    name: "N".into(),
                    quantity,
                    unit_price_minor: 1,
                    line_total_minor: quantity,
                    fulfilled,
                    returned: 0,
                })
                .collect(),
            total_minor: 0,
            currency: "EUR".into(),
            created_at: now,
            updated_at: now,
            expires_at: now,
            cancel_reason: None,
        }
    }

    /// Enough on hand of every product of `order` to ship all of it.
    fn plenty(order: &Order) -> HashMap<ProductId, i64> {
        order
            .lines
            .iter()
            .map(|l| (l.product_id, l.quantity))
            .collect()
    }

    fn ship(lines: &[(ProductId, i64)]) -> Shipment {
        Shipment::Lines(
            NewFulfilment::new(lines.iter().map(|&(id, q)| line(id, q)).collect()).unwrap(),
        )
    }

    #[test]
    fn a_fulfilment_ships_what_is_asked_in_line_order_and_says_what_follows() {
        let (a, b) = (new_id(), new_id());
        let order = placed(&[(a, 4, 1), (b, 2, 0)], OrderStatus::PartiallyFulfilled);
        let (lines, status) =
            plan_fulfilment(&order, &ship(&[(b, 1), (a, 1), (a, 1)]), &plenty(&order)).unwrap();
        let lines: Vec<(ProductId, i64)> =
            lines.iter().map(|l| (l.product_id, l.quantity)).collect();
        assert_eq!(lines, vec![(a, 2), (b, 1)]);
        assert_eq!(status, OrderStatus::PartiallyFulfilled);
        let (_, status) =
            plan_fulfilment(&order, &ship(&[(a, 3), (b, 2)]), &plenty(&order)).unwrap();
        assert_eq!(status, OrderStatus::Fulfilled, "the last units fulfil it");
        let (rest, status) = plan_fulfilment(&order, &Shipment::Rest, &plenty(&order)).unwrap();
        let rest: Vec<(ProductId, i64)> = rest.iter().map(|l| (l.product_id, l.quantity)).collect();
        assert_eq!(
            (rest, status),
            (vec![(a, 3), (b, 2)], OrderStatus::Fulfilled)
        );
    }

    #[test]
    fn backordered_units_ship_once_stock_has_arrived() {
        let (a, b) = (new_id(), new_id());
        let order = placed(&[(a, 4, 0), (b, 2, 0)], OrderStatus::Pending);
        let on_hand = HashMap::from([(a, 3), (b, 2)]);
        let waiting = plan_fulfilment(&order, &Shipment::Rest, &on_hand);
        assert!(
            matches!(waiting, Err(Error::Conflict(ref why)) if why.contains(&a.to_string()) && !why.contains(&b.to_string())),
            "{waiting:?}"
        );
        let (_, status) = plan_fulfilment(&order, &ship(&[(a, 3), (b, 2)]), &on_hand).unwrap();
        assert_eq!(
            status,
            OrderStatus::PartiallyFulfilled,
            "what is on hand ships"
        );
    }

    #[test]
    fn a_fulfilment_beyond_what_is_left_names_every_such_line() {
        let (a, b, c) = (new_id(), new_id(), new_id());
        let order = placed(
            &[(a, 4, 3), (b, 2, 0), (c, 1, 0)],
            OrderStatus::PartiallyFulfilled,
        );
        let Err(Error::BeyondRemaining(lines)) =
            plan_fulfilment(&order, &ship(&[(c, 2), (b, 2), (a, 2)]), &plenty(&order))
        else {
            panic!("expected beyond_remaining");
        };
        let lines: Vec<(ProductId, i64, i64)> = lines
            .iter()
            .map(|l| (l.product_id, l.requested, l.remaining))
            .collect();
        assert_eq!(lines, vec![(a, 2, 1), (c, 2, 1)]);
    }

    #[test]
    fn a_fulfilment_names_products_that_are_not_lines_and_needs_an_order_holding_stock() {
        let (a, x) = (new_id(), new_id());
        let order = placed(&[(a, 4, 0)], OrderStatus::Pending);
        let Err(Error::Validation(errors)) =
            plan_fulfilment(&order, &ship(&[(a, 9), (x, 1)]), &plenty(&order))
        else {
            panic!("expected a validation error");
        };
        assert_eq!(errors[0].pointer, "/lines/1/product_id");
        for status in [OrderStatus::Fulfilled, OrderStatus::Cancelled] {
            let order = placed(&[(a, 4, 0)], status);
            for shipment in [ship(&[(a, 1)]), Shipment::Rest] {
                assert!(
                    matches!(
                        plan_fulfilment(&order, &shipment, &plenty(&order)),
                        Err(Error::Conflict(_))
                    ),
                    "{status:?}"
                );
            }
        }
    }

    #[test]
    fn a_return_takes_back_at_most_what_shipped_and_has_not_come_back() {
        let (a, b, x) = (new_id(), new_id(), new_id());
        let mut order = placed(&[(a, 4, 3), (b, 2, 2)], OrderStatus::Cancelled);
        order.lines[0].returned = 1;
        let back = |lines: &[(ProductId, i64)]| {
            NewReturn::new(
                lines
                    .iter()
                    .map(|&(product_id, quantity)| ReturnLine {
                        product_id,
                        quantity,
                        restock: true,
                        damaged: false,
                    })
                    .collect(),
                ReturnReason::Other,
            )
        };
        let lines = plan_return(&order, &back(&[(b, 2), (a, 2)]).unwrap()).unwrap();
        let lines: Vec<(ProductId, i64)> =
            lines.iter().map(|l| (l.product_id, l.quantity)).collect();
        assert_eq!(
            lines,
            vec![(a, 2), (b, 2)],
            "in line order, a cancelled order's too"
        );
        let Err(Error::BeyondReturnable(beyond)) = plan_return(&order, &back(&[(a, 3)]).unwrap())
        else {
            panic!("expected beyond_returnable");
        };
        assert_eq!((beyond[0].requested, beyond[0].remaining), (3, 2));
        let Err(Error::Validation(errors)) = plan_return(&order, &back(&[(a, 1), (x, 1)]).unwrap())
        else {
            panic!("expected a validation error");
        };
        assert_eq!(errors[0].pointer, "/lines/1/product_id");
        let Err(Error::Validation(errors)) = back(&[(a, 1), (b, 1), (a, 1)]) else {
            panic!("a product named twice");
        };
        assert_eq!(errors[0].pointer, "/lines/2/product_id");
        assert!(matches!(back(&[]), Err(Error::Validation(_))));
        for reason in ReturnReason::ALL {
            assert_eq!(ReturnReason::parse(reason.as_str()), Ok(reason));
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }

    #[test]
    fn a_partially_fulfilled_order_can_be_cancelled_fulfilled_expired_or_held_longer() {
        use OrderAction::*;
        use OrderStatus::*;
        assert_eq!(
            PartiallyFulfilled.apply(Cancel).unwrap(),
            Transition::To(Cancelled)
        );
        assert_eq!(
            PartiallyFulfilled.apply(Fulfill).unwrap(),
            Transition::To(Fulfilled)
        );
        assert_eq!(
            PartiallyFulfilled.apply(Expire).unwrap(),
            Transition::To(Cancelled)
        );
        let now = OffsetDateTime::now_utc();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            extend_hold(PartiallyFulfilled, now + Duration::from_secs(60), now, hour).unwrap(),
            Some(now + hour)
        );
    }

    #[test]
    fn a_hold_is_between_a_minute_and_a_day() {
        assert_eq!(parse_hold(60), Ok(MIN_HOLD));
        assert_eq!(parse_hold(86_400), Ok(MAX_HOLD));
        assert!(parse_hold(59).is_err());
        assert!(parse_hold(86_401).is_err());
        assert!(parse_hold(-1).is_err());
    }

    #[test]
    fn a_hold_is_extended_never_shortened_and_only_while_it_lasts() {
        let now = OffsetDateTime::now_utc();
        let hour = Duration::from_secs(3600);
        let ends = now + Duration::from_secs(600);
        assert_eq!(
            extend_hold(OrderStatus::Pending, ends, now, hour).unwrap(),
            Some(now + hour)
        );
        assert_eq!(
            extend_hold(OrderStatus::Pending, now + 2 * hour, now, hour).unwrap(),
            None,
            "a longer hold stays"
        );
        for (status, expires_at) in [
            (OrderStatus::Pending, now),
            (OrderStatus::Pending, now - hour),
            (OrderStatus::Cancelled, ends),
            (OrderStatus::Fulfilled, ends),
        ] {
            assert!(
                matches!(
                    extend_hold(status, expires_at, now, hour),
                    Err(Error::Conflict(_))
                ),
                "{status:?} ending {expires_at}"
            );
        }
    }
}
