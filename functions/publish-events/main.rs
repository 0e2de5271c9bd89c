//! Delivers the event feed to the stack's EventBridge bus (`EVENT_BUS_NAME`), in feed order, at least once:
//! consumers drop repeats by event id.
//!
//! - On Lambda: the handler of the template's EventBridge schedule, every minute; each run keeps looking for
//!   new events for most of the minute, so that events reach the bus soon after their commit.
//! - Anywhere else: against `DATABASE_URL` and the EventBridge endpoint of `AWS_ENDPOINT_URL_EVENTBRIDGE` (a
//!   stand-in, or AWS itself with credentials in the environment), once or every N seconds with `--every N`.
//!   Locally, `GET /events` serves the same feed without it.

// The release build nests this binary's two entry points' futures deeper than the default limit allows when
// it computes their layout.
#![recursion_limit = "256"]

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    inventory::jobs::main::<inventory::jobs::PublishEvents>().await
}
