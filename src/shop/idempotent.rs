//! [`Idempotent`]: the writes a client may retry, made safe by one key.
//!
//! Each method is the `Shop` method of the same name, run under the key;
//! the checks, the transaction and the errors are that method's. There is
//! one way to make a write idempotent — `shop.idempotent(key).host_credit(…)` —
//! and no second copy of each method with a suffix.

use crate::clock::Timestamp;
use crate::store::UserTx;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Shop;
use crate::coupon::UserCoupon;
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey, Keyed};
use crate::ids::{CouponId, OrderId, PaymentId, UserId};
use crate::money::Money;
use crate::order::{Order, OrderLine, OrderRequest};
use crate::payment::{BalancePart, Payment, PgFailRedirect, PgRedirect, refund::Refund};

/// The writes of a [`Shop`] under an optional idempotency key, made by
/// [`Shop::idempotent`].
///
/// With a key, a write stores its response under `(user, key)` in the
/// transaction of its effect. A repeat with the same key and the same
/// request — even one that arrives while the first is still running —
/// waits for the first to commit, runs nothing, and gets
/// [`Keyed::Replayed`] with that response. The same key with another
/// request, for any write of the same user, is refused with
/// [`Error::IdempotencyKeyReused`](crate::Error::IdempotencyKeyReused).
/// For the payment and refund attempts ([`start_payment`](Idempotent::start_payment),
/// [`confirm_payment`](Idempotent::confirm_payment), [`refund`](Idempotent::refund), …)
/// the key is stored with the attempt in its first transaction, and a repeat gets
/// that attempt as it is now (approved, declined, or still unsettled), so a
/// client that timed out may retry and never pays or refunds twice.
///
/// Without a key (`shop.idempotent(None)`), each method is the plain
/// `Shop` method and answers [`Keyed::Fresh`]: a host that takes an
/// optional key from its clients writes one call for both cases.
///
/// Every method fails as its `Shop` namesake, and with a key also with
/// [`Error::InvalidIdempotencyKey`](crate::Error::InvalidIdempotencyKey)
/// and [`Error::IdempotencyKeyReused`](crate::Error::IdempotencyKeyReused).
///
/// # Example
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
/// use liteshop::{IdempotencyKey, Keyed, Money};
///
/// let kim = shop.create_user("Kim")?;
/// let key = IdempotencyKey::new("7f3a-credit", "credit:500"); // key, request fingerprint
/// let first = shop.idempotent(&key).host_credit(kim.id, Money::new(500)?)?;
/// assert_eq!(first, Keyed::Fresh(Money::new(500)?));
/// let again = shop.idempotent(&key).host_credit(kim.id, Money::new(500)?)?;
/// assert!(again.is_replay());
/// assert_eq!(shop.balance(kim.id)?, Money::new(500)?); // credited once
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Idempotent<'a> {
    shop: &'a Shop,
    key: Option<&'a IdempotencyKey>,
}

impl Shop {
    /// The writes a client may retry, under `key` (an
    /// [`IdempotencyKey`], or `None` for plain writes). See [`Idempotent`].
    pub fn idempotent<'a>(&'a self, key: impl Into<Option<&'a IdempotencyKey>>) -> Idempotent<'a> {
        Idempotent {
            shop: self,
            key: key.into(),
        }
    }
}

impl Idempotent<'_> {
    /// [`Shop::host_credit`]: the new balance is stored with the credit.
    pub fn host_credit(&self, user: UserId, amount: Money) -> Result<Keyed<Money>> {
        let body = self.shop.host_credit_body(user, amount)?;
        self.write(user, body)
    }

    /// [`Shop::grant`] (an operator's): the new balance is stored with the
    /// grant under the key, in the user's keys; a repeat grants nothing.
    pub fn grant(&self, user: UserId, amount: Money, note: &str) -> Result<Keyed<Money>> {
        let body = self.shop.operator_body(true, user, amount, note)?;
        self.write(user, body)
    }

    /// [`Shop::take_back`] (an operator's): as [`Idempotent::grant`].
    pub fn take_back(&self, user: UserId, amount: Money, note: &str) -> Result<Keyed<Money>> {
        let body = self.shop.operator_body(false, user, amount, note)?;
        self.write(user, body)
    }

    /// [`Shop::place_order`]: a repeat gets the order placed the first time
    /// and reserves nothing more.
    pub fn place_order(
        &self,
        user: UserId,
        request: impl Into<OrderRequest>,
    ) -> Result<Keyed<Order>> {
        if self.key.is_none() {
            return self
                .shop
                .place_unkeyed(user, request.into())
                .map(Keyed::Fresh);
        }
        let body = self.shop.place_order_body(user, request.into())?;
        self.write(user, body)
    }

    /// [`Shop::checkout_cart`]: a repeat gets the order placed the first
    /// time (the cart is empty by then).
    pub fn checkout_cart(&self, user: UserId, coupon: Option<CouponId>) -> Result<Keyed<Order>> {
        let body = self.shop.checkout_body(user, coupon)?;
        self.write(user, body)
    }

    /// [`Shop::cancel_order`]: a repeat gets the cancelled order back
    /// instead of "already cancelled".
    pub fn cancel_order(&self, user: UserId, id: OrderId) -> Result<Keyed<Order>> {
        let body = self.shop.cancel_body(user, id)?;
        self.write(user, body)
    }

    /// [`Shop::issue_coupon`]: a repeat gets the coupon issued the first
    /// time instead of "already issued".
    pub fn issue_coupon(&self, user: UserId, id: CouponId) -> Result<Keyed<UserCoupon>> {
        let body = self.shop.issue_body(user, id)?;
        self.write(user, body)
    }

    /// [`Shop::start_payment`]: the key is stored with the payment
    /// attempt; a repeat returns that attempt as it is now.
    pub fn start_payment(
        &self,
        user: UserId,
        order: OrderId,
        balance_part: Money,
    ) -> Result<Keyed<Payment>> {
        self.validate()?;
        self.shop.start_payment_inner(
            user,
            order,
            BalancePart::Exactly(balance_part),
            self.key.cloned(),
        )
    }

    /// [`Shop::start_top_up`]: the key is stored with the top-up; a repeat
    /// returns it as it is now and starts no second one.
    pub fn start_top_up(&self, user: UserId, amount: Money) -> Result<Keyed<Payment>> {
        self.validate()?;
        self.shop
            .start_top_up_inner(user, amount, self.key.cloned())
    }

    /// [`Shop::confirm_payment`]: the key is stored with the confirm's first
    /// transaction; a repeat returns the payment as it is now.
    pub fn confirm_payment(
        &self,
        user: UserId,
        payment: PaymentId,
        redirect: &PgRedirect,
    ) -> Result<Keyed<Payment>> {
        self.validate()?;
        self.shop
            .confirm_payment_inner(user, payment, redirect, self.key.cloned())
    }

    /// [`Shop::fail_payment`]: the key is stored with the ended attempt.
    pub fn fail_payment(
        &self,
        user: UserId,
        payment: PaymentId,
        redirect: &PgFailRedirect,
    ) -> Result<Keyed<Payment>> {
        self.validate()?;
        self.shop
            .fail_payment_inner(user, payment, redirect, self.key.cloned())
    }

    /// [`Shop::refund`] (every unit left): the key is stored with the
    /// refund attempt.
    pub fn refund(&self, user: UserId, order: OrderId, reason: &str) -> Result<Keyed<Refund>> {
        self.validate()?;
        self.shop
            .refund_inner(user, order, None, reason, self.key.cloned())
    }

    /// [`Shop::refund_top_up`]: the key is stored with the refund attempt;
    /// a repeat returns that attempt as it is now and gives nothing back
    /// twice.
    pub fn refund_top_up(
        &self,
        user: UserId,
        payment: PaymentId,
        amount: Money,
        reason: &str,
    ) -> Result<Keyed<Refund>> {
        self.validate()?;
        self.shop
            .refund_top_up_inner(user, payment, amount, reason, self.key.cloned())
    }

    /// [`Shop::refund_lines`]: the key is stored with the refund attempt, so
    /// a retried partial refund never returns the units twice.
    pub fn refund_lines(
        &self,
        user: UserId,
        order: OrderId,
        lines: &[OrderLine],
        reason: &str,
    ) -> Result<Keyed<Refund>> {
        self.validate()?;
        self.shop
            .refund_inner(user, order, Some(lines), reason, self.key.cloned())
    }

    fn validate(&self) -> Result<()> {
        self.key.map_or(Ok(()), IdempotencyKey::validate)
    }

    /// Runs `body` in one write transaction, under the key if there is one.
    fn write<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        user: UserId,
        body: impl Fn(&UserTx<'_>, Timestamp) -> Result<T> + Send + 'static,
    ) -> Result<Keyed<T>> {
        let store = &self.shop.inner.store;
        let Some(key) = self.key else {
            return self.shop.write_user(user, body).map(Keyed::Fresh);
        };
        key.validate()?;
        let user = user.validate()?;
        let owned = key.clone();
        match self.shop.write_user(user, move |tx, now| {
            idempotency::run(tx, &owned, now, &body)
        }) {
            // The connection was lost after COMMIT was sent: the key, stored
            // in the same transaction as the effect, says whether it took.
            Err(Error::CommitOutcomeUnknown) => {
                idempotency::after_lost_commit(store, &self.shop.inner.clock, user, key)
                    .map(Keyed::Replayed)
            }
            other => other,
        }
    }
}
