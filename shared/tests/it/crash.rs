//! Crash under load: twelve warm Lambda instances (each an `App` with its own pool of one connection, as a
//! function instance has) place orders with `Idempotency-Key`s and read (products, orders, pages of an order's
//! fulfilments), while the database server is killed
//! at once (`pg_ctl -m immediate stop`: the postmaster and every backend die, COMMITs in flight included),
//! stays down for a while, and starts again. No instance is recreated: the pools that held the dead
//! connections carry on serving.
//!
//! A few instances are quiet while the server is down (their clients pause just before the crash and go on
//! once it is back), as a warm instance nobody invokes during an outage: their connection dies idle in the
//! pool, and their first request after the restart meets it.
//!
//! Each client retries an order with the same request and key until it gets a 201, as the contract tells it
//! to. Afterwards the database must hold each order exactly once, with consistent stock and ledger; no answer
//! may have been a 500 or have taken longer than the request timeout; and once the database was back and
//! serving, no request may have failed (a stale pooled connection must never reach a client).
//!
//! The test runs its own Postgres cluster (see `common::cluster`), never the shared server. It holds
//! `common::HEAVY`, as the expiry test below does: both bound how long things take, and a server of their own
//! is load enough for a neighbour.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inventory::http::{App, Endpoint, HttpConfig};
use inventory::postgres::{PgStore, PoolConfig, connect_lazy, schema};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::common::Event;
use crate::common::cluster::Cluster;

/// Warm Lambda instances, one client each.
const INSTANCES: usize = 12;
/// Every this many instances, one is quiet during the outage (see the module's description).
const QUIET_EVERY: usize = 4;
const PRODUCTS: usize = 6;
const STOCK: i64 = 100_000;
/// The configured request timeout of every instance (no Lambda deadline is nearer in a test).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// What a request may take beyond its timeout: answering, and the scheduling of a busy test.
const LATENCY_MARGIN: Duration = Duration::from_millis(500);
const LOAD_BEFORE_CRASH: Duration = Duration::from_secs(2);
const OUTAGE: Duration = Duration::from_secs(5);
/// How long each client must have been served again after the restart before the load stops.
const HEALTHY_AFTER_RESTART: Duration = Duration::from_secs(3);
/// The longest the clients may take to be served again after the restart before the test gives up on that.
const RECOVERY_LIMIT: Duration = Duration::from_secs(12);
/// A client's pause before it sends a request again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// After this long since the load began, clients stop retrying (and the test fails with what they saw).
const GIVE_UP: Duration = Duration::from_secs(40);

/// Migrates as the deploy does and sets up the API's user, which logs in on AWS with IAM tokens through the
/// proxy; here, without IAM, a password (over SCRAM) stands in for the token.
async fn app_user_with_password(admin: &sqlx::postgres::PgConnectOptions, password: &str) {
    use sqlx::{ConnectOptions, Connection};
    schema::migrate(admin.clone(), Some("inventory_app"))
        .await
        .unwrap();
    let mut conn = admin.connect().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE inventory_app PASSWORD '{password}'"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_under_load_places_no_order_twice_and_no_stale_connection_reaches_a_client() {
    let _heavy = common::HEAVY.lock().await;
    let mut cluster = Cluster::start("crash", "");
    let admin = cluster.options("postgres", None);
    // As deployed: the functions log in as the API's own user.
    let password = "crash-test-app-password";
    app_user_with_password(&admin, password).await;
    let as_app = cluster.options("inventory_app", Some(password));
    let products = create_products(&as_app).await;

    // The warm instances: each its own pool of one connection, and one client.
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        restart_began: Mutex::new(None),
        recovered: Mutex::new(vec![None; INSTANCES]),
        give_up: Instant::now() + GIVE_UP,
        hold: AtomicBool::new(false),
        parked: AtomicUsize::new(0),
    });
    let products = Arc::new(products);
    let mut stores = Vec::new();
    let mut clients = Vec::new();
    let load_began = Instant::now();
    for c in 0..INSTANCES {
        let store = PgStore::new(connect_lazy(as_app.clone(), &instance_pool()));
        stores.push(store.clone());
        let app = App::new(
            store,
            HttpConfig {
                request_timeout: REQUEST_TIMEOUT,
                ..Default::default()
            },
        );
        clients.push(tokio::spawn(client(
            c,
            app,
            Arc::clone(&products),
            Arc::clone(&shared),
        )));
    }

    tokio::time::sleep(LOAD_BEFORE_CRASH).await;
    // The quiet instances go idle first, their connection back in their pool.
    shared.hold.store(true, Ordering::SeqCst);
    let quiet = (0..INSTANCES).filter(|c| is_quiet(*c)).count();
    let hold_began = Instant::now();
    while shared.parked.load(Ordering::SeqCst) < quiet {
        assert!(
            hold_began.elapsed() < REQUEST_TIMEOUT * 2,
            "the quiet clients did not pause"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let crash_began = Instant::now();
    tokio::task::block_in_place(|| cluster.crash());
    let crashed = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let restart_began = Instant::now();
    *shared.restart_began.lock().unwrap() = Some(restart_began);
    tokio::task::block_in_place(|| cluster.start_again());
    let restarted = Instant::now();
    shared.hold.store(false, Ordering::SeqCst);

    // Until every client has been served again, and for a while since.
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let recovered = shared.recovered.lock().unwrap().clone();
        let all = recovered.iter().copied().collect::<Option<Vec<Instant>>>();
        if let Some(last) = all.and_then(|all| all.into_iter().max())
            && last.elapsed() >= HEALTHY_AFTER_RESTART
        {
            break;
        }
        if restarted.elapsed() > RECOVERY_LIMIT {
            eprintln!("not every client was served again within {RECOVERY_LIMIT:?} of the restart");
            break;
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for client in clients {
        logs.push(client.await.expect("a client panicked"));
    }
    let load_ended = Instant::now();
    for store in &stores {
        store.pool().close().await;
    }

    let phases = Phases {
        load_began,
        crash_began,
        crashed,
        restart_began,
        restarted,
    };
    let report = Report::new(&logs, &phases);
    report.print(&phases, load_ended);
    report.check_answers(&logs, &phases);
    check_database(&admin, &logs, &products).await;
}

/// The instants the test moved from one phase to the next.
#[derive(Debug)]
struct Phases {
    load_began: Instant,
    crash_began: Instant,
    /// `pg_ctl stop` returned: no server process is left.
    crashed: Instant,
    restart_began: Instant,
    /// `pg_ctl start -w` returned: the server accepts connections.
    restarted: Instant,
}

impl Phases {
    /// Seconds since the load began, for the figures.
    fn at(&self, instant: Instant) -> f64 {
        instant
            .saturating_duration_since(self.load_began)
            .as_secs_f64()
    }
}

/// What the main task and the clients share.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// Set when the restart begins.
    restart_began: Mutex<Option<Instant>>,
    /// Per client: when its first request sent since the restart began succeeded.
    recovered: Mutex<Vec<Option<Instant>>>,
    give_up: Instant,
    /// Set while the quiet clients are to pause.
    hold: AtomicBool,
    /// How many quiet clients have paused.
    parked: AtomicUsize,
}

impl Shared {
    /// For a quiet client, while the quiet clients are to pause: pauses until the server is back.
    async fn pause_if_quiet(&self, client: usize) {
        if is_quiet(client) && self.hold.load(Ordering::SeqCst) {
            self.parked.fetch_add(1, Ordering::SeqCst);
            while self.hold.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    fn note(&self, client: usize, answer: &Answer) {
        let Some(restart) = *self.restart_began.lock().unwrap() else {
            return;
        };
        if answer.started >= restart && answer.success() {
            self.recovered.lock().unwrap()[client].get_or_insert(answer.ended);
        }
    }
}

/// What a request is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// An attempt at placing the client's logical order with this key.
    PlaceOrder(String),
    /// An attempt at extending the hold of a placed order with this key.
    ExtendHold(String),
    /// An attempt at shipping a unit of a placed order with this key.
    Ship(String),
    /// An attempt at taking a shipped unit back with this key.
    Return(String),
    /// Setting up, before the load.
    CreateProduct,
    GetProduct,
    GetOrder,
    /// A page of a placed order's fulfilments.
    ListFulfilments,
}

/// One request and its answer.
#[derive(Debug, Clone)]
struct Answer {
    client: usize,
    kind: Kind,
    started: Instant,
    ended: Instant,
    status: u16,
    /// The problem document's code, for an error.
    code: Option<String>,
    /// `Idempotent-Replayed: true`.
    replayed: bool,
    /// The `id` of a successful answer's body.
    id: Option<Uuid>,
    body: String,
}

impl Answer {
    fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn elapsed(&self) -> Duration {
        self.ended - self.started
    }

    /// Status and code, as `503 unavailable`.
    fn label(&self) -> String {
        match &self.code {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// A logical order: one request, sent until it is answered 201.
#[derive(Debug)]
struct LogicalOrder {
    key: String,
    /// Quantity per product.
    lines: BTreeMap<Uuid, i64>,
    attempts: Vec<Answer>,
    /// The id of the 201's body.
    placed: Option<Uuid>,
}

/// A logical extension of a placed order's hold: one request, sent until it is answered 200.
#[derive(Debug)]
struct LogicalHold {
    key: String,
    order: Uuid,
    attempts: Vec<Answer>,
    extended: bool,
}

/// A logical shipment of one unit of a placed order's first line: one request, sent until it is answered 201.
#[derive(Debug)]
struct LogicalShipment {
    key: String,
    order: Uuid,
    product: Uuid,
    attempts: Vec<Answer>,
    shipped: bool,
}

/// A logical return of a shipped unit (restocked or not): one request, sent until it is answered 201.
#[derive(Debug)]
struct LogicalReturn {
    key: String,
    order: Uuid,
    product: Uuid,
    restock: bool,
    attempts: Vec<Answer>,
    returned: bool,
}

#[derive(Debug, Default)]
struct ClientLog {
    orders: Vec<LogicalOrder>,
    holds: Vec<LogicalHold>,
    shipments: Vec<LogicalShipment>,
    returns: Vec<LogicalReturn>,
    reads: Vec<Answer>,
}

impl ClientLog {
    fn answers(&self) -> impl Iterator<Item = &Answer> {
        self.orders
            .iter()
            .flat_map(|order| &order.attempts)
            .chain(self.holds.iter().flat_map(|hold| &hold.attempts))
            .chain(self.shipments.iter().flat_map(|ship| &ship.attempts))
            .chain(self.returns.iter().flat_map(|back| &back.attempts))
            .chain(&self.reads)
    }
}

/// Sends `request` (made anew for each attempt) until it is answered `success`, or with something final, or
/// the test gives up: every attempt, and whether one succeeded.
async fn until_answered(
    app: &App<PgStore>,
    c: usize,
    endpoint: Endpoint,
    kind: Kind,
    success: u16,
    shared: &Shared,
    request: impl Fn() -> Event,
) -> (Vec<Answer>, Option<Uuid>) {
    let mut attempts = Vec::new();
    loop {
        let answer = call(app, c, endpoint, kind.clone(), request()).await;
        shared.note(c, &answer);
        let (status, code, id) = (answer.status, answer.code.clone(), answer.id);
        attempts.push(answer);
        match (status, code.as_deref()) {
            (status, _) if status == success => return (attempts, id),
            // Not final: the same request again.
            (409, Some("request_in_progress")) | (500..=599, _) => {}
            // Final, and wrong: the checks report it.
            _ => return (attempts, None),
        }
        if Instant::now() >= shared.give_up {
            return (attempts, None);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// The pool of one warm instance, as the functions configure it.
fn instance_pool() -> PoolConfig {
    PoolConfig {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(2),
    }
}

/// Creates the products through the API (no Idempotency-Key: the only keys are the orders').
async fn create_products(options: &sqlx::postgres::PgConnectOptions) -> Vec<Uuid> {
    let store = PgStore::new(connect_lazy(options.clone(), &instance_pool()));
    let app = App::new(store.clone(), HttpConfig::default());
    let mut ids = Vec::new();
    for i in 0..PRODUCTS {
        let body = json!({
            "sku": format!("CRASH-{i}"), "name": format!("Crash test product {i}"),
            "price_minor": 100 + i, "currency": "EUR", "on_hand": STOCK
        });
        let answer = call(
            &app,
            0,
            Endpoint::CreateProduct,
            Kind::CreateProduct,
            event(Endpoint::CreateProduct, "/products").json(&body),
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        ids.push(answer.id.unwrap());
    }
    store.pool().close().await;
    ids
}

/// One client: places orders one after another, each sent until it is answered 201, with a read between
/// two orders, until told to stop (only ever between two orders).
async fn client(
    c: usize,
    app: App<PgStore>,
    products: Arc<Vec<Uuid>>,
    shared: Arc<Shared>,
) -> ClientLog {
    let mut rng = Rng::new(0x5eed_0000 + c as u64);
    let mut log = ClientLog::default();
    // Half the quiet clients pause before an order, half before a read: the first request of their
    // instance after the restart is a write for some, a read for others.
    let pauses_before_read = (c / QUIET_EVERY) % 2 == 1;
    for n in 0.. {
        if !pauses_before_read {
            shared.pause_if_quiet(c).await;
        }
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("crash-client{c}-order{n}");
        let lines = rng.lines(&products);
        let body = json!({
            "lines": lines
                .iter()
                .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
                .collect::<Vec<_>>(),
            "customer_ref": key,
        });
        let (attempts, placed) = until_answered(
            &app,
            c,
            Endpoint::CreateOrder,
            Kind::PlaceOrder(key.clone()),
            201,
            &shared,
            || {
                event(Endpoint::CreateOrder, "/orders")
                    .json(&body)
                    .header("Idempotency-Key", &key)
            },
        )
        .await;
        log.orders.push(LogicalOrder {
            key: key.clone(),
            lines,
            attempts,
            placed,
        });
        if Instant::now() >= shared.give_up {
            break;
        }
        // Every third order's hold is extended, with a key of its own, until answered.
        if let Some(order) = placed
            && n % 3 == 0
        {
            let key = format!("crash-client{c}-hold{n}");
            let path = format!("/orders/{order}/hold");
            let (attempts, extended) = until_answered(
                &app,
                c,
                Endpoint::ExtendHold,
                Kind::ExtendHold(key.clone()),
                200,
                &shared,
                || {
                    event(Endpoint::ExtendHold, &path)
                        .json(&json!({ "hold_seconds": 3600 }))
                        .header("Idempotency-Key", &key)
                },
            )
            .await;
            log.holds.push(LogicalHold {
                key,
                order,
                attempts,
                extended: extended.is_some(),
            });
        }
        // Every third order (others than those) ships a unit of its first line, with a key of its own.
        if let Some(order) = placed
            && n % 3 == 1
            && Instant::now() < shared.give_up
        {
            let key = format!("crash-client{c}-ship{n}");
            let path = format!("/orders/{order}/fulfilments");
            let product = *log.orders.last().unwrap().lines.keys().next().unwrap();
            let body = json!({ "lines": [{ "product_id": product, "quantity": 1 }] });
            let (attempts, _) = until_answered(
                &app,
                c,
                Endpoint::CreateFulfilment,
                Kind::Ship(key.clone()),
                201,
                &shared,
                || {
                    event(Endpoint::CreateFulfilment, &path)
                        .json(&body)
                        .header("Idempotency-Key", &key)
                },
            )
            .await;
            let shipped = attempts.last().is_some_and(|a| a.status == 201);
            log.shipments.push(LogicalShipment {
                key,
                order,
                product,
                attempts,
                shipped,
            });
            // What shipped comes back, every other time onto the shelf.
            if shipped && Instant::now() < shared.give_up {
                let key = format!("crash-client{c}-back{n}");
                let path = format!("/orders/{order}/returns");
                let restock = n % 2 == 0;
                let body = json!({
                    "lines": [{ "product_id": product, "quantity": 1, "restock": restock }],
                    "reason": "unwanted",
                });
                let (attempts, _) = until_answered(
                    &app,
                    c,
                    Endpoint::CreateReturn,
                    Kind::Return(key.clone()),
                    201,
                    &shared,
                    || {
                        event(Endpoint::CreateReturn, &path)
                            .json(&body)
                            .header("Idempotency-Key", &key)
                    },
                )
                .await;
                let returned = attempts.last().is_some_and(|a| a.status == 201);
                log.returns.push(LogicalReturn {
                    key,
                    order,
                    product,
                    restock,
                    attempts,
                    returned,
                });
            }
        }

        if pauses_before_read {
            shared.pause_if_quiet(c).await;
        }
        let (endpoint, kind, path) = match placed {
            Some(id) if n % 4 == 0 => (
                Endpoint::ListFulfilments,
                Kind::ListFulfilments,
                format!("/orders/{id}/fulfilments"),
            ),
            Some(id) if n % 2 == 0 => (Endpoint::GetOrder, Kind::GetOrder, format!("/orders/{id}")),
            _ => (
                Endpoint::GetProduct,
                Kind::GetProduct,
                format!("/products/{}", products[rng.below(products.len())]),
            ),
        };
        let answer = call(&app, c, endpoint, kind, event(endpoint, &path)).await;
        shared.note(c, &answer);
        log.reads.push(answer);
        if !log.reads.last().is_some_and(Answer::success) {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    log
}

/// Whether client `c`'s instance is quiet during the outage.
fn is_quiet(c: usize) -> bool {
    c % QUIET_EVERY == QUIET_EVERY - 1
}

fn event(endpoint: Endpoint, path: &str) -> Event {
    let route = endpoint.route();
    Event::v2(route.method, route.path, path)
}

/// What the Lambda function of `endpoint` does with one invocation, timed.
async fn call(
    app: &App<PgStore>,
    client: usize,
    endpoint: Endpoint,
    kind: Kind,
    event: Event,
) -> Answer {
    let request = event.request();
    let started = Instant::now();
    let response = app.handle(endpoint, request).await;
    let ended = Instant::now();
    let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let status = response.status().as_u16();
    let success = (200..300).contains(&status);
    Answer {
        client,
        kind,
        started,
        ended,
        status,
        code: (!success)
            .then(|| json["code"].as_str().map(str::to_owned))
            .flatten(),
        replayed: response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|value| value == "true"),
        id: success
            .then(|| json["id"].as_str().and_then(|id| id.parse().ok()))
            .flatten(),
        body,
    }
}

/// The figures of a run, and the checks of what the clients saw.
#[derive(Debug)]
struct Report {
    /// Every answer, in the order they were received.
    answers: Vec<Answer>,
    /// The first 201 received since the restart began.
    first_placed_after_restart: Option<Instant>,
}

impl Report {
    fn new(logs: &[ClientLog], phases: &Phases) -> Self {
        let mut answers: Vec<Answer> = logs.iter().flat_map(ClientLog::answers).cloned().collect();
        answers.sort_by_key(|answer| answer.ended);
        let first_placed_after_restart = answers
            .iter()
            .find(|answer| answer.ended >= phases.restart_began && answer.status == 201)
            .map(|answer| answer.ended);
        Self {
            answers,
            first_placed_after_restart,
        }
    }

    fn print(&self, phases: &Phases, load_ended: Instant) {
        let orders = self
            .answers
            .iter()
            .filter(|a| a.status == 201)
            .map(|a| &a.kind)
            .collect::<BTreeSet<_>>()
            .len();
        let count = |filter: &dyn Fn(&Answer) -> bool| -> BTreeMap<String, usize> {
            let mut counts = BTreeMap::new();
            for answer in self.answers.iter().filter(|a| filter(a)) {
                *counts.entry(answer.label()).or_default() += 1;
            }
            counts
        };
        let in_flight_at_crash = self
            .answers
            .iter()
            .filter(|a| a.started <= phases.crash_began && a.ended >= phases.crash_began)
            .map(|a| a.label())
            .collect::<Vec<_>>();
        let max = self
            .answers
            .iter()
            .max_by_key(|a| a.elapsed())
            .expect("answers");
        println!(
            "crash under load, {INSTANCES} instances of one connection each ({} quiet during the outage):",
            (0..INSTANCES).filter(|c| is_quiet(*c)).count()
        );
        println!(
            "  crash at {:.2} s (pg_ctl stop took {:.2} s), restart at {:.2} s (pg_ctl start took {:.2} s), \
             load stopped at {:.2} s",
            phases.at(phases.crash_began),
            (phases.crashed - phases.crash_began).as_secs_f64(),
            phases.at(phases.restart_began),
            (phases.restarted - phases.restart_began).as_secs_f64(),
            phases.at(load_ended),
        );
        println!(
            "  requests: {} ({} order attempts, {} hold extension attempts, {} shipment attempts, {} return \
             attempts, {} reads); orders placed: {orders}",
            self.answers.len(),
            self.answers
                .iter()
                .filter(|a| matches!(a.kind, Kind::PlaceOrder(_)))
                .count(),
            self.answers
                .iter()
                .filter(|a| matches!(a.kind, Kind::ExtendHold(_)))
                .count(),
            self.answers
                .iter()
                .filter(|a| matches!(a.kind, Kind::Ship(_)))
                .count(),
            self.answers
                .iter()
                .filter(|a| matches!(a.kind, Kind::Return(_)))
                .count(),
            self.answers
                .iter()
                .filter(|a| {
                    matches!(
                        a.kind,
                        Kind::GetOrder | Kind::GetProduct | Kind::ListFulfilments
                    )
                })
                .count(),
        );
        println!(
            "  in flight when the crash began: {} {:?}",
            in_flight_at_crash.len(),
            in_flight_at_crash
        );
        println!(
            "  answers before the crash: {:?}",
            count(&|a| a.ended < phases.crash_began)
        );
        println!(
            "  answers while the server was being killed: {:?}",
            count(&|a| a.ended >= phases.crash_began && a.ended < phases.crashed)
        );
        println!(
            "  answers during the outage (server gone .. restart done): {:?}",
            count(&|a| a.ended >= phases.crashed && a.ended < phases.restarted)
        );
        println!(
            "  answers after the restart: {:?}",
            count(&|a| a.ended >= phases.restarted)
        );
        match self.first_placed_after_restart {
            Some(first) => println!(
                "  first 201 {:.3} s after the restart began ({:.3} s after pg_ctl start returned)",
                (first - phases.restart_began).as_secs_f64(),
                phases.at(first) - phases.at(phases.restarted),
            ),
            None => println!("  no 201 after the restart"),
        }
        println!(
            "  max latency: {:.3} s ({}, client {}, {:?})",
            max.elapsed().as_secs_f64(),
            max.label(),
            max.client,
            max.kind
        );
        let quiet_first: Vec<String> = self
            .answers
            .iter()
            .filter(|a| is_quiet(a.client) && a.started >= phases.restarted)
            .fold(BTreeMap::new(), |mut first, a| {
                first.entry(a.client).or_insert(a);
                first
            })
            .values()
            .map(|a| {
                format!(
                    "client {} {:?}: {} in {:.3} s",
                    a.client,
                    a.kind,
                    a.label(),
                    a.elapsed().as_secs_f64()
                )
            })
            .collect();
        println!("  first request of each quiet instance after the restart: {quiet_first:?}");
        println!(
            "  503 outcome_unknown: {}; replayed 201s (Idempotent-Replayed): {}; 409 request_in_progress: {}",
            self.answers
                .iter()
                .filter(|a| a.code.as_deref() == Some("outcome_unknown"))
                .count(),
            self.answers.iter().filter(|a| a.replayed).count(),
            self.answers
                .iter()
                .filter(|a| a.code.as_deref() == Some("request_in_progress"))
                .count(),
        );
    }

    fn check_answers(&self, logs: &[ClientLog], phases: &Phases) {
        let bound = REQUEST_TIMEOUT + LATENCY_MARGIN;
        for answer in &self.answers {
            // No 500, nor any answer but the ones a crash may explain.
            let expected = matches!(
                (&answer.kind, answer.status, answer.code.as_deref()),
                (
                    Kind::PlaceOrder(_) | Kind::Ship(_) | Kind::Return(_),
                    201,
                    _
                ) | (
                    Kind::GetOrder | Kind::GetProduct | Kind::ListFulfilments | Kind::ExtendHold(_),
                    200,
                    _
                ) | (_, 503, Some("unavailable"))
                    | (
                        Kind::PlaceOrder(_) | Kind::ExtendHold(_) | Kind::Ship(_) | Kind::Return(_),
                        503,
                        Some("outcome_unknown")
                    )
                    | (
                        Kind::PlaceOrder(_) | Kind::ExtendHold(_) | Kind::Ship(_) | Kind::Return(_),
                        409,
                        Some("request_in_progress")
                    )
            );
            assert!(
                expected,
                "unexpected answer {} to {:?} of client {} at {:.3} s (crash at {:.3} s, restart at {:.3} s): {}",
                answer.label(),
                answer.kind,
                answer.client,
                phases.at(answer.ended),
                phases.at(phases.crash_began),
                phases.at(phases.restart_began),
                answer.body
            );
            assert!(
                answer.elapsed() <= bound,
                "a request took {:?} (more than {bound:?}): {} to {:?} of client {}, sent at {:.3} s",
                answer.elapsed(),
                answer.label(),
                answer.kind,
                answer.client,
                phases.at(answer.started)
            );
            // Sent while no server ran, and answered before it was started again: nothing could succeed.
            if answer.started >= phases.crashed && answer.ended <= phases.restart_began {
                assert_eq!(
                    answer.status, 503,
                    "answered during the outage: {:?}",
                    answer
                );
            }
        }

        // The load ran before the crash, and every client but the quiet ones met the outage. The quiet
        // ones were answered nothing but successes: their first request after the restart found their
        // pooled connection dead, and was served on a new one.
        for (c, log) in logs.iter().enumerate() {
            assert!(
                log.answers()
                    .any(|a| a.status == 201 && a.ended < phases.crash_began),
                "client {c} placed no order before the crash"
            );
            if is_quiet(c) {
                let failed: Vec<_> = log
                    .answers()
                    .filter(|a| !a.success())
                    .map(|a| (a.kind.clone(), a.label(), phases.at(a.started), &a.body))
                    .collect();
                assert!(
                    failed.is_empty(),
                    "the quiet client {c}, idle during the outage, was answered {failed:?} (the restart was \
                     done at {:.3} s)",
                    phases.at(phases.restarted)
                );
                assert!(
                    log.answers()
                        .all(|a| a.ended < phases.crash_began || a.started >= phases.restarted),
                    "the quiet client {c} sent a request during the outage"
                );
            } else {
                assert!(
                    log.answers().any(|a| a.status == 503),
                    "client {c} never met the outage"
                );
            }
        }

        // Every logical order ended in a 201; a replayed one was committed by an attempt whose outcome was
        // unknown to its client (an `unavailable` attempt changed nothing, by the contract).
        for order in logs.iter().flat_map(|log| &log.orders) {
            let last = order.attempts.last().expect("an attempt");
            assert_eq!(
                last.status, 201,
                "the order {} did not end in a 201: {:?}",
                order.key, order.attempts
            );
            if last.replayed {
                assert!(
                    order
                        .attempts
                        .iter()
                        .any(|a| a.code.as_deref() == Some("outcome_unknown")),
                    "the order {} was replayed, so an earlier attempt committed it, yet no attempt answered \
                     outcome_unknown: {:?}",
                    order.key,
                    order
                        .attempts
                        .iter()
                        .map(|a| (a.label(), a.replayed, a.body.clone()))
                        .collect::<Vec<_>>()
                );
            }
        }

        // Once the database served again, nothing failed: no request sent since the first 201 that followed
        // the restart answered anything but a success.
        let first = self
            .first_placed_after_restart
            .expect("an order was placed after the restart");
        let failed: Vec<_> = self
            .answers
            .iter()
            .filter(|a| a.started >= first && !a.success())
            .map(|a| {
                (
                    a.client,
                    a.kind.clone(),
                    a.label(),
                    phases.at(a.started),
                    a.body.clone(),
                )
            })
            .collect();
        assert!(
            failed.is_empty(),
            "requests sent after the first 201 since the restart ({:.3} s) failed: {failed:?}",
            phases.at(first)
        );
        // And every client was served again.
        for (c, log) in logs.iter().enumerate() {
            assert!(
                log.answers()
                    .any(|a| a.started >= phases.restarted && a.status == 201),
                "client {c} placed no order after the restart"
            );
        }
    }
}

/// The database as the postgres superuser sees it, against what the clients were told.
async fn check_database(
    admin: &sqlx::postgres::PgConnectOptions,
    logs: &[ClientLog],
    products: &[Uuid],
) {
    let mut conn = PgConnection::connect_with(admin).await.unwrap();
    let placed: HashMap<&str, &LogicalOrder> = logs
        .iter()
        .flat_map(|log| &log.orders)
        .filter(|order| order.placed.is_some())
        .map(|order| (order.key.as_str(), order))
        .collect();
    let placed_ids: BTreeSet<Uuid> = placed.values().filter_map(|o| o.placed).collect();
    assert_eq!(placed_ids.len(), placed.len(), "two orders got the same id");
    let shipments: Vec<&LogicalShipment> = logs.iter().flat_map(|log| &log.shipments).collect();
    let returns: Vec<&LogicalReturn> = logs.iter().flat_map(|log| &log.returns).collect();

    // 1. No order placed twice, none lost: the orders are exactly the ones the clients were answered 201 for.
    let rows: Vec<(Uuid, Option<String>, String)> =
        sqlx::query_as("SELECT id, customer_ref, status FROM orders")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut by_ref: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for (id, customer_ref, _) in &rows {
        by_ref
            .entry(customer_ref.clone().unwrap_or_default())
            .or_default()
            .push(*id);
    }
    let twice: Vec<_> = by_ref.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "orders placed more than once: {twice:?}");
    assert_eq!(
        rows.len(),
        placed.len(),
        "orders in the database and orders answered 201"
    );
    let stored_ids: BTreeSet<Uuid> = rows.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(
        stored_ids.difference(&placed_ids).collect::<Vec<_>>(),
        Vec::<&Uuid>::new(),
        "orders no client was answered 201 for"
    );
    assert_eq!(
        placed_ids.difference(&stored_ids).collect::<Vec<_>>(),
        Vec::<&Uuid>::new(),
        "orders answered 201 that are not in the database"
    );
    for (id, customer_ref, status) in &rows {
        let key = customer_ref.as_deref().unwrap_or_default();
        let order = placed
            .get(key)
            .unwrap_or_else(|| panic!("order {id} has no client's key as customer_ref: {key}"));
        assert_eq!(order.placed, Some(*id), "the order of key {key}");
        // Every order is pending but those a unit of was shipped: their lines are of several units or several
        // products, or of one, which the shipment fulfilled.
        if !matches!(status.as_str(), "partially_fulfilled" | "fulfilled") {
            assert_eq!(status, "pending", "order {id}");
        }
    }

    // Each order raised its event once, and nothing else raised one: the outbox commits with the change.
    let events: Vec<(Uuid, String)> = sqlx::query_as("SELECT resource_id, type FROM events")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut raised: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut extensions: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut fulfilments: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut taken_back: BTreeMap<Uuid, usize> = BTreeMap::new();
    for (resource, kind) in &events {
        if products.contains(resource) {
            assert_eq!(kind, "product.created", "{resource}");
            continue;
        }
        if kind == "order.hold_extended" {
            *extensions.entry(*resource).or_default() += 1;
            continue;
        }
        if kind == "order.returned" {
            *taken_back.entry(*resource).or_default() += 1;
            continue;
        }
        if kind == "order.partially_fulfilled" || kind == "order.fulfilled" {
            *fulfilments.entry(*resource).or_default() += 1;
            continue;
        }
        assert_eq!(kind, "order.placed", "{resource}");
        *raised.entry(*resource).or_default() += 1;
    }
    // Each hold extended once, whatever the retries: the ones answered 200, and at most the ones left
    // unanswered when the test gave up.
    let holds: Vec<&LogicalHold> = logs.iter().flat_map(|log| &log.holds).collect();
    for hold in &holds {
        let n = extensions.remove(&hold.order).unwrap_or(0);
        if hold.extended {
            assert_eq!(
                n, 1,
                "the hold of {} ({}) extended {n} times",
                hold.order, hold.key
            );
        } else {
            assert!(
                n <= 1,
                "the hold of {} ({}) extended {n} times",
                hold.order,
                hold.key
            );
        }
    }
    assert!(
        extensions.is_empty(),
        "holds extended without a client asking: {extensions:?}"
    );
    // Each shipment made once, whatever the retries: the ones answered 201, at most the ones left unanswered.
    for ship in &shipments {
        let n = fulfilments.remove(&ship.order).unwrap_or(0);
        let most = usize::from(ship.shipped || ship.attempts.iter().any(|a| a.status >= 500));
        assert!(
            n <= 1 && (n == 1 || !ship.shipped),
            "order {} ({}) shipped {n} times",
            ship.order,
            ship.key
        );
        assert!(
            n <= most,
            "order {} shipped without an attempt that may have",
            ship.order
        );
    }
    assert!(
        fulfilments.is_empty(),
        "orders shipped without a client asking: {fulfilments:?}"
    );
    for back in &returns {
        let n = taken_back.remove(&back.order).unwrap_or(0);
        assert!(
            n <= 1 && (n == 1 || !back.returned),
            "order {} ({}) returned {n} times",
            back.order,
            back.key
        );
    }
    assert!(
        taken_back.is_empty(),
        "orders returned without a client asking: {taken_back:?}"
    );
    let expiries: Vec<(Uuid, f64)> = sqlx::query_as(
        "SELECT id, extract(epoch FROM expires_at - created_at)::float8 FROM orders",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for (id, held) in expiries {
        let extended = holds.iter().any(|h| h.order == id && h.extended);
        if extended {
            assert!(held > 3000.0, "order {id} extended yet held {held} s");
        } else if !holds.iter().any(|h| h.order == id) {
            assert!(held < 1900.0, "order {id} not extended yet held {held} s");
        }
    }
    assert_eq!(
        raised.keys().copied().collect::<BTreeSet<Uuid>>(),
        stored_ids,
        "an order.placed event for each order, and for no other"
    );
    assert!(raised.values().all(|n| *n == 1), "an order.placed twice");

    // The lines are the ones requested.
    let lines: Vec<(Uuid, Uuid, i64)> =
        sqlx::query_as("SELECT order_id, product_id, quantity FROM order_lines")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut stored_lines: HashMap<Uuid, BTreeMap<Uuid, i64>> = HashMap::new();
    for (order, product, quantity) in lines {
        stored_lines
            .entry(order)
            .or_default()
            .insert(product, quantity);
    }
    for order in placed.values() {
        let id = order.placed.unwrap();
        assert_eq!(
            stored_lines.get(&id),
            Some(&order.lines),
            "the lines of order {id} ({})",
            order.key
        );
    }

    // 2. Each key maps to one order: the one its stored response names, which the client got.
    let keys: Vec<(String, Option<i16>, Option<String>)> =
        sqlx::query_as("SELECT key, status, body FROM idempotency_keys")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let stored_holds: Vec<&LogicalHold> = holds
        .iter()
        .copied()
        .filter(|hold| keys.iter().any(|(key, _, _)| *key == hold.key))
        .collect();
    for back in &returns {
        let stored = keys.iter().find(|(key, _, _)| *key == back.key);
        assert!(
            stored.is_some() || !back.returned,
            "a return answered 201 whose key was not kept"
        );
        if let Some((_, status, body)) = stored {
            assert_eq!(*status, Some(201), "the stored status of key {}", back.key);
            let body: Value = serde_json::from_str(body.as_deref().unwrap_or_default()).unwrap();
            assert_eq!(
                body["order"]["id"].as_str(),
                Some(back.order.to_string().as_str())
            );
            assert_eq!(body["return"]["lines"][0]["restock"], back.restock);
        }
    }
    for ship in &shipments {
        let stored = keys.iter().find(|(key, _, _)| *key == ship.key);
        assert!(
            stored.is_some() || !ship.shipped,
            "a shipment answered 201 whose key was not kept"
        );
        if let Some((_, status, body)) = stored {
            assert_eq!(*status, Some(201), "the stored status of key {}", ship.key);
            let body: Value = serde_json::from_str(body.as_deref().unwrap_or_default()).unwrap();
            assert_eq!(
                body["order"]["id"].as_str(),
                Some(ship.order.to_string().as_str()),
                "key {}",
                ship.key
            );
        }
    }
    assert!(
        holds
            .iter()
            .filter(|h| h.extended)
            .all(|h| stored_holds.iter().any(|s| s.key == h.key)),
        "a hold answered 200 whose key was not kept"
    );
    for hold in &stored_holds {
        let (_, status, body) = keys.iter().find(|(key, _, _)| *key == hold.key).unwrap();
        assert_eq!(*status, Some(200), "the stored status of key {}", hold.key);
        let body: Value = serde_json::from_str(body.as_deref().unwrap_or_default()).unwrap();
        assert_eq!(
            body["id"].as_str(),
            Some(hold.order.to_string().as_str()),
            "key {}",
            hold.key
        );
    }
    // The caller's count of keys is its keys, whatever the crash cut short.
    let counted: Vec<(String, i32)> =
        sqlx::query_as("SELECT caller, keys FROM idempotency_key_counts")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        counted,
        [(String::new(), keys.len() as i32)],
        "the count of keys"
    );
    let keys: Vec<_> = keys
        .into_iter()
        .filter(|(key, _, _)| !holds.iter().any(|hold| hold.key == *key))
        .filter(|(key, _, _)| !shipments.iter().any(|ship| ship.key == *key))
        .filter(|(key, _, _)| !returns.iter().any(|back| back.key == *key))
        .collect();
    assert_eq!(keys.len(), placed.len(), "idempotency keys stored");
    let mut key_ids = BTreeSet::new();
    for (key, status, body) in &keys {
        let order = placed
            .get(key.as_str())
            .unwrap_or_else(|| panic!("the key {key} is no placed order's"));
        assert_eq!(*status, Some(201), "the stored status of key {key}");
        let body: Value = serde_json::from_str(body.as_deref().unwrap_or_default()).unwrap();
        let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(Some(id), order.placed, "the order of key {key}");
        assert!(key_ids.insert(id), "two keys name the order {id}");
    }

    // 3. Stock and ledger: on hand is the stock less what shipped (one unit per shipment that happened, as its
    // line counts), reserved is what the orders still hold (and what the clients were told they placed, less
    // what shipped), and the ledger adds up to each product's levels.
    let fulfilled: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT order_id, product_id, fulfilled FROM order_lines WHERE fulfilled > 0",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let returned: Vec<(Uuid, Uuid, i64)> =
        sqlx::query_as("SELECT order_id, product_id, returned FROM order_lines WHERE returned > 0")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut restocked: HashMap<Uuid, i64> = HashMap::new();
    for (order, product, units) in &returned {
        let back = returns
            .iter()
            .find(|r| r.order == *order && r.product == *product)
            .unwrap_or_else(|| panic!("order {order} took {units} of {product} back unasked"));
        assert_eq!(*units, 1, "order {order} ({}) took one unit back", back.key);
        if back.restock {
            *restocked.entry(*product).or_default() += units;
        }
    }
    for back in returns.iter().filter(|r| r.returned) {
        assert!(
            returned
                .iter()
                .any(|(o, p, _)| *o == back.order && *p == back.product),
            "a return answered 201 that took nothing back: {}",
            back.key
        );
    }
    let mut shipped: HashMap<Uuid, i64> = HashMap::new();
    for (order, product, units) in &fulfilled {
        let ship = shipments
            .iter()
            .find(|s| s.order == *order && s.product == *product)
            .unwrap_or_else(|| panic!("order {order} shipped {units} of {product} unasked"));
        assert_eq!(*units, 1, "order {order} ({}) shipped one unit", ship.key);
        *shipped.entry(*product).or_default() += units;
    }
    for ship in shipments.iter().filter(|s| s.shipped) {
        assert!(
            fulfilled
                .iter()
                .any(|(o, p, _)| *o == ship.order && *p == ship.product),
            "a shipment answered 201 that did not ship: {}",
            ship.key
        );
    }
    let mut requested: HashMap<Uuid, i64> = HashMap::new();
    for order in placed.values() {
        for (product, quantity) in &order.lines {
            *requested.entry(*product).or_default() += quantity;
        }
    }
    for (product, units) in &shipped {
        *requested.entry(*product).or_default() -= units;
    }
    let stock: Vec<(Uuid, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT p.id, p.on_hand, p.reserved, \
            (SELECT coalesce(sum(l.quantity - l.fulfilled), 0)::bigint FROM order_lines l \
             JOIN orders o ON o.id = l.order_id \
             WHERE l.product_id = p.id AND o.status IN ('pending', 'partially_fulfilled')), \
            (SELECT coalesce(sum(m.on_hand_delta), 0)::bigint FROM stock_movements m WHERE m.product_id = p.id), \
            (SELECT coalesce(sum(m.reserved_delta), 0)::bigint FROM stock_movements m WHERE m.product_id = p.id) \
         FROM products p",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(stock.len(), products.len());
    for (id, on_hand, reserved, pending, ledger_on_hand, ledger_reserved) in stock {
        assert_eq!(
            on_hand,
            STOCK - shipped.get(&id).copied().unwrap_or_default()
                + restocked.get(&id).copied().unwrap_or_default(),
            "on_hand of {id}"
        );
        assert_eq!(reserved, pending, "reserved of {id} and its pending lines");
        assert_eq!(
            reserved,
            requested.get(&id).copied().unwrap_or_default(),
            "reserved of {id} and what the clients placed"
        );
        assert_eq!(ledger_on_hand, on_hand, "the on_hand ledger of {id}");
        assert_eq!(ledger_reserved, reserved, "the reserved ledger of {id}");
    }
    conn.close().await.unwrap();
}

/// A small deterministic PRNG (SplitMix64): the same lines in every run.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// 1 to 3 lines over distinct products, of 1 to 3 units each.
    fn lines(&mut self, products: &[Uuid]) -> BTreeMap<Uuid, i64> {
        let count = 1 + self.below(3);
        let mut lines = BTreeMap::new();
        while lines.len() < count {
            let product = products[self.below(products.len())];
            let quantity = 1 + self.below(3) as i64;
            lines.entry(product).or_insert(quantity);
        }
        lines
    }
}

/// The expiry job with the database killed under it, half-way through its work: it fails while the server is
/// down, and its next runs finish the work once the server is back. Every order is expired once, its stock
/// released once through the ledger, and one `order.expired` raised for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_with_the_database_killed_half_way_releases_each_order_once() {
    use inventory::domain::Deadline;
    use inventory::service::Inventory;

    let _heavy = common::HEAVY.lock().await;
    let mut cluster = Cluster::start("expiry-crash", "");
    let admin = cluster.options("postgres", None);
    let password = "expiry-crash-app-password";
    app_user_with_password(&admin, password).await;
    let as_app = cluster.options("inventory_app", Some(password));
    let products = create_products(&as_app).await;
    let inventory = Inventory::new(PgStore::new(connect_lazy(as_app, &instance_pool())));
    let orders = 400;
    for i in 0..orders {
        let lines = vec![inventory::domain::order::RequestedLine {
            product_id: products[i % products.len()].into(),
            quantity: inventory::domain::Quantity::parse(1 + (i % 3) as i64).unwrap(),
        }];
        let order = inventory::domain::order::NewOrder::new(lines, None).unwrap();
        inventory
            .create_order(order, Deadline::after(REQUEST_TIMEOUT))
            .await
            .unwrap();
    }
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    sqlx::query("UPDATE orders SET expires_at = now() - interval '1 second'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let runs = {
        let inventory = inventory.clone();
        tokio::spawn(async move {
            let (mut expired, mut failed) = (0, 0);
            let give_up = Instant::now() + GIVE_UP;
            loop {
                assert!(Instant::now() < give_up, "the expiry never finished");
                match inventory
                    .expire_orders(50, inventory::domain::Deadline::after(REQUEST_TIMEOUT))
                    .await
                {
                    Ok(0) => return (expired, failed),
                    Ok(n) => expired += n,
                    Err(error) => {
                        assert!(
                            matches!(
                                error,
                                inventory::domain::Error::Unavailable(_)
                                    | inventory::domain::Error::OutcomeUnknown(_)
                            ),
                            "{error:?}"
                        );
                        failed += 1;
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.crash();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_again();
    let (expired, failed) = runs.await.unwrap();
    println!(
        "{orders} expired holds, the database killed after 0.3 s of expiry for 2 s: {expired} expiries reported, \
         {failed} runs failed while it was down"
    );
    assert!(failed > 0, "the crash came after the work was done");

    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE status <> 'cancelled'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(pending, 0);
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT order_id, product_id FROM stock_movements WHERE reason = 'order_expired'
           GROUP BY 1, 2 HAVING count(*) <> 1) t",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(twice, 0, "an order line released twice");
    let released: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT order_id) FROM stock_movements WHERE reason = 'order_expired'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(released, orders as i64);
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT resource_id FROM events WHERE type = 'order.expired'
           GROUP BY 1 HAVING count(*) = 1) t",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(events, orders as i64, "one order.expired per order");
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products p WHERE p.reserved <> 0
            OR p.on_hand <> (SELECT sum(on_hand_delta) FROM stock_movements m WHERE m.product_id = p.id)
            OR (SELECT sum(reserved_delta) FROM stock_movements m WHERE m.product_id = p.id) <> 0",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(unbalanced, 0, "stock, ledger and holds reconcile");
}
