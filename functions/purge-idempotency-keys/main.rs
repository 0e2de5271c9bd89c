//! Deletes idempotency keys older than their 24-hour lifetime, in bounded batches.
//!
//! - On Lambda: the handler of the template's hourly EventBridge schedule.
//! - Anywhere else: once against `DATABASE_URL`, or every N seconds with `--every N` (as `scripts/serve` and
//!   `docker compose up` run it).

// The release build nests this binary's two entry points' futures deeper than the default limit allows when
// it computes their layout.
#![recursion_limit = "256"]

use std::time::Duration;

use inventory::bootstrap::{PURGE_BATCH, store_from_env};
use inventory::domain::Deadline;
use inventory::service::Inventory;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return inventory::bootstrap::run_purge().await;
    }
    let every = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => None,
        [flag, seconds] if flag == "--every" => Some(Duration::from_secs(
            seconds
                .parse()
                .map_err(|_| "--every takes a number of seconds")?,
        )),
        _ => return Err("usage: purge-idempotency-keys [--every SECONDS]".into()),
    };
    inventory::logging::init();
    let (store, config) = store_from_env().await?;
    let inventory = Inventory::new(store);
    loop {
        let deadline = Deadline::after(config.http.request_timeout);
        match inventory.purge_expired_keys(PURGE_BATCH, deadline).await {
            Ok(deleted) => tracing::info!(deleted, "purged expired idempotency keys"),
            Err(error) if every.is_some() => tracing::error!(%error, "purge failed"),
            Err(error) => return Err(error.into()),
        }
        match every {
            Some(period) => tokio::time::sleep(period).await,
            None => return Ok(()),
        }
    }
}
