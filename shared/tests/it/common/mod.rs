//! Helpers shared by the integration tests.

pub mod behaviour;
pub mod cluster;
pub mod logs;
pub mod proxy;
pub mod race;

use inventory::domain::order::{NewFulfilment, NewOrder, RequestedLine};
use inventory::domain::product::NewProduct;
use inventory::domain::{
    Currency, Deadline, PriceMinor, ProductId, ProductName, Quantity, Sku, StockLevel,
};
use serde_json::{Value, json};
use std::time::Duration;

/// One heavy or timing-sensitive test at a time, in the whole binary: every test that opens many connections
/// (the races: up to 64 clients plus their setup, of the server's 100), runs a Postgres server of its own
/// (the crash tests), or holds answers to wall-clock bounds (the failure tests, lock waits ending at a
/// deadline) holds this for its whole body, so that two of them never add up past the connection limit or
/// slow each other past their bounds. A long transaction of one would also hold back the event feed another
/// follows (the feed waits for every older transaction of the server). Light tests take nothing and run
/// beside whichever one holds it.
///
/// A tokio mutex: it is held across `.await`, by tests of different runtimes, and a test that fails while
/// holding it releases it (no poisoning).
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A deadline comfortably far away.
pub fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

/// A valid new product.
pub fn new_product(sku: &str, price_minor: i64, on_hand: i64) -> NewProduct {
    new_product_in(sku, price_minor, on_hand, "EUR")
}

pub fn new_product_in(sku: &str, price_minor: i64, on_hand: i64, currency: &str) -> NewProduct {
    NewProduct {
        sku: Sku::parse(sku.into()).unwrap(),
        name: ProductName::parse(format!("Product {sku}")).unwrap(),
        description: None,
        price: PriceMinor::parse(price_minor).unwrap(),
        currency: Currency::parse(currency).unwrap(),
        on_hand: StockLevel::parse(on_hand).unwrap(),
        low_stock_threshold: None,
        policy: Default::default(),
    }
}

/// Valid `(product, quantity)` lines of a request.
fn requested(lines: &[(ProductId, i64)]) -> Vec<RequestedLine> {
    lines
        .iter()
        .map(|(product_id, quantity)| RequestedLine {
            product_id: *product_id,
            quantity: Quantity::parse(*quantity).unwrap(),
        })
        .collect()
}

/// A valid order of `(product, quantity)` lines.
pub fn new_order(lines: &[(ProductId, i64)]) -> NewOrder {
    NewOrder::new(requested(lines), None).unwrap()
}

/// A valid fulfilment of `(product, quantity)` lines.
pub fn fulfilment(lines: &[(ProductId, i64)]) -> NewFulfilment {
    NewFulfilment::new(requested(lines)).unwrap()
}

/// Builds an API Gateway event from the real event fixtures, as API Gateway would send it for `method` and
/// `path` on the route `template`.
#[derive(Debug, Clone)]
pub struct Event {
    value: Value,
    v2: bool,
}

impl Event {
    /// An HTTP API (payload format 2.0) event.
    pub fn v2(method: &str, template: &str, path: &str) -> Self {
        let mut value: Value =
            serde_json::from_str(include_str!("../fixtures/apigw-v2-http-api.json")).unwrap();
        value["routeKey"] = json!(format!("{method} {template}"));
        value["requestContext"]["routeKey"] = value["routeKey"].clone();
        value["rawPath"] = json!(path);
        value["requestContext"]["http"]["method"] = json!(method);
        value["requestContext"]["http"]["path"] = json!(path);
        value["pathParameters"] = path_parameters(template, path);
        Self { value, v2: true }
    }

    /// A REST API (payload format 1.0) event, of stage `prod`.
    pub fn v1(method: &str, template: &str, path: &str) -> Self {
        let mut value: Value =
            serde_json::from_str(include_str!("../fixtures/apigw-v1-rest-api.json")).unwrap();
        value["resource"] = json!(template);
        value["path"] = json!(path);
        value["httpMethod"] = json!(method);
        value["requestContext"]["httpMethod"] = json!(method);
        value["requestContext"]["resourcePath"] = json!(template);
        value["requestContext"]["path"] = json!(format!("/prod{path}"));
        value["pathParameters"] = path_parameters(template, path);
        Self { value, v2: false }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.value["headers"][name] = json!(value);
        if !self.v2 {
            self.value["multiValueHeaders"][name] = json!([value]);
        }
        self
    }

    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        let map: serde_json::Map<String, Value> =
            pairs.iter().map(|(k, v)| ((*k).into(), json!(v))).collect();
        if self.v2 {
            self.value["rawQueryString"] = json!(
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            );
            self.value["queryStringParameters"] = Value::Object(map);
        } else {
            let multi: serde_json::Map<String, Value> = pairs
                .iter()
                .map(|(k, v)| ((*k).into(), json!([v])))
                .collect();
            self.value["queryStringParameters"] = Value::Object(map);
            self.value["multiValueQueryStringParameters"] = Value::Object(multi);
        }
        self
    }

    /// A query string exactly as the client sent it, with the parameters API Gateway decoded from it.
    pub fn raw_query(mut self, raw: &str, decoded: &[(&str, &str)]) -> Self {
        self = self.query(&[]);
        let map: serde_json::Map<String, Value> = decoded
            .iter()
            .map(|(k, v)| ((*k).into(), json!(v)))
            .collect();
        self.value["rawQueryString"] = json!(raw);
        self.value["queryStringParameters"] = Value::Object(map);
        self
    }

    /// The claims API Gateway's JWT authorizer verified, as an HTTP API passes them to the function.
    pub fn authorizer_claims(mut self, claims: &Value) -> Self {
        self.value["requestContext"]["authorizer"] =
            json!({ "jwt": { "claims": claims, "scopes": null } });
        self
    }

    /// A JSON body with its content type.
    pub fn json(self, body: &Value) -> Self {
        self.raw_body(&body.to_string())
            .header("content-type", "application/json")
    }

    /// As an event of a catch-all route would arrive: no path parameters.
    pub fn without_path_parameters(mut self) -> Self {
        self.value["pathParameters"] = Value::Null;
        self
    }

    /// A body as API Gateway sends bytes that are not text: base64-encoded.
    pub fn base64_body(mut self, bytes: &[u8]) -> Self {
        use base64::Engine as _;
        self.value["body"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        self.value["isBase64Encoded"] = json!(true);
        self
    }

    pub fn raw_body(mut self, body: &str) -> Self {
        self.value["body"] = json!(body);
        self
    }

    pub fn request(&self) -> lambda_http::Request {
        lambda_http::request::from_str(&self.value.to_string()).expect("a valid API Gateway event")
    }
}

fn path_parameters(template: &str, path: &str) -> Value {
    let names = template.split('/');
    let values = path.split('/');
    let params: serde_json::Map<String, Value> = names
        .zip(values)
        .filter_map(|(name, value)| {
            let name = name.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_owned(), json!(value)))
        })
        .collect();
    if params.is_empty() {
        Value::Null
    } else {
        Value::Object(params)
    }
}

/// The options the code under test connects to a test database with: the test's own, or, when `POOLER_URL`
/// names a transaction pooler in front of the same server (`scripts/test-pooled`), the same database through
/// it, with no statement kept from one transaction to the next (pgbouncer 1.18 cannot carry them; RDS Proxy
/// can). Whatever else ties state to a session breaks there, as it would break or pin behind RDS Proxy.
pub fn served_options(
    options: sqlx::postgres::PgConnectOptions,
) -> sqlx::postgres::PgConnectOptions {
    let Ok(url) = std::env::var("POOLER_URL") else {
        return options;
    };
    let database = options.get_database().expect("a test database").to_owned();
    let pooled: sqlx::postgres::PgConnectOptions =
        url.parse().expect("POOLER_URL must be a postgres:// URL");
    pooled.database(&database).statement_cache_capacity(0)
}

/// The pool the code under test uses for a test database: the test's own pool, or one of the same size
/// through the pooler (see `served_options`).
pub fn served(pool: &sqlx::PgPool) -> sqlx::PgPool {
    if std::env::var_os("POOLER_URL").is_none() {
        return pool.clone();
    }
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool.options().get_max_connections())
        .connect_lazy_with(served_options((*pool.connect_options()).clone()))
}
