//! The use cases. Inputs are already-valid domain commands; storage is reached only through the ports.

use tracing::instrument;

use crate::domain::event::{FeedPage, Position};
use crate::domain::idempotency::{Claim, Once};
use crate::domain::order::{
    Fulfilment, NewFulfilment, NewOrder, NewReturn, Order, OrderAction, OrderStatus, Return,
};
use crate::domain::product::{NewProduct, Product, ProductFilter, ProductPatch};
use crate::domain::stock::{StockAdjustment, StockMovement};
use crate::domain::{
    Deadline, Error, FulfilmentId, IfMatch, MovementId, OrderId, Page, PageRequest, ProductId,
    ReturnId,
};
use crate::ports::{EventSink, Render, Store, Write, Written};

/// What one delivery step of the publisher did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The sink took this many events (possibly none: nothing was waiting), and the delivered position moved
    /// past them.
    Sent(usize),
    /// Another publisher moved the position meanwhile: this one stops (what it sent is sent again or was
    /// its duplicate; consumers drop repeats by event id).
    Overtaken,
}

/// The inventory and order service over a store.
#[derive(Debug, Clone)]
pub struct Inventory<S> {
    store: S,
}

impl<S: Store> Inventory<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The store behind the service.
    pub fn store(&self) -> &S {
        &self.store
    }

    #[instrument(skip_all, fields(sku = product.sku.as_str()))]
    pub async fn create_product(
        &self,
        product: NewProduct,
        deadline: Deadline,
    ) -> Result<Product, Error> {
        match self.write(Write::CreateProduct(product), deadline).await? {
            Written::ProductCreated(product) => Ok(product),
            other => Err(unexpected(other)),
        }
    }

    pub async fn get_product(&self, id: ProductId, deadline: Deadline) -> Result<Product, Error> {
        self.store.get_product(id, deadline).await
    }

    pub async fn list_products(
        &self,
        filter: ProductFilter,
        page: PageRequest<ProductId>,
        deadline: Deadline,
    ) -> Result<Page<Product>, Error> {
        self.store.list_products(filter, page, deadline).await
    }

    #[instrument(skip(self, patch, deadline))]
    pub async fn update_product(
        &self,
        id: ProductId,
        patch: ProductPatch,
        if_match: Option<IfMatch>,
        deadline: Deadline,
    ) -> Result<Product, Error> {
        if patch.is_empty() {
            return Err(Error::validation(
                "",
                "the body must change at least one of name, description, price_minor, low_stock_threshold, \
                 backorder_limit, safety_stock",
            ));
        }
        self.store
            .update_product(id, patch, if_match, deadline)
            .await
    }

    #[instrument(skip(self, deadline))]
    pub async fn delete_product(&self, id: ProductId, deadline: Deadline) -> Result<(), Error> {
        self.store.delete_product(id, deadline).await?;
        tracing::info!("product deleted");
        Ok(())
    }

    #[instrument(skip(self, adjustment, deadline), fields(delta = adjustment.delta, reason = adjustment.reason.as_str()))]
    pub async fn adjust_stock(
        &self,
        id: ProductId,
        adjustment: StockAdjustment,
        deadline: Deadline,
    ) -> Result<(StockMovement, Product), Error> {
        match self
            .write(Write::AdjustStock(id, adjustment), deadline)
            .await?
        {
            Written::StockAdjusted(movement, product) => Ok((movement, product)),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_movements(
        &self,
        id: ProductId,
        page: PageRequest<MovementId>,
        deadline: Deadline,
    ) -> Result<Page<StockMovement>, Error> {
        self.store.list_movements(id, page, deadline).await
    }

    #[instrument(skip_all, fields(lines = order.lines().len()))]
    pub async fn create_order(&self, order: NewOrder, deadline: Deadline) -> Result<Order, Error> {
        match self.write(Write::CreateOrder(order), deadline).await? {
            Written::OrderPlaced(order) => Ok(order),
            other => Err(unexpected(other)),
        }
    }

    pub async fn get_order(&self, id: OrderId, deadline: Deadline) -> Result<Order, Error> {
        self.store.get_order(id, deadline).await
    }

    pub async fn list_orders(
        &self,
        status: Option<OrderStatus>,
        page: PageRequest<OrderId>,
        deadline: Deadline,
    ) -> Result<Page<Order>, Error> {
        self.store.list_orders(status, page, deadline).await
    }

    pub async fn list_fulfilments(
        &self,
        id: OrderId,
        page: PageRequest<FulfilmentId>,
        deadline: Deadline,
    ) -> Result<Page<Fulfilment>, Error> {
        self.store.list_fulfilments(id, page, deadline).await
    }

    pub async fn list_returns(
        &self,
        id: OrderId,
        page: PageRequest<ReturnId>,
        deadline: Deadline,
    ) -> Result<Page<Return>, Error> {
        self.store.list_returns(id, page, deadline).await
    }

    #[instrument(skip(self, deadline))]
    pub async fn transition_order(
        &self,
        id: OrderId,
        action: OrderAction,
        deadline: Deadline,
    ) -> Result<Order, Error> {
        match self
            .write(Write::TransitionOrder(id, action), deadline)
            .await?
        {
            Written::OrderTransitioned(order) | Written::OrderAlreadyDone(order) => Ok(order),
            other => Err(unexpected(other)),
        }
    }

    /// Holds a pending order's stock until `hold` from now, unless it holds it longer already.
    #[instrument(skip(self, deadline))]
    pub async fn extend_hold(
        &self,
        id: OrderId,
        hold: std::time::Duration,
        deadline: Deadline,
    ) -> Result<Order, Error> {
        match self.write(Write::ExtendHold(id, hold), deadline).await? {
            Written::HoldExtended(order) | Written::OrderAlreadyDone(order) => Ok(order),
            other => Err(unexpected(other)),
        }
    }

    /// Ships some units of some lines of an order: the fulfilment, and the order after it.
    #[instrument(skip(self, deadline))]
    pub async fn fulfil(
        &self,
        id: OrderId,
        request: NewFulfilment,
        deadline: Deadline,
    ) -> Result<(Fulfilment, Order), Error> {
        match self.write(Write::Fulfil(id, request), deadline).await? {
            Written::Fulfilled(fulfilment, order) => Ok((fulfilment, order)),
            other => Err(unexpected(other)),
        }
    }

    /// Takes shipped units of an order back: the return, and the order after it.
    #[instrument(skip(self, deadline))]
    pub async fn take_back(
        &self,
        id: OrderId,
        request: NewReturn,
        deadline: Deadline,
    ) -> Result<(Return, Order), Error> {
        match self.write(Write::Return(id, request), deadline).await? {
            Written::Returned(taken, order) => Ok((taken, order)),
            other => Err(unexpected(other)),
        }
    }

    /// Makes a write (of a request without an idempotency key).
    pub async fn write(&self, write: Write, deadline: Deadline) -> Result<Written, Error> {
        let written = self.store.write(write, deadline).await?;
        log(&written);
        Ok(written)
    }

    /// Makes a write at most once for its idempotency key; repeats get the first response back.
    #[instrument(skip_all, fields(idempotency_key = claim.key.as_str()))]
    pub async fn write_once(
        &self,
        claim: &Claim,
        write: Write,
        render: &Render,
        deadline: Deadline,
    ) -> Result<Once, Error> {
        let (once, written) = self
            .store
            .write_once(claim, write, render, deadline)
            .await?;
        match written {
            Some(written) => {
                log(&written);
                if !written.changed_nothing() {
                    tracing::info!(status = once.response().status, "response stored");
                }
            }
            None => tracing::info!("replayed the stored response"),
        }
        Ok(once)
    }

    /// Deletes expired idempotency keys in batches of `batch` until none is left or `deadline` is near;
    /// answers how many it deleted.
    pub async fn purge_expired_keys(&self, batch: u32, deadline: Deadline) -> Result<u64, Error> {
        let mut total = 0;
        loop {
            let deleted = self.store.purge_expired_keys(batch, deadline).await?;
            total += deleted;
            tracing::info!(deleted, total, "purged a batch of expired idempotency keys");
            if deleted < u64::from(batch)
                || deadline.remaining() < std::time::Duration::from_secs(1)
            {
                return Ok(total);
            }
        }
    }

    /// Expires pending orders whose hold has ended, up to `limit` (see `OrderStore::expire_orders`);
    /// answers how many it expired.
    pub async fn expire_orders(&self, limit: u32, deadline: Deadline) -> Result<usize, Error> {
        let expired = self.store.expire_orders(limit, deadline).await?;
        for id in &expired {
            tracing::info!(order_id = %id, "order expired: its hold ended and its stock was released");
        }
        Ok(expired.len())
    }

    /// Events after `after`, in feed order.
    pub async fn list_events(
        &self,
        after: Position,
        limit: u32,
        deadline: Deadline,
    ) -> Result<FeedPage, Error> {
        self.store.list_events(after, limit, deadline).await
    }

    /// Delivers the next `batch` events after the delivered position to `sink`, in feed order, then moves the
    /// position past those it accepted. Nothing is held in the store while the sink runs, so a publisher that
    /// dies between the two steps only makes the next one send the same events again: at least once, in
    /// order. A sink that fails leaves the position where it was; one that accepts only the first few has the
    /// position moved past those, and the step fails.
    pub async fn publish_events(
        &self,
        sink: &impl EventSink,
        batch: u32,
        deadline: Deadline,
    ) -> Result<Delivered, Error> {
        let (after, events) = self.store.undelivered_events(batch, deadline).await?;
        if events.is_empty() {
            return Ok(Delivered::Sent(0));
        }
        let accepted = sink.publish(&events, deadline).await?.min(events.len());
        let Some(last) = accepted.checked_sub(1).map(|i| events[i].position) else {
            return Err(Error::unavailable("the event bus took none of the events"));
        };
        if !self.store.mark_delivered(after, last, deadline).await? {
            return Ok(Delivered::Overtaken);
        }
        if accepted < events.len() {
            return Err(Error::unavailable(format!(
                "the event bus took {accepted} of {} events",
                events.len()
            )));
        }
        Ok(Delivered::Sent(accepted))
    }

    /// Deletes delivered events older than `retention` in batches of `batch` until none is left or
    /// `deadline` is near; answers how many it deleted.
    pub async fn purge_delivered_events(
        &self,
        retention: std::time::Duration,
        batch: u32,
        deadline: Deadline,
    ) -> Result<u64, Error> {
        let mut total = 0;
        loop {
            let deleted = self
                .store
                .purge_delivered_events(retention, batch, deadline)
                .await?;
            total += deleted;
            tracing::info!(deleted, total, "purged a batch of delivered events");
            if deleted < u64::from(batch)
                || deadline.remaining() < std::time::Duration::from_secs(1)
            {
                return Ok(total);
            }
        }
    }

    pub async fn health(&self, deadline: Deadline) -> Result<(), Error> {
        self.store.ping(deadline).await
    }
}

/// The log line of a write that was made, keyed or not.
fn log(written: &Written) {
    match written {
        Written::ProductCreated(product) => {
            tracing::info!(product_id = %product.id, on_hand = product.on_hand, "product created");
        }
        Written::StockAdjusted(_, product) => tracing::info!(
            product_id = %product.id,
            on_hand = product.on_hand,
            reserved = product.reserved,
            "stock adjusted"
        ),
        Written::OrderPlaced(order) => {
            tracing::info!(order_id = %order.id, total_minor = order.total_minor, "order placed");
        }
        Written::OrderTransitioned(order) => {
            tracing::info!(order_id = %order.id, status = order.status.as_str(), "order transitioned");
        }
        Written::Fulfilled(fulfilment, order) => tracing::info!(
            order_id = %order.id,
            fulfilment_id = %fulfilment.id,
            status = order.status.as_str(),
            "order fulfilled in part or in full"
        ),
        Written::Returned(taken, order) => tracing::info!(
            order_id = %order.id,
            return_id = %taken.id,
            reason = taken.reason.as_str(),
            "shipped units returned"
        ),
        Written::HoldExtended(order) => {
            tracing::info!(order_id = %order.id, expires_at = %order.expires_at, "hold extended");
        }
        Written::OrderAlreadyDone(order) => tracing::info!(
            order_id = %order.id,
            status = order.status.as_str(),
            "order already there: nothing written"
        ),
    }
}

/// A write answered with what another kind of write produces: a bug in a store.
fn unexpected(written: Written) -> Error {
    Error::internal(format!(
        "the store answered a write with another kind of result: {written:?}"
    ))
}

#[cfg(test)]
mod tests {
    //! Publishing, as the service does it over any store: the same behaviour on the in-memory adapter and on
    //! Postgres.

    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::domain::event::Event;
    use crate::domain::{Currency, PriceMinor, ProductName, Sku, StockLevel};
    use crate::memory::MemoryStore;
    use crate::postgres::PgStore;

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(10))
    }

    /// What a sink does with each call.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        All,
        First(usize),
        Fail,
    }

    /// A sink that keeps what it accepted, in order.
    #[derive(Debug)]
    struct Recording {
        answer: Answer,
        accepted: Mutex<Vec<uuid::Uuid>>,
        calls: Mutex<usize>,
    }

    impl Recording {
        fn new(answer: Answer) -> Self {
            Self {
                answer,
                accepted: Mutex::default(),
                calls: Mutex::default(),
            }
        }

        fn accepted(&self) -> Vec<uuid::Uuid> {
            self.accepted.lock().unwrap().clone()
        }
    }

    impl EventSink for Recording {
        async fn publish(&self, events: &[Event], _: Deadline) -> Result<usize, Error> {
            *self.calls.lock().unwrap() += 1;
            let taken = match self.answer {
                Answer::All => events.len(),
                Answer::First(n) => n.min(events.len()),
                Answer::Fail => return Err(Error::unavailable("the bus is unreachable")),
            };
            let mut accepted = self.accepted.lock().unwrap();
            accepted.extend(events[..taken].iter().map(|e| e.id));
            Ok(taken)
        }
    }

    /// A sink during whose call another publisher delivers everything.
    struct Racing<'a, S> {
        inventory: &'a Inventory<S>,
        other: Recording,
    }

    impl<S: Store> EventSink for Racing<'_, S> {
        async fn publish(&self, events: &[Event], deadline: Deadline) -> Result<usize, Error> {
            let other = self
                .inventory
                .publish_events(&self.other, 100, deadline)
                .await?;
            assert_eq!(other, Delivered::Sent(events.len()));
            Ok(events.len())
        }
    }

    /// `count` products created: one event each, in feed order; answers their ids.
    async fn write_events<S: Store>(inventory: &Inventory<S>, count: usize) -> Vec<uuid::Uuid> {
        for i in 0..count {
            let product = NewProduct {
                sku: Sku::parse(format!("PUB-{i}")).unwrap(),
                name: ProductName::parse(format!("Product {i}")).unwrap(),
                description: None,
                price: PriceMinor::parse(100).unwrap(),
                currency: Currency::parse("EUR").unwrap(),
                on_hand: StockLevel::parse(0).unwrap(),
                low_stock_threshold: None,
                policy: Default::default(),
            };
            inventory.create_product(product, deadline()).await.unwrap();
        }
        let ids: Vec<uuid::Uuid> = feed(inventory, count).await.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), count);
        ids
    }

    /// The feed once it shows `count` events: on Postgres an event is listed once every transaction older
    /// than it has ended, and the tests running beside this one have transactions of their own.
    async fn feed<S: Store>(inventory: &Inventory<S>, count: usize) -> Vec<Event> {
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let feed = inventory
                .list_events(Position::default(), 1000, deadline())
                .await
                .unwrap();
            if feed.items.len() >= count || std::time::Instant::now() > give_up {
                return feed.items;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn events_are_delivered_in_feed_order_batch_by_batch<S: Store>(inventory: Inventory<S>) {
        let written = write_events(&inventory, 7).await;
        let bus = Recording::new(Answer::All);
        let mut steps = Vec::new();
        loop {
            match inventory.publish_events(&bus, 3, deadline()).await.unwrap() {
                Delivered::Sent(0) => break,
                step => steps.push(step),
            }
        }
        assert_eq!(
            steps,
            [Delivered::Sent(3), Delivered::Sent(3), Delivered::Sent(1)]
        );
        assert_eq!(bus.accepted(), written);
        // Nothing is waiting now: nothing is sent.
        let idle = Recording::new(Answer::All);
        let step = inventory.publish_events(&idle, 3, deadline()).await;
        assert_eq!(step.unwrap(), Delivered::Sent(0));
        assert_eq!(*idle.calls.lock().unwrap(), 0);
        // Later events follow on.
        let more = write_events_after(&inventory, "LATER").await;
        inventory.publish_events(&bus, 3, deadline()).await.unwrap();
        assert_eq!(bus.accepted()[7..], [more]);
    }

    async fn write_events_after<S: Store>(inventory: &Inventory<S>, sku: &str) -> uuid::Uuid {
        let product = NewProduct {
            sku: Sku::parse(sku.to_owned()).unwrap(),
            name: ProductName::parse("Later".to_owned()).unwrap(),
            description: None,
            price: PriceMinor::parse(100).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            on_hand: StockLevel::parse(0).unwrap(),
            low_stock_threshold: None,
            policy: Default::default(),
        };
        let product = inventory.create_product(product, deadline()).await.unwrap();
        let feed = feed(inventory, 8).await;
        let last = feed.last().unwrap();
        assert_eq!(last.resource_id, product.id.uuid());
        last.id
    }

    async fn a_failing_sink_leaves_the_position_and_the_retry_sends_the_same_events<S: Store>(
        inventory: Inventory<S>,
    ) {
        let written = write_events(&inventory, 5).await;
        let down = Recording::new(Answer::Fail);
        let failed = inventory.publish_events(&down, 100, deadline()).await;
        assert!(matches!(failed, Err(Error::Unavailable(_))), "{failed:?}");
        let (position, waiting) = inventory
            .store()
            .undelivered_events(100, deadline())
            .await
            .unwrap();
        assert_eq!(position, Position::default());
        assert_eq!(waiting.len(), 5);
        // A sink that takes none of them is a failure too, and moves nothing.
        let refusing = Recording::new(Answer::First(0));
        let refused = inventory.publish_events(&refusing, 100, deadline()).await;
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        let bus = Recording::new(Answer::All);
        let step = inventory.publish_events(&bus, 100, deadline()).await;
        assert_eq!(step.unwrap(), Delivered::Sent(5));
        assert_eq!(bus.accepted(), written);
    }

    async fn a_partial_acceptance_moves_past_what_was_taken_and_fails_the_step<S: Store>(
        inventory: Inventory<S>,
    ) {
        let written = write_events(&inventory, 5).await;
        let choking = Recording::new(Answer::First(2));
        let step = inventory.publish_events(&choking, 100, deadline()).await;
        let error = step.unwrap_err();
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(
            cause.as_deref(),
            Some("the event bus took 2 of 5 events"),
            "{error:?}"
        );
        assert_eq!(choking.accepted(), written[..2]);
        // The next step starts after the two that were taken.
        let bus = Recording::new(Answer::All);
        let step = inventory.publish_events(&bus, 100, deadline()).await;
        assert_eq!(step.unwrap(), Delivered::Sent(3));
        assert_eq!(bus.accepted(), written[2..]);
    }

    async fn a_publisher_overtaken_by_another_stops<S: Store>(inventory: Inventory<S>) {
        let written = write_events(&inventory, 4).await;
        let racing = Racing {
            inventory: &inventory,
            other: Recording::new(Answer::All),
        };
        let step = inventory.publish_events(&racing, 100, deadline()).await;
        assert_eq!(step.unwrap(), Delivered::Overtaken);
        assert_eq!(racing.other.accepted(), written);
        let (_, waiting) = inventory
            .store()
            .undelivered_events(100, deadline())
            .await
            .unwrap();
        assert!(waiting.is_empty(), "the other publisher's position stands");
    }

    async fn only_delivered_events_are_purged<S: Store>(inventory: Inventory<S>) {
        let written = write_events(&inventory, 4).await;
        let half = Recording::new(Answer::First(2));
        let _ = inventory.publish_events(&half, 100, deadline()).await;
        let purged = inventory
            .purge_delivered_events(Duration::ZERO, 1000, deadline())
            .await
            .unwrap();
        assert_eq!(purged, 2);
        let left: Vec<uuid::Uuid> = feed(&inventory, 0).await.iter().map(|e| e.id).collect();
        assert_eq!(left, written[2..]);
    }

    macro_rules! on_both_stores {
        ($($name:ident),* $(,)?) => {
            mod memory {
                use super::*;
                $(
                    #[tokio::test]
                    async fn $name() {
                        super::$name(Inventory::new(MemoryStore::new())).await;
                    }
                )*
            }

            mod postgres {
                use super::*;
                $(
                    #[sqlx::test(migrations = "../migrations")]
                    async fn $name(pool: sqlx::PgPool) {
                        super::$name(Inventory::new(PgStore::new(pool))).await;
                    }
                )*
            }
        };
    }

    on_both_stores!(
        events_are_delivered_in_feed_order_batch_by_batch,
        a_failing_sink_leaves_the_position_and_the_retry_sends_the_same_events,
        a_partial_acceptance_moves_past_what_was_taken_and_fails_the_step,
        a_publisher_overtaken_by_another_stops,
        only_delivered_events_are_purged,
    );
}
