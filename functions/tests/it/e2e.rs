//! End to end: the real function binaries under `cargo lambda watch` (more than one instance per
//! function), on a fresh Postgres database, driven over HTTP on the contract's paths. Needs DATABASE_URL
//! (any database of the server; a new one is created beside it) and `cargo lambda` on PATH, and fails
//! without either.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgConnectOptions;

const BUYERS: usize = 64;
const UNITS: i64 = 10;

/// `cargo lambda watch`, stopped (with its function processes) when dropped.
struct Watch {
    child: Child,
    log: std::path::PathBuf,
}

impl Watch {
    fn start(port: u16, database_url: &str, key_file: &std::path::Path) -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        // In the target dir, wherever CARGO_TARGET_DIR puts it.
        let log = std::path::PathBuf::from(concat!(env!("CARGO_TARGET_TMPDIR"), "/e2e-watch.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new("cargo");
        // Not the variables cargo set for this test (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, OUT_DIR, ...; the
        // user's CARGO_* settings stay): build scripts (ring's, through cc) watch some of them, so the watch's
        // `cargo run` would rebuild ring and every crate above it, and the next build outside the test would
        // rebuild them back.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_the_test = name == "OUT_DIR"
                || [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_BIN_",
                    "CARGO_CRATE_",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .iter()
                .any(|prefix| name.starts_with(prefix));
            if set_for_the_test {
                command.env_remove(name.as_ref());
            }
        }
        let child = command
            .args(["lambda", "watch", "--ignore-changes", "--concurrency", "4"])
            .args([
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .args(["--env-var", &format!("DATABASE_URL={database_url}")])
            .args(["--env-var", "AUTH_MODE=local"])
            .args([
                "--env-var",
                &format!("AUTH_LOCAL_KEY_FILE={}", key_file.display()),
            ])
            // As on Lambda with `LogFormat: JSON`, so the test can read the functions' structured logs.
            .args(["--env-var", "AWS_LAMBDA_LOG_FORMAT=json"])
            .current_dir(root)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cargo lambda must be installed: pip install cargo-lambda");
        Self { child, log }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SIGTERM the whole group: cargo-lambda, and the function instances it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A new, migrated database beside the one DATABASE_URL names, and the URL the functions reach it by:
/// the same, or, when `POOLER_URL` names a transaction pooler in front of that server (scripts/test-pooled),
/// through the pooler, with no statement kept from one transaction to the next. Migrations never go
/// through the pooler, as on AWS they never go through RDS Proxy.
async fn fresh_database() -> (String, String) {
    let base = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name a Postgres server for the e2e test");
    let options = PgConnectOptions::from_str(&base).unwrap();
    let name = format!("inventory_e2e_{}", std::process::id());
    let url = options.database(&name).to_url_lossy().to_string();
    if sqlx::Postgres::database_exists(&url).await.unwrap() {
        sqlx::Postgres::drop_database(&url).await.unwrap();
    }
    sqlx::Postgres::create_database(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    inventory::postgres::MIGRATOR.run(&pool).await.unwrap();
    pool.close().await;
    let served = match std::env::var("POOLER_URL") {
        Ok(pooler) => PgConnectOptions::from_str(&pooler)
            .expect("POOLER_URL must be a postgres:// URL")
            .database(&name)
            .statement_cache_capacity(0)
            .to_url_lossy()
            .to_string(),
        Err(_) => url.clone(),
    };
    (url, served)
}

struct Api {
    client: Client,
    base: String,
}

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        assert!(
            status.as_u16() < 500 || status == 503,
            "{path}: {status} {text}"
        );
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.send(Method::GET, path, None).await;
        (status, body)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self.send(Method::POST, path, Some(body)).await;
        (status, body)
    }
}

/// `cargo lambda watch --concurrency N` starts all N instances of a function on its first request, and a
/// request that arrives while a sibling instance is still starting is now and then answered 500 by the
/// emulator itself, before any function sees it (about once in 500 such requests here). So every function
/// gets a burst of harmless requests first, and the instances time to settle; only then does the test
/// hold responses to the contract.
async fn warm_up(api: &Api) {
    let mut requests = Vec::new();
    for route in inventory::http::ROUTES {
        let path = route
            .path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{file}", "index.html");
        for _ in 0..8 {
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let mut request = api.client.request(method, format!("{}{path}", api.base));
            if matches!(route.method, "POST" | "PATCH") {
                request = request.json(&json!({}));
            }
            requests.push(tokio::spawn(request.send()));
        }
    }
    for request in requests {
        let _ = request.await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_holds_its_contract_over_http() {
    // Up to a connection per function instance, 64 buyers, and a build: alone among the heavy tests.
    let _heavy = crate::HEAVY.lock().await;
    let (url, served_url) = fresh_database().await;
    let port = free_port();
    // Authenticated as the local stack is: a key of the test's own, and a token from scripts/token.
    let key_dir = std::env::temp_dir().join(format!("inventory-e2e-{}", std::process::id()));
    let key_file = key_dir.join("local-key");
    let token = |scopes: &[&str]| {
        let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/token"))
            .args(scopes)
            .env("AUTH_LOCAL_KEY_FILE", &key_file)
            .output()
            .unwrap();
        assert!(output.status.success(), "scripts/token failed");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let all_scopes = token(&["--all"]);
    let mut watch = Watch::start(port, &served_url, &key_file);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {all_scopes}").parse().unwrap(),
    );
    let api = Api {
        client: Client::builder()
            .timeout(Duration::from_secs(120))
            .default_headers(headers)
            .build()
            .unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };

    // The first request to each function builds and starts it: wait for health first.
    let started = Instant::now();
    loop {
        let ready = api.client.get(format!("{}/health", api.base)).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "cargo lambda watch did not come up"
        );
        if let Ok(Some(status)) = watch.child.try_wait() {
            panic!("cargo lambda watch exited ({status}) before serving");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    warm_up(&api).await;

    // Without a token, or without the route's scope, nothing gets through.
    let anonymous = Client::new();
    let refused = anonymous
        .get(format!("{}/orders", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let read_only = anonymous
        .post(format!("{}/orders", api.base))
        .bearer_auth(token(&["orders.read"]))
        .json(&json!({ "lines": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(read_only.status(), 403);
    let open = anonymous
        .get(format!("{}/health", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200, "health is public");

    // Products: create, read with ETag, conditional update.
    let (status, headers, product) = api
        .send(
            Method::POST,
            "/products",
            Some(json!({ "sku": "LAST-UNITS", "name": "Limited edition", "price_minor": 4999, "currency": "EUR", "on_hand": UNITS })),
        )
        .await;
    assert_eq!(status, 201, "{product}");
    let id = product["id"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/products/{id}").as_str());
    let (status, headers, _) = api
        .send(Method::GET, &format!("/products/{id}"), None)
        .await;
    assert_eq!(
        (status.as_u16(), headers["etag"].to_str().unwrap()),
        (200, "\"1\"")
    );
    let stale = api
        .client
        .patch(format!("{}/products/{id}", api.base))
        .header("if-match", "\"9\"")
        .json(&json!({ "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);

    // The race: more buyers than units, all at once.
    let race_started = Instant::now();
    let buyers: Vec<_> = (0..BUYERS)
        .map(|_| {
            let client = api.client.clone();
            let url = format!("{}/orders", api.base);
            let body = json!({ "lines": [{ "product_id": id, "quantity": 1 }] });
            tokio::spawn(async move {
                let response = client.post(url).json(&body).send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut orders = Vec::new();
    for buyer in buyers {
        let (status, body) = buyer.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        match status {
            201 => orders.push(body["id"].as_str().unwrap().to_owned()),
            409 => assert_eq!(body["code"], "insufficient_stock"),
            other => panic!("a buyer got {other}: {body}"),
        }
    }
    println!(
        "{BUYERS} buyers over HTTP for {UNITS} units: {statuses:?} in {:?}",
        race_started.elapsed()
    );
    assert_eq!(statuses.get(&201), Some(&(UNITS as usize)));
    assert_eq!(statuses.get(&409), Some(&(BUYERS - UNITS as usize)));

    let (_, after) = api.get(&format!("/products/{id}")).await;
    assert_eq!(
        (
            after["on_hand"].as_i64(),
            after["reserved"].as_i64(),
            after["available"].as_i64()
        ),
        (Some(UNITS), Some(UNITS), Some(0))
    );
    let (_, pending) = api.get("/orders?status=pending&limit=100").await;
    assert_eq!(pending["items"].as_array().unwrap().len(), UNITS as usize);

    // Cancel and fulfil.
    let (status, cancelled) = api
        .post(&format!("/orders/{}/cancel", orders[0]), json!({}))
        .await;
    assert_eq!(
        (status.as_u16(), cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, fulfilled) = api
        .post(&format!("/orders/{}/fulfill", orders[1]), json!({}))
        .await;
    assert_eq!(
        (status.as_u16(), fulfilled["status"].as_str()),
        (200, Some("fulfilled"))
    );
    let (status, refused) = api
        .post(&format!("/orders/{}/cancel", orders[1]), json!({}))
        .await;
    assert_eq!(
        (status.as_u16(), refused["code"].as_str()),
        (409, Some("conflict"))
    );

    // Extend a pending order's hold; a cancelled order's is refused, a bad one says why.
    let (status, held) = api
        .post(
            &format!("/orders/{}/hold", orders[2]),
            json!({ "hold_seconds": 7200 }),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{held}");
    let placed_at = time::OffsetDateTime::parse(
        held["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let held_until = time::OffsetDateTime::parse(
        held["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((held_until - placed_at).whole_minutes() >= 119, "{held}");
    for (order, body, expected) in [
        (&orders[0], json!({ "hold_seconds": 7200 }), 409),
        (&orders[2], json!({ "hold_seconds": 30 }), 422),
    ] {
        let (status, problem) = api.post(&format!("/orders/{order}/hold"), body).await;
        assert_eq!(status.as_u16(), expected, "{problem}");
    }

    // Ship an order by a fulfilment: more than it has left is refused with what is left; then it ships.
    let fulfilments = format!("/orders/{}/fulfilments", orders[3]);
    let line = |quantity: i64| json!({ "lines": [{ "product_id": id, "quantity": quantity }] });
    let (status, refused) = api.post(&fulfilments, line(2)).await;
    assert_eq!(
        (status.as_u16(), refused["code"].as_str()),
        (409, Some("beyond_remaining")),
        "{refused}"
    );
    assert_eq!(refused["remaining"][0]["remaining"], 1, "{refused}");
    let (status, shipped) = api.post(&fulfilments, line(1)).await;
    assert_eq!(status.as_u16(), 201, "{shipped}");
    assert_eq!(shipped["order"]["status"], "fulfilled", "{shipped}");
    assert_eq!(
        shipped["fulfilment"]["lines"][0]["quantity"], 1,
        "{shipped}"
    );
    // It comes back, onto the shelf; a second return of it is refused.
    let returns = format!("/orders/{}/returns", orders[3]);
    let back = json!({ "lines": [{ "product_id": id, "quantity": 1, "restock": true }], "reason": "unwanted" });
    let (status, taken) = api.post(&returns, back.clone()).await;
    assert_eq!(status.as_u16(), 201, "{taken}");
    assert_eq!(taken["order"]["lines"][0]["returned"], 1, "{taken}");
    let (status, refused) = api.post(&returns, back).await;
    assert_eq!(
        (status.as_u16(), refused["code"].as_str()),
        (409, Some("beyond_returnable")),
        "{refused}"
    );
    // Both read back, each as it was answered.
    let (status, listed) = api.get(&fulfilments).await;
    assert_eq!(status.as_u16(), 200, "{listed}");
    assert_eq!(listed["items"], json!([shipped["fulfilment"]]), "{listed}");
    let (status, listed) = api.get(&returns).await;
    assert_eq!(status.as_u16(), 200, "{listed}");
    assert_eq!(listed["items"], json!([taken["return"]]), "{listed}");

    // Stock adjustments and the ledger.
    let adjust = format!("/products/{id}/stock-adjustments");
    let (status, adjusted) = api
        .post(&adjust, json!({ "delta": 5, "reason": "received" }))
        .await;
    assert_eq!(status, 201, "{adjusted}");
    let (status, refused) = api
        .post(&adjust, json!({ "delta": -100, "reason": "damaged" }))
        .await;
    assert_eq!(
        (status.as_u16(), refused["code"].as_str()),
        (409, Some("conflict"))
    );
    // Eight retries of one adjustment, racing through different function instances with one key: one
    // effect, and every answer is the first response (replayed) or a request still in progress.
    let (_, before) = api.get(&format!("/products/{id}")).await;
    let retries: Vec<_> = (0..8)
        .map(|_| {
            let request = api
                .client
                .post(format!("{}{adjust}", api.base))
                .header("idempotency-key", "e2e-restock-7f3a")
                .json(&json!({ "delta": 1, "reason": "received" }));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let replayed = response.headers().contains_key("idempotent-replayed");
                (
                    response.status().as_u16(),
                    replayed,
                    response.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut made = Vec::new();
    let mut fresh = 0;
    for retry in retries {
        match retry.await.unwrap() {
            (201, replayed, body) => {
                fresh += usize::from(!replayed);
                made.push(body["movement"]["id"].clone());
            }
            (409, _, body) => assert_eq!(body["code"], "request_in_progress"),
            other => panic!("a retry got {other:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one retry made the adjustment");
    assert!(made.iter().all(|m| *m == made[0]), "one movement: {made:?}");
    let (_, after) = api.get(&format!("/products/{id}")).await;
    assert_eq!(
        after["on_hand"].as_i64(),
        before["on_hand"].as_i64().map(|n| n + 1)
    );

    let (_, product) = api.get(&format!("/products/{id}")).await;
    let (_, ledger) = api
        .get(&format!("/products/{id}/stock-movements?limit=100"))
        .await;
    let sum = |field: &str| {
        ledger["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m[field].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(
        (sum("on_hand_delta"), sum("reserved_delta")),
        (
            product["on_hand"].as_i64().unwrap(),
            product["reserved"].as_i64().unwrap()
        )
    );
    assert_eq!(
        (product["on_hand"].as_i64(), product["reserved"].as_i64()),
        (Some(UNITS - 2 + 1 + 5 + 1), Some(UNITS - 3)),
        "two orders shipped, one of them returned, one cancelled, a restock of 5 and one of 1"
    );

    // Errors, as the contract's table says.
    let (status, body) = api.get("/products/not-a-uuid").await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = api.get("/products?limit=1000").await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = api.get(&format!("/orders/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = api
        .post(
            "/orders",
            json!({ "lines": [{ "product_id": id, "quantity": 0 }] }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["errors"][0]["pointer"].as_str()),
        (422, Some("/lines/0/quantity"))
    );
    let malformed = api
        .client
        .post(format!("{}/orders", api.base))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    let (status, body) = api
        .post(
            "/orders",
            json!({ "customer_ref": "x".repeat(70 * 1024), "lines": [] }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (status, _, _) = api
        .send(Method::DELETE, &format!("/products/{id}"), None)
        .await;
    assert_eq!(status, 409, "stock is still reserved");
    let (status, body) = api.get("/health").await;
    assert_eq!((status.as_u16(), body), (200, json!({ "status": "ok" })));
    // HEAD wherever GET is, through the emulator's router too.
    for path in ["/health", "/products", "/openapi.json"] {
        let head = api
            .client
            .head(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
    }

    // The documentation, from the docs function on the same server.
    let (status, spec) = api.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, content_type) in [
        ("/swagger/", "text/html"),
        ("/swagger/index.html", "text/html"),
        ("/swagger/swagger-ui-bundle.js", "javascript"),
        ("/swagger/swagger-ui.css", "text/css"),
        ("/swagger/swagger-initializer.js", "javascript"),
    ] {
        let response = fetch_through_watch(&api, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let served = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(served.contains(content_type), "{path}: {served}");
    }

    // Stopping sends SIGTERM, as Lambda does before it tears an instance down: every function instance
    // closes its pool and flushes its logs.
    let log_path = watch.log.clone();
    drop(watch);
    let key = std::fs::read_to_string(&key_file).unwrap();
    let _ = std::fs::remove_dir_all(&key_dir);
    // Forced: a pooler in between may still hold idle server connections to it.
    sqlx::Postgres::force_drop_database(&url).await.unwrap();
    let log = std::fs::read_to_string(log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    // No secret in any line, the functions' or the emulator's: not the bearer token, nor its signature, nor
    // the key that signs tokens.
    let signature = all_scopes.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("token", all_scopes.as_str()),
        ("signature", signature),
        ("key", key.trim()),
    ] {
        assert!(
            secret.len() >= 20 && !log.contains(secret),
            "the {what} is in the log"
        );
    }
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert!(
        requests.len() >= BUYERS,
        "one JSON log line per request: {} found",
        requests.len()
    );
    for line in &requests {
        assert!(
            line["span"]["requestId"].is_string(),
            "no request id: {line}"
        );
        assert!(
            line["fields"]["route"].is_string() && line["fields"]["status"].is_u64(),
            "{line}"
        );
        assert!(line["fields"]["duration_ms"].is_f64(), "{line}");
    }
    let shutdowns = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "shut down: database connections closed")
        .count();
    assert!(
        shutdowns >= 2,
        "every function instance shuts down gracefully: {shutdowns}"
    );
}

/// GET `path`, retried when `cargo lambda watch` itself loses the function's answer. Its runtime API emulator
/// (cargo-lambda 1.9.2) acknowledges a function's response before it has read the response's body, and now and
/// then the body never reaches the waiting client: the request hangs, or the emulator answers its own 500
/// (`"title":"Internal Server Error"`, not this API's error format, which always has a `code`). Measured here
/// on the Swagger UI's 1.5 MB script: 1 hang in 300 sequential requests, 5 emulator 500s in 400 with 4 at once;
/// the function logged a 200 for each. Not a path of the API on Lambda, so it is retried rather than failed.
async fn fetch_through_watch(api: &Api, path: &str) -> reqwest::Response {
    let mut lost = 0;
    loop {
        let attempt = api
            .client
            .get(format!("{}{path}", api.base))
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        match attempt {
            Ok(response) if response.status() != 500 => return response,
            Ok(response) => {
                let body = response.text().await.unwrap_or_default();
                assert!(
                    !body.contains("\"code\""),
                    "{path}: the API answered 500: {body}"
                );
            }
            Err(error) => assert!(error.is_timeout(), "{path}: {error}"),
        }
        lost += 1;
        eprintln!("{path}: cargo lambda watch lost the answer ({lost} so far); again");
        assert!(
            lost < 3,
            "{path}: cargo lambda watch lost the answer {lost} times"
        );
    }
}
