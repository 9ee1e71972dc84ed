//! The shapes of the responses, for the OpenAPI document only: liteshop's
//! own types serialize to exactly these (the core crate does not depend on
//! utoipa). Schemathesis checks every response against them.

#![allow(dead_code, reason = "documentation types: never built, only described")]

use utoipa::ToSchema;

/// A user.
#[derive(ToSchema)]
#[schema(example = json!({"id": 1, "name": "Kim", "created_at": 1795529268063_i64}))]
pub(crate) struct User {
    id: i64,
    name: String,
    /// UTC milliseconds.
    created_at: i64,
}

/// One balance change.
#[derive(ToSchema)]
#[schema(example = json!({"id": 1, "user": 1, "kind": "top_up", "amount": 50000, "balance_after": 50000,
    "created_at": 1795529268165_i64, "payment": 1, "refund": null, "note": null}))]
pub(crate) struct LedgerEntry {
    id: i64,
    user: i64,
    /// `top_up` (paid through the PG), `grant` or `take_back` (an
    /// operator's, with a note), `charge` (a credit the host vouched for),
    /// `payment` (an order's balance part), `payment_reversal`, `refund`,
    /// `top_up_refund` or `top_up_refund_reversal`.
    kind: String,
    /// Won, always positive; `kind` says which way it went.
    amount: i64,
    balance_after: i64,
    created_at: i64,
    payment: Option<i64>,
    refund: Option<i64>,
    /// Why an operator granted or took back balance; null for every other
    /// kind.
    note: Option<String>,
}

/// A page of ledger entries, newest first.
#[derive(ToSchema)]
pub(crate) struct LedgerPage {
    items: Vec<LedgerEntry>,
    /// Pass as `after` for the next page; null on the last.
    next: Option<i64>,
}

/// A product.
#[derive(ToSchema)]
#[schema(example = json!({"id": 1, "name": "Tea", "price": 1000, "stock": 5, "held": 0,
    "created_at": 1795529268174_i64, "updated_at": 1795529268174_i64, "tax_free": false}))]
pub(crate) struct Product {
    id: i64,
    name: String,
    price: i64,
    stock: i64,
    /// Units held by orders (reserved or sold, not refunded).
    held: i64,
    created_at: i64,
    updated_at: i64,
    /// Sold free of VAT (면세): its share of each PG amount is sent as the
    /// PG's `taxFreeAmount`.
    tax_free: bool,
}

/// A page of the catalogue.
#[derive(ToSchema)]
pub(crate) struct ProductPage {
    items: Vec<Product>,
    next: Option<i64>,
}

/// One cart line.
#[derive(ToSchema)]
pub(crate) struct CartLine {
    id: i64,
    product: i64,
    name: String,
    unit_price: i64,
    quantity: i64,
    /// Null if it would overflow.
    line_total: Option<i64>,
    added_at: i64,
}

/// A cart.
#[derive(ToSchema)]
pub(crate) struct Cart {
    user: i64,
    lines: Vec<CartLine>,
    /// Null if it would overflow.
    total: Option<i64>,
}

/// One line of an order.
#[derive(ToSchema)]
pub(crate) struct OrderItem {
    product: i64,
    name: String,
    unit_price: i64,
    quantity: i64,
    line_total: i64,
    /// What the buyer pays for the line, after its share of the discount.
    amount: i64,
    refunded: i64,
    /// The product was tax-free when the order was placed.
    tax_free: bool,
}

/// An order.
#[derive(ToSchema)]
#[schema(example = json!({"id": 1, "user": 1, "status": "pending", "cancel_reason": null,
    "lines": [{"product": 1, "name": "Tea", "unit_price": 1000, "quantity": 1, "line_total": 1000,
               "amount": 1000, "refunded": 0, "tax_free": false}],
    "subtotal": 1000, "discount": 0, "coupon": null, "total": 1000, "refunded": 0,
    "created_at": 1795529268217_i64, "expires_at": 1795530168217_i64,
    "updated_at": 1795529268217_i64, "paid_at": null}))]
pub(crate) struct Order {
    id: i64,
    user: i64,
    /// `pending`, `paying`, `paid`, `partially_refunded`, `cancelled` or
    /// `refunded`.
    status: String,
    /// `user` or `expired` when cancelled.
    cancel_reason: Option<String>,
    lines: Vec<OrderItem>,
    subtotal: i64,
    discount: i64,
    coupon: Option<i64>,
    total: i64,
    refunded: i64,
    created_at: i64,
    expires_at: i64,
    updated_at: i64,
    paid_at: Option<i64>,
}

/// A page of orders, newest first.
#[derive(ToSchema)]
pub(crate) struct OrderPage {
    items: Vec<Order>,
    next: Option<i64>,
}

/// Why the gateway said no.
#[derive(ToSchema)]
pub(crate) struct PaymentFailure {
    code: String,
    message: String,
}

/// A payment attempt: of an order (its balance part and PG part), or a
/// top-up of the balance (PG only).
#[derive(ToSchema)]
#[schema(example = json!({"id": 1, "kind": "order", "order": 1, "user": 1, "amount": 24000,
    "balance_amount": 10000, "pg_amount": 14000, "refunded": 0, "pg_refunded": 0,
    "status": "started", "payment_key": null, "pg_order_id": "ls-1-6f1c2a9e",
    "order_name": "Tea and 1 more", "customer_key": "ls-c-3f9a1b2c4d5e",
    "idempotency_key": "ls-pay-0c6e2d4b9a8f7e61", "pg_transaction_id": null, "failure": null,
    "expires_at": 1795531068217_i64, "pg_tax_free": 0, "deposit": null,
    "created_at": 1795529268217_i64, "updated_at": 1795529268217_i64}))]
pub(crate) struct Payment {
    id: i64,
    /// `order` or `top_up`.
    kind: String,
    /// The order it pays; null for a top-up.
    order: Option<i64>,
    user: i64,
    /// `balance_amount + pg_amount`.
    amount: i64,
    /// The part taken from the balance (held from the start).
    balance_amount: i64,
    /// The part the PG takes: the widget's `amount`.
    pg_amount: i64,
    /// `started` (waiting for the widget and the confirm), `requested`,
    /// `approved`, `declined`, `unknown` or `refunded`.
    status: String,
    /// The PG's key, from the widget's redirect; null until confirmed.
    payment_key: Option<String>,
    /// The widget's `orderId`.
    pg_order_id: String,
    /// The widget's `orderName`.
    order_name: String,
    /// The widget's `customerKey`.
    customer_key: String,
    idempotency_key: String,
    pg_transaction_id: Option<String>,
    failure: Option<PaymentFailure>,
    /// Given back by completed refunds.
    refunded: i64,
    /// The part of `refunded` that went back through the PG.
    pg_refunded: i64,
    /// A started payment nobody confirmed by then ends.
    expires_at: i64,
    /// The tax-free part of `pg_amount` (the PG's `taxFreeAmount`).
    pg_tax_free: i64,
    /// The virtual account to pay into, when the customer chose a bank
    /// transfer in the widget: the confirm answers 200 with the payment
    /// still `requested` and this set; it becomes `approved` on the deposit,
    /// `declined` (`DEPOSIT_EXPIRED`) if none comes by `due_at`. Null
    /// otherwise.
    deposit: Option<DepositAccount>,
    created_at: i64,
    updated_at: i64,
}

/// Where to pay a payment by bank transfer (Toss's virtual account).
#[derive(ToSchema)]
pub(crate) struct DepositAccount {
    /// The bank, as the PG names it (Toss: `bankCode`).
    bank: String,
    /// The account to pay `pg_amount` into, in one transfer.
    account_number: String,
    /// The last moment a deposit is taken (ms since the epoch).
    due_at: i64,
}

/// A page of payments (top-ups), newest first.
#[derive(ToSchema)]
pub(crate) struct PaymentPage {
    items: Vec<Payment>,
    next: Option<i64>,
}

/// One status change of a payment.
#[derive(ToSchema)]
pub(crate) struct PaymentEvent {
    id: i64,
    payment: i64,
    status: String,
    detail: String,
    created_at: i64,
}

/// Units and money of one line of a refund.
#[derive(ToSchema)]
pub(crate) struct RefundLine {
    product: i64,
    quantity: i64,
    amount: i64,
}

/// A refund attempt: of an order's units, or of a top-up's money.
#[derive(ToSchema)]
pub(crate) struct Refund {
    id: i64,
    payment: i64,
    /// Null for a top-up's refund.
    order: Option<i64>,
    user: i64,
    amount: i64,
    /// The part credited to the balance.
    balance_amount: i64,
    /// The part cancelled at the PG (back to the card).
    pg_amount: i64,
    /// `requested`, `unknown`, `completed` or `declined`.
    status: String,
    reason: String,
    lines: Vec<RefundLine>,
    idempotency_key: String,
    failure: Option<PaymentFailure>,
    created_at: i64,
    updated_at: i64,
    /// The PG's key for the cancel of the PG part, once completed; null
    /// otherwise.
    pg_transaction_key: Option<String>,
    /// Who gave the money back: `shop` (a refund asked for here) or `pg`
    /// (a cancel made at the PG outside the shop, e.g. in its dashboard,
    /// recorded when found; it returns no units).
    origin: String,
    /// The tax-free part of `pg_amount` (the cancel's `taxFreeAmount`).
    pg_tax_free: i64,
}

/// A coupon offer.
#[derive(ToSchema)]
pub(crate) struct Coupon {
    id: i64,
    name: String,
    /// `{"kind": "fixed", "amount": …}` or `{"kind": "percent", "percent": …, "cap": …}`.
    #[schema(value_type = Object)]
    discount: (),
    quantity: i64,
    issued: i64,
    issuable_from: i64,
    issuable_until: i64,
    /// `{"secs": …, "nanos": …}`.
    #[schema(value_type = Object)]
    valid_for: (),
    min_order_total: i64,
    created_at: i64,
}

/// A coupon issued to a user, with its state.
#[derive(ToSchema)]
pub(crate) struct UserCoupon {
    coupon: Coupon,
    user: i64,
    issued_at: i64,
    expires_at: i64,
    /// `{"state": "available"}`, `{"state": "used", "order": …}` or
    /// `{"state": "expired"}`.
    #[schema(value_type = Object)]
    state: (),
}

/// A page of a user's coupons.
#[derive(ToSchema)]
pub(crate) struct UserCouponPage {
    items: Vec<UserCoupon>,
    next: Option<i64>,
}

/// One product of a best-seller ranking.
#[derive(ToSchema)]
pub(crate) struct BestSeller {
    product: i64,
    name: String,
    units: i64,
    revenue: i64,
}

/// One event of the order feed.
#[derive(ToSchema)]
pub(crate) struct Event {
    seq: i64,
    kind: String,
    user: i64,
    order: i64,
    payment: Option<i64>,
    refund: Option<i64>,
    /// The figures; `kind` inside names its shape.
    #[schema(value_type = Object)]
    payload: (),
    created_at: i64,
}

/// What the audit found.
#[derive(ToSchema)]
pub(crate) struct AuditReport {
    at: i64,
    #[schema(value_type = Object)]
    figures: (),
    /// Empty when the books balance.
    #[schema(value_type = Vec<Object>)]
    violations: (),
}
