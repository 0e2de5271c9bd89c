//! Who may call what, generated from the route table: for every route, in `local` mode (the function
//! verifies the bearer token) and in `gateway` mode (API Gateway's authorizer did, and passes its claims in
//! a real HTTP API event), no token is a 401, the wrong scope a 403, and the right scope the answer the
//! route gives without authentication.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use inventory::http::{App, Auth, Endpoint, HttpConfig, ROUTES, Route};
use inventory::memory::MemoryStore;
use jsonwebtoken::{EncodingKey, Header};
use lambda_http::{Body, Response};
use serde_json::{Value, json};

use crate::common::Event;

const KEY: &str = "a-local-key-of-the-tests-only-0123456789";
const ISSUER: &str = "inventory-local";
const AUDIENCE: &str = "inventory";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed with `key`, for `scopes`, as `scripts/token` makes them.
fn token_with(key: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

fn token(scopes: &[&str]) -> String {
    token_with(
        KEY,
        json!({ "sub": "client-a", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "scope": scopes.join(" ") }),
    )
}

fn local_app() -> App<MemoryStore> {
    App::with_auth(
        MemoryStore::new(),
        HttpConfig::default(),
        Auth::local(KEY.as_bytes(), ISSUER, AUDIENCE, ""),
    )
}

fn gateway_app() -> App<MemoryStore> {
    App::with_auth(
        MemoryStore::new(),
        HttpConfig::default(),
        Auth::Gateway {
            scope_prefix: "inventory/".into(),
        },
    )
}

/// A request a route answers without a database fixture: an id that does not exist, a valid body.
fn event(route: &Route) -> Event {
    let path = route
        .path
        .replace("{id}", "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f")
        .replace("{file}", "index.html");
    let event = Event::v2(route.method, route.path, &path);
    match route.endpoint {
        Endpoint::CreateProduct => event.json(&json!({ "sku": "AUTH-1", "name": "Mug", "price_minor": 1, "currency": "EUR" })),
        Endpoint::UpdateProduct => event.json(&json!({ "name": "Renamed" })),
        Endpoint::AdjustStock => event.json(&json!({ "delta": 1, "reason": "received" })),
        Endpoint::CreateOrder => event.json(&json!({ "lines": [{ "product_id": "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f", "quantity": 1 }] })),
        _ => event,
    }
}

async fn call(app: &App<MemoryStore>, route: &Route, event: Event) -> Response<Body> {
    app.handle(route.endpoint, event.request()).await
}

fn problem(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}

fn challenge(response: &Response<Body>) -> &str {
    response.headers()["www-authenticate"].to_str().unwrap()
}

/// What the route answers without any authentication (a fresh store each time).
async fn open_answer(route: &Route) -> u16 {
    call(
        &App::new(MemoryStore::new(), HttpConfig::default()),
        route,
        event(route),
    )
    .await
    .status()
    .as_u16()
}

fn api_routes() -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(|r| r.endpoint != Endpoint::Docs)
}

#[tokio::test]
async fn in_local_mode_every_route_needs_a_valid_token_with_its_scope() {
    for route in api_routes() {
        let app = local_app();
        let name = format!("{} {}", route.method, route.path);
        let Some(scope) = route.endpoint.scope() else {
            assert_eq!(
                call(&app, route, event(route)).await.status(),
                200,
                "{name} is public"
            );
            continue;
        };
        let scope = scope.as_str();

        let none = call(&app, route, event(route)).await;
        assert_eq!(none.status(), 401, "{name}");
        assert_eq!(problem(&none)["code"], "unauthorized");
        assert_eq!(challenge(&none), "Bearer");

        let bad_tokens = [
            "not-a-jwt".to_owned(),
            token_with(
                "another-key-of-at-least-32-characters!!",
                json!({ "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "scope": scope }),
            ),
            token_with(
                KEY,
                json!({ "iss": ISSUER, "aud": AUDIENCE, "exp": now() - 600, "scope": scope }),
            ),
            token_with(
                KEY,
                json!({ "iss": "someone-else", "aud": AUDIENCE, "exp": now() + 600, "scope": scope }),
            ),
            token_with(
                KEY,
                json!({ "iss": ISSUER, "aud": "another-api", "exp": now() + 600, "scope": scope }),
            ),
            token_with(
                KEY,
                json!({ "iss": ISSUER, "aud": AUDIENCE, "scope": scope }),
            ),
        ];
        for (i, bad) in bad_tokens.iter().enumerate() {
            let response = call(
                &app,
                route,
                event(route).header("authorization", &format!("Bearer {bad}")),
            )
            .await;
            assert_eq!(response.status(), 401, "{name}, bad token {i}");
            assert_eq!(challenge(&response), "Bearer error=\"invalid_token\"");
        }
        let basic = call(
            &app,
            route,
            event(route).header("authorization", "Basic dXNlcjpwYXNz"),
        )
        .await;
        assert_eq!(basic.status(), 401, "{name}: not a bearer token");

        let others: Vec<&str> = inventory::http::routes::Scope::ALL
            .iter()
            .map(|s| s.as_str())
            .filter(|s| *s != scope)
            .collect();
        let wrong = call(
            &app,
            route,
            event(route).header("authorization", &format!("Bearer {}", token(&others))),
        )
        .await;
        assert_eq!(wrong.status(), 403, "{name}");
        assert_eq!(problem(&wrong)["code"], "forbidden");
        assert!(
            problem(&wrong)["detail"].as_str().unwrap().contains(scope),
            "the 403 names {scope}"
        );
        assert_eq!(
            challenge(&wrong),
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"")
        );

        let right = call(
            &app,
            route,
            event(route).header("authorization", &format!("Bearer {}", token(&[scope]))),
        )
        .await;
        assert_eq!(
            right.status().as_u16(),
            open_answer(route).await,
            "{name} with {scope}"
        );
        assert!(!matches!(right.status().as_u16(), 401 | 403), "{name}");
    }
}

#[tokio::test]
async fn in_gateway_mode_every_route_checks_the_scope_of_the_verified_claims_again() {
    for route in api_routes() {
        let app = gateway_app();
        let name = format!("{} {}", route.method, route.path);
        let Some(scope) = route.endpoint.scope() else {
            assert_eq!(
                call(&app, route, event(route)).await.status(),
                200,
                "{name} is public"
            );
            continue;
        };
        let scope = scope.as_str();
        let claims = |scopes: &str| json!({ "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool", "sub": "client-a", "client_id": "client-a", "scope": scopes, "token_use": "access" });

        // No authorizer ran (a route left unprotected by mistake): refused all the same.
        let none = call(&app, route, event(route)).await;
        assert_eq!(none.status(), 401, "{name}");

        let others: Vec<String> = inventory::http::routes::Scope::ALL
            .iter()
            .filter(|s| s.as_str() != scope)
            .map(|s| format!("inventory/{}", s.as_str()))
            .collect();
        let wrong = call(
            &app,
            route,
            event(route).authorizer_claims(&claims(&others.join(" "))),
        )
        .await;
        assert_eq!(wrong.status(), 403, "{name}");
        let detail = problem(&wrong)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(&format!("inventory/{scope}")), "{detail}");
        // A scope without the resource server's prefix is another scope.
        let unprefixed = call(&app, route, event(route).authorizer_claims(&claims(scope))).await;
        assert_eq!(unprefixed.status(), 403, "{name}");

        let right = call(
            &app,
            route,
            event(route).authorizer_claims(&claims(&format!("inventory/{scope}"))),
        )
        .await;
        assert_eq!(
            right.status().as_u16(),
            open_answer(route).await,
            "{name} with {scope}"
        );
    }
}

/// Idempotency keys belong to their caller: the same key from two callers is two requests, and neither can
/// replay (or be refused because of) the other's.
#[tokio::test]
async fn the_same_idempotency_key_from_two_callers_is_two_requests() {
    let app = local_app();
    let create = ROUTES
        .iter()
        .find(|r| r.endpoint == Endpoint::CreateProduct)
        .unwrap();
    let new_product = Event::v2("POST", "/products", "/products")
        .json(&json!({ "sku": "KEYS", "name": "Mug", "price_minor": 1, "currency": "EUR", "on_hand": 10 }))
        .header("authorization", &format!("Bearer {}", token(&["products.write"])));
    let product = call(&app, create, new_product).await;
    let product: Value = serde_json::from_slice(product.body()).unwrap();
    let order = ROUTES
        .iter()
        .find(|r| r.endpoint == Endpoint::CreateOrder)
        .unwrap();
    let place = |caller: &str| {
        let token = token_with(
            KEY,
            json!({ "sub": caller, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "scope": "orders.write" }),
        );
        Event::v2("POST", "/orders", "/orders")
            .json(&json!({ "lines": [{ "product_id": product["id"], "quantity": 1 }] }))
            .header("authorization", &format!("Bearer {token}"))
            .header("idempotency-key", "shared-key-1")
    };
    let a = call(&app, order, place("client-a")).await;
    let b = call(&app, order, place("client-b")).await;
    let a_again = call(&app, order, place("client-a")).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (201, 201));
    assert!(
        !b.headers().contains_key("idempotent-replayed"),
        "b is not a's replay"
    );
    assert_ne!(a.body(), b.body(), "two orders");
    assert_eq!(a_again.headers()["idempotent-replayed"], "true");
    assert_eq!(a_again.body(), a.body());
}

/// A request for an order placed with `Idempotency-Key: shared-key-1`, in gateway mode, with these claims.
fn keyed_order(claims: Value, product: &Value) -> Event {
    Event::v2("POST", "/orders", "/orders")
        .json(&json!({ "lines": [{ "product_id": product["id"], "quantity": 1 }], "customer_ref": "cart-of-the-first" }))
        .header("idempotency-key", "shared-key-1")
        .authorizer_claims(&claims)
}

/// A caller is the token's issuer and subject: two users of one app client, a `client_id` that is another
/// token's `sub`, or a subject of 3,000 characters never share (or break) an idempotency key.
#[tokio::test]
async fn a_caller_is_its_issuer_and_subject() {
    const POOL: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool";
    let app = gateway_app();
    let route = |endpoint| ROUTES.iter().find(|r| r.endpoint == endpoint).unwrap();
    let admin = json!({ "iss": POOL, "sub": "admin", "scope": "inventory/products.write" });
    let product = call(
        &app,
        route(Endpoint::CreateProduct),
        Event::v2("POST", "/products", "/products")
            .json(&json!({ "sku": "CALLERS", "name": "Mug", "price_minor": 1, "currency": "EUR", "on_hand": 100 }))
            .authorizer_claims(&admin),
    )
    .await;
    let product: Value = serde_json::from_slice(product.body()).unwrap();
    let user = |sub: &str, client_id: &str| json!({ "iss": POOL, "sub": sub, "client_id": client_id, "scope": "inventory/orders.write" });
    let first = call(
        &app,
        route(Endpoint::CreateOrder),
        keyed_order(user("user-1", "shop-app"), &product),
    )
    .await;
    assert_eq!(first.status(), 201);
    for (who, claims) in [
        (
            "another user of the same client",
            user("user-2", "shop-app"),
        ),
        (
            "a client whose id is the first's sub",
            user("shop-app", "user-1"),
        ),
        (
            "the same sub from another issuer",
            json!({ "iss": "https://issuer.example", "sub": "user-1", "scope": "inventory/orders.write" }),
        ),
        (
            "a subject of 3,000 characters",
            user(&"s".repeat(3000), "shop-app"),
        ),
    ] {
        let other = call(
            &app,
            route(Endpoint::CreateOrder),
            keyed_order(claims, &product),
        )
        .await;
        assert_eq!(other.status(), 201, "{who}: {:?}", problem(&other));
        assert!(
            !other.headers().contains_key("idempotent-replayed"),
            "{who} got the first's order"
        );
        assert_ne!(other.body(), first.body(), "{who}");
    }
    let again = call(
        &app,
        route(Endpoint::CreateOrder),
        keyed_order(user("user-1", "shop-app"), &product),
    )
    .await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.body(), first.body());

    // A token that does not say who it speaks for: 401, in both modes.
    for claims in [
        json!({ "iss": POOL, "client_id": "shop-app", "scope": "inventory/orders.write" }),
        json!({ "iss": POOL, "sub": "", "scope": "inventory/orders.write" }),
        json!({ "sub": "user-1", "scope": "inventory/orders.write" }),
    ] {
        let refused = call(
            &app,
            route(Endpoint::CreateOrder),
            keyed_order(claims.clone(), &product),
        )
        .await;
        assert_eq!(refused.status(), 401, "{claims}");
    }
    let caller = inventory::http::Caller::of(POOL, &"s".repeat(3000));
    assert_eq!(caller.0.len(), 64);
}

/// A caller's stored keys are bounded: past the limit a keyed write is 429 `too_many_keys` and places
/// nothing, while the same caller without a key, and another caller, go on.
#[tokio::test]
async fn a_caller_past_its_key_limit_is_429_and_nothing_is_written() {
    let app = App::with_auth(
        MemoryStore::new().with_key_limit(2),
        HttpConfig::default(),
        Auth::Gateway {
            scope_prefix: "inventory/".into(),
        },
    );
    let route = |endpoint| ROUTES.iter().find(|r| r.endpoint == endpoint).unwrap();
    let admin = json!({ "iss": ISSUER, "sub": "admin", "scope": "inventory/products.write inventory/products.read" });
    let product = call(
        &app,
        route(Endpoint::CreateProduct),
        Event::v2("POST", "/products", "/products")
            .json(&json!({ "sku": "LIMIT", "name": "Mug", "price_minor": 1, "currency": "EUR", "on_hand": 100 }))
            .authorizer_claims(&admin),
    )
    .await;
    let product: Value = serde_json::from_slice(product.body()).unwrap();
    let order = |sub: &str, key: Option<&str>| {
        let event = Event::v2("POST", "/orders", "/orders")
            .json(&json!({ "lines": [{ "product_id": product["id"], "quantity": 1 }] }))
            .authorizer_claims(
                &json!({ "iss": ISSUER, "sub": sub, "scope": "inventory/orders.write" }),
            );
        match key {
            Some(key) => event.header("idempotency-key", key),
            None => event,
        }
    };
    let place = async |sub: &str, key: Option<&str>| {
        call(&app, route(Endpoint::CreateOrder), order(sub, key)).await
    };
    for key in ["k1", "k2"] {
        assert_eq!(place("user-1", Some(key)).await.status(), 201);
    }
    let refused = place("user-1", Some("k3")).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let body = problem(&refused);
    assert_eq!(body["code"], "too_many_keys");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("2 Idempotency-Keys"),
        "{body}"
    );
    assert_eq!(
        place("user-1", Some("k1")).await.headers()["idempotent-replayed"],
        "true"
    );
    assert_eq!(
        place("user-1", None).await.status(),
        201,
        "a write without a key"
    );
    assert_eq!(
        place("user-2", Some("k3")).await.status(),
        201,
        "another caller"
    );
    let stock = call(
        &app,
        route(Endpoint::GetProduct),
        Event::v2(
            "GET",
            "/products/{id}",
            &format!("/products/{}", product["id"].as_str().unwrap()),
        )
        .authorizer_claims(&admin),
    )
    .await;
    let stock: Value = serde_json::from_slice(stock.body()).unwrap();
    assert_eq!(
        stock["reserved"], 4,
        "k1, k2, no key, user-2: the refused order reserved nothing"
    );
}

/// No log line, at `debug` level or above, holds a bearer token, its signature or the key that signs them: not
/// for a token accepted, refused or forged, nor one sent where no token belongs. (Every test of the binary, of
/// every module, logs into the same capture from the moment this one starts: their lines are searched too.)
#[tokio::test]
async fn no_log_line_holds_a_token_its_signature_or_the_key() {
    common::logs::capture();
    let app = local_app();
    let route = |endpoint| ROUTES.iter().find(|r| r.endpoint == endpoint).unwrap();
    let claims = |exp: u64| json!({ "sub": "logged-caller", "iss": ISSUER, "aud": AUDIENCE, "exp": exp, "scope": "products.read orders.write" });
    let tokens = [
        token_with(KEY, claims(now() + 600)),
        token_with(KEY, claims(now() - 600)),
        token_with(
            "another-key-of-at-least-32-characters!!",
            claims(now() + 600),
        ),
        token_with(
            KEY,
            json!({ "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "scope": "orders.write" }),
        ),
    ];
    let mut answers = Vec::new();
    for token in &tokens {
        for event in [
            Event::v2("GET", "/products", "/products"),
            Event::v2("POST", "/orders", "/orders")
                .json(&json!({ "lines": [{ "product_id": "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f", "quantity": 1 }] }))
                .header("idempotency-key", "logged-key"),
        ] {
            let endpoint = if event.request().method() == "GET" {
                Endpoint::ListProducts
            } else {
                Endpoint::CreateOrder
            };
            let event = event.header("authorization", &format!("Bearer {token}"));
            answers.push(call(&app, route(endpoint), event).await.status().as_u16());
        }
        // A token where none belongs: in the query string.
        let misplaced =
            Event::v2("GET", "/products", "/products").query(&[("access_token", token.as_str())]);
        answers.push(
            call(&app, route(Endpoint::ListProducts), misplaced)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        answers.iter().filter(|s| **s == 401).count(),
        10,
        "{answers:?}"
    );
    let logged = common::logs::captured();
    assert!(
        logged.contains("request refused") && logged.contains("route=\"/orders\""),
        "the logs were not captured: {logged}"
    );
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(signature.len() >= 20);
        assert!(!logged.contains(token.as_str()), "a token is in the logs");
        assert!(
            !logged.contains(signature),
            "a token's signature is in the logs"
        );
    }
    assert!(!logged.contains(KEY), "the signing key is in the logs");
    println!(
        "{} log lines hold no token, signature or key",
        logged.lines().count()
    );
}

/// Local tokens are held to what API Gateway's authorizer would accept, and a little more: every one of these
/// is a 401, none a 500.
#[tokio::test]
async fn in_local_mode_loose_tokens_are_refused() {
    let app = local_app();
    let route = ROUTES
        .iter()
        .find(|r| r.endpoint == Endpoint::ListProducts)
        .unwrap();
    let base = || json!({ "sub": "client-a", "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600, "scope": "products.read" });
    let with = |key: &str, value: Value| {
        let mut claims = base();
        claims[key] = value;
        claims
    };
    let without = |key: &str| {
        let mut claims = base();
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let ok = call(
        &app,
        route,
        event(route).header(
            "authorization",
            &format!("Bearer {}", token_with(KEY, base())),
        ),
    )
    .await;
    assert_eq!(ok.status(), 200, "{:?}", problem(&ok));
    for (what, claims) in [
        ("a future nbf", with("nbf", json!(now() + 3600))),
        (
            "an iat a year ahead",
            with("iat", json!(now() + 365 * 86_400)),
        ),
        (
            "a 100-year exp",
            with("exp", json!(now() + 100 * 365 * 86_400)),
        ),
        (
            "25 hours from iat to exp",
            with("exp", json!(now() + 25 * 3600)),
        ),
        (
            "a tab between scopes",
            with("scope", json!("orders.read\tproducts.read")),
        ),
        (
            "two spaces between scopes",
            with("scope", json!("orders.read  products.read")),
        ),
        (
            "a scope after a leading space",
            with("scope", json!(" products.read")),
        ),
        ("no sub", without("sub")),
        ("an empty sub", with("sub", json!(""))),
        ("no exp", without("exp")),
        ("a 9 KB token", with("padding", json!("x".repeat(9 * 1024)))),
    ] {
        let token = token_with(KEY, claims);
        let refused = call(
            &app,
            route,
            event(route).header("authorization", &format!("Bearer {token}")),
        )
        .await;
        assert_eq!(refused.status(), 401, "{what}: {:?}", problem(&refused));
    }
}

/// Every answer says not to sniff its type; the API's answers, data of one caller, are never stored by a cache.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = local_app();
    for route in api_routes() {
        for request in [
            event(route),
            event(route).header("authorization", "Bearer not-a-token"),
        ] {
            let response = call(&app, route, request).await;
            let name = format!("{} {} ({})", route.method, route.path, response.status());
            assert_eq!(
                response.headers()["x-content-type-options"],
                "nosniff",
                "{name}"
            );
            assert_eq!(response.headers()["cache-control"], "no-store", "{name}");
        }
    }
}

/// HEAD is answered wherever GET is: the same status and headers, no body, and the length of the body left out.
#[tokio::test]
async fn head_is_answered_as_get_without_the_body() {
    let app = local_app();
    let token = token(&["products.read", "orders.read", "stock.read", "events.read"]);
    for route in api_routes().filter(|r| r.method == "GET") {
        let name = format!("HEAD {}", route.path);
        let get = call(
            &app,
            route,
            event(route).header("authorization", &format!("Bearer {token}")),
        )
        .await;
        let path = route
            .path
            .replace("{id}", "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f");
        let head = Event::v2("HEAD", route.path, &path)
            .header("authorization", &format!("Bearer {token}"));
        let head = app.handle(route.endpoint, head.request()).await;
        assert_eq!(head.status(), get.status(), "{name}");
        assert!(head.body().is_empty(), "{name}");
        assert_eq!(
            head.headers()["content-type"],
            get.headers()["content-type"],
            "{name}"
        );
        assert_eq!(
            head.headers()["content-length"],
            get.body().len().to_string().as_str(),
            "{name}"
        );
    }
}
