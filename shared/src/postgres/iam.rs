//! IAM authentication to RDS Proxy: instead of a password, each new connection presents a token signed
//! with the function's own AWS credentials ([`crate::aws::rds::auth_token`]), valid for 15 minutes. The token is
//! renewed well before it runs out, and only the options of connections yet to be opened change, so open
//! connections are never disturbed.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::aws::rds::auth_token;
use crate::aws::{Account, AccountError};
use crate::domain::Error;

/// A token older than this is replaced before the next connection is opened, so no connection is ever
/// opened with a token about to expire.
const RENEW_AFTER: Duration = Duration::from_secs(10 * 60);

/// Where to connect, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamTarget {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl IamTarget {
    /// The connection options, without the password: TLS is required and the server's certificate must
    /// be valid for the host (RDS Proxy's certificates chain to Amazon's public roots).
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .database(&self.database)
            .username(&self.user)
            .ssl_mode(PgSslMode::VerifyFull)
    }
}

/// Keeps the pool's connection options carrying a fresh token.
#[derive(Debug)]
pub struct IamAuth {
    target: IamTarget,
    account: Account,
    signed_at: Mutex<Option<Instant>>,
}

impl IamAuth {
    pub fn new(target: IamTarget, account: Account) -> Self {
        Self {
            target,
            account,
            signed_at: Mutex::new(None),
        }
    }

    /// Signs with the Region and the credentials in the environment, where Lambda puts them (see
    /// [`Account::from_environment`]).
    pub fn from_environment(target: IamTarget) -> Result<Self, Error> {
        Self::from_variables(target, |name| std::env::var(name).ok())
    }

    /// [`IamAuth::from_environment`], with the variables `var` gives.
    pub fn from_variables(
        target: IamTarget,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let account = Account::from_variables(var)
            .map_err(|error: AccountError| Error::unavailable(error))?;
        Ok(Self::new(target, account))
    }

    /// Before a connection may be opened: sign a new token if the current one is missing or old.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), Error> {
        let signed_at = *self.signed_at.lock().expect("token clock poisoned");
        if !needs_new_token(signed_at, Instant::now()) {
            return Ok(());
        }
        let target = &self.target;
        let token = auth_token(
            &target.host,
            target.port,
            &target.user,
            &self.account,
            SystemTime::now(),
        )
        .map_err(Error::unavailable)?;
        // Everything else the pool connects with (TLS, application name) stays as it is.
        pool.set_connect_options((*pool.connect_options()).clone().password(&token));
        *self.signed_at.lock().expect("token clock poisoned") = Some(Instant::now());
        tracing::debug!("signed a new database auth token");
        Ok(())
    }
}

/// Whether a token signed at `signed_at` (or never) is too old to open a connection with at `now`.
fn needs_new_token(signed_at: Option<Instant>, now: Instant) -> bool {
    signed_at.is_none_or(|at| now.saturating_duration_since(at) >= RENEW_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    fn target() -> IamTarget {
        IamTarget {
            host: "proxy.proxy-abc.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            database: "inventory".into(),
            user: "inventory".into(),
        }
    }

    #[test]
    fn connections_require_tls_verified_against_the_host() {
        let options = target().connect_options();
        assert_eq!(
            options.get_host(),
            "proxy.proxy-abc.eu-west-1.rds.amazonaws.com"
        );
        assert_eq!(options.get_port(), 5432);
        assert_eq!(options.get_database(), Some("inventory"));
        assert_eq!(options.get_username(), "inventory");
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
    }

    #[test]
    fn the_region_and_credentials_come_from_the_lambda_environment() {
        let without_keys = IamAuth::from_variables(target(), |name| {
            (name == "AWS_REGION").then(|| "eu-west-1".to_owned())
        });
        let error = without_keys.unwrap_err();
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert!(
            cause.is_some_and(|cause| cause.contains("AWS_SECRET_ACCESS_KEY")),
            "{error:?}"
        );
    }

    #[test]
    fn a_token_is_renewed_well_before_it_expires() {
        let now = Instant::now();
        assert!(needs_new_token(None, now));
        assert!(!needs_new_token(Some(now), now));
        assert!(!needs_new_token(
            Some(now),
            now + Duration::from_secs(9 * 60)
        ));
        assert!(needs_new_token(Some(now), now + RENEW_AFTER));
        assert!(RENEW_AFTER + Duration::from_secs(60) < crate::aws::rds::TOKEN_LIFETIME);
    }

    #[tokio::test]
    async fn the_pool_opens_new_connections_with_a_fresh_token() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let auth = IamAuth::new(
            target(),
            Account {
                region: "eu-west-1".into(),
                credentials,
            },
        );
        let pool = crate::postgres::connect_lazy(
            target().connect_options(),
            &crate::postgres::PoolConfig {
                max_connections: 1,
                acquire_timeout: Duration::from_secs(1),
            },
        );
        let password = |pool: &PgPool| {
            let url = sqlx::ConnectOptions::to_url_lossy(&*pool.connect_options());
            url.password().map(str::to_owned)
        };
        assert_eq!(password(&pool), None);
        auth.refresh(&pool).await.unwrap();
        let first = password(&pool).expect("a token");
        assert!(first.contains("Action%3Dconnect"), "{first}");
        assert!(first.contains("DBUser%3Dinventory"), "{first}");
        let options = pool.connect_options();
        assert_eq!(options.get_application_name(), Some("inventory"));
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        // Within its renewal period the token is kept: no signing on the request path.
        auth.refresh(&pool).await.unwrap();
        assert_eq!(password(&pool), Some(first));
    }
}
