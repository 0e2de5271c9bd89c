//! Secrets Manager's `GetSecretValue`, for the migrate function's master credentials.

use std::time::SystemTime;

use serde::Deserialize;

use super::call::{self, Account, CallError, Service};

/// Secrets Manager, whose endpoint `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or `AWS_ENDPOINT_URL`) overrides.
pub const SECRETS_MANAGER: Service = Service {
    name: "Secrets Manager",
    signing_name: "secretsmanager",
    endpoint_variable: "SECRETS_MANAGER",
};

const GET_SECRET_VALUE: &str = "secretsmanager.GetSecretValue";

/// The body of the `GetSecretValue` call for `secret_id`.
fn body(secret_id: &str) -> serde_json::Value {
    serde_json::json!({ "SecretId": secret_id })
}

/// The signed `GetSecretValue` call for `secret_id`, as of `now`.
pub fn get_secret_value_request(
    endpoint: &str,
    account: &Account,
    secret_id: &str,
    now: SystemTime,
) -> Result<http::Request<Vec<u8>>, CallError> {
    let body = serde_json::to_vec(&body(secret_id)).map_err(|_| CallError::Request("encode"))?;
    call::signed_request(
        &SECRETS_MANAGER,
        endpoint,
        account,
        GET_SECRET_VALUE,
        body,
        now,
    )
}

/// The text of the secret `secret_id` (its current version). Never logged, and never in an error.
pub async fn get_secret_string(
    client: &reqwest::Client,
    endpoint: &str,
    account: &Account,
    secret_id: &str,
) -> Result<String, CallError> {
    let answer = call::call(
        client,
        &SECRETS_MANAGER,
        endpoint,
        account,
        GET_SECRET_VALUE,
        &body(secret_id),
        None,
    )
    .await?;
    #[derive(Deserialize)]
    struct SecretValue {
        #[serde(rename = "SecretString")]
        secret_string: String,
    }
    serde_json::from_slice::<SecretValue>(&answer)
        .map(|value| value.secret_string)
        .map_err(|_| CallError::Answer("has no SecretString".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use std::time::Duration;

    /// The expected signature was computed by an independent implementation (botocore 1.43's SigV4Auth)
    /// for the same keys, Region, endpoint, headers, body and time.
    #[test]
    fn the_secret_is_read_with_a_signed_get_secret_value_call() {
        let account = Account {
            region: "eu-west-1".into(),
            credentials: Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "test",
            ),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_608_000);
        let request = get_secret_value_request(
            "https://secretsmanager.eu-west-1.amazonaws.com",
            &account,
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
            now,
        )
        .unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.uri().to_string(),
            "https://secretsmanager.eu-west-1.amazonaws.com/"
        );
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("x-amz-target"), "secretsmanager.GetSecretValue");
        assert_eq!(header("x-amz-date"), "20261125T120000Z");
        let authorization = header("authorization");
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/eu-west-1/secretsmanager/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
            ),
            "{authorization}"
        );
        assert_eq!(
            authorization.rsplit_once("Signature=").unwrap().1,
            "eded6739604e5419993bbd258559fd51b537772645256f29f6c34141a3573a08"
        );
        assert_eq!(
            request.body(),
            br#"{"SecretId":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"}"#
        );
    }

    #[test]
    fn the_endpoint_is_the_region_s_unless_the_environment_overrides_it() {
        assert_eq!(
            SECRETS_MANAGER.endpoint("eu-west-1", |_| None),
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
        let local = SECRETS_MANAGER.endpoint("eu-west-1", |name| {
            (name == "AWS_ENDPOINT_URL_SECRETS_MANAGER").then(|| "http://127.0.0.1:4566".into())
        });
        assert_eq!(local, "http://127.0.0.1:4566");
    }
}
