//! The payment gateway (PG) seam: the [`PaymentGateway`] trait the shop
//! calls, its request and answer types, [`GatewayError`], and two
//! implementations — [`FakeGateway`] for tests and [`HttpGateway`] for a PG
//! that speaks the JSON contract described on [`HttpGateway`].

mod fake;
mod http;

use std::fmt;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::OrderId;
use crate::money::Money;

pub use fake::{FakeGateway, FakeOutcome};
pub use http::{HttpGateway, HttpGatewayBuilder};

/// Asks the PG to approve one payment attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveRequest {
    /// The PG's key for the payment, from its widget's success redirect.
    pub payment_key: String,
    /// The id of this payment attempt at the PG: unique per attempt, 6–64
    /// characters of `[A-Za-z0-9_-]`.
    pub pg_order_id: String,
    /// The amount to approve: the payment's PG part.
    pub amount: Money,
    /// The key that makes a repeated request the same payment. Unique per
    /// attempt; stored before the first call.
    pub idempotency_key: String,
    /// The shop's order (`None` for a top-up), for logs and fakes; not sent
    /// to an HTTP PG.
    pub order: Option<OrderId>,
}

/// Asks the PG what it knows of one payment attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// The attempt's id at the PG.
    pub pg_order_id: String,
}

/// Asks the PG to cancel (refund) all or part of an approved payment: one
/// refund attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// The PG's reference for the payment.
    pub payment_key: String,
    /// The attempt's id at the PG.
    pub pg_order_id: String,
    /// The amount to cancel: the attempt's, the whole payment or part of it.
    pub amount: Money,
    /// Why, as the PG records it.
    pub reason: String,
    /// The attempt's own key, fresh for every attempt and stored before the
    /// first call: a repeated cancel with it (a retry, or reconciliation) is
    /// the same cancel; a new attempt after a decline has a new key.
    pub idempotency_key: String,
}

/// The PG approved a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The PG's id for the approved transaction.
    pub transaction_id: String,
    /// The amount the PG approved; the shop checks it equals the request.
    pub approved_amount: Money,
    /// When the PG approved it, as the PG wrote it (ISO 8601 for an HTTP PG).
    pub approved_at: String,
}

/// The PG cancelled a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The amount the PG cancelled.
    pub cancelled_amount: Money,
}

/// What the PG knows of one payment attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PgStatus {
    /// It approved the attempt.
    Approved(Approval),
    /// It declined, aborted, expired or cancelled the attempt.
    Declined {
        /// The PG's code.
        code: String,
        /// The PG's message.
        message: String,
    },
    /// It never received the attempt: sending the approval again, with the
    /// same idempotency key, is safe.
    NotFound,
}

/// Why a gateway call did not succeed. Each class is handled differently by
/// the shop.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum GatewayError {
    /// Final: the PG said no (a rejected card, a limit, …). The money was
    /// not taken.
    #[error("declined by the payment gateway: {code}: {message}")]
    Declined {
        /// The PG's code.
        code: String,
        /// The PG's message.
        message: String,
    },
    /// Final: our request or configuration is wrong (a bad key, a malformed
    /// request). A bug to fix, logged at error level. The money was not taken.
    #[error("the payment gateway refused the request as invalid: {code}: {message}")]
    Invalid {
        /// The PG's code.
        code: String,
        /// The PG's message.
        message: String,
    },
    /// The request provably never reached the PG (connection refused, DNS,
    /// connect timeout): safe to retry with the same key.
    #[error("the payment gateway is unreachable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// The PG may or may not have acted (read timeout, 5xx, 429, unreadable
    /// or mismatched reply, an unlisted code). Only asking the PG later
    /// settles it.
    #[error("the payment gateway gave no definite answer: {reason}")]
    Unknown {
        /// What happened.
        reason: String,
    },
}

/// A payment gateway: approves, looks up and cancels payments.
///
/// Implementations must treat a repeated idempotency key as the same
/// request (replaying the first definite outcome: an approval, a decline, a
/// cancel), answer [`status`](Self::status) truthfully from their own
/// records, cancel part of a payment when asked for less than it (never
/// more than what is left), and return `Ok` for a cancel of a payment they
/// already cancelled whole. Keys must stay valid for longer than the shop's
/// review age ([`ShopBuilder::review_after`](crate::ShopBuilder::review_after)).
/// The shop never holds a database transaction across any of these calls.
pub trait PaymentGateway: Send + Sync {
    /// Approves one payment attempt.
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError>;
    /// What the PG knows of one payment attempt.
    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError>;
    /// Cancels (refunds) all or part of an approved payment.
    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError>;
}

impl<G: PaymentGateway + ?Sized> PaymentGateway for std::sync::Arc<G> {
    fn approve(&self, request: &ApproveRequest) -> Result<Approval, GatewayError> {
        (**self).approve(request)
    }
    fn status(&self, request: &StatusRequest) -> Result<PgStatus, GatewayError> {
        (**self).status(request)
    }
    fn cancel(&self, request: &CancelRequest) -> Result<Cancellation, GatewayError> {
        (**self).cancel(request)
    }
}

/// How the shop retries a gateway call that failed as
/// [`GatewayError::Unavailable`]: at most `retries` more times, with the same
/// request (so the same idempotency key), after an exponential backoff from
/// `base` with random jitter. No other failure is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The wait before the first retry; each later wait doubles.
    pub base: Duration,
}

impl Default for RetryPolicy {
    /// 2 retries, waiting about 200 ms and then 400 ms.
    fn default() -> RetryPolicy {
        RetryPolicy {
            retries: 2,
            base: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// Runs `call`, retrying while it fails as unavailable.
    pub(crate) fn run<T>(
        &self,
        mut call: impl FnMut() -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let mut attempt = 0;
        loop {
            match call() {
                Err(GatewayError::Unavailable { reason }) if attempt < self.retries => {
                    let wait = self.backoff(attempt);
                    tracing::warn!(attempt, ?wait, %reason, "payment gateway unavailable; retrying");
                    thread::sleep(wait);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `base × 2^attempt`, plus up to half of that again at random.
    fn backoff(&self, attempt: u32) -> Duration {
        let wait = self.base.saturating_mul(1 << attempt.min(16));
        let jitter_range = (wait.as_millis() as u64 / 2).max(1);
        wait + Duration::from_millis(crate::token::random_u64() % jitter_range)
    }
}

impl fmt::Display for PgStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgStatus::Approved(approval) => write!(f, "approved as {}", approval.transaction_id),
            PgStatus::Declined { code, message } => write!(f, "declined: {code}: {message}"),
            PgStatus::NotFound => f.write_str("never received"),
        }
    }
}
