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

use crate::feed::{self, EventPayload, Subject};
use serde::{Deserialize, Serialize};

use crate::balance::{self, Entry, LedgerKind};
use crate::clock::Timestamp;
use crate::db::{Db, Reads, Row, at};
use crate::error::{Error, Result};
use crate::gateway::{Approval, ApproveRequest, StatusRequest};
use crate::ids::{OrderId, PaymentEventId, PaymentId, UserId};
use crate::money::{Currency, Money};
use crate::order::{self, OrderStatus};
use crate::store::UserTx;
use crate::store::failure::corrupt;
use crate::text_enum::text_enum;
use crate::token;

/// Where a payment attempt is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Started: the balance part is held and the customer is to pay the PG
    /// part in the PG's widget; nothing has been sent to the PG. It ends by
    /// a confirm, the PG's failure redirect, or its expiry.
    Started,
    /// The money is held and the gateway is being asked to confirm (or was
    /// about to be when the process stopped).
    Requested,
    /// Paid: by the balance alone, or the gateway approved the PG part.
    Approved,
    /// The gateway declined (or provably never received it), the customer's
    /// widget failed, or nobody confirmed it in time; the balance part was
    /// given back.
    Declined,
    /// The gateway gave no definite answer; the money stays held until
    /// reconciliation settles it.
    Unknown,
    /// Approved, then every won of it refunded. (A partly refunded payment
    /// stays `Approved`, with [`Payment::refunded`] above zero.)
    Refunded,
}

impl PaymentStatus {
    /// Whether the gateway's answer is still open: `Requested` or
    /// `Unknown` (reconciliation settles these).
    pub const fn is_unsettled(self) -> bool {
        matches!(self, PaymentStatus::Requested | PaymentStatus::Unknown)
    }

    /// Whether the payment still holds money in flight: `Started`,
    /// `Requested` or `Unknown`.
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            PaymentStatus::Started | PaymentStatus::Requested | PaymentStatus::Unknown
        )
    }
}

text_enum!(PaymentStatus {
    Started => "started",
    Requested => "requested",
    Approved => "approved",
    Declined => "declined",
    Unknown => "unknown",
    Refunded => "refunded",
});

/// What a payment pays for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// An order: by balance, by the PG, or both.
    Order,
    /// A top-up of the balance, wholly through the PG; the balance is
    /// credited when the PG approves it.
    TopUp,
}

text_enum!(PaymentKind {
    Order => "order",
    TopUp => "top_up",
});

/// Why a payment was declined, as the gateway said it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailure {
    /// The gateway's code (`PG_UNAVAILABLE` when it could not be reached,
    /// `CONFIRM_WINDOW_EXPIRED` when nobody confirmed it in time, the
    /// widget's code for a failure redirect).
    pub code: String,
    /// The gateway's message.
    pub message: String,
}

/// One payment attempt: of an order (its balance part and PG part), or a
/// top-up.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = json!({"id": 1, "kind": "order", "order": 1, "user": 1, "amount": 24000,
    "balance_amount": 10000, "pg_amount": 14000, "refunded": 0, "pg_refunded": 0,
    "status": "started", "payment_key": null, "pg_order_id": "ls-1-6f1c2a9e",
    "order_name": "Tea and 1 more", "customer_key": "ls-c-3f9a1b2c4d5e",
    "idempotency_key": "ls-pay-0c6e2d4b9a8f7e61", "pg_transaction_id": null, "failure": null,
    "expires_at": 1795531068217_i64, "pg_tax_free": 0, "deposit": null,
    "created_at": 1795529268217_i64, "updated_at": 1795529268217_i64})))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment's id.
    pub id: PaymentId,
    /// What it pays for.
    pub kind: PaymentKind,
    /// The order it pays; `None` for a top-up.
    pub order: Option<OrderId>,
    /// Whose payment.
    pub user: UserId,
    /// The amount: `balance_amount + pg_amount` (for an order, its total).
    pub amount: Money,
    /// The part taken from the balance (held from the start; zero for a
    /// top-up).
    pub balance_amount: Money,
    /// The part the PG takes (zero for a payment wholly by balance).
    pub pg_amount: Money,
    /// How much of it completed refunds gave back; never more than `amount`.
    pub refunded: Money,
    /// How much of `refunded` went back through the PG; never more than
    /// `pg_amount` (the rest went back to the balance, never more than
    /// `balance_amount`).
    pub pg_refunded: Money,
    /// Where it is.
    pub status: PaymentStatus,
    /// The PG's key for the payment, from the widget's redirect; `None`
    /// until it is confirmed (and for a payment wholly by balance).
    pub payment_key: Option<String>,
    /// This attempt's id at the gateway (the widget's `orderId`), unique per
    /// attempt: 6–64 characters of `[A-Za-z0-9_-]`.
    pub pg_order_id: String,
    /// The name the widget shows (`orderName`).
    pub order_name: String,
    /// The customer's key at the PG (`customerKey`).
    pub customer_key: String,
    /// The key that makes a repeated confirm the same payment.
    pub idempotency_key: String,
    /// The gateway's transaction id, once approved.
    pub pg_transaction_id: Option<String>,
    /// Why it was declined, if it was.
    pub failure: Option<PaymentFailure>,
    /// When a started payment nobody confirmed ends.
    pub expires_at: Timestamp,
    /// The virtual account the PG issued for it, when the customer chose a
    /// bank transfer: the payment stays `Requested`, holding its balance
    /// part and its order's units, until the deposit (then `Approved`) or
    /// the due date (then `Declined`, code [`DEPOSIT_EXPIRED`]).
    pub deposit: Option<DepositAccount>,
    /// The tax-free part of `pg_amount` (Toss: `taxFreeAmount`): its share
    /// of the order's [tax-free](crate::Product::tax_free) lines, `⌊tax-free
    /// × pg_amount / amount⌋`; zero for a top-up.
    #[serde(default)]
    pub pg_tax_free: Money,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
}

/// What the client's PG widget needs to take the PG part of a started
/// payment (Toss Payments' `requestPayment({orderId, amount, orderName,
/// customerKey})`): the shop's values, never the client's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetRequest {
    /// The payment.
    pub payment: PaymentId,
    /// `orderId`: the attempt's id at the PG.
    pub pg_order_id: String,
    /// `amount`: the PG part.
    pub amount: Money,
    /// `orderName`.
    pub order_name: String,
    /// `customerKey`.
    pub customer_key: String,
    /// Confirm before this time, or the attempt ends.
    pub expires_at: Timestamp,
}

/// Where the customer pays a payment by bank transfer (Toss's virtual
/// account, 가상계좌), as the PG issued it. The PG's secret for it stays in
/// the shop.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositAccount {
    /// The bank, as the PG names it (Toss: `bankCode`).
    pub bank: String,
    /// The account to pay the PG part into, in one transfer of exactly
    /// that amount.
    pub account_number: String,
    /// The last moment a deposit is taken.
    pub due_at: Timestamp,
}

/// The decline code of a payment by bank transfer whose due date passed
/// with no deposit at the PG.
pub const DEPOSIT_EXPIRED: &str = "DEPOSIT_EXPIRED";

/// What the PG's success redirect brought back (`paymentKey`, `orderId`,
/// `amount` in its query string), for [`Shop::confirm_payment`](crate::Shop::confirm_payment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgRedirect {
    /// `paymentKey`: the PG's key for the payment the customer authorised.
    pub payment_key: String,
    /// `orderId`: must equal the attempt's.
    pub pg_order_id: String,
    /// `amount`: must equal the attempt's PG part.
    pub amount: Money,
}

/// What the PG's failure redirect brought back (`code`, `message`,
/// `orderId`), for [`Shop::fail_payment`](crate::Shop::fail_payment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgFailRedirect {
    /// `code`, for example `PAY_PROCESS_CANCELED`.
    pub code: String,
    /// `message`.
    pub message: String,
    /// `orderId`: must equal the attempt's.
    pub pg_order_id: String,
}

impl Payment {
    /// What the PG widget needs, while the payment is `Started`.
    pub fn widget(&self) -> Option<WidgetRequest> {
        (self.status == PaymentStatus::Started).then(|| WidgetRequest {
            payment: self.id,
            pg_order_id: self.pg_order_id.clone(),
            amount: self.pg_amount,
            order_name: self.order_name.clone(),
            customer_key: self.customer_key.clone(),
            expires_at: self.expires_at,
        })
    }

    pub(crate) fn approve_request(&self, currency: Currency) -> ApproveRequest {
        ApproveRequest {
            payment_key: self.payment_key.clone().unwrap_or_default(),
            pg_order_id: self.pg_order_id.clone(),
            amount: self.pg_amount,
            currency,
            tax_free_amount: self.pg_tax_free,
            idempotency_key: self.idempotency_key.clone(),
            order: self.order,
        }
    }

    pub(crate) fn status_request(&self) -> StatusRequest {
        StatusRequest {
            pg_order_id: self.pg_order_id.clone(),
            payment_key: self.payment_key.clone(),
        }
    }

    /// The order of an order payment; a top-up has none, and asking is a
    /// bug in the caller.
    fn order_id(&self) -> Result<OrderId> {
        self.order
            .ok_or_else(|| corrupt(format!("payment {} is a top-up: it has no order", self.id)))
    }
}

/// One entry of a payment's history: a status change, when, and why.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Not done yet: the customer pays into the virtual account the PG
    /// issued (only a confirm answers it).
    AwaitingDeposit(Box<crate::gateway::Deposit>),
}

impl<T> Outcome<T> {
    /// A `Done` for another amount than `asked` becomes `Unknown`, left for a
    /// person: the gateway did something, but not what the shop asked, so
    /// nothing is moved on its word. `done` reads the amount the answer
    /// names; `attempt` ("payment 7", "refund 3") and `verb` ("approved",
    /// "cancelled") say what for the error log and the recorded reason.
    pub(crate) fn unless_amount_differs(
        self,
        asked: Money,
        done: impl Fn(&T) -> Money,
        attempt: &dyn std::fmt::Display,
        verb: &str,
    ) -> Outcome<T> {
        match self {
            Outcome::Done(answer) if done(&answer) != asked => {
                let answered = done(&answer);
                tracing::error!(%attempt, %answered, %asked,
                    "the gateway {verb} a different amount; leaving it for review");
                Outcome::Unknown {
                    reason: format!("{verb} amount {answered} differs"),
                }
            }
            outcome => outcome,
        }
    }
}

/// The code recorded for a payment the gateway provably never received.
pub(crate) const UNAVAILABLE_CODE: &str = "PG_UNAVAILABLE";

/// The code recorded for a started payment nobody confirmed in time.
pub(crate) const EXPIRED_CODE: &str = "CONFIRM_WINDOW_EXPIRED";

/// The longest payment key the shop accepts.
const MAX_PAYMENT_KEY: usize = 200;

/// The longest `orderName` Toss Payments takes.
const MAX_ORDER_NAME: usize = 100;

/// Every payment column, in the order `payment_row` reads them.
macro_rules! payment_columns {
    () => {
        concat!(
            "id, order_id, user_id, amount, status, payment_key, pg_order_id, ",
            "idempotency_key, pg_transaction_id, failure_code, failure_message, created_at, ",
            "updated_at, refunded, kind, balance_amount, pg_amount, pg_refunded, order_name, ",
            "customer_key, expires_at, deposit_bank, deposit_account, deposit_due_at, pg_tax_free"
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

const SELECT_BY_PG_ORDER_ID: &str = select_payments!("WHERE pg_order_id = ?1");

pub(crate) const SELECT_UNSETTLED: &str = select_payments!(
    "WHERE status IN ('requested', 'unknown') AND created_at <= ?1 ORDER BY created_at"
);

pub(crate) const SELECT_STARTED_DUE: &str =
    select_payments!("WHERE status = 'started' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2");

pub(crate) const SELECT_TOP_UPS: &str = select_payments!(
    "WHERE user_id = ?1 AND kind = 'top_up' AND id < ?2 ORDER BY id DESC LIMIT ?3"
);

const SELECT_BY_ID: &str = select_payments!("WHERE id = ?1");

/// Money in flight for a user: balance parts held by open payments, top-ups
/// about to be credited, and balance parts owed by refunds whose outcome is
/// not settled. Each sum walks a partial index.
pub(crate) const SELECT_IN_FLIGHT: &str =
    "SELECT (SELECT coalesce(CAST(sum(CASE WHEN kind = 'top_up' THEN pg_amount
                                          ELSE balance_amount END) AS BIGINT), 0)
             FROM payments
             WHERE user_id = ?1 AND status IN ('started', 'requested', 'unknown'))
          + (SELECT coalesce(CAST(sum(CASE WHEN order_id IS NULL THEN amount
                                          ELSE balance_amount END) AS BIGINT), 0)
             FROM refunds
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

/// Checks a failure redirect's `code` and `message` before anything is
/// stored: they come from the customer's browser.
pub(crate) fn validate_fail_redirect(redirect: &PgFailRedirect) -> Result<()> {
    let code_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let code_ok = (1..=64).contains(&redirect.code.len()) && redirect.code.chars().all(code_char);
    let message_ok =
        redirect.message.chars().count() <= 500 && !redirect.message.chars().any(char::is_control);
    if code_ok && message_ok {
        Ok(())
    } else {
        Err(Error::InvalidFailRedirect)
    }
}

/// The money in flight for `user`: balance parts held by open payments,
/// top-ups awaiting their credit, refund credits owed, and top-up refunds in
/// flight (given back if the PG declines them). It counts against
/// the balance limit, so a reversal, a top-up or a refund credit can always
/// be posted when it settles.
pub(crate) fn in_flight(conn: &dyn Db, user: UserId) -> Result<Money> {
    conn.query_row(SELECT_IN_FLIGHT, &[&user])?.get(0)
}

/// The balance cap a credit of `user` must fit under.
pub(crate) fn cap(conn: &dyn Db, user: UserId, max: Money) -> Result<balance::Cap> {
    Ok(balance::Cap {
        max,
        held: in_flight(conn, user)?,
    })
}

/// How a payment starts: the rules the shop's settings give it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StartRules {
    /// How long a started payment waits for its confirm.
    pub(crate) window: std::time::Duration,
    /// Whether a gateway is configured (a PG part needs one).
    pub(crate) has_gateway: bool,
}

/// The name the widget shows for `order`: its first line's name, and how
/// many more lines it has, within the PG's 100 characters.
fn order_name(order: &order::Order) -> String {
    let first = order
        .lines
        .first()
        .map_or("Order", |line| line.name.as_str());
    let suffix = match order.lines.len() {
        0 | 1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let room = MAX_ORDER_NAME - suffix.len();
    let mut name: String = first.chars().take(room).collect();
    name.push_str(&suffix);
    name
}

/// How much of an order's total a payment takes from the balance.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BalancePart {
    /// This much; the rest through the PG.
    Exactly(Money),
    /// All of it, as the order reads in the payment's own transaction.
    Total,
}

/// The first transaction of an order's payment, in the seed's order: the
/// order exists and is the user's → it is `Pending` → its reservation has
/// not run out → it has something to pay → the balance part is at most the
/// total → a PG part has a gateway → the balance covers the balance part →
/// the balance part is debited (held), the payment saved as `Started` with
/// its PG order id, fresh idempotency key and expiry, its history row, and
/// the order moved to `Paying`. A payment wholly by balance is approved in
/// this same transaction: the order is `Paid` and no PG is asked.
pub(crate) fn begin(
    tx: &UserTx<'_>,
    order_id: OrderId,
    balance_part: BalancePart,
    rules: StartRules,
    now: Timestamp,
) -> Result<Payment> {
    let user = tx.user();
    let order = order::get(tx, user, order_id)?;
    let balance_part = match balance_part {
        BalancePart::Exactly(won) => won,
        BalancePart::Total => order.total,
    };
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
    let pg_part = order
        .total
        .checked_sub(balance_part)
        .ok_or(Error::BalancePartTooLarge {
            order: order_id,
            total: order.total,
            balance_part,
        })?;
    if !pg_part.is_zero() && !rules.has_gateway {
        return Err(Error::NoGateway);
    }
    let available = balance::get(tx, user)?;
    if available < balance_part {
        return Err(Error::InsufficientBalance {
            user,
            needed: balance_part,
            available,
        });
    }
    let pg_order_id = format!("ls-{order_id}-{}", token::random_hex(8));
    let tax_free = Money::checked_sum(
        order
            .lines
            .iter()
            .filter(|line| line.tax_free)
            .map(|line| line.amount),
    )
    .ok_or(Error::AmountOverflow)?;
    let payment = insert(
        tx,
        NewPayment {
            kind: PaymentKind::Order,
            order: Some(order_id),
            user,
            balance_part,
            pg_part,
            pg_tax_free: share(tax_free, pg_part, order.total),
            pg_order_id,
            order_name: order_name(&order),
        },
        rules,
        now,
    )?;
    if !balance_part.is_zero() {
        balance::post_from(
            tx,
            available,
            Entry::for_payment(LedgerKind::Payment, balance_part, payment.id),
            None,
            now,
        )?;
    }
    record_history(
        tx,
        payment.id,
        PaymentStatus::Started,
        &format!(
            "started: {balance_part} held from the balance, {pg_part} to pay at the PG as {}",
            payment.pg_order_id
        ),
        now,
    )?;
    order::transition(tx, order_id, OrderStatus::Pending, OrderStatus::Paying, now)?;
    feed::append(
        tx,
        Subject::payment(user, order_id, payment.id),
        &EventPayload::PaymentRequested {
            amount: order.total,
        },
        now,
    )?;
    if pg_part.is_zero() {
        return approve(tx, &payment, Approved::ByBalance(order), now);
    }
    Ok(payment)
}

/// The first transaction of a top-up of `amount` (checked by the caller to
/// be at least 1): the user exists → a gateway is configured → the
/// per-charge limit → the balance limit, counting the money already in
/// flight → the payment saved as `Started`, wholly by PG, its amount
/// counted in flight from now on so the credit always fits when the PG
/// approves it.
pub(crate) fn begin_top_up(
    tx: &UserTx<'_>,
    amount: Money,
    max_charge: Money,
    max_balance: Money,
    rules: StartRules,
    now: Timestamp,
) -> Result<Payment> {
    let user = tx.user();
    let balance = balance::of_user(tx, user)?;
    if !rules.has_gateway {
        return Err(Error::NoGateway);
    }
    balance::check_charge(balance, amount, max_charge, cap(tx, user, max_balance)?)?;
    let payment = insert(
        tx,
        NewPayment {
            kind: PaymentKind::TopUp,
            order: None,
            user,
            balance_part: Money::ZERO,
            pg_part: amount,
            pg_tax_free: Money::ZERO,
            pg_order_id: format!("ls-topup-{user}-{}", token::random_hex(8)),
            order_name: "Balance top-up".to_owned(),
        },
        rules,
        now,
    )?;
    record_history(
        tx,
        payment.id,
        PaymentStatus::Started,
        &format!(
            "top-up of {amount} started; to pay at the PG as {}",
            payment.pg_order_id
        ),
        now,
    )?;
    Ok(payment)
}

/// `part`'s share of `tax_free` out of `whole` — `⌊tax_free × part /
/// whole⌋`, exact in 128 bits — the tax-free part of a payment's PG part:
/// each part of a split tender carries its share of the tax-free goods.
pub(crate) fn share(tax_free: Money, part: Money, whole: Money) -> Money {
    if whole.is_zero() {
        return Money::ZERO;
    }
    let share = i128::from(tax_free.won()) * i128::from(part.won()) / i128::from(whole.won());
    i64::try_from(share)
        .ok()
        .and_then(|won| Money::new(won).ok())
        .unwrap_or(Money::ZERO)
        .min(part)
}

struct NewPayment {
    kind: PaymentKind,
    order: Option<OrderId>,
    user: UserId,
    balance_part: Money,
    pg_part: Money,
    /// The tax-free part of `pg_part`.
    pg_tax_free: Money,
    pg_order_id: String,
    order_name: String,
}

fn insert(tx: &dyn Db, new: NewPayment, rules: StartRules, now: Timestamp) -> Result<Payment> {
    let amount = new
        .balance_part
        .checked_add(new.pg_part)
        .ok_or(Error::AmountOverflow)?;
    let idempotency_key = format!("ls-pay-{}", token::random_hex(16));
    let customer_key = format!("ls-c-{}", token::random_hex(12));
    let expires_at = now.saturating_add(rules.window);
    payment_row(&tx.query_row(
        concat!(
            "INSERT INTO payments (order_id, user_id, amount, status, pg_order_id, ",
            "idempotency_key, created_at, updated_at, kind, balance_amount, pg_amount, ",
            "order_name, customer_key, expires_at, pg_tax_free) ",
            "VALUES (?1, ?2, ?3, 'started', ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ",
            "RETURNING ",
            payment_columns!()
        ),
        &[
            &new.order,
            &new.user,
            &amount,
            &new.pg_order_id,
            &idempotency_key,
            &now,
            &new.kind,
            &new.balance_part,
            &new.pg_part,
            &new.order_name,
            &customer_key,
            &expires_at,
            &new.pg_tax_free,
        ],
    )?)
}

/// What a redirect found: the first transaction of a confirm, or the
/// checks it shares with a failure redirect.
pub(crate) enum Confirming {
    /// The attempt is `Started` and the redirect is about it; as
    /// [`begin_confirm`] answers it, moved to `Requested` with the
    /// redirect's key: ask the gateway.
    Ask(Payment),
    /// The attempt was past `Started` (a repeated redirect): it is returned
    /// as it is, and nothing is sent.
    AsItIs(Payment),
}

/// The first transaction of a confirm, in order: the payment exists and is
/// the user's → a payment past `Started` is returned as it is → the
/// redirect's `orderId` and `amount` equal the attempt's → it has not
/// expired → the redirect's payment key is stored and the payment moves to
/// `Requested`.
pub(crate) fn begin_confirm(
    tx: &UserTx<'_>,
    id: PaymentId,
    redirect: &PgRedirect,
    now: Timestamp,
) -> Result<Confirming> {
    let payment = match redirected(tx, id, &redirect.pg_order_id, Some(redirect.amount))? {
        Confirming::Ask(payment) => payment,
        as_it_is => return Ok(as_it_is),
    };
    if payment.expires_at <= now {
        return Err(Error::PaymentExpired {
            payment: id,
            expired_at: payment.expires_at,
        });
    }
    let asked = payment_row(&tx.query_row(
        concat!(
            "UPDATE payments SET status = 'requested', payment_key = ?2, updated_at = ?3 ",
            "WHERE id = ?1 AND status = 'started' RETURNING ",
            payment_columns!()
        ),
        &[&id, &redirect.payment_key, &now],
    )?)?;
    record_history(
        tx,
        id,
        PaymentStatus::Requested,
        &format!("confirm of {} requested", payment.pg_amount),
        now,
    )?;
    Ok(Confirming::Ask(asked))
}

/// The user's payment `id` as a redirect finds it, the checks both
/// redirects share, in order: it exists and is the user's → past `Started`
/// it is returned as it is ([`Confirming::AsItIs`]) → the redirect is about
/// this attempt: the same `orderId`, and (for a success redirect) the same
/// amount. Nothing is written.
fn redirected(
    tx: &UserTx<'_>,
    id: PaymentId,
    pg_order_id: &str,
    amount: Option<Money>,
) -> Result<Confirming> {
    let payment = get_for_user(tx, tx.user(), id)?;
    if payment.status != PaymentStatus::Started {
        return Ok(Confirming::AsItIs(payment));
    }
    let amount_differs = amount.is_some_and(|amount| amount != payment.pg_amount);
    if pg_order_id != payment.pg_order_id || amount_differs {
        return Err(Error::RedirectMismatch {
            payment: payment.id,
            expected_pg_order_id: payment.pg_order_id,
            expected_amount: payment.pg_amount,
        });
    }
    Ok(Confirming::Ask(payment))
}

/// The PG's failure redirect for payment `id` of `user`: a `Started`
/// attempt with that `orderId` ends at once as declined with the widget's
/// code, its balance part given back; an attempt past `Started` is returned
/// as it is.
pub(crate) fn fail(
    tx: &UserTx<'_>,
    id: PaymentId,
    redirect: &PgFailRedirect,
    now: Timestamp,
) -> Result<Payment> {
    match redirected(tx, id, &redirect.pg_order_id, None)? {
        Confirming::Ask(payment) => decline(tx, &payment, &redirect.code, &redirect.message, now),
        Confirming::AsItIs(payment) => Ok(payment),
    }
}

/// The started payments whose confirm window ended at or before `now`,
/// at most `limit`, oldest deadline first.
pub(crate) fn started_due(conn: &dyn Db, now: Timestamp, limit: u32) -> Result<Vec<Payment>> {
    conn.query(SELECT_STARTED_DUE, &[&now, &i64::from(limit)])?
        .iter()
        .map(payment_row)
        .collect()
}

/// Ends payment `id` if it is still `Started` past its window: declined
/// with [`EXPIRED_CODE`], its balance part given back, its order `Pending`
/// again (the order's own expiry then releases its stock). Returns whether
/// it ended it.
pub(crate) fn expire(tx: &UserTx<'_>, id: PaymentId, now: Timestamp) -> Result<bool> {
    let payment = get(tx, id)?;
    tx.holds(payment.user)?;
    if payment.status != PaymentStatus::Started || payment.expires_at > now {
        return Ok(false);
    }
    decline(
        tx,
        &payment,
        EXPIRED_CODE,
        "nobody confirmed the payment before its window ended",
        now,
    )?;
    Ok(true)
}

/// Records the gateway's answer for payment `id`, exactly once: a payment
/// that is no longer `Requested`/`Unknown` (someone else recorded an answer
/// first) is returned as it is.
///
/// - approved → payment `Approved`: an order `Paid`, a top-up credited;
/// - declined → payment `Declined`, the balance part given back, an order
///   `Pending`;
/// - unknown → payment `Unknown`, money held, an order still `Paying`.
pub(crate) fn record(
    tx: &UserTx<'_>,
    id: PaymentId,
    outcome: Outcome<Approval>,
    now: Timestamp,
) -> Result<Payment> {
    let payment = get(tx, id)?;
    tx.holds(payment.user)?;
    if !payment.status.is_unsettled() {
        return Ok(payment);
    }
    let outcome = outcome.unless_amount_differs(
        payment.pg_amount,
        |approval| approval.approved_amount,
        &format_args!("payment {id}"),
        "approved",
    );
    match outcome {
        Outcome::Done(approval) => {
            approve(tx, &payment, Approved::AtPg(&approval.transaction_id), now)
        }
        Outcome::Declined { code, message } => decline(tx, &payment, &code, &message, now),
        Outcome::AwaitingDeposit(deposit) => await_deposit(tx, payment, &deposit, now),
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
            record_history(
                tx,
                id,
                PaymentStatus::Unknown,
                &format!("no definite answer: {reason}"),
                now,
            )?;
            Ok(recorded)
        }
    }
}

/// Records the virtual account the PG issued for `payment` (once: a
/// repeated confirm's answer names the same account); the payment stays
/// unsettled, holding its money and its order's units, until the deposit
/// or the due date.
fn await_deposit(
    tx: &dyn Db,
    payment: Payment,
    deposit: &crate::gateway::Deposit,
    now: Timestamp,
) -> Result<Payment> {
    if payment.deposit.is_some() {
        return Ok(payment);
    }
    let fits = |text: &str| (1..=200).contains(&text.chars().count());
    if !(fits(&deposit.bank) && fits(&deposit.account_number) && fits(&deposit.secret)) {
        tracing::error!(payment = %payment.id, "the PG's virtual account does not fit its columns; left for reconciliation");
        return Ok(payment);
    }
    let recorded = payment_row(&tx.query_row(
        concat!(
            "UPDATE payments SET deposit_bank = ?2, deposit_account = ?3, deposit_due_at = ?4, ",
            "deposit_secret = ?5, updated_at = ?6 WHERE id = ?1 RETURNING ",
            payment_columns!()
        ),
        &[
            &payment.id,
            &deposit.bank,
            &deposit.account_number,
            &deposit.due_at,
            &deposit.secret,
            &now,
        ],
    )?)?;
    record_history(
        tx,
        payment.id,
        payment.status,
        &format!(
            "awaiting a deposit of {} into account {} at bank {}",
            payment.pg_amount, deposit.account_number, deposit.bank
        ),
        now,
    )?;
    Ok(recorded)
}

/// Stores where refunds of `payment` of `user`, a payment by bank
/// transfer, go. Checks, in order: the account is valid
/// ([`Error::InvalidRefundAccount`]) → the payment exists and is the
/// user's → it was made by bank transfer ([`Error::NotABankTransfer`]).
/// A later call replaces the account; a refund already in flight keeps the
/// one it was sent with.
pub(crate) fn set_refund_account(
    tx: &UserTx<'_>,
    id: PaymentId,
    account: &crate::gateway::RefundAccount,
    now: Timestamp,
) -> Result<()> {
    let user = tx.user();
    account
        .validate()
        .map_err(|field| Error::InvalidRefundAccount { field })?;
    let payment = get_for_user(tx, user, id)?;
    if payment.deposit.is_none() {
        return Err(Error::NotABankTransfer { payment: id });
    }
    tx.execute(
        "UPDATE payments SET refund_bank = ?2, refund_account_number = ?3, refund_holder = ?4,
                             updated_at = ?5
         WHERE id = ?1",
        &[
            &id,
            &account.bank,
            &account.account_number,
            &account.holder_name,
            &now,
        ],
    )?;
    Ok(())
}

/// The account refunds of `payment` go to, if it has one.
pub(crate) fn refund_account(
    conn: &dyn Db,
    payment: PaymentId,
) -> Result<Option<crate::gateway::RefundAccount>> {
    let row = conn.query_row(
        "SELECT refund_bank, refund_account_number, refund_holder FROM payments WHERE id = ?1",
        &[&payment],
    )?;
    Ok(match (row.get(0)?, row.get(1)?, row.get(2)?) {
        (Some(bank), Some(account_number), Some(holder_name)) => {
            Some(crate::gateway::RefundAccount {
                bank,
                account_number,
                holder_name,
            })
        }
        _ => None,
    })
}

/// Whether `secret` is the one the PG issued with `payment`'s virtual
/// account (compared in constant time); false for a payment without one.
pub(crate) fn deposit_secret_matches(
    conn: &dyn Db,
    payment: PaymentId,
    secret: &str,
) -> Result<bool> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT deposit_secret FROM payments WHERE id = ?1",
            &[&payment],
        )?
        .get(0)?;
    let Some(stored) = stored else {
        return Ok(false);
    };
    let (a, b) = (stored.as_bytes(), secret.as_bytes());
    Ok(a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0)
}

/// How a payment came to be approved.
enum Approved<'a> {
    /// The PG approved its part, as this transaction.
    AtPg(&'a str),
    /// Wholly from the balance, in the transaction that started it, which
    /// read `order` (its lines, subtotal, discount and coupon, which a
    /// payment does not change).
    ByBalance(order::Order),
}

/// Approves `payment`: an order is `Paid` (and its sale counted), a
/// top-up's PG part is credited to the balance — uncapped, since it
/// counted as in flight from its start.
fn approve(
    tx: &UserTx<'_>,
    payment: &Payment,
    how: Approved<'_>,
    now: Timestamp,
) -> Result<Payment> {
    let (transaction, read) = match how {
        Approved::AtPg(transaction) => (Some(transaction), None),
        Approved::ByBalance(order) => (None, Some(order)),
    };
    let id = payment.id;
    tx.holds(payment.user)?;
    let recorded = payment_row(&tx.query_row(
        concat!(
            "UPDATE payments SET status = 'approved', pg_transaction_id = ?2, ",
            "updated_at = ?3 WHERE id = ?1 RETURNING ",
            payment_columns!()
        ),
        &[&id, &transaction, &now],
    )?)?;
    let detail = match transaction {
        Some(transaction) => format!("approved as {transaction}"),
        None => "paid wholly from the balance".to_owned(),
    };
    record_history(tx, id, PaymentStatus::Approved, &detail, now)?;
    match payment.kind {
        PaymentKind::TopUp => {
            balance::post(
                tx,
                Entry::for_payment(LedgerKind::TopUp, payment.pg_amount, id),
                None,
                now,
            )?;
        }
        PaymentKind::Order => {
            let order_id = payment.order_id()?;
            order::mark_paid(tx, order_id, now)?;
            let paid = match read {
                Some(order) => order,
                None => order::get(tx, payment.user, order_id)?,
            };
            feed::append(
                tx,
                Subject::payment(payment.user, order_id, id),
                &EventPayload::PaymentApproved {
                    amount: payment.amount,
                    lines: paid.lines,
                    subtotal: paid.subtotal,
                    discount: paid.discount,
                    coupon: paid.coupon,
                },
                now,
            )?;
        }
    }
    Ok(recorded)
}

/// Declines `payment` (started or awaiting the gateway) with `code`: the
/// balance part comes back uncapped (it was the user's, and credits
/// counted it against the limit while it was held), and an order is
/// `Pending` again.
fn decline(
    tx: &UserTx<'_>,
    payment: &Payment,
    code: &str,
    message: &str,
    now: Timestamp,
) -> Result<Payment> {
    let id = payment.id;
    tx.holds(payment.user)?;
    let recorded = payment_row(&tx.query_row(
        concat!(
            "UPDATE payments SET status = 'declined', failure_code = ?2, ",
            "failure_message = ?3, updated_at = ?4 WHERE id = ?1 RETURNING ",
            payment_columns!()
        ),
        &[&id, &code, &message, &now],
    )?)?;
    if !payment.balance_amount.is_zero() {
        balance::post(
            tx,
            Entry::for_payment(LedgerKind::PaymentReversal, payment.balance_amount, id),
            None,
            now,
        )?;
    }
    record_history(
        tx,
        id,
        PaymentStatus::Declined,
        &format!(
            "declined: {code}: {message}; {} given back to the balance",
            payment.balance_amount
        ),
        now,
    )?;
    if let Some(order_id) = payment.order {
        order::transition(tx, order_id, OrderStatus::Paying, OrderStatus::Pending, now)?;
        feed::append(
            tx,
            Subject::payment(payment.user, order_id, id),
            &EventPayload::PaymentDeclined {
                amount: payment.amount,
                code: code.to_owned(),
                message: message.to_owned(),
            },
            now,
        )?;
    }
    Ok(recorded)
}

/// Adds `amount`, of which `pg_part` went back through the PG, to what
/// completed refunds gave back of payment `id`, guarded so neither part
/// ever passes what it paid (the schema's CHECKs are the second guard);
/// `fully` marks the payment `Refunded`.
pub(crate) fn add_refunded(
    tx: &dyn Db,
    id: PaymentId,
    amount: Money,
    pg_part: Money,
    fully: bool,
    now: Timestamp,
) -> Result<()> {
    let changed = tx.execute(
        "UPDATE payments
         SET refunded = refunded + ?2, pg_refunded = pg_refunded + ?5, updated_at = ?3,
             status = CASE WHEN ?4 = 1 THEN 'refunded' ELSE status END
         WHERE id = ?1 AND status = 'approved' AND refunded + ?2 <= amount
           AND pg_refunded + ?5 <= pg_amount",
        &[&id, &amount, &now, &i64::from(fully), &pg_part],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(corrupt(format!("{changed} rows changed, not 1")))
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
        .ok_or_else(|| corrupt(format!("paid order {order} has no approved payment")))
}

/// One page of the top-ups of `user`, newest first.
pub(crate) fn top_ups(
    conn: &dyn Db,
    user: UserId,
    page: crate::page::PageRequest,
) -> Result<crate::page::Page<Payment>> {
    let before = page.cursor().map_or(i64::MAX, |c| c.key());
    let limit = i64::from(page.limit()) + 1;
    let rows = conn
        .query(SELECT_TOP_UPS, &[&user, &before, &limit])?
        .iter()
        .map(payment_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(crate::page::Page::from_rows(rows, page.limit(), |p| {
        p.id.get()
    }))
}

/// The payments still `Requested`/`Unknown` that were created at or before
/// `cutoff`, oldest first.
pub(crate) fn unsettled(conn: &dyn Db, cutoff: Timestamp) -> Result<Vec<Payment>> {
    conn.query(SELECT_UNSETTLED, &[&cutoff])?
        .iter()
        .map(payment_row)
        .collect()
}

/// The PG ids of the payments with a PG part, approved (or refunded since)
/// and created at or after `since`, oldest first.
pub(crate) fn settled_with_pg_since(conn: &dyn Db, since: Timestamp) -> Result<Vec<String>> {
    conn.query(
        "SELECT pg_order_id FROM payments
         WHERE status IN ('approved', 'refunded') AND pg_amount > 0 AND created_at >= ?1
         ORDER BY created_at, id",
        &[&since],
    )?
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// The payment attempt whose id at the PG is `pg_order_id`, if any.
pub(crate) fn by_pg_order_id(conn: &dyn Db, pg_order_id: &str) -> Result<Option<Payment>> {
    conn.query_opt(SELECT_BY_PG_ORDER_ID, &[&pg_order_id])?
        .map(|row| payment_row(&row))
        .transpose()
}

/// When the confirm of `payment` was first asked for — when its key was
/// first used, and (within a redirect's time) when the customer
/// authenticated: its first `requested` history entry, or its creation if
/// it has none (a payment older than that entry).
pub(crate) fn requested_at(conn: &dyn Db, payment: &Payment) -> Result<Timestamp> {
    let first: Option<Timestamp> = conn
        .query_row(
            "SELECT min(created_at) FROM payment_events
             WHERE payment_id = ?1 AND status = 'requested'",
            &[&payment.id],
        )?
        .get(0)?;
    Ok(first.unwrap_or(payment.created_at))
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
pub(crate) fn record_history(
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
    let failure_code: Option<String> = row.get(at!(PAYMENT, "failure_code"))?;
    let failure_message: Option<String> = row.get(at!(PAYMENT, "failure_message"))?;
    Ok(Payment {
        id: row.get(at!(PAYMENT, "id"))?,
        order: row.get(at!(PAYMENT, "order_id"))?,
        user: row.get(at!(PAYMENT, "user_id"))?,
        amount: row.get(at!(PAYMENT, "amount"))?,
        status: row.get(at!(PAYMENT, "status"))?,
        payment_key: row.get(at!(PAYMENT, "payment_key"))?,
        pg_order_id: row.get(at!(PAYMENT, "pg_order_id"))?,
        idempotency_key: row.get(at!(PAYMENT, "idempotency_key"))?,
        pg_transaction_id: row.get(at!(PAYMENT, "pg_transaction_id"))?,
        failure: failure_code.map(|code| PaymentFailure {
            code,
            message: failure_message.unwrap_or_default(),
        }),
        created_at: row.get(at!(PAYMENT, "created_at"))?,
        updated_at: row.get(at!(PAYMENT, "updated_at"))?,
        refunded: row.get(at!(PAYMENT, "refunded"))?,
        kind: row.get(at!(PAYMENT, "kind"))?,
        balance_amount: row.get(at!(PAYMENT, "balance_amount"))?,
        pg_amount: row.get(at!(PAYMENT, "pg_amount"))?,
        pg_refunded: row.get(at!(PAYMENT, "pg_refunded"))?,
        order_name: row.get(at!(PAYMENT, "order_name"))?,
        customer_key: row.get(at!(PAYMENT, "customer_key"))?,
        expires_at: row.get(at!(PAYMENT, "expires_at"))?,
        deposit: match (
            row.get(at!(PAYMENT, "deposit_bank"))?,
            row.get(at!(PAYMENT, "deposit_account"))?,
            row.get(at!(PAYMENT, "deposit_due_at"))?,
        ) {
            (Some(bank), Some(account_number), Some(due_at)) => Some(DepositAccount {
                bank,
                account_number,
                due_at,
            }),
            _ => None,
        },
        pg_tax_free: row.get(at!(PAYMENT, "pg_tax_free"))?,
    })
}

/// The columns [`payment_row`] reads: `payment_columns!`, which every
/// `SELECT` and `RETURNING` of a payment selects.
pub(crate) const PAYMENT: Reads = &[
    "payments.id",
    "payments.order_id",
    "payments.user_id",
    "payments.amount",
    "payments.status",
    "payments.payment_key",
    "payments.pg_order_id",
    "payments.idempotency_key",
    "payments.pg_transaction_id",
    "payments.failure_code",
    "payments.failure_message",
    "payments.created_at",
    "payments.updated_at",
    "payments.refunded",
    "payments.kind",
    "payments.balance_amount",
    "payments.pg_amount",
    "payments.pg_refunded",
    "payments.order_name",
    "payments.customer_key",
    "payments.expires_at",
    "payments.deposit_bank",
    "payments.deposit_account",
    "payments.deposit_due_at",
    "payments.pg_tax_free",
];

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
