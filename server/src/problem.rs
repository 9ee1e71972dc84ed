//! Errors as `application/problem+json` (RFC 9457): a stable machine code
//! per [`liteshop::Error`] variant, the status from its kind, and the ids
//! and figures the error carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use liteshop::{Error, ErrorKind};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A problem: what went wrong, for a machine (`code`) and a person
/// (`detail`), with the figures involved.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` with `code` carrying it.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the status.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// A stable machine code, e.g. `insufficient_balance`.
    pub code: String,
    /// What happened, for a person.
    pub detail: String,
    /// The ids and figures the error carries, if any.
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "Value::is_null")]
    pub fields: Value,
    /// The `WWW-Authenticate` challenge of a 401, if this is one.
    #[serde(skip)]
    #[schema(ignore)]
    challenge: Option<&'static str>,
}

impl Problem {
    /// A problem with `status` and `code`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            code: code.into(),
            detail: detail.into(),
            fields: Value::Null,
            challenge: None,
        }
    }

    /// 401: no token was sent. Carries `WWW-Authenticate: Bearer`.
    pub fn unauthorized() -> Problem {
        Problem {
            challenge: Some("Bearer"),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            )
        }
    }

    /// 401: a token was sent but is not valid (RFC 6750's
    /// `invalid_token`). Carries `WWW-Authenticate: Bearer
    /// error="invalid_token"`.
    pub fn invalid_token() -> Problem {
        Problem {
            challenge: Some("Bearer error=\"invalid_token\""),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token is not valid",
            )
        }
    }

    /// 403: a valid token without the right (a user token on an admin route).
    pub fn forbidden() -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route needs the admin token",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The ids and figures of an error ([`Error::fields`]), as JSON; none is
/// `null`, left out of the body.
fn fields(err: &Error) -> Value {
    let fields = err.fields();
    if fields.is_empty() {
        return Value::Null;
    }
    serde_json::to_value(fields).unwrap_or(Value::Null)
}

/// The HTTP status of an error: its kind's, except a reused idempotency
/// key, which is 422 (the request cannot be processed as sent).
pub fn status(err: &Error) -> StatusCode {
    if matches!(err, Error::IdempotencyKeyReused { .. }) {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    StatusCode::from_u16(err.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The error type of the handlers: a [`Problem`], boxed so results stay
/// small.
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> ApiError {
        ApiError(Box::new(problem))
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        ApiError(Box::new(Problem::from(err)))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl From<Error> for Problem {
    fn from(err: Error) -> Problem {
        let status = status(&err);
        // Internal errors are logged in full and answered briefly: their
        // causes (paths, SQL) are not the client's business.
        let detail = if err.kind() == ErrorKind::Internal {
            tracing::error!(error = %err, "internal error");
            "internal error".to_owned()
        } else if matches!(err, Error::IdempotencyKeyReused { .. }) {
            "this Idempotency-Key was used for a different request: a key is one request (route, target and body) per user".to_owned()
        } else {
            err.to_string()
        };
        Problem {
            fields: fields(&err),
            ..Problem::new(status, err.code(), detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liteshop::{Money, UserId};

    /// The variant's name in snake case, read from its `Debug` form: the
    /// rule `Error::code` is written out by.
    fn snake_debug_name(err: &Error) -> String {
        let name: String = format!("{err:?}")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let mut code = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        }
        code
    }

    #[test]
    fn codes_are_the_variant_in_snake_case() {
        let err = Error::InsufficientBalance {
            user: UserId::new(1),
            needed: Money::from_won(2),
            available: Money::from_won(1),
        };
        assert_eq!(err.code(), "insufficient_balance");
        assert_eq!(status(&err), StatusCode::CONFLICT);
        // A unit, a tuple and a struct variant, and the internal ones.
        for err in [
            err,
            Error::ZeroAmount,
            Error::UserNotFound(UserId::new(7)),
            Error::CommitOutcomeUnknown,
            Error::WriteNotRun,
            Error::Busy(liteshop::StorageError::new(
                liteshop::StorageClass::Busy,
                "busy",
            )),
            Error::Io(std::io::Error::other("io")),
        ] {
            assert_eq!(err.code(), snake_debug_name(&err), "{err:?}");
        }
    }
}
