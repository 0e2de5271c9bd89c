//! Orders per second through the service and the Postgres adapter, against a reference: pgbench (C, libpq)
//! running the same transaction (lock the products in id order, then reserve, write the order, its lines,
//! the ledger and the order's event in one statement) with the same number of clients, on the same database server.
//!
//!   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p inventory --bench orders
//!
//! BENCH_CLIENTS (default 8) and BENCH_SECONDS (default 10) set the load. Runs the service twice, without
//! and with an Idempotency-Key on every order, while a reader follows the event feed; then pgbench, the order's
//! transaction with its event. Prints throughput, latency percentiles, the feed's lag and the ratios to
//! pgbench; asserts nothing.

use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inventory::domain::idempotency::{Claim, Fingerprint, IdempotencyKey};
use inventory::domain::order::{NewOrder, RequestedLine};
use inventory::domain::{Deadline, ProductId, Quantity};
use inventory::http::idempotency::render;
use inventory::ports::Write;
use inventory::postgres::{MIGRATOR, PgStore, PoolConfig, connect_lazy};
use inventory::service::Inventory;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Postgres};

const PRODUCTS: usize = 100;
const LINES: usize = 3;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The transaction of an order for 3 random products, as a pgbench script (its own file, which
/// `scripts/bench-invoke` runs too).
const PGBENCH_SCRIPT: &str = include_str!("order.pgbench.sql");

#[tokio::main]
async fn main() {
    let clients = env_number("BENCH_CLIENTS", 8);
    let seconds = env_number("BENCH_SECONDS", 10) as u64;
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL must name a Postgres server");
    let options = PgConnectOptions::from_str(&base)
        .unwrap()
        .database(&format!("inventory_bench_{}", std::process::id()));
    let url = options.to_url_lossy().to_string();
    Postgres::create_database(&url).await.unwrap();
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    MIGRATOR.run(&setup).await.unwrap();

    // Products with ids pgbench can compute from a number, so both sides pick products the same way.
    sqlx::query(
        "CREATE FUNCTION bench_id(n int) RETURNS uuid IMMUTABLE LANGUAGE sql
         AS $$ SELECT ('00000000-0000-7000-8000-' || lpad(n::text, 12, '0'))::uuid $$",
    )
    .execute(&setup)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO products (id, sku, name, price_minor, currency, on_hand)
         SELECT bench_id(n), 'BENCH-' || n, 'Bench product ' || n, 100, 'EUR', 1000000000
         FROM generate_series(1, $1) n",
    )
    .bind(PRODUCTS as i32)
    .execute(&setup)
    .await
    .unwrap();
    let products: Vec<ProductId> = sqlx::query_scalar("SELECT id FROM products ORDER BY id")
        .fetch_all(&setup)
        .await
        .unwrap()
        .into_iter()
        .map(|id: uuid::Uuid| ProductId::from(id))
        .collect();

    let pool = connect_lazy(
        options.clone(),
        &PoolConfig {
            max_connections: clients as u32,
            acquire_timeout: Duration::from_secs(10),
        },
    );
    let inventory = Arc::new(Inventory::new(PgStore::new(pool)));
    // The feed's reader has a connection of its own.
    let feed = Arc::new(Inventory::new(PgStore::new(connect_lazy(
        options.clone(),
        &PoolConfig {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(10),
        },
    ))));

    // The service and adapter under load, without and with an Idempotency-Key on every order.
    let mut throughput = Vec::new();
    // The reader competes for the same two cores and database: it runs in a run of its own.
    for (keyed, follow) in [(false, false), (true, false), (false, true)] {
        let stop = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let reader = follow.then(|| tokio::spawn(follow_feed(Arc::clone(&feed), stop)));
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let inventory = Arc::clone(&inventory);
                let products = products.clone();
                tokio::spawn(async move {
                    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (client as u64 + 1);
                    let mut latencies = Vec::new();
                    while Instant::now() < stop {
                        let mut lines: Vec<RequestedLine> = Vec::with_capacity(LINES);
                        while lines.len() < LINES {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            let product_id = products[(state % PRODUCTS as u64) as usize];
                            if lines.iter().all(|l| l.product_id != product_id) {
                                lines.push(RequestedLine {
                                    product_id,
                                    quantity: Quantity::parse(1).unwrap(),
                                });
                            }
                        }
                        let order = NewOrder::new(lines, None).unwrap();
                        let deadline = Deadline::after(Duration::from_secs(30));
                        let at = Instant::now();
                        if keyed {
                            let claim = Claim {
                                caller: String::new(),
                                key: IdempotencyKey::parse(&format!(
                                    "bench-{client}-{}",
                                    latencies.len()
                                ))
                                .unwrap(),
                                fingerprint: Fingerprint([client as u8; 32]),
                            };
                            inventory
                                .write_once(&claim, Write::CreateOrder(order), &render, deadline)
                                .await
                                .unwrap();
                        } else {
                            inventory.create_order(order, deadline).await.unwrap();
                        }
                        latencies.push(at.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies: Vec<Duration> = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let lags = match reader {
            Some(reader) => reader.await.unwrap(),
            None => Vec::new(),
        };
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        let percentile =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        let ours = latencies.len() as f64 / elapsed;
        if !follow {
            throughput.push(ours);
        }
        let with = match (keyed, follow) {
            (true, _) => ", each with an Idempotency-Key",
            (false, true) => ", a reader following the feed",
            (false, false) => "",
        };
        println!(
            "service + adapter: {clients} clients, {} orders of {LINES} lines{with} in {elapsed:.1} s: {ours:.0} \
         orders/s, p50 {:.2} ms, p99 {:.2} ms",
            latencies.len(),
            percentile(0.50).as_secs_f64() * 1000.0,
            percentile(0.99).as_secs_f64() * 1000.0,
        );
        if lags.is_empty() {
            continue;
        }
        let mut lags = lags;
        lags.sort();
        let lag = |p: f64| lags[((lags.len() as f64 * p) as usize).min(lags.len() - 1)];
        println!(
            "  the reader of GET /events's feed saw {} events, each {:.1} ms after its transaction \
             began at the median, {:.1} ms at p99, {:.1} ms at most",
            lags.len(),
            lag(0.5).as_secs_f64() * 1000.0,
            lag(0.99).as_secs_f64() * 1000.0,
            lag(1.0).as_secs_f64() * 1000.0,
        );
    }

    // The reference: the same transaction from pgbench.
    let reference = pgbench(&options, clients, seconds, PGBENCH_SCRIPT);
    println!(
        "pgbench reference: {clients} clients, the order's transaction with its event: {:.0} orders/s, {}",
        reference.0, reference.1,
    );
    println!(
        "ratio service/pgbench: {:.2} without a key, {:.2} with one",
        throughput[0] / reference.0,
        throughput[1] / reference.0,
    );

    setup.close().await;
    Postgres::force_drop_database(&url).await.unwrap();
}

/// Runs `script` with pgbench on the bench database: its orders per second and its latency line.
fn pgbench(
    options: &PgConnectOptions,
    clients: usize,
    seconds: u64,
    script: &str,
) -> (f64, String) {
    let path = std::env::temp_dir().join(format!("inventory-bench-{}.sql", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
        ])
        .args(["-T", &seconds.to_string()])
        .args([
            "-h",
            options.get_host(),
            "-p",
            &options.get_port().to_string(),
        ])
        .args(["-U", options.get_username()])
        .arg("-f")
        .arg(&path)
        .arg(options.get_database().unwrap())
        .output()
        .expect("pgbench (from the PostgreSQL client packages) must be on PATH");
    let _ = std::fs::remove_file(path);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tps: f64 = report
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("pgbench reports tps");
    let latency = report
        .lines()
        .find(|l| l.starts_with("latency average"))
        .unwrap_or("latency average = ?")
        .to_owned();
    (tps, latency)
}

/// Follows the event feed until `stop`, and answers how long after its transaction began each event became
/// visible to the reader (an upper bound of how far the feed lags behind commits).
async fn follow_feed(inventory: Arc<Inventory<PgStore>>, stop: Instant) -> Vec<Duration> {
    let mut after = inventory::domain::event::Position::default();
    let mut lags = Vec::new();
    // Events of an earlier run are read, not timed.
    let began = time::OffsetDateTime::now_utc();
    while Instant::now() < stop {
        let deadline = Deadline::after(Duration::from_secs(10));
        let page = inventory.list_events(after, 500, deadline).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        after = page.next;
        for event in page.items.iter().filter(|e| e.occurred_at >= began) {
            lags.push(Duration::try_from(now - event.occurred_at).unwrap_or_default());
        }
        if page.items.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    lags
}
