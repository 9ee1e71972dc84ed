//! The orchestration of a payment's confirm and of a refund: one write
//! transaction, the gateway call with **no transaction open**, one write
//! transaction. (A payment's start, before the customer's widget step, is
//! one write transaction of its own and calls no gateway.)
//!
//! This file and `reconcile.rs` are the only places that call the gateway;
//! [`settle`] is the one place a gateway answer becomes an outcome to
//! record, and [`refusal`] the one place a recorded refusal becomes the
//! error a caller sees.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tracing::debug;

use super::refund::{self, Refund, RefundStatus};
use super::{
    Confirming, Outcome, Payment, PaymentFailure, PaymentStatus, PgRedirect, UNAVAILABLE_CODE,
};
use crate::clock::{Clock, Timestamp};
use crate::error::{Error, Result};
use crate::gateway::{GatewayError, PaymentGateway, RetryPolicy};
use crate::idempotency::{self, IdempotencyKey, Keyed};
use crate::ids::{OrderId, PaymentId, RefundId, UserId};
use crate::money::{Currency, Money};
use crate::order::OrderLine;
use crate::store::{Store, UserTx};

/// How the shop talks to its payment gateway; set on the builder.
#[derive(Clone)]
pub(crate) struct PaymentConfig {
    pub(crate) gateway: Option<Arc<dyn PaymentGateway>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) reconcile_grace: Duration,
    pub(crate) review_after: Duration,
    pub(crate) window: Duration,
    pub(crate) currency: Currency,
}

impl fmt::Debug for PaymentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentConfig")
            .field("gateway", &self.gateway.as_ref().map(|_| "configured"))
            .field("retry", &self.retry)
            .field("reconcile_grace", &self.reconcile_grace)
            .field("review_after", &self.review_after)
            .field("window", &self.window)
            .field("currency", &self.currency)
            .finish()
    }
}

/// What the first transaction of a keyed attempt found.
enum Begun<T> {
    /// It ran now.
    Now(T),
    /// Its key started the attempt with this id before; nothing ran.
    Before(i64),
}

/// The id a stored response names under `field` (`payment`, `refund`); a
/// key stored by another kind of write is "reused".
fn started(stored: &serde_json::Value, field: &str, key: &IdempotencyKey) -> Result<i64> {
    stored
        .get(field)
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| Error::IdempotencyKeyReused {
            key: key.key.clone(),
        })
}

/// Everything a flow that crosses the network needs, borrowed from the
/// shop: the store, the gateway (if one is configured), the settings, the
/// clock, and the balance limit.
pub(crate) struct Payments<'a> {
    pub(crate) store: &'a Store,
    pub(crate) gateway: Option<&'a dyn PaymentGateway>,
    pub(crate) config: &'a PaymentConfig,
    pub(crate) clock: &'a Arc<dyn Clock>,
    pub(crate) max_balance: Money,
}

/// Which attempt an answer was about, for the error a caller sees.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Attempt {
    /// A payment of an order (`Some`) or a top-up (`None`).
    Payment {
        payment: PaymentId,
        order: Option<OrderId>,
    },
    /// A refund of an order (`Some`) or of a top-up (`None`).
    Refund {
        refund: RefundId,
        payment: PaymentId,
        order: Option<OrderId>,
    },
}

impl Attempt {
    fn payment(self) -> PaymentId {
        match self {
            Attempt::Payment { payment, .. } | Attempt::Refund { payment, .. } => payment,
        }
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attempt::Payment { payment, .. } => write!(f, "payment {payment}"),
            Attempt::Refund { refund, .. } => write!(f, "refund {refund}"),
        }
    }
}

/// Turns a gateway answer into the outcome to record — the one rule for
/// payments and refunds alike — and keeps the failure for [`refusal`]:
///
/// - done → done;
/// - declined, invalid (our bug, logged at error level), or unreachable
///   after every retry (so the gateway never saw it) → declined: nothing
///   happened at the gateway, and never will with this key;
/// - anything else → unknown: the gateway may have acted; only asking it
///   again settles it.
pub(crate) fn settle<T>(
    attempt: Attempt,
    answer: Result<T, GatewayError>,
) -> (Outcome<T>, Option<GatewayError>) {
    let failure = match answer {
        Ok(done) => return (Outcome::Done(done), None),
        Err(failure) => failure,
    };
    let outcome = match failure.clone() {
        GatewayError::Declined { code, message } => Outcome::Declined { code, message },
        GatewayError::Invalid { code, message } => {
            tracing::error!(%attempt, %code, %message, "the gateway refused our request as invalid");
            Outcome::Declined { code, message }
        }
        GatewayError::Unavailable { reason } => Outcome::Declined {
            code: UNAVAILABLE_CODE.to_owned(),
            message: reason,
        },
        GatewayError::Unknown { reason } => Outcome::Unknown { reason },
        GatewayError::AwaitingDeposit(deposit) => Outcome::AwaitingDeposit(deposit),
    };
    (outcome, Some(failure))
}

/// The error for an attempt that did not succeed: recorded as declined
/// (with the `recorded` failure), or still unsettled (`recorded: None`).
/// `failure` is what this caller's gateway call said, if it was the one
/// that settled the attempt.
pub(crate) fn refusal(
    attempt: Attempt,
    recorded: Option<Option<PaymentFailure>>,
    failure: Option<GatewayError>,
) -> Error {
    let Some(recorded) = recorded else {
        return match attempt {
            Attempt::Payment {
                payment,
                order: Some(order),
            } => Error::PaymentOutcomeUnknown { payment, order },
            Attempt::Payment {
                payment,
                order: None,
            } => Error::TopUpOutcomeUnknown { payment },
            Attempt::Refund {
                refund,
                order: Some(order),
                ..
            } => Error::RefundOutcomeUnknown { order, refund },
            Attempt::Refund {
                refund,
                payment,
                order: None,
            } => Error::TopUpRefundOutcomeUnknown { payment, refund },
        };
    };
    match failure {
        Some(GatewayError::Unavailable { .. }) => Error::GatewayUnavailable {
            payment: attempt.payment(),
        },
        Some(GatewayError::Invalid { code, message }) => Error::GatewayRejected {
            payment: attempt.payment(),
            code,
            message,
        },
        _ => {
            let PaymentFailure { code, message } = recorded.unwrap_or(PaymentFailure {
                code: String::new(),
                message: String::new(),
            });
            match attempt {
                Attempt::Payment {
                    payment,
                    order: Some(order),
                } => Error::PaymentDeclined {
                    payment,
                    order,
                    code,
                    message,
                },
                Attempt::Payment {
                    payment,
                    order: None,
                } => Error::TopUpDeclined {
                    payment,
                    code,
                    message,
                },
                Attempt::Refund {
                    refund,
                    order: Some(order),
                    ..
                } => Error::RefundDeclined {
                    order,
                    refund,
                    code,
                    message,
                },
                Attempt::Refund {
                    refund,
                    payment,
                    order: None,
                } => Error::TopUpRefundDeclined {
                    payment,
                    refund,
                    code,
                    message,
                },
            }
        }
    }
}

impl Payments<'_> {
    /// The gateway, or [`GatewayError::Invalid`] with `NO_GATEWAY` when the
    /// shop has none: an attempt that needs the PG cannot start without one
    /// ([`Error::NoGateway`]), so this answers only for attempts started
    /// before the gateway was taken away, which it declines.
    pub(crate) fn gateway(&self) -> Result<&dyn PaymentGateway, GatewayError> {
        self.gateway.ok_or_else(|| GatewayError::Invalid {
            code: "NO_GATEWAY".into(),
            message: "the shop has no payment gateway configured".into(),
        })
    }

    /// Runs `f` as one write holding `user`'s serialisation, with the time
    /// read once per run of it ([`Store::write_user`]).
    pub(crate) fn write_user<T: Send + 'static>(
        &self,
        user: UserId,
        f: impl Fn(&UserTx<'_>, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.store.write_user(user, self.clock, f)
    }

    /// Records the gateway's answer about `attempt` with `record`, one write
    /// of `user`'s. If that write fails the money is held and the gateway
    /// may have acted: only reconciliation, asking again with the same key,
    /// can tell, so the caller is told the outcome is unknown.
    fn record_answer<T: Send + 'static>(
        &self,
        user: UserId,
        attempt: Attempt,
        record: impl Fn(&UserTx<'_>, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write_user(user, record).map_err(|err| {
            tracing::error!(%attempt, error = %err,
                "recording the gateway's answer failed; reconciliation will settle it");
            refusal(attempt, None, None)
        })
    }

    /// Runs the first transaction of a payment or refund attempt as one
    /// write of `user`'s, under `key` if there is one. A key stored before
    /// names its attempt (under `field`: `payment`, `refund`) and nothing
    /// runs; otherwise `f` runs and returns its value and the attempt's
    /// id, which the key stores in the same transaction. If the `COMMIT`
    /// got no answer the key says whether it took: if it did, the answer
    /// is the attempt it names — what a repeat of the request would get —
    /// and if not, [`Error::Busy`] (nothing happened; trying again is safe).
    fn first_write<T: Send + 'static>(
        &self,
        user: UserId,
        key: Option<IdempotencyKey>,
        field: &'static str,
        f: impl Fn(&UserTx<'_>, Timestamp) -> Result<(T, i64)> + Send + 'static,
    ) -> Result<Begun<T>> {
        let named = |stored: serde_json::Value, key: &IdempotencyKey| {
            started(&stored, field, key).map(Begun::Before)
        };
        let lost = key.clone();
        let result = self.write_user(user, move |tx, now| {
            let Some(key) = &key else {
                return f(tx, now).map(|(value, _)| Begun::Now(value));
            };
            if let Some(stored) = idempotency::stored(tx, key)? {
                return named(stored, key);
            }
            let (value, id) = f(tx, now)?;
            idempotency::store(tx, key, &json!({ field: id }), now)?;
            Ok(Begun::Now(value))
        });
        match (result, lost) {
            (Err(Error::CommitOutcomeUnknown), Some(key)) => named(
                idempotency::after_lost_commit(self.store, self.clock, user, &key)?,
                &key,
            ),
            (result, _) => result,
        }
    }

    /// Starts a payment or a top-up: one write transaction (`begin`, the
    /// shape of [`super::begin`] or [`super::begin_top_up`]), under `key`
    /// if there is one. No gateway is called.
    pub(crate) fn start(
        &self,
        user: UserId,
        key: Option<IdempotencyKey>,
        begin: impl Fn(&UserTx<'_>, Timestamp) -> Result<Payment> + Send + 'static,
    ) -> Result<Keyed<Payment>> {
        let begun = self.first_write(user, key, "payment", move |tx, now| {
            let payment = begin(tx, now)?;
            let id = payment.id.get();
            Ok((payment, id))
        })?;
        match begun {
            Begun::Now(payment) => {
                debug!(user = %user, payment = %payment.id, balance = %payment.balance_amount,
                    pg = %payment.pg_amount, status = %payment.status, "payment started");
                Ok(Keyed::Fresh(payment))
            }
            Begun::Before(id) => {
                let id = PaymentId::new(id);
                Ok(Keyed::Replayed(self.store.read(|tx| super::get(tx, id))?))
            }
        }
    }

    /// A confirm after the PG's redirect: transaction 1
    /// (`payment::begin_confirm`: the redirect checked against the attempt,
    /// its key stored), the confirm with no transaction open, transaction 2
    /// (`payment::record`). A repeated redirect returns the attempt as it
    /// is and sends nothing.
    pub(crate) fn confirm(
        &self,
        user: UserId,
        id: PaymentId,
        redirect: PgRedirect,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Payment>> {
        let begun = self.first_write(user, key.clone(), "payment", move |tx, now| {
            Ok((super::begin_confirm(tx, id, &redirect, now)?, id.get()))
        })?;
        let payment = match begun {
            Begun::Now(Confirming::Ask(payment)) => payment,
            Begun::Now(Confirming::AsItIs(payment)) => return Ok(Keyed::Replayed(payment)),
            // The key confirmed a payment before: this one, as it is now.
            Begun::Before(named) if named == id.get() => {
                return Ok(Keyed::Replayed(self.store.read(|tx| super::get(tx, id))?));
            }
            Begun::Before(_) => {
                return Err(Error::IdempotencyKeyReused {
                    key: key.map(|key| key.key).unwrap_or_default(),
                });
            }
        };
        debug!(user = %user, payment = %payment.id, amount = %payment.pg_amount, "confirm requested");
        let attempt = Attempt::Payment {
            payment: payment.id,
            order: payment.order,
        };

        let request = payment.approve_request(self.config.currency);
        let answer = self.config.retry.run(|| self.gateway()?.approve(&request));
        let (outcome, failure) = settle(attempt, answer);

        let recorded = self.record_answer(user, attempt, move |tx, now| {
            super::record(tx, id, outcome.clone(), now)
        })?;
        debug!(payment = %recorded.id, status = %recorded.status, "payment outcome recorded");
        match recorded.status {
            PaymentStatus::Approved | PaymentStatus::Refunded => Ok(Keyed::Fresh(recorded)),
            PaymentStatus::Declined => Err(refusal(attempt, Some(recorded.failure), failure)),
            // Issued a virtual account: the customer's next step is the
            // transfer, shown by the payment's `deposit`.
            PaymentStatus::Requested | PaymentStatus::Unknown if recorded.deposit.is_some() => {
                Ok(Keyed::Fresh(recorded))
            }
            PaymentStatus::Started | PaymentStatus::Requested | PaymentStatus::Unknown => {
                Err(refusal(attempt, None, failure))
            }
        }
    }

    /// A refund of an order's units: transaction 1 (`refund::begin`: every
    /// rule, the attempt recorded with its own key and its two parts), the
    /// cancel of its PG part with no transaction open, transaction 2
    /// (`refund::record`). An attempt with no PG part completes in
    /// transaction 1 and never reaches the gateway.
    pub(crate) fn refund(
        &self,
        user: UserId,
        order: OrderId,
        lines: Option<Vec<OrderLine>>,
        reason: String,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Refund>> {
        let max = self.max_balance;
        self.run_refund(user, key, move |tx, now| {
            refund::begin(tx, order, lines.as_deref(), &reason, max, now)
        })
    }

    /// A top-up's refund to the card: as [`Payments::refund`], with
    /// `refund::begin_top_up` as transaction 1.
    pub(crate) fn refund_top_up(
        &self,
        user: UserId,
        payment: PaymentId,
        amount: Money,
        reason: String,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Refund>> {
        self.run_refund(user, key, move |tx, now| {
            refund::begin_top_up(tx, payment, amount, &reason, now)
        })
    }

    /// The three steps of a refund whose first transaction is `begin`.
    fn run_refund(
        &self,
        user: UserId,
        key: Option<IdempotencyKey>,
        begin: impl Fn(&UserTx<'_>, Timestamp) -> Result<Refund> + Send + 'static,
    ) -> Result<Keyed<Refund>> {
        let has_gateway = self.gateway.is_some();
        let currency = self.config.currency;
        let begun = self.first_write(user, key, "refund", move |tx, now| {
            let refund = begin(tx, now)?;
            if !refund.pg_amount.is_zero() && !has_gateway {
                return Err(Error::NoGateway);
            }
            let request = refund::cancel_request(tx, &refund, currency)?;
            let id = refund.id.get();
            Ok(((refund, request), id))
        })?;
        let (refund, request) = match begun {
            Begun::Now(begun) => begun,
            Begun::Before(id) => {
                let id = RefundId::new(id);
                return Ok(Keyed::Replayed(self.store.read(|tx| refund::get(tx, id))?));
            }
        };
        debug!(user = %user, order = ?refund.order, refund = %refund.id, amount = %refund.amount, "refund requested");
        if refund.status == RefundStatus::Completed {
            return Ok(Keyed::Fresh(refund));
        }
        let attempt = Attempt::Refund {
            refund: refund.id,
            payment: refund.payment,
            order: refund.order,
        };

        let answer = self.config.retry.run(|| self.gateway()?.cancel(&request));
        let (outcome, failure) = settle(attempt, answer);

        let id = refund.id;
        let recorded = self.record_answer(user, attempt, move |tx, now| {
            refund::record(tx, id, outcome.clone(), now)
        })?;
        debug!(refund = %recorded.id, status = %recorded.status, "refund outcome recorded");
        if recorded.status == RefundStatus::Declined
            && matches!(failure, Some(GatewayError::Declined { .. }))
        {
            // The PG refused a cancel the shop's books allowed (Toss:
            // `ALREADY_CANCELED_PAYMENT`, `NOT_CANCELABLE_AMOUNT`): its
            // record of the payment may hold a cancel made outside the
            // shop, so the books follow it now rather than at the next
            // webhook or sweep (the customer must not keep a top-up's
            // balance the PG already gave back to the card).
            if let Err(err) = self.settle_at_pg(&request.pg_order_id) {
                tracing::warn!(refund = %id, error = %err,
                    "comparing the payment with the PG's record after a declined refund failed");
            }
        }
        match recorded.status {
            RefundStatus::Completed => Ok(Keyed::Fresh(recorded)),
            RefundStatus::Declined => Err(refusal(attempt, Some(recorded.failure), failure)),
            RefundStatus::Requested | RefundStatus::Unknown => Err(refusal(attempt, None, failure)),
        }
    }
}
