//! Payments and refunds: money that crosses the network to the payment
//! gateway, exactly once.
//!
//! - `mod.rs` (this file): payments — their rows, the first transaction of
//!   a payment, and recording its outcome exactly once.
//! - `refund.rs`: refund attempts — their rows, the first transaction of a
//!   refund, and recording its outcome exactly once.
//! - `flow.rs`: the orchestration — transaction, gateway call with no
//!   transaction open, transaction — and the one function that turns a
//!   gateway answer into an outcome to record and an error to return.
//! - `reconcile.rs`: settling what a lost reply or a killed process left
//!   unsettled, and the background thread that does it on a timer.
//!
//! Only `flow.rs` and `reconcile.rs` call the gateway, and only between the
//! transactions the SQL functions here run in.

pub(crate) mod flow;
pub(crate) mod reconcile;
pub(crate) mod refund;

use crate::event::{self as feed, EventPayload, Subject};
use serde::{Deserialize, Serialize};

use crate::balance::{self, Entry, LedgerKind};
use crate::clock::Timestamp;
use crate::db::{Db, Row};
use crate::error::{Error, Result};
use crate::gateway::{Approval, ApproveRequest, StatusRequest};
use crate::ids::{OrderId, PaymentEventId, PaymentId, UserId};
use crate::money::Money;
use crate::order::{self, OrderStatus};
use crate::text_enum::text_enum;
use crate::token;

/// Where a payment attempt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The money is held and the gateway is being asked (or was about to be
    /// when the process stopped).
    Requested,
    /// The gateway approved; the order is paid.
    Approved,
    /// The gateway declined (or provably never received it); the money was
    /// given back.
    Declined,
    /// The gateway gave no definite answer; the money stays held until
    /// reconciliation settles it.
    Unknown,
    /// Approved, then every unit of its order refunded. (A partly refunded
    /// payment stays `Approved`, with [`Payment::refunded`] above zero.)
    Refunded,
}

impl PaymentStatus {
    /// Whether the outcome is still open: `Requested` or `Unknown`.
    pub const fn is_unsettled(self) -> bool {
        matches!(self, PaymentStatus::Requested | PaymentStatus::Unknown)
    }
}

text_enum!(PaymentStatus {
    Requested => "requested",
    Approved => "approved",
    Declined => "declined",
    Unknown => "unknown",
    Refunded => "refunded",
});

/// Why a payment was declined, as the gateway said it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailure {
    /// The gateway's code (`PG_UNAVAILABLE` when it could not be reached).
    pub code: String,
    /// The gateway's message.
    pub message: String,
}

/// One payment attempt for an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment's id.
    pub id: PaymentId,
    /// The order it pays.
    pub order: OrderId,
    /// Whose payment.
    pub user: UserId,
    /// The amount: the order total.
    pub amount: Money,
    /// How much of it completed refunds gave back; never more than `amount`.
    pub refunded: Money,
    /// Where it is.
    pub status: PaymentStatus,
    /// The gateway's reference for the payment.
    pub payment_key: String,
    /// This attempt's id at the gateway, unique per attempt.
    pub pg_order_id: String,
    /// The key that makes a repeated approval the same payment.
    pub idempotency_key: String,
    /// The gateway's transaction id, once approved.
    pub pg_transaction_id: Option<String>,
    /// Why it was declined, if it was.
    pub failure: Option<PaymentFailure>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
}

impl Payment {
    pub(crate) fn approve_request(&self) -> ApproveRequest {
        ApproveRequest {
            payment_key: self.payment_key.clone(),
            pg_order_id: self.pg_order_id.clone(),
            amount: self.amount,
            idempotency_key: self.idempotency_key.clone(),
            order: self.order,
        }
    }

    pub(crate) fn status_request(&self) -> StatusRequest {
        StatusRequest {
            pg_order_id: self.pg_order_id.clone(),
        }
    }
}

/// One entry of a payment's history: a status change, when, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    /// The event's id.
    pub id: PaymentEventId,
    /// The payment.
    pub payment: PaymentId,
    /// The status it moved to.
    pub status: PaymentStatus,
    /// What happened, in words.
    pub detail: String,
    /// When.
    pub created_at: Timestamp,
}

/// The outcome of a gateway call, as the shop records it: for a payment,
/// `T` is the [`Approval`]; for a refund, the
/// [`Cancellation`](crate::Cancellation).
#[derive(Clone, Debug)]
pub(crate) enum Outcome<T> {
    /// The gateway did it.
    Done(T),
    /// The gateway did not do it, and never will with this key.
    Declined { code: String, message: String },
    /// Nobody knows yet.
    Unknown { reason: String },
}

/// The code recorded for a payment the gateway provably never received.
pub(crate) const UNAVAILABLE_CODE: &str = "PG_UNAVAILABLE";

/// The longest payment key the shop accepts.
const MAX_PAYMENT_KEY: usize = 200;

/// Every payment column, in the order `payment_row` reads them.
macro_rules! payment_columns {
    () => {
        concat!(
            "id, order_id, user_id, amount, status, payment_key, pg_order_id, ",
            "idempotency_key, pg_transaction_id, failure_code, failure_message, created_at, ",
            "updated_at, refunded"
        )
    };
}

/// A `SELECT` of every payment column, then `$rest`.
macro_rules! select_payments {
    ($rest:literal) => {
        concat!("SELECT ", payment_columns!(), " FROM payments ", $rest)
    };
}

pub(crate) const SELECT_PAYMENT: &str = select_payments!("WHERE id = ?1 AND user_id = ?2");

pub(crate) const SELECT_FOR_ORDER: &str = select_payments!("WHERE order_id = ?1 ORDER BY id");

pub(crate) const SELECT_UNSETTLED: &str = select_payments!(
    "WHERE status IN ('requested', 'unknown') AND created_at <= ?1 ORDER BY created_at"
);

const SELECT_BY_ID: &str = select_payments!("WHERE id = ?1");

/// Money in flight for a user: held by payments and owed by refunds whose
/// outcome is not settled. Each sum walks a partial index.
pub(crate) const SELECT_IN_FLIGHT: &str =
    "SELECT (SELECT coalesce(CAST(sum(amount) AS BIGINT), 0) FROM payments
             WHERE user_id = ?1 AND status IN ('requested', 'unknown'))
          + (SELECT coalesce(CAST(sum(amount) AS BIGINT), 0) FROM refunds
             WHERE user_id = ?1 AND status IN ('requested', 'unknown'))";

pub(crate) const SELECT_EVENTS: &str =
    "SELECT id, payment_id, status, detail, created_at FROM payment_events
     WHERE payment_id = ?1 ORDER BY id";

/// Checks a payment key given by the host: 1 to 200 characters of
/// `[A-Za-z0-9_-]`, so it is safe in the gateway's URLs.
pub(crate) fn validate_key(key: &str) -> Result<&str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if (1..=MAX_PAYMENT_KEY).contains(&key.len()) && key.chars().all(allowed) {
        Ok(key)
    } else {
        Err(Error::InvalidPaymentKey)
    }
}

/// The money in flight for `user`: held by payments and owed by refunds
/// whose outcome is not settled. It counts against the balance limit, so a
/// reversal or a refund credit can always be posted when it settles.
pub(crate) fn in_flight(conn: &dyn Db, user: UserId) -> Result<Money> {
    conn.query_row(SELECT_IN_FLIGHT, &[&user])?.get(0)
}

/// The balance cap a charge of `user` must fit under.
pub(crate) fn cap(conn: &dyn Db, user: UserId, max: Money) -> Result<balance::Cap> {
    Ok(balance::Cap {
        max,
        held: in_flight(conn, user)?,
    })
}

/// The first transaction of a payment, in the seed's order: the order exists
/// and is the user's → it is `Pending` → its reservation has not run out →
/// it has something to pay → the balance covers it → the total is debited,
/// the payment saved as `Requested` with fresh keys and its history row,
/// and the order moved to `Paying`.
pub(crate) fn begin(
    tx: &dyn Db,
    user: UserId,
    order_id: OrderId,
    payment_key: Option<&str>,
    now: Timestamp,
) -> Result<Payment> {
    let order = order::get(tx, user, order_id)?;
    if !order.status.can_become(OrderStatus::Paying) {
        return Err(Error::InvalidTransition {
            order: order_id,
            from: order.status,
            to: OrderStatus::Paying,
        });
    }
    if order.expires_at <= now {
        // As `place_order` sees it: expired, even if no sweep has run yet.
        return Err(Error::OrderExpired {
            order: order_id,
            expired_at: order.expires_at,
        });
    }
    if order.total.is_zero() {
        return Err(Error::NothingToPay { order: order_id });
    }
    let available = balance::get(tx, user)?;
    if available < order.total {
        return Err(Error::InsufficientBalance {
            user,
            needed: order.total,
            available,
        });
    }
    let payment_key =
        payment_key.map_or_else(|| format!("lsk_{}", token::random_hex(16)), str::to_owned);
    let pg_order_id = format!("ls-{order_id}-{}", token::random_hex(8));
    let idempotency_key = format!("ls-pay-{}", token::random_hex(16));
    let id: PaymentId = tx
        .query_row(
            "INSERT INTO payments (order_id, user_id, amount, status, payment_key, pg_order_id,
                                   idempotency_key, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'requested', ?4, ?5, ?6, ?7, ?7)
             RETURNING id",
            &[
                &order_id,
                &user,
                &order.total,
                &payment_key,
                &pg_order_id,
                &idempotency_key,
                &now,
            ],
        )?
        .get(0)?;
    balance::post_from(
        tx,
        user,
        available,
        Entry::for_payment(LedgerKind::Payment, order.total, id),
        None,
        now,
    )?;
    event(
        tx,
        id,
        PaymentStatus::Requested,
        &format!(
            "{} debited; approval requested as {pg_order_id}",
            order.total
        ),
        now,
    )?;
    order::transition(tx, order_id, OrderStatus::Pending, OrderStatus::Paying, now)?;
    feed::append(
        tx,
        Subject::payment(user, order_id, id),
        &EventPayload::PaymentRequested {
            amount: order.total,
        },
        now,
    )?;
    Ok(Payment {
        id,
        order: order_id,
        user,
        amount: order.total,
        refunded: Money::ZERO,
        status: PaymentStatus::Requested,
        payment_key,
        pg_order_id,
        idempotency_key,
        pg_transaction_id: None,
        failure: None,
        created_at: now,
        updated_at: now,
    })
}

/// Records the gateway's answer for payment `id`, exactly once: a payment
/// that is no longer `Requested`/`Unknown` (someone else recorded an answer
/// first) is returned as it is.
///
/// - approved → payment `Approved`, order `Paid`;
/// - declined → payment `Declined`, the debit reversed, order `Pending`;
/// - unknown → payment `Unknown`, money held, order still `Paying`.
pub(crate) fn record(
    tx: &dyn Db,
    id: PaymentId,
    outcome: Outcome<Approval>,
    now: Timestamp,
) -> Result<Payment> {
    let payment = get(tx, id)?;
    if !payment.status.is_unsettled() {
        return Ok(payment);
    }
    let outcome = match outcome {
        Outcome::Done(approval) if approval.approved_amount != payment.amount => {
            tracing::error!(payment = %id, approved = %approval.approved_amount, asked = %payment.amount,
                "the gateway approved a different amount; leaving the payment for review");
            Outcome::Unknown {
                reason: format!("approved amount {} differs", approval.approved_amount),
            }
        }
        outcome => outcome,
    };
    // Each change returns the payment as it now is (one round trip less
    // than reading it again); nothing below changes the payment's row.
    let recorded = match outcome {
        Outcome::Done(approval) => {
            let recorded = payment_row(&tx.query_row(
                concat!(
                    "UPDATE payments SET status = 'approved', pg_transaction_id = ?2, ",
                    "updated_at = ?3 WHERE id = ?1 RETURNING ",
                    payment_columns!()
                ),
                &[&id, &approval.transaction_id, &now],
            )?)?;
            event(
                tx,
                id,
                PaymentStatus::Approved,
                &format!("approved as {}", approval.transaction_id),
                now,
            )?;
            order::mark_paid(tx, payment.order, now)?;
            let paid = order::get(tx, payment.user, payment.order)?;
            feed::append(
                tx,
                Subject::payment(payment.user, payment.order, id),
                &EventPayload::PaymentApproved {
                    amount: payment.amount,
                    lines: paid.lines,
                    subtotal: paid.subtotal,
                    discount: paid.discount,
                    coupon: paid.coupon,
                },
                now,
            )?;
            recorded
        }
        Outcome::Declined { code, message } => {
            let recorded = payment_row(&tx.query_row(
                concat!(
                    "UPDATE payments SET status = 'declined', failure_code = ?2, ",
                    "failure_message = ?3, updated_at = ?4 WHERE id = ?1 RETURNING ",
                    payment_columns!()
                ),
                &[&id, &code, &message, &now],
            )?)?;
            // The money comes back uncapped: it was the user's, and charges
            // already counted it against the limit while it was held.
            balance::post(
                tx,
                payment.user,
                Entry::for_payment(LedgerKind::PaymentReversal, payment.amount, id),
                None,
                now,
            )?;
            event(
                tx,
                id,
                PaymentStatus::Declined,
                &format!("declined: {code}: {message}; {} given back", payment.amount),
                now,
            )?;
            order::transition(
                tx,
                payment.order,
                OrderStatus::Paying,
                OrderStatus::Pending,
                now,
            )?;
            feed::append(
                tx,
                Subject::payment(payment.user, payment.order, id),
                &EventPayload::PaymentDeclined {
                    amount: payment.amount,
                    code,
                    message,
                },
                now,
            )?;
            recorded
        }
        Outcome::Unknown { reason } => {
            if payment.status != PaymentStatus::Requested {
                return Ok(payment);
            }
            let recorded = payment_row(&tx.query_row(
                concat!(
                    "UPDATE payments SET status = 'unknown', updated_at = ?2 WHERE id = ?1 ",
                    "RETURNING ",
                    payment_columns!()
                ),
                &[&id, &now],
            )?)?;
            event(
                tx,
                id,
                PaymentStatus::Unknown,
                &format!("no definite answer: {reason}"),
                now,
            )?;
            recorded
        }
    };
    Ok(recorded)
}

/// Adds `amount` to what completed refunds gave back of payment `id`,
/// guarded so it never passes the amount paid (the schema's CHECK is the
/// second guard); `fully` marks the payment `Refunded`.
pub(crate) fn add_refunded(
    tx: &dyn Db,
    id: PaymentId,
    amount: Money,
    fully: bool,
    now: Timestamp,
) -> Result<()> {
    let changed = tx.execute(
        "UPDATE payments
         SET refunded = refunded + ?2, updated_at = ?3,
             status = CASE WHEN ?4 = 1 THEN 'refunded' ELSE status END
         WHERE id = ?1 AND status = 'approved' AND refunded + ?2 <= amount",
        &[&id, &amount, &now, &i64::from(fully)],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::Storage(rusqlite::Error::StatementChangedRows(
            changed,
        )))
    }
}

/// The payment `id`, whoever owns it (for the shop's own bookkeeping).
pub(crate) fn get(conn: &dyn Db, id: PaymentId) -> Result<Payment> {
    payment_row(
        &conn
            .query_opt(SELECT_BY_ID, &[&id])?
            .ok_or(Error::PaymentNotFound(id))?,
    )
}

/// The payment `id` of `user`; another user's is not found.
pub(crate) fn get_for_user(conn: &dyn Db, user: UserId, id: PaymentId) -> Result<Payment> {
    payment_row(
        &conn
            .query_opt(SELECT_PAYMENT, &[&id, &user])?
            .ok_or(Error::PaymentNotFound(id))?,
    )
}

/// Every payment attempt of the order `order` of `user`, oldest first.
pub(crate) fn for_order(conn: &dyn Db, user: UserId, order: OrderId) -> Result<Vec<Payment>> {
    order::get(conn, user, order)?;
    conn.query(SELECT_FOR_ORDER, &[&order])?
        .iter()
        .map(payment_row)
        .collect()
}

/// The approved payment of a paid (or partly refunded) order.
pub(crate) fn approved_for_order(conn: &dyn Db, user: UserId, order: OrderId) -> Result<Payment> {
    for_order(conn, user, order)?
        .into_iter()
        .find(|payment| payment.status == PaymentStatus::Approved)
        .ok_or(Error::Storage(rusqlite::Error::QueryReturnedNoRows))
}

/// The payments still `Requested`/`Unknown` that were created at or before
/// `cutoff`, oldest first.
pub(crate) fn unsettled(conn: &dyn Db, cutoff: Timestamp) -> Result<Vec<Payment>> {
    conn.query(SELECT_UNSETTLED, &[&cutoff])?
        .iter()
        .map(payment_row)
        .collect()
}

/// The history of payment `id`, oldest first.
pub(crate) fn events(conn: &dyn Db, id: PaymentId) -> Result<Vec<PaymentEvent>> {
    conn.query(SELECT_EVENTS, &[&id])?
        .iter()
        .map(|row| {
            Ok(PaymentEvent {
                id: row.get(0)?,
                payment: row.get(1)?,
                status: row.get(2)?,
                detail: row.get(3)?,
                created_at: row.get(4)?,
            })
        })
        .collect()
}

/// Appends one entry to the history of `payment`.
pub(crate) fn event(
    tx: &dyn Db,
    payment: PaymentId,
    status: PaymentStatus,
    detail: &str,
    now: Timestamp,
) -> Result<()> {
    tx.execute(
        "INSERT INTO payment_events (payment_id, status, detail, created_at) VALUES (?1, ?2, ?3, ?4)",
        &[&payment, &status, &detail, &now],
    )?;
    Ok(())
}

fn payment_row(row: &Row) -> Result<Payment> {
    let failure_code: Option<String> = row.get(9)?;
    let failure_message: Option<String> = row.get(10)?;
    Ok(Payment {
        id: row.get(0)?,
        order: row.get(1)?,
        user: row.get(2)?,
        amount: row.get(3)?,
        status: row.get(4)?,
        payment_key: row.get(5)?,
        pg_order_id: row.get(6)?,
        idempotency_key: row.get(7)?,
        pg_transaction_id: row.get(8)?,
        failure: failure_code.map(|code| PaymentFailure {
            code,
            message: failure_message.unwrap_or_default(),
        }),
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
        refunded: row.get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_keys_must_be_url_safe() {
        assert!(validate_key("tgen_20240101abc-_X").is_ok());
        for bad in ["", "has space", "slash/", "ümlaut", &"k".repeat(201)] {
            assert!(
                matches!(validate_key(bad), Err(Error::InvalidPaymentKey)),
                "{bad:?}"
            );
        }
    }
}
