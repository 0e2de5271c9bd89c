//! The refusals each operation documents: one OpenAPI response per kind of problem, with an example. The
//! handlers name them in their `#[utoipa::path]` attributes; the document gathers them.

use utoipa::ToResponse;

use super::response::Problem;

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

/// `insufficient_stock` (with `shortages` for every short line), `beyond_remaining` (a fulfilment asking for
/// more than some lines have left, with `remaining` for each), `beyond_returnable` (a return asking for more
/// than shipped and has not come back, with `remaining` for each), `sku_taken`, `conflict` (an illegal
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
