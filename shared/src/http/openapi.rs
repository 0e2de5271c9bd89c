//! The OpenAPI 3.1 document, generated from the code: the request and response types are the ones the
//! handlers use, and a test holds the documented operations equal to the route table.
//!
//! Each operation is described by the `#[utoipa::path]` attribute of its handler (in `handlers.rs`, and
//! `docs.rs` for the documentation itself); this module gathers them, with the shared schemas and responses.

use utoipa::{OpenApi, ToResponse};

use super::dto::{
    AdjustmentReason, CreateOrderBody, CreateProductBody, OrderLineBody, StockAdjustmentBody,
    UpdateProductBody,
};
use super::response::{Problem, ProblemCode};
use super::routes::{ROUTES, Scope};
use super::{docs, handlers};
use crate::domain::event::EventType;
use crate::domain::order::{CancelReason, OrderStatus};
use crate::domain::stock::MovementReason;
use crate::domain::{Currency, FieldError, Shortage};
use crate::views::{
    AdjustmentView, EventView, FeedView, HealthView, MovementView, OrderLineView, OrderView,
    ProductView,
};

/// The OpenAPI document of the whole API, as JSON.
pub fn document() -> serde_json::Value {
    let mut document =
        serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    // The accepted currencies are data, not something an attribute can list: take them from the domain.
    document["components"]["schemas"]["CreateProductBody"]["properties"]["currency"]["enum"] =
        serde_json::json!(Currency::codes());
    // Links from what a creation returns to the operations on it, for clients and for stateful testing.
    let links = |operations: &[&str]| -> serde_json::Value {
        operations
            .iter()
            .map(|operation| {
                let link = serde_json::json!({"operationId": operation, "parameters": {"id": "$response.body#/id"}});
                (operation.to_string(), link)
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    document["paths"]["/products"]["post"]["responses"]["201"]["links"] = links(&[
        "get_product",
        "update_product",
        "adjust_stock",
        "list_stock_movements",
        "delete_product",
    ]);
    document["paths"]["/orders"]["post"]["responses"]["201"]["links"] =
        links(&["get_order", "cancel_order", "fulfill_order"]);
    for route in ROUTES.iter().filter(|r| r.endpoint.is_idempotent()) {
        document_idempotency(&mut document["paths"][route.path][route.method.to_lowercase()]);
    }
    document_security(&mut document);
    document_events(&mut document);
    document
}

/// The schema of each kind of event: which types there are, and what `data` holds for each.
fn document_events(document: &mut serde_json::Value) {
    let kinds = [
        (
            "OrderEvent",
            "An order was placed, cancelled, expired or fulfilled: `data` is the order after it.",
            vec![
                EventType::OrderPlaced,
                EventType::OrderCancelled,
                EventType::OrderExpired,
                EventType::OrderFulfilled,
            ],
            "OrderView",
        ),
        (
            "ProductEvent",
            "A product was created, changed or deleted, or a change took its available stock to or below its              threshold (`stock.low`): `data` is the product after it (as it was, when deleted).",
            vec![
                EventType::ProductCreated,
                EventType::ProductUpdated,
                EventType::ProductDeleted,
                EventType::StockLow,
            ],
            "ProductView",
        ),
        (
            "StockAdjustedEvent",
            "A product's stock was adjusted: `data` is the ledger row and the product after it.",
            vec![EventType::StockAdjusted],
            "AdjustmentView",
        ),
    ];
    let schemas = &mut document["components"]["schemas"];
    let mut refs = Vec::new();
    for (name, description, types, data) in kinds {
        let types: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        schemas[name] = serde_json::json!({
            "description": description,
            "allOf": [
                {"$ref": "#/components/schemas/EventView"},
                {"type": "object", "properties": {
                    "type": {"type": "string", "enum": types},
                    "data": {"$ref": format!("#/components/schemas/{data}")},
                }},
            ],
        });
        refs.push(serde_json::json!({"$ref": format!("#/components/schemas/{name}")}));
    }
    schemas["FeedView"]["properties"]["items"]["items"] = serde_json::json!({"oneOf": refs});
}

/// The bearer token every route but the public ones needs, with the route's scope, so that Swagger UI's
/// "Authorize" works; and their 401 and 403.
fn document_security(document: &mut serde_json::Value) {
    let scopes: Vec<String> = Scope::ALL
        .iter()
        .map(|s| format!("`{}`: {}", s.as_str(), s.description()))
        .collect();
    document["components"]["securitySchemes"]["bearer"] = serde_json::json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": format!(
            "An access token carrying the operation's scope in its `scope` claim. On AWS, an OAuth 2.0 \
    client-credentials token of the stack's Cognito user pool (scopes prefixed with the resource server, e.g. \
    `inventory/orders.write`), or of the issuer given at deploy time; locally, `scripts/token SCOPE...` makes one. \
    Scopes: {}.",
            scopes.join("; ")
        ),
    });
    for route in ROUTES {
        let Some(scope) = route.endpoint.scope() else {
            continue;
        };
        let operation = &mut document["paths"][route.path][route.method.to_lowercase()];
        operation["security"] = serde_json::json!([{ "bearer": [scope.as_str()] }]);
        let description = operation["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let needs = format!("Needs the scope `{}`.", scope.as_str());
        operation["description"] = if description.is_empty() {
            needs.into()
        } else {
            format!("{description}\n\n{needs}").into()
        };
        operation["responses"]["401"] =
            serde_json::json!({"$ref": "#/components/responses/Unauthorized"});
        operation["responses"]["403"] =
            serde_json::json!({"$ref": "#/components/responses/Forbidden"});
    }
}

/// Adds what an idempotent operation takes and answers: the `Idempotency-Key` header, the
/// `Idempotent-Replayed` header of its success, and the refusals of a key (422 reused, 409 in progress, 429
/// too many).
fn document_idempotency(operation: &mut serde_json::Value) {
    let key = serde_json::json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "Makes the request safe to retry: the first successful response is stored with the key \
    for 24 hours, and a repeat of the same request (same route, path and body) gets it back, marked \
    `Idempotent-Replayed: true`, without a second effect. The same key with a different request is 422 \
    `idempotency_key_reused`; while the first request is still running, a repeat waits up to a second, then is \
    409 `request_in_progress` with `Retry-After`. A request that fails stores nothing, so its key can be retried. \
    Keys belong to the caller, the token's issuer and subject (`iss`, `sub`) together: the same key from another \
    caller (another user of the same app client included) is another request. A cancel or fulfil that changes \
    nothing (the order was there already) keeps nothing under its key. A caller holds at most 100000 keys at a \
    time: a request whose key would be one more is 429 `too_many_keys` and changes nothing. Make them unique per \
    request (a UUID v4, say).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]{1,255}$"},
        "example": "5f0c4b0e-3c1a-4a6e-9a43-2d1c1c7f6a90",
    });
    match operation["parameters"].as_array_mut() {
        Some(parameters) => parameters.push(key),
        None => operation["parameters"] = serde_json::json!([key]),
    }
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        if status.starts_with('2') {
            response["headers"]["Idempotent-Replayed"] = serde_json::json!({
                "description": "`true` when this is the stored response of an earlier request with the same \
            Idempotency-Key; absent otherwise",
                "schema": {"type": "string", "enum": ["true"]},
            });
        }
    }
    responses.entry("422").or_insert_with(
        || serde_json::json!({"$ref": "#/components/responses/IdempotencyKeyReused"}),
    );
    responses
        .entry("429")
        .or_insert_with(|| serde_json::json!({"$ref": "#/components/responses/TooManyKeys"}));
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inventory and order API",
        description = "Products with stock, and orders that reserve it atomically: two customers can never buy \
the last unit twice.\n\nMoney is an integer number of minor units (`price_minor: 1250` is 12.50 EUR). Ids are \
UUID v7. Lists are paginated with an opaque `cursor`: pass a page's `next_cursor` to get the next one. Every \
error is an RFC 9457 problem document (`application/problem+json`) with a stable `code`; a 503 carries \
`Retry-After`.\n\nRetrying a write: every POST takes an `Idempotency-Key` header. A 503 `unavailable` means \
nothing was changed; a 503 `outcome_unknown` means the connection was lost while the change was being \
committed, so it may or may not have happened. Either way, retry with the same `Idempotency-Key`: a change \
that did happen is answered with its original response (and `Idempotent-Replayed: true`), never made twice. \
Keys are kept 24 hours, per caller.\n\nAuthentication: every operation but health and the documentation \
needs a bearer token carrying its scope (see each operation, and the `bearer` security scheme): 401 \
`unauthorized` without a valid token (one with no `sub` included), 403 `forbidden` (naming the scope) without \
the scope. Every answer carries `X-Content-Type-Options: nosniff`, and the API's answers `Cache-Control: \
no-store`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        handlers::create_product, handlers::list_products, handlers::get_product, handlers::update_product,
        handlers::delete_product, handlers::adjust_stock, handlers::list_stock_movements, handlers::create_order,
        handlers::list_orders, handlers::get_order, handlers::cancel_order, handlers::fulfill_order,
        handlers::list_events, handlers::health, docs::openapi_json, docs::swagger_ui, docs::swagger_asset,
    ),
    components(
        schemas(
            ProductView, OrderView, OrderLineView, MovementView, AdjustmentView, HealthView, CreateProductBody,
            UpdateProductBody, StockAdjustmentBody, AdjustmentReason, CreateOrderBody, OrderLineBody, OrderStatus,
            MovementReason, Problem, ProblemCode, FieldError, Shortage, CancelReason, EventType, EventView,
            FeedView,
        ),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, ValidationFailed, IdempotencyKeyReused, TooManyKeys, Internal, Unavailable),
    ),
    tags(
        (name = "products", description = "The catalogue and its stock"),
        (name = "stock", description = "Stock adjustments and the stock ledger"),
        (name = "orders", description = "Orders, which reserve stock until they are fulfilled or cancelled"),
        (name = "events", description = "What happened: every change as an event, in commit order"),
        (name = "operations", description = "Health and documentation"),
    ),
)]
struct ApiDoc;

/// Malformed JSON, a content type other than JSON, a malformed id in the path or a bad query parameter.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({"type": "about:blank", "title": "Bad Request", "status": 400, "code": "bad_request",
        "detail": "the id in the path is not a UUID"})
)]
pub struct BadRequest(pub Problem);

/// No bearer token, or one that is malformed, expired, wrongly signed, or of another issuer or audience.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_token\"` when a token was given")),
    example = json!({"type": "about:blank", "title": "Unauthorized", "status": 401, "code": "unauthorized",
        "detail": "a valid bearer token is needed: Authorization: Bearer <token>"})
)]
pub struct Unauthorized(pub Problem);

/// The token is valid but does not carry the scope the operation needs; `detail` names it.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer error=\"insufficient_scope\", scope=\"...\"`")),
    example = json!({"type": "about:blank", "title": "Forbidden", "status": 403, "code": "forbidden",
        "detail": "the token does not carry the scope this route needs: orders.write"})
)]
pub struct Forbidden(pub Problem);

/// No such resource; for order lines, `errors` names every unknown product.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({"type": "about:blank", "title": "Not Found", "status": 404, "code": "not_found",
        "detail": "no such product"})
)]
pub struct NotFound(pub Problem);

/// `insufficient_stock` (with `shortages` for every short line), `sku_taken`, `conflict` (an illegal
/// status change, stock below what is reserved, deleting a product that still has stock), or
/// `request_in_progress` (another request with the same `Idempotency-Key` is still running: retry after
/// `Retry-After` seconds to get its response).
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "With `request_in_progress`: seconds to wait before retrying")),
    example = json!({"type": "about:blank", "title": "Conflict", "status": 409, "code": "insufficient_stock",
        "detail": "not enough stock is available for some lines; see shortages",
        "shortages": [{"product_id": "01936f8e-7b3a-7c2e-9d4f-5a6b7c8d9e0f", "requested": 3, "available": 1}]})
)]
pub struct Conflict(pub Problem);

/// `If-Match` does not match the product's current `ETag`.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({"type": "about:blank", "title": "Precondition Failed", "status": 412,
        "code": "precondition_failed", "detail": "the product has changed since the ETag given in If-Match; fetch it again"})
)]
pub struct PreconditionFailed(pub Problem);

/// The body is larger than the limit (64 KiB by default).
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({"type": "about:blank", "title": "Payload Too Large", "status": 413,
        "code": "payload_too_large", "detail": "the request body must not be larger than 65536 bytes"})
)]
pub struct PayloadTooLarge(pub Problem);

/// Fields failed validation; `errors` has a JSON pointer for each.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
        "code": "validation_failed", "detail": "the request is not valid; see errors",
        "errors": [{"pointer": "/lines/0/quantity", "detail": "quantity must be between 1 and 1000000"}]})
)]
pub struct ValidationFailed(pub Problem);

/// The `Idempotency-Key` was first used with a different request (another route, path or body). Nothing
/// was changed; use a new key for a new request.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
        "code": "idempotency_key_reused",
        "detail": "this Idempotency-Key was first used with a different request; use a new key for a new request"})
)]
pub struct IdempotencyKeyReused(pub Problem);

/// The caller already holds the most `Idempotency-Key`s allowed (100000, each kept 24 hours). Nothing was
/// changed; a request without a key is not limited.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({"type": "about:blank", "title": "Too Many Requests", "status": 429,
        "code": "too_many_keys",
        "detail": "this caller holds 100000 Idempotency-Keys, the most it may (each is kept 24 hours); nothing was changed: wait for older keys to expire, or send the request without a key"})
)]
pub struct TooManyKeys(pub Problem);

/// Something unexpected; the details are in the logs only.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({"type": "about:blank", "title": "Internal Server Error", "status": 500,
        "code": "internal", "detail": "an unexpected error occurred"})
)]
pub struct Internal(pub Problem);

/// `unavailable`: the database is unreachable, a lock could not be had in time (locks are waited for up to
/// a second), or the request's deadline was about to pass; the request was rolled back and nothing changed.
/// `outcome_unknown`: the connection was lost, or the deadline passed, after the change was sent to be
/// committed: it may or may not have happened. In both cases retry after `Retry-After` seconds with the same
/// `Idempotency-Key`, which answers a change that did happen with its original response.
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait before retrying")),
    example = json!({"type": "about:blank", "title": "Service Unavailable", "status": 503,
        "code": "unavailable", "detail": "the service is temporarily unable to answer; retry shortly"})
)]
pub struct Unavailable(pub Problem);
