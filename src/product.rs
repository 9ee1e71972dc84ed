//! Products: the catalogue, prices and stock.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::{Db, Reads, Row, at};
use crate::error::{Error, Result};
use crate::ids::ProductId;
use crate::money::Money;
use crate::page::{Page, PageRequest};

/// What it takes to create a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProduct {
    /// The name, exactly as given: 1 to 100 characters.
    pub name: String,
    /// The unit price (zero is allowed: a free item).
    pub price: Money,
    /// The units on hand.
    pub stock: u32,
}

/// A product in the catalogue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = json!({"id": 1, "name": "Tea", "price": 1000, "stock": 5, "held": 0,
    "created_at": 1795529268174_i64, "updated_at": 1795529268174_i64, "tax_free": false})))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The product's id.
    pub id: ProductId,
    /// The name.
    pub name: String,
    /// The current unit price.
    pub price: Money,
    /// The units on hand and not reserved.
    pub stock: u32,
    /// The units held by orders: reserved by unpaid ones or sold, and not
    /// released. `stock + held` never passes `u32::MAX`, so whatever is
    /// reserved or sold can always be put back.
    pub held: u32,
    /// When the product was created.
    pub created_at: Timestamp,
    /// When its price or stock last changed.
    pub updated_at: Timestamp,
    /// Sold free of VAT (면세): its lines' amounts are sent to the PG as
    /// the tax-free part of a payment and of its refunds (Toss:
    /// `taxFreeAmount`). Set by [`Shop::set_tax_free`](crate::Shop::set_tax_free);
    /// an order keeps what it was when placed.
    #[serde(default)]
    pub tax_free: bool,
}

pub(crate) const SELECT_PRODUCT: &str = "SELECT id, name, price, stock, held, created_at, updated_at, tax_free FROM products WHERE id = ?1";

pub(crate) const SELECT_PRODUCT_PAGE: &str =
    "SELECT id, name, price, stock, held, created_at, updated_at, tax_free FROM products
     WHERE id > ?1 ORDER BY id LIMIT ?2";

pub(crate) const INSERT_PRODUCT: &str =
    "INSERT INTO products (name, price, stock, stocked, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?3, ?4, ?4)
     RETURNING id, name, price, stock, held, created_at, updated_at, tax_free";

/// `stock + held` stays within `?4` (`u32::MAX`): every held unit can come
/// back.
pub(crate) const RESTOCK: &str =
    "UPDATE products SET stocked = stocked + ?2, stock = stock + ?2, updated_at = ?3
     WHERE id = ?1 AND stock + held + ?2 <= ?4
     RETURNING id, name, price, stock, held, created_at, updated_at, tax_free";

pub(crate) const SET_PRICE: &str = "UPDATE products SET price = ?2, updated_at = ?3 WHERE id = ?1
     RETURNING id, name, price, stock, held, created_at, updated_at, tax_free";

pub(crate) const SET_TAX_FREE: &str =
    "UPDATE products SET tax_free = ?2, updated_at = ?3 WHERE id = ?1
     RETURNING id, name, price, stock, held, created_at, updated_at, tax_free";

pub(crate) const RESERVE_STOCK: &str =
    "UPDATE products SET stock = stock - ?2, held = held + ?2, updated_at = ?3
     WHERE id = ?1 AND stock >= ?2";

/// Inserts a product whose name is already checked.
pub(crate) fn create(
    tx: &dyn Db,
    name: &str,
    price: Money,
    stock: u32,
    now: Timestamp,
) -> Result<Product> {
    product(&tx.query_row(INSERT_PRODUCT, &[&name, &price, &stock, &now])?)
}

/// The product `id`, or [`Error::ProductNotFound`].
pub(crate) fn get(db: &dyn Db, id: ProductId) -> Result<Product> {
    found(db.query_opt(SELECT_PRODUCT, &[&id])?, id)
}

/// The product `id` from the row [`SELECT_PRODUCT`] found, if any.
pub(crate) fn found(row: Option<Row>, id: ProductId) -> Result<Product> {
    product(&row.ok_or(Error::ProductNotFound(id))?)
}

/// One page of the catalogue, in id order.
pub(crate) fn list(db: &dyn Db, page: PageRequest) -> Result<Page<Product>> {
    let after = page.cursor().map_or(0, |c| c.key());
    let limit = i64::from(page.limit()) + 1;
    let rows = db
        .query(SELECT_PRODUCT_PAGE, &[&after, &limit])?
        .iter()
        .map(product)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(rows, page.limit(), |p| p.id.get()))
}

/// Adds `quantity` units to the stock of `id`, keeping room for every unit
/// held by orders to come back: `stock + held` stays within `u32::MAX`.
pub(crate) fn restock(
    tx: &dyn Db,
    id: ProductId,
    quantity: u32,
    now: Timestamp,
) -> Result<Product> {
    // One relative, guarded statement: an order reserving units of this
    // product at the same moment (PostgreSQL runs writes in parallel) is
    // neither overwritten nor lost.
    let restocked = tx.query_opt(RESTOCK, &[&id, &quantity, &now, &u32::MAX])?;
    match restocked {
        Some(row) => product(&row),
        None => {
            let current = get(tx, id)?;
            Err(Error::StockOverflow {
                product: id,
                stock: current.stock,
                held: current.held,
                quantity,
            })
        }
    }
}

/// Sets the unit price of `id`. Orders already placed keep their price.
pub(crate) fn set_price(
    tx: &dyn Db,
    id: ProductId,
    price: Money,
    now: Timestamp,
) -> Result<Product> {
    update(tx, SET_PRICE, id, price, now)
}

/// Marks `id` tax-free or not; returns the product.
pub(crate) fn set_tax_free(
    tx: &dyn Db,
    id: ProductId,
    tax_free: bool,
    now: Timestamp,
) -> Result<Product> {
    product(
        &tx.query_opt(SET_TAX_FREE, &[&id, &i64::from(tax_free), &now])?
            .ok_or(Error::ProductNotFound(id))?,
    )
}

/// Takes `quantity` units of `id` out of stock if that many are on hand, in
/// one guarded statement; returns whether it did. The `CHECK (stock >= 0)`
/// constraint is the second guard: stock can never go below zero.
pub(crate) fn reserve_stock(
    tx: &dyn Db,
    id: ProductId,
    quantity: u32,
    now: Timestamp,
) -> Result<bool> {
    let changed = tx.execute(RESERVE_STOCK, &[&id, &quantity, &now])?;
    Ok(changed == 1)
}

/// Puts `quantity` units of `id`, held by an order, back into stock (a
/// cancelled, expired or refunded order). It cannot overflow: the units
/// move from `held` to `stock`, whose sum stays the same.
pub(crate) fn release_stock(
    tx: &dyn Db,
    id: ProductId,
    quantity: u32,
    now: Timestamp,
) -> Result<()> {
    let changed = tx.execute(
        "UPDATE products SET stock = stock + ?2, held = held - ?2, updated_at = ?3
         WHERE id = ?1",
        &[&id, &quantity, &now],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::ProductNotFound(id))
    }
}

/// Runs one `UPDATE … RETURNING` of a product row; no row means no product.
fn update(
    tx: &dyn Db,
    sql: &str,
    id: ProductId,
    value: impl crate::db::ToValue,
    now: Timestamp,
) -> Result<Product> {
    product(
        &tx.query_opt(sql, &[&id, &value, &now])?
            .ok_or(Error::ProductNotFound(id))?,
    )
}

/// The columns [`product`] reads: what [`SELECT_PRODUCT`], the page and
/// every `UPDATE … RETURNING` of a product select.
pub(crate) const PRODUCT: Reads = &[
    "products.id",
    "products.name",
    "products.price",
    "products.stock",
    "products.held",
    "products.created_at",
    "products.updated_at",
    "products.tax_free",
];

fn product(row: &Row) -> Result<Product> {
    Ok(Product {
        id: row.get(at!(PRODUCT, "id"))?,
        name: row.get(at!(PRODUCT, "name"))?,
        price: row.get(at!(PRODUCT, "price"))?,
        stock: row.get(at!(PRODUCT, "stock"))?,
        held: row.get(at!(PRODUCT, "held"))?,
        created_at: row.get(at!(PRODUCT, "created_at"))?,
        updated_at: row.get(at!(PRODUCT, "updated_at"))?,
        tax_free: row.get::<i64>(at!(PRODUCT, "tax_free"))? != 0,
    })
}
