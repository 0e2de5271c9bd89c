//! The Postgres adapter on real databases: one fresh, migrated database per test (`#[sqlx::test]`, which
//! needs DATABASE_URL and fails without it).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use inventory::domain::order::{NewReturn, OrderAction, ReturnLine, ReturnReason};
use inventory::domain::stock::{MovementReason, StockAdjustment};
use inventory::domain::{Deadline, Error, PageRequest, ProductId, new_id};
use inventory::http::response::chain;
use inventory::ports::ProductStore;
use inventory::postgres::{PgStore, PoolConfig, connect_lazy, db_error};
use inventory::service::Inventory;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::common::{deadline, new_order, new_product};

crate::every_behaviour!(sqlx::test(migrations = "../migrations"), |pool: PgPool| {
    PgStore::new(common::served(&pool))
});

#[sqlx::test(migrations = "../migrations")]
async fn the_database_refuses_stock_below_reserved_whoever_writes_it(pool: PgPool) {
    let inventory = Inventory::new(PgStore::new(common::served(&pool)));
    let a = inventory
        .create_product(new_product("A", 1, 5), deadline())
        .await
        .unwrap();
    inventory
        .create_order(new_order(&[(a.id, 4)]), deadline())
        .await
        .unwrap();

    let below_reserved = sqlx::query("UPDATE products SET on_hand = 3 WHERE id = $1")
        .bind(a.id.uuid())
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(matches!(
        db_error("change the stock")(below_reserved),
        Error::Conflict(_)
    ));
    let negative = sqlx::query("UPDATE products SET reserved = -1 WHERE id = $1")
        .bind(a.id.uuid())
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(matches!(
        db_error("change the stock")(negative),
        Error::Conflict(_)
    ));
    let duplicate = sqlx::query("INSERT INTO products (id, sku, name, price_minor, currency, on_hand) VALUES ($1, 'A', 'x', 1, 'EUR', 0)")
        .bind(new_id::<ProductId>().uuid())
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(matches!(
        db_error("change the stock")(duplicate),
        Error::SkuTaken
    ));
    let negative_price = sqlx::query("UPDATE products SET price_minor = -1 WHERE id = $1")
        .bind(a.id.uuid())
        .execute(&pool)
        .await
        .unwrap_err();
    let error = db_error("change the price")(negative_price);
    assert!(
        matches!(error, Error::Internal(_)),
        "not a rule clients can break"
    );
    // What the log line of the request says: the step that failed, then what the database said.
    let logged = chain(&error);
    assert!(
        logged.starts_with("internal error: change the price failed: "),
        "{logged}"
    );
    assert!(logged.contains("check constraint"), "{logged}");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_ledger_is_insert_only(pool: PgPool) {
    let inventory = Inventory::new(PgStore::new(common::served(&pool)));
    inventory
        .create_product(new_product("A", 1, 5), deadline())
        .await
        .unwrap();
    let update = sqlx::query("UPDATE stock_movements SET on_hand_delta = 500")
        .execute(&pool)
        .await;
    assert!(update.is_err());
    let delete = sqlx::query("DELETE FROM stock_movements")
        .execute(&pool)
        .await;
    assert!(delete.is_err());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM stock_movements")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn generated_ledger_ids_are_version_7_and_time_ordered(pool: PgPool) {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT uuid_v7() FROM generate_series(1, 3)")
        .fetch_all(&pool)
        .await
        .unwrap();
    for id in &ids {
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
    }
    let before = new_id::<ProductId>().uuid();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let later: uuid::Uuid = sqlx::query_scalar("SELECT uuid_v7()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        later > before,
        "a later database id sorts after an earlier application id"
    );
}

/// A lock held by another transaction makes an order wait only until its deadline: it then rolls back and
/// reports `Unavailable`, having written nothing.
#[sqlx::test(migrations = "../migrations")]
async fn a_lock_wait_ends_at_the_deadline_and_rolls_back(pool: PgPool) {
    // Bounded in wall-clock time: alone among the heavy tests.
    let _heavy = common::HEAVY.lock().await;
    let inventory = Inventory::new(PgStore::new(common::served(&pool)));
    let a = inventory
        .create_product(new_product("A", 1, 5), deadline())
        .await
        .unwrap();

    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
        .bind(a.id.uuid())
        .execute(&mut *blocker)
        .await
        .unwrap();

    let started = Instant::now();
    let result = inventory
        .create_order(
            new_order(&[(a.id, 1)]),
            Deadline::after(Duration::from_millis(300)),
        )
        .await;
    let waited = started.elapsed();
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    assert!(waited < Duration::from_secs(2), "gave up after {waited:?}");
    blocker.rollback().await.unwrap();

    let product = inventory.get_product(a.id, deadline()).await.unwrap();
    assert_eq!(product.reserved, 0);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
}

/// Timeouts are transaction-local (`SET LOCAL`), so nothing lingers on a pooled connection (which is also
/// what keeps RDS Proxy from pinning it).
#[sqlx::test(migrations = "../migrations")]
async fn timeouts_do_not_outlive_the_transaction(pool: PgPool) {
    let store = PgStore::new(common::served(&pool));
    store.get_product(new_id(), deadline()).await.unwrap_err();
    let mut conn = pool.acquire().await.unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let lock_timeout: String = sqlx::query_scalar("SHOW lock_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!((timeout.as_str(), lock_timeout.as_str()), ("0", "0"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_passed_deadline_never_reaches_the_database(pool: PgPool) {
    let inventory = Inventory::new(PgStore::new(common::served(&pool)));
    let a = inventory
        .create_product(new_product("A", 1, 5), deadline())
        .await
        .unwrap();
    let result = inventory
        .create_order(new_order(&[(a.id, 1)]), Deadline::after(Duration::ZERO))
        .await;
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    assert_eq!(
        inventory
            .get_product(a.id, deadline())
            .await
            .unwrap()
            .reserved,
        0
    );
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_within_the_deadline() {
    // Bounded in wall-clock time: alone among the heavy tests.
    let _heavy = common::HEAVY.lock().await;
    // Nothing listens on port 1.
    let options: PgConnectOptions = "postgres://postgres@127.0.0.1:1/inventory".parse().unwrap();
    let pool = connect_lazy(
        options,
        &PoolConfig {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(1),
        },
    );
    let inventory = Inventory::new(PgStore::new(pool));
    let started = Instant::now();
    let health = inventory
        .health(Deadline::after(Duration::from_millis(500)))
        .await;
    assert!(matches!(health, Err(Error::Unavailable(_))), "{health:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[sqlx::test(migrations = "../migrations")]
async fn health_makes_a_round_trip(pool: PgPool) {
    let served = common::served(&pool);
    let inventory = Inventory::new(PgStore::new(served.clone()));
    inventory.health(deadline()).await.unwrap();
    served.close().await;
    let closed = inventory.health(deadline()).await;
    assert!(matches!(closed, Err(Error::Unavailable(_))), "{closed:?}");
}

/// Round trips seen by [`round_trip_counter`]: exchanges that carry statements, and bare pings
/// (a lone Sync, which sqlx sends to test a connection).
#[derive(Default)]
struct RoundTrips {
    statements: AtomicUsize,
    pings: AtomicUsize,
    /// Statements that set a transaction's timeouts again because its earlier statements took a while: they
    /// depend on the machine's speed, not on the work, and are counted apart.
    timeouts: AtomicUsize,
}

/// The text of a null-terminated string at the start of `bytes`, and what follows it.
fn cstring(bytes: &[u8]) -> (&[u8], &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    (&bytes[..end], &bytes[(end + 1).min(bytes.len())..])
}

/// A TCP proxy in front of Postgres that reads the client's side of the protocol and counts its round
/// trips: every simple Query ('Q') and every Sync ('S') is one wait for the server.
async fn round_trip_counter(server: (String, u16)) -> (u16, Arc<RoundTrips>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let trips = Arc::new(RoundTrips::default());
    let counted = Arc::clone(&trips);
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let upstream = tokio::net::TcpStream::connect((server.0.as_str(), server.1))
                .await
                .unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = upstream.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut pending: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut started = false;
                let mut extended = false;
                // Prepared statements that set timeouts, by name; whether the pending Sync ends one.
                let mut timeout_statements = std::collections::HashSet::<Vec<u8>>::new();
                let mut setting_timeouts = false;
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    loop {
                        // The startup message has no type byte; every later one is a type byte and a
                        // big-endian length that counts itself.
                        let (kind, header) = if started {
                            (pending.first().copied(), 1)
                        } else {
                            (None, 0)
                        };
                        if pending.len() < header + 4 {
                            break;
                        }
                        let len =
                            u32::from_be_bytes(pending[header..header + 4].try_into().unwrap())
                                as usize;
                        if pending.len() < header + len {
                            break;
                        }
                        match kind {
                            Some(b'Q') => {
                                counted.statements.fetch_add(1, Ordering::SeqCst);
                            }
                            Some(b'S') if extended && setting_timeouts => {
                                counted.timeouts.fetch_add(1, Ordering::SeqCst);
                                extended = false;
                                setting_timeouts = false;
                            }
                            Some(b'S') if extended => {
                                counted.statements.fetch_add(1, Ordering::SeqCst);
                                extended = false;
                            }
                            Some(b'S') => {
                                counted.pings.fetch_add(1, Ordering::SeqCst);
                            }
                            Some(kind) => {
                                let body = &pending[header + 4..header + len];
                                if kind == b'P' {
                                    let (name, rest) = cstring(body);
                                    if cstring(rest).0.starts_with(b"SELECT set_config") {
                                        timeout_statements.insert(name.to_vec());
                                        setting_timeouts = true;
                                    }
                                }
                                if kind == b'B' {
                                    let (_portal, rest) = cstring(body);
                                    setting_timeouts |=
                                        timeout_statements.contains(cstring(rest).0);
                                }
                                extended = true;
                            }
                            None => started = true,
                        }
                        pending.drain(..header + len);
                    }
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, trips)
}

/// The round trips an order takes do not grow with its lines: all lines travel in one statement as arrays.
#[sqlx::test(migrations = "../migrations")]
async fn an_order_takes_the_same_round_trips_for_one_line_or_a_hundred(
    _: sqlx::postgres::PgPoolOptions,
    options: PgConnectOptions,
) {
    let server = (options.get_host().to_owned(), options.get_port());
    let (port, trips) = round_trip_counter(server).await;
    // No TLS through the proxy: the counter reads the protocol in the clear.
    let proxied = options
        .host("127.0.0.1")
        .port(port)
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    let pool = connect_lazy(
        proxied,
        &PoolConfig {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        },
    );
    let inventory = Inventory::new(PgStore::new(pool));
    let mut products = Vec::new();
    for i in 0..100 {
        products.push(
            inventory
                .create_product(new_product(&format!("P{i}"), 10, 5), deadline())
                .await
                .unwrap()
                .id,
        );
    }
    // Warm the connection's statement cache: what is measured is the steady state of a warm function.
    inventory
        .create_order(new_order(&[(products[0], 1)]), deadline())
        .await
        .unwrap();

    let mut counts = Vec::new();
    for lines in [1usize, 10, 100] {
        let order: Vec<_> = products[..lines].iter().map(|id| (*id, 1)).collect();
        let before = trips.statements.load(Ordering::SeqCst);
        let placed = inventory
            .create_order(new_order(&order), deadline())
            .await
            .unwrap();
        assert_eq!(placed.lines.len(), lines);
        counts.push(trips.statements.load(Ordering::SeqCst) - before);
    }
    println!(
        "round trips per order of 1, 10, 100 lines (pings excluded): {counts:?}, and {} to set the remaining \
         timeouts after slow statements",
        trips.timeouts.load(Ordering::SeqCst)
    );
    assert_eq!(counts[0], counts[1]);
    assert_eq!(counts[0], counts[2]);
    assert_eq!(
        counts[0], 4,
        "BEGIN with its SET LOCALs, lock, write with the events, COMMIT"
    );

    let orders = inventory
        .list_orders(None, PageRequest::default(), deadline())
        .await
        .unwrap()
        .items;
    // Again on a warm statement cache: cancel a 10-line order first, then measure the 100-line one.
    inventory
        .transition_order(orders[1].id, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    let order = orders[0].id;
    let before = trips.statements.load(Ordering::SeqCst);
    inventory
        .transition_order(order, OrderAction::Cancel, deadline())
        .await
        .unwrap();
    let cancel = trips.statements.load(Ordering::SeqCst) - before;
    println!("round trips to cancel a 100-line order: {cancel}");
    assert_eq!(
        cancel, 7,
        "BEGIN, lock order, lock products, write, read back, the event, COMMIT"
    );
    // Shipping part of a 10-line order, then the rest: as many, however many lines (the second order is
    // measured, on a warm statement cache).
    let mut shipping = Vec::new();
    let mut reading = 0;
    for _ in 0..2 {
        let lines: Vec<_> = products[10..20].iter().map(|id| (*id, 2)).collect();
        let order = inventory
            .create_order(new_order(&lines), deadline())
            .await
            .unwrap();
        let part: Vec<_> = products[10..20].iter().map(|id| (*id, 1)).collect();
        let part = common::fulfilment(&part);
        let before = trips.statements.load(Ordering::SeqCst);
        inventory.fulfil(order.id, part, deadline()).await.unwrap();
        let part = trips.statements.load(Ordering::SeqCst) - before;
        let before = trips.statements.load(Ordering::SeqCst);
        inventory
            .transition_order(order.id, OrderAction::Fulfill, deadline())
            .await
            .unwrap();
        let rest = trips.statements.load(Ordering::SeqCst) - before;
        let back = products[10..20]
            .iter()
            .enumerate()
            .map(|(i, id)| ReturnLine {
                product_id: *id,
                quantity: 1,
                restock: i % 2 == 0,
                damaged: false,
            })
            .collect();
        let back = NewReturn::new(back, ReturnReason::Unwanted).unwrap();
        let before = trips.statements.load(Ordering::SeqCst);
        inventory
            .take_back(order.id, back, deadline())
            .await
            .unwrap();
        let back = trips.statements.load(Ordering::SeqCst) - before;
        shipping.push((part, rest, back));
        // Reading both back (the second time on a warm statement cache).
        let before = trips.statements.load(Ordering::SeqCst);
        let shipped = inventory
            .list_fulfilments(order.id, PageRequest::default(), deadline())
            .await
            .unwrap();
        let returned = inventory
            .list_returns(order.id, PageRequest::default(), deadline())
            .await
            .unwrap();
        assert_eq!((shipped.items.len(), returned.items.len()), (2, 1));
        reading = trips.statements.load(Ordering::SeqCst) - before;
    }
    println!("round trips to read a page of fulfilments and one of returns: {reading}");
    assert_eq!(
        reading, 6,
        "each: BEGIN with its SET LOCALs, the page with the order's existence, COMMIT"
    );
    println!(
        "round trips to ship part of a 10-line order, then the rest, then to take a unit of each line back: {:?}",
        shipping[1]
    );
    assert_eq!(
        shipping[1],
        (7, 7, 7),
        "BEGIN, lock order, lock products, read the order, write, the event, COMMIT"
    );
    // With an Idempotency-Key: two more, to claim the key and to store the response; a repeat reads the
    // stored response instead of writing.
    let keyed = |key: &str| {
        let claim = common::behaviour::claim(key, 3);
        let order = inventory::ports::Write::CreateOrder(new_order(&[(products[0], 1)]));
        let inventory = &inventory;
        async move {
            inventory
                .write_once(
                    &claim,
                    order,
                    &inventory::http::idempotency::render,
                    deadline(),
                )
                .await
                .unwrap()
        }
    };
    keyed("warm-the-cache").await;
    keyed("warm-the-cache").await;
    let before = trips.statements.load(Ordering::SeqCst);
    assert!(!keyed("counted").await.replayed());
    let fresh = trips.statements.load(Ordering::SeqCst) - before;
    let before = trips.statements.load(Ordering::SeqCst);
    assert!(keyed("counted").await.replayed());
    let replay = trips.statements.load(Ordering::SeqCst) - before;
    println!(
        "round trips of an order with an Idempotency-Key: {fresh}, and of its replay: {replay}"
    );
    assert_eq!(
        fresh, 6,
        "BEGIN, claim the key, lock, write with the events, store the response, COMMIT"
    );
    assert_eq!(replay, 4, "BEGIN, claim the key, read the response, COMMIT");
    // A warm connection is not pinged before use (only after an idle spell); sqlx pings it once after
    // each use, off the request's path, when it goes back to the pool.
    // 100 products, 4 orders, 1 list, 2 cancels, 2 orders shipped in two parts, returned and read back (4
    // reads), 4 keyed orders: at most one ping each (the last may still be under way).
    let operations = 123;
    let pings = trips.pings.load(Ordering::SeqCst);
    println!("pings over the {operations} operations above: {pings}");
    assert!(
        pings <= operations,
        "a ping before use as well as after: {pings}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_adjustment_and_its_ledger_row_are_written_together(pool: PgPool) {
    let inventory = Inventory::new(PgStore::new(common::served(&pool)));
    let a = inventory
        .create_product(new_product("A", 1, 0), deadline())
        .await
        .unwrap();
    let adjustment = StockAdjustment {
        delta: -1,
        reason: MovementReason::Shrinkage,
        note: None,
    };
    let refused = inventory.adjust_stock(a.id, adjustment, deadline()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM stock_movements")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a refused adjustment leaves no ledger row");
}

/// Makes every order's hold end two hours sooner (for tests of expiry).
async fn age_every_hold(pool: &PgPool) {
    sqlx::query("UPDATE orders SET expires_at = expires_at - interval '2 hours'")
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_partly_shipped_order_releases_only_what_is_left(pool: PgPool) {
    common::behaviour::a_partly_shipped_order_releases_only_what_is_left(
        Inventory::new(PgStore::new(common::served(&pool))),
        async |_| age_every_hold(&pool).await,
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_hold_is_extended_never_shortened(pool: PgPool) {
    common::behaviour::a_hold_is_extended_never_shortened(
        Inventory::new(PgStore::new(common::served(&pool))),
        async |_| age_every_hold(&pool).await,
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn expired_orders_release_their_stock_once(pool: PgPool) {
    common::behaviour::expired_orders_release_their_stock_once(
        Inventory::new(PgStore::new(common::served(&pool))),
        async |_| age_every_hold(&pool).await,
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn expired_keys_are_purged_in_batches_and_can_be_used_again(pool: PgPool) {
    common::behaviour::expired_keys_are_purged_in_batches_and_can_be_used_again(
        Inventory::new(PgStore::new(common::served(&pool))),
        async |_| {
            sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
                .execute(&pool)
                .await
                .unwrap();
        },
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_caller_holds_a_bounded_number_of_keys(pool: PgPool) {
    common::behaviour::a_caller_holds_a_bounded_number_of_keys(
        Inventory::new(PgStore::new(common::served(&pool)).with_key_limit(3)),
        async |_| {
            sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
                .execute(&pool)
                .await
                .unwrap();
        },
    )
    .await;
    // Every count is the caller's keys.
    let counts: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT c.caller, c.keys, (SELECT count(*) FROM idempotency_keys k WHERE k.caller = c.caller) \
         FROM idempotency_key_counts c ORDER BY c.caller",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        counts,
        [("a".to_owned(), 3, 3), ("b".to_owned(), 0, 0)],
        "the counts drifted from the keys"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn health_is_unavailable_while_the_database_is_read_only(pool: PgPool) {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Straight to the server, even in the pooled run: the point is what a new server session sees.
    let inventory = Inventory::new(PgStore::new(pool.clone()));
    inventory.health(deadline()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{database}\" SET default_transaction_read_only = on"
    )))
    .execute(&pool)
    .await
    .unwrap();
    // New sessions (as after a failover to a read-only server) see the setting.
    let fresh = connect_lazy(
        (*pool.connect_options()).clone(),
        &PoolConfig {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        },
    );
    let read_only = Inventory::new(PgStore::new(fresh.clone()));
    let health = read_only.health(deadline()).await;
    assert!(matches!(health, Err(Error::Unavailable(_))), "{health:?}");
    // A write there is a 503 too (25006), never a 500.
    let write = read_only
        .create_product(new_product("RO", 1, 0), deadline())
        .await;
    assert!(matches!(write, Err(Error::Unavailable(_))), "{write:?}");
    fresh.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{database}\" RESET default_transaction_read_only"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

/// Every condition that says "the database cannot do this right now" is a 503 (`unavailable`), never a
/// 500: raised by the server itself with each SQLSTATE, and mapped like any error of a statement.
#[sqlx::test(migrations = "../migrations")]
async fn transient_database_conditions_are_unavailable(pool: PgPool) {
    for code in [
        "57P01", "57P02", "57P03", "25006", "40001", "40P01", "25P03", "53300", "53200", "55P03",
        "57014",
    ] {
        let raised = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DO $$ BEGIN RAISE EXCEPTION 'condition %', '{code}' USING ERRCODE = '{code}'; END $$"
        )))
        .execute(&pool)
        .await
        .unwrap_err();
        let mapped = db_error("raise")(raised);
        assert!(
            matches!(mapped, Error::Unavailable(_)),
            "{code}: {mapped:?}"
        );
    }
    let bug = sqlx::raw_sql("SELECT * FROM no_such_table")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(matches!(db_error("raise")(bug), Error::Internal(_)));
}

/// Retention deletes events older than it only once the publisher has delivered them, oldest first, in
/// batches; newer ones and undelivered ones stay in the feed.
#[sqlx::test(migrations = "../migrations")]
async fn delivered_events_past_their_retention_are_purged_in_batches(pool: PgPool) {
    let inventory = Inventory::new(PgStore::new(common::served(&pool)));
    for i in 0..5 {
        inventory
            .create_product(new_product(&format!("OLD-{i}"), 1, 0), deadline())
            .await
            .unwrap();
    }
    let day = Duration::from_secs(24 * 3600);
    // Three of the five are 8 days old; the publisher has delivered up to the fourth.
    sqlx::raw_sql(
        "UPDATE events SET created_at = now() - interval '8 days'
           WHERE id IN (SELECT id FROM events ORDER BY commit_xid, seq LIMIT 3);
         UPDATE event_deliveries SET (after_xid, after_seq) =
           (SELECT commit_xid, seq FROM events ORDER BY commit_xid, seq OFFSET 3 LIMIT 1);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let purge = || inventory.purge_delivered_events(7 * day, 2, deadline());
    assert_eq!(purge().await.unwrap(), 3, "two batches of at most 2");
    assert_eq!(purge().await.unwrap(), 0);
    let left: Vec<(String, bool)> = sqlx::query_as(
        "SELECT data->>'sku', created_at < now() - interval '7 days' FROM events ORDER BY commit_xid, seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        [("OLD-3".to_owned(), false), ("OLD-4".to_owned(), false)]
    );
    // Old but not delivered: kept.
    sqlx::query("UPDATE events SET created_at = now() - interval '8 days'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE event_deliveries SET after_xid = '0', after_seq = 0")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(purge().await.unwrap(), 0);
}
