//! Deletes idempotency keys older than their 24-hour lifetime and delivered events older than their
//! retention (`EVENT_RETENTION_DAYS`, 7 by default), in bounded batches.
//!
//! - On Lambda: the handler of the template's hourly EventBridge schedule.
//! - Anywhere else: once against `DATABASE_URL`, or every N seconds with `--every N` (as `scripts/serve` and
//!   `docker compose up` run it).

// The release build nests this binary's two entry points' futures deeper than the default limit allows when
// it computes their layout.
#![recursion_limit = "256"]

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    inventory::jobs::main::<inventory::jobs::Purge>().await
}
