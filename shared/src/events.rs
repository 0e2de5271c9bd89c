//! The events each kind of change raises, with the resource as the API shows it: the adapters call these in
//! the transaction of the change, so an event exists exactly when its change committed.

use crate::domain::event::{EventType, NewEvent, fell_low};
use crate::domain::order::Order;
use crate::domain::product::Product;
use crate::domain::stock::StockMovement;
use crate::views::{AdjustmentView, OrderView, ProductView};

fn to_json(view: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(view).expect("views serialize to JSON")
}

/// `order.*`: the order after the change.
pub fn order(event_type: EventType, order: &Order) -> NewEvent {
    NewEvent::new(
        event_type,
        order.id.uuid(),
        to_json(OrderView::from(order.clone())),
    )
}

/// `product.*` (and `stock.low`): the product after the change (as it was, for a deletion).
pub fn product(event_type: EventType, product: &Product) -> NewEvent {
    NewEvent::new(
        event_type,
        product.id.uuid(),
        to_json(ProductView::from(product.clone())),
    )
}

/// `stock.adjusted`: the ledger row and the product after it.
pub fn adjusted(movement: &StockMovement, after: &Product) -> NewEvent {
    NewEvent::new(
        EventType::StockAdjusted,
        after.id.uuid(),
        to_json(AdjustmentView {
            movement: movement.clone().into(),
            product: after.clone().into(),
        }),
    )
}

/// `stock.low`, when the change took the product from above its threshold to at or below it; `before` is its
/// `(available, threshold)` before the change.
pub fn low_stock(before: (i64, Option<i64>), after: &Product) -> Option<NewEvent> {
    fell_low(before, (after.available(), after.low_stock_threshold))
        .then(|| product(EventType::StockLow, after))
}
