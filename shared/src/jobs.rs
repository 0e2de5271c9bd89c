//! The scheduled jobs: functions that serve no route but run on a schedule (an EventBridge schedule in the
//! template), or locally once or every few seconds (`--every N`, as `scripts/serve` and `docker compose up`
//! run them). Each run works in bounded batches until nothing is left or its deadline is near.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::aws::eventbridge::EventBus;
use crate::bootstrap::{close_on_shutdown, store_from_env};
use crate::config::ConfigError;
use crate::domain::{Deadline, Error};
use crate::logging::chain;
use crate::postgres::PgStore;
use crate::service::{Delivered, Inventory};

/// Why a job could not start: its configuration, named without its values.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// One kind of scheduled work.
pub trait Job: Sized + Send + Sync + 'static {
    /// The binary's name, for its usage line and its logs.
    const NAME: &'static str;

    /// What the job holds besides the service (the bus it publishes to, ...), made once at cold start.
    fn prepare(config: &JobConfig) -> Result<Self, StartError>;

    /// One run, answering a summary of what it did.
    fn run(
        &self,
        inventory: &Inventory<PgStore>,
        config: &JobConfig,
        deadline: Deadline,
    ) -> impl Future<Output = Result<serde_json::Value, Error>> + Send;
}

/// Rows deleted per statement by the purges: a short transaction, whatever the backlog.
pub const PURGE_BATCH: u32 = 1000;

/// Orders expired per call of the store: each in a transaction of its own.
pub const EXPIRE_BATCH: u32 = 100;

/// Events read and sent per step of the publisher: ten `PutEvents` calls at most.
pub const PUBLISH_BATCH: u32 = 100;

/// How long the publisher waits before looking again when nothing is waiting.
pub const PUBLISH_POLL: Duration = Duration::from_millis(500);

/// What the jobs run with, read once at cold start (with the database's variables: see
/// [`crate::config::Config::from_env`]); every variable, with its meaning and default, is in the one table of
/// them, in `docs/development.md`. `publish-events` also signs as the account in the environment and may have
/// its endpoint overridden (see [`EventBus::from_environment`]). The batches are fixed: [`PURGE_BATCH`],
/// [`EXPIRE_BATCH`], [`PUBLISH_BATCH`], and the publisher's [`PUBLISH_POLL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    pub run_timeout: Duration,
    pub deadline_margin: Duration,
    pub event_retention: Duration,
    pub event_bus: Option<String>,
    pub purge_batch: u32,
    pub expire_batch: u32,
    pub publish_batch: u32,
    pub publish_poll: Duration,
}

impl JobConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from any source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let number = |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| {
            let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
                return Ok(default);
            };
            value
                .trim()
                .parse()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    name,
                    reason: format!(
                        "expected a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                })
        };
        // No run outlives a Lambda invocation (15 minutes).
        let run_timeout = number("REQUEST_TIMEOUT_MS", 10_000, 1..=900_000)?;
        let deadline_margin = number("DEADLINE_MARGIN_MS", 500, 0..=900_000)?;
        let retention_days = number("EVENT_RETENTION_DAYS", 7, 1..=365)?;
        Ok(Self {
            run_timeout: Duration::from_millis(run_timeout),
            deadline_margin: Duration::from_millis(deadline_margin),
            event_retention: Duration::from_secs(retention_days * 24 * 60 * 60),
            event_bus: lookup("EVENT_BUS_NAME")
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty()),
            purge_batch: PURGE_BATCH,
            expire_batch: EXPIRE_BATCH,
            publish_batch: PUBLISH_BATCH,
            publish_poll: PUBLISH_POLL,
        })
    }

    /// A run's deadline: the configured timeout, or the Lambda invocation's deadline (milliseconds since the
    /// Unix epoch) less the margin when that is sooner.
    pub fn deadline(&self, lambda_deadline_ms: Option<u64>) -> Deadline {
        Deadline::of_invocation(self.run_timeout, self.deadline_margin, lambda_deadline_ms)
    }
}

/// Deletes idempotency keys older than their 24 hours and delivered events older than their retention
/// (hourly).
#[derive(Debug)]
pub struct Purge;

impl Job for Purge {
    const NAME: &'static str = "purge-expired";

    fn prepare(_: &JobConfig) -> Result<Self, StartError> {
        Ok(Self)
    }

    async fn run(
        &self,
        inventory: &Inventory<PgStore>,
        config: &JobConfig,
        deadline: Deadline,
    ) -> Result<serde_json::Value, Error> {
        let keys = inventory
            .purge_expired_keys(config.purge_batch, deadline)
            .await?;
        let events = inventory
            .purge_delivered_events(config.event_retention, config.purge_batch, deadline)
            .await?;
        Ok(serde_json::json!({ "deleted_keys": keys, "deleted_events": events }))
    }
}

/// Cancels pending orders whose hold has ended and releases their stock (every minute).
#[derive(Debug)]
pub struct ExpireOrders;

impl Job for ExpireOrders {
    const NAME: &'static str = "expire-orders";

    fn prepare(_: &JobConfig) -> Result<Self, StartError> {
        Ok(Self)
    }

    async fn run(
        &self,
        inventory: &Inventory<PgStore>,
        config: &JobConfig,
        deadline: Deadline,
    ) -> Result<serde_json::Value, Error> {
        let mut total = 0;
        loop {
            let expired = inventory
                .expire_orders(config.expire_batch, deadline)
                .await?;
            total += expired;
            if expired < config.expire_batch as usize
                || deadline.remaining() < Duration::from_secs(1)
            {
                return Ok(serde_json::json!({ "expired": total }));
            }
        }
    }
}

/// Delivers the event feed to the EventBridge bus (`EVENT_BUS_NAME`), in feed order, at least once: each run
/// sends what is waiting, then keeps looking every [`PUBLISH_POLL`] until its deadline is near, so an event
/// reaches the bus within a second or so of its commit (the template runs it every minute, for most of the
/// minute). A run that dies half-way leaves the delivered position where it was: the next one sends the same
/// events again, and consumers drop repeats by event id.
#[derive(Debug)]
pub struct PublishEvents {
    bus: EventBus,
}

impl Job for PublishEvents {
    const NAME: &'static str = "publish-events";

    fn prepare(config: &JobConfig) -> Result<Self, StartError> {
        let name = config
            .event_bus
            .clone()
            .ok_or(ConfigError::Missing("EVENT_BUS_NAME"))?;
        Ok(Self {
            bus: EventBus::from_environment(name)?,
        })
    }

    async fn run(
        &self,
        inventory: &Inventory<PgStore>,
        config: &JobConfig,
        deadline: Deadline,
    ) -> Result<serde_json::Value, Error> {
        let mut published = 0;
        while deadline.remaining() > config.publish_poll + Duration::from_secs(1) {
            let step = inventory
                .publish_events(&self.bus, config.publish_batch, deadline)
                .await?;
            match step {
                Delivered::Sent(0) => tokio::time::sleep(config.publish_poll).await,
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

/// The `main` of a job's binary: reads the configuration once; then on Lambda serves the schedule's
/// invocations, anywhere else runs once against `DATABASE_URL`, or every N seconds with `--every N`.
pub async fn main<J: Job>() -> Result<(), lambda_runtime::Error> {
    crate::logging::init();
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let every = if on_lambda {
        None
    } else {
        match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
            [] => None,
            [flag, seconds] if flag == "--every" => Some(Duration::from_secs(
                seconds
                    .parse()
                    .map_err(|_| "--every takes a number of seconds")?,
            )),
            _ => return Err(format!("usage: {} [--every SECONDS]", J::NAME).into()),
        }
    };
    let (config, job) = start::<J>()?;
    if on_lambda {
        return serve(job, config).await;
    }
    let (store, _) = store_from_env().await?;
    let inventory = Inventory::new(store);
    // SIGTERM (`docker compose down`, where a job is PID 1 and would otherwise ignore it) or Ctrl-C stops the
    // job at once, between runs or in the middle of one: a transaction cut off rolls back, and the next run
    // (of this job or another) does what it left.
    let stop = stop_signal()?;
    tokio::pin!(stop);
    loop {
        let deadline = config.deadline(None);
        let outcome = tokio::select! {
            outcome = job.run(&inventory, &config, deadline) => outcome,
            () = &mut stop => break,
        };
        match outcome {
            Ok(summary) => tracing::info!(job = J::NAME, %summary, "run done"),
            Err(error) => {
                tracing::error!(job = J::NAME, error = %chain(&error), "run failed");
                if every.is_none() {
                    return Err(format!("{} failed: {}", J::NAME, chain(&error)).into());
                }
            }
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

/// The job's configuration and what it holds, made at cold start; what is wrong is logged and stops it.
fn start<J: Job>() -> Result<(JobConfig, J), StartError> {
    let started = JobConfig::from_env()
        .map_err(StartError::from)
        .and_then(|config| Ok((J::prepare(&config)?, config)));
    match started {
        Ok((job, config)) => Ok((config, job)),
        Err(error) => {
            tracing::error!(job = J::NAME, error = %chain(&*error), "invalid configuration");
            Err(error)
        }
    }
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
async fn serve<J: Job>(job: J, config: JobConfig) -> Result<(), lambda_runtime::Error> {
    let (store, _) = store_from_env().await?;
    close_on_shutdown(Arc::new(OnceLock::from(store.pool().clone()))).await;
    let inventory = Arc::new(Inventory::new(store));
    let job = Arc::new((job, config));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let inventory = Arc::clone(&inventory);
            let job = Arc::clone(&job);
            async move {
                let (job, config) = &*job;
                let deadline = config.deadline(Some(event.context.deadline));
                match job.run(&inventory, config, deadline).await {
                    Ok(summary) => {
                        tracing::info!(job = J::NAME, %summary, "run done");
                        Ok(summary)
                    }
                    Err(error) => {
                        tracing::error!(job = J::NAME, error = %chain(&error), "run failed");
                        Err(lambda_runtime::Error::from(error))
                    }
                }
            }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn config(vars: &[(&str, &str)]) -> Result<JobConfig, ConfigError> {
        JobConfig::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_defaults_apply_when_nothing_is_set() {
        let config = config(&[]).unwrap();
        assert_eq!(config.run_timeout, Duration::from_secs(10));
        assert_eq!(config.deadline_margin, Duration::from_millis(500));
        assert_eq!(
            config.event_retention,
            Duration::from_secs(7 * 24 * 60 * 60)
        );
        assert_eq!(config.event_bus, None);
        assert_eq!(
            (
                config.purge_batch,
                config.expire_batch,
                config.publish_batch
            ),
            (PURGE_BATCH, EXPIRE_BATCH, PUBLISH_BATCH)
        );
    }

    #[test]
    fn each_variable_is_read_and_checked() {
        let config = config(&[
            ("REQUEST_TIMEOUT_MS", "50000"),
            ("EVENT_RETENTION_DAYS", "30"),
            ("EVENT_BUS_NAME", " inventory-events "),
        ])
        .unwrap();
        assert_eq!(config.run_timeout, Duration::from_secs(50));
        assert_eq!(
            config.event_retention,
            Duration::from_secs(30 * 24 * 60 * 60)
        );
        assert_eq!(config.event_bus.as_deref(), Some("inventory-events"));
        for (name, value) in [
            ("EVENT_RETENTION_DAYS", "0"),
            ("EVENT_RETENTION_DAYS", "366"),
            ("EVENT_RETENTION_DAYS", "a week"),
            ("REQUEST_TIMEOUT_MS", "0"),
            ("REQUEST_TIMEOUT_MS", "900001"),
        ] {
            let error = super::tests::config(&[(name, value)]).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Invalid { name: n, .. } if *n == name),
                "{name}={value}: {error}"
            );
            assert!(!error.to_string().contains("week"), "{error}");
        }
    }

    #[test]
    fn a_run_ends_before_the_invocation_does() {
        let config = config(&[("REQUEST_TIMEOUT_MS", "50000")]).unwrap();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let near = config.deadline(Some(now_ms + 5_000)).remaining();
        assert!(near <= Duration::from_millis(4_500), "{near:?}");
        assert!(near > Duration::from_secs(4), "{near:?}");
        // What a local emulator sends is its timeout, not a moment: the configured timeout holds.
        let local = config.deadline(Some(600_000)).remaining();
        assert!(local > Duration::from_secs(49), "{local:?}");
    }

    #[test]
    fn the_publisher_needs_its_bus() {
        let error = PublishEvents::prepare(&config(&[]).unwrap()).unwrap_err();
        assert_eq!(error.to_string(), "EVENT_BUS_NAME is not set");
    }
}
