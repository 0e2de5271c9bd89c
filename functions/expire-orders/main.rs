//! Cancels pending orders whose hold has ended (cancel reason `expired`) and releases their stock through
//! the ledger (`order_expired`): each order in a transaction of its own, skipping any order or product a
//! live request holds.
//!
//! - On Lambda: the handler of the template's EventBridge schedule, every minute.
//! - Anywhere else: once against `DATABASE_URL`, or every N seconds with `--every N` (as `scripts/serve` and
//!   `docker compose up` run it).

// The release build nests this binary's two entry points' futures deeper than the default limit allows when
// it computes their layout.
#![recursion_limit = "256"]

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    inventory::jobs::main::<inventory::jobs::ExpireOrders>().await
}
