//! Orders: placing one (from lines or the cart), reading, cancelling, and
//! releasing what overdue orders hold.

use tracing::debug;

use super::Shop;
use crate::balance;
use crate::cart;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{CouponId, OrderId, UserId};
use crate::order::{self, Order, OrderRequest};
use crate::page::{Page, PageRequest};
#[cfg(feature = "postgres")]
use crate::sold_out;
use crate::store::UserTx;
use crate::user;

impl Shop {
    /// Places an order for `lines` (seed flow 7): reserves their stock and
    /// saves the order as [`Pending`](crate::OrderStatus::Pending) until the
    /// reservation time runs out. No money is taken: the payment takes it
    /// later.
    ///
    /// Checks, in order: at least one line, at most the line limit, valid
    /// ids, quantities 1 to the order quantity limit, no product twice (lines
    /// are not merged) → the user exists → every product exists → each
    /// line's stock suffices (if one is short, overdue orders holding that
    /// product are expired first, and a line still short with what they give
    /// back is refused before any stock is taken, so a buyer of a sold-out
    /// product does not wait for the row behind the buyers' commits; on
    /// PostgreSQL, once a placement here found a product short, a one-line
    /// order of it is asked about by one read before any write, which gives
    /// the same refusal from the same committed rows — see
    /// `src/sold_out.rs`) → the
    /// coupon, if any, is the user's, available, not expired, and the
    /// subtotal reaches its minimum. The balance is not checked here: an order may be
    /// paid by card, and the balance part of a payment is checked (and
    /// held) when the payment starts ([`Shop::start_payment`]). All in one
    /// transaction: a refusal of any line leaves
    /// every stock and the coupon as they were. Unit prices and names are
    /// copied onto the order; the discount is spread over its lines (see
    /// [`OrderItem::amount`](crate::OrderItem::amount)). The coupon is used
    /// from now; it comes back if the order is cancelled, expires or is
    /// fully refunded.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{Money, NewProduct, OrderLine, OrderStatus};
    ///
    /// let kim = shop.create_user("Kim")?;
    /// shop.host_credit(kim.id, Money::new(30_000)?)?;
    /// let tea = shop.create_product(NewProduct { name: "Tea".into(), price: Money::new(12_000)?, stock: 5 })?;
    /// let order = shop.place_order(kim.id, &[OrderLine::new(tea.id, 2)])?;
    /// assert_eq!(order.status, OrderStatus::Pending);
    /// assert_eq!(order.total, Money::new(24_000)?);
    /// assert_eq!(shop.product(tea.id)?.stock, 3);
    /// assert_eq!(shop.balance(kim.id)?, Money::new(30_000)?); // not debited yet
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::EmptyOrder`], [`Error::TooManyOrderLines`],
    /// [`Error::InvalidId`], [`Error::InvalidQuantity`],
    /// [`Error::DuplicateOrderLine`], [`Error::UserNotFound`],
    /// [`Error::ProductNotFound`], [`Error::InsufficientStock`],
    /// [`Error::AmountOverflow`], and with a coupon
    /// [`Error::CouponNotFound`] (also one not issued to the user),
    /// [`Error::CouponUsed`], [`Error::CouponExpired`],
    /// [`Error::CouponMinimumNotMet`].
    pub fn place_order(&self, user: UserId, request: impl Into<OrderRequest>) -> Result<Order> {
        let order = self.place_unkeyed(user, request.into())?;
        debug!(user = %user, order = %order.id, total = %order.total, lines = order.lines.len(), "order placed");
        Ok(order)
    }

    /// [`Shop::place_order`] without an idempotency key: on PostgreSQL a
    /// one-line order of a product a placement here found short is first
    /// checked without a transaction ([`crate::sold_out`]); a refusal for
    /// stock marks the product for the next.
    pub(super) fn place_unkeyed(&self, user: UserId, request: OrderRequest) -> Result<Order> {
        #[cfg(feature = "postgres")]
        {
            let inner = &self.inner;
            let check = sold_out::check(&inner.short, user, &request.lines);
            let body = self.place_order_body(user, request)?;
            let placed = match check {
                Some(check) => inner
                    .store
                    .write_user_unless(user, &inner.clock, check, body),
                None => self.write_user(user, body),
            };
            placed.inspect_err(|err| inner.short.note(err))
        }
        #[cfg(not(feature = "postgres"))]
        self.write_user(user, self.place_order_body(user, request)?)
    }

    pub(super) fn place_order_body(
        &self,
        user: UserId,
        request: OrderRequest,
    ) -> Result<impl Fn(&UserTx<'_>, Timestamp) -> Result<Order> + Send + 'static> {
        let OrderRequest { lines, coupon } = request;
        let user = user.validate()?;
        let limits = &self.inner.limits;
        order::validate_lines(&lines, limits.max_order_quantity, limits.max_order_lines)?;
        let coupon = coupon.map(CouponId::validate).transpose()?;
        let reservation = self.inner.reservation_time;
        Ok(move |tx: &UserTx<'_>, now: Timestamp| {
            balance::of_user(tx, user)?; // the user exists
            let expires_at = now.saturating_add(reservation);
            order::place(tx, &lines, coupon, expires_at, now)
        })
    }

    /// Places an order for the lines of `user`'s cart, with `coupon` if
    /// given, and empties the cart, in one transaction: if the order is
    /// refused, the cart, the coupon and every stock stay as they were.
    ///
    /// Checks, in order: the id is valid → the user exists → the cart is not
    /// empty → its lines pass the order limits → then as
    /// [`Shop::place_order`].
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::UserNotFound`], [`Error::EmptyCart`],
    /// then as [`Shop::place_order`].
    pub fn checkout_cart(&self, user: UserId, coupon: Option<CouponId>) -> Result<Order> {
        let order = self.write_user(user, self.checkout_body(user, coupon)?)?;
        debug!(user = %user, order = %order.id, total = %order.total, "cart checked out");
        Ok(order)
    }

    pub(super) fn checkout_body(
        &self,
        user: UserId,
        coupon: Option<CouponId>,
    ) -> Result<impl Fn(&UserTx<'_>, Timestamp) -> Result<Order> + Send + 'static> {
        let user = user.validate()?;
        let coupon = coupon.map(CouponId::validate).transpose()?;
        let max_quantity = self.inner.limits.max_order_quantity;
        let max_lines = self.inner.limits.max_order_lines;
        let reservation = self.inner.reservation_time;
        Ok(move |tx: &UserTx<'_>, now: Timestamp| {
            balance::of_user(tx, user)?; // the user exists
            let expires_at = now.saturating_add(reservation);
            let lines = cart::order_lines(tx, user)?;
            if lines.is_empty() {
                return Err(Error::EmptyCart { user });
            }
            order::validate_lines(&lines, max_quantity, max_lines)?;
            let order = order::place(tx, &lines, coupon, expires_at, now)?;
            cart::clear(tx)?;
            Ok(order)
        })
    }

    /// The order `id` of `user`.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`] (also for another
    /// user's order).
    pub fn order(&self, user: UserId, id: OrderId) -> Result<Order> {
        let user = user.validate()?;
        let id = id.validate()?;
        self.inner.store.read(|tx| order::get(tx, user, id))
    }

    /// One page of the orders of `user`, newest first, with their lines.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidPageSize`], [`Error::UserNotFound`].
    pub fn orders(&self, user: UserId, page: PageRequest) -> Result<Page<Order>> {
        let user = user.validate()?;
        let page = page.validate()?;
        self.inner.store.read(|tx| {
            user::ensure_exists(tx, user)?;
            order::list(tx, user, page)
        })
    }

    /// Cancels the order `id` of `user` and puts its stock back. Only a
    /// `Pending` order can be cancelled.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::OrderNotFound`] (also for another
    /// user's order), [`Error::InvalidTransition`] naming the current state.
    pub fn cancel_order(&self, user: UserId, id: OrderId) -> Result<Order> {
        let order = self.write_user(user, self.cancel_body(user, id)?)?;
        debug!(user = %user, order = %id, "order cancelled");
        Ok(order)
    }

    pub(super) fn cancel_body(
        &self,
        user: UserId,
        id: OrderId,
    ) -> Result<impl Fn(&UserTx<'_>, Timestamp) -> Result<Order> + Send + 'static> {
        user.validate()?;
        let id = id.validate()?;
        Ok(move |tx: &UserTx<'_>, now| order::cancel(tx, id, now))
    }

    /// Cancels every order still `Pending` at its deadline (placed more than
    /// the reservation time ago), puts its stock back, and returns how many.
    /// First it ends the started payments whose confirm window ran out
    /// ([`Shop::expire_payments`]), so an order nobody paid for in the PG's
    /// widget is `Pending` again and expires here if its reservation ran out
    /// too.
    /// Expired orders have [`CancelReason::Expired`](crate::CancelReason).
    ///
    /// A host calls this periodically; [`Shop::place_order`] also expires
    /// the overdue orders that hold stock it needs.
    ///
    /// Each order expires in a write of its own, under its owner's
    /// serialisation, taking the order's row and then its products in id
    /// order — never one order's products and then another order's row, so
    /// the sweep cannot deadlock with a placement on PostgreSQL. An order
    /// that cannot be expired (a database altered outside liteshop) is
    /// logged and left for a person; the others still expire.
    ///
    /// # Failure
    ///
    /// Only storage errors ([`Error::Busy`], [`Error::Storage`]).
    pub fn expire_orders(&self) -> Result<usize> {
        const BATCH: u32 = 100;
        self.expire_payments()?;
        let mut expired = 0;
        loop {
            let now = self.now();
            let due = self.inner.store.read(|tx| order::due(tx, now, BATCH))?;
            let batch = due.len();
            let before = expired;
            for (id, owner) in due {
                match self.write_user(owner, move |tx, now| order::expire_one(tx, id, now)) {
                    Ok(true) => expired += 1,
                    Ok(false) => {}
                    Err(err @ (Error::Busy(_) | Error::CommitOutcomeUnknown)) => return Err(err),
                    Err(err) => {
                        tracing::error!(order = %id, error = %err,
                            "the order could not be expired; left for a person");
                    }
                }
            }
            // A full batch that expired nothing is orders left for a
            // person: the next batch would be the same.
            if batch < BATCH as usize || expired == before {
                break;
            }
        }
        if expired > 0 {
            debug!(expired, "overdue orders expired");
        }
        Ok(expired)
    }
}
