//! The OpenAPI document against the code: every route documented and nothing else, every operation with
//! its error responses, and the docs function serving the document and a Swagger UI that needs no network.

use std::collections::BTreeSet;

use inventory::http::docs::Docs;
use inventory::http::openapi::document;
use inventory::http::{Endpoint, ROUTES};
use serde_json::Value;

use crate::common::Event;

fn spec() -> Value {
    document()
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let spec = spec();
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[test]
fn the_document_is_openapi_3_1_with_the_errors_of_the_contract() {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let codes: Vec<&str> = spec["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "bad_request",
        "validation_failed",
        "not_found",
        "insufficient_stock",
        "sku_taken",
        "conflict",
        "precondition_failed",
        "payload_too_large",
        "idempotency_key_reused",
        "request_in_progress",
        "unavailable",
        "outcome_unknown",
        "internal",
    ] {
        assert!(codes.contains(&code), "{code} is not documented");
    }
    let retry_after = &spec["components"]["responses"]["Unavailable"]["headers"]["Retry-After"];
    assert!(retry_after.is_object(), "503 documents Retry-After");
}

#[test]
fn every_api_operation_documents_its_failures() {
    let spec = spec();
    for route in ROUTES.iter().filter(|r| r.endpoint != Endpoint::Docs) {
        let operation = &spec["paths"][route.path][route.method.to_lowercase()];
        let responses = operation["responses"].as_object().unwrap();
        let mut expected = vec!["500", "503"];
        if route.path.contains("{id}") {
            expected.extend(["400", "404"]);
        }
        if operation.get("requestBody").is_some() {
            expected.extend(["400", "413", "422"]);
        }
        if operation["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["in"] == "query"))
        {
            expected.push("400");
        }
        for status in expected {
            let response = &responses[status];
            assert!(
                response.is_object(),
                "{} {} does not document {status}",
                route.method,
                route.path
            );
            let reference = response["$ref"].as_str().unwrap_or_default();
            assert!(
                reference.starts_with("#/components/responses/"),
                "{status} of {}: {response}",
                route.path
            );
        }
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{} has no success",
            route.path
        );
    }
}

#[test]
fn every_idempotent_operation_documents_its_key_and_replays() {
    let spec = spec();
    for route in ROUTES.iter().filter(|r| r.endpoint != Endpoint::Docs) {
        let operation = &spec["paths"][route.path][route.method.to_lowercase()];
        let key = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "Idempotency-Key");
        assert_eq!(
            key.is_some(),
            route.endpoint.is_idempotent(),
            "{} {}",
            route.method,
            route.path
        );
        if !route.endpoint.is_idempotent() {
            continue;
        }
        let key = key.unwrap();
        assert_eq!(key["in"], "header");
        assert_eq!(key["schema"]["maxLength"], 255);
        let responses = operation["responses"].as_object().unwrap();
        let (_, success) = responses.iter().find(|(s, _)| s.starts_with('2')).unwrap();
        assert!(
            success["headers"]["Idempotent-Replayed"].is_object(),
            "{}",
            route.path
        );
        assert!(responses["409"].is_object(), "{} documents 409", route.path);
        assert!(responses["422"].is_object(), "{} documents 422", route.path);
    }
    assert!(
        spec["components"]["responses"]["Conflict"]["headers"]["Retry-After"].is_object(),
        "409 request_in_progress documents Retry-After"
    );
}

#[test]
fn the_document_lists_exactly_the_accepted_currencies() {
    let spec = spec();
    let listed =
        spec["components"]["schemas"]["CreateProductBody"]["properties"]["currency"]["enum"]
            .as_array()
            .unwrap()
            .clone();
    assert_eq!(listed.len(), inventory::domain::Currency::codes().len());
    for code in &listed {
        assert!(
            inventory::domain::Currency::parse(code.as_str().unwrap()).is_ok(),
            "{code}"
        );
    }
}

#[test]
fn links_lead_from_a_created_resource_to_existing_operations() {
    let spec = spec();
    let operation_ids: BTreeSet<String> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| {
            METHODS
                .iter()
                .filter_map(|m| item.get(*m)?["operationId"].as_str().map(str::to_owned))
        })
        .collect();
    for path in ["/products", "/orders"] {
        let links = spec["paths"][path]["post"]["responses"]["201"]["links"]
            .as_object()
            .unwrap();
        assert!(!links.is_empty());
        for link in links.values() {
            assert!(
                operation_ids.contains(link["operationId"].as_str().unwrap()),
                "{link}"
            );
        }
    }
}

#[test]
fn location_and_etag_are_documented_where_they_are_sent() {
    let spec = spec();
    let headers = |path: &str, method: &str, status: &str| {
        spec["paths"][path][method]["responses"][status]["headers"].clone()
    };
    assert!(headers("/products", "post", "201")["Location"].is_object());
    assert!(headers("/products", "post", "201")["ETag"].is_object());
    assert!(headers("/products/{id}", "get", "200")["ETag"].is_object());
    assert!(headers("/products/{id}", "patch", "200")["ETag"].is_object());
    assert!(headers("/orders", "post", "201")["Location"].is_object());
}

fn get(docs: &Docs, path: &str) -> lambda_http::Response<lambda_http::Body> {
    let route = ROUTES
        .iter()
        .find(|r| r.endpoint == Endpoint::Docs)
        .unwrap();
    docs.handle(&Event::v2("GET", route.path, path).request())
}

#[test]
fn the_docs_function_serves_the_document() {
    let docs = Docs::new();
    let response = get(&docs, "/openapi.json");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(served, spec());
}

#[test]
fn the_swagger_page_and_all_its_assets_come_from_the_function() {
    let docs = Docs::new();
    for path in ["/swagger/", "/swagger/index.html"] {
        let response = get(&docs, path);
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        // A policy that lets the page run on its own files only, and never in another site's frame; the page
        // has no inline script for it to refuse.
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self';",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                policy.contains(directive),
                "{path}: {directive} in {policy}"
            );
        }
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let page = String::from_utf8(response.body().to_vec()).unwrap();
        assert!(page.contains("swagger-ui"), "{path}");
        assert!(
            !page.contains("<script>") && !page.contains("onload="),
            "{path}: an inline script"
        );
        for remote in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(
                !page.contains(remote),
                "the page loads nothing from elsewhere ({remote})"
            );
        }
        // Every asset the page refers to is served too.
        for asset in page.split(['"', '\'']).filter(|s| s.starts_with("./")) {
            let asset_path = format!("/swagger/{}", &asset[2..]);
            assert_eq!(get(&docs, &asset_path).status(), 200, "{asset_path}");
        }
    }
    let initializer = get(&docs, "/swagger/swagger-initializer.js");
    let script = String::from_utf8(initializer.body().to_vec()).unwrap();
    assert!(
        script.contains("/openapi.json"),
        "the UI is pointed at this API's document"
    );
    let missing = get(&docs, "/swagger/nope.js");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let bare = get(&docs, "/swagger");
    assert_eq!(
        (
            bare.status().as_u16(),
            bare.headers()["location"].to_str().unwrap()
        ),
        (308, "/swagger/index.html")
    );
}

#[test]
fn every_operation_documents_the_scope_of_the_route_table() {
    let spec = spec();
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for route in ROUTES {
        let operation = &spec["paths"][route.path][route.method.to_lowercase()];
        match route.endpoint.scope() {
            Some(scope) => {
                assert_eq!(
                    operation["security"],
                    serde_json::json!([{ "bearer": [scope.as_str()] }]),
                    "{} {}",
                    route.method,
                    route.path
                );
                for status in ["401", "403"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{} {status}",
                        route.path
                    );
                }
            }
            None => assert!(
                operation.get("security").is_none(),
                "{} is public",
                route.path
            ),
        }
    }
}

/// The example event in docs/api.md is one the API could send: it reads as the feed's `EventView`, its `data`
/// as an `OrderView`, its type and cursor as the API's own, and it carries nothing the types do not.
#[test]
fn the_example_event_of_the_docs_is_the_apis() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    let start = docs
        .find("An `order.placed` event, as `GET /events` lists it")
        .expect("docs/api.md shows an example event");
    let block = &docs[start..];
    let json_start = block.find("```json\n").expect("a JSON block") + "```json\n".len();
    let json_end = json_start + block[json_start..].find("```").expect("the block ends");
    let example: Value = serde_json::from_str(&block[json_start..json_end]).unwrap();
    let event: inventory::views::EventView = serde_json::from_value(example.clone()).unwrap();
    assert_eq!(
        event.event_type,
        inventory::domain::event::EventType::OrderPlaced
    );
    inventory::domain::event::Position::decode(&event.cursor).expect("a cursor the feed takes");
    let order: inventory::views::OrderView = serde_json::from_value(event.data.clone()).unwrap();
    assert_eq!(order.id, event.resource_id);
    assert_eq!(
        order.lines.iter().map(|l| l.line_total_minor).sum::<i64>(),
        order.total_minor
    );
    // Nothing more than the types hold: serialized back, the example is unchanged.
    assert_eq!(serde_json::to_value(&order).unwrap(), example["data"]);
    assert_eq!(serde_json::to_value(&event).unwrap(), example);
}
