//! The writes on Postgres: each in one transaction, which makes its change (the adapter's side of
//! [`Changes`]; [`Write::apply`] picks the change) with its events.

use crate::domain::order::{
    Fulfilment, NewFulfilment, NewOrder, NewReturn, Order, OrderAction, Return,
};
use crate::domain::product::{NewProduct, Product};
use crate::domain::stock::{StockAdjustment, StockMovement};
use crate::domain::{Deadline, Error, OrderId, ProductId};
use crate::ports::{Changes, Write, WriteStore, Written};

use super::orders::{extend, fulfil, place_order, take_back, transition};
use super::products::{adjust, insert_product};
use super::{PgStore, Tx};

/// A Postgres transaction makes the changes of the writes.
impl Changes for Tx<'_> {
    async fn create_product(&mut self, new: NewProduct) -> Result<Product, Error> {
        insert_product(self, new).await
    }

    async fn adjust_stock(
        &mut self,
        id: ProductId,
        adjustment: StockAdjustment,
    ) -> Result<(StockMovement, Product), Error> {
        adjust(self, id, adjustment).await
    }

    async fn place_order(&mut self, order: NewOrder) -> Result<Order, Error> {
        place_order(self, order).await
    }

    async fn transition_order(
        &mut self,
        id: OrderId,
        action: OrderAction,
    ) -> Result<Written, Error> {
        transition(self, id, action).await
    }

    async fn extend_hold(
        &mut self,
        id: OrderId,
        hold: std::time::Duration,
    ) -> Result<Written, Error> {
        extend(self, id, hold).await
    }

    async fn fulfil(
        &mut self,
        id: OrderId,
        request: NewFulfilment,
    ) -> Result<(Fulfilment, Order), Error> {
        fulfil(self, id, request).await
    }

    async fn take_back(
        &mut self,
        id: OrderId,
        request: NewReturn,
    ) -> Result<(Return, Order), Error> {
        take_back(self, id, request).await
    }
}

impl WriteStore for PgStore {
    async fn write(&self, write: Write, deadline: Deadline) -> Result<Written, Error> {
        self.transaction(deadline, async |tx| write.apply(tx).await)
            .await
    }
}
