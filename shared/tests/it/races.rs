//! Races of real concurrent clients, each on its own connection, against real Postgres. Every test gets a
//! fresh database (`#[sqlx::test]`); each holds `common::HEAVY`, so that no other heavy test runs beside it
//! and together they stay within the server's connection limit.

use crate::common;

use std::collections::HashMap;
use std::time::Instant;

use inventory::domain::order::{Order, OrderAction};
use inventory::domain::{Error, ProductId};
use inventory::service::Inventory;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::Barrier;

use crate::common::behaviour::{assert_ledger_balances, assert_reserved_matches_pending_orders};
use crate::common::race::{XorShift, long_deadline, pool_for, race_store};
use crate::common::{new_order, new_product};

const BUYERS: usize = 64;

#[sqlx::test(migrations = "../migrations")]
async fn sixty_four_buyers_for_ten_units_sell_exactly_ten(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    sixty_four_buyers_for_the_last_units(pool_options, options, 10, 0).await;
}

/// With a backorder limit, the racers take the stock and the backorders, exactly: available ends at minus the
/// limit, never lower.
#[sqlx::test(migrations = "../migrations")]
async fn sixty_four_buyers_for_ten_units_and_five_backorders_sell_exactly_fifteen(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    sixty_four_buyers_for_the_last_units(pool_options, options, 10, 5).await;
}

/// 64 buyers of one unit each race for `stock` units of a product that may backorder `limit` more: exactly
/// `stock + limit` are sold, every other buyer is told of the shortage, and the product ends with all of it
/// reserved and `-limit` available.
async fn sixty_four_buyers_for_the_last_units(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
    stock: i64,
    limit: i64,
) {
    let _heavy = common::HEAVY.lock().await;
    let pool = pool_for(BUYERS, pool_options, options).await;
    let inventory = Inventory::new(race_store(pool));
    let mut new = new_product("LAST-UNITS", 999, stock);
    new.policy.backorder_limit = limit;
    let product = inventory
        .create_product(new, long_deadline())
        .await
        .unwrap();

    let barrier = std::sync::Arc::new(Barrier::new(BUYERS));
    let started = Instant::now();
    let buyers: Vec<_> = (0..BUYERS)
        .map(|_| {
            let inventory = inventory.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                inventory
                    .create_order(new_order(&[(product.id, 1)]), long_deadline())
                    .await
            })
        })
        .collect();
    let mut sold = 0;
    let mut refused = 0;
    for buyer in buyers {
        match buyer.await.unwrap() {
            Ok(_) => sold += 1,
            Err(Error::InsufficientStock(shortages)) => {
                assert_eq!(shortages.len(), 1);
                assert_eq!((shortages[0].requested, shortages[0].available), (1, 0));
                refused += 1;
            }
            Err(other) => panic!("a buyer got neither an order nor a shortage: {other:?}"),
        }
    }
    println!(
        "{BUYERS} buyers for {stock} units and {limit} backorders: {sold} sold, {refused} refused in {:?}",
        started.elapsed()
    );
    let sellable = (stock + limit) as usize;
    assert_eq!((sold, refused), (sellable, BUYERS - sellable));

    let after = inventory
        .get_product(product.id, long_deadline())
        .await
        .unwrap();
    assert_eq!(
        (after.on_hand, after.reserved, after.available()),
        (stock, stock + limit, -limit)
    );
    assert_ledger_balances(&inventory, product.id).await;
    assert_reserved_matches_pending_orders(&inventory, &[product.id]).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn buyers_of_several_units_never_oversell(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let pool = pool_for(BUYERS, pool_options, options).await;
    let inventory = Inventory::new(race_store(pool));
    let stock = 50;
    let product = inventory
        .create_product(new_product("BULK", 100, stock), long_deadline())
        .await
        .unwrap();

    let barrier = std::sync::Arc::new(Barrier::new(BUYERS));
    let buyers: Vec<_> = (0..BUYERS)
        .map(|i| {
            let inventory = inventory.clone();
            let barrier = barrier.clone();
            let quantity = 1 + (i % 4) as i64;
            tokio::spawn(async move {
                barrier.wait().await;
                (
                    quantity,
                    inventory
                        .create_order(new_order(&[(product.id, quantity)]), long_deadline())
                        .await,
                )
            })
        })
        .collect();
    let mut sold = 0;
    for buyer in buyers {
        match buyer.await.unwrap() {
            (quantity, Ok(_)) => sold += quantity,
            (_, Err(Error::InsufficientStock(_))) => {}
            (_, Err(other)) => panic!("unexpected: {other:?}"),
        }
    }
    let after = inventory
        .get_product(product.id, long_deadline())
        .await
        .unwrap();
    println!("{BUYERS} buyers of 1 to 4 units for {stock}: {sold} sold");
    assert!(sold <= stock);
    assert!(
        sold >= stock - 3,
        "the stock left is less than any refused request: sold {sold}"
    );
    assert_eq!(after.reserved, sold);
    assert_ledger_balances(&inventory, product.id).await;
}

/// Multi-line orders over overlapping products, lines in random order (and sometimes repeated), racing
/// each other and concurrent cancels and fulfilments. Locking in product-id order means no deadlock (which
/// Postgres would report as an error) ever reaches a client, and every unit stays accounted for.
#[sqlx::test(migrations = "../migrations")]
async fn overlapping_multi_line_orders_never_deadlock(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let pool = pool_for(BUYERS, pool_options, options).await;
    let inventory = Inventory::new(race_store(pool));
    let mut products: Vec<ProductId> = Vec::new();
    for i in 0..6 {
        products.push(
            inventory
                .create_product(
                    new_product(&format!("SHARED-{i}"), 100 + i, 100),
                    long_deadline(),
                )
                .await
                .unwrap()
                .id,
        );
    }

    let seed = 0x5eed_u64;
    let rounds = 4;
    let barrier = std::sync::Arc::new(Barrier::new(BUYERS));
    let started = Instant::now();
    let clients: Vec<_> = (0..BUYERS)
        .map(|client| {
            let inventory = inventory.clone();
            let barrier = barrier.clone();
            let products = products.clone();
            tokio::spawn(async move {
                let mut rng = XorShift(seed + client as u64 * 7919);
                let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
                barrier.wait().await;
                for _ in 0..rounds {
                    let lines: Vec<(ProductId, i64)> = (0..1 + rng.below(5))
                        .map(|_| (products[rng.below(products.len())], 1 + rng.below(3) as i64))
                        .collect();
                    let placed: Result<Order, Error> = inventory
                        .create_order(new_order(&lines), long_deadline())
                        .await;
                    let outcome = match placed {
                        Ok(order) => match rng.below(3) {
                            0 => inventory
                                .transition_order(order.id, OrderAction::Cancel, long_deadline())
                                .await
                                .map(|_| "cancelled"),
                            1 => inventory
                                .transition_order(order.id, OrderAction::Fulfill, long_deadline())
                                .await
                                .map(|_| "fulfilled"),
                            _ => Ok("pending"),
                        },
                        Err(Error::InsufficientStock(_)) => Ok("short"),
                        Err(other) => Err(other),
                    };
                    match outcome {
                        Ok(kind) => *outcomes.entry(kind).or_default() += 1,
                        Err(error) => panic!("client {client} got {error:?}"),
                    }
                }
                outcomes
            })
        })
        .collect();
    let mut totals: HashMap<&'static str, usize> = HashMap::new();
    for client in clients {
        for (kind, n) in client.await.unwrap() {
            *totals.entry(kind).or_default() += n;
        }
    }
    println!(
        "{BUYERS} clients x {rounds} multi-line orders over {} products in {:?}: {totals:?}",
        products.len(),
        started.elapsed()
    );
    assert_eq!(totals.values().sum::<usize>(), BUYERS * rounds);
    assert!(totals.get("pending").copied().unwrap_or(0) > 0);

    for id in &products {
        let product = inventory.get_product(*id, long_deadline()).await.unwrap();
        assert!(
            0 <= product.reserved && product.reserved <= product.on_hand,
            "{product:?}"
        );
        assert_ledger_balances(&inventory, *id).await;
    }
    assert_reserved_matches_pending_orders(&inventory, &products).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn racing_requests_with_one_key_have_one_effect_on_every_route(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let racers = 32;
    let pool = pool_for(racers, pool_options, options).await;
    let inventory = std::sync::Arc::new(Inventory::new(race_store(pool)));
    let in_progress =
        common::behaviour::racing_requests_with_one_key_have_one_effect(inventory, racers).await;
    println!(
        "{racers} racers per key on each idempotent write: {in_progress} answers were request_in_progress"
    );
}

/// One caller's keyed orders racing at its key limit: exactly the limit's worth are placed, every other is
/// `TooManyKeys` and reserves nothing, and the caller's count ends equal to its keys.
#[sqlx::test(migrations = "../migrations")]
async fn one_callers_keyed_orders_racing_at_its_key_limit(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let (racers, limit) = (32, 10);
    // The test's own checks go straight to the server (not through the pooler of the pooled run).
    let direct = direct_pool(&options).await;
    let pool = pool_for(racers, pool_options, options).await;
    let inventory = Inventory::new(race_store(pool).with_key_limit(limit));
    let product = inventory
        .create_product(new_product("KEY-LIMIT", 999, 1000), long_deadline())
        .await
        .unwrap();
    let barrier = std::sync::Arc::new(Barrier::new(racers));
    let tasks: Vec<_> = (0..racers)
        .map(|i| {
            let inventory = inventory.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let claim = inventory::domain::idempotency::Claim {
                    caller: "one-caller".into(),
                    ..common::behaviour::claim(&format!("race-{i}"), 1)
                };
                let order = inventory::ports::Write::CreateOrder(new_order(&[(product.id, 1)]));
                barrier.wait().await;
                inventory
                    .write_once(
                        &claim,
                        order,
                        &inventory::http::idempotency::render,
                        long_deadline(),
                    )
                    .await
            })
        })
        .collect();
    let (mut placed, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(once) if !once.replayed() => placed += 1,
            Err(Error::TooManyKeys { limit: 10 }) => refused += 1,
            other => panic!("neither placed nor refused for its key: {other:?}"),
        }
    }
    println!(
        "{racers} keyed orders of one caller at a limit of {limit}: {placed} placed, {refused} refused"
    );
    assert_eq!((placed, refused), (limit as usize, racers - limit as usize));
    let after = inventory
        .get_product(product.id, long_deadline())
        .await
        .unwrap();
    assert_eq!(after.reserved, i64::from(limit));
    let (count, keys): (i32, i64) = sqlx::query_as(
        "SELECT keys, (SELECT count(*) FROM idempotency_keys WHERE caller = 'one-caller') \
         FROM idempotency_key_counts WHERE caller = 'one-caller'",
    )
    .fetch_one(&direct)
    .await
    .unwrap();
    assert_eq!((count, keys), (limit as i32, i64::from(limit)));
    assert_ledger_balances(&inventory, product.id).await;
    assert_reserved_matches_pending_orders(&inventory, &[product.id]).await;
}

/// Clients extending their orders' holds while the expiry job runs, as the holds end: for each order exactly
/// one wins. An extension that succeeded leaves the order pending with its stock held (expiry never takes it);
/// one refused (409) found the order expired or its hold ended, and expiry releases it. One event per order:
/// `order.hold_extended` or `order.expired`, never both.
#[sqlx::test(migrations = "../migrations")]
async fn hold_extensions_racing_expiry_have_one_winner_per_order(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let (orders, expirers) = (40, 3);
    let direct = direct_pool(&options).await;
    let pool = pool_for(orders + expirers, pool_options, options).await;
    let inventory = Inventory::new(race_store(pool));
    let product = inventory
        .create_product(new_product("HOLD-RACE", 1, 1000), long_deadline())
        .await
        .unwrap();
    let mut placed = Vec::new();
    for _ in 0..orders {
        placed.push(
            inventory
                .create_order(new_order(&[(product.id, 1)]), long_deadline())
                .await
                .unwrap()
                .id,
        );
    }
    // Every hold ends 300 ms from now; the clients ask for more at random times around it.
    sqlx::query("UPDATE orders SET expires_at = now() + interval '300 milliseconds'")
        .execute(&direct)
        .await
        .unwrap();
    let started = Instant::now();
    let mut rng = XorShift(0x5eed_4011);
    let clients: Vec<_> = placed
        .iter()
        .map(|id| {
            let (inventory, id) = (inventory.clone(), *id);
            let wait = std::time::Duration::from_millis(rng.next() % 600);
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let hour = std::time::Duration::from_secs(3600);
                (id, inventory.extend_hold(id, hour, long_deadline()).await)
            })
        })
        .collect();
    let jobs: Vec<_> = (0..expirers)
        .map(|_| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                let mut expired = 0;
                while started.elapsed() < std::time::Duration::from_millis(900) {
                    expired += inventory.expire_orders(100, long_deadline()).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(15)).await;
                }
                expired
            })
        })
        .collect();
    let mut outcome = HashMap::new();
    for client in clients {
        let (id, result) = client.await.unwrap();
        outcome.insert(id, result);
    }
    let mut expired: usize = 0;
    for job in jobs {
        expired += job.await.unwrap();
    }
    // What the racing runs left (an extension refused just before a run): expired now.
    expired += inventory.expire_orders(100, long_deadline()).await.unwrap();

    let (mut extended, mut refused) = (0, 0);
    for id in &placed {
        let order = inventory.get_order(*id, long_deadline()).await.unwrap();
        match &outcome[id] {
            Ok(_) => {
                extended += 1;
                assert_eq!(order.status, inventory::domain::order::OrderStatus::Pending);
                assert!(
                    order.expires_at
                        > time::OffsetDateTime::now_utc() + time::Duration::minutes(50)
                );
            }
            Err(Error::Conflict(_)) => {
                refused += 1;
                assert_eq!(
                    order.cancel_reason,
                    Some(inventory::domain::order::CancelReason::Expired),
                    "a refused extension leaves the order to expiry"
                );
            }
            Err(other) => panic!("an extension failed otherwise: {other:?}"),
        }
    }
    println!(
        "{orders} holds ending while their clients extend them and {expirers} expiry jobs run: {extended} \
         extended, {refused} refused and expired"
    );
    assert_eq!(extended + refused, orders);
    assert_eq!(
        expired, refused,
        "expiry took exactly the orders whose extension lost"
    );
    let per_order: Vec<(uuid::Uuid, i64, i64)> = sqlx::query_as(
        "SELECT resource_id, count(*) FILTER (WHERE type = 'order.hold_extended'), \
                count(*) FILTER (WHERE type = 'order.expired') \
         FROM events WHERE type IN ('order.hold_extended', 'order.expired') GROUP BY resource_id",
    )
    .fetch_all(&direct)
    .await
    .unwrap();
    assert_eq!(per_order.len(), orders, "one event for every order");
    for (order, extensions, expiries) in per_order {
        assert_eq!(
            extensions + expiries,
            1,
            "{order}: {extensions} extensions, {expiries} expiries"
        );
    }
    let after = inventory
        .get_product(product.id, long_deadline())
        .await
        .unwrap();
    assert_eq!(after.reserved, extended as i64);
    assert_ledger_balances(&inventory, product.id).await;
    assert_reserved_matches_pending_orders(&inventory, &[product.id]).await;
}

/// Partial fulfilments of single units, returns of them, cancels, hold extensions, units marked damaged and
/// sellable again, and the expiry job racing on the same orders and products. Every order ends with each line's shipped units equal to the fulfilments that succeeded
/// (never more than ordered: the rest were refused as beyond what was left, or because the order had ended),
/// its units back equal to the returns that succeeded (never more than shipped), a cancel or an expiry only of
/// an order with units left, and one event per committed change; the stock (restocked units back on hand), the
/// ledger and the reservations of the orders still holding stock reconcile.
#[sqlx::test(migrations = "../migrations")]
async fn partial_fulfilments_returns_cancels_extensions_and_expiry_racing_keep_every_count(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    use inventory::domain::OrderId;
    use inventory::domain::order::{
        CancelReason, NewReturn, OrderStatus, ReturnLine, ReturnReason,
    };
    use inventory::domain::stock::{MovementReason, StockAdjustment};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Move {
        Ship(usize),
        /// Take a unit of `a` back, restocked or not.
        Return(bool),
        /// Mark a unit of `b` damaged (1), or sellable again (-1).
        Mark(i64),
        Cancel,
        Extend,
    }
    let _heavy = common::HEAVY.lock().await;
    let (orders, expirers) = (12, 2);
    // Per order: 5 tries at one unit of its 4 of `a`, 3 at one of its 2 of `b`, and a cancel, an extension or
    // (a third of them) nothing but a hold that ends while they run.
    let direct = direct_pool(&options).await;
    let pool = pool_for(32, pool_options, options).await;
    let inventory = Inventory::new(race_store(pool));
    let mut products = Vec::new();
    for sku in ["SHIP-A", "SHIP-B"] {
        let product = inventory
            .create_product(new_product(sku, 1, 1000), long_deadline())
            .await
            .unwrap();
        products.push(product.id);
    }
    let mut placed = Vec::new();
    for _ in 0..orders {
        let order = inventory
            .create_order(
                new_order(&[(products[0], 4), (products[1], 2)]),
                long_deadline(),
            )
            .await
            .unwrap();
        placed.push(order.id);
    }
    let ending: Vec<uuid::Uuid> = placed
        .iter()
        .skip(2)
        .step_by(3)
        .map(|id| id.uuid())
        .collect();
    sqlx::query(
        "UPDATE orders SET expires_at = now() + interval '150 milliseconds' WHERE id = ANY($1)",
    )
    .bind(&ending)
    .execute(&direct)
    .await
    .unwrap();
    let mut moves: Vec<(OrderId, Move)> = Vec::new();
    for (i, id) in placed.iter().enumerate() {
        moves.extend((0..5).map(|_| (*id, Move::Ship(0))));
        moves.extend((0..3).map(|_| (*id, Move::Ship(1))));
        moves.extend([true, false, true].map(|restock| (*id, Move::Return(restock))));
        moves.extend([1, -1].map(|delta| (*id, Move::Mark(delta))));
        match i % 3 {
            0 => moves.push((*id, Move::Cancel)),
            1 => moves.push((*id, Move::Extend)),
            _ => {}
        }
    }
    let started = Instant::now();
    let mut rng = XorShift(0xf11_f11);
    let clients: Vec<_> = moves
        .iter()
        .map(|&(id, what)| {
            let inventory = inventory.clone();
            let wait = std::time::Duration::from_millis(rng.next() % 600);
            let products = products.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let result = match what {
                    Move::Ship(line) => {
                        let one = common::fulfilment(&[(products[line], 1)]);
                        inventory.fulfil(id, one, long_deadline()).await.map(|_| ())
                    }
                    Move::Return(restock) => {
                        let line = ReturnLine {
                            product_id: products[0],
                            quantity: 1,
                            restock,
                            damaged: false,
                        };
                        let request = NewReturn::new(vec![line], ReturnReason::Unwanted).unwrap();
                        inventory
                            .take_back(id, request, long_deadline())
                            .await
                            .map(|_| ())
                    }
                    Move::Mark(delta) => {
                        let mark = StockAdjustment {
                            delta,
                            reason: MovementReason::MarkedDamaged,
                            note: None,
                        };
                        inventory
                            .adjust_stock(products[1], mark, long_deadline())
                            .await
                            .map(|_| ())
                    }
                    Move::Cancel => inventory
                        .transition_order(id, OrderAction::Cancel, long_deadline())
                        .await
                        .map(|_| ()),
                    Move::Extend => {
                        let hour = std::time::Duration::from_secs(3600);
                        inventory
                            .extend_hold(id, hour, long_deadline())
                            .await
                            .map(|_| ())
                    }
                };
                (id, what, result)
            })
        })
        .collect();
    let jobs: Vec<_> = (0..expirers)
        .map(|_| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                while started.elapsed() < std::time::Duration::from_millis(900) {
                    inventory.expire_orders(100, long_deadline()).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(15)).await;
                }
            })
        })
        .collect();
    // Per order: units shipped of each line, cancels and extensions that succeeded.
    let mut won: HashMap<OrderId, ([i64; 2], i64, i64)> = HashMap::new();
    // Per order: units of `a` back, and of them restocked.
    let mut back: HashMap<OrderId, (i64, i64)> = HashMap::new();
    let (mut refused, mut beyond, mut damaged) = (0, 0, 0);
    for client in clients {
        let (id, what, result) = client.await.unwrap();
        let counts = won.entry(id).or_default();
        match (what, result) {
            (Move::Ship(line), Ok(())) => counts.0[line] += 1,
            (Move::Cancel, Ok(())) => counts.1 += 1,
            (Move::Extend, Ok(())) => counts.2 += 1,
            (Move::Return(restock), Ok(())) => {
                let back = back.entry(id).or_default();
                back.0 += 1;
                back.1 += i64::from(restock);
            }
            (Move::Return(_), Err(Error::BeyondReturnable(_))) => beyond += 1,
            (Move::Mark(delta), Ok(())) => damaged += delta,
            (_, Err(Error::Conflict(_))) => refused += 1,
            (Move::Ship(_), Err(Error::BeyondRemaining(_))) => beyond += 1,
            (what, Err(other)) => panic!("{what:?} of {id} failed otherwise: {other:?}"),
        }
    }
    for job in jobs {
        job.await.unwrap();
    }
    inventory.expire_orders(100, long_deadline()).await.unwrap();

    let events: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT resource_id, type, count(*) FROM events WHERE type LIKE 'order.%' GROUP BY 1, 2",
    )
    .fetch_all(&direct)
    .await
    .unwrap();
    let count = |id: OrderId, kind: &str| {
        events
            .iter()
            .find(|(r, t, _)| *r == id.uuid() && t == kind)
            .map_or(0, |(_, _, n)| *n)
    };
    let mut statuses: HashMap<&str, usize> = HashMap::new();
    let mut shipped = [0; 2];
    let (mut returns, mut restocks) = (0, 0);
    for id in &placed {
        let order = inventory.get_order(*id, long_deadline()).await.unwrap();
        let (units, cancels, extensions) = won[id];
        let fulfilled: Vec<i64> = order.lines.iter().map(|l| l.fulfilled).collect();
        assert_eq!(
            fulfilled,
            units.to_vec(),
            "{id}: shipped as the winners say"
        );
        let (returned, restocked) = back.get(id).copied().unwrap_or_default();
        assert_eq!(
            order.lines[0].returned, returned,
            "{id}: back as the winners say"
        );
        assert_eq!(
            count(*id, "order.returned"),
            returned,
            "{id}: one event per return"
        );
        restocks += restocked;
        returns += returned;
        shipped[0] += units[0];
        shipped[1] += units[1];
        let left = order.lines.iter().any(|l| l.remaining() > 0);
        let expired = order.cancel_reason == Some(CancelReason::Expired);
        match order.status {
            OrderStatus::Fulfilled => assert!(!left && cancels == 0, "{id}"),
            OrderStatus::Cancelled => assert!(left && (cancels == 1) != expired, "{id}"),
            OrderStatus::Pending | OrderStatus::PartiallyFulfilled => {
                assert!(left && cancels == 0, "{id}");
                assert_eq!(order.status == OrderStatus::Pending, units == [0, 0]);
            }
        }
        let outcome = if expired {
            "expired"
        } else {
            order.status.as_str()
        };
        *statuses.entry(outcome).or_default() += 1;
        let fulfilments = count(*id, "order.partially_fulfilled") + count(*id, "order.fulfilled");
        assert_eq!(
            fulfilments,
            units[0] + units[1],
            "{id}: one event per fulfilment"
        );
        assert_eq!(count(*id, "order.cancelled"), cancels, "{id}");
        assert_eq!(count(*id, "order.expired"), i64::from(expired), "{id}");
        assert_eq!(count(*id, "order.hold_extended"), extensions, "{id}");
        assert_eq!(count(*id, "order.placed"), 1, "{id}");
    }
    println!(
        "{} moves on {orders} orders with {expirers} expiry jobs: {} units shipped, {returns} back ({restocks} \
         restocked), {damaged} marked damaged, {refused} refused as the order had ended (or nothing was \
         damaged), {beyond} beyond what was left; orders {statuses:?}",
        moves.len(),
        shipped[0] + shipped[1],
    );
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT count(*) FROM stock_movements WHERE reason = 'order_fulfilled' GROUP BY product_id ORDER BY product_id",
    )
    .fetch_all(&direct)
    .await
    .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.0).sum::<i64>(),
        shipped[0] + shipped[1]
    );
    for (i, product) in products.iter().enumerate() {
        let after = inventory
            .get_product(*product, long_deadline())
            .await
            .unwrap();
        let restocked = if i == 0 { restocks } else { 0 };
        let marked = if i == 1 { damaged } else { 0 };
        assert_eq!(after.damaged, marked, "damaged units of {product}");
        assert_eq!(
            after.on_hand,
            1000 - shipped[i] + restocked,
            "on hand of {product}"
        );
        assert_ledger_balances(&inventory, *product).await;
    }
    assert_reserved_matches_pending_orders(&inventory, &products).await;
}

/// A pool of the test's own, straight to the server: its setup and checks are plain SQL, which the pooler of
/// the pooled run cannot carry as prepared statements.
async fn direct_pool(options: &PgConnectOptions) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
        .unwrap()
}
