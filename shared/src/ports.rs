//! Ports: what the services need from storage, one trait per capability. Implemented by the Postgres adapter
//! and by the in-memory adapter used in service and handler tests. Every call carries the request's
//! [`Deadline`], which bounds its waits and statements.

use std::future::Future;

use crate::domain::event::{Event, FeedPage, Position};
use crate::domain::idempotency::{Claim, Once, Replay};
use crate::domain::order::{
    Fulfilment, NewFulfilment, NewOrder, NewReturn, Order, OrderAction, OrderStatus, Return,
};
use crate::domain::product::{NewProduct, Product, ProductFilter, ProductPatch};
use crate::domain::stock::{StockAdjustment, StockMovement};
use crate::domain::{
    Deadline, Error, FulfilmentId, IfMatch, MovementId, OrderId, Page, PageRequest, ProductId,
    ReturnId,
};

/// The product catalogue and its stock.
pub trait ProductStore: Send + Sync {
    fn get_product(
        &self,
        id: ProductId,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Product, Error>> + Send;

    /// Products in id (creation) order.
    fn list_products(
        &self,
        filter: ProductFilter,
        page: PageRequest<ProductId>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Page<Product>, Error>> + Send;

    /// Changes catalogue fields when `if_match` (if given) matches the current version;
    /// `PreconditionFailed` otherwise.
    fn update_product(
        &self,
        id: ProductId,
        patch: ProductPatch,
        if_match: Option<IfMatch>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Product, Error>> + Send;

    /// Removes a product from the catalogue; `Conflict` while pending orders hold some of its stock.
    fn delete_product(
        &self,
        id: ProductId,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The product's ledger, newest first.
    fn list_movements(
        &self,
        id: ProductId,
        page: PageRequest<MovementId>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Page<StockMovement>, Error>> + Send;
}

/// Orders and the stock they reserve.
pub trait OrderStore: Send + Sync {
    fn get_order(
        &self,
        id: OrderId,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Order, Error>> + Send;

    /// Orders newest first, optionally of one status.
    fn list_orders(
        &self,
        status: Option<OrderStatus>,
        page: PageRequest<OrderId>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Page<Order>, Error>> + Send;

    /// An order's fulfilments, oldest first; `NotFound` when the order does not exist.
    fn list_fulfilments(
        &self,
        id: OrderId,
        page: PageRequest<FulfilmentId>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Page<Fulfilment>, Error>> + Send;

    /// An order's returns, oldest first; `NotFound` when the order does not exist.
    fn list_returns(
        &self,
        id: OrderId,
        page: PageRequest<ReturnId>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Page<Return>, Error>> + Send;

    /// Expires up to `limit` pending orders whose hold has ended, oldest hold first, each in a transaction of
    /// its own: cancelled with the reason `expired`, stock released through the ledger (`order_expired`).
    /// An order or product another transaction holds is skipped, never waited for (a later run takes it);
    /// answers the orders it expired.
    fn expire_orders(
        &self,
        limit: u32,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<OrderId>, Error>> + Send;
}

/// The events every change writes in its own transaction (the outbox), and the feed that reads them.
pub trait EventStore: Send + Sync {
    /// Up to `limit` events after `after`, in feed order: only events every earlier one of which has
    /// committed or rolled back, so a reader that follows the positions never misses one.
    fn list_events(
        &self,
        after: Position,
        limit: u32,
        deadline: Deadline,
    ) -> impl Future<Output = Result<FeedPage, Error>> + Send;

    /// The delivered position (where the publisher stands in the feed) and up to `batch` events after it, in
    /// feed order, as [`EventStore::list_events`] reads them. Nothing is held once it has answered: no lock,
    /// no transaction that would hold the feed back while the events are sent.
    fn undelivered_events(
        &self,
        batch: u32,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(Position, Vec<Event>), Error>> + Send;

    /// Moves the delivered position from `from` to `to`; `false`, changing nothing, when it no longer stands
    /// at `from` (another publisher moved it meanwhile).
    fn mark_delivered(
        &self,
        from: Position,
        to: Position,
        deadline: Deadline,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Deletes up to `batch` events older than `retention` that the publisher has delivered, oldest first;
    /// answers how many it deleted.
    fn purge_delivered_events(
        &self,
        retention: std::time::Duration,
        batch: u32,
        deadline: Deadline,
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

/// Where the publisher delivers the event feed: the EventBridge bus (`aws::eventbridge::EventBus`), or a
/// stand-in in tests.
pub trait EventSink: Send + Sync {
    /// Sends `events` in order within `deadline` and answers how many of the first ones were accepted: all of
    /// them, or fewer when one was refused (those after it are not sent, so that a later event of a resource
    /// never arrives before an earlier one). An error means none can be counted on: they are sent again.
    fn publish(
        &self,
        events: &[Event],
        deadline: Deadline,
    ) -> impl Future<Output = Result<usize, Error>> + Send;
}

/// A write that can be made idempotent with a key: every change that creates something or moves stock.
#[derive(Debug, Clone)]
pub enum Write {
    CreateProduct(NewProduct),
    AdjustStock(ProductId, StockAdjustment),
    CreateOrder(NewOrder),
    TransitionOrder(OrderId, OrderAction),
    /// Holds a pending order's stock until this long from now, unless it holds it longer already.
    ExtendHold(OrderId, std::time::Duration),
    /// Ships some units of some lines of an order.
    Fulfil(OrderId, NewFulfilment),
    /// Takes shipped units of an order back.
    Return(OrderId, NewReturn),
}

/// What a [`Write`] produced.
#[derive(Debug, Clone)]
pub enum Written {
    ProductCreated(Product),
    StockAdjusted(StockMovement, Product),
    OrderPlaced(Order),
    OrderTransitioned(Order),
    HoldExtended(Order),
    /// A fulfilment, and its order after it.
    Fulfilled(Fulfilment, Order),
    /// A return, and its order after it.
    Returned(Return, Order),
    /// A change the order had already (cancelling a cancelled order, a hold at least as long): nothing was
    /// written, and nothing is kept under the request's idempotency key, so that repeating a no-op costs no
    /// storage.
    OrderAlreadyDone(Order),
}

impl Written {
    /// Whether the write changed nothing, so that its idempotency key need not keep a response.
    pub fn changed_nothing(&self) -> bool {
        matches!(self, Self::OrderAlreadyDone(_))
    }
}

/// The changes a store makes inside one of its transactions (a Postgres transaction, the memory store's
/// lock): each adapter implements these, and [`Write::apply`] is the one place that picks one for a write.
pub trait Changes: Send {
    /// Creates a product; its initial stock (if any) is written to the ledger as `received`. `SkuTaken` when
    /// the sku exists.
    fn create_product(
        &mut self,
        product: NewProduct,
    ) -> impl Future<Output = Result<Product, Error>> + Send;

    /// Changes on-hand stock and writes the ledger row; `Conflict` when on-hand would drop below zero or below
    /// what is reserved.
    fn adjust_stock(
        &mut self,
        id: ProductId,
        adjustment: StockAdjustment,
    ) -> impl Future<Output = Result<(StockMovement, Product), Error>> + Send;

    /// Places an order all or nothing: locks its products in id order, plans it with
    /// [`crate::domain::order::plan_order`], reserves the stock and writes the order, its lines and the
    /// ledger.
    fn place_order(&mut self, order: NewOrder)
    -> impl Future<Output = Result<Order, Error>> + Send;

    /// Cancels or fulfils a pending order and moves its stock accordingly: `OrderTransitioned`, or
    /// `OrderAlreadyDone` when the same action was applied before (nothing written); the other action is a
    /// `Conflict`.
    fn transition_order(
        &mut self,
        id: OrderId,
        action: OrderAction,
    ) -> impl Future<Output = Result<Written, Error>> + Send;

    /// Extends a pending order's hold (see [`crate::domain::order::extend_hold`]): `HoldExtended`, or
    /// `OrderAlreadyDone` when it holds its stock that long already (nothing written).
    fn extend_hold(
        &mut self,
        id: OrderId,
        hold: std::time::Duration,
    ) -> impl Future<Output = Result<Written, Error>> + Send;

    /// Ships some units of some lines of an order that holds stock, as
    /// [`crate::domain::order::plan_fulfilment`] decides: on hand and reserved drop by them, the ledger records
    /// them, the order counts them and moves to `partially_fulfilled` or `fulfilled`. Answers the fulfilment and
    /// the order after it.
    fn fulfil(
        &mut self,
        id: OrderId,
        request: NewFulfilment,
    ) -> impl Future<Output = Result<(Fulfilment, Order), Error>> + Send;

    /// Takes shipped units of an order back, as [`crate::domain::order::plan_return`] decides: each line counts
    /// them; a restocked line's units go back on hand (ledger `return_restock`), another's are recorded in the
    /// ledger as `return_discarded`, moving no stock; `Conflict` when a product to restock no longer exists.
    /// Answers the return and the order after it.
    fn take_back(
        &mut self,
        id: OrderId,
        request: NewReturn,
    ) -> impl Future<Output = Result<(Return, Order), Error>> + Send;
}

impl Write {
    /// Makes the write with `changes`.
    pub async fn apply(self, changes: &mut impl Changes) -> Result<Written, Error> {
        Ok(match self {
            Self::CreateProduct(new) => Written::ProductCreated(changes.create_product(new).await?),
            Self::AdjustStock(id, adjustment) => {
                let (movement, product) = changes.adjust_stock(id, adjustment).await?;
                Written::StockAdjusted(movement, product)
            }
            Self::CreateOrder(order) => Written::OrderPlaced(changes.place_order(order).await?),
            Self::TransitionOrder(id, action) => changes.transition_order(id, action).await?,
            Self::ExtendHold(id, hold) => changes.extend_hold(id, hold).await?,
            Self::Fulfil(id, request) => {
                let (fulfilment, order) = changes.fulfil(id, request).await?;
                Written::Fulfilled(fulfilment, order)
            }
            Self::Return(id, request) => {
                let (taken, order) = changes.take_back(id, request).await?;
                Written::Returned(taken, order)
            }
        })
    }
}

/// Writes, each in one transaction with its events.
pub trait WriteStore: Send + Sync {
    fn write(
        &self,
        write: Write,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Written, Error>> + Send;
}

/// Turns what a write produced into the response to store and send; given by the HTTP edge, so the store
/// keeps the exact response without knowing HTTP.
pub type Render = dyn Fn(&Written) -> Replay + Send + Sync;

/// Writes done at most once per idempotency key.
pub trait IdempotentStore: Send + Sync {
    /// Makes `write` unless the key was already used: the key, the request's fingerprint and the response
    /// (`render` of what was written) are stored in the same transaction as the write, and only if it
    /// succeeds. A repeat with the same fingerprint within the key's lifetime is answered with the stored
    /// response and changes nothing; with another fingerprint it is `IdempotencyKeyReused`; while the first
    /// is still running it waits briefly, then is `RequestInProgress`. Past the caller's limit of keys, a
    /// write that would store one more is `TooManyKeys`. With the answer, what was written, when it was made
    /// now.
    fn write_once(
        &self,
        claim: &Claim,
        write: Write,
        render: &Render,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(Once, Option<Written>), Error>> + Send;

    /// Deletes at most `batch` keys older than their lifetime, oldest first; answers how many it deleted.
    fn purge_expired_keys(
        &self,
        batch: u32,
        deadline: Deadline,
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

/// Whether the store can be reached.
pub trait HealthProbe: Send + Sync {
    fn ping(&self, deadline: Deadline) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Everything the service needs: implemented by any type that has all the ports.
pub trait Store:
    ProductStore + OrderStore + WriteStore + IdempotentStore + EventStore + HealthProbe
{
}

impl<T: ProductStore + OrderStore + WriteStore + IdempotentStore + EventStore + HealthProbe> Store
    for T
{
}
