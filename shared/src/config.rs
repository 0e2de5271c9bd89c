//! Typed configuration, read once per cold start from the environment.

use std::env;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::http::HttpConfig;
use crate::postgres::PoolConfig;

/// Everything a function needs to start.
#[derive(Clone)]
pub struct Config {
    /// Parsed from `DATABASE_URL`; never logged (it may carry a password).
    pub database: PgConnectOptions,
    pub pool: PoolConfig,
    pub http: HttpConfig,
}

/// Leaves the connection options out: they may carry a password.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("pool", &self.pool)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// A variable that is missing or does not parse. Names the variable, never echoes its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    /// Reads the configuration:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `DATABASE_URL` | Postgres connection URL | required |
    /// | `DATABASE_MAX_CONNECTIONS` | pool size per function instance | `AWS_LAMBDA_MAX_CONCURRENCY`, else 1 |
    /// | `DATABASE_ACQUIRE_TIMEOUT_MS` | longest wait for a pooled connection | 3000 |
    /// | `REQUEST_TIMEOUT_MS` | request deadline when no Lambda deadline is nearer | 10000 |
    /// | `DEADLINE_MARGIN_MS` | time kept back from the Lambda deadline to answer | 500 |
    /// | `MAX_BODY_BYTES` | largest request body | 65536 |
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads the configuration from any source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = lookup("DATABASE_URL").ok_or(ConfigError::Missing("DATABASE_URL"))?;
        let invalid_url = || ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: "not a valid postgres:// URL".into(),
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid_url());
        }
        let database = PgConnectOptions::from_str(&url).map_err(|_| invalid_url())?;
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            lookup(name).map_or(Ok(default), |value| {
                value.trim().parse().map_err(|_| ConfigError::Invalid {
                    name,
                    reason: "expected a whole number".into(),
                })
            })
        };
        let concurrency = number("AWS_LAMBDA_MAX_CONCURRENCY", 1)?;
        let max_connections = number("DATABASE_MAX_CONNECTIONS", concurrency)?;
        if max_connections == 0 || max_connections > 1000 {
            return Err(ConfigError::Invalid {
                name: "DATABASE_MAX_CONNECTIONS",
                reason: "expected 1 to 1000".into(),
            });
        }
        // No request outlives a Lambda invocation (15 minutes).
        let request_timeout = number("REQUEST_TIMEOUT_MS", 10_000)?;
        if request_timeout == 0 || request_timeout > 900_000 {
            return Err(ConfigError::Invalid {
                name: "REQUEST_TIMEOUT_MS",
                reason: "expected 1 to 900000".into(),
            });
        }
        let acquire_timeout = number("DATABASE_ACQUIRE_TIMEOUT_MS", 3_000)?.min(900_000);
        let deadline_margin = number("DEADLINE_MARGIN_MS", 500)?.min(900_000);
        Ok(Self {
            database,
            pool: PoolConfig {
                max_connections: max_connections as u32,
                acquire_timeout: Duration::from_millis(acquire_timeout),
            },
            http: HttpConfig {
                request_timeout: Duration::from_millis(request_timeout),
                deadline_margin: Duration::from_millis(deadline_margin),
                body_limit: number("MAX_BODY_BYTES", 64 * 1024)? as usize,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_apply_when_only_the_database_is_given() {
        let config = config(&[("DATABASE_URL", "postgres://u:secret@db/inventory")]).unwrap();
        assert_eq!(config.pool.max_connections, 1);
        assert_eq!(config.http.request_timeout, Duration::from_secs(10));
        assert_eq!(config.http.body_limit, 65536);
    }

    #[test]
    fn the_pool_follows_lambda_concurrency_unless_set() {
        let url = ("DATABASE_URL", "postgres://db/inventory");
        let c = config(&[url, ("AWS_LAMBDA_MAX_CONCURRENCY", "8")]).unwrap();
        assert_eq!(c.pool.max_connections, 8);
        let c = config(&[
            url,
            ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
            ("DATABASE_MAX_CONNECTIONS", "2"),
        ])
        .unwrap();
        assert_eq!(c.pool.max_connections, 2);
    }

    #[test]
    fn a_request_timeout_beyond_a_lambda_invocation_is_refused() {
        let too_long = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("REQUEST_TIMEOUT_MS", "99999999999"),
        ]);
        assert!(matches!(
            too_long,
            Err(ConfigError::Invalid {
                name: "REQUEST_TIMEOUT_MS",
                ..
            })
        ));
    }

    #[test]
    fn the_configuration_never_prints_the_database_password() {
        let config = config(&[("DATABASE_URL", "postgres://app:hunter2@db/inventory")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn errors_name_the_variable_without_its_value() {
        let missing = config(&[]).unwrap_err().to_string();
        assert_eq!(missing, "DATABASE_URL is not set");
        let invalid = config(&[("DATABASE_URL", "mysql://secret@x")])
            .unwrap_err()
            .to_string();
        assert!(
            invalid.contains("DATABASE_URL") && !invalid.contains("secret"),
            "{invalid}"
        );
        let bad_number = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("REQUEST_TIMEOUT_MS", "soon"),
        ]);
        assert!(matches!(
            bad_number,
            Err(ConfigError::Invalid {
                name: "REQUEST_TIMEOUT_MS",
                ..
            })
        ));
    }
}
