//! Which change raises which events, decided here once: each function takes a change as the adapter made it
//! (the resource after it, and what it was before where that matters) and answers its events, with the
//! resource as the API shows it. The adapters persist them in the change's transaction, so an event exists
//! exactly when its change committed.

use crate::domain::event::{EventType, NewEvent, fell_low};
use crate::domain::order::{Order, OrderAction, OrderStatus};
use crate::domain::product::Product;
use crate::domain::stock::StockMovement;
use crate::views::{AdjustmentView, OrderView, ProductView};

/// A product's `(available, low-stock threshold)`, before a change.
pub type StockState = (i64, Option<i64>);

/// `product.created`.
pub fn product_created(product: &Product) -> Vec<NewEvent> {
    vec![of_product(EventType::ProductCreated, product)]
}

/// `product.updated`, and `stock.low` when a new threshold put it low.
pub fn product_updated(before: StockState, after: &Product) -> Vec<NewEvent> {
    let mut events = vec![of_product(EventType::ProductUpdated, after)];
    events.extend(low_stock(before, after));
    events
}

/// `product.deleted`, with the product as it was.
pub fn product_deleted(product: &Product) -> Vec<NewEvent> {
    vec![of_product(EventType::ProductDeleted, product)]
}

/// `stock.adjusted` (the ledger row and the product after it), and `stock.low` when it put the product low.
pub fn stock_adjusted(movement: &StockMovement, after: &Product) -> Vec<NewEvent> {
    let before = (
        after.available() - movement.on_hand_delta
            + movement.reserved_delta
            + movement.damaged_delta,
        after.low_stock_threshold,
    );
    let mut events = vec![NewEvent::new(
        EventType::StockAdjusted,
        after.id.uuid(),
        to_json(AdjustmentView {
            movement: movement.clone().into(),
            product: after.clone().into(),
        }),
    )];
    events.extend(low_stock(before, after));
    events
}

/// `order.placed`, then `stock.low` for each product the reservation put low (`products`: each before and
/// after it).
pub fn order_placed<'p>(
    order: &Order,
    products: impl IntoIterator<Item = (StockState, &'p Product)>,
) -> Vec<NewEvent> {
    let mut events = vec![of_order(EventType::OrderPlaced, order)];
    for (before, after) in products {
        events.extend(low_stock(before, after));
    }
    events
}

/// `order.cancelled` or `order.expired`: the order after `action`; a fulfilment's are [`order_fulfilment`]'s.
pub fn order_ended(action: OrderAction, order: &Order) -> Vec<NewEvent> {
    let event_type = match action {
        OrderAction::Cancel => EventType::OrderCancelled,
        OrderAction::Expire => EventType::OrderExpired,
        OrderAction::Fulfill => return order_fulfilment(order),
    };
    vec![of_order(event_type, order)]
}

/// `order.fulfilled` when a fulfilment shipped everything the order had left, `order.partially_fulfilled` when
/// units are left: the order after it, its fulfilments with it.
pub fn order_fulfilment(order: &Order) -> Vec<NewEvent> {
    let event_type = if order.status == OrderStatus::Fulfilled {
        EventType::OrderFulfilled
    } else {
        EventType::OrderPartiallyFulfilled
    };
    vec![of_order(event_type, order)]
}

/// `order.returned`: the order after a return (each line's `returned`).
pub fn order_returned(order: &Order) -> Vec<NewEvent> {
    vec![of_order(EventType::OrderReturned, order)]
}

/// `order.hold_extended`: the order with its new `expires_at`.
pub fn hold_extended(order: &Order) -> Vec<NewEvent> {
    vec![of_order(EventType::OrderHoldExtended, order)]
}

fn to_json(view: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(view).expect("views serialize to JSON")
}

fn of_order(event_type: EventType, order: &Order) -> NewEvent {
    NewEvent::new(
        event_type,
        order.id.uuid(),
        to_json(OrderView::from(order.clone())),
    )
}

fn of_product(event_type: EventType, product: &Product) -> NewEvent {
    NewEvent::new(
        event_type,
        product.id.uuid(),
        to_json(ProductView::from(product.clone())),
    )
}

/// `stock.low`, when the change took the product from above its threshold to at or below it.
fn low_stock(before: StockState, after: &Product) -> Option<NewEvent> {
    fell_low(before, (after.available(), after.low_stock_threshold))
        .then(|| of_product(EventType::StockLow, after))
}
