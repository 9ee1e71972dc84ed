//! liteshop is the core of a small online shop — user balances, products,
//! carts, orders, and payments through an external payment gateway — in one
//! SQLite file, behind one synchronous facade, [`Shop`].
//!
//! ```
//! use liteshop::{FakeGateway, Money, NewProduct, OrderStatus, Shop};
//!
//! let dir = tempfile::tempdir()?;
//! // HttpGateway for a real PG; the FakeGateway plays it in tests.
//! let pg = FakeGateway::new();
//! let shop = Shop::builder(dir.path().join("shop.db")).gateway(pg.clone()).build()?;
//! let kim = shop.create_user("Kim")?;
//! // A top-up through the PG: the customer pays in the PG's widget first.
//! let top_up = shop.start_top_up(kim.id, Money::new(20_000)?)?;
//! shop.confirm_payment(kim.id, top_up.id, &pg.pay_widget(&top_up.widget().unwrap()))?;
//!
//! let tea = shop.create_product(NewProduct {
//!     name: "Green tea".into(),
//!     price: Money::new(12_000)?,
//!     stock: 10,
//! })?;
//! shop.add_to_cart(kim.id, tea.id, 3)?;
//!
//! let cart = shop.cart(kim.id)?;
//! let total = cart.total.expect("a total that fits in Money");
//! assert_eq!(total, Money::new(36_000)?);
//! assert_eq!(total.to_string(), "36,000 KRW");
//!
//! let order = shop.checkout_cart(kim.id, None)?;
//! assert_eq!(order.total, Money::new(36_000)?);
//! assert_eq!(shop.product(tea.id)?.stock, 7);
//! assert!(shop.cart(kim.id)?.lines.is_empty());
//!
//! // 20,000 from the balance, 16,000 by card.
//! let started = shop.start_payment(kim.id, order.id, Money::new(20_000)?)?;
//! let widget = started.widget().expect("a PG part");
//! assert_eq!(widget.amount, Money::new(16_000)?);
//! shop.confirm_payment(kim.id, started.id, &pg.pay_widget(&widget))?;
//! assert_eq!(shop.order(kim.id, order.id)?.status, OrderStatus::Paid);
//! assert_eq!(shop.balance(kim.id)?, Money::ZERO);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Overview
//!
//! - [`Shop`] is the whole API: open it with [`Shop::open`] or configure it
//!   with [`Shop::builder`] ([`ShopBuilder`]). It is `Clone + Send + Sync` and
//!   cheap to clone; share one across threads.
//! - [`Money`] is a non-negative count of won with checked arithmetic. Ids are
//!   one newtype per entity ([`UserId`], [`ProductId`], [`CartItemId`],
//!   [`OrderId`], [`PaymentId`], [`RefundId`], [`CouponId`],
//!   [`LedgerEntryId`]), so they
//!   cannot be mixed up.
//! - [`Error`] carries the ids and figures of a refusal; [`Error::kind`] gives
//!   its [`ErrorKind`], which a host maps to a status code.
//! - Time comes from a [`Clock`]: [`SystemClock`] by default, [`ManualClock`]
//!   in tests. Every record carries [`Timestamp`]s (UTC milliseconds).
//! - Payments go through a [`PaymentGateway`]: [`HttpGateway`] for a real
//!   PG, [`FakeGateway`] for tests (the host's too).
//!
//! # The flows
//!
//! | flow | method | checks, in order |
//! |------|--------|------------------|
//! | balance lookup | [`Shop::balance`] | id valid → user exists → balance row exists |
//! | balance charge (top-up) | [`Shop::start_top_up`], then [`Shop::confirm_payment`] | amount ≥ 1 → user exists → a PG → per-charge limit → balance limit (with money in flight) → top-up started; the customer pays in the PG's widget; the confirm credits it once |
//! | grant, take back | [`Shop::grant`], [`Shop::take_back`] (operators), [`Shop::host_credit`] (money the host took itself) | amount ≥ 1, note valid → user exists → balance limit / balance covers it |
//! | product lookup | [`Shop::product`] | id valid → product exists |
//! | cart list | [`Shop::cart`] | user exists |
//! | cart add | [`Shop::add_to_cart`] | input valid → user exists → product exists → not in the cart |
//! | cart remove | [`Shop::remove_from_cart`] | input valid → line exists and is the user's |
//! | order | [`Shop::place_order`], [`Shop::checkout_cart`] | input valid → user exists → products exist → stock suffices and is reserved (the balance is checked when paying, for the balance part) |
//! | payment (start) | [`Shop::start_payment`], [`Shop::pay_from_balance`] | input valid → order exists, is the user's, is `Pending` and not past its reservation → balance part ≤ total → a PG for a PG part → balance covers the balance part → balance part held, payment and history saved, order `Paying` (wholly by balance: `Paid` here) |
//! | payment (confirm) | [`Shop::confirm_payment`], [`Shop::fail_payment`], [`Shop::expire_payments`] | payment is the user's → past `Started`: as it is → redirect's `orderId` and amount are the attempt's → not expired → key stored → PG asked with the attempt's key → outcome recorded |
//! | coupon issue | [`Shop::issue_coupon`] | ids valid → user exists → coupon exists → inside its issue window → not held by the user → one left (guarded increment) |
//! | best sellers | [`Shop::best_sellers`] | days 1–30, limit 1–100 → the window's per-day rows |
//! | refund | [`Shop::refund`], [`Shop::refund_lines`] | input valid → order exists, is the user's, is paid → no refund in flight → units left to refund → split, the PG part first → the balance part's credit fits the limit → attempt saved → PG part cancelled at the gateway → outcome recorded, balance part credited |
//! | top-up refund | [`Shop::refund_top_up`] | input valid → payment is the user's approved top-up → no refund of it in flight → amount ≤ what is left of it → balance covers it → attempt saved, amount taken from the balance → cancelled at the gateway → outcome recorded (declined: given back) |
//!
//! Every balance change is a [`LedgerEntry`] written in the same transaction,
//! so a balance always equals the sum of its user's ledger ([`Shop::ledger`]).
//!
//! # Orders
//!
//! Placing an order reserves its stock at once, with a guarded decrement
//! inside the write transaction, so stock never goes below zero and is never
//! oversold, whatever the concurrency. Placing an order checks stock, not
//! the balance: an order paid by card needs none, and the balance is
//! checked (and its part held) when a payment with a balance part starts.
//! An order moves through these states ([`OrderStatus`]); any other move is refused
//! with [`Error::InvalidTransition`], which names the current state.
//!
//! | from | to | by | stock |
//! |------|----|----|-------|
//! | — | `Pending` | [`Shop::place_order`], [`Shop::checkout_cart`] | reserved |
//! | `Pending` | `Cancelled` | [`Shop::cancel_order`], or expiry | released |
//! | `Pending` | `Paying` | a payment starts; its balance part is held | kept |
//! | `Paying` | `Paid` | the PG approved its PG part (wholly by balance: at once) | kept |
//! | `Paying` | `Pending` | the PG declined, the widget failed, or nobody confirmed in time; the balance part is given back | kept |
//! | `Paid` | `PartiallyRefunded` | a refund of some units | those released |
//! | `Paid` | `Refunded` | a refund of every unit | released |
//! | `PartiallyRefunded` | `PartiallyRefunded` | a refund of more units, not the last | those released |
//! | `PartiallyRefunded` | `Refunded` | a refund of the last units | those released |
//!
//! This table is the only copy: the README links here, and a test
//! (`tests/order.rs`) checks it against [`OrderStatus::can_become`] for
//! every pair of states.
//!
//! A `Pending` order expires after the reservation time
//! ([`ShopBuilder::reservation_time`], 15 minutes by default):
//! [`Shop::expire_orders`] cancels every overdue order with
//! [`CancelReason::Expired`] and releases its stock, and placing an order
//! that finds a product short first expires the overdue orders holding it.
//!
//! # Payments, exactly once, by tender
//!
//! An order is paid by balance, by the payment gateway (PG), or both: the
//! caller of [`Shop::start_payment`] says how much of the total (after any
//! coupon) comes from the balance, and the rest is the PG part. A top-up
//! ([`Shop::start_top_up`]) is a payment wholly by PG whose approval
//! credits the balance. Each [`Payment`] records both parts
//! (`balance_amount`, `pg_amount`); the ledger shows only the balance part.
//! Money enters a balance only through an approved top-up, an operator's
//! [`Shop::grant`], or a [`Shop::host_credit`] the host vouches for.
//!
//! The PG works by its own handshake (Toss Payments: the customer pays in
//! the PG's widget, which redirects back with `paymentKey`, `orderId` and
//! `amount`; the shop then confirms with the same `orderId` and `amount`),
//! so a payment with a PG part takes three steps, with no database
//! transaction open across the network:
//!
//! 1. start, one write transaction: every check, the balance part held (a
//!    [`Payment`](LedgerKind::Payment) entry), the attempt saved `Started`
//!    with its PG order id, PG amount, idempotency key and expiry
//!    ([`ShopBuilder::payment_window`]), the order `Paying`; it returns
//!    what the widget needs ([`Payment::widget`]). Wholly by balance, the
//!    payment is `Approved` in this same transaction and the PG is never
//!    called;
//! 2. [`Shop::confirm_payment`] with the redirect: in one write
//!    transaction the redirect is checked against the attempt (another
//!    `orderId` or amount is [`Error::RedirectMismatch`], and nothing is
//!    sent) and its key stored, the payment `Requested`; then, with no
//!    transaction open, [`PaymentGateway::approve`] carrying the attempt's
//!    key;
//! 3. a second write transaction records the answer, exactly once.
//!
//! | from | to | by | balance part |
//! |------|----|----|--------------|
//! | — | `Started` | [`Shop::start_payment`], [`Shop::start_top_up`] | held |
//! | — | `Approved` | [`Shop::start_payment`] wholly by balance | taken |
//! | `Started` | `Requested` | [`Shop::confirm_payment`] (its first transaction) | held |
//! | `Started` | `Declined` | [`Shop::fail_payment`], [`Shop::expire_payments`] | given back |
//! | `Requested`, `Unknown` | `Approved` | the PG approved (a top-up credited) | taken |
//! | `Requested`, `Unknown` | `Declined` | the PG declined | given back |
//! | `Requested` | `Unknown` | no definite answer | held |
//! | `Approved` | `Refunded` | refunds gave back all of it | — |
//!
//! | gateway answer | payment | balance part | order | `confirm_payment` returns |
//! |----------------|---------|--------------|-------|---------------------------|
//! | approved | `Approved` | taken | `Paid` | `Ok(Payment)` |
//! | declined | `Declined` | given back | `Pending` | [`Error::PaymentDeclined`] ([`Error::TopUpDeclined`]) |
//! | unreachable, after retries | `Declined` (`PG_UNAVAILABLE`) | given back | `Pending` | [`Error::GatewayUnavailable`] |
//! | invalid request | `Declined` | given back | `Pending` | [`Error::GatewayRejected`] |
//! | no definite answer | `Unknown` | held | `Paying` | [`Error::PaymentOutcomeUnknown`] ([`Error::TopUpOutcomeUnknown`]) |
//! | a virtual account issued ([`GatewayError::AwaitingDeposit`]) | `Requested`, with [`Payment::deposit`] | held | `Paying` | `Ok(Payment)` |
//!
//! **Tax-free goods (면세).** A product marked with [`Shop::set_tax_free`]
//! makes its order lines tax-free (an order keeps what each product was
//! when placed). A payment's PG part carries its share of the order's
//! tax-free lines, `⌊tax-free × pg_amount / amount⌋`
//! ([`Payment::pg_tax_free`], sent as Toss's `taxFreeAmount`), and each
//! refund's cancel its lines' share of its PG part, kept within what the PG
//! still holds of each part ([`Refund::pg_tax_free`]), so the cancel that
//! empties the PG part empties both.
//!
//! **Bank transfer (Toss's virtual account, 가상계좌).** A customer who
//! chooses it in the widget gets an account instead of an approval: the
//! confirm answers `WAITING_FOR_DEPOSIT` with the account, its due date and
//! the payment's secret (stored, never shown). The payment stays
//! `Requested` with its [`DepositAccount`], holding its balance part and
//! its order's units, until the PG's deposit notice
//! ([`Shop::deposit_notice`], checked against that secret, then settled
//! from the PG's record like any notice) or a reconciliation round after
//! the due date approves it — or, when the PG still waits for a deposit
//! [`DEPOSIT_GRACE`] after the due date (the account takes none after it),
//! declines it with [`DEPOSIT_EXPIRED`], giving everything back.
//! Reconciliation rounds leave an open account alone without asking the
//! PG. Such a payment has no card to refund to: its refunds go to the
//! account the customer gives with [`Shop::set_refund_account`] (sent as
//! Toss's `refundReceiveAccount`); without one the PG declines them.
//!
//! A redirect that arrives twice (a refresh) gets the attempt as it is. An
//! attempt nobody confirms ends when its window does:
//! [`Shop::expire_payments`] (run first by [`Shop::expire_orders`])
//! declines it with `CONFIRM_WINDOW_EXPIRED`, gives the balance part back
//! and returns the order to `Pending` (expired in turn if its reservation
//! ran out); a confirm after that is [`Error::PaymentExpired`] and never
//! reaches the PG.
//!
//! [`Shop::reconcile_payments`] (or a [`Reconciler`] thread from
//! [`Shop::spawn_reconciler`]) settles every `Requested`/`Unknown` payment
//! (and refund attempt, below) older than a grace period, and reports each
//! by id ([`ReconcileReport`]). For a payment, it asks the PG's [`status`](PaymentGateway::status);
//! an approval or decline is recorded as above (an approval with cancels
//! made outside the shop, or one cancelled whole before the shop heard —
//! recorded as declined, since nothing was paid — is reported for a
//! person); a payment the PG holds authenticated but unconfirmed
//! ([`PgPending::InProgress`]) inside its confirm window, or never received,
//! gets its confirm again with the **stored** key and idempotency key, so
//! the PG charges at most once whatever happened before. Nothing is sent
//! again with a key older than the gateway's [`GatewayLimits`]. A payment
//! still unsettled past a review age is reported, never declined silently. A
//! process killed at any point leaves a `Started`, `Requested` or `Unknown`
//! payment that expiry or reconciliation finishes. (A payment an older
//! liteshop left in flight — before payments by tender, schema version 8 —
//! migrates as wholly by balance and is reported for a person at once: that
//! version asked the PG for the whole total as well.)
//!
//! # Refunds, exactly once, whole or partial
//!
//! [`Shop::refund`] returns every unit not refunded yet; [`Shop::refund_lines`]
//! returns the units it names. Money goes back the way it came, by one
//! rule: **the PG part first** — a refund cancels at the PG as much of its
//! amount as the payment's PG part has left, and credits the rest to the
//! balance — so a whole refund returns each part whole, and the refunds of
//! each part never add up to more than that part. A refund is an attempt
//! ([`Refund`], with its `pg_amount` and `balance_amount`) in the same
//! three steps as a payment (one with no PG part completes in its first
//! transaction, without the PG):
//!
//! 1. one write transaction checks every rule (the order is the user's and
//!    `Paid` or `PartiallyRefunded`, no other refund of it is in flight, the
//!    units are on the order and not refunded yet, the credit fits under the
//!    balance limit) and records the attempt as `Requested` with **its own
//!    fresh idempotency key** and its lines;
//! 2. no transaction: [`PaymentGateway::cancel`] for the attempt's PG part,
//!    carrying its key;
//! 3. a second write transaction records the answer, exactly once.
//!
//! | gateway answer | refund | money | units | order | `refund` returns |
//! |----------------|--------|-------|-------|-------|------------------|
//! | cancelled | `Completed` | PG part to the card, balance part credited | released | `PartiallyRefunded` or `Refunded` | `Ok(Refund)` |
//! | declined | `Declined` | — | — | unchanged | [`Error::RefundDeclined`] |
//! | unreachable, after retries | `Declined` (`PG_UNAVAILABLE`) | — | — | unchanged | [`Error::GatewayUnavailable`] |
//! | invalid request | `Declined` | — | — | unchanged | [`Error::GatewayRejected`] |
//! | no definite answer | `Unknown` | owed | — | unchanged | [`Error::RefundOutcomeUnknown`] |
//!
//! A declined attempt is final; a later refund is a new attempt with a new
//! key, so a gateway that replays outcomes per key cannot turn a temporary
//! "no" into a permanent one. An unknown attempt — or one a killed process
//! left `Requested` — is settled by [`Shop::reconcile_payments`], which
//! sends the cancel again with the attempt's stored key while the gateway
//! still remembers it ([`GatewayLimits::key_lifetime`]); past that it
//! settles the attempt from the PG's record of the payment only (a cancel
//! the shop never recorded, of this amount, completes it; none declines it
//! with [`NOT_CANCELLED_AT_PG`]; anything else waits for a person). A cancel
//! the PG answers "already cancelled" (someone cancelled the payment in the
//! PG's dashboard) is a decline: the shop never credits money somebody else
//! gave back. A completed refund keeps the PG's key for its cancel
//! ([`Refund::pg_transaction_key`]).
//!
//! **Changes made at the PG outside the shop.** A cancel the PG's record
//! holds that no refund of the payment holds the key of (an operator's
//! cancel in the PG's dashboard) is found when the PG declines a refund
//! (the shop reads the PG's record right after), by a webhook
//! ([`Shop::payment_changed_at_pg`]), by reconciliation when it settles a
//! payment, or by a sweep over recently approved payments
//! ([`Shop::compare_with_pg`]), and recorded once, so the books follow the
//! PG: a completed refund of origin [`RefundOrigin::Pg`] of the cancel's
//! amount, all of it through the PG, returning no units (the order becomes
//! `PartiallyRefunded`; a person decides on the goods). Later refunds of
//! the order's units return at most what is left of the payment, so the
//! money goes back once. For a top-up, the balance gives back what it still
//! holds of the amount; what the customer had spent is reported. Each is
//! reported with `needs_review`, logged at error level and listed in
//! [`Unsettled::external`]; one the shop cannot record safely (a refund
//! of the payment in flight, which may be that cancel) waits. A payment the
//! shop holds paid that the PG no longer does (a bank transfer's deposit
//! the bank reversed: `DONE` back to `WAITING_FOR_DEPOSIT`) is reported
//! for a person, never undone by itself. While an attempt
//! is in flight its amount counts against the balance limit (as money held
//! by a payment in flight does), so its credit always fits.
//!
//! [`Shop::refund_top_up`] gives money of a top-up back to the card while
//! it is unspent, in the same three steps: the amount leaves the balance in
//! the first transaction (a [`TopUpRefund`](LedgerKind::TopUpRefund)
//! entry, so it cannot be spent meanwhile; money already spent is
//! [`Error::InsufficientBalance`]), the PG cancels it, and a decline gives
//! it back ([`TopUpRefundReversal`](LedgerKind::TopUpRefundReversal)).
//!
//! The money of an order line is spread over its units: the first `r` of
//! `q` units of a line that cost `a` are worth `⌊a × r / q⌋`, so the
//! refunds of a line, in any split, add up to exactly what it cost
//! ([`OrderItem::amount`]), and the completed refunds of a payment never
//! add up to more than it (a guarded update, and a `CHECK` behind it). A
//! coupon's order-level discount is spread over the lines by one rule —
//! each line bears `⌊discount × line total / subtotal⌋`, and the won left
//! over by rounding fall one each on the first lines — so that holds for
//! discounted orders too.
//!
//! The gateway contract — what a [`PaymentGateway`] must do and how
//! [`HttpGateway`] talks to an HTTP PG — is on those items. Money held by
//! payments in flight counts against the balance limit, so giving it back
//! after a decline never takes a balance over the limit.
//!
//! # Coupons
//!
//! [`Shop::create_coupon`] defines an offer ([`NewCoupon`]): a fixed amount
//! or a percentage with an optional cap ([`Discount`], integers only,
//! rounded down, never more than the subtotal), how many are ever issued,
//! an issue window, how long an issued coupon stays valid, and a minimum
//! order subtotal. [`Shop::issue_coupon`] is first come, first served: the
//! user's coupon is inserted (`UNIQUE(user, coupon)`) and the offer's count
//! raised by a guarded `UPDATE … WHERE issued < quantity` in one
//! transaction, so no race issues one too many or two to one user.
//!
//! An order carries at most one coupon ([`OrderRequest::with_coupon`], or
//! the coupon argument of [`Shop::checkout_cart`]); the order records its
//! `subtotal`, `discount`, `total` and `coupon`, and the payment charges the
//! total. The discount is spread over the lines by the rule above, so
//! refunds of any units add up to exactly what was paid. A user's coupon
//! moves like this ([`CouponState`], read by [`Shop::user_coupons`]):
//!
//! | from | to | by |
//! |------|----|----|
//! | — | `Available` | [`Shop::issue_coupon`] |
//! | `Available` | `Used { order }` | an order placed with it (owner, state, expiry and minimum checked in the order's transaction) |
//! | `Used` | `Available` | its order cancelled, expired, or fully refunded — with its original expiry |
//! | `Available` | `Expired` | `issued_at + valid_for` passed (by the shop's clock) |
//!
//! A declined payment or a partial refund leaves the coupon `Used`: the
//! order still holds it.
//!
//! # Best sellers
//!
//! [`Shop::best_sellers`]`(days, limit)` ranks products by units sold in the
//! last `days` calendar days (today included) — paid, less refunded units —
//! with units and revenue, ties by product id. The days are calendar days
//! in the UTC offset set by [`ShopBuilder::utc_offset_minutes`] (UTC by
//! default; `9 * 60` for Korea). A per-day, per-product sales table is kept
//! in the transactions that approve payments (adding the order's units on
//! the day it was paid) and complete refunds (taking theirs off that same
//! day), so the query reads only the window's rows of that table.
//!
//! # The order event feed
//!
//! Every change of an order or payment appends one [`Event`] in the **same
//! transaction** (a transactional outbox), so the feed never disagrees with
//! the books:
//!
//! | [`EventKind`] | when | payload ([`EventPayload`]) |
//! |---------------|------|----------------------------|
//! | `OrderPlaced` | an order is placed | lines, subtotal, discount, total, coupon |
//! | `OrderCancelled` | the user cancels a pending order | — |
//! | `OrderExpired` | a pending order runs out of time | — |
//! | `PaymentRequested` | a payment starts (money held) | amount |
//! | `PaymentApproved` | the order is paid | amount, lines, subtotal, discount, coupon |
//! | `PaymentDeclined` | the money is given back | amount, code, message |
//! | `RefundCompleted` | a refund credited its money | amount, lines |
//!
//! Each has a sequence number ([`Event::seq`]) that increases in commit
//! order with no gaps and is never reused, a time, the user, order and
//! (where it applies) payment and refund ids. Read the feed with
//! [`Shop::events`]; named consumers keep their cursor in the database
//! ([`Shop::event_cursor`], [`Shop::ack_events`]; a cursor never moves
//! back). [`Shop::spawn_event_pump`] runs a thread that hands batches to a
//! handler in order and acks each after the handler succeeds, retrying with
//! backoff when it fails. Delivery is **at least once**: a batch handled
//! but not acked (a crash, a failed ack) is handed over again, so a
//! consumer de-duplicates by `seq` (e.g. sends it as an `Idempotency-Key`,
//! or stores the last one it applied in the same transaction as its
//! effect). [`Shop::prune_events`] deletes old events every registered
//! consumer has acked.
//!
//! # Errors and HTTP
//!
//! | [`ErrorKind`] | examples | HTTP |
//! |---------------|----------|------|
//! | `InvalidInput` | amount 0, quantity 0, empty order, bad id, over a limit | 400 |
//! | `NotFound` | user, product, cart line, order (also another user's) | 404 |
//! | `Conflict` | already in the cart, insufficient stock or balance, wrong order state, an expired order, a refund in flight or of more than is left, a charge over the balance limit, an empty cart, a restock past the largest stock, a coupon sold out, already held, not issuable, used, expired or below its minimum | 409 |
//! | `PaymentDeclined` | the payment gateway said no (payment or refund) | 402 |
//! | `PaymentOutcomeUnknown` | the gateway gave no definite answer | 202 |
//! | `Busy` | the database stayed locked past the timeout; the gateway unreachable | 503 |
//! | `Internal` | storage failure, a database from a newer version, no gateway configured | 500 |
//!
//! # Storage and durability
//!
//! One SQLite file in WAL mode with foreign keys on, `CHECK` constraints for
//! every invariant the schema can hold (balance ≥ 0, stock ≥ 0, quantity > 0,
//! ledger amount ≠ 0, stock + units held by orders ≤ `u32::MAX`, refunds ≤
//! what was paid) and an index for every lookup. The schema is migrated
//! forward on open. A liteshop file is marked (`PRAGMA application_id`,
//! "LSHP") and checked before anything is written, WAL mode included: a
//! file from a newer liteshop, a file that is not a database, and another
//! program's database (whatever its `user_version`) are refused and left
//! byte for byte untouched; files written before the marker are recognised
//! by their schema. Every write runs under `BEGIN IMMEDIATE`, atomically: in its
//! own transaction, or — under group commit, the default [`WriteMode`] — in
//! its own savepoint of a transaction shared with the writes queued beside
//! it, which commits once for all of them. Either way a call returns `Ok`
//! only after its changes committed, and a refused call changes nothing.
//!
//! By default commits use `synchronous = FULL`: once a call returns, its
//! change survives a power loss. [`Durability::Normal`] trades the last
//! moments before a power loss for faster commits; opt in only if that is
//! acceptable for money.
//!
//! # On PostgreSQL
//!
//! With the `postgres` feature, `Shop::builder("postgres://…")` (or libpq's
//! `host=… port=…` pairs, several hosts included) opens the same shop in a
//! PostgreSQL schema ([`ShopBuilder::pg_schema`], `liteshop` by default):
//! the same methods, errors and guarantees. Writes run in parallel: one
//! user's writes take turns on that user's lock, shared rows change only
//! through guarded statements, and a write the server ends to break a
//! deadlock runs again; reads run in one `REPEATABLE READ` snapshot; the
//! event feed is numbered when it is read, with no gap and never
//! skipping a late commit. A write whose `COMMIT` lost its answer is
//! [`Error::CommitOutcomeUnknown`], never retried blindly. [`copy`] moves a
//! shop from a file into an empty schema, audited on both sides. The README
//! ("Outgrow one machine") says when to move and what differs.
//!
//! # OpenAPI schemas
//!
//! With the `openapi` feature, the records the shop returns ([`User`],
//! [`Order`], [`Payment`], [`Page`], the ids, [`Money`], …) derive
//! utoipa's `ToSchema`, so an HTTP layer documents them from the types
//! that serialize them; `liteshop-server` does.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod audit;
mod background;
mod balance;
mod cart;
mod clock;
mod copy;
mod coupon;
mod db;
mod error;
mod feed;
mod gateway;
mod idempotency;
mod ids;
mod lease;
mod money;
mod order;
mod page;
mod payment;
mod product;
mod sales;
mod shop;
#[cfg(feature = "postgres")]
mod sold_out;
mod store;
mod text_enum;
mod token;
mod user;
mod validate;

pub use audit::{AuditFigures, AuditReport, Law, Violation};
pub use balance::{LedgerEntry, LedgerKind};
pub use cart::{Cart, CartLine};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use copy::{CopyReport, copy};
pub use coupon::{Coupon, CouponState, Discount, NewCoupon, UserCoupon};
pub use db::is_postgres_target;
pub use error::{Entity, Error, ErrorFields, ErrorKind, Result};
pub use feed::{ConsumerLag, Event, EventKind, EventPayload, EventPump, MAX_EVENT_BATCH};
pub use gateway::{
    Approval, ApproveRequest, CancelRequest, Cancellation, CodeClass, Deposit, FakeGateway,
    FakeOutcome, GatewayError, GatewayLimits, HttpGateway, HttpGatewayBuilder, PaymentGateway,
    PgApi, PgCancel, PgPending, PgStatus, RefundAccount, RetryPolicy, StatusRequest, TOSS_CODES,
    TossCode,
};
pub use idempotency::{IdempotencyKey, Keyed};
pub use ids::{
    CartItemId, CouponId, LedgerEntryId, OrderId, PaymentEventId, PaymentId, ProductId, RefundId,
    UserId,
};
pub use lease::Lease;
pub use money::{Currency, Money};
pub use order::{CancelReason, Order, OrderItem, OrderLine, OrderRequest, OrderStatus};
pub use page::{Cursor, Page, PageRequest};
pub use payment::reconcile::{
    DEPOSIT_GRACE, NOT_CANCELLED_AT_PG, ReconcileReport, ReconciledPayment, ReconciledRefund,
    Reconciler,
};
pub use payment::refund::{Refund, RefundLine, RefundOrigin, RefundStatus};
pub use payment::{
    DEPOSIT_EXPIRED, DepositAccount, Payment, PaymentEvent, PaymentFailure, PaymentKind,
    PaymentStatus, PgFailRedirect, PgRedirect, WidgetRequest,
};
pub use product::{NewProduct, Product};
pub use sales::BestSeller;
pub use shop::{Idempotent, Limits, Shop, ShopBuilder, Unsettled};
pub use store::failure::{StorageClass, StorageError};
pub use store::{BackupProgress, Durability, WriteMode};
pub use user::User;
pub use validate::MAX_NAME_CHARS;

/// The README, whose API tour runs as a doctest, so the tour cannot drift
/// from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct Readme;
