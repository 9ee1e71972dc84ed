//! The `Idempotency-Key` of a write: read from its header and fingerprinted
//! with the request's method, path and body by one extractor
//! ([`KeyedBody`]), so no handler restates its route; and the answer of a
//! keyed write ([`keyed`]), the same the first time and on every repeat.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use liteshop::{IdempotencyKey, Keyed};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::problem::{ApiError, Problem};

/// A write's body and its idempotency key, if the client sent one. The key
/// is fingerprinted with the method and the path the request came in on
/// (under whatever prefix the host mounted the router), and the body.
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
        let (parts, body) = request.into_parts();
        let key_header = parts.headers.clone();
        let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let key = key_of(&key_header, method.as_str(), &path, &body)
            .map_err(IntoResponse::into_response)?;
        Ok(KeyedBody { key, body })
    }
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
