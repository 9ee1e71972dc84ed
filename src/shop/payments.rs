//! Payments by tender and the PG's handshake: start (one transaction, no
//! PG call), the customer pays in the PG's widget, confirm (or fail), and
//! expiry of what nobody confirmed. Top-ups take the same handshake. The
//! flows live in `payment/`; each method here checks its input and
//! delegates.

use tracing::debug;

use super::Shop;
use crate::error::{Error, Result};
use crate::idempotency::{IdempotencyKey, Keyed};
use crate::ids::{OrderId, PaymentId, UserId};
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::payment::{
    self, BalancePart, Payment, PaymentEvent, PgFailRedirect, PgRedirect, StartRules,
};
use crate::store::UserTx;
use crate::user;

/// How many started payments one write of [`Shop::expire_payments`] reads
/// at a time.
const EXPIRY_BATCH: u32 = 100;

impl Shop {
    /// Starts paying the order `order` of `user`: `balance_part` of its
    /// total (after any coupon) from the balance, the rest — the PG part —
    /// through the PG (seed flow 8, by tender). Nothing is sent to the PG
    /// here.
    ///
    /// In one write transaction — checks, in order: ids valid → the order
    /// exists and is the user's → it is `Pending` → its reservation has not
    /// run out → its total is not zero → the balance part is at most the
    /// total → a PG part has a gateway configured → the balance covers the
    /// balance part. Then the balance part is debited (a
    /// [`Payment`](crate::LedgerKind::Payment) ledger entry, held until the
    /// payment ends), the payment saved as
    /// [`Started`](crate::PaymentStatus::Started) with its PG order id,
    /// idempotency key and expiry ([`ShopBuilder::payment_window`](crate::ShopBuilder::payment_window)),
    /// and the order moved to `Paying`.
    ///
    /// - **Wholly by balance** (`balance_part` = the total): the payment is
    ///   approved in the same transaction and the order is `Paid`; no PG is
    ///   asked and none needs to be configured.
    /// - **With a PG part**: [`Payment::widget`] is what the client's PG
    ///   widget needs (`orderId`, `amount`, `orderName`, `customerKey`).
    ///   The customer pays there; the PG's redirect then goes to
    ///   [`Shop::confirm_payment`] (or [`Shop::fail_payment`]). An attempt
    ///   nobody confirms ends at its expiry ([`Shop::expire_payments`]): the
    ///   balance part comes back and the order is `Pending` again.
    ///
    /// A second start of the same order, even a concurrent one, finds it
    /// `Paying` and fails with [`Error::InvalidTransition`].
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use liteshop::{FakeGateway, Money, NewProduct, OrderLine, OrderStatus, PaymentStatus, Shop};
    ///
    /// let pg = FakeGateway::new();
    /// let shop = Shop::builder(dir.path().join("shop.db")).gateway(pg.clone()).build()?;
    /// let kim = shop.create_user("Kim")?;
    /// shop.grant(kim.id, Money::new(10_000)?, "welcome points")?;
    /// let tea = shop.create_product(NewProduct { name: "Tea".into(), price: Money::new(12_000)?, stock: 5 })?;
    /// let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    ///
    /// // 10,000 from the balance, 14,000 by card.
    /// let started = shop.start_payment(kim.id, order.id, Money::new(10_000)?)?;
    /// let widget = started.widget().expect("a PG part to pay");
    /// assert_eq!(widget.amount, Money::new(14_000)?);
    /// assert_eq!(shop.balance(kim.id)?, Money::ZERO); // held
    ///
    /// // The customer pays in the widget; the PG redirects back.
    /// let redirect = pg.pay_widget(&widget);
    /// let paid = shop.confirm_payment(kim.id, started.id, &redirect)?;
    /// assert_eq!(paid.status, PaymentStatus::Approved);
    /// assert_eq!(shop.order(kim.id, order.id)?.status, OrderStatus::Paid);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`],
    /// [`Error::InvalidTransition`], [`Error::OrderExpired`],
    /// [`Error::NothingToPay`], [`Error::BalancePartTooLarge`],
    /// [`Error::NoGateway`], [`Error::InsufficientBalance`] — each
    /// changing nothing.
    pub fn start_payment(
        &self,
        user: UserId,
        order: OrderId,
        balance_part: Money,
    ) -> Result<Payment> {
        self.start_payment_inner(user, order, BalancePart::Exactly(balance_part), None)
            .map(Keyed::into_inner)
    }

    /// Pays the order `order` of `user` wholly from the balance:
    /// [`Shop::start_payment`] with the order's whole total as the balance
    /// part. It completes in one transaction and never calls the PG.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{Money, NewProduct, OrderLine, OrderStatus, PaymentStatus};
    ///
    /// let kim = shop.create_user("Kim")?;
    /// shop.grant(kim.id, Money::new(30_000)?, "welcome points")?;
    /// let tea = shop.create_product(NewProduct { name: "Tea".into(), price: Money::new(12_000)?, stock: 5 })?;
    /// let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    ///
    /// let payment = shop.pay_from_balance(kim.id, order.id)?;
    /// assert_eq!(payment.status, PaymentStatus::Approved);
    /// assert_eq!(payment.pg_amount, Money::ZERO);
    /// assert_eq!(shop.order(kim.id, order.id)?.status, OrderStatus::Paid);
    /// assert_eq!(shop.balance(kim.id)?, Money::new(6_000)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// As [`Shop::start_payment`].
    pub fn pay_from_balance(&self, user: UserId, order: OrderId) -> Result<Payment> {
        // The total is read in the payment's own transaction: one
        // transaction, not a read before it.
        self.start_payment_inner(user, order, BalancePart::Total, None)
            .map(Keyed::into_inner)
    }

    pub(crate) fn start_payment_inner(
        &self,
        user: UserId,
        order: OrderId,
        balance_part: BalancePart,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Payment>> {
        let user = user.validate()?;
        let order = order.validate()?;
        let rules = self.start_rules();
        self.payments()
            .start(user, key, move |tx: &UserTx<'_>, now| {
                payment::begin(tx, order, balance_part, rules, now)
            })
    }

    /// Starts a top-up of `amount` to the balance of `user`, paid wholly
    /// through the PG with the same handshake as an order (seed flow 2,
    /// "balance charge", done for real): the customer pays
    /// [`Payment::widget`] in the PG's widget, then
    /// [`Shop::confirm_payment`] credits the balance exactly once (a
    /// [`TopUp`](crate::LedgerKind::TopUp) ledger entry) when the PG
    /// approves. Nothing is credited before that.
    ///
    /// Checks, in order: the id is valid and the amount at least 1 won →
    /// the user exists → a gateway is configured → the amount is within the
    /// per-charge limit → the balance, plus the money in flight, plus this
    /// top-up, is within the balance limit. From here on the top-up counts
    /// as in flight, so its credit always fits.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use liteshop::{FakeGateway, Money, Shop};
    ///
    /// let pg = FakeGateway::new();
    /// let shop = Shop::builder(dir.path().join("shop.db")).gateway(pg.clone()).build()?;
    /// let kim = shop.create_user("Kim")?;
    /// let top_up = shop.start_top_up(kim.id, Money::new(50_000)?)?;
    /// assert_eq!(shop.balance(kim.id)?, Money::ZERO); // not paid yet
    ///
    /// let redirect = pg.pay_widget(&top_up.widget().expect("a widget step"));
    /// shop.confirm_payment(kim.id, top_up.id, &redirect)?;
    /// assert_eq!(shop.balance(kim.id)?, Money::new(50_000)?);
    /// // A second redirect credits nothing more.
    /// shop.confirm_payment(kim.id, top_up.id, &redirect)?;
    /// assert_eq!(shop.balance(kim.id)?, Money::new(50_000)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ZeroAmount`], [`Error::UserNotFound`],
    /// [`Error::NoGateway`], [`Error::ChargeLimitExceeded`],
    /// [`Error::BalanceLimitExceeded`] — each changing nothing.
    pub fn start_top_up(&self, user: UserId, amount: Money) -> Result<Payment> {
        self.start_top_up_inner(user, amount, None)
            .map(Keyed::into_inner)
    }

    pub(crate) fn start_top_up_inner(
        &self,
        user: UserId,
        amount: Money,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Payment>> {
        let user = user.validate()?;
        if amount.is_zero() {
            return Err(Error::ZeroAmount);
        }
        let rules = self.start_rules();
        let (max_charge, max_balance) =
            (self.inner.limits.max_charge, self.inner.limits.max_balance);
        self.payments()
            .start(user, key, move |tx: &UserTx<'_>, now| {
                payment::begin_top_up(tx, amount, max_charge, max_balance, rules, now)
            })
    }

    /// Confirms the started payment `payment` of `user` with what the PG's
    /// success redirect brought back (`paymentKey`, `orderId`, `amount`).
    ///
    /// The steps, exactly once whatever happens:
    ///
    /// 1. In one write transaction — checks, in order: ids and key valid →
    ///    the payment exists and is the user's → a payment already past
    ///    `Started` (a refreshed redirect, a second tab) is returned as it
    ///    is, and nothing is sent → the redirect's `orderId` and `amount`
    ///    equal the attempt's ([`Error::RedirectMismatch`]: a tampered
    ///    redirect cannot underpay) → the attempt has not expired. Then the
    ///    redirect's `paymentKey` is stored and the payment is `Requested`.
    /// 2. With no transaction open, the gateway is asked to confirm the PG
    ///    part with the attempt's stored idempotency key, retrying only
    ///    calls that provably never reached it.
    /// 3. In a second write transaction the answer is recorded: approved →
    ///    `Ok` (an order `Paid`, a top-up credited); declined → the balance
    ///    part given back, the order `Pending` again,
    ///    [`Error::PaymentDeclined`] (a top-up: [`Error::TopUpDeclined`]);
    ///    no definite answer → everything held, [`Error::PaymentOutcomeUnknown`]
    ///    ([`Error::TopUpOutcomeUnknown`]) — [`Shop::reconcile_payments`]
    ///    settles it.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidPaymentKey`],
    /// [`Error::NoGateway`], [`Error::PaymentNotFound`] (also another
    /// user's), [`Error::RedirectMismatch`], [`Error::PaymentExpired`] (all
    /// changing nothing); then the outcomes of step 3,
    /// [`Error::PaymentDeclined`] ([`Error::TopUpDeclined`]) and
    /// [`Error::PaymentOutcomeUnknown`] ([`Error::TopUpOutcomeUnknown`]),
    /// and [`Error::GatewayUnavailable`] and [`Error::GatewayRejected`] (the
    /// balance part given back).
    pub fn confirm_payment(
        &self,
        user: UserId,
        payment: PaymentId,
        redirect: &PgRedirect,
    ) -> Result<Payment> {
        self.confirm_payment_inner(user, payment, redirect, None)
            .map(Keyed::into_inner)
    }

    pub(crate) fn confirm_payment_inner(
        &self,
        user: UserId,
        payment: PaymentId,
        redirect: &PgRedirect,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Payment>> {
        let user = user.validate()?;
        let payment = payment.validate()?;
        payment::validate_key(&redirect.payment_key)?;
        self.gateway()?;
        self.payments()
            .confirm(user, payment, redirect.clone(), key)
    }

    /// Records the PG's failure redirect (`code`, `message`, `orderId`: the
    /// customer closed the widget, the card company refused the
    /// authentication) for the started payment `payment` of `user`: it ends
    /// at once as `Declined` with the widget's code, its balance part given
    /// back and its order `Pending` again. Nothing is sent to the PG. A
    /// payment already past `Started` is returned as it is.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidFailRedirect`],
    /// [`Error::PaymentNotFound`] (also another user's),
    /// [`Error::RedirectMismatch`] for another `orderId` — each changing
    /// nothing.
    pub fn fail_payment(
        &self,
        user: UserId,
        payment: PaymentId,
        redirect: &PgFailRedirect,
    ) -> Result<Payment> {
        self.fail_payment_inner(user, payment, redirect, None)
            .map(Keyed::into_inner)
    }

    pub(crate) fn fail_payment_inner(
        &self,
        user: UserId,
        payment: PaymentId,
        redirect: &PgFailRedirect,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Payment>> {
        let user = user.validate()?;
        let id = payment.validate()?;
        payment::validate_fail_redirect(redirect)?;
        let redirect = redirect.clone();
        self.payments()
            .start(user, key, move |tx: &UserTx<'_>, now| {
                payment::fail(tx, id, &redirect, now)
            })
    }

    /// Ends every started payment whose confirm window ran out: declined
    /// with `CONFIRM_WINDOW_EXPIRED`, its balance part given back, its
    /// order `Pending` again (then expired by [`Shop::expire_orders`] if
    /// its reservation ran out too). Returns how many it ended. A confirm
    /// after that is refused and never reaches the PG. Each payment ends in
    /// its own write, under its user's serialisation.
    ///
    /// # Failure
    ///
    /// Only storage errors.
    pub fn expire_payments(&self) -> Result<usize> {
        let mut ended = 0;
        loop {
            let now = self.now();
            let due = self
                .inner
                .store
                .read(|tx| payment::started_due(tx, now, EXPIRY_BATCH))?;
            let batch = due.len();
            for started in due {
                let id = started.id;
                if self.write_user(started.user, move |tx, now| payment::expire(tx, id, now))? {
                    ended += 1;
                }
            }
            if batch < EXPIRY_BATCH as usize {
                break;
            }
        }
        if ended > 0 {
            debug!(ended, "started payments expired");
        }
        Ok(ended)
    }

    /// One page of the top-ups of `user`, newest first.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidPageSize`], [`Error::UserNotFound`].
    pub fn top_ups(&self, user: UserId, page: PageRequest) -> Result<Page<Payment>> {
        let user = user.validate()?;
        let page = page.validate()?;
        self.inner.store.read(|tx| {
            user::ensure_exists(tx, user)?;
            payment::top_ups(tx, user, page)
        })
    }

    fn start_rules(&self) -> StartRules {
        StartRules {
            window: self.inner.payments.window,
            has_gateway: self.inner.payments.gateway.is_some(),
        }
    }

    /// The payment `id` of `user`.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::PaymentNotFound`] (also for another
    /// user's payment).
    pub fn payment(&self, user: UserId, id: PaymentId) -> Result<Payment> {
        let user = user.validate()?;
        let id = id.validate()?;
        self.inner
            .store
            .read(|tx| payment::get_for_user(tx, user, id))
    }

    /// Every payment attempt of the order `order` of `user`, oldest first.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`] (also for another
    /// user's order).
    pub fn payments_for_order(&self, user: UserId, order: OrderId) -> Result<Vec<Payment>> {
        let user = user.validate()?;
        let order = order.validate()?;
        self.inner
            .store
            .read(|tx| payment::for_order(tx, user, order))
    }

    /// The history of the payment `id` of `user`: every status change, with
    /// its time and detail, oldest first.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::PaymentNotFound`] (also for another
    /// user's payment).
    pub fn payment_history(&self, user: UserId, id: PaymentId) -> Result<Vec<PaymentEvent>> {
        let user = user.validate()?;
        let id = id.validate()?;
        self.inner.store.read(|tx| {
            payment::get_for_user(tx, user, id)?;
            payment::events(tx, id)
        })
    }
}
