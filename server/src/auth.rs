//! Bearer tokens. A user's token is stateless: `u<id>.<hex HMAC-SHA-256 of
//! "user:<id>" under the server's secret>`, checked in constant time, so
//! nothing about tokens is stored and a new secret revokes them all. A host
//! mints and checks them with [`user_token`] and [`token_user`], never by
//! re-implementing the formula. The admin token is compared through an
//! HMAC too, so the comparison takes the same time whatever it is given.
//!
//! The `Authorization` scheme is case-insensitive (`Bearer`, `bearer`), as
//! RFC 9110 says; a 401 carries `WWW-Authenticate: Bearer`, with
//! `error="invalid_token"` when a token was sent but is not valid.

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

    /// The bearer token of `user`: [`user_token`] under these secrets.
    pub fn user_token(&self, user: UserId) -> String {
        user_token(&self.token_secret, user)
    }

    /// The user a token names, if it is one of ours: [`token_user`] under
    /// these secrets.
    pub fn token_user(&self, token: &str) -> Option<UserId> {
        token_user(&self.token_secret, token)
    }

    /// A signed console session that ends at `expires` (UTC ms):
    /// `<expires>.<hex HMAC of "console:<expires>" and the admin token's
    /// MAC>`, so a new token secret or a new admin token ends every session.
    pub(crate) fn console_session(&self, expires: i64) -> String {
        let tag = mac(&self.token_secret, &self.console_message(expires));
        format!("{expires}.{}", hex::encode(tag))
    }

    /// Whether `session` is one of ours and still valid at `now` (UTC ms);
    /// the tag is checked in constant time.
    pub(crate) fn console_session_valid(&self, session: &str, now: i64) -> bool {
        let Some((expires, tag)) = session.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
            return false;
        };
        let Ok(mut check) = HmacSha256::new_from_slice(&self.token_secret) else {
            return false;
        };
        check.update(&self.console_message(expires));
        check.verify_slice(&tag).is_ok() && now < expires
    }

    /// The CSRF token of a session: what every console form must carry
    /// back, which a page on another site cannot know.
    pub(crate) fn csrf_token(&self, session: &str) -> String {
        hex::encode(mac(
            &self.token_secret,
            format!("csrf:{session}").as_bytes(),
        ))
    }

    /// Whether `token` is the CSRF token of `session` (in constant time).
    pub(crate) fn csrf_valid(&self, session: &str, token: &str) -> bool {
        let (Ok(tag), Ok(mut check)) = (
            hex::decode(token),
            HmacSha256::new_from_slice(&self.token_secret),
        ) else {
            return false;
        };
        check.update(format!("csrf:{session}").as_bytes());
        check.verify_slice(&tag).is_ok()
    }

    fn console_message(&self, expires: i64) -> Vec<u8> {
        let mut message = format!("console:{expires}:").into_bytes();
        message.extend_from_slice(&self.admin_mac);
        message
    }

    /// Whether `token` is the admin token (in constant time).
    pub(crate) fn is_admin(&self, token: &str) -> bool {
        let Ok(mut check) = HmacSha256::new_from_slice(&self.token_secret) else {
            return false;
        };
        check.update(format!("admin:{token}").as_bytes());
        check.verify_slice(&self.admin_mac).is_ok()
    }
}

/// The bearer token of `user` under `token_secret`: `u<id>.<hex of
/// HMAC-SHA-256("user:<id>") keyed by the secret>`, e.g. `u42.9f…`.
///
/// ```
/// use liteshop::UserId;
/// let token = liteshop_server::user_token(b"the token secret", UserId::new(42));
/// assert!(token.starts_with("u42."));
/// assert_eq!(liteshop_server::token_user(b"the token secret", &token), Some(UserId::new(42)));
/// assert_eq!(liteshop_server::token_user(b"another secret", &token), None);
/// ```
pub fn user_token(token_secret: &[u8], user: UserId) -> String {
    let tag = mac(token_secret, format!("user:{user}").as_bytes());
    format!("u{user}.{}", hex::encode(tag))
}

/// The user a token names, if [`user_token`] made it under `token_secret`;
/// the tag is checked in constant time.
pub fn token_user(token_secret: &[u8], token: &str) -> Option<UserId> {
    let (id, tag) = token.strip_prefix('u')?.split_once('.')?;
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
    let tag = hex::decode(tag).ok()?;
    let mut check = HmacSha256::new_from_slice(token_secret).ok()?;
    check.update(format!("user:{id}").as_bytes());
    check.verify_slice(&tag).ok()?;
    Some(UserId::new(id))
}

fn mac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The bearer token of a request: `Authorization: <scheme> <token>` with
/// the scheme `Bearer` in any case. No header (or another scheme) is
/// `Err(false)`: no credentials; an unreadable one is `Err(true)`.
fn bearer(parts: &Parts) -> Result<&str, bool> {
    let Some(header) = parts.headers.get(AUTHORIZATION) else {
        return Err(false);
    };
    let header = header.to_str().map_err(|_| true)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(true)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(false);
    }
    match token.trim() {
        "" => Err(true),
        token => Ok(token),
    }
}

/// The 401 for a request: no credentials, or a token that is not valid.
fn unauthorized(sent: bool) -> ApiError {
    if sent {
        Problem::invalid_token().into()
    } else {
        Problem::unauthorized().into()
    }
}

/// The user a request acts as, from its bearer token: never from a path or
/// a body.
#[derive(Clone, Copy, Debug)]
pub struct Me(pub UserId);

impl FromRequestParts<AppState> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Me, ApiError> {
        let token = bearer(parts).map_err(unauthorized)?;
        state
            .secrets
            .token_user(token)
            .map(Me)
            .ok_or_else(|| unauthorized(true))
    }
}

/// A request made with the admin token.
#[derive(Clone, Copy, Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let token = bearer(parts).map_err(unauthorized)?;
        if state.secrets.is_admin(token) {
            Ok(Admin)
        } else if state.secrets.token_user(token).is_some() {
            Err(Problem::forbidden().into())
        } else {
            Err(unauthorized(true))
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
        assert_eq!(secrets.token_user(&token), Some(UserId::new(42)));
        let forged = token.replacen("u42.", "u43.", 1);
        assert_eq!(secrets.token_user(&forged), None);
        let other = Secrets::new(b"another secret", "admin-token");
        assert_eq!(other.token_user(&token), None);
        assert!(secrets.is_admin("admin-token"));
        assert!(!secrets.is_admin("admin-token "));
        assert!(!format!("{secrets:?}").contains("secret\""));
    }

    #[test]
    fn console_sessions_are_signed_expire_and_die_with_the_admin_token() {
        let secrets = Secrets::new(b"secret", "admin-token");
        let session = secrets.console_session(2_000);
        assert!(secrets.console_session_valid(&session, 1_999));
        assert!(!secrets.console_session_valid(&session, 2_000), "expired");
        let forged = session.replacen("2000.", "9999.", 1);
        assert!(!secrets.console_session_valid(&forged, 1_000));
        let new_admin = Secrets::new(b"secret", "another admin token");
        assert!(!new_admin.console_session_valid(&session, 1_000));
        let csrf = secrets.csrf_token(&session);
        assert!(secrets.csrf_valid(&session, &csrf));
        assert!(!secrets.csrf_valid(&secrets.console_session(3_000), &csrf));
        assert!(!secrets.csrf_valid(&session, "00"));
    }
}
