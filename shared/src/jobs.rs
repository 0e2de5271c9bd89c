//! The scheduled jobs: functions that serve no route but run on a schedule (an EventBridge schedule in the
//! template), or locally once or every few seconds (`--every N`, as `scripts/serve` and `docker compose up`
//! run them). Each run works in bounded batches until nothing is left or its deadline is near.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::aws::eventbridge::EventBus;
use crate::bootstrap::{close_on_shutdown, store_from_env};
use crate::domain::{Deadline, Error};
use crate::postgres::PgStore;
use crate::service::{Delivered, Inventory};

/// One kind of scheduled work.
pub trait Job: Send + Sync + 'static {
    /// The binary's name, for its usage line.
    const NAME: &'static str;

    /// One run, answering a summary of what it did.
    fn run(
        inventory: &Inventory<PgStore>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<serde_json::Value, Error>> + Send;
}

/// Rows deleted per statement by the purges: a short transaction, whatever the backlog.
pub const PURGE_BATCH: u32 = 1000;

/// How long delivered events are kept: 7 days unless `EVENT_RETENTION_DAYS` says otherwise (1 to 365).
pub fn event_retention() -> Result<Duration, Error> {
    let days = std::env::var("EVENT_RETENTION_DAYS")
        .ok()
        .map_or(Ok(7), |days| days.trim().parse::<u64>())
        .ok()
        .filter(|days| (1..=365).contains(days))
        .ok_or_else(|| {
            Error::internal("EVENT_RETENTION_DAYS must be a whole number from 1 to 365")
        })?;
    Ok(Duration::from_secs(days * 24 * 60 * 60))
}

/// Deletes idempotency keys older than their 24 hours and delivered events older than their retention
/// (hourly).
#[derive(Debug)]
pub struct Purge;

impl Job for Purge {
    const NAME: &'static str = "purge-expired";

    async fn run(
        inventory: &Inventory<PgStore>,
        deadline: Deadline,
    ) -> Result<serde_json::Value, Error> {
        let keys = inventory.purge_expired_keys(PURGE_BATCH, deadline).await?;
        let events = inventory
            .purge_delivered_events(event_retention()?, PURGE_BATCH, deadline)
            .await?;
        Ok(serde_json::json!({ "deleted_keys": keys, "deleted_events": events }))
    }
}

/// Orders expired per call of the store: each in a transaction of its own.
pub const EXPIRE_BATCH: u32 = 100;

/// Cancels pending orders whose hold has ended and releases their stock (every minute).
#[derive(Debug)]
pub struct ExpireOrders;

impl Job for ExpireOrders {
    const NAME: &'static str = "expire-orders";

    async fn run(
        inventory: &Inventory<PgStore>,
        deadline: Deadline,
    ) -> Result<serde_json::Value, Error> {
        let mut total = 0;
        loop {
            let expired = inventory.expire_orders(EXPIRE_BATCH, deadline).await?;
            total += expired;
            if expired < EXPIRE_BATCH as usize || deadline.remaining() < Duration::from_secs(1) {
                return Ok(serde_json::json!({ "expired": total }));
            }
        }
    }
}

/// Events read and sent per step of the publisher: ten `PutEvents` calls at most.
pub const PUBLISH_BATCH: u32 = 100;

/// How long the publisher waits before looking again when nothing is waiting.
pub const PUBLISH_POLL: Duration = Duration::from_millis(500);

/// The bus the publisher sends to, made once per process from the environment.
fn event_bus() -> Result<&'static EventBus, Error> {
    static BUS: OnceLock<EventBus> = OnceLock::new();
    if let Some(bus) = BUS.get() {
        return Ok(bus);
    }
    let name = std::env::var("EVENT_BUS_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::internal("publishing events needs EVENT_BUS_NAME"))?;
    let bus = EventBus::from_environment(name).map_err(Error::internal)?;
    Ok(BUS.get_or_init(|| bus))
}

/// Delivers the event feed to the EventBridge bus (`EVENT_BUS_NAME`), in feed order, at least once: each run
/// sends what is waiting, then keeps looking every [`PUBLISH_POLL`] until its deadline is near, so an event
/// reaches the bus within a second or so of its commit (the template runs it every minute, for most of the
/// minute). A run that dies half-way leaves the delivered position where it was: the next one sends the same
/// events again, and consumers drop repeats by event id.
#[derive(Debug)]
pub struct PublishEvents;

impl Job for PublishEvents {
    const NAME: &'static str = "publish-events";

    async fn run(
        inventory: &Inventory<PgStore>,
        deadline: Deadline,
    ) -> Result<serde_json::Value, Error> {
        let bus = event_bus()?;
        let mut published = 0;
        while deadline.remaining() > PUBLISH_POLL + Duration::from_secs(1) {
            let step = inventory
                .publish_events(bus, PUBLISH_BATCH, deadline)
                .await?;
            match step {
                Delivered::Sent(0) => tokio::time::sleep(PUBLISH_POLL).await,
                Delivered::Sent(sent) => {
                    published += sent;
                    tracing::info!(sent, published, "published events");
                }
                Delivered::Overtaken => {
                    tracing::warn!("another publisher is running: this one stops");
                    break;
                }
            }
        }
        Ok(serde_json::json!({ "published": published }))
    }
}

/// The `main` of a job's binary: on Lambda, serves the schedule's invocations; anywhere else runs once
/// against `DATABASE_URL`, or every N seconds with `--every N`.
pub async fn main<J: Job>() -> Result<(), lambda_runtime::Error> {
    crate::logging::init();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return serve::<J>().await;
    }
    let every = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => None,
        [flag, seconds] if flag == "--every" => Some(Duration::from_secs(
            seconds
                .parse()
                .map_err(|_| "--every takes a number of seconds")?,
        )),
        _ => return Err(format!("usage: {} [--every SECONDS]", J::NAME).into()),
    };
    let (store, config) = store_from_env().await?;
    let inventory = Inventory::new(store);
    // SIGTERM (`docker compose down`, where a job is PID 1 and would otherwise ignore it) or Ctrl-C stops the
    // job at once, between runs or in the middle of one: a transaction cut off rolls back, and the next run
    // (of this job or another) does what it left.
    let stop = stop_signal()?;
    tokio::pin!(stop);
    loop {
        let deadline = Deadline::after(config.http.request_timeout);
        let outcome = tokio::select! {
            outcome = J::run(&inventory, deadline) => outcome,
            () = &mut stop => break,
        };
        match outcome {
            Ok(summary) => tracing::info!(job = J::NAME, %summary, "run done"),
            Err(error) if every.is_some() => tracing::error!(job = J::NAME, %error, "run failed"),
            Err(error) => return Err(error.into()),
        }
        let Some(period) = every else {
            return Ok(());
        };
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = &mut stop => break,
        }
    }
    tracing::info!(job = J::NAME, "stopped");
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, lambda_runtime::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Serves the job's scheduled invocations on Lambda: each runs it once within the invocation's deadline
/// and answers the summary.
async fn serve<J: Job>() -> Result<(), lambda_runtime::Error> {
    let (store, config) = store_from_env().await?;
    close_on_shutdown(Arc::new(OnceLock::from(store.pool().clone()))).await;
    let inventory = Arc::new(Inventory::new(store));
    let http = config.http;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let inventory = Arc::clone(&inventory);
            let deadline = http.deadline(Some(event.context.deadline));
            async move {
                let summary = J::run(&inventory, deadline).await?;
                tracing::info!(job = J::NAME, %summary, "run done");
                Ok::<_, lambda_runtime::Error>(summary)
            }
        },
    ))
    .await
}
