//! Orders: placing one (reserving its stock), reading, cancelling, and
//! expiring unpaid orders so their stock returns.
//!
//! The life cycle table is in the crate docs; [`OrderStatus::can_become`]
//! is its code.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, named_params};
use serde::{Deserialize, Serialize};

use crate::balance;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{OrderId, ProductId, UserId};
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::product::{self, Product};
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

/// One line of a placed order, with the product's name and unit price as
/// they were when the order was placed.
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
}

/// Where an order is in its life cycle (see [the table](crate#orders)).
///
/// Stored as lowercase text under a `CHECK` constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock is reserved; the order awaits payment until it expires.
    Pending,
    /// A payment is in flight; the money is held.
    Paying,
    /// Paid.
    Paid,
    /// Cancelled by the user or by expiry; its stock was released.
    Cancelled,
    /// Paid, then refunded; its stock was released.
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
    /// ```
    pub const fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Paying)
                | (Pending, Cancelled)
                | (Paying, Paid)
                | (Paying, Pending)
                | (Paid, Refunded)
        )
    }

    /// Whether an order in this state keeps its units out of stock.
    pub const fn holds_stock(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending | OrderStatus::Paying | OrderStatus::Paid
        )
    }
}

text_enum!(OrderStatus {
    Pending => "pending",
    Paying => "paying",
    Paid => "paid",
    Cancelled => "cancelled",
    Refunded => "refunded",
});

/// Why an order was cancelled.
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
    /// The sum of the line totals.
    pub total: Money,
    /// When it was placed.
    pub created_at: Timestamp,
    /// When it expires if still `Pending`.
    pub expires_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
}

pub(crate) const SELECT_ORDER: &str =
    "SELECT id, user_id, status, cancel_reason, total, created_at, expires_at, updated_at
     FROM orders WHERE id = ?1 AND user_id = ?2";

pub(crate) const SELECT_ORDER_PAGE: &str =
    "SELECT id, user_id, status, cancel_reason, total, created_at, expires_at, updated_at
     FROM orders WHERE user_id = :user AND id < :before
     ORDER BY id DESC LIMIT :limit";

pub(crate) const SELECT_ITEMS: &str = "SELECT order_id, product_id, name, unit_price, quantity
     FROM order_items WHERE order_id = ?1 ORDER BY id";

/// The items of the orders of `user` with ids from `?2` to `?3`: the lines of
/// one page of orders in one statement.
pub(crate) const SELECT_ITEMS_OF_RANGE: &str =
    "SELECT i.order_id, i.product_id, i.name, i.unit_price, i.quantity
     FROM orders o JOIN order_items i ON i.order_id = o.id
     WHERE o.user_id = ?1 AND o.id BETWEEN ?2 AND ?3
     ORDER BY i.id";

pub(crate) const SELECT_DUE: &str =
    "SELECT id FROM orders WHERE status = 'pending' AND expires_at <= ?1 ORDER BY expires_at";

/// `CROSS JOIN` fixes the join order: walk the few overdue pending orders
/// (partial index), then probe each for the product, rather than walk every
/// order line the product ever had.
pub(crate) const SELECT_DUE_HOLDING: &str =
    "SELECT o.id FROM orders o CROSS JOIN order_items i ON i.order_id = o.id
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
/// (expiring overdue orders that hold it, if short) → the balance covers
/// the total → the order is saved as `Pending` until `expires_at`.
///
/// The caller's write transaction makes it all or nothing: a refusal of any
/// line leaves every stock as it was.
pub(crate) fn place(
    tx: &Transaction<'_>,
    user: UserId,
    lines: &[OrderLine],
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<Order> {
    let products = lines
        .iter()
        .map(|line| product::get(tx, line.product))
        .collect::<Result<Vec<Product>>>()?;
    for line in lines {
        reserve(tx, line, now)?;
    }
    let items = lines
        .iter()
        .zip(products)
        .map(|(line, product)| item(product.id, product.name, product.price, line.quantity))
        .collect::<Result<Vec<_>>>()?;
    let total = Money::checked_sum(items.iter().map(|item| item.line_total))
        .ok_or(Error::AmountOverflow)?;
    let available = balance::get(tx, user)?;
    if available < total {
        return Err(Error::InsufficientBalance {
            user,
            needed: total,
            available,
        });
    }

    let id: OrderId = tx
        .prepare_cached(
            "INSERT INTO orders (user_id, status, total, created_at, expires_at, updated_at)
             VALUES (:user, 'pending', :total, :now, :expires_at, :now)
             RETURNING id",
        )?
        .query_row(
            named_params! { ":user": user, ":total": total, ":now": now, ":expires_at": expires_at },
            |row| row.get(0),
        )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for item in &items {
        insert.execute((id, item.product, &item.name, item.unit_price, item.quantity))?;
    }
    Ok(Order {
        id,
        user,
        status: OrderStatus::Pending,
        cancel_reason: None,
        lines: items,
        total,
        created_at: now,
        expires_at,
        updated_at: now,
    })
}

/// Reserves the stock of one line; if short, expires overdue orders holding
/// that product and tries once more.
fn reserve(tx: &Transaction<'_>, line: &OrderLine, now: Timestamp) -> Result<()> {
    if product::reserve_stock(tx, line.product, line.quantity, now)? {
        return Ok(());
    }
    if expire_holding(tx, line.product, now)? > 0
        && product::reserve_stock(tx, line.product, line.quantity, now)?
    {
        return Ok(());
    }
    Err(Error::InsufficientStock {
        product: line.product,
        requested: line.quantity,
        available: product::get(tx, line.product)?.stock,
    })
}

/// The order `id` of `user`; another user's order is not found.
pub(crate) fn get(conn: &Connection, user: UserId, id: OrderId) -> Result<Order> {
    let mut order = conn
        .prepare_cached(SELECT_ORDER)?
        .query_row((id, user), order_row)
        .optional()?
        .ok_or(Error::OrderNotFound(id))?;
    let mut stmt = conn.prepare_cached(SELECT_ITEMS)?;
    let mut rows = stmt.query([id])?;
    while let Some(row) = rows.next()? {
        order.lines.push(item_row(row)?.1);
    }
    Ok(order)
}

/// One page of the orders of `user`, newest first, with their lines.
pub(crate) fn list(conn: &Connection, user: UserId, page: PageRequest) -> Result<Page<Order>> {
    let before = page.cursor().map_or(i64::MAX, |c| c.key());
    let orders = conn
        .prepare_cached(SELECT_ORDER_PAGE)?
        .query_map(
            named_params! {
                ":user": user,
                ":before": before,
                ":limit": i64::from(page.limit()) + 1,
            },
            order_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut page = Page::from_rows(orders, page.limit(), |order| order.id.get());
    if let (Some(newest), Some(oldest)) = (page.items.first(), page.items.last()) {
        let mut lines: HashMap<OrderId, Vec<OrderItem>> = HashMap::new();
        let mut stmt = conn.prepare_cached(SELECT_ITEMS_OF_RANGE)?;
        let mut rows = stmt.query((user, oldest.id, newest.id))?;
        while let Some(row) = rows.next()? {
            let (order, item) = item_row(row)?;
            lines.entry(order).or_default().push(item);
        }
        for order in &mut page.items {
            order.lines = lines.remove(&order.id).unwrap_or_default();
        }
    }
    Ok(page)
}

/// Cancels the `Pending` order `id` of `user` and releases its stock.
pub(crate) fn cancel(
    tx: &Transaction<'_>,
    user: UserId,
    id: OrderId,
    now: Timestamp,
) -> Result<Order> {
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

/// Cancels every order still `Pending` at its deadline and releases its
/// stock; returns how many.
pub(crate) fn expire_due(tx: &Transaction<'_>, now: Timestamp) -> Result<usize> {
    let due = tx
        .prepare_cached(SELECT_DUE)?
        .query_map([now], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<OrderId>>>()?;
    expire(tx, &due, now)
}

/// Expires the overdue `Pending` orders that hold `product`; returns how many.
fn expire_holding(tx: &Transaction<'_>, product: ProductId, now: Timestamp) -> Result<usize> {
    let due = tx
        .prepare_cached(SELECT_DUE_HOLDING)?
        .query_map((product, now), |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<OrderId>>>()?;
    expire(tx, &due, now)
}

fn expire(tx: &Transaction<'_>, due: &[OrderId], now: Timestamp) -> Result<usize> {
    let mut expired = 0;
    for &id in due {
        if release(tx, id, CancelReason::Expired, now)? {
            tracing::debug!(order = %id, "order expired");
            expired += 1;
        }
    }
    Ok(expired)
}

/// Moves the order `id` from `Pending` to `Cancelled` for `reason` and puts
/// its units back into stock. Returns `false`, changing nothing, if the
/// order is not `Pending`: stock is released only together with the state
/// change, never twice.
fn release(
    tx: &Transaction<'_>,
    id: OrderId,
    reason: CancelReason,
    now: Timestamp,
) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE orders SET status = 'cancelled', cancel_reason = ?2, updated_at = ?3
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute((id, reason, now))?;
    if changed == 0 {
        return Ok(false);
    }
    restock(tx, id, now)?;
    Ok(true)
}

/// Puts the units of every line of order `id` back into stock. Callers do
/// this only in the transaction that moves the order out of a
/// stock-holding state.
pub(crate) fn restock(tx: &Transaction<'_>, id: OrderId, now: Timestamp) -> Result<()> {
    let lines = tx
        .prepare_cached("SELECT product_id, quantity FROM order_items WHERE order_id = ?1")?
        .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(ProductId, u32)>>>()?;
    for (product, quantity) in lines {
        product::release_stock(tx, product, quantity, now)?;
    }
    Ok(())
}

/// Moves order `id` from `from` to `to`, guarded by its current state.
///
/// # Failure
///
/// [`Error::InvalidTransition`] if the table forbids the move or the order
/// is not in `from` (naming the state it is in).
pub(crate) fn transition(
    tx: &Transaction<'_>,
    id: OrderId,
    from: OrderStatus,
    to: OrderStatus,
    now: Timestamp,
) -> Result<()> {
    let changed = if from.can_become(to) {
        tx.prepare_cached(
            "UPDATE orders SET status = ?3, updated_at = ?4 WHERE id = ?1 AND status = ?2",
        )?
        .execute((id, from, to, now))?
    } else {
        0
    };
    if changed == 1 {
        return Ok(());
    }
    let current: OrderStatus = tx
        .prepare_cached("SELECT status FROM orders WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .ok_or(Error::OrderNotFound(id))?;
    Err(Error::InvalidTransition {
        order: id,
        from: current,
        to,
    })
}

fn item(product: ProductId, name: String, unit_price: Money, quantity: u32) -> Result<OrderItem> {
    Ok(OrderItem {
        product,
        name,
        unit_price,
        quantity,
        line_total: unit_price
            .checked_mul(quantity)
            .ok_or(Error::AmountOverflow)?,
    })
}

/// An order from the columns of [`SELECT_ORDER`], without its lines.
fn order_row(row: &Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        id: row.get(0)?,
        user: row.get(1)?,
        status: row.get(2)?,
        cancel_reason: row.get(3)?,
        lines: Vec::new(),
        total: row.get(4)?,
        created_at: row.get(5)?,
        expires_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

/// An item and its order from the columns of [`SELECT_ITEMS`].
fn item_row(row: &Row<'_>) -> Result<(OrderId, OrderItem)> {
    Ok((
        row.get(0)?,
        item(row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)?,
    ))
}
