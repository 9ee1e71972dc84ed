//! Orders: placing one (reserving its stock), reading, cancelling, and
//! expiring unpaid orders so their stock returns.
//!
//! The life cycle table is in the crate docs; [`OrderStatus::can_become`]
//! is its code.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::coupon;
use crate::db::{Backend, Db, Reads, Row, at};
use crate::error::{Error, Result};
use crate::feed::{self, EventPayload, Subject};
use crate::ids::{CouponId, OrderId, ProductId, UserId};
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::product::{self, Product};
use crate::sales;
use crate::store::UserTx;
use crate::store::failure::corrupt;
use crate::text_enum::text_enum;
use crate::validate;

/// One line of an order to place: a product and how many units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product: ProductId,
    /// How many units (1 to the order quantity limit).
    pub quantity: u32,
}

impl OrderLine {
    /// `quantity` units of `product`.
    pub const fn new(product: ProductId, quantity: u32) -> OrderLine {
        OrderLine { product, quantity }
    }
}

/// What to order: the lines and, optionally, one of the user's coupons.
/// [`Shop::place_order`](crate::Shop::place_order) takes anything that
/// converts into it, so a plain slice of lines is an order without a coupon.
///
/// ```
/// use liteshop::{CouponId, OrderLine, OrderRequest, ProductId};
///
/// let tea = ProductId::new(1);
/// let plain: OrderRequest = (&[OrderLine::new(tea, 2)]).into();
/// assert_eq!(plain.coupon, None);
/// let with = OrderRequest::new(vec![OrderLine::new(tea, 2)]).with_coupon(CouponId::new(7));
/// assert_eq!(with.coupon, Some(CouponId::new(7)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// The lines, each product once.
    pub lines: Vec<OrderLine>,
    /// A coupon issued to the user and available, if any.
    pub coupon: Option<CouponId>,
}

impl OrderRequest {
    /// An order of `lines` without a coupon.
    pub fn new(lines: impl Into<Vec<OrderLine>>) -> OrderRequest {
        OrderRequest {
            lines: lines.into(),
            coupon: None,
        }
    }

    /// The same order, using `coupon`.
    pub fn with_coupon(self, coupon: CouponId) -> OrderRequest {
        OrderRequest {
            coupon: Some(coupon),
            ..self
        }
    }
}

impl From<&[OrderLine]> for OrderRequest {
    fn from(lines: &[OrderLine]) -> OrderRequest {
        OrderRequest::new(lines)
    }
}

impl<const N: usize> From<&[OrderLine; N]> for OrderRequest {
    fn from(lines: &[OrderLine; N]) -> OrderRequest {
        OrderRequest::new(lines.as_slice())
    }
}

impl From<&Vec<OrderLine>> for OrderRequest {
    fn from(lines: &Vec<OrderLine>) -> OrderRequest {
        OrderRequest::new(lines.as_slice())
    }
}

impl From<Vec<OrderLine>> for OrderRequest {
    fn from(lines: Vec<OrderLine>) -> OrderRequest {
        OrderRequest::new(lines)
    }
}

/// One line of a placed order, with the product's name and unit price as
/// they were when the order was placed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product.
    pub product: ProductId,
    /// The product's name at order time.
    pub name: String,
    /// The unit price at order time; later price changes do not touch it.
    pub unit_price: Money,
    /// How many units.
    pub quantity: u32,
    /// `unit_price × quantity`.
    pub line_total: Money,
    /// What the buyer pays for this line: `line_total` less the line's
    /// share of any order-level discount (see [the rule](crate#refunds-exactly-once-whole-or-partial)). The amounts of an
    /// order's lines add up to its total.
    pub amount: Money,
    /// How many of the units were refunded.
    pub refunded: u32,
    /// Sold free of VAT: the product was [`tax_free`](crate::Product::tax_free)
    /// when the order was placed.
    #[serde(default)]
    pub tax_free: bool,
}

/// Where an order is in its life cycle (see [the table](crate#orders)).
///
/// Stored as lowercase text under a `CHECK` constraint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock is reserved; the order awaits payment until it expires.
    Pending,
    /// A payment is in flight; the money is held.
    Paying,
    /// Paid.
    Paid,
    /// Paid, then some of its units refunded; those units were released.
    PartiallyRefunded,
    /// Cancelled by the user or by expiry; its stock was released.
    Cancelled,
    /// Paid, then every unit refunded; its stock was released.
    Refunded,
}

impl OrderStatus {
    /// Whether an order may move from `self` to `to`.
    ///
    /// ```
    /// use liteshop::OrderStatus::*;
    ///
    /// assert!(Pending.can_become(Cancelled));
    /// assert!(!Paid.can_become(Cancelled));
    /// assert!(!Cancelled.can_become(Pending));
    /// assert!(Paid.can_become(PartiallyRefunded));
    /// assert!(PartiallyRefunded.can_become(PartiallyRefunded)); // a further partial refund
    /// ```
    pub const fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Paying)
                | (Pending, Cancelled)
                | (Paying, Paid)
                | (Paying, Pending)
                | (Paid, PartiallyRefunded)
                | (Paid, Refunded)
                | (PartiallyRefunded, PartiallyRefunded)
                | (PartiallyRefunded, Refunded)
        )
    }

    /// Whether an order in this state keeps units out of stock (for a
    /// partially refunded order, those not refunded).
    pub const fn holds_stock(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending
                | OrderStatus::Paying
                | OrderStatus::Paid
                | OrderStatus::PartiallyRefunded
        )
    }

    /// Whether units of an order in this state can be refunded: `Paid` or
    /// `PartiallyRefunded`.
    pub const fn is_refundable(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::PartiallyRefunded)
    }

    /// Every state, in life-cycle order.
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Paying,
        OrderStatus::Paid,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
    ];
}

text_enum!(OrderStatus {
    Pending => "pending",
    Paying => "paying",
    Paid => "paid",
    PartiallyRefunded => "partially_refunded",
    Cancelled => "cancelled",
    Refunded => "refunded",
});

/// Why an order was cancelled.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The user cancelled it.
    User,
    /// It stayed unpaid past its reservation time.
    Expired,
}

text_enum!(CancelReason {
    User => "user",
    Expired => "expired",
});

/// A placed order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = json!({"id": 1, "user": 1, "status": "pending", "cancel_reason": null,
    "lines": [{"product": 1, "name": "Tea", "unit_price": 1000, "quantity": 1, "line_total": 1000,
    "amount": 1000, "refunded": 0, "tax_free": false}],
    "subtotal": 1000, "discount": 0, "coupon": null, "total": 1000, "refunded": 0,
    "created_at": 1795529268217_i64, "expires_at": 1795530168217_i64,
    "updated_at": 1795529268217_i64, "paid_at": null})))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: OrderId,
    /// Whose order.
    pub user: UserId,
    /// Where it is in its life cycle.
    pub status: OrderStatus,
    /// Why it was cancelled; `Some` exactly when `status` is `Cancelled`.
    pub cancel_reason: Option<CancelReason>,
    /// The lines, in the order they were given.
    pub lines: Vec<OrderItem>,
    /// What its lines cost before any discount: the sum of their
    /// `line_total`s.
    pub subtotal: Money,
    /// What the coupon took off the subtotal (zero without one).
    pub discount: Money,
    /// The coupon it used, if any.
    pub coupon: Option<CouponId>,
    /// What the order costs: `subtotal − discount`, the sum of its lines'
    /// amounts. The payment charges this.
    pub total: Money,
    /// How much of the total was refunded so far.
    pub refunded: Money,
    /// When it was placed.
    pub created_at: Timestamp,
    /// When it expires if still `Pending`.
    pub expires_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
    /// When it was paid (the day its units count as sold), once it was.
    pub paid_at: Option<Timestamp>,
}

pub(crate) const SELECT_ORDER: &str =
    "SELECT id, user_id, status, cancel_reason, total, refunded, created_at, expires_at, updated_at,
            discount, coupon_id, paid_at
     FROM orders WHERE id = ?1 AND user_id = ?2";

pub(crate) const SELECT_ORDER_PAGE: &str =
    "SELECT id, user_id, status, cancel_reason, total, refunded, created_at, expires_at, updated_at,
            discount, coupon_id, paid_at
     FROM orders WHERE user_id = ?1 AND id < ?2
     ORDER BY id DESC LIMIT ?3";

pub(crate) const SELECT_ITEMS: &str =
    "SELECT order_id, product_id, name, unit_price, quantity, amount, refunded, tax_free
     FROM order_items WHERE order_id = ?1 ORDER BY id";

/// The items of the orders of `user` with ids from `?2` to `?3`: the lines of
/// one page of orders in one statement.
pub(crate) const SELECT_ITEMS_OF_RANGE: &str =
    "SELECT i.order_id, i.product_id, i.name, i.unit_price, i.quantity, i.amount, i.refunded,
            i.tax_free
     FROM orders o JOIN order_items i ON i.order_id = o.id
     WHERE o.user_id = ?1 AND o.id BETWEEN ?2 AND ?3
     ORDER BY i.id";

pub(crate) const SELECT_DUE: &str = "SELECT id, user_id FROM orders
     WHERE status = 'pending' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2";

/// `CROSS JOIN` fixes the join order: walk the few overdue pending orders
/// (partial index), then probe each for the product, rather than walk every
/// order line the product ever had.
pub(crate) const SELECT_DUE_HOLDING: &str =
    "SELECT o.id, o.user_id FROM orders o CROSS JOIN order_items i ON i.order_id = o.id
     WHERE o.status = 'pending' AND o.expires_at <= ?2 AND i.product_id = ?1";

/// [`SELECT_DUE_HOLDING`] for PostgreSQL, whose planner picks the join
/// order itself (`CROSS JOIN … ON` is SQLite's way to fix it).
const SELECT_DUE_HOLDING_PG: &str =
    "SELECT o.id, o.user_id FROM orders o JOIN order_items i ON i.order_id = o.id
     WHERE o.status = 'pending' AND o.expires_at <= ?2 AND i.product_id = ?1";

/// Checks the lines of an order before anything is looked up: at least one
/// line and at most `max_lines`, valid ids, quantities 1 to `max_quantity`,
/// and no product twice.
pub(crate) fn validate_lines(
    lines: &[OrderLine],
    max_quantity: u32,
    max_lines: usize,
) -> Result<()> {
    if lines.is_empty() {
        return Err(Error::EmptyOrder);
    }
    if lines.len() > max_lines {
        return Err(Error::TooManyOrderLines {
            lines: lines.len(),
            max: max_lines,
        });
    }
    let mut seen = HashSet::with_capacity(lines.len());
    for line in lines {
        line.product.validate()?;
        validate::quantity(line.quantity, max_quantity)?;
        if !seen.insert(line.product) {
            return Err(Error::DuplicateOrderLine {
                product: line.product,
            });
        }
    }
    Ok(())
}

/// Places an order of checked `lines` for `user` (known to exist), in the
/// seed's order: every product exists → each line's stock is reserved
/// (a product short as read first has the overdue orders that hold it
/// expired, their rows before any product row; a line still short with
/// what they give back is refused before any product row is taken) → the
/// coupon, if any, is the user's, available, unexpired and the subtotal
/// reaches its minimum → the order is saved as `Pending` until
/// `expires_at`, and the coupon marked used by it.
///
/// The caller's write transaction makes it all or nothing: a refusal of any
/// line leaves every stock as it was.
pub(crate) fn place(
    tx: &UserTx<'_>,
    lines: &[OrderLine],
    coupon: Option<CouponId>,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<Order> {
    let user = tx.user();
    let products = lines
        .iter()
        .map(|line| product::get(tx, line.product))
        .collect::<Result<Vec<Product>>>()?;
    // A product short as read now may be held by overdue orders: they are
    // expired first, in this transaction — their rows locked before any
    // product — and then every product row this placement changes (the
    // expired orders' and its own) is taken once, in id order, as every
    // write takes them, so this never deadlocks with a sweep, a cancel or
    // another placement.
    let mut releases: BTreeMap<ProductId, u32> = BTreeMap::new();
    let mut expired = Vec::new();
    for (line, product) in lines.iter().zip(&products) {
        if product.stock < line.quantity {
            for (id, _) in due_holding(tx, line.product, now)? {
                if !expired.contains(&id) {
                    expired.push(id);
                }
            }
        }
    }
    expired.sort_unstable();
    let mut ended = Vec::new();
    for id in expired {
        if let Some(owner) = end_overdue(tx, id, now)? {
            for (product, quantity) in unreleased(tx, id)? {
                *releases.entry(product).or_default() += quantity;
            }
            ended.push((id, owner));
        }
    }
    let wanted: BTreeMap<ProductId, &OrderLine> =
        lines.iter().map(|line| (line.product, line)).collect();
    // A line still short with what the expired orders give back is refused
    // here, before any product row is taken: its stock as read was committed
    // stock, so the refusal is true as of that read, and a loser of a sold-out
    // product does not queue for the row behind the winners' commits.
    let short = lines
        .iter()
        .zip(&products)
        .map(|(line, read)| {
            let released = releases.get(&line.product).copied().unwrap_or(0);
            (line, read.stock.saturating_add(released))
        })
        .filter(|(line, at_hand)| *at_hand < line.quantity)
        .min_by_key(|(line, _)| line.product);
    if let Some((line, at_hand)) = short {
        return Err(Error::InsufficientStock {
            product: line.product,
            requested: line.quantity,
            available: at_hand,
        });
    }
    let touched: BTreeSet<ProductId> = releases.keys().chain(wanted.keys()).copied().collect();
    for product in touched {
        if let Some(&quantity) = releases.get(&product) {
            product::release_stock(tx, product, quantity, now)?;
        }
        if let Some(line) = wanted.get(&product) {
            reserve(tx, line, now)?;
        }
    }
    for (id, owner) in ended {
        after_release(tx, id, owner, CancelReason::Expired, now)?;
        tracing::debug!(order = %id, "order expired for a placement");
    }
    let mut items = lines
        .iter()
        .zip(products)
        .map(|(line, product)| {
            let mut item = item(product.id, product.name, product.price, line.quantity)?;
            item.tax_free = product.tax_free;
            Ok(item)
        })
        .collect::<Result<Vec<_>>>()?;
    let subtotal = Money::checked_sum(items.iter().map(|item| item.line_total))
        .ok_or(Error::AmountOverflow)?;
    let usable = coupon
        .map(|id| coupon::usable(tx, user, id, subtotal, now))
        .transpose()?;
    let discount = usable.as_ref().map_or(Money::ZERO, |u| u.discount);
    // The discount is spread over the lines by one rule, so that refunds of
    // any units add up to exactly what was paid.
    let amounts = spread(
        discount,
        &items.iter().map(|i| i.line_total).collect::<Vec<_>>(),
    );
    for (item, amount) in items.iter_mut().zip(amounts) {
        item.amount = amount;
    }
    let total = subtotal
        .checked_sub(discount)
        .ok_or(Error::AmountOverflow)?;
    let id: OrderId = tx
        .query_row(
            "INSERT INTO orders (user_id, status, total, discount, coupon_id, created_at,
                                 expires_at, updated_at)
             VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?5)
             RETURNING id",
            &[
                &user,
                &total,
                &discount,
                &usable.as_ref().map(|u| u.coupon),
                &now,
                &expires_at,
            ],
        )?
        .get(0)?;
    if let Some(usable) = &usable {
        coupon::use_for(tx, usable, id, now)?;
    }
    feed::append(
        tx,
        Subject::order(user, id),
        &EventPayload::OrderPlaced {
            lines: items.clone(),
            subtotal,
            discount,
            total,
            coupon: usable.as_ref().map(|u| u.coupon),
        },
        now,
    )?;
    for item in &items {
        tx.execute(
            "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity, amount,
                                      tax_free)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                &id,
                &item.product,
                &item.name,
                &item.unit_price,
                &item.quantity,
                &item.amount,
                &i64::from(item.tax_free),
            ],
        )?;
    }
    Ok(Order {
        id,
        user,
        status: OrderStatus::Pending,
        cancel_reason: None,
        lines: items,
        subtotal,
        discount,
        coupon: usable.map(|u| u.coupon),
        total,
        refunded: Money::ZERO,
        created_at: now,
        expires_at,
        updated_at: now,
        paid_at: None,
    })
}

/// Reserves the stock of one line, or refuses with
/// [`Error::InsufficientStock`]. (Overdue orders holding the product were
/// expired before any product was taken: see [`place`].)
fn reserve(tx: &dyn Db, line: &OrderLine, now: Timestamp) -> Result<()> {
    if product::reserve_stock(tx, line.product, line.quantity, now)? {
        return Ok(());
    }
    Err(Error::InsufficientStock {
        product: line.product,
        requested: line.quantity,
        available: product::get(tx, line.product)?.stock,
    })
}

/// The owner of an order, looked up by its id alone (an operator's read).
pub(crate) const SELECT_OWNER: &str = "SELECT user_id FROM orders WHERE id = ?1";

/// Who placed the order `id`, if it exists.
pub(crate) fn owner(conn: &dyn Db, id: OrderId) -> Result<Option<UserId>> {
    conn.query_opt(SELECT_OWNER, &[&id])?
        .map(|row| row.get(0))
        .transpose()
}

/// The order `id` of `user`; another user's order is not found.
pub(crate) fn get(conn: &dyn Db, user: UserId, id: OrderId) -> Result<Order> {
    let mut order = order_row(
        &conn
            .query_opt(SELECT_ORDER, &[&id, &user])?
            .ok_or(Error::OrderNotFound(id))?,
    )?;
    for row in conn.query(SELECT_ITEMS, &[&id])? {
        order.lines.push(item_row(&row)?.1);
    }
    Ok(order)
}

/// One page of the orders of `user`, newest first, with their lines.
pub(crate) fn list(conn: &dyn Db, user: UserId, page: PageRequest) -> Result<Page<Order>> {
    let before = page.cursor().map_or(i64::MAX, |c| c.key());
    let limit = i64::from(page.limit()) + 1;
    let orders = conn
        .query(SELECT_ORDER_PAGE, &[&user, &before, &limit])?
        .iter()
        .map(order_row)
        .collect::<Result<Vec<_>>>()?;
    let mut page = Page::from_rows(orders, page.limit(), |order| order.id.get());
    if let (Some(newest), Some(oldest)) = (page.items.first(), page.items.last()) {
        let mut lines: HashMap<OrderId, Vec<OrderItem>> = HashMap::new();
        for row in conn.query(SELECT_ITEMS_OF_RANGE, &[&user, &oldest.id, &newest.id])? {
            let (order, item) = item_row(&row)?;
            lines.entry(order).or_default().push(item);
        }
        for order in &mut page.items {
            order.lines = lines.remove(&order.id).unwrap_or_default();
        }
    }
    Ok(page)
}

/// Cancels the `Pending` order `id` of `user` and releases its stock.
pub(crate) fn cancel(tx: &UserTx<'_>, id: OrderId, now: Timestamp) -> Result<Order> {
    let user = tx.user();
    let order = get(tx, user, id)?;
    if !order.status.can_become(OrderStatus::Cancelled)
        || !release(tx, id, CancelReason::User, now)?
    {
        return Err(Error::InvalidTransition {
            order: id,
            from: order.status,
            to: OrderStatus::Cancelled,
        });
    }
    Ok(Order {
        status: OrderStatus::Cancelled,
        cancel_reason: Some(CancelReason::User),
        updated_at: now,
        ..order
    })
}

/// Up to `limit` orders still `Pending` at their deadline, oldest deadline
/// first, with their owners.
pub(crate) fn due(conn: &dyn Db, now: Timestamp, limit: u32) -> Result<Vec<(OrderId, UserId)>> {
    conn.query(SELECT_DUE, &[&now, &i64::from(limit)])?
        .iter()
        .map(|row| Ok((row.get(0)?, row.get(1)?)))
        .collect()
}

/// Expires the order `id` if it is still `Pending` past its deadline, and
/// releases its stock, as a write of its own: it takes the order's row and
/// then its products in id order, the lock order every write keeps.
/// Returns whether it expired it.
pub(crate) fn expire_one(tx: &dyn Db, id: OrderId, now: Timestamp) -> Result<bool> {
    let Some(owner) = end_overdue(tx, id, now)? else {
        return Ok(false);
    };
    restock(tx, id, now)?;
    after_release(tx, id, owner, CancelReason::Expired, now)?;
    Ok(true)
}

/// The overdue `Pending` orders that hold `product`, with their owners.
fn due_holding(tx: &dyn Db, product: ProductId, now: Timestamp) -> Result<Vec<(OrderId, UserId)>> {
    let sql = match tx.backend() {
        Backend::Sqlite => SELECT_DUE_HOLDING,
        Backend::Postgres => SELECT_DUE_HOLDING_PG,
    };
    tx.query(sql, &[&product, &now])?
        .iter()
        .map(|row| Ok((row.get(0)?, row.get(1)?)))
        .collect()
}

/// Moves the order `id` from `Pending` to `Cancelled` (expired) if it is
/// still pending past its deadline, and returns its owner; its stock and
/// [`after_release`] are the caller's to do.
fn end_overdue(tx: &dyn Db, id: OrderId, now: Timestamp) -> Result<Option<UserId>> {
    tx.query_opt(
        "UPDATE orders SET status = 'cancelled', cancel_reason = 'expired', updated_at = ?2
         WHERE id = ?1 AND status = 'pending' AND expires_at <= ?2
         RETURNING user_id",
        &[&id, &now],
    )?
    .map(|row| row.get(0))
    .transpose()
}

/// Moves the order `id` from `Pending` to `Cancelled` for `reason` and puts
/// its units back into stock. Returns `false`, changing nothing, if the
/// order is not `Pending`: stock is released only together with the state
/// change, never twice.
fn release(tx: &dyn Db, id: OrderId, reason: CancelReason, now: Timestamp) -> Result<bool> {
    let user: Option<UserId> = tx
        .query_opt(
            "UPDATE orders SET status = 'cancelled', cancel_reason = ?2, updated_at = ?3
             WHERE id = ?1 AND status = 'pending'
             RETURNING user_id",
            &[&id, &reason, &now],
        )?
        .map(|row| row.get(0))
        .transpose()?;
    let Some(user) = user else {
        return Ok(false);
    };
    restock(tx, id, now)?;
    after_release(tx, id, user, reason, now)?;
    Ok(true)
}

/// What follows an order of `owner` leaving `Pending` for `reason`, once
/// its stock is back: its coupon given back and the feed told.
fn after_release(
    tx: &dyn Db,
    id: OrderId,
    owner: UserId,
    reason: CancelReason,
    now: Timestamp,
) -> Result<()> {
    coupon::release(tx, id)?;
    let payload = match reason {
        CancelReason::User => EventPayload::OrderCancelled,
        CancelReason::Expired => EventPayload::OrderExpired,
    };
    feed::append(tx, Subject::order(owner, id), &payload, now)
}

/// Puts the units of every line of order `id` back into stock. Callers do
/// this only in the transaction that moves the order out of a
/// stock-holding state. (Refunds release their own units line by line.)
fn restock(tx: &dyn Db, id: OrderId, now: Timestamp) -> Result<()> {
    for (product, quantity) in unreleased(tx, id)? {
        product::release_stock(tx, product, quantity, now)?;
    }
    Ok(())
}

/// The units each line of order `id` still holds, in product order.
fn unreleased(tx: &dyn Db, id: OrderId) -> Result<Vec<(ProductId, u32)>> {
    tx.query(
        "SELECT product_id, quantity - refunded FROM order_items WHERE order_id = ?1
         ORDER BY product_id",
        &[&id],
    )?
    .iter()
    .map(|row| Ok((row.get(0)?, row.get(1)?)))
    .collect()
}

/// Units of one order line a refund returns: the line (`item`, its rowid),
/// its product, how many units, and what they were paid.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RefundUnits {
    pub(crate) item: i64,
    pub(crate) product: ProductId,
    pub(crate) quantity: u32,
    pub(crate) amount: Money,
    /// The line was sold free of VAT.
    pub(crate) tax_free: bool,
}

/// The units a refund of order `id` returns and what each line's units are
/// worth ([`refund_value`]): for `lines: None`, every unit not refunded yet;
/// otherwise each asked line, which must be on the order with that many
/// units left.
///
/// # Failure
///
/// [`Error::RefundExceedsOrder`] for a product not on the order or asked
/// for more units than are left.
pub(crate) fn refundable_units(
    conn: &dyn Db,
    id: OrderId,
    lines: Option<&[OrderLine]>,
) -> Result<Vec<RefundUnits>> {
    struct Line {
        item: i64,
        product: ProductId,
        quantity: u32,
        amount: Money,
        refunded: u32,
        tax_free: bool,
    }
    let items = conn
        .query(SELECT_REFUNDABLE, &[&id])?
        .iter()
        .map(|row| {
            Ok(Line {
                item: row.get(0)?,
                product: row.get(1)?,
                quantity: row.get(2)?,
                amount: row.get(3)?,
                refunded: row.get(4)?,
                tax_free: row.get::<i64>(5)? != 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let units = |line: &Line, units: u32| RefundUnits {
        item: line.item,
        product: line.product,
        quantity: units,
        amount: refund_value(line.amount, line.quantity, line.refunded, units),
        tax_free: line.tax_free,
    };
    match lines {
        None => Ok(items
            .iter()
            .filter(|line| line.refunded < line.quantity)
            .map(|line| units(line, line.quantity - line.refunded))
            .collect()),
        Some(asked) => {
            let mut chosen = Vec::with_capacity(asked.len());
            for want in asked {
                let line = items.iter().find(|line| line.product == want.product);
                let left = line.map_or(0, |line| line.quantity - line.refunded);
                match line {
                    Some(line) if want.quantity <= left => chosen.push(units(line, want.quantity)),
                    _ => {
                        return Err(Error::RefundExceedsOrder {
                            order: id,
                            product: want.product,
                            requested: want.quantity,
                            refundable: left,
                        });
                    }
                }
            }
            // The order's line order, whatever order they were asked in.
            chosen.sort_by_key(|unit| unit.item);
            Ok(chosen)
        }
    }
}

pub(crate) const SELECT_REFUNDABLE: &str =
    "SELECT id, product_id, quantity, amount, refunded, tax_free FROM order_items
     WHERE order_id = ?1 ORDER BY id";

/// Records a completed refund of `units` worth `amount` on order `id`: each
/// line's refunded count grows (guarded: never past its quantity), the
/// units go back to stock, and the order's refunded money grows and its
/// state moves to `Refunded` when no unit is left (giving its coupon
/// back), else to `PartiallyRefunded`. Returns the new state.
pub(crate) fn refund_units(
    tx: &dyn Db,
    id: OrderId,
    units: &[RefundUnits],
    amount: Money,
    now: Timestamp,
) -> Result<OrderStatus> {
    for unit in units {
        let changed = tx.execute(
            "UPDATE order_items SET refunded = refunded + ?2
             WHERE id = ?1 AND refunded + ?2 <= quantity",
            &[&unit.item, &unit.quantity],
        )?;
        if changed != 1 {
            return Err(corrupt(format!(
                "refunding order item {}: {changed} rows changed, not 1",
                unit.item
            )));
        }
    }
    let mut by_product = units.to_vec();
    by_product.sort_by_key(|unit| unit.product);
    for unit in &by_product {
        product::release_stock(tx, unit.product, unit.quantity, now)?;
    }
    let left: i64 = tx
        .query_row(
            "SELECT count(*) FROM order_items WHERE order_id = ?1 AND refunded < quantity",
            &[&id],
        )?
        .get(0)?;
    let to = if left == 0 {
        OrderStatus::Refunded
    } else {
        OrderStatus::PartiallyRefunded
    };
    let changed = tx.execute(
        "UPDATE orders SET status = ?2, refunded = refunded + ?3, updated_at = ?4
         WHERE id = ?1 AND status IN ('paid', 'partially_refunded')",
        &[&id, &to, &amount, &now],
    )?;
    if changed != 1 {
        let current: OrderStatus = tx
            .query_row("SELECT status FROM orders WHERE id = ?1", &[&id])?
            .get(0)?;
        return Err(Error::InvalidTransition {
            order: id,
            from: current,
            to,
        });
    }
    if to == OrderStatus::Refunded {
        coupon::release(tx, id)?;
    }
    let paid_at: Option<Timestamp> = tx
        .query_row("SELECT paid_at FROM orders WHERE id = ?1", &[&id])?
        .get(0)?;
    if let Some(paid_at) = paid_at {
        sales::remove_units(tx, paid_at, units)?;
    }
    Ok(to)
}

/// Moves order `id` from `Paying` to `Paid` at `now`, which is the day its
/// units count as sold.
pub(crate) fn mark_paid(tx: &dyn Db, id: OrderId, now: Timestamp) -> Result<()> {
    // The move and its time in one statement (one round trip less on
    // PostgreSQL); a move it could not make is explained by `transition`.
    let changed = tx.execute(
        "UPDATE orders SET status = ?3, updated_at = ?4, paid_at = ?4
         WHERE id = ?1 AND status = ?2",
        &[&id, &OrderStatus::Paying, &OrderStatus::Paid, &now],
    )?;
    if changed != 1 {
        transition(tx, id, OrderStatus::Paying, OrderStatus::Paid, now)?;
        tx.execute("UPDATE orders SET paid_at = ?2 WHERE id = ?1", &[&id, &now])?;
    }
    sales::add_order(tx, id, now)
}

/// Moves order `id` from `from` to `to`, guarded by its current state.
///
/// # Failure
///
/// [`Error::InvalidTransition`] if the table forbids the move or the order
/// is not in `from` (naming the state it is in).
pub(crate) fn transition(
    tx: &dyn Db,
    id: OrderId,
    from: OrderStatus,
    to: OrderStatus,
    now: Timestamp,
) -> Result<()> {
    let changed = if from.can_become(to) {
        tx.execute(
            "UPDATE orders SET status = ?3, updated_at = ?4 WHERE id = ?1 AND status = ?2",
            &[&id, &from, &to, &now],
        )?
    } else {
        0
    };
    if changed == 1 {
        return Ok(());
    }
    let current: OrderStatus = tx
        .query_opt("SELECT status FROM orders WHERE id = ?1", &[&id])?
        .ok_or(Error::OrderNotFound(id))?
        .get(0)?;
    Err(Error::InvalidTransition {
        order: id,
        from: current,
        to,
    })
}

/// A new line of `quantity` units at `unit_price`: nothing refunded, and
/// an amount equal to its total until a discount is spread over it.
fn item(product: ProductId, name: String, unit_price: Money, quantity: u32) -> Result<OrderItem> {
    let line_total = unit_price
        .checked_mul(quantity)
        .ok_or(Error::AmountOverflow)?;
    Ok(OrderItem {
        product,
        name,
        unit_price,
        quantity,
        line_total,
        amount: line_total,
        refunded: 0,
        tax_free: false,
    })
}

/// Spreads an order-level `discount` over lines whose totals are
/// `line_totals`, and returns what each line then costs.
///
/// The rule, in integers only: line `i` bears `⌊discount × totalᵢ /
/// subtotal⌋`; the won left over by rounding down (fewer than the number of
/// lines) are borne one each by the lines in order, first line first,
/// skipping a line that has nothing left to discount. So the amounts add up
/// to exactly `subtotal − discount`, and no line costs less than zero. A
/// discount larger than the subtotal is capped at it.
pub(crate) fn spread(discount: Money, line_totals: &[Money]) -> Vec<Money> {
    let subtotal: i128 = line_totals.iter().map(|m| i128::from(m.won())).sum();
    let discount = i128::from(discount.won()).min(subtotal);
    if discount == 0 {
        return line_totals.to_vec();
    }
    let mut shares: Vec<i128> = line_totals
        .iter()
        .map(|total| discount * i128::from(total.won()) / subtotal)
        .collect();
    let mut left = discount - shares.iter().sum::<i128>();
    while left > 0 {
        for (share, total) in shares.iter_mut().zip(line_totals) {
            if left > 0 && *share < i128::from(total.won()) {
                *share += 1;
                left -= 1;
            }
        }
    }
    line_totals
        .iter()
        .zip(shares)
        .map(|(total, share)| Money::from_i128(i128::from(total.won()) - share))
        .collect()
}

/// What refunding `units` more units of a line costing `amount` for
/// `quantity` units gives back, when `refunded` units already came back.
///
/// The first `r` units of a line are worth `⌊amount × r / quantity⌋`, so
/// the refunds of a line, in any split, add up to exactly its amount, and
/// the last unit carries what rounding left over.
pub(crate) fn refund_value(amount: Money, quantity: u32, refunded: u32, units: u32) -> Money {
    let worth = |r: u32| i128::from(amount.won()) * i128::from(r) / i128::from(quantity);
    Money::from_i128(worth(refunded + units) - worth(refunded))
}

/// An order from the columns of [`SELECT_ORDER`], without its lines.
fn order_row(row: &Row) -> Result<Order> {
    let total: Money = row.get(at!(ORDER, "total"))?;
    let discount: Money = row.get(at!(ORDER, "discount"))?;
    Ok(Order {
        id: row.get(at!(ORDER, "id"))?,
        user: row.get(at!(ORDER, "user_id"))?,
        status: row.get(at!(ORDER, "status"))?,
        cancel_reason: row.get(at!(ORDER, "cancel_reason"))?,
        lines: Vec::new(),
        subtotal: total.checked_add(discount).ok_or_else(|| {
            corrupt(format!(
                "an order's subtotal overflows: {total} + {discount}"
            ))
        })?,
        discount,
        coupon: row.get(at!(ORDER, "coupon_id"))?,
        total,
        refunded: row.get(at!(ORDER, "refunded"))?,
        created_at: row.get(at!(ORDER, "created_at"))?,
        expires_at: row.get(at!(ORDER, "expires_at"))?,
        updated_at: row.get(at!(ORDER, "updated_at"))?,
        paid_at: row.get(at!(ORDER, "paid_at"))?,
    })
}

/// The columns [`order_row`] reads, as [`SELECT_ORDER`] and
/// [`SELECT_ORDER_PAGE`] select them.
pub(crate) const ORDER: Reads = &[
    "orders.id",
    "orders.user_id",
    "orders.status",
    "orders.cancel_reason",
    "orders.total",
    "orders.refunded",
    "orders.created_at",
    "orders.expires_at",
    "orders.updated_at",
    "orders.discount",
    "orders.coupon_id",
    "orders.paid_at",
];

/// An item and its order from the columns of [`SELECT_ITEMS`].
fn item_row(row: &Row) -> Result<(OrderId, OrderItem)> {
    let mut item = item(
        row.get(at!(ORDER_ITEM, "product_id"))?,
        row.get(at!(ORDER_ITEM, "name"))?,
        row.get(at!(ORDER_ITEM, "unit_price"))?,
        row.get(at!(ORDER_ITEM, "quantity"))?,
    )?;
    item.amount = row.get(at!(ORDER_ITEM, "amount"))?;
    item.refunded = row.get(at!(ORDER_ITEM, "refunded"))?;
    item.tax_free = row.get::<i64>(at!(ORDER_ITEM, "tax_free"))? != 0;
    Ok((row.get(at!(ORDER_ITEM, "order_id"))?, item))
}

/// The columns [`item_row`] reads, as [`SELECT_ITEMS`] and
/// [`SELECT_ITEMS_OF_RANGE`] select them.
pub(crate) const ORDER_ITEM: Reads = &[
    "order_items.order_id",
    "order_items.product_id",
    "order_items.name",
    "order_items.unit_price",
    "order_items.quantity",
    "order_items.amount",
    "order_items.refunded",
    "order_items.tax_free",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn won(w: i64) -> Money {
        Money::new(w).unwrap()
    }

    #[test]
    fn a_discount_is_spread_by_share_with_the_rounding_on_the_first_lines() {
        // 1,000 off 3,000 + 3,000 + 4,000: shares 300, 300, 400.
        assert_eq!(
            spread(won(1_000), &[won(3_000), won(3_000), won(4_000)]),
            [won(2_700), won(2_700), won(3_600)]
        );
        // 2 off three lines of 1: every share rounds down to 0, and the two
        // won left over fall on the first two lines.
        assert_eq!(
            spread(won(2), &[won(1), won(1), won(1)]),
            [won(0), won(0), won(1)]
        );
        // A discount above the subtotal is capped at it.
        assert_eq!(spread(won(10), &[won(1), won(1)]), [won(0), won(0)]);
        assert_eq!(spread(Money::ZERO, &[won(5)]), [won(5)]);
    }

    proptest! {
        /// The amounts add up to exactly subtotal - discount, none below
        /// zero or above its line; and the refunds of a line, in any split,
        /// add up to exactly its amount.
        #[test]
        fn spread_and_refund_values_never_pay_back_more_than_was_paid(
            totals in prop::collection::vec(0..1_000_000_i64, 1..6),
            discount in 0..2_000_000_i64,
            quantity in 1..20_u32,
            cuts in prop::collection::vec(1..20_u32, 0..6),
        ) {
            let totals: Vec<Money> = totals.into_iter().map(won).collect();
            let subtotal: i64 = totals.iter().map(|m| m.won()).sum();
            let amounts = spread(won(discount), &totals);
            let sum: i64 = amounts.iter().map(|m| m.won()).sum();
            prop_assert_eq!(sum, subtotal - discount.min(subtotal));
            for (amount, total) in amounts.iter().zip(&totals) {
                prop_assert!(amount <= total);
            }
            let amount = amounts[0];
            let mut refunded = 0;
            let mut back = 0;
            for cut in cuts.into_iter().chain([quantity]) {
                let units = cut.min(quantity - refunded);
                back += refund_value(amount, quantity, refunded, units).won();
                refunded += units;
            }
            prop_assert_eq!(refunded, quantity);
            prop_assert_eq!(back, amount.won());
        }
    }
}
