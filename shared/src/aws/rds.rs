//! IAM authentication tokens for RDS (and RDS Proxy): instead of a password, a connection presents a
//! pre-signed `connect` request (SigV4, service `rds-db`) for its user, valid for 15 minutes. Signing is local
//! and takes microseconds.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use super::call::Account;

/// How long a token is accepted (fixed by AWS).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The token that authenticates `user` at `host:port` as `account`, as of `now`: a pre-signed `connect`
/// request, without its scheme. It is a credential: never logged.
pub fn auth_token(
    host: &str,
    port: u16,
    user: &str,
    account: &Account,
    now: SystemTime,
) -> Result<String, TokenError> {
    let identity = account.credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&account.region)
        .name("rds-db")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|_| TokenError)?
        .into();
    let url = format!(
        "https://{host}:{port}/?Action=connect&DBUser={}",
        form_encode(user)
    );
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|_| TokenError)?;
    let (instructions, _) = sign(request, &params).map_err(|_| TokenError)?.into_parts();
    let mut signed = http::Request::builder()
        .uri(&url)
        .body(())
        .map_err(|_| TokenError)?;
    instructions.apply_to_request_http1x(&mut signed);
    let uri = signed.uri().to_string();
    Ok(uri.strip_prefix("https://").unwrap_or(&uri).to_owned())
}

/// A token that could not be signed (a host that makes no URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("could not sign the database auth token")]
pub struct TokenError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use std::collections::BTreeMap;

    const HOST: &str = "proxy.proxy-abc.eu-west-1.rds.amazonaws.com";

    fn account(region: &str, credentials: Credentials) -> Account {
        Account {
            region: region.into(),
            credentials,
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
        let token = auth_token(
            HOST,
            5432,
            "inventory",
            &account("eu-west-1", credentials),
            noon(),
        )
        .unwrap();
        assert!(!token.starts_with("https://"), "{token}");
        let (authority, params) = query(&token);
        assert_eq!(authority, format!("{HOST}:5432"));
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
        assert_eq!(
            params["X-Amz-Signature"],
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
        let token = auth_token(
            HOST,
            5432,
            "inventory",
            &account("eu-west-1", credentials),
            noon(),
        )
        .unwrap();
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
        let here = account("eu-west-1", credentials.clone());
        let base = auth_token(HOST, 5432, "inventory", &here, noon()).unwrap();
        let later = auth_token(
            HOST,
            5432,
            "inventory",
            &here,
            noon() + Duration::from_secs(1),
        )
        .unwrap();
        let elsewhere = auth_token(
            HOST,
            5432,
            "inventory",
            &account("us-east-1", credentials),
            noon(),
        )
        .unwrap();
        let other = auth_token(HOST, 5432, "someone else", &here, noon()).unwrap();
        assert_ne!(base, later);
        assert!(
            elsewhere.contains("%2Fus-east-1%2Frds-db%2F"),
            "{elsewhere}"
        );
        assert!(other.contains("DBUser=someone%20else&"), "{other}");
    }
}
