//! The catalogue: products, their stock, prices and tax-free flag, and
//! the best sellers.

use tracing::debug;

use super::Shop;
use crate::error::{Entity, Result};
use crate::ids::ProductId;
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::product::{self, NewProduct, Product};
use crate::sales::{self, BestSeller};
use crate::validate;
// Named by the docs only.
#[cfg(doc)]
use {super::ShopBuilder, crate::error::Error};

impl Shop {
    /// Adds a product to the catalogue.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidName`], [`Error::InvalidCharacter`],
    /// [`Error::EdgeWhitespace`].
    pub fn create_product(&self, new: NewProduct) -> Result<Product> {
        let name = validate::name(Entity::Product, &new.name)?;
        let product =
            self.write_shop(move |tx, now| product::create(tx, &name, new.price, new.stock, now))?;
        debug!(product = %product.id, price = %product.price, stock = product.stock, "product created");
        Ok(product)
    }

    /// The product `id` (seed flow 3).
    ///
    /// Checks, in order: the id is valid → the product exists.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ProductNotFound`].
    pub fn product(&self, id: ProductId) -> Result<Product> {
        let id = id.validate()?;
        self.inner
            .store
            .read_one(product::SELECT_PRODUCT, &[&id], |row| {
                product::found(row, id)
            })
    }

    /// One page of the catalogue in id order (oldest product first).
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let shop = liteshop::Shop::open(dir.path().join("shop.db"))?;
    /// use liteshop::{Money, NewProduct, PageRequest};
    ///
    /// for name in ["a", "b", "c"] {
    ///     shop.create_product(NewProduct { name: name.into(), price: Money::ZERO, stock: 1 })?;
    /// }
    /// let first = shop.products(PageRequest::first(2))?;
    /// assert_eq!(first.items.len(), 2);
    /// let rest = shop.products(PageRequest::after(first.next.unwrap(), 2))?;
    /// assert_eq!(rest.items[0].name, "c");
    /// assert!(rest.next.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Failure
    ///
    /// [`Error::InvalidPageSize`].
    pub fn products(&self, page: PageRequest) -> Result<Page<Product>> {
        let page = page.validate()?;
        self.inner.store.read(|tx| product::list(tx, page))
    }

    /// Adds `quantity` units to the stock of `id`; returns the product.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidQuantity`] (zero),
    /// [`Error::ProductNotFound`], [`Error::StockOverflow`].
    pub fn restock(&self, id: ProductId, quantity: u32) -> Result<Product> {
        let id = id.validate()?;
        let quantity = validate::quantity(quantity, u32::MAX)?;
        let product = self.write_shop(move |tx, now| product::restock(tx, id, quantity, now))?;
        debug!(product = %id, quantity, stock = product.stock, "product restocked");
        Ok(product)
    }

    /// Sets the unit price of `id`; returns the product. Carts show the new
    /// price at once.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ProductNotFound`].
    pub fn set_price(&self, id: ProductId, price: Money) -> Result<Product> {
        let id = id.validate()?;
        let product = self.write_shop(move |tx, now| product::set_price(tx, id, price, now))?;
        debug!(product = %id, price = %price, "product price set");
        Ok(product)
    }

    /// Marks `id` as sold free of VAT (면세) or not; returns the product.
    /// Orders placed from then on send their tax-free lines' share of each
    /// PG amount as the PG's tax-free amount (Toss: `taxFreeAmount`, which
    /// a shop selling tax-free goods must send); orders placed before keep
    /// what the product was then.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::ProductNotFound`].
    pub fn set_tax_free(&self, id: ProductId, tax_free: bool) -> Result<Product> {
        let id = id.validate()?;
        let product =
            self.write_shop(move |tx, now| product::set_tax_free(tx, id, tax_free, now))?;
        debug!(product = %id, tax_free, "product tax status set");
        Ok(product)
    }

    /// The `limit` products (1 to 100) that sold the most units in the last
    /// `days` calendar days (1 to 30, today included) in the shop's UTC
    /// offset ([`ShopBuilder::utc_offset_minutes`]), most units first, ties
    /// by product id, with units and revenue. "Sold" is paid, less refunded
    /// units: a refund takes its units off the day the order was paid.
    /// Products that sold nothing are left out, so the list may be shorter.
    ///
    /// It reads only the per-day sales rows of the window, which the
    /// payment and refund transactions keep up to date; no order is
    /// scanned.
    ///
    /// # Failure
    ///
    /// [`Error::OutOfRange`] for `days` or `limit` out of bounds.
    pub fn best_sellers(&self, days: u32, limit: u32) -> Result<Vec<BestSeller>> {
        validate::range("days", days, 1, 30)?;
        validate::range("limit", limit, 1, 100)?;
        let now = self.now();
        self.inner
            .store
            .read(|tx| sales::best_sellers(tx, days, limit, now))
    }
}
