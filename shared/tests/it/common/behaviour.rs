//! Behaviour every store must show, written once and run against the in-memory adapter (the `services`
//! module) and against Postgres (the `postgres` module).

use std::collections::HashMap;

use inventory::domain::event::{Event, EventType, Position};
use inventory::domain::idempotency::{Claim, Fingerprint, IdempotencyKey, Once};
use inventory::domain::order::{
    CancelReason, NewReturn, Order, OrderAction, OrderStatus, ReturnLine, ReturnReason,
};
use inventory::domain::product::{ProductFilter, ProductPatch};
use inventory::domain::stock::{MovementReason, StockAdjustment, StockMovement};
use inventory::domain::{
    Cursor, Error, IfMatch, Listed, Note, Page, PageRequest, PriceMinor, ProductId, ProductName,
    StockLevel, new_id,
};
use inventory::http::idempotency::render;
use inventory::ports::{Store, Write};
use inventory::service::Inventory;

use super::{deadline, fulfilment, new_order, new_product, new_product_in};

/// Every ledger row of a product, oldest first.
pub async fn ledger<S: Store>(inventory: &Inventory<S>, id: ProductId) -> Vec<StockMovement> {
    let mut rows = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    loop {
        let got = inventory
            .list_movements(id, page, deadline())
            .await
            .unwrap();
        rows.extend(got.items);
        match got.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => break,
        }
    }
    rows.reverse();
    rows
}

/// The ledger of a product adds up to its stock levels, and each row's balances follow from the previous.
pub async fn assert_ledger_balances<S: Store>(inventory: &Inventory<S>, id: ProductId) {
    let product = inventory.get_product(id, deadline()).await.unwrap();
    let rows = ledger(inventory, id).await;
    let on_hand: i64 = rows.iter().map(|m| m.on_hand_delta).sum();
    let reserved: i64 = rows.iter().map(|m| m.reserved_delta).sum();
    let damaged: i64 = rows.iter().map(|m| m.damaged_delta).sum();
    assert_eq!(
        (on_hand, reserved, damaged),
        (product.on_hand, product.reserved, product.damaged),
        "ledger of {id}"
    );
    // Listed in the order the changes happened: each row's balances follow from the ones before it.
    let (mut running_on_hand, mut running_reserved, mut running_damaged) = (0, 0, 0);
    for row in &rows {
        running_on_hand += row.on_hand_delta;
        running_reserved += row.reserved_delta;
        running_damaged += row.damaged_delta;
        assert_eq!(
            (row.on_hand_after, row.reserved_after, row.damaged_after),
            (running_on_hand, running_reserved, running_damaged),
            "ledger of {id} out of order at {row:?}"
        );
    }
}

/// `reserved` of every product equals the sum of its pending orders' lines.
pub async fn assert_reserved_matches_pending_orders<S: Store>(
    inventory: &Inventory<S>,
    products: &[ProductId],
) {
    let mut pending: HashMap<ProductId, i64> = HashMap::new();
    for status in [OrderStatus::Pending, OrderStatus::PartiallyFulfilled] {
        let mut page = PageRequest {
            limit: 100,
            after: None,
        };
        loop {
            let got = inventory
                .list_orders(Some(status), page, deadline())
                .await
                .unwrap();
            for order in &got.items {
                for line in &order.lines {
                    *pending.entry(line.product_id).or_default() += line.remaining();
                }
            }
            match got.next_cursor {
                Some(cursor) => page.after = Some(cursor),
                None => break,
            }
        }
    }
    for id in products {
        let product = inventory.get_product(*id, deadline()).await.unwrap();
        assert_eq!(
            product.reserved,
            pending.get(id).copied().unwrap_or(0),
            "reserved of {id}"
        );
    }
}

pub async fn initial_stock_is_recorded_in_the_ledger<S: Store>(inventory: Inventory<S>) {
    let product = inventory
        .create_product(new_product("A-1", 100, 7), deadline())
        .await
        .unwrap();
    assert_eq!(
        (
            product.on_hand,
            product.reserved,
            product.available(),
            product.version
        ),
        (7, 0, 7, 1)
    );
    let rows = ledger(&inventory, product.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reason, MovementReason::Received);
    assert_eq!(rows[0].on_hand_delta, 7);
    let empty = inventory
        .create_product(new_product("A-2", 100, 0), deadline())
        .await
        .unwrap();
    assert!(ledger(&inventory, empty.id).await.is_empty());
}

pub async fn a_duplicate_sku_is_refused<S: Store>(inventory: Inventory<S>) {
    inventory
        .create_product(new_product("DUP", 1, 0), deadline())
        .await
        .unwrap();
    let again = inventory
        .create_product(new_product("DUP", 2, 0), deadline())
        .await;
    assert!(matches!(again, Err(Error::SkuTaken)), "{again:?}");
}

pub async fn an_order_reserves_and_cancelling_releases<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("A", 250, 10), deadline())
        .await
        .unwrap();
    let b = inventory
        .create_product(new_product("B", 1000, 3), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(b.id, 1), (a.id, 2), (b.id, 2)]), deadline())
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(order.total_minor, 3 * 1000 + 2 * 250);
    assert_eq!(
        order.lines.len(),
        2,
        "lines for the same product are summed"
    );
    assert_eq!(
        (order.lines[0].product_id, order.lines[0].quantity),
        (b.id, 3)
    );
    assert_eq!(
        inventory.get_order(order.id, deadline()).await.unwrap(),
        order
    );

    let b_now = inventory.get_product(b.id, deadline()).await.unwrap();
    assert_eq!(
        (b_now.on_hand, b_now.reserved, b_now.available()),
        (3, 3, 0)
    );
    assert!(
        b_now.version > b.version,
        "a reservation changes the product's version"
    );

    let cancelled = inventory
        .transition_order(order.id, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let again = inventory
        .transition_order(order.id, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    assert_eq!(
        again.status,
        OrderStatus::Cancelled,
        "cancelling twice is a no-op"
    );
    let fulfil = inventory
        .transition_order(order.id, OrderAction::Fulfill, deadline())
        .await;
    assert!(matches!(fulfil, Err(Error::Conflict(_))), "{fulfil:?}");

    for id in [a.id, b.id] {
        let p = inventory.get_product(id, deadline()).await.unwrap();
        assert_eq!(p.reserved, 0);
        assert_ledger_balances(&inventory, id).await;
    }
    let reasons: Vec<MovementReason> = ledger(&inventory, b.id)
        .await
        .iter()
        .map(|m| m.reason)
        .collect();
    assert_eq!(
        reasons,
        [
            MovementReason::Received,
            MovementReason::OrderReserved,
            MovementReason::OrderReleased
        ]
    );
}

pub async fn fulfilling_ships_the_stock<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("A", 100, 5), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(a.id, 2)]), deadline())
        .await
        .unwrap();
    let done = inventory
        .transition_order(order.id, OrderAction::Fulfill, deadline())
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Fulfilled);
    let repeat = inventory
        .transition_order(order.id, OrderAction::Fulfill, deadline())
        .await
        .unwrap();
    assert_eq!(
        repeat.status,
        OrderStatus::Fulfilled,
        "fulfilling twice is a no-op"
    );
    let cancel = inventory
        .transition_order(order.id, OrderAction::Cancel, deadline())
        .await;
    assert!(matches!(cancel, Err(Error::Conflict(_))), "{cancel:?}");
    let p = inventory.get_product(a.id, deadline()).await.unwrap();
    assert_eq!((p.on_hand, p.reserved), (3, 0));
    assert_ledger_balances(&inventory, a.id).await;
}

/// `(fulfilled, reserved-by-the-order)` of each line of an order, as its view shows them.
fn shipped(order: &Order) -> Vec<(i64, i64)> {
    inventory::views::OrderView::from(order.clone())
        .lines
        .iter()
        .map(|l| (l.fulfilled, l.reserved))
        .collect()
}

/// An order ships in parts: each fulfilment takes its units from on hand and reserved, the lines count them,
/// and the order is partially fulfilled until the last unit ships; asking for more than a line has left is
/// refused with what each such line has left (nothing shipped), a product not in the order is a validation
/// error, and `fulfill` ships everything left as one more fulfilment. Each fulfilment raises one event.
pub async fn an_order_ships_in_parts<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("PART-A", 100, 10), deadline())
        .await
        .unwrap();
    let b = inventory
        .create_product(new_product("PART-B", 100, 10), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(a.id, 4), (b.id, 2)]), deadline())
        .await
        .unwrap();
    let (first, after) = inventory
        .fulfil(order.id, fulfilment(&[(a.id, 1), (a.id, 2)]), deadline())
        .await
        .unwrap();
    assert_eq!(after.status, OrderStatus::PartiallyFulfilled);
    assert_eq!(first.lines.len(), 1, "{first:?}");
    assert_eq!(
        (first.lines[0].product_id, first.lines[0].quantity),
        (a.id, 3)
    );
    assert_eq!(shipped(&after), vec![(3, 1), (0, 2)]);
    let p = inventory.get_product(a.id, deadline()).await.unwrap();
    assert_eq!((p.on_hand, p.reserved), (7, 1));

    let beyond = inventory
        .fulfil(order.id, fulfilment(&[(a.id, 2), (b.id, 3)]), deadline())
        .await;
    let Err(Error::BeyondRemaining(lines)) = beyond else {
        panic!("{beyond:?}");
    };
    let left: Vec<(ProductId, i64, i64)> = lines
        .iter()
        .map(|l| (l.product_id, l.requested, l.remaining))
        .collect();
    assert_eq!(left, vec![(a.id, 2, 1), (b.id, 3, 2)]);
    let stranger = inventory
        .create_product(new_product("PART-X", 100, 10), deadline())
        .await
        .unwrap();
    let not_a_line = inventory
        .fulfil(
            order.id,
            fulfilment(&[(a.id, 1), (stranger.id, 1)]),
            deadline(),
        )
        .await;
    assert!(
        matches!(not_a_line, Err(Error::Validation(ref e)) if e[0].pointer == "/lines/1/product_id"),
        "{not_a_line:?}"
    );
    let unknown = inventory
        .fulfil(new_id(), fulfilment(&[(a.id, 1)]), deadline())
        .await;
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    let got = inventory.get_order(order.id, deadline()).await.unwrap();
    assert_eq!(got, after, "the refusals shipped nothing");

    let all = inventory
        .transition_order(order.id, OrderAction::Fulfill, deadline())
        .await
        .unwrap();
    assert_eq!(all.status, OrderStatus::Fulfilled);
    assert_eq!(shipped(&all), vec![(4, 0), (2, 0)]);
    let more = inventory
        .fulfil(order.id, fulfilment(&[(a.id, 1)]), deadline())
        .await;
    assert!(matches!(more, Err(Error::Conflict(_))), "{more:?}");
    for (id, left) in [(a.id, 6), (b.id, 8)] {
        let p = inventory.get_product(id, deadline()).await.unwrap();
        assert_eq!((p.on_hand, p.reserved), (left, 0));
        assert_ledger_balances(&inventory, id).await;
    }

    // Shipping the last units by parts fulfils the order too.
    let second = inventory
        .create_order(new_order(&[(a.id, 2)]), deadline())
        .await
        .unwrap();
    for expected in [OrderStatus::PartiallyFulfilled, OrderStatus::Fulfilled] {
        let (_, order) = inventory
            .fulfil(second.id, fulfilment(&[(a.id, 1)]), deadline())
            .await
            .unwrap();
        assert_eq!(order.status, expected);
    }
    let events: Vec<EventType> = feed_until(&inventory, 100, |e| {
        e.resource_id == second.id.uuid() && e.event_type == EventType::OrderFulfilled
    })
    .await
    .into_iter()
    .filter(|e| e.resource_id == order.id.uuid() || e.resource_id == second.id.uuid())
    .map(|e| e.event_type)
    .collect();
    assert_eq!(
        events,
        vec![
            EventType::OrderPlaced,
            EventType::OrderPartiallyFulfilled,
            EventType::OrderFulfilled,
            EventType::OrderPlaced,
            EventType::OrderPartiallyFulfilled,
            EventType::OrderFulfilled,
        ]
    );
    let moved: Vec<(MovementReason, i64, i64)> = ledger(&inventory, a.id)
        .await
        .into_iter()
        .filter(|m| m.reason == MovementReason::OrderFulfilled)
        .map(|m| (m.reason, m.on_hand_delta, m.reserved_delta))
        .collect();
    assert_eq!(moved.len(), 4, "one ledger row per line of each fulfilment");
    assert_reserved_matches_pending_orders(&inventory, &[a.id, b.id]).await;
}

fn taking_back(lines: &[(ProductId, i64, bool)]) -> NewReturn {
    let lines = lines
        .iter()
        .map(|&(product_id, quantity, restock)| ReturnLine {
            product_id,
            quantity,
            restock,
            damaged: false,
        })
        .collect();
    NewReturn::new(lines, ReturnReason::Defective).unwrap()
}

/// An order's fulfilments and returns read back as they were answered, oldest first, page by page: an order
/// with none has an empty page, an unknown order is not found, another order's never show, and a cursor of
/// another order's list (or of none) is refused.
pub async fn an_order_lists_its_fulfilments_and_returns<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("LIST-A", 100, 10), deadline())
        .await
        .unwrap();
    let b = inventory
        .create_product(new_product("LIST-B", 100, 10), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(a.id, 5), (b.id, 3)]), deadline())
        .await
        .unwrap();
    let other = inventory
        .create_order(new_order(&[(a.id, 2)]), deadline())
        .await
        .unwrap();
    let none = inventory
        .list_fulfilments(order.id, page(20), deadline())
        .await
        .unwrap();
    assert!(
        none.items.is_empty() && none.next_cursor.is_none(),
        "{none:?}"
    );
    let (theirs, _) = inventory
        .fulfil(other.id, fulfilment(&[(a.id, 1)]), deadline())
        .await
        .unwrap();
    let mut shipped = Vec::new();
    for lines in [
        &[(a.id, 1)][..],
        &[(b.id, 1), (a.id, 2)],
        &[(a.id, 1)],
        &[(b.id, 2)],
    ] {
        let (made, _) = inventory
            .fulfil(order.id, fulfilment(lines), deadline())
            .await
            .unwrap();
        shipped.push(made);
    }
    let (their_return, _) = inventory
        .take_back(other.id, taking_back(&[(a.id, 1, true)]), deadline())
        .await
        .unwrap();
    let mut returned = Vec::new();
    for lines in [&[(a.id, 1, true)][..], &[(b.id, 2, false), (a.id, 1, true)]] {
        let (taken, _) = inventory
            .take_back(order.id, taking_back(lines), deadline())
            .await
            .unwrap();
        returned.push(taken);
    }

    let listed = every_page(3, async |request| {
        inventory
            .list_fulfilments(order.id, request, deadline())
            .await
    })
    .await;
    assert_eq!(
        listed, shipped,
        "each fulfilment once, oldest first, as answered"
    );
    let listed = every_page(1, async |request| {
        inventory.list_returns(order.id, request, deadline()).await
    })
    .await;
    assert_eq!(
        listed, returned,
        "each return once, oldest first, as answered"
    );

    // A cursor is refused by any list it was not issued by: another order's, or none at all.
    fn elsewhere<K>(after: K) -> PageRequest<K> {
        PageRequest {
            limit: 100,
            after: Some(Cursor(after)),
        }
    }
    for after in [theirs.id, new_id()] {
        let refused = inventory
            .list_fulfilments(order.id, elsewhere(after), deadline())
            .await;
        assert!(
            matches!(refused, Err(Error::CursorElsewhere("order"))),
            "{refused:?}"
        );
    }
    for after in [their_return.id, new_id()] {
        let refused = inventory
            .list_returns(order.id, elsewhere(after), deadline())
            .await;
        assert!(
            matches!(refused, Err(Error::CursorElsewhere("order"))),
            "{refused:?}"
        );
    }
    let from_own = inventory
        .list_fulfilments(order.id, elsewhere(shipped[1].id), deadline())
        .await
        .unwrap();
    assert_eq!(from_own.items, shipped[2..]);
    let unknown = inventory
        .list_fulfilments(new_id(), page(20), deadline())
        .await;
    assert!(
        matches!(unknown, Err(Error::NotFound("order"))),
        "{unknown:?}"
    );
    let unknown = inventory.list_returns(new_id(), page(20), deadline()).await;
    assert!(
        matches!(unknown, Err(Error::NotFound("order"))),
        "{unknown:?}"
    );
}

/// Shipped units come back: restocked ones go back on hand (`return_restock`), others are recorded
/// (`return_discarded`) and move no stock; never more than shipped and not yet back (409 with what each line
/// can still take back), only lines of the order, not restocked into a product deleted since; the order's
/// status stays, even cancelled; each return raises `order.returned`.
pub async fn shipped_units_come_back_restocked_or_not<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("BACK-A", 100, 10), deadline())
        .await
        .unwrap();
    let b = inventory
        .create_product(new_product("BACK-B", 100, 10), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(a.id, 3), (b.id, 2)]), deadline())
        .await
        .unwrap();
    let early = inventory
        .take_back(order.id, taking_back(&[(a.id, 1, true)]), deadline())
        .await;
    assert!(
        matches!(early, Err(Error::BeyondReturnable(ref l)) if l[0].remaining == 0),
        "nothing shipped yet: {early:?}"
    );
    inventory
        .fulfil(order.id, fulfilment(&[(a.id, 2), (b.id, 2)]), deadline())
        .await
        .unwrap();
    let (taken, after) = inventory
        .take_back(
            order.id,
            taking_back(&[(b.id, 1, false), (a.id, 1, true)]),
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(taken.reason, ReturnReason::Defective);
    let lines: Vec<(ProductId, i64, bool)> = taken
        .lines
        .iter()
        .map(|l| (l.product_id, l.quantity, l.restock))
        .collect();
    assert_eq!(
        lines,
        vec![(a.id, 1, true), (b.id, 1, false)],
        "in line order"
    );
    assert_eq!(after.status, OrderStatus::PartiallyFulfilled);
    let back: Vec<(i64, i64)> = after
        .lines
        .iter()
        .map(|l| (l.fulfilled, l.returned))
        .collect();
    assert_eq!(back, vec![(2, 1), (2, 1)]);
    for (id, expected) in [(a.id, (9, 1)), (b.id, (8, 0))] {
        let p = inventory.get_product(id, deadline()).await.unwrap();
        assert_eq!((p.on_hand, p.reserved), expected);
        assert_ledger_balances(&inventory, id).await;
    }
    let reasons = |rows: Vec<StockMovement>| -> Vec<(MovementReason, i64)> {
        rows.into_iter()
            .filter(|m| {
                matches!(
                    m.reason,
                    MovementReason::ReturnRestock | MovementReason::ReturnDiscarded
                )
            })
            .map(|m| (m.reason, m.on_hand_delta))
            .collect()
    };
    assert_eq!(
        reasons(ledger(&inventory, a.id).await),
        vec![(MovementReason::ReturnRestock, 1)]
    );
    assert_eq!(
        reasons(ledger(&inventory, b.id).await),
        vec![(MovementReason::ReturnDiscarded, 0)]
    );

    let beyond = inventory
        .take_back(order.id, taking_back(&[(a.id, 2, true)]), deadline())
        .await;
    let Err(Error::BeyondReturnable(lines)) = beyond else {
        panic!("{beyond:?}");
    };
    assert_eq!(
        (lines[0].product_id, lines[0].requested, lines[0].remaining),
        (a.id, 2, 1)
    );
    let stranger = inventory
        .create_product(new_product("BACK-X", 100, 1), deadline())
        .await
        .unwrap();
    let not_a_line = inventory
        .take_back(order.id, taking_back(&[(stranger.id, 1, true)]), deadline())
        .await;
    assert!(
        matches!(not_a_line, Err(Error::Validation(ref e)) if e[0].pointer == "/lines/0/product_id"),
        "{not_a_line:?}"
    );
    let unknown = inventory
        .take_back(new_id(), taking_back(&[(a.id, 1, true)]), deadline())
        .await;
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    assert_eq!(
        inventory.get_order(order.id, deadline()).await.unwrap(),
        after,
        "the refusals took nothing back"
    );

    // A cancelled order's shipped units still come back; a product deleted since cannot be restocked.
    inventory
        .transition_order(order.id, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    let empty = StockAdjustment {
        delta: -8,
        reason: MovementReason::Shrinkage,
        note: None,
    };
    inventory
        .adjust_stock(b.id, empty, deadline())
        .await
        .unwrap();
    inventory.delete_product(b.id, deadline()).await.unwrap();
    let gone = inventory
        .take_back(order.id, taking_back(&[(b.id, 1, true)]), deadline())
        .await;
    assert!(matches!(gone, Err(Error::Conflict(_))), "{gone:?}");
    let (_, last) = inventory
        .take_back(
            order.id,
            taking_back(&[(a.id, 1, true), (b.id, 1, false)]),
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(last.status, OrderStatus::Cancelled);
    let back: Vec<(i64, i64)> = last
        .lines
        .iter()
        .map(|l| (l.fulfilled, l.returned))
        .collect();
    assert_eq!(back, vec![(2, 2), (2, 2)]);
    let p = inventory.get_product(a.id, deadline()).await.unwrap();
    assert_eq!((p.on_hand, p.reserved), (10, 0));
    assert_ledger_balances(&inventory, a.id).await;
    let returned = feed_until(&inventory, 100, |e| {
        e.event_type == EventType::OrderReturned && e.data["lines"][0]["returned"] == 2
    })
    .await
    .into_iter()
    .filter(|e| e.event_type == EventType::OrderReturned)
    .count();
    assert_eq!(returned, 2, "one event per return");
}

/// A product with a backorder limit sells ahead of its stock up to the limit (available shows the debt), and
/// its backordered units ship only once stock has arrived; the limit cannot drop below what is owed.
pub async fn backorders_sell_ahead_of_stock_up_to_the_limit<S: Store>(inventory: Inventory<S>) {
    let mut new = new_product("AHEAD", 100, 2);
    new.policy.backorder_limit = 3;
    let p = inventory.create_product(new, deadline()).await.unwrap();
    let big = inventory
        .create_order(new_order(&[(p.id, 4)]), deadline())
        .await
        .unwrap();
    let short = inventory
        .create_order(new_order(&[(p.id, 2)]), deadline())
        .await;
    assert!(
        matches!(short, Err(Error::InsufficientStock(ref s)) if s[0].available == 1),
        "one more may be backordered: {short:?}"
    );
    let small = inventory
        .create_order(new_order(&[(p.id, 1)]), deadline())
        .await
        .unwrap();
    let after = inventory.get_product(p.id, deadline()).await.unwrap();
    assert_eq!(
        (after.on_hand, after.reserved, after.available()),
        (2, 5, -3)
    );
    let lower = ProductPatch {
        backorder_limit: Some(StockLevel::parse(2).unwrap()),
        ..ProductPatch::default()
    };
    let refused = inventory
        .update_product(p.id, lower, None, deadline())
        .await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");

    // Two units are on hand: the big order ships two, and waits for the rest.
    let waiting = inventory
        .transition_order(big.id, OrderAction::Fulfill, deadline())
        .await;
    assert!(matches!(waiting, Err(Error::Conflict(_))), "{waiting:?}");
    inventory
        .fulfil(big.id, fulfilment(&[(p.id, 2)]), deadline())
        .await
        .unwrap();
    let waiting = inventory
        .fulfil(small.id, fulfilment(&[(p.id, 1)]), deadline())
        .await;
    assert!(
        matches!(waiting, Err(Error::Conflict(_))),
        "nothing on hand: {waiting:?}"
    );
    let arrived = StockAdjustment {
        delta: 5,
        reason: MovementReason::Received,
        note: None,
    };
    inventory
        .adjust_stock(p.id, arrived, deadline())
        .await
        .unwrap();
    let shipped = inventory
        .transition_order(big.id, OrderAction::Fulfill, deadline())
        .await
        .unwrap();
    assert_eq!(shipped.status, OrderStatus::Fulfilled);
    let after = inventory.get_product(p.id, deadline()).await.unwrap();
    assert_eq!(
        (after.on_hand, after.reserved, after.available()),
        (3, 1, 2)
    );
    assert_ledger_balances(&inventory, p.id).await;
    assert_reserved_matches_pending_orders(&inventory, &[p.id]).await;
}

/// Safety stock is on hand but not available: no order takes it, no adjustment or setting takes available
/// stock below zero (without a backorder limit), and a product cannot start below it.
pub async fn safety_stock_is_on_hand_but_never_sold<S: Store>(inventory: Inventory<S>) {
    let mut new = new_product("KEPT", 100, 10);
    new.policy.safety_stock = 4;
    let p = inventory.create_product(new, deadline()).await.unwrap();
    assert_eq!(p.available(), 6);
    let short = inventory
        .create_order(new_order(&[(p.id, 7)]), deadline())
        .await;
    assert!(
        matches!(short, Err(Error::InsufficientStock(ref s)) if s[0].available == 6),
        "{short:?}"
    );
    inventory
        .create_order(new_order(&[(p.id, 6)]), deadline())
        .await
        .unwrap();
    let lost = StockAdjustment {
        delta: -1,
        reason: MovementReason::Shrinkage,
        note: None,
    };
    let refused = inventory.adjust_stock(p.id, lost, deadline()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let more = |safety: i64| ProductPatch {
        safety_stock: Some(StockLevel::parse(safety).unwrap()),
        ..ProductPatch::default()
    };
    let refused = inventory
        .update_product(p.id, more(5), None, deadline())
        .await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let less = inventory
        .update_product(p.id, more(1), None, deadline())
        .await
        .unwrap();
    assert_eq!((less.safety_stock, less.available()), (1, 3));
    let mut underwater = new_product("KEPT-2", 100, 2);
    underwater.policy.safety_stock = 3;
    let refused = inventory.create_product(underwater, deadline()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    assert_ledger_balances(&inventory, p.id).await;
}

/// Damaged units are on hand but not available: they move in and out through the ledger (`marked_damaged`),
/// never more than on hand nor fewer than none, orders and shipments leave them alone, and a `damaged`
/// write-off disposes of them first.
pub async fn damaged_units_are_on_hand_but_never_sold<S: Store>(inventory: Inventory<S>) {
    let mut new = new_product("BROKEN", 100, 10);
    new.policy.backorder_limit = 2;
    let p = inventory.create_product(new, deadline()).await.unwrap();
    let adjust = |delta: i64, reason: MovementReason| StockAdjustment {
        delta,
        reason,
        note: None,
    };
    let (movement, after) = inventory
        .adjust_stock(p.id, adjust(3, MovementReason::MarkedDamaged), deadline())
        .await
        .unwrap();
    assert_eq!(
        (
            movement.on_hand_delta,
            movement.damaged_delta,
            movement.damaged_after
        ),
        (0, 3, 3)
    );
    assert_eq!(
        (after.on_hand, after.damaged, after.available()),
        (10, 3, 7)
    );
    let short = inventory
        .create_order(new_order(&[(p.id, 10)]), deadline())
        .await;
    assert!(
        matches!(short, Err(Error::InsufficientStock(ref s)) if s[0].available == 9),
        "7 available and 2 to backorder: {short:?}"
    );
    let order = inventory
        .create_order(new_order(&[(p.id, 9)]), deadline())
        .await
        .unwrap();
    // 7 sellable units on hand: the order ships 7 and waits for the rest.
    let waiting = inventory
        .fulfil(order.id, fulfilment(&[(p.id, 8)]), deadline())
        .await;
    assert!(matches!(waiting, Err(Error::Conflict(_))), "{waiting:?}");
    inventory
        .fulfil(order.id, fulfilment(&[(p.id, 7)]), deadline())
        .await
        .unwrap();
    for (delta, why) in [(-4, "only 3 are damaged"), (1, "nothing sellable to mark")] {
        let refused = inventory
            .adjust_stock(
                p.id,
                adjust(delta, MovementReason::MarkedDamaged),
                deadline(),
            )
            .await;
        assert!(
            matches!(refused, Err(Error::Conflict(_))),
            "{why}: {refused:?}"
        );
    }
    let (_, after) = inventory
        .adjust_stock(p.id, adjust(-1, MovementReason::MarkedDamaged), deadline())
        .await
        .unwrap();
    assert_eq!(
        (after.on_hand, after.damaged, after.available()),
        (3, 2, -1)
    );
    let (movement, after) = inventory
        .adjust_stock(p.id, adjust(-2, MovementReason::Damaged), deadline())
        .await
        .unwrap();
    assert_eq!(
        (movement.on_hand_delta, movement.damaged_delta),
        (-2, -2),
        "a write-off disposes of the damaged units"
    );
    assert_eq!(
        (after.on_hand, after.damaged, after.available()),
        (1, 0, -1)
    );
    assert_ledger_balances(&inventory, p.id).await;
    assert_reserved_matches_pending_orders(&inventory, &[p.id]).await;
}

/// A returned unit may come back damaged: on hand again, but not sellable, in the ledger as a restock that
/// raised the damaged count; damaged without coming back on hand is refused.
pub async fn a_return_may_come_back_damaged<S: Store>(inventory: Inventory<S>) {
    let p = inventory
        .create_product(new_product("BACK-BROKEN", 100, 5), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(p.id, 2)]), deadline())
        .await
        .unwrap();
    inventory
        .transition_order(order.id, OrderAction::Fulfill, deadline())
        .await
        .unwrap();
    let line = |restock, damaged| ReturnLine {
        product_id: p.id,
        quantity: 1,
        restock,
        damaged,
    };
    let refused = NewReturn::new(vec![line(false, true)], ReturnReason::Defective);
    assert!(
        matches!(refused, Err(Error::Validation(ref e)) if e[0].pointer == "/lines/0/damaged"),
        "{refused:?}"
    );
    let request = NewReturn::new(vec![line(true, true)], ReturnReason::Defective).unwrap();
    let (taken, _) = inventory
        .take_back(order.id, request, deadline())
        .await
        .unwrap();
    assert!(taken.lines[0].damaged);
    let after = inventory.get_product(p.id, deadline()).await.unwrap();
    assert_eq!((after.on_hand, after.damaged, after.available()), (4, 1, 3));
    let last = ledger(&inventory, p.id).await.pop().unwrap();
    assert_eq!(
        (last.reason, last.on_hand_delta, last.damaged_delta),
        (MovementReason::ReturnRestock, 1, 1)
    );
    assert_ledger_balances(&inventory, p.id).await;
}

/// Cancelling (or expiring) a partially fulfilled order releases only what it has left; what shipped stays
/// shipped. `age` makes every order's hold end two hours sooner.
pub async fn a_partly_shipped_order_releases_only_what_is_left<S: Store>(
    inventory: Inventory<S>,
    age: impl AsyncFnOnce(&Inventory<S>),
) {
    let a = inventory
        .create_product(new_product("LEFT-A", 100, 10), deadline())
        .await
        .unwrap();
    let mut orders = Vec::new();
    for _ in 0..2 {
        let order = inventory
            .create_order(new_order(&[(a.id, 3)]), deadline())
            .await
            .unwrap();
        inventory
            .fulfil(order.id, fulfilment(&[(a.id, 1)]), deadline())
            .await
            .unwrap();
        orders.push(order.id);
    }
    let p = inventory.get_product(a.id, deadline()).await.unwrap();
    assert_eq!((p.on_hand, p.reserved), (8, 4));
    let cancelled = inventory
        .transition_order(orders[0], OrderAction::Cancel, deadline())
        .await
        .unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(shipped(&cancelled), vec![(1, 0)]);
    let p = inventory.get_product(a.id, deadline()).await.unwrap();
    assert_eq!((p.on_hand, p.reserved), (8, 2));

    // A partially fulfilled order's hold can be extended, and it expires like a pending one.
    let hour = std::time::Duration::from_secs(3600);
    let held = inventory
        .extend_hold(orders[1], hour, deadline())
        .await
        .unwrap();
    assert_eq!(held.status, OrderStatus::PartiallyFulfilled);
    age(&inventory).await;
    assert_eq!(inventory.expire_orders(100, deadline()).await.unwrap(), 1);
    let expired = inventory.get_order(orders[1], deadline()).await.unwrap();
    assert_eq!(
        (expired.status, expired.cancel_reason),
        (OrderStatus::Cancelled, Some(CancelReason::Expired))
    );
    assert_eq!(shipped(&expired), vec![(1, 0)]);
    let p = inventory.get_product(a.id, deadline()).await.unwrap();
    assert_eq!((p.on_hand, p.reserved), (8, 0));
    let late = inventory
        .fulfil(orders[1], fulfilment(&[(a.id, 1)]), deadline())
        .await;
    assert!(matches!(late, Err(Error::Conflict(_))), "{late:?}");
    assert_ledger_balances(&inventory, a.id).await;
}

pub async fn a_shortage_names_every_short_line_and_writes_nothing<S: Store>(
    inventory: Inventory<S>,
) {
    let a = inventory
        .create_product(new_product("A", 1, 2), deadline())
        .await
        .unwrap();
    let b = inventory
        .create_product(new_product("B", 1, 5), deadline())
        .await
        .unwrap();
    let c = inventory
        .create_product(new_product("C", 1, 0), deadline())
        .await
        .unwrap();
    let result = inventory
        .create_order(new_order(&[(a.id, 3), (b.id, 5), (c.id, 1)]), deadline())
        .await;
    let Err(Error::InsufficientStock(shortages)) = result else {
        panic!("expected a shortage, got {result:?}");
    };
    let short: Vec<(ProductId, i64, i64)> = shortages
        .iter()
        .map(|s| (s.product_id, s.requested, s.available))
        .collect();
    assert_eq!(short, [(a.id, 3, 2), (c.id, 1, 0)]);
    for id in [a.id, b.id, c.id] {
        assert_eq!(
            inventory
                .get_product(id, deadline())
                .await
                .unwrap()
                .reserved,
            0
        );
        assert_ledger_balances(&inventory, id).await;
    }
    let orders = inventory
        .list_orders(None, PageRequest::default(), deadline())
        .await
        .unwrap();
    assert!(orders.items.is_empty());
}

pub async fn unknown_products_are_all_named<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("A", 1, 2), deadline())
        .await
        .unwrap();
    let (x, y) = (new_id(), new_id());
    let result = inventory
        .create_order(new_order(&[(x, 1), (a.id, 1), (y, 1)]), deadline())
        .await;
    let Err(Error::UnknownProducts(errors)) = result else {
        panic!("expected unknown products, got {result:?}");
    };
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, ["/lines/0/product_id", "/lines/2/product_id"]);
    assert_eq!(
        inventory
            .get_product(a.id, deadline())
            .await
            .unwrap()
            .reserved,
        0
    );
}

pub async fn one_order_has_one_currency<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product_in("A", 1, 2, "EUR"), deadline())
        .await
        .unwrap();
    let b = inventory
        .create_product(new_product_in("B", 1, 2, "USD"), deadline())
        .await
        .unwrap();
    let result = inventory
        .create_order(new_order(&[(a.id, 1), (b.id, 1)]), deadline())
        .await;
    assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
    assert_eq!(
        inventory
            .get_product(a.id, deadline())
            .await
            .unwrap()
            .reserved,
        0
    );
}

pub async fn stock_adjustments_never_go_below_what_is_reserved<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("A", 1, 5), deadline())
        .await
        .unwrap();
    inventory
        .create_order(new_order(&[(a.id, 4)]), deadline())
        .await
        .unwrap();
    let adjust = |delta| StockAdjustment {
        delta,
        reason: MovementReason::Damaged,
        note: Some(Note::parse("dropped a box".into()).unwrap()),
    };
    let refused = inventory.adjust_stock(a.id, adjust(-2), deadline()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let (movement, product) = inventory
        .adjust_stock(a.id, adjust(-1), deadline())
        .await
        .unwrap();
    assert_eq!(
        (product.on_hand, product.reserved, product.available()),
        (4, 4, 0)
    );
    assert_eq!((movement.on_hand_delta, movement.on_hand_after), (-1, 4));
    assert_eq!(movement.note.as_deref(), Some("dropped a box"));
    let ceiling = inventory
        .adjust_stock(a.id, adjust(1_000_000_000_000), deadline())
        .await;
    assert!(matches!(ceiling, Err(Error::Conflict(_))), "{ceiling:?}");
    let (_, product) = inventory
        .adjust_stock(a.id, adjust(10), deadline())
        .await
        .unwrap();
    assert_eq!(product.on_hand, 14);
    assert_ledger_balances(&inventory, a.id).await;
    let missing = inventory
        .adjust_stock(new_id(), adjust(1), deadline())
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
}

pub async fn deleting_waits_for_reservations_and_stock_and_keeps_past_orders<S: Store>(
    inventory: Inventory<S>,
) {
    let a = inventory
        .create_product(new_product("A", 399, 5), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(a.id, 1)]), deadline())
        .await
        .unwrap();
    let refused = inventory.delete_product(a.id, deadline()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    inventory
        .transition_order(order.id, OrderAction::Fulfill, deadline())
        .await
        .unwrap();
    // Stock still on hand: it must leave through the ledger first, so the ledger keeps adding up.
    let refused = inventory.delete_product(a.id, deadline()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let write_off = StockAdjustment {
        delta: -4,
        reason: MovementReason::Damaged,
        note: None,
    };
    inventory
        .adjust_stock(a.id, write_off, deadline())
        .await
        .unwrap();
    let rows = ledger(&inventory, a.id).await;
    assert_eq!(rows.iter().map(|m| m.on_hand_delta).sum::<i64>(), 0);
    inventory.delete_product(a.id, deadline()).await.unwrap();
    let gone = inventory.get_product(a.id, deadline()).await;
    assert!(matches!(gone, Err(Error::NotFound(_))), "{gone:?}");
    // The ledger of a deleted product is kept but no longer listed: its product is not found.
    let ledger_gone = inventory
        .list_movements(a.id, PageRequest::default(), deadline())
        .await;
    assert!(
        matches!(ledger_gone, Err(Error::NotFound(_))),
        "{ledger_gone:?}"
    );
    let again = inventory.delete_product(a.id, deadline()).await;
    assert!(matches!(again, Err(Error::NotFound(_))), "{again:?}");
    let past = inventory.get_order(order.id, deadline()).await.unwrap();
    assert_eq!(
        (past.lines[0].sku.as_str(), past.lines[0].unit_price_minor),
        ("A", 399)
    );
}

pub async fn updates_honour_if_match_and_keep_order_snapshots<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("A", 100, 5), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(a.id, 1)]), deadline())
        .await
        .unwrap();
    let current = inventory.get_product(a.id, deadline()).await.unwrap();
    let patch = ProductPatch {
        name: Some(ProductName::parse("Renamed".into()).unwrap()),
        price: Some(PriceMinor::parse(150).unwrap()),
        description: Some(None),
        ..ProductPatch::default()
    };
    let stale = inventory
        .update_product(
            a.id,
            patch.clone(),
            Some(IfMatch::Versions(vec![a.version])),
            deadline(),
        )
        .await;
    assert!(matches!(stale, Err(Error::PreconditionFailed)), "{stale:?}");
    let updated = inventory
        .update_product(
            a.id,
            patch.clone(),
            Some(IfMatch::Versions(vec![current.version])),
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.price_minor),
        ("Renamed", 150)
    );
    assert_eq!(updated.version, current.version + 1);
    assert_eq!(
        (updated.on_hand, updated.reserved),
        (5, 1),
        "a patch never changes stock"
    );
    let any = inventory
        .update_product(a.id, patch.clone(), Some(IfMatch::Any), deadline())
        .await;
    assert!(any.is_ok());
    let missing = inventory
        .update_product(new_id(), patch, None, deadline())
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let past = inventory.get_order(order.id, deadline()).await.unwrap();
    assert_eq!(
        (past.lines[0].name.as_str(), past.lines[0].unit_price_minor),
        ("Product A", 100)
    );
}

pub async fn pages_walk_every_item_once<S: Store>(inventory: Inventory<S>) {
    let mut created = Vec::new();
    for i in 0..7 {
        let p = inventory
            .create_product(new_product(&format!("P-{i}"), 1, 10), deadline())
            .await
            .unwrap();
        created.push(p.id);
    }
    let seen: Vec<ProductId> = every_page(3, async |request| {
        inventory
            .list_products(ProductFilter::default(), request, deadline())
            .await
    })
    .await
    .into_iter()
    .map(|p| p.id)
    .collect();
    assert_eq!(seen, created, "products come in creation order, each once");

    for id in &created[..5] {
        inventory
            .create_order(new_order(&[(*id, 1)]), deadline())
            .await
            .unwrap();
    }
    let orders = every_page(2, async |request| {
        inventory.list_orders(None, request, deadline()).await
    })
    .await;
    assert_eq!(orders.len(), 5);
    assert!(
        orders.windows(2).all(|w| w[0].id > w[1].id),
        "orders come newest first"
    );
    inventory
        .transition_order(orders[0].id, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    let cancelled = inventory
        .list_orders(
            Some(OrderStatus::Cancelled),
            PageRequest::default(),
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(cancelled.items.len(), 1);
    assert_eq!(cancelled.items[0].id, orders[0].id);
}

pub async fn filters_find_skus_and_low_stock<S: Store>(inventory: Inventory<S>) {
    let mut low = new_product("LOW", 1, 3);
    low.low_stock_threshold = Some(inventory::domain::StockLevel::parse(3).unwrap());
    let low = inventory.create_product(low, deadline()).await.unwrap();
    let mut fine = new_product("FINE", 1, 10);
    fine.low_stock_threshold = Some(inventory::domain::StockLevel::parse(3).unwrap());
    let fine = inventory.create_product(fine, deadline()).await.unwrap();
    inventory
        .create_product(new_product("NONE", 1, 0), deadline())
        .await
        .unwrap();

    let low_stock = ProductFilter {
        sku: None,
        low_stock: true,
    };
    let found = inventory
        .list_products(low_stock.clone(), PageRequest::default(), deadline())
        .await
        .unwrap();
    assert_eq!(
        found.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [low.id]
    );

    // Reserving stock makes a product low on available stock.
    inventory
        .create_order(new_order(&[(fine.id, 7)]), deadline())
        .await
        .unwrap();
    let found = inventory
        .list_products(low_stock, PageRequest::default(), deadline())
        .await
        .unwrap();
    assert_eq!(
        found.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [low.id, fine.id]
    );

    let by_sku = ProductFilter {
        sku: Some("FINE".into()),
        low_stock: false,
    };
    let found = inventory
        .list_products(by_sku, PageRequest::default(), deadline())
        .await
        .unwrap();
    assert_eq!(
        found.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [fine.id]
    );
}

/// A ledger answers for a product that exists, from a cursor of its own pages only: another product's (or
/// none at all) is refused.
pub async fn a_ledger_answers_for_its_product_only<S: Store>(inventory: Inventory<S>) {
    let result = inventory
        .list_movements(new_id(), PageRequest::default(), deadline())
        .await;
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
    let mut cursors = Vec::new();
    for sku in ["LEDGER-A", "LEDGER-B"] {
        let product = inventory
            .create_product(new_product(sku, 1, 5), deadline())
            .await
            .unwrap();
        let received = StockAdjustment {
            delta: 1,
            reason: MovementReason::Received,
            note: None,
        };
        inventory
            .adjust_stock(product.id, received, deadline())
            .await
            .unwrap();
        let first = inventory
            .list_movements(product.id, page(1), deadline())
            .await
            .unwrap();
        cursors.push((product.id, first.next_cursor.unwrap()));
    }
    let (a, own) = cursors[0];
    let (_, theirs) = cursors[1];
    let rest = inventory
        .list_movements(
            a,
            PageRequest {
                limit: 20,
                after: Some(own),
            },
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.len(),
        1,
        "the initial stock, after the adjustment"
    );
    for after in [theirs, Cursor(new_id())] {
        let refused = inventory
            .list_movements(
                a,
                PageRequest {
                    limit: 20,
                    after: Some(after),
                },
                deadline(),
            )
            .await;
        assert!(
            matches!(refused, Err(Error::CursorElsewhere("product"))),
            "{refused:?}"
        );
    }
    let result = inventory.get_order(new_id(), deadline()).await;
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
    let result = inventory
        .transition_order(new_id(), OrderAction::Cancel, deadline())
        .await;
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
}

pub async fn a_page_of_orders_stops_at_its_line_budget<S: Store>(inventory: Inventory<S>) {
    use inventory::domain::MAX_PAGE_LINES;
    let mut products = Vec::new();
    for i in 0..100 {
        let product = inventory
            .create_product(new_product(&format!("L{i}"), 1, 100), deadline())
            .await
            .unwrap();
        products.push((product.id, 1));
    }
    let orders = MAX_PAGE_LINES / 100 + 3;
    for _ in 0..orders {
        inventory
            .create_order(new_order(&products), deadline())
            .await
            .unwrap();
    }
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    let mut sizes = Vec::new();
    loop {
        let got = inventory.list_orders(None, page, deadline()).await.unwrap();
        let lines: usize = got.items.iter().map(|o| o.lines.len()).sum();
        assert!(lines <= MAX_PAGE_LINES, "{lines} lines in a page");
        sizes.push(got.items.len());
        match got.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(sizes, [MAX_PAGE_LINES / 100, 3]);
}

/// Keys live 24 hours: `age` makes every key stored so far older than that. An expired key is a new request
/// (even before the purge), and the purge deletes the expired ones in batches, oldest first.
pub async fn expired_keys_are_purged_in_batches_and_can_be_used_again<S: Store>(
    inventory: Inventory<S>,
    age: impl AsyncFnOnce(&Inventory<S>),
) {
    let write = |sku: &str| Write::CreateProduct(new_product(sku, 1, 0));
    for i in 0..3 {
        let key = claim(&format!("old-{i}"), 1);
        inventory
            .write_once(&key, write(&format!("OLD-{i}")), &render, deadline())
            .await
            .unwrap();
    }
    age(&inventory).await;
    let new = claim("new", 1);
    inventory
        .write_once(&new, write("NEW"), &render, deadline())
        .await
        .unwrap();
    // Its old fingerprint no longer binds an expired key.
    let reused = inventory
        .write_once(
            &claim("old-0", 2),
            write("OLD-0-AGAIN"),
            &render,
            deadline(),
        )
        .await
        .unwrap();
    assert!(matches!(reused, Once::Fresh(_)));
    let purge = || inventory.purge_expired_keys(1, deadline());
    assert_eq!(
        purge().await.unwrap(),
        2,
        "the two keys still expired, one per batch"
    );
    assert_eq!(purge().await.unwrap(), 0);
    let kept = inventory
        .write_once(&new, write("NEW"), &render, deadline())
        .await
        .unwrap();
    assert!(kept.replayed(), "a key within its lifetime is kept");
    let reused = inventory
        .write_once(
            &claim("old-0", 2),
            write("OLD-0-AGAIN"),
            &render,
            deadline(),
        )
        .await
        .unwrap();
    assert!(reused.replayed(), "the key taken over is kept");
}

/// A caller holds at most `limit` keys (the store's, 3 here): a write whose key would be one more is
/// `TooManyKeys` and changes nothing, while replays, no-ops, writes without a key and other callers go on. An
/// expired key counts until the purge deletes it; taking one over costs no more.
pub async fn a_caller_holds_a_bounded_number_of_keys<S: Store>(
    inventory: Inventory<S>,
    age: impl AsyncFnOnce(&Inventory<S>),
) {
    let of = |caller: &str, key: &str, n: u8| Claim {
        caller: caller.to_owned(),
        ..claim(key, n)
    };
    let create = |sku: &str| Write::CreateProduct(new_product(sku, 1, 0));
    let write = async |claim: Claim, write: Write| {
        inventory
            .write_once(&claim, write, &render, deadline())
            .await
    };
    let refused =
        |result: Result<Once, Error>| matches!(result, Err(Error::TooManyKeys { limit: 3 }));
    for i in 0..3 {
        let once = write(of("a", &format!("k{i}"), 1), create(&format!("A{i}"))).await;
        assert!(matches!(once, Ok(Once::Fresh(_))), "{once:?}");
    }
    let before = snapshot(&inventory).await;
    assert!(refused(write(of("a", "k3", 1), create("A3")).await));
    assert_eq!(
        snapshot(&inventory).await,
        before,
        "a refused write changed something"
    );
    let replay = write(of("a", "k0", 1), create("A0")).await.unwrap();
    assert!(replay.replayed(), "a stored key still replays");
    // A no-op stores nothing, so it is not limited.
    let product = inventory
        .create_product(new_product("A-STOCK", 100, 10), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(product.id, 1)]), deadline())
        .await
        .unwrap();
    let cancel = Write::TransitionOrder(order.id, OrderAction::Cancel);
    inventory
        .transition_order(order.id, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    let no_op = write(of("a", "no-op", 1), cancel.clone()).await;
    assert!(
        matches!(no_op, Ok(Once::Fresh(ref r)) if r.status == 200),
        "{no_op:?}"
    );
    let other = write(of("b", "k3", 1), create("B3")).await;
    assert!(
        matches!(other, Ok(Once::Fresh(_))),
        "another caller is not limited: {other:?}"
    );

    age(&inventory).await;
    assert!(
        refused(write(of("a", "k3", 1), create("A3")).await),
        "expired keys count until they are purged"
    );
    // A no-op on an expired key releases it, which frees its place.
    let no_op = write(of("a", "k1", 2), cancel).await;
    assert!(
        matches!(no_op, Ok(Once::Fresh(ref r)) if r.status == 200),
        "{no_op:?}"
    );
    assert!(matches!(
        write(of("a", "k3", 1), create("A3")).await,
        Ok(Once::Fresh(_))
    ));
    assert!(refused(write(of("a", "k4", 1), create("A4")).await));
    // Taking an expired key over is no new key.
    assert!(matches!(
        write(of("a", "k0", 2), create("A0-AGAIN")).await,
        Ok(Once::Fresh(_))
    ));
    assert_eq!(
        inventory.purge_expired_keys(100, deadline()).await.unwrap(),
        2,
        "a's k2 and b's k3"
    );
    let once = write(of("a", "k4", 1), create("A4")).await;
    assert!(
        matches!(once, Ok(Once::Fresh(_))),
        "room again after the purge: {once:?}"
    );
    assert!(refused(write(of("a", "k5", 1), create("A5")).await));
}

/// The events of the feed from the start, read `page` at a time, once the reader has caught up with the
/// event `last` is true of. (An event shows once every transaction that began before it ended: on a server
/// that other tests share, a few of theirs may hold the feed back a moment.)
pub async fn feed_until<S: Store>(
    inventory: &Inventory<S>,
    page: u32,
    last: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut after = Position::default();
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = inventory
            .list_events(after, page, deadline())
            .await
            .unwrap();
        assert!(got.items.len() <= page as usize);
        if got.items.is_empty() {
            assert_eq!(
                got.next, after,
                "an empty page keeps the reader where it was"
            );
            if events.iter().any(&last) {
                return events;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "the feed never caught up: {events:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        assert!(got.items.iter().all(|e| e.position > after));
        after = got.next;
        assert_eq!(Some(after), got.items.last().map(|e| e.position));
        events.extend(got.items);
    }
}

/// What an event says: its type, its resource, and a field of its data.
fn said(event: &Event, field: &str) -> (EventType, uuid::Uuid, serde_json::Value) {
    let value = event
        .data
        .pointer(field)
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    (event.event_type, event.resource_id, value)
}

/// Each change writes its events, and only a change that happened does: read in feed order, they tell the
/// story of the changes as they were made.
pub async fn every_change_is_one_event_in_the_feed<S: Store>(inventory: Inventory<S>) {
    use EventType::*;
    let mut new = new_product("EVENTFUL", 100, 10);
    new.low_stock_threshold = Some(inventory::domain::StockLevel::parse(5).unwrap());
    let product = inventory.create_product(new, deadline()).await.unwrap();
    let p = product.id.uuid();
    let patch = ProductPatch {
        name: Some(ProductName::parse("Renamed".into()).unwrap()),
        ..Default::default()
    };
    inventory
        .update_product(product.id, patch, None, deadline())
        .await
        .unwrap();
    // 10 available, 5 reserved: down to the threshold.
    let first = inventory
        .create_order(new_order(&[(product.id, 5)]), deadline())
        .await
        .unwrap();
    let adjustment = StockAdjustment {
        delta: 1,
        reason: MovementReason::Received,
        note: None,
    };
    inventory
        .adjust_stock(product.id, adjustment, deadline())
        .await
        .unwrap();
    // 6 available: an order of 1 takes it to the threshold again.
    let second = inventory
        .create_order(new_order(&[(product.id, 1)]), deadline())
        .await
        .unwrap();
    // Refused: no change, no event.
    let short = inventory
        .create_order(new_order(&[(product.id, 6)]), deadline())
        .await;
    assert!(matches!(short, Err(Error::InsufficientStock(_))));
    for (order, action) in [
        (first.id, OrderAction::Cancel),
        (second.id, OrderAction::Fulfill),
    ] {
        inventory
            .transition_order(order, action, deadline())
            .await
            .unwrap();
        // A repeat changes nothing, and says nothing.
        inventory
            .transition_order(order, action, deadline())
            .await
            .unwrap();
    }
    let empty = StockAdjustment {
        delta: -10,
        reason: MovementReason::Correction,
        note: None,
    };
    inventory
        .adjust_stock(product.id, empty, deadline())
        .await
        .unwrap();
    inventory
        .delete_product(product.id, deadline())
        .await
        .unwrap();

    let events = feed_until(&inventory, 2, |e| e.event_type == ProductDeleted).await;
    let (o1, o2) = (first.id.uuid(), second.id.uuid());
    let story: Vec<(EventType, uuid::Uuid, serde_json::Value)> = events
        .iter()
        .map(|e| match e.event_type {
            OrderPlaced | OrderCancelled | OrderFulfilled | OrderExpired => said(e, "/status"),
            StockAdjusted => said(e, "/product/on_hand"),
            _ => said(e, "/available"),
        })
        .collect();
    let json = |v: serde_json::Value| v;
    assert_eq!(
        story,
        vec![
            (ProductCreated, p, json(10.into())),
            (ProductUpdated, p, json(10.into())),
            (OrderPlaced, o1, json("pending".into())),
            (StockLow, p, json(5.into())),
            (StockAdjusted, p, json(11.into())),
            (OrderPlaced, o2, json("pending".into())),
            (StockLow, p, json(5.into())),
            (OrderCancelled, o1, json("cancelled".into())),
            (OrderFulfilled, o2, json("fulfilled".into())),
            (StockAdjusted, p, json(0.into())),
            (StockLow, p, json(0.into())),
            (ProductDeleted, p, json(0.into())),
        ]
    );
    assert_eq!(events[1].data["name"], "Renamed");
    assert_eq!(events[7].data["cancel_reason"], "requested");
    assert_eq!(events[4].data["movement"]["reason"], "received");
    let versions: Vec<i64> = events
        .iter()
        .filter(|e| e.resource_id == p)
        .map(|e| {
            e.data["version"]
                .as_i64()
                .or(e.data["product"]["version"].as_i64())
                .unwrap()
        })
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "the product's events follow its versions: {versions:?}"
    );
    let ids: std::collections::HashSet<uuid::Uuid> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    let after_last = inventory
        .list_events(events.last().unwrap().position, 10, deadline())
        .await
        .unwrap();
    assert!(after_last.items.is_empty());
}

/// Pending orders hold their stock until their hold ends; `age` makes every pending order's hold end two
/// hours sooner. The expiry cancels those past their hold (reason `expired`), releases their stock through
/// the ledger once, and raises `order.expired`; an expired order cannot be fulfilled.
pub async fn expired_orders_release_their_stock_once<S: Store>(
    inventory: Inventory<S>,
    age: impl AsyncFnOnce(&Inventory<S>),
) {
    let product = inventory
        .create_product(new_product("HELD", 100, 10), deadline())
        .await
        .unwrap();
    let short = inventory
        .create_order(new_order(&[(product.id, 3)]), deadline())
        .await
        .unwrap();
    assert!(short.expires_at > short.created_at);
    let mut long = new_order(&[(product.id, 2)]);
    long.hold = Some(std::time::Duration::from_secs(24 * 3600));
    let long = inventory.create_order(long, deadline()).await.unwrap();
    assert_eq!(
        (long.expires_at - long.created_at).whole_hours(),
        24,
        "the hold asked for"
    );
    assert_eq!(inventory.expire_orders(100, deadline()).await.unwrap(), 0);
    age(&inventory).await;
    assert_eq!(inventory.expire_orders(100, deadline()).await.unwrap(), 1);
    assert_eq!(inventory.expire_orders(100, deadline()).await.unwrap(), 0);

    let expired = inventory.get_order(short.id, deadline()).await.unwrap();
    assert_eq!(
        (expired.status, expired.cancel_reason),
        (OrderStatus::Cancelled, Some(CancelReason::Expired))
    );
    let still = inventory.get_order(long.id, deadline()).await.unwrap();
    assert_eq!(still.status, OrderStatus::Pending);
    let after = inventory.get_product(product.id, deadline()).await.unwrap();
    assert_eq!((after.on_hand, after.reserved), (10, 2));
    let released: Vec<StockMovement> = ledger(&inventory, product.id)
        .await
        .into_iter()
        .filter(|m| m.reason == MovementReason::OrderExpired)
        .collect();
    assert_eq!(released.len(), 1);
    assert_eq!(
        (released[0].order_id, released[0].reserved_delta),
        (Some(short.id), -3)
    );
    assert_ledger_balances(&inventory, product.id).await;
    assert_reserved_matches_pending_orders(&inventory, &[product.id]).await;

    let fulfil = inventory
        .transition_order(short.id, OrderAction::Fulfill, deadline())
        .await;
    assert!(matches!(fulfil, Err(Error::Conflict(_))), "{fulfil:?}");
    let cancel = inventory
        .transition_order(short.id, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    assert_eq!(
        cancel.cancel_reason,
        Some(CancelReason::Expired),
        "cancelling an expired order changes nothing"
    );
    let expiries: Vec<Event> =
        feed_until(&inventory, 100, |e| e.event_type == EventType::OrderExpired)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::OrderExpired)
            .collect();
    assert_eq!(expiries.len(), 1);
    assert_eq!(expiries[0].resource_id, short.id.uuid());
    assert_eq!(expiries[0].data["cancel_reason"], "expired");
}

/// A claim of `key` for the request whose fingerprint is all `n`.
pub fn claim(key: &str, n: u8) -> Claim {
    Claim {
        caller: String::new(),
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: Fingerprint([n; 32]),
    }
}

/// One write of every idempotent route on a fresh product `sku` (10 on hand) and a pending order of it:
/// (route name, write).
pub async fn every_idempotent_write<S: Store>(
    inventory: &Inventory<S>,
    sku: &str,
) -> Vec<(&'static str, Write)> {
    let product = inventory
        .create_product(new_product(sku, 100, 10), deadline())
        .await
        .unwrap();
    let to_cancel = inventory
        .create_order(new_order(&[(product.id, 1)]), deadline())
        .await
        .unwrap();
    let to_fulfil = inventory
        .create_order(new_order(&[(product.id, 1)]), deadline())
        .await
        .unwrap();
    let to_extend = inventory
        .create_order(new_order(&[(product.id, 1)]), deadline())
        .await
        .unwrap();
    let to_ship = inventory
        .create_order(new_order(&[(product.id, 2)]), deadline())
        .await
        .unwrap();
    let to_return = inventory
        .create_order(new_order(&[(product.id, 1)]), deadline())
        .await
        .unwrap();
    inventory
        .transition_order(to_return.id, OrderAction::Fulfill, deadline())
        .await
        .unwrap();
    vec![
        (
            "create product",
            Write::CreateProduct(new_product(&format!("{sku}-NEW"), 5, 3)),
        ),
        (
            "adjust stock",
            Write::AdjustStock(
                product.id,
                StockAdjustment {
                    delta: 4,
                    reason: MovementReason::Received,
                    note: None,
                },
            ),
        ),
        (
            "place order",
            Write::CreateOrder(new_order(&[(product.id, 2)])),
        ),
        (
            "cancel order",
            Write::TransitionOrder(to_cancel.id, OrderAction::Cancel),
        ),
        (
            "fulfil order",
            Write::TransitionOrder(to_fulfil.id, OrderAction::Fulfill),
        ),
        (
            "extend hold",
            Write::ExtendHold(to_extend.id, EXTENDED_HOLD),
        ),
        (
            "ship part of an order",
            Write::Fulfil(to_ship.id, fulfilment(&[(product.id, 1)])),
        ),
        (
            "take a shipped unit back",
            Write::Return(to_return.id, taking_back(&[(product.id, 1, true)])),
        ),
    ]
}

/// How long `every_idempotent_write`'s hold extension holds its order from when it is made.
const EXTENDED_HOLD: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The first page of a list, of `limit` items.
fn page<K>(limit: u32) -> PageRequest<K> {
    PageRequest { limit, after: None }
}

/// Every item of a list, read `limit` at a time by following its cursors; no page holds more than `limit`.
async fn every_page<T: Listed>(
    limit: u32,
    mut read: impl AsyncFnMut(PageRequest<T::Key>) -> Result<Page<T>, Error>,
) -> Vec<T> {
    let mut items = Vec::new();
    let mut request = page(limit);
    loop {
        let got = read(request).await.unwrap();
        assert!(got.items.len() <= limit as usize);
        items.extend(got.items);
        match got.next_cursor {
            Some(cursor) => request.after = Some(cursor),
            None => return items,
        }
    }
}

/// What a store holds, to tell whether a write had an effect: every product and every order.
pub async fn snapshot<S: Store>(inventory: &Inventory<S>) -> String {
    let products = inventory
        .list_products(ProductFilter::default(), page(100), deadline())
        .await
        .unwrap();
    let orders = inventory
        .list_orders(None, page(100), deadline())
        .await
        .unwrap();
    format!("{:?}\n{:?}", products.items, orders.items)
}

pub async fn a_repeated_key_replays_the_first_response_and_writes_once<S: Store>(
    inventory: Inventory<S>,
) {
    for (i, (route, write)) in every_idempotent_write(&inventory, "IDEM")
        .await
        .into_iter()
        .enumerate()
    {
        let key = claim(&format!("key-{i}"), 1);
        let first = inventory
            .write_once(&key, write.clone(), &render, deadline())
            .await
            .unwrap();
        let Once::Fresh(response) = first else {
            panic!("{route}: the first request was replayed");
        };
        assert!(
            matches!(response.status, 200 | 201),
            "{route}: {response:?}"
        );
        let after_first = snapshot(&inventory).await;
        for _ in 0..2 {
            let again = inventory
                .write_once(&key, write.clone(), &render, deadline())
                .await
                .unwrap();
            assert_eq!(again, Once::Replayed(response.clone()), "{route}");
        }
        assert_eq!(
            snapshot(&inventory).await,
            after_first,
            "{route}: a repeat changed something"
        );
    }
}

/// Cancelling a cancelled order (or fulfilling a fulfilled one) with a new key answers the order as it is and
/// keeps nothing under the key: repeating a no-op costs no storage, and the key is free for another request.
pub async fn a_no_op_transition_keeps_nothing_under_its_key<S: Store>(inventory: Inventory<S>) {
    let product = inventory
        .create_product(new_product("NOOP", 100, 10), deadline())
        .await
        .unwrap();
    for action in [OrderAction::Cancel, OrderAction::Fulfill] {
        let order = inventory
            .create_order(new_order(&[(product.id, 1)]), deadline())
            .await
            .unwrap();
        inventory
            .transition_order(order.id, action, deadline())
            .await
            .unwrap();
        let before = snapshot(&inventory).await;
        let key = format!("no-op-{action:?}");
        for _ in 0..3 {
            let once = inventory
                .write_once(
                    &claim(&key, 1),
                    Write::TransitionOrder(order.id, action),
                    &render,
                    deadline(),
                )
                .await
                .unwrap();
            let Once::Fresh(response) = once else {
                panic!("{action:?}: a no-op was kept and replayed");
            };
            assert_eq!(response.status, 200, "{action:?}");
        }
        assert_eq!(
            snapshot(&inventory).await,
            before,
            "{action:?}: a no-op changed something"
        );
        // Nothing was kept under the key: another request takes it.
        let other = inventory
            .write_once(
                &claim(&key, 2),
                Write::CreateOrder(new_order(&[(product.id, 1)])),
                &render,
                deadline(),
            )
            .await;
        assert!(
            matches!(other, Ok(Once::Fresh(ref r)) if r.status == 201),
            "{action:?}: {other:?}"
        );
    }
}

pub async fn a_key_reused_for_another_request_is_refused<S: Store>(inventory: Inventory<S>) {
    let writes = every_idempotent_write(&inventory, "REUSE").await;
    let (_, first) = &writes[1];
    inventory
        .write_once(&claim("shared-key", 1), first.clone(), &render, deadline())
        .await
        .unwrap();
    let before = snapshot(&inventory).await;
    for (route, write) in writes {
        let result = inventory
            .write_once(&claim("shared-key", 2), write, &render, deadline())
            .await;
        assert!(
            matches!(result, Err(Error::IdempotencyKeyReused)),
            "{route}: {result:?}"
        );
    }
    assert_eq!(snapshot(&inventory).await, before);
}

pub async fn a_failed_write_leaves_its_key_free<S: Store>(inventory: Inventory<S>) {
    let a = inventory
        .create_product(new_product("FREE", 100, 1), deadline())
        .await
        .unwrap();
    let key = claim("retry-me", 7);
    let order = Write::CreateOrder(new_order(&[(a.id, 3)]));
    let short = inventory
        .write_once(&key, order.clone(), &render, deadline())
        .await;
    assert!(
        matches!(short, Err(Error::InsufficientStock(_))),
        "{short:?}"
    );
    let restock = StockAdjustment {
        delta: 2,
        reason: MovementReason::Received,
        note: None,
    };
    inventory
        .adjust_stock(a.id, restock, deadline())
        .await
        .unwrap();
    let placed = inventory
        .write_once(&key, order, &render, deadline())
        .await
        .unwrap();
    assert!(!placed.replayed());
    assert_eq!(placed.response().status, 201);
    let a = inventory.get_product(a.id, deadline()).await.unwrap();
    assert_eq!(a.reserved, 3);
    assert_ledger_balances(&inventory, a.id).await;
}

/// After each write of `every_idempotent_write(sku)` was made (once, whatever the retries): its product got
/// +4 on hand, an order of 2, one of its orders of 1 cancelled, one fulfilled and one held for hours more,
/// one unit of its order of 2 shipped, and a shipped unit back on hand; one product was created. And the ledger and the pending orders reconcile with the stock.
pub async fn assert_each_write_applied_once<S: Store>(inventory: &Inventory<S>, sku: &str) {
    let products = inventory
        .list_products(ProductFilter::default(), page(100), deadline())
        .await
        .unwrap()
        .items;
    assert_eq!(products.len(), 2, "one product created");
    let product = products.iter().find(|p| p.sku == sku).unwrap();
    assert_eq!((product.on_hand, product.reserved), (12, 4));
    let orders = inventory
        .list_orders(None, page(100), deadline())
        .await
        .unwrap();
    assert_eq!(orders.items.len(), 6, "one order placed");
    let back = orders
        .items
        .iter()
        .map(|o| o.lines[0].returned)
        .sum::<i64>();
    assert_eq!(back, 1, "one unit back once");
    let shipped_in_part = orders
        .items
        .iter()
        .filter(|o| o.status == OrderStatus::PartiallyFulfilled)
        .map(|o| o.lines[0].fulfilled)
        .collect::<Vec<_>>();
    assert_eq!(shipped_in_part, vec![1], "one unit shipped once");
    let held_longer = orders
        .items
        .iter()
        .filter(|o| o.expires_at - o.created_at > EXTENDED_HOLD / 2)
        .count();
    assert_eq!(held_longer, 1, "one hold extended");
    for product in &products {
        assert_ledger_balances(inventory, product.id).await;
    }
    let ids: Vec<ProductId> = products.iter().map(|p| p.id).collect();
    assert_reserved_matches_pending_orders(inventory, &ids).await;
}

/// `racers` requests with one key race on every idempotent route: on each, exactly one makes the write and
/// every other gets its response replayed or `RequestInProgress`; never a second effect, never another
/// error. Answers how many were told `RequestInProgress`.
pub async fn racing_requests_with_one_key_have_one_effect<S: Store + 'static>(
    inventory: std::sync::Arc<Inventory<S>>,
    racers: usize,
) -> usize {
    let writes = every_idempotent_write(&inventory, "RACE").await;
    let mut in_progress = 0;
    for (i, (route, write)) in writes.into_iter().enumerate() {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(racers));
        let tasks: Vec<_> = (0..racers)
            .map(|_| {
                let (inventory, barrier, write) =
                    (inventory.clone(), barrier.clone(), write.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let key = claim(&format!("race-{i}"), 9);
                    inventory.write_once(&key, write, &render, deadline()).await
                })
            })
            .collect();
        let mut fresh = Vec::new();
        let mut replayed = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(Once::Fresh(response)) => fresh.push(response),
                Ok(Once::Replayed(response)) => replayed.push(response),
                Err(Error::RequestInProgress) => in_progress += 1,
                Err(other) => panic!("{route}: a racer failed: {other:?}"),
            }
        }
        assert_eq!(fresh.len(), 1, "{route}: exactly one racer writes");
        assert!(
            replayed.iter().all(|r| *r == fresh[0]),
            "{route}: every replay is the first response"
        );
    }
    assert_each_write_applied_once(&inventory, "RACE").await;
    in_progress
}

/// Declares one test per named behaviour (a function of this module), run against the store `$store`;
/// the test function takes the arguments given (e.g. the pool of `#[sqlx::test]`).
#[macro_export]
macro_rules! behaviour_tests {
    ($attr:meta, |$arg:ident : $ty:ty| $store:expr; $($test:ident),* $(,)?) => {
        $(
            #[$attr]
            async fn $test($arg: $ty) {
                $crate::common::behaviour::$test(::inventory::service::Inventory::new($store)).await;
            }
        )*
    };
    ($attr:meta, $store:expr; $($test:ident),* $(,)?) => {
        $(
            #[$attr]
            async fn $test() {
                $crate::common::behaviour::$test(::inventory::service::Inventory::new($store)).await;
            }
        )*
    };
}

/// Every behaviour of this module, as tests against one store: each store's test module names its store once
/// (`crate::every_behaviour!(...)`), and a behaviour added here runs against all of them.
#[macro_export]
macro_rules! every_behaviour {
    ($($store:tt)*) => {
        $crate::behaviour_tests!(
            $($store)*;
            initial_stock_is_recorded_in_the_ledger,
            a_duplicate_sku_is_refused,
            an_order_reserves_and_cancelling_releases,
            fulfilling_ships_the_stock,
            an_order_ships_in_parts,
            shipped_units_come_back_restocked_or_not,
            an_order_lists_its_fulfilments_and_returns,
            backorders_sell_ahead_of_stock_up_to_the_limit,
            safety_stock_is_on_hand_but_never_sold,
            damaged_units_are_on_hand_but_never_sold,
            a_return_may_come_back_damaged,
            a_shortage_names_every_short_line_and_writes_nothing,
            unknown_products_are_all_named,
            one_order_has_one_currency,
            stock_adjustments_never_go_below_what_is_reserved,
            deleting_waits_for_reservations_and_stock_and_keeps_past_orders,
            a_repeated_key_replays_the_first_response_and_writes_once,
            a_key_reused_for_another_request_is_refused,
            a_no_op_transition_keeps_nothing_under_its_key,
            a_failed_write_leaves_its_key_free,
            a_page_of_orders_stops_at_its_line_budget,
            updates_honour_if_match_and_keep_order_snapshots,
            pages_walk_every_item_once,
            filters_find_skus_and_low_stock,
            a_ledger_answers_for_its_product_only,
            every_change_is_one_event_in_the_feed,
        );
    };
}

/// A pending order's hold is extended and never shortened (a shorter one answers the order as it is, raises
/// nothing and keeps nothing under its key); an order that is not pending, or whose hold has ended, is a
/// conflict. `age` makes every pending order's hold end two hours sooner.
pub async fn a_hold_is_extended_never_shortened<S: Store>(
    inventory: Inventory<S>,
    age: impl AsyncFnOnce(&Inventory<S>),
) {
    let hour = std::time::Duration::from_secs(3600);
    let product = inventory
        .create_product(new_product("HOLD-ON", 100, 10), deadline())
        .await
        .unwrap();
    let order = inventory
        .create_order(new_order(&[(product.id, 2)]), deadline())
        .await
        .unwrap();
    let extended = inventory
        .extend_hold(order.id, hour, deadline())
        .await
        .unwrap();
    assert_eq!(extended.status, OrderStatus::Pending);
    assert!(
        extended.expires_at - order.expires_at > time::Duration::minutes(29),
        "{} then {}",
        order.expires_at,
        extended.expires_at
    );
    let shorter = inventory
        .extend_hold(order.id, std::time::Duration::from_secs(60), deadline())
        .await
        .unwrap();
    assert_eq!(shorter.expires_at, extended.expires_at, "never shortened");
    for _ in 0..2 {
        let once = inventory
            .write_once(
                &claim("shorter-hold", 1),
                Write::ExtendHold(order.id, std::time::Duration::from_secs(60)),
                &render,
                deadline(),
            )
            .await
            .unwrap();
        assert!(
            matches!(once, Once::Fresh(ref r) if r.status == 200),
            "a no-op keeps nothing under its key: {once:?}"
        );
    }
    let unknown = inventory
        .extend_hold(inventory::domain::new_id(), hour, deadline())
        .await;
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    let cancelled = inventory
        .create_order(new_order(&[(product.id, 1)]), deadline())
        .await
        .unwrap();
    inventory
        .transition_order(cancelled.id, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    let refused = inventory.extend_hold(cancelled.id, hour, deadline()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");

    let events: Vec<Event> = feed_until(&inventory, 100, |e| {
        e.event_type == EventType::OrderHoldExtended
    })
    .await
    .into_iter()
    .filter(|e| e.event_type == EventType::OrderHoldExtended)
    .collect();
    assert_eq!(events.len(), 1, "one extension, one event");
    assert_eq!(events[0].resource_id, order.id.uuid());
    let view: inventory::views::OrderView = serde_json::from_value(events[0].data.clone()).unwrap();
    assert_eq!(view.expires_at, extended.expires_at);

    // Once the hold has ended, expiry is due: extending is too late.
    age(&inventory).await;
    let late = inventory.extend_hold(order.id, hour, deadline()).await;
    assert!(matches!(late, Err(Error::Conflict(_))), "{late:?}");
    assert_eq!(inventory.expire_orders(100, deadline()).await.unwrap(), 1);
    let after = inventory.get_product(product.id, deadline()).await.unwrap();
    assert_eq!((after.on_hand, after.reserved), (10, 0));
    assert_ledger_balances(&inventory, product.id).await;
}
