//! The coupon flows of [`Shop`]: create, issue, look up, list.

use crate::clock::Timestamp;
use crate::store::UserTx;
use tracing::debug;

use super::Shop;
use crate::coupon::{self, Coupon, NewCoupon, UserCoupon};
use crate::error::{Entity, Result};
use crate::ids::{CouponId, UserId};
use crate::page::{Page, PageRequest};
use crate::user;
use crate::validate;

impl Shop {
    /// Creates a coupon offer: at most `quantity` are ever issued, one per
    /// user, between `issuable_from` and `issuable_until`; each is usable
    /// for `valid_for` from its issue, on orders whose subtotal is at least
    /// `min_order_total`.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use std::time::Duration;
    /// use liteshop::{Clock, CouponState, Discount, Money, NewCoupon, NewProduct, OrderLine, OrderRequest, PageRequest, SystemClock};
    ///
    /// let now = SystemClock.now();
    /// let coupon = shop.create_coupon(NewCoupon {
    ///     name: "Welcome 10%".into(),
    ///     discount: Discount::Percent { percent: 10, cap: Some(Money::new(5_000)?) },
    ///     quantity: 100,
    ///     issuable_from: now,
    ///     issuable_until: now.saturating_add(Duration::from_secs(86_400)),
    ///     valid_for: Duration::from_secs(7 * 86_400),
    ///     min_order_total: Money::new(10_000)?,
    /// })?;
    /// let kim = shop.create_user("Kim")?;
    /// shop.host_credit(kim.id, Money::new(50_000)?)?;
    /// shop.issue_coupon(kim.id, coupon.id)?;
    ///
    /// let tea = shop.create_product(NewProduct { name: "Tea".into(), price: Money::new(12_000)?, stock: 5 })?;
    /// let order = shop.place_order(kim.id, OrderRequest::new(vec![OrderLine::new(tea.id, 2)]).with_coupon(coupon.id))?;
    /// assert_eq!(order.subtotal, Money::new(24_000)?);
    /// assert_eq!(order.discount, Money::new(2_400)?);
    /// assert_eq!(order.total, Money::new(21_600)?);
    /// let mine = shop.user_coupons(kim.id, PageRequest::first(10))?;
    /// assert_eq!(mine.items[0].state, CouponState::Used { order: order.id });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::InvalidCharacter`](crate::Error::InvalidCharacter),
    /// [`Error::EdgeWhitespace`](crate::Error::EdgeWhitespace),
    /// [`Error::InvalidCoupon`](crate::Error::InvalidCoupon).
    pub fn create_coupon(&self, new: NewCoupon) -> Result<Coupon> {
        let name = validate::name(Entity::Coupon, &new.name)?;
        coupon::validate(&new)?;
        let new = NewCoupon { name, ..new };
        let coupon = self.write_shop(move |tx, now| coupon::create(tx, &new, now))?;
        debug!(coupon = %coupon.id, quantity = coupon.quantity, "coupon created");
        Ok(coupon)
    }

    /// The coupon offer `id`, with how many were issued.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`](crate::Error::InvalidId),
    /// [`Error::CouponNotFound`](crate::Error::CouponNotFound).
    pub fn coupon(&self, id: CouponId) -> Result<Coupon> {
        let id = id.validate()?;
        self.inner.store.read(|tx| coupon::get(tx, id))
    }

    /// Issues coupon `id` to `user`, first come first served.
    ///
    /// Checks, in order: ids valid → the user exists → the coupon exists →
    /// now is in its issue window → the user does not hold it yet → one is
    /// left. The user's coupon is inserted and the coupon's count a guarded
    /// `UPDATE … WHERE issued < quantity`, in one transaction: however many
    /// threads or processes race, at most `quantity` are issued, and at
    /// most one per user. A coupon read as sold out is refused without the
    /// `UPDATE`, so a late caller does not wait behind the winners.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`](crate::Error::InvalidId),
    /// [`Error::UserNotFound`](crate::Error::UserNotFound),
    /// [`Error::CouponNotFound`](crate::Error::CouponNotFound),
    /// [`Error::CouponNotIssuable`](crate::Error::CouponNotIssuable),
    /// [`Error::CouponAlreadyIssued`](crate::Error::CouponAlreadyIssued),
    /// [`Error::CouponSoldOut`](crate::Error::CouponSoldOut).
    pub fn issue_coupon(&self, user: UserId, id: CouponId) -> Result<UserCoupon> {
        let issued = self.write_user(user, self.issue_body(user, id)?)?;
        debug!(user = %user, coupon = %id, "coupon issued");
        Ok(issued)
    }

    pub(super) fn issue_body(
        &self,
        user: UserId,
        id: CouponId,
    ) -> Result<impl Fn(&UserTx<'_>, Timestamp) -> Result<UserCoupon> + Send + 'static> {
        let user = user.validate()?;
        let id = id.validate()?;
        Ok(move |tx: &UserTx<'_>, now| {
            user::ensure_exists(tx, user)?;
            coupon::issue(tx, id, now)
        })
    }

    /// One page of the coupons issued to `user`, newest offer first, each
    /// with its state by the shop's clock: `Available`, `Used` (with the
    /// order) or `Expired`.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`](crate::Error::InvalidId),
    /// [`Error::InvalidPageSize`](crate::Error::InvalidPageSize),
    /// [`Error::UserNotFound`](crate::Error::UserNotFound).
    pub fn user_coupons(&self, user: UserId, page: PageRequest) -> Result<Page<UserCoupon>> {
        let user = user.validate()?;
        let page = page.validate()?;
        let now = self.now();
        self.inner.store.read(|tx| {
            user::ensure_exists(tx, user)?;
            coupon::list(tx, user, page, now)
        })
    }
}
