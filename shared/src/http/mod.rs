//! The HTTP edge: turns API Gateway requests into service calls and results into responses.

pub mod auth;
pub mod docs;
pub mod dto;
pub mod handlers;
pub mod idempotency;
pub mod openapi;
pub mod problems;
pub mod request;
pub mod response;
pub mod routes;

use std::time::{Duration, Instant};

use lambda_http::{Body, Request, RequestExt, Response};

use crate::domain::Deadline;
use crate::ports::Store;
use crate::service::Inventory;
pub use auth::{Auth, Caller};
pub use handlers::Handler;
pub use response::ApiError;
pub use routes::{Endpoint, ROUTES, Route};

/// The one log line of every request.
pub(crate) fn log_request(method: &str, route: &str, response: &Response<Body>, started: Instant) {
    tracing::info!(
        method,
        route,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
}

/// Limits of the HTTP edge.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Longest time a request may take when no Lambda deadline is nearer (e.g. locally).
    pub request_timeout: Duration,
    /// Time kept back from the Lambda deadline to roll back and answer before the invocation is cut off.
    pub deadline_margin: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long an order holds its stock when its request does not say.
    pub order_hold: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            deadline_margin: Duration::from_millis(500),
            body_limit: 64 * 1024,
            order_hold: crate::domain::order::DEFAULT_HOLD,
        }
    }
}

impl HttpConfig {
    /// An invocation's deadline: the configured timeout, or the Lambda invocation deadline (milliseconds
    /// since the Unix epoch) less the margin when that is sooner.
    pub fn deadline(&self, lambda_deadline_ms: Option<u64>) -> Deadline {
        Deadline::of_invocation(
            self.request_timeout,
            self.deadline_margin,
            lambda_deadline_ms,
        )
    }
}

/// Everything a request needs, built once per cold start and shared by all requests.
#[derive(Debug)]
pub struct App<S> {
    pub inventory: Inventory<S>,
    pub config: HttpConfig,
    pub auth: Auth,
}

impl<S: Store> App<S> {
    /// An app without authentication, for tests and tools; functions are built with [`App::with_auth`]
    /// from their configuration, which cannot leave authentication out by omission.
    pub fn new(store: S, config: HttpConfig) -> Self {
        Self::with_auth(store, config, Auth::Off)
    }

    pub fn with_auth(store: S, config: HttpConfig, auth: Auth) -> Self {
        Self {
            inventory: Inventory::new(store),
            config,
            auth,
        }
    }

    /// Serves one request of the endpoint `H`. Never fails: every error is a response (an `Err` would make
    /// API Gateway answer 502 with a body of its own). Logs one line per request.
    pub async fn serve<H: Handler>(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let deadline = self.deadline(&request);
        let response = match self.auth.authorize(&request, H::ENDPOINT) {
            Ok(caller) => match request::check_query(&request) {
                Ok(()) => H::handle(self, &request, &caller, deadline).await,
                Err(refused) => Err(refused),
            },
            Err(refused) => Err(refused),
        }
        .unwrap_or_else(ApiError::into_response);
        let response = self::response::finish(&request, response, self::response::Caching::NoStore);
        let route = H::route();
        log_request(route.method, route.path, &response, started);
        response
    }

    /// Serves one request of `endpoint`, chosen at run time (tests and tools; a function binary serves its
    /// one endpoint with [`App::serve`]).
    pub async fn handle(&self, endpoint: Endpoint, request: Request) -> Response<Body> {
        handlers::dispatch(self, endpoint, request).await
    }

    /// The request's deadline (see [`HttpConfig::deadline`]).
    fn deadline(&self, request: &Request) -> Deadline {
        self.config
            .deadline(request.lambda_context_ref().map(|context| context.deadline))
    }
}
