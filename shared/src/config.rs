//! Typed configuration, read once per cold start from the environment.

use std::env;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::domain::order::{DEFAULT_HOLD, MAX_HOLD, MIN_HOLD, parse_hold};
use crate::http::{Auth, HttpConfig};
use crate::postgres::PoolConfig;
use crate::postgres::iam::IamTarget;

/// How a function reaches its database.
#[derive(Clone)]
pub enum Database {
    /// `DATABASE_URL`, used as it is: local development, tests, docker compose. It may carry a password.
    Url(Box<PgConnectOptions>),
    /// `DATABASE_HOST` and friends (on AWS: the RDS Proxy endpoint): TLS verified against the host, and
    /// an IAM auth token signed with the function's credentials for each new connection.
    Iam(IamTarget),
}

/// Leaves a URL out: it may carry a password.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(_) => f.write_str("Url(..)"),
            Self::Iam(target) => f.debug_tuple("Iam").field(target).finish(),
        }
    }
}

/// Everything a function needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Never logged: a URL may carry a password.
    pub database: Database,
    pub pool: PoolConfig,
    pub http: HttpConfig,
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
    /// Reads the configuration of an API function from its environment. Every variable, with its meaning and
    /// default, is in the one table of them, in `docs/development.md` (a test holds it to the code).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads the configuration from any source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database = database(&lookup)?;
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
        let order_hold = number("ORDER_HOLD_SECONDS", DEFAULT_HOLD.as_secs())?;
        let order_hold = parse_hold(order_hold.min(i64::MAX as u64) as i64).map_err(|_| {
            ConfigError::Invalid {
                name: "ORDER_HOLD_SECONDS",
                reason: format!("expected {} to {}", MIN_HOLD.as_secs(), MAX_HOLD.as_secs()),
            }
        })?;
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
                order_hold,
            },
        })
    }
}

/// How an API function authenticates requests (`AUTH_MODE`, required: a function without it refuses to
/// start, so that no deployment is left open by omission). Its variables are in `docs/development.md`'s table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    Gateway {
        scope_prefix: String,
    },
    Local {
        key_file: std::path::PathBuf,
        issuer: String,
        audience: String,
        scope_prefix: String,
    },
    Off,
}

/// The issuer and audience of the tokens `scripts/token` makes for the local stack.
pub const LOCAL_ISSUER: &str = "inventory-local";
pub const LOCAL_AUDIENCE: &str = "inventory";
pub const LOCAL_KEY_FILE: &str = ".auth/local-key";

impl AuthConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config = Self::parse(&lookup)?;
        // On Lambda the API is reached through API Gateway, whose authorizer verifies every token: anything
        // else there would be an open or self-signed door.
        if let (Some(variable), Self::Local { .. } | Self::Off) = (on_lambda(&lookup), &config) {
            return Err(ConfigError::Invalid {
                name: "AUTH_MODE",
                reason: format!(
                    "only gateway is allowed on Lambda ({variable} is set): local and off are for a laptop"
                ),
            });
        }
        Ok(config)
    }

    fn parse(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let or = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        let scope_prefix = or("AUTH_SCOPE_PREFIX", "");
        match lookup("AUTH_MODE").as_deref().map(str::trim) {
            None | Some("") => Err(ConfigError::Missing(
                "AUTH_MODE (gateway on AWS, local with scripts/token, or off)",
            )),
            Some("gateway") => Ok(Self::Gateway { scope_prefix }),
            Some("local") => Ok(Self::Local {
                key_file: or("AUTH_LOCAL_KEY_FILE", LOCAL_KEY_FILE).into(),
                issuer: or("AUTH_ISSUER", LOCAL_ISSUER),
                audience: or("AUTH_AUDIENCE", LOCAL_AUDIENCE),
                scope_prefix,
            }),
            Some("off") => Ok(Self::Off),
            Some(_) => Err(ConfigError::Invalid {
                name: "AUTH_MODE",
                reason: "expected gateway, local or off".into(),
            }),
        }
    }

    /// The authentication this configuration describes; with `local`, reads the key file.
    pub fn load(&self) -> Result<Auth, ConfigError> {
        Ok(match self {
            Self::Gateway { scope_prefix } => Auth::Gateway {
                scope_prefix: scope_prefix.clone(),
            },
            Self::Local {
                key_file,
                issuer,
                audience,
                scope_prefix,
            } => {
                let key = local_key(key_file).ok_or_else(|| ConfigError::Invalid {
                    name: "AUTH_LOCAL_KEY_FILE",
                    reason: format!(
                        "{} does not hold a key of at least 32 characters and cannot be made",
                        key_file.display()
                    ),
                })?;
                Auth::local(key.as_bytes(), issuer, audience, scope_prefix)
            }
            Self::Off => Auth::Off,
        })
    }
}

/// Variables Lambda sets in every execution environment (the `provided.al2023` runtime included) and
/// `cargo lambda watch` does not (it sets `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_RUNTIME_API` and the
/// function's version and memory, as a local emulator must).
const LAMBDA_ONLY: [&str; 3] = [
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "LAMBDA_TASK_ROOT",
    "AWS_LAMBDA_LOG_GROUP_NAME",
];

/// The first of [`LAMBDA_ONLY`] that is set: this process runs on Lambda itself.
fn on_lambda(lookup: &impl Fn(&str) -> Option<String>) -> Option<&'static str> {
    LAMBDA_ONLY
        .into_iter()
        .find(|name| lookup(name).is_some_and(|v| !v.is_empty()))
}

/// The local signing key in `file`, made on first use (by whichever comes first: a function or
/// `scripts/token`): 32 random bytes, base64url, readable by its owner only. Made in a temporary file and
/// linked into place, which fails if another process got there first; either way, the key in the file wins.
fn local_key(file: &std::path::Path) -> Option<String> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    if !file.exists() {
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).ok()?;
        }
        let temp = file.with_extension(format!("tmp-{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, key.as_bytes()));
        if written.is_ok() {
            // Owned by whoever owns the folder (when this runs as root and may give it away): the compose
            // stack makes the key as root in the folder it shares with the host, whose user's
            // `scripts/token` must read it.
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
            if let Ok(owner) = std::fs::metadata(dir.unwrap_or(std::path::Path::new("."))) {
                use std::os::unix::fs::MetadataExt as _;
                let _ = std::os::unix::fs::chown(&temp, Some(owner.uid()), Some(owner.gid()));
            }
            let _ = std::fs::hard_link(&temp, file);
        }
        let _ = std::fs::remove_file(&temp);
    }
    std::fs::read_to_string(file)
        .ok()
        .map(|key| key.trim().to_owned())
        .filter(|key| key.len() >= 32)
}

fn database(lookup: &impl Fn(&str) -> Option<String>) -> Result<Database, ConfigError> {
    if let Some(url) = lookup("DATABASE_URL") {
        let invalid_url = || ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: "not a valid postgres:// URL".into(),
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid_url());
        }
        return PgConnectOptions::from_str(&url)
            .map(|options| Database::Url(Box::new(options)))
            .map_err(|_| invalid_url());
    }
    let Some(host) = lookup("DATABASE_HOST").filter(|h| !h.trim().is_empty()) else {
        return Err(ConfigError::Missing("DATABASE_URL (or DATABASE_HOST)"));
    };
    let required = |name: &'static str| {
        lookup(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(name))
    };
    let port = match lookup("DATABASE_PORT") {
        None => 5432,
        Some(port) => port
            .trim()
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| ConfigError::Invalid {
                name: "DATABASE_PORT",
                reason: "expected a port number".into(),
            })?,
    };
    Ok(Database::Iam(IamTarget {
        host: host.trim().to_owned(),
        port,
        database: required("DATABASE_NAME")?,
        user: required("DATABASE_USER")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_lambda_only_gateway_is_allowed() {
        for lambda in LAMBDA_ONLY {
            for mode in ["off", "local"] {
                let error = auth(&[("AUTH_MODE", mode), (lambda, "x")]).unwrap_err();
                assert!(
                    matches!(&error, ConfigError::Invalid { name: "AUTH_MODE", reason } if reason.contains(lambda)),
                    "{mode} with {lambda}: {error}"
                );
            }
            assert!(auth(&[("AUTH_MODE", "gateway"), (lambda, "x")]).is_ok());
        }
        // What cargo lambda watch sets does not count as Lambda.
        let watch = [
            ("AWS_LAMBDA_FUNCTION_NAME", "get-order"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9000/.rt"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ];
        for mode in ["off", "local"] {
            let mut vars = watch.to_vec();
            vars.push(("AUTH_MODE", mode));
            assert!(auth(&vars).is_ok(), "{mode} under cargo lambda watch");
        }
    }

    fn auth(vars: &[(&str, &str)]) -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn a_function_without_auth_mode_refuses_to_start() {
        let missing = auth(&[]).unwrap_err().to_string();
        assert!(missing.starts_with("AUTH_MODE"), "{missing}");
        assert!(matches!(
            auth(&[("AUTH_MODE", "none")]),
            Err(ConfigError::Invalid {
                name: "AUTH_MODE",
                ..
            })
        ));
        assert_eq!(auth(&[("AUTH_MODE", "off")]).unwrap(), AuthConfig::Off);
        assert_eq!(
            auth(&[
                ("AUTH_MODE", "gateway"),
                ("AUTH_SCOPE_PREFIX", "inventory/")
            ])
            .unwrap(),
            AuthConfig::Gateway {
                scope_prefix: "inventory/".into()
            }
        );
    }

    #[test]
    fn local_auth_needs_a_key_and_never_shows_it() {
        let dir = std::env::temp_dir().join(format!("inventory-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        let config = auth(&[
            ("AUTH_MODE", "local"),
            ("AUTH_LOCAL_KEY_FILE", file.to_str().unwrap()),
        ])
        .unwrap();
        // Made on first use, for its owner's eyes only, and kept.
        config.load().unwrap();
        let made = std::fs::read_to_string(&file).unwrap();
        assert!(made.len() >= 32);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        config.load().unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), made);
        std::fs::write(&file, "short").unwrap();
        assert!(config.load().is_err(), "a key too short to be secret");
        let key = "k3y-".repeat(10);
        std::fs::write(&file, &key).unwrap();
        let loaded = config.load().unwrap();
        assert!(!format!("{loaded:?}").contains(&key));
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
        assert_eq!(missing, "DATABASE_URL (or DATABASE_HOST) is not set");
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

    #[test]
    fn without_a_url_the_database_is_reached_with_iam_auth() {
        let config = config(&[
            ("DATABASE_HOST", "proxy.example.internal"),
            ("DATABASE_NAME", "inventory"),
            ("DATABASE_USER", "app"),
        ])
        .unwrap();
        let Database::Iam(target) = config.database else {
            panic!("expected IAM auth");
        };
        assert_eq!(
            target,
            IamTarget {
                host: "proxy.example.internal".into(),
                port: 5432,
                database: "inventory".into(),
                user: "app".into(),
            }
        );
    }

    #[test]
    fn a_url_wins_over_the_iam_variables() {
        let config = config(&[
            ("DATABASE_URL", "postgres://local/inventory"),
            ("DATABASE_HOST", "proxy.example.internal"),
        ])
        .unwrap();
        assert!(matches!(config.database, Database::Url(_)));
    }

    #[test]
    fn iam_auth_needs_a_database_a_user_and_a_valid_port() {
        let host = ("DATABASE_HOST", "proxy.example.internal");
        let name = ("DATABASE_NAME", "inventory");
        let user = ("DATABASE_USER", "app");
        assert!(matches!(
            config(&[host, user]),
            Err(ConfigError::Missing("DATABASE_NAME"))
        ));
        assert!(matches!(
            config(&[host, name]),
            Err(ConfigError::Missing("DATABASE_USER"))
        ));
        assert!(matches!(
            config(&[host, name, user, ("DATABASE_PORT", "99999")]),
            Err(ConfigError::Invalid {
                name: "DATABASE_PORT",
                ..
            })
        ));
        let Database::Iam(target) = config(&[host, name, user, ("DATABASE_PORT", "6432")])
            .unwrap()
            .database
        else {
            panic!("expected IAM auth");
        };
        assert_eq!(target.port, 6432);
    }
}
