//! Identity: a pluggable [`Authenticator`] turns a request's headers into the caller's user id;
//! the [`AuthUser`] extractor runs it for every API route.
//!
//! The example's [`SharedSecretAuth`] accepts `Authorization: Bearer <secret>:<user id>`: a
//! stand-in for a real identity provider (a JWT verifier, a session lookup) that keeps the
//! example self-contained. Anyone who knows the secret can act as any user, so it is for
//! development and tests only; plug a real [`Authenticator`] in for anything else.

use crate::api::AppState;
use crate::error::{Error, Result};
use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// The caller as the authentication layer identified them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's id; every stored workflow, run and asset is scoped by it.
    pub user_id: String,
    /// The user's email, when the identity provider tells it.
    pub email: Option<String>,
}

/// Identifies the caller of a request.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The caller, or [`Error::Unauthorized`] saying what is missing or wrong.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity>;
}

/// Bearer tokens of the form `<secret>:<user id>`, checked against one configured secret.
#[derive(Clone)]
pub struct SharedSecretAuth {
    secret: String,
}

impl std::fmt::Debug for SharedSecretAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecretAuth(***)")
    }
}

impl SharedSecretAuth {
    /// Accepts tokens made with `secret`, which must be at least 16 characters long.
    pub fn new(secret: impl Into<String>) -> Result<Self> {
        let secret = secret.into();
        if secret.len() < 16 {
            return Err(Error::Config(
                "the auth secret must be at least 16 characters long".into(),
            ));
        }
        if secret.contains(':') {
            return Err(Error::Config("the auth secret must not contain `:`".into()));
        }
        Ok(SharedSecretAuth { secret })
    }

    /// The bearer token for `user_id` (for clients and tests).
    pub fn token_for(&self, user_id: &str) -> String {
        format!("{}:{user_id}", self.secret)
    }
}

#[async_trait]
impl Authenticator for SharedSecretAuth {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| Error::Unauthorized("missing Authorization header".into()))?;
        let value = header
            .to_str()
            .map_err(|_| Error::Unauthorized("Authorization header is not text".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| Error::Unauthorized("expected `Authorization: Bearer <token>`".into()))?
            .trim();
        let (secret, user_id) = token
            .split_once(':')
            .ok_or_else(|| Error::Unauthorized("malformed token".into()))?;
        if !constant_time_eq(secret.as_bytes(), self.secret.as_bytes()) {
            return Err(Error::Unauthorized("invalid token".into()));
        }
        if !valid_user_id(user_id) {
            return Err(Error::Unauthorized(
                "the user id in the token must be 1-128 characters of letters, digits, `-`, `_`, `.`, `@`".into(),
            ));
        }
        Ok(Identity {
            user_id: user_id.to_owned(),
            email: None,
        })
    }
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// The authenticated caller of a request: rejects it with 401 when the [`Authenticator`]
/// does not accept it, and makes sure the user exists in the store.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Identity);

impl AuthUser {
    /// The caller's user id.
    pub fn id(&self) -> &str {
        &self.0.user_id
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let identity = state.authenticator().authenticate(&parts.headers).await?;
        state.ensure_user(&identity).await?;
        Ok(AuthUser(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn shared_secret_tokens() {
        let auth = SharedSecretAuth::new("0123456789abcdef").unwrap();
        let ok = auth
            .authenticate(&headers("Bearer 0123456789abcdef:alice"))
            .await
            .unwrap();
        assert_eq!(ok.user_id, "alice");
        for bad in [
            "Bearer 0123456789abcdeX:alice",
            "Bearer 0123456789abcdef:",
            "Bearer 0123456789abcdef:a/b",
            "Basic abc",
            "Bearer nocolon",
        ] {
            assert!(matches!(
                auth.authenticate(&headers(bad)).await,
                Err(Error::Unauthorized(_))
            ));
        }
        assert!(matches!(
            auth.authenticate(&HeaderMap::new()).await,
            Err(Error::Unauthorized(_))
        ));
        assert!(SharedSecretAuth::new("short").is_err());
    }
}
