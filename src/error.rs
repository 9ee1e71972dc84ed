//! [`Error`], the one error type of the crate, and [`ErrorKind`], its
//! classification for hosts.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{CartItemId, CouponId, OrderId, PaymentId, ProductId, RefundId, UserId};
use crate::money::Money;
use crate::order::OrderStatus;
use crate::payment::{PaymentKind, PaymentStatus};
use crate::store::failure::{StorageClass, StorageError};

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a [`Shop`](crate::Shop) call.
///
/// Variants carry the ids and figures involved, so a host can explain a
/// refusal without a second lookup. [`Error::kind`] sorts them into the
/// handful of classes a host maps to status codes. A call that returns an
/// error has changed nothing in the database.
///
/// New variants may be added in minor releases; match on [`Error::kind`] for
/// exhaustive handling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- invalid input -----
    /// An id that cannot name any row (zero or negative).
    #[error("invalid {entity} id {id}: ids are positive")]
    InvalidId {
        /// What kind of record the id was meant to name.
        entity: Entity,
        /// The raw id given.
        id: i64,
    },
    /// A negative amount of money.
    #[error("invalid amount {won} won: amounts are never negative")]
    NegativeAmount {
        /// The amount given.
        won: i64,
    },
    /// An amount of zero where at least 1 won is needed (a charge).
    #[error("invalid amount: must be at least 1 won")]
    ZeroAmount,
    /// A charge above the per-charge limit.
    #[error("charge of {amount} is over the per-charge limit of {limit}")]
    ChargeLimitExceeded {
        /// The amount asked for.
        amount: Money,
        /// The configured per-charge limit.
        limit: Money,
    },
    /// A charge (or refund) that would take the balance above the balance
    /// limit. Money in flight counts: what payments in flight hold comes back
    /// if they are declined, and what refunds in flight owe is credited when
    /// they complete.
    #[error(
        "{amount} on a balance of {balance} with {held} held would exceed the balance limit of {limit}"
    )]
    BalanceLimitExceeded {
        /// The balance before the charge.
        balance: Money,
        /// Money held by payments, and owed by refunds, whose outcome is not
        /// settled yet.
        held: Money,
        /// The amount asked for.
        amount: Money,
        /// The configured balance limit.
        limit: Money,
    },
    /// A sum of money that does not fit in [`Money`]: an order total, a
    /// refund or a balance that the stored prices and amounts would take
    /// past the largest sum. It depends on the shop's state (prices), so
    /// its kind is [`ErrorKind::Conflict`].
    #[error("amount overflows the largest representable sum")]
    AmountOverflow,
    /// A name (or refund reason) that holds a control character, such as
    /// NUL or a line break: names are one line of printable text.
    #[error("invalid {entity} text: it holds the control character U+{:04X}", u32::from(*character))]
    InvalidCharacter {
        /// What the text was for.
        entity: Entity,
        /// The first control character found.
        character: char,
    },
    /// A name (or refund reason) that starts or ends with white space: the
    /// shop stores text exactly as sent, so it refuses what it would
    /// otherwise have to trim. White space is Unicode's `White_Space` and
    /// U+FEFF, the characters JSON Schema's (ECMAScript's) `\s` matches.
    #[error("invalid {entity} text: it starts or ends with the white space U+{:04X}", u32::from(*character))]
    EdgeWhitespace {
        /// What the text was for.
        entity: Entity,
        /// The white space found at an end.
        character: char,
    },
    /// A name that is empty or too long.
    #[error("invalid {entity} name: {length} characters, must be 1 to {max}")]
    InvalidName {
        /// What the name was for.
        entity: Entity,
        /// Its length in characters.
        length: usize,
        /// The longest name allowed.
        max: usize,
    },
    /// A quantity of zero or above the allowed maximum.
    #[error("invalid quantity {quantity}: must be 1 to {max}")]
    InvalidQuantity {
        /// The quantity given.
        quantity: u32,
        /// The largest quantity allowed.
        max: u32,
    },
    /// A restock that would take the stock, plus the units held by orders
    /// (which may all come back), past the largest count it can hold.
    #[error(
        "restocking product {product} by {quantity} would overflow its stock of {stock} with {held} held by orders"
    )]
    StockOverflow {
        /// The product.
        product: ProductId,
        /// Its current stock.
        stock: u32,
        /// The units held by orders, which may all come back.
        held: u32,
        /// The quantity asked to add.
        quantity: u32,
    },
    /// A page size of zero or above the maximum.
    #[error("invalid page size {requested}: must be 1 to {max}")]
    InvalidPageSize {
        /// The page size asked for.
        requested: u32,
        /// The largest page size allowed.
        max: u32,
    },
    /// An order with no lines.
    #[error("invalid order: it has no lines")]
    EmptyOrder,
    /// An order with more lines than allowed.
    #[error("invalid order: {lines} lines, at most {max} allowed")]
    TooManyOrderLines {
        /// The number of lines given.
        lines: usize,
        /// The most lines allowed.
        max: usize,
    },
    /// An order that names the same product on two lines. Lines are not
    /// merged: send one line per product.
    #[error("invalid order: product {product} appears on more than one line")]
    DuplicateOrderLine {
        /// The repeated product.
        product: ProductId,
    },
    /// A checkout of an empty cart.
    #[error("the cart of user {user} is empty")]
    EmptyCart {
        /// The user.
        user: UserId,
    },
    /// A payment of an order whose total is zero: there is nothing to pay.
    #[error("order {order} has a total of zero: there is nothing to pay")]
    NothingToPay {
        /// The order.
        order: OrderId,
    },
    /// A payment's balance part larger than the order's total.
    #[error("a balance part of {balance_part} is more than the total {total} of order {order}")]
    BalancePartTooLarge {
        /// The order.
        order: OrderId,
        /// Its total (after any coupon).
        total: Money,
        /// The balance part asked for.
        balance_part: Money,
    },
    /// A PG redirect whose `orderId` or `amount` differs from the payment
    /// attempt's: nothing was sent to the PG and nothing changed (a
    /// tampered redirect cannot underpay).
    #[error(
        "the redirect does not match payment {payment}: expected order id {expected_pg_order_id} and amount {expected_amount}"
    )]
    RedirectMismatch {
        /// The payment.
        payment: PaymentId,
        /// The attempt's `orderId` at the PG.
        expected_pg_order_id: String,
        /// The attempt's PG part.
        expected_amount: Money,
    },
    /// An operator's note (why balance was granted or taken back) that is
    /// empty or too long.
    #[error("invalid note: {length} characters, must be 1 to {max}")]
    InvalidNote {
        /// Its length in characters.
        length: usize,
        /// The longest note allowed.
        max: usize,
    },
    /// A PG failure redirect whose `code` is not 1 to 64 characters of
    /// `A-Z`, `a-z`, `0-9` and `_`, or whose `message` is over 500
    /// characters or has a control character: nothing was recorded.
    #[error(
        "invalid failure redirect: code is 1 to 64 characters of A-Z, a-z, 0-9 and '_', message at most 500 characters with no control character"
    )]
    InvalidFailRedirect,
    /// A refund account whose `field` (`bank`, `account_number` or
    /// `holder_name`) is not as [`RefundAccount::validate`](crate::RefundAccount::validate)
    /// says: nothing was stored.
    #[error(
        "invalid refund account: its {field} must be a bank of 1 to 20 of A-Z, a-z, 0-9 and '_', an account number of 1 to 20 digits, a holder's name of 1 to 60 characters"
    )]
    InvalidRefundAccount {
        /// The field at fault.
        field: &'static str,
    },
    /// A refund account given for a payment that was not made by bank
    /// transfer: its money goes back the way it came, to the card.
    #[error("payment {payment} was not made by bank transfer: its refunds go back to the card")]
    NotABankTransfer {
        /// The payment.
        payment: PaymentId,
    },
    /// A payment key that is empty, too long, or not `[A-Za-z0-9_-]`.
    #[error("invalid payment key: must be 1 to 200 characters of A-Z, a-z, 0-9, '-' and '_'")]
    InvalidPaymentKey,
    /// A refund reason that is empty or too long.
    #[error("invalid refund reason: {length} characters, must be 1 to {max}")]
    InvalidRefundReason {
        /// Its length in characters.
        length: usize,
        /// The longest reason allowed.
        max: usize,
    },
    /// A [`ShopBuilder`](crate::ShopBuilder) setting that cannot work.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A coupon definition that cannot work (a percentage outside 1–100, a
    /// cap on a fixed discount, an empty issue window, a zero validity or
    /// quantity).
    #[error("invalid coupon: {reason}")]
    InvalidCoupon {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An idempotency key (or its request's fingerprint) that is empty,
    /// longer than 255 characters, or holds anything but visible ASCII
    /// (`!` to `~`: a space or a control character is refused).
    #[error("invalid idempotency key: 1 to 255 visible ASCII characters, no space")]
    InvalidIdempotencyKey,
    /// The idempotency key was used before with a different request.
    #[error("idempotency key {key:?} was used for a different request")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// A numeric parameter outside its bounds.
    #[error("{what} is {value}: must be {min} to {max}")]
    OutOfRange {
        /// Which parameter.
        what: &'static str,
        /// The value given.
        value: u32,
        /// The smallest allowed.
        min: u32,
        /// The largest allowed.
        max: u32,
    },
    /// A backup's target file exists already: a backup never overwrites.
    #[error("backup target {} exists already", .0.display())]
    BackupTargetExists(PathBuf),
    /// Acknowledging events past the last one in the feed.
    #[error("cannot ack event {upto}: the feed ends at {last}")]
    AckBeyondFeed {
        /// The sequence number given.
        upto: u64,
        /// The last sequence number in the feed.
        last: u64,
    },

    // ----- not found -----
    /// No such user.
    #[error("user {0} not found")]
    UserNotFound(UserId),
    /// No such product.
    #[error("product {0} not found")]
    ProductNotFound(ProductId),
    /// No such cart line for this user (it may exist for another user).
    #[error("cart item {0} not found")]
    CartItemNotFound(CartItemId),
    /// No such order for this user (it may exist for another user).
    #[error("order {0} not found")]
    OrderNotFound(OrderId),
    /// No such payment for this user (it may exist for another user).
    #[error("payment {0} not found")]
    PaymentNotFound(PaymentId),
    /// No such coupon; or, when a user applies it, not one issued to them.
    #[error("coupon {0} not found")]
    CouponNotFound(CouponId),

    // ----- conflict -----
    /// The product is already in the user's cart: change the quantity of the
    /// existing line instead.
    #[error("product {product} is already in the cart of user {user} as item {item}")]
    AlreadyInCart {
        /// The user.
        user: UserId,
        /// The product.
        product: ProductId,
        /// The existing cart line.
        item: CartItemId,
    },
    /// Not enough units of a product to reserve, even after expiring overdue
    /// orders that held some.
    #[error(
        "insufficient stock of product {product}: {requested} requested, {available} available"
    )]
    InsufficientStock {
        /// The product.
        product: ProductId,
        /// The units asked for.
        requested: u32,
        /// The units on hand.
        available: u32,
    },
    /// The balance does not cover the amount.
    #[error("insufficient balance of user {user}: {needed} needed, {available} available")]
    InsufficientBalance {
        /// The user.
        user: UserId,
        /// The amount needed.
        needed: Money,
        /// The current balance.
        available: Money,
    },
    /// The order is `Pending` but past its reservation time: it is as good
    /// as expired (the next sweep cancels it) and cannot be paid.
    #[error("order {order} expired at {expired_at}: it can no longer be paid")]
    OrderExpired {
        /// The order.
        order: OrderId,
        /// When its reservation ran out.
        expired_at: Timestamp,
    },
    /// A refund asks for more units of a product than the order has left to
    /// refund (none, for a product not on the order).
    #[error(
        "order {order} has {refundable} units of product {product} left to refund, {requested} requested"
    )]
    RefundExceedsOrder {
        /// The order.
        order: OrderId,
        /// The product.
        product: ProductId,
        /// The units asked for.
        requested: u32,
        /// The units paid for and not refunded yet.
        refundable: u32,
    },
    /// Another refund of the order is in flight (its outcome is not settled
    /// yet); one refund attempt at a time per payment.
    #[error("refund {refund} of order {order} is still in flight")]
    RefundInProgress {
        /// The order.
        order: OrderId,
        /// The refund in flight.
        refund: RefundId,
    },
    /// A top-up refund of a payment that is not an approved top-up (a
    /// payment of an order is refunded by its order's units; a top-up not
    /// approved, or wholly refunded, has nothing to give back).
    #[error(
        "payment {payment} is a {kind} payment, {status}: it is not a top-up that can be refunded"
    )]
    TopUpNotRefundable {
        /// The payment.
        payment: PaymentId,
        /// What it pays for.
        kind: PaymentKind,
        /// Where it is.
        status: PaymentStatus,
    },
    /// A top-up refund larger than what the PG still holds of the top-up.
    #[error("top-up {payment} has {refundable} left to refund, {amount} asked")]
    RefundExceedsTopUp {
        /// The top-up.
        payment: PaymentId,
        /// The amount asked for.
        amount: Money,
        /// Its PG amount not yet refunded.
        refundable: Money,
    },
    /// Another refund of the top-up is in flight; one at a time.
    #[error("refund {refund} of top-up {payment} is still in flight")]
    TopUpRefundInProgress {
        /// The top-up.
        payment: PaymentId,
        /// The refund in flight.
        refund: RefundId,
    },
    /// The order is not in a state that allows the move; `from` is its
    /// current state.
    #[error("order {order} is {from}: it cannot become {to}")]
    InvalidTransition {
        /// The order.
        order: OrderId,
        /// Its current state.
        from: OrderStatus,
        /// The state asked for.
        to: OrderStatus,
    },

    /// Every coupon of the offer was issued already.
    #[error("coupon {coupon} is sold out: all {quantity} were issued")]
    CouponSoldOut {
        /// The coupon.
        coupon: CouponId,
        /// How many it offered.
        quantity: u32,
    },
    /// The user already holds this coupon (one per user, used or not).
    #[error("user {user} already holds coupon {coupon}")]
    CouponAlreadyIssued {
        /// The user.
        user: UserId,
        /// The coupon.
        coupon: CouponId,
    },
    /// The coupon is issued only from `from` until before `until`.
    #[error("coupon {coupon} is issued only from {from} until {until}")]
    CouponNotIssuable {
        /// The coupon.
        coupon: CouponId,
        /// When issuing starts.
        from: Timestamp,
        /// When issuing ends (exclusive).
        until: Timestamp,
    },
    /// The user's coupon is used by an order (not cancelled, expired or
    /// fully refunded).
    #[error("coupon {coupon} is used by order {order}")]
    CouponUsed {
        /// The coupon.
        coupon: CouponId,
        /// The order using it.
        order: OrderId,
    },
    /// The user's coupon passed its validity.
    #[error("coupon {coupon} expired at {expired_at}")]
    CouponExpired {
        /// The coupon.
        coupon: CouponId,
        /// When it expired.
        expired_at: Timestamp,
    },
    /// The order's subtotal is below the coupon's minimum.
    #[error("coupon {coupon} needs an order of at least {minimum}; this one is {subtotal}")]
    CouponMinimumNotMet {
        /// The coupon.
        coupon: CouponId,
        /// The order's subtotal (before the discount).
        subtotal: Money,
        /// The coupon's minimum order total.
        minimum: Money,
    },

    // ----- payment outcomes -----
    /// The payment gateway declined the payment. The money was given back
    /// and the order is `Pending` again: it can be paid once more.
    #[error("payment {payment} of order {order} was declined: {code}: {message}")]
    PaymentDeclined {
        /// The declined payment.
        payment: PaymentId,
        /// Its order.
        order: OrderId,
        /// The gateway's code.
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// The PG declined a top-up: nothing was credited.
    #[error("top-up {payment} was declined: {code}: {message}")]
    TopUpDeclined {
        /// The declined top-up.
        payment: PaymentId,
        /// The gateway's code.
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// The PG gave no definite answer to a top-up: nothing is credited
    /// until [`Shop::reconcile_payments`](crate::Shop::reconcile_payments)
    /// learns the outcome.
    #[error("the outcome of top-up {payment} is not known yet")]
    TopUpOutcomeUnknown {
        /// The top-up.
        payment: PaymentId,
    },
    /// The payment gateway gave no definite answer. The money stays held and
    /// the order `Paying` until [`Shop::reconcile_payments`](crate::Shop::reconcile_payments)
    /// learns the outcome.
    #[error("the outcome of payment {payment} of order {order} is not known yet")]
    PaymentOutcomeUnknown {
        /// The payment.
        payment: PaymentId,
        /// Its order.
        order: OrderId,
    },
    /// A started payment whose confirm window ended: it is never sent to
    /// the PG; its balance part comes back when expiry ends it.
    #[error("payment {payment} expired at {expired_at}: start a new one")]
    PaymentExpired {
        /// The payment.
        payment: PaymentId,
        /// When its window ended.
        expired_at: Timestamp,
    },
    /// The gateway declined the refund: nothing moved (the attempt is
    /// recorded `Declined`); a later refund is a new attempt with a new key.
    #[error("refund {refund} of order {order} was declined: {code}: {message}")]
    RefundDeclined {
        /// The order.
        order: OrderId,
        /// The declined attempt.
        refund: RefundId,
        /// The gateway's code.
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// The gateway declined the refund of a top-up: the amount taken from
    /// the balance for it was given back (a
    /// [`TopUpRefundReversal`](crate::LedgerKind::TopUpRefundReversal)).
    #[error("refund {refund} of top-up {payment} was declined: {code}: {message}")]
    TopUpRefundDeclined {
        /// The top-up.
        payment: PaymentId,
        /// The declined attempt.
        refund: RefundId,
        /// The gateway's code.
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// The gateway gave no definite answer to the refund of a top-up: the
    /// amount stays taken from the balance until
    /// [`Shop::reconcile_payments`](crate::Shop::reconcile_payments)
    /// settles it.
    #[error("the outcome of refund {refund} of top-up {payment} is not known yet")]
    TopUpRefundOutcomeUnknown {
        /// The top-up.
        payment: PaymentId,
        /// The attempt.
        refund: RefundId,
    },
    /// The gateway gave no definite answer to the refund. The attempt is
    /// held (`Unknown`) until [`Shop::reconcile_payments`](crate::Shop::reconcile_payments)
    /// settles it with the same key; until then no other refund of the order
    /// can start.
    #[error("the outcome of refund {refund} of order {order} is not known yet")]
    RefundOutcomeUnknown {
        /// The order.
        order: OrderId,
        /// The attempt held for reconciliation.
        refund: RefundId,
    },

    // ----- busy -----
    /// The payment gateway could not be reached, even after retries, so it
    /// never saw the request. For a payment, the money was given back and the
    /// order is `Pending` again; for a refund, nothing moved. Trying again
    /// later may succeed.
    #[error("payment {payment} failed: the payment gateway is unreachable")]
    GatewayUnavailable {
        /// The payment (or the payment a refund returns).
        payment: PaymentId,
    },
    /// The database stayed locked, or no pooled connection came free, past
    /// the busy timeout. Nothing was changed; the call may be retried.
    /// Its cause says what was waited for ([`StorageClass::Busy`]), or that
    /// PostgreSQL still ended the write after the store's retries
    /// ([`StorageClass::Retryable`]).
    ///
    /// [`StorageClass::Busy`]: crate::StorageClass::Busy
    /// [`StorageClass::Retryable`]: crate::StorageClass::Retryable
    #[error("database busy: gave up waiting past the timeout: {0}")]
    Busy(#[source] StorageError),

    // ----- internal -----
    /// The shop was built without a payment gateway, so it cannot pay,
    /// reconcile or refund.
    #[error("no payment gateway is configured")]
    NoGateway,
    /// The payment gateway refused our request as invalid: a bug or a
    /// configuration error at our end (logged at error level). Nothing was
    /// charged; for a payment, the money was given back.
    #[error("the payment gateway refused the request as invalid: {code}: {message}")]
    GatewayRejected {
        /// The payment.
        payment: PaymentId,
        /// The gateway's code.
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// The database file was written by a newer version of liteshop. It was
    /// not modified.
    #[error(
        "database schema version {found} is newer than the version {supported} this library supports"
    )]
    SchemaTooNew {
        /// The schema version in the file.
        found: i64,
        /// The newest schema version this library knows.
        supported: i64,
    },
    /// The file exists but is not an SQLite database. It was not modified.
    #[error("{} is not a liteshop database", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// A user exists without its balance row: the database was altered
    /// outside liteshop.
    #[error("user {0} has no balance row")]
    BalanceMissing(UserId),
    /// The batched writer ([`WriteMode::Batched`](crate::WriteMode::Batched))
    /// dropped a write without running it: a bug in liteshop. Nothing was
    /// changed.
    #[error("the write was dropped before it ran")]
    WriteNotRun,
    /// A schema migration failed.
    #[error("schema migration failed: {0}")]
    Migration(#[source] StorageError),
    /// [`ShopBuilder::existing_only`](crate::ShopBuilder::existing_only)
    /// found no shop there (no file, or a PostgreSQL schema without
    /// liteshop's tables). Nothing was created.
    #[error("no liteshop shop at {target}")]
    ShopMissing {
        /// The file, or `PostgreSQL schema <name>` (never a connection
        /// string, which may carry a password).
        target: String,
    },
    /// The PostgreSQL schema holds tables that are not liteshop's (no
    /// version row of ours). Nothing was changed.
    #[error("PostgreSQL schema {schema:?} holds tables that are not liteshop's")]
    ForeignSchema {
        /// The schema.
        schema: String,
    },
    /// A write's `COMMIT` was sent, but the connection was lost before the
    /// database answered: the write may or may not have taken effect. It
    /// is never retried blindly. A keyed write
    /// ([`Shop::idempotent`](crate::Shop::idempotent)) resolves this
    /// itself through its key; a host that gets it for a plain write reads
    /// what it meant to change before trying again.
    #[error("the commit was sent but its outcome is unknown: the connection was lost")]
    CommitOutcomeUnknown,
    /// [`copy`](crate::copy) found rows in its target: it copies only into
    /// an empty shop. Nothing was written.
    #[error("the copy's target is not empty: table {table} holds rows")]
    CopyTargetNotEmpty {
        /// The first table found holding rows.
        table: String,
    },
    /// After a [`copy`](crate::copy), an audit was not clean or the two
    /// shops' figures differ.
    #[error("the copy does not match its source: see both audits")]
    CopyMismatch {
        /// The source's audit.
        from: Box<crate::AuditReport>,
        /// The target's audit.
        to: Box<crate::AuditReport>,
    },
    /// The operation exists on SQLite only (an online backup: on
    /// PostgreSQL use `pg_dump` and the platform's tools).
    #[error("{what} is SQLite only")]
    SqliteOnly {
        /// What was asked.
        what: &'static str,
    },
    /// The database (SQLite or PostgreSQL) reported an error that is not
    /// busy, retryable or the disk full ([`StorageClass::Other`]), or the
    /// rows it holds break one of liteshop's invariants: the database was
    /// altered outside liteshop, or a bug.
    ///
    /// [`StorageClass::Other`]: crate::StorageClass::Other
    #[error("storage error: {0}")]
    Storage(#[source] StorageError),
    /// A file operation outside SQLite failed (flushing a backup's copy).
    #[error("i/o error: {0}")]
    Io(#[source] std::io::Error),
    /// The disk (or a file-size limit) refused to take a write: SQLite's
    /// `SQLITE_FULL`, or a failed write (`SQLITE_IOERR_WRITE`), which is how
    /// a file-size limit shows. The write was rolled back: nothing of it is
    /// in the file. Its kind is [`ErrorKind::Busy`] (503), not `Internal`:
    /// nothing is wrong with the request or the data, and the same call
    /// succeeds once space is freed — a host should retry later and alert
    /// an operator, not report a bug.
    #[error("the disk is full or refused a write: {0}")]
    DiskFull(#[source] StorageError),
    /// The connection pool could not be set up.
    #[error("connection pool error: {0}")]
    Pool(#[source] StorageError),
}

impl Error {
    /// The stable code of the error: its variant's name in snake case
    /// (`InsufficientBalance { .. }` → `"insufficient_balance"`), the
    /// `code` of the HTTP server's problem bodies. A code never changes
    /// while its variant exists.
    ///
    /// # Example
    ///
    /// ```
    /// use liteshop::{Error, UserId};
    ///
    /// assert_eq!(Error::UserNotFound(UserId::new(7)).code(), "user_not_found");
    /// assert_eq!(Error::ZeroAmount.code(), "zero_amount");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidId { .. } => "invalid_id",
            Error::NegativeAmount { .. } => "negative_amount",
            Error::ZeroAmount => "zero_amount",
            Error::ChargeLimitExceeded { .. } => "charge_limit_exceeded",
            Error::BalanceLimitExceeded { .. } => "balance_limit_exceeded",
            Error::AmountOverflow => "amount_overflow",
            Error::InvalidCharacter { .. } => "invalid_character",
            Error::EdgeWhitespace { .. } => "edge_whitespace",
            Error::InvalidName { .. } => "invalid_name",
            Error::InvalidQuantity { .. } => "invalid_quantity",
            Error::StockOverflow { .. } => "stock_overflow",
            Error::InvalidPageSize { .. } => "invalid_page_size",
            Error::EmptyOrder => "empty_order",
            Error::TooManyOrderLines { .. } => "too_many_order_lines",
            Error::DuplicateOrderLine { .. } => "duplicate_order_line",
            Error::EmptyCart { .. } => "empty_cart",
            Error::NothingToPay { .. } => "nothing_to_pay",
            Error::BalancePartTooLarge { .. } => "balance_part_too_large",
            Error::RedirectMismatch { .. } => "redirect_mismatch",
            Error::InvalidNote { .. } => "invalid_note",
            Error::InvalidFailRedirect => "invalid_fail_redirect",
            Error::InvalidRefundAccount { .. } => "invalid_refund_account",
            Error::NotABankTransfer { .. } => "not_a_bank_transfer",
            Error::InvalidPaymentKey => "invalid_payment_key",
            Error::InvalidRefundReason { .. } => "invalid_refund_reason",
            Error::InvalidConfig { .. } => "invalid_config",
            Error::InvalidCoupon { .. } => "invalid_coupon",
            Error::InvalidIdempotencyKey => "invalid_idempotency_key",
            Error::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            Error::OutOfRange { .. } => "out_of_range",
            Error::BackupTargetExists(..) => "backup_target_exists",
            Error::AckBeyondFeed { .. } => "ack_beyond_feed",
            Error::UserNotFound(..) => "user_not_found",
            Error::ProductNotFound(..) => "product_not_found",
            Error::CartItemNotFound(..) => "cart_item_not_found",
            Error::OrderNotFound(..) => "order_not_found",
            Error::PaymentNotFound(..) => "payment_not_found",
            Error::CouponNotFound(..) => "coupon_not_found",
            Error::AlreadyInCart { .. } => "already_in_cart",
            Error::InsufficientStock { .. } => "insufficient_stock",
            Error::InsufficientBalance { .. } => "insufficient_balance",
            Error::OrderExpired { .. } => "order_expired",
            Error::RefundExceedsOrder { .. } => "refund_exceeds_order",
            Error::RefundInProgress { .. } => "refund_in_progress",
            Error::TopUpNotRefundable { .. } => "top_up_not_refundable",
            Error::RefundExceedsTopUp { .. } => "refund_exceeds_top_up",
            Error::TopUpRefundInProgress { .. } => "top_up_refund_in_progress",
            Error::InvalidTransition { .. } => "invalid_transition",
            Error::CouponSoldOut { .. } => "coupon_sold_out",
            Error::CouponAlreadyIssued { .. } => "coupon_already_issued",
            Error::CouponNotIssuable { .. } => "coupon_not_issuable",
            Error::CouponUsed { .. } => "coupon_used",
            Error::CouponExpired { .. } => "coupon_expired",
            Error::CouponMinimumNotMet { .. } => "coupon_minimum_not_met",
            Error::PaymentDeclined { .. } => "payment_declined",
            Error::TopUpDeclined { .. } => "top_up_declined",
            Error::TopUpOutcomeUnknown { .. } => "top_up_outcome_unknown",
            Error::PaymentOutcomeUnknown { .. } => "payment_outcome_unknown",
            Error::PaymentExpired { .. } => "payment_expired",
            Error::RefundDeclined { .. } => "refund_declined",
            Error::TopUpRefundDeclined { .. } => "top_up_refund_declined",
            Error::TopUpRefundOutcomeUnknown { .. } => "top_up_refund_outcome_unknown",
            Error::RefundOutcomeUnknown { .. } => "refund_outcome_unknown",
            Error::GatewayUnavailable { .. } => "gateway_unavailable",
            Error::Busy(..) => "busy",
            Error::NoGateway => "no_gateway",
            Error::GatewayRejected { .. } => "gateway_rejected",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::NotADatabase { .. } => "not_a_database",
            Error::BalanceMissing(..) => "balance_missing",
            Error::WriteNotRun => "write_not_run",
            Error::Migration(..) => "migration",
            Error::ShopMissing { .. } => "shop_missing",
            Error::ForeignSchema { .. } => "foreign_schema",
            Error::CommitOutcomeUnknown => "commit_outcome_unknown",
            Error::CopyTargetNotEmpty { .. } => "copy_target_not_empty",
            Error::CopyMismatch { .. } => "copy_mismatch",
            Error::SqliteOnly { .. } => "sqlite_only",
            Error::Storage(..) => "storage",
            Error::Io(..) => "io",
            Error::DiskFull(..) => "disk_full",
            Error::Pool(..) => "pool",
        }
    }

    /// The ids and figures the error carries, by name: what a client can
    /// act on (the HTTP server sends them as a problem body's `fields`).
    /// Names are the variant's own, but a PG's `code` and `message` are
    /// `pg_code` and `pg_message`, and a not-found id is named for what
    /// was not found. An error with nothing for a client — none, or only
    /// an internal cause, a path or a connection target — has no fields.
    ///
    /// # Example
    ///
    /// ```
    /// use liteshop::{Error, Money, UserId};
    ///
    /// let err = Error::InsufficientBalance {
    ///     user: UserId::new(7),
    ///     needed: Money::new(500)?,
    ///     available: Money::new(200)?,
    /// };
    /// assert_eq!(
    ///     serde_json::to_string(&err.fields())?,
    ///     r#"{"available":200,"needed":500,"user":7}"#
    /// );
    /// assert!(Error::ZeroAmount.fields().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fields(&self) -> ErrorFields {
        let mut fields = ErrorFields::default();
        // Each named field under its own name; after `;`, `key = binding`
        // for a field named otherwise.
        macro_rules! put {
            ($($name:ident),* $(; $($key:ident = $value:ident),*)?) => {{
                $(fields.put(stringify!($name), $name);)*
                $($(fields.put(stringify!($key), $value);)*)?
            }};
        }
        match self {
            Error::InvalidId { entity, id } => put!(entity, id),
            Error::NegativeAmount { won } => put!(won),
            Error::ChargeLimitExceeded { amount, limit } => put!(amount, limit),
            Error::BalanceLimitExceeded {
                balance,
                held,
                amount,
                limit,
            } => put!(balance, held, amount, limit),
            Error::InvalidCharacter { entity, character } => put!(entity, character),
            Error::EdgeWhitespace { entity, character } => put!(entity, character),
            Error::InvalidName {
                entity,
                length,
                max,
            } => put!(entity, length, max),
            Error::InvalidQuantity { quantity, max } => put!(quantity, max),
            Error::StockOverflow {
                product,
                stock,
                held,
                quantity,
            } => put!(product, stock, held, quantity),
            Error::InvalidPageSize { requested, max } => put!(requested, max),
            Error::TooManyOrderLines { lines, max } => put!(lines, max),
            Error::DuplicateOrderLine { product } => put!(product),
            Error::EmptyCart { user } => put!(user),
            Error::NothingToPay { order } => put!(order),
            Error::BalancePartTooLarge {
                order,
                total,
                balance_part,
            } => put!(order, total, balance_part),
            Error::RedirectMismatch {
                payment,
                expected_pg_order_id,
                expected_amount,
            } => put!(payment, expected_pg_order_id, expected_amount),
            Error::InvalidNote { length, max } => put!(length, max),
            Error::InvalidRefundAccount { field } => put!(field),
            Error::NotABankTransfer { payment } => put!(payment),
            Error::InvalidRefundReason { length, max } => put!(length, max),
            Error::InvalidConfig { reason } => put!(reason),
            Error::InvalidCoupon { reason } => put!(reason),
            Error::IdempotencyKeyReused { key } => put!(key),
            Error::OutOfRange {
                what,
                value,
                min,
                max,
            } => put!(what, value, min, max),
            Error::AckBeyondFeed { upto, last } => put!(upto, last),
            Error::UserNotFound(id) => fields.put("user", id),
            Error::ProductNotFound(id) => fields.put("product", id),
            Error::CartItemNotFound(id) => fields.put("item", id),
            Error::OrderNotFound(id) => fields.put("order", id),
            Error::PaymentNotFound(id) => fields.put("payment", id),
            Error::CouponNotFound(id) => fields.put("coupon", id),
            Error::AlreadyInCart {
                user,
                product,
                item,
            } => put!(user, product, item),
            Error::InsufficientStock {
                product,
                requested,
                available,
            } => put!(product, requested, available),
            Error::InsufficientBalance {
                user,
                needed,
                available,
            } => put!(user, needed, available),
            Error::OrderExpired { order, expired_at } => put!(order, expired_at),
            Error::RefundExceedsOrder {
                order,
                product,
                requested,
                refundable,
            } => put!(order, product, requested, refundable),
            Error::RefundInProgress { order, refund } => put!(order, refund),
            Error::TopUpNotRefundable {
                payment,
                kind,
                status,
            } => put!(payment, kind, status),
            Error::RefundExceedsTopUp {
                payment,
                amount,
                refundable,
            } => put!(payment, amount, refundable),
            Error::TopUpRefundInProgress { payment, refund } => put!(payment, refund),
            Error::InvalidTransition { order, from, to } => put!(order, from, to),
            Error::CouponSoldOut { coupon, quantity } => put!(coupon, quantity),
            Error::CouponAlreadyIssued { user, coupon } => put!(user, coupon),
            Error::CouponNotIssuable {
                coupon,
                from,
                until,
            } => put!(coupon, from, until),
            Error::CouponUsed { coupon, order } => put!(coupon, order),
            Error::CouponExpired { coupon, expired_at } => put!(coupon, expired_at),
            Error::CouponMinimumNotMet {
                coupon,
                subtotal,
                minimum,
            } => put!(coupon, subtotal, minimum),
            Error::PaymentDeclined {
                payment,
                order,
                code,
                message,
            } => put!(payment, order; pg_code = code, pg_message = message),
            Error::TopUpDeclined {
                payment,
                code,
                message,
            } => put!(payment; pg_code = code, pg_message = message),
            Error::TopUpOutcomeUnknown { payment } => put!(payment),
            Error::PaymentOutcomeUnknown { payment, order } => put!(payment, order),
            Error::PaymentExpired {
                payment,
                expired_at,
            } => put!(payment, expired_at),
            Error::RefundDeclined {
                order,
                refund,
                code,
                message,
            } => put!(order, refund; pg_code = code, pg_message = message),
            Error::TopUpRefundDeclined {
                payment,
                refund,
                code,
                message,
            } => put!(payment, refund; pg_code = code, pg_message = message),
            Error::TopUpRefundOutcomeUnknown { payment, refund } => put!(payment, refund),
            Error::RefundOutcomeUnknown { order, refund } => put!(order, refund),
            Error::GatewayUnavailable { payment } => put!(payment),
            Error::GatewayRejected {
                payment,
                code,
                message,
            } => put!(payment; pg_code = code, pg_message = message),
            Error::SchemaTooNew { found, supported } => put!(found, supported),
            Error::BalanceMissing(id) => fields.put("user", id),
            Error::ForeignSchema { schema } => put!(schema),
            Error::CopyTargetNotEmpty { table } => put!(table),
            Error::SqliteOnly { what } => put!(what),
            Error::ZeroAmount
            | Error::AmountOverflow
            | Error::EmptyOrder
            | Error::InvalidFailRedirect
            | Error::InvalidPaymentKey
            | Error::InvalidIdempotencyKey
            | Error::BackupTargetExists(_)
            | Error::Busy(_)
            | Error::NoGateway
            | Error::NotADatabase { .. }
            | Error::WriteNotRun
            | Error::Migration(_)
            | Error::ShopMissing { .. }
            | Error::CommitOutcomeUnknown
            | Error::CopyMismatch { .. }
            | Error::Storage(_)
            | Error::Io(_)
            | Error::DiskFull(_)
            | Error::Pool(_) => {}
        }
        fields
    }

    /// The class of the error, for mapping to a status code.
    ///
    /// # Example
    ///
    /// ```
    /// use liteshop::{Error, ErrorKind, UserId};
    ///
    /// let err = Error::UserNotFound(UserId::new(7));
    /// assert_eq!(err.kind(), ErrorKind::NotFound);
    /// assert_eq!(err.kind().http_status(), 404);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            InvalidId { .. }
            | NegativeAmount { .. }
            | ZeroAmount
            | ChargeLimitExceeded { .. }
            | InvalidName { .. }
            | EdgeWhitespace { .. }
            | InvalidCharacter { .. }
            | InvalidQuantity { .. }
            | InvalidPageSize { .. }
            | EmptyOrder
            | TooManyOrderLines { .. }
            | DuplicateOrderLine { .. }
            | NothingToPay { .. }
            | InvalidPaymentKey
            | InvalidRefundAccount { .. }
            | InvalidFailRedirect
            | InvalidNote { .. }
            | InvalidRefundReason { .. }
            | InvalidConfig { .. }
            | InvalidCoupon { .. }
            | OutOfRange { .. }
            | InvalidIdempotencyKey
            | BackupTargetExists(_)
            | AckBeyondFeed { .. } => ErrorKind::InvalidInput,
            UserNotFound(_) | ProductNotFound(_) | CartItemNotFound(_) | OrderNotFound(_)
            | PaymentNotFound(_) | CouponNotFound(_) => ErrorKind::NotFound,
            PaymentDeclined { .. }
            | RefundDeclined { .. }
            | TopUpDeclined { .. }
            | TopUpRefundDeclined { .. } => ErrorKind::PaymentDeclined,
            PaymentOutcomeUnknown { .. }
            | RefundOutcomeUnknown { .. }
            | TopUpOutcomeUnknown { .. }
            | TopUpRefundOutcomeUnknown { .. } => ErrorKind::PaymentOutcomeUnknown,
            AlreadyInCart { .. }
            | InsufficientStock { .. }
            | InsufficientBalance { .. }
            | InvalidTransition { .. }
            | OrderExpired { .. }
            | PaymentExpired { .. }
            | RefundExceedsOrder { .. }
            | RefundInProgress { .. }
            // These compare the request with what the shop holds (the
            // order's total, the attempt's orderId and amount).
            | BalancePartTooLarge { .. }
            | RedirectMismatch { .. }
            | TopUpNotRefundable { .. }
            | NotABankTransfer { .. }
            | RefundExceedsTopUp { .. }
            | TopUpRefundInProgress { .. }
            | CouponSoldOut { .. }
            | CouponAlreadyIssued { .. }
            | CouponNotIssuable { .. }
            | CouponUsed { .. }
            | CouponExpired { .. }
            | CouponMinimumNotMet { .. }
            | IdempotencyKeyReused { .. }
            // These depend on the state (the balance, the stock, the cart),
            // not on the request alone: the same call can succeed later.
            | BalanceLimitExceeded { .. }
            | StockOverflow { .. }
            | AmountOverflow
            | EmptyCart { .. }
            | CopyTargetNotEmpty { .. } => ErrorKind::Conflict,
            Busy(_) | GatewayUnavailable { .. } | DiskFull(_) => ErrorKind::Busy,
            NoGateway
            | GatewayRejected { .. }
            | SchemaTooNew { .. }
            | NotADatabase { .. }
            | BalanceMissing(_)
            | Migration(_)
            | ForeignSchema { .. }
            | ShopMissing { .. }
            | CopyMismatch { .. }
            | CommitOutcomeUnknown
            | SqliteOnly { .. }
            | WriteNotRun
            | Storage(_)
            | Io(_)
            | Pool(_) => ErrorKind::Internal,
        }
    }
}

/// A value the shop stores as JSON (an event's payload, a stored
/// idempotent response) that failed to convert: a storage error.
pub(crate) fn json_failure(err: serde_json::Error) -> Error {
    Error::Storage(StorageError::caused_by(StorageClass::Other, None, err))
}

/// The class of an [`Error`], one per row of the specification's error table.
///
/// A host maps these to its own status codes in one `match`;
/// [`ErrorKind::http_status`] gives the HTTP code the specification suggests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input was refused before anything was looked up: a bad id, amount,
    /// quantity or name, or a figure over a limit.
    InvalidInput,
    /// A user, product, cart line, order or payment does not exist, or belongs
    /// to another user.
    NotFound,
    /// The request contradicts the current state: already in the cart, not
    /// enough stock or balance, an order in the wrong state.
    Conflict,
    /// The payment gateway declined the payment.
    PaymentDeclined,
    /// The payment gateway gave no definite answer; reconciliation settles it.
    PaymentOutcomeUnknown,
    /// The database stayed locked past the timeout, or the disk is full;
    /// retrying later may succeed.
    Busy,
    /// Storage failure, pool failure, or a database this version cannot use.
    Internal,
}

/// The ids and figures an [`Error`] carries, by name
/// ([`Error::fields`]): serialises as one JSON object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ErrorFields(serde_json::Map<String, serde_json::Value>);

impl ErrorFields {
    /// Whether the error carries nothing by name.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    fn put(&mut self, name: &str, value: &impl Serialize) {
        // Every field's type serialises to JSON without failing (ids,
        // money, counts, names, states, instants).
        if let Ok(value) = serde_json::to_value(value) {
            self.0.insert(name.to_owned(), value);
        }
    }
}

impl ErrorKind {
    /// The HTTP status code the specification suggests for this kind.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::PaymentDeclined => 402,
            ErrorKind::PaymentOutcomeUnknown => 202,
            ErrorKind::Busy => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// The kinds of record an id or a name can belong to, as named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entity {
    /// A user.
    User,
    /// A product.
    Product,
    /// A cart line.
    CartItem,
    /// A ledger entry.
    LedgerEntry,
    /// An order.
    Order,
    /// A payment.
    Payment,
    /// An entry of a payment's history.
    PaymentEvent,
    /// A refund attempt.
    Refund,
    /// A coupon.
    Coupon,
    /// A consumer of the event feed.
    EventConsumer,
    /// A lease on a piece of background work, or its holder.
    Lease,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::User => "user",
            Entity::Product => "product",
            Entity::CartItem => "cart item",
            Entity::LedgerEntry => "ledger entry",
            Entity::Order => "order",
            Entity::Payment => "payment",
            Entity::PaymentEvent => "payment event",
            Entity::Refund => "refund",
            Entity::Coupon => "coupon",
            Entity::EventConsumer => "event consumer",
            Entity::Lease => "lease",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn fields_name_what_a_client_can_act_on_and_nothing_internal() {
        let json = |err: Error| serde_json::to_value(err.fields()).unwrap();
        assert_eq!(
            json(Error::CouponSoldOut {
                coupon: CouponId::new(3),
                quantity: 10,
            }),
            serde_json::json!({ "coupon": 3, "quantity": 10 })
        );
        // A PG's code and message are named as the PG's.
        assert_eq!(
            json(Error::RefundDeclined {
                order: OrderId::new(1),
                refund: RefundId::new(2),
                code: "REFUND_REJECTED".into(),
                message: "no".into(),
            }),
            serde_json::json!({ "order": 1, "refund": 2, "pg_code": "REFUND_REJECTED", "pg_message": "no" })
        );
        // A not-found id is named for what was not found.
        assert_eq!(
            json(Error::CartItemNotFound(CartItemId::new(9))),
            serde_json::json!({ "item": 9 })
        );
        // An internal cause or a local path is not a client's business.
        assert!(
            Error::Busy(StorageError::new(StorageClass::Busy, "pool"))
                .fields()
                .is_empty()
        );
        assert!(
            Error::NotADatabase {
                path: "/srv/shop.db".into()
            }
            .fields()
            .is_empty()
        );
        assert!(Error::ZeroAmount.fields().is_empty());
        let short = Error::InsufficientStock {
            product: ProductId::new(4),
            requested: 3,
            available: 1,
        }
        .fields();
        let mut names: Vec<&str> = short.names().collect();
        names.sort_unstable();
        assert_eq!(names, ["available", "product", "requested"]);
        assert_eq!(short.len(), 3);
    }

    #[test]
    fn error_is_send_sync_static() {
        assert_send_sync::<Error>();
    }

    #[test]
    fn messages_are_lowercase_without_trailing_punctuation() {
        let samples = [
            Error::ZeroAmount,
            Error::UserNotFound(UserId::new(3)),
            Error::ChargeLimitExceeded {
                amount: Money::from_won(2_000_000),
                limit: Money::from_won(1_000_000),
            },
            Error::SchemaTooNew {
                found: 9,
                supported: 1,
            },
            Error::CouponSoldOut {
                coupon: CouponId::new(1),
                quantity: 100,
            },
            Error::CouponMinimumNotMet {
                coupon: CouponId::new(1),
                subtotal: Money::from_won(5_000),
                minimum: Money::from_won(10_000),
            },
            Error::OutOfRange {
                what: "days",
                value: 31,
                min: 1,
                max: 30,
            },
            Error::AckBeyondFeed { upto: 9, last: 5 },
            Error::BackupTargetExists(PathBuf::from("/tmp/copy.db")),
            Error::Io(std::io::Error::other("flush failed")),
        ];
        for err in samples {
            let text = err.to_string();
            let first = text.chars().next().unwrap();
            assert!(!first.is_uppercase(), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
    }
}
