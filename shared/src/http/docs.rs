//! The docs function: `GET /openapi.json`, and the Swagger UI at `/swagger/` with every asset served from
//! the binary (no CDN, no network).

use std::sync::Arc;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::problems::NotFound;
use super::response::{ApiError, Caching, finish, with_header};
use crate::domain::Error;

/// The rendered document and the Swagger UI configuration, built once per cold start.
pub struct Docs {
    openapi: String,
    swagger: Arc<utoipa_swagger_ui::Config<'static>>,
}

impl std::fmt::Debug for Docs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docs")
            .field("openapi_bytes", &self.openapi.len())
            .finish_non_exhaustive()
    }
}

impl Default for Docs {
    fn default() -> Self {
        Self::new()
    }
}

/// The operations of the docs function (each described by its `#[utoipa::path]`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(openapi_json, swagger_ui, swagger_asset))]
pub(super) struct Operations;

impl Docs {
    /// The docs of `openapi`, the document as JSON (see `Docs::new` for the API's own).
    pub fn of(openapi: String) -> Self {
        Self {
            openapi,
            swagger: Arc::new(utoipa_swagger_ui::Config::new(["/openapi.json"])),
        }
    }

    /// Serves one request; every path the docs function is routed is answered here.
    pub fn handle(&self, request: &Request) -> Response<Body> {
        let started = std::time::Instant::now();
        let path = request.uri().path();
        let response = match path {
            "/openapi.json" => openapi_json(self),
            // The page's assets are relative to it, so it must be reached below /swagger/. (Its index.html,
            // rather than /swagger/ itself: an HTTP API cannot route a path that ends with a slash.)
            "/swagger" => {
                let mut redirect = Response::new(Body::Empty);
                *redirect.status_mut() = StatusCode::PERMANENT_REDIRECT;
                with_header(redirect, header::LOCATION, "/swagger/index.html")
            }
            "/swagger/" => swagger_ui(self),
            _ => swagger_asset(self, path.strip_prefix("/swagger/").unwrap_or(path)),
        };
        let mut response = finish(request, response, Caching::Allowed);
        let is_page = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
        if is_page {
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(SWAGGER_CSP),
            );
        }
        super::log_request("GET", path, &response, started);
        response
    }
}

/// The Swagger UI page's policy: its scripts, styles, fonts and images from this API only (Swagger UI sets inline
/// styles, and draws icons from `data:` URIs), requests to this API only, and never inside another site's frame.
pub const SWAGGER_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object, content_type = "application/json")),
)]
pub fn openapi_json(docs: &Docs) -> Response<Body> {
    file(docs.openapi.clone().into_bytes(), "application/json")
}

/// Swagger UI for this document, every asset served by the API itself.
#[utoipa::path(
    get, path = "/swagger/", tag = "operations",
    responses((status = 200, description = "The Swagger UI page", body = String, content_type = "text/html")),
)]
pub fn swagger_ui(docs: &Docs) -> Response<Body> {
    swagger_asset(docs, "")
}

/// A file of the Swagger UI page (`index.html`, scripts, styles, icons).
#[utoipa::path(
    get, path = "/swagger/{file}", tag = "operations",
    params(("file" = String, Path, description = "File name, e.g. `index.html`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/html"), (String = "text/css"), (String = "text/javascript"),
            (String = "application/javascript"), (Vec<u8> = "image/png"))),
        (status = 404, response = NotFound),
    ),
)]
pub fn swagger_asset(docs: &Docs, file_name: &str) -> Response<Body> {
    match utoipa_swagger_ui::serve(file_name, Arc::clone(&docs.swagger)) {
        Ok(Some(asset)) => {
            let mut response = file(asset.bytes.into_owned(), &asset.content_type);
            if asset.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => ApiError::Domain(Error::NotFound("documentation file")).into_response(),
        Err(error) => ApiError::Domain(Error::internal(error.to_string())).into_response(),
    }
}

fn file(bytes: Vec<u8>, content_type: &str) -> Response<Body> {
    let mut response = Response::new(Body::Binary(bytes));
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
