//! The start of every function: once per cold start, set up logging, configuration and a lazily connecting
//! pool, then serve requests of one endpoint until Lambda shuts the instance down.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use lambda_http::service_fn;

use crate::config::{AuthConfig, Config, Database};
use crate::http::{App, Auth, Handler};
use crate::postgres::iam::IamAuth;
use crate::postgres::{self, PgStore};

/// Runs a function's `serve` future on the runtime its instance needs: one thread when it serves one invocation
/// at a time (Lambda's default), so that nothing hands work between threads and no worker threads are started
/// before the first poll; worker threads when `AWS_LAMBDA_MAX_CONCURRENCY` lets it serve several at once
/// (Lambda Managed Instances). A function's `main` is `block_on(run::<CreateOrder>())`.
pub fn block_on(
    serve: impl Future<Output = Result<(), lambda_http::Error>>,
) -> Result<(), lambda_http::Error> {
    let concurrent = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|value| value.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 1);
    let mut runtime = if concurrent {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    runtime.enable_all().build()?.block_on(serve)
}

/// Serves the endpoint `H` (see [`Handler`]): `bootstrap::run::<CreateOrder>()`. Logs are JSON with the
/// Lambda request id on every line when `AWS_LAMBDA_LOG_FORMAT=json` (as on Lambda), readable text otherwise. With `AWS_LAMBDA_MAX_CONCURRENCY`
/// above 1 (Lambda Managed Instances) requests are served concurrently, one pool for all of them.
pub async fn run<H: Handler>() -> Result<(), lambda_http::Error> {
    crate::logging::init();
    // The graceful-shutdown extension's registration, a round trip to the runtime API that must end before the
    // first poll, goes out first: the configuration is read while it is under way.
    let pool_to_close = Arc::new(OnceLock::new());
    let registration = tokio::spawn(close_on_shutdown(Arc::clone(&pool_to_close)));
    // On one thread, the registration starts (connects, sends) only when this task yields.
    tokio::task::yield_now().await;
    let auth = AuthConfig::from_env()
        .and_then(|auth| auth.load())
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    if let Auth::Off = auth {
        tracing::warn!(
            "AUTH_MODE=off: every route is open to anyone, without a token; for experiments only"
        );
    }
    let (store, config) = store_from_env().await?;
    let _ = pool_to_close.set(store.pool().clone());
    let app = Arc::new(App::with_auth(store, config.http, auth));
    registration.await?;
    lambda_http::run_concurrent(service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.serve::<H>(request).await) }
    }))
    .await
}

/// The store the environment describes (see [`Config::from_env`]), with a pool that connects lazily.
pub async fn store_from_env() -> Result<(PgStore, Config), lambda_http::Error> {
    let config =
        Config::from_env().inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let store = match config.database.clone() {
        Database::Url(options) => PgStore::new(postgres::connect_lazy(*options, &config.pool)),
        Database::Iam(target) => {
            let pool = postgres::connect_lazy(target.connect_options(), &config.pool);
            let iam = IamAuth::from_environment(target).inspect_err(
                |error| tracing::error!(%error, "no AWS credentials for the database"),
            )?;
            PgStore::with_iam(pool, Arc::new(iam))
        }
    };
    Ok((store, config))
}

/// On SIGTERM (sent before Lambda tears the instance down) closes the pool's connections cleanly (the pool
/// `pool` holds by then, if any) and flushes what is still buffered of the logs.
pub(crate) async fn close_on_shutdown(pool: Arc<OnceLock<sqlx::PgPool>>) {
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move {
        if let Some(pool) = pool.get() {
            pool.close().await;
            tracing::info!("shut down: database connections closed");
        }
        let _ = std::io::stdout().flush();
    })
    .await;
}

/// Serves the docs function: the OpenAPI document and the Swagger UI. Needs no database.
pub async fn run_docs() -> Result<(), lambda_http::Error> {
    crate::logging::init();
    let docs = Arc::new(crate::http::docs::Docs::new());
    lambda_runtime::spawn_graceful_shutdown_handler(|| async {
        let _ = std::io::stdout().flush();
    })
    .await;
    lambda_http::run_concurrent(service_fn(move |request| {
        let docs = Arc::clone(&docs);
        async move { Ok::<_, Infallible>(docs.handle(&request)) }
    }))
    .await
}
