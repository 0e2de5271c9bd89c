//! Reading requests: path ids, query parameters, headers and JSON bodies, each failure an [`ApiError`].

use lambda_http::http::header;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::response::ApiError;
use super::routes::Route;
use crate::domain::{Cursor, Error, FieldError, IfMatch, PageRequest};

/// The `{id}` of a route's path: from the event's path parameters (API Gateway, `cargo lambda watch`), or
/// read off the raw path by aligning it with the route template from the end (which also copes with a
/// stage prefix in REST API events).
pub fn path_id(request: &Request, route: &Route) -> Result<Uuid, ApiError> {
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
    Uuid::try_parse(&raw).map_err(|_| ApiError::bad_request("the id in the path is not a UUID"))
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
pub fn page_request(request: &Request) -> Result<PageRequest, ApiError> {
    let mut page = PageRequest::default();
    if let Some(limit) = query_parsed(request, "limit", PageRequest::parse_limit)? {
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
    serde_path_to_error::deserialize(value).map_err(|error| {
        let pointer = pointer(error.path());
        let detail = error.into_inner().to_string();
        ApiError::Domain(Error::Validation(vec![FieldError::new(pointer, detail)]))
    })
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
