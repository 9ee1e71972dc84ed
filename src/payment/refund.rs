//! Refund attempts: the first transaction of a refund (every rule checked,
//! the attempt recorded `Requested` with its own fresh key and the lines it
//! returns), and recording the gateway's answer exactly once.
//!
//! No function here calls the gateway: `flow.rs` and `reconcile.rs` do,
//! between the transactions these functions run in.

use serde::{Deserialize, Serialize};

use super::{Outcome, Payment, PaymentFailure, PaymentStatus};
use crate::balance::{self, Entry, LedgerKind};
use crate::clock::Timestamp;
use crate::db::{Db, Reads, Row, ToValue, at};
use crate::error::{Error, Result};
use crate::gateway::{CancelRequest, Cancellation};
use crate::ids::{OrderId, PaymentId, ProductId, RefundId, UserId};
use crate::money::{Currency, Money};
use crate::order::{self, OrderLine, OrderStatus, RefundUnits};
use crate::store::UserTx;
use crate::store::failure::corrupt;
use crate::text_enum::text_enum;
use crate::token;

/// Where a refund attempt is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Recorded; the gateway is being asked to cancel (or was about to be
    /// when the process stopped). Nothing has moved yet.
    Requested,
    /// The gateway gave no definite answer; reconciliation settles it by
    /// asking again with the same key. Nothing has moved yet.
    Unknown,
    /// The gateway cancelled: the balance was credited, the units released
    /// and the order moved.
    Completed,
    /// The gateway refused (or provably never received it): nothing moved.
    /// A later refund is a new attempt with a new key.
    Declined,
}

impl RefundStatus {
    /// Whether the outcome is still open: `Requested` or `Unknown`.
    pub const fn is_unsettled(self) -> bool {
        matches!(self, RefundStatus::Requested | RefundStatus::Unknown)
    }
}

text_enum!(RefundStatus {
    Requested => "requested",
    Unknown => "unknown",
    Completed => "completed",
    Declined => "declined",
});

/// Who gave a refund's money back.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundOrigin {
    /// The shop: a refund asked for through [`Shop`](crate::Shop).
    #[default]
    Shop,
    /// The PG on its own: a cancel the PG's record holds that the shop never
    /// asked for (made in the PG's dashboard, say), recorded when the shop
    /// found it so its books follow the PG. It returns no units: a person
    /// decides what happens to the goods.
    Pg,
}

text_enum!(RefundOrigin {
    Shop => "shop",
    Pg => "pg",
});

/// The units of one order line a refund returns, and the money they are
/// worth.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLine {
    /// The product.
    pub product: ProductId,
    /// How many units.
    pub quantity: u32,
    /// What they were paid, by the order's rule (see
    /// [`OrderItem::amount`](crate::OrderItem::amount)).
    pub amount: Money,
}

/// One refund attempt: some or all units of a paid order, or part or all
/// of a top-up's money back to the card.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The attempt's id.
    pub id: RefundId,
    /// The payment it gives money back from.
    pub payment: PaymentId,
    /// The order; `None` for the refund of a top-up.
    pub order: Option<OrderId>,
    /// Whose refund.
    pub user: UserId,
    /// The money it gives back, `balance_amount + pg_amount`: the sum of
    /// its lines' amounts, less what the PG already gave back of the
    /// payment on its own (see [`RefundOrigin::Pg`]); for a top-up's
    /// refund, the amount asked; for one of origin `Pg`, what the PG
    /// cancelled.
    pub amount: Money,
    /// The part credited to the balance.
    pub balance_amount: Money,
    /// The part cancelled at the PG (back to the card).
    pub pg_amount: Money,
    /// Where it is.
    pub status: RefundStatus,
    /// Why, as the gateway records it.
    pub reason: String,
    /// The units it returns, in the order's line order (none for a
    /// top-up's refund).
    pub lines: Vec<RefundLine>,
    /// This attempt's own key: a repeated cancel with it is the same cancel.
    pub idempotency_key: String,
    /// Why it was declined, if it was.
    pub failure: Option<PaymentFailure>,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
    /// The PG's key for the cancel of its PG part, once completed (Toss:
    /// the `transactionKey` in the payment's `cancels[]`); `None` with no
    /// PG part, before completion, or for a refund older than liteshop
    /// storing it.
    pub pg_transaction_key: Option<String>,
    /// Who gave the money back: the shop, or the PG on its own.
    #[serde(default)]
    pub origin: RefundOrigin,
    /// The tax-free part of `pg_amount` (Toss: the cancel's
    /// `taxFreeAmount`): the refunded lines' tax-free share of it, kept
    /// within what the payment's tax-free and taxable parts have left at
    /// the PG, so the last refund cancels each exactly.
    #[serde(default)]
    pub pg_tax_free: Money,
}

/// A `SELECT` of every refund column, then `$rest`.
macro_rules! select_refunds {
    ($rest:literal) => {
        concat!(
            "SELECT id, payment_id, order_id, user_id, amount, status, reason, idempotency_key, ",
            "failure_code, failure_message, created_at, updated_at, balance_amount, pg_amount, ",
            "pg_transaction_key, origin, pg_tax_free FROM refunds ",
            $rest
        )
    };
}

const SELECT_BY_ID: &str = select_refunds!("WHERE id = ?1");

pub(crate) const SELECT_FOR_ORDER: &str = select_refunds!("WHERE order_id = ?1 ORDER BY id");

pub(crate) const SELECT_FOR_TOP_UP: &str =
    select_refunds!("WHERE payment_id = ?1 AND order_id IS NULL ORDER BY id");

pub(crate) const SELECT_LIVE_FOR_PAYMENT: &str =
    "SELECT id FROM refunds WHERE payment_id = ?1 AND status IN ('requested', 'unknown')";

pub(crate) const SELECT_UNSETTLED: &str = select_refunds!(
    "WHERE status IN ('requested', 'unknown') AND created_at <= ?1 ORDER BY created_at"
);

pub(crate) const SELECT_LINES: &str = "SELECT i.product_id, r.quantity, r.amount, r.order_item_id,
            i.tax_free
     FROM refund_items r JOIN order_items i ON i.id = r.order_item_id
     WHERE r.refund_id = ?1 ORDER BY r.order_item_id";

/// The first transaction of a refund. Checks, in order: the order exists
/// and is the user's → it is `Paid` or `PartiallyRefunded` → no other
/// refund of its payment is in flight → each asked line is on the order
/// with that many units left to refund (`lines: None` asks for every unit
/// left) → its amount (what the units were paid, but never more than the
/// payment has left after money the PG gave back on its own) is split by
/// the refund rule → the balance part's
/// credit, with the money already in flight, fits under `max_balance`.
/// Then the attempt is saved `Requested` with a fresh key, its two parts
/// and its lines. From here on its balance part counts as in flight, so no
/// credit can take the room it needs.
///
/// **The refund rule**: money goes back the way it came, the PG part
/// first — a refund cancels at the PG as much of its amount as the
/// payment's PG part has left, and credits the rest to the balance. So a
/// whole refund returns each part whole, and the refunds of each part never
/// add up to more than that part.
///
/// An attempt with no PG part (a payment by balance, free units, or a PG
/// part already given back) has nothing to ask the gateway and completes
/// at once.
pub(crate) fn begin(
    tx: &UserTx<'_>,
    order_id: OrderId,
    lines: Option<&[OrderLine]>,
    reason: &str,
    max_balance: Money,
    now: Timestamp,
) -> Result<Refund> {
    let user = tx.user();
    let order = order::get(tx, user, order_id)?;
    if !order.status.is_refundable() {
        return Err(Error::InvalidTransition {
            order: order_id,
            from: order.status,
            to: OrderStatus::Refunded,
        });
    }
    let payment = super::approved_for_order(tx, user, order_id)?;
    if let Some(live) = live_for_payment(tx, payment.id)? {
        return Err(Error::RefundInProgress {
            order: order_id,
            refund: live,
        });
    }
    let units = order::refundable_units(tx, order_id, lines)?;
    let worth = Money::checked_sum(units.iter().map(|u| u.amount)).ok_or(Error::AmountOverflow)?;
    // Money the PG gave back on its own (a refund of origin `Pg`, no
    // units) was given back once already: the units' refunds return at
    // most what is left of the payment.
    let left = payment
        .amount
        .checked_sub(payment.refunded)
        .unwrap_or(Money::ZERO);
    let amount = worth.min(left);
    let pg_left = payment
        .pg_amount
        .checked_sub(payment.pg_refunded)
        .unwrap_or(Money::ZERO);
    let pg_part = amount.min(pg_left);
    let balance_part = amount.checked_sub(pg_part).ok_or(Error::AmountOverflow)?;
    let lines_tax_free = Money::checked_sum(
        units
            .iter()
            .filter(|unit| unit.tax_free)
            .map(|unit| unit.amount),
    )
    .ok_or(Error::AmountOverflow)?;
    let pg_tax_free = tax_free_of_cancel(
        super::share(lines_tax_free, pg_part, worth),
        pg_part,
        tax_free_left(tx, &payment)?,
        pg_left,
    );
    let balance = balance::get(tx, user)?;
    balance::check_cap(
        balance,
        balance_part,
        balance::Cap {
            max: max_balance,
            held: super::in_flight(tx, user)?,
        },
    )?;

    let idempotency_key = format!("ls-refund-{}", token::random_hex(16));
    let id: RefundId = tx
        .query_row(
            "INSERT INTO refunds (payment_id, order_id, user_id, amount, status, reason,
                                  idempotency_key, created_at, updated_at, balance_amount,
                                  pg_amount, pg_tax_free)
             VALUES (?1, ?2, ?3, ?4, 'requested', ?5, ?6, ?7, ?7, ?8, ?9, ?10)
             RETURNING id",
            &[
                &payment.id,
                &order_id,
                &user,
                &amount,
                &reason,
                &idempotency_key,
                &now,
                &balance_part,
                &pg_part,
                &pg_tax_free,
            ],
        )?
        .get(0)?;
    for unit in &units {
        tx.execute(
            "INSERT INTO refund_items (refund_id, order_item_id, quantity, amount)
             VALUES (?1, ?2, ?3, ?4)",
            &[&id, &unit.item, &unit.quantity, &unit.amount],
        )?;
    }
    if pg_part.is_zero() {
        complete(tx, id, now)?;
    }
    get(tx, id)
}

/// What is left of `payment`'s tax-free part at the PG: its `pg_tax_free`
/// less that of its completed refunds.
fn tax_free_left(tx: &dyn Db, payment: &Payment) -> Result<Money> {
    let cancelled: Money = tx
        .query_row(
            "SELECT coalesce(CAST(sum(pg_tax_free) AS BIGINT), 0) FROM refunds
             WHERE payment_id = ?1 AND status = 'completed'",
            &[&payment.id],
        )?
        .get(0)?;
    Ok(payment
        .pg_tax_free
        .checked_sub(cancelled)
        .unwrap_or(Money::ZERO))
}

/// The tax-free part of a cancel of `pg_part`, from its lines' share
/// `wanted`: no more than the tax-free part left (`tax_free_left`) nor the
/// cancel, and no less than what the taxable part left (`pg_left −
/// tax_free_left`) cannot take. So the PG is never asked to cancel more of
/// either part than it holds (Toss refuses that), and the refund that
/// empties the PG part empties both.
pub(crate) fn tax_free_of_cancel(
    wanted: Money,
    pg_part: Money,
    tax_free_left: Money,
    pg_left: Money,
) -> Money {
    let tax_free_left = tax_free_left.min(pg_left);
    let taxable_left = pg_left.checked_sub(tax_free_left).unwrap_or(Money::ZERO);
    let low = pg_part.checked_sub(taxable_left).unwrap_or(Money::ZERO);
    let high = pg_part.min(tax_free_left);
    wanted.max(low).min(high)
}

/// The first transaction of a top-up's refund to the card, while its money
/// is unspent. Checks, in order: the payment exists and is the user's → it
/// is an approved top-up ([`Error::TopUpNotRefundable`]) → no other refund
/// of it is in flight → `amount` is at least 1 won and no more than the
/// top-up's PG amount not yet refunded ([`Error::RefundExceedsTopUp`]) →
/// the balance covers it ([`Error::InsufficientBalance`]: the money was
/// spent). Then the attempt is saved `Requested` with a fresh key, and the
/// amount is taken from the balance at once (a
/// [`TopUpRefund`](LedgerKind::TopUpRefund) entry), so it cannot be spent
/// while the PG gives it back; a declined cancel gives it back to the
/// balance (a [`TopUpRefundReversal`](LedgerKind::TopUpRefundReversal)),
/// and until then it counts as in flight, so that credit always fits.
pub(crate) fn begin_top_up(
    tx: &UserTx<'_>,
    payment_id: PaymentId,
    amount: Money,
    reason: &str,
    now: Timestamp,
) -> Result<Refund> {
    let user = tx.user();
    let payment = super::get_for_user(tx, user, payment_id)?;
    if payment.kind != super::PaymentKind::TopUp || payment.status != PaymentStatus::Approved {
        return Err(Error::TopUpNotRefundable {
            payment: payment_id,
            kind: payment.kind,
            status: payment.status,
        });
    }
    if let Some(live) = live_for_payment(tx, payment_id)? {
        return Err(Error::TopUpRefundInProgress {
            payment: payment_id,
            refund: live,
        });
    }
    if amount.is_zero() {
        return Err(Error::ZeroAmount);
    }
    let refundable = payment
        .pg_amount
        .checked_sub(payment.pg_refunded)
        .unwrap_or(Money::ZERO);
    if amount > refundable {
        return Err(Error::RefundExceedsTopUp {
            payment: payment_id,
            amount,
            refundable,
        });
    }
    let balance = balance::get(tx, user)?;
    if balance < amount {
        return Err(Error::InsufficientBalance {
            user,
            needed: amount,
            available: balance,
        });
    }
    let idempotency_key = format!("ls-refund-{}", token::random_hex(16));
    let id: RefundId = tx
        .query_row(
            "INSERT INTO refunds (payment_id, order_id, user_id, amount, status, reason,
                                  idempotency_key, created_at, updated_at, balance_amount,
                                  pg_amount)
             VALUES (?1, NULL, ?2, ?3, 'requested', ?4, ?5, ?6, ?6, 0, ?3)
             RETURNING id",
            &[&payment_id, &user, &amount, &reason, &idempotency_key, &now],
        )?
        .get(0)?;
    balance::post_from(
        tx,
        balance,
        Entry::for_refund(LedgerKind::TopUpRefund, amount, payment_id, id),
        None,
        now,
    )?;
    super::record_history(
        tx,
        payment_id,
        PaymentStatus::Approved,
        &format!("refund {id} requested: {amount} taken from the balance to go back to the card"),
        now,
    )?;
    get(tx, id)
}

/// What [`record_external`] did with one cancel from the PG's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum External {
    /// Recorded now.
    Recorded(Box<ExternalRefund>),
    /// Already in the books: a refund of this payment holds its key.
    Known,
    /// Not recorded, for a person: a refund of the payment is in flight
    /// (its answer may be this cancel), the payment is not approved, or it
    /// has less left at the PG than the cancel.
    Unsafe,
}

/// A cancel the PG made on its own, as [`record_external`] recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExternalRefund {
    /// The refund recorded for it (origin [`RefundOrigin::Pg`], completed).
    pub refund: Refund,
    /// For a top-up: the part of the cancel the balance could not give back
    /// (the customer had spent it), which a person must settle.
    pub unrecovered: Money,
}

/// Records a cancel of `payment_id` that the PG's record holds and the
/// shop never asked for (`cancel`: its amount and the PG's transaction
/// key), so the books follow the PG: a completed refund of origin
/// [`RefundOrigin::Pg`], its whole amount given back through the PG (none
/// to the balance), no units returned (the order becomes
/// `PartiallyRefunded`, its goods for a person to decide on). A top-up's
/// balance gives back what it still holds of the amount (a
/// [`TopUpRefund`](LedgerKind::TopUpRefund) entry); the rest is
/// `unrecovered`.
///
/// Changes nothing for a cancel already recorded ([`External::Known`]) or
/// one that cannot be recorded safely ([`External::Unsafe`]).
pub(crate) fn record_external(
    tx: &UserTx<'_>,
    payment_id: PaymentId,
    cancel: &crate::gateway::PgCancel,
    now: Timestamp,
) -> Result<External> {
    let payment = super::get(tx, payment_id)?;
    tx.holds(payment.user)?;
    let known = tx
        .query_opt(
            "SELECT id FROM refunds WHERE payment_id = ?1 AND pg_transaction_key = ?2",
            &[&payment_id, &cancel.transaction_key],
        )?
        .is_some();
    let pg_left = payment
        .pg_amount
        .checked_sub(payment.pg_refunded)
        .unwrap_or(Money::ZERO);
    if known {
        return Ok(External::Known);
    }
    if live_for_payment(tx, payment_id)?.is_some()
        || payment.status != PaymentStatus::Approved
        || cancel.amount.is_zero()
        || cancel.amount > pg_left
        || cancel.transaction_key.is_empty()
        || cancel.transaction_key.chars().count() > 200
    {
        return Ok(External::Unsafe);
    }
    let amount = cancel.amount;
    // The PG's word for the tax-free part, within what is left of it.
    let tax_free = cancel
        .tax_free_amount
        .min(amount)
        .min(tax_free_left(tx, &payment)?);
    let reason = "cancelled at the payment gateway outside the shop";
    let idempotency_key = format!("ls-external-{}", token::random_hex(16));
    let id: RefundId = tx
        .query_row(
            "INSERT INTO refunds (payment_id, order_id, user_id, amount, status, reason,
                                  idempotency_key, created_at, updated_at, balance_amount,
                                  pg_amount, origin, pg_tax_free)
             VALUES (?1, ?2, ?3, ?4, 'requested', ?5, ?6, ?7, ?7, 0, ?4, 'pg', ?8)
             RETURNING id",
            &[
                &payment_id,
                &payment.order,
                &payment.user,
                &amount,
                &reason,
                &idempotency_key,
                &now,
                &tax_free,
            ],
        )?
        .get(0)?;
    let mut unrecovered = Money::ZERO;
    if payment.order.is_none() {
        let balance = balance::get(tx, payment.user)?;
        let taken = amount.min(balance);
        unrecovered = amount.checked_sub(taken).unwrap_or(Money::ZERO);
        if !taken.is_zero() {
            balance::post_from(
                tx,
                balance,
                Entry::for_refund(LedgerKind::TopUpRefund, taken, payment_id, id),
                None,
                now,
            )?;
        }
    }
    super::record_history(
        tx,
        payment_id,
        PaymentStatus::Approved,
        &format!(
            "the PG cancelled {amount} outside the shop (its transaction {}); recorded as refund {id}",
            cancel.transaction_key
        ),
        now,
    )?;
    let refund = record(
        tx,
        id,
        Outcome::Done(Cancellation {
            cancelled_amount: amount,
            transaction_key: cancel.transaction_key.clone(),
        }),
        now,
    )?;
    Ok(External::Recorded(Box::new(ExternalRefund {
        refund,
        unrecovered,
    })))
}

/// The cancel request for refund attempt `refund`: the payment's gateway
/// references, the attempt's PG part and its own key.
pub(crate) fn cancel_request(
    conn: &dyn Db,
    refund: &Refund,
    currency: Currency,
) -> Result<CancelRequest> {
    let payment: Payment = super::get(conn, refund.payment)?;
    Ok(CancelRequest {
        payment_key: payment.payment_key.unwrap_or_default(),
        pg_order_id: payment.pg_order_id,
        amount: refund.pg_amount,
        currency,
        tax_free_amount: refund.pg_tax_free,
        reason: refund.reason.clone(),
        idempotency_key: refund.idempotency_key.clone(),
        refund_account: super::refund_account(conn, refund.payment)?,
    })
}

/// Records the gateway's answer for refund attempt `id`, exactly once: an
/// attempt that is no longer `Requested`/`Unknown` (someone else recorded
/// an answer first) is returned as it is.
///
/// - done → completed: the balance credited, the units released, the order
///   `PartiallyRefunded` or `Refunded` (a cancellation of another amount is
///   held as unknown, for a person);
/// - declined → `Declined`: nothing moves;
/// - unknown → `Unknown`: nothing moves; reconciliation asks again.
pub(crate) fn record(
    tx: &UserTx<'_>,
    id: RefundId,
    outcome: Outcome<Cancellation>,
    now: Timestamp,
) -> Result<Refund> {
    let refund = get(tx, id)?;
    tx.holds(refund.user)?;
    if !refund.status.is_unsettled() {
        return Ok(refund);
    }
    let outcome = match outcome.unless_amount_differs(
        refund.pg_amount,
        |cancel| cancel.cancelled_amount,
        &format_args!("refund {id}"),
        "cancelled",
    ) {
        // Only a confirm answers with a virtual account.
        Outcome::AwaitingDeposit(_) => Outcome::Unknown {
            reason: "a cancel answered with a virtual account".into(),
        },
        outcome => outcome,
    };
    match outcome {
        // Mapped to `Unknown` above.
        Outcome::AwaitingDeposit(_) => {}
        Outcome::Done(cancel) => {
            complete(tx, id, now)?;
            // Toss's keys are at most 64 characters; one that does not fit
            // the column is logged rather than failing the refund's record.
            match cancel.transaction_key.chars().count() {
                0 => {}
                1..=200 => {
                    tx.execute(
                        "UPDATE refunds SET pg_transaction_key = ?2 WHERE id = ?1",
                        &[&id, &cancel.transaction_key],
                    )?;
                }
                _ => {
                    tracing::warn!(refund = %id, "the PG's key for the cancel is too long to keep")
                }
            }
        }
        Outcome::Declined { code, message } => {
            tx.execute(
                "UPDATE refunds SET status = 'declined', failure_code = ?2, failure_message = ?3,
                                    updated_at = ?4
                 WHERE id = ?1",
                &[&id, &code, &message, &now],
            )?;
            if refund.order.is_none() {
                // A top-up's refund took its amount from the balance at the
                // start: the PG kept the money, so the balance gets it back
                // (not capped: it counted as in flight all along).
                balance::post(
                    tx,
                    Entry::for_refund(
                        LedgerKind::TopUpRefundReversal,
                        refund.amount,
                        refund.payment,
                        id,
                    ),
                    None,
                    now,
                )?;
            }
        }
        Outcome::Unknown { reason } => {
            if refund.status == RefundStatus::Requested {
                tracing::warn!(refund = %id, %reason, "refund outcome unknown; held for reconciliation");
                tx.execute(
                    "UPDATE refunds SET status = 'unknown', updated_at = ?2 WHERE id = ?1",
                    &[&id, &now],
                )?;
            }
        }
    }
    get(tx, id)
}

/// Completes refund attempt `id`: the units come back to the order lines
/// and to stock, the payment and the order record the money given back
/// (guarded so neither part passes what was paid), the balance part is
/// credited by a ledger entry, and the payment's history says so.
///
/// The credit is not capped: its amount counted as in flight from the
/// first transaction on, so it fits under the limit.
fn complete(tx: &UserTx<'_>, id: RefundId, now: Timestamp) -> Result<()> {
    let refund = get(tx, id)?;
    tx.holds(refund.user)?;
    let changed = tx.execute(
        "UPDATE refunds SET status = 'completed', updated_at = ?2
         WHERE id = ?1 AND status IN ('requested', 'unknown')",
        &[&id, &now],
    )?;
    if changed != 1 {
        return Err(corrupt(format!(
            "completing refund {id}: {changed} rows changed, not 1"
        )));
    }
    let Some(order_id) = refund.order else {
        return complete_top_up(tx, &refund, now);
    };
    let units = units_of(tx, id)?;
    let status = order::refund_units(tx, order_id, &units, refund.amount, now)?;
    let lines = units
        .iter()
        .map(|unit| RefundLine {
            product: unit.product,
            quantity: unit.quantity,
            amount: unit.amount,
        })
        .collect();
    crate::feed::append(
        tx,
        crate::feed::Subject {
            user: refund.user,
            order: order_id,
            payment: Some(refund.payment),
            refund: Some(id),
        },
        &crate::feed::EventPayload::RefundCompleted {
            amount: refund.amount,
            lines,
        },
        now,
    )?;
    let fully = status == OrderStatus::Refunded;
    given_back(
        tx,
        &refund,
        fully,
        &format!(
            "refund {id} completed: {} cancelled at the PG, {} credited to the balance",
            refund.pg_amount, refund.balance_amount
        ),
        now,
    )?;
    if !refund.balance_amount.is_zero() {
        balance::post(
            tx,
            Entry::for_refund(
                LedgerKind::Refund,
                refund.balance_amount,
                refund.payment,
                id,
            ),
            None,
            now,
        )?;
    }
    Ok(())
}

/// Completes the refund of a top-up: the PG gave the money back to the
/// card. The balance was debited when the attempt began; the payment
/// records what went back, and is `Refunded` once all of it has.
fn complete_top_up(tx: &dyn Db, refund: &Refund, now: Timestamp) -> Result<()> {
    let payment = super::get(tx, refund.payment)?;
    let fully = payment.pg_refunded.checked_add(refund.amount) == Some(payment.pg_amount);
    given_back(
        tx,
        refund,
        fully,
        &format!(
            "refund {} completed: {} given back to the card",
            refund.id, refund.amount
        ),
        now,
    )
}

/// The payment of a completed refund records what went back (guarded so
/// neither part passes what was paid) and `Refunded` once `fully`, and
/// its history says so with `detail`.
fn given_back(
    tx: &dyn Db,
    refund: &Refund,
    fully: bool,
    detail: &str,
    now: Timestamp,
) -> Result<()> {
    super::add_refunded(
        tx,
        refund.payment,
        refund.amount,
        refund.pg_amount,
        fully,
        now,
    )?;
    let status = if fully {
        PaymentStatus::Refunded
    } else {
        PaymentStatus::Approved
    };
    super::record_history(tx, refund.payment, status, detail, now)
}

/// Every refund attempt of the top-up `payment` of `user`, oldest first.
pub(crate) fn for_top_up(conn: &dyn Db, user: UserId, payment: PaymentId) -> Result<Vec<Refund>> {
    let top_up = super::get_for_user(conn, user, payment)?;
    if top_up.kind != super::PaymentKind::TopUp {
        return Ok(Vec::new());
    }
    conn.query(SELECT_FOR_TOP_UP, &[&payment])?
        .iter()
        .map(refund_row)
        .collect()
}

/// The refund attempt `id`, whoever owns it (for the shop's own
/// bookkeeping), with its lines.
pub(crate) fn get(conn: &dyn Db, id: RefundId) -> Result<Refund> {
    let mut refund = refund_row(&conn.query_row(SELECT_BY_ID, &[&id])?)?;
    refund.lines = lines_of(conn, id)?;
    Ok(refund)
}

/// Every refund attempt of the order `order` of `user`, oldest first.
pub(crate) fn for_order(conn: &dyn Db, user: UserId, order: OrderId) -> Result<Vec<Refund>> {
    order::get(conn, user, order)?;
    with_lines(conn, SELECT_FOR_ORDER, &[&order])
}

/// The refund attempts still `Requested`/`Unknown` that were recorded at or
/// before `cutoff`, oldest first.
pub(crate) fn unsettled(conn: &dyn Db, cutoff: Timestamp) -> Result<Vec<Refund>> {
    with_lines(conn, SELECT_UNSETTLED, &[&cutoff])
}

/// The refunds `sql` selects, each with its lines.
fn with_lines(conn: &dyn Db, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Refund>> {
    let mut refunds = conn
        .query(sql, params)?
        .iter()
        .map(refund_row)
        .collect::<Result<Vec<_>>>()?;
    for refund in &mut refunds {
        refund.lines = lines_of(conn, refund.id)?;
    }
    Ok(refunds)
}

/// The latest `limit` refunds of origin [`RefundOrigin::Pg`], newest first.
pub(crate) fn latest_external(conn: &dyn Db, limit: u32) -> Result<Vec<Refund>> {
    conn.query(
        select_refunds!("WHERE origin = 'pg' ORDER BY id DESC LIMIT ?1"),
        &[&limit],
    )?
    .iter()
    .map(refund_row)
    .collect()
}

/// The PG's keys of the completed cancels the shop recorded for
/// `payment`, one per completed refund with a PG part (`None` for one
/// recorded before liteshop stored the key).
pub(crate) fn recorded_cancels(conn: &dyn Db, payment: PaymentId) -> Result<Vec<Option<String>>> {
    conn.query(
        "SELECT pg_transaction_key FROM refunds
         WHERE payment_id = ?1 AND status = 'completed' AND pg_amount > 0 ORDER BY id",
        &[&payment],
    )?
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// The refund of `payment` in flight, if any.
pub(crate) fn live_for_payment(conn: &dyn Db, payment: PaymentId) -> Result<Option<RefundId>> {
    conn.query_opt(SELECT_LIVE_FOR_PAYMENT, &[&payment])?
        .map(|row| row.get(0))
        .transpose()
}

fn lines_of(conn: &dyn Db, id: RefundId) -> Result<Vec<RefundLine>> {
    Ok(units_of(conn, id)?
        .into_iter()
        .map(|unit| RefundLine {
            product: unit.product,
            quantity: unit.quantity,
            amount: unit.amount,
        })
        .collect())
}

fn units_of(conn: &dyn Db, id: RefundId) -> Result<Vec<RefundUnits>> {
    conn.query(SELECT_LINES, &[&id])?
        .iter()
        .map(|row| {
            Ok(RefundUnits {
                product: row.get(0)?,
                quantity: row.get(1)?,
                amount: row.get(2)?,
                item: row.get(3)?,
                tax_free: row.get::<i64>(4)? != 0,
            })
        })
        .collect()
}

fn refund_row(row: &Row) -> Result<Refund> {
    let failure_code: Option<String> = row.get(at!(REFUND, "failure_code"))?;
    let failure_message: Option<String> = row.get(at!(REFUND, "failure_message"))?;
    Ok(Refund {
        id: row.get(at!(REFUND, "id"))?,
        payment: row.get(at!(REFUND, "payment_id"))?,
        order: row.get(at!(REFUND, "order_id"))?,
        user: row.get(at!(REFUND, "user_id"))?,
        amount: row.get(at!(REFUND, "amount"))?,
        status: row.get(at!(REFUND, "status"))?,
        reason: row.get(at!(REFUND, "reason"))?,
        lines: Vec::new(),
        idempotency_key: row.get(at!(REFUND, "idempotency_key"))?,
        failure: failure_code.map(|code| PaymentFailure {
            code,
            message: failure_message.unwrap_or_default(),
        }),
        created_at: row.get(at!(REFUND, "created_at"))?,
        updated_at: row.get(at!(REFUND, "updated_at"))?,
        balance_amount: row.get(at!(REFUND, "balance_amount"))?,
        pg_amount: row.get(at!(REFUND, "pg_amount"))?,
        pg_transaction_key: row.get(at!(REFUND, "pg_transaction_key"))?,
        origin: row.get(at!(REFUND, "origin"))?,
        pg_tax_free: row.get(at!(REFUND, "pg_tax_free"))?,
    })
}

/// The columns [`refund_row`] reads, as `select_refunds!` selects them.
pub(crate) const REFUND: Reads = &[
    "refunds.id",
    "refunds.payment_id",
    "refunds.order_id",
    "refunds.user_id",
    "refunds.amount",
    "refunds.status",
    "refunds.reason",
    "refunds.idempotency_key",
    "refunds.failure_code",
    "refunds.failure_message",
    "refunds.created_at",
    "refunds.updated_at",
    "refunds.balance_amount",
    "refunds.pg_amount",
    "refunds.pg_transaction_key",
    "refunds.origin",
    "refunds.pg_tax_free",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever each refund's lines want, no cancel takes more of
        /// either part than the PG holds, and the cancel that empties the
        /// PG part empties both parts.
        #[test]
        fn cancels_keep_within_both_parts_and_end_together(
            pg in 1i64..1_000_000,
            tax_free_permille in 0i64..=1_000,
            cuts in proptest::collection::vec((1i64..400_000, 0i64..=1_000), 1..8),
        ) {
            let won = |w: i64| Money::new(w).unwrap();
            let mut pg_left = won(pg);
            let mut tax_free_left = won(pg * tax_free_permille / 1_000);
            for (i, (cut, wanted_permille)) in cuts.iter().enumerate() {
                let last = i + 1 == cuts.len();
                let part = if last { pg_left } else { won(*cut).min(pg_left) };
                let wanted = won(part.won() * wanted_permille / 1_000);
                let tax_free = tax_free_of_cancel(wanted, part, tax_free_left, pg_left);
                let taxable_left = pg_left.checked_sub(tax_free_left).unwrap();
                prop_assert!(tax_free <= part && tax_free <= tax_free_left);
                prop_assert!(part.checked_sub(tax_free).unwrap() <= taxable_left);
                pg_left = pg_left.checked_sub(part).unwrap();
                tax_free_left = tax_free_left.checked_sub(tax_free).unwrap();
            }
            prop_assert_eq!((pg_left, tax_free_left), (Money::ZERO, Money::ZERO));
        }
    }
}
