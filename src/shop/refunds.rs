//! Refunds of an order's units, each won the way it came.

use super::Shop;
use crate::error::{Entity, Error, Result};
use crate::idempotency::{IdempotencyKey, Keyed};
use crate::ids::{OrderId, PaymentId, UserId};
use crate::money::Money;
use crate::order::{self, OrderLine};
use crate::payment::refund::{self, Refund};
use crate::{payment, validate};

impl Shop {
    /// Refunds every unit of the paid order `order` of `user` not refunded
    /// yet. See [`Shop::refund_lines`] for the steps, checks and errors.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use liteshop::{FakeGateway, Money, NewProduct, OrderLine, OrderStatus, RefundStatus, Shop};
    ///
    /// let pg = FakeGateway::new();
    /// let shop = Shop::builder(dir.path().join("shop.db")).gateway(pg.clone()).build()?;
    /// let kim = shop.create_user("Kim")?;
    /// shop.grant(kim.id, Money::new(30_000)?, "welcome points")?;
    /// let tea = shop.create_product(NewProduct { name: "Tea".into(), price: Money::new(5_000)?, stock: 5 })?;
    /// let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 3)])?;
    /// // 10,000 from the balance, 5,000 by card.
    /// let started = shop.start_payment(kim.id, order.id, Money::new(10_000)?)?;
    /// shop.confirm_payment(kim.id, started.id, &pg.pay_widget(&started.widget().unwrap()))?;
    ///
    /// // The PG part goes back first: this unit goes back to the card.
    /// let one = shop.refund_lines(kim.id, order.id, &[OrderLine::new(tea.id, 1)], "one broke")?;
    /// assert_eq!((one.status, one.pg_amount), (RefundStatus::Completed, Money::new(5_000)?));
    /// assert_eq!(shop.order(kim.id, order.id)?.status, OrderStatus::PartiallyRefunded);
    ///
    /// let rest = shop.refund(kim.id, order.id, "changed my mind")?;
    /// assert_eq!(rest.balance_amount, Money::new(10_000)?);
    /// assert_eq!(shop.order(kim.id, order.id)?.status, OrderStatus::Refunded);
    /// assert_eq!(shop.balance(kim.id)?, Money::new(30_000)?);
    /// assert_eq!(shop.product(tea.id)?.stock, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// As [`Shop::refund_lines`].
    pub fn refund(&self, user: UserId, order: OrderId, reason: &str) -> Result<Refund> {
        self.refund_inner(user, order, None, reason, None)
            .map(Keyed::into_inner)
    }

    /// Refunds `lines` (products and unit counts) of the paid order `order`
    /// of `user`: credits what those units were paid, puts them back into
    /// stock, and moves the order to `PartiallyRefunded`, or to `Refunded`
    /// once no unit is left.
    ///
    /// The steps, exactly once whatever happens:
    ///
    /// 1. In one write transaction — checks, in order: ids valid, lines
    ///    valid (as for an order: at least one, no product twice, quantities
    ///    at least 1), reason 1 to 200 characters with no white space at
    ///    either end and no control character → the order exists and is the user's → it is
    ///    `Paid` or `PartiallyRefunded` → no other refund of it is in flight
    ///    → each line's product is on the order with that many units not yet
    ///    refunded → the credit, plus the money already in flight, fits under
    ///    the balance limit. Then the attempt is recorded as `Requested` with
    ///    its own fresh idempotency key and its lines; from now on its amount
    ///    counts as in flight, so the credit will fit when it comes.
    /// 2. With no transaction open, the gateway is asked to cancel that
    ///    amount with that key, retrying only calls that provably never
    ///    reached it.
    /// 3. In a second write transaction the answer is recorded: cancelled →
    ///    [`RefundStatus::Completed`](crate::RefundStatus::Completed), the
    ///    balance credited (a [`Refund`](crate::LedgerKind::Refund) ledger
    ///    entry), the units released, the order moved, `Ok`; declined →
    ///    `Declined`, nothing moved, [`Error::RefundDeclined`] (a later
    ///    refund is a new attempt with a new key); no definite answer →
    ///    `Unknown`, nothing moved yet, [`Error::RefundOutcomeUnknown`] —
    ///    [`Shop::reconcile_payments`] settles it later.
    ///
    /// The money of a line is spread over its units so that the refunds of
    /// a line, in any split, add up to exactly what it was paid
    /// ([`OrderItem::amount`](crate::OrderItem::amount)); the completed
    /// refunds of a payment never add up to more than it.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::EmptyOrder`],
    /// [`Error::TooManyOrderLines`], [`Error::InvalidQuantity`],
    /// [`Error::DuplicateOrderLine`], [`Error::InvalidRefundReason`],
    /// [`Error::InvalidCharacter`], [`Error::EdgeWhitespace`],
    /// [`Error::NoGateway`],
    /// [`Error::OrderNotFound`], [`Error::InvalidTransition`],
    /// [`Error::RefundInProgress`], [`Error::RefundExceedsOrder`],
    /// [`Error::BalanceLimitExceeded`] (all changing nothing); then
    /// [`Error::RefundDeclined`], [`Error::GatewayUnavailable`],
    /// [`Error::GatewayRejected`] (the attempt recorded `Declined`, nothing
    /// else moved) or [`Error::RefundOutcomeUnknown`] (the attempt held for
    /// reconciliation; also when the answer could not be recorded).
    pub fn refund_lines(
        &self,
        user: UserId,
        order: OrderId,
        lines: &[OrderLine],
        reason: &str,
    ) -> Result<Refund> {
        self.refund_inner(user, order, Some(lines), reason, None)
            .map(Keyed::into_inner)
    }

    /// A refund of `lines` (`None`: every unit left), under `key` if there
    /// is one: every check of [`Shop::refund_lines`], in its order, then the
    /// flow.
    pub(super) fn refund_inner(
        &self,
        user: UserId,
        order: OrderId,
        lines: Option<&[OrderLine]>,
        reason: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Refund>> {
        if let Some(lines) = lines {
            let limits = &self.inner.limits;
            order::validate_lines(lines, limits.max_order_quantity, limits.max_order_lines)?;
        }
        let lines = lines.map(<[OrderLine]>::to_vec);
        let user = user.validate()?;
        let order = order.validate()?;
        let reason = refund_reason(reason)?;
        self.payments().refund(user, order, lines, reason, key)
    }

    /// Every refund attempt of the order `order` of `user`, oldest first,
    /// with its lines and status.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`] (also for another
    /// user's order).
    pub fn refunds(&self, user: UserId, order: OrderId) -> Result<Vec<Refund>> {
        let user = user.validate()?;
        let order = order.validate()?;
        self.inner
            .store
            .read(|tx| refund::for_order(tx, user, order))
    }

    /// Refunds `amount` of the approved top-up `payment` of `user` to the
    /// card it was paid with, while that money is still unspent in the
    /// balance; `reason` is sent to the PG.
    ///
    /// The steps, exactly once whatever happens:
    ///
    /// 1. In one write transaction — checks, in order: ids valid, reason 1
    ///    to 200 characters with no white space at either end and no
    ///    control character → the payment exists and is the user's → it is
    ///    an approved top-up → no other refund of it is in flight → the
    ///    amount is at least 1 won and no more than the top-up not yet
    ///    refunded → the balance covers it (money already spent cannot go
    ///    back to the card). Then the attempt is recorded `Requested` with
    ///    its own key and the amount is taken from the balance at once (a
    ///    [`TopUpRefund`](crate::LedgerKind::TopUpRefund) entry), so it
    ///    cannot be spent meanwhile.
    /// 2. With no transaction open, the PG is asked to cancel that amount
    ///    of the top-up with that key.
    /// 3. In a second write transaction the answer is recorded: cancelled →
    ///    `Completed` (the top-up `Refunded` once all of it went back);
    ///    declined → `Declined`, the amount given back to the balance (a
    ///    [`TopUpRefundReversal`](crate::LedgerKind::TopUpRefundReversal)),
    ///    [`Error::TopUpRefundDeclined`]; no definite answer → held,
    ///    [`Error::TopUpRefundOutcomeUnknown`], and
    ///    [`Shop::reconcile_payments`] settles it.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use liteshop::{FakeGateway, Money, PaymentStatus, RefundStatus, Shop};
    ///
    /// let pg = FakeGateway::new();
    /// let shop = Shop::builder(dir.path().join("shop.db")).gateway(pg.clone()).build()?;
    /// let kim = shop.create_user("Kim")?;
    /// let top_up = shop.start_top_up(kim.id, Money::new(50_000)?)?;
    /// shop.confirm_payment(kim.id, top_up.id, &pg.pay_widget(&top_up.widget().unwrap()))?;
    ///
    /// let refund = shop.refund_top_up(kim.id, top_up.id, Money::new(50_000)?, "not needed")?;
    /// assert_eq!(refund.status, RefundStatus::Completed);
    /// assert_eq!(shop.balance(kim.id)?, Money::ZERO);
    /// assert_eq!(shop.payment(kim.id, top_up.id)?.status, PaymentStatus::Refunded);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidRefundReason`],
    /// [`Error::InvalidCharacter`], [`Error::EdgeWhitespace`],
    /// [`Error::PaymentNotFound`] (also another user's),
    /// [`Error::TopUpNotRefundable`], [`Error::TopUpRefundInProgress`],
    /// [`Error::ZeroAmount`], [`Error::RefundExceedsTopUp`],
    /// [`Error::InsufficientBalance`], [`Error::NoGateway`] — each changing
    /// nothing; then the outcomes of step 3,
    /// [`Error::TopUpRefundDeclined`] and
    /// [`Error::TopUpRefundOutcomeUnknown`], and
    /// [`Error::GatewayUnavailable`] and [`Error::GatewayRejected`] (the
    /// amount given back).
    pub fn refund_top_up(
        &self,
        user: UserId,
        payment: PaymentId,
        amount: Money,
        reason: &str,
    ) -> Result<Refund> {
        self.refund_top_up_inner(user, payment, amount, reason, None)
            .map(Keyed::into_inner)
    }

    pub(crate) fn refund_top_up_inner(
        &self,
        user: UserId,
        payment: PaymentId,
        amount: Money,
        reason: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<Keyed<Refund>> {
        let user = user.validate()?;
        let payment = payment.validate()?;
        let reason = refund_reason(reason)?;
        self.payments()
            .refund_top_up(user, payment, amount, reason, key)
    }

    /// Every refund attempt of the top-up `payment` of `user`, oldest
    /// first; none for a payment of an order (see [`Shop::refunds`]).
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::PaymentNotFound`] (also another
    /// user's).
    pub fn top_up_refunds(&self, user: UserId, payment: PaymentId) -> Result<Vec<Refund>> {
        let user = user.validate()?;
        let payment = payment.validate()?;
        self.inner
            .store
            .read(|tx| payment::refund::for_top_up(tx, user, payment))
    }
}

/// A refund's reason: 1 to 200 characters, no white space at either end,
/// no control character.
pub(crate) fn refund_reason(reason: &str) -> Result<String> {
    const MAX_REASON: usize = 200;
    validate::text(Entity::Refund, reason, MAX_REASON).map_err(|err| match err {
        validate::TextError::Length(length) => Error::InvalidRefundReason {
            length,
            max: MAX_REASON,
        },
        validate::TextError::Control(err) => err,
    })
}
