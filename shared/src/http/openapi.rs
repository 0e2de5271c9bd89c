//! The OpenAPI 3.1 document, generated from the code: the request and response types are the ones the
//! handlers use, and a test holds the documented operations equal to the route table.
//!
//! Each operation is described by the `#[utoipa::path]` attribute of its handler (in `handlers.rs`, and
//! `docs.rs` for the documentation itself), and listed beside the handlers (`handlers::Operations`, made by the
//! same list that declares them); this module gathers them, with the shared schemas and responses.

use utoipa::OpenApi;

use super::dto::{
    AdjustmentReason, CreateFulfilmentBody, CreateOrderBody, CreateProductBody, CreateReturnBody,
    ExtendHoldBody, OrderLineBody, ReturnLineBody, StockAdjustmentBody, UpdateProductBody,
};
use super::problems::{
    BadRequest, Conflict, Forbidden, IdempotencyKeyReused, Internal, NotFound, PayloadTooLarge,
    PreconditionFailed, TooManyKeys, Unauthorized, Unavailable, ValidationFailed,
};
use super::response::{Problem, ProblemCode};
use super::routes::{ROUTES, Scope};
use super::{docs, handlers};
use crate::domain::event::EventType;
use crate::domain::order::{CancelReason, OrderStatus, ReturnReason};
use crate::domain::stock::MovementReason;
use crate::domain::{Currency, FieldError, Remaining, Shortage};
use crate::views::{
    AdjustmentView, EventView, FeedView, FulfilmentLineView, FulfilmentMadeView, FulfilmentView,
    HealthView, MovementView, OrderLineView, OrderView, ProductView, ReturnLineView,
    ReturnMadeView, ReturnView,
};

impl docs::Docs {
    /// The docs of the API's OpenAPI document.
    pub fn new() -> Self {
        Self::of(document().to_string())
    }
}

/// The OpenAPI document of the whole API, as JSON.
pub fn document() -> serde_json::Value {
    // The operations: every handler's, listed where the handlers are, and the documentation's own.
    let openapi = ApiDoc::openapi()
        .merge_from(handlers::Operations::openapi())
        .merge_from(docs::Operations::openapi());
    let mut document = serde_json::to_value(openapi).expect("the OpenAPI document serializes");
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
    document["paths"]["/orders"]["post"]["responses"]["201"]["links"] = links(&[
        "get_order",
        "cancel_order",
        "fulfill_order",
        "create_fulfilment",
        "list_fulfilments",
        "create_return",
        "list_returns",
        "extend_hold",
    ]);
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
            "An order was placed, cancelled, expired, fulfilled in part or in full, had units returned, or its \
             hold was extended: \
             `data` is the order after it.",
            vec![
                EventType::OrderPlaced,
                EventType::OrderCancelled,
                EventType::OrderExpired,
                EventType::OrderFulfilled,
                EventType::OrderPartiallyFulfilled,
                EventType::OrderReturned,
                EventType::OrderHoldExtended,
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
    components(
        schemas(
            ProductView, OrderView, OrderLineView, FulfilmentView, FulfilmentLineView, FulfilmentMadeView,
            CreateFulfilmentBody, Remaining, ReturnView, ReturnLineView, ReturnMadeView, CreateReturnBody,
            ReturnLineBody, ReturnReason, MovementView, AdjustmentView, HealthView, CreateProductBody,
            UpdateProductBody, StockAdjustmentBody, AdjustmentReason, CreateOrderBody, OrderLineBody, ExtendHoldBody, OrderStatus,
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
