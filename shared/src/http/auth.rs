//! Who may call what: every route but health and the documentation needs a bearer token carrying the route's
//! scope (`routes.rs`). The same rule holds on AWS and offline; only who verifies the token differs.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::Deserialize;

use super::response::ApiError;
use super::routes::{Endpoint, Scope};

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

/// Who is calling: a SHA-256 digest (64 hex digits) of the token's issuer and subject (`iss`, `sub`), so that
/// two users of one app client, a `client_id` equal to another token's `sub`, or claims of any length never
/// meet; empty without authentication. What is kept per caller (idempotency keys) belongs to it.
/// It also knows which scopes its token granted, for what a route shows beyond the one scope it needs (the event
/// feed shows each event only to a caller who may read its resource).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub String, Granted);

/// The scopes a caller's token granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Granted {
    /// None: a public route, or no caller at all.
    #[default]
    Nothing,
    /// Everything: authentication is off.
    Everything,
    Scopes(Vec<Scope>),
}

impl Caller {
    /// Whether the caller's token grants `scope`.
    pub fn may(&self, scope: Scope) -> bool {
        match &self.1 {
            Granted::Nothing => false,
            Granted::Everything => true,
            Granted::Scopes(scopes) => scopes.contains(&scope),
        }
    }

    /// With every scope granted: authentication is off.
    fn anyone() -> Self {
        Self(String::new(), Granted::Everything)
    }

    /// The caller a token of `issuer` about `subject` speaks for. The issuer's length goes first, so that no
    /// issuer and subject run into another pair's.
    pub fn of(issuer: &str, subject: &str) -> Self {
        use std::fmt::Write as _;
        let text = format!("{}:{issuer}{subject}", issuer.len());
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest.as_ref() {
            let _ = write!(hex, "{byte:02x}");
        }
        Self(hex, Granted::Nothing)
    }

    fn with_scopes(self, scopes: Vec<Scope>) -> Self {
        Self(self.0, Granted::Scopes(scopes))
    }
}

/// The claims of a token that matter here.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    /// Space-separated, as OAuth 2.0 access tokens carry them.
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    exp: Option<u64>,
}

/// The largest local token accepted, in bytes (API Gateway's JWT authorizer takes no bigger header values).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The longest a local token may live, from its `iat` (or from now, without one) to its `exp`.
pub const MAX_TOKEN_LIFETIME: u64 = 24 * 60 * 60;

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY: u64 = 5;

impl Auth {
    /// Verifies tokens signed with `key` (HS256) for `issuer` and `audience`.
    pub fn local(key: &[u8], issuer: &str, audience: &str, scope_prefix: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY;
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
            Self::Off => return Ok(Caller::anyone()),
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
                let invalid = ApiError::Unauthorized { token_given: true };
                if token.len() > MAX_TOKEN_BYTES {
                    return Err(invalid);
                }
                let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
                    .map_err(|_| ApiError::Unauthorized { token_given: true })?
                    .claims;
                if !strict_enough(&claims, now()) {
                    return Err(invalid);
                }
                (claims, Vec::new(), scope_prefix)
            }
        };
        // A token must say who it speaks for.
        let (Some(issuer), Some(subject)) = (&claims.iss, &claims.sub) else {
            return Err(ApiError::Unauthorized { token_given: true });
        };
        if issuer.is_empty() || subject.is_empty() {
            return Err(ApiError::Unauthorized { token_given: true });
        }
        let granted: HashSet<&str> = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .chain(extra_scopes.iter().map(String::as_str))
            .collect();
        if !granted.contains(format!("{prefix}{}", needed.as_str()).as_str()) {
            return Err(ApiError::Forbidden {
                scope: format!("{prefix}{}", needed.as_str()),
            });
        }
        let scopes = Scope::ALL
            .into_iter()
            .filter(|s| granted.contains(format!("{prefix}{}", s.as_str()).as_str()))
            .collect();
        Ok(Caller::of(issuer, subject).with_scopes(scopes))
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What API Gateway's authorizer and a careful issuer would refuse besides the signature, issuer, audience,
/// expiry and `nbf` that `jsonwebtoken` checks: an `iat` in the future, a lifetime over
/// [`MAX_TOKEN_LIFETIME`], and scopes not separated by single spaces.
fn strict_enough(claims: &Claims, now: u64) -> bool {
    let Some(exp) = claims.exp else {
        return false;
    };
    let issued = match claims.iat {
        Some(iat) if iat > now + LEEWAY => return false,
        Some(iat) => iat,
        None => now,
    };
    let lifetime_ok = exp <= issued.saturating_add(MAX_TOKEN_LIFETIME)
        && exp <= now.saturating_add(MAX_TOKEN_LIFETIME + LEEWAY);
    let scopes_ok = claims.scope.as_deref().is_none_or(|scope| {
        !scope.is_empty()
            && scope
                .split(' ')
                .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()))
    });
    lifetime_ok && scopes_ok
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
        iss: claim("iss"),
        sub: claim("sub"),
        scope: claim("scope"),
        iat: None,
        exp: None,
    };
    Ok((claims, jwt.scopes.clone().unwrap_or_default()))
}
