//! IAM authentication to RDS Proxy: instead of a password, each new connection presents a token signed
//! with the function's own AWS credentials (SigV4, service `rds-db`), valid for 15 minutes. Signing is
//! local and takes microseconds; the token is renewed well before it runs out, and only the options of
//! connections yet to be opened change, so open connections are never disturbed.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::domain::Error;

/// How long a token is accepted by the proxy (fixed by AWS).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

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

/// Signs the token that authenticates `target.user` at `target.host:target.port` in `region`, as of
/// `now`: a pre-signed `connect` request, without its scheme.
pub fn auth_token(
    target: &IamTarget,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<String, Error> {
    let failed = |_| Error::unavailable("could not sign the database auth token");
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|_| Error::unavailable("could not sign the database auth token"))?
        .into();
    let user: String = form_encode(&target.user);
    let url = format!(
        "https://{}:{}/?Action=connect&DBUser={user}",
        target.host, target.port
    );
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(failed)?;
    let (instructions, _) = sign(request, &params).map_err(failed)?.into_parts();
    let mut signed = http::Request::builder()
        .uri(&url)
        .body(())
        .map_err(|_| Error::unavailable("could not sign the database auth token"))?;
    instructions.apply_to_request_http1x(&mut signed);
    let uri = signed.uri().to_string();
    Ok(uri.strip_prefix("https://").unwrap_or(&uri).to_owned())
}

/// Percent-encodes a query value the way SigV4 expects (unreserved characters kept, all else encoded).
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Keeps the pool's connection options carrying a fresh token.
#[derive(Debug)]
pub struct IamAuth {
    target: IamTarget,
    region: String,
    credentials: SharedCredentialsProvider,
    signed_at: Mutex<Option<Instant>>,
}

impl IamAuth {
    pub fn new(target: IamTarget, region: String, credentials: SharedCredentialsProvider) -> Self {
        Self {
            target,
            region,
            credentials,
            signed_at: Mutex::new(None),
        }
    }

    /// Reads the region and the credentials from the environment, where Lambda puts them: `AWS_REGION`, and
    /// the execution role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. (The AWS SDK's
    /// default chain would find them there first too; the API functions do without it and its megabyte.)
    pub fn from_environment(target: IamTarget) -> Result<Self, Error> {
        Self::from_variables(target, |name| std::env::var(name).ok())
    }

    /// [`IamAuth::from_environment`], with the variables `var` gives.
    pub fn from_variables(
        target: IamTarget,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let var = |name: &str| var(name).filter(|value| !value.is_empty());
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| Error::unavailable("no AWS region is configured (AWS_REGION)"))?;
        let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(Error::unavailable(
                "no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            ));
        };
        let credentials =
            Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        Ok(Self::new(
            target,
            region,
            SharedCredentialsProvider::new(credentials),
        ))
    }

    /// Before a connection may be opened: sign a new token if the current one is missing or old.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), Error> {
        let signed_at = *self.signed_at.lock().expect("token clock poisoned");
        if !needs_new_token(signed_at, Instant::now()) {
            return Ok(());
        }
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|_| Error::unavailable("AWS credentials are not available"))?;
        let token = auth_token(&self.target, &self.region, &credentials, SystemTime::now())?;
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
    use std::collections::BTreeMap;

    fn target() -> IamTarget {
        IamTarget {
            host: "proxy.proxy-abc.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            database: "inventory".into(),
            user: "inventory".into(),
        }
    }

    /// 2026-11-25T12:00:00Z
    fn noon() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_608_000)
    }

    fn query(token: &str) -> (String, BTreeMap<String, String>) {
        let (authority, query) = token.split_once("/?").expect("host:port/?query");
        let params = query
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("key=value");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        (authority.to_owned(), params)
    }

    /// The expected signatures were computed by an independent implementation (botocore 1.43's
    /// `generate_db_auth_token`) for the same keys, host, port, user, region and time.
    #[test]
    fn the_token_is_a_presigned_connect_request_for_the_user() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let token = auth_token(&target(), "eu-west-1", &credentials, noon()).unwrap();
        assert!(!token.starts_with("https://"), "{token}");
        let (authority, params) = query(&token);
        assert_eq!(
            authority,
            "proxy.proxy-abc.eu-west-1.rds.amazonaws.com:5432"
        );
        assert_eq!(params["Action"], "connect");
        assert_eq!(params["DBUser"], "inventory");
        assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            params["X-Amz-Credential"],
            "AKIDEXAMPLE%2F20261125%2Feu-west-1%2Frds-db%2Faws4_request"
        );
        assert_eq!(params["X-Amz-Date"], "20261125T120000Z");
        assert_eq!(params["X-Amz-Expires"], "900");
        assert_eq!(params["X-Amz-SignedHeaders"], "host");
        let signature = &params["X-Amz-Signature"];
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            signature,
            "7e6792b620aa5fa9e5717ecf30c0a4b40c17bb8812123642e8c811c63d9bffd3"
        );
        assert!(!params.contains_key("X-Amz-Security-Token"));
    }

    #[test]
    fn temporary_credentials_sign_their_session_token_too() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session/token+with=chars".into()),
            None,
            "test",
        );
        let token = auth_token(&target(), "eu-west-1", &credentials, noon()).unwrap();
        let (_, params) = query(&token);
        assert_eq!(
            params["X-Amz-Security-Token"],
            "session%2Ftoken%2Bwith%3Dchars"
        );
        assert_eq!(
            params["X-Amz-Signature"],
            "17e752202f1a53fe599f1e9c6c6aa6502f70f3fa2331af40320da02d6d1191ae"
        );
    }

    #[test]
    fn a_token_depends_on_time_region_and_user() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let base = auth_token(&target(), "eu-west-1", &credentials, noon()).unwrap();
        let later = auth_token(
            &target(),
            "eu-west-1",
            &credentials,
            noon() + Duration::from_secs(1),
        )
        .unwrap();
        let elsewhere = auth_token(&target(), "us-east-1", &credentials, noon()).unwrap();
        let other_user = IamTarget {
            user: "someone else".into(),
            ..target()
        };
        let other = auth_token(&other_user, "eu-west-1", &credentials, noon()).unwrap();
        assert_ne!(base, later);
        assert!(
            elsewhere.contains("%2Fus-east-1%2Frds-db%2F"),
            "{elsewhere}"
        );
        assert!(other.contains("DBUser=someone%20else&"), "{other}");
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
    fn region_and_credentials_come_from_the_lambda_environment() {
        let lambda = |name: &str| {
            let value = match name {
                "AWS_REGION" => "eu-west-1",
                "AWS_ACCESS_KEY_ID" => "AKIDEXAMPLE",
                "AWS_SECRET_ACCESS_KEY" => "secret",
                "AWS_SESSION_TOKEN" => "session",
                _ => return None,
            };
            Some(value.to_owned())
        };
        let auth = IamAuth::from_variables(target(), lambda).unwrap();
        assert_eq!(auth.region, "eu-west-1");
        let without_keys = IamAuth::from_variables(target(), |name| {
            (name != "AWS_SECRET_ACCESS_KEY")
                .then(|| lambda(name))
                .flatten()
        });
        let error = without_keys.unwrap_err();
        assert!(
            format!("{:?}", error).contains("AWS_SECRET_ACCESS_KEY"),
            "{error:?}"
        );
        let without_region = IamAuth::from_variables(target(), |name| {
            (name != "AWS_REGION").then(|| lambda(name)).flatten()
        });
        assert!(without_region.is_err());
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
        assert!(RENEW_AFTER + Duration::from_secs(60) < TOKEN_LIFETIME);
    }

    #[tokio::test]
    async fn the_pool_opens_new_connections_with_a_fresh_token() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let auth = IamAuth::new(
            target(),
            "eu-west-1".into(),
            SharedCredentialsProvider::new(credentials),
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
