//! Migrations on deploy: the migrate function as the handler of a CloudFormation custom resource.
//!
//! On `Create` and `Update` (the template changes a property whenever the function's code, and so its
//! embedded migrations, change) it reads the master credentials from Secrets Manager (a secret RDS
//! manages), connects to the cluster endpoint (not the proxy: sqlx serialises migrations with a session
//! advisory lock) with TLS verified against the Amazon RDS root certificates, applies what is pending and
//! sets up the API's user (IAM login, no password). An `Update` to an older version of the function is
//! CloudFormation rolling a failed deploy back: the schema stays as it is (migrations only ever add), so it
//! answers SUCCESS without connecting, and a rollback never waits on the database. `Delete` keeps the
//! data. Whatever happens, CloudFormation gets an answer, in time, so a deploy never hangs on it; an
//! answer's reason never carries a secret or a database message, and no log line carries the answer's
//! pre-signed URL.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest as Request, CloudFormationCustomResourceResponse as Answer,
    CloudFormationCustomResourceResponseStatus as Status,
};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::aws::secrets::{SECRETS_MANAGER, get_secret_string};
use crate::aws::{Account, AccountError};

/// The id of the one migrations resource. Constant: a new id would make CloudFormation delete the old one.
pub const PHYSICAL_ID: &str = "inventory-schema";

/// The root certificates of Amazon RDS (every Region, RSA2048, RSA4096 and ECC384, valid to 2061 and later),
/// which sign the certificates of Aurora endpoints. Not Mozilla's roots, which the proxy's chain to.
pub static RDS_ROOT_CERTIFICATES: &[u8] = include_bytes!("../certs/rds-ca-roots.pem");

/// Time kept back from the invocation's deadline to send the answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// What went wrong, in words fit for a CloudFormation event (no secret, no SQL).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("AWS credentials are not available")]
    Credentials,
    #[error("could not read the database secret: {0}")]
    Secret(String),
    #[error("could not apply the migrations: {0}")]
    Migrate(String),
    #[error("the migrations did not finish before the deadline")]
    Deadline,
    #[error("{0}")]
    Answer(String),
}

/// Where the migrations go.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub secret_arn: String,
    /// The user the API functions connect as (through the proxy, with IAM tokens).
    pub app_user: String,
    pub region: String,
    /// `https://secretsmanager.<region>.amazonaws.com` unless `AWS_ENDPOINT_URL_SECRETS_MANAGER` or
    /// `AWS_ENDPOINT_URL` says otherwise (as the AWS SDKs read them).
    pub secrets_endpoint: String,
}

impl Target {
    /// `DATABASE_HOST`, `DATABASE_PORT` (5432), `DATABASE_NAME`, `DATABASE_SECRET_ARN` (the master user),
    /// `DATABASE_APP_USER` (the API's user), `AWS_REGION`, and the endpoint override of
    /// [`crate::aws::call::Service::endpoint`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DeployError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(DeployError::Missing(name))
        };
        let region = required("AWS_REGION")?;
        Ok(Self {
            host: required("DATABASE_HOST")?,
            port: lookup("DATABASE_PORT")
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(5432),
            database: required("DATABASE_NAME")?,
            secret_arn: required("DATABASE_SECRET_ARN")?,
            app_user: required("DATABASE_APP_USER")?,
            secrets_endpoint: SECRETS_MANAGER.endpoint(&region, &lookup),
            region,
        })
    }
}

/// The master credentials, as RDS and the proxy store them in the secret.
#[derive(Deserialize)]
pub struct DatabaseSecret {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for DatabaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSecret")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Reads a database user's credentials from Secrets Manager. An error says which step failed (the status and
/// error type of a refusal: `AccessDeniedException`, `ResourceNotFoundException`, ... say what to fix), never
/// what the secret holds.
pub async fn read_secret(
    client: &reqwest::Client,
    target: &Target,
    secret_arn: &str,
    credentials: &Credentials,
) -> Result<DatabaseSecret, DeployError> {
    let account = Account {
        region: target.region.clone(),
        credentials: credentials.clone(),
    };
    let text = get_secret_string(client, &target.secrets_endpoint, &account, secret_arn)
        .await
        .map_err(|error| DeployError::Secret(error.to_string()))?;
    serde_json::from_str(&text)
        .map_err(|_| DeployError::Secret("the secret has no username and password".into()))
}

/// Connection options for the cluster endpoint: TLS verified against the Amazon RDS roots.
pub fn cluster_options(target: &Target, secret: &DatabaseSecret) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host(&target.host)
        .port(target.port)
        .database(&target.database)
        .username(&secret.username)
        .password(&secret.password)
        .ssl_mode(PgSslMode::VerifyFull)
        .ssl_root_cert_from_pem(RDS_ROOT_CERTIFICATES.to_vec())
        .application_name("inventory-migrate")
}

/// Applies the pending migrations; answers how many the database now has. Migrations the database has
/// but this code does not are accepted: the schema stays as it is (the migrations only ever add).
///
/// With `app` (a user name), it then makes sure the API's user exists, logs in with IAM tokens only and has
/// exactly the privileges the API needs (`postgres::schema::APP_GRANTS`): it cannot change the schema, the
/// migrations' record or the ledger's history.
pub async fn migrate(options: PgConnectOptions, app: Option<&str>) -> Result<usize, DeployError> {
    let failed = |error: sqlx::Error| {
        tracing::error!(error = %crate::logging::chain(&error), "migration failed");
        DeployError::Migrate(match &error {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
                "the database is unreachable".into()
            }
            _ => "see the migrate function's log".into(),
        })
    };
    crate::postgres::schema::migrate(options, app)
        .await
        .map_err(failed)
}

/// The answer to `request`, once `work` has run (or timed out): `Data.Migrations` is the number of
/// migrations the database has.
pub fn answer(request: &Request, outcome: Result<Option<usize>, DeployError>) -> Answer {
    let (stack_id, request_id, logical_resource_id) = match request {
        Request::Create(r) => (&r.stack_id, &r.request_id, &r.logical_resource_id),
        Request::Update(r) => (&r.stack_id, &r.request_id, &r.logical_resource_id),
        Request::Delete(r) => (&r.stack_id, &r.request_id, &r.logical_resource_id),
        _ => unreachable!("a request type this crate does not know"),
    };
    let mut answer = Answer::default();
    answer.physical_resource_id = PHYSICAL_ID.into();
    answer.stack_id = stack_id.clone();
    answer.request_id = request_id.clone();
    answer.logical_resource_id = logical_resource_id.clone();
    match outcome {
        Ok(applied) => {
            answer.status = Status::Success;
            if let Some(applied) = applied {
                answer.data = HashMap::from([("Migrations".into(), applied.to_string())]);
            }
        }
        Err(error) => {
            answer.status = Status::Failed;
            answer.reason = Some(error.to_string());
        }
    }
    answer
}

fn response_url(request: &Request) -> &str {
    match request {
        Request::Create(r) => &r.response_url,
        Request::Update(r) => &r.response_url,
        Request::Delete(r) => &r.response_url,
        _ => unreachable!("a request type this crate does not know"),
    }
}

/// The version number at the end of a function version's ARN (`...:function:NAME:7`), or a bare number.
fn function_version(properties: &serde_json::Value) -> Option<u64> {
    let version = properties.get("MigrateFunctionVersion")?.as_str()?;
    version.rsplit(':').next()?.parse().ok()
}

/// Whether an update goes back to an older version of the migrate function: CloudFormation rolling a failed
/// deploy back sends the previous template's properties as the new ones.
pub fn is_rollback(
    update: &aws_lambda_events::event::cloudformation::UpdateRequest<
        serde_json::Value,
        serde_json::Value,
    >,
) -> bool {
    match (
        function_version(&update.resource_properties),
        function_version(&update.old_resource_properties),
    ) {
        (Some(new), Some(old)) => new < old,
        _ => false,
    }
}

/// Handles one event: runs `work` for `Create` and `Update` within `budget`, unless the update is a
/// rollback; keeps everything on `Delete`; and sends CloudFormation the answer. Fails only if the answer
/// could not be delivered.
pub async fn handle<W>(
    client: &reqwest::Client,
    request: &Request,
    budget: Duration,
    work: W,
) -> Result<Answer, DeployError>
where
    W: AsyncFnOnce() -> Result<usize, DeployError>,
{
    let outcome = match request {
        Request::Delete(_) => {
            tracing::info!("stack deletion: the database and its schema are kept");
            Ok(None)
        }
        Request::Update(update) if is_rollback(update) => {
            tracing::info!("an update to an older version (a rollback): the schema stays as it is");
            Ok(None)
        }
        _ => match tokio::time::timeout(budget, work()).await {
            Ok(Ok(applied)) => {
                tracing::info!(applied, "schema up to date");
                Ok(Some(applied))
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(DeployError::Deadline),
        },
    };
    if let Err(error) = &outcome {
        tracing::error!(%error, "answering FAILED");
    }
    let answer = answer(request, outcome);
    let body = serde_json::to_vec(&answer)
        .map_err(|_| DeployError::Answer("could not encode the answer".into()))?;
    // No content type: the pre-signed URL was signed without one.
    let delivered = client
        .put(response_url(request))
        .header(reqwest::header::CONTENT_LENGTH, body.len())
        .body(body)
        .send()
        .await
        .and_then(|r| r.error_for_status());
    if let Err(error) = delivered {
        // The URL is pre-signed: its signature and token are credentials, so the error is logged without it.
        let error = error.without_url();
        tracing::error!(%error, "could not deliver the answer to CloudFormation");
        return Err(DeployError::Answer(
            "could not deliver the answer to CloudFormation".into(),
        ));
    }
    Ok(answer)
}

/// Serves custom resource events until Lambda shuts the instance down.
pub async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    crate::logging::init();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let target = Target::from_lookup(|name| std::env::var(name).ok());
    // The execution role's credentials, where Lambda puts them.
    let account = Account::from_environment();
    lambda_runtime::run(lambda_runtime::service_fn(
        async |event: lambda_runtime::LambdaEvent<Request>| {
            let budget = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(ANSWER_MARGIN);
            let work = async || {
                let target = target
                    .as_ref()
                    .map_err(|e| DeployError::Missing(missing(e)))?;
                let credentials = match &account {
                    Ok(account) => &account.credentials,
                    Err(AccountError::Region) => return Err(DeployError::Missing("AWS_REGION")),
                    Err(AccountError::Credentials) => return Err(DeployError::Credentials),
                };
                let master = read_secret(&client, target, &target.secret_arn, credentials).await?;
                migrate(cluster_options(target, &master), Some(&target.app_user)).await
            };
            handle(&client, &event.payload, budget, work)
                .await
                .map(|_| ())
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

fn missing(error: &DeployError) -> &'static str {
    match error {
        DeployError::Missing(name) => name,
        _ => "the migrate function's configuration",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_never_prints_its_password() {
        let secret: DatabaseSecret = serde_json::from_str(
            r#"{"username":"admin","password":"hunter2","engine":"postgres"}"#,
        )
        .unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn the_rds_roots_are_certificates() {
        let text = std::str::from_utf8(RDS_ROOT_CERTIFICATES).unwrap();
        assert!(text.matches("-----BEGIN CERTIFICATE-----").count() >= 80);
        assert_eq!(
            text.matches("-----BEGIN CERTIFICATE-----").count(),
            text.matches("-----END CERTIFICATE-----").count()
        );
    }

    #[test]
    fn the_configuration_names_what_is_missing() {
        let target = Target::from_lookup(|name| {
            (name != "DATABASE_APP_USER").then(|| match name {
                "AWS_REGION" => "eu-west-1".into(),
                _ => "x".into(),
            })
        });
        assert!(matches!(
            target,
            Err(DeployError::Missing("DATABASE_APP_USER"))
        ));
        let target = Target::from_lookup(|name| match name {
            "AWS_REGION" => Some("eu-west-1".into()),
            "DATABASE_PORT" | "AWS_ENDPOINT_URL_SECRETS_MANAGER" | "AWS_ENDPOINT_URL" => None,
            _ => Some("x".into()),
        })
        .unwrap();
        assert_eq!(target.port, 5432);
        assert_eq!(
            target.secrets_endpoint,
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
    }
}
