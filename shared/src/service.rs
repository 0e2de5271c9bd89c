//! The use cases. Inputs are already-valid domain commands; storage is reached only through the ports.

use tracing::instrument;

use crate::domain::event::{FeedPage, Position};
use crate::domain::idempotency::{Claim, Once};
use crate::domain::order::{NewOrder, Order, OrderAction, OrderStatus};
use crate::domain::product::{NewProduct, Product, ProductFilter, ProductPatch};
use crate::domain::stock::{StockAdjustment, StockMovement};
use crate::domain::{Deadline, Error, IfMatch, MovementId, OrderId, Page, PageRequest, ProductId};
use crate::ports::{Render, Store, Write, Written};

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
                "the body must change at least one of name, description, price_minor, low_stock_threshold",
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
