//! Bearer tokens. A user's token is stateless: `u<id>.<hex HMAC-SHA-256 of
//! "user:<id>" under the server's secret>`, checked in constant time, so
//! nothing about tokens is stored and a new secret revokes them all. The
//! admin token is compared through an HMAC too, so the comparison takes the
//! same time whatever it is given.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use liteshop::UserId;
use sha2::Sha256;

use crate::AppState;
use crate::problem::{ApiError, Problem};

type HmacSha256 = Hmac<Sha256>;

/// The secrets tokens are made and checked with. Its `Debug` shows neither.
#[derive(Clone)]
pub struct Secrets {
    token_secret: Vec<u8>,
    admin_mac: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// Secrets from the token secret and the admin token.
    pub fn new(token_secret: &[u8], admin_token: &str) -> Secrets {
        Secrets {
            token_secret: token_secret.to_vec(),
            admin_mac: mac(token_secret, format!("admin:{admin_token}").as_bytes()),
        }
    }

    /// The bearer token of `user`.
    pub fn user_token(&self, user: UserId) -> String {
        let tag = mac(&self.token_secret, format!("user:{user}").as_bytes());
        format!("u{user}.{}", hex::encode(tag))
    }

    /// The user a token names, if it is one of ours.
    fn user_of(&self, token: &str) -> Option<UserId> {
        let (id, tag) = token.strip_prefix('u')?.split_once('.')?;
        let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
        let tag = hex::decode(tag).ok()?;
        let mut check = HmacSha256::new_from_slice(&self.token_secret).ok()?;
        check.update(format!("user:{id}").as_bytes());
        check.verify_slice(&tag).ok()?;
        Some(UserId::new(id))
    }

    /// Whether `token` is the admin token (in constant time).
    fn is_admin(&self, token: &str) -> bool {
        let Ok(mut check) = HmacSha256::new_from_slice(&self.token_secret) else {
            return false;
        };
        check.update(format!("admin:{token}").as_bytes());
        check.verify_slice(&self.admin_mac).is_ok()
    }
}

fn mac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The user a request acts as, from its bearer token: never from a path or
/// a body.
#[derive(Clone, Copy, Debug)]
pub struct Me(pub UserId);

impl FromRequestParts<AppState> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Me, ApiError> {
        let token = bearer(parts).ok_or_else(|| ApiError::from(Problem::unauthorized()))?;
        state
            .secrets
            .user_of(token)
            .map(Me)
            .ok_or_else(|| Problem::unauthorized().into())
    }
}

/// A request made with the admin token.
#[derive(Clone, Copy, Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let token = bearer(parts).ok_or_else(|| ApiError::from(Problem::unauthorized()))?;
        if state.secrets.is_admin(token) {
            Ok(Admin)
        } else if state.secrets.user_of(token).is_some() {
            Err(Problem::forbidden().into())
        } else {
            Err(Problem::unauthorized().into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_user_and_nothing_else() {
        let secrets = Secrets::new(b"secret", "admin-token");
        let token = secrets.user_token(UserId::new(42));
        assert_eq!(secrets.user_of(&token), Some(UserId::new(42)));
        let forged = token.replacen("u42.", "u43.", 1);
        assert_eq!(secrets.user_of(&forged), None);
        let other = Secrets::new(b"another secret", "admin-token");
        assert_eq!(other.user_of(&token), None);
        assert!(secrets.is_admin("admin-token"));
        assert!(!secrets.is_admin("admin-token "));
        assert!(!format!("{secrets:?}").contains("secret\""));
    }
}
