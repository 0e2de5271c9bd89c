//! Every write path when things fail at the worst moment, on real Postgres: the connection cut before or
//! after COMMIT, the deadline passing before or after COMMIT, a lock held past every request's deadline, and
//! pooled connections killed while idle. After each, stock, ledger, orders and idempotency keys are checked.
//! (A whole server crashing under load is the `crash` module.) Every test holds `common::HEAVY`: they measure
//! how long answers take, which a neighbour's load would blur.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use inventory::domain::idempotency::Once;
use inventory::domain::{Deadline, Error};
use inventory::http::idempotency::render;
use inventory::http::{App, Endpoint, HttpConfig};
use inventory::postgres::{LOCK_WAIT, PgStore, PoolConfig, connect_lazy};
use inventory::service::Inventory;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::common::behaviour::{
    assert_each_write_applied_once, claim, every_idempotent_write, snapshot,
};
use crate::common::proxy::{Plan, Proxy};
use crate::common::{Event, deadline, new_product};

/// A store on one connection (as a Lambda instance has) through a proxy in front of the test's database.
async fn through_proxy(options: &PgConnectOptions) -> (Inventory<PgStore>, Proxy) {
    let server = (options.get_host().to_owned(), options.get_port());
    let proxy = Proxy::start(server).await;
    let pool = connect_lazy(
        proxy.options(options.clone()),
        &PoolConfig {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        },
    );
    (Inventory::new(PgStore::new(pool)), proxy)
}

/// Keys stored in the database.
/// The outbox holds one event per committed change, and none of a failed one: as many `product.created` as
/// products, `order.*` as orders placed, cancelled and fulfilled, `stock.adjusted` as adjustments in the
/// ledger (the initial stock of a new product is part of its creation).
async fn assert_one_event_per_change(pool: &PgPool) {
    let counts: Vec<(String, i64, i64)> = sqlx::query_as(
        r#"
        SELECT t.type, (SELECT count(*) FROM events e WHERE e.type = t.type), t.changes FROM (
            SELECT 'product.created' AS type, (SELECT count(*) FROM products) AS changes
            UNION ALL SELECT 'order.placed', (SELECT count(*) FROM orders)
            UNION ALL SELECT 'order.cancelled', (SELECT count(*) FROM orders WHERE status = 'cancelled')
            UNION ALL SELECT 'order.fulfilled', (SELECT count(*) FROM orders WHERE status = 'fulfilled')
            UNION ALL SELECT 'stock.adjusted', (SELECT count(*) FROM stock_movements
                WHERE order_id IS NULL AND note IS DISTINCT FROM 'initial stock')
        ) t
        "#,
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (kind, events, changes) in counts {
        assert_eq!(
            events, changes,
            "{kind} events against the changes committed"
        );
    }
}

async fn keys(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// On every write route: a cut (or a stall past the deadline) before COMMIT is `unavailable`, changes
/// nothing and leaves the key free; a cut (or stall) after COMMIT was sent is `outcome_unknown`, and a retry
/// with the same key gets the committed response back instead of writing again.
#[sqlx::test(migrations = "../migrations")]
async fn a_lost_commit_is_unknown_and_a_retry_with_its_key_replays_it(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let direct = Inventory::new(PgStore::new(pool.clone()));
    let (proxied, proxy) = through_proxy(&options).await;
    let writes = every_idempotent_write(&direct, "LOST").await;
    let routes = writes.len();
    let short = || Deadline::after(Duration::from_millis(400));
    for (i, (route, write)) in writes.into_iter().enumerate() {
        for (j, before_commit) in [
            Plan::CutFirstStatement,
            Plan::StallFirstStatement(Duration::from_secs(2)),
        ]
        .into_iter()
        .enumerate()
        {
            let key = claim(&format!("lost-{i}-{j}"), 1);
            let unchanged = snapshot(&direct).await;
            proxy.arm(before_commit);
            let started = Instant::now();
            let failed = proxied
                .write_once(&key, write.clone(), &render, short())
                .await;
            assert!(
                matches!(failed, Err(Error::Unavailable(_))),
                "{route}, {before_commit:?}: {failed:?}"
            );
            assert!(
                started.elapsed() < Duration::from_millis(600),
                "{route}: answered in time"
            );
            assert_eq!(
                snapshot(&direct).await,
                unchanged,
                "{route}: nothing changed"
            );
            assert!(!keys(&pool).await.contains(&key.key.as_str().to_owned()));
        }

        let key = claim(&format!("lost-{i}"), 1);
        let after_commit = if i % 2 == 0 {
            Plan::CutAfterCommit
        } else {
            Plan::StallAfterCommit(Duration::from_secs(2))
        };
        proxy.arm(after_commit);
        let started = Instant::now();
        let unknown = proxied
            .write_once(&key, write.clone(), &render, short())
            .await;
        assert!(
            matches!(unknown, Err(Error::OutcomeUnknown(_))),
            "{route}, {after_commit:?}: {unknown:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{route}: answered in time"
        );
        // It did commit: the retry finds the response, and writes nothing.
        let committed = snapshot(&direct).await;
        let retried = proxied
            .write_once(&key, write, &render, deadline())
            .await
            .unwrap();
        assert!(
            matches!(retried, Once::Replayed(ref r) if matches!(r.status, 200 | 201)),
            "{route}: {retried:?}"
        );
        assert_eq!(
            snapshot(&direct).await,
            committed,
            "{route}: the retry wrote again"
        );
    }
    assert_eq!(proxy.fired().len(), 3 * routes, "every plan went off");
    assert_each_write_applied_once(&direct, "LOST").await;
    assert_one_event_per_change(&pool).await;
    assert_eq!(
        keys(&pool).await.len(),
        routes,
        "one key per write, none for the failures"
    );
}

/// A product change (`PATCH /products/{id}`: catalogue fields and stock settings) takes no idempotency key, so a
/// client retries it with the `If-Match` it sent. The connection cut, or the deadline passing, before COMMIT
/// changes nothing; a lost COMMIT is unknown and the change is there once (one version and one
/// `product.updated` more), and the retry with the same `If-Match` is refused as stale, changing nothing more.
#[sqlx::test(migrations = "../migrations")]
async fn a_product_change_that_fails_changes_nothing_and_a_lost_commit_lands_once(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    use inventory::domain::product::ProductPatch;
    use inventory::domain::{IfMatch, ProductName, StockLevel};

    let _heavy = common::HEAVY.lock().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let direct = Inventory::new(PgStore::new(pool.clone()));
    let (proxied, proxy) = through_proxy(&options).await;
    let product = direct
        .create_product(new_product("PATCH-LOST", 100, 10), deadline())
        .await
        .unwrap();
    let patch = |n: i64| ProductPatch {
        name: Some(ProductName::parse(format!("Renamed {n}")).unwrap()),
        backorder_limit: Some(StockLevel::parse(n).unwrap()),
        safety_stock: Some(StockLevel::parse(n).unwrap()),
        ..ProductPatch::default()
    };
    let short = || Deadline::after(Duration::from_millis(400));
    for before_commit in [
        Plan::CutFirstStatement,
        Plan::StallFirstStatement(Duration::from_secs(2)),
    ] {
        let unchanged = snapshot(&direct).await;
        proxy.arm(before_commit);
        let started = Instant::now();
        let failed = proxied
            .update_product(
                product.id,
                patch(1),
                Some(IfMatch::Versions(vec![product.version])),
                short(),
            )
            .await;
        assert!(
            matches!(failed, Err(Error::Unavailable(_))),
            "{before_commit:?}: {failed:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(600));
        assert_eq!(snapshot(&direct).await, unchanged, "{before_commit:?}");
    }
    for (n, after_commit) in [
        Plan::CutAfterCommit,
        Plan::StallAfterCommit(Duration::from_secs(2)),
    ]
    .into_iter()
    .enumerate()
    {
        let n = n as i64 + 2;
        let before = direct.get_product(product.id, deadline()).await.unwrap();
        let sent = Some(IfMatch::Versions(vec![before.version]));
        proxy.arm(after_commit);
        let started = Instant::now();
        let unknown = proxied
            .update_product(product.id, patch(n), sent.clone(), short())
            .await;
        assert!(
            matches!(unknown, Err(Error::OutcomeUnknown(_))),
            "{after_commit:?}: {unknown:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(600));
        let after = direct.get_product(product.id, deadline()).await.unwrap();
        assert_eq!(
            (after.version, after.name.as_str(), after.safety_stock),
            (before.version + 1, format!("Renamed {n}").as_str(), n),
            "{after_commit:?}: it committed, once"
        );
        let retried = proxied
            .update_product(product.id, patch(n), sent, deadline())
            .await;
        assert!(
            matches!(retried, Err(Error::PreconditionFailed)),
            "{retried:?}"
        );
        assert_eq!(
            direct.get_product(product.id, deadline()).await.unwrap(),
            after,
            "the retry changed nothing"
        );
    }
    assert_eq!(proxy.fired().len(), 4, "every plan went off");
    let updated: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE type = 'product.updated'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(updated, 2, "one event per committed change");
    common::behaviour::assert_ledger_balances(&direct, product.id).await;
}

/// A request that gives up on a lock leaves nothing behind: its statement and transaction end with it.
async fn sessions_in_transaction(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND (state LIKE 'idle in transaction%' OR state = 'active')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A hot product's row lock held past every request's deadline: 32 clients ordering it through the handlers
/// all get a 503 within two lock waits (far sooner than their deadline), nothing is left waiting or open,
/// and the next order after the release succeeds at once.
#[sqlx::test(migrations = "../migrations")]
async fn a_lock_storm_fails_fast_and_leaves_nothing_behind(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let clients = 32;
    let pool = PgPoolOptions::new()
        .max_connections(clients + 2)
        .connect_with(options.clone())
        .await
        .unwrap();
    let app = Arc::new(App::new(
        PgStore::new(common::served(&pool)),
        HttpConfig {
            request_timeout: Duration::from_secs(4),
            ..HttpConfig::default()
        },
    ));
    let hot = app
        .inventory
        .create_product(new_product("HOT", 100, 1000), deadline())
        .await
        .unwrap();
    let order = move || {
        Event::v2("POST", "/orders", "/orders")
            .json(&json!({ "lines": [{ "product_id": hot.id, "quantity": 1 }] }))
            .request()
    };

    // Someone else holds the row for longer than any request may take.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
        .bind(hot.id.uuid())
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (app, request) = (Arc::clone(&app), order());
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = app.handle(Endpoint::CreateOrder, request).await;
                (response, sent.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        let (response, took) = task.await.unwrap();
        assert_eq!(response.status(), 503);
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["code"], "unavailable");
        assert_eq!(response.headers()["retry-after"], "1");
        slowest = slowest.max(took);
    }
    println!(
        "{clients} orders behind a held lock: every one 503 within {slowest:?} (lock wait {LOCK_WAIT:?}, \
         deadline 4 s), all within {:?}",
        started.elapsed()
    );
    // Queued behind another waiter, an order waits for the row's tuple lock, then for the holder's
    // transaction: two lock waits, each bounded by LOCK_WAIT.
    assert!(
        slowest < 2 * LOCK_WAIT + Duration::from_millis(500),
        "{slowest:?}"
    );
    assert_eq!(sessions_in_transaction(&pool).await, 1, "only the holder");
    holder.rollback().await.unwrap();

    let sent = Instant::now();
    let placed = app.handle(Endpoint::CreateOrder, order()).await;
    assert_eq!(placed.status(), 201);
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(sessions_in_transaction(&pool).await, 0);
    let hot = app.inventory.get_product(hot.id, deadline()).await.unwrap();
    assert_eq!(hot.reserved, 1, "only the order after the release");
    common::behaviour::assert_ledger_balances(&app.inventory, hot.id).await;
}

/// Connections that died while idle in the pool (the database restarted, or a proxy dropped them) fail
/// their BEGIN before anything happened: the request starts again on a fresh connection, and no client
/// ever sees the failure, however many of the pool's connections are dead.
#[sqlx::test(migrations = "../migrations")]
async fn dead_pooled_connections_never_reach_a_client(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let size = 4;
    let served = connect_lazy(
        common::served_options(options),
        &PoolConfig {
            max_connections: size,
            acquire_timeout: Duration::from_secs(5),
        },
    );
    let inventory = Arc::new(Inventory::new(PgStore::new(served.clone())));
    let product = inventory
        .create_product(new_product("WARM", 100, 1000), deadline())
        .await
        .unwrap();
    for round in 0..3 {
        // Warm every connection of the pool, then kill them all while they sit idle.
        let warm: Vec<_> = (0..size).map(|_| served.acquire()).collect();
        let mut held = Vec::new();
        for conn in warm {
            held.push(conn.await.unwrap());
        }
        drop(held);
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'inventory') t",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(killed >= 1, "round {round}: killed {killed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The next requests, sequential and concurrent, all succeed.
        inventory
            .get_product(product.id, deadline())
            .await
            .unwrap_or_else(|e| panic!("round {round}: a read got {e:?}"));
        let orders: Vec<_> = (0..size)
            .map(|_| {
                let inventory = Arc::clone(&inventory);
                tokio::spawn(async move {
                    inventory
                        .create_order(common::new_order(&[(product.id, 1)]), deadline())
                        .await
                })
            })
            .collect();
        for order in orders {
            order
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: an order got {e:?}"));
        }
    }
    let product = inventory.get_product(product.id, deadline()).await.unwrap();
    assert_eq!(product.reserved, 3 * i64::from(size));
    common::behaviour::assert_ledger_balances(&inventory, product.id).await;
}

/// An order with a one-second budget, while `release` frees what it waits for: it fails by its deadline,
/// and nothing of it is still running on the server then.
async fn order_with_a_second_fails_at_its_deadline(
    inventory: &Inventory<PgStore>,
    pool: &PgPool,
    product: inventory::domain::ProductId,
    release: tokio::task::JoinHandle<()>,
) {
    let budget = Duration::from_millis(1000);
    let started = Instant::now();
    let result = inventory
        .create_order(common::new_order(&[(product, 1)]), Deadline::after(budget))
        .await;
    let took = started.elapsed();
    release.await.unwrap();
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    assert!(took <= budget + Duration::from_millis(50), "{took:?}");
    assert_eq!(
        sessions_in_transaction(pool).await,
        0,
        "nothing still running after {took:?}"
    );
}

/// Makes writing an order take 5 s, far longer than any request's budget.
async fn slow_down_orders(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$; \
         CREATE TRIGGER slow_down BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION slow_down();",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// The deadline bounds every statement on the server, not only the answer: a statement that starts late in
/// the transaction (after a long lock wait) gets only the time that remains, so when the request answers
/// 503 at its deadline, nothing of it is still running.
#[sqlx::test(migrations = "../migrations")]
async fn a_late_statement_gets_only_the_time_that_remains(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let pool = pool_options.connect_with(options).await.unwrap();
    let inventory = Inventory::new(PgStore::new(pool.clone()));
    let product = inventory
        .create_product(new_product("SLOW", 100, 10), deadline())
        .await
        .unwrap();
    // Writing an order takes 5 s here, far longer than the request's whole budget.
    slow_down_orders(&pool).await;
    // The product's row is held for 600 ms: the order's first statement waits that long.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
        .bind(product.id.uuid())
        .execute(&mut *holder)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        holder.rollback().await.unwrap();
    });
    // The server gave the write only what remained: it was cancelled by the deadline, not 5 s later.
    order_with_a_second_fails_at_its_deadline(&inventory, &pool, product.id, release).await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
    let product = inventory.get_product(product.id, deadline()).await.unwrap();
    assert_eq!(product.reserved, 0);
}

/// Time spent waiting for a pooled connection counts against the deadline too: the transaction's statements
/// get only what is left once it has one.
#[sqlx::test(migrations = "../migrations")]
async fn a_wait_for_a_connection_leaves_the_statements_only_what_remains(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let one = connect_lazy(
        options,
        &PoolConfig {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        },
    );
    let inventory = Inventory::new(PgStore::new(one.clone()));
    let product = inventory
        .create_product(new_product("WAIT", 100, 10), deadline())
        .await
        .unwrap();
    slow_down_orders(&pool).await;
    // The instance's only connection is busy for 600 ms.
    let busy = one.acquire().await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(busy);
    });
    order_with_a_second_fails_at_its_deadline(&inventory, &pool, product.id, release).await;
}

/// A read has no outcome to be unsure of: losing its COMMIT's answer is plain `unavailable`.
#[sqlx::test(migrations = "../migrations")]
async fn a_read_that_loses_its_commit_is_unavailable(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let direct = Inventory::new(PgStore::new(pool));
    let product = direct
        .create_product(new_product("READ", 100, 1), deadline())
        .await
        .unwrap();
    let (proxied, proxy) = through_proxy(&options).await;
    for plan in [
        Plan::CutAfterCommit,
        Plan::StallAfterCommit(Duration::from_secs(2)),
    ] {
        proxy.arm(plan);
        let read = proxied
            .get_product(product.id, Deadline::after(Duration::from_millis(400)))
            .await;
        assert!(
            matches!(read, Err(Error::Unavailable(_))),
            "{plan:?}: {read:?}"
        );
    }
    assert_eq!(proxy.fired().len(), 2);
    proxied.get_product(product.id, deadline()).await.unwrap();
}

/// A burst larger than the proxy's pool, with RDS Proxy's ConnectionBorrowTimeout stood in for by pgbouncer's
/// `query_wait_timeout`: a pool of 2 held by two open transactions, and 16 Lambda instances (a connection each)
/// ordering at once. No reserved concurrency caps the burst, and none is needed: every request answers 503 within
/// its deadline (the wait is bounded, nothing queues past it), nothing is written, and once the pool is free the
/// next order succeeds.
#[sqlx::test(migrations = "../migrations")]
async fn a_burst_beyond_the_pool_answers_503_within_the_deadline(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _heavy = common::HEAVY.lock().await;
    const INSTANCES: usize = 16;
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pooler");
    let pooler = |command: &str| {
        let output = std::process::Command::new(script)
            .arg(command)
            .env("POOLER_PORT", port.to_string())
            .env(
                "POOLER_DIR",
                std::env::temp_dir().join(format!("burst-pooler-{port}")),
            )
            .env("POOLER_UPSTREAM_HOST", options.get_host())
            .env("POOLER_UPSTREAM_PORT", options.get_port().to_string())
            .env("POOLER_POOL_SIZE", "2")
            .env("POOLER_WAIT_TIMEOUT", "1")
            .output()
            .expect("scripts/pooler");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    pooler("start");
    let database = options.get_database().unwrap().to_owned();
    let through_pooler = PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database(&database)
        .statement_cache_capacity(0);
    let direct = pool_options.connect_with(options.clone()).await.unwrap();
    let setup = Inventory::new(PgStore::new(direct.clone()));
    let hot = setup
        .create_product(new_product("BURST", 100, 1000), deadline())
        .await
        .unwrap();

    // The pool's two connections, taken by open transactions.
    let mut hogs = Vec::new();
    for _ in 0..2 {
        let mut hog = <sqlx::PgConnection as sqlx::Connection>::connect_with(&through_pooler)
            .await
            .unwrap();
        sqlx::raw_sql("BEGIN; SELECT 1")
            .execute(&mut hog)
            .await
            .unwrap();
        hogs.push(hog);
    }
    let app = |_| {
        Arc::new(App::new(
            PgStore::new(connect_lazy(
                through_pooler.clone(),
                &PoolConfig {
                    max_connections: 1,
                    acquire_timeout: Duration::from_secs(5),
                },
            )),
            HttpConfig {
                request_timeout: REQUEST_TIMEOUT,
                ..HttpConfig::default()
            },
        ))
    };
    let instances: Vec<Arc<App<PgStore>>> = (0..INSTANCES).map(app).collect();
    let order = || {
        Event::v2("POST", "/orders", "/orders")
            .json(&json!({ "lines": [{ "product_id": hot.id, "quantity": 1 }] }))
            .request()
    };
    let tasks: Vec<_> = instances
        .iter()
        .map(|instance| {
            let (instance, request) = (Arc::clone(instance), order());
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = instance.handle(Endpoint::CreateOrder, request).await;
                (response, sent.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        let (response, took) = task.await.unwrap();
        assert_eq!(
            response.status(),
            503,
            "{:?}",
            String::from_utf8_lossy(response.body())
        );
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["code"], "unavailable");
        slowest = slowest.max(took);
    }
    println!(
        "{INSTANCES} orders beyond a pool of 2: every one 503, the slowest in {slowest:?} (deadline {REQUEST_TIMEOUT:?})"
    );
    assert!(
        slowest < REQUEST_TIMEOUT + Duration::from_millis(500),
        "{slowest:?}"
    );

    for mut hog in hogs {
        sqlx::raw_sql("ROLLBACK").execute(&mut hog).await.unwrap();
    }
    let placed = instances[0].handle(Endpoint::CreateOrder, order()).await;
    assert_eq!(
        placed.status(),
        201,
        "{:?}",
        String::from_utf8_lossy(placed.body())
    );
    let hot = setup.get_product(hot.id, deadline()).await.unwrap();
    assert_eq!(hot.reserved, 1, "only the order after the burst");
    common::behaviour::assert_ledger_balances(&setup, hot.id).await;
    assert_one_event_per_change(&direct).await;
    drop(instances);
    pooler("stop");
}
