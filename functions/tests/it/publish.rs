//! The publisher, the real `publish-events` binary, against a stand-in for EventBridge's `PutEvents` on a
//! fresh database: killed half-way (after the bus took events, before it could record that), then run again.
//! Every event reaches the consumer, which drops repeats by event id, exactly once, each resource's in order.
//! Needs DATABASE_URL, and fails without it.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inventory::domain::order::{NewOrder, RequestedLine};
use inventory::domain::product::NewProduct;
use inventory::domain::{Currency, Deadline, PriceMinor, ProductName, Quantity, Sku, StockLevel};
use inventory::postgres::PgStore;
use inventory::service::Inventory;
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the stand-in received, in order: every entry of every call it took.
#[derive(Debug, Default)]
struct Bus {
    received: Vec<Value>,
    calls: usize,
    /// From this call on, take the entries but never answer.
    stall_from: Option<usize>,
    /// The signature of every call, to look for in the publisher's logs.
    signatures: Vec<String>,
}

/// A stand-in for EventBridge: answers `PutEvents` calls (checking that they are signed for the events
/// service) and keeps the entries.
async fn stand_in(bus: Arc<Mutex<Bus>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let bus = bus.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut headers = HashMap::new();
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    assert!(line.starts_with("POST / "), "{line}");
                    loop {
                        line.clear();
                        read.read_line(&mut line).await.unwrap();
                        let Some((name, value)) = line.trim_end().split_once(": ") else {
                            break;
                        };
                        headers.insert(name.to_lowercase(), value.to_owned());
                    }
                    assert_eq!(headers["x-amz-target"], "AWSEvents.PutEvents");
                    assert_eq!(headers["content-type"], "application/x-amz-json-1.1");
                    assert!(
                        headers["authorization"].contains("/eu-west-1/events/aws4_request"),
                        "{headers:?}"
                    );
                    let length: usize = headers["content-length"].parse().unwrap();
                    let mut body = vec![0; length];
                    read.read_exact(&mut body).await.unwrap();
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    let entries = body["Entries"].as_array().unwrap().clone();
                    assert!((1..=10).contains(&entries.len()));
                    let stall = {
                        let mut bus = bus.lock().unwrap();
                        bus.calls += 1;
                        bus.received.extend(entries.iter().cloned());
                        if let Some((_, signature)) =
                            headers["authorization"].split_once("Signature=")
                        {
                            bus.signatures.push(signature.to_owned());
                        }
                        bus.stall_from.is_some_and(|from| bus.calls >= from)
                    };
                    if stall {
                        std::future::pending::<()>().await;
                    }
                    let results: Vec<Value> = entries
                        .iter()
                        .enumerate()
                        .map(|(i, _)| serde_json::json!({ "EventId": format!("bus-{i}") }))
                        .collect();
                    let answer = serde_json::json!({ "FailedEntryCount": 0, "Entries": results })
                        .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    write.write_all(response.as_bytes()).await.unwrap();
                }
            });
        }
    });
    port
}

/// The secrets the publisher is given: its database password, its AWS secret key and session token.
const SECRETS: [&str; 3] = [
    "db-passw0rd-of-the-test",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "session-t0ken-of-the-test",
];

/// The publisher, logging everything (debug included) to `log`.
fn publisher(database_url: &str, port: u16, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_publish-events"))
        .env("DATABASE_URL", database_url)
        .env("EVENT_BUS_NAME", "inventory-events")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", SECRETS[1])
        .env("AWS_SESSION_TOKEN", SECRETS[2])
        .env("RUST_LOG", "debug")
        .env(
            "AWS_ENDPOINT_URL_EVENTBRIDGE",
            format!("http://127.0.0.1:{port}"),
        )
        .env("REQUEST_TIMEOUT_MS", "4000")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

/// Writes a few hundred events: products, and orders of them that are then cancelled or fulfilled.
async fn write_events(inventory: &Inventory<PgStore>) {
    let mut products = Vec::new();
    for i in 0..20 {
        let product = NewProduct {
            sku: Sku::parse(format!("PUB-{i}")).unwrap(),
            name: ProductName::parse(format!("Product {i}")).unwrap(),
            description: None,
            price: PriceMinor::parse(100).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            on_hand: StockLevel::parse(1000).unwrap(),
            low_stock_threshold: None,
            policy: Default::default(),
        };
        products.push(
            inventory
                .create_product(product, deadline())
                .await
                .unwrap()
                .id,
        );
    }
    for i in 0..120 {
        let line = RequestedLine {
            product_id: products[i % products.len()],
            quantity: Quantity::parse(1).unwrap(),
        };
        let order = NewOrder::new(vec![line], None).unwrap();
        let order = inventory.create_order(order, deadline()).await.unwrap();
        let action = [
            inventory::domain::order::OrderAction::Cancel,
            inventory::domain::order::OrderAction::Fulfill,
        ][i % 2];
        inventory
            .transition_order(order.id, action, deadline())
            .await
            .unwrap();
    }
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < give_up, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_publisher_killed_half_way_loses_nothing_and_its_successor_sends_each_event_once_more_at_most(
    pool: PgPool,
) {
    // The kill is timed against the bus's calls, and the feed waits for every older transaction of the
    // server: alone among the heavy tests.
    let _heavy = crate::HEAVY.lock().await;
    let options = pool.connect_options();
    // A password the server (trust auth) ignores, for the logs to leave out.
    let database_url = format!(
        "postgres://{}:{}@{}:{}/{}",
        options.get_username(),
        SECRETS[0],
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap()
    );
    let inventory = Inventory::new(PgStore::new(pool.clone()));
    write_events(&inventory).await;
    let written: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT id, seq FROM events ORDER BY commit_xid, seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    let bus = Arc::new(Mutex::new(Bus {
        stall_from: Some(14),
        ..Bus::default()
    }));
    let port = stand_in(bus.clone()).await;

    // The first run: the bus takes thirteen calls and the entries of a fourteenth, whose answer never comes.
    // The publisher records its position after each step of up to 100 events (ten calls): the first step
    // is recorded, the second is not.
    let log = std::path::PathBuf::from(concat!(env!("CARGO_TARGET_TMPDIR"), "/publish-events.log"));
    let _ = std::fs::remove_file(&log);
    let mut first = publisher(&database_url, port, &log);
    wait_for("the fourteenth call", || bus.lock().unwrap().calls == 14).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let taken = bus.lock().unwrap().received.len();
    let delivered: i64 = sqlx::query_scalar("SELECT after_seq FROM event_deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        taken, 140,
        "the bus took 14 calls of 10 events before the kill"
    );
    assert_eq!(
        delivered, written[99].1,
        "the position stands after the first step, before the unanswered call"
    );

    // The next run sends the rest, starting again from the unanswered call.
    bus.lock().unwrap().stall_from = None;
    let mut second = publisher(&database_url, port, &log);
    let ids: HashSet<uuid::Uuid> = written.iter().map(|(id, _)| *id).collect();
    let all_in = || {
        let bus = bus.lock().unwrap();
        let got: HashSet<uuid::Uuid> = bus
            .received
            .iter()
            .map(|e| detail(e)["id"].as_str().unwrap().parse().unwrap())
            .collect();
        got == ids
    };
    wait_for("delivery of every event", all_in).await;
    assert!(
        second.wait().unwrap().success(),
        "the second run ends at its deadline"
    );

    // The consumer: drops repeats by id; what it keeps is every event once, each resource's in feed order.
    let received = bus.lock().unwrap().received.clone();
    let mut kept: Vec<Value> = Vec::new();
    let mut seen = HashSet::new();
    for entry in &received {
        let detail = detail(entry);
        if seen.insert(detail["id"].as_str().unwrap().to_owned()) {
            kept.push(detail);
        }
    }
    assert_eq!(kept.len(), written.len());
    let order: Vec<uuid::Uuid> = kept
        .iter()
        .map(|d| d["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let feed_order: Vec<uuid::Uuid> = written.iter().map(|(id, _)| *id).collect();
    assert_eq!(order, feed_order, "delivered in feed order");
    let repeats = received.len() - kept.len();
    println!(
        "{} events; the bus took {} entries, {repeats} of them repeats of the call the killed publisher never heard back from",
        written.len(),
        received.len()
    );
    assert_eq!(
        repeats, 40,
        "the step the killed publisher could not record is sent again"
    );
    let delivered: i64 = sqlx::query_scalar("SELECT after_seq FROM event_deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(delivered, written.last().unwrap().1);

    // Both runs' every log line, debug included, the failed calls' among them: no secret, no signature.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("published events") && logged.lines().count() >= 3,
        "the publisher's logs were not captured: {logged}"
    );
    let signatures = bus.lock().unwrap().signatures.clone();
    assert!(!signatures.is_empty());
    for secret in SECRETS
        .iter()
        .map(|s| s.to_string())
        .chain(signatures)
        .chain(["Signature=".into(), "Credential=".into()])
    {
        assert!(
            !logged.contains(&secret),
            "{secret} is in the publisher's logs"
        );
    }
    println!(
        "the publisher's {} log lines hold no secret",
        logged.lines().count()
    );
}

/// An entry's `Detail`: the feed's JSON of the event.
fn detail(entry: &Value) -> Value {
    assert_eq!(entry["Source"], "inventory");
    assert_eq!(entry["EventBusName"], "inventory-events");
    let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
    assert_eq!(entry["DetailType"], detail["type"]);
    detail
}
