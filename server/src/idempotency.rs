//! The `Idempotency-Key` of a write: read from its header and fingerprinted
//! with the request's method, matched route, path parameters and body by
//! one extractor ([`KeyedBody`]), so no handler restates its route; and the
//! answer of a keyed write ([`keyed`]), the same the first time and on
//! every repeat.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use liteshop::{IdempotencyKey, Keyed};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::problem::{ApiError, Problem};

/// A write's body and its idempotency key, if the client sent one. The key
/// is fingerprinted with the method, the route the request matched (its
/// template, under whatever prefix the host mounted the router), the
/// values of its path parameters as the route reads them, and the body:
/// `/me/orders/7/pay` and `/me/orders/007/pay` are one request, as they
/// pay one order.
pub(crate) struct KeyedBody {
    /// The key with its fingerprint; `None` without the header.
    pub(crate) key: Option<IdempotencyKey>,
    /// The request's body, as it came.
    pub(crate) body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for KeyedBody {
    /// A body the server refused to read (too large, …) is answered as
    /// axum answers it; a malformed key as a 400 problem.
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<KeyedBody, Response> {
        let (mut parts, body) = request.into_parts();
        let key_header = parts.headers.clone();
        let method = parts.method.clone();
        let path = target(&mut parts, state).await;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let key = key_of(&key_header, method.as_str(), &path, &body)
            .map_err(IntoResponse::into_response)?;
        Ok(KeyedBody { key, body })
    }
}

/// The request's target as its route reads it: the matched route's
/// template, then each path parameter by name, an id in its canonical
/// decimal form (`007` is `7`). Without a matched route (a handler
/// mounted by hand), the path as it came.
async fn target<S: Send + Sync>(parts: &mut axum::http::request::Parts, state: &S) -> String {
    let Some(route) = parts.extensions.get::<MatchedPath>().cloned() else {
        return parts.uri.path().to_owned();
    };
    let mut target = route.as_str().to_owned();
    if let Ok(params) = RawPathParams::from_request_parts(parts, state).await {
        for (name, value) in &params {
            let value = value
                .parse::<i64>()
                .map_or_else(|_| value.to_owned(), |id| id.to_string());
            target.push_str(&format!(" {name}={value}"));
        }
    }
    target
}

/// The `Idempotency-Key` header, if any, with a fingerprint of the request
/// (method, path and body). A key is one request per user across every
/// route: the same key on another route, another target or with another
/// body is refused (422), so one key can never pay two orders. An empty or
/// malformed key is refused (400), never read as "no key".
fn key_of(
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &Bytes,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|key| is_uuid(key))
        .ok_or_else(|| {
            ApiError::from(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "the Idempotency-Key header is a UUID (8-4-4-4-12 hex digits, either case), e.g. 1b4e28ba-2fa1-4d2a-8e3c-6b5f0c3d9a77",
            ))
        })?;
    let mut digest = Sha256::new();
    digest.update(method.as_bytes());
    digest.update(b" ");
    digest.update(path.as_bytes());
    digest.update(b"\n");
    digest.update(body);
    // A UUID is the same key in either case (Apple platforms write upper
    // case); the key is stored as the client sent it, in lower case.
    Ok(Some(IdempotencyKey::new(
        key.to_ascii_lowercase(),
        hex::encode(digest.finalize()),
    )))
}

/// Whether `key` is a UUID (8-4-4-4-12 hex digits, either case), the form
/// the schema asks for.
fn is_uuid(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A keyed write's response: its status and body the first time and on
/// every repeat, which also carries `Idempotent-Replayed: true`.
pub(crate) fn keyed<T: Serialize>(status: StatusCode, result: Keyed<T>) -> Response {
    let replayed = result.is_replay();
    let mut response = (status, Json(result.into_inner())).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
