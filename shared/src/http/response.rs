//! Responses, and the one place where errors become statuses and problem documents (RFC 9457).

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::domain::{Error, FieldError, Remaining, Shortage};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// Everything a handler can fail with: a domain error, or a request the edge could not even parse.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, wrong content type, malformed path id or query parameter. The text describes the
    /// client's input only.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// No bearer token, or one that is malformed, expired, wrongly signed, or of another issuer or audience.
    #[error("unauthorized")]
    Unauthorized { token_given: bool },
    /// A valid token without the scope the route needs.
    #[error("forbidden: needs scope {scope}")]
    Forbidden { scope: String },
    #[error(transparent)]
    Domain(#[from] Error),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(detail.into())
    }
}

/// The body of every error response: an RFC 9457 problem document with a machine-readable `code`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the `code` tells problems apart.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    /// The HTTP status text.
    #[schema(example = "Conflict")]
    pub title: &'static str,
    #[schema(example = 409)]
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    pub code: ProblemCode,
    /// With `validation_failed` (and `not_found` for order lines): one entry per bad field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// With `insufficient_stock`: one entry per short line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shortages: Vec<Shortage>,
    /// With `beyond_remaining` (or `beyond_returnable`): one entry per line asked for beyond what it has left
    /// to ship (or shipped and has not had back).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<Remaining>,
}

/// What kind of problem it is; stable, for programs to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    BadRequest,
    ValidationFailed,
    NotFound,
    InsufficientStock,
    BeyondRemaining,
    BeyondReturnable,
    SkuTaken,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    IdempotencyKeyReused,
    RequestInProgress,
    TooManyKeys,
    Unavailable,
    OutcomeUnknown,
    Internal,
}

impl ApiError {
    /// The problem document of this error, its status included.
    fn problem(self) -> Problem {
        let remaining = match &self {
            Self::Domain(
                Error::BeyondRemaining(remaining) | Error::BeyondReturnable(remaining),
            ) => remaining.clone(),
            _ => vec![],
        };
        let (status, code, detail, errors, shortages) = match self {
            Self::BadRequest(detail) => (
                StatusCode::BAD_REQUEST,
                ProblemCode::BadRequest,
                detail,
                vec![],
                vec![],
            ),
            Self::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ProblemCode::PayloadTooLarge,
                format!("the request body must not be larger than {limit} bytes"),
                vec![],
                vec![],
            ),
            Self::Unauthorized { .. } => (
                StatusCode::UNAUTHORIZED,
                ProblemCode::Unauthorized,
                "a valid bearer token is needed: Authorization: Bearer <token>".to_owned(),
                vec![],
                vec![],
            ),
            Self::Forbidden { scope } => (
                StatusCode::FORBIDDEN,
                ProblemCode::Forbidden,
                format!("the token does not carry the scope this route needs: {scope}"),
                vec![],
                vec![],
            ),
            Self::Domain(error) => match error {
                Error::Validation(errors) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::ValidationFailed,
                    "the request is not valid; see errors".to_owned(),
                    errors,
                    vec![],
                ),
                Error::CursorElsewhere(what) => (
                    StatusCode::BAD_REQUEST,
                    ProblemCode::BadRequest,
                    format!("query parameter cursor: cursor belongs to another {what}'s list"),
                    vec![],
                    vec![],
                ),
                Error::NotFound(what) => (
                    StatusCode::NOT_FOUND,
                    ProblemCode::NotFound,
                    format!("no such {what}"),
                    vec![],
                    vec![],
                ),
                Error::UnknownProducts(errors) => (
                    StatusCode::NOT_FOUND,
                    ProblemCode::NotFound,
                    "some ordered products do not exist; see errors".to_owned(),
                    errors,
                    vec![],
                ),
                Error::InsufficientStock(shortages) => (
                    StatusCode::CONFLICT,
                    ProblemCode::InsufficientStock,
                    "not enough stock is available for some lines; see shortages".to_owned(),
                    vec![],
                    shortages,
                ),
                Error::BeyondRemaining(_) => (
                    StatusCode::CONFLICT,
                    ProblemCode::BeyondRemaining,
                    "some lines ask for more than the order has left to fulfil; see remaining".to_owned(),
                    vec![],
                    vec![],
                ),
                Error::BeyondReturnable(_) => (
                    StatusCode::CONFLICT,
                    ProblemCode::BeyondReturnable,
                    "some lines ask to return more than shipped and has not come back; see remaining"
                        .to_owned(),
                    vec![],
                    vec![],
                ),
                Error::SkuTaken => (
                    StatusCode::CONFLICT,
                    ProblemCode::SkuTaken,
                    "another product has this sku".to_owned(),
                    vec![],
                    vec![],
                ),
                Error::Conflict(detail) => (
                    StatusCode::CONFLICT,
                    ProblemCode::Conflict,
                    detail,
                    vec![],
                    vec![],
                ),
                Error::PreconditionFailed => (
                    StatusCode::PRECONDITION_FAILED,
                    ProblemCode::PreconditionFailed,
                    "the product has changed since the ETag given in If-Match; fetch it again"
                        .to_owned(),
                    vec![],
                    vec![],
                ),
                Error::IdempotencyKeyReused => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::IdempotencyKeyReused,
                    "this Idempotency-Key was first used with a different request; use a new key for a new \
                     request"
                        .to_owned(),
                    vec![],
                    vec![],
                ),
                Error::TooManyKeys { limit } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    ProblemCode::TooManyKeys,
                    format!(
                        "this caller holds {limit} Idempotency-Keys, the most it may (each is kept 24 hours); \
                         nothing was changed: wait for older keys to expire, or send the request without a key"
                    ),
                    vec![],
                    vec![],
                ),
                Error::RequestInProgress => (
                    StatusCode::CONFLICT,
                    ProblemCode::RequestInProgress,
                    "a request with this Idempotency-Key is still in progress; retry after the given seconds \
                     to get its response"
                        .to_owned(),
                    vec![],
                    vec![],
                ),
                Error::OutcomeUnknown(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::OutcomeUnknown,
                    "the connection to the database was lost while the change was being committed: it may or \
                     may not have happened; retry with the same Idempotency-Key to find out"
                        .to_owned(),
                    vec![],
                    vec![],
                ),
                Error::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::Unavailable,
                    "the service is temporarily unable to answer; retry shortly".to_owned(),
                    vec![],
                    vec![],
                ),
                Error::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ProblemCode::Internal,
                    "an unexpected error occurred".to_owned(),
                    vec![],
                    vec![],
                ),
            },
        };
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
            errors,
            shortages,
            remaining,
        }
    }

    /// Logs the error (with its whole cause chain when the fault is ours) and renders it.
    pub fn into_response(self) -> Response<Body> {
        // RFC 6750: a 401 names the scheme, and what was wrong with a token that was given; a 403 the scope.
        let challenge = match &self {
            Self::Unauthorized { token_given: false } => Some("Bearer".to_owned()),
            Self::Unauthorized { token_given: true } => {
                Some("Bearer error=\"invalid_token\"".to_owned())
            }
            Self::Forbidden { scope } => Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        };
        if let Self::Domain(Error::Unavailable(_) | Error::OutcomeUnknown(_) | Error::Internal(_)) =
            &self
        {
            tracing::error!(error = %chain(&self), "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json(status, &problem);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE
            || problem.code == ProblemCode::RequestInProgress
        {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

/// An error and its sources, outermost first, as the logs show it (the one helper the jobs use too).
pub use crate::logging::chain;

/// A JSON response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => {
            let mut response = Response::new(Body::Text(text));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => ApiError::Domain(Error::internal(error)).into_response(),
    }
}

/// An empty response (204).
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Whether a response may be kept by caches between the API and the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// The API's answers: data of one caller, or of the moment (`Cache-Control: no-store`).
    NoStore,
    /// The documentation, the same for everyone.
    Allowed,
}

/// The headers every response carries: no content sniffing (a JSON body is never run as a script or page), and,
/// on the API's answers, no caching anywhere between the API and the client.
fn secure_headers(response: &mut Response<Body>, caching: Caching) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if caching == Caching::NoStore {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// What every answer goes through last: to a HEAD request, the GET answer without its body; then the
/// [`secure_headers`].
pub fn finish(request: &Request, response: Response<Body>, caching: Caching) -> Response<Body> {
    let mut response = if request.method() == lambda_http::http::Method::HEAD {
        without_body(response)
    } else {
        response
    };
    secure_headers(&mut response, caching);
    response
}

/// The answer to a HEAD request: the GET answer's status and headers, with the length of the body it leaves out.
fn without_body(mut response: Response<Body>) -> Response<Body> {
    let length = match response.body() {
        Body::Empty => 0,
        Body::Text(text) => text.len(),
        Body::Binary(bytes) => bytes.len(),
        _ => 0,
    };
    *response.body_mut() = Body::Empty;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// Adds a header whose value this crate produced (an id, a number): always valid.
pub fn with_header(
    mut response: Response<Body>,
    name: header::HeaderName,
    value: &str,
) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}
