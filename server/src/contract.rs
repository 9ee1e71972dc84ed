//! What each operation can answer, in one place: the documented responses
//! of every route are generated from its [`Contract`], so the OpenAPI
//! document lists exactly the statuses the handler can send.
//!
//! A handler's status comes from three places, and a contract names each:
//! who may call it ([`Auth`]: 401, 403, and 404 for a valid token whose
//! user does not exist), what it reads (a JSON body: 400, 408, 413; an
//! `Idempotency-Key`: 400, 422; path or query parameters: 400), and which
//! [`ErrorKind`]s the library call can return, each mapped to its status
//! as [`crate::problem::status`] maps it. `tests/contract.rs` drives every
//! error path of every route and fails when a status is sent that the
//! document does not list for that route.

use std::collections::BTreeMap;

use liteshop::ErrorKind;
use utoipa::openapi::{RefOr, Response, ResponseBuilder, content::ContentBuilder};

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Anyone.
    Public,
    /// A user's bearer token: 401 without a valid one; 404 when it names
    /// a user this shop does not have.
    User,
    /// The admin token: 401 without a valid token, 403 for a user's.
    Admin,
}

/// What an operation reads and what its library call can refuse.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Contract {
    /// Who may call it.
    pub(crate) auth: Auth,
    /// It reads a JSON body: 400 (malformed, unknown field), 408 (not
    /// sent in time), 413 (over the limit).
    pub(crate) body: bool,
    /// It takes an `Idempotency-Key`: 400 (empty or not a UUID), 422 (the
    /// key was used for another request).
    pub(crate) key: bool,
    /// It reads path or query parameters: 400 when one is out of range.
    pub(crate) params: bool,
    /// The kinds of error its library call can return. Every call reaches
    /// the database, so it can also be [`ErrorKind::Busy`] (503) and
    /// [`ErrorKind::Internal`] (500); those are added here, not listed.
    pub(crate) errors: &'static [ErrorKind],
}

impl Contract {
    /// A contract for an operation callable by `auth`.
    pub(crate) const fn new(auth: Auth) -> Contract {
        Contract {
            auth,
            body: false,
            key: false,
            params: false,
            errors: &[],
        }
    }

    /// It reads a JSON body.
    pub(crate) const fn body(mut self) -> Contract {
        self.body = true;
        self
    }

    /// It takes an `Idempotency-Key`.
    pub(crate) const fn key(mut self) -> Contract {
        self.key = true;
        self
    }

    /// It reads path or query parameters.
    pub(crate) const fn params(mut self) -> Contract {
        self.params = true;
        self
    }

    /// The kinds of error its library call can return.
    pub(crate) const fn errors(mut self, errors: &'static [ErrorKind]) -> Contract {
        self.errors = errors;
        self
    }

    /// Every error status the operation can send, with what it means.
    pub(crate) fn statuses(&self) -> BTreeMap<u16, &'static str> {
        let mut statuses = BTreeMap::new();
        let mut add = |status: u16, why: &'static str| {
            statuses.entry(status).or_insert(why);
        };
        match self.auth {
            Auth::Public => {}
            Auth::User => {
                add(401, "no bearer token, or not a valid one");
                add(404, "not found (also: the token's user does not exist)");
            }
            Auth::Admin => {
                add(401, "no bearer token, or not a valid one");
                add(403, "a user's token on an admin route");
            }
        }
        if self.body {
            add(400, "the body is not valid for this operation");
            add(408, "the body did not arrive in time");
            add(413, "the body is over the size limit");
        }
        if self.key {
            add(400, "the Idempotency-Key is empty or not a UUID");
            add(
                422,
                "the Idempotency-Key was used for another request (idempotency_key_reused)",
            );
        }
        if self.params {
            add(400, "a parameter is out of range");
        }
        for kind in self.errors {
            let (status, why) = kind_status(*kind);
            add(status, why);
        }
        for kind in [ErrorKind::Busy, ErrorKind::Internal] {
            let (status, why) = kind_status(kind);
            add(status, why);
        }
        statuses
    }

    /// The documented error responses, each a problem body.
    pub(crate) fn responses(&self) -> BTreeMap<String, RefOr<Response>> {
        self.statuses()
            .into_iter()
            .map(|(status, why)| {
                let problem = ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Problem",
                    ))))
                    .build();
                let response = ResponseBuilder::new()
                    .description(why)
                    .content("application/problem+json", problem)
                    .build();
                (status.to_string(), RefOr::T(response))
            })
            .collect()
    }
}

/// The status of an error kind and what it means, as
/// [`ErrorKind::http_status`] gives it.
fn kind_status(kind: ErrorKind) -> (u16, &'static str) {
    let why = match kind {
        ErrorKind::InvalidInput => "the input is not valid",
        ErrorKind::NotFound => "not found (also another user's)",
        ErrorKind::Conflict => "refused in the shop's current state",
        ErrorKind::PaymentDeclined => "the payment gateway declined",
        ErrorKind::PaymentOutcomeUnknown => {
            "no definite answer from the payment gateway yet; reconciliation settles it"
        }
        ErrorKind::Busy => "the database or the payment gateway is busy; retry",
        _ => "internal error",
    };
    (kind.http_status(), why)
}

/// Declares a type whose `IntoResponses` are a contract's error responses,
/// for `#[utoipa::path(responses(...))]`.
macro_rules! contract {
    ($(#[$doc:meta])* $name:ident = $contract:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl $name {
            #[allow(dead_code)]
            pub(crate) const CONTRACT: $crate::contract::Contract = $contract;
        }
        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $name::CONTRACT.responses()
            }
        }
    };
}
pub(crate) use contract;
