//! Reading requests: path ids, query parameters, headers and JSON bodies, each failure an [`ApiError`].

use lambda_http::http::header;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::response::ApiError;
use super::routes::Route;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::{Cursor, Error, FieldError, Id, IfMatch, PageRequest, parse_limit};

/// The header that makes a write idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `{id}` of a route's path: from the event's path parameters (API Gateway, `cargo lambda watch`), or
/// read off the raw path by aligning it with the route template from the end (which also copes with a
/// stage prefix in REST API events).
pub fn path_id<I: Id>(request: &Request, route: &Route) -> Result<I, ApiError> {
    let from_parameters = request
        .path_parameters_ref()
        .and_then(|params| params.first("id"))
        .map(str::to_owned);
    let raw = from_parameters.or_else(|| {
        let template: Vec<&str> = route.path.trim_matches('/').split('/').collect();
        let at_from_end = template.len() - template.iter().position(|s| *s == "{id}")?;
        let path: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
        path.len()
            .checked_sub(at_from_end)
            .map(|index| path[index].to_owned())
    });
    let raw = raw.ok_or_else(|| ApiError::bad_request("the path has no id"))?;
    Uuid::try_parse(&raw)
        .map(I::from_uuid)
        .map_err(|_| ApiError::bad_request("the id in the path is not a UUID"))
}

/// Refuses a query string that no parameter could be read from faithfully: percent-encoded bytes that are not
/// UTF-8, or control characters (a NUL cannot even be stored in Postgres text).
pub fn check_query(request: &Request) -> Result<(), ApiError> {
    let raw = request.uri().query().unwrap_or_default();
    let decoded = percent_decode(raw);
    let text = std::str::from_utf8(&decoded)
        .map_err(|_| ApiError::bad_request("the query string is not valid UTF-8"))?;
    let parsed = request.query_string_parameters_ref();
    let values = parsed.iter().flat_map(|params| params.iter());
    if text.chars().any(char::is_control)
        || values
            .flat_map(|(name, value)| [name, value])
            .any(|s| s.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "the query string must not contain control characters",
        ));
    }
    Ok(())
}

/// `%XX` escapes and `+` of a URL query, decoded to bytes (a malformed escape is kept as it is).
fn percent_decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// The `Idempotency-Key` header, if present: 1 to 255 visible ASCII characters, or a 400.
pub fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::bad_request("Idempotency-Key may contain only visible ASCII characters")
    })?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(ApiError::bad_request)
}

/// A query parameter, if present.
pub fn query<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .query_string_parameters_ref()
        .and_then(|params| params.first(name))
}

/// A query parameter parsed with `parse`; a value that does not parse is a 400.
pub fn query_parsed<T>(
    request: &Request,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ApiError> {
    query(request, name)
        .map(|value| {
            parse(value).map_err(|detail| {
                ApiError::bad_request(format!("query parameter {name}: {detail}"))
            })
        })
        .transpose()
}

/// `limit` and `cursor`.
pub fn page_request<K: Id>(request: &Request) -> Result<PageRequest<K>, ApiError> {
    let mut page = PageRequest::default();
    if let Some(limit) = query_parsed(request, "limit", parse_limit)? {
        page.limit = limit;
    }
    page.after = query_parsed(request, "cursor", Cursor::decode)?;
    Ok(page)
}

/// The `If-Match` precondition, if any.
pub fn if_match(request: &Request) -> Option<IfMatch> {
    request
        .headers()
        .get(header::IF_MATCH)
        .map(|value| IfMatch::parse(value.to_str().unwrap_or_default()))
}

/// The body as `T`: over `limit` bytes is a 413; not JSON (by content type or by syntax) is a 400; JSON of
/// the wrong shape (a wrong type, an unknown field) is a 422 pointing at the offending value.
pub fn json_body<T: DeserializeOwned>(request: &Request, limit: usize) -> Result<T, ApiError> {
    json_body_value(request, limit).map(|(body, _)| body)
}

/// [`json_body`], with the JSON value it was read from.
pub fn json_body_value<T: DeserializeOwned>(
    request: &Request,
    limit: usize,
) -> Result<(T, serde_json::Value), ApiError> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::bad_request(
            "the body must be JSON, sent with Content-Type: application/json",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("the body is not valid JSON: {error}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let body = serde_path_to_error::deserialize(&value).map_err(|error| {
        let pointer = pointer(error.path());
        let detail = error.into_inner().to_string();
        ApiError::Domain(Error::Validation(vec![FieldError::new(pointer, detail)]))
    })?;
    Ok((body, value))
}

/// The RFC 6901 JSON pointer of a serde path.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .map(|token| format!("/{token}"))
        .collect()
}
