//! The one way this crate calls an AWS API: a POST of JSON in AWS's JSON 1.1 protocol (the action named by the
//! `X-Amz-Target` header), signed with SigV4 for the service, with the credentials and the Region the function
//! runs with.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// An AWS service, as its JSON 1.1 API is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Its name in messages.
    pub name: &'static str,
    /// The name requests are signed for (SigV4's service), also the first label of its endpoint's host.
    pub signing_name: &'static str,
    /// What follows `AWS_ENDPOINT_URL_` in the variable that overrides its endpoint, as the AWS SDKs read it
    /// (the service id in capitals, spaces as underscores).
    pub endpoint_variable: &'static str,
}

impl Service {
    /// The service's URL in `region`: `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, else
    /// `https://<signing name>.<region>.amazonaws.com`.
    pub fn endpoint(&self, region: &str, var: impl Fn(&str) -> Option<String>) -> String {
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        var(&format!("AWS_ENDPOINT_URL_{}", self.endpoint_variable))
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://{}.{region}.amazonaws.com", self.signing_name))
    }
}

/// Who calls, and where: the Region and the credentials Lambda gives every function in its environment.
#[derive(Debug, Clone)]
pub struct Account {
    pub region: String,
    /// Leaves its secrets out of `Debug`.
    pub credentials: Credentials,
}

/// What is missing from the environment to call AWS. Names the variables, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("no AWS Region is configured (AWS_REGION)")]
    Region,
    #[error("no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")]
    Credentials,
}

impl Account {
    /// The Region in `AWS_REGION` (or `AWS_DEFAULT_REGION`) and the execution role's credentials in
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, where Lambda puts them. (The AWS
    /// SDK's default chain would find them there first too; the functions do without it and its megabyte.)
    pub fn from_environment() -> Result<Self, AccountError> {
        Self::from_variables(|name| std::env::var(name).ok())
    }

    /// [`Account::from_environment`], with the variables `var` gives.
    pub fn from_variables(var: impl Fn(&str) -> Option<String>) -> Result<Self, AccountError> {
        let var = |name: &str| var(name).filter(|value| !value.is_empty());
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or(AccountError::Region)?;
        let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(AccountError::Credentials);
        };
        let credentials =
            Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        Ok(Self {
            region,
            credentials,
        })
    }
}

/// A call that did not get a useful answer. The messages name the step, never a credential or a secret.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The request could not be encoded, built (an endpoint that is not a URL) or signed.
    #[error("could not {0} the request")]
    Request(&'static str),
    #[error("{0} is unreachable")]
    Unreachable(&'static str, #[source] reqwest::Error),
    #[error("the answer was cut short")]
    CutShort(#[source] reqwest::Error),
    /// The service refused the call: its status and error type (`AccessDeniedException`, ...), which says
    /// what to fix; the service's own message follows in the cause chain.
    #[error("status {status} ({})", .kind.as_deref().unwrap_or("no error type"))]
    Refused {
        status: reqwest::StatusCode,
        kind: Option<String>,
        #[source]
        message: Option<ServiceMessage>,
    },
    /// An answer that is not what the action answers.
    #[error("the answer {0}")]
    Answer(String),
}

/// The message of an AWS error answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServiceMessage(String);

/// The signed HTTP request of `action` (the `X-Amz-Target` header, `secretsmanager.GetSecretValue`) on
/// `service` at `endpoint`, with the JSON `body`, as of `now`.
pub fn signed_request(
    service: &Service,
    endpoint: &str,
    account: &Account,
    action: &str,
    body: Vec<u8>,
    now: SystemTime,
) -> Result<http::Request<Vec<u8>>, CallError> {
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let mut request = http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", action)
        .body(body)
        .map_err(|_| CallError::Request("build"))?;
    let identity = account.credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&account.region)
        .name(service.signing_name)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| CallError::Request("sign"))?
        .into();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|_| CallError::Request("sign"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| CallError::Request("sign"))?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

/// Calls `action` on `service` at `endpoint` with the JSON `body`, within `timeout` if given (else the
/// client's own); answers the body of a successful answer.
pub async fn call(
    client: &reqwest::Client,
    service: &Service,
    endpoint: &str,
    account: &Account,
    action: &str,
    body: &serde_json::Value,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, CallError> {
    let body = serde_json::to_vec(body).map_err(|_| CallError::Request("encode"))?;
    let request = signed_request(service, endpoint, account, action, body, SystemTime::now())?;
    let mut request =
        reqwest::Request::try_from(request).map_err(|_| CallError::Request("build"))?;
    if let Some(timeout) = timeout {
        *request.timeout_mut() = Some(timeout);
    }
    let response = client
        .execute(request)
        .await
        .map_err(|error| CallError::Unreachable(service.name, error))?;
    let status = response.status();
    let body = response.bytes().await.map_err(CallError::CutShort)?;
    if !status.is_success() {
        // The error document of the JSON protocols: `__type` (sometimes `namespace#Type`) and a message.
        let error = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
        let text = |key: &str| error.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        return Err(CallError::Refused {
            status,
            kind: text("__type").map(|kind| match kind.rsplit_once('#') {
                Some((_, kind)) => kind.to_owned(),
                None => kind,
            }),
            message: text("message")
                .or_else(|| text("Message"))
                .map(ServiceMessage),
        });
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: Service = Service {
        name: "EventBridge",
        signing_name: "events",
        endpoint_variable: "EVENTBRIDGE",
    };

    #[test]
    fn the_environment_may_override_a_service_s_endpoint() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            EVENTS.endpoint("eu-west-1", vars(&[])),
            "https://events.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            EVENTS.endpoint("eu-west-1", vars(&[("AWS_ENDPOINT_URL", "http://all")])),
            "http://all"
        );
        assert_eq!(
            EVENTS.endpoint(
                "eu-west-1",
                vars(&[
                    ("AWS_ENDPOINT_URL", "http://all"),
                    ("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://events"),
                ])
            ),
            "http://events"
        );
    }

    #[test]
    fn the_account_comes_from_the_lambda_environment() {
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
        let account = Account::from_variables(lambda).unwrap();
        assert_eq!(account.region, "eu-west-1");
        assert_eq!(account.credentials.session_token(), Some("session"));
        assert!(!format!("{account:?}").contains("secret\""));
        let without_keys = Account::from_variables(|name| {
            (name != "AWS_SECRET_ACCESS_KEY")
                .then(|| lambda(name))
                .flatten()
        });
        assert_eq!(without_keys.unwrap_err(), AccountError::Credentials);
        assert!(
            AccountError::Credentials
                .to_string()
                .contains("AWS_SECRET_ACCESS_KEY")
        );
        let without_region =
            Account::from_variables(|name| (name != "AWS_REGION").then(|| lambda(name)).flatten());
        assert_eq!(without_region.unwrap_err(), AccountError::Region);
    }
}
