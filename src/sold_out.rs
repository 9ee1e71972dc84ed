//! A placement of a sold-out product refused without a write transaction,
//! on PostgreSQL.
//!
//! In a flash sale most buyers lose: once the units are gone every further
//! placement ends in [`Error::InsufficientStock`]. [`order::place`] already
//! refuses a line short as read before it takes the product's row, but
//! still inside a write: on PostgreSQL `BEGIN`, the user's lock, the
//! user's and the product's reads, the overdue holders' read and the
//! rollback, six round trips for every loser, each behind the winners in
//! the pool's queue. Here, on PostgreSQL, a one-line order of a product
//! this process has seen short ([`ShortHints`]) is first checked by one
//! statement ([`SELECT_SHORT`]) when its turn comes (a [`Precheck`]); if
//! that statement finds the same refusal the placement would give from the
//! same committed rows, the refusal is the answer and no transaction runs.
//! (SQLite's batched writer refuses a loser in its batch without a round
//! trip; a read first was measured slower there, so it never asks: see
//! `Store::write_user_unless`.)
//!
//! The refusal is the placement's own, in its order of checks: the user
//! exists (with a balance row, as the placement reads it) → the product
//! exists → its stock as read is short of the line → no overdue `Pending`
//! order holds it (those the placement would expire first, so with one the
//! write runs instead). Its figures are the placement's: `available` is the
//! stock as read, which with no overdue holder is all the placement would
//! count. The read is a snapshot of committed rows, as the placement's own
//! read of the product is (`READ COMMITTED`): a refusal is true as of it,
//! never of rows not yet committed.
//! Anything else — a user or product missing, stock enough, an overdue
//! holder, an order of several lines or with an idempotency key (whose
//! replay must win over a refusal) — runs the write, with every check.
//!
//! The hints only decide whether to look: a product is marked when a
//! placement in this process is refused for it and unmarked when the
//! statement finds it no longer short, so a product restocked by another
//! process costs one read before its next write, never a wrong answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::clock::Timestamp;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::{ProductId, UserId};
use crate::order::OrderLine;
use crate::store::Precheck;

/// How many products the hints remember at once: a product's slot is its
/// id modulo this, so a product that shares a slot with a newer one is
/// forgotten (and costs its losers the write again, nothing more).
const SLOTS: usize = 256;

/// The products a placement in this process last found short, in a fixed
/// table of slots without a lock: each holds a product's id, or 0.
pub(crate) struct ShortHints {
    slots: [AtomicI64; SLOTS],
}

impl ShortHints {
    /// No product marked.
    pub(crate) fn new() -> ShortHints {
        ShortHints {
            slots: std::array::from_fn(|_| AtomicI64::new(0)),
        }
    }

    fn slot(&self, product: ProductId) -> &AtomicI64 {
        let at = usize::try_from(product.get().rem_euclid(SLOTS as i64)).unwrap_or(0);
        &self.slots[at]
    }

    /// Marks the product of a placement's [`Error::InsufficientStock`];
    /// any other answer changes nothing.
    pub(crate) fn note(&self, answer: &Error) {
        if let Error::InsufficientStock { product, .. } = answer {
            self.slot(*product).store(product.get(), Ordering::Relaxed);
        }
    }

    /// Whether `product` is marked.
    fn marked(&self, product: ProductId) -> bool {
        self.slot(product).load(Ordering::Relaxed) == product.get()
    }

    /// Unmarks `product` (a newer product in its slot stays).
    fn clear(&self, product: ProductId) {
        let id = product.get();
        let _ = self
            .slot(product)
            .compare_exchange(id, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Whether user `?1` has a balance row, product `?2`'s stock, and whether
/// an overdue `Pending` order holds it at `?3`: one row if the product
/// exists. The holders' probe is the placement's own
/// (`order::SELECT_DUE_HOLDING`'s, as PostgreSQL runs it).
pub(crate) const SELECT_SHORT: &str = "SELECT
         EXISTS (SELECT 1 FROM balances WHERE user_id = ?1),
         p.stock,
         EXISTS (SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.id
                 WHERE o.status = 'pending' AND o.expires_at <= ?3 AND i.product_id = ?2)
     FROM products p WHERE p.id = ?2";

/// The check of one unkeyed placement: `Some` for a one-line order, the
/// only kind it can refuse.
pub(crate) fn check(hints: &Arc<ShortHints>, user: UserId, lines: &[OrderLine]) -> Option<Check> {
    match lines {
        [line] => Some(Check {
            hints: Arc::clone(hints),
            user,
            line: *line,
        }),
        _ => None,
    }
}

/// A one-line placement's [`Precheck`]: see the module docs.
pub(crate) struct Check {
    hints: Arc<ShortHints>,
    user: UserId,
    line: OrderLine,
}

impl Precheck for Check {
    fn wanted(&self) -> bool {
        self.hints.marked(self.line.product)
    }

    fn refusal(&self, db: &dyn Db, now: Timestamp) -> Result<Option<Error>> {
        let product = self.line.product;
        let Some(row) = db.query_opt(SELECT_SHORT, &[&self.user, &product, &now])? else {
            return Ok(None); // no such product: the write says so
        };
        let (user_known, stock, overdue_holder): (bool, u32, bool) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        if !user_known || overdue_holder {
            return Ok(None);
        }
        if stock >= self.line.quantity {
            self.hints.clear(product);
            return Ok(None);
        }
        Ok(Some(Error::InsufficientStock {
            product,
            requested: self.line.quantity,
            available: stock,
        }))
    }
}
