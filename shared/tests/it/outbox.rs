//! Expiring holds and the event outbox under concurrency, on real Postgres: expiry racing the clients that
//! fulfil or cancel the same orders, expiry runs racing each other or cut off half-way, and a reader following
//! the feed while 64 writers of every kind change things. Every test holds `common::HEAVY`: the races for their
//! connections, and all of them because a feed waits for every older transaction of the server, which a
//! neighbour's long one would hold back (and their own held-open transactions would hold back a neighbour's).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inventory::domain::event::{Event, EventType, Position};
use inventory::domain::order::{OrderAction, OrderStatus};
use inventory::domain::product::ProductPatch;
use inventory::domain::stock::{MovementReason, StockAdjustment};
use inventory::domain::{Error, OrderId, PriceMinor, ProductId, StockLevel};
use inventory::postgres::PgStore;
use inventory::service::Inventory;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::common::behaviour::{assert_ledger_balances, assert_reserved_matches_pending_orders};
use crate::common::race::{XorShift, long_deadline, pool_for, race_store};
use crate::common::{new_order, new_product};

type Service = Inventory<PgStore>;

/// The race's clients reach the server as the functions do (through the pooler in the pooled run); the
/// test's own setup and checks go straight to it.
async fn race_pools(
    clients: usize,
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) -> (PgPool, PgPool) {
    let direct = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
        .unwrap();
    (pool_for(clients, pool_options, options).await, direct)
}

/// `count` pending orders of 1 to 3 lines over `products`, all with their hold already ended.
async fn expired_orders(
    inventory: &Service,
    pool: &PgPool,
    products: &[ProductId],
    count: usize,
) -> Vec<OrderId> {
    let mut rng = XorShift(0xe4_91e5);
    let mut orders = Vec::new();
    for _ in 0..count {
        let lines: Vec<(ProductId, i64)> = (0..1 + rng.below(3))
            .map(|_| (products[rng.below(products.len())], 1 + rng.below(3) as i64))
            .collect();
        let order = inventory
            .create_order(new_order(&lines), long_deadline())
            .await
            .unwrap();
        orders.push(order.id);
    }
    sqlx::query("UPDATE orders SET expires_at = now() - interval '1 second'")
        .execute(pool)
        .await
        .unwrap();
    orders
}

async fn stocked_products(inventory: &Service, n: usize) -> Vec<ProductId> {
    let mut products = Vec::new();
    for i in 0..n {
        let product = inventory
            .create_product(
                new_product(&format!("HOLD-{i}"), 100, 10_000),
                long_deadline(),
            )
            .await
            .unwrap();
        products.push(product.id);
    }
    products
}

/// How many ledger rows of each reason each order wrote.
async fn ledger_by_order(pool: &PgPool) -> HashMap<(Uuid, String), i64> {
    let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT order_id, reason, count(*) FROM stock_movements WHERE order_id IS NOT NULL GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().map(|(o, r, n)| ((o, r), n)).collect()
}

/// Every order ends once: the rows its end wrote to the ledger (one per line, of one reason) and its events (one
/// `order.placed`, one event of its end).
async fn assert_each_order_ended_once(
    inventory: &Service,
    pool: &PgPool,
    orders: &[OrderId],
    products: &[ProductId],
) {
    let ledger = ledger_by_order(pool).await;
    let events: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT resource_id, type FROM events WHERE type LIKE 'order.%'")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut per_order: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (order, event) in events {
        per_order.entry(order).or_default().push(event);
    }
    for id in orders {
        let order = inventory.get_order(*id, long_deadline()).await.unwrap();
        let lines = order.lines.len() as i64;
        let ended = |reason: &str| {
            ledger
                .get(&(id.uuid(), reason.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let (expected, event) = match (order.status, order.cancel_reason) {
            (OrderStatus::Fulfilled, _) => ("order_fulfilled", "order.fulfilled"),
            (OrderStatus::Cancelled, Some(reason)) if reason.as_str() == "expired" => {
                ("order_expired", "order.expired")
            }
            (OrderStatus::Cancelled, _) => ("order_released", "order.cancelled"),
            (OrderStatus::Pending | OrderStatus::PartiallyFulfilled, _) => {
                panic!("order {id} still holds stock")
            }
        };
        for reason in ["order_fulfilled", "order_expired", "order_released"] {
            let want = if reason == expected { lines } else { 0 };
            assert_eq!(ended(reason), want, "order {id}: {reason} rows");
        }
        let mut got = per_order.remove(&id.uuid()).unwrap_or_default();
        got.sort();
        let mut want = vec!["order.placed".to_owned(), event.to_owned()];
        want.sort();
        assert_eq!(got, want, "events of order {id}");
    }
    for product in products {
        assert_ledger_balances(inventory, *product).await;
    }
    assert_reserved_matches_pending_orders(inventory, products).await;
}

/// Expiry races the clients fulfilling or cancelling the same orders: for each order exactly one wins. A
/// fulfilment either ships the order or is refused because it expired; a cancel either cancels it or finds it
/// expired (and changes nothing); the stock is released or shipped once.
#[sqlx::test(migrations = "../migrations")]
async fn expiry_racing_fulfil_and_cancel_has_one_winner_per_order(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let clients = 40;
    let (served, pool) = race_pools(clients + 4, pool_options, options).await;
    let inventory = Inventory::new(PgStore::new(served));
    let products = stocked_products(&inventory, 4).await;
    let orders = expired_orders(&inventory, &pool, &products, clients).await;

    let barrier = Arc::new(Barrier::new(clients + 2));
    let expiries: Vec<_> = (0..2)
        .map(|_| {
            let inventory = inventory.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                inventory.expire_orders(1000, long_deadline()).await
            })
        })
        .collect();
    let racers: Vec<_> = orders
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let inventory = inventory.clone();
            let barrier = barrier.clone();
            let (id, action) = (*id, [OrderAction::Fulfill, OrderAction::Cancel][i % 2]);
            tokio::spawn(async move {
                barrier.wait().await;
                // Spread over the time the expiry runs take, so that either side wins some orders.
                tokio::time::sleep(Duration::from_millis(6 * i as u64)).await;
                (
                    id,
                    action,
                    inventory
                        .transition_order(id, action, long_deadline())
                        .await,
                )
            })
        })
        .collect();
    let mut expired = 0;
    for expiry in expiries {
        expired += expiry.await.unwrap().unwrap();
    }
    let mut won = HashMap::<&str, usize>::new();
    for racer in racers {
        let (id, action, result) = racer.await.unwrap();
        let order = inventory.get_order(id, long_deadline()).await.unwrap();
        let outcome = match (action, result) {
            (OrderAction::Fulfill, Ok(done)) => {
                assert_eq!(done.status, OrderStatus::Fulfilled);
                "fulfilled"
            }
            (OrderAction::Fulfill, Err(Error::Conflict(_))) => "expired before the fulfilment",
            (OrderAction::Cancel, Ok(done)) if done.cancel_reason == order.cancel_reason => {
                match order.cancel_reason.map(|r| r.as_str()) {
                    Some("requested") => "cancelled",
                    _ => "expired before the cancel",
                }
            }
            (action, other) => panic!("{action:?} of {id}: {other:?} (order now {order:?})"),
        };
        *won.entry(outcome).or_default() += 1;
    }
    println!(
        "{clients} orders, each raced by its client and two expiry runs: {won:?}, {expired} expired"
    );
    let expired_seen = won.get("expired before the fulfilment").unwrap_or(&0)
        + won.get("expired before the cancel").unwrap_or(&0);
    assert_eq!(expired, expired_seen, "every expiry is seen by its racer");
    assert_each_order_ended_once(&inventory, &pool, &orders, &products).await;
}

/// Two expiry runs at once share the work: each order is expired by one of them, once.
#[sqlx::test(migrations = "../migrations")]
async fn two_expiry_runs_at_once_expire_each_order_once(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let (served, pool) = race_pools(4, pool_options, options).await;
    let inventory = Inventory::new(PgStore::new(served));
    let products = stocked_products(&inventory, 3).await;
    let orders = expired_orders(&inventory, &pool, &products, 150).await;
    let started = Instant::now();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let inventory = inventory.clone();
            tokio::spawn(async move { inventory.expire_orders(1000, long_deadline()).await })
        })
        .collect();
    let mut counts = Vec::new();
    for run in runs {
        counts.push(run.await.unwrap().unwrap());
    }
    let took = started.elapsed();
    // Orders each run found locked by the other, to the end, are left for the next run.
    let next = inventory
        .expire_orders(1000, long_deadline())
        .await
        .unwrap();
    println!(
        "two expiry runs over {} orders on {} products: {counts:?} in {took:?}; {next} left to the next run",
        orders.len(),
        products.len(),
    );
    assert_eq!(counts.iter().sum::<usize>() + next, orders.len());
    assert_each_order_ended_once(&inventory, &pool, &orders, &products).await;
}

/// An expiry run that dies half-way (its connection dropped in the middle of a transaction, again and again)
/// leaves every order either pending or expired, never released twice; the next runs finish the work.
#[sqlx::test(migrations = "../migrations")]
async fn expiry_runs_cut_off_half_way_release_nothing_twice(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let (served, pool) = race_pools(4, pool_options, options).await;
    let inventory = Inventory::new(PgStore::new(served));
    let products = stocked_products(&inventory, 3).await;
    let orders = expired_orders(&inventory, &pool, &products, 60).await;
    let mut rng = XorShift(0xc0ff);
    let (mut cut, mut runs) = (0, 0);
    loop {
        runs += 1;
        let budget = Duration::from_millis(2 + rng.below(30) as u64);
        match tokio::time::timeout(budget, inventory.expire_orders(1000, long_deadline())).await {
            // Nothing left to this run: done, unless a run that was cut off still holds some orders' rows
            // (its server session has not yet seen the connection close), which a run skips.
            Ok(Ok(0)) => {
                let pending: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'pending'")
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                if pending == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("{error:?}"),
            Err(_) => cut += 1,
        }
        assert!(runs < 10_000, "the runs never finished");
    }
    println!(
        "{runs} expiry runs over {} orders, {cut} cut off half-way",
        orders.len()
    );
    assert!(cut > 0, "some runs were cut off");
    assert_each_order_ended_once(&inventory, &pool, &orders, &products).await;
}

/// What a writer did, and the event it must have raised (`stock.low` aside, which depends on the order the
/// writers happened to run in, and is checked against its own data).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Change {
    event_type: &'static str,
    resource: Uuid,
}

/// Makes the transaction of any order whose customer reference is `rollback` fail at COMMIT, after every
/// statement (its events included) ran: a change that rolls back at the last moment.
async fn fail_marked_orders_at_commit(pool: &PgPool) {
    sqlx::raw_sql(
        r#"
        CREATE FUNCTION fail_marked() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.data->>'customer_ref' = 'rollback' THEN
                RAISE EXCEPTION 'rolled back at commit';
            END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER fail_marked AFTER INSERT ON events
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_marked();
        "#,
    )
    .execute(pool)
    .await
    .unwrap();
}

/// 64 writers of every kind of change, and a reader following the feed as they write: the reader sees
/// exactly one event per committed change, none from a transaction that rolled back (even at COMMIT), none
/// twice, none skipped (it never reads back), each resource's events in the order its changes committed.
#[sqlx::test(migrations = "../migrations")]
async fn a_reader_following_the_feed_sees_each_committed_change_once_in_commit_order(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let writers = 64;
    let rounds = 12;
    let (served, pool) = race_pools(writers + 2, pool_options, options).await;
    fail_marked_orders_at_commit(&pool).await;
    let inventory = Inventory::new(race_store(served));
    let mut products = Vec::new();
    for i in 0..8 {
        let mut new = new_product(&format!("FEED-{i}"), 100 + i, 60);
        new.low_stock_threshold = Some(StockLevel::parse(20).unwrap());
        products.push(
            inventory
                .create_product(new, long_deadline())
                .await
                .unwrap(),
        );
    }
    let products: Vec<ProductId> = products.iter().map(|p| p.id).collect();
    // Where the feed stands before the race: the products' creation is not part of it.
    let start = loop {
        let page = inventory
            .list_events(Position::default(), 1000, long_deadline())
            .await
            .unwrap();
        if page.items.len() == products.len() {
            break page.next;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let inventory = inventory.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<(Event, Instant)> = Vec::new();
            let mut after = start;
            let mut quiet_since: Option<Instant> = None;
            loop {
                let page = inventory
                    .list_events(after, 50, long_deadline())
                    .await
                    .unwrap();
                let now = Instant::now();
                if page.items.is_empty() {
                    // Once the writers are done, a second of nothing new means the feed has caught up.
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        let since = *quiet_since.get_or_insert(now);
                        if now - since > Duration::from_secs(1) {
                            return seen;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                quiet_since = None;
                after = page.next;
                seen.extend(page.items.into_iter().map(|e| (e, now)));
            }
        })
    };

    let barrier = Arc::new(Barrier::new(writers));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let inventory = inventory.clone();
            let barrier = barrier.clone();
            let products = products.clone();
            tokio::spawn(async move {
                let mut rng = XorShift(0xfeed + w as u64 * 7919);
                let mut changes: Vec<(Change, Instant)> = Vec::new();
                let mut failed = 0;
                let mut pending: Vec<OrderId> = Vec::new();
                barrier.wait().await;
                for round in 0..rounds {
                    let product = products[rng.below(products.len())];
                    let change = |event_type, resource: Uuid| Change {
                        event_type,
                        resource,
                    };
                    let result: Result<Vec<Change>, Error> = match rng.below(10) {
                        0..=3 => {
                            let lines: Vec<(ProductId, i64)> = (0..1 + rng.below(3))
                                .map(|_| {
                                    (products[rng.below(products.len())], 1 + rng.below(4) as i64)
                                })
                                .collect();
                            let mut order = new_order(&lines);
                            let rollback = rng.below(8) == 0;
                            if rollback {
                                order.customer_ref = Some(
                                    inventory::domain::CustomerRef::parse("rollback".into())
                                        .unwrap(),
                                );
                            }
                            match inventory.create_order(order, long_deadline()).await {
                                Ok(order) => {
                                    assert!(!rollback, "a marked order committed");
                                    pending.push(order.id);
                                    Ok(vec![change("order.placed", order.id.uuid())])
                                }
                                Err(Error::Internal(_)) if rollback => {
                                    Err(Error::Conflict("rolled back".into()))
                                }
                                Err(error) => Err(error),
                            }
                        }
                        4 | 5 if !pending.is_empty() => {
                            let order = pending.swap_remove(rng.below(pending.len()));
                            let (action, event) = if rng.below(2) == 0 {
                                (OrderAction::Cancel, "order.cancelled")
                            } else {
                                (OrderAction::Fulfill, "order.fulfilled")
                            };
                            inventory
                                .transition_order(order, action, long_deadline())
                                .await
                                .map(|_| vec![change(event, order.uuid())])
                        }
                        6 | 7 => {
                            let adjustment = StockAdjustment {
                                delta: [5, -3, 8, -6][rng.below(4)],
                                reason: MovementReason::Correction,
                                note: None,
                            };
                            inventory
                                .adjust_stock(product, adjustment, long_deadline())
                                .await
                                .map(|_| vec![change("stock.adjusted", product.uuid())])
                        }
                        8 => {
                            let patch = ProductPatch {
                                price: Some(PriceMinor::parse(100 + rng.below(50) as i64).unwrap()),
                                ..Default::default()
                            };
                            inventory
                                .update_product(product, patch, None, long_deadline())
                                .await
                                .map(|_| vec![change("product.updated", product.uuid())])
                        }
                        _ => {
                            // A product of its own, created and deleted again.
                            let created = inventory
                                .create_product(
                                    new_product(&format!("W{w}-{round}"), 1, 0),
                                    long_deadline(),
                                )
                                .await
                                .unwrap();
                            inventory
                                .delete_product(created.id, long_deadline())
                                .await
                                .map(|()| {
                                    vec![
                                        change("product.created", created.id.uuid()),
                                        change("product.deleted", created.id.uuid()),
                                    ]
                                })
                        }
                    };
                    let committed = Instant::now();
                    match result {
                        Ok(made) => changes.extend(made.into_iter().map(|c| (c, committed))),
                        Err(Error::InsufficientStock(_) | Error::Conflict(_)) => failed += 1,
                        Err(error) => panic!("writer {w}: {error:?}"),
                    }
                }
                (changes, failed)
            })
        })
        .collect();
    let mut changes: Vec<(Change, Instant)> = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (made, refused) = task.await.unwrap();
        changes.extend(made);
        failed += refused;
    }
    let writing = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();

    // Exactly the committed changes, once each.
    let mut expected: Vec<Change> = changes.iter().map(|(c, _)| c.clone()).collect();
    expected.sort();
    let mut got: Vec<Change> = seen
        .iter()
        .filter(|(e, _)| e.event_type != EventType::StockLow)
        .map(|(e, _)| Change {
            event_type: e.event_type.as_str(),
            resource: e.resource_id,
        })
        .collect();
    got.sort();
    assert_eq!(
        got.len(),
        expected.len(),
        "events seen against changes committed"
    );
    assert_eq!(got, expected);
    assert!(
        seen.iter()
            .all(|(e, _)| e.data["customer_ref"] != "rollback"),
        "an event of a rolled-back transaction"
    );
    let ids: HashSet<Uuid> = seen.iter().map(|(e, _)| e.id).collect();
    assert_eq!(ids.len(), seen.len(), "an event seen twice");
    assert!(
        seen.windows(2).all(|w| w[0].0.position < w[1].0.position),
        "the feed went back"
    );
    // stock.low only when the change left the product low.
    for (event, _) in seen
        .iter()
        .filter(|(e, _)| e.event_type == EventType::StockLow)
    {
        let (available, threshold) = (
            event.data["available"].as_i64(),
            event.data["low_stock_threshold"].as_i64(),
        );
        assert!(available <= threshold, "{event:?}");
    }
    // Each product's events follow its versions; each order is placed before it ends.
    let mut versions: HashMap<Uuid, i64> = HashMap::new();
    let mut placed: HashSet<Uuid> = HashSet::new();
    for (event, _) in &seen {
        let version = event.data["version"]
            .as_i64()
            .or(event.data["product"]["version"].as_i64());
        match (event.event_type, version) {
            (EventType::OrderPlaced, _) => assert!(placed.insert(event.resource_id)),
            (EventType::OrderCancelled | EventType::OrderFulfilled, _) => {
                assert!(
                    placed.contains(&event.resource_id),
                    "an order ended before it was placed"
                )
            }
            (_, Some(version)) => {
                let last = versions.insert(event.resource_id, version).unwrap_or(0);
                assert!(
                    last <= version,
                    "product {} went from version {last} to {version}",
                    event.resource_id
                );
            }
            (_, None) => panic!("no version in {event:?}"),
        }
    }
    // How long after its commit the reader saw each change (the client's answer marks the commit).
    let seen_at: HashMap<(Uuid, &str), Instant> = seen
        .iter()
        .map(|(e, at)| ((e.resource_id, e.event_type.as_str()), *at))
        .collect();
    let mut lags: Vec<Duration> = changes
        .iter()
        .map(|(c, committed)| {
            seen_at[&(c.resource, c.event_type)].saturating_duration_since(*committed)
        })
        .collect();
    lags.sort();
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    println!(
        "{writers} writers x {rounds} changes in {writing:?}: {} committed, {failed} refused or rolled back, {} events \
         ({} stock.low); the reader saw each {:?} after its commit at the median, {:?} at p99, {:?} at most",
        changes.len(),
        seen.len(),
        seen.len() - got.len(),
        at(0.5),
        at(0.99),
        at(1.0),
    );
    assert!(failed > 0, "some changes were refused or rolled back");
    for product in &products {
        assert_ledger_balances(&inventory, *product).await;
    }
}

/// Events a reader can see now, from the start of the feed.
async fn visible(inventory: &Service) -> Vec<Event> {
    inventory
        .list_events(Position::default(), 500, long_deadline())
        .await
        .unwrap()
        .items
}

/// A transaction that began before another but commits after it: the later one's event waits in the feed
/// until the earlier one has ended, so a reader that had already read on could never skip the earlier one.
#[sqlx::test(migrations = "../migrations")]
async fn an_event_committed_behind_a_running_transaction_waits_for_it(pool: PgPool) {
    let _heavy = common::HEAVY.lock().await;
    let inventory = Inventory::new(PgStore::new(common::served(&pool)));
    let mut early = pool.begin().await.unwrap();
    let early_xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *early)
        .await
        .unwrap();
    let product = inventory
        .create_product(new_product("LATER", 1, 0), long_deadline())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        visible(&inventory).await.is_empty(),
        "the later transaction's event shows before the earlier one ended"
    );
    // The earlier transaction writes an event (as the adapter does, last), and commits after the other.
    let resource = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (id, commit_xid, type, resource_id, data) \
         VALUES ($1, pg_current_xact_id(), 'product.updated', $2, '{}')",
    )
    .bind(Uuid::now_v7())
    .bind(resource)
    .execute(&mut *early)
    .await
    .unwrap();
    early.commit().await.unwrap();
    let events = loop {
        let events = visible(&inventory).await;
        if events.len() == 2 {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let order: Vec<Uuid> = events.iter().map(|e| e.resource_id).collect();
    assert_eq!(
        order,
        [resource, product.id.uuid()],
        "in the order of the transactions (the earlier one, xid {early_xid}, first)"
    );
}

/// The events of one resource are listed in the order its changes committed, even when the change that
/// committed second had begun (and got its transaction id) first: an order that claimed its idempotency key,
/// then waited for a product's lock while a stock adjustment of its other product committed.
#[sqlx::test(migrations = "../migrations")]
async fn a_resource_s_events_follow_its_commits_even_when_the_later_began_first(pool: PgPool) {
    let _heavy = common::HEAVY.lock().await;
    let inventory = Inventory::new(PgStore::new(common::served(&pool)));
    let q = inventory
        .create_product(new_product("Q-FIRST", 1, 10), long_deadline())
        .await
        .unwrap()
        .id;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut p = new_product("P-SECOND", 1, 10);
    p.low_stock_threshold = Some(StockLevel::parse(5).unwrap());
    let p = inventory
        .create_product(p, long_deadline())
        .await
        .unwrap()
        .id;
    assert!(q < p, "orders lock Q before P");

    // Hold Q, so that the order waits for it after claiming its key (and getting its transaction id).
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
        .bind(q.uuid())
        .execute(&mut *holder)
        .await
        .unwrap();
    let order = {
        let inventory = inventory.clone();
        tokio::spawn(async move {
            let claim = common::behaviour::claim("began-first", 7);
            let write = inventory::ports::Write::CreateOrder(new_order(&[(q, 1), (p, 5)]));
            inventory
                .write_once(
                    &claim,
                    write,
                    &inventory::http::idempotency::render,
                    long_deadline(),
                )
                .await
        })
    };
    // Until the order waits for Q's lock.
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Meanwhile P changes, and commits first.
    let adjustment = StockAdjustment {
        delta: -1,
        reason: MovementReason::Damaged,
        note: None,
    };
    inventory
        .adjust_stock(p, adjustment, long_deadline())
        .await
        .unwrap();
    holder.commit().await.unwrap();
    order.await.unwrap().unwrap();

    let events = loop {
        let events = visible(&inventory).await;
        if events.iter().any(|e| e.event_type == EventType::StockLow) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let of_p: Vec<(EventType, i64)> = events
        .iter()
        .filter(|e| e.resource_id == p.uuid())
        .map(|e| {
            let version = e.data["version"]
                .as_i64()
                .or(e.data["product"]["version"].as_i64())
                .unwrap();
            (e.event_type, version)
        })
        .collect();
    assert_eq!(
        of_p,
        [
            (EventType::ProductCreated, 1),
            (EventType::StockAdjusted, 2),
            (EventType::StockLow, 3),
        ],
        "P's events in the order its changes committed"
    );
}

/// The events a caller sees through `GET /events` from `start` until it is caught up (the cursor it sent comes
/// back) after `done`, pages of `limit`, in gateway mode with these scopes.
async fn follow_feed(
    app: &inventory::http::App<PgStore>,
    scopes: &str,
    start: Position,
    limit: u32,
    done: &std::sync::atomic::AtomicBool,
) -> Vec<serde_json::Value> {
    let claims =
        serde_json::json!({ "iss": "https://issuer.example", "sub": "reader", "scope": scopes });
    let mut seen = Vec::new();
    let mut after = start.encode();
    let mut quiet_since: Option<Instant> = None;
    loop {
        let request = common::Event::v2("GET", "/events", "/events")
            .query(&[("after", after.as_str()), ("limit", &limit.to_string())])
            .authorizer_claims(&claims)
            .request();
        let response = app
            .handle(inventory::http::Endpoint::ListEvents, request)
            .await;
        assert_eq!(response.status(), 200);
        let page: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        let next = page["next_cursor"].as_str().unwrap().to_owned();
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        if next == after {
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                let since = *quiet_since.get_or_insert(Instant::now());
                if since.elapsed() > Duration::from_millis(500) {
                    return seen;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        } else {
            quiet_since = None;
        }
        after = next;
    }
}

/// A reader holding only `events.read` and `products.read` follows the feed, small pages at a time, while 16
/// writers place and cancel orders, adjust stock and change products: it sees exactly the feed's `product.*` and
/// `stock.low` events, in feed order, none missed and nothing else, though many of its pages are filtered down
/// to nothing.
#[sqlx::test(migrations = "../migrations")]
async fn a_reader_sees_exactly_the_events_its_scopes_allow_while_writers_race(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let writers = 16;
    let (served, _direct) = race_pools(writers + 4, pool_options, options).await;
    let store = race_store(served);
    let app = inventory::http::App::with_auth(
        store.clone(),
        inventory::http::HttpConfig::default(),
        inventory::http::Auth::Gateway {
            scope_prefix: "inventory/".into(),
        },
    );
    let inventory = Inventory::new(store);
    let start = inventory
        .list_events(Position::default(), 1000, long_deadline())
        .await
        .unwrap()
        .next;
    let done = std::sync::atomic::AtomicBool::new(false);
    let writing = async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let inventory = inventory.clone();
                tokio::spawn(async move {
                    let mut new = new_product(&format!("SCOPED-{w}"), 100, 40);
                    new.low_stock_threshold = Some(StockLevel::parse(30).unwrap());
                    let product = inventory
                        .create_product(new, long_deadline())
                        .await
                        .unwrap();
                    let mut rng = XorShift(0x5c09e + w as u64);
                    for _ in 0..10 {
                        match rng.below(4) {
                            0 => {
                                let order = inventory
                                    .create_order(new_order(&[(product.id, 1)]), long_deadline())
                                    .await
                                    .unwrap();
                                if rng.below(2) == 0 {
                                    inventory
                                        .transition_order(
                                            order.id,
                                            OrderAction::Cancel,
                                            long_deadline(),
                                        )
                                        .await
                                        .unwrap();
                                }
                            }
                            1 => {
                                let adjustment = StockAdjustment {
                                    delta: [3, -2][rng.below(2)],
                                    reason: MovementReason::Correction,
                                    note: None,
                                };
                                inventory
                                    .adjust_stock(product.id, adjustment, long_deadline())
                                    .await
                                    .unwrap();
                            }
                            _ => {
                                let patch = ProductPatch {
                                    name: None,
                                    description: None,
                                    price: Some(
                                        PriceMinor::parse(100 + rng.below(50) as i64).unwrap(),
                                    ),
                                    ..ProductPatch::default()
                                };
                                inventory
                                    .update_product(product.id, patch, None, long_deadline())
                                    .await
                                    .unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let scopes = "inventory/events.read inventory/products.read";
    let ((), seen) = tokio::join!(writing, follow_feed(&app, scopes, start, 7, &done));

    let everything =
        "inventory/events.read inventory/products.read inventory/orders.read inventory/stock.read";
    let all = follow_feed(&app, everything, start, 500, &done).await;
    let kind = |e: &serde_json::Value| e["type"].as_str().unwrap().to_owned();
    let readable: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| kind(e).starts_with("product.") || kind(e) == "stock.low")
        .collect();
    let seen_ids: Vec<&serde_json::Value> = seen.iter().map(|e| &e["id"]).collect();
    let readable_ids: Vec<&serde_json::Value> = readable.iter().map(|e| &e["id"]).collect();
    assert!(
        readable.len() > writers,
        "{} product events",
        readable.len()
    );
    assert!(
        all.len() > readable.len(),
        "the feed holds other events too"
    );
    assert_eq!(
        seen_ids, readable_ids,
        "exactly the product events, in feed order"
    );
    for event in &seen {
        let kind = kind(event);
        assert!(
            kind.starts_with("product.") || kind == "stock.low",
            "{kind}"
        );
    }
}
