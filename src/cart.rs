//! Carts: each user's lines of (product, quantity), at most one line per
//! product.
//!
//! A cart reserves nothing: stock is checked and reserved only when an order
//! is placed, and prices shown are the products' current prices.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::{Db, Reads, Row, at};
use crate::error::{Error, Result};
use crate::ids::{CartItemId, ProductId, UserId};
use crate::money::Money;
use crate::order::OrderLine;
use crate::product;
use crate::store::UserTx;

/// One line of a cart, with the product's current data.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The line's id.
    pub id: CartItemId,
    /// The product.
    pub product: ProductId,
    /// The product's name.
    pub name: String,
    /// The product's current unit price.
    pub unit_price: Money,
    /// How many units.
    pub quantity: u32,
    /// `unit_price × quantity`; `None` if it is too large to represent (a
    /// product priced near [`Money::MAX`]): such a line is still listed, so
    /// its owner can find and remove it, but cannot be checked out.
    pub line_total: Option<Money>,
    /// When the line was added.
    pub added_at: Timestamp,
}

/// A user's cart: its lines in the order they were added, and their total.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// Whose cart.
    pub user: UserId,
    /// The lines, oldest first.
    pub lines: Vec<CartLine>,
    /// The sum of the line totals; `None` if a line total or the sum is too
    /// large to represent.
    pub total: Option<Money>,
}

/// The whole cart in one query: the user row left-joined to its lines, so a
/// missing user (no row) and an empty cart (one row of NULLs) are told apart
/// without a second statement.
pub(crate) const SELECT_CART: &str =
    "SELECT c.id, c.product_id, p.name, p.price, c.quantity, c.created_at
     FROM users u
     LEFT JOIN cart_items c ON c.user_id = u.id
     LEFT JOIN products p ON p.id = c.product_id
     WHERE u.id = ?1
     ORDER BY c.id";

pub(crate) const SELECT_LINE: &str =
    "SELECT c.id, c.product_id, p.name, p.price, c.quantity, c.created_at
     FROM cart_items c JOIN products p ON p.id = c.product_id
     WHERE c.id = ?1 AND c.user_id = ?2";

pub(crate) const SELECT_LINE_BY_PRODUCT: &str =
    "SELECT id FROM cart_items WHERE user_id = ?1 AND product_id = ?2";

pub(crate) const SELECT_ORDER_LINES: &str =
    "SELECT product_id, quantity FROM cart_items WHERE user_id = ?1 ORDER BY id";

pub(crate) const UPDATE_QUANTITY: &str =
    "UPDATE cart_items SET quantity = ?3 WHERE id = ?1 AND user_id = ?2";

pub(crate) const DELETE_LINE: &str = "DELETE FROM cart_items WHERE id = ?1 AND user_id = ?2";

/// The cart of `user`, or [`Error::UserNotFound`].
pub(crate) fn get(db: &dyn Db, user: UserId) -> Result<Cart> {
    let rows = db.query(SELECT_CART, &[&user])?;
    let mut lines = Vec::new();
    let user_found = !rows.is_empty();
    for row in &rows {
        // The LEFT JOIN gives one row of NULLs for an empty cart.
        if row.get::<Option<i64>>(0)?.is_some() {
            lines.push(cart_line(row)?);
        }
    }
    if !user_found {
        return Err(Error::UserNotFound(user));
    }
    let total = lines
        .iter()
        .map(|line| line.line_total)
        .collect::<Option<Vec<Money>>>()
        .and_then(Money::checked_sum);
    Ok(Cart { user, lines, total })
}

/// Adds a line of `quantity` × `product` to the cart of `user` (known to
/// exist): the product must exist and not be in the cart yet.
pub(crate) fn add(
    tx: &UserTx<'_>,
    product: ProductId,
    quantity: u32,
    now: Timestamp,
) -> Result<CartLine> {
    let user = tx.user();
    let product = product::get(tx, product)?;
    let existing: Option<CartItemId> = tx
        .query_opt(SELECT_LINE_BY_PRODUCT, &[&user, &product.id])?
        .map(|row| row.get(0))
        .transpose()?;
    if let Some(item) = existing {
        return Err(Error::AlreadyInCart {
            user,
            product: product.id,
            item,
        });
    }
    let id: CartItemId = tx
        .query_row(
            "INSERT INTO cart_items (user_id, product_id, quantity, created_at)
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
            &[&user, &product.id, &quantity, &now],
        )?
        .get(0)?;
    Ok(CartLine {
        id,
        product: product.id,
        line_total: product.price.checked_mul(quantity),
        name: product.name,
        unit_price: product.price,
        quantity,
        added_at: now,
    })
}

/// Sets the quantity of the line `item` of `user`'s cart.
pub(crate) fn set_quantity(tx: &UserTx<'_>, item: CartItemId, quantity: u32) -> Result<CartLine> {
    let user = tx.user();
    let changed = tx.execute(UPDATE_QUANTITY, &[&item, &user, &quantity])?;
    if changed == 0 {
        return Err(Error::CartItemNotFound(item));
    }
    match tx.query_opt(SELECT_LINE, &[&item, &user])? {
        Some(row) => cart_line(&row),
        None => Err(Error::CartItemNotFound(item)),
    }
}

/// Removes the line `item` from `user`'s cart.
pub(crate) fn remove(tx: &UserTx<'_>, item: CartItemId) -> Result<()> {
    let user = tx.user();
    let removed = tx.execute(DELETE_LINE, &[&item, &user])?;
    if removed == 0 {
        return Err(Error::CartItemNotFound(item));
    }
    Ok(())
}

/// The lines of `user`'s cart as order lines, oldest first.
pub(crate) fn order_lines(tx: &dyn Db, user: UserId) -> Result<Vec<OrderLine>> {
    tx.query(SELECT_ORDER_LINES, &[&user])?
        .iter()
        .map(|row| Ok(OrderLine::new(row.get(0)?, row.get(1)?)))
        .collect()
}

/// Empties `user`'s cart.
pub(crate) fn clear(tx: &UserTx<'_>) -> Result<()> {
    let user = tx.user();
    tx.execute("DELETE FROM cart_items WHERE user_id = ?1", &[&user])?;
    Ok(())
}

/// Reads a line from the columns of [`SELECT_LINE`] and [`SELECT_CART`],
/// computing its total.
fn cart_line(row: &Row) -> Result<CartLine> {
    let unit_price: Money = row.get(at!(CART_LINE, "price"))?;
    let quantity: u32 = row.get(at!(CART_LINE, "quantity"))?;
    Ok(CartLine {
        id: row.get(at!(CART_LINE, "id"))?,
        product: row.get(at!(CART_LINE, "product_id"))?,
        name: row.get(at!(CART_LINE, "name"))?,
        unit_price,
        quantity,
        line_total: unit_price.checked_mul(quantity),
        added_at: row.get(at!(CART_LINE, "created_at"))?,
    })
}

/// The columns [`cart_line`] reads, as [`SELECT_CART`] and [`SELECT_LINE`]
/// select them.
pub(crate) const CART_LINE: Reads = &[
    "cart_items.id",
    "cart_items.product_id",
    "products.name",
    "products.price",
    "cart_items.quantity",
    "cart_items.created_at",
];
