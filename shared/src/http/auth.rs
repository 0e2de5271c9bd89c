//! Who may call what: every route but health and the documentation needs a bearer token carrying the route's
//! scope (`routes.rs`). The same rule holds on AWS and offline; only who verifies the token differs.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::Deserialize;

use super::response::ApiError;
use super::routes::Endpoint;

/// How requests are authenticated (`AUTH_MODE`).
#[derive(Clone)]
pub enum Auth {
    /// On AWS: API Gateway's JWT authorizer has verified the token (signature, issuer, audience, expiry, and
    /// the route's scope); the function trusts the claims it passes in the request context and checks the
    /// scope again.
    Gateway { scope_prefix: String },
    /// Offline: the function verifies the bearer token itself (HS256 with a local key, issuer, audience,
    /// expiry), then its scope.
    Local {
        scope_prefix: String,
        key: DecodingKey,
        validation: Box<Validation>,
    },
    /// No authentication at all: an explicit opt-out for quick experiments.
    Off,
}

/// Leaves the key out.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gateway { scope_prefix } => f
                .debug_struct("Gateway")
                .field("scope_prefix", scope_prefix)
                .finish(),
            Self::Local { scope_prefix, .. } => f
                .debug_struct("Local")
                .field("scope_prefix", scope_prefix)
                .finish_non_exhaustive(),
            Self::Off => f.write_str("Off"),
        }
    }
}

/// Who is calling: the token's client (`client_id`, as in Cognito's client-credentials tokens) or subject
/// (`sub`); empty without authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub String);

/// The claims of a token that matter here.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    /// Space-separated, as OAuth 2.0 access tokens carry them.
    #[serde(default)]
    scope: Option<String>,
}

impl Auth {
    /// Verifies tokens signed with `key` (HS256) for `issuer` and `audience`.
    pub fn local(key: &[u8], issuer: &str, audience: &str, scope_prefix: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 5;
        Self::Local {
            scope_prefix: scope_prefix.to_owned(),
            key: DecodingKey::from_secret(key),
            validation: Box::new(validation),
        }
    }

    /// The caller of `request`, if it may use `endpoint`: 401 without a valid token, 403 without the scope.
    pub fn authorize(&self, request: &Request, endpoint: Endpoint) -> Result<Caller, ApiError> {
        let Some(needed) = endpoint.scope() else {
            return Ok(Caller::default());
        };
        let (claims, extra_scopes, prefix) = match self {
            Self::Off => return Ok(Caller::default()),
            Self::Gateway { scope_prefix } => {
                let (claims, scopes) = gateway_claims(request)?;
                (claims, scopes, scope_prefix)
            }
            Self::Local {
                scope_prefix,
                key,
                validation,
            } => {
                let token = bearer(request)?;
                let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
                    .map_err(|_| ApiError::Unauthorized { token_given: true })?
                    .claims;
                (claims, Vec::new(), scope_prefix)
            }
        };
        let granted: HashSet<&str> = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
            .chain(extra_scopes.iter().map(String::as_str))
            .collect();
        if !granted.contains(format!("{prefix}{}", needed.as_str()).as_str()) {
            return Err(ApiError::Forbidden {
                scope: format!("{prefix}{}", needed.as_str()),
            });
        }
        let caller = claims.client_id.or(claims.sub).unwrap_or_default();
        Ok(Caller(caller))
    }
}

/// The bearer token of the `Authorization` header.
fn bearer(request: &Request) -> Result<&str, ApiError> {
    let header = request
        .headers()
        .get(lambda_http::http::header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized { token_given: false })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized { token_given: true })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::Unauthorized { token_given: true }),
    }
}

/// The claims API Gateway's JWT authorizer verified (HTTP API, payload format 2.0), and the scopes it lists
/// apart from them. A request without them did not pass an authorizer: 401.
fn gateway_claims(request: &Request) -> Result<(Claims, Vec<String>), ApiError> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return Err(ApiError::Unauthorized { token_given: false });
    };
    let jwt = context
        .authorizer
        .as_ref()
        .and_then(|authorizer| authorizer.jwt.as_ref())
        .ok_or(ApiError::Unauthorized { token_given: false })?;
    let claim = |name: &str| jwt.claims.get(name).cloned();
    let claims = Claims {
        sub: claim("sub"),
        client_id: claim("client_id"),
        scope: claim("scope"),
    };
    Ok((claims, jwt.scopes.clone().unwrap_or_default()))
}
