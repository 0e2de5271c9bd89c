//! Real API Gateway events (HTTP API v2 and REST API v1, from the JSON fixtures) through the handlers, on
//! the in-memory store: every status and error code of the contract that the edge decides.

use crate::common;

use std::time::Duration;

use inventory::http::{App, Endpoint, HttpConfig};
use inventory::memory::MemoryStore;
use inventory::views::{OrderView, ProductView};
use lambda_http::{Body, Response};
use serde_json::{Value, json};

use crate::common::Event;

fn app() -> App<MemoryStore> {
    App::new(MemoryStore::new(), HttpConfig::default())
}

async fn call(app: &App<MemoryStore>, endpoint: Endpoint, event: Event) -> Response<Body> {
    app.handle(endpoint, event.request()).await
}

fn body(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null)
}

fn header<'r>(response: &'r Response<Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Asserts a problem response and returns its body.
fn problem(response: &Response<Body>, status: u16, code: &str) -> Value {
    let body = body(response);
    assert_eq!(response.status().as_u16(), status, "{body}");
    assert_eq!(
        header(response, "content-type"),
        Some("application/problem+json")
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    body
}

/// Places an order of `quantity` units of `product` over HTTP.
async fn place_order(app: &App<MemoryStore>, product: uuid::Uuid, quantity: i64) -> OrderView {
    let event = v2(Endpoint::CreateOrder, "/orders")
        .json(&json!({ "lines": [{ "product_id": product, "quantity": quantity }] }));
    let response = call(app, Endpoint::CreateOrder, event).await;
    assert_eq!(response.status(), 201, "{}", body(&response));
    serde_json::from_value(body(&response)).unwrap()
}

fn v2(endpoint: Endpoint, path: &str) -> Event {
    let route = endpoint.route();
    Event::v2(route.method, route.path, path)
}

async fn create_product(app: &App<MemoryStore>, sku: &str, on_hand: i64) -> ProductView {
    let event = v2(Endpoint::CreateProduct, "/products").json(&json!({
        "sku": sku, "name": "Mug", "price_minor": 1250, "currency": "EUR", "on_hand": on_hand
    }));
    let response = call(app, Endpoint::CreateProduct, event).await;
    assert_eq!(response.status(), 201, "{}", body(&response));
    serde_json::from_value(body(&response)).unwrap()
}

#[tokio::test]
async fn creating_a_product_answers_201_with_location_and_etag() {
    let app = app();
    let event = v2(Endpoint::CreateProduct, "/products").json(&json!({
        "sku": "MUG-1", "name": "Mug", "description": "Blue", "price_minor": 1250, "currency": "EUR",
        "on_hand": 5, "low_stock_threshold": 2
    }));
    let response = call(&app, Endpoint::CreateProduct, event).await;
    assert_eq!(response.status(), 201);
    let product: ProductView = serde_json::from_value(body(&response)).unwrap();
    assert_eq!(
        header(&response, "location"),
        Some(format!("/products/{}", product.id).as_str())
    );
    assert_eq!(header(&response, "etag"), Some("\"1\""));
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(
        (product.on_hand, product.reserved, product.available),
        (5, 0, 5)
    );
    assert_eq!(product.description.as_deref(), Some("Blue"));
}

#[tokio::test]
async fn a_rest_api_event_is_served_like_an_http_api_event() {
    let app = app();
    let product = create_product(&app, "MUG-1", 3).await;
    let path = format!("/products/{}", product.id);
    let response = call(
        &app,
        Endpoint::GetProduct,
        Event::v1("GET", "/products/{id}", &path),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        serde_json::from_value::<ProductView>(body(&response)).unwrap(),
        product
    );

    let order = Event::v1("POST", "/orders", "/orders")
        .json(&json!({ "lines": [{ "product_id": product.id, "quantity": 2 }] }));
    let response = call(&app, Endpoint::CreateOrder, order).await;
    assert_eq!(response.status(), 201, "{}", body(&response));
    let listed =
        Event::v1("GET", "/orders", "/orders").query(&[("status", "pending"), ("limit", "5")]);
    let response = call(&app, Endpoint::ListOrders, listed).await;
    assert_eq!(body(&response)["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_id_is_read_from_the_path_when_the_event_has_no_path_parameters() {
    let app = app();
    let product = create_product(&app, "MUG-1", 3).await;
    let path = format!("/products/{}/stock-movements", product.id);
    let mut event = v2(Endpoint::ListStockMovements, &path);
    event = event.without_path_parameters();
    let response = call(&app, Endpoint::ListStockMovements, event).await;
    assert_eq!(response.status(), 200, "{}", body(&response));
    assert_eq!(body(&response)["items"][0]["reason"], "received");
}

#[tokio::test]
async fn malformed_requests_are_400_bad_request() {
    let app = app();
    let create = || v2(Endpoint::CreateProduct, "/products");
    let cases = [
        create()
            .raw_body("{not json")
            .header("content-type", "application/json"),
        create().raw_body("{}").header("content-type", "text/plain"),
        create().raw_body("{\"sku\":\"A\"}"),
        create()
            .raw_body("[1, 2]")
            .header("content-type", "application/json"),
        create()
            .raw_body("")
            .header("content-type", "application/json"),
    ];
    for event in cases {
        problem(
            &call(&app, Endpoint::CreateProduct, event).await,
            400,
            "bad_request",
        );
    }
    let bad_id = v2(Endpoint::GetProduct, "/products/not-a-uuid");
    problem(
        &call(&app, Endpoint::GetProduct, bad_id).await,
        400,
        "bad_request",
    );
    for query in [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "x"),
        ("cursor", "%%%"),
        ("low_stock", "yes"),
    ] {
        let event = v2(Endpoint::ListProducts, "/products").query(&[query]);
        problem(
            &call(&app, Endpoint::ListProducts, event).await,
            400,
            "bad_request",
        );
    }
    let event = v2(Endpoint::ListOrders, "/orders").query(&[("status", "shipped")]);
    problem(
        &call(&app, Endpoint::ListOrders, event).await,
        400,
        "bad_request",
    );
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_400() {
    let app = app();
    // API Gateway delivers such a body base64-encoded.
    let event = v2(Endpoint::CreateOrder, "/orders")
        .header("content-type", "application/json")
        .base64_body(&[0xdd, 0x95, b'h', 0xff, 0xfe]);
    problem(
        &call(&app, Endpoint::CreateOrder, event).await,
        400,
        "bad_request",
    );
}

#[tokio::test]
async fn invalid_fields_are_422_with_a_pointer_for_each() {
    let app = app();
    let event = v2(Endpoint::CreateProduct, "/products").json(&json!({
        "sku": "has space", "name": "", "price_minor": -1, "currency": "eur", "on_hand": -3,
        "low_stock_threshold": -1, "backorder_limit": -1, "safety_stock": 1_000_000_000_001_i64
    }));
    let body = problem(
        &call(&app, Endpoint::CreateProduct, event).await,
        422,
        "validation_failed",
    );
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        [
            "/sku",
            "/name",
            "/price_minor",
            "/currency",
            "/on_hand",
            "/low_stock_threshold",
            "/backorder_limit",
            "/safety_stock"
        ]
    );
    // The same settings on a product: bad values say why; null is no value; a safety stock that what is on
    // hand cannot cover is a conflict.
    let product = create_product(&app, "SETTINGS", 3).await;
    let patch = |body: Value| {
        let path = format!("/products/{}", product.id);
        call(
            &app,
            Endpoint::UpdateProduct,
            v2(Endpoint::UpdateProduct, &path).json(&body),
        )
    };
    for (bad, pointer) in [
        (json!({ "backorder_limit": -1 }), "/backorder_limit"),
        (json!({ "backorder_limit": null }), "/backorder_limit"),
        (json!({ "safety_stock": -2 }), "/safety_stock"),
        (json!({ "safety_stock": null }), "/safety_stock"),
    ] {
        let refused = problem(&patch(bad.clone()).await, 422, "validation_failed");
        assert_eq!(refused["errors"][0]["pointer"], pointer, "{bad}: {refused}");
    }
    problem(&patch(json!({ "safety_stock": 4 })).await, 409, "conflict");
    let changed = patch(json!({ "safety_stock": 1, "backorder_limit": 2 })).await;
    assert_eq!(changed.status(), 200, "{}", self::body(&changed));
    let changed: ProductView = serde_json::from_value(self::body(&changed)).unwrap();
    assert_eq!(
        (
            changed.safety_stock,
            changed.backorder_limit,
            changed.available
        ),
        (1, 2, 2)
    );

    let missing = v2(Endpoint::CreateProduct, "/products").json(&json!({}));
    let body = problem(
        &call(&app, Endpoint::CreateProduct, missing).await,
        422,
        "validation_failed",
    );
    assert_eq!(
        body["errors"].as_array().unwrap().len(),
        4,
        "sku, name, price_minor and currency are required"
    );

    let wrong_type = v2(Endpoint::CreateProduct, "/products")
        .json(&json!({ "sku": "A", "price_minor": "12.50" }));
    let body = problem(
        &call(&app, Endpoint::CreateProduct, wrong_type).await,
        422,
        "validation_failed",
    );
    assert_eq!(body["errors"][0]["pointer"], "/price_minor");
    let float = v2(Endpoint::CreateProduct, "/products").json(&json!({ "price_minor": 12.5 }));
    problem(
        &call(&app, Endpoint::CreateProduct, float).await,
        422,
        "validation_failed",
    );
    let unknown_field = v2(Endpoint::CreateProduct, "/products").json(&json!({ "colour": "blue" }));
    problem(
        &call(&app, Endpoint::CreateProduct, unknown_field).await,
        422,
        "validation_failed",
    );
}

#[tokio::test]
async fn order_lines_are_validated_before_any_stock_is_touched() {
    let app = app();
    let product = create_product(&app, "MUG-1", 3).await;
    let order =
        |lines: Value| v2(Endpoint::CreateOrder, "/orders").json(&json!({ "lines": lines }));
    let cases = [
        (json!([]), "/lines"),
        (
            json!([{ "product_id": product.id, "quantity": 0 }]),
            "/lines/0/quantity",
        ),
        (
            json!([{ "product_id": product.id, "quantity": -1 }]),
            "/lines/0/quantity",
        ),
        (
            json!([{ "product_id": product.id, "quantity": 1_000_001 }]),
            "/lines/0/quantity",
        ),
        (
            json!([{ "product_id": "nope", "quantity": 1 }]),
            "/lines/0/product_id",
        ),
        (json!([{ "quantity": 1 }]), "/lines/0/product_id"),
        (
            json!(
                (0..101)
                    .map(|_| json!({ "product_id": product.id, "quantity": 1 }))
                    .collect::<Vec<_>>()
            ),
            "/lines",
        ),
    ];
    for (lines, pointer) in cases {
        let body = problem(
            &call(&app, Endpoint::CreateOrder, order(lines.clone())).await,
            422,
            "validation_failed",
        );
        assert_eq!(body["errors"][0]["pointer"], pointer, "{lines}");
    }
    let huge = format!(
        r#"{{"lines":[{{"product_id":"{}","quantity":99999999999999999999}}]}}"#,
        product.id
    );
    let event = v2(Endpoint::CreateOrder, "/orders")
        .raw_body(&huge)
        .header("content-type", "application/json");
    let body = problem(
        &call(&app, Endpoint::CreateOrder, event).await,
        422,
        "validation_failed",
    );
    assert_eq!(body["errors"][0]["pointer"], "/lines/0/quantity");

    let after = call(
        &app,
        Endpoint::GetProduct,
        v2(Endpoint::GetProduct, &format!("/products/{}", product.id)),
    )
    .await;
    assert_eq!(self::body(&after)["reserved"], 0);
}

#[tokio::test]
async fn an_order_of_unknown_products_names_each_of_them() {
    let app = app();
    let product = create_product(&app, "MUG-1", 3).await;
    let (x, y) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let event = v2(Endpoint::CreateOrder, "/orders").json(&json!({ "lines": [
        { "product_id": x, "quantity": 1 }, { "product_id": product.id, "quantity": 1 }, { "product_id": y, "quantity": 1 }
    ]}));
    let body = problem(
        &call(&app, Endpoint::CreateOrder, event).await,
        404,
        "not_found",
    );
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/lines/0/product_id", "/lines/2/product_id"]);
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(&x.to_string())
    );
}

#[tokio::test]
async fn an_order_answers_201_and_a_shortage_409_with_every_short_line() {
    let app = app();
    let a = create_product(&app, "A", 3).await;
    let b = create_product(&app, "B", 1).await;
    let event = v2(Endpoint::CreateOrder, "/orders").json(
        &json!({ "lines": [{ "product_id": a.id, "quantity": 2 }], "customer_ref": "cart-7" }),
    );
    let response = call(&app, Endpoint::CreateOrder, event).await;
    assert_eq!(response.status(), 201);
    let order: OrderView = serde_json::from_value(body(&response)).unwrap();
    assert_eq!(
        header(&response, "location"),
        Some(format!("/orders/{}", order.id).as_str())
    );
    assert_eq!(
        (
            order.status.as_str(),
            order.total_minor,
            order.customer_ref.as_deref()
        ),
        ("pending", 2500, Some("cart-7"))
    );

    let short = v2(Endpoint::CreateOrder, "/orders").json(&json!({ "lines": [
        { "product_id": a.id, "quantity": 2 }, { "product_id": b.id, "quantity": 2 }
    ]}));
    let body = problem(
        &call(&app, Endpoint::CreateOrder, short).await,
        409,
        "insufficient_stock",
    );
    assert_eq!(
        body["shortages"],
        json!([
            { "product_id": a.id, "requested": 2, "available": 1 },
            { "product_id": b.id, "requested": 2, "available": 1 }
        ])
    );
}

#[tokio::test]
async fn cancel_and_fulfil_follow_the_status_rules() {
    let app = app();
    let a = create_product(&app, "A", 3).await;
    let event = v2(Endpoint::CreateOrder, "/orders")
        .json(&json!({ "lines": [{ "product_id": a.id, "quantity": 1 }] }));
    let order: OrderView =
        serde_json::from_value(body(&call(&app, Endpoint::CreateOrder, event).await)).unwrap();
    let cancel = || {
        v2(
            Endpoint::CancelOrder,
            &format!("/orders/{}/cancel", order.id),
        )
    };
    let fulfil = || {
        v2(
            Endpoint::FulfillOrder,
            &format!("/orders/{}/fulfill", order.id),
        )
    };
    let first = call(&app, Endpoint::CancelOrder, cancel()).await;
    assert_eq!(
        (first.status().as_u16(), body(&first)["status"].as_str()),
        (200, Some("cancelled"))
    );
    let again = call(&app, Endpoint::CancelOrder, cancel()).await;
    assert_eq!(again.status(), 200);
    problem(
        &call(&app, Endpoint::FulfillOrder, fulfil()).await,
        409,
        "conflict",
    );
    let missing = v2(
        Endpoint::CancelOrder,
        &format!("/orders/{}/cancel", uuid::Uuid::now_v7()),
    );
    problem(
        &call(&app, Endpoint::CancelOrder, missing).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn patch_checks_if_match_and_answers_the_new_etag() {
    let app = app();
    let a = create_product(&app, "A", 3).await;
    let path = format!("/products/{}", a.id);
    let patch = |body: Value| v2(Endpoint::UpdateProduct, &path).json(&body);
    let stale = patch(json!({ "price_minor": 99 })).header("if-match", "\"7\"");
    problem(
        &call(&app, Endpoint::UpdateProduct, stale).await,
        412,
        "precondition_failed",
    );
    let fresh =
        patch(json!({ "price_minor": 99, "description": null })).header("if-match", "\"1\"");
    let response = call(&app, Endpoint::UpdateProduct, fresh).await;
    assert_eq!(response.status(), 200, "{}", body(&response));
    assert_eq!(header(&response, "etag"), Some("\"2\""));
    assert_eq!(body(&response)["price_minor"], 99);
    let unconditional = call(
        &app,
        Endpoint::UpdateProduct,
        patch(json!({ "name": "Cup" })),
    )
    .await;
    assert_eq!(unconditional.status(), 200);
    let null_name = call(
        &app,
        Endpoint::UpdateProduct,
        patch(json!({ "name": null })),
    )
    .await;
    problem(&null_name, 422, "validation_failed");
    let stock = call(
        &app,
        Endpoint::UpdateProduct,
        patch(json!({ "on_hand": 100 })),
    )
    .await;
    problem(&stock, 422, "validation_failed");
    let empty = call(&app, Endpoint::UpdateProduct, patch(json!({}))).await;
    problem(&empty, 422, "validation_failed");
}

#[tokio::test]
async fn adjustments_answer_201_with_the_movement_and_product() {
    let app = app();
    let a = create_product(&app, "A", 3).await;
    let path = format!("/products/{}/stock-adjustments", a.id);
    let adjust = |body: Value| v2(Endpoint::AdjustStock, &path).json(&body);
    let response = call(
        &app,
        Endpoint::AdjustStock,
        adjust(json!({ "delta": 5, "reason": "received", "note": "PO-1" })),
    )
    .await;
    assert_eq!(response.status(), 201, "{}", body(&response));
    let adjusted = body(&response);
    assert_eq!(adjusted["movement"]["on_hand_delta"], 5);
    assert_eq!(adjusted["movement"]["note"], "PO-1");
    assert_eq!(adjusted["product"]["on_hand"], 8);
    for bad in [
        json!({ "delta": 0, "reason": "received" }),
        json!({ "delta": 1, "reason": "order_reserved" }),
        json!({ "delta": 1 }),
    ] {
        problem(
            &call(&app, Endpoint::AdjustStock, adjust(bad)).await,
            422,
            "validation_failed",
        );
    }
    let too_many = adjust(json!({ "delta": -9, "reason": "damaged" }));
    problem(
        &call(&app, Endpoint::AdjustStock, too_many).await,
        409,
        "conflict",
    );
}

#[tokio::test]
async fn deleting_answers_204_then_404_and_refuses_reserved_stock() {
    let app = app();
    let a = create_product(&app, "A", 0).await;
    let b = create_product(&app, "B", 3).await;
    let path = |p: &ProductView| format!("/products/{}", p.id);
    let order = v2(Endpoint::CreateOrder, "/orders")
        .json(&json!({ "lines": [{ "product_id": b.id, "quantity": 1 }] }));
    call(&app, Endpoint::CreateOrder, order).await;
    let deleted = call(
        &app,
        Endpoint::DeleteProduct,
        v2(Endpoint::DeleteProduct, &path(&a)),
    )
    .await;
    assert_eq!(deleted.status(), 204);
    assert!(deleted.body().is_empty());
    problem(
        &call(
            &app,
            Endpoint::DeleteProduct,
            v2(Endpoint::DeleteProduct, &path(&a)),
        )
        .await,
        404,
        "not_found",
    );
    problem(
        &call(
            &app,
            Endpoint::DeleteProduct,
            v2(Endpoint::DeleteProduct, &path(&b)),
        )
        .await,
        409,
        "conflict",
    );
}

#[tokio::test]
async fn a_duplicate_sku_is_409_sku_taken() {
    let app = app();
    create_product(&app, "A", 0).await;
    let again = v2(Endpoint::CreateProduct, "/products")
        .json(&json!({ "sku": "A", "name": "Other", "price_minor": 1, "currency": "EUR" }));
    problem(
        &call(&app, Endpoint::CreateProduct, again).await,
        409,
        "sku_taken",
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = App::new(
        MemoryStore::new(),
        HttpConfig {
            body_limit: 1024,
            ..HttpConfig::default()
        },
    );
    let big = json!({ "lines": [], "customer_ref": "x".repeat(2000) });
    let response = call(
        &app,
        Endpoint::CreateOrder,
        v2(Endpoint::CreateOrder, "/orders").json(&big),
    )
    .await;
    problem(&response, 413, "payload_too_large");
}

#[tokio::test]
async fn a_request_out_of_time_is_503_with_retry_after() {
    let app = App::new(
        MemoryStore::new(),
        HttpConfig {
            request_timeout: Duration::from_nanos(1),
            ..HttpConfig::default()
        },
    );
    let response = call(&app, Endpoint::Health, v2(Endpoint::Health, "/health")).await;
    problem(&response, 503, "unavailable");
    assert_eq!(header(&response, "retry-after"), Some("1"));
}

#[tokio::test]
async fn health_answers_ok() {
    let response = call(&app(), Endpoint::Health, v2(Endpoint::Health, "/health")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(&response), json!({ "status": "ok" }));
}

#[tokio::test]
async fn lists_are_paginated_with_an_opaque_cursor() {
    let app = app();
    for i in 0..5 {
        create_product(&app, &format!("P{i}"), 1).await;
    }
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let response = call(
            &app,
            Endpoint::ListProducts,
            v2(Endpoint::ListProducts, "/products").query(&query),
        )
        .await;
        let page = body(&response);
        seen += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 5);
    let by_sku = v2(Endpoint::ListProducts, "/products").query(&[("sku", "P3")]);
    let page = body(&call(&app, Endpoint::ListProducts, by_sku).await);
    assert_eq!(page["items"][0]["sku"], "P3");
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_cursor_belongs_to_the_list_that_issued_it() {
    let app = app();
    for i in 0..3 {
        create_product(&app, &format!("P{i}"), 1).await;
    }
    let first = v2(Endpoint::ListProducts, "/products").query(&[("limit", "1")]);
    let page = body(&call(&app, Endpoint::ListProducts, first).await);
    let products_cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let next = v2(Endpoint::ListProducts, "/products").query(&[("cursor", &products_cursor)]);
    assert_eq!(call(&app, Endpoint::ListProducts, next).await.status(), 200);

    let orders = v2(Endpoint::ListOrders, "/orders").query(&[("cursor", &products_cursor)]);
    let refused = problem(
        &call(&app, Endpoint::ListOrders, orders).await,
        400,
        "bad_request",
    );
    assert!(
        refused["detail"].as_str().unwrap().contains("another list"),
        "{refused}"
    );
    let path = format!(
        "/products/{}/stock-movements",
        page["items"][0]["id"].as_str().unwrap()
    );
    let movements = v2(Endpoint::ListStockMovements, &path).query(&[("cursor", &products_cursor)]);
    problem(
        &call(&app, Endpoint::ListStockMovements, movements).await,
        400,
        "bad_request",
    );
}

#[test]
fn internal_errors_keep_their_cause_out_of_the_response() {
    use inventory::domain::Error;
    use inventory::http::ApiError;
    let error = ApiError::Domain(Error::internal(
        "relation \"products\" does not exist: SELECT * FROM products",
    ));
    let response = error.into_response();
    let text = String::from_utf8(response.body().to_vec()).unwrap();
    assert_eq!(response.status(), 500);
    assert!(
        !text.contains("SELECT") && !text.contains("relation"),
        "{text}"
    );
    assert!(text.contains("\"code\":\"internal\""));
}

/// On Lambda the invocation deadline (less the margin) bounds the request: an order stuck behind a lock
/// answers 503 before Lambda would cut it off, and nothing is written.
#[sqlx::test(migrations = "../migrations")]
async fn the_lambda_deadline_bounds_a_request_stuck_behind_a_lock(pool: sqlx::PgPool) {
    use lambda_http::RequestExt;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    // Bounded in wall-clock time (and holding a row lock): alone among the heavy tests.
    let _heavy = common::HEAVY.lock().await;

    let config = HttpConfig {
        deadline_margin: Duration::from_millis(200),
        ..HttpConfig::default()
    };
    let app = App::new(
        inventory::postgres::PgStore::new(common::served(&pool)),
        config,
    );
    let event = v2(Endpoint::CreateProduct, "/products").json(
        &json!({ "sku": "A", "name": "Mug", "price_minor": 1, "currency": "EUR", "on_hand": 5 }),
    );
    let product: ProductView = serde_json::from_value(body(
        &app.handle(Endpoint::CreateProduct, event.request()).await,
    ))
    .unwrap();

    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
        .bind(product.id)
        .execute(&mut *blocker)
        .await
        .unwrap();

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut context = lambda_http::Context::default();
    context.deadline = now_ms + 700;
    let order = v2(Endpoint::CreateOrder, "/orders")
        .json(&json!({ "lines": [{ "product_id": product.id, "quantity": 1 }] }))
        .request()
        .with_lambda_context(context);
    let started = Instant::now();
    let response = app.handle(Endpoint::CreateOrder, order).await;
    let took = started.elapsed();
    problem(&response, 503, "unavailable");
    assert_eq!(header(&response, "retry-after"), Some("1"));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(700),
        "answered after {took:?}"
    );
    blocker.rollback().await.unwrap();

    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    let reserved: i64 = sqlx::query_scalar("SELECT reserved FROM products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((orders, reserved), (0, 0));
}

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_response_with_a_header() {
    let app = app();
    let a = create_product(&app, "A", 5).await;
    let order = || {
        v2(Endpoint::CreateOrder, "/orders")
            .json(&json!({ "lines": [{ "product_id": a.id, "quantity": 2 }] }))
            .header("Idempotency-Key", "cart-42-attempt")
    };
    let first = call(&app, Endpoint::CreateOrder, order()).await;
    assert_eq!(first.status(), 201);
    assert_eq!(header(&first, "idempotent-replayed"), None);
    // The same body laid out differently is the same request.
    let again = call(
        &app,
        Endpoint::CreateOrder,
        v2(Endpoint::CreateOrder, "/orders")
            .raw_body(&format!(
                r#"{{ "lines" : [ {{ "quantity": 2, "product_id": "{}" }} ] }}"#,
                a.id
            ))
            .header("content-type", "application/json")
            .header("Idempotency-Key", "cart-42-attempt"),
    )
    .await;
    assert_eq!(again.status(), 201);
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(header(&again, "location"), header(&first, "location"));
    assert_eq!(header(&again, "content-type"), Some("application/json"));
    assert_eq!(again.body(), first.body());
    let product = call(
        &app,
        Endpoint::GetProduct,
        v2(Endpoint::GetProduct, &format!("/products/{}", a.id)),
    )
    .await;
    assert_eq!(body(&product)["reserved"], 2);

    // The same key with another body, or on another route, is refused and changes nothing.
    let other = v2(Endpoint::CreateOrder, "/orders")
        .json(&json!({ "lines": [{ "product_id": a.id, "quantity": 1 }] }))
        .header("Idempotency-Key", "cart-42-attempt");
    problem(
        &call(&app, Endpoint::CreateOrder, other).await,
        422,
        "idempotency_key_reused",
    );
    let adjust = v2(
        Endpoint::AdjustStock,
        &format!("/products/{}/stock-adjustments", a.id),
    )
    .json(&json!({ "delta": 2, "reason": "received" }))
    .header("Idempotency-Key", "cart-42-attempt");
    problem(
        &call(&app, Endpoint::AdjustStock, adjust).await,
        422,
        "idempotency_key_reused",
    );
    let product = call(
        &app,
        Endpoint::GetProduct,
        v2(Endpoint::GetProduct, &format!("/products/{}", a.id)),
    )
    .await;
    assert_eq!(
        (
            body(&product)["on_hand"].clone(),
            body(&product)["reserved"].clone()
        ),
        (json!(5), json!(2))
    );
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_400() {
    let app = app();
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "two words", "caf\u{e9}"] {
        let event = v2(Endpoint::CreateProduct, "/products")
            .json(&json!({ "sku": "K", "name": "K", "price_minor": 1, "currency": "EUR" }))
            .header("Idempotency-Key", key);
        problem(
            &call(&app, Endpoint::CreateProduct, event).await,
            400,
            "bad_request",
        );
    }
    let listed = call(
        &app,
        Endpoint::ListProducts,
        v2(Endpoint::ListProducts, "/products"),
    )
    .await;
    assert_eq!(body(&listed)["items"], json!([]));
}

#[tokio::test]
async fn a_nul_or_invalid_utf8_in_the_query_is_400() {
    let app = app();
    for (raw, decoded) in [
        ("sku=%00", "\u{0}"),
        ("sku=%FF", "\u{fffd}"),
        ("sku=a%0Ab", "a\nb"),
    ] {
        let event = v2(Endpoint::ListProducts, "/products").raw_query(raw, &[("sku", decoded)]);
        problem(
            &call(&app, Endpoint::ListProducts, event).await,
            400,
            "bad_request",
        );
    }
    let fine = v2(Endpoint::ListProducts, "/products").raw_query("sku=A%2FB", &[("sku", "A/B")]);
    assert_eq!(call(&app, Endpoint::ListProducts, fine).await.status(), 200);
}

/// The largest response a list can give stays far below Lambda's 6 MB limit on a synchronous response. A
/// page of orders holds at most 100 orders and `MAX_PAGE_LINES` lines (an order has up to 100); every text
/// field at its longest, in the characters that cost most once serialized twice (into the JSON body, then into
/// the JSON of the Lambda response, where a `"` becomes `\\\"`: 4 bytes, as much as any character costs).
#[test]
fn the_largest_page_of_any_list_fits_in_a_lambda_response() {
    use inventory::domain::order::{
        CancelReason, Fulfilment, FulfilmentLine, Order, OrderLine, OrderStatus, Return,
        ReturnLine, ReturnReason,
    };
    use inventory::domain::product::Product;
    use inventory::domain::stock::{MovementReason, StockMovement};
    use inventory::domain::{
        Cursor, CustomerRef, Description, MAX_PAGE_LINES, Note, Page, ProductName, Sku, new_id,
    };
    use inventory::views::{
        FulfilmentView, MovementView, OrderView, PageView, ProductView, ReturnView,
    };

    const LAMBDA_LIMIT: usize = 6 * 1024 * 1024;
    let text = |chars: usize| "\"".repeat(chars);
    let now = time::OffsetDateTime::now_utc();
    // What API Gateway receives from the function: the body as a JSON string inside the response object.
    let envelope = |body: String| {
        json!({
            "statusCode": 200,
            "headers": { "content-type": "application/json" },
            "isBase64Encoded": false,
            "body": body,
        })
        .to_string()
        .len()
    };
    let order = |lines: usize| Order {
        id: new_id(),
        status: OrderStatus::Cancelled,
        customer_ref: Some(text(CustomerRef::MAX_CHARS)),
        lines: (0..lines)
            .map(|_| OrderLine {
                product_id: new_id(),
                sku: "S".repeat(Sku::MAX_CHARS),
                name: text(ProductName::MAX_CHARS),
                quantity: 1_000_000,
                unit_price_minor: i64::MAX,
                line_total_minor: i64::MAX,
                fulfilled: 1_000_000,
                returned: 1_000_000,
            })
            .collect(),
        total_minor: i64::MAX,
        currency: "EUR".into(),
        created_at: now,
        updated_at: now,
        expires_at: now,
        cancel_reason: Some(CancelReason::Requested),
    };
    let mut sizes = Vec::new();
    for (orders, lines) in [(100, MAX_PAGE_LINES / 100), (MAX_PAGE_LINES / 100, 100)] {
        let page = Page {
            items: (0..orders).map(|_| order(lines)).collect(),
            next_cursor: Some(Cursor(new_id())),
        };
        let body = serde_json::to_string(&PageView::<OrderView>::from_page(page)).unwrap();
        sizes.push((format!("{orders} orders of {lines} lines"), envelope(body)));
    }
    let product = || Product {
        id: new_id(),
        sku: "S".repeat(Sku::MAX_CHARS),
        name: text(ProductName::MAX_CHARS),
        description: Some(text(Description::MAX_CHARS)),
        price_minor: i64::MAX,
        currency: "EUR".into(),
        on_hand: i64::MAX,
        reserved: i64::MAX,
        low_stock_threshold: Some(i64::MAX),
        backorder_limit: i64::MAX,
        safety_stock: i64::MAX,
        damaged: 0,
        version: i64::MAX,
        created_at: now,
        updated_at: now,
    };
    let products = Page {
        items: (0..100).map(|_| product()).collect(),
        next_cursor: Some(Cursor(new_id())),
    };
    let body = serde_json::to_string(&PageView::<ProductView>::from_page(products)).unwrap();
    sizes.push(("100 products".into(), envelope(body)));
    let movement = || StockMovement {
        id: new_id(),
        product_id: new_id(),
        order_id: Some(new_id()),
        reason: MovementReason::ReturnRestock,
        on_hand_delta: i64::MIN,
        reserved_delta: i64::MIN,
        damaged_delta: i64::MIN,
        on_hand_after: i64::MAX,
        reserved_after: i64::MAX,
        damaged_after: i64::MAX,
        note: Some(text(Note::MAX_CHARS)),
        created_at: now,
    };
    let movements = Page {
        items: (0..100).map(|_| movement()).collect(),
        next_cursor: Some(Cursor(new_id())),
    };
    let body = serde_json::to_string(&PageView::<MovementView>::from_page(movements)).unwrap();
    sizes.push(("100 stock movements".into(), envelope(body)));
    // An order has up to 100 lines: a fulfilment or a return ships or takes back some of each.
    let fulfilments = Page {
        items: (0..100)
            .map(|_| Fulfilment {
                id: new_id(),
                lines: (0..100)
                    .map(|_| FulfilmentLine {
                        product_id: new_id(),
                        quantity: 1_000_000,
                    })
                    .collect(),
                created_at: now,
            })
            .collect(),
        next_cursor: Some(Cursor(new_id())),
    };
    let body = serde_json::to_string(&PageView::<FulfilmentView>::from_page(fulfilments)).unwrap();
    sizes.push(("100 fulfilments of 100 lines".into(), envelope(body)));
    let returns = Page {
        items: (0..100)
            .map(|_| Return {
                id: new_id(),
                reason: ReturnReason::NotAsDescribed,
                lines: (0..100)
                    .map(|_| ReturnLine {
                        product_id: new_id(),
                        quantity: 1_000_000,
                        restock: false,
                        damaged: false,
                    })
                    .collect(),
                created_at: now,
            })
            .collect(),
        next_cursor: Some(Cursor(new_id())),
    };
    let body = serde_json::to_string(&PageView::<ReturnView>::from_page(returns)).unwrap();
    sizes.push(("100 returns of 100 lines".into(), envelope(body)));
    for (what, size) in &sizes {
        println!("largest page of {what}: {size} bytes as a Lambda response");
        assert!(*size < LAMBDA_LIMIT / 2, "{what}: {size} bytes");
    }
}

#[tokio::test]
async fn an_order_holds_its_stock_for_the_hold_asked_for_within_bounds() {
    let app = App::new(
        MemoryStore::new(),
        HttpConfig {
            order_hold: Duration::from_secs(600),
            ..HttpConfig::default()
        },
    );
    let product = create_product(&app, "HOLD", 5).await;
    let place = |body: Value| {
        let event = v2(Endpoint::CreateOrder, "/orders").json(&body);
        call(&app, Endpoint::CreateOrder, event)
    };
    let line = json!([{ "product_id": product.id, "quantity": 1 }]);
    for hold in [json!(59), json!(86_401), json!(-5), json!("soon")] {
        let response = place(json!({ "lines": line, "hold_seconds": hold })).await;
        let status = response.status().as_u16();
        let body = body(&response);
        assert!(matches!(status, 400 | 422), "{hold}: {body}");
        if status == 422 {
            assert_eq!(body["errors"][0]["pointer"], "/hold_seconds", "{body}");
        }
    }
    let held = |response: &Response<Body>| {
        let order: OrderView = serde_json::from_value(body(response)).unwrap();
        assert_eq!(order.cancel_reason, None);
        (order.expires_at - order.created_at).whole_seconds()
    };
    let asked = place(json!({ "lines": line, "hold_seconds": 120 })).await;
    assert_eq!(asked.status(), 201);
    assert_eq!(held(&asked), 120);
    let default = place(json!({ "lines": line })).await;
    assert_eq!(held(&default), 600, "the configured hold");
}

/// `POST /orders/{id}/hold`: every bad body a 422 (or 400) that names the field, an unknown order 404, an
/// order that is no longer pending 409, and a good one the order with its new `expires_at`.
#[tokio::test]
async fn a_hold_is_extended_over_http_and_bad_requests_say_why() {
    let app = app();
    let product = create_product(&app, "HOLD-HTTP", 5).await;
    let order = place_order(&app, product.id, 1).await;
    let extend = |id: &str, body: Value| {
        let event = v2(Endpoint::ExtendHold, &format!("/orders/{id}/hold")).json(&body);
        call(&app, Endpoint::ExtendHold, event)
    };
    let id = order.id.to_string();
    for bad in [
        json!({}),
        json!({ "hold_seconds": 59 }),
        json!({ "hold_seconds": 86_401 }),
        json!({ "hold_seconds": -1 }),
        json!({ "hold_seconds": "an hour" }),
        json!({ "hold_seconds": null }),
        json!({ "hold_seconds": 3600, "until": "tomorrow" }),
        json!([3600]),
    ] {
        let response = extend(&id, bad.clone()).await;
        let status = response.status().as_u16();
        let problem = body(&response);
        assert!(matches!(status, 400 | 422), "{bad}: {status} {problem}");
        assert!(problem["detail"].is_string(), "{bad}: {problem}");
    }
    let missing = extend(&id, json!({})).await;
    assert_eq!(body(&missing)["errors"][0]["pointer"], "/hold_seconds");
    let unknown = extend(
        "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f",
        json!({ "hold_seconds": 3600 }),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        extend("not-a-uuid", json!({ "hold_seconds": 3600 }))
            .await
            .status(),
        400
    );

    let extended = extend(&id, json!({ "hold_seconds": 7200 })).await;
    assert_eq!(extended.status(), 200, "{}", body(&extended));
    let extended: OrderView = serde_json::from_value(body(&extended)).unwrap();
    assert_eq!(
        (extended.expires_at - order.created_at).whole_minutes(),
        120
    );
    let cancel = v2(Endpoint::CancelOrder, &format!("/orders/{id}/cancel"));
    assert_eq!(
        call(&app, Endpoint::CancelOrder, cancel).await.status(),
        200
    );
    let conflict = extend(&id, json!({ "hold_seconds": 3600 })).await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(body(&conflict)["code"], "conflict");
}

/// `POST /orders/{id}/fulfilments`: every bad body a 422 (or 400) that says why, a product not in the order a
/// 422 naming its line, more than is left a 409 `beyond_remaining` with what each line has left, an unknown
/// order 404, and a good one 201 with the fulfilment and the order after it.
#[tokio::test]
async fn an_order_ships_in_parts_over_http_and_bad_requests_say_why() {
    let app = app();
    let product = create_product(&app, "PART-HTTP", 9).await;
    let other = create_product(&app, "PART-OTHER", 9).await;
    let order = place_order(&app, product.id, 3).await;
    let fulfil = |id: &str, body: Value| {
        let path = format!("/orders/{id}/fulfilments");
        call(
            &app,
            Endpoint::CreateFulfilment,
            v2(Endpoint::CreateFulfilment, &path).json(&body),
        )
    };
    let id = order.id.to_string();
    let line =
        |quantity: Value| json!({ "lines": [{ "product_id": product.id, "quantity": quantity }] });
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({ "product_id": product.id, "quantity": 1 }))
        .collect();
    for (bad, pointer) in [
        (json!({}), "/lines"),
        (json!({ "lines": [] }), "/lines"),
        (json!({ "lines": too_many }), "/lines"),
        (line(json!(0)), "/lines/0/quantity"),
        (line(json!(-2)), "/lines/0/quantity"),
        (line(json!(1_000_001)), "/lines/0/quantity"),
        (line(json!(null)), "/lines/0/quantity"),
        (
            json!({ "lines": [{ "product_id": "nope", "quantity": 1 }] }),
            "/lines/0/product_id",
        ),
        (
            json!({ "lines": [{ "quantity": 1 }] }),
            "/lines/0/product_id",
        ),
        (
            json!({ "lines": [{ "product_id": other.id, "quantity": 1 }] }),
            "/lines/0/product_id",
        ),
    ] {
        let response = fulfil(&id, bad.clone()).await;
        let refused = problem(&response, 422, "validation_failed");
        assert_eq!(refused["errors"][0]["pointer"], pointer, "{bad}: {refused}");
    }
    for bad in [
        json!({ "lines": [{ "product_id": product.id, "quantity": "1" }] }),
        json!({ "lines": [{ "product_id": product.id, "quantity": 1, "sku": "x" }] }),
        json!({ "lines": [], "carrier": "ups" }),
        json!([{ "product_id": product.id, "quantity": 1 }]),
    ] {
        let response = fulfil(&id, bad.clone()).await;
        let status = response.status().as_u16();
        let refused = body(&response);
        assert!(matches!(status, 400 | 422), "{bad}: {status} {refused}");
        assert!(refused["detail"].is_string(), "{bad}: {refused}");
    }
    let unknown = fulfil("01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f", line(json!(1))).await;
    problem(&unknown, 404, "not_found");
    problem(
        &fulfil("not-a-uuid", line(json!(1))).await,
        400,
        "bad_request",
    );

    let made = fulfil(&id, line(json!(2))).await;
    assert_eq!(made.status(), 201, "{}", body(&made));
    let made = body(&made);
    assert_eq!(
        made["fulfilment"]["lines"],
        json!([{ "product_id": product.id, "quantity": 2 }])
    );
    assert_eq!(made["order"]["status"], "partially_fulfilled");
    assert_eq!(made["order"]["lines"][0]["fulfilled"], 2);
    assert_eq!(made["order"]["lines"][0]["reserved"], 1);
    let beyond = fulfil(&id, line(json!(2))).await;
    let refused = problem(&beyond, 409, "beyond_remaining");
    assert_eq!(
        refused["remaining"],
        json!([{ "product_id": product.id, "requested": 2, "remaining": 1 }])
    );
    let rest = v2(Endpoint::FulfillOrder, &format!("/orders/{id}/fulfill"));
    let rest = call(&app, Endpoint::FulfillOrder, rest).await;
    assert_eq!(body(&rest)["status"], "fulfilled");
    assert_eq!(body(&rest)["lines"][0]["fulfilled"], 3);
    let done = fulfil(&id, line(json!(1))).await;
    problem(&done, 409, "conflict");
}

/// `GET /orders/{id}/fulfilments` and `GET /orders/{id}/returns`: each answers what its POST answered, page by
/// page; a bad id, limit or cursor (one of another list or another order's included) is 400 saying why, an
/// unknown order 404.
#[tokio::test]
async fn an_orders_fulfilments_and_returns_are_listed_over_http() {
    let app = app();
    let product = create_product(&app, "LIST-HTTP", 9).await;
    let order = place_order(&app, product.id, 3).await;
    let id = order.id.to_string();
    let mut made = Vec::new();
    for _ in 0..2 {
        let ship = v2(
            Endpoint::CreateFulfilment,
            &format!("/orders/{id}/fulfilments"),
        )
        .json(&json!({ "lines": [{ "product_id": product.id, "quantity": 1 }] }));
        let response = call(&app, Endpoint::CreateFulfilment, ship).await;
        assert_eq!(response.status(), 201, "{}", body(&response));
        made.push(body(&response)["fulfilment"].clone());
    }
    let back = v2(Endpoint::CreateReturn, &format!("/orders/{id}/returns")).json(&json!({
        "reason": "unwanted",
        "lines": [{ "product_id": product.id, "quantity": 1, "restock": true }],
    }));
    let response = call(&app, Endpoint::CreateReturn, back).await;
    assert_eq!(response.status(), 201, "{}", body(&response));
    let taken = body(&response)["return"].clone();

    let list = |endpoint: Endpoint, id: &str, query: &[(&str, &str)]| {
        let what = if endpoint == Endpoint::ListReturns {
            "returns"
        } else {
            "fulfilments"
        };
        let event = v2(endpoint, &format!("/orders/{id}/{what}")).query(query);
        call(&app, endpoint, event)
    };
    let first = list(Endpoint::ListFulfilments, &id, &[("limit", "1")]).await;
    assert_eq!(first.status(), 200, "{}", body(&first));
    let first = body(&first);
    assert_eq!(first["items"], json!([made[0]]));
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = list(Endpoint::ListFulfilments, &id, &[("cursor", &cursor)]).await;
    assert_eq!(
        body(&second),
        json!({ "items": [made[1]], "next_cursor": null })
    );
    let returns = list(Endpoint::ListReturns, &id, &[]).await;
    assert_eq!(
        body(&returns),
        json!({ "items": [taken], "next_cursor": null })
    );

    let other_list = list(Endpoint::ListReturns, &id, &[("cursor", &cursor)]).await;
    let refused = problem(&other_list, 400, "bad_request");
    assert!(
        refused["detail"].as_str().unwrap().contains("another list"),
        "{refused}"
    );
    let other = place_order(&app, product.id, 1).await.id.to_string();
    let other_order = list(Endpoint::ListFulfilments, &other, &[("cursor", &cursor)]).await;
    let refused = problem(&other_order, 400, "bad_request");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("another order's list"),
        "{refused}"
    );
    for endpoint in [Endpoint::ListFulfilments, Endpoint::ListReturns] {
        for query in [
            &[("limit", "0")][..],
            &[("limit", "101")],
            &[("limit", "-1")],
            &[("limit", "many")],
            &[("cursor", "not-a-cursor")],
            &[("cursor", "")],
        ] {
            let response = list(endpoint, &id, query).await;
            let refused = problem(&response, 400, "bad_request");
            assert!(refused["detail"].is_string(), "{query:?}: {refused}");
        }
        problem(&list(endpoint, "not-a-uuid", &[]).await, 400, "bad_request");
        problem(
            &list(endpoint, "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f", &[]).await,
            404,
            "not_found",
        );
    }
}

/// `POST /orders/{id}/returns`: every bad body a 4xx that says why (a product named twice or not in the order,
/// a missing `restock` or `reason`: 422 naming the field), more than shipped a 409 `beyond_returnable` with
/// what each line can take back, and a good one 201 with the return and the order after it.
#[tokio::test]
async fn shipped_units_come_back_over_http_and_bad_requests_say_why() {
    let app = app();
    let product = create_product(&app, "BACK-HTTP", 9).await;
    let other = create_product(&app, "BACK-OTHER", 9).await;
    let order = place_order(&app, product.id, 3).await;
    let id = order.id.to_string();
    let ship = v2(
        Endpoint::CreateFulfilment,
        &format!("/orders/{id}/fulfilments"),
    )
    .json(&json!({ "lines": [{ "product_id": product.id, "quantity": 2 }] }));
    assert_eq!(
        call(&app, Endpoint::CreateFulfilment, ship).await.status(),
        201
    );
    let take_back = |id: &str, body: Value| {
        let path = format!("/orders/{id}/returns");
        call(
            &app,
            Endpoint::CreateReturn,
            v2(Endpoint::CreateReturn, &path).json(&body),
        )
    };
    let line = |quantity: Value, restock: Value| {
        json!({ "lines": [{ "product_id": product.id, "quantity": quantity, "restock": restock }],
                "reason": "unwanted" })
    };
    let twice = json!({ "reason": "unwanted", "lines": [
        { "product_id": product.id, "quantity": 1, "restock": true },
        { "product_id": product.id, "quantity": 1, "restock": false } ] });
    for (bad, pointer) in [
        (json!({ "reason": "unwanted" }), "/lines"),
        (json!({ "lines": [], "reason": "unwanted" }), "/lines"),
        (
            json!({ "lines": [{ "product_id": product.id, "quantity": 1, "restock": true }] }),
            "/reason",
        ),
        (
            json!({ "lines": [{ "product_id": product.id, "quantity": 1, "restock": true }], "reason": "meh" }),
            "/reason",
        ),
        (line(json!(0), json!(true)), "/lines/0/quantity"),
        (line(json!(-1), json!(true)), "/lines/0/quantity"),
        (line(json!(1), json!(null)), "/lines/0/restock"),
        (
            json!({ "lines": [{ "product_id": "x", "quantity": 1, "restock": true }], "reason": "other" }),
            "/lines/0/product_id",
        ),
        (
            json!({ "lines": [{ "product_id": other.id, "quantity": 1, "restock": true }], "reason": "other" }),
            "/lines/0/product_id",
        ),
        (twice, "/lines/1/product_id"),
        (
            json!({ "lines": [{ "product_id": product.id, "quantity": 1, "restock": false, "damaged": true }],
                    "reason": "defective" }),
            "/lines/0/damaged",
        ),
    ] {
        let response = take_back(&id, bad.clone()).await;
        let refused = problem(&response, 422, "validation_failed");
        assert_eq!(refused["errors"][0]["pointer"], pointer, "{bad}: {refused}");
    }
    for bad in [
        line(json!(1), json!("yes")),
        json!({ "lines": [{ "product_id": product.id, "quantity": 1, "restock": true, "damaged": null }],
                "reason": "other" }),
        json!({ "lines": [{ "product_id": product.id, "quantity": 1, "restock": true, "sku": "x" }], "reason": "other" }),
        json!([{ "product_id": product.id, "quantity": 1, "restock": true }]),
    ] {
        let response = take_back(&id, bad.clone()).await;
        let status = response.status().as_u16();
        let refused = body(&response);
        assert!(matches!(status, 400 | 422), "{bad}: {status} {refused}");
        assert!(refused["detail"].is_string(), "{bad}: {refused}");
    }
    let unknown = take_back(
        "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f",
        line(json!(1), json!(true)),
    )
    .await;
    problem(&unknown, 404, "not_found");

    let beyond = take_back(&id, line(json!(3), json!(true))).await;
    let refused = problem(&beyond, 409, "beyond_returnable");
    assert_eq!(
        refused["remaining"],
        json!([{ "product_id": product.id, "requested": 3, "remaining": 2 }])
    );
    let taken = take_back(&id, line(json!(1), json!(true))).await;
    assert_eq!(taken.status(), 201, "{}", body(&taken));
    let taken = body(&taken);
    assert_eq!(taken["return"]["reason"], "unwanted");
    assert_eq!(
        taken["return"]["lines"],
        json!([{ "product_id": product.id, "quantity": 1, "restock": true, "damaged": false }])
    );
    assert_eq!(taken["order"]["lines"][0]["returned"], 1);
    assert_eq!(taken["order"]["status"], "partially_fulfilled");
}

#[tokio::test]
async fn the_event_feed_follows_its_cursor_and_refuses_others() {
    let app = app();
    let product = create_product(&app, "FEED", 5).await;
    let feed = |query: &[(&str, &str)]| {
        let event = v2(Endpoint::ListEvents, "/events").query(query);
        call(&app, Endpoint::ListEvents, event)
    };
    let first = feed(&[]).await;
    assert_eq!(first.status(), 200);
    let page = body(&first);
    assert_eq!(page["items"][0]["type"], "product.created");
    assert_eq!(page["items"][0]["resource_id"], json!(product.id));
    assert_eq!(page["items"][0]["data"]["sku"], "FEED");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(page["items"][0]["cursor"], json!(cursor));
    let empty = body(&feed(&[("after", &cursor)]).await);
    assert_eq!(empty["items"], json!([]));
    assert_eq!(
        empty["next_cursor"],
        json!(cursor),
        "never null: poll again from it"
    );
    let list_cursor =
        inventory::domain::Cursor(inventory::domain::ProductId::from(product.id)).encode();
    for query in [
        [("after", "nonsense")],
        [("after", list_cursor.as_str())],
        [("limit", "0")],
        [("limit", "501")],
    ] {
        problem(&feed(&query).await, 400, "bad_request");
    }
    let bounded = body(&feed(&[("limit", "500")]).await);
    assert_eq!(bounded["items"].as_array().unwrap().len(), 1);
}
