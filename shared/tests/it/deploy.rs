//! The migrate function's custom resource protocol, against a stand-in for CloudFormation's response URL
//! and for Secrets Manager (local HTTP servers), and real migrations on a fresh Postgres database (needs
//! DATABASE_URL and fails without it).

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest as Request;
use inventory::deploy::{self, DeployError, PHYSICAL_ID, Target};
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common;

/// One request a stand-in server received.
#[derive(Debug, Clone)]
struct Received {
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// An HTTP/1.1 server on a free port that records each request and answers `status` with `body`.
async fn stand_in(status: u16, answer: &'static str) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buffer = [0u8; 4096];
                let (head, body) = loop {
                    let n = socket.read(&mut buffer).await.unwrap();
                    data.extend_from_slice(&buffer[..n]);
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).into_owned();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        while data.len() < end + 4 + length {
                            let n = socket.read(&mut buffer).await.unwrap();
                            data.extend_from_slice(&buffer[..n]);
                        }
                        break (head, data[end + 4..end + 4 + length].to_vec());
                    }
                };
                log.lock().unwrap().push(Received { head, body });
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/x-amz-json-1.1\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            });
        }
    });
    (address, received)
}

/// The ARN of a version of the migrate function, as `!Ref MigrateFunction.Version` gives it.
fn version(number: u32) -> String {
    format!(
        "arn:aws:lambda:eu-west-1:123456789012:function:inventory-MigrateFunction-AbC123:{number}"
    )
}

fn event(kind: &str, response_url: &str) -> Request {
    let mut event = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:migrate",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/inventory/1",
        "RequestId": format!("request-{kind}"),
        "ResourceType": "Custom::Migrations",
        "LogicalResourceId": "Migrations",
        "ResourceProperties": { "MigrateFunctionVersion": version(2) }
    });
    if kind != "Create" {
        event["PhysicalResourceId"] = json!(PHYSICAL_ID);
    }
    if kind == "Update" {
        event["OldResourceProperties"] = json!({ "MigrateFunctionVersion": version(1) });
    }
    serde_json::from_value(event).unwrap()
}

/// A new, empty database beside the one DATABASE_URL names.
async fn empty_database(name: &str) -> PgConnectOptions {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL must name a Postgres server");
    let options = PgConnectOptions::from_str(&base)
        .unwrap()
        .database(&format!("{name}_{}", std::process::id()));
    let url = options.to_url_lossy().to_string();
    let _ = sqlx::Postgres::force_drop_database(&url).await;
    sqlx::Postgres::create_database(&url).await.unwrap();
    options
}

fn answer_of(received: &Received) -> Value {
    serde_json::from_slice(&received.body).unwrap()
}

#[tokio::test]
async fn create_and_update_apply_the_migrations_and_answer_success() {
    let options = empty_database("inventory_deploy_create").await;
    let (cloudformation, received) = stand_in(200, "").await;
    let client = reqwest::Client::new();
    let url = format!("{cloudformation}/response?X-Amz-Signature=abc");
    let budget = Duration::from_secs(60);

    let migrations = inventory::postgres::MIGRATOR.migrations.len();
    for kind in ["Create", "Update"] {
        let request = event(kind, &url);
        let answer = deploy::handle(&client, &request, budget, async || {
            deploy::migrate(options.clone(), None).await
        })
        .await
        .unwrap();
        assert_eq!(answer.data["Migrations"], migrations.to_string(), "{kind}");
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    for (request, kind) in received.iter().zip(["Create", "Update"]) {
        assert!(
            request
                .head
                .starts_with("PUT /response?X-Amz-Signature=abc ")
        );
        // The pre-signed URL was signed without a content type.
        assert_eq!(request.header("content-type"), None);
        let answer = answer_of(request);
        assert_eq!(answer["Status"], "SUCCESS");
        assert_eq!(answer["PhysicalResourceId"], PHYSICAL_ID);
        assert_eq!(answer["RequestId"], format!("request-{kind}"));
        assert_eq!(answer["LogicalResourceId"], "Migrations");
        assert_eq!(
            answer["StackId"],
            "arn:aws:cloudformation:eu-west-1:123456789012:stack/inventory/1"
        );
        assert_eq!(answer["Data"]["Migrations"], migrations.to_string());
    }
    let pool = sqlx::PgPool::connect_with(options.clone()).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('products', 'orders', 'stock_movements')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 3);

    // A rollback runs the previous function, which knows fewer migrations than the database has: the
    // schema stays, and CloudFormation hears success.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer release', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let rollback = event("Update", &url);
    let answer = deploy::handle(&client, &rollback, budget, async || {
        deploy::migrate(options.clone(), None).await
    })
    .await
    .unwrap();
    assert_eq!(answer.data["Migrations"], (migrations + 1).to_string());
    pool.close().await;
    let url = options.to_url_lossy().to_string();
    sqlx::Postgres::force_drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn delete_keeps_the_database_and_answers_success() {
    let (cloudformation, received) = stand_in(200, "").await;
    let request = event("Delete", &format!("{cloudformation}/response"));
    deploy::handle(
        &reqwest::Client::new(),
        &request,
        Duration::from_secs(5),
        async || -> Result<usize, DeployError> { panic!("nothing runs on delete") },
    )
    .await
    .unwrap();
    let answer = answer_of(&received.lock().unwrap()[0]);
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], PHYSICAL_ID);
}

#[tokio::test]
async fn failures_answer_failed_with_a_reason_and_no_secret() {
    let (cloudformation, received) = stand_in(200, "").await;
    let client = reqwest::Client::new();
    let url = format!("{cloudformation}/response");

    // Nothing listens on port 1.
    let unreachable = PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(1)
        .username("admin")
        .password("hunter2");
    deploy::handle(
        &client,
        &event("Create", &url),
        Duration::from_secs(30),
        async || deploy::migrate(unreachable.clone(), None).await,
    )
    .await
    .unwrap();
    // Out of time: CloudFormation still hears about it before the function is cut off.
    deploy::handle(
        &client,
        &event("Update", &url),
        Duration::from_millis(50),
        async || {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(0)
        },
    )
    .await
    .unwrap();

    let received = received.lock().unwrap().clone();
    let reasons: Vec<(String, String)> = received
        .iter()
        .map(|r| {
            let answer = answer_of(r);
            (
                answer["Status"].as_str().unwrap().to_owned(),
                answer["Reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "FAILED".to_owned(),
                "could not apply the migrations: the database is unreachable".to_owned()
            ),
            (
                "FAILED".to_owned(),
                "the migrations did not finish before the deadline".to_owned()
            ),
        ]
    );
    assert!(
        !received
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("hunter2"))
    );
}

fn target(endpoint: &str) -> Target {
    Target {
        host: "cluster.example.internal".into(),
        port: 5432,
        database: "inventory".into(),
        secret_arn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf".into(),
        app_user: "inventory_app".into(),
        region: "eu-west-1".into(),
        secrets_endpoint: endpoint.into(),
    }
}

#[tokio::test]
async fn the_master_credentials_come_from_secrets_manager() {
    let (endpoint, received) = stand_in(
        200,
        r#"{"ARN":"arn","Name":"db","SecretString":"{\"username\":\"inventory_admin\",\"password\":\"s3cret\"}"}"#,
    )
    .await;
    let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
    let target = target(&endpoint);
    let secret = deploy::read_secret(
        &reqwest::Client::new(),
        &target,
        &target.secret_arn,
        &credentials,
    )
    .await
    .unwrap();
    assert_eq!(
        (secret.username.as_str(), secret.password.as_str()),
        ("inventory_admin", "s3cret")
    );
    let request = received.lock().unwrap()[0].clone();
    assert!(request.head.starts_with("POST / "));
    assert_eq!(
        request.header("x-amz-target").as_deref(),
        Some("secretsmanager.GetSecretValue")
    );
    assert_eq!(
        request.header("x-amz-security-token").as_deref(),
        Some("token")
    );
    assert!(
        request
            .header("authorization")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["SecretId"], target.secret_arn);

    // The options then point at the cluster with TLS verified against the RDS roots.
    let options = deploy::cluster_options(&target, &secret);
    assert_eq!(options.get_host(), "cluster.example.internal");
    assert_eq!(options.get_username(), "inventory_admin");
    assert!(matches!(
        options.get_ssl_mode(),
        sqlx::postgres::PgSslMode::VerifyFull
    ));
}

#[tokio::test]
async fn a_refused_secret_names_the_error_type() {
    let (endpoint, _) = stand_in(
        400,
        r#"{"__type":"AccessDeniedException","Message":"not authorized"}"#,
    )
    .await;
    let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let target = target(&endpoint);
    let error = deploy::read_secret(
        &reqwest::Client::new(),
        &target,
        &target.secret_arn,
        &credentials,
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "could not read the database secret: status 400 Bad Request (AccessDeniedException)"
    );
}

/// A fresh database migrated by the migrate function with the API's user `app`, and a pool connected as
/// that user. (The local server trusts every user, so no password is needed here: what is checked is what
/// the user may do.)
async fn database_as_app(name: &str, app: &str) -> (PgConnectOptions, sqlx::PgPool) {
    let options = empty_database(name).await;
    // Twice: every deploy after the first finds the user and sets it up again.
    for _ in 0..2 {
        deploy::migrate(options.clone(), Some(app)).await.unwrap();
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone().username(app))
        .await
        .unwrap();
    (options, pool)
}

/// The API's user, as the migrate function sets it up: it can do everything the API does, and nothing
/// that changes the schema, the record of migrations or the ledger's history.
#[tokio::test]
async fn the_api_user_can_serve_the_api_and_nothing_more() {
    use inventory::postgres::PgStore;
    use inventory::service::Inventory;

    let user = format!("inventory_app_{}", std::process::id());
    let app = user.as_str();
    let mut databases = Vec::new();

    // Every kind of statement the API runs, as the API's user (each scenario on its own database).
    macro_rules! as_app {
        ($($scenario:ident),*) => {$(
            let (options, pool) = database_as_app(stringify!($scenario), app).await;
            common::behaviour::$scenario(Inventory::new(PgStore::new(pool.clone()))).await;
            pool.close().await;
            databases.push(options);
        )*};
    }
    as_app!(
        an_order_reserves_and_cancelling_releases,
        fulfilling_ships_the_stock,
        an_order_lists_its_fulfilments_and_returns,
        stock_adjustments_never_go_below_what_is_reserved,
        deleting_waits_for_reservations_and_stock_and_keeps_past_orders,
        updates_honour_if_match_and_keep_order_snapshots,
        a_repeated_key_replays_the_first_response_and_writes_once,
        a_failed_write_leaves_its_key_free
    );

    let (options, as_app) = database_as_app("inventory_deploy_role", app).await;
    for forbidden in [
        "DROP TABLE orders",
        "CREATE TABLE scratch (id int)",
        "ALTER TABLE products ADD COLUMN x int",
        "DELETE FROM _sqlx_migrations",
        "SELECT * FROM _sqlx_migrations",
        "DELETE FROM stock_movements",
        "UPDATE stock_movements SET note = 'x'",
        "DELETE FROM orders",
        "TRUNCATE order_lines",
    ] {
        let refused = sqlx::query(forbidden).execute(&as_app).await.unwrap_err();
        let code = refused
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap_or_default();
        assert_eq!(code, "42501", "{forbidden}: {refused}");
    }
    as_app.close().await;
    databases.push(options.clone());

    let admin = sqlx::PgPool::connect_with(options.clone()).await.unwrap();
    let tables: std::collections::BTreeSet<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&admin)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let granted: std::collections::BTreeSet<String> = inventory::postgres::schema::APP_GRANTS
        .iter()
        .map(|(t, _)| (*t).to_owned())
        .collect();
    assert_eq!(
        tables, granted,
        "every table of the schema has its line in APP_GRANTS"
    );
    admin.close().await;
    for options in databases {
        let url = options.to_url_lossy().to_string();
        sqlx::Postgres::force_drop_database(&url).await.unwrap();
    }
    let base = std::env::var("DATABASE_URL").unwrap();
    let server = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE \"{user}\"")))
        .execute(&server)
        .await
        .unwrap();
}

/// An update rollback, in the shape CloudFormation sends it: the previous template's properties (an older
/// function version) as the new ones. It is answered SUCCESS without connecting anywhere, so a rollback
/// completes even while the database is unreachable.
#[tokio::test]
async fn a_rollback_answers_success_without_connecting() {
    let (cloudformation, received) = stand_in(200, "").await;
    let url = format!("{cloudformation}/response?X-Amz-Signature=abc");
    let rollback: Request = serde_json::from_value(json!({
        "RequestType": "Update",
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:inventory-MigrateFunction-AbC123",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/inventory/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab",
        "RequestId": "rollback-1",
        "ResourceType": "Custom::Migrations",
        "LogicalResourceId": "Migrations",
        "PhysicalResourceId": PHYSICAL_ID,
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:inventory-MigrateFunction-AbC123",
            "ServiceTimeout": "360",
            "MigrateFunctionVersion": version(9),
            "Cluster": "inventory.cluster-abc.eu-west-1.rds.amazonaws.com"
        },
        "OldResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:inventory-MigrateFunction-AbC123",
            "ServiceTimeout": "360",
            "MigrateFunctionVersion": version(10),
            "Cluster": "inventory.cluster-abc.eu-west-1.rds.amazonaws.com"
        }
    }))
    .unwrap();
    let answer = deploy::handle(
        &reqwest::Client::new(),
        &rollback,
        Duration::from_secs(5),
        async || -> Result<usize, DeployError> { panic!("a rollback connects to nothing") },
    )
    .await
    .unwrap();
    assert!(answer.data.is_empty());
    let answer = answer_of(&received.lock().unwrap()[0]);
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["RequestId"], "rollback-1");
    assert_eq!(answer["PhysicalResourceId"], PHYSICAL_ID);

    // A forward update (a newer version) does run the work; so does one whose versions cannot be read.
    let Request::Update(mut update) = rollback else {
        unreachable!()
    };
    assert!(deploy::is_rollback(&update));
    std::mem::swap(
        &mut update.resource_properties,
        &mut update.old_resource_properties,
    );
    assert!(!deploy::is_rollback(&update));
    update.old_resource_properties = json!({});
    assert!(!deploy::is_rollback(&update));
    let ran = deploy::handle(
        &reqwest::Client::new(),
        &Request::Update(update),
        Duration::from_secs(5),
        async || Ok(7),
    )
    .await
    .unwrap();
    assert_eq!(ran.data["Migrations"], "7");
}

/// An answer CloudFormation does not take fails the invocation (Lambda then reports it). The pre-signed response
/// URL carries a signature and a session token: the failure is logged without it. (The only test that reaches
/// that log line, so that no other thread's test decides first that nobody listens to it.)
#[test]
fn an_undeliverable_answer_fails_the_invocation_and_is_logged_without_its_url() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        // Another test's thread, with no subscriber, may have hit the same log line first and left it marked
        // as wanted by nobody.
        tracing::callsite::rebuild_interest_cache();
        runtime.block_on(async {
            // CloudFormation refuses the answer (403), or nothing listens on port 1: either way the invocation
            // fails, and reqwest's error names the URL.
            let (refusing, _) = stand_in(403, "").await;
            for url in [
                format!("{refusing}/response?X-Amz-Signature=5ec12e7&X-Amz-Security-Token=t0ken"),
                "http://127.0.0.1:1/response?X-Amz-Signature=5ec12e7&X-Amz-Security-Token=t0ken"
                    .into(),
            ] {
                let delivered = deploy::handle(
                    &reqwest::Client::new(),
                    &event("Delete", &url),
                    Duration::from_secs(5),
                    async || Ok(0),
                )
                .await;
                assert!(delivered.is_err(), "{url}");
            }
        })
    });
    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        logged.matches("could not deliver the answer").count(),
        2,
        "{logged}"
    );
    for secret in [
        "5ec12e7",
        "t0ken",
        "X-Amz-Signature",
        "127.0.0.1:1/response",
    ] {
        assert!(!logged.contains(secret), "{secret} in {logged}");
    }
}

/// On RDS and Aurora the API's user logs in with IAM tokens only: a member of `rds_iam`, with no password
/// (one left by a release that stored it in a secret is removed). The role is made here as RDS has it.
#[tokio::test]
async fn the_api_user_logs_in_with_iam_and_has_no_password() {
    let options = empty_database("inventory_deploy_iam").await;
    let admin = sqlx::PgPool::connect_with(options.clone()).await.unwrap();
    sqlx::raw_sql(
        "DO $$ BEGIN CREATE ROLE rds_iam; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    .execute(&admin)
    .await
    .unwrap();
    let user = format!("inventory_iam_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{user}\" LOGIN PASSWORD 'from-an-older-release'"
    )))
    .execute(&admin)
    .await
    .unwrap();
    deploy::migrate(options.clone(), Some(&user)).await.unwrap();
    let (member, password): (bool, Option<String>) = sqlx::query_as(
        "SELECT pg_has_role(rolname, 'rds_iam', 'MEMBER'), rolpassword FROM pg_authid WHERE rolname = $1",
    )
    .bind(&user)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(member, "{user} is a member of rds_iam");
    assert_eq!(password, None);
    admin.close().await;
    let url = options.to_url_lossy().to_string();
    sqlx::Postgres::force_drop_database(&url).await.unwrap();
    let server = sqlx::PgPool::connect(&std::env::var("DATABASE_URL").unwrap())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE \"{user}\"")))
        .execute(&server)
        .await
        .unwrap();
}
