//! An in-memory adapter of the ports, with the same semantics as the Postgres adapter: one lock stands in
//! for the database's transactions. For service and handler tests, and for nothing else.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::domain::event::{Event, FeedPage, NewEvent, Position};
use crate::domain::idempotency::{Claim, Fingerprint, KEY_LIFETIME, KEYS_PER_CALLER, Once, Replay};
use crate::domain::order::{
    Fulfilment, FulfilmentLine, NewFulfilment, NewOrder, NewReturn, Order, OrderAction,
    OrderStatus, ProductSnapshot, Return, Shipment, Transition, extend_hold, plan_fulfilment,
    plan_order, plan_return, restock_refused,
};
use crate::domain::product::{NewProduct, Product, ProductFilter, ProductPatch, delete_refused};
use crate::domain::stock::{MovementReason, StockAdjustment, StockMovement, below_reserved};
use crate::domain::{
    Deadline, Error, FulfilmentId, Id, IfMatch, MovementId, OrderId, Page, PageRequest, ProductId,
    ReturnId, new_id,
};
use crate::events::{self, StockState};
use crate::ports::{
    Changes, EventStore, HealthProbe, IdempotentStore, OrderStore, ProductStore, Render, Write,
    WriteStore, Written,
};

#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// The most idempotency keys one caller may hold.
    key_limit: u32,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            key_limit: KEYS_PER_CALLER,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct State {
    products: BTreeMap<ProductId, Product>,
    orders: BTreeMap<OrderId, Order>,
    /// Every fulfilment, oldest first, with its order.
    fulfilments: Vec<(OrderId, Fulfilment)>,
    /// Every return, oldest first, with its order.
    returns: Vec<(OrderId, Return)>,
    movements: Vec<StockMovement>,
    /// The outbox, in feed order.
    events: Vec<Event>,
    /// The position of the last event written.
    sequence: i64,
    /// Where the publisher stands in the feed.
    delivered: Position,
    /// By (caller, key).
    keys: HashMap<(String, String), StoredKey>,
}

/// An idempotency key with the response of its request.
#[derive(Debug, Clone)]
struct StoredKey {
    fingerprint: Fingerprint,
    replay: Replay,
    created_at: OffsetDateTime,
}

impl StoredKey {
    fn expired(&self, now: OffsetDateTime) -> bool {
        now - self.created_at >= KEY_LIFETIME
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store with another limit on the idempotency keys one caller may hold.
    pub fn with_key_limit(mut self, key_limit: u32) -> Self {
        self.key_limit = key_limit;
        self
    }

    fn lock(&self, deadline: Deadline) -> Result<MutexGuard<'_, State>, Error> {
        if deadline.remaining().is_zero() {
            return Err(Error::unavailable("request deadline reached"));
        }
        self.state
            .lock()
            .map_err(|_| Error::internal("memory store lock poisoned"))
    }

    /// Makes every idempotency key look `age` older (for tests of their lifetime).
    pub fn age_keys(&self, age: std::time::Duration) {
        if let Ok(mut state) = self.state.lock() {
            for stored in state.keys.values_mut() {
                stored.created_at -= age;
            }
        }
    }

    /// Makes every pending order's hold end `age` sooner (for tests of expiry).
    pub fn age_orders(&self, age: std::time::Duration) {
        if let Ok(mut state) = self.state.lock() {
            for order in state.orders.values_mut() {
                order.expires_at -= age;
            }
        }
    }

    /// Every ledger row, oldest first (for tests that reconcile the ledger with stock levels).
    pub fn movements(&self) -> Vec<StockMovement> {
        self.state
            .lock()
            .map(|s| s.movements.clone())
            .unwrap_or_default()
    }
}

impl State {
    /// Up to `page.fetch()` of what `all` holds of order `id` (oldest first) after the page's cursor;
    /// `NotFound` when there is no such order, `CursorElsewhere` when the cursor is not in its list.
    fn of_order<T: Clone, K: Id>(
        &self,
        id: OrderId,
        all: &[(OrderId, T)],
        key: impl Fn(&T) -> K,
        page: PageRequest<K>,
    ) -> Result<Vec<T>, Error> {
        if !self.orders.contains_key(&id) {
            return Err(Error::NotFound("order"));
        }
        if let Some(after) = page.after()
            && !all
                .iter()
                .any(|(order, item)| *order == id && key(item) == after)
        {
            return Err(Error::CursorElsewhere("order"));
        }
        Ok(all
            .iter()
            .filter(|(order, item)| {
                *order == id && page.after().is_none_or(|after| key(item) > after)
            })
            .map(|(_, item)| item.clone())
            .take(page.fetch())
            .collect())
    }

    fn insert_product(&mut self, new: NewProduct) -> Result<Product, Error> {
        if self.products.values().any(|p| p.sku == new.sku.as_str()) {
            return Err(Error::SkuTaken);
        }
        if !new.policy.admits(new.on_hand.get(), 0) {
            return Err(below_reserved());
        }
        let now = OffsetDateTime::now_utc();
        let product = Product {
            id: new_id(),
            sku: new.sku.as_str().to_owned(),
            name: new.name.into_inner(),
            description: new.description.map(|d| d.into_inner()),
            price_minor: new.price.get(),
            currency: new.currency.as_str().to_owned(),
            on_hand: 0,
            reserved: 0,
            low_stock_threshold: new.low_stock_threshold.map(|t| t.get()),
            backorder_limit: new.policy.backorder_limit,
            safety_stock: new.policy.safety_stock,
            damaged: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let id = product.id;
        self.products.insert(id, product);
        if new.on_hand.get() > 0 {
            self.move_stock(
                id,
                None,
                MovementReason::Received,
                (new.on_hand.get(), 0),
                Some("initial stock".into()),
            )?;
            // The initial stock is part of creating the product, not a change after it.
            self.product_mut(id)?.version = 1;
        }
        let product = self.products[&id].clone();
        self.emit(events::product_created(&product));
        Ok(product)
    }

    /// Appends a change's events to the outbox (the state's lock stands for the change's transaction).
    fn emit(&mut self, events: Vec<NewEvent>) {
        for event in events {
            self.sequence += 1;
            let position = Position {
                xid: 0,
                seq: self.sequence,
            };
            self.events.push(Event {
                id: event.id,
                event_type: event.event_type,
                resource_id: event.resource_id,
                data: event.data,
                occurred_at: OffsetDateTime::now_utc(),
                position,
            });
        }
    }

    /// Every product's units on hand.
    fn on_hand(&self) -> HashMap<ProductId, i64> {
        self.products
            .values()
            .map(|p| (p.id, p.sellable_on_hand()))
            .collect()
    }

    fn stock_state(&self, id: ProductId) -> StockState {
        self.products
            .get(&id)
            .map(|p| (p.available(), p.low_stock_threshold))
            .unwrap_or_default()
    }

    fn adjust(
        &mut self,
        id: ProductId,
        adjustment: StockAdjustment,
    ) -> Result<(StockMovement, Product), Error> {
        let product = self.product_mut(id)?;
        let (on_hand, damaged) = adjustment.apply(product)?;
        let deltas = (on_hand - product.on_hand, 0, damaged - product.damaged);
        let note = adjustment.note.map(|n| n.into_inner());
        let movement = self.move_units(id, None, adjustment.reason, deltas, note)?;
        let product = self.products[&id].clone();
        self.emit(events::stock_adjusted(&movement, &product));
        Ok((movement, product))
    }

    fn place(&mut self, order: NewOrder) -> Result<Order, Error> {
        let snapshots: Vec<ProductSnapshot> = order
            .lock_order()
            .iter()
            .filter_map(|id| self.products.get(id))
            .map(ProductSnapshot::from)
            .collect();
        let plan = plan_order(&order, &snapshots)?;
        let id = new_id();
        let before: Vec<(ProductId, StockState)> = plan
            .lines
            .iter()
            .map(|l| (l.product_id, self.stock_state(l.product_id)))
            .collect();
        for line in &plan.lines {
            self.move_stock(
                line.product_id,
                Some(id),
                MovementReason::OrderReserved,
                (0, line.quantity),
                None,
            )?;
        }
        let now = OffsetDateTime::now_utc();
        let expires_at = now + order.hold();
        let order = Order {
            id,
            status: OrderStatus::Pending,
            customer_ref: order.customer_ref.map(|c| c.into_inner()),
            lines: plan.lines,
            total_minor: plan.total_minor,
            currency: plan.currency,
            created_at: now,
            updated_at: now,
            expires_at,
            cancel_reason: None,
        };
        self.orders.insert(id, order.clone());
        let products: Vec<(StockState, Product)> = before
            .into_iter()
            .map(|(id, before)| (before, self.products[&id].clone()))
            .collect();
        self.emit(events::order_placed(
            &order,
            products.iter().map(|(before, after)| (*before, after)),
        ));
        Ok(order)
    }

    fn transition(&mut self, id: OrderId, action: OrderAction) -> Result<Written, Error> {
        let order = self
            .orders
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("order"))?;
        let Transition::To(status) = order.status.apply(action)? else {
            return Ok(Written::OrderAlreadyDone(order));
        };
        if action == OrderAction::Fulfill {
            let (lines, status) = plan_fulfilment(&order, &Shipment::Rest, &self.on_hand())?;
            let (_, order) = self.ship(order, lines, status)?;
            return Ok(Written::OrderTransitioned(order));
        }
        let reason = action.reason();
        for line in order.lines.iter().filter(|l| l.remaining() > 0) {
            self.move_stock(
                line.product_id,
                Some(id),
                reason,
                action.stock_deltas(line.remaining()),
                None,
            )?;
        }
        let order = self.orders.get_mut(&id).ok_or(Error::NotFound("order"))?;
        order.status = status;
        order.cancel_reason = action.cancel_reason();
        order.updated_at = OffsetDateTime::now_utc();
        let order = order.clone();
        self.emit(events::order_ended(action, &order));
        Ok(Written::OrderTransitioned(order))
    }

    fn fulfil_lines(
        &mut self,
        id: OrderId,
        request: NewFulfilment,
    ) -> Result<(Fulfilment, Order), Error> {
        let order = self
            .orders
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("order"))?;
        let (lines, status) = plan_fulfilment(&order, &Shipment::Lines(request), &self.on_hand())?;
        self.ship(order, lines, status)
    }

    /// Ships `lines` of `order` (as planned by `plan_fulfilment`), which ends up in `status`.
    fn ship(
        &mut self,
        mut order: Order,
        lines: Vec<FulfilmentLine>,
        status: OrderStatus,
    ) -> Result<(Fulfilment, Order), Error> {
        let action = OrderAction::Fulfill;
        for line in &lines {
            self.move_stock(
                line.product_id,
                Some(order.id),
                action.reason(),
                action.stock_deltas(line.quantity),
                None,
            )?;
        }
        let fulfilment = Fulfilment {
            id: new_id(),
            lines,
            created_at: OffsetDateTime::now_utc(),
        };
        order.record(&fulfilment, status);
        self.fulfilments.push((order.id, fulfilment.clone()));
        self.orders.insert(order.id, order.clone());
        self.emit(events::order_fulfilment(&order));
        Ok((fulfilment, order))
    }

    fn take_back(&mut self, id: OrderId, request: NewReturn) -> Result<(Return, Order), Error> {
        let mut order = self
            .orders
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("order"))?;
        let lines = plan_return(&order, &request)?;
        if let Some(gone) = lines
            .iter()
            .find(|l| l.restock && !self.products.contains_key(&l.product_id))
        {
            return Err(restock_refused(gone.product_id));
        }
        for line in &lines {
            let (reason, deltas) = match (line.restock, line.damaged) {
                (true, false) => (MovementReason::ReturnRestock, (line.quantity, 0, 0)),
                (true, true) => (
                    MovementReason::ReturnRestock,
                    (line.quantity, 0, line.quantity),
                ),
                (false, _) => (MovementReason::ReturnDiscarded, (0, 0, 0)),
            };
            if self.products.contains_key(&line.product_id) {
                self.move_units(line.product_id, Some(id), reason, deltas, None)?;
            }
        }
        let taken = Return {
            id: new_id(),
            reason: request.reason,
            lines,
            created_at: OffsetDateTime::now_utc(),
        };
        order.take_back(&taken);
        self.orders.insert(id, order.clone());
        self.returns.push((id, taken.clone()));
        self.emit(events::order_returned(&order));
        Ok((taken, order))
    }

    fn extend(&mut self, id: OrderId, hold: std::time::Duration) -> Result<Written, Error> {
        let order = self.orders.get_mut(&id).ok_or(Error::NotFound("order"))?;
        let now = OffsetDateTime::now_utc();
        let Some(until) = extend_hold(order.status, order.expires_at, now, hold)? else {
            return Ok(Written::OrderAlreadyDone(order.clone()));
        };
        order.expires_at = until;
        order.updated_at = now;
        let order = order.clone();
        self.emit(events::hold_extended(&order));
        Ok(Written::HoldExtended(order))
    }

    /// Makes a write: [`Write::apply`] with this state's changes, none of which waits for anything.
    fn apply(&mut self, write: Write) -> Result<Written, Error> {
        let mut made = std::pin::pin!(write.apply(self));
        match made
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(written) => written,
            std::task::Poll::Pending => Err(Error::internal("a memory write waited")),
        }
    }

    fn product_mut(&mut self, id: ProductId) -> Result<&mut Product, Error> {
        self.products.get_mut(&id).ok_or(Error::NotFound("product"))
    }

    /// Applies a change of on-hand and reserved stock to a product and writes its ledger row.
    fn move_stock(
        &mut self,
        id: ProductId,
        order_id: Option<OrderId>,
        reason: MovementReason,
        (on_hand_delta, reserved_delta): (i64, i64),
        note: Option<String>,
    ) -> Result<StockMovement, Error> {
        self.move_units(
            id,
            order_id,
            reason,
            (on_hand_delta, reserved_delta, 0),
            note,
        )
    }

    /// Applies a change of on-hand, reserved and damaged stock to a product and writes its ledger row.
    fn move_units(
        &mut self,
        id: ProductId,
        order_id: Option<OrderId>,
        reason: MovementReason,
        (on_hand_delta, reserved_delta, damaged_delta): (i64, i64, i64),
        note: Option<String>,
    ) -> Result<StockMovement, Error> {
        let now = OffsetDateTime::now_utc();
        let product = self.product_mut(id)?;
        let on_hand = product.on_hand + on_hand_delta;
        let reserved = product.reserved + reserved_delta;
        let damaged = product.damaged + damaged_delta;
        let policy = product.policy();
        if on_hand < 0
            || reserved < 0
            || !(0..=on_hand).contains(&damaged)
            || !policy.admits(on_hand, reserved + damaged)
        {
            return Err(Error::internal("stock invariant would be broken"));
        }
        product.on_hand = on_hand;
        product.reserved = reserved;
        product.damaged = damaged;
        product.version += 1;
        product.updated_at = now;
        let movement = StockMovement {
            id: new_id(),
            product_id: id,
            order_id,
            reason,
            on_hand_delta,
            reserved_delta,
            damaged_delta,
            on_hand_after: on_hand,
            reserved_after: reserved,
            damaged_after: damaged,
            note,
            created_at: now,
        };
        self.movements.push(movement.clone());
        Ok(movement)
    }
}

/// The state under its lock makes the changes of the writes.
impl Changes for State {
    async fn create_product(&mut self, new: NewProduct) -> Result<Product, Error> {
        self.insert_product(new)
    }

    async fn adjust_stock(
        &mut self,
        id: ProductId,
        adjustment: StockAdjustment,
    ) -> Result<(StockMovement, Product), Error> {
        self.adjust(id, adjustment)
    }

    async fn place_order(&mut self, order: NewOrder) -> Result<Order, Error> {
        self.place(order)
    }

    async fn transition_order(
        &mut self,
        id: OrderId,
        action: OrderAction,
    ) -> Result<Written, Error> {
        self.transition(id, action)
    }

    async fn extend_hold(
        &mut self,
        id: OrderId,
        hold: std::time::Duration,
    ) -> Result<Written, Error> {
        self.extend(id, hold)
    }

    async fn fulfil(
        &mut self,
        id: OrderId,
        request: NewFulfilment,
    ) -> Result<(Fulfilment, Order), Error> {
        self.fulfil_lines(id, request)
    }

    async fn take_back(
        &mut self,
        id: OrderId,
        request: NewReturn,
    ) -> Result<(Return, Order), Error> {
        State::take_back(self, id, request)
    }
}

impl WriteStore for MemoryStore {
    async fn write(&self, write: Write, deadline: Deadline) -> Result<Written, Error> {
        self.lock(deadline)?.apply(write)
    }
}

impl ProductStore for MemoryStore {
    async fn get_product(&self, id: ProductId, deadline: Deadline) -> Result<Product, Error> {
        let state = self.lock(deadline)?;
        state
            .products
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("product"))
    }

    async fn list_products(
        &self,
        filter: ProductFilter,
        page: PageRequest<ProductId>,
        deadline: Deadline,
    ) -> Result<Page<Product>, Error> {
        let state = self.lock(deadline)?;
        let after = page.after.map(|c| c.0);
        let rows = state
            .products
            .values()
            .filter(|p| after.is_none_or(|after| p.id > after) && filter.matches(p))
            .take(page.fetch())
            .cloned()
            .collect();
        Ok(Page::from_rows(rows, page))
    }

    async fn update_product(
        &self,
        id: ProductId,
        patch: ProductPatch,
        if_match: Option<IfMatch>,
        deadline: Deadline,
    ) -> Result<Product, Error> {
        let mut state = self.lock(deadline)?;
        let before = state.stock_state(id);
        let product = state.product_mut(id)?;
        if if_match.is_some_and(|m| !m.matches(product.version)) {
            return Err(Error::PreconditionFailed);
        }
        let mut changed = product.clone();
        patch.apply_to(&mut changed);
        let policy = changed.policy();
        if !policy.admits(changed.on_hand, changed.reserved + changed.damaged) {
            return Err(below_reserved());
        }
        *product = changed;
        product.version += 1;
        product.updated_at = OffsetDateTime::now_utc();
        let product = product.clone();
        state.emit(events::product_updated(before, &product));
        Ok(product)
    }

    async fn delete_product(&self, id: ProductId, deadline: Deadline) -> Result<(), Error> {
        let mut state = self.lock(deadline)?;
        let product = state.product_mut(id)?;
        if product.reserved > 0 || product.on_hand > 0 {
            return Err(delete_refused());
        }
        if let Some(product) = state.products.remove(&id) {
            state.emit(events::product_deleted(&product));
        }
        Ok(())
    }

    async fn list_movements(
        &self,
        id: ProductId,
        page: PageRequest<MovementId>,
        deadline: Deadline,
    ) -> Result<Page<StockMovement>, Error> {
        let state = self.lock(deadline)?;
        if !state.products.contains_key(&id) {
            return Err(Error::NotFound("product"));
        }
        let before = page.after.map(|c| c.0);
        if let Some(before) = before
            && !state
                .movements
                .iter()
                .any(|m| m.id == before && m.product_id == id)
        {
            return Err(Error::CursorElsewhere("product"));
        }
        let mut rows: Vec<StockMovement> = state
            .movements
            .iter()
            .filter(|m| m.product_id == id && before.is_none_or(|before| m.id < before))
            .cloned()
            .collect();
        rows.sort_by_key(|m| std::cmp::Reverse(m.id));
        rows.truncate(page.fetch());
        Ok(Page::from_rows(rows, page))
    }
}

impl OrderStore for MemoryStore {
    async fn get_order(&self, id: OrderId, deadline: Deadline) -> Result<Order, Error> {
        let state = self.lock(deadline)?;
        state
            .orders
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("order"))
    }

    async fn list_orders(
        &self,
        status: Option<OrderStatus>,
        page: PageRequest<OrderId>,
        deadline: Deadline,
    ) -> Result<Page<Order>, Error> {
        let state = self.lock(deadline)?;
        let before = page.after.map(|c| c.0);
        let rows = state
            .orders
            .values()
            .rev()
            .filter(|o| before.is_none_or(|before| o.id < before))
            .filter(|o| status.is_none_or(|s| o.status == s))
            .take(page.fetch())
            .cloned()
            .collect();
        Ok(Page::of_orders(rows, page))
    }

    async fn list_fulfilments(
        &self,
        id: OrderId,
        page: PageRequest<FulfilmentId>,
        deadline: Deadline,
    ) -> Result<Page<Fulfilment>, Error> {
        let state = self.lock(deadline)?;
        Ok(Page::from_rows(
            state.of_order(id, &state.fulfilments, |f| f.id, page)?,
            page,
        ))
    }

    async fn list_returns(
        &self,
        id: OrderId,
        page: PageRequest<ReturnId>,
        deadline: Deadline,
    ) -> Result<Page<Return>, Error> {
        let state = self.lock(deadline)?;
        Ok(Page::from_rows(
            state.of_order(id, &state.returns, |r| r.id, page)?,
            page,
        ))
    }

    async fn expire_orders(&self, limit: u32, deadline: Deadline) -> Result<Vec<OrderId>, Error> {
        let mut state = self.lock(deadline)?;
        let now = OffsetDateTime::now_utc();
        let mut due: Vec<(OffsetDateTime, OrderId)> = state
            .orders
            .values()
            .filter(|o| o.status.holds_stock() && o.expires_at <= now)
            .map(|o| (o.expires_at, o.id))
            .collect();
        due.sort();
        due.truncate(limit as usize);
        for (_, id) in &due {
            state.transition(*id, OrderAction::Expire)?;
        }
        Ok(due.into_iter().map(|(_, id)| id).collect())
    }
}

impl EventStore for MemoryStore {
    async fn list_events(
        &self,
        after: Position,
        limit: u32,
        deadline: Deadline,
    ) -> Result<FeedPage, Error> {
        let state = self.lock(deadline)?;
        let items = state
            .events
            .iter()
            .filter(|e| e.position > after)
            .take(limit as usize)
            .cloned()
            .collect();
        Ok(FeedPage::new(items, after))
    }

    async fn undelivered_events(
        &self,
        batch: u32,
        deadline: Deadline,
    ) -> Result<(Position, Vec<Event>), Error> {
        let state = self.lock(deadline)?;
        let after = state.delivered;
        let events = state
            .events
            .iter()
            .filter(|e| e.position > after)
            .take(batch as usize)
            .cloned()
            .collect();
        Ok((after, events))
    }

    async fn mark_delivered(
        &self,
        from: Position,
        to: Position,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let mut state = self.lock(deadline)?;
        if state.delivered != from {
            return Ok(false);
        }
        state.delivered = to;
        Ok(true)
    }

    async fn purge_delivered_events(
        &self,
        retention: std::time::Duration,
        batch: u32,
        deadline: Deadline,
    ) -> Result<u64, Error> {
        let mut state = self.lock(deadline)?;
        let before = OffsetDateTime::now_utc() - retention;
        let delivered = state.delivered;
        // The outbox is in feed order, which is the order of the events' times here.
        let mut deleted = 0;
        state.events.retain(|e| {
            let purge =
                deleted < u64::from(batch) && e.position <= delivered && e.occurred_at < before;
            deleted += u64::from(purge);
            !purge
        });
        Ok(deleted)
    }
}

impl IdempotentStore for MemoryStore {
    async fn write_once(
        &self,
        claim: &Claim,
        write: Write,
        render: &Render,
        deadline: Deadline,
    ) -> Result<(Once, Option<Written>), Error> {
        let mut state = self.lock(deadline)?;
        let now = OffsetDateTime::now_utc();
        let id = (claim.caller.clone(), claim.key.as_str().to_owned());
        if let Some(stored) = state.keys.get(&id)
            && !stored.expired(now)
        {
            return if stored.fingerprint == claim.fingerprint {
                Ok((Once::Replayed(stored.replay.clone()), None))
            } else {
                Err(Error::IdempotencyKeyReused)
            };
        }
        // One lock stands for the transaction: the write, then the key with its response, or neither. A new
        // key past the caller's limit is checked first, as nothing here rolls back.
        let counted = state.keys.contains_key(&id);
        let held = state
            .keys
            .iter()
            .filter(|((caller, _), _)| *caller == claim.caller)
            .count();
        let over_limit = !counted && held >= self.key_limit as usize;
        let written = if over_limit {
            // Made on a copy, kept only if it changed nothing: a no-op stores no key, so it is not limited.
            let written = state.clone().apply(write)?;
            if !written.changed_nothing() {
                return Err(Error::TooManyKeys {
                    limit: self.key_limit,
                });
            }
            written
        } else {
            state.apply(write)?
        };
        let replay = render(&written);
        if written.changed_nothing() {
            // An expired key a no-op took over goes, as the no-op keeps nothing.
            state.keys.remove(&id);
        } else {
            let stored = StoredKey {
                fingerprint: claim.fingerprint,
                replay: replay.clone(),
                created_at: now,
            };
            state.keys.insert(id, stored);
        }
        Ok((Once::Fresh(replay), Some(written)))
    }

    async fn purge_expired_keys(&self, batch: u32, deadline: Deadline) -> Result<u64, Error> {
        let mut state = self.lock(deadline)?;
        let now = OffsetDateTime::now_utc();
        let mut expired: Vec<(OffsetDateTime, (String, String))> = state
            .keys
            .iter()
            .filter(|(_, stored)| stored.expired(now))
            .map(|(key, stored)| (stored.created_at, key.clone()))
            .collect();
        expired.sort();
        expired.truncate(batch as usize);
        for (_, key) in &expired {
            state.keys.remove(key);
        }
        Ok(expired.len() as u64)
    }
}

impl HealthProbe for MemoryStore {
    async fn ping(&self, deadline: Deadline) -> Result<(), Error> {
        self.lock(deadline).map(|_| ())
    }
}
